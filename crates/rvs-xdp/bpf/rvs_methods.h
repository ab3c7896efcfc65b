/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Direct routing and tunnelling in the fast path (included by rvs_xdp.c after count/account/transmit).
 *
 * Both follow IPVS (net/netfilter/ipvs/ip_vs_xmit.c) exactly as rvsd's slow path does (rvsd/src/xmit.rs,
 * rvs-wire/src/encap.rs), so a packet leaves the same whichever path forwarded it:
 *
 * - RVS_ACT_DR (`ip_vs_dr_xmit`): the IP packet is not touched (IPVS takes it at LOCAL_IN: no TTL is spent); only
 *   the Ethernet header changes, to the real server's MAC on the shared network.
 * - RVS_ACT_TUN_IP / _GUE / _GRE (`ip_vs_tunnel_xmit`, `ipvs_gue_encap`, `ipvs_gre_encap`): an outer header is
 *   pushed (bpf_xdp_adjust_head) from the director's address (new_saddr) to the real server (new_daddr). Outer
 *   IPv4: no options, DF copied from an IPv4 inner packet (clear for IPv6 inner), TTL = the inner TTL / hop limit,
 *   TOS = the inner DSCP with INET_ECN_encapsulate's ECN (CE becomes ECT(0)); outer IPv6: flow label 0, traffic
 *   class and hop limit as above. IPIP's protocol is 4 or 41 by the inner family; GUE is UDP from new_sport (the
 *   flow-hashed port user space computed as the slow path does) to new_dport with a 4-byte version-0 GUE header
 *   and no UDP checksum; GRE is a 4-byte header with the inner ethertype.
 *   The checksum options (RVS_ACTF_CSUM: GUE --tun-csum / --tun-remcsum, GRE --tun-csum) need the sum of the
 *   whole inner packet. It is derived in O(1), as a NIC's local checksum offload does (RFC 7325 sec. 4.3, the
 *   kernel's lco_csum): an inner packet whose transport checksum is complete and right sums, over its transport
 *   segment, to the ones' complement of its pseudo-header sum; so the inner packet's sum is its IP header's
 *   (summed: 10 or 20 words) plus ~pseudo-header. An IPv4 UDP inner datagram without a checksum (0) has no such
 *   property and is passed up (RVS_STAT_PASS_ACTION). The outer checksum is then the UDP checksum over the
 *   outer pseudo-header, UDP, GUE and that sum (0 sent as 0xffff), or GRE's over its 8-byte header (C bit,
 *   protocol, checksum, reserved) and that sum. --tun-remcsum: IPVS adds GUE's remote checksum offload option
 *   only to CHECKSUM_PARTIAL packets (ipvs_gue_encap); a frame at the driver carries complete checksums (as a
 *   NIC delivers them), so the kernel encapsulates it exactly as --tun-csum, and so does this program.
 *   Wrong inner checksums (a corrupt packet, or a sender's CHECKSUM_PARTIAL the program cannot see) give an
 *   outer checksum that is wrong by the same amount: the real server drops the packet at the outer header
 *   instead of the inner one.
 *
 * The MTU check happened before the dispatch on the incoming length against the entry's mtu, which user space
 * lowered by this encapsulation's overhead: a packet that would not fit after encapsulation went up to the slow
 * path, which answers "fragmentation needed" / "packet too big" (or lets the kernel fragment an IPv4 packet
 * without DF), as IPVS does.
 *
 * Nothing is written before every check passed; when bpf_xdp_adjust_head refuses, the packet goes up as it came.
 */
#ifndef RVS_METHODS_H
#define RVS_METHODS_H

#define RVS_ETH_P_IP 0x0800
#define RVS_ETH_P_IPV6 0x86DD
#define RVS_PROTO_IPIP 4
#define RVS_PROTO_IPV6 41
#define RVS_PROTO_GRE 47
#define RVS_GUE_PLUS_UDP 12 /* UDP (8) + GUE (4) */
#define RVS_GRE_LEN 4
#define RVS_GRE_CSUM_LEN 8 /* with the checksum present (C bit): checksum + reserved1 */
#define RVS_GRE_F_CSUM 0x8000

/* Direct routing: only the MACs change. */
static __always_inline int dr_xmit(struct ethhdr *eth, struct rvs_flow *f, __u32 l3_len)
{
	account(f, l3_len);
	return transmit(eth, f);
}

/* INET_ECN_encapsulate(outer = inner, inner): the DSCP is kept, ECN copied unless CE (3), which becomes ECT(0). */
static __always_inline __u8 ecn_encapsulate(__u8 ds)
{
	return (ds & 3) == 3 ? (ds & ~3) | 2 : ds;
}

/* Ones' complement sum of n 16-bit words (network order: the sum's byte order is the words'), not folded. */
static __always_inline __u32 csum_words(const __u16 *w, int n)
{
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < n; i++)
		s += w[i];
	return s;
}

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The full IPv4 header checksum of a 20-byte header whose checksum field is 0. */
static __always_inline __u16 ipv4_csum20(const __u16 *w)
{
	return (__u16)~csum_fold(csum_words(w, 10));
}

