/* Unit tests for the NetFlow v9 decoder (collector/v9.c and the template engine in
 * template*.c) through collector_input(): templates, options, data records and every decoded
 * field, counters, sequence loss and restarts, caps and expiry, truncation sweeps and the
 * named hostile vectors (set lengths, zero and huge field counts, template IDs below 256). */
#include "dgram.h"

#define NOW G_GINT64_CONSTANT(1700000100000)
#define SECS 1700000000u
#define EXPORT_MS (G_GINT64_CONSTANT(1700000000) * 1000)
#define UPTIME 100000u
#define SRC_ID 7u

/* IPv4 with times (32-byte records), with two fields spamflow skips (10 input, 9 src mask) */
static const FieldSpec T4[] = {{8, 4, 0},  {12, 4, 0}, {7, 2, 0},  {11, 2, 0},
			       {4, 1, 0},  {6, 1, 0},  {2, 4, 0},  {1, 4, 0},
			       {22, 4, 0}, {21, 4, 0}, {10, 2, 0}, {9, 1, 0}};
#define T4_LEN 33
/* IPv6, 8-byte counters, samplerId (54-byte records) */
static const FieldSpec T6[] = {{27, 16, 0}, {28, 16, 0}, {7, 2, 0}, {11, 2, 0},
			       {4, 1, 0},   {2, 8, 0},	 {1, 8, 0}, {48, 1, 0}};
#define T6_LEN 54
/* Cisco NSEL style: NAT, firewall event (40005 before 233: the first wins), direction,
 * initiator/responder counters (60-byte records) */
static const FieldSpec TN[] = {{8, 4, 0},   {12, 4, 0},	   {7, 2, 0},	{11, 2, 0},
			       {4, 1, 0},   {225, 4, 0},   {226, 4, 0}, {227, 2, 0},
			       {228, 2, 0}, {40005, 1, 0}, {233, 1, 0}, {61, 1, 0},
			       {231, 8, 0}, {232, 8, 0},   {298, 8, 0}, {299, 8, 0}};
#define TN_LEN 60

static GByteArray *
v9_new(guint32 uptime, guint32 seq, guint32 source_id)
{
	GByteArray *g = g_byte_array_new();
	dg_v9_header(g, 0, uptime, SECS, seq, source_id);
	return g;
}

static void
add_templates(GByteArray *g)
{
	gsize s = dg_set_begin(g, 0);
	dg_template(g, 256, T4, G_N_ELEMENTS(T4));
	dg_template(g, 257, T6, G_N_ELEMENTS(T6));
	dg_template(g, 258, TN, G_N_ELEMENTS(TN));
	dg_set_end(g, s);
}

static void
rec_t4(GByteArray *g, guint8 last_octet, guint16 sport, guint32 first, guint32 last)
{
	dg_ip4(g, 10, 0, 0, last_octet);
	dg_ip4(g, 192, 0, 2, 25);
	dg_u16(g, sport);
	dg_u16(g, 25);
	dg_u8(g, 6);
	dg_u8(g, 0x12);
	dg_u32(g, 3);
	dg_u32(g, 180);
	dg_u32(g, first);
	dg_u32(g, last);
	dg_u16(g, 7);
	dg_u8(g, 24);
}

static Flow
want_t4(guint8 last_octet, guint16 sport, gint64 start, gint64 end, guint32 domain)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	f.start_ms = start;
	f.end_ms = end;
	f.packets = 3;
	f.bytes = 180;
	flow_set_v4(f.src, 10, 0, 0, last_octet);
	flow_set_v4(f.dst, 192, 0, 2, 25);
	f.sampling = 1;
	f.domain = domain;
	f.sport = sport;
	f.dport = 25;
	f.has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TIMES;
	f.proto = 6;
	f.tcp_flags = 0x12;
	f.version = 9;
	return f;
}

static const guint8 V6_SRC[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25};
static const guint8 V6_DST[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};

static void
rec_t6(GByteArray *g, guint8 sampler)
{
	dg_bytes(g, V6_SRC, 16);
	dg_bytes(g, V6_DST, 16);
	dg_u16(g, 443);
	dg_u16(g, 51000);
	dg_u8(g, 17);
	dg_u64(g, G_GUINT64_CONSTANT(5000000000)); /* needs all 8 bytes */
	dg_u64(g, G_GUINT64_CONSTANT(0x0102030405060708));
	dg_u8(g, sampler);
}

static Flow
want_t6(guint32 sampling, guint32 domain)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	f.packets = G_GUINT64_CONSTANT(5000000000);
	f.bytes = G_GUINT64_CONSTANT(0x0102030405060708);
	memcpy(f.src, V6_SRC, 16);
	memcpy(f.dst, V6_DST, 16);
	f.sampling = sampling;
	f.domain = domain;
	f.sport = 443;
	f.dport = 51000;
	f.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	f.proto = 17;
	f.version = 9;
	return f;
}

