// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's execsnoop/opensnoop: task_struct, credentials, files and paths.
 * Plain C over kernel types (no BPF helpers), so gcc can compile it with -c -O2; the work
 * a compiler does here is dominated by the headers, as it is for a bcc tool.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/limits.h>
#include <linux/sched.h>
#include <linux/fs.h>
#include <linux/cred.h>
#include <linux/dcache.h>

struct exec_event {
	u32 pid;
	u32 ppid;
	u32 uid;
	int retval;
	u64 start_time;
	char comm[TASK_COMM_LEN];
	char name[DNAME_INLINE_LEN];
};

struct exec_event last_exec;

int trace_execve_entry(struct pt_regs *ctx, struct task_struct *task, struct file *file)
{
	const struct dentry *d = file->f_path.dentry;
	unsigned int i;

	last_exec.pid = task->tgid;
	last_exec.ppid = task->real_parent ? task->real_parent->tgid : 0;
	last_exec.uid = task->cred ? from_kuid(&init_user_ns, task->cred->uid) : 0;
	last_exec.start_time = task->start_time;
	for (i = 0; i < TASK_COMM_LEN; i++)
		last_exec.comm[i] = task->comm[i];
	for (i = 0; i < DNAME_INLINE_LEN && d->d_iname[i]; i++)
		last_exec.name[i] = d->d_iname[i];
	return (int)(instruction_pointer(ctx) & 1);
}

int trace_open_return(struct pt_regs *ctx, struct task_struct *task)
{
	last_exec.retval = (int)regs_return_value(ctx);
	return task->flags & PF_KTHREAD ? 0 : last_exec.retval;
}

u64 file_mode_bits(const struct file *file)
{
	const struct inode *inode = file->f_inode;

	return ((u64)inode->i_mode << 32) | (file->f_flags & O_ACCMODE) | i_size_read(inode);
}
