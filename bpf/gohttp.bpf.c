// SPDX-License-Identifier: GPL-2.0
/* gohttp: one uprobe per Go net/http client request, on
 * net/http.(*persistConn).roundTrip, which runs in the goroutine that made
 * the call. It knows what the socket layer cannot: which server request
 * (goroutine) the call belongs to. It picks the client span's IDs and leaves
 * them keyed by the connection's socket, where sockio's send hook and the
 * injector find them. A uprobe costs ~20 us here: this is the only one.
 *
 * The socket is found through persistConn.conn, a net.Conn, only when its
 * dynamic type is *net.TCPConn: a Transport's DialContext may return any
 * net.Conn (a wrapper that counts bytes, a proxy's conn), and reading such
 * a value as a *net.TCPConn yields a wrong descriptor, which can name
 * another socket of the process: the call's context would then land on a
 * connection that is not the call's. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "sockio.h"
#include "execsel.h"
#include "tcpopt.h"
#include "inject.h"
#include "tracectx.h"
#include "h2fields.h"

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000

char LICENSE[] SEC("license") = "GPL";

/* These maps are sockio's and the injector's: user space loads this object
 * with them replaced, so both sides see the same entries. */
DECLARE_PROCS_MAP;
DECLARE_GOCTX_MAP;
DECLARE_GOSPAWN_MAP;
DECLARE_GO_ROOTS_MAP;
DECLARE_CLIENT_CTXS_MAP;
DECLARE_H2_IDS_MAP;
DECLARE_H2_READERS_MAP;
DECLARE_TLS_OPTS_G_MAP;
DECLARE_GRPC_PROCS_MAP;
DECLARE_GRPC_STREAMS_MAP;
DECLARE_EVENTS_MAP;
#include "h2ids.h"

/* IDs the socket-layer injector writes into the request, by socket cookie. */
DECLARE_INJECT_CTX_MAP;

/* IDs the sockops program puts in a TCP option on the request's first
 * segment, by socket cookie (sockio's map; tcpopt.bpf.c reads it). */
DECLARE_TCPOPT_TX_MAP;

/* Whether the tcpopt family runs (set by the loader). */
volatile const __u8 tcpopt_on = 0;

#define GOCTX_GRPC
#include "goctx.h"
#include "grpcctx.h"

enum gohttp_stat {
	GS_CALLS = 0,    /* roundTrip entries in traced processes */
	GS_LINKED = 1,   /* ... whose goroutine (or its parent) serves a request */
	GS_TLS = 2,      /* TLS connection (IDs for the Go TLS source and the option; no header) */
	GS_NO_SOCK = 3,  /* skipped: the connection's socket was not found */
	GS_NO_COOKIE = 4, /* no socket cookie yet: nothing for the injector */
	GS_NOT_TCPCONN = 5, /* skipped: the connection is not a *net.TCPConn */
	GS_H2_CALLS = 6,  /* HTTP/2 requests (writeHeaders) in traced processes */
	GS_H2_LINKED = 7, /* ... whose goroutine (or its parent) serves a request */
	GS_H2_SRV_STREAMS = 8, /* HTTP/2 server: new streams (processHeaders) in traced processes */
	GS_H2_SRV_NO_READER = 9, /* ... skipped: the connection's frame reader is not known */
	GS_H2_SRV_HEADER = 10, /* ... whose parent came in a traceparent */
	GS_H2_SRV_OPTION = 11, /* ... whose parent came in a TCP option (TLS) */
	GS_H2_SRV_HANDLERS = 12, /* handler goroutines started (runHandler) */
	GS_H2_SRV_LINKED = 13, /* ... given their stream's span */
	GS_H2_SRV_B3 = 14,     /* HTTP/2 server streams whose parent came in B3 fields */
	GS_CTX_LINKED = 15,    /* roundTrip calls linked through their context to a gRPC server stream */
	GS_MAX = 16,
};

/* For bpf2go: the counters' names in Go follow these indexes. */
const enum gohttp_stat *unused_gohttp_stat __attribute__((unused));

/* What the probe knows of a process's executable, by tgid (user space
 * writes it in Track, before the process's calls can be linked).
 * close_delta is the link-time address of the probed roundTrip minus that
 * of net.(*TCPConn).Close: both are in the same text segment, so at run
 * time Close is at the uprobe's address minus close_delta, PIE or not. */
