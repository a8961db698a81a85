/* Unit tests for analyzer/policy.c and analyzer_policy.c: the groups' longest-prefix lookup
 * (across groups, IPv4 and IPv6) and what is refused (a prefix in two groups, bad names and
 * prefixes); through a real Analyzer fed port-25 flows: a group's thresholds replace the
 * global ones (in the decision and in the event), an exempt reason never raises, a
 * suppression keeps a host quiet until its time and not after, one of a reason keeps the
 * others, an offender raised before gets no update and still clears, the cap, the saved
 * form (round trip, expired entries dropped, every truncation refused), expiry notices and
 * suppressions kept across analyzer_reconfigure(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"
#include "policy.h"

#define SEC_MS 1000
#define MIN_MS (60 * SEC_MS)
#define T0 ((gint64)1700000000 / 600 * 600 * 1000)
#define F_SESSION 0x1b /* SYN ACK PSH FIN */

static void
v4(guint8 out[16], guint8 a, guint8 b, guint8 c, guint8 d)
{
	guint8 x[4] = {a, b, c, d};
	flow_addr_set_v4(out, x);
}

/* ---- the lookup ---- */

static void
test_longest_prefix_across_groups(void **state)
{
	(void)state;
	PolicyGroup g[3] = {
	    {.name = "campus", .prefixes = "10.20.0.0/16, fd00:20::/48"},
	    {.name = "lab", .prefixes = "10.20.5.0/24"},
	    {.name = "probe", .prefixes = "10.20.5.7 fd00:20:0:1::/64"},
	};
	g_autoptr(GError) err = NULL;
	g_autoptr(PolicyGroups) pg = policy_groups_new(g, 3, NULL, &err);
	guint8 a[16];
	guint plen = 0;

	assert_non_null(pg);
	assert_int_equal(policy_groups_count(pg), 3);
	v4(a, 10, 20, 1, 1);
	assert_int_equal(policy_groups_lookup(pg, a, &plen), 0);
	assert_int_equal(plen, 96 + 16);
	v4(a, 10, 20, 5, 1); /* the /24 inside the /16 wins */
	assert_int_equal(policy_groups_lookup(pg, a, &plen), 1);
	assert_int_equal(plen, 96 + 24);
	v4(a, 10, 20, 5, 7); /* and the /32 inside the /24 */
	assert_int_equal(policy_groups_lookup(pg, a, &plen), 2);
	assert_int_equal(plen, 128);
	v4(a, 10, 21, 5, 7);
	assert_int_equal(policy_groups_lookup(pg, a, NULL), POLICY_NO_GROUP);
	/* IPv6 the same way */
	guint8 six[16] = {0xfd, 0x00, 0x00, 0x20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
	assert_int_equal(policy_groups_lookup(pg, six, &plen), 2);
	assert_int_equal(plen, 64);
	six[7] = 2;
	assert_int_equal(policy_groups_lookup(pg, six, &plen), 0);
	assert_int_equal(plen, 48);
	/* no groups at all */
	g_autoptr(PolicyGroups) none = policy_groups_new(NULL, 0, NULL, &err);
	assert_non_null(none);
	assert_int_equal(policy_groups_lookup(none, a, NULL), POLICY_NO_GROUP);
}

static void
test_groups_refused(void **state)
{
	(void)state;
	struct {
		PolicyGroup g[2];
		guint n, bad;
		const char *msg;
	} cases[] = {
	    /* one prefix in two groups, written differently (IPv4-mapped) */
	    {{{.name = "a", .prefixes = "10.0.0.0/8"},
	      {.name = "b", .prefixes = "10.1.0.0/16 ::ffff:10.0.0.0/104"}},
	     2, 1, "is also in [group a]"},
	    {{{.name = "a", .prefixes = "10.0.0.0/8"}, {.name = "a", .prefixes = "10.1.0.0/16"}},
	     2, 1, "defined twice"},
	    {{{.name = "a b", .prefixes = "10.0.0.0/8"}}, 1, 0, "group name"},
	    {{{.name = "", .prefixes = "10.0.0.0/8"}}, 1, 0, "group name"},
	    {{{.name = "abcdefghijklmnopqrstuvwxyz0123456", .prefixes = "10.0.0.0/8"}}, 1, 0,
	     "group name"},
	    {{{.name = "ok", .prefixes = "10.0.0.1/8"}}, 1, 0, "[group ok] prefixes"},
	    {{{.name = "ok", .prefixes = " # nothing"}}, 1, 0, "at least one prefix"},
	    {{{.name = "ok", .prefixes = "10.0.0.0/8", .exempt = 1u << REASON_COUNT}}, 1, 0,
	     "past the known"},
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) err = NULL;
		guint bad = 99;
		PolicyGroups *pg = policy_groups_new(cases[i].g, cases[i].n, &bad, &err);
		assert_null(pg);
		assert_non_null(err);
		assert_int_equal(bad, cases[i].bad);
		if (strstr(err->message, cases[i].msg) == NULL)
			fail_msg("case %u: '%s' lacks '%s'", i, err->message, cases[i].msg);
	}
	/* the same prefix twice in one group is no tie */
	PolicyGroup same = {.name = "a", .prefixes = "10.0.0.0/8, 10.0.0.0/8"};
	g_autoptr(GError) err = NULL;
	g_autoptr(PolicyGroups) pg = policy_groups_new(&same, 1, NULL, &err);
	assert_non_null(pg);
}

