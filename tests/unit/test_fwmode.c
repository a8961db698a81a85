/* Unit tests for firewall session events (analyzer/fwmode.c): an exporter domain that
 * sends creates and teardowns counts each session once; one that sends teardowns alone (an
 * ASA's `flow-export delay flow-create`) is read, not blind; a teardown whose responder sent
 * at most one bare packet (nothing, or a reset) is a failed attempt; creates alone count as before;
 * a domain's teardowns do not change how another domain is read, and stop counting an hour after
 * its last one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"

#define S_MS 1000
#define T0 ((gint64)1700000000 / 600 * 600 * 1000) /* on a 10-minute boundary */

typedef struct {
	GArray *ev;	 /* AlertEvent */
	GArray *notices; /* AnalyzerNoticeInfo of ANALYZER_NOTICE_FW_TEARDOWN */
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
	if (what == ANALYZER_NOTICE_FW_TEARDOWN)
		g_array_append_val(c->notices, *info);
}

static Ctx *
ctx_new(void)
{
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	Ctx *c = g_new0(Ctx, 1);
	c->ev = g_array_new(FALSE, FALSE, sizeof(AlertEvent));
	c->notices = g_array_new(FALSE, FALSE, sizeof(AnalyzerNoticeInfo));
	cfg.alert_fn = on_alert;
	cfg.alert_data = c;
	cfg.notice_fn = on_notice;
	cfg.notice_data = c;
	g_autoptr(GError) err = NULL;
	c->a = analyzer_new(&cfg, &err);
	assert_non_null(c->a);
	return c;
}

static void
ctx_free(Ctx *c)
{
	analyzer_free(c->a);
	g_array_free(c->ev, TRUE);
	g_array_free(c->notices, TRUE);
	g_free(c);
}

/* An ASA-style NSEL record (no TCP flags; initiator and responder counters; a create's are
 * zero) of internal host 10.0.<h>.1's session i to external 198.51.<i>, at t; a teardown of
 * a session that lasted lasted_ms (0: its times not exported). */
static void
nsel_lasting(Ctx *c, guint h, guint i, guint8 event, gint64 t, guint64 resp_bytes,
	     guint32 exporter, gint64 lasted_ms)
{
	guint8 s4[4] = {10, 0, (guint8)h, 1};
	guint8 d4[4] = {198, 51, (guint8)(i >> 8), (guint8)i};
	Flow f;
	memset(&f, 0, sizeof f);
	flow_addr_set_v4(f.src, s4);
	flow_addr_set_v4(f.dst, d4);
	f.recv_ms = t;
	f.sport = (guint16)(40000 + i);
	f.dport = 25;
	f.proto = 6;
	f.fw_event = event;
	f.exporter = exporter;
	f.domain = 256;
	f.sampling = 1;
	f.has = FLOW_HAS_FW_EVENT | FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_REVERSE;
	if (event == FW_EVENT_DELETED) {
		f.packets = 12;
		f.bytes = 3000;
		f.rev_packets = resp_bytes == 0 ? 0 : resp_bytes <= 60 ? 1 : 10;
		f.rev_bytes = resp_bytes;
		if (lasted_ms > 0) {
			f.start_ms = t - lasted_ms;
			f.end_ms = t;
			f.has |= FLOW_HAS_TIMES;
		}
	}
	analyzer_process(c->a, &f, 1);
}

static void
nsel(Ctx *c, guint h, guint i, guint8 event, gint64 t, guint64 resp_bytes, guint32 exporter)
{
	nsel_lasting(c, h, i, event, t, resp_bytes, exporter, 0);
}

static void
host_counts(Ctx *c, guint h, WindowSpanCounts *out)
{
	guint8 s4[4] = {10, 0, (guint8)h, 1};
	guint8 addr[16];
	AnalyzerHostInfo info;
	flow_addr_set_v4(addr, s4);
	assert_true(analyzer_host_info(c->a, addr, &info));
	assert_true(info.win[HEUR_WIN_SMTP_EXT].tracked);
	*out = info.win[HEUR_WIN_SMTP_EXT].counts.span[WINDOW_LONG];
}

static guint
raised(Ctx *c, AlertReason r)
{
	guint n = 0;
	for (guint i = 0; i < c->ev->len; i++) {
		const AlertEvent *e = &g_array_index(c->ev, AlertEvent, i);
		n += e->event == ALERT_RAISED && e->reason == r;
	}
	return n;
}

/* 60 sessions 5 s apart, each a create and, 3 s later, its teardown: 60 destinations; the
 * first session is counted twice (its create before any teardown was seen), the others once,
 * at their teardown. */
static void
test_create_and_teardown(void **state)
{
	(void)state;
	Ctx *c = ctx_new();
	for (guint i = 0; i < 60; i++) {
		nsel(c, 1, i, FW_EVENT_CREATED, T0 + i * 5 * S_MS, 0, 0);
		nsel(c, 1, i, FW_EVENT_DELETED, T0 + i * 5 * S_MS + 3 * S_MS, 2000, 0);
	}
	WindowSpanCounts w;
	host_counts(c, 1, &w);
	assert_int_equal(w.distinct, 60);
	assert_int_equal(w.attempts, 61);
	assert_int_equal(w.failed, 0);
	assert_int_equal(w.flows, 120);
	AnalyzerStats st;
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.fw_teardowns, 60);
	assert_int_equal(st.fw_creates_skipped, 59);
	assert_int_equal(st.fw_domains_teardown, 1);
	assert_int_equal(c->notices->len, 1);
	assert_int_equal(g_array_index(c->notices, AnalyzerNoticeInfo, 0).exporter, 0);
	assert_int_equal(g_array_index(c->notices, AnalyzerNoticeInfo, 0).domain, 256);
	assert_int_equal(raised(c, REASON_SMTP_FANOUT), 1);
	ctx_free(c);
}

