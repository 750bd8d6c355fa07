// SPDX-License-Identifier: GPL-2.0
/*
 * Shaped like bcc's tcpdrop/tcpretrans: socket buffers, IP and TCP headers, the sock.
 * Plain C over kernel types, compiled by gcc with -c -O2 (see workload.py for the flags).
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/ip.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <net/sock.h>
#include <net/inet_sock.h>

struct drop_event {
	u32 saddr;
	u32 daddr;
	u16 sport;
	u16 dport;
	u8 state;
	u8 tcpflags;
	u32 len;
	u64 stack_id;
};

struct drop_event last_drop;

int trace_tcp_drop(struct pt_regs *ctx, struct sock *sk, struct sk_buff *skb)
{
	const struct tcphdr *tcp = (const struct tcphdr *)(skb->head + skb->transport_header);
	const struct iphdr *ip = (const struct iphdr *)(skb->head + skb->network_header);

	if (sk->__sk_common.skc_family != AF_INET)
		return 0;
	last_drop.saddr = ip->saddr;
	last_drop.daddr = ip->daddr;
	last_drop.sport = ntohs(tcp->source);
	last_drop.dport = ntohs(tcp->dest);
	last_drop.state = sk->__sk_common.skc_state;
	last_drop.tcpflags = ((const u8 *)tcp)[13];
	last_drop.len = skb->len - skb->data_len;
	last_drop.stack_id = (u64)user_stack_pointer(ctx);
	return 0;
}

u32 retransmits(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return tp->total_retrans + inet_csk(sk)->icsk_retransmits;
}