static void
rec_tn(GByteArray *g)
{
	dg_ip4(g, 10, 0, 0, 5);
	dg_ip4(g, 198, 51, 100, 7);
	dg_u16(g, 1234);
	dg_u16(g, 25);
	dg_u8(g, 6);
	dg_ip4(g, 203, 0, 113, 5);
	dg_ip4(g, 198, 51, 100, 8);
	dg_u16(g, 61000);
	dg_u16(g, 2525);
	dg_u8(g, FW_EVENT_DENIED);  /* 40005 */
	dg_u8(g, FW_EVENT_CREATED); /* 233: a duplicate kind, skipped */
	dg_u8(g, 1);		    /* egress */
	dg_u64(g, 60);
	dg_u64(g, 40);
	dg_u64(g, 1);
	dg_u64(g, 2);
}

static Flow
want_tn(guint32 domain)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	f.packets = 1;
	f.bytes = 60;
	f.rev_packets = 2;
	f.rev_bytes = 40;
	flow_set_v4(f.src, 10, 0, 0, 5);
	flow_set_v4(f.dst, 198, 51, 100, 7);
	flow_set_v4(f.nat_src, 203, 0, 113, 5);
	flow_set_v4(f.nat_dst, 198, 51, 100, 8);
	f.sampling = 1;
	f.domain = domain;
	f.sport = 1234;
	f.dport = 25;
	f.nat_sport = 61000;
	f.nat_dport = 2525;
	f.has = FLOW_HAS_NAT | FLOW_HAS_FW_EVENT | FLOW_HAS_DIRECTION | FLOW_HAS_PACKETS |
		FLOW_HAS_BYTES | FLOW_HAS_REVERSE;
	f.proto = 6;
	f.fw_event = FW_EVENT_DENIED;
	f.direction = 1;
	f.version = 9;
	return f;
}

/* Data flowsets for 256 (two records and 3 bytes of padding), 257 and 258. */
static void
add_data(GByteArray *g)
{
	gsize s = dg_set_begin(g, 256);
	rec_t4(g, 1, 40000, 90000, 99000);
	rec_t4(g, 2, 40001, 99500, 100000);
	dg_zeros(g, 3); /* RFC 3954 5.3: padding to a 4-byte boundary */
	dg_set_end(g, s);
	s = dg_set_begin(g, 257);
	rec_t6(g, 0);
	dg_zeros(g, 2);
	dg_set_end(g, s);
	s = dg_set_begin(g, 258);
	rec_tn(g);
	dg_set_end(g, s);
}

static void
assert_data_flows(const Harness *h, guint first, guint32 domain)
{
	Flow w0 = want_t4(1, 40000, EXPORT_MS - 10000, EXPORT_MS - 1000, domain);
	Flow w1 = want_t4(2, 40001, EXPORT_MS - 500, EXPORT_MS, domain);
	Flow w2 = want_t6(1, domain);
	Flow w3 = want_tn(domain);
	assert_flow_equal(&w0, harness_flow(h, first));
	assert_flow_equal(&w1, harness_flow(h, first + 1));
	assert_flow_equal(&w2, harness_flow(h, first + 2));
	assert_flow_equal(&w3, harness_flow(h, first + 3));
}

static void
test_v9_template_then_data(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = v9_new(UPTIME, 0, SRC_ID);
	add_templates(t);
	g_autoptr(GByteArray) d = v9_new(UPTIME, 1, SRC_ID);
	add_data(d);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, t, NOW), 0);
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_non_null(st);
	assert_int_equal(st->template_records, 3);
	assert_int_equal(st->templates_active, 3);
	assert_int_equal(st->records, 0);

	assert_int_equal(harness_input(h, d, NOW), 4);
	assert_int_equal(h->flows->len, 4);
	assert_data_flows(h, 0, SRC_ID);
	assert_null(harness_hdr_stats(h));
	assert_int_equal(st->datagrams, 2);
	assert_int_equal(st->bytes, t->len + d->len);
	assert_int_equal(st->records, 4);
	assert_int_equal(st->options_records, 0);
	assert_int_equal(st->template_records, 3);
	assert_int_equal(st->templates_active, 3);
	assert_int_equal(st->no_template_sets, 0);
	assert_int_equal(st->templates_refused, 0);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->sets_skipped, 0);
	assert_int_equal(st->sampling, 1);
	assert_int_equal(st->version, 9);
	assert_int_equal(collector_totals(h->c)->records, 4);
	harness_free(h);
}

/* Templates and data in one datagram; a reserved flowset ID (2-255) is skipped and counted. */
static void
test_v9_same_datagram_and_reserved_set(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	add_templates(g);
	gsize s = dg_set_begin(g, 128);
	dg_u32(g, 0xdeadbeef);
	dg_set_end(g, s);
	add_data(g);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 4);
	assert_data_flows(h, 0, 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->sets_skipped, 1);
	assert_malformed_only(st, MAL_N, 0);
	harness_free(h);
}

