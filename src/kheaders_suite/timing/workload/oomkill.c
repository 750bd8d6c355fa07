// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's oomkill/memleak/shmsnoop: mm_struct, vmas, page counters.
 * Plain C over kernel types, compiled by gcc with -c -O2 (see workload.py for the flags).
 */
#include <uapi/linux/ptrace.h>
#include <linux/mm_types.h>
#include <linux/mm.h>
#include <linux/oom.h>
#include <linux/sched.h>

struct oom_event {
	u32 victim_pid;
	u32 trigger_pid;
	u64 total_pages;
	u64 rss_pages;
	u64 vm_start;
	u64 vm_flags;
	char victim_comm[TASK_COMM_LEN];
};

struct oom_event last_oom;

int trace_oom_kill(struct pt_regs *ctx, struct oom_control *oc, struct task_struct *victim)
{
	const struct mm_struct *mm = victim->mm;
	unsigned int i;

	last_oom.victim_pid = victim->tgid;
	last_oom.total_pages = oc->totalpages;
	last_oom.rss_pages = mm ? mm->total_vm : 0;
	for (i = 0; i < TASK_COMM_LEN; i++)
		last_oom.victim_comm[i] = victim->comm[i];
	return (int)(instruction_pointer(ctx) & 1);
}

u64 vma_span(const struct vm_area_struct *vma)
{
	last_oom.vm_start = vma->vm_start;
	last_oom.vm_flags = vma->vm_flags;
	return vma->vm_end - vma->vm_start;
}
