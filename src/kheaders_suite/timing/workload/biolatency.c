// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's biolatency/biosnoop: requests, bios, gendisks.
 * Plain C over kernel types, compiled by gcc with -c -O2 (see workload.py for the flags).
 */
#include <uapi/linux/ptrace.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/bio.h>

struct bio_event {
	u64 sector;
	u32 len;
	u32 cmd_flags;
	u32 major;
	u32 minor;
	u64 delta_us;
	char disk_name[DISK_NAME_LEN];
};

struct bio_event last_io;
u64 latency_slots[64];

int trace_req_done(struct pt_regs *ctx, struct request *req, u64 now)
{
	struct gendisk *disk = req->q->disk;
	u64 delta = (now - req->io_start_time_ns) / 1000;
	unsigned int i, slot = 0;

	last_io.sector = blk_rq_pos(req);
	last_io.len = blk_rq_bytes(req);
	last_io.cmd_flags = req->cmd_flags;
	last_io.delta_us = delta;
	if (disk) {
		last_io.major = disk->major;
		last_io.minor = disk->first_minor;
		for (i = 0; i < DISK_NAME_LEN; i++)
			last_io.disk_name[i] = disk->disk_name[i];
	}
	while (delta > 1 && slot < 63) {
		delta >>= 1;
		slot++;
	}
	latency_slots[slot]++;
	return (int)(instruction_pointer(ctx) & 1);
}

u32 bio_bytes(const struct bio *bio)
{
	return bio->bi_iter.bi_size + (bio_op(bio) == REQ_OP_WRITE ? 1 : 0);
}
