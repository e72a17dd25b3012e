#!/usr/bin/env bash
# The A → B → C chain under load (part of make bench): three copies of the
# unmodified test server; wrk asks A, A calls B, B calls C. Rounds alternate
# untraced and traced with each propagation channel (U H O B U H O B U:
# headers, the TCP option, both); prints for each end-to-end throughput and
# latency, uprobe hits, headers and options per request, sockops runs and
# ns per request, and BPF cost per program from bpf_stats. BENCH_SUMMARY=FILE
# also appends the headline figures there (make bench's summary), with the
# ring-buffer events lost.
set -euo pipefail
[ -z "${BENCH_SUMMARY:-}" ] || export BENCH_SUMMARY=$(realpath -m "$BENCH_SUMMARY")
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${agent:-}; do kill "$p" 2>/dev/null || true; done; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$work"; }
trap cleanup EXIT

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/build" .)
port() { for _ in $(seq 100); do grep -q LISTEN "$work/$1.out" && break; sleep 0.1; done; awk '/LISTEN/{print $2}' "$work/$1.out"; }
enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
for s in a b c; do cp "$work/build" "$work/weft-bench-chain-$s"; done
# Fresh servers each round: a keep-alive pool from an earlier round would
# hold connections opened before the agent, which carry no TCP option.
servers() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	pids=()
	for s in a b c; do
		"$work/weft-bench-chain-$s" >"$work/$s.out" 2>&1 &
		pids+=($!)
	done
	a=$(port a) b=$(port b) c=$(port c)
	url="http://127.0.0.1:$a/call?to=$(enc "http://127.0.0.1:$b/call?to=$(enc "http://127.0.0.1:$c/hello")")"
}

load() {
	wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" >"$work/wrk.$1"
	awk 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; return v*1e6 }
	     /Requests\/sec/{rps=$2} /^ +50%/{p50=us($2)} /^ +99%/{p99=us($2)} /requests in/{n=$1}
	     END{printf "%s %s %s %s\n", rps, p50, p99, n}' "$work/wrk.$1"
}
status=127.0.0.1:$((20000 + RANDOM % 10000))
: >"$work/rounds" ; : >"$work/bpf"
# Traced rounds by propagation channel: H headers only, O the TCP option
# only, B both (the default).
declare -A prop=([H]=headers [O]=tcp [B]=headers,tcp)
for round in U H O B U H O B U; do
	servers
	if [ "$round" = U ]; then echo "U $(load "u$RANDOM") 0 0" >>"$work/rounds"; continue; fi
	sysctl -qw kernel.bpf_stats_enabled=1
	log="$work/agent.$RANDOM.log"
	bin/weft-agent -exe 'weft-bench-chain-*' -exporter jsonl -propagation "${prop[$round]}" -status-addr "$status" >/dev/null 2>"$log" &
	agent=$!
	for _ in $(seq 100); do [ "$(grep -c 'tracing process' "$log")" -ge 3 ] && break; sleep 0.1; done
	r=$(load "t$RANDOM")
	m=$(curl -s "http://$status/metrics")
	calls=$(echo "$m" | awk '/weft_gohttp_kernel_total\{name="calls"\}/{print int($2)}')
	injected=$(echo "$m" | awk '/weft_inject_total\{name="injected"\}/{s+=$2} END{print int(s)}')
	options=$(echo "$m" | awk '/weft_tcpopt_total\{name="written"\}/{s+=$2} END{print int(s)}')
	lost=$(echo "$m" | awk '/ringbuf_full/{s+=$2} END{print int(s)}')
	echo "$round $r ${calls:-0} ${injected:-0} ${options:-0} $lost" >>"$work/rounds"
	echo "#$round" >>"$work/bpf"; bpftool prog show -j >>"$work/bpf"; echo >>"$work/bpf"
	kill -TERM "$agent"; wait "$agent" || true
	sysctl -qw kernel.bpf_stats_enabled=0