struct http_cfg {
	__u64 close_delta;     /* 0: no roundTrip probed (a server without a client) */
	__u64 tls_close_delta; /* the same for crypto/tls.(*Conn).Close; 0: absent */
	__u32 flags;           /* HTTP_CFG_*, for user space's status */
	__u16 treq_req;        /* transportRequest.Request (*Request) */
	__u16 req_ctx;         /* Request.ctx (an interface); 0: unknown */
	__u16 cs_id;           /* http2clientStream.ID (h2_encode_headers) */
	__u16 _pad[3];
};

#define HTTP_CFG_H2_SERVER 1 /* the HTTP/2 server's functions are probed */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, struct http_cfg);
} http_procs SEC(".maps");

/* Selection at exec (execsel.h): the executable's uprobes stay attached
 * while it has a template, so its next process needs no attach at all. */
DECLARE_EXEC_TEMPLATES(http_templates, struct http_cfg);
EXEC_PROGRAM(gohttp_exec, http_templates, http_procs)

/* A Go itab on amd64: {inter *interfacetype; _type *_type; hash uint32;
 * _ [4]byte; fun [N]uintptr}, fun sorted by method name. net.Conn's first
 * method is Close, so fun[0] of the itab (*net.TCPConn, net.Conn) is
 * net.(*TCPConn).Close, and no other dynamic type's itab has it there. */
#define ITAB_FUN0 24

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gohttp_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&gohttp_stats, &idx);
	if (v)
		*v += 1;
}

/* The TCP socket behind a file descriptor of the current process. */
static __always_inline struct sock *sock_of_fd(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6 ? sk : 0;
}

/* ---- net/http's HTTP/2 server (its bundled copy, and x/net's) ----
 * Its serve goroutine handles the frames a reader goroutine (its child)
 * read, and starts one handler goroutine per stream. processHeaders, in the
 * serve goroutine, picks a new stream's span IDs (its parent: a traceparent
 * field, else a TCP option on the read that brought it) and files them
 * twice: under the reader and stream ID, where sockio's user space looks
 * them up for the SERVER span, and under the connection and stream ID,
 * where runHandler, in the handler's goroutine, makes them that
 * goroutine's span: its calls are the span's children. Two uprobe hits a
 * request; the layouts below have not changed from Go 1.21 to 1.26. */

/* http2MetaHeadersFrame {*http2HeadersFrame; Fields []hpack.HeaderField}:
 * the HeadersFrame's FrameHeader {valid bool; Type, Flags uint8; Length,
 * StreamID uint32}; hpack.HeaderField {Name, Value string; Sensitive bool}.
 * Set by the loader (internal/probes/gohttp, h2ServerLayout). */
volatile const __u64 h2s_mhf_fields = 8;
volatile const __u64 h2s_frame_stream = 8;
volatile const __u64 h2s_field_size = 40;
volatile const __u64 h2s_field_name = 0;
volatile const __u64 h2s_field_value = 16;
/* http2responseWriter {rws *http2responseWriterState}; the state's first
 * field is stream *http2stream, whose second is id uint32. */
volatile const __u64 h2s_rw_rws = 0;
volatile const __u64 h2s_rws_stream = 0;
volatile const __u64 h2s_stream_id = 8;

/* A new stream's IDs until its handler starts, by the connection's serve
 * goroutine (the handler goroutine's parent: every runHandler is started
 * there) and stream ID. Goroutine IDs are never reused, so an entry whose
 * handler never ran (a refused stream, a closed connection) cannot be
 * taken by another connection's stream. */
struct h2s_key {
	__u32 tgid;
	__u32 stream_id;
	__u64 serve; /* goid */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct h2s_key);
	__type(value, struct h2_span);
} h2s_streams SEC(".maps");

/* The highest stream ID each serve goroutine has opened: HTTP/2 clients
 * open streams in increasing order, so a HEADERS frame at or below it is a
 * stream's trailers (or a closed stream's), not a new stream. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, __u32);
} h2s_max SEC(".maps");

DECLARE_H2_IN_FIELDS_MAP(h2s_in_fields);

/* func (sc *serverConn) processHeaders(f *MetaHeadersFrame) error: sc in
 * RAX, f in RBX; runs in the serve goroutine. */
