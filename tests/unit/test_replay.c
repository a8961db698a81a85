/* Unit tests for the pcap/pcapng replay reader: captures are written by the test itself
 * (pcap_open_dead + pcap_dump, and one pcapng by hand) for every supported link type, then
 * read back; the pure packet parser also gets a truncation sweep and hostile headers. */
#include "replay.h"

#include "flow.h"

#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define TS_SEC 1700000000

static const guint8 V4_SRC[4] = {192, 0, 2, 1};
static const guint8 V4_DST[4] = {198, 51, 100, 7};
static const guint8 V6_SRC[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const guint8 V6_DST[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* ---- packet builders ---- */

static void
put8(GByteArray *b, guint8 v)
{
	g_byte_array_append(b, &v, 1);
}

static void
put16(GByteArray *b, guint16 v)
{
	guint8 x[2] = {(guint8)(v >> 8), (guint8)v};
	g_byte_array_append(b, x, 2);
}

static void
put32(GByteArray *b, guint32 v)
{
	guint8 x[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	g_byte_array_append(b, x, 4);
}

static void
put(GByteArray *b, const void *p, gsize n)
{
	g_byte_array_append(b, p, (guint)n);
}

static GByteArray *
udp(guint16 sport, guint16 dport, const char *payload)
{
	GByteArray *b = g_byte_array_new();
	gsize n = strlen(payload);

	put16(b, sport);
	put16(b, dport);
	put16(b, (guint16)(8 + n));
	put16(b, 0);
	put(b, payload, n);
	return b;
}

/* IPv4 header (opt_words 32-bit words of NOP options) + l4; frees l4. total 0 = computed. */
static GByteArray *
ipv4(guint8 proto, guint16 frag, guint opt_words, GByteArray *l4, guint16 total)
{
	GByteArray *b = g_byte_array_new();
	guint ihl = 5 + opt_words;

	put8(b, (guint8)(0x40 | ihl));
	put8(b, 0);
	put16(b, total != 0 ? total : (guint16)(ihl * 4 + l4->len));
	put16(b, 0x1234);
	put16(b, frag);
	put8(b, 64);
	put8(b, proto);
	put16(b, 0);
	put(b, V4_SRC, 4);
	put(b, V4_DST, 4);
	for (guint i = 0; i < opt_words * 4; i++)
		put8(b, 1); /* NOP */
	put(b, l4->data, l4->len);
	g_byte_array_unref(l4);
	return b;
}

/* IPv6 header + rest (extension headers and upper layer); frees rest. */
static GByteArray *
ipv6(guint8 nxt, GByteArray *rest)
{
	GByteArray *b = g_byte_array_new();

	put32(b, 0x60000000);
	put16(b, (guint16)rest->len);
	put8(b, nxt);
	put8(b, 64);
	put(b, V6_SRC, 16);
	put(b, V6_DST, 16);
	put(b, rest->data, rest->len);
	g_byte_array_unref(rest);
	return b;
}

/* An 8-byte extension header (hop-by-hop, routing, destination options) before rest. */
static GByteArray *
ext8(guint8 next, GByteArray *rest)
{
	GByteArray *b = g_byte_array_new();

	put8(b, next);
	put8(b, 0); /* (0 + 1) * 8 bytes */
	put8(b, 1); /* PadN option filling the rest */
	put8(b, 4);
	put32(b, 0);
	put(b, rest->data, rest->len);
	g_byte_array_unref(rest);
	return b;
}

static GByteArray *
frag6(guint8 next, guint16 offset_units, gboolean more, GByteArray *rest)
{
	GByteArray *b = g_byte_array_new();

	put8(b, next);
	put8(b, 0);
	put16(b, (guint16)((offset_units << 3) | (more ? 1 : 0)));
	put32(b, 0xabcdef);
	put(b, rest->data, rest->len);
	g_byte_array_unref(rest);
	return b;
}

/* Ethernet with n_tags VLAN tags (802.1ad outer, 802.1Q inner); frees l3. */
static GByteArray *
eth(guint n_tags, guint16 type, GByteArray *l3)
{
	static const guint8 macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
	GByteArray *b = g_byte_array_new();

	put(b, macs, 12);
	for (guint i = 0; i < n_tags; i++) {
		put16(b, i == 0 && n_tags > 1 ? 0x88a8 : 0x8100);
		put16(b, (guint16)(100 + i));
	}
	put16(b, type);
	put(b, l3->data, l3->len);
	g_byte_array_unref(l3);
	/* Ethernet minimum frame: padding after the IP packet must be ignored. */
	while (b->len < 60)
		put8(b, 0xee);
	return b;
}

static GByteArray *
sll(guint16 type, GByteArray *l3)
{
	GByteArray *b = g_byte_array_new();

	put16(b, 0); /* packet type: to us */
	put16(b, 1); /* ARPHRD_ETHER */
	put16(b, 6); /* address length */
	put32(b, 0x02000000);
	put32(b, 0x00010000);
	put16(b, type);
	put(b, l3->data, l3->len);
	g_byte_array_unref(l3);
	return b;
}

static GByteArray *
sll2(guint16 type, GByteArray *l3)
{
	GByteArray *b = g_byte_array_new();

	put16(b, type);
	put16(b, 0);
	put32(b, 2); /* ifindex */
	put16(b, 1); /* ARPHRD_ETHER */
	put8(b, 0);
	put8(b, 6);
	put32(b, 0x02000000);
	put32(b, 0x00010000);
	put(b, l3->data, l3->len);
	g_byte_array_unref(l3);
	return b;
}

/* BSD loopback: family in host order (little-endian writer) or swapped (big-endian). */
static GByteArray *
null_hdr(guint32 af, gboolean big_endian, GByteArray *l3)
{
	GByteArray *b = g_byte_array_new();
	guint32 v = big_endian ? GUINT32_TO_BE(af) : GUINT32_TO_LE(af);

	put(b, &v, 4);
	put(b, l3->data, l3->len);
	g_byte_array_unref(l3);
	return b;
}

/* ---- capture files ---- */

typedef struct {
	char *dir;
} Fixture;

static int
setup(void **state)
{
	Fixture *f = g_new0(Fixture, 1);
	f->dir = g_dir_make_tmp("test_replay-XXXXXX", NULL);
	assert_non_null(f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	Fixture *f = *state;
	g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
	const char *name;

	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(f->dir, name, NULL);
		unlink(p);
	}
	rmdir(f->dir);
	g_free(f->dir);
	g_free(f);
	return 0;
}

/* Packet i gets time TS_SEC + i seconds and i ms (+ 500 us). caplens[i] != 0 cuts it. */
static char *
write_pcap(Fixture *f, const char *name, int dlt, GByteArray **pkts, const guint *caplens, guint n)
{
	char *path = g_build_filename(f->dir, name, NULL);
	pcap_t *p = pcap_open_dead_with_tstamp_precision(dlt, 65535, PCAP_TSTAMP_PRECISION_MICRO);
	pcap_dumper_t *d = pcap_dump_open(p, path);

	assert_non_null(d);
	for (guint i = 0; i < n; i++) {
		struct pcap_pkthdr h = {0};
		h.ts.tv_sec = TS_SEC + i;
		h.ts.tv_usec = (suseconds_t)(i * 1000 + 500);
		h.len = pkts[i]->len;
		h.caplen = caplens != NULL && caplens[i] != 0 ? caplens[i] : pkts[i]->len;
		pcap_dump((u_char *)d, &h, pkts[i]->data);
		g_byte_array_unref(pkts[i]);
	}
	pcap_dump_close(d);
	pcap_close(p);
	return path;
}

static void
assert_v4_datagram(const ReplayDatagram *d, const char *payload, guint i)
{
	guint8 want[16];

	flow_addr_set_v4(want, V4_SRC);
	assert_memory_equal(d->addr, want, 16);
	flow_addr_set_v4(want, V4_DST);
	assert_memory_equal(d->dst_addr, want, 16);
	assert_int_equal(d->port, 9995);
	assert_int_equal(d->dst_port, 2055);
	assert_int_equal(d->len, strlen(payload));
	assert_memory_equal(d->payload, payload, d->len);
	assert_int_equal(d->ts_ms, ((gint64)TS_SEC + i) * 1000 + i);
}

static void
assert_v6_datagram(const ReplayDatagram *d, const char *payload, guint i)
{
	assert_memory_equal(d->addr, V6_SRC, 16);
	assert_memory_equal(d->dst_addr, V6_DST, 16);
	assert_int_equal(d->port, 9995);
	assert_int_equal(d->dst_port, 4739);
	assert_int_equal(d->len, strlen(payload));
	assert_memory_equal(d->payload, payload, d->len);
	assert_int_equal(d->ts_ms, ((gint64)TS_SEC + i) * 1000 + i);
}

static Replay *
open_ok(const char *path)
{
	g_autoptr(GError) err = NULL;
	Replay *r = replay_open(path, &err);
	if (r == NULL)
		fail_msg("replay_open: %s", err->message);
	return r;
}

static void
next_ok(Replay *r, ReplayDatagram *d)
{
	g_autoptr(GError) err = NULL;
	if (!replay_next(r, d, &err))
		fail_msg("replay_next: %s", err != NULL ? err->message : "end of capture");
}

static void
assert_end(Replay *r)
{
	g_autoptr(GError) err = NULL;
	ReplayDatagram d;
	assert_false(replay_next(r, &d, &err));
	assert_null(err);
}

static void
test_ethernet_vlan(void **state)
{
	GByteArray *pkts[] = {
	    eth(0, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "plain"), 0)),
	    eth(1, 0x0800, ipv4(17, 0x4000 /* DF */, 2, udp(9995, 2055, "dot1q+opts"), 0)),
	    eth(2, 0x86dd, ipv6(17, udp(9995, 4739, "qinq v6"))),
	    eth(1, 0x0806, g_byte_array_new()), /* ARP */
	};
	g_autofree char *path = write_pcap(*state, "eth.pcap", DLT_EN10MB, pkts, NULL, 4);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	assert_int_equal(replay_linktype(r), DLT_EN10MB);
	next_ok(r, &d);
	assert_v4_datagram(&d, "plain", 0);
	next_ok(r, &d);
	assert_v4_datagram(&d, "dot1q+opts", 1);
	next_ok(r, &d);
	assert_v6_datagram(&d, "qinq v6", 2);
	assert_end(r);
	const ReplayStats *s = replay_stats(r);
	assert_int_equal(s->packets, 4);
	assert_int_equal(s->datagrams, 3);
	assert_int_equal(s->not_ip, 1);
}

static void
test_sll(void **state)
{
	/* IPv6 through hop-by-hop, routing and destination options headers. */
	GByteArray *pkts[] = {
	    sll(0x86dd, ipv6(0, ext8(43, ext8(60, ext8(17, udp(9995, 4739, "ext hdrs")))))),
	    sll(0x0800, ipv4(17, 0, 0, udp(9995, 2055, "sll v4"), 0)),
	};
	g_autofree char *path = write_pcap(*state, "sll.pcap", DLT_LINUX_SLL, pkts, NULL, 2);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	next_ok(r, &d);
	assert_v6_datagram(&d, "ext hdrs", 0);
	next_ok(r, &d);
	assert_v4_datagram(&d, "sll v4", 1);
	assert_end(r);
}

static void
test_sll2(void **state)
{
	GByteArray *pkts[] = {
	    sll2(0x0800, ipv4(17, 0, 0, udp(9995, 2055, "sll2 v4"), 0)),
	    sll2(0x86dd, ipv6(17, udp(9995, 4739, "sll2 v6"))),
	};
	g_autofree char *path = write_pcap(*state, "sll2.pcap", DLT_LINUX_SLL2, pkts, NULL, 2);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	next_ok(r, &d);
	assert_v4_datagram(&d, "sll2 v4", 0);
	next_ok(r, &d);
	assert_v6_datagram(&d, "sll2 v6", 1);
	assert_end(r);
}

static void
test_raw(void **state)
{
	static const int dlts[] = {DLT_RAW, DLT_IPV4, DLT_IPV6};

	for (guint k = 0; k < G_N_ELEMENTS(dlts); k++) {
		GByteArray *pkts[] = {
		    ipv4(17, 0, 0, udp(9995, 2055, "raw v4"), 0),
		    ipv6(17, udp(9995, 4739, "raw v6")),
		};
		g_autofree char *name = g_strdup_printf("raw%d.pcap", dlts[k]);
		g_autofree char *path = write_pcap(*state, name, dlts[k], pkts, NULL, 2);
		g_autoptr(Replay) r = open_ok(path);
		ReplayDatagram d;

		next_ok(r, &d);
		assert_v4_datagram(&d, "raw v4", 0);
		next_ok(r, &d);
		assert_v6_datagram(&d, "raw v6", 1);
		assert_end(r);
	}
}

static void
test_null(void **state)
{
	GByteArray *pkts[] = {
	    null_hdr(2, FALSE, ipv4(17, 0, 0, udp(9995, 2055, "lo v4"), 0)),
	    null_hdr(30, TRUE, ipv6(17, udp(9995, 4739, "darwin v6 be"))),
	    null_hdr(28, FALSE, ipv6(17, udp(9995, 4739, "freebsd v6"))),
	    null_hdr(24, FALSE, ipv6(17, udp(9995, 4739, "openbsd v6"))),
	    null_hdr(7, FALSE, ipv4(17, 0, 0, udp(9995, 2055, "af 7"), 0)),
	};
	g_autofree char *path = write_pcap(*state, "null.pcap", DLT_NULL, pkts, NULL, 5);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	next_ok(r, &d);
	assert_v4_datagram(&d, "lo v4", 0);
	next_ok(r, &d);
	assert_v6_datagram(&d, "darwin v6 be", 1);
	next_ok(r, &d);
	assert_v6_datagram(&d, "freebsd v6", 2);
	next_ok(r, &d);
	assert_v6_datagram(&d, "openbsd v6", 3);
	assert_end(r);
	assert_int_equal(replay_stats(r)->not_ip, 1);
}

static void
test_fragments(void **state)
{
	GByteArray *pkts[] = {
	    /* first fragment (MF), later fragment (offset), IPv6 fragments */
	    ipv4(17, 0x2000, 0, udp(9995, 2055, "first"), 0),
	    ipv4(17, 0x0010, 0, udp(9995, 2055, "later"), 0),
	    ipv6(44, frag6(17, 0, TRUE, udp(9995, 4739, "v6 first"))),
	    ipv6(0, ext8(44, frag6(17, 5, FALSE, udp(9995, 4739, "v6 last")))),
	    /* RFC 6946 atomic fragment: a whole datagram */
	    ipv6(44, frag6(17, 0, FALSE, udp(9995, 4739, "atomic"))),
	};
	g_autofree char *path = write_pcap(*state, "frag.pcap", DLT_RAW, pkts, NULL, 5);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	next_ok(r, &d);
	assert_v6_datagram(&d, "atomic", 4);
	assert_end(r);
	assert_int_equal(replay_stats(r)->fragments, 4);
	assert_int_equal(replay_stats(r)->datagrams, 1);
}

static void
test_truncated(void **state)
{
	GByteArray *pkts[] = {
	    /* snaplen cut inside the UDP payload, v4 and v6 */
	    eth(0, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "a payload longer than the cut"), 0)),
	    eth(0, 0x86dd, ipv6(17, udp(9995, 4739, "a payload longer than the cut"))),
	    /* cut inside the Ethernet header */
	    eth(0, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "x"), 0)),
	    /* a whole one after them */
	    eth(0, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "whole"), 0)),
	};
	const guint caps[] = {14 + 20 + 8 + 4, 14 + 40 + 8 + 4, 10, 0};
	g_autofree char *path = write_pcap(*state, "trunc.pcap", DLT_EN10MB, pkts, caps, 4);
	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;

	next_ok(r, &d);
	assert_v4_datagram(&d, "whole", 3);
	assert_end(r);
	assert_int_equal(replay_stats(r)->truncated, 3);
}

