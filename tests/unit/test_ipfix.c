/* Unit tests for the IPFIX decoder (collector/ipfix.c and the template engine in template*.c)
 * through collector_input(): every decoded field (reduced-length counters, enterprise and
 * RFC 5103 reverse elements, variable-length fields, each time encoding), options sampling,
 * withdrawals, sequence accounting in RFC 7011 and softflowd modes, caps and expiry,
 * truncation sweeps, named hostile vectors and the hostile fixtures in fixtures/hostile/ipfix. */
#include "dgram.h"

#define NOW G_GINT64_CONSTANT(1700000100000)
#define EXPORT_S 1700000000u
#define EXPORT_MS (G_GINT64_CONSTANT(1700000000) * 1000)
#define DOM 1u
#define NTP_EPOCH_OFFSET G_GUINT64_CONSTANT(2208988800)
#define PEN_REVERSE 29305

/* Main IPv4 template: enterprise elements with the numbers of sourceIPv4Address and
 * octetDeltaCount (PEN 9) sit before the real ones and must be skipped. 63-byte records. */
static const FieldSpec T_MAIN[] = {
    {8, 4, 0}, {12, 4, 0}, {8, 4, 9}, {7, 2, 0},   {11, 2, 0},	{4, 1, 0},  {6, 2, 0},
    {2, 8, 0}, {1, 8, 9},  {1, 8, 0}, {152, 8, 0}, {153, 8, 0}, {10, 4, 0},
};
/* RFC 7011 6.2 reduced-length counters: 3-byte packets, 4-byte octets; seconds times */
static const FieldSpec T_RED4[] = {{8, 4, 0}, {12, 4, 0},  {2, 3, 0},
				   {1, 4, 0}, {150, 4, 0}, {151, 4, 0}};
/* 3-byte octets, 1-byte packets */
static const FieldSpec T_RED3[] = {{8, 4, 0}, {12, 4, 0}, {1, 3, 0}, {2, 1, 0}};
/* IPv6 biflow: RFC 5103 reverse octets (8 bytes) and packets (reduced to 4); NTP times */
static const FieldSpec T_BI[] = {
    {27, 16, 0}, {28, 16, 0},	      {7, 2, 0},	   {11, 2, 0},	{4, 1, 0},   {1, 8, 0},
    {2, 8, 0},	 {1, 8, PEN_REVERSE}, {2, 4, PEN_REVERSE}, {156, 8, 0}, {157, 8, 0},
};
/* NAT44, firewallEvent, flowDirection, delta-microsecond times, samplingInterval */
static const FieldSpec T_NAT[] = {
    {8, 4, 0},	 {12, 4, 0},  {7, 2, 0},   {11, 2, 0},	{4, 1, 0},  {225, 4, 0},
    {226, 4, 0}, {227, 2, 0}, {228, 2, 0}, {233, 1, 0}, {61, 1, 0}, {158, 4, 0},
    {159, 4, 0}, {34, 4, 0},  {2, 4, 0},   {1, 4, 0},
};
/* interfaceName as a variable-length field between fixed ones; total counters */
static const FieldSpec T_VAR[] = {{8, 4, 0}, {82, 65535, 0}, {7, 2, 0}, {11, 2, 0},
				  {4, 1, 0}, {85, 8, 0},     {86, 8, 0}};
/* data records naming a sampler (48), a selector (302), sysUpTime times, or PSAMP fields */
static const FieldSpec T_SID[] = {{8, 4, 0}, {12, 4, 0}, {48, 2, 0}, {1, 4, 0}};
static const FieldSpec T_SEL[] = {{8, 4, 0}, {12, 4, 0}, {302, 4, 0}, {1, 4, 0}};
static const FieldSpec T_UP[] = {{8, 4, 0}, {12, 4, 0}, {22, 4, 0}, {21, 4, 0}, {1, 4, 0}};
static const FieldSpec T_PS[] = {{8, 4, 0}, {12, 4, 0}, {305, 4, 0}, {306, 4, 0}, {1, 4, 0}};
/* options: samplerId -> samplingInterval, selectorId -> 305/306, system init time */
static const FieldSpec O_SAMP[] = {{48, 2, 0}, {34, 4, 0}};
static const FieldSpec O_PSAMP[] = {{302, 4, 0}, {305, 4, 0}, {306, 4, 0}};
static const FieldSpec O_INIT[] = {{144, 4, 0}, {160, 8, 0}};
/* the small template most tests use: 16-byte records */
static const FieldSpec T_SMALL[] = {{8, 4, 0}, {12, 4, 0}, {2, 8, 0}};

static GByteArray *
ipfix_new(guint32 seq, guint32 domain)
{
	GByteArray *g = g_byte_array_new();
	dg_ipfix_header(g, EXPORT_S, seq, domain);
	return g;
}

/* A template set holding one template. */
static void
add_template(GByteArray *g, guint id, const FieldSpec *f, gsize n)
{
	gsize s = dg_set_begin(g, 2);
	dg_template(g, id, f, n);
	dg_set_end(g, s);
}

static void
add_options_template(GByteArray *g, guint id, guint scope, const FieldSpec *f, gsize n)
{
	gsize s = dg_set_begin(g, 3);
	dg_ipfix_options_template(g, id, scope, f, n);
	dg_set_end(g, s);
}

#define ADD_TEMPLATE(g, id, spec) add_template(g, id, spec, G_N_ELEMENTS(spec))

static void
rec_small(GByteArray *g, guint8 n)
{
	dg_ip4(g, 10, 0, 0, n);
	dg_ip4(g, 192, 0, 2, 1);
	dg_u64(g, n);
}

/* A data set of `n` small records numbered from `first`. */
static void
add_small_set(GByteArray *g, guint id, guint8 first, guint n)
{
	gsize s = dg_set_begin(g, id);
	for (guint i = 0; i < n; i++)
		rec_small(g, (guint8)(first + i));
	dg_set_end(g, s);
}

static Flow
want_small(guint8 n, guint32 domain)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	f.packets = n;
	flow_set_v4(f.src, 10, 0, 0, n);
	flow_set_v4(f.dst, 192, 0, 2, 1);
	f.sampling = 1;
	f.domain = domain;
	f.has = FLOW_HAS_PACKETS;
	f.version = 10;
	return f;
}

static Flow
flow_v4(guint8 a, guint8 b, guint8 c, guint8 d, guint8 w, guint8 x, guint8 y, guint8 z)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	flow_set_v4(f.src, a, b, c, d);
	flow_set_v4(f.dst, w, x, y, z);
	f.sampling = 1;
	f.domain = DOM;
	f.version = 10;
	return f;
}

/* ---- decoded fields --------------------------------------------------------------------- */

static void
test_ipfix_main_fields(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = ipfix_new(0, DOM);
	ADD_TEMPLATE(t, 256, T_MAIN);
	dg_ipfix_end(t);
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	gsize s = dg_set_begin(d, 256);
	for (guint i = 0; i < 2; i++) {
		dg_ip4(d, 10, 0, 0, (guint8)(1 + i));
		dg_ip4(d, 192, 0, 2, 25);
		dg_ip4(d, 1, 2, 3, 4); /* enterprise element 8 */
		dg_u16(d, 40000 + i);
		dg_u16(d, 25);
		dg_u8(d, 6);
		dg_u16(d, 0x0112); /* RFC 7125: NS bit above the 8 classic flags */
		dg_u64(d, 10 + i);
		dg_u64(d, 999999); /* enterprise element 1 */
		dg_u64(d, 1500 + i);
		dg_u64(d, (guint64)(EXPORT_MS - 10000));
		dg_u64(d, (guint64)(EXPORT_MS - 1000));
		dg_u32(d, 3);
	}
	dg_zeros(d, 3); /* padding shorter than a record */
	dg_set_end(d, s);
	dg_ipfix_end(d);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, t, NOW), 0);
	assert_int_equal(harness_input(h, d, NOW), 2);
	for (guint i = 0; i < 2; i++) {
		Flow w = flow_v4(10, 0, 0, (guint8)(1 + i), 192, 0, 2, 25);
		w.start_ms = EXPORT_MS - 10000;
		w.end_ms = EXPORT_MS - 1000;
		w.packets = 10 + i;
		w.bytes = 1500 + i;
		w.sport = (guint16)(40000 + i);
		w.dport = 25;
		w.proto = 6;
		w.tcp_flags = 0x12;
		w.has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_TIMES | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
		assert_flow_equal(&w, harness_flow(h, i));
	}
	const SessionStats *st = harness_stats(h, DOM);
	assert_non_null(st);
	assert_null(harness_hdr_stats(h));
	assert_int_equal(st->datagrams, 2);
	assert_int_equal(st->bytes, t->len + d->len);
	assert_int_equal(st->records, 2);
	assert_int_equal(st->options_records, 0);
	assert_int_equal(st->template_records, 1);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->no_template_sets, 0);
	assert_int_equal(st->templates_refused, 0);
	assert_int_equal(st->templates_withdrawn, 0);
	assert_int_equal(st->templates_expired, 0);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->sets_skipped, 0);
	assert_int_equal(st->sampling, 1);
	assert_int_equal(st->version, 10);
	assert_int_equal(collector_totals(h->c)->records, 2);
	harness_free(h);
}

