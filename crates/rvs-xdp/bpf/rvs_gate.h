/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The SYN gate: SYN retransmission authentication in front of the slow path (issue 15; an rvs defence beyond
 * IPVS's). Included by rvs_xdp.c after count().
 *
 * Why: a SYN flood from random spoofed sources at the lab's full rate (377 583 SYN/s, 2026-12-03 10:36) crosses the
 * kernel into rvsd's TUN with every flood SYN and its SYN-ACK; the TUN queue dropped 3.2 M packets, real SYNs among
 * them, and only 29.6 % of real requests succeeded. Here, at the driver, a first SYN to a gated VIP is dropped and
 * remembered while the gate is on; its retransmission (same addresses, ports and sequence number, after the
 * client's RTO: 1 s on Linux) passes. A flood from spoofed sources never retransmits, so it never reaches the slow
 * path; a real client pays one RTO per new connection while the gate is on. rvsd turns it on and off
 * (rvsd/src/syngate.rs).
 *
 * Memory: rvs_gate_slots, buckets of 4 slots; a slot is a 16-bit tag (a second hash of the SYN) and the 16-bit
 * tick (2^24 ns) of the first SYN; a new first SYN takes the bucket's oldest (or an empty) slot. With 2^20 buckets
 * (16 MiB) a real client's slot survives 4 more first SYNs in its bucket during its RTO: at 377 583 SYN/s that is
 * 0.36 per bucket per second, P(4 or more) ~ 0.05 %. Races between CPUs on a bucket are benign: at worst one SYN
 * more is held or passed.
 *
 * Cost: only a TCP segment with SYN set and ACK clear (which the program passes up anyway) reaches this code; a
 * packet without SYN takes exactly the path it took before.
 */
#ifndef RVS_GATE_H
#define RVS_GATE_H

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_gate_cfg);
} rvs_gate_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_GATE_BUCKETS_DEFAULT);
	__type(key, __u32);
	__type(value, struct rvs_gate_bucket);
} rvs_gate_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_GATE_VIPS_MAX);
	__type(key, struct rvs_gate_vip);
	__type(value, __u32);
} rvs_gate_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_GATE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} rvs_gate_stats SEC(".maps");

#define TCP_ACK 0x10

static __always_inline void gate_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&rvs_gate_stats, &which);

	if (c)
		*c += 1; /* per-CPU */
}

/* murmur3's 32-bit block mix and finaliser. */
static __always_inline __u32 gate_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 gate_fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The gate on, and the SYN's destination a gated VIP (its port, or the whole address: a port-0 service)? */
static __always_inline const struct rvs_gate_cfg *gate_for(struct rvs_gate_vip *vip)
{
	__u32 zero = 0;
	const struct rvs_gate_cfg *cfg = bpf_map_lookup_elem(&rvs_gate_cfg, &zero);

	if (!cfg || !cfg->on)
		return 0;
	if (bpf_map_lookup_elem(&rvs_gate_vips, vip))
		return cfg;
	vip->port = 0;
	if (bpf_map_lookup_elem(&rvs_gate_vips, vip))
		return cfg;
	return 0;
}

/* w[0..n): the SYN's addresses, ports and sequence number as 32-bit words. Returns 1: hold (drop) it; 0: pass. */
static __attribute__((noinline)) int gate_check(const struct rvs_gate_cfg *cfg, const __u32 *w, const int n)
{
	__u32 h1 = cfg->seed[0], h2 = cfg->seed[1];
	__u32 idx, s, best = 0, best_age = 0;
	struct rvs_gate_bucket *b;
	__u16 tag, now, age;
	int i;

#pragma unroll
	for (i = 0; i < n; i++) {
		h1 = gate_mix(h1, w[i]);
		h2 = gate_mix(h2, w[i]);
	}
	idx = gate_fmix(h1 ^ n) & cfg->mask;
	b = bpf_map_lookup_elem(&rvs_gate_slots, &idx);
	if (!b)
		return 0; /* a mask larger than the array: user space's bug, fail open */
	tag = gate_fmix(h2 ^ n) >> 16;
	if (!tag)
		tag = 1;
	now = (__u16)(bpf_ktime_get_coarse_ns() >> RVS_GATE_TICK_SHIFT);

#pragma unroll
	for (i = 0; i < RVS_GATE_SLOTS; i++) {
		s = b->slot[i];
		age = (__u16)(now - (__u16)s);
		if (s && (__u16)(s >> 16) == tag) {
			if (age < cfg->min_age)
				return 1; /* a duplicate of the first SYN, not a retransmission: keep the first's time */
			if (age <= cfg->max_age) {
				b->slot[i] = 0;
				gate_count(RVS_GATE_PASSED);
				return 0;
			}
			best = i; /* too late: this SYN starts again in its own slot */
			break;
		}
		if (!s)
			age = 0xffff;
		if (age >= best_age) {
			best_age = age;
			best = i;
		}
	}
	b->slot[best & (RVS_GATE_SLOTS - 1)] = ((__u32)tag << 16) | now;
	return 1;
}

