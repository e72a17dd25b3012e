// SPDX-License-Identifier: GPL-2.0
/* sockio: the bytes traced processes read from and write to TCP sockets.
 *
 * Two capture sources write the same events; user space loads one:
 * - sock_tracepoints (Linux 6.3+): the sock_recv_length and
 *   sock_send_length tracepoints (tp_btf) fire only for socket I/O, inside
 *   the syscall, after the data moved (~0.1 us a hit here, against ~0.3 us
 *   for syscall tracepoints, which also fire for every file and pipe, and
 *   ~20 us for a uprobe). The user buffer is found from the syscall's saved
 *   registers.
 * - syscalls (any kernel weft supports, 5.10+): the enter and exit
 *   tracepoints of read, write, readv, writev, recvfrom, sendto, recvmsg
 *   and sendmsg. Entry keeps the call's arguments for traced processes'
 *   TCP sockets (the socket found from the fd with CO-RE reads); exit, with
 *   the byte count, makes the same event. No bpf_loop (5.17+) there: the
 *   request head is searched with a bounded loop, and HTTP/1 bodies are
 *   copied (see capture_io).
 * User space parses the protocol; this side only filters, copies and tags. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "sockio.h"
#include "execsel.h"
#include "inject.h"
#include "tracectx.h"
#include "tcpopt.h"

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define MAX_IOV 32

/* x86_64 syscall numbers whose buffers we know how to read. */
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

char LICENSE[] SEC("license") = "GPL";

DECLARE_PROCS_MAP;

/* Selection at exec (execsel.h): a selected process of an executable
 * already tracked gets its proc_cfg before its first syscall. */
DECLARE_EXEC_TEMPLATES(proc_templates, struct proc_cfg);

/* State per traced TCP socket, keyed by its struct sock address; the entry
 * goes when the socket reaches TCP_CLOSE, before the address can be reused. */
enum { H2_SERVER_UNKNOWN = 0, H2_SERVER_YES = 1, H2_SERVER_NO = 2 }; /* conn.h2_server */

struct conn {
	__u64 conn_id;
	__u32 tgid; /* the process that first used it */
	__u8 last_dir;
	__u8 origin;
	__u8 pending; /* a request line began with a cut-short method */
	__u8 head_left; /* further reads of a request head to search */
	__u8 line_start; /* the last read ended a header line */
	__u8 tls;        /* TLS records: the socket's bytes are ciphertext; the
			  * plaintext comes from the tls source's uprobes */
	__u8 h2_server;  /* H2_SERVER_*: whether its first read was the HTTP/2 client preface */
	__u8 _pad[1];
	/* By direction (dir - 1): bytes of an HTTP/1 Content-Length body
	 * still to come whose copy user space does not need (capture_io). */
	__u32 body_left[2];
	__u8 trace_id[16];
	__u8 span_id[8];
	struct endpoints ep;
	__u32 h2_sid; /* the highest HTTP/2 stream a non-Go client opened on it */
	__u32 send_end; /* write_seq + bytes left at the last send's first tcp_sendmsg_locked */
	__u32 seq0;     /* the sequence number the connection's first byte sent (its SYN) had */
	__u32 rd_sent;  /* the bytes sent (event.sent) when the last read was recorded */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct conn);
} conns SEC(".maps");

DECLARE_GOCTX_MAP;
DECLARE_GOSPAWN_MAP;
DECLARE_GO_ROOTS_MAP;
DECLARE_CLIENT_CTXS_MAP;
DECLARE_H2_IDS_MAP;
DECLARE_H2_READERS_MAP;
/* gogrpc's, shared with gohttp: created here with the others. */
DECLARE_GRPC_PROCS_MAP;
DECLARE_GRPC_STREAMS_MAP;
/* Trace context in TCP header options (tcpopt.bpf.c): sockio owns the
 * maps, the client probe and the sockops program share them. */
DECLARE_TCPOPT_TX_MAP;
DECLARE_TCPOPT_RX_MAP;

/* Whether requests take their parent from a TCP option (the loader sets it
 * when the tcpopt family runs). */
volatile const __u8 tcpopt_on = 0;

DECLARE_EVENTS_MAP;

/* An event plus room for captured bytes. Twice CAPTURE_MAX so that the
 * verifier accepts masked offsets into it. Not a per-CPU array (those cap
 * values at 32 KiB): indexed by CPU, sized by user space. */
