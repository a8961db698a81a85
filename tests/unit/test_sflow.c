/* Unit tests for the sFlow v5 decoder (collector/sflow.c) through collector_input(): the
 * fields of a flow from each kind of sampled packet (Ethernet, 802.1Q/QinQ, MPLS, IPv4 with
 * options and fragments, IPv6 with extension headers, TCP, UDP, cut-short headers, sampled
 * IPv4/IPv6 records), the agent as exporter, sub-agents as domains, datagram and per-source
 * sample loss, drops, caps, named hostile vectors, a truncation sweep and
 * seeded random datagrams. */
#include "dgram.h"

#define NOW G_GINT64_CONSTANT(1700000100123)
#define UPTIME 500000u

/* ---- builders --------------------------------------------------------------------------- */

/* sFlow datagram header; returns the offset of num_samples (patched by sf_end()). */
static gsize
sf_header(GByteArray *g, const guint8 *agent, gboolean v6, guint32 sub, guint32 seq,
	  guint32 uptime)
{
	dg_u32(g, 5);
	dg_u32(g, v6 ? 2 : 1);
	dg_bytes(g, agent, v6 ? 16 : 4);
	dg_u32(g, sub);
	dg_u32(g, seq);
	dg_u32(g, uptime);
	gsize off = g->len;
	dg_u32(g, 0);
	return off;
}

static void
put_u32_at(GByteArray *g, gsize off, guint32 v)
{
	g->data[off] = (guint8)(v >> 24);
	g->data[off + 1] = (guint8)(v >> 16);
	g->data[off + 2] = (guint8)(v >> 8);
	g->data[off + 3] = (guint8)v;
}

static void
sf_set_count(GByteArray *g, gsize count_off, guint32 n)
{
	put_u32_at(g, count_off, n);
}

/* A sample or record: format, then a length patched by sf_close(). */
static gsize
sf_open(GByteArray *g, guint32 format)
{
	dg_u32(g, format);
	gsize off = g->len;
	dg_u32(g, 0);
	return off;
}

static void
sf_close(GByteArray *g, gsize len_off)
{
	put_u32_at(g, len_off, (guint32)(g->len - len_off - 4));
}

typedef struct {
	guint32 seq;
	guint32 source; /* type << 24 | index (standard), index (expanded) */
	guint32 source_type; /* expanded only */
	guint32 rate;
	guint32 pool;
	guint32 drops;
	gboolean expanded;
} SampleHdr;

/* Opens a flow sample; returns {sample length offset, record count offset} via out. */
static void
sf_flow_sample_begin(GByteArray *g, const SampleHdr *h, gsize *len_off, gsize *nrec_off)
{
	*len_off = sf_open(g, h->expanded ? 3 : 1);
	dg_u32(g, h->seq);
	if (h->expanded) {
		dg_u32(g, h->source_type);
		dg_u32(g, h->source);
	} else {
		dg_u32(g, h->source);
	}
	dg_u32(g, h->rate);
	dg_u32(g, h->pool);
	dg_u32(g, h->drops);
	if (h->expanded) {
		dg_u32(g, 0), dg_u32(g, 7); /* input: format 0, ifIndex 7 */
		dg_u32(g, 0), dg_u32(g, 9);
	} else {
		dg_u32(g, 7);
		dg_u32(g, 9);
	}
	*nrec_off = g->len;
	dg_u32(g, 0);
}

/* Raw packet header record: protocol, frame length, stripped, then the header padded. */
static void
sf_raw_header(GByteArray *g, guint32 proto, guint32 frame_len, const GByteArray *hdr)
{
	gsize l = sf_open(g, 1);
	dg_u32(g, proto);
	dg_u32(g, frame_len);
	dg_u32(g, 4);
	dg_u32(g, hdr->len);
	dg_bytes(g, hdr->data, hdr->len);
	dg_zeros(g, (4 - (hdr->len & 3)) & 3);
	sf_close(g, l);
}

/* Extended switch record (1001): skipped by length. */
static void
sf_ext_switch(GByteArray *g)
{
	gsize l = sf_open(g, 1001);
	dg_u32(g, 10), dg_u32(g, 0), dg_u32(g, 20), dg_u32(g, 0);
	sf_close(g, l);
}

static void
sf_sampled_ipv4(GByteArray *g, guint32 length, guint32 proto, const guint8 s[4],
		const guint8 d[4], guint32 sport, guint32 dport, guint32 flags)
{
	gsize l = sf_open(g, 3);
	dg_u32(g, length);
	dg_u32(g, proto);
	dg_bytes(g, s, 4);
	dg_bytes(g, d, 4);
	dg_u32(g, sport), dg_u32(g, dport), dg_u32(g, flags), dg_u32(g, 0);
	sf_close(g, l);
}

static void
sf_sampled_ipv6(GByteArray *g, guint32 length, guint32 proto, const guint8 s[16],
		const guint8 d[16], guint32 sport, guint32 dport, guint32 flags)
{
	gsize l = sf_open(g, 4);
	dg_u32(g, length);
	dg_u32(g, proto);
	dg_bytes(g, s, 16);
	dg_bytes(g, d, 16);
	dg_u32(g, sport), dg_u32(g, dport), dg_u32(g, flags), dg_u32(g, 0);
	sf_close(g, l);
}

/* One whole flow sample with the given records written by fn. */
typedef void (*RecordsFn)(GByteArray *g, gpointer data);

static guint
sf_flow_sample(GByteArray *g, const SampleHdr *h, guint nrec, RecordsFn fn, gpointer data)
{
	gsize len_off, nrec_off;
	sf_flow_sample_begin(g, h, &len_off, &nrec_off);
	fn(g, data);
	put_u32_at(g, nrec_off, nrec);
	sf_close(g, len_off);
	return 1;
}

