// SPDX-License-Identifier: GPL-2.0
/* gogrpc: what the socket layer cannot know about grpc-go calls. Spans come
 * from the HTTP/2 frames sockio captures; these uprobes only link them:
 *
 * server side, one hit per call:
 *   operate_headers  (*http2Server).operateHeaders, in the connection's
 *                    reader goroutine, with the header block decoded: picks
 *                    the SERVER span's IDs (honouring an incoming
 *                    traceparent, else a TCP option, else B3 metadata) and
 *                    files them under (reader, stream) for sockio's user
 *                    space and under (transport, stream) for the handler;
 *   the handler's calls find those IDs through their context.Context
 *                    (grpcctx.h): grpc-go puts the stream in the context it
 *                    gives the handler, and a call's context derives from
 *                    it, from any goroutine;
 *   handle_stream    (*Server).handleStream, only where the loopy hook
 *                    cannot reach a call's context (grpc before 1.77), or
 *                    once a process's handlers called out without their
 *                    context (grpc_cfg.unlinked; gogrpc's user space
 *                    attaches it then): in the goroutine that runs the
 *                    handler, makes the stream's IDs that goroutine's
 *                    current span;
 * client side, two hits per call:
 *   header_fields    RET sites of (*http2Client).createHeaderFields, in the
 *                    calling goroutine: picks the CLIENT span's IDs (child
 *                    of the goroutine's span) and files them under the
 *                    header list the call will send;
 *   loopy_headers    the loopy writer taking that header list for a stream
 *                    ID: files the IDs under (writer, stream), where the
 *                    injector and sockio's user space find them; a call
 *                    whose goroutine served no span takes its parent from
 *                    its context here.
 * Offsets and argument registers differ by grpc version: user space puts
 * them, per process, in grpc_cfg. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sockio.h"
#include "execsel.h"
#include "tracectx.h"
#include "tcpopt.h"
#include "h2fields.h"

char LICENSE[] SEC("license") = "GPL";

/* sockio's maps, handed over by the loader. */
DECLARE_PROCS_MAP;
DECLARE_GOCTX_MAP;
DECLARE_GOSPAWN_MAP;
DECLARE_GO_ROOTS_MAP;
DECLARE_H2_IDS_MAP;
DECLARE_TLS_OPTS_G_MAP;

DECLARE_GRPC_PROCS_MAP;
DECLARE_GRPC_STREAMS_MAP;
DECLARE_EVENTS_MAP;
#include "h2ids.h"

#define GOCTX_GRPC
#include "goctx.h"
#include "grpcctx.h"

/* Selection at exec (execsel.h), as in gohttp. */
DECLARE_EXEC_TEMPLATES(grpc_templates, struct grpc_cfg);
EXEC_PROGRAM(gogrpc_exec, grpc_templates, grpc_procs)

/* A client call's IDs between header_fields and loopy_headers. */
struct hf_key {
	__u32 tgid;
	__u32 _pad;
	__u64 hf; /* the header list's backing array */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct hf_key);
	__type(value, struct h2_span);
} grpc_calls SEC(".maps");

enum gogrpc_stat {
	GG_SERVER_STREAMS = 0, /* operateHeaders entries */
	GG_REMOTE_PARENT = 1,  /* ... with a valid incoming traceparent */
	GG_HANDLERS = 2,       /* handleStream entries */
	GG_HANDLER_LINKED = 3, /* ... that found their stream's IDs */
	GG_CLIENT_CALLS = 4,   /* createHeaderFields returns with headers */
	GG_CLIENT_LINKED = 5,  /* ... from a goroutine serving a span */
	GG_APP_HEADER = 6,     /* ... whose metadata has a traceparent already */
	GG_ORIGINATED = 7,     /* loopy hook entries that found their call's IDs */
	GG_OPTION_PARENT = 8,  /* operateHeaders: no traceparent; the parent came in a TCP option (TLS) */
	GG_B3_PARENT = 9,      /* ... no traceparent nor option; the parent came in B3 metadata */
	GG_B3_NO_CONTEXT = 10, /* ... B3 metadata there, but no context in it (malformed, sampling only) */
	GG_CTX_LINKED = 11,    /* loopy hook: a call linked to the server stream its context came from */
	GG_NAMES = 12,         /* streams whose :path was sent (grpc_cfg.names) */
	GG_MAX = 13,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GG_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gogrpc_stats SEC(".maps");

/* Keep the types in the BTF so bpf2go mirrors them. */
const enum gogrpc_stat *unused_gogrpc_stat __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&gogrpc_stats, &idx);
	if (v)
		*v += 1;
}