/* ---- through the analyzer ---- */

typedef struct {
	GArray *ev;      /* AlertEvent */
	GArray *expired; /* PolicySuppression */
	Analyzer *a;
} Ctx;

static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	Ctx *c = user_data;
	g_array_append_val(c->ev, *ev);
}

static void
on_notice(AnalyzerNotice what, const AnalyzerNoticeInfo *info, gpointer user_data)
{
	Ctx *c = user_data;
	if (what == ANALYZER_NOTICE_SUPPRESSION_EXPIRED)
		g_array_append_val(c->expired, *info->suppression);
}

/* smtp-fanout 50/150 (the defaults), smtp-blocked off (every flow here succeeds anyway),
 * and three groups: lab 10.20.0.0/16 with smtp-fanout 5/0, its /24 printers exempt from
 * smtp-fanout, mta-ish 10.30.0.0/16 with smtp-fanout 0/8 (short window off). */
static const PolicyGroup groups3[] = {
    {.name = "lab", .prefixes = "10.20.0.0/16",
     .override = 1u << REASON_SMTP_FANOUT, .threshold = {[REASON_SMTP_FANOUT] = {5, 0}}},
    {.name = "printers", .prefixes = "10.20.9.0/24", .exempt = 1u << REASON_SMTP_FANOUT},
    {.name = "longonly", .prefixes = "10.30.0.0/16",
     .override = 1u << REASON_SMTP_FANOUT, .threshold = {[REASON_SMTP_FANOUT] = {0, 8}}},
};

static Ctx *
ctx_new(const PolicyGroup *g, guint n, guint max_supp)
{
	Ctx *c = g_new0(Ctx, 1);
	AnalyzerConfig cfg;
	g_autoptr(GError) err = NULL;
	analyzer_config_defaults(&cfg);
	cfg.h[REASON_SMTP_BLOCKED].enabled = FALSE;
	cfg.h[REASON_SMTP_NOVELTY].enabled = FALSE; /* the fan-outs here would cross it too */
	cfg.groups = g;
	cfg.n_groups = n;
	cfg.max_suppressions = max_supp;
	cfg.alert_fn = on_alert;
	cfg.alert_data = c;
	cfg.notice_fn = on_notice;
	cfg.notice_data = c;
	c->ev = g_array_new(FALSE, FALSE, sizeof(AlertEvent));
	c->expired = g_array_new(FALSE, FALSE, sizeof(PolicySuppression));
	c->a = analyzer_new(&cfg, &err);
	assert_null(err);
	return c;
}

static void
ctx_free(Ctx *c)
{
	analyzer_free(c->a);
	g_array_free(c->ev, TRUE);
	g_array_free(c->expired, TRUE);
	g_free(c);
}

/* n port-25 sessions from src to n new external hosts (198.51.x.y from first on), one a
 * second from t. */
