/* The analyzer's side of the history store: the slice hook (AnalyzerConfig.slice_fn) fires
 * once per slice boundary with the boundary's time, never on the first tick and not again
 * within a slice; analyzer_foreach_reading() gives the hosts at a quarter of a threshold or
 * more and the offenders, with the values `host` shows (analyzer_host_info). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "analyzer.h"

#include <string.h>

static GArray *slices;

static void
on_slice(gint64 end_ms, gpointer data)
{
	(void)data;
	g_array_append_val(slices, end_ms);
}

static void
port25(Flow *f, guint8 host, guint32 d, gint64 t)
{
	guint8 s4[4] = {10, 0, 0, host};
	guint8 d4[4] = {198, 51, (guint8)(d >> 8), (guint8)d};
	memset(f, 0, sizeof *f);
	f->recv_ms = t;
	flow_addr_set_v4(f->src, s4);
	flow_addr_set_v4(f->dst, d4);
	f->sport = (guint16)(40000 + d);
	f->dport = 25;
	f->proto = 6;
	f->tcp_flags = 0x1b;
	f->packets = 5;
	f->bytes = 500;
	f->sampling = 1;
	f->version = 9;
	f->has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
}

static void
collect(const AnalyzerReading *r, gpointer data)
{
	g_array_append_val((GArray *)data, *r);
}

static void
test_slices_and_readings(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.slice_fn = on_slice;
	slices = g_array_new(FALSE, FALSE, sizeof(gint64));
	g_autoptr(Analyzer) a = analyzer_new(&cfg, NULL);
	const gint64 t0 = 1700000000000 / 60000 * 60000 + 5000;
	Flow f;
	/* host 1: 13 destinations (a quarter of smtp-fanout's 50: recorded); host 2: 7 (under
	 * a quarter of smtp-blocked's 30 too: not); host 3: 60
	 * (raised: an offender) */
	for (guint d = 0; d < 13; d++) {
		port25(&f, 1, d, t0);
		analyzer_process(a, &f, 1);
	}
	for (guint d = 0; d < 7; d++) {
		port25(&f, 2, d, t0);
		analyzer_process(a, &f, 1);
	}
	for (guint d = 0; d < 60; d++) {
		port25(&f, 3, d, t0);
		analyzer_process(a, &f, 1);
	}
	assert_int_equal(slices->len, 0); /* the first tick starts the count */
	analyzer_tick(a, t0 + 30000);
	assert_int_equal(slices->len, 0);
	analyzer_tick(a, t0 + 60000);
	assert_int_equal(slices->len, 1);
	assert_int_equal(g_array_index(slices, gint64, 0), t0 - 5000 + 60000);
	analyzer_tick(a, t0 + 70000);
	assert_int_equal(slices->len, 1);
	analyzer_tick(a, t0 + 185000); /* two boundaries passed: told once, the last */
	assert_int_equal(slices->len, 2);
	assert_int_equal(g_array_index(slices, gint64, 1), t0 - 5000 + 180000);

	g_autoptr(GArray) rs = g_array_new(FALSE, FALSE, sizeof(AnalyzerReading));
	analyzer_foreach_reading(a, 0.25, collect, rs);
	assert_int_equal(rs->len, 2);
	for (guint i = 0; i < rs->len; i++) {
		const AnalyzerReading *r = &g_array_index(rs, AnalyzerReading, i);
		assert_true(r->addr[15] == 1 || r->addr[15] == 3);
		AnalyzerHostInfo hi;
		assert_true(analyzer_host_info(a, r->addr, &hi));
		assert_true(r->reason_mask & (1u << REASON_SMTP_FANOUT));
		assert_false(r->reason_mask & (1u << REASON_MTA_SURGE));
		for (guint k = 0; k < REASON_COUNT; k++) {
			if (!(r->reason_mask & (1u << k)))
				continue;
			assert_int_equal(r->value[k][0], hi.reason[k].value[0]);
			assert_int_equal(r->value[k][1], k == REASON_SMTP_NOVELTY ? 0 : hi.reason[k].value[1]);
			assert_int_equal(r->threshold[k][0], hi.reason[k].threshold[0]);
		}
		assert_int_equal(r->value[REASON_SMTP_FANOUT][0], r->addr[15] == 1 ? 13 : 60);
		assert_int_equal(r->offender_mask != 0, r->addr[15] == 3);
	}
	AnalyzerReading one;
	assert_true(analyzer_host_reading(a, g_array_index(rs, AnalyzerReading, 0).addr, &one));
	guint8 none[16] = {0};
	assert_false(analyzer_host_reading(a, none, &one));
	/* a reload to a wider slice goes on from where it was */
	cfg.slice_ms = 300000;
	assert_true(analyzer_reconfigure(a, &cfg, NULL));
	analyzer_tick(a, t0 - 5000 + 600000);
	assert_int_equal(slices->len, 3);
	assert_int_equal(g_array_index(slices, gint64, 2), (t0 - 5000 + 600000) / 300000 * 300000);
	g_array_unref(slices);
}


