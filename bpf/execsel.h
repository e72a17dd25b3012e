/* Selection at exec, in the kernel (issue 20 item 2).
 *
 * A process that runs for a few milliseconds is gone before user space has
 * read /proc and told the families about it. So once user space has
 * selected and inspected one process of an executable, it files:
 *  - in exec_sel, that a process exec'ing that file (in a given cgroup, or
 *    in any) is selected (discovery, from its selector);
 *  - in each family's template map, what that family's per-process map
 *    holds for a process of that file (the family, in Track).
 * Each family's sched_process_exec program then copies its template into
 * its per-process map before the new program runs its first instruction,
 * so its first syscall is already traced. User space still hears of the
 * exec and tracks the process as before (or cleans up if it is gone).
 *
 * Files are named by the kernel's view (inode number and the inode's
 * address): overlayfs makes stat(2) and the kernel disagree on device and
 * inode, and the address changes if the inode is ever freed, so a stale
 * entry never matches another file. User space learns the key from
 * procwatch's exec event. */
#ifndef WEFT_EXECSEL_H
#define WEFT_EXECSEL_H

#include <bpf/bpf_core_read.h>

struct exe_key {
	__u64 ino;
	__u64 inode; /* the struct inode's address: opaque, only compared */
};

struct exec_sel_key {
	struct exe_key exe;
	__u64 cgroup; /* cgroup v2 id the process must be in; 0: any */
};

/* Owned by sockio, shared with procwatch and the families that keep
 * per-process maps (loaded with MapReplacements): every includer has it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exec_sel_key);
	__type(value, __u8);
} exec_sel SEC(".maps");

/* A family's templates: its per-process value by executable. An LRU: a
 * template evicted costs only the slow path (user space tracks the
 * process after its exec, as without templates). */
#define DECLARE_EXEC_TEMPLATES(name, value_type)           \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, 1024);                 \
		__type(key, struct exe_key);               \
		__type(value, value_type);                 \
	} name SEC(".maps")

/* The executable of the current task (after exec: the new one). */
static __always_inline int current_exe(struct exe_key *k)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct inode *inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (!inode)
		return -1;
	k->ino = BPF_CORE_READ(inode, i_ino);
	k->inode = (__u64)inode;
	return 0;
}

/* Whether a process of this executable, in the current cgroup, is
 * selected. */
static __always_inline int exec_selected(const struct exe_key *k)
{
	struct exec_sel_key s = {.exe = *k, .cgroup = bpf_get_current_cgroup_id()};
	if (bpf_map_lookup_elem(&exec_sel, &s))
		return 1;
	s.cgroup = 0;
	return bpf_map_lookup_elem(&exec_sel, &s) != NULL;
}

/* Copies templates[exe] to procs[tgid], if there is one. */
#define EXEC_COPY(templates, procs_map, exe, tgid)                            \
	do {                                                                  \
		void *v_ = bpf_map_lookup_elem(&(templates), (exe));          \
		if (v_)                                                       \
			bpf_map_update_elem(&(procs_map), &(tgid), v_, BPF_ANY); \
	} while (0)

/* The exec program of a family with one per-process map. */
#define EXEC_PROGRAM(prog, templates, procs_map)                              \
	SEC("tracepoint/sched/sched_process_exec")                            \
	int prog(void *ctx)                                                   \
	{                                                                     \
		struct exe_key k = {};                                        \
		if (current_exe(&k) || !exec_selected(&k))                    \
			return 0;                                             \
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;                \
		EXEC_COPY(templates, procs_map, &k, tgid);                    \
		return 0;                                                     \
	}

#endif
