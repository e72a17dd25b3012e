// SPDX-License-Identifier: GPL-2.0
/* inject: a W3C traceparent header in the HTTP/1.x requests traced
 * processes send, inserted at the socket layer (nothing writes into the
 * process: bpf_probe_write_user is refused under lockdown).
 *
 * A sockops program puts the TCP sockets traced processes connect into a
 * sockhash (the connecting process is read in sockops where the kernel
 * allows it, else by cgroup/connect4 and connect6 programs: see
 * inject_sockops); an iterator adds the ones they had already. The sk_msg
 * program on that sockhash sees every message sent on them and, when the client
 * probe left an inject_ctx for the socket, inserts the header after the
 * request line, and this agent's tracestate member: in a line of its own
 * after it, or, when the request has a tracestate, first in that list
 * (never a second tracestate line, never a key twice in the list).
 * Sockets of other processes never enter the sockhash: on
 * its sockets FIONREAD reads 0 (user space also keeps cgo programs out,
 * whose C libraries may size reads by it).
 *
 * Bytes on the wire are the application's or the application's plus a
 * whole header, never anything else: a message whose change cannot be
 * undone is dropped (SK_DROP), and so is every later one on its socket.
 *
 * Kernel fixes for bpf_msg_push_data/bpf_msg_pop_data: 15ab0548e310
 * ("bpf, sockmap: Several fixes to bpf_msg_push_data"), 5d609ba26247
 * ("bpf, sockmap: Several fixes to bpf_msg_pop_data", CVE-2024-56720) and
 * "bpf, sockmap: Fix sk_msg_reset_curr", in 6.13-rc1 and stable 6.12.2,
 * 6.11.11, 6.6.64, 6.1.120, 5.15.174, 5.10.231, 5.4.287 (this program
 * needs bpf_loop, 5.17+). Before them a push at the very end of a message
 * fails with -EINVAL (an HTTP/2 HEADERS frame that ends its write: counted
 * as write_fail, sent unchanged), and pushes and pops at the wrap of the
 * scatterlist ring could leave it inconsistent, which no program can see.
 * Stable kernels with the pop fix but without fdf478d236dc and
 * 5153a75ef34b (6.13-rc4, "skmsg: Return copied bytes in
 * sk_msg_memcopy_from_iter", "tcp_bpf: Fix copied value in
 * tcp_bpf_sendmsg") were reported to crash in the sockmap selftests. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sockio.h"
#include "execsel.h"
#include "inject.h"

#define EEXIST 17
#define ENOMEM 12

char LICENSE[] SEC("license") = "GPL";

DECLARE_INJECT_CTX_MAP;

/* sockio's, handed over by the loader: goroutine offsets, and the IDs the
 * gRPC probe filed for each HTTP/2 stream a Go client opens. */
DECLARE_PROCS_MAP;
DECLARE_H2_IDS_MAP;

/* Processes whose new connections get injection; filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} inject_procs SEC(".maps");

/* Selection at exec (execsel.h): a selected process of an executable
 * already tracked is in inject_procs before it connects. */
DECLARE_EXEC_TEMPLATES(inject_templates, __u8);
EXEC_PROGRAM(inject_exec, inject_templates, inject_procs)

/* The sockhash is keyed by socket and owner, so that Untrack finds a
 * process's sockets by walking its keys: ownership is part of the entry,
 * and a closed socket's entry leaves with the socket. (An owner map beside
 * it, an LRU by cookie, kept closed sockets' entries and then evicted live
 * ones; map iterators, which could read an owner from socket storage, are
 * refused on kernels like the one measured.) A socket two tracked
 * processes share (inherited) is there once per owner, and stays while
 * either is tracked. */
struct sock_key {
	__u64 cookie;
	__u32 tgid;
	__u32 _pad; /* zero */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_key);
	__type(value, __u64);
} inject_socks SEC(".maps");

/* Socket inodes of a process being tracked, for one iterator run. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* inode number */
	__type(value, __u32); /* tgid */
} inject_inodes SEC(".maps");

enum sock_proto {
	PROTO_UNKNOWN = 0, /* nothing sent yet */
	PROTO_OTHER = 1,   /* HTTP/1.x, or anything but the HTTP/2 preface first */
	PROTO_H2 = 2,      /* opened with the HTTP/2 client preface */
	PROTO_H2_LOST = 3, /* HTTP/2 whose frame boundaries were lost */
	PROTO_DROPPED = 4, /* a message was dropped: so is every later one */
	PROTO_SYNC = 5,    /* older than the tracing (or back in the sockhash): where its
			    * HTTP/2 frames start is not known yet (h2_synced) */
};

/* What the injector knows of a client's HPACK dynamic table (RFC 7541,
 * section 2.3), tracked from the connection preface through every header
 * block the client sends (hp_rep): the entries inserted so far, and by
 * serial (mod HP_SERIALS) those named traceparent and tracestate, and
 * those the peer holds with a parent-id rewritten (h2_forward). An entry
 * takes at least 32 bytes and the table at most HP_TABLE_MAX (a larger
 * size update ends the tracking), so at most HP_SERIALS entries live:
 * a serial's bit, mod HP_SERIALS, is its own while it can be referenced. */
#define HP_TABLE_MAX 4096
#define HP_SERIALS 128
struct hp_table {
	__u32 ins;
	__u32 _pad;
	__u64 tp[2], ts[2], rw[2];
};

/* Per socket, in socket storage: it dies with the socket. */
struct sock_state {
	__u64 cookie;
	__u64 used_span; /* span_id of the last inject_ctx acted on */
	__u32 tgid;
	__u8 pending; /* connecting; add to the sockhash once established */
	__u8 used;    /* used_span is set */
	__u8 proto;   /* enum sock_proto */
	__u8 hb_have; /* bytes of a frame header cut by the end of a message */
	__u32 h2_left; /* bytes of the current HTTP/2 frame still to come */
	__u8 hb[8];    /* those bytes */
	__u8 h2_app;   /* H2W_BLIND: the encoder's table is not known */
	__u8 _pad[3];
	struct hp_table hp; /* the client's HPACK table, from the preface */
};

/* sock_state.h2_app: once a client header block goes unread (or the
 * socket was found mid-life), the names and values its encoder's dynamic
 * table holds are unknown for good: the requests whose probe could not
 * tell (H2_UNCHECKED) get nothing, and no forwarded value is rewritten. */
#define H2W_BLIND 4 /* a client header block went unread (CONTINUATION, cut, too long,
		     * or sent before the socket was synced) */

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} inject_state SEC(".maps");

/* Client spans whose request had a forwarded traceparent rewritten (see
 * forward), by span ID. User space, which captured the request as the app
 * wrote it, takes each out when it makes the span (once its response is
 * in): that span keeps the kernel's IDs rather than joining the header's
 * context. Entries live for one exchange; the LRU only sheds those of
 * exchanges user space never finished. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* the client span ID, as in inject_ctx */
	__type(value, __u8);
} inject_forwarded SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INJ_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} inject_stats SEC(".maps");

/* Keep enum inject_stat in the BTF so bpf2go mirrors it. */
const enum inject_stat *unused_stat __attribute__((unused));

/* This agent's tracestate member (weft=<cluster>), as an HTTP/1 header line
 * and as an HPACK literal field without indexing; lengths 0 when the
 * cluster has no name. Read-only data: the verifier sees the lengths as
 * constants, so the pushes below have a known size. */
volatile const __u8 state_line[INJ_STATE_MAX];
volatile const __u32 state_line_len;
volatile const __u8 state_field[INJ_STATE_MAX];
volatile const __u32 state_field_len;
/* The same member as the first of an HTTP/1 request's own tracestate list
 * ("weft=<cluster>,"), and the length of its key with the '=' ("weft="):
 * an app's list with that key already gets no second one (keys are unique
 * in a list). */
volatile const __u8 state_member[INJ_STATE_MAX];
volatile const __u32 state_member_len;
volatile const __u32 state_key_len;

/* Test knob: tests set it (through spec.Variables, before load) to walk
 * the paths where a helper fails after the message was changed. The agent
 * leaves it 0, a frozen constant, and the verifier prunes those paths. */
volatile const __u32 fault;
#define FAULT_PUSH 1  /* bpf_msg_push_data fails (the first, if a message gets two) */
#define FAULT_WRITE 2 /* the pull over the pushed bytes fails */
#define FAULT_UNDO 4  /* undoing a change fails: the pop, or restoring a frame length */
#define FAULT_PUSH2 8 /* the second push of an HTTP/1 request (its traceparent line,
		       * after the member merged into the app's tracestate) fails */

/* Zero, in .bss (a writable map, which nothing writes), so that the
 * verifier reads it as an unknown value. The verifier of Debian's 6.1.192
 * (upstream's before 6.7, "bpf: verify callbacks as if they are called
 * unknown number of times") checks a bpf_loop callback once, as for its
 * first call, with the caller's stack as it is at the call, and then
 * removes as dead code the branches only later calls take: there ts_byte
 * never found this agent's key, and a second weft= member was merged in.
 * State a callback carries from one call to the next starts from this,
 * never from a constant the verifier knows. */
volatile __u32 unknown_zero;

/* call, or -ENOMEM without calling it when the knob says so. */
#define MAY_FAIL(bit, call) ((fault & (bit)) ? -ENOMEM : (call))

