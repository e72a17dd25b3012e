// SPDX-License-Identifier: GPL-2.0
/* procwatch: tells user space when any process execs or a process exits, so
 * selection reacts to new programs at once instead of by polling /proc. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "execsel.h"

char LICENSE[] SEC("license") = "GPL";

enum proc_event_kind {
	PROC_EXEC = 1,
	PROC_EXIT = 2,
};

struct watch_event {
	__u32 kind;
	__u32 pid;
	__u64 ktime_ns;
	/* PROC_EXEC: the executable as the kernel names it (execsel.h), the
	 * cgroup, and whether exec_sel selected it (the families' exec
	 * programs then filled their per-process maps). */
	struct exe_key exe;
	__u64 cgroup;
	__u32 preselected;
	__u32 _pad;
	/* The name the file was exec'd by (its dentry, and the name's hash and
	 * length): hard links share an inode, and a selector's glob on the
	 * path may say yes to one name and no to another (busybox). */
	__u64 dentry;
	__u64 name;
};


struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} watch_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

const struct watch_event *unused_watch_event __attribute__((unused));
const struct quiet_key *unused_quiet_key __attribute__((unused));

/* Quiet executables: an exec user space would only read /proc for to
 * decide "not traced" again is kept back. A busy node execs hundreds of
 * short programs a second (shells, probes, CI jobs), and each cost the
 * agent an event, a wake and about ten /proc reads (~200 us on a VM).
 *
 * exec_quiet: executables (and the cgroup they ran in) whose processes the
 * selector said no to, in a way that holds for every process of that file
 * in that cgroup; the value is the quiet_gen the answer was given under.
 * Bumping quiet_gen (a tracing switch changed) makes every entry stale at
 * once. An LRU: an entry evicted costs only an event. */
struct quiet_key {
	struct exe_key exe;
	__u64 cgroup;
	__u64 dentry;
	__u64 name;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct quiet_key);
	__type(value, __u32);
} exec_quiet SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} quiet_gen SEC(".maps");

/* exec_loud: processes user space must hear of whatever they exec (traced,
 * or reported as not traceable): their exec changes what they are. */
/* Preallocated: a tracing program given a map that allocates at run time
 * makes 5.7-6.0 kernels WARN (and PREEMPT_RT ones refuse it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} exec_loud SEC(".maps");

/* exec_enter: when each process last began an exec (bpf_ktime_get_ns).
 * The new program shows in /proc before sched_process_exec fires, so a
 * stamp taken there would not say that /proc already shows a later exec;
 * one taken before the switch does. User space files a no, or trusts a
 * yes, only if the process did not begin an exec again after the one it
 * decided on: else it would file the wrong file, or miss an exec kept back
 * before the process was filed loud.
 *
 * on_exec_begin is attached to sched_prepare_exec (Linux 6.11+: in
 * begin_new_exec, before the executable is switched), else to the execve
 * and execveat syscalls' entry. Those put every syscall of the node on the
 * traced entry path, a cost sched_prepare_exec does not have. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} exec_enter SEC(".maps");

SEC("tracepoint/sched/sched_prepare_exec")
int on_exec_begin(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&exec_enter, &pid, &now, BPF_ANY);
	return 0;
}

/* quiet_pids: processes whose exec was kept back, so that their exit is
 * too (user space never heard of them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} quiet_pids SEC(".maps");

/* quiet_gen's value once user space has switched quiet off for good. */
#define QUIET_OFF 0xffffffff

enum quiet_stat {
	QUIET_EXEC = 0, /* exec events kept back */
	QUIET_EXIT = 1, /* exit events kept back */
	QUIET_STATS,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, QUIET_STATS);
	__type(key, __u32);
	__type(value, __u64);
} quiet_stats SEC(".maps");

static __always_inline void quiet_count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&quiet_stats, &idx);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Whether this exec need not be told: its file is quiet in its cgroup
 * under the current generation, and user space does not follow the
 * process. */
static __always_inline int exec_is_quiet(const struct watch_event *e)
{
	struct quiet_key k = {.exe = e->exe, .cgroup = e->cgroup, .dentry = e->dentry, .name = e->name};
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&quiet_gen, &zero);
	__u32 *filed = bpf_map_lookup_elem(&exec_quiet, &k);
	if (!gen || !filed || *filed != *gen)
		return 0;
	return bpf_map_lookup_elem(&exec_loud, &e->pid) == NULL;
}

static __always_inline int emit(struct watch_event *e)
{
	e->ktime_ns = bpf_ktime_get_ns();
	if (bpf_ringbuf_output(&watch_events, e, sizeof(*e), 0)) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	struct watch_event e = {.kind = PROC_EXEC, .pid = bpf_get_current_pid_tgid() >> 32};
	if (!current_exe(&e.exe)) {
		e.cgroup = bpf_get_current_cgroup_id();
		e.preselected = exec_selected(&e.exe);
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct dentry *d = BPF_CORE_READ(task, mm, exe_file, f_path.dentry);
		e.dentry = (__u64)d;
		e.name = BPF_CORE_READ(d, d_name.hash_len);
		if (!e.preselected && exec_is_quiet(&e)) {
			__u8 one = 1;
			/* Stamped again, now: the exec began before a scan's
			 * clock reading perhaps, but /proc showed its program
			 * only from just before here, so a decision on the old
			 * program that this keeps back sees a later stamp. */
			__u64 now = bpf_ktime_get_ns();
			bpf_map_update_elem(&exec_enter, &e.pid, &now, BPF_ANY);
			bpf_map_update_elem(&quiet_pids, &e.pid, &one, BPF_ANY);
			quiet_count(QUIET_EXEC);
			return 0;
		}
	}
	bpf_map_delete_elem(&quiet_pids, &e.pid); /* told now: its exit is too */
	return emit(&e);
}

/* Fires per thread; only the thread-group leader's exit ends the process. */
SEC("tracepoint/sched/sched_process_exit")
int on_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)id != (__u32)(id >> 32))
		return 0;
	struct watch_event e = {.kind = PROC_EXIT, .pid = id >> 32};
	bpf_map_delete_elem(&exec_enter, &e.pid);
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&quiet_gen, &zero);
	if (gen && *gen != QUIET_OFF && bpf_map_lookup_elem(&quiet_pids, &e.pid) &&
	    !bpf_map_lookup_elem(&exec_loud, &e.pid)) {
		bpf_map_delete_elem(&quiet_pids, &e.pid);
		quiet_count(QUIET_EXIT);
		return 0;
	}
	return emit(&e);
}