struct scratch {
	struct event ev;
	__u8 data[2 * CAPTURE_MAX];
	/* on_io's state across the request-head search, kept here rather
	 * than in registers: see on_io. */
	__u32 scan_n;
	__u32 cap_n;  /* capture_io's count and len, through memory (see there) */
	__u64 cap_len;
	__u8 scan_line_start;
	__u8 scan_starts;
	__u8 _pad[2];
	/* The bpf_loop searches' positions and findings (see tp_scan_next) */
	__u32 tp_pos;
	__u32 body_pos;
	__s32 body_len_at;
	__s32 body_end;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Keep struct event in the BTF so bpf2go mirrors it. */
const struct event *unused_event __attribute__((unused));
const struct h2_ids_event *unused_h2_ids_event __attribute__((unused));
const struct h2_name_event *unused_h2_name_event __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

/* Bytes each CPU has submitted since it last asked the ring how much is
 * pending (submit). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ring_unasked SEC(".maps");

/* Asked once per this many bytes a CPU submits. */
#define QUERY_EVERY (16 << 10)

/* Hands an event to user space, waking its reader once WAKEUP_BYTES are
 * pending (its timer drains the rest). Asking the ring how much is pending
 * reads the consumer's position, a cache line the reader's CPU writes: it
 * took ~200 ns a call here, as much as the rest of a submission. So each
 * CPU asks once per QUERY_EVERY bytes it submitted, which delays a wakeup
 * by at most that much per CPU. */
static __always_inline void submit(void *data, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u32 zero = 0;
	__u64 *unasked = bpf_map_lookup_elem(&ring_unasked, &zero);
	if (unasked) {
		*unasked += size;
		if (*unasked >= QUERY_EVERY) {
			*unasked = 0;
			if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	barrier_var(size);
	if (size > sizeof(struct event) + CAPTURE_MAX)
		return;
	if (bpf_ringbuf_output(&events, data, size, flags))
		count(STAT_RINGBUF_FULL);
}

/* CO-RE reads throughout: the syscall source's tracepoint programs get a
 * plain pointer, which they may not dereference. */
static __always_inline void fill_addrs(struct endpoints *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == AF_INET) {
		bpf_probe_read_kernel(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_probe_read_kernel(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_probe_read_kernel(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* Bytes the injector adds to an HTTP/1 request: traceparent and, when the
 * agent has a cluster name, a tracestate line (inject_added) or, when the
 * request has a tracestate of its own, its member first in that list
 * (inject_merged); the traceparent line alone when that list has the
 * agent's key already. Written by the loader. */
volatile const __u32 inject_added = INJ_HEADER_LEN;
volatile const __u32 inject_merged = INJ_HEADER_LEN;

/* Where the connection's sequence numbers begin, read without the socket
 * lock: the sequence number of its first byte sent (the SYN's) and the
 * first byte received after the SYN. An ACK or data segment handled on
 * another CPU may move both counters of a pair between the two reads
 * (snd_una and bytes_acked, rcv_nxt and bytes_received): each pair is read
 * again until its sequence number stays. Torn, a first transfer looked
 * like a connection found mid-stream (its first exchange dropped). */
#define STABLE_BASE(tp, seq, count)                                              \
	({                                                                       \
		__u32 s_ = BPF_CORE_READ(tp, seq), b_ = 0;                       \
		for (int i_ = 0; i_ < 3; i_++) {                                 \
			b_ = s_ - (__u32)BPF_CORE_READ(tp, count);               \
			__u32 again_ = BPF_CORE_READ(tp, seq);                   \
			if (again_ == s_)                                        \
				break;                                           \
			s_ = again_;                                             \
		}                                                                \
		b_;                                                              \
	})

/* About two microseconds: long enough for another CPU's two adjacent
 * stores to land, short enough for the rare path that takes it (a
 * connection that looked found mid-stream). */
static __always_inline void settle(void)
{
	__u64 t0 = bpf_ktime_get_ns();
	for (int i = 0; i < 64; i++)
		if (bpf_ktime_get_ns() - t0 > 2000)
			break;
}

static __always_inline __u32 send_base(struct tcp_sock *tp)
{
	return STABLE_BASE(tp, snd_una, bytes_acked);
}

static __always_inline __u32 recv_base(struct tcp_sock *tp)
{
	return STABLE_BASE(tp, rcv_nxt, bytes_received);
}

/* Whether this transfer is the first the application made on the socket:
 * only then does the parser know it starts at a message boundary. seq0 is
 * send_base's. */
static __always_inline bool first_transfer(struct sock *sk, __u8 dir, int len, __u32 seq0)
{
	/* get_conn checked that sk is a TCP socket */
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	if (dir == DIR_READ) /* bytes the application consumed */
		return (__u32)(BPF_CORE_READ(tp, copied_seq) - recv_base(tp)) == (__u32)len;
	/* bytes sent (acknowledged or not, the SYN included when this side
	 * sent it) but this send's; the injector may have added its headers
	 * (inject_added, inject_merged or the traceparent line alone) to
	 * this very send */
	__u32 extra = BPF_CORE_READ(tp, write_seq) - seq0 - (__u32)len;
	__u32 a = inject_added, m = inject_merged;
	return extra <= 1 || extra == a || extra == a + 1 || extra == m || extra == m + 1 ||
	       extra == INJ_HEADER_LEN || extra == INJ_HEADER_LEN + 1;
}

static __always_inline bool is_tcp(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ(sk, sk_type) == SOCK_STREAM && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline struct conn *get_conn(struct sock *sk, __u32 tgid, __u8 dir, int len)
{
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		return c;
	if (!is_tcp(sk))
		return 0;
	/* A socket already closed gets no entry: on_state, which drops it,
	 * has run. (A send that a reset interrupts, as on loopback when the
	 * peer closed with unread data, reports its bytes after that; the
	 * entry would outlive the socket and be found by the next one the
	 * kernel allocates at the same address.) */
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		return 0;
	struct conn fresh = {.tgid = tgid};
	fresh.seq0 = send_base((struct tcp_sock *)sk);
	fresh.origin = ORIGIN_NEW;
	if (!first_transfer(sk, dir, len, fresh.seq0)) {
		/* Found mid-stream, or a torn pair (see STABLE_BASE): the kernel
		 * stores a pair's count before its sequence number, so a reader
		 * between the two stores gets a base too small on every re-read,
		 * never too large. Look again once the writer's stores have
		 * landed; only a new connection can change the verdict. */
		settle();
		fresh.seq0 = send_base((struct tcp_sock *)sk);
		if (first_transfer(sk, dir, len, fresh.seq0))
			count(STAT_BASE_SETTLED);
		else
			fresh.origin = ORIGIN_FOUND;
	}
	fresh.conn_id = bpf_ktime_get_ns() ^ ((__u64)bpf_get_prandom_u32() << 32);
	fill_addrs(&fresh.ep, sk);
	bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&conns, &key);
}

/* Go keeps the current goroutine in r14 (ABIInternal); the value saved at
 * syscall entry is the caller's. */
static __always_inline __u64 goid_of(const struct proc_cfg *cfg, __u64 r14)
{
	__u64 goid = 0;
	if (!cfg->goid_offset || !r14)
		return 0;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(r14 + cfg->goid_offset)))
		return 0;
	return goid;
}

/* A socket syscall as the capture needs it: its number, its buffer (or
 * iovec array, or msghdr) and count, and the calling goroutine. */
struct io_call {
	__u64 buf;
	__u64 cnt;
	__u64 goid;
	__u64 g; /* the goroutine's runtime.g, when known (for its parent) */
	__u32 nr;
	__u32 _pad;
};

enum { REQ_NONE = 0, REQ_LINE = 1, REQ_PART = 2 };

/* How read bytes start: REQ_LINE for "METHOD " (an upper-case token of at
 * least min_letters, then a space: every HTTP/1 request line), REQ_PART for
 * upper-case letters only (a method cut short: Go's server reads one byte
 * in a background goroutine between requests), else REQ_NONE. */
static __always_inline int request_start(const __u8 *d, __u32 n, int min_letters)
{
	for (int i = 0; i < 8; i++) {
		if (i >= n)
			return i > 0 ? REQ_PART : REQ_NONE;
		__u8 ch = d[i];
		if (ch == ' ')
			return i >= min_letters ? REQ_LINE : REQ_NONE;
		if (ch < 'A' || ch > 'Z')
			return REQ_NONE;
	}
	return REQ_NONE;
}

#define TP_SCAN 2048 /* bytes of a request head searched for traceparent */
#define HEAD_READS_MAX 3 /* reads after the first searched for it */
#define TP_NAME_LEN 12  /* "traceparent:" */

#define NAME_LEN(s) (sizeof(s) - 1)
#define B3_NAME "b3:"
#define B3_PREFIX "x-b3-" /* the multi headers' names start so */
#define B3_NAME_MAX NAME_LEN(B3_PREFIX "traceid:") /* the longest B3 name */
/* B3 lines the scan notes (b3 and the four X-B3-*): more are ignored. */
#define B3_LINES 5
#define B3_LINE_BITS 12 /* bits of a noted offset: TP_SCAN + 1 fits */

struct tp_scan {
	const __u8 *data;
	__u32 n;
	bool line_start; /* data[0] begins a header line */
	__u32 *pos;      /* tp_scan_next: where the search goes on (in scratch) */
	__s32 at;  /* offset of the header's value, or -1 */
	bool end;  /* the head's blank line is in data */
	/* The lines that start "b3:" or "x-b3-" (any case), noted without
	 * stopping the scan (a traceparent wins): the offset after that
	 * prefix, 0 for none; b3_classify sorts them out after the search.
	 * Only the bpf_loop search notes them (see find_traceparent). */
	__u32 b3_lines[B3_LINES];
	__u32 b3_count;
	/* After b3_classify: offsets of the first b3 and X-B3-* (by
	 * B3_TRACE...) values, or -1. */
	__s32 b3;
	__s32 b3_multi[B3_FIELDS];
};

#define NAME_PART_MAX 8 /* the longest name (part) name_is compares */

/* Whether h starts with name (len <= NAME_PART_MAX bytes, lowercase), in
 * any case. */
static __always_inline bool name_is(const __u8 *h, const char *name, const int len)
{
	for (int k = 0; k < NAME_PART_MAX; k++) {
		if (k >= len)
			break;
		if ((h[k] | 0x20) != name[k])
			return false;
	}
	return true;
}

/* tp_line's note of a B3 line starting at h (offset j). */
static __always_inline void b3_step(struct tp_scan *st, const __u8 *h, __u64 j)
{
	__u32 k = st->b3_count;
	__u64 p;
	if (k >= B3_LINES)
		return;
	if (name_is(h, B3_NAME, NAME_LEN(B3_NAME)))
		p = j + NAME_LEN(B3_NAME);
	else if (name_is(h, B3_PREFIX, NAME_LEN(B3_PREFIX)))
		p = j + NAME_LEN(B3_PREFIX);
	else
		return;
	if (p >= st->n) /* the name goes on past the data */
		return;
	st->b3_lines[k] = p;
	st->b3_count = k + 1;
}

/* Records a B3 value offset, p + len, in *at unless one was found already
 * or the value starts past the data. */
static __always_inline void b3_found(__s32 *at, __u32 p, const int len, __u32 n)
{
	if (*at < 0 && p + len < n)
		*at = p + len;
}

/* Sorts the noted B3 lines into st->b3 and st->b3_multi. */
static __always_inline void b3_classify(const __u8 *data, __u32 n, struct tp_scan *st)
{
	for (int k = 0; k < B3_LINES; k++) {
		__u32 p = st->b3_lines[k];
		if (p == 0 || p > TP_SCAN + 1)
			continue;
		__u64 off = p;
		barrier_var(off); /* keep the mask: clang knows it changes nothing */
		/* r[-1] is inside the scratch value: the event precedes data */
		const __u8 *r = data + (off & ((1 << B3_LINE_BITS) - 1));
		if (r[-1] == ':') { /* "b3:" (the multi prefix ends in '-') */
			b3_found(&st->b3, p, 0, n);
			continue;
		}
		if (name_is(r, "traceid:", NAME_LEN("traceid:")))
			b3_found(&st->b3_multi[B3_TRACE], p, NAME_LEN("traceid:"), n);
		else if (name_is(r, "spanid:", NAME_LEN("spanid:")))
			b3_found(&st->b3_multi[B3_SPAN], p, NAME_LEN("spanid:"), n);
		else if (name_is(r, "sampled:", NAME_LEN("sampled:")))
			b3_found(&st->b3_multi[B3_SAMPLED], p, NAME_LEN("sampled:"), n);
		else if (name_is(r, "flags:", NAME_LEN("flags:")))
			b3_found(&st->b3_multi[B3_FLAGS], p, NAME_LEN("flags:"), n);
		/* Through a helper, the offsets are unknown values: the
		 * paths through this line then have equal states, and the
		 * verifier walks the next line (and the parse) once, not once
		 * per combination of kinds. */
		__s32 at[1 + B3_FIELDS];
		at[0] = st->b3;
		__builtin_memcpy(&at[1], st->b3_multi, sizeof(st->b3_multi));
		bpf_probe_read_kernel(&st->b3, sizeof(at), at);
	}
}

/* At offset j, where a header line starts: is it "traceparent:" (any
 * case), or the blank line that ends the head? B3 lines are noted. True to
 * stop the scan. */
static __always_inline bool tp_line(struct tp_scan *st, __u64 j)
{
	barrier_var(j); /* keep the bound check on the register that indexes */
	if (j >= TP_SCAN || j >= st->n)
		return true;
	const __u8 *h = st->data + j;
	if (h[0] == '\r' || h[0] == '\n') {
		st->end = true;
		return true;
	}
	/* | 0x20 lowers ASCII letters */
	if (j + TP_NAME_LEN + 1 + TP_VALUE_LEN > st->n ||
	    (h[0] | 0x20) != 't' || (h[1] | 0x20) != 'r' || (h[2] | 0x20) != 'a' ||
	    (h[3] | 0x20) != 'c' || (h[4] | 0x20) != 'e' || (h[5] | 0x20) != 'p' ||
	    (h[6] | 0x20) != 'a' || (h[7] | 0x20) != 'r' || (h[8] | 0x20) != 'e' ||
	    (h[9] | 0x20) != 'n' || (h[10] | 0x20) != 't' || h[11] != ':') {
		b3_step(st, h, j);
		return false;
	}
	st->at = j + TP_NAME_LEN;
	return true;
}

#define NEWLINES 0x0a0a0a0a0a0a0a0aULL

/* The index (0-7) of the first '\n' among the 8 bytes at p, 8 for none.
 * Bytes past the data (the scratch buffer's leftovers) may match: callers
 * stop at the data's end. */
static __always_inline __u64 newline_in_word(const __u8 *p)
{
	__u64 w;
	__builtin_memcpy(&w, p, sizeof(w));
	__u64 x = w ^ NEWLINES; /* a '\n' byte becomes 0 */
	__u64 m = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
	if (!m)
		return 8;
	/* The lowest flag is a true '\n' (higher ones may not be): its byte
	 * index k, from the flag alone (1 << 8k times the table puts k in the
	 * top byte). */
	return (((m & -m) >> 7) * 0x0001020304050607ULL) >> 56;
}


/* bpf_loop callback: from *st->pos on, the next line start (a line starts
 * at 0 when data begins one, and after each '\n'), found a word at a time:
 * header lines are tens of bytes long, so most words hold none and cost
 * one test. One line a call, which keeps the callback as small as the
 * verifier needs. Returns 1 to stop the loop.
 *
 * The position is kept in the scratch map, whose memory the verifier does
 * not track: it holds every position as any value (the bound check below
 * reads it), and its walks of the callback, which go on until two states
 * match, match after one round instead of once per position. (On the
 * stack, each position was a state of its own unless written through a
 * helper, which cost ~40 ns a step, ten-odd steps a request head.) */
static long tp_scan_next(__u32 i, void *arg)
{
	struct tp_scan *st = arg;
	__u64 pos = *st->pos;
	barrier_var(pos); /* keep the bound check on the register that indexes */
	if (pos >= TP_SCAN || pos >= st->n)
		return 1;
	if (pos == 0) {
		*st->pos = 1;
		return st->line_start && tp_line(st, 0);
	}
	/* The word before each candidate: bytes pos-1 .. pos+6. A line that
	 * bytes past n start is at or past n, where tp_line stops. */
	__u64 k = newline_in_word(st->data + pos - 1);
	if (k == 8) {
		*st->pos = pos + 8;
		return 0;
	}
	*st->pos = pos + k + 1;
	return tp_line(st, pos + k);
}

/* 1 when x == y, without a branch (BPF has no conditional set). */
static __always_inline __u64 eq(__u64 x, __u64 y)
{
	__u64 d = x ^ y, m = -d;
	barrier_var(m); /* else clang sees d != 0 and makes it a branch */
	return ((d | m) >> 63) ^ 1;
}

/* 1 when x < y, for values far below 2^63, without a branch. */
static __always_inline __u64 lt(__u64 x, __u64 y)
{
	__u64 d = x - y;
	barrier_var(d);
	return d >> 63;
}

/* "\ntrac" and "eparent:" as the scan's windows hold them: the last byte
 * read lowest. */
#define TP_WIN_HI 0x0a74726163ULL
#define TP_WIN_LO 0x65706172656e743aULL

/* tp_scan_next's search for kernels without bpf_loop, in a bounded loop:
 * the verifier walks each of its TP_SCAN iterations and keeps a state for
 * every branch it has not yet taken (8192 at most), so an iteration has a
 * single branch. The last 13 bytes read are kept in two words, letters
 * lowered; a line that starts "traceparent:" or is blank is a match. */
static __always_inline void tp_scan_bounded(struct tp_scan *st)
{
	const __u8 *data = st->data;
	__u64 n = st->n, lo = st->line_start ? '\n' : 0, hi = 0, res = 0xffffffffULL;
	for (__u64 i = 0; i < TP_SCAN; i++) {
		__u64 c = data[i];
		__s64 t = (__s64)c - 'A';
		barrier_var(t);
		c |= (((~t & (t - 26)) >> 63) & 1) << 5; /* A-Z to a-z */
		hi = (hi << 8) | (lo >> 56);
		lo = (lo << 8) | c;
		__u64 in = lt(i, n);
		/* the value after the name must fit too, as tp_line wants */
		__u64 name = eq(lo, TP_WIN_LO) & eq(hi & 0xffffffffffULL, TP_WIN_HI) & lt(i + 57, n + 1);
		__u64 end = in & eq((lo >> 8) & 0xff, '\n') & (eq(c, '\r') | eq(c, '\n'));
		if (name | end | (in ^ 1)) {
			/* at: the value's offset; bit 32: the head ended */
			res = name ? i + 1 : (end << 32) | 0xffffffffULL;
			break;
		}
	}
	/* Each exit of the loop has its own constant i: copied through a
	 * helper, the result is one unknown value, and the states after the
	 * loop merge instead of being walked once per exit. */
	__u64 out = 0xffffffffULL;
	bpf_probe_read_kernel(&out, sizeof(out), &res);
	st->at = (__s32)(__u32)out;
	st->end = out >> 32;
}

/* Scan results: a parsed traceparent, or whether the head may go on in
 * the next read. */
enum { TP_FOUND, TP_HEAD_ENDS, TP_HEAD_GOES_ON };

/* A B3 value found at pos (-1: none) in data[0:n]: its first byte, past
 * one space, and in *avail how many bytes of it were read; 0 if none. */
static __always_inline const __u8 *b3_value(const __u8 *data, __u32 n, __s32 pos, __u32 *avail)
{
	if (pos < 0)
		return 0;
	__u32 at = pos;
	barrier_var(at); /* the bound below on the register that indexes */
	if (at > TP_SCAN + B3_NAME_MAX)
		return 0;
	if (at < n && data[at] == ' ')
		at++;
	if (at >= n)
		return 0;
	*avail = n - at;
	__u64 off = at;
	barrier_var(off); /* keep the mask: clang knows it changes nothing */
	return data + (off & (CAPTURE_MAX - 1));
}

/* The span context the B3 headers the scan found carry: the single
 * header's when valid, else the multi headers'. False when there is none
 * (user space counts the malformed ones). */
static __always_inline bool find_b3(const __u8 *data, __u32 n, const struct tp_scan *st, struct span_ctx *out)
{
	__u32 avail = 0;
	const __u8 *v = b3_value(data, n, st->b3, &avail);
	if (v && parse_b3_single(v, avail, out))
		return true;
	/* The single header's failures meet here as one state (see
	 * b3_classify): the multi parse is walked once. */
	__u32 zero = 0;
	bpf_probe_read_kernel(&avail, sizeof(avail), &zero);
	bpf_probe_read_kernel(out, sizeof(*out), out);
	v = b3_value(data, n, st->b3_multi[B3_TRACE], &avail);
	if (!v || !b3_multi_trace(v, avail, out))
		return false;
	v = b3_value(data, n, st->b3_multi[B3_SPAN], &avail);
	if (!v || !b3_multi_span(v, avail, out))
		return false;
	out->flags = CTX_SAMPLED; /* deferred, unless X-B3-Sampled says */
	v = b3_value(data, n, st->b3_multi[B3_SAMPLED], &avail);
	if (v) {
		int f = b3_multi_sampled(v, avail);
		if (f < 0)
			return false;
		out->flags = f;
	}
	v = b3_value(data, n, st->b3_multi[B3_FLAGS], &avail);
	if (v && b3_multi_debug(v, avail))
		out->flags = CTX_SAMPLED;
	return true;
}

/* Finds a traceparent header in (a piece of) a request head and parses a
 * version-00 value by the W3C rules. User space checks the same header
 * again and counts what it rejects; this copy exists so that calls the
 * request causes carry the caller's trace. line_start says data begins a
 * header line (a head continued from an earlier read). *b3 says whether
 * out holds a B3 context instead: set only when data has no traceparent,
 * whatever is returned (the head may go on, and a traceparent in a later
 * read then wins). */
static __always_inline int find_traceparent(const __u8 *data, __u32 n, bool line_start, struct span_ctx *out,
					    bool *b3, const bool use_loop, __u32 *pos)
{
	struct tp_scan st = {.data = data, .n = n, .line_start = line_start, .pos = pos, .at = -1, .b3 = -1,
			     .b3_multi = {-1, -1, -1, -1}};
	if (use_loop) {
		*pos = 0;
		bpf_loop(TP_SCAN, tp_scan_next, &st, 0);
	} else {
		tp_scan_bounded(&st);
	}
	if (st.end || st.at < 0 || st.at > TP_SCAN + TP_NAME_LEN) {
		/* B3 only where bpf_loop scans: the bounded scan has no room
		 * left for it under the verifier's budget on 5.10 (user space
		 * then ignores B3 too, seeing the kernel did not take it). */
		if (use_loop && st.b3_count) { /* most heads have no B3 line */
			b3_classify(data, n, &st);
			*b3 = find_b3(data, n, &st, out);
		}
		if (st.end)
			return TP_HEAD_ENDS;
		/* Not here; the head goes on unless it outgrew the search. */
		return n > TP_SCAN ? TP_HEAD_ENDS : TP_HEAD_GOES_ON;
	}
	__u32 at = st.at;
	barrier_var(at); /* the bound below on the register that indexes */
	if (at > TP_SCAN + TP_NAME_LEN)
		return TP_HEAD_ENDS;
	if (data[at] == ' ')
		at++;
	if (at + TP_VALUE_LEN + 1 > n)
		return TP_HEAD_ENDS;
	__u64 off = at;
	barrier_var(off); /* keep the mask: clang knows it changes nothing */
	const __u8 *v = data + (off & (CAPTURE_MAX - 1));
	/* Version 00 is exactly 55 characters: anything but the line's end or
	 * whitespace after it makes the header invalid, as user space agrees. */
	if (v[TP_VALUE_LEN] != '\r' && v[TP_VALUE_LEN] != ' ' && v[TP_VALUE_LEN] != '\t')
		return TP_HEAD_ENDS;
	return parse_traceparent(v, out) ? TP_FOUND : TP_HEAD_ENDS;
}

/* A request's first read (len bytes, already consumed): when the socket
 * received a TCP option on the segment that carried the read's first byte,
 * that is the request's parent, as a traceparent header would be. Used
 * once. */
static __always_inline void option_parent(struct sock *sk, int len, struct event *e, struct conn *c)
{
	if (!tcpopt_on)
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	struct tcpopt_rx *rx = cookie ? bpf_map_lookup_elem(&tcpopt_rxs, &cookie) : 0;
	if (!rx)
		return;
	__u32 start = BPF_CORE_READ((struct tcp_sock *)sk, copied_seq) - (__u32)len;
	if (start - rx->seq >= rx->end - rx->seq) {
		count(STAT_OPT_UNMATCHED);
		return;
	}
	__builtin_memcpy(c->trace_id, rx->trace_id, sizeof(c->trace_id));
	__builtin_memcpy(e->parent_id, rx->span_id, sizeof(e->parent_id));
	e->ctx_flags = CTX_LINKED | CTX_TCPOPT | ((rx->flags & 1) ? CTX_SAMPLED : 0);
	bpf_map_delete_elem(&tcpopt_rxs, &cookie);
	count(STAT_OPT_MATCHED);
}

/* ---- non-Go processes: calls linked by thread ----
 * A thread-per-request server (Python, Java servlets, Ruby, PHP-FPM, C/C++
 * workers) reads a request on thread T, calls out on T, answers on T. A
 * process's threads are keyed in goctx as THREAD_KEY | tid: a request read
 * on T is T's serving span until T writes to that socket again (the
 * response); a request T starts writing on another socket meanwhile is its
 * child. An event loop (Node.js, asyncio, Netty) reads a second request
 * before answering the first: from then on its process is in thread_mux
 * and no call of it is linked by thread, never guessed. */
#define THREAD_KEY (1ULL << 63)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* requests read on a thread still serving another */
} thread_mux SEC(".maps");

/* Whether a hook sees sends before their bytes leave (tcp_sendmsg_locked,
 * or the syscalls source's sys_enter): set by the loader. Without one, a
 * thread's call is linked when its bytes are seen and carries no option. */
volatile const __u8 presend_on = 0;

/* The goctx key of the calling thread of a process linked by thread, or 0. */
static __always_inline __u64 thread_owner(const struct proc_cfg *cfg, __u64 pid_tgid)
{
	return (cfg->flags & PROC_THREADS) ? THREAD_KEY | (__u32)pid_tgid : 0;
}

/* Whether h[0:4] starts the HTTP/2 client preface ("PRI * HTTP/2.0"). */
static __always_inline bool h2_preface(const __u8 *h)
{
	return h[0] == 'P' && h[1] == 'R' && h[2] == 'I' && h[3] == ' ';
}

/* A thread's call's IDs: the child of the request the thread serves
 * (sc), else a root. */
static __always_inline void thread_call_ids(struct client_ctx *cc, const struct span_ctx *sc)
{
	if (sc) {
		__builtin_memcpy(cc->trace_id, sc->trace_id, sizeof(cc->trace_id));
		__builtin_memcpy(cc->parent_id, sc->span_id, sizeof(cc->parent_id));
		cc->flags = CTX_LINKED | sample_flags(cc->trace_id, true, sc->flags);
		count(STAT_THREAD_LINKED);
	} else {
		random_bytes(cc->trace_id, 4);
		cc->flags = sample_flags(cc->trace_id, false, 0);
		count(STAT_THREAD_ROOT);
	}
	random_bytes(cc->span_id, 2);
}

/* A thread of a process linked by thread (owner) starts writing head[0:n]
 * on sk (c: its state, or 0 before the first transfer). When that starts a
 * client request, the call gets its IDs here: the child of the request the
 * thread serves, else a root. They are filed for the send's event
 * (client_ctxs) and, when the bytes have not left yet (presend), for the
 * TCP option on the request's first segment (tcpopt_txs). */
static __always_inline void thread_call(struct sock *sk, const struct conn *c, __u32 tgid, __u64 owner,
					const __u8 *head, __u32 n, bool presend)
{
	if (c && c->last_dir == DIR_WRITE)
		return; /* the same message goes on */
	if (request_start(head, n, 3) != REQ_LINE || h2_preface(head))
		return; /* not a request, or the HTTP/2 preface ("PRI * HTTP/2.0") */
	__u64 key = (__u64)sk;
	if (bpf_map_lookup_elem(&client_ctxs, &key))
		return; /* filed by this send already (tcp_sendmsg_locked runs per skb) */
	struct go_key gk = {.tgid = tgid, .goid = owner};
	struct span_ctx *sc = bpf_map_lookup_elem(&thread_mux, &tgid) ? 0 : bpf_map_lookup_elem(&goctx, &gk);
	if (sc && sc->srv == key)
		return; /* a request-looking write on the socket it serves */
	struct client_ctx cc = {};
	thread_call_ids(&cc, sc);
	bpf_map_update_elem(&client_ctxs, &key, &cc, BPF_ANY);
	if (!tcpopt_on || !presend)
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return; /* not connected while traced: its segments carry no option */
	struct tcpopt_tx tx = {.seq = BPF_CORE_READ((struct tcp_sock *)sk, write_seq),
			       .flags = (cc.flags & CTX_SAMPLED) ? 1 : 0};
	__builtin_memcpy(tx.trace_id, cc.trace_id, sizeof(tx.trace_id));
	__builtin_memcpy(tx.span_id, cc.span_id, sizeof(tx.span_id));
	bpf_map_update_elem(&tcpopt_txs, &cookie, &tx, BPF_ANY);
}

/* Files sc as the span the goroutine (or thread) of gk serves. A keep-alive
 * connection's goroutine serves request after request under one key: its
 * entry is overwritten in place, a lookup and a copy, where an LRU update
 * would take a fresh node and unlink the old one (twice the cost, per
 * request). Only gk's own goroutine or thread reads or writes its entry
 * (sockio's reads, the client and spawn probes, on_connect all run on it),
 * so no reader sees half a copy. */
static __always_inline void file_goctx(const struct go_key *gk, const struct span_ctx *sc)
{
	struct span_ctx *cur = bpf_map_lookup_elem(&goctx, gk);
	if (cur) {
		__builtin_memcpy(cur, sc, sizeof(*sc));
		return;
	}
	bpf_map_update_elem(&goctx, gk, sc, BPF_ANY);
}

/* A thread reads a request's first bytes on sk: whether it may serve it as
 * its span. No when it still serves one read on another open socket: an
 * event loop, whose process is then no longer linked by thread. */
static __always_inline bool thread_serves(struct sock *sk, __u32 tgid, __u64 owner)
{
	if (bpf_map_lookup_elem(&thread_mux, &tgid))
		return false;
	struct go_key gk = {.tgid = tgid, .goid = owner};
	struct span_ctx *old = bpf_map_lookup_elem(&goctx, &gk);
	if (!old || old->srv == (__u64)sk)
		return true;
	__u64 srv = old->srv;
	if (!bpf_map_lookup_elem(&conns, &srv))
		return true; /* that socket closed unanswered */
	__u64 one = 1;
	bpf_map_update_elem(&thread_mux, &tgid, &one, BPF_NOEXIST);
	bpf_map_delete_elem(&goctx, &gk);
	count(STAT_THREAD_MUX);
	return false;
}

/* A thread writes to the socket of the request it serves: the response;
 * the calls it makes after it are not that request's. */
static __always_inline void thread_answers(struct sock *sk, __u32 tgid, __u64 owner)
{
	struct go_key gk = {.tgid = tgid, .goid = owner};
	struct span_ctx *sc = bpf_map_lookup_elem(&goctx, &gk);
	if (sc && sc->srv == (__u64)sk)
		bpf_map_delete_elem(&goctx, &gk);
}

/* ---- TLS: ciphertext at the socket, plaintext from the library ----
 * A connection whose first bytes are a TLS record is marked (conn.tls):
 * its socket I/O is never captured. The tls source's uprobes on OpenSSL
 * (SSL_read/SSL_write and their _ex forms) hand on_io the plaintext, for
 * the socket the SSL object uses: known from SSL_set_fd, or from the
 * socket I/O the same thread does inside an SSL call, or, for an SSL
 * object on memory BIOs (Node.js, Python's asyncio, which move the
 * ciphertext themselves), from the socket the thread read ciphertext from
 * just before it (tls_last_read). */

/* An SSL object of a process. */
struct tls_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_key);
	__type(value, __u64); /* struct sock * */
} tls_socks SEC(".maps");

/* A socket whose association was inferred from a read before the call
 * (tls_last_read), not known from SSL_set_fd or I/O inside the call: the
 * next read before a call may correct it (an SSL object's address reused
 * by a new connection). Socket pointers are aligned: bit 0 is free. */
#define TLS_SOCK_INFERRED 1ULL

/* A thread's last ciphertext read outside any SSL call: a program that
 * feeds its SSL objects from memory BIOs reads the socket, then calls
 * SSL_read, SSL_write or SSL_do_handshake on that connection's object, on
 * the same thread. Taken (and removed) by the thread's next such call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct sock * */
} tls_last_read SEC(".maps");

/* A thread inside an SSL read or write: its arguments, for the return. */
struct tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 out; /* SSL_*_ex: where the byte count goes; 0 otherwise */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* The context a TCP option carried to a TLS connection, matched against
 * the ciphertext read that consumed its segment, for the next request
 * read in plaintext. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct tcpopt_rx);
} tls_opts SEC(".maps");

