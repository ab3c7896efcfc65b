/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The rvs fast path's map layout, shared by the XDP program (rvs_xdp.c) and mirrored by crates/rvs-xdp/src/maps.rs
 * (#[repr(C)] types with the same size and offset asserts on both sides).
 *
 * A connection is two entries of rvs_flows: one keyed by what the client sends (CIP:cport -> VIP:vport) and one
 * keyed by what the real server answers (RIP:rport -> CIP:cport). Each holds the rewrite of its direction, the
 * egress and its next hop, and that direction's counters. User space (rvsd) is the authority: it inserts both when
 * the core moves a connection to ESTABLISHED and deletes them when the connection leaves it.
 *
 * Addresses and ports are in network byte order. An IPv4 address is the first 4 bytes of its 16; the rest are 0.
 */
#ifndef RVS_XDP_H
#define RVS_XDP_H

#include <linux/types.h>

#define RVS_FAMILY_V4 4
#define RVS_FAMILY_V6 6

struct rvs_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* RVS_FAMILY_V4 or RVS_FAMILY_V6 */
	__u8 pad[2]; /* always 0 (the key is hashed as bytes) */
};

struct rvs_flow {
	/* The rewrite: the packet leaves with these addresses and ports. */
	__u8 new_saddr[16];
	__u8 new_daddr[16];
	__be16 new_sport;
	__be16 new_dport;
	/* Egress: an interface index present in rvs_tx_ports, and the Ethernet header to put on. */
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
	/* The largest IP packet (bytes, L3) the egress takes; a larger one goes up to the slow path. */
	__u16 mtu;
	/*
	 * One's-complement deltas (RFC 1624 eqn 3, HC' = ~(~HC + delta)), as 16-bit words in network byte order,
	 * computed by user space from the key and the rewrite: the IPv4 header's (addresses and the TTL decrement) and
	 * the TCP/UDP checksum's (pseudo-header addresses and ports). They are correct only for complete checksums,
	 * which is what a NIC delivers.
	 */
	__u16 ip_csum_delta;
	__u16 l4_csum_delta;
	/* What the program does with a matching packet (enum rvs_action; a zeroed entry is MASQ) and that action's
	 * option bits (RVS_ACTF_*). See /work/team/contract-xdp.md for each action's use of the fields above. */
	__u8 action;
	__u8 action_flags;
	__u32 pad1; /* reserved, 0 */
	/* Counters of this direction, written by the program (atomic adds), read by user space. */
	__u64 packets;
	__u64 bytes;        /* IP bytes (L3), as IPVS counts them */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns) of the last packet forwarded */
};

/* The forwarding method of an entry. MASQ: two entries per connection (client -> VIP, RIP -> client), addresses
 * and ports rewritten. DR and TUN_*: one entry (client -> VIP); DR rewrites only the Ethernet header, TUN_* pushes
 * an outer header (new_saddr/new_daddr are the outer addresses; new_sport/new_dport GUE's ports). For every
 * action `mtu` is the largest incoming L3 packet that may be forwarded (user space subtracts the overhead). An
 * action the program does not implement for a family is passed up (RVS_STAT_PASS_ACTION). */
enum rvs_action {
	RVS_ACT_MASQ = 0,
	RVS_ACT_DR = 1,
	RVS_ACT_TUN_IP = 2,  /* IPIP (IPv4) or IPv6-in-IPv6 */
	RVS_ACT_TUN_GUE = 3,
	RVS_ACT_TUN_GRE = 4,
};

#define RVS_ACTF_CSUM 0x01 /* GUE/GRE checksum option */
#define RVS_ACTF_OUTER_V6 0x02 /* TUN_*: the outer header is IPv6 (IPVS allows another family than the VIP's) */