/* FIRST/LAST_SWITCHED taken before a sysUptime wrap still give the right times. */
static void
test_v9_uptime_wrap(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v9_new(1000, 0, 0);
	add_templates(g);
	gsize s = dg_set_begin(g, 256);
	rec_t4(g, 1, 40000, 0xfffff000u, 500); /* 5096 ms and 500 ms before the header */
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	Flow w = want_t4(1, 40000, EXPORT_MS - 5096, EXPORT_MS - 500, 0);
	assert_flow_equal(&w, harness_flow(h, 0));
	harness_free(h);
}

/* Data before its template: counted in no_template_sets (not malformed), decoded once the
 * template has arrived. */
static void
test_v9_data_before_template(void **state)
{
	(void)state;
	g_autoptr(GByteArray) d = v9_new(UPTIME, 0, SRC_ID);
	add_data(d);
	g_autoptr(GByteArray) t = v9_new(UPTIME, 1, SRC_ID);
	add_templates(t);
	g_autoptr(GByteArray) d2 = v9_new(UPTIME, 2, SRC_ID);
	add_data(d2);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, d, NOW), 0);
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_int_equal(st->no_template_sets, 3);
	assert_int_equal(st->no_template_bytes, (2 * T4_LEN + 3) + (T6_LEN + 2) + TN_LEN);
	assert_int_equal(st->records, 0);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(harness_input(h, t, NOW), 0);
	assert_int_equal(harness_input(h, d2, NOW), 4);
	assert_data_flows(h, 0, SRC_ID);
	assert_int_equal(st->no_template_sets, 3);
	assert_int_equal(st->records, 4);
	assert_int_equal(st->seq_lost, 0);
	harness_free(h);
}

/* RFC 3954 6.1 options: scope System (4 bytes) then SAMPLING_INTERVAL and SAMPLING_ALGORITHM.
 * The interval must be read after the scope bytes, not from them. */
static void
test_v9_options_sampling_interval(void **state)
{
	(void)state;
	static const FieldSpec scope[] = {{1, 4, 0}};
	static const FieldSpec opts[] = {{34, 4, 0}, {35, 1, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	gsize s = dg_set_begin(g, 1);
	dg_v9_options_template(g, 300, scope, 1, opts, 2);
	dg_set_end(g, s);
	s = dg_set_begin(g, 300);
	dg_ip4(g, 10, 0, 0, 254); /* scope: the exporter's address */
	dg_u32(g, 100);
	dg_u8(g, 2);
	dg_zeros(g, 3);
	dg_set_end(g, s);
	add_templates(g);
	add_data(g);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, g, NOW), 4);
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_int_equal(st->options_records, 1);
	assert_int_equal(st->template_records, 4);
	assert_int_equal(st->templates_active, 4);
	assert_int_equal(st->records, 4);
	assert_int_equal(st->sampling, 100);
	for (guint i = 0; i < 4; i++)
		assert_int_equal(harness_flow(h, i)->sampling, 100);
	assert_malformed_only(st, MAL_N, 0);
	harness_free(h);
}

/* Cisco sampler options: FLOW_SAMPLER_ID -> FLOW_SAMPLER_RANDOM_INTERVAL per sampler; data
 * records carry FLOW_SAMPLER_ID. */
static void
test_v9_options_sampler_id(void **state)
{
	(void)state;
	static const FieldSpec scope[] = {{1, 4, 0}};
	static const FieldSpec opts[] = {{48, 1, 0}, {49, 1, 0}, {50, 4, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	gsize s = dg_set_begin(g, 1);
	dg_v9_options_template(g, 301, scope, 1, opts, 3);
	dg_set_end(g, s);
	s = dg_set_begin(g, 301);
	dg_ip4(g, 10, 0, 0, 254);
	dg_u8(g, 5);
	dg_u8(g, 2);
	dg_u32(g, 1000);
	dg_ip4(g, 10, 0, 0, 254);
	dg_u8(g, 6);
	dg_u8(g, 2);
	dg_u32(g, 10);
	dg_set_end(g, s);
	add_templates(g);
	s = dg_set_begin(g, 257);
	rec_t6(g, 5);
	rec_t6(g, 6);
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, g, NOW), 2);
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_int_equal(st->options_records, 2);
	Flow w5 = want_t6(1000, SRC_ID), w6 = want_t6(10, SRC_ID);
	assert_flow_equal(&w5, harness_flow(h, 0));
	assert_flow_equal(&w6, harness_flow(h, 1));
	assert_malformed_only(st, MAL_N, 0);
	harness_free(h);
}

static void
test_v9_template_zero_fields(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	gsize s = dg_set_begin(g, 0);
	dg_u16(g, 256);
	dg_u16(g, 0);
	dg_set_end(g, s);
	add_templates(g); /* after a malformed set the rest of the datagram is not read */
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_TEMPLATE, 1);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(st->template_records, 0);
	harness_free(h);
}

