#ifndef _LINUX_SCHED_H
#define _LINUX_SCHED_H
#include <linux/types.h>
struct mm_struct;
struct task_struct {
	unsigned int __state;
	void *stack;
	atomic_t usage;
	unsigned int flags;
	unsigned sched_reset_on_fork:1;
	unsigned sched_contributes_to_load:1;
	int prio;
	union {
		struct mm_struct *mm;
		unsigned long mm_cookie;
	};
	struct {
		pid_t pid;
		pid_t tgid;
	};
#ifdef CONFIG_SCHED_EXTRA
	u64 extra[3];
#endif
	char comm[16];
	struct list_head tasks;
};
#endif
