#!/usr/bin/env bash
# make bench: the hello test server pinned to CPU 0, wrk pinned to CPU 1;
# untraced, traced, untraced again in one run. Prints throughput ratio,
# latency, BPF cost per hit (bpf_stats), uprobe hits, agent CPU and RSS,
# and lost events.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-bench-hello" .)
taskset -c 0 "$work/weft-bench-hello" >"$work/srv.out" 2>&1 &
pids+=($!)
srv=$!
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
port=$(awk '/LISTEN/{print $2}' "$work/srv.out")
url="http://127.0.0.1:$port/hello"

# wrk prints "Requests/sec: N" and, with --latency, "50% 1.2ms" / "99% ...".
load() {
	taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" >"$work/wrk.$1"
	awk '/Requests\/sec/{rps=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} /requests in/{n=$1}
	     END{printf "%s %s %s %s\n", rps, p50, p99, n}' "$work/wrk.$1"
}
to_us() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1e6} }'; }

sysctl -qw kernel.bpf_stats_enabled=1
read -r u1_rps u1_p50 u1_p99 _ <<<"$(load untraced1)"

status=127.0.0.1:$((20000 + RANDOM % 10000))
bin/weft-agent -exe weft-bench-hello -exporter jsonl -status-addr "$status" >"$work/spans.jsonl" 2>"$work/agent.log" &
agent=$!
pids+=($agent)
for _ in $(seq 100); do grep -q "tracing process" "$work/agent.log" && break; sleep 0.1; done
grep -q "tracing process" "$work/agent.log" || { cat "$work/agent.log"; echo "agent did not attach" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
t0=$(ticks)
read -r t_rps t_p50 t_p99 t_n <<<"$(load traced)"
t1=$(ticks)
sleep 2 # let the agent drain its ring buffer
rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$agent/status")
metrics=$(curl -s "http://$status/metrics")
# Per-program BPF run time and run count, summed over sockio's programs.
bpf=$(bpftool prog show -j | python3 -c '
import json,sys
ns=cnt=0
for p in json.load(sys.stdin):
    n=p.get("name","")
    if n.startswith(("enter_","exit_")):
        ns+=p.get("run_time_ns",0); cnt+=p.get("run_cnt",0)
print(ns, cnt)')
uprobes=$(grep -c . /sys/kernel/tracing/uprobe_events 2>/dev/null || echo 0)
kill -TERM "$agent"; wait "$agent" || true
sysctl -qw kernel.bpf_stats_enabled=0
read -r u2_rps u2_p50 u2_p99 _ <<<"$(load untraced2)"

spans=$(wc -l <"$work/spans.jsonl")
read -r bpf_ns bpf_cnt <<<"$bpf"
hz=$(getconf CLK_TCK)
python3 - "$u1_rps" "$u2_rps" "$t_rps" "$t_n" "$spans" "$bpf_ns" "$bpf_cnt" "$((t1 - t0))" "$hz" "$rss_kb" "$uprobes" \
	"$(to_us "$u1_p50")" "$(to_us "$u1_p99")" "$(to_us "$t_p50")" "$(to_us "$t_p99")" "$DUR" <<'PY'
import sys
u1, u2, t, n, spans, bns, bcnt, ticks, hz, rss, upr, up50, up99, tp50, tp99, dur = sys.argv[1:]
u = (float(u1) + float(u2)) / 2
n, spans, bns, bcnt, ticks, hz = int(n), int(spans), int(bns), int(bcnt), int(ticks), int(hz)
cpu = ticks / hz
print(f"untraced        {float(u1):10.0f} / {float(u2):.0f} req/s (p50 {up50} us, p99 {up99} us)")
print(f"traced          {float(t):10.0f} req/s (p50 {tp50} us, p99 {tp99} us)")
print(f"throughput ratio {float(t)/u:.3f}   added latency p50 {float(tp50)-float(up50):+.0f} us, p99 {float(tp99)-float(up99):+.0f} us")
print(f"requests {n}, spans {spans} ({spans/max(n,1):.3f} per request)")
print(f"uprobes attached {upr}: 0 uprobe hits per request")
print(f"BPF: {bcnt} program runs, {bns/max(bcnt,1):.0f} ns per run, {bcnt/max(n,1):.1f} runs and {bns/max(n,1)/1000:.2f} us per request")
print(f"agent CPU {cpu:.2f} s over {dur} s = {cpu/int(dur)*100:.0f}% of a core at {spans/int(dur):.0f} spans/s; {cpu/max(spans,1)*1e6:.1f} us per span ({cpu/int(dur)/max(spans/int(dur)/1000,1e-9)*100:.1f}% of a core per 1k spans/s)")
print(f"agent RSS {int(rss)/1024:.1f} MiB")
PY
echo "$metrics" | grep -E 'ringbuf_full|weft_http_problems_total|weft_spans_total' || true