/* RFC 3954 5.2 requires IDs above 255: the record is skipped, counted once for the set, and
 * the next record in the same set is still installed. */
static void
test_v9_template_id_below_256(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	gsize s = dg_set_begin(g, 0);
	dg_template(g, 255, T4, G_N_ELEMENTS(T4));
	dg_template(g, 0, T4, G_N_ELEMENTS(T4));
	dg_template(g, 256, T4, G_N_ELEMENTS(T4));
	dg_set_end(g, s);
	s = dg_set_begin(g, 256);
	rec_t4(g, 1, 40000, 90000, 99000);
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_TEMPLATE_ID, 1);
	assert_int_equal(st->templates_active, 1);
	assert_int_equal(st->template_records, 1);
	harness_free(h);
}

/* 65535 fields declared in a 12-byte flowset: refused before anything is allocated. */
static void
test_v9_field_count_overflow(void **state)
{
	(void)state;
	static const FieldSpec one[] = {{8, 4, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	gsize s = dg_set_begin(g, 0);
	dg_u16(g, 256);
	dg_u16(g, 65535);
	dg_fields(g, one, 1);
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_TEMPLATE, 1);
	assert_int_equal(st->templates_active, 0);

	/* the same for an options template: 16383 scope + 16383 option fields */
	g_autoptr(GByteArray) o = v9_new(UPTIME, 1, 0);
	s = dg_set_begin(o, 1);
	dg_u16(o, 300);
	dg_u16(o, 65532);
	dg_u16(o, 65532);
	dg_fields(o, one, 1);
	dg_set_end(o, s);
	assert_int_equal(harness_input(h, o, NOW), 0);
	assert_malformed_only(st, MAL_TEMPLATE, 2);
	assert_int_equal(st->templates_active, 0);
	harness_free(h);
}

/* v9 options template whose lengths are not multiples of 4, or both 0. */
static void
test_v9_bad_options_template(void **state)
{
	(void)state;
	guint lens[][2] = {{0, 0}, {3, 4}, {4, 6}};
	for (guint i = 0; i < G_N_ELEMENTS(lens); i++) {
		g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
		gsize s = dg_set_begin(g, 1);
		dg_u16(g, 300);
		dg_u16(g, lens[i][0]);
		dg_u16(g, lens[i][1]);
		dg_zeros(g, 8);
		dg_set_end(g, s);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		assert_malformed_only(harness_stats(h, 0), MAL_TEMPLATE, 1);
		assert_int_equal(harness_stats(h, 0)->templates_active, 0);
		harness_free(h);
	}
}

/* A flowset length of 0, 3, or past the datagram: counted once, and the records of the
 * flowsets before it are kept. */
static void
test_v9_set_length_hostile(void **state)
{
	(void)state;
	guint bad[] = {0, 3, 200};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
		add_templates(g);
		gsize s = dg_set_begin(g, 256);
		rec_t4(g, 1, 40000, 90000, 99000);
		dg_set_end(g, s);
		dg_u16(g, 256);
		dg_u16(g, bad[i]);
		rec_t4(g, 2, 40001, 90000, 99000);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 1);
		Flow w = want_t4(1, 40000, EXPORT_MS - 10000, EXPORT_MS - 1000, 0);
		assert_flow_equal(&w, harness_flow(h, 0));
		const SessionStats *st = harness_stats(h, 0);
		assert_malformed_only(st, MAL_SET_LENGTH, 1);
		assert_int_equal(st->records, 1);
		assert_int_equal(st->datagrams, 1);
		harness_free(h);
	}
}

static void
test_v9_short_data_set(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	add_templates(g);
	gsize s = dg_set_begin(g, 256);
	dg_zeros(g, T4_LEN - 1);
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 0);
	const SessionStats *st = harness_stats(h, 0);
	assert_malformed_only(st, MAL_SHORT_SET, 1);
	assert_int_equal(st->records, 0);
	assert_int_equal(st->templates_active, 3);
	harness_free(h);
}

/* Zero padding after the last template record in a template flowset is not a template. */
static void
test_v9_template_set_padding(void **state)
{
	(void)state;
	for (guint pad = 1; pad <= 6; pad++) {
		g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
		gsize s = dg_set_begin(g, 0);
		dg_template(g, 256, T4, G_N_ELEMENTS(T4));
		dg_zeros(g, pad);
		dg_set_end(g, s);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		const SessionStats *st = harness_stats(h, 0);
		assert_malformed_only(st, MAL_N, 0);
		assert_int_equal(st->templates_active, 1);
		harness_free(h);
	}
}

/* v9 sequence numbers count export datagrams (RFC 3954 5.1): loss is in datagrams. */
static void
test_v9_seq_loss(void **state)
{
	(void)state;
	guint32 seqs[] = {10, 11, 14, 15, 17};
	Harness *h = harness_new(NULL);
	for (guint i = 0; i < G_N_ELEMENTS(seqs); i++) {
		g_autoptr(GByteArray) g = v9_new(UPTIME + i * 1000, seqs[i], SRC_ID);
		add_templates(g);
		harness_input(h, g, NOW);
	}
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_int_equal(st->seq_lost, 3);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->datagrams, 5);
	harness_free(h);
}

