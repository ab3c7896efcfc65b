// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * rvs fast path: forwards packets of established LVS-NAT connections that user space put in rvs_flows, and passes
 * everything else up unmodified to the slow path (the kernel, then rvsd's TUN and the Rust core).
 *
 * Forwarded: IPv4 without options and not fragmented, or IPv6 whose next header is TCP or UDP; TTL / hop limit > 1;
 * TCP without SYN, FIN or RST; an entry for the exact 5-tuple; no larger than the egress MTU. The packet gets the
 * entry's addresses and ports, RFC 1624 checksum updates (deltas precomputed by user space), TTL - 1, the next hop's
 * Ethernet header, and is redirected through rvs_tx_ports (a DEVMAP_HASH: only interfaces user space put there can
 * be an egress). Nothing is written before every check has passed: a packet passed up is the packet that arrived.
 *
 * The SYN gate (rvs_gate.h): while user space has it on, a first SYN to a gated VIP is dropped and its
 * retransmission passed up (a spoofed SYN flood never retransmits).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rvs_xdp.h"

_Static_assert(sizeof(struct rvs_flow_key) == 40, "rvs_flow_key layout (mirrored in maps.rs)");
_Static_assert(__builtin_offsetof(struct rvs_flow_key, sport) == 32, "rvs_flow_key.sport");
_Static_assert(__builtin_offsetof(struct rvs_flow_key, proto) == 36, "rvs_flow_key.proto");
_Static_assert(sizeof(struct rvs_flow) == 88, "rvs_flow layout (mirrored in maps.rs)");
_Static_assert(__builtin_offsetof(struct rvs_flow, ifindex) == 36, "rvs_flow.ifindex");
_Static_assert(__builtin_offsetof(struct rvs_flow, mtu) == 52, "rvs_flow.mtu");
_Static_assert(__builtin_offsetof(struct rvs_flow, l4_csum_delta) == 56, "rvs_flow.l4_csum_delta");
_Static_assert(__builtin_offsetof(struct rvs_flow, action) == 58, "rvs_flow.action");
_Static_assert(__builtin_offsetof(struct rvs_flow, action_flags) == 59, "rvs_flow.action_flags");
_Static_assert(__builtin_offsetof(struct rvs_flow, packets) == 64, "rvs_flow.packets");
_Static_assert(__builtin_offsetof(struct rvs_flow, last_seen_ns) == 80, "rvs_flow.last_seen_ns");
_Static_assert(sizeof(struct rvs_gate_cfg) == 24, "rvs_gate_cfg layout (mirrored in gate.rs)");
_Static_assert(__builtin_offsetof(struct rvs_gate_cfg, min_age) == 16, "rvs_gate_cfg.min_age");
_Static_assert(sizeof(struct rvs_gate_vip) == 20, "rvs_gate_vip layout (mirrored in gate.rs)");
_Static_assert(__builtin_offsetof(struct rvs_gate_vip, family) == 18, "rvs_gate_vip.family");
_Static_assert(sizeof(struct rvs_gate_bucket) == 16, "rvs_gate_bucket layout");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_FLOWS_DEFAULT_MAX);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_flow);
} rvs_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, RVS_TX_PORTS_MAX);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} rvs_tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} rvs_stats SEC(".maps");

static __always_inline int count(__u32 why, int action)
{
	__u64 *c = bpf_map_lookup_elem(&rvs_stats, &why);

	if (c)
		*c += 1; /* per-CPU: no atomic needed */
	return action;
}

/* RFC 1624 eqn 3 with a precomputed delta: HC' = ~(~HC + delta). Byte order does not matter as long as the field
 * and the delta are in the same one. */
static __always_inline __u16 csum_apply(__u16 csum, __u16 delta)
{
	__u32 s = (__u32)(__u16)~csum + (__u32)delta;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

#define TCP_FLAGS_OFFSET 13
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04

/* Check the L4 header in [l4, data_end) and fill the ports of the key; returns a pass-up reason or -1. */
static __always_inline int l4_key(void *l4, void *data_end, __u8 proto, struct rvs_flow_key *key)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return RVS_STAT_PASS_MALFORMED;
		if (((__u8 *)th)[TCP_FLAGS_OFFSET] & (TCP_FIN | TCP_SYN | TCP_RST))
			return RVS_STAT_PASS_TCP_FLAGS;
		key->sport = th->source;
		key->dport = th->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return RVS_STAT_PASS_MALFORMED;
		key->sport = uh->source;
		key->dport = uh->dest;
	} else {
		return RVS_STAT_PASS_PROTO;
	}
	key->proto = proto;
	return -1;
}

