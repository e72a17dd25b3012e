#!/usr/bin/env bash
# Builds (once) kube-apiserver, kubectl, kubelet, kube-controller-manager and
# kube-scheduler from the Go module proxy and prints the directory holding
# them on stdout. Progress goes to stderr. One build for all five: the
# API-server tests and the one-node cluster (scripts/cluster.sh) share it,
# and a second build for a longer list would compile everything again.
#
# Debian has no usable Kubernetes binaries, so a throwaway module requires
# k8s.io/kubernetes and replaces every staging module (listed at v0.0.0 in its
# go.mod) with the published v0.X.Y. Cold: ~16 min and 2.5 GB RSS; the result
# is cached outside the repo keyed by version, so later runs return at once.
#   K8S_BINS="kube-apiserver kubectl kubelet ..." picks other cmd/ binaries.
set -euo pipefail

VERSION=1.37.2
STAGING_VERSION=0.37.2
BINS="${K8S_BINS:-kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler}"

CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"
OUT="$CACHE/k8s-v$VERSION"
log() { echo "k8s-bins.sh: $*" >&2; }

have_all() {
	local b
	for b in $BINS; do [[ -x "$OUT/$b" ]] || return 1; done
}

if have_all; then echo "$OUT"; exit 0; fi

mkdir -p "$CACHE"
# Several test packages may ask at once: one builds, the others wait.
exec 9>"$CACHE/k8s-v$VERSION.lock"
flock 9
if have_all; then echo "$OUT"; exit 0; fi

TMP="$(mktemp -d "$CACHE/.k8s-build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false"
start=$SECONDS

log "fetching k8s.io/kubernetes v$VERSION's go.mod"
kmod="$(cd "$TMP" && go mod download -json "k8s.io/kubernetes@v$VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$kmod" ]] || { log "no go.mod for k8s.io/kubernetes v$VERSION"; exit 1; }

cd "$TMP"
{
	echo "module weft.local/k8sbins"
	echo
	echo "go 1.26.0"
	echo
	echo "require k8s.io/kubernetes v$VERSION"
	echo
	echo "replace ("
	# Staging modules: required at v0.0.0 and replaced by ./staging/... upstream.
	grep -E '^[[:space:]]*k8s\.io/[A-Za-z0-9._/-]+ v0\.0\.0[[:space:]]*(//.*)?$' "$kmod" | awk '{print $1}' | sort -u |
		while read -r m; do echo "	$m => $m v$STAGING_VERSION"; done
	echo ")"
} >go.mod

pkgs=()
for b in $BINS; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done

t=$SECONDS
log "resolving modules"
go get "${pkgs[@]}" >&2
log "modules resolved in $((SECONDS - t)) s"

# Without these, binaries report v0.0.0-master and kubectl refuses the server.
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ld+=" -X $p.gitVersion=v$VERSION -X $p.gitMajor=${VERSION%%.*}"
	ld+=" -X $p.gitMinor=$(echo "$VERSION" | cut -d. -f2) -X $p.gitTreeState=clean"
	ld+=" -X $p.buildDate=$date"
done

t=$SECONDS
log "compiling $BINS (about 10 min with a cold Go build cache)"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags="$ld" -o bin/ "${pkgs[@]}" >&2
log "compiled in $((SECONDS - t)) s"

mkdir -p "$OUT"
for b in $BINS; do mv -f "bin/$b" "$OUT/$b"; done
log "built $BINS into $OUT in $((SECONDS - start)) s total"
echo "$OUT"
