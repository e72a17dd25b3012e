# weft: `make demo` traces unmodified services end to end; `make test` runs
# every test as CI does. Both install what they need on a fresh Debian machine.

GO          ?= go
CACHE       ?= $(HOME)/.cache/weft
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
AGENT       := bin/weft-agent
export WEFT_CACHE := $(CACHE)

.PHONY: all deps generate check-generated build test unit e2e test-kernels test-kernels-old bench soak demo offsets collector clean

all: build

# Debian packages: clang and libbpf headers for generate, bpftool for
# vmlinux.h, wrk for bench, python3 for the non-Go test server.
deps:
	@scripts/deps.sh

# bpf2go compiles bpf/*.bpf.c and writes Go mirrors of their types; both
# outputs are committed so `go build` needs no clang.
generate: deps
	$(GO) generate ./internal/...

# CI regenerates and fails if the committed outputs differ.
check-generated: generate
	@changed=$$(git status --porcelain -- '*_bpfel.go' '*_bpfel.o'); \
	if [ -n "$$changed" ]; then echo "$$changed"; \
		echo "generated BPF files differ from the committed ones: run make generate and commit"; exit 1; fi

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(AGENT) ./cmd/agent

collector:
	@scripts/otelcol.sh >/dev/null

unit:
	$(GO) test -short ./...

# The whole suite: unit, fuzz seeds, and as root the tests that load BPF into
# the kernel and trace real servers into a real collector.
test: deps check-generated build collector
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/cluster ./test/multicluster
	$(GO) test -count=1 -timeout 45m ./...
	cd deploy/collector/spandedupprocessor && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -race -count=1 ./...
	$(MAKE) e2e
	$(MAKE) test-kernels-old

# Whole-system tests, one at a time (they own fixed names and ports):
# a real one-node Kubernetes cluster (scripts/cluster.sh: etcd, API server,
# controller manager, scheduler, containerd, kubelet, CNI) with the
# DaemonSet applied by kubectl apply -k; and the three-cluster lab (network
# namespaces, an agent and a spoke collector each, a tail-sampling hub).
e2e: deps collector
	$(GO) test -tags e2e -p 1 -count=1 -timeout 40m -v ./test/cluster ./test/multicluster

# The kernel matrix (docs/kernels.md): the e2e tests of core spans,
# propagation and gRPC inside qemu guests booting Debian's own kernels,
# fetched once into $(CACHE)/kernel-<version>. make test runs the kernels
# older than the sock_*_length tracepoints (Debian 11's 5.10, Debian 12's
# 6.1); test-kernels adds Debian 13's 6.12.
test-kernels: deps collector
	GO=$(GO) scripts/vm/e2e.sh 5.10 6.1 6.12

test-kernels-old: deps collector
	GO=$(GO) scripts/vm/e2e.sh 5.10 6.1

offsets:
	$(GO) run ./cmd/offsetgen -out internal/goinspect/offsets.json

# Each script prints its detailed figures and appends its headline ones to
# BENCH_SUMMARY; bench-summary.sh ends with one table per scenario (also
# after a script failed, for those that ran).
bench: deps build collector
	@summary=$$(mktemp); trap 'rm -f "$$summary"' EXIT; export BENCH_SUMMARY=$$summary; \
	scripts/bench.sh && BENCH_PATH='/work?size=65536' BENCH_SCENARIO=hello-64k scripts/bench.sh && \
	scripts/bench-agent.sh && scripts/bench-chain.sh && \
	scripts/bench-grpc.sh && scripts/bench-tls.sh && scripts/bench-scale.sh; rc=$$?; \
	[ ! -s "$$summary" ] || scripts/bench-summary.sh "$$summary"; exit $$rc

# Issue 22's soak: 1,000 traced servers, 4 of them under 5,000 req/s for
# 10 minutes, the agent's RSS sampled every 30 s (the curve is printed).
soak: deps build
	SOAK_SECONDS=$${SOAK_SECONDS:-600} SOAK_EVERY=$${SOAK_EVERY:-30} scripts/bench-scale.sh

demo: deps build
	@scripts/demo.sh

clean:
	rm -rf bin