/* Rewrite the ports and the L4 checksum. l4_key checked the bounds already, but the compiler may merge paths so
 * that the verifier no longer knows it: they are checked again (before anything is written). Returns 0, or -1 when
 * nothing was written. */
static __always_inline int l4_rewrite(void *l4, void *data_end, __u8 proto, const struct rvs_flow *f)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return -1;
		th->source = f->new_sport;
		th->dest = f->new_dport;
		th->check = csum_apply(th->check, f->l4_csum_delta);
	} else {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return -1;
		uh->source = f->new_sport;
		uh->dest = f->new_dport;
		if (uh->check) { /* IPv4 UDP without a checksum stays without one */
			__u16 c = csum_apply(uh->check, f->l4_csum_delta);

			uh->check = c ? c : 0xffff;
		}
	}
	return 0;
}

static __always_inline void account(struct rvs_flow *f, __u32 l3_len)
{
	__u64 now = bpf_ktime_get_coarse_ns();

	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, l3_len);
	if (f->last_seen_ns != now) /* one write per clock tick, not one per packet */
		f->last_seen_ns = now;
}

static __always_inline int transmit(struct ethhdr *eth, const struct rvs_flow *f)
{
	long act;

	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	act = bpf_redirect_map(&rvs_tx_ports, f->ifindex, 0);
	if (act != XDP_REDIRECT)
		return count(RVS_STAT_DROP_REDIRECT, XDP_DROP);
	return count(RVS_STAT_FORWARDED, XDP_REDIRECT);
}

#include "rvs_methods.h"
#include "rvs_gate.h"

/* MASQ, IPv4: addresses, ports, checksums (deltas from user space), TTL, next hop. Every check has passed. */
static __always_inline int masq_v4(struct ethhdr *eth, struct iphdr *iph, void *data_end, struct rvs_flow *f,
				   __u32 tot_len)
{
	if (l4_rewrite(iph + 1, data_end, iph->protocol, f))
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	__builtin_memcpy(&iph->saddr, f->new_saddr, 4);
	__builtin_memcpy(&iph->daddr, f->new_daddr, 4);
	iph->ttl--;
	iph->check = csum_apply(iph->check, f->ip_csum_delta);
	account(f, tot_len);
	return transmit(eth, f);
}

static __always_inline int handle_v4(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	struct iphdr *iph = (void *)(eth + 1);
	struct rvs_flow_key key = {};
	struct rvs_flow *f;
	__u32 tot_len;
	int why;

	if ((void *)(iph + 1) > data_end)
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	if (iph->ihl != 5 || iph->version != 4) {
		if (gate_v4_odd(iph, data_end)) {
			gate_count(RVS_GATE_HELD);
			return XDP_DROP;
		}
		return count(iph->ihl > 5 ? RVS_STAT_PASS_OPTIONS : RVS_STAT_PASS_MALFORMED, XDP_PASS);
	}
	if (iph->frag_off & bpf_htons(0x3fff)) { /* MF or an offset */
		if (gate_v4_odd(iph, data_end)) {
			gate_count(RVS_GATE_HELD);
			return XDP_DROP;
		}
		return count(RVS_STAT_PASS_FRAGMENT, XDP_PASS);
	}
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < sizeof(*iph) || (void *)iph + tot_len > data_end)
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	why = l4_key(iph + 1, data_end, iph->protocol, &key);
	if (why >= 0) {
		/* Only SYN/FIN/RST segments reach the gate: every other packet's path is unchanged. */
		if (why == RVS_STAT_PASS_TCP_FLAGS && gate_v4(iph, data_end)) {
			gate_count(RVS_GATE_HELD);
			return XDP_DROP;
		}
		return count(why, XDP_PASS);
	}
	if (iph->ttl <= 1)
		return count(RVS_STAT_PASS_TTL, XDP_PASS);
	key.family = RVS_FAMILY_V4;
	__builtin_memcpy(key.saddr, &iph->saddr, 4);
	__builtin_memcpy(key.daddr, &iph->daddr, 4);
	f = bpf_map_lookup_elem(&rvs_flows, &key);
	if (!f)
		return count(RVS_STAT_PASS_MISS, XDP_PASS);
	if (tot_len > f->mtu)
		return count(RVS_STAT_PASS_MTU, XDP_PASS);

	switch (f->action) {
	case RVS_ACT_MASQ:
		return masq_v4(eth, iph, data_end, f, tot_len);
	case RVS_ACT_DR:
		return dr_xmit(eth, f, tot_len);
	case RVS_ACT_TUN_IP:
	case RVS_ACT_TUN_GUE:
	case RVS_ACT_TUN_GRE:
		return tun_xmit_v4(ctx, iph, f, tot_len);
	default:
		return count(RVS_STAT_PASS_ACTION, XDP_PASS);
	}
}

