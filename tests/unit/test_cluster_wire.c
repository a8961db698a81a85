/* The cluster's wire format (cluster/wire.c): flow batches and alerts round-trip every field
 * (IPv4 and IPv6, each field alone, extremes, the real flows of the fixture captures), every
 * truncation of a valid message fails as truncated, named hostile vectors fail as what they
 * are; the alert id's text, the partition function's values and spread; and what a typical
 * port-25 flow costs on the wire (printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wire.h"

#include "collector.h"
#include "replay.h"
#include "sample_alert.h"
#include "statebuf.h"

#include <arpa/inet.h>
#include <string.h>

static const gint64 T0 = G_GINT64_CONSTANT(1700000000000);

static void
addr(guint8 a[16], const char *text)
{
	sample_addr(a, text);
}

/* A flow with every field set to a distinct value (IPv4 or IPv6 addresses). */
static Flow
full_flow(gboolean v6, guint i)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = T0 + i * 7;
	f.start_ms = T0 - 30000 + i;
	f.end_ms = T0 - 100 + i;
	f.packets = 12 + i;
	f.bytes = 3400 + i;
	f.rev_packets = 9 + i;
	f.rev_bytes = 1800 + i;
	addr(f.src, v6 ? "2001:db8::10" : "10.1.2.3");
	addr(f.dst, v6 ? "2001:db8:ffff::25" : "198.51.100.25");
	addr(f.nat_src, v6 ? "2001:db8:1::1" : "203.0.113.9");
	addr(f.nat_dst, v6 ? "2001:db8:2::2" : "198.51.100.26");
	f.sampling = 100;
	f.exporter = 1;
	f.domain = 4242;
	f.sport = (guint16)(40000 + i);
	f.dport = 25;
	f.nat_sport = 61000;
	f.nat_dport = 2525;
	f.has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_TIMES | FLOW_HAS_NAT | FLOW_HAS_FW_EVENT |
		FLOW_HAS_DIRECTION | FLOW_HAS_REVERSE | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	f.proto = 6;
	f.tcp_flags = 0x1b;
	f.fw_event = FW_EVENT_CREATED;
	f.direction = 1;
	f.version = 10;
	f.pad_ = 0x5a; /* not sent: comes back 0 */
	return f;
}

static void
init_batch(ClusterBatch *b, const Flow *flows, guint n, guint n_exporters)
{
	memset(b, 0, sizeof *b);
	g_strlcpy(b->node, "collector-a", sizeof b->node);
	b->partition = 17;
	b->batch_seq = G_GUINT64_CONSTANT(0x0123456789abcdef);
	b->clock_ms = T0 + 5000;
	b->n_exporters = n_exporters;
	for (guint i = 0; i < n_exporters; i++) {
		if (i % 2 == 0) {
			guint8 v4[4] = {192, 0, 2, (guint8)i};
			flow_addr_set_v4(b->exporters[i], v4);
		} else {
			addr(b->exporters[i], "2001:db8:e::");
			b->exporters[i][14] = (guint8)(i >> 8);
			b->exporters[i][15] = (guint8)i;
		}
	}
	b->flows = flows;
	b->n_flows = n;
}

static void
assert_flow_equal(const Flow *got, const Flow *want)
{
	Flow w = *want;
	w.pad_ = 0;
	assert_int_equal(got->pad_, 0);
	assert_memory_equal(got, &w, sizeof w);
}

/* Encode b, decode it, compare everything; returns the encoded size. */
static guint
round_trip(const ClusterBatch *b)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	ClusterBatch d = {0};

	cluster_wire_batch_encode(b, out);
	assert_true(out->len > 0);
	if (!cluster_wire_batch_decode(out->data, out->len, &d, &error))
		fail_msg("decode: %s", error->message);
	assert_string_equal(d.node, b->node);
	assert_int_equal(d.partition, b->partition);
	assert_true(d.batch_seq == b->batch_seq);
	assert_true(d.clock_ms == b->clock_ms);
	assert_int_equal(d.n_exporters, b->n_exporters);
	for (guint i = 0; i < b->n_exporters; i++)
		assert_memory_equal(d.exporters[i], b->exporters[i], 16);
	assert_int_equal(d.n_flows, b->n_flows);
	for (guint i = 0; i < b->n_flows; i++)
		assert_flow_equal(&d.flows[i], &b->flows[i]);
	cluster_batch_clear(&d);
	assert_null(d.storage);
	/* the head alone (a batch read again): collector and number, from its first bytes */
	char node[64];
	guint64 seq = 0;
	gsize head = 4 + 1 + 1 + strlen(b->node) + 4 + 8;
	for (gsize n = 0; n < head; n++)
		assert_false(cluster_wire_batch_peek(out->data, n, node, &seq));
	assert_true(cluster_wire_batch_peek(out->data, head, node, &seq));
	assert_string_equal(node, b->node);
	assert_true(seq == b->batch_seq);
	return out->len;
}

static void
test_batch_round_trip(void **state)
{
	(void)state;
	Flow f[6];
	ClusterBatch b;

	for (guint i = 0; i < 3; i++)
		f[i] = full_flow(FALSE, i);
	for (guint i = 3; i < 6; i++)
		f[i] = full_flow(TRUE, i);
	addr(f[4].dst, "192.0.2.77"); /* families mixed in one flow */
	addr(f[5].nat_src, "192.0.2.78");
	f[2].exporter = 0;
	init_batch(&b, f, 6, 2);
	round_trip(&b);
	/* recv_ms going back and forth between flows, and far from the clock */
	f[1].recv_ms = T0 - 86400000;
	f[2].recv_ms = T0 + 86400000;
	round_trip(&b);
}

/* Each field alone in an otherwise empty flow (so each presence bit is tested on its own
 * and absent fields decode as 0, sampling as 1), then every field at its extreme. */
