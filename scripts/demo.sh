#!/usr/bin/env bash
# make demo: an unmodified Go service, the agent, a real collector; sends
# traffic and prints the spans the collector received, readably.
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

(cd testdata/httpserver && CGO_ENABLED=0 go build -o "$work/shop" .)
"$work/shop" >"$work/shop.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q LISTEN "$work/shop.out" && break; sleep 0.1; done
port=$(awk '/LISTEN/{print $2}' "$work/shop.out")

echo "== weft-agent tracing the unmodified service 'shop' (pid ${pids[1]}, port $port)"
OTEL_EXPORTER_OTLP_ENDPOINT=http://$otlp OTEL_EXPORTER_OTLP_INSECURE=true \
	bin/weft-agent -exe shop -status-addr 127.0.0.1:0 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "tracing process" "$work/agent.log" && break; sleep 0.1; done
grep "tracing process" "$work/agent.log" | sed 's/^/   /'

echo "== sending traffic"
base=http://127.0.0.1:$port
curl -s -o /dev/null "$base/hello"
curl -s -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$base/work?sleep=25ms"
curl -s -o /dev/null "$base/work?status=404"
curl -s -o /dev/null "$base/work?status=503&sleep=5ms"
curl -s -o /dev/null -d 'order=42' "$base/echo"
curl -s -o /dev/null "$base/work?size=100000&chunked=1"
sleep 2.5

echo "== spans received by the OpenTelemetry Collector"
python3 - "$work/spans.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    for rs in json.loads(line).get("resourceSpans", []):
        res = {a["key"]: list(a["value"].values())[0] for a in rs["resource"].get("attributes", [])}
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                a = {x["key"]: list(x["value"].values())[0] for x in s.get("attributes", [])}
                ms = (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6
                parent = s.get("parentSpanId") or "(root)"
                err = " ERROR" if s.get("status", {}).get("code") == 2 else ""
                print(f"  {res.get('service.name')}: {s['name']:6} {a.get('url.path','')}{'?'+a['url.query'] if 'url.query' in a else ''}"
                      f" -> {a.get('http.response.status_code')}{err}  {ms:7.2f} ms  trace {s['traceId']} parent {parent}"
                      f"  goroutine {a.get('weft.goroutine.id','-')}")
PY