/* Copies the loader's bytes to p (which has room for n <= INJ_STATE_MAX). */
static __always_inline void copy_state(__u8 *p, __u8 *end, const volatile __u8 *src, __u32 n)
{
	for (__u32 i = 0; i < INJ_STATE_MAX; i++) {
		if (i >= n || p + i + 1 > end)
			break;
		p[i] = src[i];
	}
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&inject_stats, &idx);
	if (v)
		*v += 1;
}

/* A tracked process is connecting sk (process context): mark the socket,
 * to enter the sockhash once established. cookie is made now: the client
 * probe reads sk_cookie. */
static __always_inline void mark_connecting(struct bpf_sock *sk, __u64 cookie, __u32 tgid)
{
	struct sock_state *st = bpf_sk_storage_get(&inject_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(INJ_SOCKHASH_FAIL);
		return;
	}
	st->cookie = cookie;
	st->tgid = tgid;
	st->pending = 1;
}

/* ACTIVE_ESTABLISHED_CB (softirq: no process context): the socket state
 * says whose the socket is. */
static __always_inline void add_established(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	struct sock_state *st = bpf_sk_storage_get(&inject_state, sk, 0, 0);
	if (!st || !st->pending)
		return;
	st->pending = 0;
	if (!bpf_map_lookup_elem(&inject_procs, &st->tgid))
		return; /* untracked while connecting */
	struct sock_key key = {.cookie = st->cookie, .tgid = st->tgid};
	if (bpf_sock_hash_update(skops, &inject_socks, &key, BPF_NOEXIST)) {
		count(INJ_SOCKHASH_FAIL);
		return;
	}
	count(INJ_SOCKHASH_ADD);
}

/* Who connects is learnt one of two ways; the loader loads one of them.
 *
 * inject_sockops, where sockops may call bpf_get_current_pid_tgid (6.18
 * and Debian's 6.12.118 allow it; 6.1 and 5.10 do not: their
 * sock_ops_func_proto lacks it): TCP_CONNECT_CB runs in the connecting
 * process. */
SEC("sockops")
int inject_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB: {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (bpf_map_lookup_elem(&inject_procs, &tgid))
			mark_connecting(sk, bpf_get_socket_cookie(skops), tgid);
		return 1;
	}
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		add_established(skops, sk);
		return 1;
	}
	return 1;
}

/* Elsewhere: cgroup/connect4 and connect6 (sock_addr programs, which
 * 5.10 and 6.1 let call bpf_get_current_pid_tgid, bpf_sk_storage_get and
 * bpf_get_socket_cookie) mark the socket in connect(2), before the SYN,
 * and inject_sockops_est adds it once established. */
SEC("sockops")
int inject_sockops_est(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	if (sk && skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		add_established(skops, sk);
	return 1;
}

/* connect(2) on a TCP socket of a tracked process. Always returns 1: the
 * connection goes ahead unchanged. */
static __always_inline int on_connect(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&inject_procs, &tgid))
		mark_connecting(ctx->sk, bpf_get_socket_cookie(ctx), tgid); /* sk: never NULL here */
	return 1;
}

SEC("cgroup/connect4")
int inject_connect4(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx);
}

/* Also IPv4-mapped addresses on an AF_INET6 socket: tcp_v6_connect hands
 * them to tcp_v4_connect without a second pre_connect. */
SEC("cgroup/connect6")
int inject_connect6(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx);
}

/* Adds the established TCP sockets whose inodes user space listed (those
 * of a process being tracked) to the sockhash. It walks the netns of the
 * thread that opened it. */
SEC("iter/tcp")
int inject_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc || skc->skc_state != TCP_ESTABLISHED)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	__u64 ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	__u32 *tgid = bpf_map_lookup_elem(&inject_inodes, &ino);
	if (!tgid)
		return 0;
	__u32 owner = *tgid;
	struct sock_state *st = bpf_sk_storage_get(&inject_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(INJ_SOCKHASH_FAIL);
		return 0;
	}
	__u64 cookie = bpf_get_socket_cookie(sk);
	st->cookie = cookie;
	st->tgid = owner;
	st->pending = 0;
	struct sock_key key = {.cookie = cookie, .tgid = owner};
	long err = bpf_map_update_elem(&inject_socks, &key, sk, BPF_NOEXIST);
	if (err == -EEXIST) /* added at connect, or by an earlier run */
		return 0;
	if (err) {
		count(INJ_SOCKHASH_FAIL);
		return 0;
	}
	/* A connection older than the tracing, or back in the sockhash (its
	 * process untracked, then tracked again): the frames it sent went
	 * unwalked, so where its next HTTP/2 frame starts is unknown until a
	 * message shows it (h2_sync), and which names its encoder's table
	 * holds stays unknown (H2W_BLIND). HTTP/1 goes on as it was. */
	if (st->proto == PROTO_UNKNOWN || st->proto == PROTO_H2 || st->proto == PROTO_H2_LOST) {
		st->proto = PROTO_SYNC;
		st->h2_app |= H2W_BLIND;
	}
	count(INJ_ITER_ADD);
	return 0;
}

/* ---- sk_msg: the header itself ---- */

/* msg->data and msg->data_end, read with a fixed ctx offset: clang would
 * otherwise keep ctx+8 in a register, which the verifier refuses
 * ("dereference of modified ctx ptr"). Re-read after every helper call. */
#define MSG_DATA(msg)                                                              \
	({                                                                         \
		__u8 *__p;                                                         \
		asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(__p) : "r"(msg));     \
		__p;                                                               \
	})
#define MSG_END(msg)                                                               \
	({                                                                         \
		__u8 *__p;                                                         \
		asm volatile("%0 = *(u64 *)(%1 + 8)" : "=r"(__p) : "r"(msg));     \
		__p;                                                               \
	})

/* Request methods as little-endian words, with their length. */
#define W4(a, b, c, d) ((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24)
#define W8(a, b, c, d, e, f, g, h) (W4(a, b, c, d) | W4(e, f, g, h) << 32)
#define LOW(n) ((n) == 8 ? ~0ULL : (1ULL << (8 * (n))) - 1)

static __always_inline bool is_method(__u64 w)
{
	return (w & LOW(4)) == W4('G', 'E', 'T', ' ') ||
	       (w & LOW(5)) == W8('P', 'O', 'S', 'T', ' ', 0, 0, 0) ||
	       (w & LOW(4)) == W4('P', 'U', 'T', ' ') ||
	       (w & LOW(5)) == W8('H', 'E', 'A', 'D', ' ', 0, 0, 0) ||
	       (w & LOW(7)) == W8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0) ||
	       (w & LOW(6)) == W8('P', 'A', 'T', 'C', 'H', ' ', 0, 0) ||
	       w == W8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' ') ||
	       (w & LOW(6)) == W8('T', 'R', 'A', 'C', 'E', ' ', 0, 0) ||
	       w == W8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' ');
}

enum head_scan {
	SCAN_MORE = 0,       /* no conclusion in the bytes scanned */
	SCAN_HEAD_END = 1,   /* blank line found (ts_* say where tracestate is, tp_* traceparent) */
	SCAN_BAD_LINE = 3,   /* the first line is not an HTTP/1.x request line */
};

/* State of one pass over the head. */
struct scan {
	__u32 len;      /* bytes to scan: what msg->data shows, at most INJ_SCAN_MAX */
	__u32 line_end; /* offset just past the request line */
	__u32 result;
	__u32 ts_at;    /* offset just past the colon of the first tracestate line; 0: none */
	__u32 ts_end;   /* offset of the \n that ends that line; 0: not seen yet */
	__u32 ts_lines; /* tracestate lines in the head */
	__u32 tp_at;    /* offset just past the colon of the first traceparent line */
	__u32 tp_lines; /* traceparent lines in the head */
};

/* What the bpf_loop callback gets: the message, read through msg so that
 * no packet pointer crosses a helper call, and the scan. Apart: on_newline
 * is a global function, and the verifier forgets what the memory it is
 * given held, the ctx pointer too, were it in there. */
struct scan_loop {
	struct sk_msg_md *msg;
	struct scan *s;
};

/* Offsets into the head, masked so that the verifier sees them bounded
 * whatever register clang uses. The mask is a no-op (offsets stay below
 * it); the empty asm keeps clang from proving so and dropping it. */
#define OFF(x)                                        \
	({                                            \
		__u32 __o = (x);                      \
		asm volatile("" : "+r"(__o));         \
		__o & (2 * INJ_SCAN_MAX - 1);         \
	})

/* Looks at the line after the \n at offset i (and, for the first \n, at
 * the request line before it). Returns non-zero to stop the scan. */
