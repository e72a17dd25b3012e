// SPDX-License-Identifier: GPL-2.0
/* sockio: the bytes traced processes read from and write to TCP sockets, from
 * syscall tracepoints (~0.3 us a hit here, against ~20 us for a uprobe).
 * User space parses the protocol; this side only filters, copies and tags. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sockio.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115
#define MAX_IOV 8

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, struct proc_cfg);
} procs SEC(".maps");

/* Socket state per (tgid, fd); negative entries (tcp == 0) remember fds
 * that are not TCP sockets so they are looked up once. */
struct conn {
	__u64 conn_id;
	__u8 tcp;
	__u8 last_dir;
	__u8 origin;
	__u8 _pad[5];
	__u8 trace_id[16];
	__u8 span_id[8];
	struct endpoints ep;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* tgid << 32 | fd */
	__type(value, struct conn);
} conns SEC(".maps");

enum arg_mode { MODE_BUF = 0, MODE_IOV = 1, MODE_MSG = 2 };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* An event plus room for captured bytes. Twice CAPTURE_MAX so that the
 * verifier accepts masked offsets into it; user space sizes max_entries to
 * the number of CPUs. */
struct scratch {
	struct event ev;
	__u8 data[2 * CAPTURE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* one per CPU; user space sets the real count */
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

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

/* Waking the reader for every event would cost a wakeup per syscall in the
 * traced thread; user space polls every few ms instead, and is woken only
 * when this much data is waiting. */
#define WAKEUP_BYTES (256 << 10)

static __always_inline void submit(void *data, __u64 size)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	barrier_var(size);
	if (size > sizeof(struct event) + CAPTURE_MAX)
		return;
	if (bpf_ringbuf_output(&events, data, size, flags))
		count(STAT_RINGBUF_FULL);
}

static __always_inline __u64 conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/* The user registers saved at syscall entry. Only exit hooks are attached:
 * the arguments are still in the saved registers there, which halves the
 * hits per syscall. */
static __always_inline int user_regs(struct pt_regs *out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return bpf_probe_read_kernel(out, sizeof(*out), (void *)bpf_task_pt_regs(task));
}

/* Go keeps the current goroutine in r14 (ABIInternal); the value saved at
 * syscall entry is the caller's. */
static __always_inline __u64 goid_of(const struct proc_cfg *cfg, const struct pt_regs *regs)
{
	__u64 goid = 0;
	if (!cfg->goid_offset || !regs->r14)
		return 0;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(regs->r14 + cfg->goid_offset)))
		return 0;
	return goid;
}

static __always_inline struct sock *tcp_sock_of(__s32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM ||
	    BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	return sk;
}

static __always_inline void fill_addrs(struct endpoints *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Explicit sizes: BPF_CORE_READ_INTO would copy sizeof(*array), one byte. */
	if (e->family == AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline struct scratch *scratch_buf(void)
{
	/* Not a per-CPU array: those cap values at 32 KiB. */
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&scratch, &cpu);
}

/* Finds or creates the state of (tgid, fd). */
static __always_inline struct conn *get_conn(__u32 tgid, __s32 fd, __u8 origin)
{
	__u64 key = conn_key(tgid, fd);
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		return c;
	struct conn fresh = {};
	struct sock *sk = tcp_sock_of(fd);
	if (sk) {
		fresh.tcp = 1;
		fresh.origin = origin;
		fresh.conn_id = bpf_ktime_get_ns() ^ ((__u64)bpf_get_prandom_u32() << 32);
		fill_addrs(&fresh.ep, sk);
	}
	bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&conns, &key);
}

/* Copies up to CAPTURE_MAX of the first `total` bytes described by an iovec
 * array into data; returns the number copied. */
static __always_inline __u32 copy_iov(__u8 *data, const struct iovec *iov, __u32 iovcnt, __u64 total)
{
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
		if (bpf_probe_read_user(data + o, n, v.iov_base)) {
			count(STAT_CAPTURE_FAULT);
			break;
		}
		off += n;
	}
	return off;
}

