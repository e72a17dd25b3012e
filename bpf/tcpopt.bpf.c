// SPDX-License-Identifier: GPL-2.0
/* tcpopt: trace context in a TCP header option (sockops header-option API).
 *
 * Sender: the Go client probe (sockio, for other programs' threads) files,
 * per socket cookie, a request's IDs and
 * the sequence of its first byte (tcpopt_txs). On the traced process's
 * connection, HDR_OPT_LEN_CB reserves TCPOPT_LEN bytes on the new-data
 * segment carrying that sequence (snd_nxt is the segment's sequence there)
 * and WRITE_HDR_OPT_CB stores the option. The same length is reserved when
 * the kernel computes the MSS (BPF_WRITE_HDR_TCP_CURRENT_MSS): without it a
 * full-sized segment with the option is too big and large sends stall.
 * Receiver: PARSE_HDR_OPT_CB keeps the context with the byte range of the
 * segment that carried it (tcpopt_rxs); sockio's read hook gives it to the
 * request read from that range. Only sockets of traced processes (their
 * connect(2), seen by cgroup/connect4/6: 5.10 and 6.1 sockops cannot read
 * the process) write options; every socket in the cgroup parses the
 * unknown ones, and no byte of any payload changes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "sockio.h"
#include "tcpopt.h"

char LICENSE[] SEC("license") = "GPL";

/* sockio's: traced processes (connect hook), and the two option maps. */
DECLARE_PROCS_MAP;
DECLARE_TCPOPT_TX_MAP;
DECLARE_TCPOPT_RX_MAP;

/* The option kind: unassigned by IANA; the loader may change it. */
volatile const __u8 tcpopt_kind = TCPOPT_KIND_DEFAULT;

/* Per socket: set by the connect hook when a traced process connects. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32); /* the connecting tgid */
} tcpopt_own SEC(".maps");

/* Connections a process had when it came to be traced, by socket inode:
 * filled by user space for one iterator run. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tcpopt_inode);
} tcpopt_inodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OPT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tcpopt_stats SEC(".maps");

/* Keep the types in the BTF so bpf2go mirrors them. */
const enum tcpopt_stat *unused_tcpopt_stat __attribute__((unused));
const struct tcpopt_tx *unused_tcpopt_tx __attribute__((unused));
const struct tcpopt_rx *unused_tcpopt_rx __attribute__((unused));
const struct tcpopt_inode *unused_tcpopt_inode __attribute__((unused));

/* The option as it goes on the wire. */
struct wire_opt {
	__u8 kind;
	__u8 len;
	struct tcpopt_ctx ctx;
} __attribute__((packed));

_Static_assert(sizeof(struct wire_opt) == TCPOPT_LEN, "option length");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&tcpopt_stats, &idx);
	if (v)
		*v += 1;
}

#define TCPHDR_SYN 0x02

/* connect(2) by a traced process: its socket will write options. Always 1:
 * the connection goes ahead unchanged. */
static __always_inline int on_connect(struct bpf_sock_addr *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (ctx->type != 1 /* SOCK_STREAM */ || !bpf_map_lookup_elem(&procs, &tgid))
		return 1;
	__u32 *own = bpf_sk_storage_get(&tcpopt_own, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (own)
		*own = tgid;
	bpf_get_socket_cookie(ctx); /* made now: the client probe reads sk_cookie */
	return 1;
}

SEC("cgroup/connect4")
int tcpopt_connect4(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx);
}

SEC("cgroup/connect6")
int tcpopt_connect6(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx);
}

/* *_ESTABLISHED_CB: every socket parses options the kernel does not know
 * (only segments carrying one call back); a traced process's connection
 * also writes them. */
static __always_inline void established(struct bpf_sock_ops *skops)
{
	__u32 flags = skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG;
	struct bpf_sock *sk = skops->sk;
	if (sk && skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    bpf_sk_storage_get(&tcpopt_own, sk, 0, 0)) {
		flags |= BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
		count(OPT_WRITE_ON);
	}
	bpf_sock_ops_cb_flags_set(skops, flags);
}

/* HDR_OPT_LEN_CB: room for the option on the MSS computation, and on the
 * new-data segment that carries a pending request's first byte. */
static __always_inline void opt_len(struct bpf_sock_ops *skops)
{
	if (skops->args[0] & BPF_WRITE_HDR_TCP_CURRENT_MSS) {
		bpf_reserve_hdr_opt(skops, TCPOPT_LEN, 0);
		return;
	}
	__u32 len = skops->skb_len;
	if (!len || (skops->skb_tcp_flags & TCPHDR_SYN))
		return;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct tcpopt_tx *tx = bpf_map_lookup_elem(&tcpopt_txs, &cookie);
	if (!tx || tx->state == TX_DONE)
		return;
	__u32 nxt = skops->snd_nxt;
	__u32 off = tx->seq - nxt;
	if ((__s32)off < 0) {
		/* Already sent: the request started on a segment that went out
		 * before its IDs were filed, or the segment is lost and this is
		 * a retransmission. */
		tx->state = TX_DONE;
		count(OPT_MISSED);
		return;
	}
	if (off >= len)
		return; /* a later segment */
	if (tx->exact && off) {
		/* Bytes before the request's share its segment: a reader of
		 * that segment would take the option for theirs. */
		tx->state = TX_DONE;
		count(OPT_NOT_AT_START);
		return;
	}
	long err = bpf_reserve_hdr_opt(skops, TCPOPT_LEN, 0);
	if (err) {
		tx->state = TX_DONE;
		count(err == -28 /* ENOSPC */ ? OPT_NO_ROOM : OPT_RESERVE_FAIL);
		return;
	}
	tx->seg = nxt;
	tx->state = TX_RESERVED;
}