__noinline int on_newline(struct sk_msg_md *msg, struct scan *s, __u32 i)
{
	if (!msg || !s)
		return 1;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	if (!s->line_end) {
		/* Shortest request line: "GET / HTTP/1.1\r" */
		if (i < 15 || i > INJ_SCAN_MAX) {
			s->result = SCAN_BAD_LINE;
			return 1;
		}
		__u8 *v = data + OFF(i - 10); /* " HTTP/1.x\r\n" */
		if (v + 11 > end) {
			s->result = SCAN_BAD_LINE;
			return 1;
		}
		__u64 w = *(__u64 *)v;
		if (w != W8(' ', 'H', 'T', 'T', 'P', '/', '1', '.') || v[8] < '0' || v[8] > '9' ||
		    v[9] != '\r') {
			s->result = SCAN_BAD_LINE;
			return 1;
		}
		s->line_end = i + 1;
	}
	if (i > INJ_SCAN_MAX)
		return 1;
	if (s->ts_at && !s->ts_end)
		s->ts_end = i; /* this \n ends the (first) tracestate line */
	__u8 *p = data + OFF(i + 1); /* the next line */
	if (p + 2 > end)
		return 0;
	if (p[0] == '\r' && p[1] == '\n') {
		s->result = SCAN_HEAD_END;
		return 1;
	}
	if ((p[0] | 0x20) != 't' || p + 11 > end)
		return 0;
	/* "traceparent:" and "tracestate:" in any case (| 0x20 leaves ':' as
	 * it is) */
	__u64 a = *(__u64 *)p | 0x2020202020202020ULL;
	if (a == W8('t', 'r', 'a', 'c', 'e', 's', 't', 'a')) {
		if ((p[8] | 0x20) == 't' && (p[9] | 0x20) == 'e' && p[10] == ':') {
			if (!s->ts_lines)
				s->ts_at = i + 12;
			s->ts_lines++;
		}
		return 0;
	}
	if (p + 12 > end)
		return 0;
	__u32 b = *(__u32 *)(p + 8) | 0x20202020;
	if (a == W8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && b == (__u32)W4('e', 'n', 't', ':')) {
		/* The app's own, or one it forwards: the scan goes on to the
		 * blank line, to know whether it is the only one. */
		if (!s->tp_lines)
			s->tp_at = i + 13;
		s->tp_lines++;
	}
	return 0;
}

/* The last bytes of the view, fewer than a word: one at a time. */
static __always_inline long scan_tail(struct scan_loop *l, __u8 *data, __u8 *end, __u32 o)
{
	struct scan *s = l->s;
#pragma clang loop unroll(disable)
	for (__u32 k = 0; k < 8; k++) {
		__u32 i = o + k;
		if (i >= s->len)
			return 1;
		__u8 *q = data + OFF(i);
		if (q + 1 > end)
			return 1;
		if (*q == '\n' && on_newline(l->msg, s, i))
			return 1;
	}
	return 1;
}

/* bpf_loop callback: one 8-byte word of the head. The \n bytes are found
 * all at once (SWAR): a word without one costs a dozen instructions. */
