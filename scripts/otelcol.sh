#!/usr/bin/env bash
# Builds (once) an OpenTelemetry Collector and prints the binary's path on
# stdout. Progress goes to stderr.
#
#   otelcol.sh        the collector tests and the demo use
#   otelcol.sh hub    that plus what deploy/collector's configs need:
#                     groupbytrace, tail_sampling, file_storage, the
#                     loadbalancing exporter and weft's own span_dedup
#                     processor (deploy/collector/spandedupprocessor)
#
# The binary is cached outside the repo, keyed by version; a stamp of the
# component list (and of span_dedup's sources) forces a rebuild when either
# changes, so CI rebuilds once per change and never otherwise.
set -euo pipefail

VERSION=0.165.0          # core collector and contrib components
CONFMAP_VERSION=1.71.0   # confmap providers are versioned separately
# v0.162+ of these two need pkg/ottl/contexts/xprofile, whose zips the
# module proxy refuses (403); v0.161.0 compiles against core v0.165.0.
TAILSAMPLING_VERSION=0.161.0
LOADBALANCING_VERSION=0.161.0
# The only version of this (a dependency of the loadbalancing exporter's
# AWS Cloud Map resolver) the module proxy serves.
SERVICEDISCOVERY_VERSION=1.40.2

CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE" # we cd during the build
core=go.opentelemetry.io/collector
contrib=github.com/open-telemetry/opentelemetry-collector-contrib

# span_dedup lives in this repository as its own Go module; the generated
# collector module replaces it with that directory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dedup=github.com/weft-dev/weft/deploy/collector/spandedupprocessor
DEDUP_DIR="$ROOT/deploy/collector/spandedupprocessor"

# What the variant adds: manifest lines, go.mod requirements and replaces
# (each with its newline, so the plain collector's stamp is what it always
# was), and what else the stamp covers.
NAME=otelcol DESCRIPTION="weft test collector" MORE_PROCESSORS="" MORE_EXPORTERS="" EXTENSIONS=""
MORE_REQUIRES="" REPLACES="" SOURCES=""
case "${1:-}" in
"") ;;
hub)
	NAME=otelcol-hub DESCRIPTION="weft spoke/hub collector"
	MORE_PROCESSORS="  - gomod: $contrib/processor/groupbytraceprocessor v$VERSION
  - gomod: $contrib/processor/tailsamplingprocessor v$TAILSAMPLING_VERSION
  - gomod: $dedup v0.0.0
"
	MORE_EXPORTERS="  - gomod: $contrib/exporter/loadbalancingexporter v$LOADBALANCING_VERSION
"
	EXTENSIONS="extensions:
  - gomod: $contrib/extension/storage/filestorage v$VERSION
"
	MORE_REQUIRES="	$contrib/processor/groupbytraceprocessor v$VERSION
	$contrib/processor/tailsamplingprocessor v$TAILSAMPLING_VERSION
	$contrib/exporter/loadbalancingexporter v$LOADBALANCING_VERSION
	$contrib/extension/storage/filestorage v$VERSION
	$dedup v0.0.0
"
	# @DEDUP_DIR@ becomes the checkout's path when go.mod is written, so
	# the stamp does not depend on where the repository is.
	REPLACES="
replace github.com/aws/aws-sdk-go-v2/service/servicediscovery => github.com/aws/aws-sdk-go-v2/service/servicediscovery v$SERVICEDISCOVERY_VERSION

replace $dedup => @DEDUP_DIR@
"
	# span_dedup's sources (not its tests): a change to them rebuilds.
	# "static" marks binaries built with CGO_ENABLED=0 (below), which a
	# FROM scratch image can run (deploy/collector/Containerfile).
	SOURCES="static
$(cd "$DEDUP_DIR" && find . -maxdepth 1 \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) -print0 |
		sort -z | xargs -0 sha256sum)"
	;;
*) echo "otelcol.sh: unknown variant $1 (want nothing or hub)" >&2; exit 2 ;;
esac

OUT_DIR="$CACHE/$NAME-$VERSION"
BIN="$OUT_DIR/otelcol"
BUILDER_DIR="$CACHE/builder-$VERSION"
BUILDER="$BUILDER_DIR/builder"

log() { echo "otelcol.sh $NAME: $*" >&2; }

MANIFEST="dist:
  name: otelcol
  description: $DESCRIPTION
  output_path: ./dist
  version: $VERSION
receivers:
  - gomod: $core/receiver/otlpreceiver v$VERSION
processors:
  - gomod: $core/processor/batchprocessor v$VERSION
  - gomod: $core/processor/memorylimiterprocessor v$VERSION
  - gomod: $contrib/processor/resourceprocessor v$VERSION
