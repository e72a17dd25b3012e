#!/usr/bin/env bash
# make bench: the hello test server pinned to CPU 0, wrk pinned to CPU 1.
# Rounds alternate untraced, traced with the sock_* tracepoints (T) and
# traced with the syscall-tracepoint fallback of older kernels (S):
# U T S U T S U, so drift on a shared VM hits all; medians are compared. Prints throughput ratio, latency, BPF
# runs and ns per request (bpf_stats), uprobe hits, agent CPU per span and
# RSS, and events lost.
set -euo pipefail
# BENCH_PATH: the URL path loaded (default /hello; make bench also runs
# /work?size=65536, a 64 KiB Content-Length body, as scenario hello-64k);
# BENCH_SCENARIO names it in the summary.
# BENCH_SUMMARY=FILE: also append the headline figures there (make bench's summary).
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
AGENT_PIN=${BENCH_AGENT_CPU:-} # e.g. 1: share wrk's core, not the server's
CONNS=${BENCH_CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${agent:-}; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-bench-hello" .)
taskset -c 0 "$work/weft-bench-hello" >"$work/srv.out" 2>&1 &
srv=$!
pids+=($srv)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
port=$(awk '/LISTEN/{print $2}' "$work/srv.out")
url="http://127.0.0.1:$port${BENCH_PATH:-/hello}"
export BENCH_SCENARIO=${BENCH_SCENARIO:-hello}
echo "loading $url"

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
start_agent() { # $1: capture source
	log="$work/agent.$RANDOM.log"
	${AGENT_PIN:+taskset -c "$AGENT_PIN"} bin/weft-agent -capture "$1" -exe weft-bench-hello -exporter jsonl -status-addr "$status" >>"$work/spans.$1.jsonl" 2>"$log" &
	agent=$!
	for _ in $(seq 100); do grep -q "tracing process" "$log" && break; sleep 0.1; done
	grep -q "tracing process" "$log" || { cat "$log"; echo "agent did not attach" >&2; exit 1; }
}
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
# Run time and count of sockio's programs, summed (bpf_stats): the
# capture source's (on_recv/on_send, or the syscall enter_*/exit_*) and
# on_state.
bpfstats() {
	bpftool prog show -j | python3 -c '
import json,sys
ns=cnt=0
for p in json.load(sys.stdin):
    n=p.get("name","")
    if n in ("on_recv","on_send","on_state") or n.startswith(("enter_","exit_")):
        ns+=p.get("run_time_ns",0); cnt+=p.get("run_cnt",0)
print(ns, cnt)'
}

: >"$work/rounds" # kind req/s p50 p99 requests server_ticks agent_ticks bpf_ns bpf_runs rss_kb lost
for round in U T S U T S U; do
	if [ "$round" = U ]; then
		echo "U $(load "u$RANDOM") 0 0 0 0 0" >>"$work/rounds"
		continue
	fi
	src=sock_tracepoints
	[ "$round" = S ] && src=syscalls
	sysctl -qw kernel.bpf_stats_enabled=1
	start_agent "$src"
	t0=$(ticks)
	r=$(load "t$RANDOM")
	t1=$(ticks)
	read -r ns cnt <<<"$(bpfstats)"
	sleep 1 # drain
	rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$agent/status")
	lost=$(curl -s "http://$status/metrics" | awk -F' ' '/ringbuf_full/{print int($2)}')
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
	echo "$round $r $((t1 - t0)) $ns $cnt $rss_kb ${lost:-0}" >>"$work/rounds"
done
spans_t=$(grep -c '"traceId"' "$work/spans.sock_tracepoints.jsonl" || true)
spans_s=$(grep -c '"traceId"' "$work/spans.syscalls.jsonl" || true)
uprobes=$(grep -c . /sys/kernel/tracing/uprobe_events 2>/dev/null) || uprobes=0

python3 - "$work/rounds" "$spans_t" "$spans_s" "$(getconf CLK_TCK)" "$uprobes" "$DUR" <<'PY'
import os, shlex, sys, statistics as st
def summary(**kv): # one line of headline figures for bench-summary.sh
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "a") as f:
            print(" ".join(f"{k}={shlex.quote(str(round(v, 3) if isinstance(v, float) else v))}" for k, v in kv.items()), file=f)
rounds = [l.split() for l in open(sys.argv[1])]
spans = {"T": int(sys.argv[2]), "S": int(sys.argv[3])}
hz, upr, dur = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
def tot(kind, i): return sum(col(kind, i))
print("rounds (req/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
u = st.median(col("U", 1))
print(f"untraced median {u:.0f} req/s, p50 {st.median(col('U',2)):.0f} us, p99 {st.median(col('U',3)):.0f} us")
cu = tot("U", 5) / hz / tot("U", 4) * 1e6
print(f"uprobes attached: {upr} (0 uprobe hits per request)")
for kind, name in (("T", "sock_tracepoints (6.3+)"), ("S", "syscalls (fallback, any kernel)")):
    t = st.median(col(kind, 1))
    reqs = tot(kind, 4)
    print(f"-- capture {name}")
    print(f"traced   median {t:.0f} req/s, p50 {st.median(col(kind,2)):.0f} us, p99 {st.median(col(kind,3)):.0f} us")
    print(f"throughput ratio {t/u:.3f}; added latency p50 {st.median(col(kind,2))-st.median(col('U',2)):+.0f} us, p99 {st.median(col(kind,3))-st.median(col('U',3)):+.0f} us")
    ct = tot(kind, 5) / hz / reqs * 1e6
    print(f"server CPU per request: untraced {cu:.1f} us, traced {ct:.1f} us ({ct-cu:+.1f} us, {ct/cu:.3f}x): the cost on the traced program itself")
    print(f"traced requests {reqs:.0f}, spans {spans[kind]} ({spans[kind]/max(reqs,1):.3f} per request)")
    bns, bcnt = tot(kind, 7), tot(kind, 8)
    print(f"BPF: {bcnt/max(reqs,1):.2f} program runs per request (the untraced wrk's and every other process's syscalls included), {bns/max(bcnt,1):.0f} ns per run, {bns/max(reqs,1)/1000:.2f} us per request")
    cpu = tot(kind, 6) / hz
    secs = dur * len(col(kind, 1))
    print(f"agent CPU {cpu:.2f} s over {secs} s traced = {cpu/secs*100:.0f}% of a core at {spans[kind]/secs:.0f} spans/s: {cpu/max(spans[kind],1)*1e6:.1f} us per span")
    print(f"agent RSS {col(kind, 9)[-1]/1024:.1f} MiB; ring-buffer events lost: {tot(kind, 10):.0f}")
    summary(scenario=os.environ["BENCH_SCENARIO"], variant=name.split()[0], ratio=t/u,
            p50_added_us=st.median(col(kind,2))-st.median(col('U',2)), p99_added_us=st.median(col(kind,3))-st.median(col('U',3)),
            uprobe_hits_per_req=0, bpf_runs_per_req=bcnt/max(reqs,1), bpf_ns_per_req=bns/max(reqs,1),
            agent_us_per_span_jsonl=cpu/max(spans[kind],1)*1e6, rss_mib=col(kind, 9)[-1]/1024, ringbuf_lost=int(tot(kind, 10)),
            spans_per_req=spans[kind]/max(reqs,1), server_cpu_added_us_per_req=ct-cu,
            note="BPF: sockio's programs, the untraced wrk's and every other process's syscalls included")
PY
