/* Types shared by sockio.bpf.c and its Go loader (mirrored by bpf2go). */
#ifndef WEFT_SOCKIO_H
#define WEFT_SOCKIO_H

/* Bytes of each syscall's buffer copied to user space. A power of two: the
 * verifier bounds copies by masking with CAPTURE_MAX - 1. */
#define CAPTURE_MAX 32768

enum event_kind {
	EV_DATA = 1,  /* bytes read from or written to a traced TCP socket */
	EV_CLOSE = 3, /* close(2) of a traced TCP socket */
	EV_CONNECT_FAIL = 4, /* a traced process's connect ended before the connection
			      * was established (refused, timed out, given up) */
	EV_H2_IDS = 5, /* struct h2_ids_event: a stream's IDs, filed by a Go probe */
	EV_H2_NAME = 6, /* struct h2_name_event: a stream's :path, as a Go probe read it */
};

enum direction {
	DIR_READ = 1,
	DIR_WRITE = 2,
};

/* Whether the parser may assume the first bytes it sees start a message:
 * true when they were the socket's first transfer; sockets that predate the
 * agent are found mid-stream. */
enum conn_origin {
	ORIGIN_FOUND = 0,
	ORIGIN_NEW = 1,
};

/* Per-process settings written by user space; every program checks this
 * map first, so untraced processes cost one lookup. Offsets come from the
 * binary's DWARF or weft's generated table; 0 means unknown. */
struct proc_cfg {
	__u64 goid_offset;        /* runtime.g.goid; 0: not Go */
	__u64 parent_goid_offset; /* runtime.g.parentGoid */
	__u16 pconn_conn;         /* net/http.persistConn.conn (an interface) */
	__u16 pconn_tls;          /* net/http.persistConn.tlsState */
	__u16 conn_fd;            /* net.conn.fd (*netFD, embedded in TCPConn) */
	__u16 netfd_sysfd;        /* net.netFD.pfd + internal/poll.FD.Sysfd */
	__u32 flags;              /* PROC_* */
	__u16 tlsconn_conn;       /* crypto/tls.Conn.conn (an interface) */
	__u16 _pad;
};

/* proc_cfg.flags */
#define PROC_THREADS 1 /* not Go: a thread's calls are children of the request
			* it is serving (thread-per-request servers) */
#define PROC_GOTLS 2 /* tlsconn_conn is known (its value, 0, is the offset) */
#define PROC_SERVED 4 /* Go: sockio has read a request (set in the kernel) */
#define PROC_H2_PRESEND 8 /* Go, and no header can go into its h2c requests (a cgo
			   * program stays out of the sockhash; or headers are off):
			   * tcp_sendmsg_locked files its streams' TCP option */

/* A goroutine's current server span, so calls it (or a goroutine it
 * started) makes become children. */
struct go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 goid;
};

struct span_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8]; /* the span's remote parent (what a proxy forwarding the
			    * request's traceparent names as parent-id); zero: a root */
	__u8 flags; /* CTX_SAMPLED */
	__u8 _pad[7];
	__u64 srv; /* the server socket (struct sock *) the request came on */
};

/* The next client request on a socket: its span and its parent. */
struct client_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8];
	__u8 flags; /* CTX_LINKED, CTX_SAMPLED */
	__u8 _pad[7];
};

/* A connection's addresses, kept with its state and copied into each event,
 * so no event depends on another having arrived. */
struct endpoints {
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 _pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* One record in the ring buffer; data[] follows for EV_DATA. */
struct event {
	__u8 kind;
	__u8 dir;
	__u8 origin;
	__u8 new_request; /* read after a write (or first read): IDs are fresh */
	__u32 tgid;
	__u32 tid;
	__u64 conn_id;
	__u64 ts_ns; /* when the bytes had moved */
	__u64 goid;
	__u64 len;      /* bytes the syscall moved */
	__u32 captured; /* bytes of data[] that follow */
	/* EV_DATA: the bytes the process had queued on the socket when this
	 * was recorded, from where the connection began (mod 2^32; 1 for the
	 * SYN): a read whose count is ahead of the last write reported
	 * follows a write whose event is still to come (user space puts them
	 * back in order). */
	__u32 sent;
	struct endpoints ep;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8]; /* with CTX_LINKED: the span this one is a child of */
	__u8 ctx_flags;    /* CTX_* */
	__u8 tls;          /* plaintext of a TLS connection (from the tls source) */
	__u8 stamped;      /* sent is set (socket I/O, read once the call is over) */
	__u8 _pad2[5];
	__u64 start_ns; /* EV_CONNECT_FAIL: when the connect began (len: the socket's error) */
};

