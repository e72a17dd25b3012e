#!/usr/bin/env bash
# make bench: the hello test server pinned to CPU 0, wrk pinned to CPU 1.
# Rounds alternate untraced and traced (U T U T U) so drift on a shared VM
# hits both; medians are compared. Prints throughput ratio, latency, BPF
# runs and ns per request (bpf_stats), uprobe hits, agent CPU per span and
# RSS, and events lost.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
AGENT_PIN=${BENCH_AGENT_CPU:-} # e.g. 1: share wrk's core, not the server's
CONNS=${BENCH_CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-bench-hello" .)
taskset -c 0 "$work/weft-bench-hello" >"$work/srv.out" 2>&1 &
srv=$!
pids+=($srv)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
port=$(awk '/LISTEN/{print $2}' "$work/srv.out")
url="http://127.0.0.1:$port/hello"

# One wrk round: "req/s p50_us p99_us requests server_cpu_ticks". The
# server's own CPU time per request (BPF programs run in its context) shows
# the cost tracing puts on it, whatever the agent and wrk take elsewhere.
load() {
	local c0 c1
	c0=$(awk '{print $14 + $15}' "/proc/$srv/stat")
	taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" >"$work/wrk.$1"
	c1=$(awk '{print $14 + $15}' "/proc/$srv/stat")
	awk -v cpu=$((c1 - c0)) 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; return v*1e6 }
	     /Requests\/sec/{rps=$2} /^ +50%/{p50=us($2)} /^ +99%/{p99=us($2)} /requests in/{n=$1}
	     END{printf "%s %s %s %s %s\n", rps, p50, p99, n, cpu}' "$work/wrk.$1"
}

status=127.0.0.1:$((20000 + RANDOM % 10000))
agent=""
start_agent() {
	log="$work/agent.$RANDOM.log"
	${AGENT_PIN:+taskset -c "$AGENT_PIN"} bin/weft-agent -exe weft-bench-hello -exporter jsonl -status-addr "$status" >>"$work/spans.jsonl" 2>"$log" &
	agent=$!
	for _ in $(seq 100); do grep -q "tracing process" "$log" && break; sleep 0.1; done
	grep -q "tracing process" "$log" || { cat "$log"; echo "agent did not attach" >&2; exit 1; }
}
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
# Run time and count of sockio's programs, summed (bpf_stats).
bpfstats() {
	bpftool prog show -j | python3 -c '
import json,sys
ns=cnt=0
for p in json.load(sys.stdin):
    if p.get("name","") in ("on_recv","on_send","on_state"):
        ns+=p.get("run_time_ns",0); cnt+=p.get("run_cnt",0)
print(ns, cnt)'
}

: >"$work/rounds"
cpu_ticks=0 bpf_ns=0 bpf_cnt=0 traced_reqs=0 rss_kb=0 lost=0
for round in U T U T U; do
	if [ "$round" = U ]; then
		echo "U $(load "u$RANDOM")" >>"$work/rounds"
		continue
	fi
	sysctl -qw kernel.bpf_stats_enabled=1
	start_agent
	t0=$(ticks)
	r=$(load "t$RANDOM")
	t1=$(ticks)
	echo "T $r" >>"$work/rounds"
	read -r ns cnt <<<"$(bpfstats)"
	sleep 1 # drain
	rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$agent/status")
	lost=$((lost + $(curl -s "http://$status/metrics" | awk -F' ' '/ringbuf_full/{print int($2)}')))
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
	cpu_ticks=$((cpu_ticks + t1 - t0)) bpf_ns=$((bpf_ns + ns)) bpf_cnt=$((bpf_cnt + cnt))
	traced_reqs=$((traced_reqs + $(echo "$r" | awk '{print $4}')))
done
spans=$(grep -c '"traceId"' "$work/spans.jsonl" || true)
uprobes=$(grep -c . /sys/kernel/tracing/uprobe_events 2>/dev/null) || uprobes=0

python3 - "$work/rounds" "$traced_reqs" "$spans" "$bpf_ns" "$bpf_cnt" "$cpu_ticks" "$(getconf CLK_TCK)" "$rss_kb" "$uprobes" "$lost" "$DUR" <<'PY'
import sys, statistics as st
rounds = [l.split() for l in open(sys.argv[1])]
reqs, spans, bns, bcnt, ticks, hz, rss, upr, lost, dur = map(int, sys.argv[2:])
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
u, t = col("U", 1), col("T", 1)
print("rounds (req/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
print(f"untraced median {st.median(u):.0f} req/s, p50 {st.median(col('U',2)):.0f} us, p99 {st.median(col('U',3)):.0f} us")
print(f"traced   median {st.median(t):.0f} req/s, p50 {st.median(col('T',2)):.0f} us, p99 {st.median(col('T',3)):.0f} us")
print(f"throughput ratio {st.median(t)/st.median(u):.3f}; added latency p50 {st.median(col('T',2))-st.median(col('U',2)):+.0f} us, p99 {st.median(col('T',3))-st.median(col('U',3)):+.0f} us")
hzf = float(hz)
def cpu_per_req(kind): return sum(float(r[5]) for r in rounds if r[0] == kind) / hzf / sum(float(r[4]) for r in rounds if r[0] == kind) * 1e6
cu, ct = cpu_per_req("U"), cpu_per_req("T")
print(f"server CPU per request: untraced {cu:.1f} us, traced {ct:.1f} us ({ct-cu:+.1f} us, {ct/cu:.3f}x): the cost on the traced program itself")
print(f"traced requests {reqs}, spans {spans} ({spans/max(reqs,1):.3f} per request)")
print(f"uprobes attached: {upr} (0 uprobe hits per request)")
print(f"BPF: {bcnt/max(reqs,1):.2f} program runs per request (the untraced wrk's included), {bns/max(bcnt,1):.0f} ns per run, {bns/max(reqs,1)/1000:.2f} us per request")
cpu = ticks / hz
secs = dur * len(t)
print(f"agent CPU {cpu:.2f} s over {secs} s traced = {cpu/secs*100:.0f}% of a core at {spans/secs:.0f} spans/s: {cpu/max(spans,1)*1e6:.1f} us per span, {cpu/secs/(spans/secs/1000)*100:.2f}% of a core per 1k spans/s")
print(f"agent RSS {rss/1024:.1f} MiB; ring-buffer events lost: {lost}")
PY
