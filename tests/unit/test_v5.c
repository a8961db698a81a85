/* Unit tests for the NetFlow v5 decoder (collector/v5.c) through collector_input(): decoded
 * fields and counters, header sampling, sequence loss and restarts, caps, a truncation sweep,
 * the count hostile vectors and seeded random datagrams. */
#include "dgram.h"

#define NOW G_GINT64_CONSTANT(1700000100000)
#define SECS 1700000000u
#define NSECS 500000000u
#define EXPORT_MS (G_GINT64_CONSTANT(1700000000) * 1000 + 500)
#define UPTIME 100000u

static const V5Rec rec_tcp = {
    .src = {10, 0, 0, 1},
    .dst = {192, 0, 2, 25},
    .nexthop = {10, 0, 0, 254},
    .input = 3,
    .output = 4,
    .pkts = 10,
    .octets = 1500,
    .first = 90000,
    .last = 99000,
    .sport = 40000,
    .dport = 25,
    .flags = 0x1b,
    .proto = 6,
    .tos = 0x10,
    .src_as = 64500,
    .dst_as = 64501,
    .src_mask = 24,
    .dst_mask = 16,
};

static const V5Rec rec_udp = {
    .src = {172, 16, 5, 9},
    .dst = {8, 8, 8, 8},
    .pkts = 1,
    .octets = 76,
    .first = 100400, /* 400 ms after the header's uptime: still plausible */
    .last = 100500,
    .sport = 5353,
    .dport = 53,
    .flags = 0,
    .proto = 17,
};

static GByteArray *
v5_dgram(guint count, guint32 uptime, guint32 seq, guint8 etype, guint8 eid, guint16 sampling,
	 const V5Rec *recs, guint nrecs)
{
	GByteArray *g = g_byte_array_new();
	dg_v5_header(g, count, uptime, SECS, NSECS, seq, etype, eid, sampling);
	for (guint i = 0; i < nrecs; i++)
		dg_v5_record(g, &recs[i]);
	return g;
}

static Flow
expect_flow(const V5Rec *r, guint32 uptime, guint32 domain, guint32 sampling)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = NOW;
	f.start_ms = EXPORT_MS - (gint64)((gint32)(uptime - r->first));
	f.end_ms = EXPORT_MS - (gint64)((gint32)(uptime - r->last));
	f.packets = r->pkts;
	f.bytes = r->octets;
	flow_addr_set_v4(f.src, r->src);
	flow_addr_set_v4(f.dst, r->dst);
	f.sampling = sampling;
	f.exporter = 0;
	f.domain = domain;
	f.sport = r->sport;
	f.dport = r->dport;
	f.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TCP_FLAGS | FLOW_HAS_TIMES;
	f.proto = r->proto;
	f.tcp_flags = r->flags;
	f.version = 5;
	return f;
}

static void
test_v5_fields(void **state)
{
	(void)state;
	const V5Rec recs[2] = {rec_tcp, rec_udp};
	g_autoptr(GByteArray) g = v5_dgram(2, UPTIME, 1000, 1, 2, 0, recs, 2);
	Harness *h = harness_new(NULL);

	assert_int_equal(harness_input(h, g, NOW), 2);
	assert_int_equal(h->flows->len, 2);
	Flow w0 = expect_flow(&rec_tcp, UPTIME, 0x0102, 1);
	Flow w1 = expect_flow(&rec_udp, UPTIME, 0x0102, 1);
	/* spelled out once, so the formula in expect_flow() is itself checked */
	assert_int_equal(w0.start_ms, EXPORT_MS - 10000);
	assert_int_equal(w0.end_ms, EXPORT_MS - 1000);
	assert_int_equal(w1.start_ms, EXPORT_MS + 400);
	assert_flow_equal(&w0, harness_flow(h, 0));
	assert_flow_equal(&w1, harness_flow(h, 1));

	const SessionStats *st = harness_stats(h, 0x0102);
	assert_non_null(st);
	assert_null(harness_hdr_stats(h));
	assert_int_equal(st->datagrams, 1);
	assert_int_equal(st->bytes, 24 + 2 * 48);
	assert_int_equal(st->records, 2);
	assert_int_equal(st->options_records, 0);
	assert_int_equal(st->template_records, 0);
	assert_int_equal(st->templates_active, 0);
	assert_int_equal(st->no_template_sets, 0);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->sampling, 1);
	assert_int_equal(st->version, 5);
	assert_int_equal(st->first_seen_ms, NOW);
	assert_int_equal(st->last_seen_ms, NOW);
	const CollectorTotals *t = collector_totals(h->c);
	assert_int_equal(t->datagrams, 1);
	assert_int_equal(t->records, 2);
	assert_int_equal(t->bad_version, 0);
	harness_free(h);
}

