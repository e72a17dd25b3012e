#!/usr/bin/env bash
# Agent CPU per span (part of make bench), through the exporter users run:
# the hello test server pinned to CPU 0 is traced by the agent exporting
# with -exporter otlp (gzip, the default) to a real OpenTelemetry Collector
# (scripts/otelcol.sh, writing to a file), and for comparison with
# -exporter jsonl to a file. Each is loaded at saturation (wrk) and at a
# fixed rate (testdata/loadgen, default 2,000 req/s), wrk and loadgen pinned
# to CPU 1 with the collector. Rounds cycle through the four cases
# BENCH_ROUNDS times so drift on a shared VM hits all.
#
# Agent CPU is its threads' run time (/proc/PID/task/*/schedstat, in ns;
# utime+stime in 10 ms ticks if a thread exited meanwhile) from just
# before the load to after a drain of DRAIN seconds (so the last
# batch's export is counted); spans are those the agent wrote (jsonl) or
# the collector acknowledged (weft_export_spans_total{outcome="exported"}).
# Before each load the idle agent is measured for IDLE seconds: "net" is
# the CPU less that idle rate over the same wall time (it grows with the
# number of processes on the host, which discovery rescans).
# Prints a table of CPU per span and ring-buffer losses
# (weft_sockio_kernel_total{name="ringbuf_full"}). BENCH_PROFILE=DIR also
# saves a CPU profile of each round (the agent's -pprof) into DIR.
# BENCH_STAGES=1 (the default) then runs one more OTLP round of each load,
# profiled, of BENCH_STAGE_SECONDS (30), outside the measured ones, and
# prints where its CPU went by pipeline stage (scripts/pprof-stages.py:
# wakeups, ring decode, parsing, span building, OTLP encode, gzip, gRPC,
# GC).
# BENCH_SUMMARY=FILE also appends the headline figures there (make bench's
# summary), with the spans the OTLP exporter dropped. BENCH_CASES picks
# the cases (default "otlp:sat jsonl:sat otlp:fixed jsonl:fixed").
set -euo pipefail
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
RATE=${BENCH_RATE:-2000}
CONNS=${BENCH_CONNS:-16}
DRAIN=${BENCH_DRAIN:-2}
IDLE=${BENCH_IDLE:-8}
PROFILE=${BENCH_PROFILE:-}
STAGES=${BENCH_STAGES:-1}
STAGE_SECONDS=${BENCH_STAGE_SECONDS:-30} # the profile samples 100 times a second of CPU: enough at 2,000 req/s
AGENT_PIN=${BENCH_AGENT_CPU:-}
AGENT=${BENCH_AGENT:-bin/weft-agent} # another build, to compare
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${agent:-}; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

otelcol=$(scripts/otelcol.sh)
(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-bench-hello" .)
(cd testdata/loadgen && CGO_ENABLED=0 go build -o "$work/loadgen" .)
taskset -c 0 "$work/weft-bench-hello" >"$work/srv.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
url="http://127.0.0.1:$(awk '/LISTEN/{print $2}' "$work/srv.out")/hello"

otlp=127.0.0.1:$((30000 + RANDOM % 10000))
WEFT_OTLP_ENDPOINT=$otlp WEFT_SPANS_FILE="$work/collector.jsonl" taskset -c 1 "$otelcol" --config scripts/otelcol-file.yaml >"$work/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/${otlp%:*}/${otlp#*:}") 2>/dev/null && break; sleep 0.1; done