static long scan_word(__u32 w, struct scan_loop *l)
{
	struct scan *s = l->s;
	__u32 o = w * 8;
	if (o >= s->len || o > INJ_SCAN_MAX)
		return 1;
	struct sk_msg_md *msg = l->msg;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	__u8 *p = data + OFF(o);
	if (p + 8 > end)
		return scan_tail(l, data, end, o);
	__u64 x = *(__u64 *)p ^ 0x0a0a0a0a0a0a0a0aULL;
	/* The high bit of every byte that was \n (exact: no borrows). */
	__u64 m = ~(((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x) & 0x8080808080808080ULL;
#pragma clang loop unroll(disable)
	for (int n = 0; n < 8 && m; n++) {
		/* Byte index of the lowest set bit, by multiplication. */
		__u32 k = (((m & -m) >> 7) * 0x0001020304050607ULL) >> 56;
		m &= m - 1;
		__u32 i = o + k;
		if (i >= s->len)
			return 1;
		if (on_newline(msg, s, i))
			return 1;
	}
	return 0;
}

/* Scans what msg->data shows of the first `want` bytes. */
static __always_inline void scan(struct sk_msg_md *msg, struct scan *s, __u32 want)
{
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	__u32 view = end > data ? end - data : 0;
	s->len = view < want ? view : want;
	/* All 0 (SCAN_MORE), carried across calls: see unknown_zero. */
	s->line_end = unknown_zero;
	s->result = unknown_zero;
	s->ts_at = unknown_zero;
	s->ts_end = unknown_zero;
	s->ts_lines = unknown_zero;
	s->tp_at = unknown_zero;
	s->tp_lines = unknown_zero;
	struct scan_loop l = {.msg = msg, .s = s};
	bpf_loop((s->len + 7) / 8, scan_word, &l, 0);
}

/* One pass over the value of the app's tracestate line: where it starts
 * (past optional spaces and tabs) and whether one of its list members has
 * this agent's key. */
struct ts_value {
	struct sk_msg_md *msg;
	__u32 from;  /* just past the colon */
	__u32 to;    /* the \n ending the line */
	__u32 start; /* the value's first byte (or its \r, if empty); 0: not found yet */
	__u32 m;     /* key bytes matched in the current member; TS_NO: not this key */
	__u32 found; /* a member has this agent's key */
};
#define TS_NO 0xffff

/* bpf_loop callback: one byte of the value. */
static long ts_byte(__u32 k, struct ts_value *t)
{
	__u32 i = t->from + k;
	if (i >= t->to || i > INJ_SCAN_MAX)
		return 1;
	struct sk_msg_md *msg = t->msg;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	__u8 *q = data + OFF(i);
	if (q + 1 > end)
		return 1;
	__u8 ch = *q;
	bool ows = ch == ' ' || ch == '\t';
	if (!t->start) {
		if (ows)
			return 0;
		t->start = i;
	}
	if (ch == '\r')
		return 1;
	if (ch == ',') {
		t->m = 0;
		return 0;
	}
	__u32 m = t->m;
	if (m >= TS_NO || (m == 0 && ows))
		return 0;
	__u32 kl = state_key_len;
	if (m >= kl || m >= INJ_STATE_MAX || ch != state_member[m]) {
		t->m = TS_NO;
		return 0;
	}
	t->m = m + 1;
	if (m + 1 == kl) {
		t->found = 1;
		return 1;
	}
	return 0;
}

static __always_inline __u8 hex(__u8 n)
{
	return n < 10 ? '0' + n : 'a' - 10 + n;
}

static __always_inline void hex_bytes(__u8 *out, const __u8 *in, int n)
{
#pragma unroll
	for (int i = 0; i < n; i++) {
		out[2 * i] = hex(in[i] >> 4);
		out[2 * i + 1] = hex(in[i] & 15);
	}
}

/* Takes n pushed bytes at offset at out again: INJ_WRITE_FAIL (the message
 * is as the application wrote it) or INJ_DROP (it is not). Never reached
 * on a kernel that behaves as below; there for the day one does not. */
static __always_inline __u32 unpush(struct sk_msg_md *msg, __u32 at, __u32 n)
{
	if (MAY_FAIL(FAULT_UNDO, bpf_msg_pop_data(msg, at, n, 0)))
		return INJ_DROP;
	return INJ_WRITE_FAIL;
}

#define TP_VALUE_LEN 55 /* "00-<32 hex>-<16 hex>-<2 hex>" (tracectx.h's) */

/* Where the value of the one traceparent line starts: past up to 4 spaces
 * or tabs after its colon. 0: the view ends first. */
static __always_inline __u32 tp_value(__u8 *data, __u8 *end, __u32 at)
{
#pragma unroll
	for (__u32 k = 0; k < 4; k++) {
		__u8 *q = data + OFF(at + k);
		if (q + 1 > end)
			return 0;
		if (*q != ' ' && *q != '\t')
			return at + k;
	}
	return 0;
}

/* Whether the 2n characters at p spell the n bytes at in as this agent
 * writes them (lower-case hex). A loop, not unrolled: inject_msg's stack
 * has no room for the values an unrolled one keeps. */
static __always_inline bool hex_equal(const __u8 *p, const __u8 *in, int n)
{
	__u8 diff = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < n; i++)
		diff |= (p[2 * i] ^ hex(in[i] >> 4)) | (p[2 * i + 1] ^ hex(in[i] & 15));
	return !diff;
}

/* A traceparent value's first 53 characters, "00-<trace>-<span>-", at v;
 * the flags' two are the caller's. */
static __always_inline void tp_ids(__u8 *v, const __u8 *trace_id, const __u8 *span_id)
{
	v[0] = '0';
	v[1] = '0';
	v[2] = '-';
	hex_bytes(v + 3, trace_id, 16);
	v[35] = '-';
	hex_bytes(v + 36, span_id, 8);
	v[52] = '-';
}

static __always_inline bool is_lower_hex(__u8 ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

/* A request that already has one traceparent line (at s->tp_at) and whose
 * whole head is in view. When its value is version 00 with this call's
 * trace ID and, as parent-id, the remote parent of the span the call is
 * made for, it is the traceparent of the request the sender serves, copied
 * (a proxy or gateway forwarding headers): the sender forwards the context
 * rather than taking part. The parent-id becomes the client span's, in
 * place (W3C: a participant updates parent-id), the same 16 digits long,
 * flags and tracestate as they were. Any other value is the app's own (an
 * SDK's span): left alone. Returns a stat index. */
static __always_inline __u32 forward(struct sk_msg_md *msg, const struct scan *s,
				     const struct inject_ctx *c)
{
	__u64 fwd;
	__builtin_memcpy(&fwd, c->fwd_id, sizeof(fwd));
	if (s->tp_lines != 1 || !fwd || s->tp_at >= s->len)
		return INJ_APP_HEADER;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	__u32 at = tp_value(data, end, s->tp_at);
	if (!at)
		return INJ_APP_HEADER;
	__u8 *v = data + OFF(at);
	/* One pointer for the check and the write: clang would otherwise
	 * recompute data + offset for the write, a pointer the verifier has
	 * seen no bounds check on. */
	asm volatile("" : "+r"(v));
	if (v + TP_VALUE_LEN + 1 > end)
		return INJ_APP_HEADER;
	if (v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	    !is_lower_hex(v[53]) || !is_lower_hex(v[54]) ||
	    (v[55] != '\r' && v[55] != ' ' && v[55] != '\t'))
		return INJ_APP_HEADER;
	if (!hex_equal(v + 3, c->trace_id, 16) || !hex_equal(v + 36, c->fwd_id, 8))
		return INJ_APP_HEADER;
	hex_bytes(v + 36, c->span_id, 8);
	return INJ_FORWARD_REWRITTEN;
}

/* Inserts the header at offset at (with the state line after it when
 * line is set) and, when merge_at is not 0, the member there, first in the
 * app's tracestate list: INJ_INJECTED, INJ_WRITE_FAIL (sent as the
 * application wrote it) or INJ_DROP (the message must not go out).
 *
 * bpf_msg_push_data fails before it changes anything (bad offset, or no
 * memory), and leaves the new bytes, uninitialised, in a scatterlist
 * element of their own (or, with the ring full, at a known place in a
 * fresh copy of one). The pull over exactly those bytes then copies
 * nothing and allocates nothing, so it cannot fail: after the push nothing
 * that can fail stands between the bytes and their contents. Should it
 * fail anyway, the push is undone, and if that fails too the message is
 * dropped rather than sent with kernel memory in it. With two pushes, the
 * member is written before the second; a second push or pull that fails
 * takes out what the first put in (or, failing that, drops the message):
 * never one insertion without the other. */
__noinline __u32 insert(struct sk_msg_md *msg, __u32 at, const struct inject_ctx *c, __u32 line,
			__u32 merge_at)
{
	if (!msg || !c)
		return INJ_WRITE_FAIL;
	__u8 h[INJ_HEADER_LEN + 2];
	__builtin_memcpy(h, "traceparent: 00-", 16);
	hex_bytes(h + 16, c->trace_id, 16);
	h[48] = '-';
	hex_bytes(h + 49, c->span_id, 8);
	h[65] = '-';
	hex_bytes(h + 66, &c->flags, 1);
	h[68] = '\r';
	h[69] = '\n';

	/* The member first: it goes further into the message than the
	 * traceparent line, so neither push moves the other's offset. */
	__u32 m = 0;
	if (merge_at) {
		m = state_member_len;
		if (m == 0 || m > INJ_STATE_MAX || merge_at <= at)
			return INJ_WRITE_FAIL;
		if (MAY_FAIL(FAULT_PUSH, bpf_msg_push_data(msg, merge_at, m, 0)))
			return INJ_WRITE_FAIL;
		if (MAY_FAIL(FAULT_WRITE, bpf_msg_pull_data(msg, merge_at, merge_at + m, 0)))
			return unpush(msg, merge_at, m);
		__u8 *data = MSG_DATA(msg);
		__u8 *end = MSG_END(msg);
		if (data + m > end)
			return unpush(msg, merge_at, m);
		copy_state(data, end, state_member, m);
	}
	__u32 n = INJ_HEADER_LEN + (line ? state_line_len : 0);
	if (n > INJ_HEADER_LEN + INJ_STATE_MAX)
		return m ? unpush(msg, merge_at, m) : INJ_WRITE_FAIL;
	/* Should this push fail (no memory), the member comes out again. */
	if (MAY_FAIL(m ? FAULT_PUSH2 : FAULT_PUSH, bpf_msg_push_data(msg, at, n, 0)))
		return m ? unpush(msg, merge_at, m) : INJ_WRITE_FAIL;
	if (!MAY_FAIL(FAULT_WRITE, bpf_msg_pull_data(msg, at, at + n, 0))) {
		__u8 *data = MSG_DATA(msg);
		__u8 *end = MSG_END(msg);
		if (data + n <= end) {
			__builtin_memcpy(data, h, INJ_HEADER_LEN);
			if (line)
				copy_state(data + INJ_HEADER_LEN, end, state_line, state_line_len);
			if (m)
				count(INJ_STATE_MERGED);
			return INJ_INJECTED;
		}
	}
	if (unpush(msg, at, n) == INJ_DROP)
		return INJ_DROP;
	return m ? unpush(msg, merge_at, m) : INJ_WRITE_FAIL;
}

/* What to do with a message that starts a request: a stat index. A
 * global function, so that its stack is not inject_msg's (HTTP/2's path
 * goes deeper). */
__noinline __u32 inject(struct sk_msg_md *msg, const struct inject_ctx *c)
{
	if (!msg || !c)
		return INJ_WRITE_FAIL;
	struct scan s = {};
	__u32 size = msg->size;
	__u32 want = size < INJ_SCAN_MAX ? size : INJ_SCAN_MAX;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);

	if (size < 18) /* shorter than "GET / HTTP/1.1\r\n\r\n": no request head */
		return INJ_NOT_HTTP;
	if (data + 8 > end) {
		/* The first element is tiny (or not mapped): linearise the head. */
		if (bpf_msg_pull_data(msg, 0, want, 0))
			return INJ_WRITE_FAIL;
		data = MSG_DATA(msg);
		end = MSG_END(msg);
		if (data + 8 > end)
			return INJ_WRITE_FAIL;
	}
	if (!is_method(*(__u64 *)data))
		return INJ_NOT_HTTP;
	scan(msg, &s, want);
	if (s.result == SCAN_MORE && s.len < want) {
		/* The head goes on in the next scatterlist element. */
		if (bpf_msg_pull_data(msg, 0, want, 0))
			return INJ_WRITE_FAIL;
		scan(msg, &s, want);
	}
	switch (s.result) {
	case SCAN_BAD_LINE:
		return INJ_NOT_HTTP;
	case SCAN_MORE:
		/* A traceparent in a head that does not end in view: left alone. */
		if (s.tp_lines)
			return INJ_APP_HEADER;
		return want == INJ_SCAN_MAX ? INJ_TOO_LONG : INJ_SPLIT;
	}
	if (s.tp_lines)
		return forward(msg, &s, c);
	if (!state_line_len)
		return insert(msg, s.line_end, c, false, 0);
	if (!s.ts_lines)
		return insert(msg, s.line_end, c, true, 0);
	/* The app sent a tracestate of its own: this agent's member goes
	 * first in its list (W3C: a vendor that updates it puts its member
	 * first) rather than in a second tracestate line. Unless the list
	 * has this key already, or comes in several lines (one of which
	 * could): then it stays as it is. */
	struct ts_value t = {.msg = msg, .from = s.ts_at, .to = s.ts_end,
			     .start = unknown_zero, .m = unknown_zero, .found = unknown_zero};
	if (s.ts_lines == 1 && s.ts_end > s.ts_at && s.ts_end <= INJ_SCAN_MAX)
		bpf_loop(s.ts_end - s.ts_at, ts_byte, &t, 0);
	if (s.ts_lines > 1 || t.found || !t.start) {
		count(INJ_STATE_KEPT);
		return insert(msg, s.line_end, c, false, 0);
	}
	return insert(msg, s.line_end, c, false, t.start);
}

/* ---- HTTP/2: a literal field at the end of a request's header block ---- */

/* Bytes added to a request's header block: traceparent and, when the
 * cluster has a name, tracestate. */
static __always_inline __u32 h2_added(void)
{
	__u32 n = state_field_len;
	return INJ_H2_FIELD_LEN + (n > INJ_STATE_MAX ? 0 : n);
}

#define H2_FRAME_HEADER 9
#define H2_HEADERS 1
#define H2_END_HEADERS 0x4
#define H2_PADDED 0x8
#define H2_MAX_FRAME 16384 /* SETTINGS_MAX_FRAME_SIZE's floor: every peer takes it */
#define H2_MAX_FRAMES 8192 /* frames walked in one message: 9 bytes each fill 72 KiB */
#define H2_PREFACE_LEN 24

struct h2_walk {
	struct sk_msg_md *msg;
	struct sock_state *st;
	__u32 off;  /* next frame header, from the message start */
	__u32 size; /* message size, with what was added */
	__u32 tgid;
	__u32 lost;
	__u32 drop; /* a change could not be undone: drop the message */
	__u64 goid; /* the sending goroutine: grpc-go's loopy writer */
};

enum { HP_NONE, HP_INDEXED, HP_INSERT, HP_LITERAL };

/* Where a block's traceparent field is (the last, if several). */
struct hp_found {
	__u32 n;      /* traceparent fields in the block */
	__u32 at, end; /* its representation */
	__u32 val;    /* a literal's value string */
	__u32 idx;    /* an indexed field's index */
	__u32 serial; /* a literal with indexing: its entry */
	__u8 kind;    /* HP_* */
	__u8 rw;      /* indexed: an entry the peer holds rewritten */
	__u8 _pad[2];
};

/* What h2_add_field works on (a global function takes at most five
 * arguments): the HEADERS frame at off, payload len; added is out. */
struct h2_field {
	__u64 goid;
	__u32 tgid;
	__u32 off;
	__u32 len;
	__u32 stream_id;
	__u32 added;
	__u32 app;   /* in and out: the socket's sock_state.h2_app */
	__u32 flags; /* the frame's */
	__u32 _pad;
	struct hp_table t; /* in and out: the socket's sock_state.hp */
	struct hp_found tp; /* the block's traceparent, as hp_block found it */
};

/* Longest header block read: a whole frame at the size every peer takes
 * (a longer block is in CONTINUATION, unread anyway). Large cookies or
 * tokens must not end the table's tracking; the walk costs per field, not
 * per byte. */
#define H2_SCAN_MAX H2_MAX_FRAME
#define H2_PRIORITY 0x20 /* HEADERS: 5 bytes of priority before the block */

/* A name as an HPACK encoder writes it in a literal with a new name: the
 * length byte (high bit: Huffman), then the name. Huffman is how Go's
 * encoder (and most) write names when it is shorter; the codes are fixed by
 * RFC 7541 (TestHuffmanNames checks them against Go's hpack). As
 * little-endian words: */
#define HUFF_TP 0x3fa9851d6b21834dULL /* "traceparent": 8 bytes, all of them */
#define HUFF_TS 0x00bfa4915021834dULL /* "tracestate": 7 bytes, the low ones */
#define HUFF_TP_LEN 8
#define HUFF_TS_LEN 7

/* One header block being walked (hp_rep): what it finds goes into a's
 * table and traceparent, in place. */
struct hp_walk {
	struct sk_msg_md *msg;
	struct h2_field *a;
	__u32 len;  /* the block's bytes, pulled from its start */
	__u32 pos;  /* next representation */
	__u32 bad;  /* not readable as HPACK: the table is lost */
	__u32 n_ts; /* tracestate fields */
};

/* The block's byte at o, -1 past its end. */
static __always_inline int hp_byte(struct sk_msg_md *msg, __u32 len, __u32 o)
{
	if (o >= len || o >= H2_SCAN_MAX)
		return -1;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	barrier_var(o);
	__u8 *q = data + (o & (H2_SCAN_MAX - 1));
	if (q + 1 > end)
		return -1;
	return *q;
}

/* An HPACK integer (RFC 7541, 5.1) at the block's offset *o, of len
 * bytes, its first byte's prefix mask bits long; *o moves past it. -1:
 * bad, or past 2^21 (no index or length here comes near). A global
 * function: verified once, its result one unknown to its callers. */
__noinline long hp_int(struct sk_msg_md *msg, __u32 len, __u32 *o, __u32 mask)
{
	if (!msg || !o)
		return -1;
	int first = hp_byte(msg, len, *o);
	if (first < 0)
		return -1;
	*o += 1;
	long v = first & mask;
	if (v < mask)
		return v;
#pragma unroll
	for (int k = 0; k < 3; k++) {
		int c = hp_byte(msg, len, *o);
		if (c < 0)
			return -1;
		*o += 1;
		v += (long)(c & 127) << (7 * k);
		if (!(c & 128))
			return v;
	}
	return -1;
}

static __always_inline bool hp_bit(const __u64 *b, __u32 s)
{
	return (s & 64) ? (b[1] >> (s & 63)) & 1 : (b[0] >> (s & 63)) & 1;
}

static __always_inline void hp_set(__u64 *b, __u32 s, bool on)
{
	__u64 m = 1ULL << (s & 63);
	if (s & 64)
		b[1] = on ? b[1] | m : b[1] & ~m;
	else
		b[0] = on ? b[0] | m : b[0] & ~m;
}

/* The entry a dynamic index names, as a serial; -1: none the tracking
 * knows (a bad index). */
static __always_inline long hp_serial(const struct hp_table *t, long idx)
{
	__u32 k = idx - 62;
	if (k >= t->ins || k >= HP_SERIALS)
		return -1;
	return t->ins - 1 - k;
}

/* 1: the string at o is the name "traceparent", 2: "tracestate", else 0. */
__noinline int hp_name(struct sk_msg_md *msg, __u32 len, __u32 o)
{
	/* The shortest name looked for, with its value's length byte, is 9
	 * bytes (a Huffman "tracestate"): a short block end must not hide it. */
	if (!msg || o + 9 > len || o >= H2_SCAN_MAX)
		return 0;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	barrier_var(o);
	__u8 *q = data + (o & (H2_SCAN_MAX - 1));
	if (q + 9 > end)
		return 0;
	__u8 b = q[0];
	__u64 word = *(__u64 *)(q + 1);
	if (b == 0x80 + HUFF_TP_LEN && word == HUFF_TP)
		return 1;
	if (b == 0x80 + HUFF_TS_LEN && (word & 0x00ffffffffffffffULL) == HUFF_TS)
		return 2;
	if (b == 11 && word == W8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && o + 12 <= len && q + 12 <= end &&
	    q[9] == 'e' && q[10] == 'n' && q[11] == 't')
		return 1;
	if (b == 10 && word == W8('t', 'r', 'a', 'c', 'e', 's', 't', 'a') && o + 11 <= len && q + 11 <= end &&
	    q[9] == 't' && q[10] == 'e')
		return 2;
	return 0;
}

/* bpf_loop callback: one field representation (RFC 7541, section 6).
 * Counts the entries the decoder inserts, notes which are traceparent and
 * tracestate, and where this block's traceparent is. 1 stops. */
static long hp_rep(__u32 i, struct hp_walk *w)
{
	struct h2_field *a = w->a;
	__u32 at = w->pos, o = at;
	if (o >= w->len)
		return 1;
	int b = hp_byte(w->msg, w->len, o);
	if (b < 0)
		goto bad;
	if (b & 0x80) { /* indexed field */
		long idx = hp_int(w->msg, w->len, &o, 127);
		if (idx <= 0)
			goto bad;
		if (idx > 61) {
			long s = hp_serial(&a->t, idx);
			if (s < 0)
				goto bad;
			if (hp_bit(a->t.tp, s)) {
				a->tp.n++;
				a->tp.kind = HP_INDEXED;
				a->tp.at = at;
				a->tp.end = o;
				a->tp.idx = idx;
				a->tp.rw = hp_bit(a->t.rw, s);
			}
			if (hp_bit(a->t.ts, s))
				w->n_ts++;
		}
		w->pos = o;
		return 0;
	}
	if ((b & 0xe0) == 0x20) { /* dynamic table size update */
		long size = hp_int(w->msg, w->len, &o, 31);
		if (size < 0 || size > HP_TABLE_MAX)
			goto bad;
		w->pos = o;
		return 0;
	}
	bool insert = b & 0x40;
	long idx = hp_int(w->msg, w->len, &o, insert ? 63 : 15);
	if (idx < 0)
		goto bad;
	int name = 0;
	if (idx == 0) {
		name = hp_name(w->msg, w->len, o);
		long n = hp_int(w->msg, w->len, &o, 127);
		if (n < 0)
			goto bad;
		o += n;
	} else if (idx > 61) {
		long s = hp_serial(&a->t, idx);
		if (s < 0)
			goto bad;
		name = hp_bit(a->t.tp, s) ? 1 : hp_bit(a->t.ts, s) ? 2 : 0;
	}
	__u32 val = o;
	long n = hp_int(w->msg, w->len, &o, 127);
	if (n < 0)
		goto bad;
	o += n;
	if (o > w->len)
		goto bad;
	if (name == 1) {
		a->tp.n++;
		a->tp.kind = insert ? HP_INSERT : HP_LITERAL;
		a->tp.at = at;
		a->tp.end = o;
		a->tp.val = val;
		a->tp.serial = a->t.ins;
	} else if (name == 2) {
		w->n_ts++;
	}
	if (insert) {
		__u32 s = a->t.ins;
		hp_set(a->t.tp, s, name == 1);
		hp_set(a->t.ts, s, name == 2);
		hp_set(a->t.rw, s, false);
		a->t.ins = s + 1;
	}
	w->pos = o;
	return 0;
bad:
	w->bad = 1;
	return 1;
}

/* Walks the header block of the HEADERS frame at a->off (wholly in this
 * message), keeping a->t up to date; w->bad when it cannot be read. */
static __always_inline void hp_block(struct sk_msg_md *msg, struct h2_field *a, struct hp_walk *w)
{
	__u32 at = a->off + H2_FRAME_HEADER, len = a->len;
	if (a->flags & H2_PRIORITY) {
		if (len < 5)
			goto bad;
		at += 5;
		len -= 5;
	}
	if (len > H2_SCAN_MAX)
		goto bad;
	if (!len)
		return;
	if (bpf_msg_pull_data(msg, at, at + len, 0))
		goto bad;
	w->msg = msg;
	w->a = a;
	w->len = len;
	bpf_loop(H2_SCAN_MAX, hp_rep, w, 0);
	if (w->bad || w->pos != len)
		goto bad;
	return;
bad:
	w->bad = 1;
}

/* The Huffman code's symbols a traceparent value uses (RFC 7541, Appendix
 * B), by the next six bits: 5-bit codes (below 0b010100, whose sixth bit
 * belongs to the next symbol) for 0 1 2 a c e; 6-bit codes for - 3-9 b d
 * f; 0 for any other symbol (the value is not a traceparent). */
static const char hp_huff6[64] = {
	'0', '0', '1', '1', '2', '2', 'a', 'a', 'c', 'c', 'e', 'e', 0,   0,   0,   0,
	0,   0,   0,   0,   0,   0,   '-', 0,   0,   '3', '4', '5', '6', '7', '8', '9',
	0,   0,   0,   'b', 'd', 'f', 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
	0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
};

/* What h2_forward works on, in a per-CPU map: its loops index it. */
struct hp_scratch {
	__u8 v[64]; /* the value read: TP_VALUE_LEN characters */
	__u8 f[64]; /* the bytes that replace the representation */
	__u8 field[INJ_H2_FIELD_LEN]; /* h2_add_field's */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hp_scratch);
} hp_scratch SEC(".maps");

