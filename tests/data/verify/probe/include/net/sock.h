#ifndef _NET_SOCK_H
#define _NET_SOCK_H
#include <linux/types.h>
struct sock_common {
	union {
		u64 skc_addrpair;
		struct {
			u32 skc_daddr;
			u32 skc_rcv_saddr;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	unsigned char skc_reuse:4;
	unsigned char skc_reuseport:1;
};
struct sock {
	struct sock_common __sk_common;
#define sk_family __sk_common.skc_family
	int sk_rcvbuf;
	const struct sock *sk_peer;
	u16 sk_type;
};
#endif