static void
test_batch_each_field(void **state)
{
	(void)state;
	Flow base, f;
	ClusterBatch b;
	memset(&base, 0, sizeof base);
	base.sampling = 1;
	base.version = 5;
	addr(base.src, "0.0.0.0");
	addr(base.dst, "0.0.0.0");

	for (guint k = 0; k < 24; k++) {
		f = base;
		switch (k) {
		case 0:
			f.recv_ms = 1;
			break;
		case 1:
			f.start_ms = T0;
			break;
		case 2:
			f.end_ms = T0;
			break;
		case 3:
			f.packets = 1;
			break;
		case 4:
			f.bytes = 1;
			break;
		case 5:
			f.rev_packets = 1;
			break;
		case 6:
			f.rev_bytes = 1;
			break;
		case 7:
			addr(f.src, "::1");
			break;
		case 8:
			addr(f.dst, "::");
			break;
		case 9:
			addr(f.nat_src, "192.0.2.1");
			break;
		case 10:
			addr(f.nat_dst, "2001:db8::1");
			break;
		case 11:
			f.sampling = 2;
			break;
		case 12:
			f.exporter = 1;
			break;
		case 13:
			f.domain = 1;
			break;
		case 14:
			f.sport = 1;
			break;
		case 15:
			f.dport = 1;
			break;
		case 16:
			f.nat_sport = 1;
			break;
		case 17:
			f.nat_dport = 1;
			break;
		case 18:
			f.has = 0xffff;
			f.end_ms = 1;
			break; /* has TIMES: start <= end */
		case 19:
			f.proto = 255;
			break;
		case 20:
			f.tcp_flags = 0xff;
			break;
		case 21:
			f.fw_event = 0xff;
			break;
		case 22:
			f.direction = 0xff;
			break;
		case 23:
			f.version = FLOW_VERSION_SFLOW5;
			break;
		}
		init_batch(&b, &f, 1, 2);
		b.clock_ms = 0;
		round_trip(&b);
	}

	f = base;
	f.recv_ms = f.start_ms = f.end_ms = STATEBUF_UNIX_MS_END - 1;
	f.packets = f.bytes = f.rev_packets = f.rev_bytes = G_MAXUINT64;
	memset(f.src, 0xff, 16);
	memset(f.dst, 0xff, 16);
	memset(f.nat_src, 0xff, 16);
	memset(f.nat_dst, 0xff, 16);
	f.sampling = f.domain = G_MAXUINT32;
	f.exporter = CLUSTER_WIRE_MAX_EXPORTERS - 1;
	f.sport = f.dport = f.nat_sport = f.nat_dport = G_MAXUINT16;
	f.has = G_MAXUINT16;
	f.proto = f.tcp_flags = f.fw_event = f.direction = 0xff;
	f.version = 9;
	init_batch(&b, &f, 1, CLUSTER_WIRE_MAX_EXPORTERS);
	b.clock_ms = 0; /* the largest recv delta */
	b.partition = G_MAXUINT32;
	b.batch_seq = G_MAXUINT64;
	memset(b.node, 'n', sizeof b.node - 1);
	round_trip(&b);
	/* times before 1970 or past 2^50 ms are clamped, as the state file does */
	f.recv_ms = -5;
	f.start_ms = G_MAXINT64;
	f.end_ms = G_MAXINT64;
	b.clock_ms = G_MININT64;
	g_autoptr(GByteArray) out = g_byte_array_new();
	cluster_wire_batch_encode(&b, out);
	ClusterBatch d = {0};
	assert_true(cluster_wire_batch_decode(out->data, out->len, &d, NULL));
	assert_true(d.clock_ms == 0 && d.flows[0].recv_ms == 0);
	assert_true(d.flows[0].start_ms == STATEBUF_UNIX_MS_END - 1);
	cluster_batch_clear(&d);
}

/* A tick (no flows, no exporters), and a batch naming the most exporters. */
static void
test_batch_tick_and_max(void **state)
{
	(void)state;
	ClusterBatch b;
	init_batch(&b, NULL, 0, 0);
	b.node[0] = '\0';
	assert_int_equal(round_trip(&b), 4 + 1 + 1 + 4 + 8 + 8 + 2 + 4);

	Flow f[3] = {full_flow(FALSE, 0), full_flow(TRUE, 1), full_flow(FALSE, 2)};
	f[0].exporter = 0;
	f[1].exporter = 128;
	f[2].exporter = CLUSTER_WIRE_MAX_EXPORTERS - 1;
	init_batch(&b, f, 3, CLUSTER_WIRE_MAX_EXPORTERS);
	round_trip(&b);

	/* the most flows */
	g_autofree Flow *many = g_new(Flow, CLUSTER_WIRE_MAX_FLOWS);
	for (guint i = 0; i < CLUSTER_WIRE_MAX_FLOWS; i++)
		many[i] = full_flow(i % 2, i);
	init_batch(&b, many, CLUSTER_WIRE_MAX_FLOWS, 2);
	round_trip(&b);
}

static guint criticals;

static void
count_critical(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
	(void)domain;
	(void)level;
	(void)msg;
	(void)data;
	criticals++;
}

/* A flow naming an exporter the batch does not carry is the sender's bug: nothing is
 * appended and a critical logged. */
static void
test_batch_encode_refuses(void **state)
{
	(void)state;
	Flow f = full_flow(FALSE, 0);
	ClusterBatch b;
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_byte_array_append(out, (const guint8 *)"xy", 2);
	init_batch(&b, &f, 1, 1);
	guint h = g_log_set_handler(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, count_critical, NULL);
	criticals = 0;
	cluster_wire_batch_encode(&b, out);
	g_log_remove_handler(G_LOG_DOMAIN, h);
	assert_int_equal(criticals, 1);
	assert_int_equal(out->len, 2);
}

static void
expect_batch_error(const guint8 *p, gsize len, ClusterWireError code)
{
	ClusterBatch d = {0};
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *copy = g_memdup2(p, len); /* exactly len bytes, for ASan */
	assert_false(cluster_wire_batch_decode(copy, len, &d, &error));
	assert_non_null(error);
	if (!g_error_matches(error, CLUSTER_WIRE_ERROR, (gint)code))
		fail_msg("want code %d, got %d: %s", code, error->code, error->message);
	if (g_getenv("WIRE_VERBOSE") != NULL)
		print_message("  %s\n", error->message);
	assert_null(d.storage);
	assert_int_equal(d.n_flows, 0);
	assert_null(d.flows);
}

static void
test_batch_every_truncation(void **state)
{
	(void)state;
	Flow f[4] = {full_flow(FALSE, 0), full_flow(TRUE, 1), full_flow(FALSE, 2),
		     full_flow(TRUE, 3)};
	ClusterBatch b;
	g_autoptr(GByteArray) out = g_byte_array_new();
	init_batch(&b, f, 4, 3);
	cluster_wire_batch_encode(&b, out);
	for (gsize n = 0; n < out->len; n++)
		expect_batch_error(out->data, n, CLUSTER_WIRE_ERROR_TRUNCATED);
	/* and one byte more is trailing */
	g_byte_array_append(out, (const guint8 *)"", 1);
	expect_batch_error(out->data, out->len, CLUSTER_WIRE_ERROR_INVALID);
}

/* ---- hand-made batches: a header, then flows written byte by byte ---- */

static GByteArray *
hand_header(guint n_exporters, guint32 n_flows, gint64 clock_ms)
{
	GByteArray *o = g_byte_array_new();
	statebuf_put_bytes(o, "SFCB", 4);
	statebuf_put_u8(o, 1);
	statebuf_put_u8(o, 1);
	statebuf_put_bytes(o, "n", 1);
	statebuf_put_u32(o, 3);
	statebuf_put_u64(o, 9);
	statebuf_put_i64(o, clock_ms);
	statebuf_put_u16(o, (guint16)n_exporters);
	for (guint i = 0; i < n_exporters; i++) {
		statebuf_put_u8(o, 4);
		statebuf_put_bytes(o, "\xc0\x00\x02\x01", 4);
	}
	statebuf_put_u32(o, n_flows);
	return o;
}