/* Trailing bytes after count records are tolerated (not part of any record). */
static void
test_v5_trailing_bytes(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v5_dgram(1, UPTIME, 0, 0, 0, 0, &rec_tcp, 1);
	dg_zeros(g, 20);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 1);
	Flow w = expect_flow(&rec_tcp, UPTIME, 0, 1);
	assert_flow_equal(&w, harness_flow(h, 0));
	assert_malformed_only(harness_stats(h, 0), MAL_N, 0);
	harness_free(h);
}

static void
test_v5_max_count(void **state)
{
	(void)state;
	V5Rec recs[30];
	for (guint i = 0; i < 30; i++) {
		recs[i] = rec_tcp;
		recs[i].sport = (guint16)(1000 + i);
	}
	g_autoptr(GByteArray) g = v5_dgram(30, UPTIME, 0, 0, 0, 0, recs, 30);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 30);
	for (guint i = 0; i < 30; i++)
		assert_int_equal(harness_flow(h, i)->sport, 1000 + i);
	assert_int_equal(harness_stats(h, 0)->records, 30);
	harness_free(h);
}

/* Exported times outside the plausible window are flagged and kept zero. */
static void
test_v5_implausible_times(void **state)
{
	(void)state;
	V5Rec r[2] = {rec_tcp, rec_tcp};
	r[0].first = UPTIME + 2u * 86400u * 1000u; /* two days ahead of the export time */
	r[0].last = r[0].first;
	r[1].first = 99000; /* starts after it ends */
	r[1].last = 90000;
	g_autoptr(GByteArray) g = v5_dgram(2, UPTIME, 0, 0, 0, 0, r, 2);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input(h, g, NOW), 2);
	for (guint i = 0; i < 2; i++) {
		Flow w = expect_flow(&r[i], UPTIME, 0, 1);
		w.start_ms = w.end_ms = 0;
		w.has = (guint16)((w.has & ~FLOW_HAS_TIMES) | FLOW_TIMES_INVALID);
		assert_flow_equal(&w, harness_flow(h, i));
	}
	harness_free(h);
}

static void
test_v5_sampling(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	/* mode 01 (deterministic), interval 100 */
	g_autoptr(GByteArray) g1 = v5_dgram(1, UPTIME, 0, 0, 0, 0x4000 | 100, &rec_tcp, 1);
	assert_int_equal(harness_input(h, g1, NOW), 1);
	Flow w = expect_flow(&rec_tcp, UPTIME, 0, 100);
	assert_flow_equal(&w, harness_flow(h, 0));
	assert_int_equal(harness_stats(h, 0)->sampling, 100);

	/* interval 1 and 0 both mean unsampled */
	g_autoptr(GByteArray) g2 = v5_dgram(1, UPTIME, 1, 0, 0, 0x8001, &rec_tcp, 1);
	assert_int_equal(harness_input(h, g2, NOW), 1);
	assert_int_equal(harness_flow(h, 1)->sampling, 1);
	assert_int_equal(harness_stats(h, 0)->sampling, 1);

	/* the 14-bit interval: 0x3fff is the largest */
	g_autoptr(GByteArray) g3 = v5_dgram(1, UPTIME, 2, 0, 0, 0xffff, &rec_tcp, 1);
	assert_int_equal(harness_input(h, g3, NOW), 1);
	assert_int_equal(harness_flow(h, 2)->sampling, 0x3fff);
	assert_int_equal(harness_stats(h, 0)->seq_lost, 0);
	harness_free(h);
}

/* Hostile counts: 0, 31, and more records than the datagram holds. Each is counted once,
 * as bad_length, against the engine's domain, and decodes nothing. */
static void
test_v5_bad_counts(void **state)
{
	(void)state;
	V5Rec recs[31];
	for (guint i = 0; i < 31; i++)
		recs[i] = rec_tcp;
	struct {
		guint count, nrecs;
	} cases[] = {{0, 0}, {0, 1}, {31, 31}, {3, 2}, {65535, 1}, {2, 1}};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GByteArray) g =
		    v5_dgram(cases[i].count, UPTIME, 0, 0, 7, 0, recs, cases[i].nrecs);
		Harness *h = harness_new(NULL);
		assert_int_equal(harness_input(h, g, NOW), 0);
		assert_int_equal(h->flows->len, 0);
		const SessionStats *st = harness_stats(h, 7);
		assert_non_null(st);
		assert_int_equal(st->datagrams, 1);
		assert_int_equal(st->records, 0);
		assert_malformed_only(st, MAL_LENGTH, 1);
		assert_false(st->seq_init); /* a rejected datagram does not start the sequence */
		harness_free(h);
	}
}