static void
sf_counter_sample(GByteArray *g, gboolean expanded, guint32 seq)
{
	gsize l = sf_open(g, expanded ? 4 : 2);
	dg_u32(g, seq);
	if (expanded)
		dg_u32(g, 0), dg_u32(g, 7);
	else
		dg_u32(g, 7);
	dg_u32(g, 1); /* one counter record: generic interface counters, 88 bytes */
	gsize r = sf_open(g, 1);
	dg_zeros(g, 88);
	sf_close(g, r);
	sf_close(g, l);
}

/* ---- packet headers ------------------------------------------------------------------- */

static const guint8 mac_dst[6] = {0x02, 0, 0, 0, 0, 1};
static const guint8 mac_src[6] = {0x02, 0, 0, 0, 0, 2};
static const guint8 a_in[4] = {10, 1, 2, 3};
static const guint8 a_out[4] = {198, 51, 100, 25};
static const guint8 a6_in[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x66};
static const guint8 a6_out[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25};
static const guint8 agent4[4] = {192, 0, 2, 77};

static void
eth(GByteArray *g, const guint16 *types, guint ntypes)
{
	dg_bytes(g, mac_dst, 6);
	dg_bytes(g, mac_src, 6);
	/* types[0..n-2] are tags (each followed by a TCI), the last the payload's type */
	for (guint i = 0; i < ntypes; i++) {
		dg_u16(g, types[i]);
		if (i + 1 < ntypes)
			dg_u16(g, 100 + i); /* TCI: VLAN 100, 101, ... */
	}
}

/* IPv4 header with ihl 32-bit words (options zero-filled), total length tot. */
static void
ipv4(GByteArray *g, guint ihl, guint8 proto, guint16 frag, const guint8 s[4], const guint8 d[4],
     guint16 tot)
{
	dg_u8(g, 0x40 | ihl);
	dg_u8(g, 0);
	dg_u16(g, tot);
	dg_u16(g, 0x1234);
	dg_u16(g, frag);
	dg_u8(g, 64);
	dg_u8(g, proto);
	dg_u16(g, 0);
	dg_bytes(g, s, 4);
	dg_bytes(g, d, 4);
	dg_zeros(g, (ihl - 5) * 4);
}

static void
ipv6(GByteArray *g, guint8 next, const guint8 s[16], const guint8 d[16], guint16 plen)
{
	dg_u32(g, 0x60000000u);
	dg_u16(g, plen);
	dg_u8(g, next);
	dg_u8(g, 64);
	dg_bytes(g, s, 16);
	dg_bytes(g, d, 16);
}

static void
tcp(GByteArray *g, guint16 sport, guint16 dport, guint8 flags)
{
	dg_u16(g, sport);
	dg_u16(g, dport);
	dg_u32(g, 1000);
	dg_u32(g, 0);
	dg_u8(g, 0x50);
	dg_u8(g, flags);
	dg_u16(g, 65535);
	dg_u32(g, 0);
}

static void
udp(GByteArray *g, guint16 sport, guint16 dport)
{
	dg_u16(g, sport);
	dg_u16(g, dport);
	dg_u16(g, 8);
	dg_u16(g, 0);
}

/* Ethernet + IPv4 + TCP SYN from a_in:40000 to a_out:25 */
static GByteArray *
hdr_syn(void)
{
	static const guint16 t[] = {0x0800};
	GByteArray *h = g_byte_array_new();
	eth(h, t, 1);
	ipv4(h, 5, 6, 0x4000, a_in, a_out, 40);
	tcp(h, 40000, 25, 0x02);
	return h;
}

typedef struct {
	const GByteArray *hdr;
	guint32 proto;
	guint32 frame_len;
	gboolean with_switch;
} RawRec;

static void
write_raw(GByteArray *g, gpointer data)
{
	const RawRec *r = data;
	if (r->with_switch)
		sf_ext_switch(g);
	sf_raw_header(g, r->proto, r->frame_len, r->hdr);
}

/* A datagram from agent4 sub-agent 0 carrying one flow sample of hdr. */
static GByteArray *
one_sample(const GByteArray *hdr, guint32 proto, guint32 frame_len, guint32 rate, guint32 seq)
{
	GByteArray *g = g_byte_array_new();
	gsize cnt = sf_header(g, agent4, FALSE, 0, seq, UPTIME + seq);
	SampleHdr sh = {.seq = seq, .source = 7, .rate = rate, .pool = seq * rate};
	RawRec rr = {hdr, proto, frame_len, TRUE};
	sf_flow_sample(g, &sh, 2, write_raw, &rr);
	sf_set_count(g, cnt, 1);
	return g;
}

static const SessionStats *
agent_stats(const Harness *h, guint32 sub)
{
	return harness_stats_port(h, 0, sub);
}

static void
assert_addr_v6(const guint8 a[16], const guint8 want[16])
{
	assert_memory_equal(a, want, 16);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_sflow_fields(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	g_autoptr(GByteArray) g = one_sample(hdr, 1, 64, 1, 1);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, g, NOW), 1);
	const Flow *f = harness_flow(h, 0);
	assert_addr_v4(f->src, 10, 1, 2, 3);
	assert_addr_v4(f->dst, 198, 51, 100, 25);
	assert_int_equal(f->sport, 40000);
	assert_int_equal(f->dport, 25);
	assert_int_equal(f->proto, 6);
	assert_int_equal(f->tcp_flags, 0x02);
	assert_int_equal(f->packets, 1);
	assert_int_equal(f->bytes, 64); /* the frame length, as on the wire */
	assert_int_equal(f->sampling, 1);
	assert_int_equal(f->recv_ms, NOW);
	assert_int_equal(f->start_ms, NOW);
	assert_int_equal(f->end_ms, NOW);
	assert_int_equal(f->version, FLOW_VERSION_SFLOW5);
	assert_int_equal(f->domain, 0);
	assert_int_equal(f->has, FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TIMES |
				     FLOW_HAS_TCP_FLAGS | FLOW_PACKET_SAMPLE);
	/* the exporter is the agent, not the UDP source (192.0.2.1:2055) */
	guint8 addr[16];
	guint16 port = 99;
	assert_true(collector_exporter_addr(h->c, f->exporter, addr, &port));
	assert_addr_v4(addr, 192, 0, 2, 77);
	assert_int_equal(port, 0);
	assert_true(collector_exporter_is_agent(h->c, f->exporter));
	const SessionStats *st = agent_stats(h, 0);
	assert_non_null(st);
	assert_int_equal(st->version, FLOW_VERSION_SFLOW5);
	assert_int_equal(st->datagrams, 1);
	assert_int_equal(st->records, 1);
	assert_int_equal(malformed_total(st), 0);
	assert_null(harness_stats_port(h, HARNESS_PORT, 0)); /* no row for the UDP source */
	harness_free(h);
}

