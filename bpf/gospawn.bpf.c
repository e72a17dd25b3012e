// SPDX-License-Identifier: GPL-2.0
/* gospawn: which request a goroutine was started for, at any depth.
 * Without it a goroutine's calls are linked through its own span or its
 * parent's (runtime.g.parentGoid): one generation, and only while the
 * parent still serves the same request. A handler that starts a goroutine
 * that starts another (errgroup inside a helper, a worker pool per
 * request) loses the link; a goroutine that calls out after its request's
 * response, while the server goroutine reads the next request on the same
 * keep-alive connection, is taken for the next request's.
 *
 * One uprobe, at the RET sites of runtime.newproc1 (every `go` statement
 * goes through it, on the system stack): its result, the new g, is in RAX
 * and carries both its goid and parentGoid (Go 1.21+). When the parent
 * serves a request (its own span, or one it was started for), the new
 * goroutine gets a copy of that span_ctx in gospawn. A copy: the link
 * holds after the server goroutine moves on.
 *
 * The cost is one trap per goroutine started in a traced process (net/http
 * starts one per request for its background read): why, by default, user
 * space attaches it to an executable only once a call of one of its
 * processes found no link while the process serves (go_roots). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sockio.h"

char LICENSE[] SEC("license") = "GPL";

/* sockio's maps, handed over by the loader. */
DECLARE_PROCS_MAP;
DECLARE_GOCTX_MAP;
DECLARE_GOSPAWN_MAP;
DECLARE_GO_ROOTS_MAP;

#include "goctx.h"

enum gospawn_stat {
	SP_STARTED = 0, /* goroutines started in traced processes */
	SP_LINKED = 1,  /* ... by a goroutine serving a request: linked to it */
	SP_MAX = 4,
};

/* For bpf2go: the counters' names in Go follow these indexes. */
const enum gospawn_stat *unused_gospawn_stat __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gospawn_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&gospawn_stats, &idx);
	if (v)
		*v += 1;
}

/* Whether a traced process's goroutine starts are followed (user space
 * sets it per tgid; an executable's uprobe traps in all its processes). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} spawn_procs SEC(".maps");

/* RET sites of func newproc1(fn *funcval, callergp *g, callerpc uintptr,
 * ...) *g: the new goroutine in RAX. */
SEC("uprobe")
int go_started(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&spawn_procs, &tgid))
		return 0;
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &tgid);
	if (!pc || !pc->goid_offset || !pc->parent_goid_offset)
		return 0;
	count(SP_STARTED);
	__u64 newg = ctx->ax;
	struct go_key parent = {.tgid = tgid, .goid = goid_at(newg, pc->parent_goid_offset)};
	if (!parent.goid)
		return 0;
	struct span_ctx *sc = bpf_map_lookup_elem(&goctx, &parent);
	if (!sc)
		sc = bpf_map_lookup_elem(&gospawn, &parent);
	if (!sc)
		return 0;
	struct go_key child = {.tgid = tgid, .goid = goid_at(newg, pc->goid_offset)};
	if (!child.goid)
		return 0;
	struct span_ctx copy = *sc;
	bpf_map_update_elem(&gospawn, &child, &copy, BPF_ANY);
	count(SP_LINKED);
	return 0;
}