static void
test_v5_short_header(void **state)
{
	(void)state;
	g_autoptr(GByteArray) g = v5_dgram(1, UPTIME, 0, 0, 0, 0, &rec_tcp, 1);
	Harness *h = harness_new(NULL);
	assert_int_equal(harness_input_port(h, HARNESS_PORT, g->data, 23, NOW), 0);
	const SessionStats *hdr = harness_hdr_stats(h);
	assert_non_null(hdr);
	assert_int_equal(hdr->datagrams, 1);
	assert_int_equal(hdr->bytes, 23);
	assert_int_equal(hdr->version, 5);
	assert_malformed_only(hdr, MAL_SHORT_HEADER, 1);
	assert_null(harness_stats(h, 0));
	harness_free(h);
}

static void
v5_sweep_check(const SweepResult *r, gpointer user_data)
{
	(void)user_data;
	const CollectorTotals *t = collector_totals(r->h->c);
	/* No v5 prefix is a whole datagram: the count always promises more. */
	assert_int_equal(r->records, 0);
	if (r->prefix < 2) {
		assert_int_equal(t->bad_version, 1);
		return;
	}
	if (r->prefix < 24) {
		assert_malformed_only(harness_hdr_stats(r->h), MAL_SHORT_HEADER, 1);
		assert_null(harness_stats(r->h, 0x0102));
		return;
	}
	assert_null(harness_hdr_stats(r->h));
	assert_malformed_only(harness_stats(r->h, 0x0102), MAL_LENGTH, 1);
}

static void
test_v5_truncation_sweep(void **state)
{
	(void)state;
	const V5Rec recs[2] = {rec_tcp, rec_udp};
	g_autoptr(GByteArray) g = v5_dgram(2, UPTIME, 1000, 1, 2, 0, recs, 2);
	sweep_prefixes(NULL, g, NULL, v5_sweep_check, NULL);
}

/* v5 sequence: the first record's number, so loss is counted in records. */
static void
test_v5_seq_loss(void **state)
{
	(void)state;
	const V5Rec recs[3] = {rec_tcp, rec_udp, rec_tcp};
	Harness *h = harness_new(NULL);
	g_autoptr(GByteArray) a = v5_dgram(2, UPTIME, 100, 0, 0, 0, recs, 2);
	g_autoptr(GByteArray) b = v5_dgram(3, UPTIME + 1000, 102, 0, 0, 0, recs, 3);
	g_autoptr(GByteArray) c = v5_dgram(1, UPTIME + 2000, 110, 0, 0, 0, recs, 1); /* 5 lost */
	g_autoptr(GByteArray) d = v5_dgram(1, UPTIME + 3000, 111, 0, 0, 0, recs, 1);
	harness_input(h, a, NOW);
	harness_input(h, b, NOW);
	assert_int_equal(harness_stats(h, 0)->seq_lost, 0);
	harness_input(h, c, NOW);
	assert_int_equal(harness_stats(h, 0)->seq_lost, 5);
	harness_input(h, d, NOW);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->seq_lost, 5);
	assert_int_equal(st->seq_resets, 0);
	assert_int_equal(st->records, 7);
	harness_free(h);
}

/* A restart (sysUptime backwards) resets the sequence: counted in seq_resets, not lost; a
 * sequence jumping backwards without a restart is a resync, not loss either. */
static void
test_v5_seq_restart(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	g_autoptr(GByteArray) a = v5_dgram(1, 5000000, 5000, 0, 0, 0, &rec_tcp, 1);
	g_autoptr(GByteArray) b = v5_dgram(1, 1000, 0, 0, 0, 0, &rec_tcp, 1); /* rebooted */
	g_autoptr(GByteArray) c = v5_dgram(1, 2000, 1, 0, 0, 0, &rec_tcp, 1);
	g_autoptr(GByteArray) d = v5_dgram(1, 3000, 0, 0, 0, 0, &rec_tcp, 1); /* seq backwards */
	harness_input(h, a, NOW);
	harness_input(h, b, NOW);
	const SessionStats *st = harness_stats(h, 0);
	assert_int_equal(st->seq_resets, 1);
	assert_int_equal(st->seq_lost, 0);
	harness_input(h, c, NOW);
	assert_int_equal(st->seq_resets, 1);
	assert_int_equal(st->seq_lost, 0);
	harness_input(h, d, NOW);
	assert_int_equal(st->seq_resets, 2);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->records, 4);
	harness_free(h);
}

