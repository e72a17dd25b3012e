#!/usr/bin/env bash
# The A → B → C chain under load (part of make bench): three copies of the
# unmodified test server; wrk asks A, A calls B, B calls C. Rounds alternate
# untraced and traced (U T U T U); prints end-to-end throughput and latency,
# uprobe hits per request, and BPF cost per program from bpf_stats, sk_msg
# per injected header included.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/build" .)
port() { for _ in $(seq 100); do grep -q LISTEN "$work/$1.out" && break; sleep 0.1; done; awk '/LISTEN/{print $2}' "$work/$1.out"; }
for s in a b c; do
	cp "$work/build" "$work/weft-bench-chain-$s"
	"$work/weft-bench-chain-$s" >"$work/$s.out" 2>&1 &
	pids+=($!)
done
a=$(port a) b=$(port b) c=$(port c)
enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
url="http://127.0.0.1:$a/call?to=$(enc "http://127.0.0.1:$b/call?to=$(enc "http://127.0.0.1:$c/hello")")"

load() {
	wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" >"$work/wrk.$1"
	awk 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; return v*1e6 }
	     /Requests\/sec/{rps=$2} /^ +50%/{p50=us($2)} /^ +99%/{p99=us($2)} /requests in/{n=$1}
	     END{printf "%s %s %s %s\n", rps, p50, p99, n}' "$work/wrk.$1"
}
status=127.0.0.1:$((20000 + RANDOM % 10000))
: >"$work/rounds" ; : >"$work/bpf"
calls=0 injected=0 reqs=0
for round in U T U T U; do
	if [ "$round" = U ]; then echo "U $(load "u$RANDOM")" >>"$work/rounds"; continue; fi
	sysctl -qw kernel.bpf_stats_enabled=1
	log="$work/agent.$RANDOM.log"
	bin/weft-agent -exe 'weft-bench-chain-*' -exporter jsonl -status-addr "$status" >/dev/null 2>"$log" &
	agent=$!
	for _ in $(seq 100); do [ "$(grep -c 'tracing process' "$log")" -ge 3 ] && break; sleep 0.1; done
	r=$(load "t$RANDOM")
	echo "T $r" >>"$work/rounds"
	bpftool prog show -j >>"$work/bpf"; echo >>"$work/bpf"
	m=$(curl -s "http://$status/metrics")
	calls=$((calls + $(echo "$m" | awk '/weft_gohttp_kernel_total\{name="calls"\}/{print int($2)}')))
	injected=$((injected + $(echo "$m" | awk '/weft_inject_total\{name="injected"\}/{print int($2)}')))
	reqs=$((reqs + $(echo "$r" | awk '{print $4}')))
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
done
python3 - "$work/rounds" "$work/bpf" "$reqs" "$calls" "$injected" <<'PY'
import sys, json, statistics as st
rounds = [l.split() for l in open(sys.argv[1])]
reqs, calls, injected = map(int, sys.argv[3:])
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
u, t = st.median(col("U", 1)), st.median(col("T", 1))
print("chain A->B->C rounds (req/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
print(f"chain throughput untraced {u:.0f}, traced {t:.0f} req/s: ratio {t/u:.3f}")
print(f"chain latency p50 {st.median(col('U',2)):.0f} -> {st.median(col('T',2)):.0f} us, p99 {st.median(col('U',3)):.0f} -> {st.median(col('T',3)):.0f} us")
print(f"uprobe hits per request into A: {calls/max(reqs,1):.2f} (one per client call; the chain makes 2)")
print(f"headers injected per request: {injected/max(reqs,1):.2f}")
progs = {}
for chunk in open(sys.argv[2]).read().split("\n\n"):
    chunk = chunk.strip()
    if not chunk: continue
    for p in json.loads(chunk):
        n = p.get("name", "")
        if n in ("on_recv", "on_send", "on_state", "round_trip", "inject_msg", "inject_sockops"):
            a = progs.setdefault(n, [0, 0])
            a[0] += p.get("run_time_ns", 0); a[1] += p.get("run_cnt", 0)
for n, (ns, cnt) in sorted(progs.items()):
    print(f"  {n:15s} {cnt/max(reqs,1):6.2f} runs/request  {ns/max(cnt,1):7.0f} ns/run")
if "inject_msg" in progs and injected:
    print(f"sk_msg time per injected header (all its runs / headers): {progs['inject_msg'][0]/injected:.0f} ns")
PY