static void
test_non_udp(void **state)
{
	GByteArray *tcp = g_byte_array_new();
	GByteArray *icmp6 = g_byte_array_new();
	g_byte_array_set_size(tcp, 20);
	memset(tcp->data, 0, 20);
	g_byte_array_set_size(icmp6, 8);
	memset(icmp6->data, 0, 8);
	GByteArray *pkts[] = {
	    ipv4(6, 0, 0, tcp, 0), ipv6(0, ext8(58, icmp6)),
	    ipv6(59, g_byte_array_new()), /* no next header */
	};
	g_autofree char *path = write_pcap(*state, "nonudp.pcap", DLT_RAW, pkts, NULL, 3);
	g_autoptr(Replay) r = open_ok(path);

	assert_end(r);
	assert_int_equal(replay_stats(r)->packets, 3);
	assert_int_equal(replay_stats(r)->non_udp, 3);
}

static void
test_bad_headers(void **state)
{
	(void)state;
	ReplayDatagram d;
	g_autoptr(GByteArray) p = NULL;

	/* UDP length larger than the IP payload (both fully captured) */
	p = ipv4(17, 0, 0, udp(9995, 2055, "abcdef"), 0);
	p->data[20 + 5] = 200;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* UDP length below its own header */
	p->data[20 + 5] = 7;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* IHL 4 */
	p->data[20 + 5] = 14;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_OK);
	p->data[0] = 0x44;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* total length below the header length */
	p->data[0] = 0x45;
	p->data[2] = 0;
	p->data[3] = 19;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* total length past the capture: truncated */
	p->data[3] = 200;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_TRUNCATED);
	/* total length 0 (segmentation offload): the capture length is used */
	p->data[3] = 0;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_OK);
	assert_int_equal(d.len, 6);
	/* IPv4 header behind an IPv6 EtherType */
	g_byte_array_unref(g_steal_pointer(&p));
	p = eth(0, 0x86dd, ipv4(17, 0, 0, udp(9995, 2055, "x"), 0));
	assert_int_equal(replay_parse_packet(DLT_EN10MB, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* an extension header longer than the IPv6 payload length */
	g_byte_array_unref(g_steal_pointer(&p));
	p = ipv6(0, ext8(17, udp(9995, 4739, "x")));
	p->data[40 + 1] = 10;
	assert_int_equal(replay_parse_packet(DLT_RAW, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* too many VLAN tags */
	g_byte_array_unref(g_steal_pointer(&p));
	p = eth(9, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "x"), 0));
	assert_int_equal(replay_parse_packet(DLT_EN10MB, p->data, p->len, &d), REPLAY_BAD_HEADER);
	/* an unknown link type */
	assert_int_equal(replay_parse_packet(105, p->data, p->len, &d), REPLAY_BAD_LINKTYPE);
	assert_int_equal(replay_parse_packet(DLT_RAW, NULL, 0, &d), REPLAY_TRUNCATED);
}

/* Every prefix of a valid packet: never read out of bounds (ASan), never OK but the whole. */
static void
test_truncation_sweep(void **state)
{
	(void)state;
	struct {
		int dlt;
		GByteArray *p;
		gsize min_ok; /* shortest prefix that still holds the whole datagram */
	} cases[] = {
	    {DLT_EN10MB, eth(2, 0x0800, ipv4(17, 0, 1, udp(9995, 2055, "sweep"), 0)), 0},
	    {DLT_LINUX_SLL, sll(0x86dd, ipv6(0, ext8(17, udp(9995, 4739, "sweep")))), 0},
	    {DLT_LINUX_SLL2, sll2(0x0800, ipv4(17, 0, 0, udp(9995, 2055, "sweep"), 0)), 0},
	    {DLT_NULL, null_hdr(2, FALSE, ipv4(17, 0, 0, udp(9995, 2055, "sweep"), 0)), 0},
	};

	for (guint k = 0; k < G_N_ELEMENTS(cases); k++) {
		GByteArray *p = cases[k].p;
		gsize whole = p->len;
		/* Ethernet padding is not part of the datagram */
		if (cases[k].dlt == DLT_EN10MB)
			whole = 14 + 8 + 24 + 8 + 5;
		for (gsize n = 0; n <= p->len; n++) {
			/* a copy of exactly n bytes, so ASan sees any read past it */
			g_autofree guint8 *copy = g_memdup2(p->data, n);
			ReplayDatagram d;
			ReplayResult res = replay_parse_packet(cases[k].dlt, copy, n, &d);
			if (n < whole) {
				assert_int_equal(res, REPLAY_TRUNCATED);
			} else {
				assert_int_equal(res, REPLAY_OK);
				assert_int_equal(d.len, 5);
				assert_memory_equal(d.payload, "sweep", 5);
			}
		}
		g_byte_array_unref(p);
	}
}

static void
test_unsupported_linktype(void **state)
{
	GByteArray *pkts[] = {ipv4(17, 0, 0, udp(9995, 2055, "x"), 0)};
	g_autofree char *path =
	    write_pcap(*state, "wifi.pcap", 105 /* IEEE 802.11 */, pkts, NULL, 1);
	g_autoptr(GError) err = NULL;
	g_autoptr(Replay) r = replay_open(path, &err);

	assert_null(r);
	assert_true(g_error_matches(err, REPLAY_ERROR, REPLAY_ERROR_LINKTYPE));
	assert_non_null(strstr(err->message, "unsupported link type"));
	assert_non_null(strstr(err->message, path));
}

static void
test_open_errors(void **state)
{
	Fixture *f = *state;
	g_autofree char *missing = g_build_filename(f->dir, "missing.pcap", NULL);
	g_autofree char *junk = g_build_filename(f->dir, "junk.pcap", NULL);
	g_autoptr(GError) err = NULL;
	g_autoptr(Replay) r = replay_open(missing, &err);

	assert_null(r);
	assert_true(g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT));
	assert_non_null(strstr(err->message, missing));
	g_clear_error(&err);

	assert_true(g_file_set_contents(junk, "this is not a capture file", -1, NULL));
	r = replay_open(junk, &err);
	assert_null(r);
	assert_true(g_error_matches(err, REPLAY_ERROR, REPLAY_ERROR_OPEN));
	assert_non_null(strstr(err->message, junk));
}