/* Maps sockio owns and the Go client probe shares (loaded with
 * MapReplacements, which needs identical definitions: both files use these). */
#define DECLARE_PROCS_MAP                                  \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_HASH);           \
		__uint(max_entries, 8192);                 \
		__type(key, __u32); /* tgid */             \
		__type(value, struct proc_cfg);            \
	} procs SEC(".maps")

/* A Go server goroutine's current request span: written by sockio when the
 * request is read, read by the client probe in the goroutines that call out. */
#define DECLARE_GOCTX_MAP                                  \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, struct go_key);                \
		__type(value, struct span_ctx);            \
	} goctx SEC(".maps")

/* The request a goroutine was started for, at any depth below the
 * goroutine serving it: a copy of that request's span_ctx made when the
 * goroutine was started (the gospawn family, with WEFT_GO_GOROUTINES=tree),
 * read where a goroutine's calls are linked. A copy, not a reference: a
 * goroutine started for one request stays that request's even after the
 * server goroutine has moved on to the next (keep-alive). Go never reuses
 * a goroutine id. */
#define DECLARE_GOSPAWN_MAP                                \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, struct go_key);                \
		__type(value, struct span_ctx);            \
	} gospawn SEC(".maps")

/* Go calls that no goroutine link reached (a root) in a process that
 * serves requests (PROC_SERVED), by tgid: the sign, read by gospawn's
 * user space in its auto mode, that the process calls out from goroutines
 * deeper than the handler's children. */
#define DECLARE_GO_ROOTS_MAP                               \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 8192);                 \
		__type(key, __u32); /* tgid */             \
		__type(value, __u64);                      \
	} go_roots SEC(".maps")

/* Where one process's grpc-go keeps a server stream, and how its probes
 * find one (gogrpc's user space fills it per process, or its exec
 * templates; gohttp reads it too: a gRPC handler's HTTP calls find their
 * server span through the request's context.Context). Registers are Go
 * ABI integer argument registers: 0 RAX, 1 RBX, 2 RCX, 3 RDI, 4 RSI. */
struct grpc_cfg {
	__u8 frame_arg;     /* operateHeaders: *http2.MetaHeadersFrame */
	__u8 stream_arg;    /* handleStream: the stream */
	__u8 hdr_arg;       /* loopy hook: *headerFrame; 0: the hook is writeHeader */
	__u8 stream_deref;  /* the stream embeds *Stream at ss_stream (else by value) */
	__u16 ss_stream;    /* ServerStream.Stream (0 where the argument is a *Stream) */
	__u16 stream_id;    /* Stream.id */
	__u16 mhf_headers;  /* MetaHeadersFrame.HeadersFrame (*HeadersFrame) */
	__u16 mhf_fields;   /* MetaHeadersFrame.Fields ([]hpack.HeaderField) */
	__u16 frame_stream; /* HeadersFrame.FrameHeader + FrameHeader.StreamID */
	__u16 field_size;   /* sizeof(hpack.HeaderField) */
	__u16 field_name;   /* HeaderField.Name */
	__u16 field_value;  /* HeaderField.Value */
	__u16 hdr_stream;   /* headerFrame.streamID */
	__u16 hdr_hf;       /* headerFrame.hf */
	/* Linking through a call's context (ctx_walk set): the server stream
	 * is a context value; the loopy hook finds the call's context from its
	 * header frame's write quota, a field of the call's Stream. */
	__u16 ss_st;        /* the server stream's transport (an interface) */
	__u16 hdr_wq;       /* headerFrame.wq (&Stream.wq) */
	__u16 stream_wq;    /* Stream.wq */
	__u16 stream_ctx;   /* Stream.ctx (an interface) */
	__u8 ctx_walk;      /* server spans are found through contexts: no handleStream hook */
	__u8 handlers;      /* with ctx_walk: handleStream is hooked all the same (see below) */
	/* Send each stream's :path through the ring (EV_H2_NAME): user space
	 * sets it for a process whose HTTP/2 connections, open before tracing
	 * began, keep their paths in HPACK entries it never saw. */
	__u8 names;
	__u8 _pad[1];
	/* With ctx_walk and no handleStream hook: Go calls of the process
	 * that found no server span (a handler that called out without its
	 * context). gogrpc's user space then hooks handleStream for the
	 * executable, so that its handlers' goroutines are linked as well. */
	__u32 unlinked;
	/* The type word of the key grpc-go files the server stream under in a
	 * handler's context (grpc.streamKey{}), learned at the first match:
	 * later walks try only levels with that key (grpcctx.h). */
	__u64 key_type;
};

