/* Shared by the decoder unit tests (test_v5.c, test_v9.c, test_ipfix.c, test_sflow.c):
 * builders that write NetFlow v5, v9 and IPFIX datagrams byte by byte in network order, and a harness that runs
 * them through collector_input() into a FlowBatch whose flush copies flows into a GArray, with
 * look-ups for the per-session counters. Header-only (static inline) so each test links it. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "collector.h"
#include "replay.h"

#include <glib.h>
#include <string.h>

/* ---- byte builders ---------------------------------------------------------------------- */

static inline void
dg_u8(GByteArray *g, guint v)
{
	guint8 b = (guint8)v;
	g_byte_array_append(g, &b, 1);
}

static inline void
dg_u16(GByteArray *g, guint v)
{
	guint8 b[2] = {(guint8)(v >> 8), (guint8)v};
	g_byte_array_append(g, b, 2);
}

static inline void
dg_u24(GByteArray *g, guint32 v)
{
	guint8 b[3] = {(guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	g_byte_array_append(g, b, 3);
}

static inline void
dg_u32(GByteArray *g, guint32 v)
{
	guint8 b[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	g_byte_array_append(g, b, 4);
}

static inline void
dg_u64(GByteArray *g, guint64 v)
{
	dg_u32(g, (guint32)(v >> 32));
	dg_u32(g, (guint32)v);
}

static inline void
dg_bytes(GByteArray *g, const void *p, gsize n)
{
	g_byte_array_append(g, p, (guint)n);
}

static inline void
dg_zeros(GByteArray *g, gsize n)
{
	for (gsize i = 0; i < n; i++)
		dg_u8(g, 0);
}

static inline void
dg_ip4(GByteArray *g, guint8 a, guint8 b, guint8 c, guint8 d)
{
	guint8 v[4] = {a, b, c, d};
	dg_bytes(g, v, 4);
}

static inline void
dg_put_u16(GByteArray *g, gsize off, guint v)
{
	g->data[off] = (guint8)(v >> 8);
	g->data[off + 1] = (guint8)v;
}

/* A set (IPFIX) or flowset (v9): dg_set_begin() writes the ID and a length placeholder and
 * returns the set's offset; dg_set_end() patches the length (RFC 7011 3.3.2 / RFC 3954 5.1:
 * the length includes the 4-byte set header). */
static inline gsize
dg_set_begin(GByteArray *g, guint id)
{
	gsize off = g->len;
	dg_u16(g, id);
	dg_u16(g, 0);
	return off;
}

static inline void
dg_set_end(GByteArray *g, gsize off)
{
	dg_put_u16(g, off + 2, (guint)(g->len - off));
}

/* NetFlow v5 header (24 bytes): version, count, sysUptime, unix secs/nsecs, flow sequence,
 * engine type/id, sampling (2-bit mode, 14-bit interval). */
static inline void
dg_v5_header(GByteArray *g, guint count, guint32 uptime, guint32 secs, guint32 nsecs, guint32 seq,
	     guint8 etype, guint8 eid, guint16 sampling)
{
	dg_u16(g, 5);
	dg_u16(g, count);
	dg_u32(g, uptime);
	dg_u32(g, secs);
	dg_u32(g, nsecs);
	dg_u32(g, seq);
	dg_u8(g, etype);
	dg_u8(g, eid);
	dg_u16(g, sampling);
}

typedef struct {
	guint8 src[4], dst[4], nexthop[4];
	guint16 input, output;
	guint32 pkts, octets, first, last;
	guint16 sport, dport;
	guint8 flags, proto, tos;
	guint16 src_as, dst_as;
	guint8 src_mask, dst_mask;
} V5Rec;

/* One 48-byte v5 record, in Cisco's published order. */
static inline void
dg_v5_record(GByteArray *g, const V5Rec *r)
{
	dg_bytes(g, r->src, 4);
	dg_bytes(g, r->dst, 4);
	dg_bytes(g, r->nexthop, 4);
	dg_u16(g, r->input);
	dg_u16(g, r->output);
	dg_u32(g, r->pkts);
	dg_u32(g, r->octets);
	dg_u32(g, r->first);
	dg_u32(g, r->last);
	dg_u16(g, r->sport);
	dg_u16(g, r->dport);
	dg_u8(g, 0); /* pad1 */
	dg_u8(g, r->flags);
	dg_u8(g, r->proto);
	dg_u8(g, r->tos);
	dg_u16(g, r->src_as);
	dg_u16(g, r->dst_as);
	dg_u8(g, r->src_mask);
	dg_u8(g, r->dst_mask);
	dg_u16(g, 0); /* pad2 */
}

/* NetFlow v9 header (20 bytes, RFC 3954 5.1). */
static inline void
dg_v9_header(GByteArray *g, guint count, guint32 uptime, guint32 secs, guint32 seq,
	     guint32 source_id)
{
	dg_u16(g, 9);
	dg_u16(g, count);
	dg_u32(g, uptime);
	dg_u32(g, secs);
	dg_u32(g, seq);
	dg_u32(g, source_id);
}

/* IPFIX message header (16 bytes, RFC 7011 3.1); dg_ipfix_end() patches the length. */
static inline void
dg_ipfix_header(GByteArray *g, guint32 export_s, guint32 seq, guint32 domain)
{
	dg_u16(g, 10);
	dg_u16(g, 0);
	dg_u32(g, export_s);
	dg_u32(g, seq);
	dg_u32(g, domain);
}

static inline void
dg_ipfix_end(GByteArray *g)
{
	dg_put_u16(g, 2, g->len);
}

/* A field specifier: {ie, len} or, for IPFIX enterprise elements, pen != 0 sets the
 * enterprise bit and appends the PEN (RFC 7011 3.2). */
typedef struct {
	guint16 ie;
	guint16 len;
	guint32 pen;
} FieldSpec;

static inline void
dg_fields(GByteArray *g, const FieldSpec *f, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		dg_u16(g, f[i].pen ? (f[i].ie | 0x8000u) : f[i].ie);
		dg_u16(g, f[i].len);
		if (f[i].pen)
			dg_u32(g, f[i].pen);
	}
}

/* A template record: ID, field count, fields (v9 flowset 0, IPFIX set 2). */
static inline void
dg_template(GByteArray *g, guint id, const FieldSpec *f, gsize n)
{
	dg_u16(g, id);
	dg_u16(g, (guint)n);
	dg_fields(g, f, n);
}

/* IPFIX options template record (set 3): ID, field count, scope field count, fields. */
static inline void
dg_ipfix_options_template(GByteArray *g, guint id, guint scope, const FieldSpec *f, gsize n)
{
	dg_u16(g, id);
	dg_u16(g, (guint)n);
	dg_u16(g, scope);
	dg_fields(g, f, n);
}

/* v9 options template record (flowset 1, RFC 3954 6.1): ID, scope length and option length
 * in bytes, then scope fields {type, len} and option fields. */
static inline void
dg_v9_options_template(GByteArray *g, guint id, const FieldSpec *scope, gsize nscope,
		       const FieldSpec *opt, gsize nopt)
{
	dg_u16(g, id);
	dg_u16(g, (guint)(nscope * 4));
	dg_u16(g, (guint)(nopt * 4));
	dg_fields(g, scope, nscope);
	dg_fields(g, opt, nopt);
}

/* ---- harness ---------------------------------------------------------------------------- */

typedef struct {
	CollectorConfig cfg;
	GArray *flows; /* Flow, every record flushed so far */
	FlowBatch *batch;
	Collector *c;
} Harness;

static inline void
harness_flush_cb(const Flow *flows, guint n, gpointer user_data)
{
	Harness *h = user_data;
	g_array_append_vals(h->flows, flows, n);
}

/* A small batch (3) so decoders also flush mid-datagram. cfg NULL = defaults. */
static inline Harness *
harness_new(const CollectorConfig *cfg)
{
	Harness *h = g_new0(Harness, 1);
	if (cfg != NULL)
		h->cfg = *cfg;
	else
		collector_config_defaults(&h->cfg);
	h->flows = g_array_new(FALSE, TRUE, sizeof(Flow));
	h->batch = flow_batch_new(3, harness_flush_cb, h);
	h->c = collector_new(&h->cfg, h->batch);
	return h;
}

static inline void
harness_free(Harness *h)
{
	if (h == NULL)
		return;
	collector_free(h->c);
	flow_batch_free(h->batch);
	g_array_free(h->flows, TRUE);
	g_free(h);
}

/* The exporter: 192.0.2.1 (IPv4-mapped), port chosen by the test. */
static inline void
harness_addr(guint8 addr[16])
{
	static const guint8 v4[4] = {192, 0, 2, 1};
	flow_addr_set_v4(addr, v4);
}

/* One datagram, then a flush (collector_input does not flush). Returns what it returned. */
static inline guint
harness_input_port(Harness *h, guint16 port, const guint8 *buf, gsize len, gint64 now_ms)
{
	guint8 addr[16];
	harness_addr(addr);
	guint n = collector_input(h->c, addr, port, buf, len, now_ms);
	flow_batch_flush(h->batch);
	return n;
}

#define HARNESS_PORT 2055

static inline guint
harness_input(Harness *h, const GByteArray *g, gint64 now_ms)
{
	return harness_input_port(h, HARNESS_PORT, g->data, g->len, now_ms);
}

static inline const Flow *
harness_flow(const Harness *h, guint i)
{
	assert_true(i < h->flows->len);
	return &g_array_index(h->flows, Flow, i);
}

typedef struct {
	guint16 port;
	gboolean has_domain;
	guint32 domain;
	const SessionStats *found;
	guint rows;
	guint64 datagrams; /* summed over every row */
	guint64 records;
} StatsQuery;

static inline void
harness_stats_cb(const SessionView *v, gpointer user_data)
{
	StatsQuery *q = user_data;
	q->rows++;
	q->datagrams += v->stats->datagrams;
	q->records += v->stats->records;
	if (v->port == q->port && v->has_domain == q->has_domain &&
	    (!q->has_domain || v->domain == q->domain))
		q->found = v->stats;
}

/* The counters of (port, domain); NULL when there is no such row. */
static inline const SessionStats *
harness_stats_port(const Harness *h, guint16 port, guint32 domain)
{
	StatsQuery q = {.port = port, .has_domain = TRUE, .domain = domain};
	collector_foreach_session(h->c, harness_stats_cb, &q);
	return q.found;
}

static inline const SessionStats *
harness_stats(const Harness *h, guint32 domain)
{
	return harness_stats_port(h, HARNESS_PORT, domain);
}

/* The exporter's "before a domain was known" row; NULL when it never counted anything. */
static inline const SessionStats *
harness_hdr_stats(const Harness *h)
{
	StatsQuery q = {.port = HARNESS_PORT, .has_domain = FALSE};
	collector_foreach_session(h->c, harness_stats_cb, &q);
	return q.found;
}

/* Sums over every session row: each datagram must land in exactly one row (or in
 * bad_version when it is not flow export at all). */
static inline StatsQuery
harness_sums(const Harness *h)
{
	StatsQuery q = {.port = 0, .has_domain = TRUE, .domain = G_MAXUINT32};
	collector_foreach_session(h->c, harness_stats_cb, &q);
	return q;
}

static inline guint64
malformed_total(const SessionStats *st)
{
	guint64 n = 0;
	for (guint i = 0; i < MAL_N; i++)
		n += st->malformed[i];
	return n;
}

/* Every malformed counter is zero except `which` (pass MAL_N for "all zero"), which holds n. */
static inline void
assert_malformed_only(const SessionStats *st, Malformed which, guint64 n)
{
	assert_non_null(st);
	for (guint i = 0; i < MAL_N; i++) {
		if (i == (guint)which)
			assert_int_equal(st->malformed[i], n);
		else if (st->malformed[i] != 0)
			fail_msg("malformed[%s] = %" G_GUINT64_FORMAT ", expected 0",
				 malformed_name((Malformed)i), st->malformed[i]);
	}
}

static inline void
assert_addr_v4(const guint8 a[16], guint8 x, guint8 y, guint8 z, guint8 w)
{
	guint8 v4[4] = {x, y, z, w}, want[16];
	flow_addr_set_v4(want, v4);
	assert_memory_equal(a, want, 16);
}

/* Field by field (for readable failures), then the whole struct, so a field this list
 * forgets still cannot differ. Both sides must come from zeroed memory. */
static inline void
assert_flow_equal(const Flow *want, const Flow *got)
{
	assert_int_equal(got->recv_ms, want->recv_ms);
	assert_int_equal(got->start_ms, want->start_ms);
	assert_int_equal(got->end_ms, want->end_ms);
	assert_int_equal(got->packets, want->packets);
	assert_int_equal(got->bytes, want->bytes);
	assert_int_equal(got->rev_packets, want->rev_packets);
	assert_int_equal(got->rev_bytes, want->rev_bytes);
	assert_memory_equal(got->src, want->src, 16);
	assert_memory_equal(got->dst, want->dst, 16);
	assert_memory_equal(got->nat_src, want->nat_src, 16);
	assert_memory_equal(got->nat_dst, want->nat_dst, 16);
	assert_int_equal(got->sampling, want->sampling);
	assert_int_equal(got->exporter, want->exporter);
	assert_int_equal(got->domain, want->domain);
	assert_int_equal(got->sport, want->sport);
	assert_int_equal(got->dport, want->dport);
	assert_int_equal(got->nat_sport, want->nat_sport);
	assert_int_equal(got->nat_dport, want->nat_dport);
	assert_int_equal(got->has, want->has);
	assert_int_equal(got->proto, want->proto);
	assert_int_equal(got->tcp_flags, want->tcp_flags);
	assert_int_equal(got->fw_event, want->fw_event);
	assert_int_equal(got->direction, want->direction);
	assert_int_equal(got->version, want->version);
	assert_memory_equal(got, want, sizeof *got);
}

static inline void
flow_set_v4(guint8 a[16], guint8 x, guint8 y, guint8 z, guint8 w)
{
	guint8 v4[4] = {x, y, z, w};
	flow_addr_set_v4(a, v4);
}

/* ---- captures ------------------------------------------------------------------------- */

/* The path of a file in fixtures/ (tests/unit/meson.build passes FIXTURES). */
static inline char *
fixture_path(const char *first, ...)
{
	const char *dir = g_getenv("FIXTURES");
	if (dir == NULL)
		fail_msg("FIXTURES is not set (tests/unit/meson.build passes it)");
	va_list ap;
	va_start(ap, first);
	GString *path = g_string_new(dir);
	for (const char *part = first; part != NULL; part = va_arg(ap, const char *)) {
		g_string_append_c(path, G_DIR_SEPARATOR);
		g_string_append(path, part);
	}
	va_end(ap);
	return g_string_free(path, FALSE);
}

/* Every UDP datagram of fixtures/<name> in order, with its capture time, from its exporter
 * port (returned in *port). Returns how many datagrams there were. */
static inline guint
harness_replay_fixture(Harness *h, const char *name, guint16 *port)
{
	g_autofree char *path = fixture_path(name, NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(Replay) r = replay_open(path, &error);
	ReplayDatagram d;
	guint n = 0;

	if (r == NULL)
		fail_msg("%s", error->message);
	while (replay_next(r, &d, &error)) {
		harness_input_port(h, d.port, d.payload, d.len, d.ts_ms);
		*port = d.port;
		n++;
	}
	if (error != NULL)
		fail_msg("%s", error->message);
	return n;
}

/* ---- truncation sweep ------------------------------------------------------------------- */

/* Feeds every prefix 0..len-1 of `full` to a fresh collector (after `setup`, if any, a
 * datagram such as the template the prefix needs) and calls `check` with what happened. */
typedef struct {
	Harness *h;
	gsize prefix;
	guint returned;	 /* collector_input's result for the prefix */
	guint64 records; /* flows decoded from the prefix */
	guint64 full_records;
} SweepResult;

typedef void (*SweepCheck)(const SweepResult *r, gpointer user_data);

static inline void
sweep_prefixes(const GByteArray *setup, const GByteArray *full, const CollectorConfig *cfg,
	       SweepCheck check, gpointer user_data)
{
	const gint64 now = G_GINT64_CONSTANT(1700000000000);
	guint64 full_records;
	{
		Harness *h = harness_new(cfg);
		if (setup != NULL)
			harness_input(h, setup, now);
		guint before = h->flows->len;
		harness_input(h, full, now + 1);
		full_records = h->flows->len - before;
		harness_free(h);
	}
	for (gsize p = 0; p < full->len; p++) {
		Harness *h = harness_new(cfg);
		guint64 inputs = 1;
		if (setup != NULL) {
			harness_input(h, setup, now);
			inputs++;
		}
		guint before = h->flows->len;
		/* A copy of exactly p bytes, so ASan sees any read past the prefix. */
		guint8 *buf = g_memdup2(full->data, p);
		guint n = harness_input_port(h, HARNESS_PORT, buf, p, now + 1);
		g_free(buf);
		SweepResult r = {.h = h,
				 .prefix = p,
				 .returned = n,
				 .records = h->flows->len - before,
				 .full_records = full_records};
		/* Counted once: in one session row, or as not flow export at all. */
		const CollectorTotals *t = collector_totals(h->c);
		StatsQuery q = harness_sums(h);
		assert_int_equal(t->datagrams, inputs);
		assert_int_equal(q.datagrams + t->bad_version + t->sflow_no_agent, inputs);
		assert_int_equal(r.records, n);
		assert_true(r.records <= full_records);
		check(&r, user_data);
		harness_free(h);
	}
}

/* ---- seeded random datagrams ------------------------------------------------------------ */

/* 64 KiB of seeded random bytes starting with `version`, fed whole and as random-length
 * prefixes and with a valid-looking length field, to one exporter. Must not crash (ASan
 * builds catch over-reads) and may decode at most what the bytes could hold. */
static inline void
random_datagrams(guint16 version, guint32 seed, guint rounds)
{
	Harness *h = harness_new(NULL);
	GRand *rng = g_rand_new_with_seed(seed);
	guint8 *buf = g_malloc(65535);
	gint64 now = G_GINT64_CONSTANT(1700000000000);

	for (guint r = 0; r < rounds; r++) {
		for (gsize i = 0; i < 65535; i++)
			buf[i] = (guint8)g_rand_int_range(rng, 0, 256);
		buf[0] = (guint8)(version >> 8);
		buf[1] = (guint8)version;
		gsize len = r == 0 ? 65535 : (gsize)g_rand_int_range(rng, 0, 65536);
		if (version == 10 && (r & 1)) {
			/* make the IPFIX length agree so the set walk runs */
			buf[2] = (guint8)(len >> 8);
			buf[3] = (guint8)len;
		}
		guint before = h->flows->len;
		guint n = harness_input_port(h, HARNESS_PORT, buf, len, now + r);
		assert_int_equal(h->flows->len - before, n);
		/* v5: at most 30 records; v9/IPFIX: a record takes at least one byte */
		if (version == 5)
			assert_true(n <= 30);
		else
			assert_true(n <= len);
	}
	const CollectorTotals *t = collector_totals(h->c);
	StatsQuery q = harness_sums(h);
	assert_int_equal(t->datagrams, rounds);
	assert_int_equal(q.datagrams + t->bad_version, rounds);
	assert_int_equal(q.records, h->flows->len);
	g_free(buf);
	g_rand_free(rng);
	harness_free(h);
}