struct hp_value {
	struct sk_msg_md *msg;
	__u32 len;  /* the block's */
	__u32 pos;  /* next byte */
	__u32 end;  /* the string's end */
	__u32 huff; /* Huffman-coded */
	__u32 nbits;
	__u32 bad;
	__u64 acc;
};

/* bpf_loop callback: the value's character i into hp_scratch.v. */
static long hp_char(__u32 i, struct hp_value *s)
{
	__u32 zero = 0;
	struct hp_scratch *x = bpf_map_lookup_elem(&hp_scratch, &zero);
	if (!x || i >= TP_VALUE_LEN)
		goto bad;
	/* The mask stays (clang knows i is below it; the verifier must too). */
	barrier_var(i);
	i &= 63;
	if (!s->huff) {
		int c = hp_byte(s->msg, s->len, s->pos);
		if (c < 0)
			goto bad;
		s->pos++;
		x->v[i] = c;
		return 0;
	}
	if (s->nbits < 6) {
		/* Past the string, ones: EOS's prefix, padding's bits. */
		int c = s->pos < s->end ? hp_byte(s->msg, s->len, s->pos) : 0xff;
		if (c < 0)
			goto bad;
		s->pos++;
		s->acc = s->acc << 8 | c;
		s->nbits += 8;
	}
	__u32 v = (s->acc >> (s->nbits - 6)) & 63;
	char c = hp_huff6[v];
	if (!c)
		goto bad;
	s->nbits -= v < 20 ? 5 : 6;
	x->v[i] = c;
	return 0;
bad:
	s->bad = 1;
	return 1;
}