/* Sampling rate per sample (and per interface): each flow carries its own. */
static void
test_sflow_sampling_per_sample(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	GByteArray *g = g_byte_array_new();
	gsize cnt = sf_header(g, agent4, FALSE, 0, 1, UPTIME);
	RawRec rr = {hdr, 1, 64, FALSE};
	SampleHdr a = {.seq = 1, .source = 7, .rate = 512};
	SampleHdr b = {.seq = 1, .source = 8, .rate = 2048};
	SampleHdr z = {.seq = 2, .source = 7, .rate = 0}; /* 0 is taken as 1 */
	sf_flow_sample(g, &a, 1, write_raw, &rr);
	sf_flow_sample(g, &b, 1, write_raw, &rr);
	sf_flow_sample(g, &z, 1, write_raw, &rr);
	sf_set_count(g, cnt, 3);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 3);
	assert_int_equal(harness_flow(h, 0)->sampling, 512);
	assert_int_equal(harness_flow(h, 1)->sampling, 2048);
	assert_int_equal(harness_flow(h, 2)->sampling, 1);
	assert_int_equal(agent_stats(h, 0)->sampling, 1); /* the last seen */
	assert_int_equal(agent_stats(h, 0)->samples_lost, 0);
	g_byte_array_free(g, TRUE);
	harness_free(h);
}

typedef struct {
	const char *name;
	GByteArray *hdr;
	guint32 proto;
	/* what the flow must say (ok FALSE: no flow, counted samples_not_ip) */
	gboolean ok;
	gboolean v6;
	guint8 l4;
	guint16 sport, dport;
	gboolean has_flags;
	guint8 flags;
} HdrCase;

static void
check_case(const HdrCase *c)
{
	g_autoptr(GByteArray) g = one_sample(c->hdr, c->proto, 1518, 1, 1);
	Harness *h = harness_new(NULL);
	guint n = harness_input(h, g, NOW);
	const SessionStats *st = agent_stats(h, 0);
	print_message("case %s\n", c->name);
	assert_int_equal(malformed_total(st), 0);
	if (!c->ok) {
		assert_int_equal(n, 0);
		assert_int_equal(st->samples_not_ip, 1);
		harness_free(h);
		return;
	}
	assert_int_equal(n, 1);
	assert_int_equal(st->samples_not_ip, 0);
	const Flow *f = harness_flow(h, 0);
	if (c->v6) {
		assert_addr_v6(f->src, a6_in);
		assert_addr_v6(f->dst, a6_out);
	} else {
		assert_addr_v4(f->src, 10, 1, 2, 3);
		assert_addr_v4(f->dst, 198, 51, 100, 25);
	}
	assert_int_equal(f->proto, c->l4);
	assert_int_equal(f->sport, c->sport);
	assert_int_equal(f->dport, c->dport);
	assert_int_equal((f->has & FLOW_HAS_TCP_FLAGS) != 0, c->has_flags);
	if (c->has_flags)
		assert_int_equal(f->tcp_flags, c->flags);
	assert_int_equal(f->bytes, 1518);
	harness_free(h);
}