static void
hand_varint(GByteArray *o, guint64 v)
{
	do {
		statebuf_put_u8(o, (guint8)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
		v >>= 7;
	} while (v != 0);
}

/* presence, recv delta (zigzag), proto 6, version 10, has, ports 40000 -> 25, 10.0.0.1 ->
 * 198.51.100.25, then the optional fields' bytes */
static void
hand_flow(GByteArray *o, guint32 present, guint8 has, guint8 recv_z, const void *rest,
	  gsize rest_len)
{
	hand_varint(o, present);
	statebuf_put_u8(o, recv_z);
	statebuf_put_bytes(o, "\x06\x0a", 2);
	statebuf_put_u8(o, has);
	statebuf_put_bytes(o,
			   "\x9c\x40\x00\x19"
			   "\x0a\x00\x00\x01"
			   "\xc6\x33\x64\x19",
			   12);
	statebuf_put_bytes(o, rest, rest_len);
}

static void
test_batch_hostile(void **state)
{
	(void)state;
	GByteArray *o;

	/* the hand-made form itself is valid */
	o = hand_header(1, 1, T0);
	gsize hlen = o->len;
	hand_flow(o, 0, 0, 0, "", 0);
	ClusterBatch d = {0};
	g_autoptr(GError) error = NULL;
	if (!cluster_wire_batch_decode(o->data, o->len, &d, &error))
		fail_msg("%s", error->message);
	assert_int_equal(d.n_flows, 1);
	assert_int_equal(d.flows[0].dport, 25);
	assert_int_equal(d.flows[0].sampling, 1);
	assert_true(d.flows[0].recv_ms == T0);
	cluster_batch_clear(&d);
	/* an unknown flow version */
	o->data[hlen + 3] = 7;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	o->data[hlen + 3] = 10;
	/* wrong magic (an alert's, and junk), an unknown version */
	o->data[3] = 'A';
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_MAGIC);
	o->data[0] = 0;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_MAGIC);
	o->data[0] = 'S';
	o->data[3] = 'B';
	o->data[4] = 2;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_VERSION);
	o->data[4] = 0;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_VERSION);
	o->data[4] = 1;
	/* a NUL in the node name */
	o->data[6] = 0;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);
	/* a node name of 64 bytes */
	o = g_byte_array_new();
	statebuf_put_bytes(o, "SFCB\x01\x40", 6);
	for (guint i = 0; i < 64 + 4 + 8 + 8 + 2 + 4; i++)
		statebuf_put_u8(o, 'n');
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);

	/* a flow's exporter index past the batch's exporters, explicit or the implied 0 */
	o = hand_header(1, 1, T0);
	hand_flow(o, 1u << 7, 0, 0, "\x01", 1);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);
	o = hand_header(0, 1, T0);
	hand_flow(o, 0, 0, 0, "", 0);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);

	/* counts: too many exporters or flows; more than the bytes can hold */
	o = hand_header(0, 0, T0);
	o->data[o->len - 6] = 0x01; /* 257 exporters */
	o->data[o->len - 5] = 0x01;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	o->data[o->len - 6] = 0;
	o->data[o->len - 5] = 200; /* 200 exporters in 4 bytes */
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_TRUNCATED);
	g_byte_array_unref(o);
	o = hand_header(1, 65536, T0);
	hand_flow(o, 0, 0, 0, "", 0);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);
	o = hand_header(1, 65535, T0); /* 9 MB of Flow: refused before allocating */
	hand_flow(o, 0, 0, 0, "", 0);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_TRUNCATED);
	g_byte_array_unref(o);
	/* an exporter address of 5 bytes */
	o = hand_header(1, 0, T0);
	o->data[o->len - 9] = 5;
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);
	/* the clock past 2^50 ms, and before 1970 */
	o = hand_header(1, 0, STATEBUF_UNIX_MS_END);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);
	o = hand_header(1, 0, -1);
	expect_batch_error(o->data, o->len, CLUSTER_WIRE_ERROR_INVALID);
	g_byte_array_unref(o);

	struct {
		const char *name;
		guint32 present;
		guint8 has;
		guint8 recv_z;
		const char *rest;
		gsize rest_len;
		ClusterWireError code;
	} v[] = {
	    {"sampling 0", 1u << 9, 0, 0, "\x00", 1, CLUSTER_WIRE_ERROR_INVALID},
	    {"end before start", 0x03, FLOW_HAS_TIMES, 0, "\x00\x01", 2,
	     CLUSTER_WIRE_ERROR_INVALID},
	    {"recv before 1970", 0, 0, 0x03, "", 0, CLUSTER_WIRE_ERROR_INVALID},
	    {"start before 1970", 0x01, 0, 0x00, "\x03", 1, CLUSTER_WIRE_ERROR_INVALID},
	    {"varint of 11 bytes", 0x04, 0, 0, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11,
	     CLUSTER_WIRE_ERROR_INVALID},
	    {"varint past 64 bits", 0x04, 0, 0, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10,
	     CLUSTER_WIRE_ERROR_INVALID},
	    {"u32 varint past 32 bits", 1u << 8, 0, 0, "\x80\x80\x80\x80\x10", 5,
	     CLUSTER_WIRE_ERROR_INVALID},
	    {"unknown presence bit", 1u << 20, 0, 0, "", 0, CLUSTER_WIRE_ERROR_INVALID},
	    {"IPv6 NAT source without one", 1u << 15, 0, 0, "", 0, CLUSTER_WIRE_ERROR_INVALID},
	    {"IPv6 src cut", 1u << 5, 0, 0, "", 0, CLUSTER_WIRE_ERROR_TRUNCATED},
	    {"varint cut", 0x04, 0, 0, "\x80\x80", 2, CLUSTER_WIRE_ERROR_TRUNCATED},
	};
	for (guint i = 0; i < G_N_ELEMENTS(v); i++) {
		print_message("hostile: %s\n", v[i].name);
		/* clock 1: a recv delta of -2 (zigzag 3) goes below 0 */
		o = hand_header(1, 1, 1);
		hand_flow(o, v[i].present, v[i].has, v[i].recv_z, v[i].rest, v[i].rest_len);
		expect_batch_error(o->data, o->len, v[i].code);
		g_byte_array_unref(o);
	}
}

/* ---- alerts ---- */

