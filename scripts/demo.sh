#!/usr/bin/env bash
# make demo: the seed's picture on this machine. Three clusters (network
# namespaces us-east-1, us-west-2, eu-west-1), each with its own weft agent
# and spoke collector, a hub collector that tail-samples, and eight
# unmodified Go services a request crosses over HTTP and gRPC
# (cmd/weft-demo, test/multicluster/lab). Prints one trace as the hub
# stored it. Root: namespaces and BPF.
set -euo pipefail
cd "$(dirname "$0")/.."
collector=$(scripts/otelcol.sh hub)
go build -o bin/weft-demo ./cmd/weft-demo
exec bin/weft-demo -agent bin/weft-agent -collector "$collector" "$@"