/* RFC 7011 6.2: counters sent in fewer bytes decode to the same value. */
static void
test_ipfix_reduced_length(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 257, T_RED4);
	ADD_TEMPLATE(g, 258, T_RED3);
	gsize s = dg_set_begin(g, 257);
	dg_ip4(g, 10, 0, 0, 1);
	dg_ip4(g, 10, 0, 0, 2);
	dg_u24(g, 0x0a0b0c);
	dg_u32(g, 0xf1020304u);
	dg_u32(g, EXPORT_S - 5);
	dg_u32(g, EXPORT_S);
	dg_set_end(g, s);
	s = dg_set_begin(g, 258);
	dg_ip4(g, 10, 0, 0, 3);
	dg_ip4(g, 10, 0, 0, 4);
	dg_u24(g, 0xfedcba);
	dg_u8(g, 7);
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);

	Flow a = flow_v4(10, 0, 0, 1, 10, 0, 0, 2);
	a.packets = 0x0a0b0c;
	a.bytes = 0xf1020304u;
	a.start_ms = EXPORT_MS - 5000;
	a.end_ms = EXPORT_MS;
	a.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TIMES;
	assert_flow_equal(&a, harness_flow(h, 0));
	Flow b = flow_v4(10, 0, 0, 3, 10, 0, 0, 4);
	b.packets = 7;
	b.bytes = 0xfedcba;
	b.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	assert_flow_equal(&b, harness_flow(h, 1));
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	harness_free(h);
}

static const guint8 V6_SRC[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25};
static const guint8 V6_DST[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};

/* RFC 5103 reverse counters (PEN 29305) and NTP-format microsecond times (RFC 7011 6.1.9). */
static void
test_ipfix_biflow_ipv6_ntp(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 259, T_BI);
	gsize s = dg_set_begin(g, 259);
	dg_bytes(g, V6_SRC, 16);
	dg_bytes(g, V6_DST, 16);
	dg_u16(g, 25);
	dg_u16(g, 40000);
	dg_u8(g, 6);
	dg_u64(g, 5000);
	dg_u64(g, 12);
	/* reverse octets and packets */
	dg_u64(g, 700);
	dg_u32(g, 9);
	dg_u64(g, ((EXPORT_S - 2 + NTP_EPOCH_OFFSET) << 32) | 0x80000000u); /* +0.5 s */
	dg_u64(g, (EXPORT_S + NTP_EPOCH_OFFSET) << 32);
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);

	Flow w;
	memset(&w, 0, sizeof w);
	w.recv_ms = NOW;
	memcpy(w.src, V6_SRC, 16);
	memcpy(w.dst, V6_DST, 16);
	w.sport = 25;
	w.dport = 40000;
	w.proto = 6;
	w.bytes = 5000;
	w.packets = 12;
	w.rev_bytes = 700;
	w.rev_packets = 9;
	w.start_ms = EXPORT_MS - 1500;
	w.end_ms = EXPORT_MS;
	w.sampling = 1;
	w.domain = DOM;
	w.version = 10;
	w.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_REVERSE | FLOW_HAS_TIMES;
	assert_flow_equal(&w, harness_flow(h, 0));
	harness_free(h);
}

/* NAT44 (225-228), firewallEvent (233), flowDirection (61), times as microseconds before the
 * export time (158/159), samplingInterval (34) in the data record itself. */
static void
test_ipfix_nat_event_delta_sampling(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 260, T_NAT);
	gsize s = dg_set_begin(g, 260);
	dg_ip4(g, 10, 0, 0, 5);
	dg_ip4(g, 198, 51, 100, 7);
	dg_u16(g, 1234);
	dg_u16(g, 25);
	dg_u8(g, 6);
	dg_ip4(g, 203, 0, 113, 5);
	dg_ip4(g, 198, 51, 100, 8);
	dg_u16(g, 61000);
	dg_u16(g, 2525);
	dg_u8(g, FW_EVENT_DENIED);
	dg_u8(g, 1);
	dg_u32(g, 5000000);
	dg_u32(g, 1000);
	dg_u32(g, 64);
	dg_u32(g, 1);
	dg_u32(g, 60);
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);

	Flow w = flow_v4(10, 0, 0, 5, 198, 51, 100, 7);
	flow_set_v4(w.nat_src, 203, 0, 113, 5);
	flow_set_v4(w.nat_dst, 198, 51, 100, 8);
	w.sport = 1234;
	w.dport = 25;
	w.nat_sport = 61000;
	w.nat_dport = 2525;
	w.proto = 6;
	w.fw_event = FW_EVENT_DENIED;
	w.direction = 1;
	w.start_ms = EXPORT_MS - 5000;
	w.end_ms = EXPORT_MS - 1;
	w.sampling = 64;
	w.packets = 1;
	w.bytes = 60;
	w.has = FLOW_HAS_NAT | FLOW_HAS_FW_EVENT | FLOW_HAS_DIRECTION | FLOW_HAS_TIMES |
		FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	assert_flow_equal(&w, harness_flow(h, 0));
	assert_int_equal(harness_stats(h, DOM)->sampling, 64);
	harness_free(h);
}

/* RFC 7011 7: a 1-byte length, or 255 then a 2-byte length; fields after a variable-length
 * one are found at their shifted offsets. */
static void
test_ipfix_varlen(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 261, T_VAR);
	gsize s = dg_set_begin(g, 261);
	guint lens[] = {4, 0, 300};
	for (guint i = 0; i < 3; i++) {
		dg_ip4(g, 10, 0, 0, (guint8)(1 + i));
		if (lens[i] < 255) {
			dg_u8(g, lens[i]);
		} else {
			dg_u8(g, 255);
			dg_u16(g, lens[i]);
		}
		for (guint j = 0; j < lens[i]; j++)
			dg_u8(g, 'a' + j % 26);
		dg_u16(g, 1000 + i);
		dg_u16(g, 25);
		dg_u8(g, 6);
		dg_u64(g, 100 + i);
		dg_u64(g, 2 + i);
	}
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 3);
	for (guint i = 0; i < 3; i++) {
		Flow w;
		memset(&w, 0, sizeof w);
		w.recv_ms = NOW;
		flow_set_v4(w.src, 10, 0, 0, (guint8)(1 + i));
		w.sport = (guint16)(1000 + i);
		w.dport = 25;
		w.proto = 6;
		w.bytes = 100 + i;
		w.packets = 2 + i;
		w.sampling = 1;
		w.domain = DOM;
		w.version = 10;
		w.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
		assert_flow_equal(&w, harness_flow(h, i));
	}
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	harness_free(h);
}

/* A variable-length field whose length runs past the set: the whole records before it are
 * kept, the rest is counted once as bad_varlen. Also the 255 escape cut off after 1 byte. */
static void
test_ipfix_varlen_past_set(void **state)
{
	(void)state;
	static const FieldSpec last[] = {{8, 4, 0}, {82, 65535, 0}};
	for (guint variant = 0; variant < 2; variant++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		if (variant == 0)
			ADD_TEMPLATE(g, 261, T_VAR);
		else
			ADD_TEMPLATE(g, 261, last);
		gsize s = dg_set_begin(g, 261);
		dg_ip4(g, 10, 0, 0, 1);
		dg_u8(g, 1);
		dg_u8(g, 'x');
		if (variant == 0) {
			dg_u16(g, 1);
			dg_u16(g, 2);
			dg_u8(g, 17);
			dg_u64(g, 1);
			dg_u64(g, 1);
		}
		dg_ip4(g, 10, 0, 0, 2);
		if (variant == 0) {
			dg_u8(g, 200); /* 200 bytes promised, 21 left */
			dg_zeros(g, 21);
		} else {
			dg_u8(g, 255); /* the escape, then only one of its two length bytes */
			dg_u8(g, 0);
		}
		dg_set_end(g, s);
		dg_ipfix_end(g);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 1);
		assert_malformed_only(harness_stats(h, DOM), MAL_VARLEN, 1);
		assert_int_equal(harness_stats(h, DOM)->records, 1);
		assert_int_equal(harness_flow(h, 0)->src[15], 1);
		harness_free(h);
	}
}

/* ---- sampling and options --------------------------------------------------------------- */

static void
test_ipfix_options_sampler_id(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	add_options_template(g, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	gsize s = dg_set_begin(g, 400);
	dg_u16(g, 9);
	dg_u32(g, 1000);
	dg_u16(g, 10);
	dg_u32(g, 50);
	dg_set_end(g, s);
	ADD_TEMPLATE(g, 262, T_SID);
	s = dg_set_begin(g, 262);
	for (guint i = 0; i < 2; i++) {
		dg_ip4(g, 10, 0, 0, 1);
		dg_ip4(g, 10, 0, 0, 2);
		dg_u16(g, 9 + i);
		dg_u32(g, 100);
	}
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->options_records, 2);
	assert_int_equal(st->records, 2);
	assert_int_equal(st->template_records, 2);
	for (guint i = 0; i < 2; i++) {
		Flow w = flow_v4(10, 0, 0, 1, 10, 0, 0, 2);
		w.bytes = 100;
		w.has = FLOW_HAS_BYTES;
		w.sampling = i == 0 ? 1000 : 50;
		assert_flow_equal(&w, harness_flow(h, i));
	}
	assert_int_equal(st->sampling, 50); /* the last interval seen */
	assert_malformed_only(st, MAL_N, 0);
	harness_free(h);
}