#define DECLARE_GRPC_PROCS_MAP                             \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_HASH);           \
		__uint(max_entries, 8192);                 \
		__type(key, __u32); /* tgid */             \
		__type(value, struct grpc_cfg);            \
	} grpc_procs SEC(".maps")

/* A gRPC server stream: its ID on its transport (*http2Server). */
struct stream_key {
	__u32 tgid;
	__u32 stream_id;
	__u64 transport;
};

/* A server stream's span IDs, filed by gogrpc's operateHeaders hook and
 * found by the stream's handler (handleStream) or through a context the
 * handler derived from the stream's. */
#define DECLARE_GRPC_STREAMS_MAP                           \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, struct stream_key);            \
		__type(value, struct h2_span);             \
	} grpc_streams SEC(".maps")

/* The next client request on a socket (key: struct sock *): written by the
 * client probe, used and removed by sockio's send hook. */
#define DECLARE_CLIENT_CTXS_MAP                            \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, __u64);                        \
		__type(value, struct client_ctx);          \
	} client_ctxs SEC(".maps")

/* One HTTP/2 stream of a Go process, named as the goroutine that moves its
 * frames sees it: a server connection's reader, a client connection's
 * writer (grpc-go's loopy writer). Stream IDs repeat across connections;
 * that goroutine does not. */
struct h2_key {
	__u32 tgid;
	__u32 stream_id;
	__u64 goid;
};

/* A stream's span IDs, made in the kernel so that a server's handler and
 * the next hop get them before user space has seen a byte. */
struct h2_span {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8]; /* with CTX_LINKED */
	__u8 fwd_id[8];    /* with CTX_LINKED: the parent's remote parent, the parent-id of
			    * a traceparent the app forwards (copied from the request it
			    * serves); zero: none */
	__u8 flags;        /* CTX_LINKED, CTX_SAMPLED, H2_* */
	__u8 _pad[7];
};

/* h2_ids.flags beyond CTX_*: */
#define H2_INJECTED 4   /* the injector put a traceparent in the stream's headers */
#define H2_APP_HEADER 8 /* the application sent its own traceparent: none added */
#define H2_APP_STATE 16 /* the application sent its own tracestate: weft's member not added */
#define H2_UNCHECKED 32 /* the probe cannot tell whether the application sent a traceparent: the injector reads the connection's header blocks */
#define H2_OPTION 64    /* a server stream whose parent came in a TCP option (TLS) */

/* An HTTP/2 server connection's frame reader, by the goroutine that
 * started it (its parent): net/http's serve goroutine handles the frames
 * its reader goroutine read, and files a stream's IDs for sockio's user
 * space under the reader, which is the goroutine that read the bytes.
 * Written by sockio on reads of connections that began with the HTTP/2
 * preface; read by gohttp. */
#define DECLARE_H2_READERS_MAP                             \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 16384);                \
		__type(key, struct go_key); /* the parent */ \
		__type(value, __u64);       /* the reader's goid */ \
	} h2_readers SEC(".maps")

/* Written by the Go probes (and the injector, which marks what it did),
 * read by the injector and sockio's TCP option; user space gets the same
 * IDs through the ring (h2ids.h) and reads the map only when it lost them.
 * LRU: nothing removes entries. */
#define DECLARE_H2_IDS_MAP                                 \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, struct h2_key);                \
		__type(value, struct h2_span);              \
	} h2_ids SEC(".maps")

/* The ring buffer every capture source and the Go probes write to (the
 * probes get sockio's with MapReplacements). */
#define DECLARE_EVENTS_MAP                                 \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_RINGBUF);        \
		__uint(max_entries, 8 << 20);              \
	} events SEC(".maps")

/* Waking the reader for every event would cost a wakeup per syscall in the
 * traced thread; user space drains the ring every 100 ms instead (sockio's
 * pollEvery), and is woken only when this much data is waiting. */
#define WAKEUP_BYTES (256 << 10)

/* A stream's IDs on their way to user space (EV_H2_IDS). */
struct h2_ids_event {
	__u8 kind;
	__u8 _pad[3];
	__u32 tgid;
	__u32 stream_id;
	__u32 _pad2;
	__u64 goid;
	/* The goroutine that may have read the stream's frames instead of
	 * goid (a connection's first read, by the reader's parent), 0: none.
	 * User space files the IDs under both. */
	__u64 alias_goid;
	struct h2_span ids;
};

