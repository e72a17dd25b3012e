#!/usr/bin/env bash
# gRPC under load (part of make bench): the unmodified grpcserver test
# program pinned to CPU 0 serves unary health Checks; its own -load mode,
# pinned to CPU 1 and not traced (the agent selects the server by -pid),
# calls from many goroutines over one HTTP/2 connection. Rounds alternate
# untraced and traced (U T U T U) and medians are compared. Prints throughput
# ratio, added latency, uprobe hits per call, BPF runs and ns per call
# (bpf_stats, per program), server CPU per call, agent CPU per span, spans
# per call and events lost. BENCH_SUMMARY=FILE also appends the headline
# figures there (make bench's summary).
set -euo pipefail
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
AGENT_PIN=${BENCH_AGENT_CPU:-} # e.g. 1: share the load's core, not the server's
CALLERS=${BENCH_GRPC_CALLERS:-32}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${agent:-}; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/grpcserver && CGO_ENABLED=0 go build -o "$work/weft-bench-grpc" .)
cp "$work/weft-bench-grpc" "$work/weft-bench-grpc-load"
taskset -c 0 "$work/weft-bench-grpc" >"$work/srv.out" 2>&1 &
srv=$!
pids+=($srv)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
addr="127.0.0.1:$(awk '/LISTEN/{print $2}' "$work/srv.out")"

# One load round: "calls/s p50_us p99_us calls errors server_cpu_ticks".
load() {
	local c0 c1
	c0=$(awk '{print $14 + $15}' "/proc/$srv/stat")
	taskset -c 1 "$work/weft-bench-grpc-load" -load "$addr" -c "$CALLERS" -d "${DUR}s" >"$work/load.$1"
	c1=$(awk '{print $14 + $15}' "/proc/$srv/stat")
	awk -v cpu=$((c1 - c0)) '/^LOAD/{for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	     printf "%s %s %s %s %s %s\n", v["rps"], v["p50_us"], v["p99_us"], v["calls"], v["errors"], cpu}' "$work/load.$1"
}

status=127.0.0.1:$((20000 + RANDOM % 10000))
agent=""
start_agent() {
	log="$work/agent.$RANDOM.log"
	${AGENT_PIN:+taskset -c "$AGENT_PIN"} bin/weft-agent -pid "$srv" -exporter jsonl -status-addr "$status" >>"$work/spans.jsonl" 2>"$log" &
	agent=$!
	for _ in $(seq 100); do grep -q "uprobes attached" "$log" && break; sleep 0.1; done
	grep -q "uprobes attached" "$log" || { cat "$log"; echo "agent did not attach its gRPC uprobes" >&2; exit 1; }
}
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
# Programs loaded after this id are the agent's own (not another agent's).
maxprog() { bpftool prog show -j | python3 -c 'import json,sys; print(max([p["id"] for p in json.load(sys.stdin)] or [0]))'; }
metric() { awk -v k="$1" '$1 == k {s += $2} END {print int(s)}' "$work/metrics"; }

: >"$work/rounds"; : >"$work/bpf"
cpu_ticks=0 traced_calls=0 rss_kb=0 lost=0 streams=0 handlers=0 uprobes=0
for round in U T U T U; do
	if [ "$round" = U ]; then
		echo "U $(load "u$RANDOM")" >>"$work/rounds"
		continue
	fi
	sysctl -qw kernel.bpf_stats_enabled=1
	base=$(maxprog)
	start_agent
	t0=$(ticks)
	r=$(load "t$RANDOM")
	t1=$(ticks)
	echo "T $r" >>"$work/rounds"
	echo "$base $(bpftool prog show -j)" >>"$work/bpf"
	sleep 1 # drain
	rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$agent/status")
	curl -s "http://$status/metrics" >"$work/metrics"
	lost=$((lost + $(metric 'weft_sockio_kernel_total{name="ringbuf_full"}')))
	streams=$((streams + $(metric 'weft_gogrpc_kernel_total{name="server_streams"}')))
	handlers=$((handlers + $(metric 'weft_gogrpc_kernel_total{name="handlers"}')))
	uprobes=$(metric 'weft_uprobes_attached{family="gogrpc"}')
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
	cpu_ticks=$((cpu_ticks + t1 - t0))
	traced_calls=$((traced_calls + $(echo "$r" | awk '{print $4}')))
done
spans=$(grep -c '"traceId"' "$work/spans.jsonl" || true)