/* RFC 5477 PSAMP: samplingPacketInterval 1, samplingPacketSpace 99 = 1 in 100, learnt per
 * selectorId from options, or carried in the data record itself. */
static void
test_ipfix_psamp_305_306(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	add_options_template(g, 401, 1, O_PSAMP, G_N_ELEMENTS(O_PSAMP));
	gsize s = dg_set_begin(g, 401);
	dg_u32(g, 3);
	dg_u32(g, 1);
	dg_u32(g, 99);
	dg_set_end(g, s);
	ADD_TEMPLATE(g, 263, T_SEL);
	s = dg_set_begin(g, 263);
	dg_ip4(g, 10, 0, 0, 1);
	dg_ip4(g, 10, 0, 0, 2);
	dg_u32(g, 3);
	dg_u32(g, 100);
	dg_set_end(g, s);
	ADD_TEMPLATE(g, 265, T_PS);
	s = dg_set_begin(g, 265);
	dg_ip4(g, 10, 0, 0, 1);
	dg_ip4(g, 10, 0, 0, 2);
	dg_u32(g, 2);
	dg_u32(g, 18); /* 2 of every 20 */
	dg_u32(g, 100);
	dg_set_end(g, s);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);
	Flow w = flow_v4(10, 0, 0, 1, 10, 0, 0, 2);
	w.bytes = 100;
	w.has = FLOW_HAS_BYTES;
	w.sampling = 100;
	assert_flow_equal(&w, harness_flow(h, 0));
	w.sampling = 10;
	assert_flow_equal(&w, harness_flow(h, 1));
	assert_int_equal(harness_stats(h, DOM)->options_records, 1);
	assert_int_equal(harness_stats(h, DOM)->sampling, 10);
	harness_free(h);
}

/* flowStart/EndSysUpTime (22/21) count from systemInitTimeMilliseconds (160), learnt from
 * options data; without it the times stay unknown. */
static void
test_ipfix_sysuptime_times(void **state)
{
	(void)state;
	const gint64 init = EXPORT_MS - 3600000;
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	ADD_TEMPLATE(d, 264, T_UP);
	gsize s = dg_set_begin(d, 264);
	dg_ip4(d, 10, 0, 0, 1);
	dg_ip4(d, 10, 0, 0, 2);
	dg_u32(d, 1000);
	dg_u32(d, 2500);
	dg_u32(d, 40);
	dg_set_end(d, s);
	dg_ipfix_end(d);
	g_autoptr(GByteArray) o = ipfix_new(1, DOM);
	add_options_template(o, 402, 1, O_INIT, G_N_ELEMENTS(O_INIT));
	s = dg_set_begin(o, 402);
	dg_u32(o, 77);
	dg_u64(o, (guint64)init);
	dg_set_end(o, s);
	dg_ipfix_end(o);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, d, NOW), 1);
	Flow w = flow_v4(10, 0, 0, 1, 10, 0, 0, 2);
	w.bytes = 40;
	w.has = FLOW_HAS_BYTES;
	assert_flow_equal(&w, harness_flow(h, 0));

	assert_int_equal(harness_input(h, o, NOW), 0);
	assert_int_equal(harness_input(h, d, NOW), 1);
	w.start_ms = init + 1000;
	w.end_ms = init + 2500;
	w.has |= FLOW_HAS_TIMES;
	assert_flow_equal(&w, harness_flow(h, 1));
	harness_free(h);
}

/* ---- templates: withdrawal, IDs, caps, expiry --------------------------------------------- */

/* RFC 7011 8.1: field count 0 withdraws one template; data for it is then template-less. */
static void
test_ipfix_withdraw_single(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 300, T_SMALL);
	ADD_TEMPLATE(g, 301, T_SMALL);
	add_small_set(g, 300, 1, 1);
	gsize s = dg_set_begin(g, 2);
	dg_u16(g, 300);
	dg_u16(g, 0);
	dg_set_end(g, s);
	add_small_set(g, 300, 2, 1);
	add_small_set(g, 301, 3, 1);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);
	Flow w1 = want_small(1, DOM), w3 = want_small(3, DOM);
	assert_flow_equal(&w1, harness_flow(h, 0));
	assert_flow_equal(&w3, harness_flow(h, 1));
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->templates_withdrawn, 1);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->template_records, 2);
	assert_int_equal(st->no_template_sets, 1);
	assert_int_equal(st->no_template_bytes, 16);
	assert_malformed_only(st, MAL_N, 0);
	harness_free(h);
}

/* Template ID = set ID withdraws every template of that kind: set 2 takes the data templates
 * and leaves options templates, set 3 the options templates. */
static void
test_ipfix_withdraw_all(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = ipfix_new(0, DOM);
	ADD_TEMPLATE(t, 300, T_SMALL);
	ADD_TEMPLATE(t, 301, T_SMALL);
	add_options_template(t, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	dg_ipfix_end(t);
	g_autoptr(GByteArray) w2 = ipfix_new(0, DOM);
	gsize s = dg_set_begin(w2, 2);
	dg_u16(w2, 2);
	dg_u16(w2, 0);
	dg_set_end(w2, s);
	add_small_set(w2, 301, 1, 1);
	dg_ipfix_end(w2);
	g_autoptr(GByteArray) w3 = ipfix_new(0, DOM);
	s = dg_set_begin(w3, 3);
	dg_u16(w3, 3);
	dg_u16(w3, 0);
	dg_set_end(w3, s);
	dg_ipfix_end(w3);
	Harness *h = harness_new(NULL);

	harness_input(h, t, NOW);
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->templates_active, 3);
	assert_int_equal(harness_input(h, w2, NOW), 0);
	assert_int_equal(st->templates_withdrawn, 2);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->no_template_sets, 1);
	harness_input(h, w3, NOW);
	assert_int_equal(st->templates_withdrawn, 3);
	assert_int_equal(st->templates_active, 0);
	assert_malformed_only(st, MAL_N, 0);

	/* the exporter-wide template count went down too: a cap of 3 admits 3 again */
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_templates = 3;
	Harness *h2 = harness_new(&cfg);
	harness_input(h2, t, NOW);
	harness_input(h2, w2, NOW);
	harness_input(h2, w3, NOW);
	harness_input(h2, t, NOW);
	assert_int_equal(harness_stats(h2, DOM)->templates_active, 3);
	assert_int_equal(harness_stats(h2, DOM)->templates_refused, 0);
	harness_free(h2);
	harness_free(h);
}

/* A withdrawal of an ID below 256 (other than the set ID) is a bad template ID. */
static void
test_ipfix_withdraw_below_256(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 300, T_SMALL);
	gsize s = dg_set_begin(g, 2);
	dg_u16(g, 100);
	dg_u16(g, 0);
	dg_set_end(g, s);
	add_small_set(g, 300, 1, 1);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	const SessionStats *st = harness_stats(h, DOM);
	assert_malformed_only(st, MAL_TEMPLATE_ID, 1);
	assert_int_equal(st->templates_withdrawn, 0);
	assert_int_equal(st->templates_active, 1);
	harness_free(h);
}

/* IDs below 256 are skipped and counted once per set; the next record in the set is still
 * installed and used. */
static void
test_ipfix_template_id_below_256(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	gsize s = dg_set_begin(g, 2);
	dg_template(g, 255, T_SMALL, G_N_ELEMENTS(T_SMALL));
	dg_template(g, 4, T_SMALL, G_N_ELEMENTS(T_SMALL));
	dg_template(g, 300, T_SMALL, G_N_ELEMENTS(T_SMALL));
	dg_set_end(g, s);
	add_small_set(g, 300, 1, 2);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);
	const SessionStats *st = harness_stats(h, DOM);
	assert_malformed_only(st, MAL_TEMPLATE_ID, 1);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->template_records, 1);
	Flow w = want_small(2, DOM);
	assert_flow_equal(&w, harness_flow(h, 1));
	harness_free(h);
}

/* 65535 fields in a 12-byte set; options templates with scope 0 or scope > count. */
static void
test_ipfix_bad_template_counts(void **state)
{
	(void)state;
	static const FieldSpec one[] = {{8, 4, 0}};
	for (guint variant = 0; variant < 4; variant++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		gsize s = dg_set_begin(g, variant == 0 ? 2 : 3);
		dg_u16(g, 300);
		switch (variant) {
		case 0:
			dg_u16(g, 65535);
			break;
		case 1:
			dg_u16(g, 65535); /* field count */
			dg_u16(g, 1);	  /* scope count */
			break;
		case 2:
			dg_u16(g, 1);
			dg_u16(g, 0); /* RFC 7011 3.4.2.2: scope count must not be 0 */
			break;
		default:
			dg_u16(g, 1);
			dg_u16(g, 2);
			break;
		}
		dg_fields(g, one, 1);
		dg_set_end(g, s);
		add_small_set(g, 300, 1, 1); /* not reached: the message stops at the bad set */
		dg_ipfix_end(g);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		const SessionStats *st = harness_stats(h, DOM);
		assert_malformed_only(st, MAL_TEMPLATE, 1);
		assert_int_equal(st->templates_active, 0);
		assert_int_equal(st->no_template_sets, 0);
		harness_free(h);
	}
}