/* A pt_regs field, loaded at a fixed context offset: a computed one is
 * refused by the verifier ("dereference of modified ctx ptr"). */
#define CTX_REG(ctx, field)                                                        \
	({                                                                         \
		__u64 __v;                                                         \
		asm volatile("%0 = *(u64 *)(%1 + %2)"                              \
			     : "=r"(__v)                                           \
			     : "r"(ctx), "i"(__builtin_offsetof(struct pt_regs, field))); \
		__v;                                                               \
	})

/* The i-th integer argument register. */
static __always_inline __u64 go_arg(const struct pt_regs *ctx, __u8 i)
{
	switch (i) {
	case 0:
		return CTX_REG(ctx, ax);
	case 1:
		return CTX_REG(ctx, bx);
	case 2:
		return CTX_REG(ctx, cx);
	case 3:
		return CTX_REG(ctx, di);
	case 4:
		return CTX_REG(ctx, si);
	}
	return 0;
}

/* What the application put in a client call's metadata itself:
 * H2_APP_HEADER for "traceparent", H2_APP_STATE for "tracestate", else 0. */
static __always_inline __u8 field_kind(const struct hf_layout *l, __u64 f)
{
	int k = field_name(l, f);
	if (k == FN_TRACEPARENT)
		return H2_APP_HEADER;
	return k == FN_TRACESTATE ? H2_APP_STATE : 0;
}

DECLARE_H2_IN_FIELDS_MAP(grpc_in_fields);

/* Streams of a new connection that may have come in the handshake's read
 * and are looked for there in the kernel: the TLS option (only the first
 * stream of a read gets it) and the map copy under the parent (user space
 * files every stream under both through the ring). */
#define ALIAS_STREAMS 32

/* func (t *http2Server) operateHeaders([ctx,] frame *http2.MetaHeadersFrame, ...) */
SEC("uprobe")
int operate_headers(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_cfg *cfg = bpf_map_lookup_elem(&grpc_procs, &tgid);
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !pc)
		return 0;
	count(GG_SERVER_STREAMS);
	__u64 frame = go_arg(ctx, cfg->frame_arg);
	__u64 hf = read_u64(frame + cfg->mhf_headers);
	struct h2_key k = {.tgid = tgid, .goid = goid_at(ctx->r14, pc->goid_offset)};
	k.stream_id = read_u32(hf + cfg->frame_stream);
	if (!k.goid || !k.stream_id)
		return 0;
	struct span_ctx in = {};
	struct h2_span ids = {};
	__u64 fields = read_u64(frame + cfg->mhf_fields);
	__u64 n = read_u64(frame + cfg->mhf_fields + 8);
	__u32 zero = 0;
	struct in_fields *inf = bpf_map_lookup_elem(&grpc_in_fields, &zero);
	if (!inf)
		return 0;
	__builtin_memset(inf, 0, offsetof(struct in_fields, v));
	struct hf_layout l = {.name = cfg->field_name, .value = cfg->field_value, .size = cfg->field_size};
	scan_fields(&l, fields, n, inf);
	int remote = inf->tp && read_traceparent(&l, inf->tp, &in) == 1;
	if (remote)
		count(GG_REMOTE_PARENT);
	/* Over TLS no header was added: the sender's context may have come in
	 * a TCP option on the read that brought this stream (sockio). A
	 * traceparent of the app's own wins. */
	struct go_key gk = {.tgid = tgid, .goid = k.goid};
	struct tcpopt_rx *rx = bpf_map_lookup_elem(&tls_opts_g, &gk);
	if (!rx && k.stream_id < ALIAS_STREAMS && pc->parent_goid_offset) {
		/* A new connection's first streams may have come in the read of
		 * its SETTINGS by the goroutine that started the reader (see
		 * below), option and all. */
		gk.goid = goid_at(ctx->r14, pc->parent_goid_offset);
		rx = gk.goid ? bpf_map_lookup_elem(&tls_opts_g, &gk) : 0;
	}
	if (rx && !remote) {
		__builtin_memcpy(in.trace_id, rx->trace_id, sizeof(in.trace_id));
		__builtin_memcpy(in.span_id, rx->span_id, sizeof(in.span_id));
		in.flags = (rx->flags & 1) ? CTX_SAMPLED : 0;
		remote = 1;
		ids.flags |= H2_OPTION;
		count(GG_OPTION_PARENT);
	}
	if (rx)
		bpf_map_delete_elem(&tls_opts_g, &gk);
	/* Neither: B3 metadata (Zipkin; Istio/Envoy, Linkerd) gives the
	 * parent, as for HTTP/1 (user space reads the same fields again,
	 * and counts what it ignores). A traceparent, even invalid, wins. */
	if (!remote && !rx && !inf->tp && (inf->b3 | inf->b3_trace | inf->b3_span)) {
		if (read_b3(&l, inf, &in)) {
			remote = 1;
			count(GG_B3_PARENT);
		} else {
			count(GG_B3_NO_CONTEXT);
		}
	}
	h2_span_ids(&ids, remote ? &in : NULL);
	/* The goroutine that read the connection preface (the reader's
	 * parent) buffers what came with it: a new connection's first
	 * requests, as many as came in that read, are read by it, and sockio
	 * names them after it. User space files the IDs under both. */
	__u64 alias = pc->parent_goid_offset ? goid_at(ctx->r14, pc->parent_goid_offset) : 0;
	file_h2_ids(&k, &ids, alias);
	if (alias && k.stream_id < ALIAS_STREAMS) {
		/* And in the map under the parent too, for a long stream that
		 * outlives user space's copy (a connection's first stream is
		 * often a long-lived stream): no ring record. */
		struct h2_key ak = k;
		ak.goid = alias;
		bpf_map_update_elem(&h2_ids, &ak, &ids, BPF_ANY);
	}
	if (cfg->names) {
		count(GG_NAMES);
		file_h2_name(&k, &l, inf->path, 1);
	}
	struct stream_key sk = {.tgid = tgid, .stream_id = k.stream_id, .transport = CTX_REG(ctx, ax)};
	bpf_map_update_elem(&grpc_streams, &sk, &ids, BPF_ANY);
	if (!(pc->flags & PROC_SERVED))
		pc->flags |= PROC_SERVED; /* only ever set: no atomic needed */
	return 0;
}

