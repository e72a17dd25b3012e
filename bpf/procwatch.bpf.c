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
	}
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
	return emit(&e);
}