/* tls_opts: the ciphertext read began at the option's segment (a non-Go
 * HTTP/2 server gives it to the first stream the plaintext opens). Bit 0
 * of the flags is the sampled flag. */
#define TLS_OPT_AT_START 0x80

DECLARE_TLS_OPTS_G_MAP;

/* Whether data[0:off] of a read (n bytes of it captured) that begins at a
 * frame boundary holds a client preface and whole HTTP/2 frames of which none opens a stream (SETTINGS,
 * WINDOW_UPDATE, PING...), ending exactly at off. */
#define H2_FRAMES_BEFORE 4
static __always_inline bool h2_no_stream_before(const __u8 *data, __u32 n, __u32 off)
{
	__u32 pos = 0;
	if (n >= 4 && h2_preface(data))
		pos = 24;
	for (int i = 0; i < H2_FRAMES_BEFORE; i++) {
		if (pos == off)
			return true;
		if (pos + 9 > off || pos + 9 > n)
			return false;
		__u64 at = pos;
		barrier_var(at); /* keep the mask: clang knows it changes nothing */
		const __u8 *fh = data + (at & (CAPTURE_MAX - 1));
		if (fh[3] == 1 /* HEADERS */ || fh[3] == 5 /* PUSH_PROMISE */ || fh[3] == 9 /* CONTINUATION */)
			return false;
		pos += 9 + ((__u32)fh[0] << 16 | (__u32)fh[1] << 8 | fh[2]);
	}
	return pos == off;
}

/* h2c: a Go goroutine's read of len plaintext bytes on sk (consumed), the
 * first n of them in data. When it begins at the segment that carried a
 * TCP option (the start of the write the sender put it on), the first
 * HTTP/2 stream the goroutine decodes from it is the one the option is for
 * (gRPC's operateHeaders takes it). So it is, too, when the connection's
 * first read (or the first after the preface) began earlier with frames
 * that open no stream: the client's SETTINGS, which a slow reader gets in
 * one read with the segment after them. The option stays for an HTTP/1
 * request read. */
static __always_inline void h2_read_option(struct sock *sk, __u32 tgid, __u64 goid, int len, const __u8 *data,
					   __u32 n)
{
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	struct tcpopt_rx *rx = cookie ? bpf_map_lookup_elem(&tcpopt_rxs, &cookie) : 0;
	if (!rx)
		return;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 copied = BPF_CORE_READ(tp, copied_seq);
	__u32 start = copied - (__u32)len;
	__u32 off = rx->seq - start;
	if (off != 0) {
		if (off >= (__u32)len)
			return;
		/* Frames are only known to begin where the read does when it is
		 * the connection's first, or the first after the 24-byte preface
		 * (grpc-go reads that alone): bytes the application consumed
		 * before it. */
		__u32 before = start - recv_base(tp);
		if ((before != 0 && before != 24) || !h2_no_stream_before(data, n, off))
			return;
	}
	if (off != 0)
		count(STAT_H2_OPTION_AFTER_FRAMES);
	struct go_key gk = {.tgid = tgid, .goid = goid};
	bpf_map_update_elem(&tls_opts_g, &gk, rx, BPF_ANY);
}