static ClusterAlert
full_alert(void)
{
	ClusterAlert a;
	memset(&a, 0, sizeof a);
	g_strlcpy(a.node, "analyzer-b", sizeof a.node);
	a.partition = 63;
	a.lease_rev = G_GUINT64_CONSTANT(123456789012);
	a.lease_from_ms = 1700000123456;
	a.ev = sample_alert(T0);
	a.ev.event = ALERT_UPDATED;
	a.ev.reason = REASON_AUTH_BRUTEFORCE;
	a.ev.severity = ALERT_SEV_CRITICAL;
	addr(a.ev.peer, "2001:db8::25");
	a.ev.has_peer = TRUE;
	a.ev.trigger = WINDOW_LONG;
	a.ev.window[WINDOW_LONG].estimate = 800;
	a.ev.window[WINDOW_LONG].estimate_se = 40;
	a.ev.raised_ms = T0 - 60000;
	a.ev.n_exporters = ALERT_EXPORTERS_MAX;
	for (guint i = 0; i < ALERT_EXPORTERS_MAX; i++)
		a.ev.exporters[i] = 100 + i; /* the sender's local indexes */
	addr(a.exporters[0], "192.0.2.1");
	addr(a.exporters[1], "2001:db8:e::1");
	addr(a.exporters[2], "192.0.2.3");
	addr(a.exporters[3], "::");
	a.ev.exporters_truncated = TRUE;
	a.ev.sampling = 512;
	a.ev.lower_bound = TRUE;
	a.ev.n_countries = 5;
	a.ev.n_asns = 6;
	g_strlcpy(a.ev.evidence, "/var/lib/spamflow/evidence/192.0.2.10-1700000000000.ipfix",
		  sizeof a.ev.evidence);
	a.ev.dns_corroborated = TRUE;
	g_strlcpy(a.ev.group, "students", sizeof a.ev.group);
	return a;
}

static void
assert_window_equal(const AlertWindow *g, const AlertWindow *w)
{
	assert_true(g->span_ms == w->span_ms);
	assert_int_equal(g->value, w->value);
	assert_int_equal(g->threshold, w->threshold);
	assert_int_equal(g->distinct, w->distinct);
	assert_int_equal(g->estimated, w->estimated);
	assert_int_equal(g->flows, w->flows);
	assert_int_equal(g->attempts, w->attempts);
	assert_int_equal(g->failed, w->failed);
	assert_int_equal(g->estimate, w->estimate);
	assert_int_equal(g->estimate_se, w->estimate_se);
}

/* every AlertEvent field, one by one (exporter indexes: the receiver's 0..n-1) */
static void
assert_event_equal(const AlertEvent *g, const AlertEvent *w)
{
	assert_true(g->time_ms == w->time_ms);
	assert_int_equal(g->event, w->event);
	assert_int_equal(g->reason, w->reason);
	assert_int_equal(g->severity, w->severity);
	assert_memory_equal(g->host, w->host, 16);
	assert_memory_equal(g->peer, w->peer, 16);
	assert_int_equal(g->has_peer, w->has_peer);
	for (guint k = 0; k < WINDOW_SPANS; k++)
		assert_window_equal(&g->window[k], &w->window[k]);
	assert_int_equal(g->trigger, w->trigger);
	assert_true(g->level == w->level);
	assert_int_equal(g->flows, w->flows);
	assert_int_equal(g->attempts, w->attempts);
	assert_int_equal(g->failed, w->failed);
	assert_int_equal(g->succeeded, w->succeeded);
	assert_int_equal(g->answered, w->answered);
	assert_true(g->failed_share == w->failed_share);
	assert_true(g->first_seen_ms == w->first_seen_ms);
	assert_true(g->last_seen_ms == w->last_seen_ms);
	assert_int_equal(g->n_top, w->n_top);
	for (guint i = 0; i < w->n_top; i++) {
		assert_memory_equal(g->top[i].addr, w->top[i].addr, 16);
		assert_int_equal(g->top[i].count, w->top[i].count);
		assert_int_equal(g->top[i].asn, w->top[i].asn);
		assert_string_equal(g->top[i].country, w->top[i].country);
	}
	assert_int_equal(g->n_exporters, w->n_exporters);
	for (guint i = 0; i < w->n_exporters; i++)
		assert_int_equal(g->exporters[i], i);
	assert_int_equal(g->exporters_truncated, w->exporters_truncated);
	assert_int_equal(g->sampling, w->sampling);
	assert_int_equal(g->lower_bound, w->lower_bound);
	assert_true(g->raised_ms == w->raised_ms);
	assert_int_equal(g->n_countries, w->n_countries);
	assert_int_equal(g->n_asns, w->n_asns);
	assert_string_equal(g->evidence, w->evidence);
	assert_int_equal(g->mta_like, w->mta_like);
	assert_int_equal(g->inbound_smtp, w->inbound_smtp);
	assert_int_equal(g->dns_external, w->dns_external);
	assert_memory_equal(g->dns_server, w->dns_server, 16);
	assert_int_equal(g->has_dns_server, w->has_dns_server);
	assert_int_equal(g->dns_corroborated, w->dns_corroborated);
	assert_string_equal(g->group, w->group);
}

static void
alert_round_trip(const ClusterAlert *a)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	ClusterAlert d;
	cluster_wire_alert_encode(a, out);
	if (!cluster_wire_alert_decode(out->data, out->len, &d, &error))
		fail_msg("decode: %s", error->message);
	assert_string_equal(d.node, a->node);
	assert_int_equal(d.partition, a->partition);
	assert_true(d.lease_rev == a->lease_rev);
	assert_true(d.lease_from_ms == a->lease_from_ms);
	assert_event_equal(&d.ev, &a->ev);
	for (guint i = 0; i < a->ev.n_exporters; i++)
		assert_memory_equal(d.exporters[i], a->exporters[i], 16);
}

static void
test_alert_round_trip(void **state)
{
	(void)state;
	ClusterAlert a = full_alert();
	alert_round_trip(&a);
	/* the longest strings, no exporters, no top */
	memset(a.ev.evidence, 'e', sizeof a.ev.evidence - 1);
	memset(a.ev.group, 'g', sizeof a.ev.group - 1);
	memset(a.node, 'n', sizeof a.node - 1);
	a.ev.n_exporters = 0;
	a.ev.n_top = 0;
	alert_round_trip(&a);
	/* the least: a cleared event of an all-zero host */
	memset(&a, 0, sizeof a);
	a.ev.event = ALERT_CLEARED;
	a.ev.sampling = 1;
	alert_round_trip(&a);
}

static void
expect_alert_error(const guint8 *p, gsize len, ClusterWireError code)
{
	ClusterAlert d;
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *copy = g_memdup2(p, len);
	assert_false(cluster_wire_alert_decode(copy, len, &d, &error));
	if (!g_error_matches(error, CLUSTER_WIRE_ERROR, (gint)code))
		fail_msg("want code %d, got %d: %s", code, error->code, error->message);
	if (g_getenv("WIRE_VERBOSE") != NULL)
		print_message("  %s\n", error->message);
}

