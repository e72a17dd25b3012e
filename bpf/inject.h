/* Types shared by inject.bpf.c, the probes that feed it and its Go loader
 * (mirrored by bpf2go). */
#ifndef WEFT_INJECT_H
#define WEFT_INJECT_H

/* The IDs to put in the next request sent on a socket. */
struct inject_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];   /* the client span: the header's parent-id */
	__u8 fwd_id[8];    /* the remote parent of the span the call is made for:
			    * the parent-id of a traceparent the app forwards
			    * (copied from the request it serves); zero: none */
	__u8 flags;        /* W3C trace-flags (bit 0: sampled) */
	__u8 _pad[7];
};

/* The map the client probe writes, keyed by socket cookie. Every object
 * that uses it declares it with this macro, so that the loader can hand
 * them all the injector's instance (MapReplacements accepts only an
 * identical definition). */
#define INJECT_CTX_MAX_ENTRIES 65536
#define DECLARE_INJECT_CTX_MAP                                \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);          \
		__uint(max_entries, INJECT_CTX_MAX_ENTRIES);  \
		__type(key, __u64); /* socket cookie */       \
		__type(value, struct inject_ctx);             \
	} inject_ctx SEC(".maps")

/* Counters in the inject_stats per-CPU array, by index. */
enum inject_stat {
	INJ_INJECTED = 0,      /* traceparent inserted */
	INJ_NO_CTX = 1,        /* message on a socket without an inject_ctx entry */
	INJ_REPEAT = 2,        /* the entry was already used by an earlier message */
	INJ_NOT_HTTP = 3,      /* no HTTP/1.x request line at the message start */
	INJ_APP_HEADER = 4,    /* the request already carries a traceparent (not a forwarded one) */
	INJ_SPLIT = 5,         /* the header block does not end in this message */
	INJ_TOO_LONG = 6,      /* no header block end in the first INJ_SCAN_MAX bytes */
	INJ_WRITE_FAIL = 7,    /* a push/pull helper failed; message sent unchanged */
	INJ_NO_STATE = 8,      /* socket in the sockhash without per-socket state */
	INJ_SOCKHASH_ADD = 9,  /* sockets added at connect */
	INJ_SOCKHASH_FAIL = 10, /* sockhash or socket-state update refused */
	INJ_ITER_ADD = 11,     /* established sockets added by the iterator */
	INJ_H2_INJECTED = 12,  /* traceparent field added to an HTTP/2 request header block */
	INJ_H2_NO_CTX = 13,    /* request HEADERS for a stream the gRPC probe did not see */
	INJ_H2_APP_HEADER = 14, /* the call's metadata has a traceparent already */
	INJ_H2_SPLIT = 15,     /* the header block ends in a later message, or in CONTINUATION */
	INJ_H2_TOO_LONG = 16,  /* the frame would exceed the 16 KiB every peer accepts */
	INJ_H2_LOST = 17,      /* frame boundaries lost on a socket: no more headers there */
	INJ_H2_REPEAT = 18,    /* the stream's IDs were used already */
	INJ_DROP = 19,         /* a change could not be undone: message dropped (SK_DROP), not sent altered */
	INJ_STATE_MERGED = 20, /* the app's own tracestate got this agent's member, first */
	INJ_STATE_KEPT = 21,   /* the app's tracestate has this agent's key already (or is in
				* several lines): left alone, no member added */
	INJ_FORWARD_REWRITTEN = 22, /* the request carries the traceparent of the request its
				     * sender is serving (a proxy forwarding it): its parent-id
				     * became the client span's, in place */
	INJ_H2_UNCHECKED = 23, /* a net/http HTTP/2 request on a connection one of whose header
				* blocks went unread (CONTINUATION, cut, over 4 KiB): whether
				* the app sends its own traceparent is unknown, none is added */
	INJ_H2_SYNCED = 24,    /* frame boundaries found on a socket that did not show them
				* (older than the tracing, or lost): HTTP/2 fields go on it */
	INJ_STAT_MAX = 25,
};

/* Longest request head (request line to blank line) that gets a header. */
#define INJ_SCAN_MAX 4096

/* "traceparent: 00-<32 hex>-<16 hex>-<2 hex>\r\n" */
#define INJ_HEADER_LEN 70

/* The same as an HPACK literal field without indexing (leaves the
 * connection's dynamic table alone): 0x00, name length 11, "traceparent",
 * value length 55, the value. */
#define INJ_H2_FIELD_LEN 69

/* Room for this agent's tracestate member, added after traceparent: the
 * HTTP/1 line "tracestate: weft=<cluster>\r\n" or the same field as an
 * HPACK literal; or, when an HTTP/1 request has a tracestate of its own,
 * "weft=<cluster>," put first in its value. The loader writes all three
 * (inject.bpf.c's state_line, state_field and state_member); a name that
 * does not fit is not sent. */
#define INJ_STATE_MAX 96

#endif