/* HTTP/2: a write of plaintext frames buf[0:len] by goroutine goid (Go
 * TLS's Write, or h2c's write(2) in the syscalls source). When its first
 * HEADERS frame opens a client stream whose IDs the Go probes filed
 * (h2_ids: gRPC's loopy writer, net/http's writeHeaders, the goroutine
 * that writes), that stream's context goes in a TCP option on the write's
 * first segment: a header cannot go into ciphertext, nor into h2c where
 * the kernel cannot insert one (before 5.17). One per write; the receiver
 * gives it to the first stream it decodes from a read that begins there. */
#define H2_SCAN_FRAMES 16
static __always_inline void h2_option(struct sock *sk, __u32 tgid, __u64 goid, __u64 buf, __u64 len)
{
	__u64 off = 0;
	__u8 pre[4];
	if (len >= 24 && !bpf_probe_read_user(pre, sizeof(pre), (void *)buf) && h2_preface(pre))
		off = 24; /* the client preface */
	bool filed = false;
	for (int i = 0; i < H2_SCAN_FRAMES; i++) {
		__u8 fh[9];
		if (off + 9 > len || bpf_probe_read_user(fh, sizeof(fh), (void *)(buf + off)))
			return;
		off += 9 + ((__u32)fh[0] << 16 | (__u32)fh[1] << 8 | fh[2]);
		if (fh[3] != 1 /* HEADERS */)
			continue;
		struct h2_key k = {.tgid = tgid, .goid = goid,
				   .stream_id = ((__u32)(fh[5] & 0x7f) << 24 | (__u32)fh[6] << 16 | (__u32)fh[7] << 8 | fh[8])};
		struct h2_span *ids = bpf_map_lookup_elem(&h2_ids, &k);
		if (filed) {
			if (ids)
				count(STAT_H2_OPTION_SHARED); /* one option per write: this stream goes without */
			continue;
		}
		/* The receiver gives the option to the first stream it decodes:
		 * the write's first HEADERS, or none. */
		if (!ids || (ids->flags & H2_APP_HEADER))
			return; /* not a stream this process opened (a response), or the app's own context */
		__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		if (!cookie)
			return;
		struct tcpopt_tx tx = {.seq = BPF_CORE_READ((struct tcp_sock *)sk, write_seq), .exact = 1,
				       .flags = (ids->flags & CTX_SAMPLED) ? 1 : 0};
		__builtin_memcpy(tx.trace_id, ids->trace_id, sizeof(tx.trace_id));
		__builtin_memcpy(tx.span_id, ids->span_id, sizeof(tx.span_id));
		bpf_map_update_elem(&tcpopt_txs, &cookie, &tx, BPF_ANY);
		count(STAT_H2_OPTION);
		filed = true;
	}
}

/* Record types of a TLS record's first byte: handshake, application data. */
static __always_inline bool is_tls_record(const __u8 *d)
{
	return (d[0] == 0x16 || d[0] == 0x17) && d[1] == 0x03 && d[2] <= 0x04;
}

/* How many whole TLS application-data records the len bytes read into buf
 * begin with, ending exactly at off; 0 if they do not (or are not known:
 * a read whose buffer is not one, records the walk cannot reach). */
#define TLS_RECORDS_BEFORE 3
static __always_inline __u8 tls_records_before(const struct io_call *call, __u32 off, __u16 *rec_len)
{
	if (call->nr != NR_read && call->nr != NR_recvfrom)
		return 0; /* readv, recvmsg: no flat buffer */
	__u32 pos = 0;
	for (int i = 0; i < TLS_RECORDS_BEFORE; i++) {
		__u8 h[5];
		if (bpf_probe_read_user(h, sizeof(h), (void *)(call->buf + pos)))
			return 0;
		if (h[0] != 0x17 || h[1] != 0x03 || h[2] > 0x04)
			return 0;
		rec_len[i] = (__u16)h[3] << 8 | h[4];
		pos += 5 + rec_len[i];
		if (pos == off)
			return i + 1;
		if (pos > off)
			return 0;
	}
	return 0;
}

/* Ciphertext moved on a TLS connection: no event. Inside an SSL call the
 * thread's SSL object uses this socket; a read may consume the segment
 * that carried a TCP option, kept for the request the plaintext starts. */
static __always_inline void tls_socket_io(struct sock *sk, struct conn *c, __u64 pid_tgid, __u8 dir, int len,
					  const struct io_call *call)
{
	__u64 goid = call->goid;
	struct tls_call *tc = bpf_map_lookup_elem(&tls_calls, &pid_tgid);
	if (tc) {
		struct tls_key k = {.tgid = pid_tgid >> 32, .ssl = tc->ssl};
		__u64 v = (__u64)sk;
		bpf_map_update_elem(&tls_socks, &k, &v, BPF_ANY);
	} else if (dir == DIR_READ && !goid) {
		__u64 v = (__u64)sk;
		bpf_map_update_elem(&tls_last_read, &pid_tgid, &v, BPF_ANY);
	}
	if (dir != DIR_READ || !tcpopt_on)
		return;
	struct go_key gk = {.tgid = pid_tgid >> 32, .goid = goid};
	if (goid)
		bpf_map_delete_elem(&tls_opts_g, &gk); /* the last read's, unclaimed */
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	struct tcpopt_rx *rx = cookie ? bpf_map_lookup_elem(&tcpopt_rxs, &cookie) : 0;
	if (!rx)
		return;
	__u32 start = BPF_CORE_READ((struct tcp_sock *)sk, copied_seq) - (__u32)len;
	__u32 end = start + (__u32)len;
	/* the option's segment lies in this read's bytes */
	if (rx->seq - start >= end - start)
		return;
	__u64 key = (__u64)sk;
	struct tcpopt_rx kept = *rx;
	if (rx->seq == start) {
		kept.flags |= TLS_OPT_AT_START;
	} else if (!goid && c->h2_server == H2_SERVER_YES) {
		/* A non-Go HTTP/2 server's read that began with whole records
		 * before the option's segment (a SETTINGS ACK or PING its own
		 * record and segment, sent just before the stream): the
		 * plaintext read after theirs begins at the option's record
		 * (OpenSSL's SSL_read returns one record's plaintext at most). */
		kept.skip = tls_records_before(call, rx->seq - start, kept.rec_len);
		if (kept.skip) {
			kept.flags |= TLS_OPT_AT_START;
			count(STAT_TLS_OPT_AFTER_RECORDS);
		}
	}
	bpf_map_update_elem(&tls_opts, &key, &kept, BPF_ANY);
	/* HTTP/2: only a read that begins at the option's segment (the start
	 * of the write that carried it) tells which stream it is for: the
	 * first the goroutine decodes from it. Any other is left unmatched. */
	if (goid && rx->seq == start)
		bpf_map_update_elem(&tls_opts_g, &gk, rx, BPF_ANY);
	bpf_map_delete_elem(&tcpopt_rxs, &cookie);
}

/* A request's first plaintext read on a TLS connection: the option a
 * ciphertext read kept for it is its parent. */
static __always_inline void tls_option_parent(struct sock *sk, struct event *e, struct conn *c)
{
	if (!tcpopt_on)
		return;
	__u64 key = (__u64)sk;
	struct tcpopt_rx *rx = bpf_map_lookup_elem(&tls_opts, &key);
	if (!rx)
		return;
	__builtin_memcpy(c->trace_id, rx->trace_id, sizeof(c->trace_id));
	__builtin_memcpy(e->parent_id, rx->span_id, sizeof(e->parent_id));
	e->ctx_flags = CTX_LINKED | CTX_TCPOPT | ((rx->flags & 1) ? CTX_SAMPLED : 0);
	bpf_map_delete_elem(&tls_opts, &key);
	count(STAT_OPT_MATCHED);
}

/* Copies up to CAPTURE_MAX of the first `total` bytes described by an iovec
 * array (iov_addr, in the user's memory) into this CPU's scratch data;
 * returns the number copied. A global function: the verifier checks its
 * loop once, and its caller gets one unknown count, not a state per
 * iovec. Inlined, the loop's states multiplied over all of on_io that
 * follows: on_recv took 407k instructions (0.7 s) to verify, 140k without
 * the loop; on_send 126k, 5.5k without. */
__attribute__((noinline)) __u32 copy_iov(__u64 iov_addr, __u32 iovcnt, __u64 total)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	const struct iovec *iov = (const struct iovec *)iov_addr;
	__u32 off = 0;
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= iovcnt || off >= CAPTURE_MAX || off >= total)
			break;
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		__u64 n = v.iov_len;
		if (n > total - off)
			n = total - off;
		if (n > CAPTURE_MAX - off)
			n = CAPTURE_MAX - off;
		/* Bounds the verifier can see: clang would fold plain checks. */
		__u32 o = off;
		barrier_var(o);
		barrier_var(n);
		o &= CAPTURE_MAX - 1;
		if (n == 0 || n > CAPTURE_MAX)
			break;
		if (bpf_probe_read_user(s->data + o, n, v.iov_base)) {
			count(STAT_CAPTURE_FAULT);
			break;
		}
		off += n;
	}
	return off;
}

/* Copies the start of the syscall's user buffer, found from its number and
 * saved arguments. */
static __always_inline __u32 capture(__u8 *data, const struct io_call *call, __u64 len)
{
	__u64 ptr = call->buf, iov = 0;
	__u32 iovcnt = 0;
	switch (call->nr) {
	case NR_read:
	case NR_write:
	case NR_recvfrom:
	case NR_sendto: {
		__u64 want = len < CAPTURE_MAX ? len : CAPTURE_MAX;
		barrier_var(want);
		if (want > CAPTURE_MAX)
			want = CAPTURE_MAX;
		if (want && bpf_probe_read_user(data, want, (void *)ptr) == 0)
			return want;
		count(STAT_CAPTURE_FAULT);
		return 0;
	}
	case NR_readv:
	case NR_writev:
		iov = ptr;
		iovcnt = call->cnt;
		break;
	case NR_recvmsg:
	case NR_sendmsg: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)ptr))
			return 0;
		iov = (__u64)m.msg_iov;
		iovcnt = m.msg_iovlen;
		break;
	}
	}
	if (!iov) {
		count(STAT_UNKNOWN_SYSCALL); /* io_uring, sendfile, splice, recvmmsg... */
		return 0;
	}
	/* Into data: s->data, which copy_iov finds itself. */
	__u32 got = copy_iov(iov, iovcnt, len);
	return got < CAPTURE_MAX ? got : CAPTURE_MAX;
}

/* ---- HTTP/1 bodies not copied ----
 * User space needs a message's head and its framing, not the bytes of a
 * Content-Length body: a gap there (an event's len beyond what it
 * captured) keeps the framing (httpwire). So a call that starts an HTTP/1
 * message has its head searched for the body's length (when the call is
 * long, or holds nothing but the head: a body to follow in calls of its
 * own), and the body's bytes past this call are not copied: the calls
 * that carry them give user space their length and a peek. A long call
 * that starts such a message copies only its first BODY_SCAN bytes.
 * Chunked bodies (their sizes lie among the data), heads longer than the
 * search and calls that do not start a message are copied as before.
 * Needs bpf_loop (the sock_tracepoints source). */
#define BODY_SCAN 2048     /* bytes of a head searched; a long call's first copy */
#define BODY_SCAN_MIN 1024 /* shorter calls with body bytes are not searched */
#define BODY_PEEK 8        /* bytes copied of a call inside a body */

/* The position and the offsets found are in the scratch map, as
 * tp_scan_next's: any value to the verifier, so its walks of the callback
 * match after a round (on the stack, written plainly, the offsets' ranges
 * kept them apart: 500k instructions). */
struct body_scan {
	const __u8 *data;
	__u32 n;
	bool coded;     /* Transfer-Encoding, or a second Content-Length: not ours */
	__u32 *pos;     /* where the search goes on */
	__s32 *len_at;  /* offset of the Content-Length value, or -1 */
	__s32 *end;     /* offset of the body (after the blank line), or -1 */
};

/* The header line at j: true stops the search. */
static __always_inline bool body_line(struct body_scan *st, __u64 j)
{
	barrier_var(j); /* keep the bound check on the register that indexes */
	if (j >= BODY_SCAN || j >= st->n)
		return true;
	const __u8 *h = st->data + j;
	if (h[0] == '\n' || h[0] == '\r') {
		if (h[0] == '\n')
			*st->end = j + 1;
		else if (j + 1 < st->n && h[1] == '\n')
			*st->end = j + 2;
		return true;
	}
	if (j + 18 > st->n) /* too short for either name: the blank line may follow */
		return false;
	if (name_is(h, "content-", 8) && name_is(h + 8, "length:", 7)) {
		if (*st->len_at >= 0)
			st->coded = true;
		*st->len_at = j + 15;
		return st->coded;
	}
	if (name_is(h, "transfer", 8) && h[8] == '-' && name_is(h + 9, "encoding", 8) && h[17] == ':') {
		st->coded = true;
		return true;
	}
	return false;
}

/* bpf_loop callback: the next line start from st->pos (as tp_scan_next). */
static long body_scan_next(__u32 i, void *arg)
{
	struct body_scan *st = arg;
	__u64 pos = *st->pos;
	barrier_var(pos);
	if (pos == 0 || pos >= BODY_SCAN || pos >= st->n)
		return 1;
	__u64 k = newline_in_word(st->data + pos - 1);
	if (k == 8) {
		*st->pos = pos + 8;
		return 0;
	}
	*st->pos = pos + k + 1;
	return body_line(st, pos + k);
}

/* Where the message starting at this CPU's scratch data (n bytes
 * captured) ends: its head's length plus its Content-Length, or -1 when
 * that is not known from these bytes. A global function: verified once. */