/* A capture cut off in the middle of a record: the datagrams before it, then an error. */
static void
test_cut_file(void **state)
{
	GByteArray *pkts[] = {
	    ipv4(17, 0, 0, udp(9995, 2055, "first"), 0),
	    ipv4(17, 0, 0, udp(9995, 2055, "second"), 0),
	};
	g_autofree char *path = write_pcap(*state, "cut.pcap", DLT_RAW, pkts, NULL, 2);
	g_autofree char *data = NULL;
	gsize len;

	assert_true(g_file_get_contents(path, &data, &len, NULL));
	assert_true(g_file_set_contents(path, data, (gssize)len - 5, NULL));

	g_autoptr(Replay) r = open_ok(path);
	g_autoptr(GError) err = NULL;
	ReplayDatagram d;
	next_ok(r, &d);
	assert_v4_datagram(&d, "first", 0);
	assert_false(replay_next(r, &d, &err));
	assert_true(g_error_matches(err, REPLAY_ERROR, REPLAY_ERROR_READ));
	assert_int_equal(replay_stats(r)->read_errors, 1);
	g_clear_error(&err);
	assert_false(replay_next(r, &d, &err));
	assert_null(err);
}

static void
put_le32(GByteArray *b, guint32 v)
{
	guint32 le = GUINT32_TO_LE(v);
	put(b, &le, 4);
}