/* A field specifier cut in the middle, and a template whose fields are all 0 bytes long
 * (its records would take no room: a data set would never end). */
static void
test_ipfix_truncated_and_empty_template(void **state)
{
	(void)state;
	static const FieldSpec zero[] = {{8, 0, 0}, {12, 0, 0}};
	for (guint variant = 0; variant < 3; variant++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		gsize s = dg_set_begin(g, 2);
		if (variant == 0) {
			dg_template(g, 300, zero, 2);
		} else {
			dg_u16(g, 300);
			dg_u16(g, 2);
			dg_u16(g, 8);
			dg_u16(g, 4);
			dg_u16(g, variant == 1 ? 0x8001 : 1); /* enterprise bit: PEN missing */
			dg_u16(g, 4);
		}
		dg_set_end(g, s);
		dg_ipfix_end(g);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		const SessionStats *st = harness_stats(h, DOM);
		if (variant == 2) {
			/* 8 field bytes for 2 fields: complete, installed */
			assert_malformed_only(st, MAL_N, 0);
			assert_int_equal(st->templates_active, 1);
		} else {
			assert_malformed_only(st, MAL_TEMPLATE, 1);
			assert_int_equal(st->templates_active, 0);
		}
		harness_free(h);
	}
}

/* RFC 7011 3.3.1: a template set may end in padding; zero ID and count is padding. */
static void
test_ipfix_template_set_padding(void **state)
{
	(void)state;
	for (guint pad = 1; pad <= 8; pad++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		gsize s = dg_set_begin(g, 2);
		dg_template(g, 300, T_SMALL, G_N_ELEMENTS(T_SMALL));
		dg_zeros(g, pad);
		dg_set_end(g, s);
		add_small_set(g, 300, 1, 1);
		dg_ipfix_end(g);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 1);
		assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
		assert_int_equal(harness_stats(h, DOM)->templates_active, 1);
		harness_free(h);
	}
}

/* A redefinition replaces the template (RFC 7011 8.4 over UDP): later data uses the new
 * layout, and the count of active templates does not grow. */
static void
test_ipfix_template_redefinition(void **state)
{
	(void)state;
	static const FieldSpec other[] = {{12, 4, 0}, {8, 4, 0}, {1, 8, 0}};
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 300, T_SMALL);
	ADD_TEMPLATE(g, 300, other);
	add_small_set(g, 300, 1, 1);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	Flow w = flow_v4(192, 0, 2, 1, 10, 0, 0, 1);
	w.bytes = 1;
	w.has = FLOW_HAS_BYTES;
	assert_flow_equal(&w, harness_flow(h, 0));
	assert_int_equal(harness_stats(h, DOM)->templates_active, 1);
	assert_int_equal(harness_stats(h, DOM)->template_records, 2);
	harness_free(h);
}

/* Data before its template: counted, not malformed, decoded once the template arrives. */
static void
test_ipfix_data_before_template(void **state)
{
	(void)state;
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	add_small_set(d, 300, 1, 2);
	dg_ipfix_end(d);
	g_autoptr(GByteArray) t = ipfix_new(2, DOM);
	ADD_TEMPLATE(t, 300, T_SMALL);
	add_small_set(t, 300, 3, 2);
	dg_ipfix_end(t);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, d, NOW), 0);
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->no_template_sets, 1);
	assert_int_equal(st->no_template_bytes, 32);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(harness_input(h, t, NOW), 2);
	Flow w3 = want_small(3, DOM), w4 = want_small(4, DOM);
	assert_flow_equal(&w3, harness_flow(h, 0));
	assert_flow_equal(&w4, harness_flow(h, 1));
	assert_int_equal(st->no_template_sets, 1);
	harness_free(h);
}

/* Templates are scoped by observation domain (RFC 7011 3.1): domain 2 cannot use domain 1's. */
static void
test_ipfix_domains_scope_templates(void **state)
{
	(void)state;
	g_autoptr(GByteArray) a = ipfix_new(0, 1);
	ADD_TEMPLATE(a, 300, T_SMALL);
	add_small_set(a, 300, 1, 1);
	dg_ipfix_end(a);
	g_autoptr(GByteArray) b = ipfix_new(0, 2);
	add_small_set(b, 300, 2, 1);
	dg_ipfix_end(b);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, a, NOW), 1);
	assert_int_equal(harness_input(h, b, NOW), 0);
	assert_int_equal(harness_flow(h, 0)->domain, 1);
	assert_int_equal(harness_stats(h, 2)->no_template_sets, 1);
	assert_int_equal(harness_stats(h, 1)->no_template_sets, 0);
	harness_free(h);
}

/* max_templates per exporter (all domains), max_domains per exporter, max_exporters. */
static void
test_ipfix_caps(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_templates = 2;
	cfg.max_domains = 2;
	cfg.max_exporters = 1;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) a = ipfix_new(0, 1);
	ADD_TEMPLATE(a, 300, T_SMALL);
	ADD_TEMPLATE(a, 301, T_SMALL);
	ADD_TEMPLATE(a, 302, T_SMALL);
	add_small_set(a, 302, 1, 1);
	dg_ipfix_end(a);
	g_autoptr(GByteArray) b = ipfix_new(0, 2);
	ADD_TEMPLATE(b, 300, T_SMALL);
	dg_ipfix_end(b);
	g_autoptr(GByteArray) c = ipfix_new(0, 3);
	ADD_TEMPLATE(c, 300, T_SMALL);
	dg_ipfix_end(c);

	assert_int_equal(harness_input(h, a, NOW), 0);
	const SessionStats *s1 = harness_stats(h, 1);
	assert_int_equal(s1->templates_refused, 1);
	assert_int_equal(s1->templates_active, 2);
	assert_int_equal(s1->no_template_sets, 1);
	harness_input(h, b, NOW);
	assert_int_equal(harness_stats(h, 2)->templates_refused, 1);
	assert_int_equal(harness_stats(h, 2)->templates_active, 0);
	harness_input(h, c, NOW);
	assert_null(harness_stats(h, 3));
	assert_int_equal(harness_hdr_stats(h)->datagrams, 1);
	assert_int_equal(harness_input_port(h, 9999, a->data, a->len, NOW), 0);
	const CollectorTotals *t = collector_totals(h->c);
	assert_int_equal(t->domains_refused, 1);
	assert_int_equal(t->exporters_refused, 1);
	assert_int_equal(t->datagrams, 4);
	harness_free(h);
}

/* Template memory is capped in bytes across every exporter (many source ports must not
 * multiply max_templates), and one template's field count is capped; each refusal counted.
 * Withdrawal and expiry give the bytes back. Idle domains expire and free their slot. */
static void
test_ipfix_template_memory(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_template_fields = 3;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) one = ipfix_new(0, 1);
	ADD_TEMPLATE(one, 300, T_SMALL);
	dg_ipfix_end(one);
	harness_input(h, one, NOW);
	const CollectorTotals *t = collector_totals(h->c);
	guint64 each = t->template_bytes;
	assert_true(each > 100 && each < 4096); /* the struct plus the 16-byte wire record */
	harness_free(h);

	/* room for exactly three templates, from three exporters (source ports) */
	cfg.template_memory = 3 * each;
	h = harness_new(&cfg);
	t = collector_totals(h->c);
	for (guint16 port = 1000; port < 1005; port++)
		harness_input_port(h, port, one->data, one->len, NOW);
	assert_int_equal(t->template_bytes, 3 * each);
	assert_int_equal(t->templates_over_memory, 2);
	/* a resend of an installed template replaces it at no extra cost */
	harness_input_port(h, 1000, one->data, one->len, NOW);
	assert_int_equal(t->template_bytes, 3 * each);
	assert_int_equal(t->templates_over_memory, 2);
	/* four fields: over max_template_fields */
	static const FieldSpec T_FOUR[] = {{8, 4, 0}, {12, 4, 0}, {2, 8, 0}, {1, 8, 0}};
	g_autoptr(GByteArray) four = ipfix_new(0, 1);
	ADD_TEMPLATE(four, 301, T_FOUR);
	dg_ipfix_end(four);
	harness_input_port(h, 1000, four->data, four->len, NOW);
	assert_int_equal(t->templates_over_memory, 3);
	/* expiry hands the bytes back; the next exporter's template then fits */
	collector_expire(h->c, NOW + (gint64)cfg.template_timeout_s * 1000 + 1);
	assert_int_equal(t->template_bytes, 0);
	harness_input_port(h, 1004, one->data, one->len, NOW + 1);
	assert_int_equal(t->template_bytes, each);
	harness_free(h);

	/* domains idle for exporter_timeout expire while their exporter stays */
	collector_config_defaults(&cfg);
	cfg.max_domains = 2;
	cfg.exporter_timeout_s = 60;
	h = harness_new(&cfg);
	t = collector_totals(h->c);
	g_autoptr(GByteArray) d2 = ipfix_new(0, 2);
	ADD_TEMPLATE(d2, 300, T_SMALL);
	dg_ipfix_end(d2);
	g_autoptr(GByteArray) d3 = ipfix_new(0, 3);
	ADD_TEMPLATE(d3, 300, T_SMALL);
	dg_ipfix_end(d3);
	harness_input(h, one, NOW);
	harness_input(h, d2, NOW);
	harness_input(h, d3, NOW);
	assert_int_equal(t->domains_refused, 1);
	harness_input(h, one, NOW + 50000); /* domain 1 stays busy, domain 2 goes idle */
	collector_expire(h->c, NOW + 61000);
	assert_int_equal(t->domains_expired, 1);
	assert_null(harness_stats(h, 2));
	assert_int_equal(t->template_bytes, each);
	harness_input(h, d3, NOW + 62000);
	assert_non_null(harness_stats(h, 3));
	assert_int_equal(harness_stats(h, 3)->templates_active, 1);
	assert_int_equal(t->domains_refused, 1);
	harness_free(h);
}