__attribute__((noinline)) __s64 body_end(__u32 n)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return -1;
	s->body_pos = 1;
	s->body_len_at = -1;
	s->body_end = -1;
	struct body_scan st = {.data = s->data, .n = n, .pos = &s->body_pos, .len_at = &s->body_len_at, .end = &s->body_end};
	bpf_loop(BODY_SCAN / 8 + 64, body_scan_next, &st, 0);
	__s32 len_at = s->body_len_at, end = s->body_end;
	if (st.coded || len_at < 0 || end < 0 || len_at >= end)
		return -1;
	/* Spaces, digits, spaces, then the line's end: one loop each, so that
	 * the verifier's paths add up rather than multiply. */
	__u64 p = (__u32)len_at;
	for (int k = 0; k < 4; k++) {
		barrier_var(p);
		if (p >= n || p >= BODY_SCAN + 32)
			return -1;
		if (s->data[p] != ' ' && s->data[p] != '\t')
			break;
		p++;
	}
	__s64 v = 0;
	int digits = 0;
	for (int k = 0; k < 16; k++) {
		barrier_var(p);
		if (p >= n || p >= BODY_SCAN + 32)
			return -1;
		__u8 ch = s->data[p];
		if (ch < '0' || ch > '9')
			break;
		v = v * 10 + (ch - '0');
		digits++;
		p++;
	}
	if (!digits || digits > 15)
		return -1;
	for (int k = 0; k < 4; k++) {
		barrier_var(p);
		if (p >= n || p >= BODY_SCAN + 32)
			return -1;
		__u8 ch = s->data[p];
		if (ch == '\r' || ch == '\n')
			return end + v;
		if (ch != ' ' && ch != '\t')
			return -1;
		p++;
	}
	return -1;
}

/* Whether d starts an HTTP/1 message: a request or a status line; peek
 * also takes a cut-short method or the status line's first bytes. */
static __always_inline bool message_start(const __u8 *d, __u32 n, bool peek)
{
	int r = request_start(d, n, 3);
	if (r == REQ_LINE || (peek && r == REQ_PART))
		return true;
	if (n < 7)
		return peek && n > 0 && d[0] == 'H';
	return d[0] == 'H' && d[1] == 'T' && d[2] == 'T' && d[3] == 'P' && d[4] == '/' && d[5] == '1' &&
	       d[6] == '.';
}

/* What body_then decides: keep the bytes copied or copy the whole call
 * (BODY_AGAIN), and the body bytes still to come after this call in the
 * low 32 bits. */
#define BODY_AGAIN (1ULL << 63)
#define BODY_SKIPPED (1ULL << 62) /* counted: a call left out inside a body */
#define BODY_CUT (1ULL << 61)     /* counted: a long call copied to its head */

/* capture_io's decision, a global function: its paths come back to on_io
 * as one number (inlined, they took on_recv's verification from 138k to
 * 945k instructions). n of a call's len bytes are in this CPU's scratch
 * data; left: the body bytes the socket's direction still expected. Inside
 * a body the call is left out unless it starts a message (the body was not
 * what its head said: a HEAD request's, a 304's), or goes on past the
 * body's end: then it is copied whole, and searched as any call outside a
 * body. */
__attribute__((noinline)) __u64 body_then(__u32 n, __u64 len, __u32 left)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s || n > CAPTURE_MAX)
		return 0;
	if (left) {
		if (!n || message_start(s->data, n, true) || len > left)
			return BODY_AGAIN;
		return BODY_SKIPPED | (left - len);
	}
	__u64 cut = len > 2 * BODY_SCAN ? BODY_AGAIN : 0;
	if (n < 16 || !message_start(s->data, n, false))
		return cut;
	if (!cut && len < BODY_SCAN_MIN) {
		/* A short call: searched only if it holds the head alone, and
		 * is not a GET's (whose body, if any, is not worth the search
		 * on every request). */
		if (s->data[0] == 'G' && s->data[1] == 'E' && s->data[2] == 'T' && s->data[3] == ' ')
			return 0;
		__u64 tail = n;
		barrier_var(tail);
		if (tail < 4 || tail > CAPTURE_MAX)
			return 0;
		const __u8 *t = s->data + tail - 4;
		if (t[0] != '\r' || t[1] != '\n' || t[2] != '\r' || t[3] != '\n')
			return 0;
	}
	__s64 end = body_end(n);
	if (end < 0 || (cut && end < (__s64)len))
		return cut; /* unknown, or another message follows in this call */
	__u64 more = end - (__s64)len > 0 && end - (__s64)len < 0xffffffffLL ? end - len : 0;
	return more | (cut ? BODY_CUT : 0);
}

/* Copies what user space needs of a call of len bytes on c in dir into
 * s->data; returns the bytes copied. With_bodies: whether HTTP/1 bodies
 * may be left out (needs bpf_loop): a peek inside a body, a long call's
 * head, else the call; then body_then says whether to copy it whole after
 * all, and what of the body is still to come. */
static __always_inline __u32 capture_io(struct scratch *s, struct conn *c, const struct io_call *call, __u64 len,
					__u8 dir, const bool with_bodies)
{
	if (!with_bodies)
		return capture(s->data, call, len);
	/* len through memory: the tests below then bound a copy, not the
	 * caller's len, which stays one value for the rest of on_io. */
	s->cap_len = len;
	len = *(volatile __u64 *)&s->cap_len;
	__u32 d = (dir - 1) & 1;
	__u32 left = c->body_left[d];
	__u64 want = left ? BODY_PEEK : len > 2 * BODY_SCAN ? BODY_SCAN : len;
	__u32 n = capture(s->data, call, want < len ? want : len);
	__u64 r = body_then(n, len, left);
	if (r & BODY_AGAIN) {
		if (want < len)
			n = capture(s->data, call, len);
		/* a message after a peek: its head searched (copied whole: no cut) */
		r = left ? body_then(n, len, 0) & ~BODY_CUT : 0;
	}
	c->body_left[d] = (__u32)r;
	if (r & BODY_SKIPPED)
		count(STAT_BODY_SKIPPED);
	if (r & BODY_CUT)
		count(STAT_BODY_CUT);
	/* Through memory, which the verifier does not track: the paths above
	 * reach the rest of on_io as one state. */
	s->cap_n = n;
	n = *(volatile __u32 *)&s->cap_n;
	return n < CAPTURE_MAX ? n : CAPTURE_MAX;
}

/* "PRI * HT", the start of the HTTP/2 client preface, as a little-endian word. */
#define H2_PREFACE_START 0x5448202a20495250ULL

/* Whether data starts like an HTTP/2 frame header {length:24, type:8,
 * flags:8, R:1, stream:31}: a known type, a length Go's server accepts,
 * the reserved bit clear. Go's framer reads each header on its own (9
 * bytes), so a reader's reads start at frame boundaries. */
static __always_inline bool h2_frame_head(const __u8 *data, __u32 n)
{
	if (n < 9)
		return false;
	__u32 len = (__u32)data[0] << 16 | (__u32)data[1] << 8 | data[2];
	return data[3] <= 9 && len <= (1 << 20) && !(data[5] & 0x80);
}

/* A Go HTTP/2 server connection's reads: the first is the client preface;
 * each later one files its goroutine as the reader of the goroutine that
 * started it (net/http's serve goroutine), for gohttp's processHeaders
 * probe to name the stream's IDs as sockio's user space will look them up.
 * A connection open before it was traced (an agent restart) has no
 * preface to see: a read that starts with a frame header makes it one. A
 * client connection taken for a server's costs a map entry no probe reads
 * (no serve goroutine is its reader's parent). */
static __always_inline void note_h2_reader(const struct proc_cfg *cfg, struct conn *c, __u32 tgid,
					   const struct io_call *call, const __u8 *data, __u32 n)
{
	bool first = false;
	if (c->h2_server == H2_SERVER_UNKNOWN) {
		__u64 w = 0;
		if (n >= 8)
			__builtin_memcpy(&w, data, 8);
		if (w == H2_PREFACE_START) {
			c->h2_server = H2_SERVER_YES;
			first = true;
		} else if (c->origin == ORIGIN_NEW) {
			c->h2_server = H2_SERVER_NO; /* its first read decides */
			return;
		} else if (h2_frame_head(data, n)) {
			c->h2_server = H2_SERVER_YES;
		} else {
			return; /* found mid-life: perhaps a later read tells */
		}
	}
	if (c->h2_server != H2_SERVER_YES || !cfg->parent_goid_offset)
		return;
	struct go_key k = {.tgid = tgid};
	if (bpf_probe_read_user(&k.goid, sizeof(k.goid), (void *)(call->g + cfg->parent_goid_offset)) ||
	    !k.goid || k.goid == call->goid)
		return;
	if (!first) {
		__u64 *r = bpf_map_lookup_elem(&h2_readers, &k);
		if (!r || *r != call->goid) /* one reader a connection: mostly known */
			bpf_map_update_elem(&h2_readers, &k, &call->goid, BPF_ANY);
		return;
	}
	/* The preface is read by a goroutine of its own (net/http's
	 * readPreface), and over TLS the record that brought it may have
	 * brought the first stream's HEADERS too, with the option: that is
	 * the serve goroutine's to take, not this one's. */
	struct go_key me = {.tgid = tgid, .goid = call->goid};
	struct tcpopt_rx *rx = bpf_map_lookup_elem(&tls_opts_g, &me);
	if (rx) {
		bpf_map_update_elem(&tls_opts_g, &k, rx, BPF_ANY);
		bpf_map_delete_elem(&tls_opts_g, &me);
	}
}

/* ---- non-Go HTTP/2: a stream's context in a TCP option ----
 * A process not linked by goroutine (Node.js's http2, C and Python
 * HTTP/2 clients) writes HTTP/2 frames, in plaintext or into its TLS
 * library: the first HEADERS of a write that opens a stream of its own (an
 * odd stream ID above the highest it opened on that connection) is a call,
 * whose IDs are made here as thread_call makes an HTTP/1 request's: the
 * child of the request the thread serves, else a root. They are filed for
 * the write's event (user space gives them to the first stream the write
 * opens) and, before the bytes leave, for an exact TCP option on the
 * write's first segment: the receiver gives it to the first stream opened
 * by a read that begins there. One a write: the write's other new streams
 * go without (counted). */
/* Where a send's bytes are: buf[0:len], then, when iov is set, the
 * iovecs after it (iov[1 .. nr), an array in kernel memory when kiov, else
 * in the user's). The iovecs' bases are the user's. */
struct send_bufs {
	__u64 buf, len;
	const struct iovec *iov;
	__u32 nr;
	bool kiov;
};

/* Frames' headers or iovecs a send's scan looks at, in all. */
#define H2_SCAN_STEPS (H2_SCAN_FRAMES + 8)

/* h2_scan_send's flags, above the iovec count. */
#define SCAN_KIOV (1U << 31)	/* the iovec array is in kernel memory */
#define SCAN_PREFACE (1U << 30) /* the send starts with the client preface */

/* The first stream a send opens (low 32 bits; 0: none) and the highest
 * (high 32 bits) of the client streams above last its HEADERS frames
 * open, from the frames' headers at the start of the send (send_bufs:
 * buf[0:len], then the iovecs iov[1 .. nr) when iov is set; nr_flags: nr
 * and SCAN_*). A global function: the verifier checks it once, not once
 * for each state of the program that calls it. */
__attribute__((noinline)) __u64 h2_scan_send(__u64 buf, __u64 len, __u64 iov_addr, __u32 nr_flags, __u32 last)
{
	const struct iovec *iov = (const struct iovec *)iov_addr;
	bool kiov = nr_flags & SCAN_KIOV;
	__u32 nr = nr_flags & (SCAN_PREFACE - 1);
	/* Logical offsets into the send: next, the next frame's header
	 * (after the 24-byte preface, if it starts the send); at, where the
	 * current piece (base[0:len]) starts. A frame header cut by a
	 * piece's end stops the scan. */
	__u64 next = (nr_flags & SCAN_PREFACE) ? 24 : 0, at = 0, base = buf;
	__u32 top = last, sid = 0, piece = 0;
	for (int i = 0; i < H2_SCAN_STEPS; i++) {
		if (next + 9 <= at + len) {
			__u8 fh[9];
			if (bpf_probe_read_user(fh, sizeof(fh), (void *)(base + (next - at))) || !h2_frame_head(fh, 9))
				break;
			next += 9 + ((__u32)fh[0] << 16 | (__u32)fh[1] << 8 | fh[2]);
			if (fh[3] != 1 /* HEADERS */)
				continue;
			__u32 id = (__u32)(fh[5] & 0x7f) << 24 | (__u32)fh[6] << 16 | (__u32)fh[7] << 8 | fh[8];
			if (!(id & 1) || id <= last)
				continue; /* not a stream of a client's, or trailers */
			if (sid)
				count(STAT_H2_CALL_SHARED);
			else
				sid = id;
			if (id > top)
				top = id;
			continue;
		}
		if (next < at + len || !iov || ++piece >= nr)
			break; /* a header cut in two, or the send's end */
		struct iovec v = {};
		if (kiov ? bpf_probe_read_kernel(&v, sizeof(v), &iov[piece & 1023]) :
			   bpf_probe_read_user(&v, sizeof(v), &iov[piece & 1023]))
			break;
		at += len;
		base = (__u64)v.iov_base;
		len = v.iov_len;
	}
	return (__u64)top << 32 | sid;
}