/* pcapng written by hand (libpcap cannot write it): SHB, IDB (Ethernet), one EPB. */
static void
test_pcapng(void **state)
{
	Fixture *f = *state;
	g_autoptr(GByteArray) pkt = eth(1, 0x0800, ipv4(17, 0, 0, udp(9995, 2055, "ng"), 0));
	g_autoptr(GByteArray) b = g_byte_array_new();
	g_autofree char *path = g_build_filename(f->dir, "cap.pcapng", NULL);
	guint64 ts_us = (guint64)TS_SEC * 1000000 + 500;
	guint pad = (4 - pkt->len % 4) % 4;

	/* Section Header Block */
	put_le32(b, 0x0a0d0d0a);
	put_le32(b, 28);
	put_le32(b, 0x1a2b3c4d);
	put_le32(b, 0x00000001); /* major 1, minor 0 */
	put_le32(b, 0xffffffff); /* section length: unknown */
	put_le32(b, 0xffffffff);
	put_le32(b, 28);
	/* Interface Description Block */
	put_le32(b, 1);
	put_le32(b, 20);
	put_le32(b, 1); /* LINKTYPE_ETHERNET, reserved 0 */
	put_le32(b, 65535);
	put_le32(b, 20);
	/* Enhanced Packet Block */
	put_le32(b, 6);
	put_le32(b, 32 + pkt->len + pad);
	put_le32(b, 0);
	put_le32(b, (guint32)(ts_us >> 32));
	put_le32(b, (guint32)ts_us);
	put_le32(b, pkt->len);
	put_le32(b, pkt->len);
	put(b, pkt->data, pkt->len);
	for (guint i = 0; i < pad; i++)
		put8(b, 0);
	put_le32(b, 32 + pkt->len + pad);
	assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));

	g_autoptr(Replay) r = open_ok(path);
	ReplayDatagram d;
	next_ok(r, &d);
	assert_v4_datagram(&d, "ng", 0);
	assert_end(r);
}

static void
test_names(void **state)
{
	(void)state;
	for (int i = 0; i < REPLAY_RESULT_N; i++)
		assert_string_not_equal(replay_result_name(i), "unknown");
	ReplayStats a = {1, 2, 3, 4, 5, 6, 7, 8}, sum = {0};
	replay_stats_add(&sum, &a);
	replay_stats_add(&sum, &a);
	assert_int_equal(sum.read_errors, 16);
	assert_int_equal(sum.packets, 2);
	replay_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ethernet_vlan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sll, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sll2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_raw, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fragments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_udp, setup, teardown),
	    cmocka_unit_test(test_bad_headers),
	    cmocka_unit_test(test_truncation_sweep),
	    cmocka_unit_test_setup_teardown(test_unsupported_linktype, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cut_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pcapng, setup, teardown),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
