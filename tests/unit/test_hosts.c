/* Unit tests for analyzer/hosts.c through the Analyzer: hosts evicted at max_hosts or
 * mem_cap are told through the notice callback, with their counts, at once for the first
 * and then at most once a minute of the analyzer's clock, the rest when flushed; a
 * reconfiguration that lowers a cap is told the same way, a state load is not. Records that
 * tell of no internal host at all (internal_networks that miss the site) are told once an
 * hour (ANALYZER_NOTICE_OUTSIDE). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"

#define SEC_MS 1000
#define T0 ((gint64)1700000000 / 600 * 600 * 1000)
#define F_SESSION 0x1b /* SYN ACK PSH FIN */

typedef struct {
	GArray *notices; /* AnalyzerNoticeInfo */
	Analyzer *a;
} Ctx;

static void
on_notice(AnalyzerNotice what, const AnalyzerNoticeInfo *info, gpointer user_data)
{
	Ctx *c = user_data;
	assert_int_equal(what, ANALYZER_NOTICE_EVICTED);
	g_array_append_val(c->notices, *info);
}

static Ctx *
ctx_new(AnalyzerConfig *cfg)
{
	Ctx *c = g_new0(Ctx, 1);
	c->notices = g_array_new(FALSE, FALSE, sizeof(AnalyzerNoticeInfo));
	cfg->notice_fn = on_notice;
	cfg->notice_data = c;
	g_autoptr(GError) err = NULL;
	c->a = analyzer_new(cfg, &err);
	assert_null(err);
	return c;
}

static void
ctx_free(Ctx *c)
{
	analyzer_free(c->a);
	g_array_free(c->notices, TRUE);
	g_free(c);
}

static const AnalyzerNoticeInfo *
notice_at(Ctx *c, guint i)
{
	return &g_array_index(c->notices, AnalyzerNoticeInfo, i);
}

/* A port-25 record between two addresses given as IPv4 words. */
static void
flow_between(Analyzer *a, guint32 src, guint32 dst, gint64 t)
{
	guint8 s4[4] = {src >> 24, (guint8)(src >> 16), (guint8)(src >> 8), (guint8)src};
	guint8 d4[4] = {dst >> 24, (guint8)(dst >> 16), (guint8)(dst >> 8), (guint8)dst};
	Flow f;
	memset(&f, 0, sizeof f);
	flow_addr_set_v4(f.src, s4);
	flow_addr_set_v4(f.dst, d4);
	f.recv_ms = t;
	f.sport = 40000;
	f.dport = 25;
	f.proto = 6;
	f.tcp_flags = F_SESSION;
	f.packets = 12;
	f.bytes = 3000;
	f.sampling = 1;
	f.has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	analyzer_process(a, &f, 1);
}

/* One port-25 flow from internal host 10.x.y.z (i) to external 198.51.x.y (d) at t. */
static void
flow(Analyzer *a, guint32 i, guint32 d, gint64 t)
{
	flow_between(a, 0x0a000000u | (i & 0xffffffu), 0xc6330000u | (d & 0xffffu), t);
}

static guint64
evicted(Analyzer *a)
{
	AnalyzerStats st;
	analyzer_get_stats(a, &st);
	return st.hosts_evicted;
}

/* 25 hosts into a table of 10, then more: the first eviction is told at once, the rest at
 * the first tick or eviction a minute after it, with counts since the last notice. */