${MORE_PROCESSORS}exporters:
  - gomod: $core/exporter/debugexporter v$VERSION
  - gomod: $core/exporter/otlpexporter v$VERSION
  - gomod: $contrib/exporter/fileexporter v$VERSION
${MORE_EXPORTERS}${EXTENSIONS}providers:
  - gomod: $core/confmap/provider/envprovider v$CONFMAP_VERSION
  - gomod: $core/confmap/provider/fileprovider v$CONFMAP_VERSION
  - gomod: $core/confmap/provider/httpprovider v$CONFMAP_VERSION
  - gomod: $core/confmap/provider/httpsprovider v$CONFMAP_VERSION
  - gomod: $core/confmap/provider/yamlprovider v$CONFMAP_VERSION
"

# We write go.mod ourselves instead of letting the builder run "go mod tidy":
# tidy also resolves test-only deps of fileexporter, and the module proxy
# refuses one of those zips (403). Pinning service/otelcol keeps "go get"
# from picking newer versions of modules the generated code imports directly.
GOMOD="module weft.local/$NAME

go 1.26.0

require (
	$core/receiver/otlpreceiver v$VERSION
	$core/processor/batchprocessor v$VERSION
	$core/processor/memorylimiterprocessor v$VERSION
	$core/exporter/debugexporter v$VERSION
	$core/exporter/otlpexporter v$VERSION
	$contrib/processor/resourceprocessor v$VERSION
	$contrib/exporter/fileexporter v$VERSION
${MORE_REQUIRES}	$core/confmap/provider/envprovider v$CONFMAP_VERSION
	$core/confmap/provider/fileprovider v$CONFMAP_VERSION
	$core/confmap/provider/httpprovider v$CONFMAP_VERSION
	$core/confmap/provider/httpsprovider v$CONFMAP_VERSION
	$core/confmap/provider/yamlprovider v$CONFMAP_VERSION
	$core/service v$VERSION
	$core/otelcol v$VERSION
)
${REPLACES}"

if [[ -z "$SOURCES" ]]; then
	STAMP="$(printf '%s\n%s' "$MANIFEST" "$GOMOD" | sha256sum | cut -d' ' -f1)"
else
	STAMP="$(printf '%s\n%s\n%s' "$MANIFEST" "$GOMOD" "$SOURCES" | sha256sum | cut -d' ' -f1)"
fi

is_cached() { [[ -x "$BIN" && "$(cat "$OUT_DIR/stamp" 2>/dev/null)" == "$STAMP" ]]; }

if is_cached; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$CACHE"
# Tests in several packages may call this at once; one build is enough and
# two in parallel would need ~1.4 GB of RAM. The loser of the race waits,
# then finds the binary cached.
exec 9>"$CACHE/$NAME-$VERSION.lock"
flock 9
if is_cached; then
	echo "$BIN"
	exit 0
fi

# The temp dir lives inside the cache so the final mv is a same-filesystem
# rename, i.e. atomic: a reader sees either no binary or a complete one.
TMP="$(mktemp -d "$CACHE/.$NAME-build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

export GOWORK=off
start=$SECONDS

# Both variants share the builder: one installs it, the other waits.
exec 8>"$CACHE/builder-$VERSION.lock"
flock 8
if [[ ! -x "$BUILDER" ]]; then
	log "installing builder v$VERSION into $BUILDER_DIR"
	GOBIN="$TMP/gobin" go install "$core/cmd/builder@v$VERSION" >&2
	mkdir -p "$BUILDER_DIR"
	mv -f "$TMP/gobin/builder" "$BUILDER"
	log "builder installed in $((SECONDS - start)) s"
fi
flock -u 8

# -mod=mod: the generated module has no go.sum yet; let go record it.
export GOFLAGS="${GOFLAGS:-} -mod=mod"
cd "$TMP"
printf '%s' "$MANIFEST" >manifest.yaml
log "generating collector sources"
"$BUILDER" --config manifest.yaml --skip-get-modules --skip-compilation >&2

cd dist
printf '%s' "${GOMOD//@DEDUP_DIR@/$DEDUP_DIR}" >go.mod
t=$SECONDS
log "resolving modules (go get ./...)"
go get ./... >&2
log "modules resolved in $((SECONDS - t)) s"

t=$SECONDS
log "compiling (several minutes when the Go build cache is cold)"
# Static, so a FROM scratch image runs it; name lookups (the loadbalancing
# exporter's DNS resolver) then use Go's own resolver, which reads
# /etc/hosts and /etc/resolv.conf itself.
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o otelcol . >&2
log "compiled in $((SECONDS - t)) s"

mkdir -p "$OUT_DIR"
mv -f otelcol "$BIN"
echo "$STAMP" >"$OUT_DIR/stamp"
log "built $BIN ($(du -h "$BIN" | cut -f1)) in $((SECONDS - start)) s total"
echo "$BIN"
