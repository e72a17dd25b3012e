#!/usr/bin/env bash
# TLS (part of make bench): an HTTPS server pinned to CPU 0, wrk over HTTPS
# pinned to CPU 1, rounds U T U T U (untraced, traced), for two servers: a
# Python http.server behind ssl (OpenSSL, libssl.so.3) and a Go net/http
# server (crypto/tls). Prints throughput ratio, latency, the server's CPU
# per request, the tls source's uprobe hits per request and BPF ns per hit
# (bpf_stats). BENCH_SUMMARY=FILE also appends the headline figures there
# (make bench's summary).
set -euo pipefail
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-4}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${agent:-}; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=weft-bench \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/weft-bench-gotls" .)

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

# bench NAME PROGRAM-PREFIX URL-PATH SERVER-ARGV...: one server's rounds.
bench() {
local name=$1 progs=$2 path=$3
shift 3
: >"$work/srv.out"
taskset -c 0 "$@" >"$work/srv.out" 2>&1 &
srv=$!
pids+=($srv)
for _ in $(seq 100); do grep -q LISTEN "$work/srv.out" && break; sleep 0.1; done
port=$(awk '/LISTEN/{print $2}' "$work/srv.out")
url="https://127.0.0.1:$port$path"
: >"$work/rounds"; : >"$work/bpf"
for round in U T U T U; do
	if [ "$round" = U ]; then echo "U $(load "u$RANDOM")" >>"$work/rounds"; continue; fi
	sysctl -qw kernel.bpf_stats_enabled=1
	log="$work/agent.$RANDOM.log"
	bin/weft-agent -pid "$srv" -exporter jsonl -status-addr "$status" >/dev/null 2>"$log" &
	agent=$!
	for _ in $(seq 100); do grep -q 'tracing process' "$log" && break; sleep 0.1; done
	echo "T $(load "t$RANDOM")" >>"$work/rounds"
	bpftool prog show -j >>"$work/bpf"; echo >>"$work/bpf"
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
done
python3 - "$work/rounds" "$work/bpf" "$(getconf CLK_TCK)" "$name" "$progs" <<'PY'
import os, shlex, sys, json, statistics as st
def summary(**kv): # one line of headline figures for bench-summary.sh
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "a") as f:
            print(" ".join(f"{k}={shlex.quote(str(round(v, 3) if isinstance(v, float) else v))}" for k, v in kv.items()), file=f)
rounds = [l.split() for l in open(sys.argv[1])]
hz = int(sys.argv[3])
name, progs = sys.argv[4], sys.argv[5]
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
u, t = st.median(col("U", 1)), st.median(col("T", 1))
cpu = lambda k: sum(col(k, 5)) / hz / max(sum(col(k, 4)), 1) * 1e6
reqs = sum(col("T", 4))
hits, ns = 0, 0
for chunk in open(sys.argv[2]).read().split("\n\n"):
    if not chunk.strip(): continue
    for p in json.loads(chunk):
        if p.get("name", "").startswith(progs):
            hits += p.get("run_cnt", 0); ns += p.get("run_time_ns", 0)
print(f"TLS hello ({name}, wrk over HTTPS) rounds (req/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
print(f"TLS {name}: throughput untraced {u:.0f}, traced {t:.0f} req/s: ratio {t/u:.3f}")
print(f"TLS {name}: latency p50 {st.median(col('U',2)):.0f} -> {st.median(col('T',2)):.0f} us, p99 {st.median(col('U',3)):.0f} -> {st.median(col('T',3)):.0f} us")
print(f"TLS {name}: server CPU per request {cpu('U'):.1f} -> {cpu('T'):.1f} us")
print(f"TLS {name}: uprobe hits per request {hits/max(reqs,1):.2f} ({progs}* programs), BPF {ns/max(hits,1):.0f} ns per hit")
summary(scenario="tls", variant={"ssl_": "python_openssl", "gotls_": "go_crypto_tls"}.get(progs, progs), ratio=t/u,
        p50_added_us=st.median(col('T',2))-st.median(col('U',2)), p99_added_us=st.median(col('T',3))-st.median(col('U',3)),
        uprobe_hits_per_req=hits/max(reqs,1), bpf_runs_per_req=hits/max(reqs,1), bpf_ns_per_req=ns/max(reqs,1),
        server_cpu_added_us_per_req=cpu('T')-cpu('U'),
        note="BPF: the TLS uprobe programs only (ssl_* for OpenSSL, gotls_* for crypto/tls)")
PY
kill "$srv" 2>/dev/null || true
wait "$srv" 2>/dev/null || true
}

bench "Python http.server + ssl (OpenSSL)" ssl_ /work \
	python3 testdata/pyserver/server.py 127.0.0.1 "$work/cert.pem" "$work/key.pem"
bench "Go net/http + crypto/tls" gotls_ /hello \
	"$work/weft-bench-gotls" -cert "$work/cert.pem" -key "$work/key.pem"
