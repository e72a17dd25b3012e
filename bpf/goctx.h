/* Reading a Go process from its uprobes: user memory, goroutine ids, and
 * the server span a goroutine serves. Needs sockio.h and the goctx, gospawn
 * and go_roots maps (DECLARE_GOCTX_MAP, DECLARE_GOSPAWN_MAP,
 * DECLARE_GO_ROOTS_MAP) declared before it; with GOCTX_GRPC defined, the
 * grpc_procs map too. */
#ifndef WEFT_GOCTX_H
#define WEFT_GOCTX_H

static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

static __always_inline __u32 read_u32(__u64 addr)
{
	__u32 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* A runtime.g field (goid, parentGoid) of goroutine g; 0 if unknown. */
static __always_inline __u64 goid_at(__u64 g, __u64 off)
{
	return g && off ? read_u64(g + off) : 0;
}

/* The server span goroutine g works for: its own; else the request it was
 * started for, any number of generations below the server goroutine (the
 * gospawn map, filled only when goroutine starts are probed); else its
 * parent's current one (a goroutine the handler started, known without
 * that probe: one generation, and only while the handler serves). */
static __always_inline struct span_ctx *goroutine_span(__u32 tgid, __u64 g, const struct proc_cfg *pc)
{
	struct go_key k = {.tgid = tgid, .goid = goid_at(g, pc->goid_offset)};
	if (!k.goid)
		return 0;
	struct span_ctx *s = bpf_map_lookup_elem(&goctx, &k);
	if (!s)
		s = bpf_map_lookup_elem(&gospawn, &k);
	if (!s && pc->parent_goid_offset) {
		k.goid = goid_at(g, pc->parent_goid_offset);
		s = k.goid ? bpf_map_lookup_elem(&goctx, &k) : 0;
	}
	return s;
}

/* A call found no server span: in a process that serves requests, the
 * sign (go_roots) that its goroutine starts are worth following. */
static __always_inline void note_unlinked(__u32 tgid, const struct proc_cfg *pc)
{
	if (!(pc->flags & PROC_SERVED))
		return;
#ifdef GOCTX_GRPC
	/* A gRPC server whose handlers' goroutines are not hooked: first
	 * the hook that names them (gogrpc's user space reads this). */
	struct grpc_cfg *gc = bpf_map_lookup_elem(&grpc_procs, &tgid);
	if (gc && gc->ctx_walk && !gc->handlers) {
		__sync_fetch_and_add(&gc->unlinked, 1);
		return;
	}
#endif
	__u64 *n = bpf_map_lookup_elem(&go_roots, &tgid);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&go_roots, &tgid, &one, BPF_NOEXIST);
	}
}

/* goroutine_span; a miss in a process that serves requests is counted in
 * go_roots. */
static __always_inline struct span_ctx *serving_span(__u32 tgid, __u64 g, const struct proc_cfg *pc)
{
	struct span_ctx *s = goroutine_span(tgid, g, pc);
	if (!s)
		note_unlinked(tgid, pc);
	return s;
}

#endif