static void
fan(Analyzer *a, const guint8 src[16], guint first, guint n, gint64 t)
{
	for (guint i = 0; i < n; i++) {
		Flow f;
		guint d = first + i;
		guint8 d4[4] = {198, 51, (guint8)(d >> 8), (guint8)d};
		memset(&f, 0, sizeof f);
		memcpy(f.src, src, 16);
		flow_addr_set_v4(f.dst, d4);
		f.recv_ms = t + (gint64)i * SEC_MS;
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
}

/* The events of host h of kind k. */
static guint
count_ev(Ctx *c, const guint8 h[16], AlertKind k)
{
	guint n = 0;
	for (guint i = 0; i < c->ev->len; i++) {
		const AlertEvent *e = &g_array_index(c->ev, AlertEvent, i);
		n += e->event == k && memcmp(e->host, h, 16) == 0;
	}
	return n;
}

static const AlertEvent *
first_ev(Ctx *c, const guint8 h[16], AlertKind k)
{
	for (guint i = 0; i < c->ev->len; i++) {
		const AlertEvent *e = &g_array_index(c->ev, AlertEvent, i);
		if (e->event == k && memcmp(e->host, h, 16) == 0)
			return e;
	}
	return NULL;
}

static void
test_group_thresholds_and_exempt(void **state)
{
	(void)state;
	Ctx *c = ctx_new(groups3, G_N_ELEMENTS(groups3), 100);
	guint8 lab[16], printer[16], other[16], longonly[16];
	v4(lab, 10, 20, 1, 1);
	v4(printer, 10, 20, 9, 1);
	v4(other, 10, 40, 1, 1);
	v4(longonly, 10, 30, 1, 1);

	/* lab: raised at its 5th destination, with the group's thresholds in the event */
	fan(c->a, lab, 0, 4, T0);
	assert_int_equal(count_ev(c, lab, ALERT_RAISED), 0);
	fan(c->a, lab, 4, 1, T0 + 10 * SEC_MS);
	const AlertEvent *e = first_ev(c, lab, ALERT_RAISED);
	assert_non_null(e);
	assert_int_equal(e->reason, REASON_SMTP_FANOUT);
	assert_int_equal(e->window[WINDOW_SHORT].value, 5);
	assert_int_equal(e->window[WINDOW_SHORT].threshold, 5);
	assert_int_equal(e->window[WINDOW_LONG].threshold, 0);
	assert_string_equal(e->group, "lab");

	/* printers (a /24 inside lab): exempt, not even at 100 destinations */
	fan(c->a, printer, 0, 100, T0 + MIN_MS);
	assert_int_equal(count_ev(c, printer, ALERT_RAISED), 0);

	/* no group: the global 50 */
	fan(c->a, other, 0, 49, T0 + MIN_MS);
	assert_int_equal(count_ev(c, other, ALERT_RAISED), 0);
	fan(c->a, other, 49, 1, T0 + 2 * MIN_MS);
	e = first_ev(c, other, ALERT_RAISED);
	assert_non_null(e);
	assert_int_equal(e->window[WINDOW_SHORT].threshold, 50);
	assert_string_equal(e->group, "");

	/* longonly: short window off, the long one at 8 */
	fan(c->a, longonly, 0, 7, T0 + 3 * MIN_MS);
	assert_int_equal(count_ev(c, longonly, ALERT_RAISED), 0);
	fan(c->a, longonly, 7, 1, T0 + 4 * MIN_MS);
	e = first_ev(c, longonly, ALERT_RAISED);
	assert_non_null(e);
	assert_int_equal(e->trigger, WINDOW_LONG);
	assert_int_equal(e->window[WINDOW_LONG].threshold, 8);
	assert_string_equal(e->group, "longonly");

	/* what `host` reads */
	AnalyzerHostPolicy p;
	analyzer_host_policy(c->a, printer, &p);
	assert_int_equal(p.index, 1);
	assert_string_equal(p.name, "printers");
	assert_int_equal(p.plen, 120);
	assert_int_equal(p.exempt, 1u << REASON_SMTP_FANOUT);
	assert_int_equal(p.threshold[REASON_SMTP_FANOUT][WINDOW_SHORT], 50); /* not lab's: /24 */
	analyzer_host_policy(c->a, lab, &p);
	assert_int_equal(p.threshold[REASON_SMTP_FANOUT][WINDOW_SHORT], 5);
	assert_int_equal(p.threshold[REASON_SUBMISSION_FANOUT][WINDOW_SHORT], 20);
	analyzer_host_policy(c->a, other, &p);
	assert_int_equal(p.index, POLICY_NO_GROUP);
	assert_string_equal(p.name, "");
	ctx_free(c);
}

static PolicySuppression
supp(const guint8 addr[16], gboolean all, AlertReason r, gint64 until, const char *note)
{
	PolicySuppression s = {0};
	memcpy(s.addr, addr, 16);
	s.all = all;
	s.reason = r;
	s.until_ms = until;
	s.set_ms = T0;
	s.uid = 1000;
	g_strlcpy(s.note, note, sizeof s.note);
	return s;
}

static void
test_suppression_until(void **state)
{
	(void)state;
	Ctx *c = ctx_new(NULL, 0, 100);
	guint8 h[16], k[16];
	gboolean replaced = TRUE;
	g_autoptr(GError) err = NULL;
	v4(h, 10, 1, 1, 1);
	v4(k, 10, 1, 1, 2);

	PolicySuppression s = supp(h, TRUE, 0, T0 + 20 * MIN_MS, "ticket 42");
	assert_true(analyzer_suppress(c->a, &s, &replaced, &err));
	assert_false(replaced);
	/* one reason only: lateral-smtp; smtp-fanout still raises for k */
	s = supp(k, FALSE, REASON_LATERAL_SMTP, T0 + 20 * MIN_MS, "only lateral");
	assert_true(analyzer_suppress(c->a, &s, &replaced, &err));

	fan(c->a, h, 0, 120, T0); /* over 50 in the short window: suppressed */
	fan(c->a, k, 0, 60, T0);
	assert_int_equal(count_ev(c, h, ALERT_RAISED), 0);
	assert_int_equal(count_ev(c, k, ALERT_RAISED), 1);
	assert_non_null(analyzer_suppressed(c->a, h, REASON_SMTP_FANOUT));
	assert_null(analyzer_suppressed(c->a, k, REASON_SMTP_FANOUT));
	assert_non_null(analyzer_suppressed(c->a, k, REASON_LATERAL_SMTP));
	/* still tracked: the window counted every destination */
	AnalyzerHostInfo hi;
	assert_true(analyzer_host_info(c->a, h, &hi));
	assert_int_equal(hi.win[HEUR_WIN_SMTP_EXT].counts.span[WINDOW_SHORT].distinct, 120);

	/* just before the time: quiet; at it: the tick drops it (told), the next flow raises */
	fan(c->a, h, 1000, 1, T0 + 20 * MIN_MS - SEC_MS);
	assert_int_equal(count_ev(c, h, ALERT_RAISED), 0);
	assert_int_equal(c->expired->len, 0);
	analyzer_tick(c->a, T0 + 20 * MIN_MS);
	assert_int_equal(c->expired->len, 2);
	assert_string_equal(g_array_index(c->expired, PolicySuppression, 0).note, "ticket 42");
	assert_int_equal(g_array_index(c->expired, PolicySuppression, 0).uid, 1000);
	assert_int_equal(analyzer_suppression_count(c->a), 0);
	AnalyzerStats st;
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.suppressions_expired, 2);
	assert_int_equal(st.suppressions, 0);
	fan(c->a, h, 2000, 60, T0 + 20 * MIN_MS + SEC_MS);
	assert_int_equal(count_ev(c, h, ALERT_RAISED), 1);

	/* refused: a time the analyzer's clock has passed */
	s = supp(h, TRUE, 0, T0, "late");
	assert_false(analyzer_suppress(c->a, &s, NULL, &err));
	assert_true(g_error_matches(err, POLICY_ERROR, POLICY_ERROR_INVALID));
	ctx_free(c);
}