# One load: "req/s requests".
load() { # $1: sat or fixed
	if [ "$1" = sat ]; then
		taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" "$url" | awk '/Requests\/sec/{r=$2} /requests in/{n=$1} END{print r, n}'
	else
		taskset -c 1 "$work/loadgen" -url "$url" -rate "$RATE" -c 8 -d "${DUR}s" |
			awk '/^LOAD/{for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["rps"], v["calls"]}'
	fi
}
# The agent's CPU time in ns, as "ns threads": the run time of each of its
# threads (/proc/PID/task/*/schedstat, exact), and the thread IDs. A
# thread that exits between two reads takes its time with it: then
# cpu_between falls back to utime+stime (/proc/PID/stat, exited threads
# included, but in 10 ms ticks: 0.6 us a span at the fixed rate's 16,000
# spans, and a third of the idle agent's 8 s).
cpu_ns() {
	python3 - "$1" "$(getconf CLK_TCK)" <<'PY'
import os, sys
pid, hz = sys.argv[1], int(sys.argv[2])
# The threads first, then each one's time: a thread that exits between
# the two is left out of the list, so the next reading sees it gone.
tids = os.listdir(f"/proc/{pid}/task")
ns, read = 0, []
for t in tids:
    try:
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            ns += int(f.read().split()[0])
        read.append(t)
    except (OSError, ValueError, IndexError):
        pass
with open(f"/proc/{pid}/stat") as f:
    st = f.read().rsplit(")", 1)[1].split()
print(ns, ",".join(read) or "-", (int(st[11]) + int(st[12])) * 10**9 // hz)
PY
}
# cpu_between A B: ns of CPU from reading A to reading B (of cpu_ns).
cpu_between() {
	python3 - "$1" "$2" <<'PY'
import sys
(ns0, tids0, st0), (ns1, tids1, st1) = (a.split() for a in sys.argv[1:])
t0, t1 = set(tids0.split(",")) - {"-"}, set(tids1.split(",")) - {"-"}
exact = t0 and t0 <= t1 and int(ns1) > int(ns0)
print(int(ns1) - int(ns0) if exact else int(st1) - int(st0))
PY
}
metric() { awk -v k="$1" '$1 == k {s += $2} END {print int(s)}' "$2"; }

status=127.0.0.1:$((20000 + RANDOM % 10000))
: >"$work/rounds" # exporter load req/s requests cpu_ns spans lost idle_ns dropped
# One round: round EXPORTER LOAD ROUNDS_FILE [PROFILE_DIR [SECONDS]].
round() {
		local exp=$1 kind=$2 rounds=$3 PROFILE=${4:-$PROFILE} DUR=${5:-$DUR} prof= pfile=
		log="$work/agent.log"
		out="$work/out.jsonl"
		: >"$out"
		WEFT_OTLP_ENDPOINTS="http://$otlp" ${AGENT_PIN:+taskset -c "$AGENT_PIN"} "$AGENT" -capture sock_tracepoints \
			-exe weft-bench-hello -exporter "$exp" -status-addr "$status" ${PROFILE:+-pprof} >"$out" 2>"$log" &
		agent=$!
		for _ in $(seq 100); do grep -q "tracing process" "$log" && break; sleep 0.1; done
		grep -q "tracing process" "$log" || { cat "$log"; echo "agent did not attach" >&2; exit 1; }
		sleep 0.5
		i0=$(cpu_ns "$agent") w0=$(date +%s%N)
		sleep "$IDLE"
		c0=$(cpu_ns "$agent") w1=$(date +%s%N)
		idle_ns=$(cpu_between "$i0" "$c0")
		if [ -n "$PROFILE" ]; then
			mkdir -p "$PROFILE"
			pfile="$PROFILE/$exp-$kind-$RANDOM.pprof"
			curl -s -o "$pfile" "http://$status/debug/pprof/profile?seconds=$DUR" &
			prof=$!
		fi
		r=$(load "$kind")
		sleep "$DRAIN"
		c1=$(cpu_ns "$agent") w2=$(date +%s%N)
		load_ns=$(cpu_between "$c0" "$c1")
		# The idle agent's CPU (discovery's /proc rescans, ring polls) over
		# the same wall time, to tell per-span work from background (in us
		# first: ns products overflow 64 bits).
		idle=$((idle_ns / 1000 * ((w2 - w1) / 1000) / ((w1 - w0) / 1000) * 1000))
		[ -n "$PROFILE" ] && wait "$prof"
		curl -s "http://$status/metrics" >"$work/metrics"
		lost=$(metric 'weft_sockio_kernel_total{name="ringbuf_full"}' "$work/metrics")
		dropped=$(awk '/^weft_export_spans_total\{outcome="dropped"/{s += $2} END{print int(s)}' "$work/metrics")
		kill -TERM "$agent"; wait "$agent" || true
		if [ "$exp" = jsonl ]; then
			spans=$(grep -c '"traceId"' "$out" || true)
		else
			spans=$(metric 'weft_export_spans_total{outcome="exported"}' "$work/metrics")
		fi
		echo "$exp $kind $r $load_ns $spans $lost $idle $dropped ${pfile:--}" >>"$rounds"
}
for _ in $(seq "$ROUNDS"); do
	for case in ${BENCH_CASES:-otlp:sat jsonl:sat otlp:fixed jsonl:fixed}; do
		round "${case%:*}" "${case#*:}" "$work/rounds"
	done
done
# Where the CPU goes: a profiled OTLP round of each load, not among the
# measured ones (the profiler's own cost stays out of the figures above).
: >"$work/stages"
if [ "$STAGES" = 1 ]; then
	for kind in sat fixed; do
		round otlp "$kind" "$work/stages" "$work/prof" "$STAGE_SECONDS"
	done
fi
sleep 1 # the collector's file exporter flushes every 100 ms
received=$({ grep -o '"spanId"' "$work/collector.jsonl" 2>/dev/null || true; } | wc -l)

python3 - "$work/rounds" "$received" "$DUR" "$RATE" "$(ls -d /proc/[0-9]* | wc -l)" "$work/stages" "$AGENT" <<'PY'
import os, shlex, subprocess, sys, statistics as st
def summary(**kv): # one line of headline figures for bench-summary.sh
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "a") as f:
            print(" ".join(f"{k}={shlex.quote(str(round(v, 3) if isinstance(v, float) else v))}" for k, v in kv.items()), file=f)
