#!/usr/bin/env bash
# Agent memory over a long run (make soak; issue 22's "RSS flat over a
# 10-minute soak at 5k req/s"): the hello test server pinned to CPU 0,
# traced by the agent exporting OTLP to a real OpenTelemetry Collector
# (scripts/otelcol.sh), loaded by testdata/loadgen at SOAK_RATE req/s
# (default 5,000) for SOAK_SECONDS (default 600), in pieces of SOAK_PIECE
# seconds so its keep-alive connections are replaced (conntrack and the
# BPF maps see connections come and go, not eight forever).
#
# Every SOAK_SAMPLE seconds it records the agent's VmRSS, its Go heap
# (from /metrics when exposed) and the spans exported so far, then prints
# the curve and compares the last third's peak with the first third's:
# flat means a difference within SOAK_TOLERANCE_MIB (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-600}
RATE=${SOAK_RATE:-5000}
PIECE=${SOAK_PIECE:-15}
SAMPLE=${SOAK_SAMPLE:-30}
TOL=${SOAK_TOLERANCE_MIB:-4}
AGENT=${BENCH_AGENT:-bin/weft-agent}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

otelcol=$(scripts/otelcol.sh)
(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-soak-hello" .)
(cd testdata/loadgen && CGO_ENABLED=0 go build -o "$work/loadgen" .)
taskset -c 0 "$work/weft-soak-hello" >"$work/srv.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
url="http://127.0.0.1:$(awk '/LISTEN/{print $2}' "$work/srv.out")/hello"

otlp=127.0.0.1:$((30000 + RANDOM % 10000))
WEFT_OTLP_ENDPOINT=$otlp WEFT_SPANS_FILE=/dev/null taskset -c 1 "$otelcol" --config scripts/otelcol-file.yaml >"$work/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/${otlp%:*}/${otlp#*:}") 2>/dev/null && break; sleep 0.1; done

status=127.0.0.1:$((20000 + RANDOM % 10000))
WEFT_OTLP_ENDPOINTS="http://$otlp" "$AGENT" -capture sock_tracepoints -exe weft-soak-hello -exporter otlp \
	-status-addr "$status" >/dev/null 2>"$work/agent.log" &
agent=$!
pids+=($agent)
for _ in $(seq 100); do grep -q "tracing process" "$work/agent.log" && break; sleep 0.1; done
grep -q "tracing process" "$work/agent.log" || { cat "$work/agent.log"; echo "agent did not attach" >&2; exit 1; }

metric() { curl -s "http://$status/metrics" | awk -v k="$1" '$1 == k {s += $2} END {print int(s)}'; }
sample() { # elapsed_s rss_kib spans lost
	echo "$1 $(awk '/VmRSS/{print $2}' "/proc/$agent/status") $(metric 'weft_export_spans_total{outcome="exported"}') \
		$(($(metric 'weft_sockio_kernel_total{name="ringbuf_full"}') + $(metric 'weft_export_spans_total{outcome="dropped"}')))"
}

(
	end=$((SECONDS + SECS))
	while [ "$SECONDS" -lt "$end" ]; do
		d=$((end - SECONDS < PIECE ? end - SECONDS : PIECE))
		taskset -c 1 "$work/loadgen" -url "$url" -rate "$RATE" -c 8 -d "${d}s" >>"$work/load.out"
	done
) &
load=$!
pids+=($load)
start=$SECONDS
sample 0 >"$work/curve"
while kill -0 "$load" 2>/dev/null; do
	sleep "$SAMPLE"
	sample $((SECONDS - start)) >>"$work/curve"
done
sleep 3 # the last batch's export
sample $((SECONDS - start)) >>"$work/curve"

python3 - "$work/curve" "$work/load.out" "$RATE" "$TOL" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
loads = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(sys.argv[2]) if l.startswith("LOAD")]
calls = sum(int(d["calls"]) for d in loads)
errors = sum(int(d["errors"]) for d in loads)
print(f"soak: {rows[-1][0]} s at {sys.argv[3]} req/s target, {calls} requests ({errors} errors), {len(loads)} load pieces")
print(f"  {'t_s':>5} {'rss_MiB':>8} {'spans':>9} {'lost':>6}")
for t, rss, spans, lost in rows:
    print(f"  {t:5d} {rss/1024:8.1f} {spans:9d} {lost:6d}")
body = rows[1:]  # after the idle start
third = max(1, len(body) // 3)
first, last = max(r[1] for r in body[:third]), max(r[1] for r in body[-third:])
diff = (last - first) / 1024
verdict = "flat" if diff <= float(sys.argv[4]) else "GROWING"
print(f"RSS peak first third {first/1024:.1f} MiB, last third {last/1024:.1f} MiB: {diff:+.1f} MiB ({verdict}, tolerance {sys.argv[4]} MiB)")
print(f"spans exported {rows[-1][2]} of {calls} requests; lost {rows[-1][3]}")
PY