/*
 * The ones' complement sum (folded) of a whole inner IPv4 packet of tot_len bytes, by local checksum offload (see
 * the header): its 20-byte header plus ~(the transport pseudo-header sum). Returns -1 when it cannot be derived
 * (an IPv4 UDP datagram without a checksum). Every bound was checked by the caller's parse; the verifier needs the
 * UDP header's again.
 */
static __always_inline int inner_sum_v4(struct iphdr *iph, void *data_end, __u32 tot_len)
{
	__u32 ph;

	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);

		if ((void *)(uh + 1) > data_end || uh->check == 0)
			return -1;
	}
	ph = csum_words((const __u16 *)&iph->saddr, 4) + bpf_htons((__u16)iph->protocol) +
	     bpf_htons((__u16)(tot_len - 20));
	return csum_fold(csum_words((const __u16 *)iph, 10) + (__u16)~csum_fold(ph));
}

/* As inner_sum_v4 for an IPv6 packet without extension headers (the caller's parse made sure of it): its 40-byte
 * header plus ~(pseudo-header: addresses, upper-layer length, next header). IPv6 UDP without a checksum was passed
 * up before. */
static __always_inline int inner_sum_v6(struct ipv6hdr *ip6)
{
	__u32 ph = csum_words((const __u16 *)&ip6->saddr, 16) + ip6->payload_len + bpf_htons((__u16)ip6->nexthdr);

	return csum_fold(csum_words((const __u16 *)ip6, 20) + (__u16)~csum_fold(ph));
}

/*
 * Push the outer headers of f's tunnel in front of the inner packet (inner_len bytes of IP, whose family is
 * inner_v6), and redirect. tos/ttl/df: the inner packet's, read by the caller before anything moved.
 */