done
python3 - "$work/rounds" "$work/bpf" <<'PY'
import os, shlex, sys, json, statistics as st
def summary(**kv): # one line of headline figures for bench-summary.sh
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "a") as f:
            print(" ".join(f"{k}={shlex.quote(str(round(v, 3) if isinstance(v, float) else v))}" for k, v in kv.items()), file=f)
rounds = [l.split() for l in open(sys.argv[1])]
names = {"U": "untraced", "H": "headers", "O": "tcp option", "B": "headers,tcp"}
def col(kind, i): return [float(r[i]) for r in rounds if r[0] == kind]
u = st.median(col("U", 1))
print("chain A->B->C rounds (req/s):", " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rounds))
print("  (U untraced; traced with -propagation H headers, O tcp, B headers,tcp)")
progs = {}
for chunk in open(sys.argv[2]).read().split("#")[1:]:
    mode, _, body = chunk.partition("\n")
    for p in json.loads(body.strip() or "[]"):
        a = progs.setdefault(mode, {}).setdefault(p.get("name", ""), [0, 0])
        a[0] += p.get("run_time_ns", 0); a[1] += p.get("run_cnt", 0)
print(f"{'':14s} {'req/s':>8s} {'ratio':>6s} {'p50 us':>7s} {'p99 us':>7s} {'uprobe/req':>10s} {'hdr/req':>8s} {'opt/req':>8s} {'sockops/req':>11s} {'ns/run':>7s} {'BPF us/req':>10s}")
print(f"{names['U']:14s} {u:8.0f} {1:6.3f} {st.median(col('U',2)):7.0f} {st.median(col('U',3)):7.0f}")
for m in "HOB":
    reqs = sum(col(m, 4))
    t = st.median(col(m, 1))
    per = lambda i: sum(col(m, i)) / max(reqs, 1)
    p = progs.get(m, {})
    so = [0, 0]
    for n in ("inject_sockops", "tcpopt_sockops"):
        if n in p: so[0] += p[n][0]; so[1] += p[n][1]
    total = sum(v[0] for k, v in p.items() if k.startswith(("on_", "round_trip", "inject_", "tcpopt_", "enter_", "exit_")))
    print(f"{names[m]:14s} {t:8.0f} {t/u:6.3f} {st.median(col(m,2)):7.0f} {st.median(col(m,3)):7.0f} {per(5):10.2f} {per(6):8.2f} {per(7):8.2f} "
          f"{so[1]/max(reqs,1):11.2f} {so[0]/max(so[1],1):7.0f} {total/max(reqs,1)/1000:10.2f}")
    runs = sum(v[1] for k, v in p.items() if k.startswith(("on_", "round_trip", "inject_", "tcpopt_", "enter_", "exit_")))
    summary(scenario="chain", variant=names[m].replace(" ", "_"), ratio=t/u,
            p50_added_us=st.median(col(m,2))-st.median(col('U',2)), p99_added_us=st.median(col(m,3))-st.median(col('U',3)),
            uprobe_hits_per_req=per(5), bpf_runs_per_req=runs/max(reqs,1), bpf_ns_per_req=total/max(reqs,1),
            ringbuf_lost=int(sum(col(m, 8))), hdr_per_req=per(6), opt_per_req=per(7), sockops_per_req=so[1]/max(reqs,1),
            note="a request is one of wrk's to A (A and B each make a client call); uprobe hits: gohttp round_trip; BPF: every on_*, round_trip, inject_*, tcpopt_*, enter_*, exit_* program loaded")
print("per program (runs/request, ns/run), by mode:")
for m in "HOB":
    reqs = sum(col(m, 4))
    p = progs.get(m, {})
    row = [f"{n} {c/max(reqs,1):.2f}x{ns/max(c,1):.0f}" for n, (ns, c) in sorted(p.items()) if c and n.startswith(("on_", "round_trip", "inject_", "tcpopt_"))]
    print(f"  {names[m]:12s} " + ", ".join(row))
print("(uprobe hits: gohttp round_trip, one per Go client call, A's and B's; hdr: traceparent headers the injector added; opt: TCP options written)")
PY