rounds = [l.split() for l in open(sys.argv[1])]
received, dur, rate = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print("rounds (exporter load req/s requests agent_cpu_ms idle_ms spans us/span net_us/span lost):")
def us(r): return int(r[4]) / 1e3 / max(int(r[5]), 1)
def net(r): return (int(r[4]) - int(r[7])) / 1e3 / max(int(r[5]), 1)
for r in rounds:
    print(f"  {r[0]:5} {r[1]:5} {float(r[2]):8.0f} {r[3]:>7} {int(r[4])/1e6:8.1f} {int(r[7])/1e6:7.1f} {r[5]:>7} {us(r):6.2f} {net(r):6.2f} {r[6]}")
print(f"agent CPU per span (median of rounds), fixed = {rate} req/s:")
print(f"  {'exporter':8} {'load':5} {'req/s':>8} {'us/span':>8} {'net':>6} {'spans/req':>9} {'lost':>6}")
for exp in ("otlp", "jsonl"):
    for kind in ("sat", "fixed"):
        rs = [r for r in rounds if r[0] == exp and r[1] == kind]
        if not rs:
            continue
        u, n = st.median(us(r) for r in rs), st.median(net(r) for r in rs)
        spr = sum(int(r[5]) for r in rs) / max(sum(int(r[3]) for r in rs), 1)
        print(f"  {exp:8} {kind:5} {st.median(float(r[2]) for r in rs):8.0f} {u:8.2f} {n:6.2f} {spr:9.3f} {sum(int(r[6]) for r in rs):6d}")
# The profiled rounds: where the CPU went, by stage.
where = {}
for r in (l.split() for l in open(sys.argv[6])):
    if len(r) < 10 or r[9] == "-" or not os.path.getsize(r[9]):
        continue
    out = subprocess.run([os.path.join("scripts", "pprof-stages.py"), sys.argv[7], r[9], r[5],
                          f"where the CPU went, OTLP at {'saturation' if r[1] == 'sat' else rate + ' req/s'} (a profiled round, {us(r):.2f} us/span measured)"],
                         capture_output=True, text=True)
    print(out.stdout + out.stderr, end="")
    for l in out.stdout.splitlines():
        if l.startswith("STAGES "):
            where[r[1]] = l[len("STAGES "):]
for kind, variant in (("sat", "saturation"), ("fixed", f"fixed_{rate}rps")):
    rs = {exp: [r for r in rounds if r[0] == exp and r[1] == kind] for exp in ("otlp", "jsonl")}
    if not rs["otlp"] and not rs["jsonl"]:
        continue
    med = lambda exp, f: st.median(f(r) for r in rs[exp]) if rs[exp] else "-"
    extra = {"otlp_us_per_span_by_stage": where[kind]} if kind in where else {}
    summary(scenario="agent", variant=variant, **extra,
            agent_us_per_span_jsonl=med("jsonl", us), agent_us_per_span_otlp=med("otlp", us),
            ringbuf_lost=sum(int(r[6]) for r in rs["otlp"] + rs["jsonl"]), spans_dropped=sum(int(r[8]) for r in rs["otlp"]),
            net_us_per_span_jsonl=med("jsonl", net), net_us_per_span_otlp=med("otlp", net),
            note="agent CPU: its threads' run time from load start to after the drain; net: less the idle agent's rate; dropped: OTLP rounds")
otlp = sum(int(r[5]) for r in rounds + [l.split() for l in open(sys.argv[6])] if r[0] == "otlp")
print(f"processes on the host: {sys.argv[5]}")
print(f"collector received {received} spans of the {otlp} the agent exported")
PY