static void
test_sflow_packet_kinds(void **state)
{
	(void)state;
	HdrCase cases[16];
	guint n = 0;
	GByteArray *h;

	/* 802.1Q then QinQ (0x88a8 outer, 0x8100 inner) then the old 0x9100 */
	{
		static const guint16 t[] = {0x8100, 0x0800};
		h = g_byte_array_new();
		eth(h, t, 2);
		ipv4(h, 5, 6, 0, a_in, a_out, 40);
		tcp(h, 1111, 25, 0x12);
		cases[n++] = (HdrCase){"vlan", h, 1, TRUE, FALSE, 6, 1111, 25, TRUE, 0x12};
	}
	{
		static const guint16 t[] = {0x88a8, 0x8100, 0x9100, 0x0800};
		h = g_byte_array_new();
		eth(h, t, 4);
		ipv4(h, 5, 17, 0, a_in, a_out, 28);
		udp(h, 5353, 53);
		cases[n++] = (HdrCase){"qinq", h, 1, TRUE, FALSE, 17, 5353, 53, FALSE, 0};
	}
	/* MPLS: two labels, bottom of stack on the second, then IPv4 */
	{
		static const guint16 t[] = {0x8847};
		h = g_byte_array_new();
		eth(h, t, 1);
		dg_u32(h, (16000u << 12) | 0x40);
		dg_u32(h, (17000u << 12) | 0x100 | 0x40);
		ipv4(h, 5, 6, 0, a_in, a_out, 40);
		tcp(h, 2222, 587, 0x02);
		cases[n++] = (HdrCase){"mpls", h, 1, TRUE, FALSE, 6, 2222, 587, TRUE, 0x02};
	}
	/* MPLS over IPv6 */
	{
		static const guint16 t[] = {0x8847};
		h = g_byte_array_new();
		eth(h, t, 1);
		dg_u32(h, (16000u << 12) | 0x100 | 0x40);
		ipv6(h, 6, a6_in, a6_out, 20);
		tcp(h, 3333, 25, 0x02);
		cases[n++] = (HdrCase){"mpls-v6", h, 1, TRUE, TRUE, 6, 3333, 25, TRUE, 0x02};
	}
	/* IPv4 with 8 bytes of options */
	{
		static const guint16 t[] = {0x0800};
		h = g_byte_array_new();
		eth(h, t, 1);
		ipv4(h, 7, 6, 0, a_in, a_out, 48);
		tcp(h, 4444, 25, 0x02);
		cases[n++] = (HdrCase){"ipv4-options", h, 1, TRUE, FALSE, 6, 4444, 25, TRUE, 0x02};
	}
	/* a non-first fragment: addresses and protocol, no ports (the bytes are payload) */
	{
		static const guint16 t[] = {0x0800};
		h = g_byte_array_new();
		eth(h, t, 1);
		ipv4(h, 5, 6, 185, a_in, a_out, 40);
		tcp(h, 5555, 25, 0x02);
		cases[n++] = (HdrCase){"ipv4-fragment", h, 1, TRUE, FALSE, 6, 0, 0, FALSE, 0};
	}
	/* IPv6: hop-by-hop (8 bytes), destination options (16), fragment (first), then TCP */
	{
		static const guint16 t[] = {0x86dd};
		h = g_byte_array_new();
		eth(h, t, 1);
		ipv6(h, 0, a6_in, a6_out, 52);
		dg_u8(h, 60), dg_u8(h, 0), dg_zeros(h, 6);
		dg_u8(h, 44), dg_u8(h, 1), dg_zeros(h, 14);
		dg_u8(h, 6), dg_u8(h, 0), dg_u16(h, 0x0001), dg_u32(h, 42); /* offset 0, M set */
		tcp(h, 6666, 25, 0x02);
		cases[n++] = (HdrCase){"ipv6-ext", h, 1, TRUE, TRUE, 6, 6666, 25, TRUE, 0x02};
	}
	/* IPv6 non-first fragment: no ports */
	{
		static const guint16 t[] = {0x86dd};
		h = g_byte_array_new();
		eth(h, t, 1);
		ipv6(h, 44, a6_in, a6_out, 28);
		dg_u8(h, 17), dg_u8(h, 0), dg_u16(h, 0x00b9 << 3), dg_u32(h, 42);
		udp(h, 7777, 53);
		cases[n++] = (HdrCase){"ipv6-fragment", h, 1, TRUE, TRUE, 17, 0, 0, FALSE, 0};
	}
	/* header protocol 11: the header starts at IPv4; cut inside TCP after the ports */
	{
		h = g_byte_array_new();
		ipv4(h, 5, 6, 0, a_in, a_out, 40);
		dg_u16(h, 8888), dg_u16(h, 25), dg_u32(h, 1);
		cases[n++] = (HdrCase){"ipv4-cut-tcp", h, 11, TRUE, FALSE, 6, 8888, 25, FALSE, 0};
	}
	/* header protocol 12: IPv6 then ICMPv6 (no ports) */
	{
		h = g_byte_array_new();
		ipv6(h, 58, a6_in, a6_out, 8);
		dg_u8(h, 128), dg_u8(h, 0), dg_u16(h, 0), dg_u32(h, 1);
		cases[n++] = (HdrCase){"ipv6-icmp", h, 12, TRUE, TRUE, 58, 0, 0, FALSE, 0};
	}
	/* 802.3 length + LLC/SNAP carrying IPv4 */
	{
		h = g_byte_array_new();
		dg_bytes(h, mac_dst, 6);
		dg_bytes(h, mac_src, 6);
		dg_u16(h, 48);
		dg_u8(h, 0xaa), dg_u8(h, 0xaa), dg_u8(h, 0x03), dg_zeros(h, 3), dg_u16(h, 0x0800);
		ipv4(h, 5, 17, 0, a_in, a_out, 28);
		udp(h, 123, 123);
		cases[n++] = (HdrCase){"llc-snap", h, 1, TRUE, FALSE, 17, 123, 123, FALSE, 0};
	}
	/* not IP: ARP; an unknown header protocol; IPv4 cut before its addresses end */
	{
		static const guint16 t[] = {0x0806};
		h = g_byte_array_new();
		eth(h, t, 1);
		dg_zeros(h, 28);
		cases[n++] = (HdrCase){.name = "arp", .hdr = h, .proto = 1};
		h = g_byte_array_new();
		eth(h, t, 1);
		cases[n++] = (HdrCase){.name = "token-ring", .hdr = h, .proto = 4};
		static const guint16 t4[] = {0x0800};
		h = g_byte_array_new();
		eth(h, t4, 1);
		ipv4(h, 5, 6, 0, a_in, a_out, 40);
		g_byte_array_set_size(h, h->len - 2);
		cases[n++] = (HdrCase){.name = "ipv4-cut-address", .hdr = h, .proto = 1};
	}
	/* MPLS whose stack never ends within the header */
	{
		static const guint16 t[] = {0x8848};
		h = g_byte_array_new();
		eth(h, t, 1);
		for (guint i = 0; i < 20; i++)
			dg_u32(h, (16000u + i) << 12);
		cases[n++] = (HdrCase){.name = "mpls-endless", .hdr = h, .proto = 1};
	}
	g_assert(n <= G_N_ELEMENTS(cases));
	for (guint i = 0; i < n; i++) {
		check_case(&cases[i]);
		g_byte_array_free(cases[i].hdr, TRUE);
	}
}

typedef struct {
	gboolean raw_arp; /* a raw header that is not IP, before the sampled record */
	gboolean v6;
} SampledRec;

static void
write_sampled(GByteArray *g, gpointer data)
{
	const SampledRec *r = data;
	if (r->raw_arp) {
		static const guint16 t[] = {0x0806};
		g_autoptr(GByteArray) h = g_byte_array_new();
		eth(h, t, 1);
		dg_zeros(h, 28);
		sf_raw_header(g, 1, 64, h);
	}
	if (r->v6)
		sf_sampled_ipv6(g, 1280, 6, a6_in, a6_out, 1234, 25, 0x0112);
	else
		sf_sampled_ipv4(g, 576, 6, a_in, a_out, 1234, 25, 0x0102);
}