/* An IPv4 SYN whose TCP header is at th. 1: hold it. */
static __always_inline int gate_v4_at(struct iphdr *iph, struct tcphdr *th, void *data_end)
{
	const struct rvs_gate_cfg *cfg;
	struct rvs_gate_vip vip = {};
	__u32 w[4];

	if (iph->protocol != IPPROTO_TCP || (void *)(th + 1) > data_end)
		return 0;
	if ((((__u8 *)th)[TCP_FLAGS_OFFSET] & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return 0;
	__builtin_memcpy(vip.addr, &iph->daddr, 4);
	vip.port = th->dest;
	vip.family = RVS_FAMILY_V4;
	cfg = gate_for(&vip);
	if (!cfg)
		return 0;
	__builtin_memcpy(&w[0], &iph->saddr, 4);
	__builtin_memcpy(&w[1], &iph->daddr, 4);
	__builtin_memcpy(&w[2], &th->source, 4); /* source and dest ports */
	__builtin_memcpy(&w[3], &th->seq, 4);
	return gate_check(cfg, w, 4);
}

/* An IPv4 SYN (iph checked by handle_v4: no options, not a fragment, whole). 1: hold it. */
static __always_inline int gate_v4(struct iphdr *iph, void *data_end)
{
	return gate_v4_at(iph, (struct tcphdr *)(iph + 1), data_end);
}

/* An IPv4 packet with options or a fragment, which the program passes up without a look at its TCP header: a SYN
 * among them is gated all the same (else IP options, or MF on a whole segment, would carry a flood past the gate).
 * A fragment other than the first has no TCP header and passes. 1: hold it. */
static __always_inline int gate_v4_odd(struct iphdr *iph, void *data_end)
{
	__u32 ihl = iph->ihl;

	if (iph->version != 4 || ihl < 5 || (iph->frag_off & bpf_htons(0x1fff)))
		return 0;
	return gate_v4_at(iph, (struct tcphdr *)((void *)iph + ihl * 4), data_end);
}

/* An IPv6 SYN whose TCP header is at th. 1: hold it. */
static __always_inline int gate_v6_at(struct ipv6hdr *ip6, struct tcphdr *th, void *data_end)
{
	const struct rvs_gate_cfg *cfg;
	struct rvs_gate_vip vip = {};
	__u32 w[10];

	if ((void *)(th + 1) > data_end)
		return 0;
	if ((((__u8 *)th)[TCP_FLAGS_OFFSET] & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return 0;
	__builtin_memcpy(vip.addr, &ip6->daddr, 16);
	vip.port = th->dest;
	vip.family = RVS_FAMILY_V6;
	cfg = gate_for(&vip);
	if (!cfg)
		return 0;
	__builtin_memcpy(&w[0], &ip6->saddr, 16);
	__builtin_memcpy(&w[4], &ip6->daddr, 16);
	__builtin_memcpy(&w[8], &th->source, 4);
	__builtin_memcpy(&w[9], &th->seq, 4);
	return gate_check(cfg, w, 10);
}

/* An IPv6 SYN (ip6 checked by handle_v6: next header TCP, whole). 1: hold it. */
static __always_inline int gate_v6(struct ipv6hdr *ip6, void *data_end)
{
	if (ip6->nexthdr != IPPROTO_TCP)
		return 0;
	return gate_v6_at(ip6, (struct tcphdr *)(ip6 + 1), data_end);
}

#define GATE_V6_EXT_MAX 3

/* An IPv6 packet with extension headers, which the program passes up without a look further: a SYN behind up to
 * GATE_V6_EXT_MAX hop-by-hop, routing, destination options, fragment (offset 0) or AH headers is gated all the
 * same (else one padding option would carry a flood past the gate). 1: hold it. */
static __always_inline int gate_v6_ext(struct ipv6hdr *ip6, void *data_end)
{
	__u32 off = sizeof(*ip6);
	__u8 nh = ip6->nexthdr;
	__u8 *h;
	int i;

#pragma unroll
	for (i = 0; i < GATE_V6_EXT_MAX; i++) {
		h = (__u8 *)ip6 + off;
		if ((void *)(h + 8) > data_end)
			return 0;
		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			off += ((__u32)h[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if (((h[2] << 8) | h[3]) & 0xfff8)
				return 0; /* not the first fragment: no TCP header */
			off += 8;
			break;
		case IPPROTO_AH:
			off += ((__u32)h[1] + 2) * 4;
			break;
		default:
			return 0;
		}
		nh = h[0];
		if (nh == IPPROTO_TCP)
			return gate_v6_at(ip6, (struct tcphdr *)((__u8 *)ip6 + off), data_end);
	}
	return 0;
}

#endif
