#!/usr/bin/env bash
# Fetches (once) one of Debian's own kernels for the kernel matrix and
# builds the initramfs that boots it under qemu; prints the cache folder.
#
#   kernel.sh 5.10    Debian 11 (bullseye)
#   kernel.sh 6.1     Debian 12 (bookworm)
#   kernel.sh 6.12    Debian 13 (trixie)
#
# The kernel is the one linux-image-amd64 points to in that suite and its
# security updates (<suite>-security): what an up-to-date Debian node of
# that release boots. It is resolved through an apt source list of our own
# (the machine's sources are never touched), fetched with apt-get download
# and unpacked with dpkg-deb -x (never installed). The folder,
# $WEFT_CACHE/kernel-<Debian package version>, holds:
#   vmlinuz          the kernel
#   initramfs.img    busybox-static, the virtio/9p modules, scripts/vm/init
#   release          uname -r of the kernel
#   root/lib/modules/<release>/   all its modules and a modules.dep, which
#                    the guest loads on demand (module autoload)
# The version a series resolved to is remembered in kernel-<series>.version:
# later calls do not touch the network (WEFT_KERNEL_REFRESH=1 looks again).
# The initramfs is rebuilt, in seconds, whenever scripts/vm/init changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"
MIRROR="${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${WEFT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# What the initramfs loads to reach the host's files; their dependencies
# come along. Modules built into a kernel are skipped.
WANT_MODULES=(virtio_pci 9pnet_virtio 9p)

die() { echo "kernel.sh: $*" >&2; exit 1; }
log() { echo "kernel.sh $series: $*" >&2; }

series="${1:-}"
case "$series" in
5.10) suite=bullseye ;;
6.1) suite=bookworm ;;
6.12) suite=trixie ;;
*) die "usage: kernel.sh <5.10|6.1|6.12> (got '${series}')" ;;
esac
INIT="$here/init"
[[ -f "$INIT" ]] || die "$INIT missing"
# The initramfs's inputs: the init script, this script (module list, packing).
init_stamp() { cat "$INIT" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1; }

POINTER="$CACHE/kernel-$series.version"
ready() { # dir: complete and with a current initramfs
	[[ -f "$1/done" && -f "$1/initramfs.img" && "$(cat "$1/initramfs.stamp" 2>/dev/null)" == "$(init_stamp)" ]]
}

# Fast path: no lock, no network.
if [[ "${WEFT_KERNEL_REFRESH:-0}" != 1 && -f "$POINTER" ]]; then
	dir="$CACHE/kernel-$(cat "$POINTER")"
	if ready "$dir"; then
		echo "$dir"
		exit 0
	fi
fi

for tool in apt-get apt-cache dpkg-deb busybox xz; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh"
done
[[ -f "$KEYRING" ]] || die "$KEYRING missing: apt-get install debian-archive-keyring"
# A dynamic busybox would need a libc inside the initramfs.
applets="$(busybox --list)"
if ! grep -qx cpio <<<"$applets" || ldd "$(command -v busybox)" >/dev/null 2>&1; then
	die "busybox is not the static one: apt-get install busybox-static (scripts/deps.sh)"
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/kernel-$series.lock"
if ! flock -n 9; then
	log "waiting for another kernel.sh $series (lock $CACHE/kernel-$series.lock)"
	flock 9
fi
start=$SECONDS

# Our own apt state for this suite: sources, lists, package cache.
APT="$CACHE/kernel-apt/$suite"
aptopts=(
	-o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=-
	-o Dir::Etc::preferences="$APT/none" -o Dir::Etc::preferencesparts="$APT/none.d"
	-o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache"
	-o Dir::State::status=/dev/null -o APT::Sandbox::User=root
)
resolve() { # prints "<package> <version>" of the suite's linux-image-amd64
	mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/none.d"
	{
		echo "deb [signed-by=$KEYRING] $MIRROR $suite main"
		echo "deb [signed-by=$KEYRING] $SECURITY_MIRROR $suite-security main"
	} >"$APT/sources.list"
	log "reading the package lists of $suite and $suite-security"
	apt-get -q "${aptopts[@]}" update >&2 || die "apt-get update of $suite failed"
	local dep
	dep="$(apt-cache "${aptopts[@]}" depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
	[[ -n "$dep" ]] || die "$suite: linux-image-amd64 depends on no linux-image-<version> package"
	local ver
	ver="$(apt-cache "${aptopts[@]}" show "$dep" | awk '/^Version:/ { print $2; exit }')"
	[[ -n "$ver" ]] || die "$suite: no version for $dep"
	echo "$dep $ver"
}

if [[ "${WEFT_KERNEL_REFRESH:-0}" != 1 && -f "$POINTER" && -f "$CACHE/kernel-$(cat "$POINTER")/done" ]]; then
	version="$(cat "$POINTER")"
	pkg="$(cat "$CACHE/kernel-$version/package")"
else
	read -r pkg version < <(resolve)
	[[ -n "${version:-}" ]] || die "could not resolve $suite's kernel"
fi
dir="$CACHE/kernel-$version"