static __always_inline void h2_thread_call(struct sock *sk, struct conn *c, __u32 tgid, __u64 owner,
					   const struct send_bufs *b, bool preface)
{
	__u64 key = (__u64)sk;
	if (c ? c->h2_server != H2_SERVER_NO || c->origin != ORIGIN_NEW : !preface)
		return; /* only where it is known to be the client (not seen yet: a
			 * client's first send starts with the preface); a
			 * server's HEADERS are responses */
	if (bpf_map_lookup_elem(&client_ctxs, &key))
		return; /* filed by this send already (tcp_sendmsg_locked runs per skb) */
	__u32 last = c ? c->h2_sid : 0;
	__u64 r = h2_scan_send(b->buf, b->len, (__u64)b->iov,
			       (b->nr & (SCAN_PREFACE - 1)) | (b->kiov ? SCAN_KIOV : 0) | (preface ? SCAN_PREFACE : 0), last);
	__u32 sid = (__u32)r, top = r >> 32;
	if (c && top > c->h2_sid)
		c->h2_sid = top;
	if (!sid)
		return;
	count(STAT_H2_CALL);
	struct go_key gk = {.tgid = tgid, .goid = owner};
	struct span_ctx *sc = bpf_map_lookup_elem(&thread_mux, &tgid) ? 0 : bpf_map_lookup_elem(&goctx, &gk);
	if (sc && sc->srv == key)
		sc = 0;
	struct client_ctx cc = {};
	thread_call_ids(&cc, sc);
	bpf_map_update_elem(&client_ctxs, &key, &cc, BPF_ANY);
	if (!tcpopt_on)
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return;
	struct tcpopt_tx tx = {.seq = BPF_CORE_READ((struct tcp_sock *)sk, write_seq), .exact = 1,
			       .flags = (cc.flags & CTX_SAMPLED) ? 1 : 0};
	struct tcpopt_tx *old = bpf_map_lookup_elem(&tcpopt_txs, &cookie);
	if (old && old->state != TX_DONE && old->seq == tx.seq) {
		/* A program that holds back its ciphertext (a memory BIO)
		 * wrote another stream at this sequence whose bytes have not
		 * left: which one the segment there starts is unknown. */
		old->state = TX_DONE;
		count(STAT_H2_OPT_SAME_SEQ);
		return;
	}
	__builtin_memcpy(tx.trace_id, cc.trace_id, sizeof(tx.trace_id));
	__builtin_memcpy(tx.span_id, cc.span_id, sizeof(tx.span_id));
	bpf_map_update_elem(&tcpopt_txs, &cookie, &tx, BPF_ANY);
}

/* A thread of a process linked by thread starts sending head[0:9] on sk,
 * the start of b: an HTTP/1 request or HTTP/2 streams it opens get their
 * IDs. */
static __always_inline void thread_send(struct sock *sk, struct conn *c, __u32 tgid, __u64 owner, const __u8 *head,
					const struct send_bufs *b)
{
	/* HTTP/2: the client preface or a frame header (no HTTP/1 method's
	 * letters make a frame length HTTP/2 allows). */
	bool preface = h2_preface(head);
	if (preface || h2_frame_head(head, 9))
		h2_thread_call(sk, c, tgid, owner, b, preface);
	else
		thread_call(sk, c, tgid, owner, head, 9, true);
}

/* A non-Go process's read on a connection it serves HTTP/2 on: when the
 * read begins at the segment that carried a TCP option (plaintext: the
 * option waits in tcpopt_rxs; TLS: the ciphertext read that began there
 * kept it in tls_opts), the option is the parent of the first stream the
 * read opens, and goes with the read's event. An option whose segment lies
 * inside a read is for no stream known: dropped, counted. */
static __always_inline void h2_server_option(struct sock *sk, int len, struct event *e, struct conn *c, bool plain,
					     const __u8 *data, __u32 n)
{
	if (!tcpopt_on)
		return;
	struct tcpopt_rx *rx;
	__u64 key = (__u64)sk, cookie = 0;
	bool at_start;
	if (plain) {
		rx = bpf_map_lookup_elem(&tls_opts, &key);
		if (!rx)
			return;
		if (rx->skip) {
			/* The plaintext of a record before the option's: one
			 * whole frame that opens no stream, or the option is
			 * for no stream known. */
			__u32 flen = n >= 9 ? ((__u32)data[0] << 16 | (__u32)data[1] << 8 | data[2]) : 0;
			/* A whole record's plaintext: its length less an AEAD's
			 * overhead (TLS 1.3: type and tag, 17; 1.2: nonce and
			 * tag, 24, or 16), not a part of it read alone. */
			__u32 rec = rx->rec_len[0];
			if (n >= 9 && data[3] != 1 /* HEADERS */ && data[3] != 5 /* PUSH_PROMISE */ &&
			    data[3] != 9 /* CONTINUATION */ && 9 + flen == (__u32)len && (__u32)len + 16 <= rec &&
			    (__u32)len + 24 >= rec) {
				rx->skip--;
				rx->rec_len[0] = rx->rec_len[1];
				rx->rec_len[1] = rx->rec_len[2];
				return;
			}
			rx->flags &= ~TLS_OPT_AT_START;
		}
		at_start = rx->flags & TLS_OPT_AT_START;
	} else {
		cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
		rx = cookie ? bpf_map_lookup_elem(&tcpopt_rxs, &cookie) : 0;
		if (!rx)
			return;
		__u32 start = BPF_CORE_READ((struct tcp_sock *)sk, copied_seq) - (__u32)len;
		if (rx->seq - start >= (__u32)len)
			return; /* its segment is still to come */
		at_start = rx->seq == start;
	}
	if (at_start) {
		__builtin_memcpy(c->trace_id, rx->trace_id, sizeof(c->trace_id));
		__builtin_memcpy(e->parent_id, rx->span_id, sizeof(e->parent_id));
		e->ctx_flags = CTX_LINKED | CTX_TCPOPT | CTX_H2_AT_START | ((rx->flags & 1) ? CTX_SAMPLED : 0);
		count(STAT_H2_OPT_MATCHED);
	} else {
		count(STAT_H2_OPT_UNMATCHED);
	}
	if (plain)
		bpf_map_delete_elem(&tls_opts, &key);
	else
		bpf_map_delete_elem(&tcpopt_rxs, &cookie);
}

/* One socket read or write of len bytes by a traced process (cfg), made
 * by call: the event, its captured bytes and the kernel's span IDs.
 * use_loop: whether the head search runs in bpf_loop (and reads B3);
 * bodies: whether HTTP/1 bodies may be left out (capture_io, bpf_loop). */
static __always_inline int on_io(struct sock *sk, __u64 pid_tgid, const struct proc_cfg *cfg, int len, __u8 dir,
				 const struct io_call *call, const bool use_loop, const bool bodies, const bool plain)
{
	__u32 tgid = pid_tgid >> 32;
	struct conn *c = get_conn(sk, tgid, dir, len);
	if (!c)
		return 0;
	if (!plain && c->tls) {
		tls_socket_io(sk, c, pid_tgid, dir, len, call);
		return 0;
	}
	if (plain)
		c->tls = 1; /* its socket I/O, if first seen now, is ciphertext */
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	struct event *e = &s->ev;
	__u64 now = bpf_ktime_get_ns();
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = EV_DATA;
	e->dir = dir;
	e->origin = c->origin;
	e->tgid = tgid;
	e->tid = (__u32)pid_tgid;
	e->conn_id = c->conn_id;
	e->ts_ns = now;
	e->goid = call->goid;
	e->len = len;
	e->ep = c->ep;
	e->tls = plain;
	/* Not a TLS library's plaintext: its calls need not move the
	 * socket's bytes (Go's writes are seen at their entry, a memory BIO
	 * leaves the socket I/O to the program). */
	e->sent = BPF_CORE_READ((struct tcp_sock *)sk, write_seq) - c->seq0;
	e->stamped = !plain;
	/* Who serves the requests read here: the goroutine, or the thread of
	 * a process linked by thread. */
	__u64 owner = call->goid ? call->goid : thread_owner(cfg, pid_tgid);

	__u32 n = capture_io(s, c, call, len, dir, bodies);
	e->captured = n;
	if (!plain && !c->last_dir && n >= 3 && is_tls_record(s->data)) {
		/* A TLS connection: its bytes are ciphertext, never parsed. */
		c->tls = 1;
		count(STAT_TLS_CONNS);
		tls_socket_io(sk, c, pid_tgid, dir, len, call);
		return 0;
	}

	if (dir == DIR_READ && call->g) {
		note_h2_reader(cfg, c, tgid, call, s->data, n);
	} else if (!call->goid && c->h2_server == H2_SERVER_UNKNOWN && c->origin == ORIGIN_NEW) {
		/* Not Go: whether it serves HTTP/2 here, from its first read,
		 * or is a client, from a first write with the preface. */
		__u64 w = 0;
		if (n >= 8)
			__builtin_memcpy(&w, s->data, 8);
		if (dir == DIR_READ)
			c->h2_server = w == H2_PREFACE_START ? H2_SERVER_YES : H2_SERVER_NO;
		else if (w == H2_PREFACE_START)
			c->h2_server = H2_SERVER_NO;
	}
	/* A non-Go HTTP/2 server's reads take an option only at its segment's
	 * start, whatever came before. */
	bool h2_srv = dir == DIR_READ && !call->goid && c->h2_server == H2_SERVER_YES;

	if (dir == DIR_WRITE) {
		__u64 key = (__u64)sk;
		if (!presend_on && (owner & THREAD_KEY))
			thread_call(sk, c, tgid, owner, s->data, n, false);
		/* The first send of a client request the Go client probe, or
		 * thread_call, gave IDs. */
		struct client_ctx *cc = bpf_map_lookup_elem(&client_ctxs, &key);
		if (cc) {
			__builtin_memcpy(e->trace_id, cc->trace_id, sizeof(e->trace_id));
			__builtin_memcpy(e->span_id, cc->span_id, sizeof(e->span_id));
			__builtin_memcpy(e->parent_id, cc->parent_id, sizeof(e->parent_id));
			e->ctx_flags = cc->flags;
			bpf_map_delete_elem(&client_ctxs, &key);
		} else if ((owner & THREAD_KEY) && c->last_dir != DIR_WRITE) {
			thread_answers(sk, tgid, owner);
		}
	}

	/* A read that follows a write (or the first read) may start a request on
	 * a server connection: make IDs here, for user space to use if an
	 * exchange starts at this chunk. Whether the reading goroutine now serves
	 * a new request (goctx) needs a request line: a body read after
	 * "100 Continue" is not one; a request line whose first byte Go's
	 * background reader took is, in the goroutine that reads the rest. */
	if (dir == DIR_READ && !plain && call->goid && tcpopt_on)
		h2_read_option(sk, tgid, call->goid, len, s->data, n);
	bool starts = false, goes_on = false;
	/* A read after a write, or the first, may start a request. Socket
	 * I/O tells by the bytes sent since the last read, not by the events'
	 * order: a response's write is recorded once it is over, and by then
	 * the next request may have been read (Go's server reads its first
	 * byte in a background goroutine while the response goes out). */
	bool after_write = c->last_dir != DIR_READ;
	if (!plain && dir == DIR_READ) {
		after_write = !c->last_dir || e->sent != c->rd_sent;
		c->rd_sent = e->sent;
	}
	if (dir == DIR_READ && after_write) {
		random_bytes(c->trace_id, 4);
		random_bytes(c->span_id, 2);
		e->new_request = 1;
		if (!h2_srv) { /* h2_server_option, below */
			if (plain)
				tls_option_parent(sk, e, c);
			else
				option_parent(sk, len, e, c);
		}
		int k = request_start(s->data, n, 3);
		starts = k == REQ_LINE;
		c->pending = k == REQ_PART;
		c->head_left = 0;
	} else if (dir == DIR_READ && c->pending) {
		c->pending = 0;
		starts = request_start(s->data, n, 0) == REQ_LINE;
	} else if (dir == DIR_READ && c->head_left) {
		c->head_left--;
		goes_on = true;
	}
	if (h2_srv)
		h2_server_option(sk, len, e, c, plain, s->data, n);
	c->last_dir = dir;
	if (dir == DIR_READ) {
		__builtin_memcpy(e->trace_id, c->trace_id, sizeof(e->trace_id));
		__builtin_memcpy(e->span_id, c->span_id, sizeof(e->span_id));
	}
	if (starts && (owner & THREAD_KEY) && !thread_serves(sk, tgid, owner))
		owner = 0;
	if ((starts || goes_on) && owner) {
		/* Calls this goroutine makes while serving belong to this span.
		 * The head may come in several reads (a sender's header insert
		 * can arrive after its request line): the following reads are
		 * searched too, and the first traceparent found wins; B3
		 * headers give the context until a traceparent comes. */
		struct span_ctx sc = {};
		/* Through memory, which the verifier does not track: the paths
		 * that reach the search then have equal states, and a bounded
		 * search (no bpf_loop) is verified once, not once per path. */
		s->scan_n = n;
		s->scan_line_start = goes_on ? c->line_start : false;
		s->scan_starts = starts;
		barrier();
		bool b3 = false;
		int r = find_traceparent(s->data, s->scan_n, s->scan_line_start, &sc, &b3, use_loop, &s->tp_pos);
		barrier();
		n = s->scan_n & (2 * CAPTURE_MAX - 1);
		starts = s->scan_starts;
		/* a traceparent, else B3 headers (Zipkin, service meshes) */
		bool linked = r == TP_FOUND || b3;
		if (linked) {
			/* Header and option both there: the header wins; user
			 * space hears of the option only when they agree. */
			__u8 opt = e->ctx_flags & CTX_TCPOPT;
			if (opt && !same8(e->parent_id, sc.span_id)) {
				count(STAT_OPT_HEADER_WINS);
				opt = 0;
			}
			__builtin_memcpy(e->parent_id, sc.span_id, sizeof(e->parent_id));
			e->ctx_flags = CTX_LINKED | sc.flags | opt;
			__builtin_memcpy(c->trace_id, sc.trace_id, sizeof(c->trace_id));
			__builtin_memcpy(e->trace_id, sc.trace_id, sizeof(e->trace_id));
		}
		if (r == TP_HEAD_GOES_ON) {
			if (starts)
				c->head_left = HEAD_READS_MAX;
			c->line_start = n > 0 && s->data[(n - 1) & (CAPTURE_MAX - 1)] == '\n';
		} else {
			c->head_left = 0;
		}
		if (starts || linked) {
			/* A root's flag is decided here, for every hop after it. */
			/* the parent: the header's, else the option's */
			sc.flags = sample_flags(c->trace_id, e->ctx_flags & CTX_LINKED, e->ctx_flags & CTX_SAMPLED);
			__builtin_memcpy(sc.trace_id, c->trace_id, sizeof(sc.trace_id));
			__builtin_memcpy(sc.span_id, c->span_id, sizeof(sc.span_id));
			if (e->ctx_flags & CTX_LINKED)
				__builtin_memcpy(sc.parent_id, e->parent_id, sizeof(sc.parent_id));
			sc.srv = (__u64)sk;
			struct go_key gk = {.tgid = tgid, .goid = owner};
			file_goctx(&gk, &sc);
			if (!(owner & THREAD_KEY) && !(cfg->flags & PROC_SERVED))
				((struct proc_cfg *)cfg)->flags |= PROC_SERVED; /* a bit only ever set: no atomic needed (none on 5.10) */
		}
	}
	count(STAT_DATA_EVENTS);
	submit(s, sizeof(*e) + n);
	return 0;
}