static void
test_max_hosts_notice(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.max_hosts = 10;
	Ctx *c = ctx_new(&cfg);

	for (guint i = 0; i < 10; i++)
		flow(c->a, i, i, T0 + i * SEC_MS);
	assert_int_equal(c->notices->len, 0); /* full, nothing evicted */
	flow(c->a, 10, 10, T0 + 10 * SEC_MS);
	assert_int_equal(c->notices->len, 1); /* the first eviction: told at once */
	const AnalyzerNoticeInfo *n = notice_at(c, 0);
	assert_int_equal(n->evicted, 1);
	assert_int_equal(n->by_max_hosts, 1);
	assert_int_equal(n->by_mem_cap, 0);
	assert_int_equal(n->evicted_total, 1);
	assert_int_equal(n->first_ms, T0 + 10 * SEC_MS);
	assert_int_equal(n->last_ms, T0 + 10 * SEC_MS);
	assert_int_equal(n->max_hosts, 10);
	assert_int_equal(n->mem_cap, cfg.mem_cap);
	assert_int_equal(n->hosts, 10);
	assert_true(n->mem_bytes > 0);

	/* 14 more within the minute: counted, not told */
	for (guint i = 11; i < 25; i++)
		flow(c->a, i, i, T0 + i * SEC_MS);
	analyzer_tick(c->a, T0 + 69 * SEC_MS);
	assert_int_equal(c->notices->len, 1);
	assert_int_equal(evicted(c->a), 15);

	/* a minute after the first notice, a tick tells them */
	analyzer_tick(c->a, T0 + 70 * SEC_MS);
	assert_int_equal(c->notices->len, 2);
	n = notice_at(c, 1);
	assert_int_equal(n->evicted, 14);
	assert_int_equal(n->by_max_hosts, 14);
	assert_int_equal(n->evicted_total, 15);
	assert_int_equal(n->first_ms, T0 + 11 * SEC_MS);
	assert_int_equal(n->last_ms, T0 + 24 * SEC_MS);
	assert_int_equal(n->hosts, 10);

	/* nothing pending: no notice, however long */
	analyzer_tick(c->a, T0 + 200 * SEC_MS);
	assert_int_equal(c->notices->len, 2);

	/* the next eviction is more than a minute after the last notice: told at once */
	flow(c->a, 100, 100, T0 + 201 * SEC_MS);
	assert_int_equal(c->notices->len, 3);
	assert_int_equal(notice_at(c, 2)->evicted, 1);
	assert_int_equal(notice_at(c, 2)->evicted_total, 16);

	/* one more within the minute, then the end of a replay: flushed, whatever the time */
	flow(c->a, 101, 101, T0 + 202 * SEC_MS);
	assert_int_equal(c->notices->len, 3);
	analyzer_flush_notices(c->a);
	assert_int_equal(c->notices->len, 4);
	assert_int_equal(notice_at(c, 3)->evicted, 1);
	assert_int_equal(notice_at(c, 3)->evicted_total, 17);
	analyzer_flush_notices(c->a); /* nothing pending: nothing told */
	assert_int_equal(c->notices->len, 4);

	/* a host already tracked evicts nothing */
	flow(c->a, 101, 102, T0 + 300 * SEC_MS);
	analyzer_tick(c->a, T0 + 400 * SEC_MS);
	assert_int_equal(c->notices->len, 4);
	assert_int_equal(evicted(c->a), 17);
	ctx_free(c);
}

/* A flood of new hosts, one a millisecond for five minutes: one notice a minute, and the
 * counts add up to the statistics. */
static void
test_rate_limit_flood(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.max_hosts = 100;
	Ctx *c = ctx_new(&cfg);
	guint64 sum = 0;

	for (guint i = 0; i < 5 * 60 * 1000; i++)
		flow(c->a, i, 1, T0 + i);
	analyzer_tick(c->a, T0 + 10 * 60 * SEC_MS);
	/* at the evictions at T0 + 100 ms (the first), + 60.1 s, + 120.1 s, + 180.1 s,
	 * + 240.1 s, and at the tick for the rest */
	assert_int_equal(c->notices->len, 6);
	for (guint i = 0; i < c->notices->len; i++) {
		const AnalyzerNoticeInfo *n = notice_at(c, i);
		if (i < 5)
			assert_int_equal(n->last_ms, T0 + 100 + i * 60 * SEC_MS);
		if (i > 0)
			assert_int_equal(n->first_ms, notice_at(c, i - 1)->last_ms + 1);
		assert_int_equal(n->by_max_hosts, n->evicted);
		sum += n->evicted;
		assert_int_equal(n->evicted_total, sum);
	}
	assert_int_equal(notice_at(c, 0)->first_ms, T0 + 100);
	assert_int_equal(notice_at(c, 5)->last_ms, T0 + 5 * 60 * SEC_MS - 1);
	assert_int_equal(sum, evicted(c->a));
	assert_int_equal(sum, 5 * 60 * 1000 - 100);
	ctx_free(c);
}