/* template_timeout_s: collector_expire() drops idle templates (options ones too); a template
 * found stale when its data arrives is dropped there. */
static void
test_ipfix_template_expiry(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.template_timeout_s = 30;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) t = ipfix_new(0, DOM);
	ADD_TEMPLATE(t, 300, T_SMALL);
	add_options_template(t, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	dg_ipfix_end(t);
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	add_small_set(d, 300, 1, 1);
	dg_ipfix_end(d);

	harness_input(h, t, NOW);
	const SessionStats *st = harness_stats(h, DOM);
	collector_expire(h->c, NOW + 30000);
	assert_int_equal(st->templates_active, 2);
	collector_expire(h->c, NOW + 30001);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(st->templates_expired, 2);
	assert_int_equal(harness_input(h, d, NOW + 30002), 0);
	assert_int_equal(st->no_template_sets, 1);

	harness_input(h, t, NOW + 40000);
	assert_int_equal(harness_input(h, d, NOW + 70000), 1);
	assert_int_equal(harness_input(h, d, NOW + 70001), 0);
	assert_int_equal(st->templates_expired, 4);
	assert_int_equal(st->no_template_sets, 2);
	harness_free(h);
}

/* ---- hostile structure -------------------------------------------------------------------- */

/* Set length 0, 3, past the message, past the message length but inside the datagram, and
 * 1-3 stray bytes after the last set: one bad set length, earlier sets kept. */
static void
test_ipfix_set_length_hostile(void **state)
{
	(void)state;
	for (guint variant = 0; variant < 7; variant++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		ADD_TEMPLATE(g, 300, T_SMALL);
		add_small_set(g, 300, 1, 1);
		gsize mlen = 0;
		switch (variant) {
		case 0:
		case 1:
			dg_u16(g, 300);
			dg_u16(g, variant == 0 ? 0 : 3);
			rec_small(g, 2);
			break;
		case 2:
			dg_u16(g, 300);
			dg_u16(g, 4 + 32);
			rec_small(g, 2);
			break;
		case 3:
			/* the set fits the datagram, not the message length */
			mlen = g->len + 4 + 8;
			add_small_set(g, 300, 2, 1);
			break;
		default:
			dg_zeros(g, variant - 3); /* 1, 2, 3 stray bytes */
			break;
		}
		dg_ipfix_end(g);
		if (mlen != 0)
			dg_put_u16(g, 2, (guint)mlen);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 1);
		Flow w = want_small(1, DOM);
		assert_flow_equal(&w, harness_flow(h, 0));
		const SessionStats *st = harness_stats(h, DOM);
		assert_malformed_only(st, MAL_SET_LENGTH, 1);
		assert_int_equal(st->records, 1);
		assert_int_equal(st->datagrams, 1);
		harness_free(h);
	}
}

static void
test_ipfix_short_data_set(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 300, T_SMALL);
	gsize s = dg_set_begin(g, 300);
	dg_zeros(g, 15);
	dg_set_end(g, s);
	add_small_set(g, 300, 1, 1); /* not reached */
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 0);
	assert_malformed_only(harness_stats(h, DOM), MAL_SHORT_SET, 1);
	assert_int_equal(harness_stats(h, DOM)->templates_active, 1);
	harness_free(h);
}

/* RFC 7011 3.1: the length covers the header: below 16 or beyond the datagram is bad; a
 * datagram longer than its message is read only up to the length. */
static void
test_ipfix_message_length(void **state)
{
	(void)state;
	guint bad[] = {0, 4, 15, 0xffff};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GByteArray) g = ipfix_new(0, DOM);
		ADD_TEMPLATE(g, 300, T_SMALL);
		add_small_set(g, 300, 1, 1);
		dg_put_u16(g, 2, bad[i]);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		const SessionStats *st = harness_stats(h, DOM);
		assert_malformed_only(st, MAL_LENGTH, 1);
		assert_int_equal(st->datagrams, 1);
		assert_int_equal(st->templates_active, 0);
		assert_false(st->seq_init);
		harness_free(h);
	}
	/* one byte more than the message says: ignored */
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 300, T_SMALL);
	add_small_set(g, 300, 1, 1);
	dg_ipfix_end(g);
	dg_u8(g, 0xff);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	harness_free(h);
}

static void
test_ipfix_short_header(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input_port(h, HARNESS_PORT, g->data, 15, NOW), 0);
	const SessionStats *hdr = harness_hdr_stats(h);
	assert_malformed_only(hdr, MAL_SHORT_HEADER, 1);
	assert_int_equal(hdr->version, 10);
	assert_null(harness_stats(h, DOM));
	/* a header-only message is well formed */
	assert_int_equal(harness_input(h, g, NOW), 0);
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	harness_free(h);
}