/* MASQ, IPv6: as masq_v4 without a header checksum. */
static __always_inline int masq_v6(struct ethhdr *eth, struct ipv6hdr *ip6, void *data_end, struct rvs_flow *f,
				   __u32 l3_len)
{
	if (l4_rewrite(ip6 + 1, data_end, ip6->nexthdr, f))
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	__builtin_memcpy(&ip6->saddr, f->new_saddr, 16);
	__builtin_memcpy(&ip6->daddr, f->new_daddr, 16);
	ip6->hop_limit--;
	account(f, l3_len);
	return transmit(eth, f);
}

static __always_inline int handle_v6(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct rvs_flow_key key = {};
	struct rvs_flow *f;
	__u32 l3_len;
	void *l4;
	__u8 nh;
	int why;

	if ((void *)(ip6 + 1) > data_end)
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	if (ip6->version != 6)
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	nh = ip6->nexthdr;
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP) {
		if (nh == IPPROTO_ICMPV6)
			return count(RVS_STAT_PASS_PROTO, XDP_PASS);
		/* hop-by-hop, routing, fragment, destination options, ... */
		if (gate_v6_ext(ip6, data_end)) {
			gate_count(RVS_GATE_HELD);
			return XDP_DROP;
		}
		return count(RVS_STAT_PASS_OPTIONS, XDP_PASS);
	}
	l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if ((void *)ip6 + l3_len > data_end)
		return count(RVS_STAT_PASS_MALFORMED, XDP_PASS);
	l4 = ip6 + 1;
	why = l4_key(l4, data_end, nh, &key);
	if (why >= 0) {
		if (why == RVS_STAT_PASS_TCP_FLAGS && gate_v6(ip6, data_end)) {
			gate_count(RVS_GATE_HELD);
			return XDP_DROP;
		}
		return count(why, XDP_PASS);
	}
	if (nh == IPPROTO_UDP && ((struct udphdr *)l4)->check == 0)
		return count(RVS_STAT_PASS_UDP_NOCSUM6, XDP_PASS);
	if (ip6->hop_limit <= 1)
		return count(RVS_STAT_PASS_TTL, XDP_PASS);
	key.family = RVS_FAMILY_V6;
	__builtin_memcpy(key.saddr, &ip6->saddr, 16);
	__builtin_memcpy(key.daddr, &ip6->daddr, 16);
	f = bpf_map_lookup_elem(&rvs_flows, &key);
	if (!f)
		return count(RVS_STAT_PASS_MISS, XDP_PASS);
	if (l3_len > f->mtu)
		return count(RVS_STAT_PASS_MTU, XDP_PASS);

	switch (f->action) {
	case RVS_ACT_MASQ:
		return masq_v6(eth, ip6, data_end, f, l3_len);
	case RVS_ACT_DR:
		return dr_xmit(eth, f, l3_len);
	case RVS_ACT_TUN_IP:
	case RVS_ACT_TUN_GUE:
	case RVS_ACT_TUN_GRE:
		return tun_xmit_v6(ctx, ip6, f, l3_len);
	default:
		return count(RVS_STAT_PASS_ACTION, XDP_PASS);
	}
}

SEC("xdp")
int rvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return count(RVS_STAT_PASS_NOT_IP, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return handle_v4(ctx, eth, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return handle_v6(ctx, eth, data_end);
	return count(RVS_STAT_PASS_NOT_IP, XDP_PASS);
}

/* The comparison for instruction counts and ns/packet: what an attached program costs at the least. */
SEC("xdp")
int rvs_xdp_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