/* A raw header, then a second raw header and a sampled IPv4 record that say otherwise. */
static void
write_raw_then_others(GByteArray *g, gpointer data)
{
	static const guint16 t[] = {0x0800};
	static const guint8 other[4] = {10, 9, 9, 9};
	g_autoptr(GByteArray) h2 = g_byte_array_new();
	(void)data;
	g_autoptr(GByteArray) h1 = hdr_syn();
	sf_raw_header(g, 1, 64, h1);
	eth(h2, t, 1);
	ipv4(h2, 5, 17, 0, other, other, 28);
	udp(h2, 1, 2);
	sf_raw_header(g, 1, 99, h2);
	sf_sampled_ipv4(g, 576, 17, other, other, 3, 4, 0);
}

/* Sampled IPv4/IPv6 records, alone or after a raw header that is not IP; expanded samples. */
static void
test_sflow_sampled_records(void **state)
{
	(void)state;
	GByteArray *g = g_byte_array_new();
	gsize cnt = sf_header(g, agent4, FALSE, 3, 1, UPTIME);
	SampleHdr sh = {.seq = 1, .source = 7, .rate = 100};
	SampleHdr xs = {.seq = 1, .source = 0x01000001u, .source_type = 0, .rate = 10,
			.expanded = TRUE};
	SampledRec r4 = {FALSE, FALSE}, r6 = {TRUE, TRUE};
	const Flow *f0;
	sf_flow_sample(g, &sh, 1, write_sampled, &r4);
	sf_flow_sample(g, &xs, 2, write_sampled, &r6);
	sf_counter_sample(g, FALSE, 1);
	sf_counter_sample(g, TRUE, 1);
	SampleHdr third = {.seq = 2, .source = 7, .rate = 100};
	sf_flow_sample(g, &third, 3, write_raw_then_others, NULL);
	sf_set_count(g, cnt, 5);

	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 3);
	/* the first usable record of a sample wins */
	f0 = harness_flow(h, 2);
	assert_addr_v4(f0->src, 10, 1, 2, 3);
	assert_int_equal(f0->sport, 40000);
	assert_int_equal(f0->bytes, 64);
	const Flow *f = harness_flow(h, 0);
	assert_addr_v4(f->src, 10, 1, 2, 3);
	assert_int_equal(f->sport, 1234);
	assert_int_equal(f->dport, 25);
	assert_int_equal(f->tcp_flags, 0x02); /* the low 8 bits of the record's flags */
	assert_int_equal(f->bytes, 576);
	assert_int_equal(f->sampling, 100);
	assert_int_equal(f->domain, 3);
	f = harness_flow(h, 1);
	assert_addr_v6(f->src, a6_in);
	assert_addr_v6(f->dst, a6_out);
	assert_int_equal(f->tcp_flags, 0x12);
	assert_int_equal(f->bytes, 1280);
	assert_int_equal(f->sampling, 10);
	const SessionStats *st = agent_stats(h, 3);
	assert_int_equal(st->counter_samples, 2);
	assert_int_equal(st->samples_not_ip, 0);
	assert_int_equal(malformed_total(st), 0);
	g_byte_array_free(g, TRUE);
	harness_free(h);
}

/* One agent from two UDP sources is one exporter; two agents from one source are two;
 * sub-agents are domains; an IPv6 agent; the allowlist judges the UDP source. */
static gboolean
allow_192_0_2_1(const guint8 addr[16], gpointer data)
{
	(void)data;
	static const guint8 ok[4] = {192, 0, 2, 1};
	return flow_addr_is_v4(addr) && memcmp(addr + 12, ok, 4) == 0;
}

static void
test_sflow_agents(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.allow = allow_192_0_2_1;
	Harness *h = harness_new(&cfg);
	static const guint8 agent6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
	static const guint8 agent_b[4] = {192, 0, 2, 78};
	RawRec rr = {hdr, 1, 64, FALSE};
	SampleHdr sh = {.seq = 1, .source = 7, .rate = 1};

	for (guint i = 0; i < 4; i++) {
		g_autoptr(GByteArray) g = g_byte_array_new();
		gsize cnt = i == 2   ? sf_header(g, agent6, TRUE, 0, 1, UPTIME)
			    : i == 3 ? sf_header(g, agent_b, FALSE, 0, 1, UPTIME)
				     : sf_header(g, agent4, FALSE, i, 1, UPTIME);
		sf_flow_sample(g, &sh, 1, write_raw, &rr);
		sf_set_count(g, cnt, 1);
		/* the first two from different UDP source ports: one agent all the same */
		assert_int_equal(harness_input_port(h, (guint16)(6000 + i), g->data, g->len, NOW),
				 1);
	}
	/* agent4 (domains 0, 1), agent6, agent_b: three exporters */
	guint32 e0 = harness_flow(h, 0)->exporter, e1 = harness_flow(h, 1)->exporter;
	guint32 e2 = harness_flow(h, 2)->exporter, e3 = harness_flow(h, 3)->exporter;
	assert_int_equal(e0, e1);
	assert_int_not_equal(e0, e2);
	assert_int_not_equal(e2, e3);
	assert_int_equal(harness_flow(h, 1)->domain, 1);
	guint8 addr[16];
	assert_true(collector_exporter_addr(h->c, e2, addr, NULL));
	assert_memory_equal(addr, agent6, 16);
	StatsQuery q = harness_sums(h);
	assert_int_equal(q.rows, 4);

	/* from another UDP source: refused before the agent is read, whatever it names */
	guint8 stranger[16];
	static const guint8 s4[4] = {203, 0, 113, 9};
	flow_addr_set_v4(stranger, s4);
	g_autoptr(GByteArray) g = one_sample(hdr, 1, 64, 1, 2);
	assert_int_equal(collector_input(h->c, stranger, 6343, g->data, g->len, NOW), 0);
	assert_int_equal(collector_totals(h->c)->exporters_denied, 1);
	harness_free(h);
}