/* Set IDs 0, 1 and 4-255 are not for a collector: skipped and counted (RFC 7011 3.3.2). */
static void
test_ipfix_reserved_sets(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	guint ids[] = {0, 1, 4, 255};
	for (guint i = 0; i < G_N_ELEMENTS(ids); i++) {
		gsize s = dg_set_begin(g, ids[i]);
		dg_u32(g, 0x01020304);
		dg_set_end(g, s);
	}
	ADD_TEMPLATE(g, 300, T_SMALL);
	add_small_set(g, 300, 1, 1);
	dg_ipfix_end(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	assert_int_equal(harness_stats(h, DOM)->sets_skipped, 4);
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	harness_free(h);
}

/* ---- sequence numbers ------------------------------------------------------------------ */

typedef struct {
	guint32 seq;
	guint records; /* small records in the message (0: template only) */
	gboolean lost; /* sent by the exporter, never received */
} SeqMsg;

static const SessionStats *
feed_seq(Harness *h, const SeqMsg *m, guint n)
{
	for (guint i = 0; i < n; i++) {
		if (m[i].lost)
			continue;
		g_autoptr(GByteArray) g = ipfix_new(m[i].seq, DOM);
		ADD_TEMPLATE(g, 300, T_SMALL);
		if (m[i].records > 0)
			add_small_set(g, 300, 1, m[i].records);
		dg_ipfix_end(g);
		assert_int_equal(harness_input(h, g, NOW), m[i].records);
	}
	return harness_stats(h, DOM);
}

/* RFC 7011 3.1: the sequence counts data records sent before this message (options data
 * records included), so a lost message shows as its record count. */
static void
test_ipfix_seq_rfc(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	/* first an options record: it counts in the sequence */
	g_autoptr(GByteArray) o = ipfix_new(0, DOM);
	add_options_template(o, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	gsize s = dg_set_begin(o, 400);
	dg_u16(o, 1);
	dg_u32(o, 1);
	dg_set_end(o, s);
	dg_ipfix_end(o);
	harness_input(h, o, NOW);
	static const SeqMsg m[] = {
	    {1, 2, FALSE},  {3, 3, FALSE},  {6, 0, FALSE},  {6, 4, TRUE},
	    {10, 1, FALSE}, {11, 2, FALSE}, {13, 5, FALSE},
	};
	const SessionStats *st = feed_seq(h, m, G_N_ELEMENTS(m));
	assert_int_equal(st->seq_lost, 4);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->options_records, 1);
	harness_free(h);
}

/* softflowd's header sequence already includes the message's own records; the collector
 * learns that and still counts exactly the lost message's records. */
static void
test_ipfix_seq_softflowd(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	static const SeqMsg m[] = {
	    {0, 0, FALSE},  {2, 2, FALSE},  {5, 3, FALSE},  {9, 4, TRUE},
	    {10, 1, FALSE}, {12, 2, FALSE}, {12, 0, FALSE}, {15, 3, FALSE},
	};
	const SessionStats *st = feed_seq(h, m, G_N_ELEMENTS(m));
	assert_int_equal(st->seq_lost, 4);
	assert_int_equal(st->seq_resets, 0);
	harness_free(h);
}

/* Equal record counts in every message make both readings agree: nothing to learn, no loss. */
static void
test_ipfix_seq_constant_counts(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	static const SeqMsg rfc[] = {{0, 2, FALSE}, {2, 2, FALSE}, {4, 2, FALSE}, {6, 2, FALSE}};
	assert_int_equal(feed_seq(h, rfc, 4)->seq_lost, 0);
	harness_free(h);
	h = harness_new(NULL);
	static const SeqMsg own[] = {{2, 2, FALSE}, {4, 2, FALSE}, {6, 2, TRUE}, {8, 2, FALSE}};
	assert_int_equal(feed_seq(h, own, 4)->seq_lost, 2);
	harness_free(h);
}

/* A sequence going backwards (exporter restart) or jumping far ahead is a resync. */
static void
test_ipfix_seq_resets(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	static const SeqMsg m[] = {
	    {1000, 2, FALSE}, {1002, 2, FALSE},	      {0, 2, FALSE},
	    {2, 1, FALSE},    {0x40000000, 1, FALSE}, {0x40000001, 1, FALSE},
	};
	const SessionStats *st = feed_seq(h, m, G_N_ELEMENTS(m));
	assert_int_equal(st->seq_resets, 2);
	assert_int_equal(st->seq_lost, 0);
	harness_free(h);
}

/* softflowd counts only flow records in its sequence, not the options record it sends with
 * its templates: a message carrying one is neither loss nor a restart. */
static void
test_ipfix_seq_softflowd_options(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	static const SeqMsg m[] = {{2, 2, FALSE}, {5, 3, FALSE}};
	feed_seq(h, m, G_N_ELEMENTS(m));
	g_autoptr(GByteArray) o = ipfix_new(7, DOM);
	add_options_template(o, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	gsize s = dg_set_begin(o, 400);
	dg_u16(o, 1);
	dg_u32(o, 1);
	dg_set_end(o, s);
	ADD_TEMPLATE(o, 300, T_SMALL);
	add_small_set(o, 300, 1, 2);
	dg_ipfix_end(o);
	assert_int_equal(harness_input(h, o, NOW), 2);
	static const SeqMsg m2[] = {{8, 1, FALSE}, {10, 2, FALSE}};
	const SessionStats *st = feed_seq(h, m2, G_N_ELEMENTS(m2));
	assert_int_equal(st->options_records, 1);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	harness_free(h);
}

/* The softflowd captures in fixtures/: every datagram decodes cleanly, and the sequence shows
 * neither loss nor restarts (the captures have none). */
static void
test_ipfix_softflowd_captures(void **state)
{
	(void)state;
	static const char *const names[] = {"softflowd-ipfix.pcap", "softflowd-ipfix-milli.pcap",
					    "softflowd-ipfix-sampled.pcap"};
	g_autoptr(GString) resets = g_string_new(NULL);
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		Harness *h = harness_new(NULL);
		guint16 port = 0;
		guint n = harness_replay_fixture(h, names[i], &port);
		const SessionStats *st = harness_stats_port(h, port, 0);
		assert_non_null(st);
		assert_int_equal(st->datagrams, n);
		assert_true(st->records > 0);
		assert_int_equal(st->records, h->flows->len);
		assert_true(st->options_records > 0);
		assert_malformed_only(st, MAL_N, 0);
		assert_int_equal(st->no_template_sets, 0);
		assert_int_equal(st->seq_lost, 0);
		if (st->seq_resets != 0) /* reported after every capture was checked */
			g_string_append_printf(resets, " %s: seq_resets = %" G_GUINT64_FORMAT,
					       names[i], st->seq_resets);
		guint32 sampling = i == 2 ? 10 : 1;
		assert_int_equal(st->sampling, sampling);
		for (guint j = 0; j < h->flows->len; j++) {
			assert_int_equal(harness_flow(h, j)->sampling, sampling);
			assert_int_equal(harness_flow(h, j)->version, 10);
		}
		harness_free(h);
	}
	if (resets->len > 0)
		fail_msg("expected no restarts:%s", resets->str);
}

/* Records that arrived but could not be decoded (no template yet) were not lost in transit:
 * seq_lost must not count them. */
static void
test_ipfix_seq_no_template_not_lost(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	add_small_set(d, 300, 1, 2);
	dg_ipfix_end(d);
	g_autoptr(GByteArray) t = ipfix_new(2, DOM); /* RFC 7011: 2 records sent before */
	ADD_TEMPLATE(t, 300, T_SMALL);
	dg_ipfix_end(t);
	g_autoptr(GByteArray) d2 = ipfix_new(2, DOM);
	add_small_set(d2, 300, 1, 2);
	dg_ipfix_end(d2);
	harness_input(h, d, NOW);
	harness_input(h, t, NOW);
	harness_input(h, d2, NOW);
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->no_template_sets, 1);
	assert_int_equal(st->records, 2);
	assert_int_equal(st->seq_lost, 0);
	harness_free(h);
}

/* Likewise records behind a malformed set: counted as malformed, not as lost. The exporter
 * is first seen to follow RFC 7011 (the sequence counts records before the message). */
static void
test_ipfix_seq_malformed_not_lost(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	static const SeqMsg m[] = {{0, 2, FALSE}, {2, 3, FALSE}};
	feed_seq(h, m, G_N_ELEMENTS(m));
	g_autoptr(GByteArray) a = ipfix_new(5, DOM);
	add_small_set(a, 300, 1, 2);
	gsize s = dg_set_begin(a, 300);
	dg_zeros(a, 8); /* short set: the message stops here */
	dg_set_end(a, s);
	add_small_set(a, 300, 3, 1); /* sent, never decoded */
	dg_ipfix_end(a);
	assert_int_equal(harness_input(h, a, NOW), 2);
	static const SeqMsg m2[] = {{8, 1, FALSE}, {9, 2, FALSE}};
	const SessionStats *st = feed_seq(h, m2, G_N_ELEMENTS(m2));
	assert_malformed_only(st, MAL_SHORT_SET, 1);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->seq_lost, 0);
	harness_free(h);
}

/* ---- truncation sweeps ------------------------------------------------------------------ */

/* No IPFIX prefix is a whole message: the header length always promises more. */
static void
ipfix_sweep_check(const SweepResult *r, gpointer user_data)
{
	guint setup_templates = GPOINTER_TO_UINT(user_data);
	const CollectorTotals *t = collector_totals(r->h->c);
	assert_int_equal(r->records, 0);
	if (r->prefix < 2) {
		assert_int_equal(t->bad_version, 1);
		return;
	}
	const SessionStats *st = harness_stats(r->h, DOM);
	if (r->prefix < 16) {
		assert_malformed_only(harness_hdr_stats(r->h), MAL_SHORT_HEADER, 1);
		if (setup_templates == 0)
			assert_null(st);
		return;
	}
	assert_null(harness_hdr_stats(r->h));
	assert_malformed_only(st, MAL_LENGTH, 1);
	assert_int_equal(st->templates_active, setup_templates);
	assert_int_equal(st->template_records, setup_templates);
	assert_int_equal(st->options_records, 0);
	assert_int_equal(st->no_template_sets, 0);
}

static GByteArray *
sweep_templates(void)
{
	GByteArray *t = ipfix_new(0, DOM);
	ADD_TEMPLATE(t, 256, T_MAIN);
	ADD_TEMPLATE(t, 261, T_VAR);
	add_options_template(t, 400, 1, O_SAMP, G_N_ELEMENTS(O_SAMP));
	dg_ipfix_end(t);
	return t;
}

static void
test_ipfix_sweep_template(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = sweep_templates();
	sweep_prefixes(NULL, t, NULL, ipfix_sweep_check, GUINT_TO_POINTER(0));
}

static void
test_ipfix_sweep_data(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = sweep_templates();
	g_autoptr(GByteArray) d = ipfix_new(0, DOM);
	gsize s = dg_set_begin(d, 261);
	for (guint i = 0; i < 2; i++) {
		dg_ip4(d, 10, 0, 0, 1);
		dg_u8(d, 4);
		dg_bytes(d, "eth0", 4);
		dg_u16(d, 1);
		dg_u16(d, 2);
		dg_u8(d, 6);
		dg_u64(d, 1);
		dg_u64(d, 1);
	}
	dg_set_end(d, s);
	s = dg_set_begin(d, 400);
	dg_u16(d, 1);
	dg_u32(d, 10);
	dg_set_end(d, s);
	dg_ipfix_end(d);
	sweep_prefixes(t, d, NULL, ipfix_sweep_check, GUINT_TO_POINTER(3));
}

static void
test_ipfix_sweep_options(void **state)
{
	(void)state;
	g_autoptr(GByteArray) o = ipfix_new(0, DOM);
	add_options_template(o, 401, 1, O_PSAMP, G_N_ELEMENTS(O_PSAMP));
	gsize s = dg_set_begin(o, 401);
	dg_u32(o, 3);
	dg_u32(o, 1);
	dg_u32(o, 99);
	dg_set_end(o, s);
	dg_ipfix_end(o);
	sweep_prefixes(NULL, o, NULL, ipfix_sweep_check, GUINT_TO_POINTER(0));
}

static void
test_ipfix_random(void **state)
{
	(void)state;
	random_datagrams(10, 0x5eed000a, 64);
}

/* ---- fixtures/hostile/ipfix ------------------------------------------------------------ */