/* WRITE_HDR_OPT_CB: runs for segments that reserved room; the TCP header
 * is written, so its sequence says which segment this is. */
static __always_inline void opt_write(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct tcpopt_tx *tx = bpf_map_lookup_elem(&tcpopt_txs, &cookie);
	if (!tx || tx->state != TX_RESERVED)
		return;
	struct tcphdr *th = skops->skb_data;
	if ((void *)(th + 1) > skops->skb_data_end)
		return;
	if (bpf_ntohl(th->seq) != tx->seg)
		return; /* a retransmission that reserved room: unused room is NOPs */
	struct wire_opt o = {.kind = tcpopt_kind, .len = TCPOPT_LEN};
	__builtin_memcpy(o.ctx.trace_id, tx->trace_id, sizeof(o.ctx.trace_id));
	__builtin_memcpy(o.ctx.span_id, tx->span_id, sizeof(o.ctx.span_id));
	o.ctx.flags = tx->flags;
	tx->state = TX_DONE;
	if (bpf_store_hdr_opt(skops, &o, sizeof(o), 0)) {
		count(OPT_STORE_FAIL);
		return;
	}
	count(OPT_WRITTEN);
}

/* PARSE_HDR_OPT_CB: a segment with an option the kernel does not know. The
 * header is the whole of skb_data; skb_len counts it too. */
static __always_inline void opt_parse(struct bpf_sock_ops *skops)
{
	struct wire_opt o = {.kind = tcpopt_kind};
	if (bpf_load_hdr_opt(skops, &o, sizeof(o), 0) != TCPOPT_LEN || o.len != TCPOPT_LEN)
		return;
	struct tcphdr *th = skops->skb_data;
	if ((void *)(th + 1) > skops->skb_data_end)
		return;
	__u32 hdr = th->doff * 4;
	if (skops->skb_len <= hdr)
		return; /* no payload */
	__u32 seq = bpf_ntohl(th->seq);
	__u32 end = seq + (skops->skb_len - hdr);
	count(OPT_READ);
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct tcpopt_rx *rx = bpf_map_lookup_elem(&tcpopt_rxs, &cookie);
	if (rx && same8(rx->span_id, o.ctx.span_id) && same8(rx->trace_id, o.ctx.trace_id) &&
	    same8(rx->trace_id + 8, o.ctx.trace_id + 8)) {
		/* GSO/TSO cut one skb into segments that all carry it: the
		 * first wins; the range grows over the ones that follow. */
		count(OPT_REPEAT);
		if ((__s32)(end - rx->end) > 0 && (__s32)(seq - rx->end) <= 0)
			rx->end = end;
		return;
	}
	struct tcpopt_rx n = {.seq = seq, .end = end, .flags = o.ctx.flags};
	__builtin_memcpy(n.trace_id, o.ctx.trace_id, sizeof(n.trace_id));
	__builtin_memcpy(n.span_id, o.ctx.span_id, sizeof(n.span_id));
	bpf_map_update_elem(&tcpopt_rxs, &cookie, &n, BPF_ANY);
}

SEC("sockops")
int tcpopt_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		established(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		opt_len(skops);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		opt_write(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		opt_parse(skops);
		break;
	}
	return 1;
}

#define SOL_TCP 6

/* Connections a process had before it was traced never pass the
 * ESTABLISHED callbacks: the iterator (run in its network namespace with
 * its sockets listed in tcpopt_inodes) gives them the same callback flags
 * with bpf_setsockopt, and marks the ones it made as writing options. */
SEC("iter/tcp")
int tcpopt_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc || skc->skc_state != TCP_ESTABLISHED)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	__u64 ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	struct tcpopt_inode *want = bpf_map_lookup_elem(&tcpopt_inodes, &ino);
	if (!want)
		return 0;
	int flags = tp->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG;
	if (want->outgoing) {
		__u32 *own = bpf_sk_storage_get(&tcpopt_own, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (own)
			*own = want->tgid;
		bpf_get_socket_cookie(sk); /* made now: the client probe reads sk_cookie */
		flags |= BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
	}
	if (bpf_setsockopt(tp, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &flags, sizeof(flags))) {
		count(OPT_ITER_FAIL);
		return 0;
	}
	count(OPT_ITER_ON);
	return 0;
}
