#!/usr/bin/env bash
# Scale on a node (part of make bench): SCALE_N (default 1000) hello test
# servers, then the agent started with -exe selecting all of them. Measures
# the first scan (agent start → every server traced, from its "tracing
# process" log lines), the agent's RSS after the scan and its peak (VmHWM),
# then a soak: SCALE_LOADED servers under wrk at SCALE_RPS requests/s in
# all for SOAK_SECONDS (default 60), RSS sampled every SOAK_EVERY seconds.
#
# The servers run SCALE_EXES executables, round-robin: one build, SCALE_COPIES-1
# byte-identical copies of it (other inodes: content-keyed caching shows), and
# SCALE_BUILDS-1 distinct builds of the same source (-ldflags -X: other build
# IDs and bytes, the same DWARF). Most processes share a file, as on a node
# running many replicas of a few images.
#
# BENCH_SUMMARY=FILE also appends the headline figures there (make bench's
# summary).
set -euo pipefail
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
N=${SCALE_N:-1000}
COPIES=${SCALE_COPIES:-4}
BUILDS=${SCALE_BUILDS:-4}
SOAK=${SOAK_SECONDS:-60}
EVERY=${SOAK_EVERY:-5}
RPS=${SCALE_RPS:-5000}
LOADED=${SCALE_LOADED:-4}
work=$(mktemp -d)
pids=()
agent=""
cleanup() {
	[ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

# The executables, each named weft-scale-hello in its own folder.
exes=()
for i in $(seq "$BUILDS"); do
	mkdir -p "$work/b$i"
	(cd testdata/httpserver && CGO_ENABLED=0 go build -ldflags "-X main.weftScaleBuild=$i" -o "$work/b$i/weft-scale-hello" .)
	exes+=("$work/b$i/weft-scale-hello")
done
for i in $(seq 2 "$COPIES"); do
	mkdir -p "$work/c$i"
	cp "$work/b1/weft-scale-hello" "$work/c$i/weft-scale-hello"
	exes+=("$work/c$i/weft-scale-hello")
done

# The servers: small Go programs (one P each), all on both CPUs.
t0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
	GOMAXPROCS=1 "${exes[$((i % ${#exes[@]}))]}" >"$work/srv.$i" 2>&1 &
	pids+=($!)
done
# All listening: one look at every output a second, for up to 5 minutes.
for _ in $(seq 300); do
	up=$(cat "$work"/srv.* | grep -c LISTEN || true)
	[ "$up" -ge "$N" ] && break
	sleep 1
done
[ "$up" -ge "$N" ] || { echo "only $up of $N servers listening" >&2; exit 1; }
echo "started $N servers from ${#exes[@]} executables ($BUILDS builds, $COPIES copies of one) in $(echo "$(date +%s.%N) - $t0" | bc) s"

status=127.0.0.1:$((20000 + RANDOM % 10000))
log="$work/agent.log"
ta=$(date +%s%N)
${AGENT:-bin/weft-agent} -exe weft-scale-hello -exporter jsonl -status-addr "$status" -status-local-addr "" \
	${SCALE_AGENT_ARGS:-} >"$work/spans.jsonl" 2>"$log" &
agent=$!
traced=0
for _ in $(seq 1200); do # 60 s
	traced=$(grep -c "tracing process" "$log" || true)
	[ "$traced" -ge "$N" ] && break
	kill -0 "$agent" 2>/dev/null || { tail "$log"; echo "agent exited" >&2; exit 1; }
	sleep 0.05
done
tb=$(date +%s%N)
[ "$traced" -ge "$N" ] || { tail "$log"; echo "only $traced of $N traced after 60 s" >&2; exit 1; }
scan_ms=$(((tb - ta) / 1000000))
skipped=$(grep -c "not traced\|tracking process failed" "$log" || true)
sleep 2 # settle
rss() { awk '/VmRSS/{print $2}' "/proc/$agent/status"; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$agent/status"; }
rss_scan=$(rss)
hwm_scan=$(hwm)
# What the RSS is: anonymous (Go heap, stacks), the agent's own executable
# (file pages, shared and clean), and BPF maps it has mmapped (the
# ring buffers' pages the reader touched).
anon_kb=$(awk '/RssAnon/{print $2}' "/proc/$agent/status")
file_kb=$(awk '/RssFile/{print $2}' "/proc/$agent/status")
bpfmap_kb=$(awk '/^[0-9a-f]+-/{m = /bpf-map/} /^Rss:/{if (m) n += $2} END{print n+0}' "/proc/$agent/smaps")
uprobes=$(curl -s "http://$status/metrics" | awk '/^weft_uprobes_attached/{n+=$2} END{print n+0}')

# Soak: wrk with a 10 ms delay before each request paces each connection
# to ~90 req/s (a request takes ~1 ms under load), so LOADED servers ×
# conns take about RPS requests/s in all; the rate reached is printed.
delay_ms=10
conns=$(awk -v r="$RPS" -v l="$LOADED" 'BEGIN{c = r * 11 / 1000 / l; printf "%d", (c == int(c)) ? c : int(c) + 1}')
cat >"$work/pace.lua" <<EOF
function delay() return $delay_ms end
EOF
: >"$work/curve"
wrks=()
if [ "$SOAK" -gt 0 ]; then
	for i in $(seq 0 $((LOADED - 1))); do
		port=$(awk '/LISTEN/{print $2}' "$work/srv.$i")
		wrk -t1 -c"$conns" -d"${SOAK}s" -s "$work/pace.lua" "http://127.0.0.1:$port/hello" >"$work/wrk.$i" 2>&1 &
		wrks+=($!)
	done
	ts=$(date +%s)
	while :; do
		el=$(($(date +%s) - ts))
		echo "$el $(rss)" >>"$work/curve"
		[ "$el" -ge "$SOAK" ] && break
		sleep "$EVERY"
	done
	for w in "${wrks[@]}"; do wait "$w" || true; done
	sleep 1
	echo "$(($(date +%s) - ts)) $(rss)" >>"$work/curve"
fi
spans=$(grep -c '"traceId"' "$work/spans.jsonl" || true)
lost=$(curl -s "http://$status/metrics" | awk '/ringbuf_full/{n+=$2} END{print n+0}')

echo "agent: $N processes, first scan (agent start → all traced) $scan_ms ms; skipped $skipped; uprobes attached $uprobes"
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
echo "agent RSS after scan $(mib "$rss_scan") MiB (anon $(mib "$anon_kb"), BPF map mmaps $(mib "$bpfmap_kb"), other file pages: its executable's, $(mib $((file_kb - bpfmap_kb)))), peak (VmHWM) $(mib "$hwm_scan") MiB"
grep "initial scan done" "$log" | sed 's/^/agent log: /' || true
if [ "$SOAK" -gt 0 ]; then
	reqs=$(awk '/requests in/{n+=$1} END{print n+0}' "$work"/wrk.*)
	echo "soak: $SOAK s, $LOADED servers, $reqs requests ($((reqs / SOAK)) req/s), spans $spans, ring-buffer events lost $lost"
	echo "soak RSS curve (s MiB):" $(awk '{printf "%s:%.1f ", $1, $2/1024}' "$work/curve")
	awk 'NR==1{a=$2} {l=$2; if ($2>m) m=$2} END{printf "soak RSS start %.1f MiB, end %.1f MiB, max %.1f MiB, drift %+.1f MiB\n", a/1024, l/1024, m/1024, (l-a)/1024}' "$work/curve"
	echo "agent peak RSS (VmHWM) after soak $(($(hwm) / 1024)) MiB"
fi
if [ -n "${BENCH_SUMMARY:-}" ]; then
	line="scenario=scale variant=${N}_processes rss_mib=$(mib "$rss_scan") ringbuf_lost=$lost"
	line+=" first_scan_ms=$scan_ms rss_peak_scan_mib=$(mib "$hwm_scan") skipped=$skipped uprobes=$uprobes"
	if [ "$SOAK" -gt 0 ]; then
		line+=" soak_req_s=$((reqs / SOAK)) $(awk 'NR==1{a=$2} {l=$2; if ($2>m) m=$2} END{printf "soak_rss_max_mib=%.1f soak_rss_drift_mib=%+.1f", m/1024, (l-a)/1024}' "$work/curve")"
	fi
	echo "$line note='agent RSS after the first scan; lost: during the soak ($SOAK s); first_scan_ms: agent start to every process traced'" >>"$BENCH_SUMMARY"
fi