/* func (s *Server) handleStream(t transport.ServerTransport, stream *transport.[Server]Stream, ...) */
SEC("uprobe")
int handle_stream(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_cfg *cfg = bpf_map_lookup_elem(&grpc_procs, &tgid);
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !pc)
		return 0;
	count(GG_HANDLERS);
	__u64 stream = go_arg(ctx, cfg->stream_arg);
	if (cfg->stream_deref)
		stream = read_u64(stream + cfg->ss_stream);
	else
		stream += cfg->ss_stream;
	__u64 g = ctx->r14;
	/* t, a ServerTransport interface, is (RBX itab, RCX data): the data
	 * word is the *http2Server operateHeaders ran on. */
	struct stream_key k = {.tgid = tgid, .stream_id = read_u32(stream + cfg->stream_id),
			       .transport = CTX_REG(ctx, cx)};
	struct h2_span *ids = bpf_map_lookup_elem(&grpc_streams, &k);
	if (!ids)
		return 0;
	count(GG_HANDLER_LINKED);
	struct span_ctx sc = {.flags = ids->flags & CTX_SAMPLED};
	__builtin_memcpy(sc.trace_id, ids->trace_id, sizeof(sc.trace_id));
	__builtin_memcpy(sc.span_id, ids->span_id, sizeof(sc.span_id));
	if (ids->flags & CTX_LINKED)
		__builtin_memcpy(sc.parent_id, ids->parent_id, sizeof(sc.parent_id));
	if (!cfg->ctx_walk)
		bpf_map_delete_elem(&grpc_streams, &k); /* else calls still find it through their context */
	struct go_key gk = {.tgid = tgid, .goid = goid_at(g, pc->goid_offset)};
	if (gk.goid)
		bpf_map_update_elem(&goctx, &gk, &sc, BPF_ANY);
	if (!(pc->flags & PROC_SERVED))
		pc->flags |= PROC_SERVED; /* only ever set: no atomic needed */
	return 0;
}

/* What the application put in the call's metadata itself: H2_APP_HEADER
 * for a traceparent, H2_APP_STATE for a tracestate (weft's member is then
 * not added: a second tracestate field would repeat the list's keys). One
 * pass over the fields for both names. */
static __always_inline __u8 app_fields(const struct grpc_cfg *cfg, __u64 fields, __u64 n)
{
	struct hf_layout l = {.name = cfg->field_name, .value = cfg->field_value, .size = cfg->field_size};
	__u8 flags = 0;
	if (n > MAX_FIELDS)
		n = MAX_FIELDS;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < MAX_FIELDS; i++) {
		if (i >= n)
			break;
		flags |= field_kind(&l, fields + (__u64)i * cfg->field_size);
	}
	return flags;
}

/* At a RET of func (t *http2Client) createHeaderFields(ctx, callHdr)
 * ([]hpack.HeaderField, error): the slice is in RAX (array), RBX (len). */