/* A stream's :path on its way to user space (EV_H2_NAME): len is the
 * path's length, of which at most H2_NAME_MAX bytes are in path; grpc: a
 * gRPC probe's (the stream is a gRPC call). */
#define H2_NAME_MAX 128
struct h2_name_event {
	__u8 kind;
	__u8 grpc;
	__u8 _pad[2];
	__u32 tgid;
	__u32 stream_id;
	__u32 len;
	__u64 goid;
	__u8 path[H2_NAME_MAX];
};

/* event.ctx_flags */
#define CTX_LINKED 1  /* trace_id/parent_id come from a known parent */
#define CTX_SAMPLED 2 /* the parent's sampled flag */
#define CTX_H2_AT_START 8 /* with CTX_TCPOPT: the read began at the option's segment (a
			   * non-Go HTTP/2 server's): for the first stream it opens */
#define CTX_TCPOPT 4  /* with CTX_LINKED: the parent came in a TCP header option
		       * (tcpopt), not a traceparent header the kernel found */

/* Counters in the stats per-CPU array, by index. */
enum stat_index {
	STAT_RINGBUF_FULL = 0,  /* events dropped: ring buffer full */
	STAT_DATA_EVENTS = 1,
	STAT_CAPTURE_FAULT = 2, /* user buffer could not be read */
	STAT_UNKNOWN_SYSCALL = 3, /* socket I/O through a call whose buffer we cannot find */
	STAT_REGS_UNKNOWN = 4,  /* syscall source: user registers not found (no goroutine) */
	STAT_OPT_MATCHED = 5,   /* a request's first read took its parent from a TCP option */
	STAT_OPT_UNMATCHED = 6, /* a socket had an option, not for this request's first byte */
	STAT_OPT_HEADER_WINS = 7, /* option and traceparent header disagreed: the header won */
	STAT_THREAD_LINKED = 8, /* a non-Go thread's client call: child of the request it serves */
	STAT_THREAD_ROOT = 9,   /* ... made while serving none: a root, its IDs made here */
	STAT_THREAD_MUX = 10,   /* a thread read a request while one it read was unanswered
				 * (an event loop): its process is no longer linked by thread */
	STAT_TLS_CONNS = 11,   /* connections found speaking TLS: ciphertext not captured */
	STAT_TLS_NO_SOCK = 12, /* plaintext of an SSL object whose socket is unknown: lost */
	STAT_GOTLS_NOT_TCP = 13, /* Go TLS plaintext over a net.Conn that is not a *net.TCPConn: lost */
	STAT_H2_OPTION = 14,   /* HTTP/2 over Go TLS: a new stream's context filed for a TCP option */
	STAT_H2_OPTION_SHARED = 15, /* ... a stream opened in the same write as another: no option */
	STAT_TLS_SOCK_BY_READ = 16, /* an SSL object without a socket took the one its thread
				     * had just read ciphertext from (memory BIOs: Node.js, asyncio) */
	STAT_H2_CALL = 17, /* a non-Go process opened an HTTP/2 stream: IDs made (the first of a write) */
	STAT_H2_CALL_SHARED = 18, /* ... another stream opened in the same write: no IDs, no option */
	STAT_H2_OPT_MATCHED = 19, /* a non-Go HTTP/2 server's read began at an option's segment */
	STAT_H2_OPT_UNMATCHED = 20, /* ... the option's segment was inside a read: for no stream known */
	STAT_H2_OPT_SAME_SEQ = 21, /* two writes' options for one sequence (ciphertext held back): both given up */
	STAT_BODY_SKIPPED = 22, /* a call inside an HTTP/1 Content-Length body: only a peek copied */
	STAT_BODY_CUT = 23,   /* a long call starting such a message: its head copied, not its body */
	STAT_H2_OPTION_AFTER_FRAMES = 24, /* an h2c option taken by a read that began with frames opening no stream */
	STAT_TLS_OPT_AFTER_RECORDS = 25, /* a TLS option kept past whole records before its segment, for the
					  * plaintext read after theirs (a non-Go HTTP/2 server) */
	STAT_BASE_SETTLED = 26, /* a first transfer looked found mid-stream, then new a moment later:
				 * the first look had a torn counter pair */
	STAT_MAX = 27,
};

#endif