SEC("uprobe")
int h2_server_headers(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !cfg->goid_offset || !bpf_map_lookup_elem(&http_procs, &tgid))
		return 0;
	__u64 f = ctx->bx, hf = 0;
	struct h2s_key sk = {.tgid = tgid};
	if (bpf_probe_read_user(&hf, sizeof(hf), (void *)f) || !hf ||
	    bpf_probe_read_user(&sk.stream_id, sizeof(sk.stream_id), (void *)(hf + h2s_frame_stream)) ||
	    !(sk.stream_id & 1))
		return 0;
	struct go_key serve = {.tgid = tgid, .goid = goid_at(ctx->r14, cfg->goid_offset)};
	if (!serve.goid)
		return 0;
	sk.serve = serve.goid;
	__u32 *max = bpf_map_lookup_elem(&h2s_max, &serve);
	if (max && sk.stream_id <= *max)
		return 0; /* trailers, not a new stream */
	bpf_map_update_elem(&h2s_max, &serve, &sk.stream_id, BPF_ANY);
	count(GS_H2_SRV_STREAMS);
	__u64 *reader = bpf_map_lookup_elem(&h2_readers, &serve);
	if (!reader) {
		/* Its span would get IDs user space cannot find: none here. */
		count(GS_H2_SRV_NO_READER);
		return 0;
	}
	struct h2_key k = {.tgid = tgid, .stream_id = sk.stream_id, .goid = *reader};
	struct span_ctx in = {};
	struct h2_span ids = {};
	struct {
		__u64 ptr, len;
	} fields = {};
	bpf_probe_read_user(&fields, sizeof(fields), (void *)(f + h2s_mhf_fields));
	__u32 zero = 0;
	struct in_fields *inf = bpf_map_lookup_elem(&h2s_in_fields, &zero);
	if (!inf)
		return 0;
	__builtin_memset(inf, 0, offsetof(struct in_fields, v));
	struct hf_layout l = {.name = h2s_field_name, .value = h2s_field_value, .size = h2s_field_size};
	scan_fields(&l, fields.ptr, fields.len, inf);
	int remote = inf->tp && read_traceparent(&l, inf->tp, &in) == 1;
	if (remote)
		count(GS_H2_SRV_HEADER);
	/* Over TLS the caller's context may have come in a TCP option on the
	 * read that brought this stream, made by the reader (sockio). */
	struct go_key rk = {.tgid = tgid, .goid = *reader};
	struct tcpopt_rx *rx = bpf_map_lookup_elem(&tls_opts_g, &rk);
	if (!rx) {
		/* the connection's first stream, read with the preface: sockio
		 * filed its option under this goroutine */
		rk.goid = serve.goid;
		rx = bpf_map_lookup_elem(&tls_opts_g, &rk);
	}
	if (rx && !remote) {
		__builtin_memcpy(in.trace_id, rx->trace_id, sizeof(in.trace_id));
		__builtin_memcpy(in.span_id, rx->span_id, sizeof(in.span_id));
		in.flags = (rx->flags & 1) ? CTX_SAMPLED : 0;
		remote = 1;
		ids.flags |= H2_OPTION;
		count(GS_H2_SRV_OPTION);
	}
	if (rx)
		bpf_map_delete_elem(&tls_opts_g, &rk);
	/* Neither: B3 fields (Zipkin; Istio/Envoy, Linkerd), as for gRPC and
	 * HTTP/1. A traceparent, even invalid, wins. */
	if (!remote && !rx && !inf->tp && (inf->b3 | inf->b3_trace | inf->b3_span)) {
		if (read_b3(&l, inf, &in)) {
			remote = 1;
			count(GS_H2_SRV_B3);
		}
	}
	if (rk.goid != serve.goid) {
		/* one filed with the preface is for the first stream only */
		rk.goid = serve.goid;
		bpf_map_delete_elem(&tls_opts_g, &rk);
	}
	h2_span_ids(&ids, remote ? &in : NULL);
	file_h2_ids(&k, &ids, 0);
	bpf_map_update_elem(&h2s_streams, &sk, &ids, BPF_ANY);
	return 0;
}

/* func (sc *serverConn) runHandler(rw *responseWriter, req *Request,
 * handler func(ResponseWriter, *Request)): rw in RBX; runs in the
 * handler's own goroutine. */
