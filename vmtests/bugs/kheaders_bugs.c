// SPDX-License-Identifier: GPL-2.0
/*
 * One real kernel bug per load, chosen by bug=, for the debug flavor's checkers to report
 * (vmtests/test_debug_flavor.py), and two hangs for the hang detectors every flavor has
 * (vmtests/test_hangs.py). Init always fails, so the module never stays loaded and the next
 * insmod runs again.
 */
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static char *bug = "none";
module_param(bug, charp, 0);
static int index = 4;
module_param(index, int, 0);

/* How long a hang lasts: far longer than any detector takes to report it (the suite then
 * closes the guest), yet finite, for a guest booted by hand. */
static int seconds = 600;
module_param(seconds, int, 0);

static DEFINE_MUTEX(lock_a);
static DEFINE_MUTEX(lock_b);
static DEFINE_SPINLOCK(spin);

/* A then B, later B then A: lockdep sees the inversion from the order alone. */
static void lock_inversion(void)
{
	mutex_lock(&lock_a);
	mutex_lock(&lock_b);
	mutex_unlock(&lock_b);
	mutex_unlock(&lock_a);
	mutex_lock(&lock_b);
	mutex_lock(&lock_a);
	mutex_unlock(&lock_a);
	mutex_unlock(&lock_b);
}

/* The classic one: an allocation that may sleep, under a spinlock. It rarely does sleep,
 * so only the atomic-sleep check (might_sleep in the allocator) sees it. */
static void sleep_in_atomic(void)
{
	void *p;

	spin_lock(&spin);
	p = kmalloc(64, GFP_KERNEL);
	spin_unlock(&spin);
	kfree(p);
}

/*
 * index= comes from the command line, so the compiler cannot see it is out of bounds; the
 * array is followed by a field of its struct, so the read stays inside the object: UBSAN's
 * bounds check reports it, KASAN has nothing to say (it reports only once per boot).
 */
static int out_of_bounds(void)
{
	struct { int values[4]; int after; } s = { { 1, 2, 3, 4 }, 5 };

	return s.values[index];
}

static int use_after_free(void)
{
	char *p = kmalloc(32, GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	kfree(p);
	return READ_ONCE(p[8]);
}

/* A CPU that never schedules (timer interrupts still run): the soft-lockup detector's case. */
static void spin_forever(void)
{
	unsigned long end = jiffies + seconds * HZ;

	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
}

/* A task in D state that nothing wakes: the hung-task detector's case. */
static void block_forever(void)
{
	schedule_timeout_uninterruptible(seconds * HZ);
}

static int __init kheaders_bugs_init(void)
{
	int seen = 0;

	if (!strcmp(bug, "lockdep"))
		lock_inversion();
	else if (!strcmp(bug, "atomic-sleep"))
		sleep_in_atomic();
	else if (!strcmp(bug, "ubsan"))
		seen = out_of_bounds();
	else if (!strcmp(bug, "kasan"))
		seen = use_after_free();
	else if (!strcmp(bug, "spin"))
		spin_forever();
	else if (!strcmp(bug, "block"))
		block_forever();
	else if (strcmp(bug, "none"))
		return -EINVAL;
	pr_info("kheaders_bugs: bug=%s done (%d)\n", bug, seen);
	return -EAGAIN;
}
module_init(kheaders_bugs_init);

MODULE_DESCRIPTION("Real bugs for the debug flavor's checkers to report");
MODULE_LICENSE("GPL");
