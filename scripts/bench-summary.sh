#!/usr/bin/env bash
# The end of make bench: one table per scenario from the headline figures
# the bench scripts appended to the file BENCH_SUMMARY names (or $1). Each
# line there is key=value words (shell quoting for values with spaces):
#   scenario=hello variant=sock_tracepoints ratio=0.74 p50_added_us=12 ...
# One row per line; a column a scenario does not measure shows "-". Keys
# outside the columns are printed under the table by variant, then note="...".
set -euo pipefail
file=${1:-${BENCH_SUMMARY:-}}
[ -n "$file" ] || { echo "usage: $0 FILE (or BENCH_SUMMARY=FILE)" >&2; exit 2; }
[ -s "$file" ] || { echo "bench summary: no figures in $file" >&2; exit 1; }
python3 - "$file" <<'PY'
import shlex, sys
# key, header (two lines: name, unit), format
COLS = [
    ("ratio", "thrpt", "ratio", "{:.3f}"),
    ("p50_added_us", "p50 +", "us", "{:+.0f}"),
    ("p99_added_us", "p99 +", "us", "{:+.0f}"),
    ("uprobe_hits_per_req", "uprobe", "hits/req", "{:.2f}"),
    ("bpf_runs_per_req", "BPF", "runs/req", "{:.2f}"),
    ("bpf_ns_per_req", "BPF", "ns/req", "{:.0f}"),
    ("agent_us_per_span_jsonl", "agent CPU", "us/span jsonl", "{:.2f}"),
    ("agent_us_per_span_otlp", "agent CPU", "us/span otlp", "{:.2f}"),
    ("rss_mib", "agent RSS", "MiB", "{:.1f}"),
    ("ringbuf_lost", "lost", "ring buf", "{:.0f}"),
    ("spans_dropped", "dropped", "spans", "{:.0f}"),
]
TITLES = {
    "hello": "HTTP/1 hello server under wrk, by capture source (scripts/bench.sh)",
    "hello-64k": "the same server answering 64 KiB Content-Length bodies (BENCH_PATH=/work?size=65536 scripts/bench.sh)",
    "agent": "agent CPU per span, OTLP vs jsonl, by load (scripts/bench-agent.sh)",
    "chain": "A->B->C chain, end to end, by propagation channel (scripts/bench-chain.sh)",
    "grpc": "gRPC unary calls on one HTTP/2 connection (scripts/bench-grpc.sh)",
    "tls": "TLS servers under wrk over HTTPS (scripts/bench-tls.sh)",
    "scale": "many traced processes (scripts/bench-scale.sh)",
}
scenarios = {}  # scenario -> [(variant, {key: value})], in file order
for line in open(sys.argv[1]):
    try:
        words = shlex.split(line)
    except ValueError:
        continue
    kv = dict(w.split("=", 1) for w in words if "=" in w)
    if "scenario" not in kv:
        continue
    sc = kv.pop("scenario")
    scenarios.setdefault(sc, []).append((kv.pop("variant", ""), kv))

def cell(fmt, v):
    if v is None or v == "":
        return "-"
    try:
        return fmt.format(float(v))
    except ValueError:
        return v

rows = {sc: [[var] + [cell(f, kv.get(k)) for k, _, _, f in COLS] for var, kv in vs] for sc, vs in scenarios.items()}
# The same widths in every table, so they read as one.
heads = [("", "variant")] + [(h, u) for _, h, u, _ in COLS]
w = [max(len(h), len(u)) for h, u in heads]
for rs in rows.values():
    for r in rs:
        w = [max(a, len(b)) for a, b in zip(w, r)]
def fmt(r):
    return "  ".join([r[0].ljust(w[0])] + [c.rjust(n) for c, n in zip(r[1:], w[1:])]).rstrip()
known = {k for k, _, _, _ in COLS} | {"note"}
print()
print("=== make bench summary: one table per scenario, medians of rounds; \"-\": not measured there ===")
for sc, vs in scenarios.items():
    print()
    print(f"[{sc}] {TITLES.get(sc, '')}".rstrip())
    print(fmt([h for h, _ in heads]))
    print(fmt([u for _, u in heads]))
    notes = []
    for r in rows[sc]:
        print(fmt(r))
    for var, kv in vs:
        extra = " ".join(f"{k}={v}" for k, v in kv.items() if k not in known)
        if extra:
            print(f"  {var}: {extra}")
        if kv.get("note") and kv["note"] not in notes:
            notes.append(kv["note"])
    for n in notes:
        print(f"  note: {n}")
print()
print("columns: thrpt traced/untraced throughput; p50+/p99+ latency added by tracing (us);")
print("uprobe hits and BPF program runs and run time per request (bpf_stats); agent CPU")
print("(utime+stime; the agent scenario: its threads' run time) per span exported, by")
print("exporter; agent RSS (MiB); events lost because the ring buffer was full; spans the")
print("OTLP exporter dropped (queue/spool full, rejected).")
PY