SEC("uprobe")
int h2_server_handler(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !cfg->goid_offset || !bpf_map_lookup_elem(&http_procs, &tgid))
		return 0;
	count(GS_H2_SRV_HANDLERS);
	__u64 rws = 0, st = 0;
	struct h2s_key sk = {.tgid = tgid, .serve = goid_at(ctx->r14, cfg->parent_goid_offset)};
	if (!sk.serve || bpf_probe_read_user(&rws, sizeof(rws), (void *)(ctx->bx + h2s_rw_rws)) || !rws ||
	    bpf_probe_read_user(&st, sizeof(st), (void *)(rws + h2s_rws_stream)) || !st ||
	    bpf_probe_read_user(&sk.stream_id, sizeof(sk.stream_id), (void *)(st + h2s_stream_id)))
		return 0;
	struct h2_span *ids = bpf_map_lookup_elem(&h2s_streams, &sk);
	if (!ids)
		return 0;
	struct span_ctx sc = {.flags = ids->flags & CTX_SAMPLED};
	__builtin_memcpy(sc.trace_id, ids->trace_id, sizeof(sc.trace_id));
	__builtin_memcpy(sc.span_id, ids->span_id, sizeof(sc.span_id));
	if (ids->flags & CTX_LINKED)
		__builtin_memcpy(sc.parent_id, ids->parent_id, sizeof(sc.parent_id));
	bpf_map_delete_elem(&h2s_streams, &sk);
	struct go_key gk = {.tgid = tgid, .goid = goid_at(ctx->r14, cfg->goid_offset)};
	if (!gk.goid)
		return 0;
	bpf_map_update_elem(&goctx, &gk, &sc, BPF_ANY);
	count(GS_H2_SRV_LINKED);
	if (!(cfg->flags & PROC_SERVED))
		cfg->flags |= PROC_SERVED; /* only ever set: no atomic needed */
	return 0;
}

/* The span a Go client call belongs to: its goroutine's; else, in a gRPC
 * server whose handlers' goroutines are not probed, the server stream the
 * request's context leads to (grpcctx.h), copied to *walked; else none,
 * noted in go_roots. req: the *Request, 0 if unknown; treq: req is a
 * *transportRequest, whose Request is read only when the context is. */
static __always_inline struct span_ctx *call_parent(__u32 tgid, __u64 g, const struct proc_cfg *cfg,
						    const struct http_cfg *hc, __u64 req, const bool treq,
						    struct span_ctx *walked)
{
	struct span_ctx *parent = goroutine_span(tgid, g, cfg);
	if (!parent && req && hc->req_ctx && treq)
		req = read_u64(req + hc->treq_req);
	if (!parent && req && hc->req_ctx) {
		struct grpc_cfg *gc = bpf_map_lookup_elem(&grpc_procs, &tgid);
		if (gc && gc->ctx_walk && ctx_server_span(tgid, gc, read_u64(req + hc->req_ctx + 8), walked)) {
			parent = walked;
			count(GS_CTX_LINKED);
		}
	}
	if (!parent)
		note_unlinked(tgid, cfg);
	return parent;
}

/* func (pc *persistConn) roundTrip(req *transportRequest) (*Response, error)
 * Go's register ABI: pc in RAX; the caller's goroutine in R14. */
SEC("uprobe")
int round_trip(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg || !cfg->goid_offset || !cfg->pconn_conn || !cfg->netfd_sysfd)
		return 0;
	struct http_cfg *hc = bpf_map_lookup_elem(&http_procs, &tgid);
	if (!hc)
		return 0;
	count(GS_CALLS);
	__u64 pc = ctx->ax;
	/* pc.conn is an interface: (itab, data). Only with *net.TCPConn's
	 * itab is data a *net.TCPConn, whose embedded conn holds fd *netFD;
	 * netFD.pfd.Sysfd is the descriptor. On a TLS connection it is a
	 * *tls.Conn (checked the same way) whose conn is followed in turn.
	 * At a function-entry uprobe the saved IP is the function's address. */
	__u64 conn = pc + cfg->pconn_conn;
	bool tls = read_u64(pc + cfg->pconn_tls) != 0;
	if (tls) {
		count(GS_TLS);
		__u64 titab = read_u64(conn);
		if (!(cfg->flags & PROC_GOTLS) || !hc->tls_close_delta || !titab ||
		    read_u64(titab + ITAB_FUN0) != ctx->ip - hc->tls_close_delta) {
			count(GS_NOT_TCPCONN);
			return 0;
		}
		conn = read_u64(conn + 8) + cfg->tlsconn_conn;
	}
	__u64 itab = read_u64(conn);
	if (!itab || read_u64(itab + ITAB_FUN0) != ctx->ip - hc->close_delta) {
		count(GS_NOT_TCPCONN);
		return 0;
	}
	__u64 tcpconn = read_u64(conn + 8);
	__u64 netfd = read_u64(tcpconn + cfg->conn_fd);
	__s64 sysfd = netfd ? (__s64)read_u64(netfd + cfg->netfd_sysfd) : -1;
	struct sock *sk = sock_of_fd(sysfd);
	if (!sk) {
		count(GS_NO_SOCK);
		return 0;
	}

	/* req (*transportRequest) is in RBX. */
	struct span_ctx walked = {};
	struct span_ctx *parent = call_parent(tgid, ctx->r14, cfg, hc, ctx->bx, true, &walked);
	struct client_ctx cc = {};
	if (parent) {
		count(GS_LINKED);
		__builtin_memcpy(cc.trace_id, parent->trace_id, sizeof(cc.trace_id));
		__builtin_memcpy(cc.parent_id, parent->span_id, sizeof(cc.parent_id));
		cc.flags = CTX_LINKED | sample_flags(cc.trace_id, true, parent->flags);
	} else {
		random_bytes(cc.trace_id, 4);
		cc.flags = sample_flags(cc.trace_id, false, 0);
	}
	random_bytes(cc.span_id, 2);
	__u64 key = (__u64)sk;
	bpf_map_update_elem(&client_ctxs, &key, &cc, BPF_ANY);

	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie) {
		count(GS_NO_COOKIE);
		return 0;
	}
	if (tcpopt_on) {
		/* The request is written after this call returns: its first
		 * byte is the socket's next. */
		struct tcpopt_tx tx = {.seq = BPF_CORE_READ((struct tcp_sock *)sk, write_seq),
				       .flags = (cc.flags & CTX_SAMPLED) ? 1 : 0};
		__builtin_memcpy(tx.trace_id, cc.trace_id, sizeof(tx.trace_id));
		__builtin_memcpy(tx.span_id, cc.span_id, sizeof(tx.span_id));
		bpf_map_update_elem(&tcpopt_txs, &cookie, &tx, BPF_ANY);
	}
	if (tls)
		return 0; /* ciphertext: no header goes in */
	struct inject_ctx ic = {.flags = (cc.flags & CTX_SAMPLED) ? 1 : 0};
	__builtin_memcpy(ic.trace_id, cc.trace_id, sizeof(ic.trace_id));
	__builtin_memcpy(ic.span_id, cc.span_id, sizeof(ic.span_id));
	if (parent)
		__builtin_memcpy(ic.fwd_id, parent->parent_id, sizeof(ic.fwd_id));
	bpf_map_update_elem(&inject_ctx, &cookie, &ic, BPF_ANY);
	return 0;
}