/* The memory cap: hosts with many destinations; evictions counted as by_mem_cap. */
static void
test_mem_cap_notice(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.mem_cap = 1u << 20;
	Ctx *c = ctx_new(&cfg);

	for (guint i = 0; evicted(c->a) == 0; i++) {
		assert_true(i < 1000);
		for (guint d = 0; d < 1000; d++)
			flow(c->a, i, d, T0 + i);
	}
	assert_int_equal(c->notices->len, 1);
	const AnalyzerNoticeInfo *n = notice_at(c, 0);
	assert_true(n->evicted >= 1);
	assert_int_equal(n->by_mem_cap, n->evicted);
	assert_int_equal(n->by_max_hosts, 0);
	assert_int_equal(n->mem_cap, 1u << 20);
	assert_true(n->mem_bytes <= n->mem_cap);
	ctx_free(c);
}

/* The clock stepping back restarts the interval: the notice comes late, never early. */
static void
test_clock_back(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.max_hosts = 1;
	Ctx *c = ctx_new(&cfg);

	flow(c->a, 0, 0, T0);
	flow(c->a, 1, 0, T0 + 1);
	assert_int_equal(c->notices->len, 1);
	flow(c->a, 2, 0, T0 - 3600 * SEC_MS); /* back an hour */
	flow(c->a, 3, 0, T0 - 3600 * SEC_MS + 59 * SEC_MS);
	assert_int_equal(c->notices->len, 1);
	/* a minute after the step back: the tick this flow brings tells the two before it */
	flow(c->a, 4, 0, T0 - 3600 * SEC_MS + 60 * SEC_MS);
	assert_int_equal(c->notices->len, 2);
	assert_int_equal(notice_at(c, 1)->evicted, 2);
	assert_int_equal(notice_at(c, 1)->first_ms, T0 - 3600 * SEC_MS);
	assert_int_equal(notice_at(c, 1)->last_ms, T0 - 3600 * SEC_MS + 59 * SEC_MS);
	assert_int_equal(evicted(c->a), 4);
	ctx_free(c);
}

/* Lowering max_hosts evicts, and is told; loading a state that does not fit evicts, is
 * counted in state_hosts_evicted, and is not told. No callback: nothing breaks. */
static void
test_reconfigure_and_load(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	Ctx *c = ctx_new(&cfg);
	g_autoptr(GError) err = NULL;

	for (guint i = 0; i < 20; i++)
		flow(c->a, i, i, T0 + i);
	AnalyzerConfig small = cfg;
	small.max_hosts = 5;
	small.notice_fn = NULL; /* kept from analyzer_new() */
	assert_true(analyzer_reconfigure(c->a, &small, &err));
	assert_int_equal(c->notices->len, 1);
	assert_int_equal(notice_at(c, 0)->evicted, 15);
	assert_int_equal(notice_at(c, 0)->max_hosts, 5);

	g_autoptr(GByteArray) saved = g_byte_array_new();
	analyzer_state_save(c->a, saved);
	AnalyzerConfig tiny = cfg;
	tiny.max_hosts = 2;
	Ctx *l = ctx_new(&tiny);
	assert_true(analyzer_state_load(l->a, saved->data, saved->len, &err));
	AnalyzerStats st;
	analyzer_get_stats(l->a, &st);
	assert_int_equal(st.state_hosts_evicted, 3);
	assert_int_equal(st.hosts_evicted, 0);
	assert_int_equal(l->notices->len, 0);
	analyzer_tick(l->a, analyzer_now(l->a) + 3600 * SEC_MS);
	assert_int_equal(l->notices->len, 0);
	ctx_free(l);

	AnalyzerConfig quiet = tiny;
	quiet.notice_fn = NULL;
	quiet.notice_data = NULL;
	g_autoptr(Analyzer) q = analyzer_new(&quiet, &err);
	for (guint i = 0; i < 10; i++)
		flow(q, i, i, T0 + i * 61 * SEC_MS);
	assert_int_equal(evicted(q), 8);
	ctx_free(c);
}

/* ---- ANALYZER_NOTICE_OUTSIDE ---- */

typedef struct {
	GArray *told;  /* AnalyzerNoticeInfo */
	GArray *at_ms; /* the flow time each was told at */
	gint64 now;
} Scope;

static void
on_scope(AnalyzerNotice what, const AnalyzerNoticeInfo *info, gpointer user_data)
{
	Scope *s = user_data;
	assert_int_equal(what, ANALYZER_NOTICE_OUTSIDE);
	g_array_append_val(s->told, *info);
	g_array_append_val(s->at_ms, s->now);
}