/* The set of hosts a walk gives, as the last address bytes, sorted */
static GString *
walk(Analyzer *a, double share)
{
	g_autoptr(GArray) rs = g_array_new(FALSE, FALSE, sizeof(AnalyzerReading));
	analyzer_foreach_reading(a, share, collect, rs);
	guint8 seen[256] = {0};
	GString *out = g_string_new(NULL);
	for (guint i = 0; i < rs->len; i++) {
		guint8 h = g_array_index(rs, AnalyzerReading, i).addr[15];
		assert_int_equal(seen[h], 0); /* each host once */
		seen[h] = 1;
	}
	for (guint h = 0; h < 256; h++)
		if (seen[h])
			g_string_append_printf(out, "%u ", h);
	return out;
}

/* After the first walk (every host), a walk visits the candidates the flows marked: it
 * must give exactly what a walk of every host gives (a share just under the quarter makes
 * analyzer_foreach_reading() walk them all; no host sits between the two shares here). */
static void
test_candidates(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	g_autoptr(Analyzer) a = analyzer_new(&cfg, NULL);
	const gint64 t0 = 1700000000000 / 60000 * 60000 + 5000;
	Flow f;

	for (guint d = 0; d < 13; d++) { /* host 1 at a quarter */
		port25(&f, 1, d, t0);
		analyzer_process(a, &f, 1);
	}
	for (guint d = 0; d < 7; d++) { /* host 2 under it */
		port25(&f, 2, d, t0);
		analyzer_process(a, &f, 1);
	}
	g_autoptr(GString) first = walk(a, 0.25); /* the first: every host */
	assert_string_equal(first->str, "1 ");
	/* host 2 reaches a quarter, host 4 comes and reaches it, host 5 stays under */
	for (guint d = 7; d < 14; d++) {
		port25(&f, 2, d, t0 + 1000);
		analyzer_process(a, &f, 1);
	}
	for (guint d = 0; d < 20; d++) {
		port25(&f, 4, d, t0 + 1000);
		analyzer_process(a, &f, 1);
	}
	for (guint d = 0; d < 3; d++) {
		port25(&f, 5, d, t0 + 1000);
		analyzer_process(a, &f, 1);
	}
	g_autoptr(GString) cand = walk(a, 0.25);
	g_autoptr(GString) all = walk(a, 0.2499);
	assert_string_equal(cand->str, all->str);
	assert_string_equal(cand->str, "1 2 4 ");
	/* a host that raised stays while an offender; the others leave as their windows empty */
	for (guint d = 0; d < 60; d++) {
		port25(&f, 6, d, t0 + 2000);
		analyzer_process(a, &f, 1);
	}
	analyzer_tick(a, t0 + 11 * 60000); /* the short window has passed */
	g_autoptr(GString) later = walk(a, 0.25);
	g_autoptr(GString) later_all = walk(a, 0.2499);
	assert_string_equal(later->str, later_all->str);
	assert_non_null(strstr(later->str, "6 "));
	/* a reload that lowers the threshold: host 5 (3 destinations) is at a quarter of 12
	 * without a flow; the walk after the reload visits every host and finds it */
	cfg.h[REASON_SMTP_FANOUT].threshold[WINDOW_SHORT] = 12;
	cfg.h[REASON_SMTP_FANOUT].threshold[WINDOW_LONG] = 12;
	assert_true(analyzer_reconfigure(a, &cfg, NULL));
	g_autoptr(GString) reloaded = walk(a, 0.25);
	g_autoptr(GString) reloaded_all = walk(a, 0.2499);
	assert_string_equal(reloaded->str, reloaded_all->str);
	assert_non_null(strstr(reloaded->str, "5 "));
	g_autoptr(GString) again = walk(a, 0.25); /* and the candidates kept it */
	assert_string_equal(again->str, reloaded_all->str);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_slices_and_readings),
	    cmocka_unit_test(test_candidates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
