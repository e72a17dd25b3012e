#!/usr/bin/env bash
# Installs the Debian packages weft's build and tests need, once.
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v bpftool >/dev/null || need+=(bpftool)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v node >/dev/null || need+=(nodejs) # an event-loop TLS program (memory BIOs): test/e2e TestTLSMemoryBIO
command -v java >/dev/null || need+=(default-jdk-headless) # a thread-per-request JVM server: test/e2e TestJavaThreadPerRequest
[ -f /usr/lib/x86_64-linux-gnu/libssl.a ] || need+=(libssl-dev) # OpenSSL linked into an executable: test/e2e TestOpenSSLLinkedIn
command -v ip >/dev/null || need+=(iproute2) # network namespaces: internal/inject, the multicluster lab
command -v ethtool >/dev/null || need+=(ethtool) # TSO/GSO off on a veth: test/e2e TestPythonInChain
command -v etcd >/dev/null || need+=(etcd-server) # internal/testutil/kubeapi
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86) # the kernel matrix: scripts/vm
# the guests' initramfs: a static busybox (the dynamic one needs a libc there)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