/* Engines are observation domains with their own sequences; max_domains caps them. */
static void
test_v5_domains_and_cap(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_domains = 2;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) a = v5_dgram(1, UPTIME, 0, 0, 1, 0, &rec_tcp, 1);
	g_autoptr(GByteArray) b = v5_dgram(1, UPTIME, 500, 0, 2, 0, &rec_tcp, 1);
	g_autoptr(GByteArray) a2 = v5_dgram(1, UPTIME, 1, 0, 1, 0, &rec_tcp, 1);
	g_autoptr(GByteArray) c = v5_dgram(1, UPTIME, 0, 0, 3, 0, &rec_tcp, 1);
	assert_int_equal(harness_input(h, a, NOW), 1);
	assert_int_equal(harness_input(h, b, NOW), 1);
	assert_int_equal(harness_input(h, a2, NOW), 1);
	assert_int_equal(harness_input(h, c, NOW), 0); /* third domain refused */
	assert_int_equal(harness_stats(h, 1)->seq_lost, 0);
	assert_int_equal(harness_stats(h, 1)->records, 2);
	assert_int_equal(harness_stats(h, 2)->records, 1);
	assert_null(harness_stats(h, 3));
	const SessionStats *hdr = harness_hdr_stats(h);
	assert_non_null(hdr);
	assert_int_equal(hdr->datagrams, 1);
	assert_malformed_only(hdr, MAL_N, 0);
	assert_int_equal(collector_totals(h->c)->domains_refused, 1);
	assert_int_equal(harness_flow(h, 1)->domain, 2);
	harness_free(h);
}

/* max_exporters caps transport sessions; exporter indexes are stable; idle ones expire. */
static void
test_v5_exporter_cap_and_expiry(void **state)
{
	(void)state;
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.max_exporters = 2;
	cfg.exporter_timeout_s = 60;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) g = v5_dgram(1, UPTIME, 0, 0, 0, 0, &rec_tcp, 1);
	assert_int_equal(harness_input_port(h, 1000, g->data, g->len, NOW), 1);
	assert_int_equal(harness_input_port(h, 1001, g->data, g->len, NOW + 30000), 1);
	assert_int_equal(harness_input_port(h, 1002, g->data, g->len, NOW + 30000), 0);
	assert_int_equal(harness_flow(h, 0)->exporter, 0);
	assert_int_equal(harness_flow(h, 1)->exporter, 1);
	const CollectorTotals *t = collector_totals(h->c);
	assert_int_equal(t->exporters_refused, 1);
	assert_int_equal(t->datagrams, 3);
	assert_int_equal(harness_sums(h).datagrams, 2);
	assert_null(harness_stats_port(h, 1002, 0));

	guint8 addr[16], want[16];
	guint16 port = 0;
	harness_addr(want);
	assert_true(collector_exporter_addr(h->c, 1, addr, &port));
	assert_memory_equal(addr, want, 16);
	assert_int_equal(port, 1001);

	collector_expire(h->c, NOW + 60000); /* exactly the timeout: kept */
	assert_int_equal(t->exporters_expired, 0);
	collector_expire(h->c, NOW + 60001);
	assert_int_equal(t->exporters_expired, 1);
	assert_false(collector_exporter_addr(h->c, 0, addr, &port));
	assert_true(collector_exporter_addr(h->c, 1, addr, &port));
	/* the freed slot takes a new exporter, with a new index */
	assert_int_equal(harness_input_port(h, 1002, g->data, g->len, NOW + 60002), 1);
	assert_int_equal(harness_flow(h, 2)->exporter, 2);
	harness_free(h);
}

/* fixtures/softflowd-v5.pcap decodes cleanly, with no sequence loss or restart. */
static void
test_v5_softflowd_capture(void **state)
{
	(void)state;
	Harness *h = harness_new(NULL);
	guint16 port = 0;
	guint n = harness_replay_fixture(h, "softflowd-v5.pcap", &port);
	const SessionStats *st = harness_stats_port(h, port, 0);
	assert_non_null(st);
	assert_int_equal(st->datagrams, n);
	assert_true(st->records > 0);
	assert_int_equal(st->records, h->flows->len);
	assert_malformed_only(st, MAL_N, 0);
	assert_int_equal(st->seq_lost, 0);
	assert_int_equal(st->seq_resets, 0);
	for (guint j = 0; j < h->flows->len; j++) {
		const Flow *f = harness_flow(h, j);
		assert_int_equal(f->version, 5);
		assert_true(f->has & FLOW_HAS_TIMES);
	}
	harness_free(h);
}

