/* Unit tests for the analyzer's geo hook: distinct countries and ASNs of an alerting host's
 * destinations (n_countries/n_asns), the top destinations' country and ASN, lookups only
 * for new destinations once a window holds ANALYZER_GEO_MIN_DESTS, saturation at the caps,
 * entries leaving with the long window, and the memory estimate. No databases: a fake
 * lookup derives the country from the third octet and the ASN from the fourth. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"

#define MIN_MS (60 * 1000)

typedef struct {
	Analyzer *a;
	AlertEvent last;
	guint events;
	guint lookups;
	gboolean asn_from_octet3; /* ASN follows the country instead of the fourth octet */
} Ctx;

/* dst 198.18.C.D: country "A"+C/26, "A"+C%26; ASN 1000 + D (or + C) */
static gboolean
fake_geo(const guint8 dst[16], char country[4], guint32 *asn, gpointer user_data)
{
	Ctx *c = user_data;
	c->lookups++;
	country[0] = (char)('A' + dst[14] / 26 % 26);
	country[1] = (char)('A' + dst[14] % 26);
	country[2] = '\0';
	*asn = 1000u + (c->asn_from_octet3 ? dst[14] : dst[15]);
	return TRUE;
}

static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	Ctx *c = user_data;
	c->last = *ev;
	c->events++;
}

static void
setup(Ctx *c, gboolean hook, guint32 short_thr)
{
	AnalyzerConfig cfg;
	g_autoptr(GError) err = NULL;
	memset(c, 0, sizeof *c);
	analyzer_config_defaults(&cfg);
	for (guint r = 0; r < REASON_COUNT; r++)
		cfg.h[r].enabled = FALSE;
	cfg.h[REASON_SMTP_BLOCKED] = (HeuristicConfig){TRUE, {short_thr, 0}};
	cfg.blocked_min_attempts = 1;
	cfg.alert_fn = on_alert;
	cfg.alert_data = c;
	if (hook) {
		cfg.geo_fn = fake_geo;
		cfg.geo_data = c;
	}
	c->a = analyzer_new(&cfg, &err);
	assert_non_null(c->a);
}

/* One failed SMTP attempt from 10.0.0.5 to 198.18.c.d at t. */
static void
send(Ctx *c, gint64 t, guint8 oc3, guint8 oc4)
{
	Flow f;
	const guint8 src[4] = {10, 0, 0, 5}, dst[4] = {198, 18, oc3, oc4};
	memset(&f, 0, sizeof f);
	f.recv_ms = t;
	flow_addr_set_v4(f.src, src);
	flow_addr_set_v4(f.dst, dst);
	f.sport = 40000;
	f.dport = 25;
	f.proto = 6;
	f.tcp_flags = 0x02;
	f.has = FLOW_HAS_TCP_FLAGS;
	f.sampling = 1;
	analyzer_process(c->a, &f, 1);
}

static void
test_no_hook(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, FALSE, 10);
	for (guint i = 0; i < 10; i++)
		send(&c, 1000 + i, (guint8)i, (guint8)i);
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.n_countries, 0);
	assert_int_equal(c.last.n_asns, 0);
	assert_string_equal(c.last.top[0].country, "");
	assert_int_equal(c.last.top[0].asn, 0);
	analyzer_free(c.a);
}

/* Below ANALYZER_GEO_MIN_DESTS no set is kept and nothing is looked up per flow; the event
 * still gets exact counts from the window's few destinations. */
static void
test_few_destinations(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, TRUE, 5);
	/* countries: oc3 0,0,1,1,2 -> 3; ASNs: oc4 1,2,3,4,4 -> 4 */
	const guint8 o3[] = {0, 0, 1, 1, 2}, o4[] = {1, 2, 3, 4, 4};
	for (guint i = 0; i < 4; i++)
		send(&c, 1000 + i, o3[i], o4[i]);
	assert_int_equal(c.lookups, 0);
	send(&c, 1005, o3[4], o4[4]);
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.event, ALERT_RAISED);
	assert_int_equal(c.last.n_countries, 3);
	assert_int_equal(c.last.n_asns, 4);
	assert_int_equal(c.last.n_top, 5);
	for (guint i = 0; i < c.last.n_top; i++) {
		const AlertDest *d = &c.last.top[i];
		assert_int_equal(strlen(d->country), 2);
		assert_int_equal(d->country[0], 'A');
		assert_int_equal(d->country[1], 'A' + d->addr[14]);
		assert_int_equal(d->asn, 1000u + d->addr[15]);
	}
	analyzer_free(c.a);
}

/* From the 8th destination on: one lookup per NEW destination (repeats cost nothing). */
static void
test_lookups_per_new_destination(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, TRUE, 40);
	for (guint i = 0; i < 7; i++)
		send(&c, 1000 + i, (guint8)(i % 5), (guint8)i);
	assert_int_equal(c.lookups, 0);
	send(&c, 1007, 7 % 5, 7); /* the 8th: the set starts with all 8 */
	assert_int_equal(c.lookups, 8);
	for (guint i = 0; i < 8; i++)
		send(&c, 2000 + i, (guint8)(i % 5), (guint8)i); /* repeats */
	assert_int_equal(c.lookups, 8);
	for (guint i = 8; i < 40; i++)
		send(&c, 3000 + i, (guint8)(i % 5), (guint8)i);
	assert_int_equal(c.events, 1);
	/* 32 set lookups + the event's top 10 */
	assert_int_equal(c.lookups, 8 + 32 + 10);
	assert_int_equal(c.last.n_countries, 5);
	assert_int_equal(c.last.n_asns, 40);
	analyzer_free(c.a);
}

