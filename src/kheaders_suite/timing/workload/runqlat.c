// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's runqlat/cpudist: scheduler state, PID namespaces.
 * Plain C over kernel types, compiled by gcc with -c -O2 (see workload.py for the flags).
 */
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>
#include <linux/nsproxy.h>
#include <linux/pid_namespace.h>
#include <linux/pid.h>

struct wakeup_event {
	u32 pid;
	u32 tgid;
	u32 ns_level;
	u32 prio;
	u64 vruntime;
	u64 sum_exec;
	u32 on_cpu;
	u32 state;
};

struct wakeup_event last_wakeup;

int trace_wakeup(struct pt_regs *ctx, struct task_struct *p)
{
	const struct nsproxy *ns = p->nsproxy;

	last_wakeup.pid = p->pid;
	last_wakeup.tgid = p->tgid;
	last_wakeup.ns_level = ns && ns->pid_ns_for_children ? ns->pid_ns_for_children->level : 0;
	last_wakeup.prio = p->prio;
	last_wakeup.vruntime = p->se.vruntime;
	last_wakeup.sum_exec = p->se.sum_exec_runtime;
	last_wakeup.on_cpu = p->on_cpu;
	last_wakeup.state = READ_ONCE(p->__state);
	return (int)(instruction_pointer(ctx) & 1);
}

int trace_switch(struct pt_regs *ctx, struct task_struct *prev, struct task_struct *next)
{
	return prev->__state == TASK_RUNNING && next->pid ? (int)(user_stack_pointer(ctx) & 1) : 0;
}