/* Feeds a hostile fixture as its README says: messages cut at each header's length field
 * (bytes 2-3), in order, to one exporter. A length below 16 or past the end of the file
 * leaves the rest as one last datagram. Returns the harness; *n_msgs = datagrams fed. */
static Harness *
feed_hostile(const char *name, guint *n_msgs)
{
	g_autofree char *path = fixture_path("hostile", "ipfix", name, NULL);
	g_autofree gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) error = NULL;
	if (!g_file_get_contents(path, &data, &len, &error))
		fail_msg("%s", error->message);

	Harness *h = harness_new(NULL);
	gsize off = 0;
	guint n = 0;
	while (off < len) {
		gsize rest = len - off;
		gsize mlen =
		    rest >= 4 ? ((gsize)(guint8)data[off + 2] << 8) | (guint8)data[off + 3] : 0;
		if (mlen < 16 || mlen > rest)
			mlen = rest;
		guint8 *msg = g_memdup2(data + off, mlen); /* exact size: ASan sees over-reads */
		harness_input_port(h, HARNESS_PORT, msg, mlen, NOW + n);
		g_free(msg);
		off += mlen;
		n++;
	}
	*n_msgs = n;
	const CollectorTotals *t = collector_totals(h->c);
	StatsQuery q = harness_sums(h);
	assert_int_equal(t->datagrams, n);
	assert_int_equal(q.datagrams + t->bad_version, n);
	assert_int_equal(q.records, h->flows->len);
	return h;
}

/* Template 300 (16-byte records) and one record; then a data set holding 8 bytes. */
static void
test_hostile_r1_short_set(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("R1_short_set_overread", &n);
	assert_int_equal(n, 2);
	assert_int_equal(h->flows->len, 1);
	Flow w = flow_v4(10, 0, 0, 1, 10, 0, 0, 2);
	w.domain = 0;
	w.packets = 42;
	w.has = FLOW_HAS_PACKETS;
	assert_flow_equal(&w, harness_flow(h, 0));
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_SHORT_SET, 1);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->seq_lost, 0);
	harness_free(h);
}

/* A template with a 60000-byte field: one whole record in the first message, then a 4-byte
 * data set. Nothing is read beyond either datagram. */
static void
test_hostile_r1b_short_set_60k(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("R1b_short_set_overread_60k", &n);
	assert_int_equal(n, 2);
	assert_int_equal(h->flows->len, 1);
	Flow w;
	memset(&w, 0, sizeof w);
	w.recv_ms = NOW;
	w.bytes = 7; /* the record's last 8 bytes, inside the first datagram */
	w.has = FLOW_HAS_BYTES;
	w.sampling = 1;
	w.version = 10;
	assert_flow_equal(&w, harness_flow(h, 0));
	assert_malformed_only(harness_stats(h, 0), MAL_SHORT_SET, 1);
	harness_free(h);
}

/* A variable-length field whose length byte would sit exactly at the set end. */
static void
test_hostile_r2_varlen_length_byte(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("R2_varlen_len_byte_overread", &n);
	assert_int_equal(n, 1);
	assert_int_equal(h->flows->len, 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_VARLEN, 1);
	assert_int_equal(st->templates_active, 1);
	harness_free(h);
}

/* Template, its withdrawal, then data for the withdrawn ID: template-less, no records. */
static void
test_hostile_r4_withdrawal(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("R4_withdrawal_infinite_records", &n);
	assert_int_equal(n, 1);
	assert_int_equal(h->flows->len, 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->template_records, 1);
	assert_int_equal(st->templates_withdrawn, 1);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(st->no_template_sets, 1);
	assert_int_equal(st->no_template_bytes, 16);
	harness_free(h);
}

/* 100 messages, each a template with ID 255: 100 counts, nothing installed (and, under the
 * sanitizer build, nothing leaked). */
static void
test_hostile_r6_template_id_255(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("R6_template_id_below_256_leak_x100", &n);
	assert_int_equal(n, 100);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->datagrams, 100);
	assert_malformed_only(st, MAL_TEMPLATE_ID, 100);
	assert_int_equal(st->template_records, 0);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(h->flows->len, 0);
	harness_free(h);
}

/* Three softflowd-style messages whose template 1024 was mutated to a 296-byte record: each
 * message decodes the sets before its first data set of 1024 shorter than a record (5, 1
 * and 1 records), counts one short set and stops; the tail is not flow export. */
static void
test_hostile_two_short_sets(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("two_short_sets", &n);
	assert_int_equal(n, 4);
	assert_int_equal(collector_totals(h->c)->bad_version, 1);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->datagrams, 3);
	assert_int_equal(st->records, 7);
	assert_int_equal(h->flows->len, 7);
	assert_int_equal(st->options_records, 1);
	assert_int_equal(st->template_records, 5);
	assert_int_equal(st->templates_active, 5);
	assert_malformed_only(st, MAL_SHORT_SET, 3);
	harness_free(h);
}

/* Templates 300 and 331 (four variable-length fields); the data record's first variable
 * length (116) leaves too few bytes for the next length bytes. */
static void
test_hostile_varlen_offset(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("varlen_offset_overread", &n);
	assert_int_equal(n, 2);
	assert_int_equal(collector_totals(h->c)->bad_version, 1);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(h->flows->len, 0);
	assert_malformed_only(st, MAL_VARLEN, 1);
	assert_int_equal(st->templates_active, 2);
	harness_free(h);
}

/* A list-typed (subTemplateMultiList) field with lying inner lengths is just opaque bytes to
 * spamflow: the first record decodes (its source address), the second runs out of set. */
static void
test_hostile_stml(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("stml_overread", &n);
	assert_int_equal(n, 2);
	assert_int_equal(collector_totals(h->c)->bad_version, 1);
	assert_int_equal(h->flows->len, 1);
	Flow w;
	memset(&w, 0, sizeof w);
	w.recv_ms = NOW;
	flow_set_v4(w.src, 10, 0, 0, 9);
	w.sampling = 1;
	w.version = 10;
	assert_flow_equal(&w, harness_flow(h, 0));
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_VARLEN, 1);
	assert_int_equal(st->templates_active, 2);
	harness_free(h);
}

/* Template sets redefining 300 and 331 with odd list lengths, a template with ID 8, then a
 * data set longer than the message. */
static void
test_hostile_list_template(void **state)
{
	(void)state;
	guint n;
	Harness *h = feed_hostile("list_template_leak", &n);
	assert_int_equal(n, 2);
	assert_int_equal(collector_totals(h->c)->bad_version, 1);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(h->flows->len, 0);
	assert_int_equal(st->malformed[MAL_TEMPLATE_ID], 1);
	assert_int_equal(st->malformed[MAL_SET_LENGTH], 1);
	assert_int_equal(malformed_total(st), 2);
	assert_int_equal(st->template_records, 5);
	assert_int_equal(st->templates_active, 2);
	harness_free(h);
}

/* ---- dual-stack templates ------------------------------------------------------------------ */

/* Procera-style: IPv4 and IPv6 address fields in one template, the unused family zero. */
static const FieldSpec T_DUAL[] = {{8, 4, 0},  {12, 4, 0}, {27, 16, 0}, {28, 16, 0}, {7, 2, 0},
				   {11, 2, 0}, {4, 1, 0},  {1, 8, 0},   {2, 8, 0}};
/* the same with ipVersion (60) and NAT addresses of both families, and a variable-length
 * field first so the per-record offsets are exercised */
static const FieldSpec T_DUAL60[] = {{82, 65535, 0}, {60, 1, 0},   {8, 4, 0},   {12, 4, 0},
				     {27, 16, 0},    {28, 16, 0},  {225, 4, 0}, {281, 16, 0},
				     {7, 2, 0},      {11, 2, 0},   {4, 1, 0}};

static const guint8 V6A[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa};
static const guint8 V6B[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb};
static const guint8 V6N[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc};
static const guint8 ZERO16[16] = {0};

static void
rec_dual(GByteArray *g, const guint8 *s4, const guint8 *d4, const guint8 *s6, const guint8 *d6,
	 guint16 sport)
{
	static const guint8 z4[4] = {0};
	dg_bytes(g, s4 != NULL ? s4 : z4, 4);
	dg_bytes(g, d4 != NULL ? d4 : z4, 4);
	dg_bytes(g, s6 != NULL ? s6 : ZERO16, 16);
	dg_bytes(g, d6 != NULL ? d6 : ZERO16, 16);
	dg_u16(g, sport);
	dg_u16(g, 25);
	dg_u8(g, 6);
	dg_u64(g, 100);
	dg_u64(g, 2);
}

typedef struct {
	guint calls;
	CollectorNoticeInfo info;
} Notices;

static void
count_notice(CollectorNotice what, const CollectorNoticeInfo *info, gpointer data)
{
	Notices *n = data;
	if (what != NOTICE_AMBIGUOUS_ADDR)
		return;
	n->calls++;
	n->info = *info;
}