/* Reads the string at o (a literal's value) into hp_scratch.v when it is
 * TP_VALUE_LEN characters of a traceparent's alphabet. False otherwise. */
static __always_inline bool hp_value(struct sk_msg_md *msg, __u32 len, __u32 o)
{
	int b = hp_byte(msg, len, o);
	if (b < 0)
		return false;
	struct hp_value s = {.msg = msg, .len = len, .pos = o + 1, .huff = b & 0x80};
	__u32 n = b & 127;
	/* 55 characters take 5 to 6 bits each in Huffman. */
	if (s.huff ? (n < 35 || n > 42) : n != TP_VALUE_LEN)
		return false;
	s.end = s.pos + n;
	bpf_loop(TP_VALUE_LEN, hp_char, &s, 0);
	if (s.bad)
		return false;
	if (!s.huff)
		return true;
	/* What is left of the string: under 8 bits, all ones (RFC 7541,
	 * 5.2: padding). s.nbits holds them, and ones past it. */
	__u32 used = (s.pos - (o + 1)) * 8 - s.nbits;
	__u32 rest = n * 8 - used;
	if (used > n * 8 || rest > 7)
		return false;
	__u32 pad = (s.acc >> (s.nbits - rest)) & ((1u << rest) - 1);
	return pad == (1u << rest) - 1;
}

/* Writes len as the 24-bit length of the frame at off. */
static __always_inline bool h2_set_len(struct sk_msg_md *msg, __u32 off, __u32 len)
{
	if (bpf_msg_pull_data(msg, off, off + 3, 0))
		return false;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	if (data + 3 > end)
		return false;
	data[0] = len >> 16;
	data[1] = len >> 8;
	data[2] = len;
	return true;
}

/* Puts the frame length back after a failed insertion. The header was
 * pulled into one element before, so this pull copies nothing. */
static __always_inline bool h2_restore_len(struct sk_msg_md *msg, __u32 off, __u32 len)
{
	if (fault & FAULT_UNDO)
		return false;
	return h2_set_len(msg, off, len);
}

/* Writes n bytes of hp_scratch.f from src at the message's offset at;
 * pulled first (bytes in one element: nothing is copied). */
static __always_inline bool hp_write(struct sk_msg_md *msg, __u32 at, __u32 src, __u32 n)
{
	__u32 zero = 0;
	struct hp_scratch *x = bpf_map_lookup_elem(&hp_scratch, &zero);
	if (!x || !n || n > 64 || bpf_msg_pull_data(msg, at, at + n, 0))
		return false;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
#pragma clang loop unroll(disable)
	for (__u32 j = 0; j < 64; j++) {
		if (j >= n)
			break;
		__u8 *p = data + j;
		if (p + 1 > end)
			return false;
		__u32 m = src + j;
		barrier_var(m);
		*p = x->f[m & 63];
	}
	return true;
}

/* The request's one traceparent field, when it is the one the request
 * the sender serves came with (a proxy, a gateway, a service copying
 * metadata: version 00, this call's trace, the served span's remote
 * parent as parent-id): rewritten so that its parent-id is the client
 * span's, as W3C asks of a participant, flags kept. The value goes out
 * raw (55 characters: Huffman would change its length with its digits),
 * in a literal of the same kind, so the peer's table holds it where the
 * encoder's holds the original, the same size. A later indexed reference
 * to that entry (the same request forwarded again on the connection: a
 * retry, a fan-out) would give the peer this call's span: it becomes a
 * literal without indexing, the entry's name index, with that call's
 * span. INJ_FORWARD_REWRITTEN, INJ_WRITE_FAIL, INJ_DROP, or 0: not a
 * forwarded value (the app's own). */
__noinline __u32 h2_forward(struct sk_msg_md *msg, struct h2_field *a)
{
	if (!msg || !a)
		return 0;
	struct h2_key key = {.tgid = a->tgid, .stream_id = a->stream_id, .goid = a->goid};
	struct h2_span *ids = bpf_map_lookup_elem(&h2_ids, &key);
	if (!ids)
		return 0;
	struct hp_found *w = &a->tp;
	__u64 fwd;
	__builtin_memcpy(&fwd, ids->fwd_id, sizeof(fwd));
	if (w->n != 1 || !fwd || !(ids->flags & CTX_LINKED))
		return 0;
	__u32 blk = a->off + H2_FRAME_HEADER + ((a->flags & H2_PRIORITY) ? 5 : 0);
	__u32 len = a->len - ((a->flags & H2_PRIORITY) ? 5 : 0);
	if (bpf_msg_pull_data(msg, blk, blk + len, 0))
		return 0;
	__u32 zero = 0;
	struct hp_scratch *x = bpf_map_lookup_elem(&hp_scratch, &zero);
	if (!x)
		return 0;
	__u32 from, to, k = 0;
	__u8 flags[2];
	if (w->kind == HP_INSERT || w->kind == HP_LITERAL) {
		if (!hp_value(msg, len, w->val))
			return 0;
		__u8 *v = x->v;
		if (v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
		    !is_lower_hex(v[53]) || !is_lower_hex(v[54]))
			return 0;
		if (!hex_equal(v + 3, ids->trace_id, 16) || !hex_equal(v + 36, ids->fwd_id, 8))
			return 0;
		flags[0] = v[53];
		flags[1] = v[54];
		from = w->val;
		to = w->end;
	} else if (w->kind == HP_INDEXED && w->rw) {
		/* Literal without indexing, the name by the entry's index:
		 * 0000 1111, then the index less 15 (RFC 7541, 5.1). */
		__u32 rem = w->idx - 15;
		x->f[0] = 0x0f;
		if (rem < 128) {
			x->f[1] = rem;
			k = 2;
		} else {
			x->f[1] = 0x80 | (rem & 127);
			x->f[2] = (rem >> 7) & 127;
			k = 3;
		}
		flags[0] = '0';
		flags[1] = (ids->flags & CTX_SAMPLED) ? '1' : '0';
		from = w->at;
		to = w->end;
	} else {
		return 0;
	}
	__u8 *f = x->f + (k & 3);
	f[0] = TP_VALUE_LEN;
	tp_ids(f + 1, ids->trace_id, ids->span_id);
	f[54] = flags[0];
	f[55] = flags[1];
	__u32 n = k + 1 + TP_VALUE_LEN; /* the new bytes */
	__u32 old = to - from;
	if (to <= from || old > n || from >= len || to > len)
		return 0;
	__u32 delta = n - old;
	if (a->len + delta > H2_MAX_FRAME)
		return 0;
	/* Nothing has changed until the push; the new length goes first (as
	 * in h2_add_field), then the bytes after the old ones, then those. */
	if (delta && !h2_set_len(msg, a->off, a->len + delta))
		return INJ_WRITE_FAIL;
	if (delta && MAY_FAIL(FAULT_PUSH, bpf_msg_push_data(msg, blk + to, delta, 0)))
		return h2_restore_len(msg, a->off, a->len) ? INJ_WRITE_FAIL : INJ_DROP;
	if ((delta && !hp_write(msg, blk + to, old, delta)) || !hp_write(msg, blk + from, 0, old)) {
		if (!delta)
			return INJ_WRITE_FAIL; /* a write into the message fails before it changes a byte */
		if (unpush(msg, blk + to, delta) == INJ_DROP || !h2_restore_len(msg, a->off, a->len))
			return INJ_DROP;
		/* The old bytes may be half rewritten: the message must not go. */
		return INJ_DROP;
	}
	if (w->kind == HP_INSERT)
		hp_set(a->t.rw, w->serial, true);
	a->added = delta;
	ids->flags |= H2_INJECTED;
	__u64 span;
	__builtin_memcpy(&span, ids->span_id, sizeof(span));
	__u8 one = 1;
	bpf_map_update_elem(&inject_forwarded, &span, &one, BPF_ANY);
	return INJ_FORWARD_REWRITTEN;
}