/* A restart (sysUptime backwards, sequence from 0) is a reset, not 4 billion lost datagrams;
 * a sequence going backwards without a restart is a resync. Source IDs keep their own. */
static void
test_v9_seq_restart(void **state)
{
	(void)state;
	struct {
		guint32 uptime, seq, source;
	} in[] = {
	    {9000000, 500, SRC_ID}, {9001000, 501, SRC_ID}, {2000, 0, SRC_ID}, /* restart */
	    {3000, 1, SRC_ID},	    {4000, 0, SRC_ID},			       /* backwards */
	    {5000, 1, 8},	    {6000, 3, 8},			       /* 1 lost */
	};
	Harness *h = harness_new(NULL);
	for (guint i = 0; i < G_N_ELEMENTS(in); i++) {
		g_autoptr(GByteArray) g = v9_new(in[i].uptime, in[i].seq, in[i].source);
		add_templates(g);
		harness_input(h, g, NOW);
	}
	const SessionStats *st = harness_stats(h, SRC_ID);
	assert_int_equal(st->seq_resets, 2);
	assert_int_equal(st->seq_lost, 0);
	const SessionStats *st8 = harness_stats(h, 8);
	assert_int_equal(st8->seq_resets, 0);
	assert_int_equal(st8->seq_lost, 1);
	harness_free(h);
}

/* max_templates counts templates across all domains of an exporter; a refused template is
 * counted, a refresh of an installed one is not refused. */
static void
test_v9_template_cap(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_templates = 2;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, 0);
	add_templates(g);
	add_data(g);
	assert_int_equal(harness_input(h, g, NOW), 3); /* 258 refused: its record is not */
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->templates_refused, 1);
	assert_int_equal(st->templates_active, 2);
	assert_int_equal(st->template_records, 2);
	assert_int_equal(st->no_template_sets, 1);

	g_autoptr(GByteArray) again = v9_new(UPTIME, 1, 0);
	add_templates(again);
	harness_input(h, again, NOW);
	assert_int_equal(st->templates_refused, 2);
	assert_int_equal(st->template_records, 4);
	assert_int_equal(st->templates_active, 2);

	g_autoptr(GByteArray) other = v9_new(UPTIME, 0, 9); /* another source ID, same cap */
	add_templates(other);
	harness_input(h, other, NOW);
	const SessionStats *st9 = harness_stats(h, 9);
	assert_int_equal(st9->templates_refused, 3);
	assert_int_equal(st9->templates_active, 0);
	harness_free(h);
}

static void
test_v9_domain_cap(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_domains = 1;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) a = v9_new(UPTIME, 0, 1);
	add_templates(a);
	g_autoptr(GByteArray) b = v9_new(UPTIME, 0, 2);
	add_templates(b);
	harness_input(h, a, NOW);
	harness_input(h, b, NOW);
	assert_non_null(harness_stats(h, 1));
	assert_null(harness_stats(h, 2));
	const SessionStats *hdr = harness_hdr_stats(h);
	assert_non_null(hdr);
	assert_int_equal(hdr->datagrams, 1);
	assert_int_equal(collector_totals(h->c)->domains_refused, 1);
	harness_free(h);
}

/* Templates not refreshed for template_timeout_s expire, through collector_expire() or when
 * data for them arrives late; a refresh restarts the clock. */
static void
test_v9_template_expiry(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.template_timeout_s = 60;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) t = v9_new(UPTIME, 0, 0);
	add_templates(t);
	g_autoptr(GByteArray) d = v9_new(UPTIME, 1, 0);
	add_data(d);

	harness_input(h, t, NOW);
	const SessionStats *st = harness_stats(h, 0);
	collector_expire(h->c, NOW + 60000);
	assert_int_equal(st->templates_active, 3);
	assert_int_equal(harness_input(h, d, NOW + 60000), 4);
	collector_expire(h->c, NOW + 60001);
	assert_int_equal(st->templates_expired, 3);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(harness_input(h, d, NOW + 60002), 0);
	assert_int_equal(st->no_template_sets, 3);

	/* refreshed at +100 s: still there at +150 s, gone for data at +160.001 s */
	harness_input(h, t, NOW + 70000);
	harness_input(h, t, NOW + 100000);
	collector_expire(h->c, NOW + 150000);
	assert_int_equal(st->templates_active, 3);
	assert_int_equal(st->templates_expired, 3);
	assert_int_equal(harness_input(h, d, NOW + 160001), 0);
	assert_int_equal(st->templates_expired, 6);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(st->no_template_sets, 6);
	harness_free(h);
}