static __always_inline int tun_push(struct xdp_md *ctx, struct rvs_flow *f, __u32 inner_len, int inner_v6,
				    __u8 tos, __u8 ttl, int df, int inner_sum)
{
	int csum = f->action_flags & RVS_ACTF_CSUM;
	int outer_v6 = f->action_flags & RVS_ACTF_OUTER_V6;
	__u32 ip_len = outer_v6 ? 40 : 20;
	__u32 extra;
	__u8 next;
	void *data, *data_end;
	struct ethhdr *eth;
	void *body;

	if (csum && inner_sum < 0)
		return count(RVS_STAT_PASS_ACTION, XDP_PASS);
	if (f->action == RVS_ACT_TUN_GUE) {
		extra = RVS_GUE_PLUS_UDP;
		next = IPPROTO_UDP;
	} else if (f->action == RVS_ACT_TUN_GRE) {
		extra = csum ? RVS_GRE_CSUM_LEN : RVS_GRE_LEN;
		next = RVS_PROTO_GRE;
	} else {
		extra = 0;
		next = inner_v6 ? RVS_PROTO_IPV6 : RVS_PROTO_IPIP;
	}
	if (bpf_xdp_adjust_head(ctx, -(int)(ip_len + extra)))
		return count(RVS_STAT_PASS_HEADROOM, XDP_PASS);

	/* Every pointer moved: bounds again from the new start (the old Ethernet header is now inside the pushed
	 * bytes; the inner IP packet starts at 14 + ip_len + extra). The bound checks below cannot fail (the inner
	 * packet follows the pushed bytes) but the verifier needs them; a frame already moved cannot go up. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (outer_v6) {
		struct ipv6hdr *o6 = (void *)(eth + 1);
		__u16 payload = (__u16)(extra + inner_len);

		if ((void *)(o6 + 1) > data_end)
			return count(RVS_STAT_DROP_REDIRECT, XDP_DROP);
		eth->h_proto = bpf_htons(RVS_ETH_P_IPV6);
		*(__be32 *)o6 = bpf_htonl(0x60000000 | ((__u32)ecn_encapsulate(tos) << 20));
		o6->payload_len = bpf_htons(payload);
		o6->nexthdr = next;
		o6->hop_limit = ttl;
		__builtin_memcpy(&o6->saddr, f->new_saddr, 16);
		__builtin_memcpy(&o6->daddr, f->new_daddr, 16);
		body = o6 + 1;
	} else {
		struct iphdr *o4 = (void *)(eth + 1);

		if ((void *)(o4 + 1) > data_end)
			return count(RVS_STAT_DROP_REDIRECT, XDP_DROP);
		eth->h_proto = bpf_htons(RVS_ETH_P_IP);
		o4->ihl = 5;
		o4->version = 4;
		o4->tos = ecn_encapsulate(tos);
		o4->tot_len = bpf_htons((__u16)(20 + extra + inner_len));
		/* IPVS takes the outer ident from ip_select_ident; any value will do for the receiver: the entry's
		 * packet count gives each packet of the flow its own. */
		o4->id = bpf_htons((__u16)f->packets);
		o4->frag_off = df ? bpf_htons(0x4000) : 0;
		o4->ttl = ttl;
		o4->protocol = next;
		o4->check = 0;
		__builtin_memcpy(&o4->saddr, f->new_saddr, 4);
		__builtin_memcpy(&o4->daddr, f->new_daddr, 4);
		o4->check = ipv4_csum20((const __u16 *)o4);
		body = o4 + 1;
	}
	if (f->action == RVS_ACT_TUN_GUE) {
		struct udphdr *uh = body;
		__u8 *gue = (__u8 *)(uh + 1);
		__u16 ulen = (__u16)(RVS_GUE_PLUS_UDP + inner_len);

		if ((void *)(gue + 4) > data_end)
			return count(RVS_STAT_DROP_REDIRECT, XDP_DROP);
		uh->source = f->new_sport;
		uh->dest = f->new_dport;
		uh->len = bpf_htons(ulen);
		uh->check = 0; /* --tun-nocsum, also over IPv6 (udp6_set_csum(nocheck) as IPVS) */
		gue[0] = 0;    /* version 0, C 0, no options */
		gue[1] = inner_v6 ? RVS_PROTO_IPV6 : RVS_PROTO_IPIP;
		gue[2] = 0;
		gue[3] = 0;
		if (csum) {
			/* Outer pseudo-header (addresses, protocol, UDP length) + UDP header (check 0) + GUE + inner. */
			/* new_saddr and new_daddr are adjacent in the entry: 16 words are both IPv6 addresses. */
			__u32 s = (outer_v6 ? csum_words((const __u16 *)f->new_saddr, 16)
					     : csum_words((const __u16 *)f->new_saddr, 2) +
						       csum_words((const __u16 *)f->new_daddr, 2)) +
				  bpf_htons(IPPROTO_UDP) + 2 * (__u32)bpf_htons(ulen) + uh->source + uh->dest +
				  *(__u16 *)gue + (__u32)inner_sum;
			__u16 c = (__u16)~csum_fold(s);

			uh->check = c ? c : 0xffff;
		}
	} else if (f->action == RVS_ACT_TUN_GRE) {
		__be16 *gre = body;

		if ((void *)(gre + 4) > data_end)
			return count(RVS_STAT_DROP_REDIRECT, XDP_DROP);
		gre[0] = 0; /* no checksum, key or sequence; version 0 */
		gre[1] = bpf_htons(inner_v6 ? RVS_ETH_P_IPV6 : RVS_ETH_P_IP);
		if (csum) {
			/* C bit, protocol, checksum, reserved1 (0): the checksum covers them and the inner packet. */
			gre[0] = bpf_htons(RVS_GRE_F_CSUM);
			gre[3] = 0;
			gre[2] = (__u16)~csum_fold((__u32)gre[0] + gre[1] + (__u32)inner_sum);
		}
	}
	account(f, inner_len);
	return transmit(eth, f);
}

static __always_inline int tun_xmit_v4(struct xdp_md *ctx, struct iphdr *iph, struct rvs_flow *f, __u32 tot_len)
{
	void *data_end = (void *)(long)ctx->data_end;
	int sum = f->action_flags & RVS_ACTF_CSUM ? inner_sum_v4(iph, data_end, tot_len) : 0;

	return tun_push(ctx, f, tot_len, 0, iph->tos, iph->ttl, !!(iph->frag_off & bpf_htons(0x4000)), sum);
}

static __always_inline int tun_xmit_v6(struct xdp_md *ctx, struct ipv6hdr *ip6, struct rvs_flow *f, __u32 l3_len)
{
	__u8 tc = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	int sum = f->action_flags & RVS_ACTF_CSUM ? inner_sum_v6(ip6) : 0;

	return tun_push(ctx, f, l3_len, 1, tc, ip6->hop_limit, 0, sum);
}

#endif