static void
test_alert_hostile(void **state)
{
	(void)state;
	ClusterAlert a = full_alert();
	g_autoptr(GByteArray) out = g_byte_array_new();
	cluster_wire_alert_encode(&a, out);

	for (gsize n = 0; n < out->len; n++)
		expect_alert_error(out->data, n, CLUSTER_WIRE_ERROR_TRUNCATED);
	g_autofree guint8 *p = g_memdup2(out->data, out->len);
	gsize len = out->len;
	/* header: magic 4, version 1, node 1 + 10, partition 4, lease_rev 8, lease_from_ms 8,
	 * length 4 */
	const gsize ev = 4 + 1 + 1 + strlen(a.node) + 4 + 8 + 8 + 4;
	struct {
		gsize off;
		guint8 val;
		ClusterWireError code;
	} v[] = {
	    {0, 'X', CLUSTER_WIRE_ERROR_MAGIC},
	    {3, 'B', CLUSTER_WIRE_ERROR_MAGIC}, /* a flow batch's */
	    {4, 2, CLUSTER_WIRE_ERROR_VERSION},
	    {5, 64, CLUSTER_WIRE_ERROR_INVALID}, /* node name longer than 63 */
	    {7, 0, CLUSTER_WIRE_ERROR_INVALID},	 /* NUL in the node name */
	    {ev + 8, ALERT_KIND_COUNT, CLUSTER_WIRE_ERROR_INVALID},
	    {ev + 9, REASON_COUNT, CLUSTER_WIRE_ERROR_INVALID},
	    {ev + 10, ALERT_SEV_CRITICAL + 1, CLUSTER_WIRE_ERROR_INVALID},
	    {ev + 11 + 32, 2, CLUSTER_WIRE_ERROR_INVALID}, /* has_peer neither 0 nor 1 */
	    {ev - 2, (guint8)(p[ev - 2] + 1), CLUSTER_WIRE_ERROR_TRUNCATED}, /* 256 too long */
	    {ev - 1, (guint8)(p[ev - 1] - 1), CLUSTER_WIRE_ERROR_INVALID},   /* event cut short */
	    {len - 17 - 5 - 17 - 5, 6, CLUSTER_WIRE_ERROR_INVALID},	     /* exporter length 6 */
	};
	for (guint i = 0; i < G_N_ELEMENTS(v); i++) {
		guint8 keep = p[v[i].off];
		p[v[i].off] = v[i].val;
		expect_alert_error(p, len, v[i].code);
		p[v[i].off] = keep;
	}
	/* the evidence path: a NUL in it; its u8 length is the byte before it */
	const char *e = memmem(p, len, a.ev.evidence, strlen(a.ev.evidence));
	assert_non_null(e);
	gsize eoff = (gsize)(e - (const char *)p);
	assert_int_equal(p[eoff - 1], strlen(a.ev.evidence));
	p[eoff + 3] = 0;
	expect_alert_error(p, len, CLUSTER_WIRE_ERROR_INVALID);
	p[eoff + 3] = a.ev.evidence[3];
	/* five exporters in the event */
	p[eoff - 1 - 8 - 4 - 4 - 4 - 1 - 1 - 4 * 4 - 1] = ALERT_EXPORTERS_MAX + 1;
	expect_alert_error(p, len, CLUSTER_WIRE_ERROR_INVALID);
	p[eoff - 1 - 8 - 4 - 4 - 4 - 1 - 1 - 4 * 4 - 1] = ALERT_EXPORTERS_MAX;
	/* still the same message after all that patching */
	ClusterAlert d;
	assert_true(cluster_wire_alert_decode(p, len, &d, NULL));
	/* trailing bytes */
	g_byte_array_append(out, (const guint8 *)"\0", 1);
	expect_alert_error(out->data, out->len, CLUSTER_WIRE_ERROR_INVALID);
	/* one decoder does not take the other's message */
	Flow f = full_flow(FALSE, 0);
	f.exporter = 0;
	ClusterBatch b;
	init_batch(&b, &f, 1, 1);
	g_autoptr(GByteArray) batch = g_byte_array_new();
	cluster_wire_batch_encode(&b, batch);
	expect_alert_error(batch->data, batch->len, CLUSTER_WIRE_ERROR_MAGIC);
	expect_batch_error(p, len, CLUSTER_WIRE_ERROR_MAGIC);
}

/* ---- control records ---- */

static ClusterCtl
full_ctl(void)
{
	ClusterCtl c = {.boot_ms = T0 - 5000,
			.id = G_MAXUINT64,
			.partition = 63,
			.op = CLUSTER_CTL_SUPPRESS,
			.reason = REASON_SUBMISSION_FANOUT,
			.until_ms = T0 + 3600000,
			.set_ms = T0,
			.uid = 1000,
			.pid = -1};
	g_strlcpy(c.node, "analyzer-a", sizeof c.node);
	inet_pton(AF_INET6, "2001:db8::66", c.host);
	memset(c.note, 'n', CLUSTER_CTL_NOTE_MAX);
	return c;
}

static void
expect_ctl_error(const guint8 *p, gsize len, ClusterWireError code)
{
	ClusterCtl d;
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *copy = g_memdup2(p, len);
	assert_false(cluster_wire_ctl_decode(copy, len, &d, &error));
	if (!g_error_matches(error, CLUSTER_WIRE_ERROR, (gint)code))
		fail_msg("want code %d, got %d: %s", code, error->code, error->message);
	assert_int_equal(d.op, 0); /* nothing half-read is left */
}

static void
test_ctl_round_trip(void **state)
{
	(void)state;
	ClusterCtl c = full_ctl(), d;
	g_autoptr(GByteArray) out = g_byte_array_new();
	char id[CLUSTER_WIRE_ID_MAX];

	cluster_wire_ctl_encode(&c, out);
	assert_true(cluster_wire_is_ctl(out->data, out->len));
	assert_true(cluster_wire_ctl_decode(out->data, out->len, &d, NULL));
	assert_memory_equal(&c, &d, sizeof c);
	assert_int_equal(d.pid, -1);
	assert_int_equal(strlen(d.note), CLUSTER_CTL_NOTE_MAX);
	cluster_wire_ctl_id(&d, id, sizeof id);
	assert_string_equal(id, "c-analyzer-a-1699999995000-18446744073709551615");
	/* a forget of an IPv4 host, every reason: the host in 4 bytes */
	ClusterCtl f = {.op = CLUSTER_CTL_FORGET, .all = TRUE, .partition = 2, .id = 3};
	f.host[10] = f.host[11] = 0xff;
	f.host[12] = 10;
	f.host[15] = 9;
	g_byte_array_set_size(out, 0);
	cluster_wire_ctl_encode(&f, out);
	/* magic 4, version 1, node 1, boot 8, id 8, partition 4, op 1, addr 5, flags 1,
	 * reason 1, until 8, set 8, uid 4, pid 4, note 1 */
	assert_int_equal(out->len, 4 + 1 + 1 + 8 + 8 + 4 + 1 + 5 + 1 + 1 + 8 + 8 + 4 + 4 + 1);
	assert_true(cluster_wire_ctl_decode(out->data, out->len, &d, NULL));
	assert_memory_equal(&f, &d, sizeof f);
	/* one decoder does not take another's message */
	assert_false(cluster_wire_is_ctl((const guint8 *)"SFCA", 4));
	assert_false(cluster_wire_is_ctl((const guint8 *)"SFC", 3));
	ClusterAlert a;
	ClusterBatch b = {0};
	assert_false(cluster_wire_alert_decode(out->data, out->len, &a, NULL));
	char node[64];
	guint64 seq = 0;
	assert_false(cluster_wire_batch_peek(out->data, out->len, node, &seq));
	assert_false(cluster_wire_batch_decode(out->data, out->len, &b, NULL));
}