/* Datagram loss per agent/sub-agent; flow sample loss per source; drops; restart. */
static void
test_sflow_sequences(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	Harness *h = harness_new(NULL);
	RawRec rr = {hdr, 1, 64, FALSE};
	/* datagram seq, uptime, and per sample: (source, seq, drops) */
	struct {
		guint32 dseq, uptime;
		guint32 src[2], seq[2], drops[2];
		guint n;
	} dg[] = {
	    {1, 1000, {7, 8}, {10, 50}, {0, 5}, 2},
	    {2, 2000, {7, 8}, {11, 51}, {0, 5}, 2},  /* no loss */
	    {5, 3000, {7, 8}, {15, 52}, {3, 9}, 2},  /* 2 datagrams; src 7: 3 samples; drops 3+4 */
	    {6, 4000, {8, 0}, {60, 0}, {2, 0}, 1},   /* src 8: 7 samples; drops went 9 -> 2: +2 */
	    {1, 10, {7, 0}, {1, 0}, {0, 0}, 1},      /* uptime backwards: a restart, no loss */
	    {2, 20, {7, 0}, {2, 0}, {0, 0}, 1},
	};
	for (guint i = 0; i < G_N_ELEMENTS(dg); i++) {
		g_autoptr(GByteArray) g = g_byte_array_new();
		gsize cnt = sf_header(g, agent4, FALSE, 0, dg[i].dseq, dg[i].uptime);
		for (guint j = 0; j < dg[i].n; j++) {
			SampleHdr sh = {.seq = dg[i].seq[j], .source = dg[i].src[j], .rate = 1,
					.drops = dg[i].drops[j]};
			sf_flow_sample(g, &sh, 1, write_raw, &rr);
		}
		sf_set_count(g, cnt, dg[i].n);
		harness_input(h, g, NOW + i);
	}
	const SessionStats *st = agent_stats(h, 0);
	assert_int_equal(st->seq_lost, 2);
	assert_int_equal(st->samples_lost, 3 + 7);
	assert_int_equal(st->sample_drops, 3 + 4 + 2);
	assert_int_equal(st->seq_resets, 1);
	assert_int_equal(st->records, 9);
	assert_int_equal(collector_totals(h->c)->sflow_sources, 1); /* cleared at the restart */
	harness_free(h);
}

/* max_sflow_sources: one more source is counted and not followed. */
static void
test_sflow_source_cap(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_sflow_sources = 2;
	Harness *h = harness_new(&cfg);
	RawRec rr = {hdr, 1, 64, FALSE};
	for (guint round = 0; round < 2; round++) {
		g_autoptr(GByteArray) g = g_byte_array_new();
		gsize cnt = sf_header(g, agent4, FALSE, 0, round + 1, UPTIME + round);
		for (guint s = 0; s < 3; s++) {
			/* the third source skips a sample between rounds: unseen, it is not loss */
			SampleHdr sh = {.seq = round * (s == 2 ? 5 : 1) + 1, .source = s, .rate = 1};
			sf_flow_sample(g, &sh, 1, write_raw, &rr);
		}
		sf_set_count(g, cnt, 3);
		assert_int_equal(harness_input(h, g, NOW), 3);
	}
	const CollectorTotals *t = collector_totals(h->c);
	assert_int_equal(t->sflow_sources, 2);
	assert_int_equal(t->sflow_sources_refused, 2);
	assert_int_equal(agent_stats(h, 0)->samples_lost, 0);
	/* expiry frees them */
	collector_expire(h->c, NOW + G_GINT64_CONSTANT(7200) * 1000);
	assert_int_equal(t->sflow_sources, 0);
	harness_free(h);
}

/* ---- hostile vectors ------------------------------------------------------------------ */

static GByteArray *
good_dgram(guint nsamples)
{
	g_autoptr(GByteArray) hdr = hdr_syn();
	GByteArray *g = g_byte_array_new();
	gsize cnt = sf_header(g, agent4, FALSE, 0, 1, UPTIME);
	RawRec rr = {hdr, 1, 64, TRUE};
	for (guint i = 0; i < nsamples; i++) {
		SampleHdr sh = {.seq = i + 1, .source = 7, .rate = 1};
		sf_flow_sample(g, &sh, 2, write_raw, &rr);
	}
	sf_set_count(g, cnt, nsamples);
	return g;
}

#define HDR_LEN 28          /* version .. num_samples with an IPv4 agent */
#define SAMPLE_FIXED 8      /* format, length */
#define FLOW_SAMPLE_BODY 32 /* seq .. record count (standard) */

static void
run_hostile(const GByteArray *g, guint want_flows, Malformed which, guint64 nmal)
{
	Harness *h = harness_new(NULL);
	guint8 *copy = g_memdup2(g->data, g->len); /* exact size: ASan sees any over-read */
	assert_int_equal(harness_input_port(h, HARNESS_PORT, copy, g->len, NOW), want_flows);
	g_free(copy);
	const SessionStats *st = agent_stats(h, 0);
	assert_non_null(st);
	if (nmal == 0)
		assert_int_equal(malformed_total(st), 0);
	else
		assert_malformed_only(st, which, nmal);
	harness_free(h);
}

