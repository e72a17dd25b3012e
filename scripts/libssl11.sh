#!/usr/bin/env bash
# Prints a directory holding OpenSSL 1.1's libssl.so.1.1 and
# libcrypto.so.1.1, for the e2e test of OpenSSL 1.1 programs (issue 19):
# Debian 12 ships only OpenSSL 3, and many images still run 1.1 (Debian
# 11, Ubuntu 20.04, old language runtimes). The libssl1.1 package of
# Debian 11 (bullseye, its security suite first) is fetched with
# apt-get download through an apt state of our own (the machine's sources
# are never touched) and unpacked into $HOME/.cache/weft/libssl1.1-<version>;
# later runs read the cached version's pointer and use no network.
set -euo pipefail
CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
MIRROR="${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${WEFT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
die() { echo "libssl11.sh: $*" >&2; exit 1; }

POINTER="$CACHE/libssl1.1.version"
lib() { echo "$CACHE/libssl1.1-$1/usr/lib/x86_64-linux-gnu"; }
if [[ -f "$POINTER" && -f "$CACHE/libssl1.1-$(cat "$POINTER")/done" ]]; then
	lib "$(cat "$POINTER")"
	exit 0
fi
for tool in apt-get apt-cache dpkg-deb flock; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh"
done
[[ -f "$KEYRING" ]] || die "$KEYRING missing: apt-get install debian-archive-keyring"
mkdir -p "$CACHE"
exec 9>"$CACHE/libssl1.1.lock"
flock 9
if [[ -f "$POINTER" && -f "$CACHE/libssl1.1-$(cat "$POINTER")/done" ]]; then
	lib "$(cat "$POINTER")" # another run fetched it while we waited
	exit 0
fi

APT="$CACHE/debian-apt/bullseye"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/none.d"
{
	echo "deb [signed-by=$KEYRING] $MIRROR bullseye main"
	echo "deb [signed-by=$KEYRING] $SECURITY_MIRROR bullseye-security main"
} >"$APT/sources.list"
aptopts=(
	-o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=-
	-o Dir::Etc::preferences="$APT/none" -o Dir::Etc::preferencesparts="$APT/none.d"
	-o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache"
	-o Dir::State::status=/dev/null -o APT::Sandbox::User=root
)
echo "libssl11.sh: reading bullseye's package lists" >&2
apt-get -q "${aptopts[@]}" update >&2 || die "apt-get update of bullseye failed"
version="$(apt-cache "${aptopts[@]}" policy libssl1.1 | awk '/Candidate:/ { print $2 }')"
[[ -n "$version" && "$version" != "(none)" ]] || die "bullseye has no libssl1.1"
dir="$CACHE/libssl1.1-$version"
tmp="$(mktemp -d "$CACHE/.libssl1.1.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -q "${aptopts[@]}" download "libssl1.1=$version" >&2) || die "apt-get download libssl1.1=$version failed"
deb=("$tmp"/*.deb)
[[ -f "${deb[0]}" ]] || die "apt-get download left no .deb in $tmp"
dpkg-deb -x "${deb[0]}" "$tmp/x"
[[ -f "$tmp/x/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ]] || die "libssl1.1 $version has no usr/lib/x86_64-linux-gnu/libssl.so.1.1"
rm -rf "$dir"
mv "$tmp/x" "$dir"
touch "$dir/done"
echo "$version" >"$POINTER"
lib "$version"