/* Raised, then suppressed: no update while it escalates, the cleared event still comes. */
static void
test_suppressed_offender_clears(void **state)
{
	(void)state;
	Ctx *c = ctx_new(NULL, 0, 100);
	guint8 h[16];
	v4(h, 10, 1, 1, 1);
	fan(c->a, h, 0, 50, T0);
	assert_int_equal(count_ev(c, h, ALERT_RAISED), 1);

	PolicySuppression s = supp(h, FALSE, REASON_SMTP_FANOUT, T0 + 600 * MIN_MS, "known");
	assert_true(analyzer_suppress(c->a, &s, NULL, NULL));
	/* far past 2x and the 15-minute update interval */
	fan(c->a, h, 100, 400, T0 + 16 * MIN_MS);
	assert_int_equal(count_ev(c, h, ALERT_UPDATED), 0);
	/* quiet for the long window and the hold time: cleared */
	for (gint64 t = T0 + 30 * MIN_MS; t <= T0 + 200 * MIN_MS; t += MIN_MS)
		analyzer_tick(c->a, t);
	assert_int_equal(count_ev(c, h, ALERT_CLEARED), 1);

	/* without the suppression the same escalation updates (the control case) */
	Ctx *d = ctx_new(NULL, 0, 100);
	fan(d->a, h, 0, 50, T0);
	fan(d->a, h, 100, 400, T0 + 16 * MIN_MS);
	assert_int_equal(count_ev(d, h, ALERT_UPDATED), 1);
	ctx_free(d);
	ctx_free(c);
}