static void
test_sflow_hostile(void **state)
{
	(void)state;
	/* the sample count lies: 3 said, 2 there; 1 said, 2 there (trailing bytes) */
	{
		g_autoptr(GByteArray) g = good_dgram(2);
		put_u32_at(g, HDR_LEN - 4, 3);
		run_hostile(g, 2, MAL_LENGTH, 1);
		put_u32_at(g, HDR_LEN - 4, 1);
		run_hostile(g, 1, MAL_LENGTH, 1);
		put_u32_at(g, HDR_LEN - 4, 0xffffffffu);
		run_hostile(g, 2, MAL_LENGTH, 1);
	}
	/* the second sample's length runs past the datagram */
	{
		g_autoptr(GByteArray) g = good_dgram(2);
		gsize second = HDR_LEN + (g->len - HDR_LEN) / 2;
		put_u32_at(g, second + 4, 0x7ffffff0u);
		run_hostile(g, 1, MAL_SET_LENGTH, 1);
		put_u32_at(g, second + 4, (guint32)(g->len - second - 8 + 1));
		run_hostile(g, 1, MAL_SET_LENGTH, 1);
	}
	/* a record length past its sample: that sample is malformed, the next still decodes */
	{
		g_autoptr(GByteArray) g = good_dgram(2);
		gsize rec = HDR_LEN + SAMPLE_FIXED + FLOW_SAMPLE_BODY; /* extended switch record */
		put_u32_at(g, rec + 4, 1000);
		run_hostile(g, 1, MAL_SAMPLE, 1);
		/* a record count beyond what the sample can hold */
		g_autoptr(GByteArray) c = good_dgram(2);
		put_u32_at(c, rec - 4, 0x40000000u);
		run_hostile(c, 1, MAL_SAMPLE, 1);
		put_u32_at(c, rec - 4, 3); /* 3 records said, 2 there */
		run_hostile(c, 1, MAL_SAMPLE, 1);
	}
	/* a header record longer than its record (header length past the record's end) */
	{
		g_autoptr(GByteArray) g = good_dgram(2);
		gsize raw = HDR_LEN + SAMPLE_FIXED + FLOW_SAMPLE_BODY + 8 + 16; /* after switch */
		put_u32_at(g, raw + 8 + 12, 200);
		run_hostile(g, 1, MAL_SAMPLE, 1);
		put_u32_at(g, raw + 8 + 12, 0xffffffffu);
		run_hostile(g, 1, MAL_SAMPLE, 1);
	}
	/* zero-length records: a known format that needs its fields is malformed; an
	 * unknown one is skipped */
	{
		GByteArray *g = g_byte_array_new();
		gsize cnt = sf_header(g, agent4, FALSE, 0, 1, UPTIME);
		gsize len_off, nrec_off;
		SampleHdr sh = {.seq = 1, .source = 7, .rate = 1};
		sf_flow_sample_begin(g, &sh, &len_off, &nrec_off);
		dg_u32(g, 1), dg_u32(g, 0); /* raw header, length 0 */
		put_u32_at(g, nrec_off, 1);
		sf_close(g, len_off);
		sf_flow_sample_begin(g, &sh, &len_off, &nrec_off);
		dg_u32(g, 1002), dg_u32(g, 0); /* extended router, length 0: fine */
		put_u32_at(g, nrec_off, 1);
		sf_close(g, len_off);
		sf_set_count(g, cnt, 2);
		run_hostile(g, 0, MAL_SAMPLE, 1);
		Harness *h = harness_new(NULL);
		harness_input(h, g, NOW);
		assert_int_equal(agent_stats(h, 0)->samples_not_ip, 1);
		harness_free(h);
		g_byte_array_free(g, TRUE);
	}
	/* zero-length samples: a flow sample is malformed, an unknown format is skipped */
	{
		GByteArray *g = g_byte_array_new();
		gsize cnt = sf_header(g, agent4, FALSE, 0, 1, UPTIME);
		dg_u32(g, 1), dg_u32(g, 0);
		dg_u32(g, (4300u << 12) | 1), dg_u32(g, 0); /* another enterprise */
		dg_u32(g, 2), dg_u32(g, 0);                 /* counters: counted, not read */
		sf_set_count(g, cnt, 3);
		run_hostile(g, 0, MAL_SAMPLE, 1);
		Harness *h = harness_new(NULL);
		harness_input(h, g, NOW);
		assert_int_equal(agent_stats(h, 0)->sets_skipped, 1);
		assert_int_equal(agent_stats(h, 0)->counter_samples, 1);
		harness_free(h);
		g_byte_array_free(g, TRUE);
	}
	/* the header: unknown agent address type, and cut before the sample count */
	{
		g_autoptr(GByteArray) g = good_dgram(1);
		put_u32_at(g, 4, 3);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		assert_int_equal(collector_totals(h->c)->sflow_no_agent, 1);
		assert_int_equal(harness_sums(h).rows, 0);
		harness_free(h);
		g_autoptr(GByteArray) s = good_dgram(1);
		g_byte_array_set_size(s, HDR_LEN - 2);
		run_hostile(s, 0, MAL_SHORT_HEADER, 1);
	}
}

/* Every prefix of a datagram with several kinds of sample. */
static void
sweep_check(const SweepResult *r, gpointer user_data)
{
	gsize full = *(const gsize *)user_data;
	const CollectorTotals *t = collector_totals(r->h->c);
	StatsQuery q = harness_sums(r->h);
	if (r->prefix < 4) {
		assert_int_equal(t->bad_version, 1);
		return;
	}
	if (r->prefix < 12) {
		assert_int_equal(t->sflow_no_agent, 1);
		return;
	}
	assert_int_equal(q.datagrams, 1);
	assert_true(r->prefix < full);
	/* a cut datagram is always counted as malformed, never silently shorter */
	const SessionStats *st = agent_stats(r->h, 0);
	if (st == NULL) {
		/* cut inside the sub-agent ID: the agent's header row */
		StatsQuery hq = {.port = 0, .has_domain = FALSE};
		collector_foreach_session(r->h->c, harness_stats_cb, &hq);
		assert_non_null(hq.found);
		assert_int_equal(hq.found->malformed[MAL_SHORT_HEADER], 1);
		return;
	}
	assert_true(malformed_total(st) >= 1);
	assert_true(r->records < r->full_records);
}

