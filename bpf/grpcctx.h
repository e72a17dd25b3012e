/* Finding a gRPC server stream from a context.Context: grpc-go puts the
 * stream in the context it hands the handler (a valueCtx whose value is
 * the *ServerStream), and whatever the handler derives from it (values,
 * deadlines, cancels: every context type of the standard library keeps its
 * parent as its first field) leads back there. A call made with such a
 * context, from any goroutine, belongs to that stream's span: no hook on
 * the goroutine that runs the handler is needed.
 *
 * Each level is read as {parent Context; key, val any}; a level is the
 * stream's when its value, read as a server stream, names a stream whose
 * IDs operateHeaders filed (grpc_streams: ID and transport must both
 * match, so a value of another type does not). The first match teaches
 * the process's key type (grpc_cfg.key_type): from then on only levels
 * with that key are tried, so that no other context's fields (a cancel
 * context's channel and map) are taken for a stream. Needs goctx.h and
 * the grpc_streams map. */
#ifndef WEFT_GRPCCTX_H
#define WEFT_GRPCCTX_H

/* Levels followed from a call's context up to the server stream's: grpc's
 * own (peer, RPC info, cancel, attempt) and a few of interceptors and the
 * application. */
#define CTX_DEPTH 20

static __always_inline struct h2_span *ctx_grpc_stream(__u32 tgid, struct grpc_cfg *gc, __u64 c)
{
	__u64 key_type = gc->key_type;
#pragma clang loop unroll(disable)
	for (int i = 0; i < CTX_DEPTH; i++) {
		__u64 v[6]; /* parent (itab, data), key (type, data), val (type, data) */
		if (!c || bpf_probe_read_user(v, sizeof(v), (void *)c))
			return 0;
		if (v[4] && v[5] && (!key_type || v[2] == key_type)) {
			__u64 st = v[5] + gc->ss_stream;
			if (gc->stream_deref)
				st = read_u64(st);
			struct stream_key k = {.tgid = tgid, .stream_id = read_u32(st + gc->stream_id),
					       .transport = read_u64(v[5] + gc->ss_st + 8)};
			if (k.stream_id && k.transport) {
				struct h2_span *ids = bpf_map_lookup_elem(&grpc_streams, &k);
				if (ids) {
					if (!key_type && v[2])
						gc->key_type = v[2];
					return ids;
				}
			}
		}
		if (!v[0])
			return 0; /* no parent */
		c = v[1];
	}
	return 0;
}

/* The server span a context leads to, as a goroutine's span_ctx; false if
 * none. */
static __always_inline bool ctx_server_span(__u32 tgid, struct grpc_cfg *gc, __u64 c, struct span_ctx *out)
{
	struct h2_span *ids = ctx_grpc_stream(tgid, gc, c);
	if (!ids)
		return false;
	__builtin_memcpy(out->trace_id, ids->trace_id, sizeof(out->trace_id));
	__builtin_memcpy(out->span_id, ids->span_id, sizeof(out->span_id));
	__builtin_memset(out->parent_id, 0, sizeof(out->parent_id));
	if (ids->flags & CTX_LINKED)
		__builtin_memcpy(out->parent_id, ids->parent_id, sizeof(out->parent_id));
	out->flags = ids->flags & CTX_SAMPLED;
	out->srv = 0;
	return true;
}

#endif