/* ---- capture source sock_tracepoints (6.3+) ---- */

static __always_inline int on_sock_io(struct sock *sk, int len, __u8 dir)
{
	if (len <= 0)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	struct io_call call = {.buf = regs->si, .cnt = regs->dx, .nr = regs->orig_ax};
	call.goid = goid_of(cfg, regs->r14);
	if (call.goid)
		call.g = regs->r14;
	return on_io(sk, pid_tgid, cfg, len, dir, &call, true, true, false);
}

/* Before a TCP send's bytes are queued (Linux 6.16+; the loader loads it
 * only where the kernel has it): a thread's client request gets its IDs
 * while the option can still go on its first segment. Runs once per skb
 * the send fills; thread_call files once. A Go program whose h2c streams
 * no header can reach (PROC_H2_PRESEND) files the option of the stream
 * its write opens, as the syscalls source does at the write's entry. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(on_sendmsg, const struct sock *sk, const struct msghdr *msg, const struct sk_buff *skb, int size_goal)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	__u64 owner = thread_owner(cfg, pid_tgid), goid = 0;
	if (!owner) {
		if (!tcpopt_on || !(cfg->flags & PROC_H2_PRESEND))
			return 0;
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
		goid = goid_of(cfg, regs->r14);
		if (!goid)
			return 0;
	}
	/* The next bytes to send: a user buffer (write, send) or the current
	 * iovec (writev, sendmsg). */
	__u8 type = BPF_CORE_READ(msg, msg_iter.iter_type);
	__u64 off = BPF_CORE_READ(msg, msg_iter.iov_offset);
	struct send_bufs b = {.len = BPF_CORE_READ(msg, msg_iter.count)};
	if (type == bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		b.buf = (__u64)BPF_CORE_READ(msg, msg_iter.ubuf) + off;
	} else if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		const struct iovec *iov = BPF_CORE_READ(msg, msg_iter.__iov);
		b.iov = iov;
		b.nr = BPF_CORE_READ(msg, msg_iter.nr_segs);
		b.kiov = true;
		b.buf = (__u64)BPF_CORE_READ(iov, iov_base) + off;
		b.len = BPF_CORE_READ(iov, iov_len) - off;
	} else {
		return 0;
	}
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c) {
		/* It runs for each segment a send fills: write_seq plus the
		 * bytes left stays the same over one send's runs, and only the
		 * first sees the send's first bytes. */
		__u32 end = BPF_CORE_READ((struct tcp_sock *)sk, write_seq) + (__u32)BPF_CORE_READ(msg, msg_iter.count);
		if (c->send_end == end)
			return 0;
		c->send_end = end;
	}
	__u8 head[9];
	if (b.len < sizeof(head) || bpf_probe_read_user(head, sizeof(head), (void *)b.buf))
		return 0;
	if (owner) {
		thread_send((struct sock *)sk, c, tgid, owner, head, &b);
		return 0;
	}
	/* Go: only a send's first run (without a conns entry, which the
	 * send's end makes, the offset tells it) on a plaintext socket whose
	 * bytes start with frames. */
	if ((c ? !c->tls : !off) && (h2_preface(head) || h2_frame_head(head, 9)))
		h2_option((struct sock *)sk, tgid, goid, b.buf, b.len);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, DIR_READ);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, DIR_WRITE);
}

/* ---- capture source syscalls (5.10+) ---- */

/* A traced thread's socket call between its syscall's entry and exit. */
struct inflight {
	__u64 sk;
	struct io_call call;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct inflight);
} inflight SEC(".maps");

/* The kernel stack's size: x86_64's THREAD_SIZE (16 KiB; 32 KiB with
 * KASAN), written by the loader. The saved user registers sit at its top,
 * below a padding of 0 or 16 bytes (FRED kernels); each guess is checked
 * against the syscall's own number and first argument before use. */
volatile const __u64 thread_size = 16384;

/* The user r14 saved at syscall entry, or 0 when the registers cannot be
 * found with certainty (counted). Kernels before 5.15 have no
 * bpf_task_pt_regs, so the registers are found as task_pt_regs does. */
static __always_inline __u64 user_r14(__u32 nr, __u64 arg0)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 top = (__u64)BPF_CORE_READ(task, stack) + thread_size;
	for (int pad = 0; pad <= 16; pad += 16) {
		struct pt_regs regs;
		if (bpf_probe_read_kernel(&regs, sizeof(regs), (void *)(top - pad - sizeof(regs))))
			break;
		if (regs.orig_ax == nr && regs.di == arg0)
			return regs.r14;
	}
	count(STAT_REGS_UNKNOWN);
	return 0;
}

/* The TCP socket behind a traced process's fd, or 0. */
static __always_inline struct sock *fd_sock(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	if (!so)
		return 0;
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk || !is_tcp(sk))
		return 0;
	return sk;
}

/* The first 8 bytes a write-side call is about to send (head), or false. */
static __always_inline bool peek_send(__u8 *head, __u32 nr, __u64 buf, __u64 cnt)
{
	__u64 p = buf, avail = cnt;
	if (nr == NR_writev || nr == NR_sendmsg) {
		const struct iovec *iov = (const struct iovec *)buf;
		if (nr == NR_sendmsg) {
			struct user_msghdr m = {};
			if (bpf_probe_read_user(&m, sizeof(m), (void *)buf) || !m.msg_iovlen)
				return false;
			iov = m.msg_iov;
		} else if (!cnt) {
			return false;
		}
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), iov))
			return false;
		p = (__u64)v.iov_base;
		avail = v.iov_len;
	}
	return avail >= 8 && bpf_probe_read_user(head, 8, (void *)p) == 0;
}

static __always_inline int sys_enter(struct trace_event_raw_sys_enter *ctx, __u32 nr, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	__u64 fd = ctx->args[0];
	struct sock *sk = fd_sock(fd);
	if (!sk)
		return 0;
	struct inflight in = {.sk = (__u64)sk};
	in.call.nr = nr;
	in.call.buf = ctx->args[1];
	in.call.cnt = ctx->args[2];
	if (cfg->goid_offset) {
		__u64 g = user_r14(nr, fd);
		in.call.goid = goid_of(cfg, g);
		if (in.call.goid)
			in.call.g = g;
	}
	bpf_map_update_elem(&inflight, &pid_tgid, &in, BPF_ANY);
	__u64 owner = thread_owner(cfg, pid_tgid);
	/* HTTP/1 only: this program's stack has no room for the HTTP/2
	 * scan (thread_send); non-Go HTTP/2 calls get their IDs where the
	 * send is seen in tcp_sendmsg_locked, or in the TLS library. */
	__u8 head[8];
	if (dir == DIR_WRITE && owner && peek_send(head, nr, in.call.buf, in.call.cnt)) {
		__u64 key = (__u64)sk;
		thread_call(sk, bpf_map_lookup_elem(&conns, &key), tgid, owner, head, sizeof(head), true);
	}
	if (dir == DIR_WRITE && nr == NR_write && in.call.goid && tcpopt_on) {
		/* h2c (a Go client's gRPC): the option, as for TLS, from the
		 * frames before they leave. Not on a TLS socket's ciphertext. */
		__u64 key = (__u64)sk;
		struct conn *c = bpf_map_lookup_elem(&conns, &key);
		if (!c || !c->tls)
			h2_option(sk, tgid, in.call.goid, in.call.buf, in.call.cnt);
	}
	return 0;
}

/* HTTP/1 bodies are copied here (no capture_io): with it, even without
 * the bpf_loop head search, the verifier (6.1's, and 6.18's once capture
 * was made a global function) passes a million instructions. */
static __always_inline int sys_exit(struct trace_event_raw_sys_exit *ctx, __u32 nr, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &pid_tgid);
	if (!in)
		return 0;
	struct inflight call = *in;
	bpf_map_delete_elem(&inflight, &pid_tgid);
	/* A constant: capture() takes one path, and the verifier walks the
	 * head search once per program instead of once per syscall kind. */
	call.call.nr = nr;
	long ret = ctx->ret;
	if (ret <= 0)
		return 0;
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	return on_io((struct sock *)call.sk, pid_tgid, cfg, ret, dir, &call.call, false, false, false);
}

#define SYSCALL_SOURCE(name, dir)                                              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                           \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)               \
	{                                                                      \
		return sys_enter(ctx, NR_##name, dir);                              \
	}                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #name)                            \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                 \
	{                                                                      \
		return sys_exit(ctx, NR_##name, dir);                          \
	}

SYSCALL_SOURCE(read, DIR_READ)
SYSCALL_SOURCE(readv, DIR_READ)
SYSCALL_SOURCE(recvfrom, DIR_READ)
SYSCALL_SOURCE(recvmsg, DIR_READ)
SYSCALL_SOURCE(write, DIR_WRITE)
SYSCALL_SOURCE(writev, DIR_WRITE)
SYSCALL_SOURCE(sendto, DIR_WRITE)
SYSCALL_SOURCE(sendmsg, DIR_WRITE)

/* ---- capture source tls: OpenSSL plaintext (uprobes, per traced process) ---- */

static __always_inline struct sock *tls_sock(__u32 tgid, __u64 ssl)
{
	struct tls_key k = {.tgid = tgid, .ssl = ssl};
	__u64 *sk = bpf_map_lookup_elem(&tls_socks, &k);
	return sk ? (struct sock *)(*sk & ~TLS_SOCK_INFERRED) : 0;
}

/* An SSL call is starting on ssl: when the thread has just read
 * ciphertext outside any SSL call, that socket is the object's, unless
 * SSL_set_fd or I/O inside a call said otherwise. A read or handshake
 * step (correct) may replace an inferred socket: it consumes what was
 * just read. A write only fills an object that has none (Node.js, once a
 * handshake's last flight is read, first writes the request it held),
 * and leaves the read for the call that consumes it: a read no SSL call
 * followed (an event loop pausing a connection) must not move another
 * object's socket. */
static __always_inline void tls_adopt_last_read(__u64 pid_tgid, __u64 ssl, bool correct)
{
	__u64 *last = bpf_map_lookup_elem(&tls_last_read, &pid_tgid);
	if (!last)
		return;
	__u64 v = *last | TLS_SOCK_INFERRED;
	struct tls_key k = {.tgid = pid_tgid >> 32, .ssl = ssl};
	__u64 *cur = bpf_map_lookup_elem(&tls_socks, &k);
	if (cur && !correct)
		return;
	bpf_map_delete_elem(&tls_last_read, &pid_tgid);
	if (cur && (!(*cur & TLS_SOCK_INFERRED) || *cur == v))
		return;
	bpf_map_update_elem(&tls_socks, &k, &v, BPF_ANY);
	count(STAT_TLS_SOCK_BY_READ);
}

/* SSL_set_fd(ssl, fd): the socket of the SSL object. */
SEC("uprobe")
int BPF_KPROBE(ssl_set_fd, void *ssl, int fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	struct sock *sk = fd_sock(fd);
	if (!sk)
		return 0;
	struct tls_key k = {.tgid = tgid, .ssl = (__u64)ssl};
	__u64 v = (__u64)sk;
	bpf_map_update_elem(&tls_socks, &k, &v, BPF_ANY);
	return 0;
}

/* Entry of SSL_read/SSL_write (out 0) or their _ex forms: the arguments
 * for the return. Before a write's bytes leave, a thread's client request
 * gets its IDs (and the TCP option its context). */
static __always_inline int tls_enter(void *ssl, void *buf, __u64 num, void *out, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	tls_adopt_last_read(pid_tgid, (__u64)ssl, dir == DIR_READ);
	struct tls_call tc = {.ssl = (__u64)ssl, .buf = (__u64)buf, .out = (__u64)out};
	bpf_map_update_elem(&tls_calls, &pid_tgid, &tc, BPF_ANY);
	__u64 owner = thread_owner(cfg, pid_tgid);
	struct sock *sk = tls_sock(tgid, (__u64)ssl);
	__u8 head[9];
	if (dir == DIR_WRITE && owner && sk && bpf_probe_read_user(head, sizeof(head), buf) == 0) {
		__u64 key = (__u64)sk;
		struct send_bufs b = {.buf = (__u64)buf, .len = num};
		thread_send(sk, bpf_map_lookup_elem(&conns, &key), tgid, owner, head, &b);
	}
	return 0;
}

/* Return: ret bytes moved (SSL_read/SSL_write), or with ret 1 the count
 * at out (_ex). The plaintext goes through on_io as the socket's. */
static __always_inline int tls_exit(long ret, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tls_call *in = bpf_map_lookup_elem(&tls_calls, &pid_tgid);
	if (!in)
		return 0;
	struct tls_call tc = *in;
	bpf_map_delete_elem(&tls_calls, &pid_tgid);
	if (ret <= 0)
		return 0;
	__u64 n = ret;
	if (tc.out && (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)tc.out)))
		return 0;
	if (!n || n > 0x7fffffff)
		return 0;
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	struct sock *sk = tls_sock(tgid, tc.ssl);
	if (!sk) {
		count(STAT_TLS_NO_SOCK);
		return 0;
	}
	struct io_call call = {.buf = tc.buf, .nr = dir == DIR_READ ? NR_read : NR_write};
	return on_io(sk, pid_tgid, cfg, (int)n, dir, &call, true, false, true);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write, void *ssl, void *buf, int num)
{
	return tls_enter(ssl, buf, num > 0 ? num : 0, 0, DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex, void *ssl, void *buf, __u64 num, void *written)
{
	return tls_enter(ssl, buf, num, written, DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read, void *ssl, void *buf, int num)
{
	return tls_enter(ssl, buf, 0, 0, DIR_READ);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex, void *ssl, void *buf, __u64 num, void *readbytes)
{
	return tls_enter(ssl, buf, 0, readbytes, DIR_READ);
}

/* SSL_free(ssl), entry: the object's socket is forgotten. Its address is
 * reused by the process's next SSL object, which must not start out with
 * this one's socket (a memory-BIO object learns its own only at its first
 * read). */
SEC("uprobe")
int BPF_KPROBE(ssl_free, void *ssl)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	struct tls_key k = {.tgid = tgid, .ssl = (__u64)ssl};
	bpf_map_delete_elem(&tls_socks, &k);
	return 0;
}

/* SSL_do_handshake(ssl), entry only: a memory-BIO client's first
 * SSL_write follows a handshake fed by the reads before it, with no
 * SSL_read yet to say which socket is the object's. */
SEC("uprobe")
int BPF_KPROBE(ssl_do_handshake, void *ssl)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	tls_adopt_last_read(pid_tgid, (__u64)ssl, true);
	return 0;
}