static void
test_ctl_hostile(void **state)
{
	(void)state;
	ClusterCtl c = full_ctl();
	g_autoptr(GByteArray) out = g_byte_array_new();
	cluster_wire_ctl_encode(&c, out);

	for (gsize n = 0; n < out->len; n++)
		expect_ctl_error(out->data, n, CLUSTER_WIRE_ERROR_TRUNCATED);
	g_autofree guint8 *p = g_memdup2(out->data, out->len);
	gsize len = out->len;
	/* offsets: node at 5, then boot 8, id 8, partition 4, op, addr (1 + 16), flags,
	 * reason, until 8, set 8, uid 4, pid 4, note length */
	const gsize op = 4 + 1 + 1 + strlen(c.node) + 8 + 8 + 4;
	const gsize flags = op + 1 + 17, until = flags + 2, note = until + 8 + 8 + 4 + 4;
	struct {
		gsize off;
		guint8 val;
		ClusterWireError code;
	} v[] = {
	    {0, 'X', CLUSTER_WIRE_ERROR_MAGIC},
	    {3, 'A', CLUSTER_WIRE_ERROR_MAGIC}, /* an alert's */
	    {4, 2, CLUSTER_WIRE_ERROR_VERSION},
	    {5, 64, CLUSTER_WIRE_ERROR_INVALID}, /* node name longer than 63 */
	    {7, 0, CLUSTER_WIRE_ERROR_INVALID},	 /* NUL in the node name */
	    {op, 0, CLUSTER_WIRE_ERROR_INVALID},
	    {op, 4, CLUSTER_WIRE_ERROR_INVALID},
	    {op + 1, 6, CLUSTER_WIRE_ERROR_INVALID}, /* address length 6 */
	    {flags, 2, CLUSTER_WIRE_ERROR_INVALID},  /* an unknown flag */
	    {flags, 1, CLUSTER_WIRE_ERROR_INVALID},  /* every reason, and a reason */
	    {flags + 1, REASON_COUNT, CLUSTER_WIRE_ERROR_INVALID},
	    {until, 0xff, CLUSTER_WIRE_ERROR_INVALID}, /* a time past 2^50 */
	    {until + 8, 0x80, CLUSTER_WIRE_ERROR_INVALID},
	    {note, CLUSTER_CTL_NOTE_MAX + 1, CLUSTER_WIRE_ERROR_INVALID},
	    {note, CLUSTER_CTL_NOTE_MAX - 1, CLUSTER_WIRE_ERROR_INVALID}, /* a byte left over */
	    {note + 5, 0, CLUSTER_WIRE_ERROR_INVALID},			   /* NUL in the note */
	};
	for (guint i = 0; i < G_N_ELEMENTS(v); i++) {
		guint8 keep = p[v[i].off];
		p[v[i].off] = v[i].val;
		expect_ctl_error(p, len, v[i].code);
		p[v[i].off] = keep;
	}
	/* still the same record after all that patching */
	ClusterCtl d;
	assert_true(cluster_wire_ctl_decode(p, len, &d, NULL));
	assert_memory_equal(&c, &d, sizeof c);
	/* trailing bytes */
	g_byte_array_append(out, (const guint8 *)"\0", 1);
	expect_ctl_error(out->data, out->len, CLUSTER_WIRE_ERROR_INVALID);
}

static void
expect_history_error(const guint8 *p, gsize len, ClusterWireError code)
{
	ClusterHistory d;
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *copy = g_memdup2(p, len);
	assert_false(cluster_wire_history_decode(copy, len, &d, &error));
	if (!g_error_matches(error, CLUSTER_WIRE_ERROR, (gint)code))
		fail_msg("want code %d, got %d: %s", code, error->code, error->message);
	assert_null(d.slice);
	assert_int_equal(d.slice_len, 0);
}

/* History readings: the frame around a slice payload (opaque to the wire) round-trips, and
 * every cut, a wrong magic or version, a lying length and trailing bytes are refused. */