/* fixtures/softflowd-v9.pcap decodes cleanly, with no sequence loss or restart. */
static void
test_v9_softflowd_capture(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	guint16 port = 0;
	guint n = harness_replay_fixture(h, "softflowd-v9.pcap", &port);
	const SessionStats *st = harness_stats_port(h, port, 0);
	assert_non_null(st);
	assert_int_equal(st->datagrams, n);
	assert_true(st->records > 0);
	assert_int_equal(st->records, h->flows->len);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->no_template_sets, 0);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	for (guint j = 0; j < h->flows->len; j++)
		assert_int_equal(harness_flow(h, j)->version, 9);
	harness_free(h);
}

/* ---- truncation sweeps ------------------------------------------------------------------ */

typedef struct {
	guint records, templates, options;
} SetExpect;

typedef struct {
	const GByteArray *full;
	const SetExpect *sets; /* per flowset of the swept datagram, in order */
	guint nsets;
	guint32 domain;
	guint setup_templates; /* installed by the setup datagram */
} V9Sweep;

/* What a v9 prefix must give: flowsets that fit whole are decoded; a flowset cut inside its
 * 4-byte header (1-3 bytes left) is ignored like padding; one cut after its header is one bad
 * set length. The header's count is not trusted, so nothing else is counted. */
static void
v9_sweep_check(const SweepResult *r, gpointer user_data)
{
	const V9Sweep *x = user_data;
	const CollectorTotals *t = collector_totals(r->h->c);
	gsize p = r->prefix;

	if (p < 2) {
		assert_int_equal(t->bad_version, 1);
		assert_int_equal(r->records, 0);
		return;
	}
	if (p < 20) {
		assert_malformed_only(harness_hdr_stats(r->h), MAL_SHORT_HEADER, 1);
		const SessionStats *dom = harness_stats(r->h, x->domain);
		if (x->setup_templates == 0) {
			assert_null(dom);
		} else {
			assert_int_equal(dom->datagrams, 1); /* the setup datagram only */
			assert_malformed_only(dom, MAL_N, 0);
		}
		assert_int_equal(r->records, 0);
		return;
	}
	const SessionStats *st = harness_stats(r->h, x->domain);
	assert_non_null(st);
	assert_null(harness_hdr_stats(r->h));
	assert_int_equal(st->datagrams, x->setup_templates > 0 ? 2 : 1);
	guint recs = 0, tpls = 0, opts = 0, i;
	gsize off = 20;
	for (i = 0; i < x->nsets && p - off >= 4; i++) {
		gsize slen = ((gsize)x->full->data[off + 2] << 8) | x->full->data[off + 3];
		if (slen > p - off)
			break;
		recs += x->sets[i].records;
		tpls += x->sets[i].templates;
		opts += x->sets[i].options;
		off += slen;
	}
	assert_true(i < x->nsets); /* a prefix never holds every flowset */
	if (p - off >= 4)
		assert_malformed_only(st, MAL_SET_LENGTH, 1);
	else
		assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(r->records, recs);
	assert_int_equal(st->records, recs);
	assert_int_equal(st->options_records, opts);
	assert_int_equal(st->template_records, x->setup_templates + tpls);
	assert_int_equal(st->templates_active, x->setup_templates + tpls);
	assert_int_equal(st->no_template_sets, 0);
}

static void
test_v9_sweep_template(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = v9_new(UPTIME, 0, SRC_ID);
	add_templates(t);
	gsize s = dg_set_begin(t, 0);
	dg_template(t, 259, T4, G_N_ELEMENTS(T4));
	dg_set_end(t, s);
	static const SetExpect sets[] = {{0, 3, 0}, {0, 1, 0}};
	V9Sweep x = {.full = t, .sets = sets, .nsets = 2, .domain = SRC_ID};
	sweep_prefixes(NULL, t, NULL, v9_sweep_check, &x);
}

static void
test_v9_sweep_data(void **state)
{
	(void)state;
	g_autoptr(GByteArray) t = v9_new(UPTIME, 0, SRC_ID);
	add_templates(t);
	g_autoptr(GByteArray) d = v9_new(UPTIME, 1, SRC_ID);
	add_data(d);
	static const SetExpect sets[] = {{2, 0, 0}, {1, 0, 0}, {1, 0, 0}};
	V9Sweep x = {.full = d, .sets = sets, .nsets = 3, .domain = SRC_ID, .setup_templates = 3};
	sweep_prefixes(t, d, NULL, v9_sweep_check, &x);
}

