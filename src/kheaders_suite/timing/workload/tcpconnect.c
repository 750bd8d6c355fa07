// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's tcpconnect/tcplife: struct sock, inet_sock, IPv6 addresses.
 * Plain C over kernel types, compiled by gcc with -c -O2 (see workload.py for the flags).
 */
#include <uapi/linux/ptrace.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <linux/tcp.h>
#include <linux/sched.h>

struct conn_event {
	u32 pid;
	u16 family;
	u16 dport;
	u16 lport;
	u64 saddr[2];
	u64 daddr[2];
	u64 rx_bytes;
	u64 tx_bytes;
};

struct conn_event last_conn;

int trace_connect_return(struct pt_regs *ctx, struct sock *sk, struct task_struct *task)
{
	const struct inet_sock *inet = inet_sk(sk);

	last_conn.pid = task->tgid;
	last_conn.family = sk->__sk_common.skc_family;
	last_conn.dport = ntohs(sk->__sk_common.skc_dport);
	last_conn.lport = ntohs(inet->inet_sport);
#if IS_ENABLED(CONFIG_IPV6)
	/* The v6 fields exist only with IPv6 configured (the suite's kernels are small). */
	if (last_conn.family == AF_INET6) {
		__builtin_memcpy(last_conn.saddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(last_conn.daddr, &sk->__sk_common.skc_v6_daddr, 16);
		return (int)regs_return_value(ctx);
	}
#endif
	last_conn.saddr[0] = sk->__sk_common.skc_rcv_saddr;
	last_conn.daddr[0] = sk->__sk_common.skc_daddr;
	return (int)regs_return_value(ctx);
}

int trace_close(struct pt_regs *ctx, struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	last_conn.rx_bytes = tp->bytes_received;
	last_conn.tx_bytes = tp->bytes_acked;
	return sk->sk_state == TCP_CLOSE ? 0 : (int)(instruction_pointer(ctx) & 1);
}