static void
test_history(void **state)
{
	(void)state;
	guint8 slice[300];
	for (guint i = 0; i < sizeof slice; i++)
		slice[i] = (guint8)(i * 7 + 3);
	ClusterHistory h = {.partition = 61, .lease_rev = 0x0102030405060708ull, .piece = 513,
			    .slice = slice, .slice_len = sizeof slice};
	g_strlcpy(h.node, "analyzer-2", sizeof h.node);
	g_autoptr(GByteArray) out = g_byte_array_new();
	cluster_wire_history_encode(&h, out);
	/* magic 4, version 1, node 1 + 10, partition 4, lease_rev 8, piece 2, length 4 */
	const gsize head = 4 + 1 + 1 + 10 + 4 + 8 + 2 + 4;
	assert_int_equal(out->len, head + sizeof slice);
	ClusterHistory d;
	assert_true(cluster_wire_history_decode(out->data, out->len, &d, NULL));
	assert_string_equal(d.node, "analyzer-2");
	assert_int_equal(d.partition, 61);
	assert_true(d.lease_rev == 0x0102030405060708ull);
	assert_int_equal(d.piece, 513);
	assert_int_equal(d.slice_len, sizeof slice);
	assert_ptr_equal(d.slice, out->data + head);
	assert_memory_equal(d.slice, slice, sizeof slice);
	/* an empty slice payload and node name are a valid frame */
	ClusterHistory e = {.partition = 0};
	g_autoptr(GByteArray) empty = g_byte_array_new();
	cluster_wire_history_encode(&e, empty);
	assert_true(cluster_wire_history_decode(empty->data, empty->len, &d, NULL));
	assert_int_equal(d.slice_len, 0);
	assert_string_equal(d.node, "");

	for (gsize n = 0; n < out->len; n++)
		expect_history_error(out->data, n, CLUSTER_WIRE_ERROR_TRUNCATED);
	g_autofree guint8 *p = g_memdup2(out->data, out->len);
	struct {
		gsize off;
		guint8 val;
		ClusterWireError code;
	} v[] = {
	    {0, 'X', CLUSTER_WIRE_ERROR_MAGIC},
	    {3, 'A', CLUSTER_WIRE_ERROR_MAGIC}, /* an alert's */
	    {4, 2, CLUSTER_WIRE_ERROR_VERSION},
	    {5, 64, CLUSTER_WIRE_ERROR_INVALID},	     /* node name longer than 63 */
	    {7, 0, CLUSTER_WIRE_ERROR_INVALID},	     /* NUL in the node name */
	    {head - 4, 0x10, CLUSTER_WIRE_ERROR_INVALID}, /* length over 1 MiB */
	    {head - 2, 0x02, CLUSTER_WIRE_ERROR_TRUNCATED}, /* 512 more than there are */
	    {head - 1, 0x2b, CLUSTER_WIRE_ERROR_INVALID},  /* 1 less: a trailing byte */
	};
	for (guint i = 0; i < G_N_ELEMENTS(v); i++) {
		guint8 keep = p[v[i].off];
		p[v[i].off] = v[i].val;
		expect_history_error(p, out->len, v[i].code);
		p[v[i].off] = keep;
	}
	assert_true(cluster_wire_history_decode(p, out->len, &d, NULL));
	g_byte_array_append(out, (const guint8 *)"\0", 1);
	expect_history_error(out->data, out->len, CLUSTER_WIRE_ERROR_INVALID);
	/* the other decoders do not take it, nor it theirs */
	ClusterAlert a = full_alert();
	g_autoptr(GByteArray) alert = g_byte_array_new();
	cluster_wire_alert_encode(&a, alert);
	expect_history_error(alert->data, alert->len, CLUSTER_WIRE_ERROR_MAGIC);
	expect_alert_error(p, out->len - 1, CLUSTER_WIRE_ERROR_MAGIC);
	expect_batch_error(p, out->len - 1, CLUSTER_WIRE_ERROR_MAGIC);
}

static void
test_alert_id(void **state)
{
	(void)state;
	char id[CLUSTER_WIRE_ID_MAX];
	AlertEvent ev = sample_alert(T0);
	ev.raised_ms = T0 - 10000;
	cluster_wire_alert_id(7, &ev, id, sizeof id);
	assert_string_equal(id, "p7-192.0.2.10-smtp-fanout-raised-1700000000000-1699999990000");
	addr(ev.host, "2001:db8::1");
	ev.reason = REASON_AUTH_BRUTEFORCE;
	ev.event = ALERT_CLEARED;
	cluster_wire_alert_id(63, &ev, id, sizeof id);
	assert_string_equal(id,
			    "p63-2001:db8::1-auth-bruteforce-cleared-1700000000000-1699999990000");
	/* the longest id fits, uncut */
	memset(ev.host, 0, 12);
	memset(ev.host + 12, 0xff, 4); /* ::255.255.255.255 */
	ev.reason = REASON_SUBMISSION_FANOUT;
	ev.event = ALERT_UPDATED;
	ev.time_ms = G_MININT64;
	ev.raised_ms = G_MININT64;
	cluster_wire_alert_id(G_MAXUINT, &ev, id, sizeof id);
	assert_true(g_str_has_suffix(id, "-updated--9223372036854775808--9223372036854775808"));
	assert_true(g_str_has_prefix(id, "p4294967295-::255.255.255.255-submission-fanout"));
	memset(ev.host, 0xff, 16);
	ev.host[0] = 0x11;
	cluster_wire_alert_id(G_MAXUINT, &ev, id, sizeof id);
	assert_true(g_str_has_prefix(id, "p4294967295-11ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff-"));
	assert_true(g_str_has_suffix(id, "--9223372036854775808"));
	assert_true(strlen(id) < CLUSTER_WIRE_ID_MAX);
}

static void
test_partition(void **state)
{
	(void)state;
	guint8 h[16] = {0};
	/* FNV-1a 32 as draft-eastlake-fnv defines it, then MurmurHash3's fmix32 (values from
	 * an independent Python of both): every node, every build agrees */
	assert_int_equal(cluster_partition(h, 64), 59);
	assert_int_equal(cluster_partition(h, 1000), 835);
	addr(h, "10.0.0.1");
	assert_int_equal(cluster_partition(h, 64), 37);
	assert_int_equal(cluster_partition(h, 1000), 293);
	addr(h, "2001:db8::1");
	assert_int_equal(cluster_partition(h, 64), 47);
	assert_int_equal(cluster_partition(h, 1000), 231);
	assert_int_equal(cluster_partition(h, 1), 0);
	/* the low bits of the bytes alone would put these four together (FNV-1a mod 64) */
	guint seen = 0;
	for (guint i = 1; i < 256; i += 64) {
		guint8 v4[4] = {10, 0, 0, (guint8)i};
		flow_addr_set_v4(h, v4);
		seen |= 1u << (cluster_partition(h, 64) % 32);
	}
	assert_true(__builtin_popcount(seen) >= 3);

	/* spread: 10000 random hosts (IPv4 and IPv6) over 64 partitions */
	enum { N = 10000, P = 64 };
	guint count[P] = {0};
	GRand *rnd = g_rand_new_with_seed(17);
	for (guint i = 0; i < N; i++) {
		if (i % 2) {
			guint32 v = g_rand_int(rnd);
			flow_addr_set_v4(h, (const guint8 *)&v);
		} else {
			for (guint k = 0; k < 16; k += 4) {
				guint32 v = g_rand_int(rnd);
				memcpy(h + k, &v, 4);
			}
		}
		guint p = cluster_partition(h, P);
		assert_true(p < P);
		count[p]++;
	}
	g_rand_free(rnd);
	double mean = (double)N / P, chi2 = 0;
	guint lo = N, hi = 0;
	for (guint p = 0; p < P; p++) {
		chi2 += (count[p] - mean) * (count[p] - mean) / mean;
		lo = MIN(lo, count[p]);
		hi = MAX(hi, count[p]);
	}
	print_message("partitions: 10000 random hosts over 64: min %u max %u (mean %.1f), "
		      "chi2 %.1f (63 df)\n",
		      lo, hi, mean, chi2);
	/* chi2 with 63 degrees of freedom: 99.9 % of uniform draws stay below 103 */
	assert_true(chi2 < 103);
	assert_true(lo > mean * 0.7 && hi < mean * 1.3);
	/* a contiguous internal range, the usual case: a /18 within 15 % of even (220..280
	 * of 256 by the Python) */
	memset(count, 0, sizeof count);
	for (guint i = 0; i < 16384; i++) {
		guint8 v4[4] = {10, 20, (guint8)(i >> 8), (guint8)i};
		flow_addr_set_v4(h, v4);
		count[cluster_partition(h, P)]++;
	}
	for (guint p = 0; p < P; p++)
		assert_true(count[p] >= 256 * 0.85 && count[p] <= 256 * 1.15);
}

