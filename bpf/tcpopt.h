/* Types shared by tcpopt.bpf.c, the probes that feed and read it, and its
 * Go loader (mirrored by bpf2go). */
#ifndef WEFT_TCPOPT_H
#define WEFT_TCPOPT_H

/* The option: kind, length, trace ID (16), span ID (8), W3C flags (1).
 * 27 bytes fit beside TCP timestamps (28 free on data segments); an
 * experimental kind (253/254) would need a 2-byte ExID, 29 bytes: no room.
 * The kind is unassigned by IANA; the loader may change it (tcpopt_kind). */
#define TCPOPT_LEN 27
#define TCPOPT_KIND_DEFAULT 0xb7

struct tcpopt_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags; /* W3C trace-flags (bit 0: sampled) */
};

/* The next client request on a socket whose context goes in an option:
 * written by the Go client probe before the request is written (seq is
 * the socket's write_seq then: the request's first byte), used once by
 * the sockops program. */
struct tcpopt_tx {
	__u32 seq;   /* absolute sequence of the request's first byte */
	__u32 seg;   /* sequence of the segment that reserved room for it */
	__u8 state;  /* TX_* */
	__u8 exact;  /* only on a segment that starts at seq (HTTP/2: the receiver
		      * gives the option to the first stream of a read that
		      * begins at the option's segment) */
	__u8 _pad[2];
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags;
	__u8 _pad2[7];
};

enum tcpopt_tx_state {
	TX_PENDING = 0,  /* not yet on a segment */
	TX_RESERVED = 1, /* room reserved on the segment that starts at seg */
	TX_DONE = 2,     /* written, or given up (counted) */
};

/* The last context received on a socket, for the bytes [seq, end) of the
 * segment(s) that carried it: the first option for a request wins (GSO
 * and TSO repeat it on every segment cut from one skb). */
struct tcpopt_rx {
	__u32 seq;
	__u32 end;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags;
	/* tls_opts: whole TLS records the ciphertext read held before the
	 * option's segment, whose plaintext reads come first */
	__u8 skip;
	/* tls_opts: those records' lengths, first first: each passed-over
	 * plaintext read must be one whole record's */
	__u16 rec_len[3];
};

/* Whether two 8-byte IDs are equal (no memcmp in BPF). */
static __always_inline bool same8(const __u8 *a, const __u8 *b)
{
	__u64 x, y;
	__builtin_memcpy(&x, a, 8);
	__builtin_memcpy(&y, b, 8);
	return x == y;
}

/* Both maps are keyed by socket cookie and owned by sockio (which reads
 * tcpopt_rx on a request's first read); the client probe and the sockops
 * program get them with MapReplacements, which needs these definitions. */
#define DECLARE_TCPOPT_TX_MAP                              \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, __u64); /* socket cookie */    \
		__type(value, struct tcpopt_tx);           \
	} tcpopt_txs SEC(".maps")

#define DECLARE_TCPOPT_RX_MAP                              \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 65536);                \
		__type(key, __u64); /* socket cookie */    \
		__type(value, struct tcpopt_rx);           \
	} tcpopt_rxs SEC(".maps")

/* The context a TCP option carried to a Go TLS connection, for the
 * goroutine whose ciphertext read began exactly at the option's segment:
 * the next HTTP/2 stream that goroutine decodes (gRPC's operateHeaders)
 * is the one the sender wrote first there. Good for that read only: the
 * goroutine's next read removes it. Owned by sockio; gogrpc gets it with
 * MapReplacements. Needs sockio.h (struct go_key). */
#define DECLARE_TLS_OPTS_G_MAP                             \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 16384);                \
		__type(key, struct go_key);                \
		__type(value, struct tcpopt_rx);           \
	} tls_opts_g SEC(".maps")

/* Counters in tcpopt_stats, by index. */
enum tcpopt_stat {
	OPT_WRITTEN = 0,   /* option stored on the segment that starts a request */
	OPT_NO_ROOM = 1,   /* bpf_reserve_hdr_opt: -ENOSPC (SACK blocks, MPTCP...) */
	OPT_RESERVE_FAIL = 2, /* bpf_reserve_hdr_opt: another error */
	OPT_STORE_FAIL = 3, /* bpf_store_hdr_opt failed */
	OPT_MISSED = 4,    /* the request's first byte went out on a segment not seen
			    * as new data (retransmission, or sent before the IDs) */
	OPT_READ = 5,      /* options received on data segments */
	OPT_REPEAT = 6,    /* ... repeating the context of the one before (GSO/TSO) */
	OPT_WRITE_ON = 7,  /* sockets that write options (traced processes' connects) */
	OPT_ITER_ON = 8,   /* connections older than the tracing, given the callbacks */
	OPT_ITER_FAIL = 9, /* ... refused (bpf_setsockopt of the callback flags: 6.13+?) */
	OPT_NOT_AT_START = 10, /* an exact request's first byte is inside a segment: no option */
	OPT_STAT_MAX = 11,
};

/* A connection older than the tracing, listed by user space for the
 * iterator (tcpopt_inodes, by socket inode). */
struct tcpopt_inode {
	__u32 tgid;
	__u8 outgoing; /* the process made it: it writes options too */
	__u8 _pad[3];
};

#endif