static void
test_ipfix_dual_stack(void **state)
{
	(void)state;
	static const guint8 a4[4] = {10, 0, 0, 1}, b4[4] = {192, 0, 2, 25};
	Notices nt = {0};
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.notice = count_notice;
	cfg.notice_data = &nt;
	Harness *h = harness_new(&cfg);

	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 270, T_DUAL);
	gsize s = dg_set_begin(g, 270);
	rec_dual(g, a4, b4, NULL, NULL, 1);   /* IPv4: the v6 fields zero */
	rec_dual(g, NULL, NULL, V6A, V6B, 2); /* IPv6 */
	rec_dual(g, NULL, NULL, NULL, NULL, 3); /* neither: ambiguous */
	rec_dual(g, a4, b4, V6A, V6B, 4);     /* both: ambiguous */
	rec_dual(g, a4, NULL, NULL, NULL, 5); /* IPv4 source only (dst 0.0.0.0) */
	dg_set_end(g, s);
	dg_ipfix_end(g);
	assert_int_equal(harness_input(h, g, NOW), 3);
	const Flow *f = harness_flow(h, 0);
	assert_addr_v4(f->src, 10, 0, 0, 1);
	assert_addr_v4(f->dst, 192, 0, 2, 25);
	assert_int_equal(f->sport, 1);
	assert_int_equal(f->packets, 2);
	f = harness_flow(h, 1);
	assert_memory_equal(f->src, V6A, 16);
	assert_memory_equal(f->dst, V6B, 16);
	assert_int_equal(f->sport, 2);
	f = harness_flow(h, 2);
	assert_addr_v4(f->src, 10, 0, 0, 1);
	assert_addr_v4(f->dst, 0, 0, 0, 0);
	assert_int_equal(f->sport, 5);
	const SessionStats *st = harness_stats(h, DOM);
	assert_int_equal(st->ambiguous_addr, 2);
	assert_int_equal(st->records, 3);
	assert_int_equal(malformed_total(st), 0);
	assert_int_equal(nt.calls, 1);
	assert_int_equal(nt.info.template_id, 270);
	assert_int_equal(nt.info.domain, DOM);
	assert_int_equal(nt.info.ipversion, -1);

	/* RFC 7011 sequence: the 5 records were received, so the next message at 5 is no loss */
	g_autoptr(GByteArray) n = ipfix_new(5, DOM);
	s = dg_set_begin(n, 270);
	rec_dual(n, NULL, NULL, NULL, NULL, 6);
	rec_dual(n, a4, b4, NULL, NULL, 7);
	dg_set_end(n, s);
	dg_ipfix_end(n);
	assert_int_equal(harness_input(h, n, NOW + 1), 1);
	g_autoptr(GByteArray) m = ipfix_new(7, DOM);
	s = dg_set_begin(m, 270);
	rec_dual(m, a4, b4, NULL, NULL, 8);
	dg_set_end(m, s);
	dg_ipfix_end(m);
	assert_int_equal(harness_input(h, m, NOW + 2), 1);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->ambiguous_addr, 3);
	assert_int_equal(nt.calls, 1); /* once per exporter */
	harness_free(h);
}

static void
rec_dual60(GByteArray *g, guint8 ipver, gboolean v4_set, gboolean v6_set, guint16 sport)
{
	static const guint8 a4[4] = {10, 0, 0, 2}, b4[4] = {192, 0, 2, 26}, n4[4] = {198, 18, 0, 1};
	static const guint8 z4[4] = {0};
	dg_u8(g, 3);
	dg_bytes(g, "eth", 3);
	dg_u8(g, ipver);
	dg_bytes(g, v4_set ? a4 : z4, 4);
	dg_bytes(g, v4_set ? b4 : z4, 4);
	dg_bytes(g, v6_set ? V6A : ZERO16, 16);
	dg_bytes(g, v6_set ? V6B : ZERO16, 16);
	dg_bytes(g, v4_set ? n4 : z4, 4);
	dg_bytes(g, v6_set ? V6N : ZERO16, 16);
	dg_u16(g, sport);
	dg_u16(g, 25);
	dg_u8(g, 6);
}

/* ipVersion decides, even when the other family is not zero; anything but 4 or 6 is
 * ambiguous. NAT addresses follow the chosen family. */
static void
test_ipfix_dual_stack_ipversion(void **state)
{
	(void)state;
	Notices nt = {0};
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.notice = count_notice;
	cfg.notice_data = &nt;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) g = ipfix_new(0, DOM);
	ADD_TEMPLATE(g, 271, T_DUAL60);
	gsize s = dg_set_begin(g, 271);
	rec_dual60(g, 4, TRUE, TRUE, 1);  /* 4 with v6 garbage: IPv4 */
	rec_dual60(g, 6, TRUE, TRUE, 2);  /* 6: IPv6 */
	rec_dual60(g, 5, TRUE, FALSE, 3); /* 5: ambiguous */
	rec_dual60(g, 6, FALSE, TRUE, 4);
	dg_set_end(g, s);
	dg_ipfix_end(g);
	assert_int_equal(harness_input(h, g, NOW), 3);
	const Flow *f = harness_flow(h, 0);
	assert_addr_v4(f->src, 10, 0, 0, 2);
	assert_addr_v4(f->dst, 192, 0, 2, 26);
	assert_addr_v4(f->nat_src, 198, 18, 0, 1);
	assert_true(f->has & FLOW_HAS_NAT);
	assert_int_equal(f->sport, 1);
	f = harness_flow(h, 1);
	assert_memory_equal(f->src, V6A, 16);
	assert_memory_equal(f->dst, V6B, 16);
	assert_memory_equal(f->nat_src, V6N, 16);
	assert_int_equal(f->sport, 2);
	f = harness_flow(h, 2);
	assert_memory_equal(f->src, V6A, 16);
	assert_int_equal(f->sport, 4);
	assert_int_equal(harness_stats(h, DOM)->ambiguous_addr, 1);
	assert_malformed_only(harness_stats(h, DOM), MAL_N, 0);
	assert_int_equal(nt.calls, 1);
	assert_int_equal(nt.info.ipversion, 5); /* the value that could not be placed */
	harness_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipfix_main_fields),
	    cmocka_unit_test(test_ipfix_reduced_length),
	    cmocka_unit_test(test_ipfix_biflow_ipv6_ntp),
	    cmocka_unit_test(test_ipfix_nat_event_delta_sampling),
	    cmocka_unit_test(test_ipfix_varlen),
	    cmocka_unit_test(test_ipfix_varlen_past_set),
	    cmocka_unit_test(test_ipfix_dual_stack),
	    cmocka_unit_test(test_ipfix_dual_stack_ipversion),
	    cmocka_unit_test(test_ipfix_options_sampler_id),
	    cmocka_unit_test(test_ipfix_psamp_305_306),
	    cmocka_unit_test(test_ipfix_sysuptime_times),
	    cmocka_unit_test(test_ipfix_withdraw_single),
	    cmocka_unit_test(test_ipfix_withdraw_all),
	    cmocka_unit_test(test_ipfix_withdraw_below_256),
	    cmocka_unit_test(test_ipfix_template_id_below_256),
	    cmocka_unit_test(test_ipfix_bad_template_counts),
	    cmocka_unit_test(test_ipfix_truncated_and_empty_template),
	    cmocka_unit_test(test_ipfix_template_set_padding),
	    cmocka_unit_test(test_ipfix_template_redefinition),
	    cmocka_unit_test(test_ipfix_data_before_template),
	    cmocka_unit_test(test_ipfix_domains_scope_templates),
	    cmocka_unit_test(test_ipfix_caps),
	    cmocka_unit_test(test_ipfix_template_memory),
	    cmocka_unit_test(test_ipfix_template_expiry),
	    cmocka_unit_test(test_ipfix_set_length_hostile),
	    cmocka_unit_test(test_ipfix_short_data_set),
	    cmocka_unit_test(test_ipfix_message_length),
	    cmocka_unit_test(test_ipfix_short_header),
	    cmocka_unit_test(test_ipfix_reserved_sets),
	    cmocka_unit_test(test_ipfix_seq_rfc),
	    cmocka_unit_test(test_ipfix_seq_softflowd),
	    cmocka_unit_test(test_ipfix_seq_constant_counts),
	    cmocka_unit_test(test_ipfix_seq_resets),
	    cmocka_unit_test(test_ipfix_seq_softflowd_options),
	    cmocka_unit_test(test_ipfix_softflowd_captures),
	    cmocka_unit_test(test_ipfix_seq_no_template_not_lost),
	    cmocka_unit_test(test_ipfix_seq_malformed_not_lost),
	    cmocka_unit_test(test_ipfix_sweep_template),
	    cmocka_unit_test(test_ipfix_sweep_data),
	    cmocka_unit_test(test_ipfix_sweep_options),
	    cmocka_unit_test(test_ipfix_random),
	    cmocka_unit_test(test_hostile_r1_short_set),
	    cmocka_unit_test(test_hostile_r1b_short_set_60k),
	    cmocka_unit_test(test_hostile_r2_varlen_length_byte),
	    cmocka_unit_test(test_hostile_r4_withdrawal),
	    cmocka_unit_test(test_hostile_r6_template_id_255),
	    cmocka_unit_test(test_hostile_two_short_sets),
	    cmocka_unit_test(test_hostile_varlen_offset),
	    cmocka_unit_test(test_hostile_stml),
	    cmocka_unit_test(test_hostile_list_template),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
