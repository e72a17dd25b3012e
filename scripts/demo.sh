#!/usr/bin/env bash
# make demo: two unmodified Go services (frontend calls inventory), the agent,
# a real OpenTelemetry Collector; sends traffic and prints each trace the
# collector received as a tree.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

collector=$(scripts/otelcol.sh)
otlp=127.0.0.1:$((30000 + RANDOM % 10000))
WEFT_OTLP_ENDPOINT=$otlp WEFT_SPANS_FILE="$work/spans.json" "$collector" --config scripts/otelcol-file.yaml >"$work/collector.log" 2>&1 &
pids+=($!)

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/build" .)
port() { for _ in $(seq 100); do grep -q LISTEN "$work/$1.out" && break; sleep 0.1; done; awk '/LISTEN/{print $2}' "$work/$1.out"; }
for svc in frontend inventory; do
	cp "$work/build" "$work/$svc"
	"$work/$svc" >"$work/$svc.out" 2>&1 &
	pids+=($!)
done
front=$(port frontend) inv=$(port inventory)

echo "== weft-agent tracing the unmodified services 'frontend' (:$front) and 'inventory' (:$inv)"
OTEL_EXPORTER_OTLP_ENDPOINT=http://$otlp OTEL_EXPORTER_OTLP_INSECURE=true \
	bin/weft-agent -exe frontend -exe inventory -status-addr 127.0.0.1:0 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c 'tracing process' "$work/agent.log")" -ge 2 ] && break; sleep 0.1; done
grep -E "tracing process|uprobe attached|inject" "$work/agent.log" | sed 's/^/   /'

echo "== sending traffic"
enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
base=http://127.0.0.1:$front
curl -s -o /dev/null "$base/call?to=$(enc "http://127.0.0.1:$inv/work?sleep=20ms")&to=$(enc "http://127.0.0.1:$inv/work?status=404")"
curl -s -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
	"$base/call?mode=goroutine&to=$(enc "http://127.0.0.1:$inv/work?sleep=5ms")&to=$(enc "http://127.0.0.1:$inv/work?status=503")"
curl -s -o /dev/null -d 'order=42' "$base/echo"
sleep 2.5

echo "== traces received by the OpenTelemetry Collector"
python3 - "$work/spans.json" <<'PY'
import json, sys, collections
spans = []
for line in open(sys.argv[1]):
    for rs in json.loads(line).get("resourceSpans", []):
        res = {a["key"]: list(a["value"].values())[0] for a in rs["resource"].get("attributes", [])}
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                s["attrs"] = {x["key"]: list(x["value"].values())[0] for x in s.get("attributes", [])}
                s["service"] = res.get("service.name")
                spans.append(s)
ids = {s["spanId"] for s in spans}
kids = collections.defaultdict(list)
for s in spans:
    kids[s.get("parentSpanId") if s.get("parentSpanId") in ids else None].append(s)
def show(s, depth):
    a = s["attrs"]
    what = a.get("url.full") or (a.get("url.path", "") + ("?" + a["url.query"] if "url.query" in a else ""))
    ms = (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6
    kind = {2: "SERVER", 3: "CLIENT"}.get(s.get("kind"), "?")
    err = " ERROR" if s.get("status", {}).get("code") == 2 else ""
    print(f"  {'   ' * depth}{s['service']:9} {kind:6} {s['name']} {what} -> {a.get('http.response.status_code')}{err}  {ms:.2f} ms")
    for k in sorted(kids[s["spanId"]], key=lambda x: int(x["startTimeUnixNano"])):
        show(k, depth + 1)
for root in sorted(kids[None], key=lambda x: int(x["startTimeUnixNano"])):
    parent = root.get("parentSpanId")
    print(f"trace {root['traceId']}" + (f" (continues the caller's span {parent})" if parent else ""))
    show(root, 0)
PY