static __always_inline int exit_io(long ret, __u8 mode, __u8 dir)
{
	if (ret <= 0)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_cfg *cfg = bpf_map_lookup_elem(&procs, &tgid);
	if (!cfg)
		return 0;
	struct pt_regs regs;
	if (user_regs(&regs))
		return 0;
	__s32 fd = (__s32)regs.di;
	struct conn *c = get_conn(tgid, fd, ORIGIN_FOUND);
	if (!c || !c->tcp)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct scratch *s = scratch_buf();
	if (!s)
		return 0;
	struct event *e = &s->ev;
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = EV_DATA;
	e->dir = dir;
	e->origin = c->origin;
	e->tgid = tgid;
	e->tid = (__u32)pid_tgid;
	e->fd = fd;
	e->conn_id = c->conn_id;
	e->start_ns = now;
	e->end_ns = now;
	e->goid = goid_of(cfg, &regs);
	e->len = ret;
	e->ep = c->ep;

	/* A read that follows a write (or the first read) starts a request on a
	 * server connection: make its IDs here, where later probes can find them. */
	if (dir == DIR_READ && c->last_dir != DIR_READ) {
		__u32 *w = (__u32 *)c->trace_id;
		w[0] = bpf_get_prandom_u32();
		w[1] = bpf_get_prandom_u32();
		w[2] = bpf_get_prandom_u32();
		w[3] = bpf_get_prandom_u32();
		w = (__u32 *)c->span_id;
		w[0] = bpf_get_prandom_u32();
		w[1] = bpf_get_prandom_u32();
		e->new_request = 1;
	}
	c->last_dir = dir;
	__builtin_memcpy(e->trace_id, c->trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, c->span_id, sizeof(e->span_id));

	__u32 n = 0;
	__u64 ptr = regs.si;
	if (mode == MODE_BUF) {
		__u64 want = ret < CAPTURE_MAX ? ret : CAPTURE_MAX;
		barrier_var(want);
		if (want > CAPTURE_MAX)
			want = CAPTURE_MAX;
		if (want && bpf_probe_read_user(s->data, want, (void *)ptr) == 0)
			n = want;
		else
			count(STAT_CAPTURE_FAULT);
	} else {
		const struct iovec *iov = (const struct iovec *)ptr;
		__u32 iovcnt = regs.dx;
		if (mode == MODE_MSG) {
			struct user_msghdr m = {};
			if (bpf_probe_read_user(&m, sizeof(m), (void *)ptr) == 0) {
				iov = m.msg_iov;
				iovcnt = m.msg_iovlen;
			} else {
				iovcnt = 0;
			}
		}
		n = copy_iov(s->data, iov, iovcnt, ret);
	}
	e->captured = n;
	count(STAT_DATA_EVENTS);
	__u64 size = sizeof(*e) + n;
	if (size > sizeof(*s))
		return 0;
	submit(s, size);
	return 0;
}

#define IO_HOOK(name, mode, dir)                                  \
	SEC("tracepoint/syscalls/sys_exit_" #name)                \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)     \
	{                                                         \
		return exit_io(ctx->ret, mode, dir);              \
	}

IO_HOOK(read, MODE_BUF, DIR_READ)
IO_HOOK(recvfrom, MODE_BUF, DIR_READ)
IO_HOOK(readv, MODE_IOV, DIR_READ)
IO_HOOK(recvmsg, MODE_MSG, DIR_READ)
IO_HOOK(write, MODE_BUF, DIR_WRITE)
IO_HOOK(sendto, MODE_BUF, DIR_WRITE)
IO_HOOK(writev, MODE_IOV, DIR_WRITE)
IO_HOOK(sendmsg, MODE_MSG, DIR_WRITE)

/* accept/accept4 and connect give sockets their role before any byte moves. */
static __always_inline int on_new_socket(long ret, __u8 origin)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	__s32 fd = (__s32)ret;
	if (origin == ORIGIN_CONNECT) {
		if (ret != 0 && ret != -EINPROGRESS)
			return 0;
		struct pt_regs regs;
		if (user_regs(&regs))
			return 0;
		fd = (__s32)regs.di;
	} else if (ret < 0) {
		return 0;
	}
	/* A new connection starts afresh, whatever a reused fd left behind. */
	__u64 key = conn_key(tgid, fd);
	bpf_map_delete_elem(&conns, &key);
	get_conn(tgid, fd, origin);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx) { return on_new_socket(ctx->ret, ORIGIN_ACCEPT); }
SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx) { return on_new_socket(ctx->ret, ORIGIN_ACCEPT); }
SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx) { return on_new_socket(ctx->ret, ORIGIN_CONNECT); }

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	__s32 fd = (__s32)ctx->args[0];
	__u64 key = conn_key(tgid, fd);
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (c->tcp) {
		struct scratch *s = scratch_buf();
		if (s) {
			struct event *e = &s->ev;
			__builtin_memset(e, 0, sizeof(*e));
			e->kind = EV_CLOSE;
			e->tgid = tgid;
			e->fd = fd;
			e->conn_id = c->conn_id;
			e->start_ns = bpf_ktime_get_ns();
			submit(e, sizeof(*e));
		}
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}