/* Why a packet was passed up (or dropped): the indexes of rvs_stats (a per-CPU array of __u64). */
enum rvs_stat {
	RVS_STAT_FORWARDED = 0,     /* rewritten and redirected */
	RVS_STAT_PASS_NOT_IP = 1,   /* not IPv4/IPv6 (ARP, VLAN, ...) or truncated Ethernet */
	RVS_STAT_PASS_MALFORMED = 2, /* truncated or inconsistent IP/L4 header: the kernel judges it */
	RVS_STAT_PASS_OPTIONS = 3,  /* IPv4 options or an IPv6 extension header */
	RVS_STAT_PASS_FRAGMENT = 4, /* any fragment */
	RVS_STAT_PASS_PROTO = 5,    /* not TCP or UDP (ICMP errors are translated by the slow path) */
	RVS_STAT_PASS_TTL = 6,      /* TTL / hop limit <= 1: the kernel answers Time Exceeded */
	RVS_STAT_PASS_TCP_FLAGS = 7, /* SYN, FIN or RST: the state machine must see it */
	RVS_STAT_PASS_MISS = 8,     /* no entry: not an established connection of ours */
	RVS_STAT_PASS_MTU = 9,      /* larger than the egress MTU: the slow path fragments or answers */
	RVS_STAT_PASS_UDP_NOCSUM6 = 10, /* IPv6 UDP with a zero checksum (invalid): the kernel drops it */
	RVS_STAT_DROP_REDIRECT = 11, /* the egress is not in rvs_tx_ports (user space broke its own rule) */
	RVS_STAT_PASS_ACTION = 12,  /* an action this program does not implement (for this family) */
	RVS_STAT_PASS_HEADROOM = 13, /* TUN_*: bpf_xdp_adjust_head refused the outer header (passed up unmodified) */
	/* Append new reasons here (the enum is append-only). */
	RVS_STAT_COUNT = 14,
};

#define RVS_FLOWS_DEFAULT_MAX 65536
#define RVS_TX_PORTS_MAX 64

/*
 * The SYN gate (rvs_gate.h): under a SYN flood from spoofed sources, a first SYN (SYN set, ACK clear) to a gated
 * VIP is dropped and remembered; its retransmission (same 4-tuple and sequence number, after the client's RTO)
 * passes. A spoofed flood never retransmits. Not pinned: a new program starts with an empty memory.
 *
 * rvs_gate_cfg (ARRAY, one entry), written by user space: whether the gate is on, the slot array's mask, the hash
 * seeds, and the age window of a retransmission, in RVS_GATE_TICK units.
 */
#define RVS_GATE_TICK_SHIFT 24 /* one tick = 2^24 ns = 16.8 ms */
#define RVS_GATE_BUCKETS_DEFAULT (1 << 20)
#define RVS_GATE_SLOTS 4
#define RVS_GATE_VIPS_MAX 4096

struct rvs_gate_cfg {
	__u32 on;      /* 0: every SYN passes (the program does nothing else) */
	__u32 mask;    /* buckets - 1 (buckets is a power of two: rvs_gate_slots' max_entries) */
	__u32 seed[2]; /* bucket hash, tag hash: random per load, so the flood cannot aim at a bucket */
	__u16 min_age; /* a retransmission younger than this (ticks) is held (a duplicate, not a retransmission) */
	__u16 max_age; /* older than this (ticks) it is a new first SYN */
	__u32 pad;
};

/* A bucket of rvs_gate_slots: 4 slots of (16-bit tag << 16 | 16-bit tick of the first SYN); 0 is an empty slot
 * (a tag is never 0). */
struct rvs_gate_bucket {
	__u32 slot[RVS_GATE_SLOTS];
};

/* Key of rvs_gate_vips (HASH; value __u32, unused): a TCP service's address and port (0: every port). */
struct rvs_gate_vip {
	__u8 addr[16];
	__be16 port;
	__u8 family; /* RVS_FAMILY_V4 or RVS_FAMILY_V6 */
	__u8 pad;
};

/* rvs_gate_stats (PERCPU_ARRAY of __u64). */
enum rvs_gate_stat {
	RVS_GATE_HELD = 0,   /* a first SYN dropped */
	RVS_GATE_PASSED = 1, /* a retransmission passed (also counted RVS_STAT_PASS_TCP_FLAGS: it goes up) */
	RVS_GATE_STAT_COUNT = 2,
};

#endif