/* More distinct values than the caps: the counts saturate at the caps ("at least"). */
static void
test_saturation(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, TRUE, 200);
	for (guint i = 0; i < 200; i++)
		send(&c, 1000 + i, (guint8)(i % 100), (guint8)i);
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.n_countries, ANALYZER_GEO_MAX_COUNTRIES);
	assert_int_equal(c.last.n_asns, ANALYZER_GEO_MAX_ASNS);
	analyzer_free(c.a);
}

/* Entries leave with the long window: after 61 minutes only the new countries count. */
static void
test_window_expiry(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, TRUE, 30);
	c.asn_from_octet3 = TRUE;
	/* minute 0: 20 destinations in 10 countries (10..19); no alert (threshold 30) */
	for (guint i = 0; i < 20; i++)
		send(&c, 1000 + i, (guint8)(10 + i % 10), (guint8)i);
	assert_int_equal(c.events, 0);
	/* minutes 61-62: 30 new destinations in 3 other countries (40..42) */
	for (guint i = 0; i < 30; i++)
		send(&c, 61 * MIN_MS + i * 1000, (guint8)(40 + i % 3), (guint8)(100 + i));
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.window[WINDOW_LONG].distinct, 30);
	assert_int_equal(c.last.n_countries, 3);
	assert_int_equal(c.last.n_asns, 3);
	analyzer_free(c.a);
}

/* A full set takes over entries that left the window instead of saturating. */
static void
test_full_set_reuses_expired(void **state)
{
	(void)state;
	Ctx c;
	setup(&c, TRUE, 40);
	c.asn_from_octet3 = TRUE;
	for (guint i = 0; i < ANALYZER_GEO_MAX_COUNTRIES; i++)
		send(&c, 1000 + i, (guint8)i, 1);
	for (guint i = 0; i < 40; i++)
		send(&c, 70 * MIN_MS + i, (guint8)(100 + i % 4), (guint8)(10 + i));
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.n_countries, 4);
	assert_int_equal(c.last.n_asns, 4);
	analyzer_free(c.a);
}

/* The sets are part of the memory estimate and go with the host. */
static void
test_memory(void **state)
{
	(void)state;
	Ctx c, plain;
	AnalyzerStats st, st_plain;
	setup(&c, TRUE, 1000);
	setup(&plain, FALSE, 1000);
	for (guint i = 0; i < 100; i++) {
		send(&c, 1000 + i, (guint8)i, (guint8)i);
		send(&plain, 1000 + i, (guint8)i, (guint8)i);
	}
	analyzer_get_stats(c.a, &st);
	analyzer_get_stats(plain.a, &st_plain);
	assert_true(st.mem_bytes > st_plain.mem_bytes);
	/* 32 countries + 64 ASNs of 8 bytes, 4 set headers and a few allocation headers */
	assert_true(st.mem_bytes - st_plain.mem_bytes < 1200);
	guint8 host[16];
	const guint8 h4[4] = {10, 0, 0, 5};
	flow_addr_set_v4(host, h4);
	assert_true(analyzer_forget(c.a, host));
	analyzer_get_stats(c.a, &st);
	assert_int_equal(st.mem_bytes, 0);
	analyzer_free(c.a);
	analyzer_free(plain.a);
}

/* The hook survives a reconfiguration without one (the daemon reloads the config). */
static void
test_reconfigure_keeps_hook(void **state)
{
	(void)state;
	Ctx c;
	AnalyzerConfig cfg;
	g_autoptr(GError) err = NULL;
	setup(&c, TRUE, 10);
	analyzer_config_defaults(&cfg);
	for (guint r = 0; r < REASON_COUNT; r++)
		cfg.h[r].enabled = FALSE;
	cfg.h[REASON_SMTP_BLOCKED] = (HeuristicConfig){TRUE, {10, 0}};
	cfg.blocked_min_attempts = 1;
	assert_true(analyzer_reconfigure(c.a, &cfg, &err));
	for (guint i = 0; i < 10; i++)
		send(&c, 1000 + i, (guint8)(i % 2), (guint8)i);
	assert_int_equal(c.events, 1);
	assert_int_equal(c.last.n_countries, 2);
	assert_int_equal(c.last.n_asns, 10);
	analyzer_free(c.a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_hook),
	    cmocka_unit_test(test_few_destinations),
	    cmocka_unit_test(test_lookups_per_new_destination),
	    cmocka_unit_test(test_saturation),
	    cmocka_unit_test(test_window_expiry),
	    cmocka_unit_test(test_full_set_reuses_expired),
	    cmocka_unit_test(test_memory),
	    cmocka_unit_test(test_reconfigure_keeps_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