/* `flow-export delay flow-create`: the short sessions send their teardown alone. Read the
 * old way (a teardown a flow only), this bot counted nothing. */
static void
test_teardown_only(void **state)
{
	(void)state;
	Ctx *c = ctx_new();
	for (guint i = 0; i < 60; i++)
		nsel(c, 2, i, FW_EVENT_DELETED, T0 + i * 5 * S_MS, 1500, 0);
	WindowSpanCounts w;
	host_counts(c, 2, &w);
	assert_int_equal(w.distinct, 60);
	assert_int_equal(w.attempts, 60);
	assert_int_equal(w.failed, 0);
	assert_int_equal(raised(c, REASON_SMTP_FANOUT), 1);
	assert_int_equal(raised(c, REASON_SMTP_BLOCKED), 0);
	ctx_free(c);
}

/* Teardowns of sessions the servers never answered (responder octets 0: SYNs that timed
 * out past the firewall) or refused (one bare packet, a reset: 40 octets over IPv4): failed
 * attempts, so smtp-blocked, not smtp-fanout. 61 octets is more than a bare packet. */
static void
test_teardown_failed(void **state)
{
	(void)state;
	Ctx *c = ctx_new();
	for (guint i = 0; i < 40; i++)
		nsel(c, 3, i, FW_EVENT_DELETED, T0 + i * 5 * S_MS, i % 2 ? 40 : 0, 0);
	WindowSpanCounts w;
	host_counts(c, 3, &w);
	assert_int_equal(w.distinct, 40);
	assert_int_equal(w.attempts, 40);
	assert_int_equal(w.failed, 40);
	AnalyzerStats st;
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.fw_teardowns_failed, 40);
	assert_int_equal(raised(c, REASON_SMTP_BLOCKED), 1);
	assert_int_equal(raised(c, REASON_SMTP_FANOUT), 0);
	nsel(c, 3, 100, FW_EVENT_DELETED, T0 + 40 * 5 * S_MS, 61, 0);
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.fw_teardowns_failed, 40);
	assert_int_equal(st.fw_teardowns, 41);
	/* a session of 90 s: its teardown's counters may be those since its last flow-update,
	 * its closing packets: not judged by them */
	nsel_lasting(c, 3, 200, FW_EVENT_DELETED, T0 + 41 * 5 * S_MS, 40, 0, 90 * S_MS);
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.fw_teardowns, 42);
	assert_int_equal(st.fw_teardowns_failed, 40);
	/* under a minute: judged, failed */
	nsel_lasting(c, 3, 201, FW_EVENT_DELETED, T0 + 41 * 5 * S_MS, 40, 0, 59 * S_MS);
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.fw_teardowns_failed, 41);
	ctx_free(c);
}

/* Creates alone (`flow-export event-type flow-create`): each counts, as before. Another
 * exporter's teardowns change nothing for them; and an hour after a domain's last teardown
 * its creates count again. */
static void
test_domains_apart_and_expiry(void **state)
{
	(void)state;
	Ctx *c = ctx_new();
	for (guint i = 0; i < 30; i++) {
		nsel(c, 4, i, FW_EVENT_CREATED, T0 + i * 5 * S_MS, 0, 1);	/* exporter 1 */
		nsel(c, 5, i, FW_EVENT_DELETED, T0 + i * 5 * S_MS + 1, 900, 2); /* exporter 2 */
	}
	WindowSpanCounts w;
	host_counts(c, 4, &w);
	assert_int_equal(w.attempts, 30);
	assert_int_equal(w.distinct, 30);
	host_counts(c, 5, &w);
	assert_int_equal(w.attempts, 30);
	/* exporter 2 in teardown mode: its creates are flows only ... */
	gint64 t1 = T0 + 30 * 60 * S_MS;
	for (guint i = 100; i < 110; i++)
		nsel(c, 6, i, FW_EVENT_CREATED, t1 + i, 0, 2);
	host_counts(c, 6, &w);
	assert_int_equal(w.attempts, 0);
	assert_int_equal(w.flows, 10);
	/* ... until an hour after its last teardown: then they count again */
	gint64 t2 = T0 + 30 * 5 * S_MS + 60 * 60 * S_MS;
	for (guint i = 200; i < 210; i++)
		nsel(c, 7, i, FW_EVENT_CREATED, t2 + i, 0, 2);
	host_counts(c, 7, &w);
	assert_int_equal(w.attempts, 10);
	/* a teardown from it again: told again */
	nsel(c, 7, 300, FW_EVENT_DELETED, t2 + 1000, 900, 2);
	assert_int_equal(c->notices->len, 2);
	assert_int_equal(g_array_index(c->notices, AnalyzerNoticeInfo, 0).exporter, 2);
	assert_int_equal(g_array_index(c->notices, AnalyzerNoticeInfo, 1).exporter, 2);
	ctx_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_and_teardown),
	    cmocka_unit_test(test_teardown_only),
	    cmocka_unit_test(test_teardown_failed),
	    cmocka_unit_test(test_domains_apart_and_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