SEC("uprobe")
int header_fields(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_cfg *cfg = bpf_map_lookup_elem(&grpc_procs, &tgid);
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !pc || !ctx->ax)
		return 0;
	count(GG_CLIENT_CALLS);
	struct h2_span ids = {};
	ids.flags = app_fields(cfg, ctx->ax, ctx->bx);
	if (ids.flags & H2_APP_HEADER)
		count(GG_APP_HEADER);
	/* With contexts followed, a miss here may still find its server
	 * span at the loopy hook, which notes it if not. */
	struct span_ctx *parent = cfg->ctx_walk ? goroutine_span(tgid, ctx->r14, pc) : serving_span(tgid, ctx->r14, pc);
	if (parent)
		count(GG_CLIENT_LINKED);
	h2_span_ids(&ids, parent);
	struct hf_key k = {.tgid = tgid, .hf = ctx->ax};
	bpf_map_update_elem(&grpc_calls, &k, &ids, BPF_ANY);
	return 0;
}

/* The loopy writer starts a client stream: the call's IDs move from its
 * header list to (writer goroutine, stream ID). A call whose goroutine
 * served no span takes its parent from its context, when that leads to a
 * server stream (a gRPC handler's call: the handler's goroutine is not
 * probed). hdr: the header frame, 0 for writeHeader. */
static __always_inline int originate(const struct pt_regs *ctx, __u32 tgid, struct grpc_cfg *cfg,
				     __u32 stream_id, __u64 hf, __u64 nf, __u64 hdr)
{
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &tgid);
	if (!pc)
		return 0;
	struct hf_key hk = {.tgid = tgid, .hf = hf};
	struct h2_span *ids = bpf_map_lookup_elem(&grpc_calls, &hk);
	if (!ids)
		return 0;
	struct h2_span c = *ids;
	bpf_map_delete_elem(&grpc_calls, &hk);
	struct h2_key k = {.tgid = tgid, .stream_id = stream_id, .goid = goid_at(ctx->r14, pc->goid_offset)};
	if (!k.goid)
		return 0;
	if (!(c.flags & CTX_LINKED) && cfg->ctx_walk && hdr) {
		__u64 wq = read_u64(hdr + cfg->hdr_wq);
		__u64 cx = wq ? read_u64(wq - cfg->stream_wq + cfg->stream_ctx + 8) : 0;
		struct h2_span *srv = ctx_grpc_stream(tgid, cfg, cx);
		if (srv) {
			__builtin_memcpy(c.trace_id, srv->trace_id, sizeof(c.trace_id));
			__builtin_memcpy(c.parent_id, srv->span_id, sizeof(c.parent_id));
			/* A server stream's parent_id is its caller's span. */
			__builtin_memcpy(c.fwd_id, srv->parent_id, sizeof(c.fwd_id));
			c.flags = (c.flags & ~CTX_SAMPLED) | CTX_LINKED | sample_flags(c.trace_id, true, srv->flags);
			count(GG_CTX_LINKED);
		} else {
			note_unlinked(tgid, pc);
		}
	}
	count(GG_ORIGINATED);
	file_h2_ids(&k, &c, 0);
	if (cfg->names && nf > 2) {
		/* grpc-go's createHeaderFields: :method, :scheme, :path, ... */
		struct hf_layout l = {.name = cfg->field_name, .value = cfg->field_value, .size = cfg->field_size};
		__u64 f = hf + 2 * (__u64)cfg->field_size;
		count(GG_NAMES);
		if (field_name(&l, f) == FN_PATH)
			file_h2_name(&k, &l, f, 1);
	}
	return 0;
}

/* func (l *loopyWriter) originateStream(str *outStream, hdr *headerFrame)
 * or clientHeaderHandler(hdr *clientHeaders): hdr as grpc_cfg says. */
SEC("uprobe")
int loopy_headers(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_cfg *cfg = bpf_map_lookup_elem(&grpc_procs, &tgid);
	if (!cfg)
		return 0;
	__u64 hdr = go_arg(ctx, cfg->hdr_arg);
	return originate(ctx, tgid, cfg, read_u32(hdr + cfg->hdr_stream), read_u64(hdr + cfg->hdr_hf),
			 read_u64(hdr + cfg->hdr_hf + 8), hdr);
}

/* Older grpc (before originateStream took the header frame):
 * func (l *loopyWriter) writeHeader(streamID uint32, endStream bool,
 * hf []hpack.HeaderField, onWrite func()); a server's responses pass here
 * too, and find nothing. */
SEC("uprobe")
int loopy_write_header(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_cfg *cfg = bpf_map_lookup_elem(&grpc_procs, &tgid);
	if (!cfg)
		return 0;
	return originate(ctx, tgid, cfg, (__u32)ctx->bx, ctx->di, ctx->si, 0);
}