/* h2_add_field's answer for a block with one traceparent: h2_forward
 * decides (not a stat). */
#define H2_TRY_FORWARD 0xff

/* Appends the field to the header block of the HEADERS frame at off
 * (payload len, wholly in this message). Returns a stat index. */
__noinline __u32 h2_add_field(struct sk_msg_md *msg, struct h2_field *a)
{
	if (!msg || !a)
		return INJ_WRITE_FAIL;
	__u32 off = a->off, len = a->len;
	struct h2_key k = {.tgid = a->tgid, .stream_id = a->stream_id, .goid = a->goid};
	struct h2_span *ids = bpf_map_lookup_elem(&h2_ids, &k);
	/* Every block is walked while the table is known, so that it stays
	 * known: it tells the requests whose probe cannot (net/http's HTTP/2
	 * client, H2_UNCHECKED) whether the app sent a traceparent or a
	 * tracestate, by name or by index, and where a forwarded one is. */
	struct hp_walk w = {};
	bool known = !(a->app & H2W_BLIND);
	if (known) {
		hp_block(msg, a, &w);
		if (w.bad) {
			a->app |= H2W_BLIND;
			known = false;
		}
	}
	if (!ids)
		return INJ_H2_NO_CTX;
	if (ids->flags & H2_INJECTED)
		return INJ_H2_REPEAT;
	if (known && a->tp.n == 1)
		return H2_TRY_FORWARD; /* the caller's next step (the stack is short) */
	if (ids->flags & H2_APP_HEADER)
		return INJ_H2_APP_HEADER;
	__u8 app_state = ids->flags & H2_APP_STATE;
	if (ids->flags & H2_UNCHECKED) {
		if (!known)
			return INJ_H2_UNCHECKED;
		if (a->tp.n)
			return INJ_H2_APP_HEADER;
		if (w.n_ts)
			app_state = H2_APP_STATE;
	} else if (known && a->tp.n) {
		return INJ_H2_APP_HEADER; /* the probe missed it (more fields than it reads) */
	}
	/* The application's own tracestate: weft's member is not added (HPACK
	 * may have it Huffman-coded or indexed, so it cannot be merged). */
	bool state = !app_state;
	__u32 n = state ? h2_added() : INJ_H2_FIELD_LEN;
	if (len + n > H2_MAX_FRAME)
		return INJ_H2_TOO_LONG;
	/* Built in the scratch map: the stack is short this deep. */
	__u32 zero = 0;
	struct hp_scratch *x = bpf_map_lookup_elem(&hp_scratch, &zero);
	if (!x)
		return INJ_WRITE_FAIL;
	__u8 *f = x->field;
	f[0] = 0x00;
	f[1] = 11;
	__builtin_memcpy(f + 2, "traceparent", 11);
	f[13] = 55;
	__u8 *v = f + 14;
	tp_ids(v, ids->trace_id, ids->span_id);
	__u8 flags = ids->flags & CTX_SAMPLED ? 1 : 0;
	hex_bytes(v + 53, &flags, 1);

	/* The frame's new length goes first, while nothing else has changed
	 * (a failure here leaves the message as it was), so that after the
	 * push only the pull that cannot fail remains (see insert). */
	__u32 at = off + H2_FRAME_HEADER + len;
	if (!h2_set_len(msg, off, len + n))
		return INJ_WRITE_FAIL;
	if (MAY_FAIL(FAULT_PUSH, bpf_msg_push_data(msg, at, n, 0)))
		return h2_restore_len(msg, off, len) ? INJ_WRITE_FAIL : INJ_DROP;
	if (!MAY_FAIL(FAULT_WRITE, bpf_msg_pull_data(msg, at, at + n, 0))) {
		__u8 *data = MSG_DATA(msg);
		__u8 *end = MSG_END(msg);
		if (data + n <= end) {
			__builtin_memcpy(data, f, INJ_H2_FIELD_LEN);
			if (state)
				copy_state(data + INJ_H2_FIELD_LEN, end, state_field, state_field_len);
			ids->flags |= H2_INJECTED;
			a->added = n;
			return INJ_H2_INJECTED;
		}
	}
	if (unpush(msg, at, n) == INJ_DROP || !h2_restore_len(msg, off, len))
		return INJ_DROP;
	return INJ_WRITE_FAIL;
}

/* bpf_loop callback: one frame header. Returns 1 to stop. */
static long h2_frame(__u32 i, struct h2_walk *w)
{
	struct sk_msg_md *msg = w->msg;
	struct sock_state *st = w->st;
	__u32 off = w->off, size = w->size;
	if (off >= size) {
		/* A frame header cut by the last message named a frame longer
		 * than this one. */
		if (off > size)
			st->h2_left = off - size;
		return 1;
	}
	if (size - off < H2_FRAME_HEADER) {
		/* The header goes on in the next message: keep what is here. */
		__u32 have = size - off;
		if (bpf_msg_pull_data(msg, off, size, 0)) {
			w->lost = 1;
			return 1;
		}
		__u8 *data = MSG_DATA(msg);
		__u8 *end = MSG_END(msg);
		if (data + 8 > end) {
			/* Fewer than 8 readable: copy byte by byte. */
#pragma clang loop unroll(disable)
			for (int j = 0; j < 8; j++) {
				if (j >= have || data + j + 1 > end)
					break;
				st->hb[j] = data[j];
			}
		} else {
			__builtin_memcpy(st->hb, data, 8);
		}
		st->hb_have = have;
		return 1;
	}
	if (bpf_msg_pull_data(msg, off, off + H2_FRAME_HEADER, 0)) {
		w->lost = 1;
		return 1;
	}
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	if (data + H2_FRAME_HEADER > end) {
		w->lost = 1;
		return 1;
	}
	__u32 len = (__u32)data[0] << 16 | (__u32)data[1] << 8 | data[2];
	__u8 type = data[3], flags = data[4];
	__u32 sid = ((__u32)data[5] << 24 | (__u32)data[6] << 16 | (__u32)data[7] << 8 | data[8]) & 0x7fffffff;
	__u32 fend = off + H2_FRAME_HEADER + len;
	if (type == H2_HEADERS && (sid & 1)) {
		/* A client-opened stream's request headers. */
		__u32 r;
		struct h2_field a = {.goid = w->goid, .tgid = w->tgid, .off = off, .len = len, .stream_id = sid,
				     .app = st->h2_app, .flags = flags, .t = st->hp};
		if (!(flags & H2_END_HEADERS) || fend > size) {
			r = INJ_H2_SPLIT;
			a.app |= H2W_BLIND;
		} else if (flags & H2_PADDED) {
			r = INJ_H2_TOO_LONG;
			a.app |= H2W_BLIND;
		} else {
			r = h2_add_field(msg, &a);
			if (r == H2_TRY_FORWARD) {
				r = h2_forward(msg, &a);
				if (!r)
					r = INJ_H2_APP_HEADER; /* the app's own */
			}
		}
		st->h2_app = a.app;
		st->hp = a.t;
		count(r);
		if (r == INJ_DROP) {
			w->drop = 1;
			return 1;
		}
		if (r == INJ_H2_INJECTED || r == INJ_FORWARD_REWRITTEN) {
			fend += a.added;
			w->size += a.added;
		}
	}
	if (fend > w->size) {
		st->h2_left = fend - w->size;
		return 1;
	}
	w->off = fend;
	return 0;
}

/* A frame header cut by the end of the last message: complete it from the
 * start of this one (or keep collecting, if this one is shorter still),
 * and skip the frame (its length is on the wire). */