/* SSL_shutdown(ssl), entry: a memory-BIO program feeds the peer's
 * close_notify to it, not to SSL_read; the read it came in is this
 * object's and no other's. */
SEC("uprobe")
int BPF_KPROBE(ssl_shutdown, void *ssl)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	bpf_map_delete_elem(&tls_last_read, &pid_tgid);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_ret, long ret)
{
	return tls_exit(ret, DIR_WRITE);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ret, long ret)
{
	return tls_exit(ret, DIR_READ);
}

/* ---- capture source tls: Go crypto/tls plaintext (uprobes, per executable) ----
 * (*crypto/tls.Conn).Write hands on_io its plaintext at the entry: the
 * whole buffer is written unless the connection fails. (*Conn).Read is
 * probed at the entry (buffer and socket, by goroutine) and at each RET
 * instruction (the count in RAX): no uretprobes on Go code. The socket
 * comes from the Conn itself, c.conn being a *net.TCPConn (checked by its
 * itab, as the Go client probe does); any other net.Conn is skipped. */

/* What a traced process's executable needs: the link-time distance from
 * each probed function to net.(*TCPConn).Close, whose run-time address a
 * uprobe's IP then gives, PIE or not. */
struct gotls_cfg {
	__u64 write_close_delta;
	__u64 read_close_delta;
	/* Read's copy site (goinspect.CopySite), when probed there instead of
	 * at its entry and RETs: its distance to net.(*TCPConn).Close, and
	 * where the receiver is from RSP there. */
	__u64 copy_close_delta;
	__u64 copy_recv_sp;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, struct gotls_cfg);
} gotls_procs SEC(".maps");

/* Selection at exec (execsel.h): proc_cfg and, for Go TLS, gotls_cfg. */
DECLARE_EXEC_TEMPLATES(gotls_templates, struct gotls_cfg);

SEC("tracepoint/sched/sched_process_exec")
int sockio_exec(void *ctx)
{
	struct exe_key k = {};
	if (current_exe(&k) || !exec_selected(&k))
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	EXEC_COPY(proc_templates, procs, &k, tgid);
	EXEC_COPY(gotls_templates, gotls_procs, &k, tgid);
	return 0;
}

/* A goroutine inside (*Conn).Read: its socket and buffer, for a RET site. */
struct gotls_read {
	__u64 sk;
	__u64 buf;
	__u64 g;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct gotls_read);
} gotls_reads SEC(".maps");

/* A Go itab on amd64: {inter, _type, hash uint32, _ [4]byte, fun[]}; fun
 * is sorted by method name and net.Conn's first is Close. */
#define GO_ITAB_FUN0 24

/* The socket under the *tls.Conn c, when c.conn is a *net.TCPConn. */
static __always_inline struct sock *gotls_sock(const struct proc_cfg *cfg, __u64 c, __u64 tcp_close)
{
	if (!cfg->netfd_sysfd) /* the client offsets are all known, or none */
		return 0;
	__u64 itab = 0, tcpconn = 0, netfd = 0, fd = 0, fun0 = 0;
	if (bpf_probe_read_user(&itab, sizeof(itab), (void *)(c + cfg->tlsconn_conn)) || !itab ||
	    bpf_probe_read_user(&fun0, sizeof(fun0), (void *)(itab + GO_ITAB_FUN0)) || fun0 != tcp_close) {
		count(STAT_GOTLS_NOT_TCP);
		return 0;
	}
	if (bpf_probe_read_user(&tcpconn, sizeof(tcpconn), (void *)(c + cfg->tlsconn_conn + 8)) || !tcpconn ||
	    bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(tcpconn + cfg->conn_fd)) || !netfd ||
	    bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + cfg->netfd_sysfd)))
		return 0;
	return fd_sock(fd);
}

/* A process whose Go TLS is traced: its settings. */
static __always_inline bool gotls_traced(__u32 tgid, struct proc_cfg **cfg, struct gotls_cfg **gc)
{
	*cfg = bpf_map_lookup_elem(&procs, &tgid);
	*gc = bpf_map_lookup_elem(&gotls_procs, &tgid);
	return *cfg && *gc && ((*cfg)->flags & PROC_GOTLS);
}

/* func (c *Conn) Write(b []byte) (int, error): c in RAX, b in RBX/RCX. */
SEC("uprobe")
int gotls_write(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg;
	struct gotls_cfg *gc;
	if (!gotls_traced(tgid, &cfg, &gc))
		return 0;
	__u64 len = ctx->cx;
	if (!len || len > 0x7fffffff)
		return 0;
	struct sock *sk = gotls_sock(cfg, ctx->ax, ctx->ip - gc->write_close_delta);
	if (!sk) {
		count(STAT_TLS_NO_SOCK);
		return 0;
	}
	struct io_call call = {.buf = ctx->bx, .nr = NR_write, .goid = goid_of(cfg, ctx->r14)};
	if (tcpopt_on && call.goid)
		h2_option(sk, tgid, call.goid, ctx->bx, len);
	return on_io(sk, pid_tgid, cfg, (int)len, DIR_WRITE, &call, true, false, true);
}

/* func (c *Conn) Read(b []byte) (int, error): the entry. */
SEC("uprobe")
int gotls_read(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg;
	struct gotls_cfg *gc;
	if (!gotls_traced(tgid, &cfg, &gc))
		return 0;
	struct go_key k = {.tgid = tgid, .goid = goid_of(cfg, ctx->r14)};
	if (!k.goid)
		return 0;
	struct sock *sk = gotls_sock(cfg, ctx->ax, ctx->ip - gc->read_close_delta);
	if (!sk) {
		count(STAT_TLS_NO_SOCK);
		return 0;
	}
	struct gotls_read r = {.sk = (__u64)sk, .buf = ctx->bx, .g = ctx->r14};
	bpf_map_update_elem(&gotls_reads, &k, &r, BPF_ANY);
	return 0;
}

/* A RET instruction of (*Conn).Read: n in RAX. */
SEC("uprobe")
int gotls_read_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	struct go_key k = {.tgid = tgid, .goid = goid_of(cfg, ctx->r14)};
	struct gotls_read *in = k.goid ? bpf_map_lookup_elem(&gotls_reads, &k) : 0;
	if (!in)
		return 0;
	struct gotls_read r = *in;
	bpf_map_delete_elem(&gotls_reads, &k);
	__s64 n = (__s64)ctx->ax;
	if (n <= 0 || n > 0x7fffffff)
		return 0;
	struct io_call call = {.buf = r.buf, .nr = NR_read, .goid = k.goid, .g = r.g};
	return on_io((struct sock *)r.sk, pid_tgid, cfg, (int)n, DIR_READ, &call, true, false, true);
}

/* The CALL runtime.memmove in (*Conn).Read that copies its plaintext to
 * the caller (bytes.Reader's Read, inlined): the bytes at RBX, RCX of them,
 * the *Conn in its argument slot. Reached only by a read that returns
 * data, once: one trap, where the entry and a RET take two per call, with
 * data or without (net/http's background read, aborted at each response,
 * took two for nothing). The bytes are read from the source, the copy
 * not having run yet. */
SEC("uprobe")
int gotls_read_copy(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg;
	struct gotls_cfg *gc;
	if (!gotls_traced(tgid, &cfg, &gc) || !gc->copy_recv_sp)
		return 0;
	__u64 n = ctx->cx, c = 0;
	if (!n || n > 0x7fffffff)
		return 0;
	if (bpf_probe_read_user(&c, sizeof(c), (void *)(ctx->sp + gc->copy_recv_sp)) || !c)
		return 0;
	struct sock *sk = gotls_sock(cfg, c, ctx->ip - gc->copy_close_delta);
	if (!sk) {
		count(STAT_TLS_NO_SOCK);
		return 0;
	}
	struct io_call call = {.buf = ctx->bx, .nr = NR_read, .goid = goid_of(cfg, ctx->r14)};
	if (call.goid)
		call.g = ctx->r14;
	return on_io(sk, pid_tgid, cfg, (int)n, DIR_READ, &call, true, false, true);
}

/* ---- calls that fail before a byte is sent (optional: bpf_task_pt_regs, 5.15+) ----
 * A traced process's connect (the SYN_SENT transition, in the connecting
 * thread) gets a CLIENT span's IDs there: the child of the request its
 * goroutine (or, not Go, its thread) serves. If the socket then goes from
 * SYN_SENT to CLOSE (reset: refused; retransmits exhausted: timed out; the
 * app closing it: given up), the span is reported with the socket's error.
 * A connection that is established forgets them. */

struct connecting {
	__u32 tgid;
	__u8 flags; /* CTX_LINKED, CTX_SAMPLED */
	__u8 _pad[3];
	__u64 start_ns;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct connecting);
} connecting SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_connect, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	if (newstate == TCP_SYN_SENT) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		__u32 tgid = pid_tgid >> 32;
		struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
		if (!cfg)
			return 0;
		struct connecting cn = {.tgid = tgid, .start_ns = bpf_ktime_get_ns()};
		struct span_ctx *sc = 0;
		if (cfg->goid_offset) {
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
			struct go_key gk = {.tgid = tgid, .goid = goid_of(cfg, regs->r14)};
			sc = gk.goid ? bpf_map_lookup_elem(&goctx, &gk) : 0;
			if (!sc && gk.goid)
				sc = bpf_map_lookup_elem(&gospawn, &gk);
			if (!sc && cfg->parent_goid_offset && regs->r14) {
				__u64 parent = 0;
				bpf_probe_read_user(&parent, sizeof(parent), (void *)(regs->r14 + cfg->parent_goid_offset));
				gk.goid = parent;
				sc = parent ? bpf_map_lookup_elem(&goctx, &gk) : 0;
			}
		} else if (!bpf_map_lookup_elem(&thread_mux, &tgid)) {
			struct go_key gk = {.tgid = tgid, .goid = thread_owner(cfg, pid_tgid)};
			sc = gk.goid ? bpf_map_lookup_elem(&goctx, &gk) : 0;
		}
		if (sc) {
			__builtin_memcpy(cn.trace_id, sc->trace_id, sizeof(cn.trace_id));
			__builtin_memcpy(cn.parent_id, sc->span_id, sizeof(cn.parent_id));
			cn.flags = CTX_LINKED | sample_flags(cn.trace_id, true, sc->flags);
		} else {
			random_bytes(cn.trace_id, 4);
			cn.flags = sample_flags(cn.trace_id, false, 0);
		}
		random_bytes(cn.span_id, 2);
		bpf_map_update_elem(&connecting, &key, &cn, BPF_ANY);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;
	struct connecting *in = bpf_map_lookup_elem(&connecting, &key);
	if (!in)
		return 0;
	struct connecting cn = *in;
	bpf_map_delete_elem(&connecting, &key);
	if (newstate != TCP_CLOSE)
		return 0; /* established: its bytes make its span */
	struct event e = {};
	e.kind = EV_CONNECT_FAIL;
	e.tgid = cn.tgid;
	e.ts_ns = bpf_ktime_get_ns();
	e.start_ns = cn.start_ns;
	e.len = BPF_CORE_READ(sk, sk_err);
	fill_addrs(&e.ep, (struct sock *)sk);
	__builtin_memcpy(e.trace_id, cn.trace_id, sizeof(e.trace_id));
	__builtin_memcpy(e.span_id, cn.span_id, sizeof(e.span_id));
	__builtin_memcpy(e.parent_id, cn.parent_id, sizeof(e.parent_id));
	e.ctx_flags = cn.flags;
	submit(&e, sizeof(e));
	return 0;
}

/* ---- both sources ---- */

/* A traced socket reaching TCP_CLOSE ends its connection; this may run in
 * softirq context, so it filters by the map, not by process. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE)
		return 0;
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	struct event e = {};
	e.kind = EV_CLOSE;
	e.tgid = c->tgid;
	e.conn_id = c->conn_id;
	e.ts_ns = bpf_ktime_get_ns();
	bpf_map_delete_elem(&conns, &key);
	submit(&e, sizeof(e));
	return 0;
}