static void
test_v9_sweep_options(void **state)
{
	(void)state;
	static const FieldSpec scope[] = {{1, 4, 0}};
	static const FieldSpec opts[] = {{48, 1, 0}, {49, 1, 0}, {50, 4, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	gsize s = dg_set_begin(g, 1);
	dg_v9_options_template(g, 301, scope, 1, opts, 3);
	dg_set_end(g, s);
	s = dg_set_begin(g, 301);
	for (guint i = 0; i < 2; i++) {
		dg_ip4(g, 10, 0, 0, 254);
		dg_u8(g, 5 + i);
		dg_u8(g, 2);
		dg_u32(g, 1000);
	}
	dg_set_end(g, s);
	static const SetExpect sets[] = {{0, 1, 0}, {0, 0, 2}};
	V9Sweep x = {.full = g, .sets = sets, .nsets = 2, .domain = SRC_ID};
	sweep_prefixes(NULL, g, NULL, v9_sweep_check, &x);
}

static void
test_v9_random(void **state)
{
	(void)state;
	random_datagrams(9, 0x5eed0009, 64);
}

/* ---- real gear ---------------------------------------------------------------------------- */

/* H3C NetStream style: a VRF name (IE 236) of length 65535 as the last field, with IPFIX's
 * variable-length encoding (RFC 7011 7) inside NetFlow v9: short and long length prefixes. */
static void
test_v9_varlen_field(void **state)
{
	(void)state;
	static const FieldSpec t[] = {{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0},
				      {2, 4, 0}, {1, 4, 0},  {236, 65535, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	gsize s = dg_set_begin(g, 0);
	dg_template(g, 300, t, G_N_ELEMENTS(t));
	dg_set_end(g, s);
	s = dg_set_begin(g, 300);
	guint lens[] = {3, 0, 260};
	for (guint i = 0; i < 3; i++) {
		dg_ip4(g, 10, 0, 0, (guint8)(1 + i));
		dg_ip4(g, 192, 0, 2, 25);
		dg_u16(g, 1000 + i);
		dg_u16(g, 25);
		dg_u8(g, 6);
		dg_u32(g, 2 + i);
		dg_u32(g, 100 + i);
		if (lens[i] < 255) {
			dg_u8(g, lens[i]);
		} else {
			dg_u8(g, 255);
			dg_u16(g, lens[i]);
		}
		for (guint j = 0; j < lens[i]; j++)
			dg_u8(g, 'v');
	}
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 3);
	for (guint i = 0; i < 3; i++) {
		const Flow *f = harness_flow(h, i);
		assert_addr_v4(f->src, 10, 0, 0, (guint8)(1 + i));
		assert_int_equal(f->sport, 1000 + i);
		assert_int_equal(f->packets, 2 + i);
		assert_int_equal(f->bytes, 100 + i);
	}
	assert_malformed_only(harness_stats(h, SRC_ID), MAL_N, 0);

	/* a length prefix past the flowset: the record before it kept, the rest counted */
	g_autoptr(GByteArray) b = v9_new(UPTIME, 1, SRC_ID);
	s = dg_set_begin(b, 300);
	dg_ip4(b, 10, 0, 0, 9), dg_ip4(b, 192, 0, 2, 25);
	dg_u16(b, 9), dg_u16(b, 25), dg_u8(b, 6), dg_u32(b, 1), dg_u32(b, 1);
	dg_u8(b, 1), dg_u8(b, 'v');
	dg_ip4(b, 10, 0, 0, 10), dg_ip4(b, 192, 0, 2, 25);
	dg_u16(b, 10), dg_u16(b, 25), dg_u8(b, 6), dg_u32(b, 1), dg_u32(b, 1);
	dg_u8(b, 255), dg_u16(b, 4000), dg_zeros(b, 3);
	dg_set_end(b, s);
	assert_int_equal(harness_input(h, b, NOW + 1), 1);
	assert_malformed_only(harness_stats(h, SRC_ID), MAL_VARLEN, 1);
	harness_free(h);
}

/* Egress-only counters: OUT_BYTES/OUT_PKTS (23/24) alone, and as the stand-in when 1/2 read
 * zero in a template that has both. */
static void
test_v9_egress_counters(void **state)
{
	(void)state;
	static const FieldSpec only_out[] = {{8, 4, 0}, {12, 4, 0}, {24, 4, 0}, {23, 8, 0}};
	static const FieldSpec both[] = {{8, 4, 0}, {12, 4, 0}, {2, 4, 0},
					 {1, 4, 0}, {24, 4, 0}, {23, 4, 0}};
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	gsize s = dg_set_begin(g, 0);
	dg_template(g, 301, only_out, G_N_ELEMENTS(only_out));
	dg_template(g, 302, both, G_N_ELEMENTS(both));
	dg_set_end(g, s);
	s = dg_set_begin(g, 301);
	dg_ip4(g, 10, 0, 0, 1), dg_ip4(g, 192, 0, 2, 25), dg_u32(g, 7), dg_u64(g, 700);
	dg_set_end(g, s);
	s = dg_set_begin(g, 302);
	/* ingress zero: egress used; ingress set: kept; packets zero, bytes not */
	dg_ip4(g, 10, 0, 0, 2), dg_ip4(g, 192, 0, 2, 25);
	dg_u32(g, 0), dg_u32(g, 0), dg_u32(g, 5), dg_u32(g, 500);
	dg_ip4(g, 10, 0, 0, 3), dg_ip4(g, 192, 0, 2, 25);
	dg_u32(g, 3), dg_u32(g, 300), dg_u32(g, 9), dg_u32(g, 900);
	dg_ip4(g, 10, 0, 0, 4), dg_ip4(g, 192, 0, 2, 25);
	dg_u32(g, 0), dg_u32(g, 40), dg_u32(g, 4), dg_u32(g, 400);
	dg_set_end(g, s);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 4);
	static const guint64 want[4][2] = {{7, 700}, {5, 500}, {3, 300}, {4, 40}};
	for (guint i = 0; i < 4; i++) {
		const Flow *f = harness_flow(h, i);
		assert_int_equal(f->packets, want[i][0]);
		assert_int_equal(f->bytes, want[i][1]);
		assert_true(f->has & FLOW_HAS_PACKETS);
		assert_true(f->has & FLOW_HAS_BYTES);
	}
	harness_free(h);
}

/* Implausible times: left empty, counted per exporter, told once. */
typedef struct {
	guint calls;
	CollectorNotice what;
	CollectorNoticeInfo info;
	guint8 addr[16];
} NoticeLog;

static void
notice_cb(CollectorNotice what, const CollectorNoticeInfo *info, gpointer data)
{
	NoticeLog *l = data;
	l->calls++;
	l->what = what;
	l->info = *info;
	memcpy(l->addr, info->addr, 16);
}

static void
test_v9_times_dropped(void **state)
{
	(void)state;
	NoticeLog log = {0};
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.notice = notice_cb;
	cfg.notice_data = &log;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) g = v9_new(UPTIME, 0, SRC_ID);
	add_templates(g);
	gsize s = dg_set_begin(g, 256);
	rec_t4(g, 1, 1000, 90000, 99000);      /* plausible */
	rec_t4(g, 2, 1001, 99000, 90000);      /* ends before it starts */
	rec_t4(g, 3, 1002, 99000, UPTIME + 2u * 86400000u); /* ends 2 days ahead */
	dg_set_end(g, s);
	assert_int_equal(harness_input(h, g, NOW), 3);
	assert_true(harness_flow(h, 0)->has & FLOW_HAS_TIMES);
	for (guint i = 1; i < 3; i++) {
		const Flow *f = harness_flow(h, i);
		assert_false(f->has & FLOW_HAS_TIMES);
		assert_true(f->has & FLOW_TIMES_INVALID);
		assert_int_equal(f->start_ms, 0);
	}
	assert_int_equal(harness_stats(h, SRC_ID)->times_dropped, 2);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.what, NOTICE_TIMES_DROPPED);
	assert_int_equal(log.info.domain, SRC_ID);
	assert_int_equal(log.info.version, 9);
	assert_int_equal(log.info.port, HARNESS_PORT);
	assert_addr_v4(log.addr, 192, 0, 2, 1);
	assert_int_equal(log.info.export_ms, EXPORT_MS);
	assert_int_equal(log.info.start_ms, EXPORT_MS - (UPTIME - 99000));
	/* again: counted, not told again */
	g_autoptr(GByteArray) b = v9_new(UPTIME, 1, SRC_ID);
	s = dg_set_begin(b, 256);
	rec_t4(b, 4, 1003, 99000, 90000);
	dg_set_end(b, s);
	harness_input(h, b, NOW + 1);
	assert_int_equal(harness_stats(h, SRC_ID)->times_dropped, 3);
	assert_int_equal(log.calls, 1);
	harness_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v9_template_then_data),
	    cmocka_unit_test(test_v9_varlen_field),
	    cmocka_unit_test(test_v9_egress_counters),
	    cmocka_unit_test(test_v9_times_dropped),
	    cmocka_unit_test(test_v9_same_datagram_and_reserved_set),
	    cmocka_unit_test(test_v9_uptime_wrap),
	    cmocka_unit_test(test_v9_data_before_template),
	    cmocka_unit_test(test_v9_options_sampling_interval),
	    cmocka_unit_test(test_v9_options_sampler_id),
	    cmocka_unit_test(test_v9_template_zero_fields),
	    cmocka_unit_test(test_v9_template_id_below_256),
	    cmocka_unit_test(test_v9_field_count_overflow),
	    cmocka_unit_test(test_v9_bad_options_template),
	    cmocka_unit_test(test_v9_set_length_hostile),
	    cmocka_unit_test(test_v9_short_data_set),
	    cmocka_unit_test(test_v9_template_set_padding),
	    cmocka_unit_test(test_v9_seq_loss),
	    cmocka_unit_test(test_v9_seq_restart),
	    cmocka_unit_test(test_v9_template_cap),
	    cmocka_unit_test(test_v9_domain_cap),
	    cmocka_unit_test(test_v9_template_expiry),
	    cmocka_unit_test(test_v9_softflowd_capture),
	    cmocka_unit_test(test_v9_sweep_template),
	    cmocka_unit_test(test_v9_sweep_data),
	    cmocka_unit_test(test_v9_sweep_options),
	    cmocka_unit_test(test_v9_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