/* A request's IDs, filed by (stream, the writing goroutine). req: the
 * *Request, 0 if unknown. */
static __always_inline int h2_client_ids(const struct pt_regs *ctx, __u32 tgid, const struct proc_cfg *cfg,
					 const struct http_cfg *hc, __u32 stream_id, __u64 req)
{
	struct h2_key k = {.tgid = tgid, .stream_id = stream_id, .goid = goid_at(ctx->r14, cfg->goid_offset)};
	if (!k.goid || !k.stream_id)
		return 0;
	count(GS_H2_CALLS);
	struct h2_span ids = {.flags = H2_UNCHECKED};
	struct span_ctx walked = {};
	struct span_ctx *parent = call_parent(tgid, ctx->r14, cfg, hc, req, false, &walked);
	if (parent)
		count(GS_H2_LINKED);
	h2_span_ids(&ids, parent);
	file_h2_ids(&k, &ids, 0);
	return 0;
}

/* func (cc *http2ClientConn) writeHeaders(streamID uint32, endStream bool,
 * maxFrameSize int, hdrs []byte) error — net/http's HTTP/2 client (h2 by
 * ALPN, h2c) and x/net/http2's: it writes and flushes a request's HEADERS
 * in the goroutine that makes the request (one the caller's RoundTrip
 * started), with the stream ID in RBX. Its IDs are filed by (stream, this
 * goroutine), where sockio's HTTP/2 parser finds them for the CLIENT span.
 * Whether the request has a traceparent of its own is not known here (its
 * header map is not read): the IDs are H2_UNCHECKED, and the injector reads
 * the connection's header blocks for one before it adds its own. */
SEC("uprobe")
int h2_write_headers(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	struct http_cfg *hc = bpf_map_lookup_elem(&http_procs, &tgid);
	if (!cfg || !cfg->goid_offset || !hc)
		return 0;
	return h2_client_ids(ctx, tgid, cfg, hc, (__u32)ctx->bx, 0);
}

/* func (cs *http2clientStream) encodeAndWriteHeaders(req *Request) error:
 * net/http's own HTTP/2 client, where http2clientStream's layout is known,
 * instead of writeHeaders, which it calls in the same goroutine with cs.ID
 * (assigned before): the request, in RBX, gives its context too. */
SEC("uprobe")
int h2_encode_headers(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	struct http_cfg *hc = bpf_map_lookup_elem(&http_procs, &tgid);
	if (!cfg || !cfg->goid_offset || !hc || !hc->cs_id)
		return 0;
	return h2_client_ids(ctx, tgid, cfg, hc, read_u32(ctx->ax + hc->cs_id), ctx->bx);
}