if [[ ! -f "$dir/done" ]]; then
	rm -rf "$dir"
	tmp="$(mktemp -d "$CACHE/.kernel-$version.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	log "downloading $pkg $version"
	(cd "$tmp" && apt-get -q "${aptopts[@]}" download "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
	deb=("$tmp"/*.deb)
	[[ -f "${deb[0]}" ]] || die "apt-get download left no .deb in $tmp"
	dpkg-deb -x "${deb[0]}" "$tmp/x"
	rm -f "${deb[@]}"
	# Debian 13 puts modules under /usr/lib (merged /usr); use one layout.
	mods=
	for d in "$tmp"/x/lib/modules/* "$tmp"/x/usr/lib/modules/*; do
		[[ -d "$d" ]] && mods="$d" && break
	done
	[[ -n "$mods" ]] || die "$pkg has no lib/modules/<release>"
	release="$(basename "$mods")"
	mkdir -p "$tmp/root/lib/modules"
	mv "$mods" "$tmp/root/lib/modules/$release"
	mv "$tmp/x/boot/vmlinuz-$release" "$tmp/vmlinuz" || die "$pkg has no boot/vmlinuz-$release"
	rm -rf "$tmp/x"
	# Debian 13 compresses its modules; busybox's modprobe in the guest
	# hands them to a kernel that wants them plain ("Invalid ELF header").
	find "$tmp/root/lib/modules/$release" \( -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0 >"$tmp/compressed"
	if [[ -s "$tmp/compressed" ]]; then
		log "decompressing $(tr -cd '\0' <"$tmp/compressed" | wc -c) modules"
		for ext in xz zst gz; do
			tool=(xz -d)
			[[ $ext == zst ]] && tool=(zstd -q -d --rm)
			[[ $ext == gz ]] && tool=(gzip -d)
			{ tr '\0' '\n' <"$tmp/compressed" | grep "\.ko\.$ext\$" || true; } | tr '\n' '\0' | xargs -0 -r -n 200 -P 2 "${tool[@]}"
		done
	fi
	rm -f "$tmp/compressed"
	# The package leaves modules.dep to the installer's depmod.
	log "depmod $release"
	busybox depmod -b "$tmp/root" "$release" || die "depmod of $release failed"
	echo "$release" >"$tmp/release"
	echo "$pkg" >"$tmp/package"
	echo "$version" >"$tmp/version"
	chmod 755 "$tmp"
	touch "$tmp/done"
	mv "$tmp" "$dir"
	trap - EXIT
fi
echo "$version" >"$POINTER.tmp" && mv "$POINTER.tmp" "$POINTER"
# Older versions of this series (after WEFT_KERNEL_REFRESH) go.
for old in "$CACHE/kernel-$series".*; do
	[[ -d "$old" && "$old" != "$dir" ]] || continue
	log "removing $old (now $version)"
	rm -rf "$old"
done

if ! ready "$dir"; then
	release="$(cat "$dir/release")"
	moddir="$dir/root/lib/modules/$release"
	tmp="$(mktemp -d "$CACHE/.initramfs-$version.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	# Load order: each module after what modules.dep says it needs.
	declare -A seen=()
	order=()
	path_of() { # module name -> path relative to moddir, "" when built in
		local name="${1//-/_}" line
		line="$(awk -v n="$name" -F: '{ p = $1; sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); if (p == n) { print $1; exit } }' "$moddir/modules.dep")"
		echo "$line"
	}
	visit() {
		local rel="$1" d
		[[ -n "${seen[$rel]:-}" ]] && return
		seen[$rel]=1
		for d in $(awk -v m="$rel" -F: '$1 == m { print $2; exit }' "$moddir/modules.dep"); do
			visit "$d"
		done
		order+=("$rel")
	}
	for m in "${WANT_MODULES[@]}"; do
		rel="$(path_of "$m")"
		if [[ -z "$rel" ]]; then
			grep -q "/${m//_/[_-]}\.ko" "$moddir/modules.builtin" || die "$release has module $m neither as a module nor built in"
			continue
		fi
		visit "$rel"
	done
	mkdir -p "$tmp/r/bin" "$tmp/r/sbin" "$tmp/r/usr/bin" "$tmp/r/usr/sbin" "$tmp/r/modules" "$tmp/r/proc" "$tmp/r/sys" "$tmp/r/dev" "$tmp/r/host" "$tmp/r/lib/modules"
	cp "$(command -v busybox)" "$tmp/r/bin/busybox"
	cp "$INIT" "$tmp/r/init"
	chmod 755 "$tmp/r/init"
	: >"$tmp/r/modules/order"
	for rel in "${order[@]}"; do
		name="$(basename "$rel")"
		name="${name%%.ko*}"
		case "$rel" in
		*.ko) cp "$moddir/$rel" "$tmp/r/modules/$name.ko" ;;
		*.ko.xz) xz -dc "$moddir/$rel" >"$tmp/r/modules/$name.ko" ;;
		*.ko.zst) zstd -qdc "$moddir/$rel" >"$tmp/r/modules/$name.ko" ;;
		*.ko.gz) gzip -dc "$moddir/$rel" >"$tmp/r/modules/$name.ko" ;;
		*) die "unknown module format: $rel" ;;
		esac
		echo "$name" >>"$tmp/r/modules/order"
	done
	echo "$release" >"$tmp/r/release"
	(cd "$tmp/r" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$tmp/initramfs.img"
	mv "$tmp/initramfs.img" "$dir/initramfs.img"
	init_stamp >"$dir/initramfs.stamp"
	rm -rf "$tmp"
	trap - EXIT
	log "initramfs $(du -h "$dir/initramfs.img" | cut -f1), modules: ${order[*]:-none (built in)}"
fi
[[ $((SECONDS - start)) -gt 0 ]] && log "ready in $((SECONDS - start)) s: $dir"
echo "$dir"