static void
test_cap_replace_unsuppress(void **state)
{
	(void)state;
	Ctx *c = ctx_new(NULL, 0, 2);
	guint8 h[16], k[16];
	gboolean replaced = FALSE;
	g_autoptr(GError) err = NULL;
	v4(h, 10, 1, 1, 1);
	v4(k, 10, 1, 1, 2);

	PolicySuppression s = supp(h, TRUE, 0, T0 + MIN_MS, "a");
	assert_true(analyzer_suppress(c->a, &s, &replaced, NULL));
	s = supp(h, FALSE, REASON_SMTP_FANOUT, T0 + MIN_MS, "b");
	assert_true(analyzer_suppress(c->a, &s, &replaced, NULL));
	assert_false(replaced);
	s = supp(k, TRUE, 0, T0 + MIN_MS, "c");
	assert_false(analyzer_suppress(c->a, &s, NULL, &err));
	assert_true(g_error_matches(err, POLICY_ERROR, POLICY_ERROR_FULL));
	assert_non_null(strstr(err->message, "max_suppressions"));
	/* replacing one at the cap is no new entry */
	s = supp(h, TRUE, 0, T0 + 2 * MIN_MS, "a2");
	assert_true(analyzer_suppress(c->a, &s, &replaced, NULL));
	assert_true(replaced);
	assert_int_equal(analyzer_suppression_count(c->a), 2);
	assert_string_equal(analyzer_suppressed(c->a, h, REASON_MTA_SURGE)->note, "a2");
	AnalyzerStats st;
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.suppressions, 2);
	assert_int_equal(st.suppressions_set, 3);
	assert_int_equal(st.suppressions_refused, 1);

	/* unsuppress one reason: the all-reasons entry stays */
	assert_int_equal(analyzer_unsuppress(c->a, h, TRUE, REASON_SMTP_FANOUT), 1);
	assert_int_equal(analyzer_unsuppress(c->a, h, TRUE, REASON_SMTP_FANOUT), 0);
	assert_int_equal(analyzer_suppression_count(c->a), 1);
	assert_non_null(analyzer_suppressed(c->a, h, REASON_SMTP_FANOUT));
	assert_int_equal(analyzer_unsuppress(c->a, h, FALSE, 0), 1);
	assert_null(analyzer_suppressed(c->a, h, REASON_SMTP_FANOUT));
	ctx_free(c);
}