static void
test_sflow_truncation_sweep(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	GByteArray *g = g_byte_array_new();
	gsize cnt = sf_header(g, agent4, FALSE, 0, 1, UPTIME);
	RawRec rr = {hdr, 1, 64, TRUE};
	SampleHdr a = {.seq = 1, .source = 7, .rate = 1};
	SampleHdr x = {.seq = 1, .source = 9, .rate = 1, .expanded = TRUE};
	SampledRec r4 = {FALSE, FALSE};
	sf_flow_sample(g, &a, 2, write_raw, &rr);
	sf_counter_sample(g, FALSE, 3);
	sf_flow_sample(g, &x, 1, write_sampled, &r4);
	sf_set_count(g, cnt, 3);
	gsize full = g->len;
	sweep_prefixes(NULL, g, NULL, sweep_check, &full);
	g_byte_array_free(g, TRUE);
}

/* Seeded random bytes after a valid sFlow header, and random corruptions of a valid
 * datagram: never a crash (ASan), never more flows than samples could hold. */
static void
test_sflow_random(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	GRand *rng = g_rand_new_with_seed(12);
	guint8 *buf = g_malloc(65535);
	g_autoptr(GByteArray) good = good_dgram(6);
	guint rounds = 3000;

	for (guint r = 0; r < rounds; r++) {
		gsize len;
		if (r % 2 == 0) {
			/* 64 KiB (or a random prefix) of random bytes behind a valid header */
			len = r == 0 ? 65535 : (gsize)g_rand_int_range(rng, 0, 65536);
			for (gsize i = 0; i < len; i++)
				buf[i] = (guint8)g_rand_int_range(rng, 0, 256);
			memcpy(buf, good->data, MIN(len, (gsize)HDR_LEN));
			if (len >= HDR_LEN && (r & 2)) {
				/* a small sample count, so the walk runs into the random bytes */
				guint32 c = GUINT32_TO_BE((guint32)g_rand_int_range(rng, 0, 64));
				memcpy(buf + HDR_LEN - 4, &c, 4);
			}
		} else {
			/* a valid datagram with a few random bytes changed */
			len = good->len;
			memcpy(buf, good->data, len);
			for (guint k = 0; k < 4; k++)
				buf[g_rand_int_range(rng, 4, (gint32)len)] =
				    (guint8)g_rand_int_range(rng, 0, 256);
		}
		guint before = h->flows->len;
		guint8 *copy = g_memdup2(buf, len);
		guint n = harness_input_port(h, HARNESS_PORT, copy, len, NOW + r);
		g_free(copy);
		assert_int_equal(h->flows->len - before, n);
		assert_true(n <= len / (SAMPLE_FIXED + FLOW_SAMPLE_BODY));
	}
	for (guint i = 0; i < h->flows->len; i++) {
		const Flow *f = harness_flow(h, i);
		assert_int_equal(f->version, FLOW_VERSION_SFLOW5);
		assert_true(f->sampling >= 1);
		assert_int_equal(f->packets, 1);
	}
	const CollectorTotals *t = collector_totals(h->c);
	StatsQuery q = harness_sums(h);
	assert_int_equal(t->datagrams, rounds);
	assert_int_equal(q.datagrams + t->bad_version + t->sflow_no_agent, rounds);
	assert_int_equal(q.records, h->flows->len);
	g_free(buf);
	g_rand_free(rng);
	harness_free(h);
}

/* Restart without loss: agents come back as agents, with their per-source sequences. */
static void
test_sflow_state(void **state)
{
	(void)state;
	g_autoptr(GByteArray) hdr = hdr_syn();
	Harness *h = harness_new(NULL);
	g_autoptr(GByteArray) a = one_sample(hdr, 1, 64, 1, 1);
	harness_input(h, a, NOW);
	g_autoptr(GByteArray) blob = g_byte_array_new();
	collector_state_save(h->c, blob);

	Harness *h2 = harness_new(NULL);
	CollectorStateLoad res;
	g_autoptr(GError) err = NULL;
	assert_true(collector_state_load(h2->c, blob->data, blob->len, &res, &err));
	assert_int_equal(res.exporters, 1);
	assert_int_equal(res.domains, 1);
	assert_int_equal(collector_totals(h2->c)->sflow_sources, 1);
	/* datagram 3 with sample 3: one datagram and one sample lost since the save */
	g_autoptr(GByteArray) b = one_sample(hdr, 1, 64, 1, 3);
	assert_int_equal(harness_input(h2, b, NOW + 1000), 1);
	const SessionStats *st = agent_stats(h2, 0);
	assert_int_equal(st->seq_lost, 1);
	assert_int_equal(st->samples_lost, 1);
	assert_true(collector_exporter_is_agent(h2->c, harness_flow(h2, 0)->exporter));
	/* the same bytes again from the restored state */
	g_autoptr(GByteArray) blob2 = g_byte_array_new();
	Harness *h3 = harness_new(NULL);
	assert_true(collector_state_load(h3->c, blob->data, blob->len, &res, &err));
	collector_state_save(h3->c, blob2);
	assert_int_equal(blob2->len, blob->len);
	assert_memory_equal(blob2->data, blob->data, blob->len);
	harness_free(h3);
	harness_free(h2);
	harness_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sflow_fields),
	    cmocka_unit_test(test_sflow_sampling_per_sample),
	    cmocka_unit_test(test_sflow_packet_kinds),
	    cmocka_unit_test(test_sflow_sampled_records),
	    cmocka_unit_test(test_sflow_agents),
	    cmocka_unit_test(test_sflow_sequences),
	    cmocka_unit_test(test_sflow_source_cap),
	    cmocka_unit_test(test_sflow_hostile),
	    cmocka_unit_test(test_sflow_truncation_sweep),
	    cmocka_unit_test(test_sflow_random),
	    cmocka_unit_test(test_sflow_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
