// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * The director-capacity bench's two ends (examples/capacity.rs); never loaded by rvsd.
 *
 * rvs_bench_inject is the sender: run by BPF_PROG_TEST_RUN in live-frame mode on pub0, it first restores the
 * datagram's headers from rvs_bench_tpl (the kernel recycles pages without restoring their content, and every path
 * rewrites them: MACs and TTL when forwarding, addresses for NAT), then either passes the frame to the stack
 * (the kernel's paths) or tail-calls the path's program in rvs_bench_next (rvs's fast path). With N flows
 * (rvs_bench_flows, 1..=RVS_BENCH_FLOWS), the k-th injected frame gets template k mod N: N templates that differ
 * in the UDP source port (checksums complete, computed by user space), round robin as N senders would interleave.
 * rvs_bench_sink is the receiver, at the real server's interface: counts and drops IPv4.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RVS_BENCH_HDR 64 /* bytes restored: Ethernet + IPv4 + UDP with room to spare */
#define RVS_BENCH_FLOWS 64 /* templates (flows) at most */

struct rvs_bench_tpl {
	__u8 hdr[RVS_BENCH_HDR];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_BENCH_FLOWS);
	__type(key, __u32);
	__type(value, struct rvs_bench_tpl);
} rvs_bench_tpl SEC(".maps");

/* Slot 0: how many templates are in use (0 is taken as 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rvs_bench_flows SEC(".maps");

/* The injecting CPU's frame sequence number (picks the template). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rvs_bench_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rvs_bench_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rvs_bench_count SEC(".maps");

SEC("xdp")
int rvs_bench_inject(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, idx = 0;
	__u32 *flows = bpf_map_lookup_elem(&rvs_bench_flows, &zero);
	__u32 *seq = bpf_map_lookup_elem(&rvs_bench_seq, &zero);
	struct rvs_bench_tpl *t;

	if (flows && seq && *flows > 1 && *flows <= RVS_BENCH_FLOWS) {
		idx = *seq % *flows;
		*seq += 1;
	}
	t = bpf_map_lookup_elem(&rvs_bench_tpl, &idx);
	if (!t || data + RVS_BENCH_HDR > data_end)
		return XDP_DROP;
	__builtin_memcpy(data, t->hdr, RVS_BENCH_HDR);
	bpf_tail_call(ctx, &rvs_bench_next, 0); /* returns only when the slot is empty */
	return XDP_PASS;
}

SEC("xdp")
int rvs_bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u64 *c;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS; /* neighbour discovery and the like: not the bench's */
	c = bpf_map_lookup_elem(&rvs_bench_count, &zero);
	if (c)
		*c += 1;
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual MIT/GPL";