#define EXT_A 0xcb007100u /* 203.0.113.0 */
#define EXT_B 0xc6336400u /* 198.51.100.0 */
#define INT_A 0x0a000000u /* 10.0.0.0 */

/* Port-25 records between external addresses only, one every 5 s for 95 minutes: told at
 * the end of the first 10-minute period with the period's count, then not again for an
 * hour; a reconfiguration starts afresh (told 10 minutes later). One record with an
 * internal end in a period: not told. */
static void
test_outside_notice(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	Scope s = {g_array_new(FALSE, FALSE, sizeof(AnalyzerNoticeInfo)),
		   g_array_new(FALSE, FALSE, sizeof(gint64)), 0};
	cfg.notice_fn = on_scope;
	cfg.notice_data = &s;
	g_autoptr(GError) err = NULL;
	Analyzer *a = analyzer_new(&cfg, &err);
	assert_non_null(a);

	guint n = 0;
	for (gint64 t = T0; t < T0 + 95 * 60 * SEC_MS; t += 5 * SEC_MS, n++) {
		s.now = t;
		flow_between(a, EXT_A + n % 200, EXT_B + n % 250, t);
		if (t == T0 + 75 * 60 * SEC_MS) /* a reload: a new period, told again */
			assert_true(analyzer_reconfigure(a, &cfg, &err));
	}
	AnalyzerStats st;
	analyzer_get_stats(a, &st);
	assert_int_equal(st.flows_outside, n);
	assert_int_equal(st.flows_relevant, 0);
	assert_int_equal(st.hosts_tracked, 0);
	/* the first tick (the first record) starts the period; the tick a slice after its 10
	 * minutes tells the records before it: 120 of them (5 s apart) */
	assert_int_equal(s.told->len, 3);
	const AnalyzerNoticeInfo *i0 = &g_array_index(s.told, AnalyzerNoticeInfo, 0);
	assert_int_equal(g_array_index(s.at_ms, gint64, 0), T0 + 10 * 60 * SEC_MS);
	assert_int_equal(i0->outside, 120);
	assert_int_equal(i0->outside_ms, 10 * 60 * SEC_MS);
	/* not at 20..60 minutes: the next period that ends an hour or more after it */
	assert_int_equal(g_array_index(s.at_ms, gint64, 1), T0 + 70 * 60 * SEC_MS);
	assert_int_equal(g_array_index(s.told, AnalyzerNoticeInfo, 1).outside, 120);
	/* the reload at 75 minutes: the period restarts at the next tick (76), told at 86 */
	assert_int_equal(g_array_index(s.at_ms, gint64, 2), T0 + 86 * 60 * SEC_MS);
	analyzer_free(a);

	/* the same traffic with one record from an internal host every 10 minutes: never */
	g_array_set_size(s.told, 0);
	a = analyzer_new(&cfg, &err);
	for (gint64 t = T0, k = 0; t < T0 + 95 * 60 * SEC_MS; t += 5 * SEC_MS, k++) {
		s.now = t;
		if (k % 120 == 7)
			flow_between(a, INT_A + 1, EXT_B + 1, t);
		else
			flow_between(a, EXT_A + k % 200, EXT_B + k % 250, t);
	}
	analyzer_get_stats(a, &st);
	assert_true(st.flows_outside > 1000);
	assert_int_equal(st.flows_relevant, 10);
	assert_int_equal(s.told->len, 0);
	analyzer_free(a);

	/* fewer than ANALYZER_SCOPE_MIN_OUTSIDE in a period: a quiet exporter, not told */
	a = analyzer_new(&cfg, &err);
	for (gint64 t = T0, k = 0; t < T0 + 45 * 60 * SEC_MS; t += 7 * SEC_MS, k++) {
		s.now = t;
		flow_between(a, EXT_A + k % 200, EXT_B + k % 250, t);
	}
	assert_int_equal(s.told->len, 0); /* 86 a period */
	analyzer_free(a);
	g_array_free(s.told, TRUE);
	g_array_free(s.at_ms, TRUE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_max_hosts_notice),
	    cmocka_unit_test(test_rate_limit_flood),
	    cmocka_unit_test(test_mem_cap_notice),
	    cmocka_unit_test(test_clock_back),
	    cmocka_unit_test(test_reconfigure_and_load),
	    cmocka_unit_test(test_outside_notice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