static void
test_save_load(void **state)
{
	(void)state;
	Ctx *c = ctx_new(NULL, 0, 100);
	guint8 h[16], k[16];
	guint dropped = 99;
	g_autoptr(GError) err = NULL;
	v4(h, 10, 1, 1, 1);
	guint8 six[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};
	memcpy(k, six, 16);

	PolicySuppression s = supp(h, TRUE, 0, T0 + 60 * MIN_MS, "caf\xc3\xa9, ticket 7");
	assert_true(analyzer_suppress(c->a, &s, NULL, NULL));
	s = supp(k, FALSE, REASON_AUTH_BRUTEFORCE, T0 + 5 * MIN_MS, "short one");
	assert_true(analyzer_suppress(c->a, &s, NULL, NULL));
	g_autoptr(GByteArray) b = g_byte_array_new();
	analyzer_suppressions_save(c->a, b);

	/* into a fresh analyzer: the same bytes back */
	Ctx *d = ctx_new(NULL, 0, 100);
	assert_true(analyzer_suppressions_load(d->a, b->data, b->len, T0, &dropped, &err));
	assert_int_equal(dropped, 0);
	assert_int_equal(analyzer_suppression_count(d->a), 2);
	g_autoptr(GByteArray) b2 = g_byte_array_new();
	analyzer_suppressions_save(d->a, b2);
	assert_int_equal(b->len, b2->len);
	assert_memory_equal(b->data, b2->data, b->len);
	ctx_free(d);

	/* loaded later: the one over by then is dropped */
	d = ctx_new(NULL, 0, 100);
	assert_true(analyzer_suppressions_load(d->a, b->data, b->len, T0 + 10 * MIN_MS, &dropped,
					       &err));
	assert_int_equal(dropped, 1);
	assert_int_equal(analyzer_suppression_count(d->a), 1);
	ctx_free(d);

	/* every truncation and a byte more are refused, and change nothing */
	d = ctx_new(NULL, 0, 100);
	for (gsize n = 0; n < b->len; n++) {
		g_clear_error(&err);
		assert_false(analyzer_suppressions_load(d->a, b->data, n, T0, &dropped, &err));
		assert_true(g_error_matches(err, POLICY_ERROR, POLICY_ERROR_INVALID));
		assert_int_equal(analyzer_suppression_count(d->a), 0);
	}
	g_byte_array_append(b, (const guint8 *)"x", 1);
	g_clear_error(&err);
	assert_false(analyzer_suppressions_load(d->a, b->data, b->len, T0, &dropped, &err));
	/* a bad reason byte (the first entry's, after magic, version, count and address) */
	g_byte_array_set_size(b, b->len - 1);
	b->data[4 + 2 + 4 + 16] = REASON_COUNT;
	g_clear_error(&err);
	assert_false(analyzer_suppressions_load(d->a, b->data, b->len, T0, &dropped, &err));
	assert_non_null(strstr(err->message, "reason"));
	ctx_free(d);
	ctx_free(c);
}

/* New groups on reconfiguring, the suppressions kept. */
static void
test_reconfigure(void **state)
{
	(void)state;
	Ctx *c = ctx_new(groups3, 1, 100); /* lab only */
	guint8 h[16], lab[16];
	v4(h, 10, 1, 1, 1);
	v4(lab, 10, 20, 1, 1);
	PolicySuppression s = supp(h, TRUE, 0, T0 + 60 * MIN_MS, "kept");
	assert_true(analyzer_suppress(c->a, &s, NULL, NULL));

	AnalyzerConfig cfg;
	g_autoptr(GError) err = NULL;
	PolicyGroup moved = {.name = "lab2", .prefixes = "10.1.0.0/16",
			     .override = 1u << REASON_SMTP_FANOUT,
			     .threshold = {[REASON_SMTP_FANOUT] = {3, 0}}};
	analyzer_config_defaults(&cfg);
	cfg.groups = &moved;
	cfg.n_groups = 1;
	assert_true(analyzer_reconfigure(c->a, &cfg, &err));
	AnalyzerHostPolicy p;
	analyzer_host_policy(c->a, lab, &p);
	assert_int_equal(p.index, POLICY_NO_GROUP);
	analyzer_host_policy(c->a, h, &p);
	assert_string_equal(p.name, "lab2");
	assert_int_equal(analyzer_suppression_count(c->a), 1);
	fan(c->a, h, 0, 10, T0);
	assert_int_equal(count_ev(c, h, ALERT_RAISED), 0); /* over 3, but suppressed */

	/* a broken set of groups changes nothing */
	PolicyGroup two[2] = {moved, moved};
	two[1].name = "other";
	cfg.groups = two;
	cfg.n_groups = 2;
	assert_false(analyzer_reconfigure(c->a, &cfg, &err));
	analyzer_host_policy(c->a, h, &p);
	assert_string_equal(p.name, "lab2");
	ctx_free(c);
}

static void
test_reason_thresholds(void **state)
{
	(void)state;
	for (guint r = 0; r < REASON_COUNT; r++) {
		guint want = g_strcmp0(alert_reason_name(r), "smtp-novelty") == 0 ? 1 : 2;
		assert_int_equal(policy_reason_thresholds(r), want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_longest_prefix_across_groups),
	    cmocka_unit_test(test_groups_refused),
	    cmocka_unit_test(test_group_thresholds_and_exempt),
	    cmocka_unit_test(test_suppression_until),
	    cmocka_unit_test(test_suppressed_offender_clears),
	    cmocka_unit_test(test_cap_replace_unsuppress),
	    cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_reconfigure),
	    cmocka_unit_test(test_reason_thresholds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
