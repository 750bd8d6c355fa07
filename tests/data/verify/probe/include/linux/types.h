#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H
#ifndef __KERNEL__
#error "kernel-internal header"
#endif
typedef int pid_t;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef struct { int counter; } atomic_t;
struct list_head { struct list_head *next, *prev; };
#endif