/* ---- size: what a typical port-25 flow costs ---- */

/* An internal host's SMTP attempts as an IPFIX exporter reports them: IPv4, one exporter,
 * flags, packets, bytes, start and end; received in bursts (several flows per datagram). */
static double
typical_bytes_per_flow(guint n)
{
	g_autofree Flow *f = g_new0(Flow, n);
	GRand *rnd = g_rand_new_with_seed(25);
	gint64 recv = T0;
	for (guint i = 0; i < n; i++) {
		if (i % 8 == 0)
			recv += g_rand_int_range(rnd, 0, 200);
		f[i].recv_ms = recv;
		f[i].end_ms = recv - g_rand_int_range(rnd, 0, 15000);
		f[i].start_ms = f[i].end_ms - g_rand_int_range(rnd, 0, 5000);
		gboolean failed = g_rand_int_range(rnd, 0, 3) == 0;
		f[i].packets = failed ? g_rand_int_range(rnd, 1, 4) : g_rand_int_range(rnd, 5, 30);
		f[i].bytes = f[i].packets * g_rand_int_range(rnd, 40, 600);
		guint8 s[4] = {10, 1, 2, (guint8)g_rand_int_range(rnd, 1, 255)};
		guint32 d = g_rand_int(rnd);
		flow_addr_set_v4(f[i].src, s);
		flow_addr_set_v4(f[i].dst, (const guint8 *)&d);
		f[i].sport = (guint16)g_rand_int_range(rnd, 32768, 61000);
		f[i].dport = 25;
		f[i].proto = 6;
		f[i].tcp_flags = failed ? 0x02 : 0x1b;
		f[i].has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_TIMES | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
		f[i].sampling = 1;
		f[i].version = 10;
	}
	g_rand_free(rnd);
	ClusterBatch b;
	init_batch(&b, f, n, 1);
	b.clock_ms = recv + 100;
	g_autoptr(GByteArray) one = g_byte_array_new(), all = g_byte_array_new();
	cluster_wire_batch_encode(&b, all);
	b.n_flows = 0;
	cluster_wire_batch_encode(&b, one);
	round_trip(&b);
	return (double)(all->len - one->len) / n;
}

typedef struct {
	GArray *flows;
} Collected;

static void
collect(const Flow *flows, guint n, gpointer data)
{
	g_array_append_vals(((Collected *)data)->flows, flows, n);
}

/* The flows of a fixture capture through the collector, encoded in batches of up to 1000
 * and decoded back unchanged; returns the bytes per port-25 flow (header not counted),
 * and the port-25 flows' count in *n25. */
static double
fixture_bytes_per_flow(const char *name, guint *n25)
{
	const char *dir = g_getenv("FIXTURES");
	assert_non_null(dir);
	g_autofree char *path = g_build_filename(dir, name, NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(Replay) r = replay_open(path, &error);
	if (r == NULL)
		fail_msg("%s", error->message);
	Collected c = {g_array_new(FALSE, FALSE, sizeof(Flow))};
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	FlowBatch *fb = flow_batch_new(64, collect, &c);
	Collector *col = collector_new(&cfg, fb);
	ReplayDatagram dg;
	while (replay_next(r, &dg, &error))
		collector_input(col, dg.addr, dg.port, dg.payload, dg.len, dg.ts_ms);
	assert_null(error);
	flow_batch_flush(fb);
	collector_free(col);
	flow_batch_free(fb);

	const Flow *all = (const Flow *)(void *)c.flows->data;
	guint32 max_exp = 0;
	for (guint i = 0; i < c.flows->len; i++)
		max_exp = MAX(max_exp, all[i].exporter);
	assert_true(max_exp < CLUSTER_WIRE_MAX_EXPORTERS);
	/* all of them round-trip */
	for (guint i = 0; i < c.flows->len; i += 1000) {
		ClusterBatch b;
		init_batch(&b, all + i, MIN(1000u, c.flows->len - i), max_exp + 1);
		round_trip(&b);
	}
	/* the port-25 ones: their size */
	g_autoptr(GArray) smtp = g_array_new(FALSE, FALSE, sizeof(Flow));
	for (guint i = 0; i < c.flows->len; i++) {
		if (all[i].dport == 25)
			g_array_append_val(smtp, all[i]);
	}
	*n25 = smtp->len;
	gsize bytes = 0;
	for (guint i = 0; i < smtp->len; i += 1000) {
		ClusterBatch b;
		guint n = MIN(1000u, smtp->len - i);
		init_batch(&b, (const Flow *)(void *)smtp->data + i, n, max_exp + 1);
		b.clock_ms = g_array_index(smtp, Flow, i).recv_ms;
		g_autoptr(GByteArray) out = g_byte_array_new(), head = g_byte_array_new();
		cluster_wire_batch_encode(&b, out);
		b.n_flows = 0;
		cluster_wire_batch_encode(&b, head);
		bytes += out->len - head->len;
	}
	g_array_unref(c.flows);
	return smtp->len ? (double)bytes / smtp->len : 0;
}

static void
test_bytes_per_record(void **state)
{
	(void)state;
	double typical = typical_bytes_per_flow(10000);
	print_message("typical port-25 flow (IPv4, flags, packets, bytes, times): %.2f bytes "
		      "(sizeof(Flow) %zu)\n",
		      typical, sizeof(Flow));
	/* what the format was designed to: a regression shows here */
	assert_true(typical <= 30);
	static const char *const fixtures[] = {"scenario-ipfix.pcap", "scenario-v9.pcap",
					       "scenario-v5.pcap", "scenario-sflow.pcap",
					       "softflowd-ipfix.pcap"};
	for (guint i = 0; i < G_N_ELEMENTS(fixtures); i++) {
		guint n;
		double per = fixture_bytes_per_flow(fixtures[i], &n);
		print_message("%s: %u port-25 flows, %.2f bytes each\n", fixtures[i], n, per);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_round_trip),
	    cmocka_unit_test(test_batch_each_field),
	    cmocka_unit_test(test_batch_tick_and_max),
	    cmocka_unit_test(test_batch_encode_refuses),
	    cmocka_unit_test(test_batch_every_truncation),
	    cmocka_unit_test(test_batch_hostile),
	    cmocka_unit_test(test_alert_round_trip),
	    cmocka_unit_test(test_alert_hostile),
	    cmocka_unit_test(test_alert_id),
	    cmocka_unit_test(test_history),
	    cmocka_unit_test(test_ctl_round_trip),
	    cmocka_unit_test(test_ctl_hostile),
	    cmocka_unit_test(test_partition),
	    cmocka_unit_test(test_bytes_per_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
