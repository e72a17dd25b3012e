#!/usr/bin/env bash
# The kernel matrix: runs the e2e tests that matter per kernel (core
# spans, propagation, gRPC) inside qemu guests booting Debian's own
# kernels (scripts/vm/run.sh), one leg after the other.
#
#   scripts/vm/e2e.sh 5.10 6.1         what make test runs
#   scripts/vm/e2e.sh 5.10 6.1 6.12    make test-kernels
#
# Nothing is compiled in a guest (software emulation is many times slower):
# the host builds the test binary, the agent and every server the tests
# start into bin/vm-e2e, and the tests copy them from there (WEFT_E2E_BIN,
# test/e2e/harness_test.go). Each leg's output goes to stdout and to
# bin/vm-e2e/<kernel>.log. Exit status: 0 when every leg passed.
#
# Environment: WEFT_KERNEL_TESTS, the -test.run pattern (default below);
# WEFT_KERNEL_TIMEOUT, each leg's go test -timeout (default 30m); and
# run.sh's (WEFT_VM_KVM; WEFT_VM_TIMEOUT, here 2100 s unless set; ...).
set -euo pipefail

# Core spans (every Go build and Python), an A→B→C chain (B stripped Go
# 1.24), injection over a connection opened before the agent (the iterator),
# gRPC and HTTP↔gRPC propagation; the TCP option (Go and Python clients,
# across a veth, on older connections); OpenSSL plaintext and the option
# across TLS. TestOneTracePerRequest and
# TestGRPCServerSpans are left out: their timings (500 concurrent requests
# under the test server's 10 s client timeout; a 100 ms deadline that also
# covers the client's dial) do not hold under software emulation, on any
# kernel (docs/kernels.md).
TESTS="${WEFT_KERNEL_TESTS:-^(TestServerSpans|TestInjectionOff|TestPreexistingKeepAlive|TestMixedChain|TestTCPOptionPropagation|TestTCPOptionOlderConnections|TestPythonInChain|TestOpenSSLSpansAndPropagation|TestGoTLSSpansAndPropagation|TestConnectFailures|TestGoroutineTree|TestB3Incoming|TestGRPCB3Incoming|TestGoHTTP2ServerLinks|TestShortLivedClients|TestGRPCOptionOnly|TestGRPCReadTogether|TestGRPCOverTLS|TestOpenSSLLinkedIn|TestGRPCContextChain|TestGRPCPreexisting|TestTLSMemoryBIO|TestNodeHTTP2Context|TestGoH2CClientHeader)\$}"
TIMEOUT="${WEFT_KERNEL_TIMEOUT:-30m}"
# A guest that hangs past the tests' own timeout is killed.
export WEFT_VM_TIMEOUT="${WEFT_VM_TIMEOUT:-2100}"
GO="${GO:-go}"

die() { echo "e2e.sh: $*" >&2; exit 2; }
[[ $# -ge 1 ]] || die "usage: e2e.sh <5.10|6.1|6.12>..."
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="$root/bin/vm-e2e"

# Every kernel first, so a leg never waits on a download midway.
for k in "$@"; do
	scripts/vm/kernel.sh "$k" >/dev/null || die "scripts/vm/kernel.sh $k failed"
done
scripts/otelcol.sh >/dev/null || die "scripts/otelcol.sh failed"

start=$SECONDS
# No rm: go build leaves an up-to-date output alone, so a warm rebuild is quick.
mkdir -p "$bin"
echo "e2e.sh: building the test binary, the agent and the test servers into $bin" >&2
"$GO" test -c -o "$bin/e2e.test" ./test/e2e
# As agentBinary builds it.
"$GO" build -o "$bin/weft-agent" ./cmd/agent

# fixture <module dir> <toolchain or ""> [go build flags...]: as goBuild
# builds it, named as prebuiltName names it.
fixture() {
	local dir="$1" toolchain="$2"
	shift 2
	local name
	name="$(printf '%s' "$dir" "_${toolchain:-default}" "${@/#/_}" | tr -c 'A-Za-z0-9.=-' '_')"
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS= GOTOOLCHAIN="${toolchain:-${GOTOOLCHAIN:-}}" "$GO" build -o "$bin/$name" "$@" .) ||
		die "building $dir with toolchain '${toolchain}' and flags '$*' failed"
}
# What the tests above build (TestServerSpans' variants, the chains' servers, TestProxy's proxies).
fixture testdata/httpserver ""
for v in go1.22.12 go1.24.13 go1.26.8; do
	fixture testdata/httpserver "$v"
	fixture testdata/httpserver "$v" "-ldflags=-s -w"
done
fixture testdata/httpserver go1.26.8 -buildmode=pie
fixture testdata/grpcserver ""
fixture testdata/grpcserver go1.22.12 -modfile=go.v1.66.mod # TestGRPCOverTLS: grpc v1.66
fixture testdata/grpcserver go1.26.8 # TestGRPCOverTLS: the newest grpc
fixture testdata/proxy ""
fixture testdata/shortclient ""
echo "e2e.sh: built in $((SECONDS - start)) s" >&2

failed=()
summary=()
for k in "$@"; do
	t=$SECONDS
	set +e
	# In the package's folder, as go test runs a test binary.
	# One vCPU unless WEFT_VM_SMP says otherwise: with two, 5.10 and 6.1
	# guests soft-locked (3 of 4 runs on 5.10, 1 of 2 on 6.1), both CPUs
	# spinning at syscall_trace_enter's static branch while the syscall
	# tracepoints were patched in or out: cross-CPU code patching under
	# TCG. Real hosts patch these all the time (perf, bpftrace).
	smp="${WEFT_VM_SMP:-1}"
	(cd test/e2e && WEFT_E2E_BIN="$bin" WEFT_VM_SMP="$smp" "$root/scripts/vm/run.sh" "$k" -- \
		"$bin/e2e.test" -test.run "$TESTS" -test.count=1 -test.v -test.timeout "$TIMEOUT") 2>&1 |
		tee "$bin/$k.log"
	rc="${PIPESTATUS[0]}"
	set -e
	if [[ $rc == 0 ]] && ! grep -q '^--- PASS' "$bin/$k.log"; then
		echo "e2e.sh: no test matched '$TESTS'" >&2
		rc=1
	fi
	# A kernel warning on the console (a WARN, a BUG, a stack) fails the
	# leg: the agent must never upset the kernel, and a verifier WARN_ONCE
	# (5.7-6.0 warn when a tracing program gets a map that allocates at
	# run time) passes every test otherwise.
	if grep -Eq '^\[ *[0-9.]+\] (WARNING:|BUG:|Call Trace:)' "$bin/$k.log"; then
		grep -E -B2 -A12 '^\[ *[0-9.]+\] (WARNING:|BUG:)' "$bin/$k.log" | head -40 >&2
		echo "e2e.sh: kernel $k logged a warning (above)" >&2
		rc=1
	fi
	summary+=("kernel $k: $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - t)) s")
	[[ $rc == 0 ]] || failed+=("$k")
done
printf 'e2e.sh: %s\n' "${summary[@]}" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "e2e.sh: the e2e tests failed on kernel ${failed[*]}: see bin/vm-e2e/<kernel>.log" >&2
	exit 1
fi