python3 - "$work/rounds" "$work/bpf" "$traced_calls" "$spans" "$cpu_ticks" "$(getconf CLK_TCK)" "$rss_kb" "$uprobes" "$lost" "$DUR" "$streams" "$handlers" "$CALLERS" <<'PY'
import os, shlex, sys, json, statistics as st
def summary(**kv): # one line of headline figures for bench-summary.sh
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "a") as f:
            print(" ".join(f"{k}={shlex.quote(str(round(v, 3) if isinstance(v, float) else v))}" for k, v in kv.items()), file=f)
rounds = [l.split() for l in open(sys.argv[1])]
calls, spans, ticks, hz, rss, upr, lost, dur, streams, handlers, callers = map(int, sys.argv[3:])
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
u, t = col("U", 1), col("T", 1)
print(f"gRPC unary Check, {callers} callers on one connection; rounds (calls/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
print(f"untraced median {st.median(u):.0f} calls/s, p50 {st.median(col('U',2)):.0f} us, p99 {st.median(col('U',3)):.0f} us")
print(f"traced   median {st.median(t):.0f} calls/s, p50 {st.median(col('T',2)):.0f} us, p99 {st.median(col('T',3)):.0f} us")
print(f"throughput ratio {st.median(t)/st.median(u):.3f}; added latency p50 {st.median(col('T',2))-st.median(col('U',2)):+.0f} us, p99 {st.median(col('T',3))-st.median(col('U',3)):+.0f} us")
errs = sum(int(r[5]) for r in rounds)
if errs: print(f"call errors: {errs}")
def cpu_per_call(kind): return sum(float(r[6]) for r in rounds if r[0] == kind) / hz / max(sum(float(r[4]) for r in rounds if r[0] == kind), 1) * 1e6
cu, ct = cpu_per_call("U"), cpu_per_call("T")
print(f"server CPU per call: untraced {cu:.1f} us, traced {ct:.1f} us ({ct-cu:+.1f} us, {ct/cu:.3f}x): the cost on the traced program itself")
print(f"traced calls {calls}, spans {spans} ({spans/max(calls,1):.3f} per call)")
print(f"gRPC uprobes attached: {upr}; hits per call (server_streams + handlers): {(streams+handlers)/max(calls,1):.2f} ({streams/max(calls,1):.2f} + {handlers/max(calls,1):.2f})")
progs = {}
for line in open(sys.argv[2]):
    base, _, js = line.partition(" ")
    for p in json.loads(js):
        if p["id"] <= int(base): continue
        a = progs.setdefault(p.get("name", "?"), [0, 0])
        a[0] += p.get("run_time_ns", 0); a[1] += p.get("run_cnt", 0)
bns = sum(a[0] for a in progs.values()); bcnt = sum(a[1] for a in progs.values())
print(f"BPF, all the agent's programs: {bcnt/max(calls,1):.2f} runs per call (the untraced load's socket events included), {bns/max(bcnt,1):.0f} ns per run, {bns/max(calls,1)/1000:.2f} us per call")
for n, (ns, cnt) in sorted(progs.items()):
    if cnt: print(f"  {n:18s} {cnt/max(calls,1):6.2f} runs/call  {ns/max(cnt,1):7.0f} ns/run  {ns/max(calls,1):7.0f} ns/call")
cpu = ticks / hz
secs = dur * len(t)
print(f"agent CPU {cpu:.2f} s over {secs} s traced = {cpu/secs*100:.0f}% of a core at {spans/secs:.0f} spans/s: {cpu/max(spans,1)*1e6:.1f} us per span")
print(f"agent RSS {rss/1024:.1f} MiB; ring-buffer events lost: {lost}")
summary(scenario="grpc", variant=f"unary_{callers}_callers", ratio=st.median(t)/st.median(u),
        p50_added_us=st.median(col('T',2))-st.median(col('U',2)), p99_added_us=st.median(col('T',3))-st.median(col('U',3)),
        uprobe_hits_per_req=(streams+handlers)/max(calls,1), bpf_runs_per_req=bcnt/max(calls,1), bpf_ns_per_req=bns/max(calls,1),
        agent_us_per_span_jsonl=cpu/max(spans,1)*1e6, rss_mib=rss/1024, ringbuf_lost=lost,
        spans_per_req=spans/max(calls,1), server_cpu_added_us_per_req=ct-cu, **({"call_errors": errs} if errs else {}),
        note="a request is a call; BPF: all the agent's programs, the untraced load's socket events included")
PY