static __always_inline bool h2_rejoin(struct h2_walk *w)
{
	struct sock_state *st = w->st;
	__u32 have = st->hb_have;
	if (!have)
		return true;
	if (have >= H2_FRAME_HEADER)
		return false;
	__u32 need = H2_FRAME_HEADER - have;
	__u32 take = need < w->size ? need : w->size;
	if (bpf_msg_pull_data(w->msg, 0, take, 0))
		return false;
	__u8 *data = MSG_DATA(w->msg);
	__u8 *end = MSG_END(w->msg);
	__u8 h[H2_FRAME_HEADER] = {};
#pragma clang loop unroll(disable)
	for (int j = 0; j < H2_FRAME_HEADER; j++) {
		if (j < have) {
			h[j] = st->hb[j & 7];
		} else if (j < have + take) {
			__u8 *p = data + ((j - have) & 15);
			if (p + 1 > end)
				return false;
			h[j] = *p;
		}
	}
	if (take < need) {
		/* Still short of a whole header: keep it all for the next one. */
#pragma clang loop unroll(disable)
		for (int j = 0; j < 8; j++)
			st->hb[j] = h[j];
		st->hb_have = have + take;
		w->off = w->size;
		return true;
	}
	st->hb_have = 0;
	__u32 len = (__u32)h[0] << 16 | (__u32)h[1] << 8 | h[2];
	if (h[3] == H2_HEADERS && (h[8] & 1)) {
		count(INJ_H2_SPLIT);
		st->h2_app |= H2W_BLIND; /* its block goes unread */
	}
	w->off = need + len;
	return true;
}

static __always_inline bool h2_preface(struct sk_msg_md *msg)
{
	if (msg->size < H2_PREFACE_LEN)
		return false;
	__u8 *data = MSG_DATA(msg);
	__u8 *end = MSG_END(msg);
	if (data + 16 > end) {
		if (bpf_msg_pull_data(msg, 0, 16, 0))
			return false;
		data = MSG_DATA(msg);
		end = MSG_END(msg);
		if (data + 16 > end)
			return false;
	}
	return *(__u64 *)data == W8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') &&
	       *(__u64 *)(data + 8) == W8('T', 'P', '/', '2', '.', '0', '\r', '\n');
}

/* Whether a client may send a frame with this header (RFC 9113, section
 * 6): the type's stream and length rules. A client opens odd streams and
 * never pushes. */
static __always_inline bool h2_client_frame(const __u8 *h)
{
	__u32 len = (__u32)h[0] << 16 | (__u32)h[1] << 8 | h[2];
	__u8 type = h[3], flags = h[4];
	if (h[5] & 0x80)
		return false; /* the reserved bit */
	__u32 sid = (__u32)h[5] << 24 | (__u32)h[6] << 16 | (__u32)h[7] << 8 | h[8];
	switch (type) {
	case 0: /* DATA */
	case H2_HEADERS:
	case 9: /* CONTINUATION */
		return sid & 1;
	case 2: /* PRIORITY */
		return sid && len == 5;
	case 3: /* RST_STREAM */
		return sid && len == 4;
	case 4: /* SETTINGS */
		return !sid && ((flags & 1) ? len == 0 : len % 6 == 0);
	case 6: /* PING */
		return !sid && len == 8;
	case 7: /* GOAWAY */
		return !sid && len >= 8;
	case 8: /* WINDOW_UPDATE */
		return len == 4;
	default: /* PUSH_PROMISE, unknown types */
		return false;
	}
}

struct h2_sync {
	struct sk_msg_md *msg;
	__u64 off; /* next frame header */
	__u32 size;
	__u32 whole; /* the frames end exactly at the message's end */
};

/* bpf_loop callback: one frame header of h2_sync. Returns 1 to stop. */
static long h2_sync_frame(__u32 i, struct h2_sync *s)
{
	if (s->off >= s->size) {
		s->whole = s->off == s->size && i > 0;
		return 1;
	}
	if (s->size - s->off < H2_FRAME_HEADER)
		return 1;
	__u32 off = s->off;
	if (bpf_msg_pull_data(s->msg, off, off + H2_FRAME_HEADER, 0))
		return 1;
	__u8 *data = MSG_DATA(s->msg);
	__u8 *end = MSG_END(s->msg);
	if (data + H2_FRAME_HEADER > end || !h2_client_frame(data))
		return 1;
	s->off += H2_FRAME_HEADER + ((__u32)data[0] << 16 | (__u32)data[1] << 8 | data[2]);
	return 0;
}

/* Whether a message on a socket of unknown frame boundaries (PROTO_SYNC,
 * PROTO_H2_LOST) is a run of whole client frames, each with a header a
 * client may send, the last ending exactly at the message's end: then its
 * first byte starts a frame. A write that starts or ends inside a frame
 * (a big DATA frame cut by a buffer) does not pass; nor do HTTP/1 and TLS
 * bytes (their first bytes name no frame a client sends). Even so, a
 * header goes only where a probe filed the stream's IDs for the sending
 * goroutine (h2_add_field): bytes taken for frames by mistake would name
 * no such stream. */
static __always_inline bool h2_sync(struct sk_msg_md *msg)
{
	struct h2_sync s = {.msg = msg, .size = msg->size};
	if (s.size < H2_FRAME_HEADER)
		return false;
	bpf_loop(H2_MAX_FRAMES, h2_sync_frame, &s, 0);
	return s.whole;
}

/* Walks the frames of one message on an HTTP/2 client socket. True if
 * the message must be dropped. */
static __always_inline bool h2_message(struct sk_msg_md *msg, struct sock_state *st, __u32 start)
{
	struct h2_walk w = {.msg = msg, .st = st, .off = start, .size = msg->size, .tgid = st->tgid};
	if (st->h2_left) {
		if (st->h2_left >= w.size) {
			st->h2_left -= w.size;
			return false;
		}
		w.off = st->h2_left;
		st->h2_left = 0;
	} else if (!h2_rejoin(&w)) {
		st->proto = PROTO_H2_LOST;
		count(INJ_H2_LOST);
		return false;
	}
	struct proc_cfg *pc = bpf_map_lookup_elem(&procs, &w.tgid);
	if (pc && pc->goid_offset) {
		/* Go keeps the running goroutine at fs:-8. */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		__u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
		__u64 g = 0;
		if (fsbase && !bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase - 8)) && g)
			bpf_probe_read_user(&w.goid, sizeof(w.goid), (void *)(g + pc->goid_offset));
	}
	long n = bpf_loop(H2_MAX_FRAMES, h2_frame, &w, 0);
	if (w.drop) {
		st->proto = PROTO_DROPPED;
		return true;
	}
	if (w.lost || (n == H2_MAX_FRAMES && w.off < w.size && !st->h2_left && !st->hb_have)) {
		st->proto = PROTO_H2_LOST;
		count(INJ_H2_LOST);
	}
	return false;
}

SEC("sk_msg")
int inject_msg(struct sk_msg_md *msg)
{
	struct sock_state *st = bpf_sk_storage_get(&inject_state, msg->sk, 0, 0);
	if (!st) {
		count(INJ_NO_STATE);
		return SK_PASS;
	}
	/* After a drop the stream has a hole: never let later bytes follow
	 * it. (tcp_bpf itself keeps an SK_DROP verdict for the socket's later
	 * sends, without running this program, on the kernel measured; this
	 * does not depend on it.) */
	if (st->proto == PROTO_DROPPED) {
		count(INJ_DROP);
		return SK_DROP;
	}
	if (st->proto == PROTO_UNKNOWN) {
		if (h2_preface(msg)) {
			st->proto = PROTO_H2;
			__builtin_memset(&st->hp, 0, sizeof(st->hp));
			return h2_message(msg, st, H2_PREFACE_LEN) ? SK_DROP : SK_PASS;
		}
		st->proto = PROTO_OTHER;
	}
	if (st->proto == PROTO_SYNC && h2_preface(msg)) {
		/* Connected just before it was listed, and silent since. */
		st->proto = PROTO_H2;
		st->h2_app = 0;
		__builtin_memset(&st->hp, 0, sizeof(st->hp));
		return h2_message(msg, st, H2_PREFACE_LEN) ? SK_DROP : SK_PASS;
	}
	if ((st->proto == PROTO_SYNC || st->proto == PROTO_H2_LOST) && h2_sync(msg)) {
		st->proto = PROTO_H2;
		st->h2_left = 0;
		st->hb_have = 0;
		st->h2_app |= H2W_BLIND; /* the table's entries sent before now are unknown */
		count(INJ_H2_SYNCED);
	}
	if (st->proto == PROTO_H2)
		return h2_message(msg, st, 0) ? SK_DROP : SK_PASS;
	if (st->proto == PROTO_H2_LOST)
		return SK_PASS;
	__u64 cookie = st->cookie;
	struct inject_ctx *ic = bpf_map_lookup_elem(&inject_ctx, &cookie);
	if (!ic) {
		count(INJ_NO_CTX);
		return SK_PASS;
	}
	/* A copy: the client probe may rewrite the entry meanwhile. */
	struct inject_ctx c;
	__builtin_memcpy(&c, ic, sizeof(c));
	__u64 span;
	__builtin_memcpy(&span, c.span_id, sizeof(span));
	/* The entry lives until the send returns; a send larger than one
	 * message (or the request's next sends) must not be taken for a
	 * new request: only the first message after the entry was set is. */
	if (st->used && st->used_span == span) {
		count(INJ_REPEAT);
		return SK_PASS;
	}
	st->used = 1;
	st->used_span = span;
	__u32 r = inject(msg, &c);
	count(r);
	if (r == INJ_FORWARD_REWRITTEN) {
		__u8 one = 1;
		bpf_map_update_elem(&inject_forwarded, &span, &one, BPF_ANY);
	}
	if (r == INJ_DROP) {
		st->proto = PROTO_DROPPED;
		return SK_DROP;
	}
	return SK_PASS;
}