static void
test_v5_random(void **state)
{
	(void)state;
	random_datagrams(5, 0x5eed0005, 64);
}

/* Sources the allowlist refuses: counted per source up to DENIED_SOURCES_MAX, told once each,
 * listed most recent first, forgotten (and told again) after exporter_timeout. */
typedef struct {
	guint told;
	guint8 last[16];
} DeniedLog;

static void
denied_notice(CollectorNotice what, const CollectorNoticeInfo *info, gpointer data)
{
	DeniedLog *l = data;
	if (what != NOTICE_DENIED_SOURCE)
		return;
	l->told++;
	memcpy(l->last, info->addr, 16);
}

static gboolean
deny_all(const guint8 addr[16], gpointer data)
{
	(void)addr;
	(void)data;
	return FALSE;
}

static void
collect_denied(const DeniedView *v, gpointer data)
{
	g_array_append_val((GArray *)data, *v);
}

static void
test_v5_denied_sources(void **state)
{
	(void)state;
	DeniedLog log = {0};
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.allow = deny_all;
	cfg.notice = denied_notice;
	cfg.notice_data = &log;
	Harness *h = harness_new(&cfg);
	g_autoptr(GByteArray) g = v5_dgram(1, UPTIME, 0, 0, 0, 0, &rec_tcp, 1);

	for (guint i = 0; i < DENIED_SOURCES_MAX + 10; i++) {
		guint8 a[16], v4[4] = {198, 51, (guint8)(i >> 8), (guint8)i};
		flow_addr_set_v4(a, v4);
		/* each source twice, the second from another port */
		for (guint k = 0; k < 2; k++)
			assert_int_equal(collector_input(h->c, a, (guint16)(1000 + k), g->data, g->len,
							 NOW + i),
					 0);
	}
	const CollectorTotals *t = collector_totals(h->c);
	assert_int_equal(t->exporters_denied, 2 * (DENIED_SOURCES_MAX + 10));
	assert_int_equal(t->denied_sources, DENIED_SOURCES_MAX);
	assert_int_equal(t->denied_untracked, 2 * 10);
	assert_int_equal(log.told, DENIED_SOURCES_MAX);
	assert_int_equal(harness_sums(h).rows, 0); /* no exporter was made for any of them */
	g_autoptr(GArray) list = g_array_new(FALSE, FALSE, sizeof(DeniedView));
	collector_foreach_denied(h->c, collect_denied, list);
	assert_int_equal(list->len, DENIED_SOURCES_MAX);
	const DeniedView *first = &g_array_index(list, DeniedView, 0);
	assert_addr_v4(first->addr, 198, 51, 0, 255); /* the most recent tracked one */
	assert_int_equal(first->datagrams, 2);
	assert_int_equal(first->bytes, 2 * g->len);
	assert_int_equal(first->port, 1001);
	assert_int_equal(first->last_seen_ms, NOW + 255);

	/* quiet past exporter_timeout: forgotten, and told again when it comes back */
	gint64 later = NOW + (gint64)cfg.exporter_timeout_s * 1000 + 1000;
	collector_expire(h->c, later);
	assert_int_equal(t->denied_sources, 0);
	guint8 a[16], v4[4] = {198, 51, 0, 7};
	flow_addr_set_v4(a, v4);
	collector_input(h->c, a, 1000, g->data, g->len, later);
	assert_int_equal(log.told, DENIED_SOURCES_MAX + 1);
	assert_addr_v4(log.last, 198, 51, 0, 7);
	harness_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v5_fields),
	    cmocka_unit_test(test_v5_trailing_bytes),
	    cmocka_unit_test(test_v5_max_count),
	    cmocka_unit_test(test_v5_implausible_times),
	    cmocka_unit_test(test_v5_sampling),
	    cmocka_unit_test(test_v5_bad_counts),
	    cmocka_unit_test(test_v5_short_header),
	    cmocka_unit_test(test_v5_truncation_sweep),
	    cmocka_unit_test(test_v5_seq_loss),
	    cmocka_unit_test(test_v5_seq_restart),
	    cmocka_unit_test(test_v5_domains_and_cap),
	    cmocka_unit_test(test_v5_exporter_cap_and_expiry),
	    cmocka_unit_test(test_v5_softflowd_capture),
	    cmocka_unit_test(test_v5_random),
	    cmocka_unit_test(test_v5_denied_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
