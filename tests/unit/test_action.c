/* Unit tests for what every action shares (exporters/action.h): the filter keys' parsing and
 * errors, the filter's memory (a cleared event passes only after its host's raised one did,
 * whatever min_severity says; forget; the cap on remembered pairs), the action record's ring
 * and JSON, and the alert summary line. */
#include "sample_alert.h"
#include "action.h"
#include "alertsummary.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void
test_spec_parse(void **state)
{
	ActionFilterSpec s;
	g_autoptr(GError) err = NULL;
	(void)state;

	assert_true(action_filter_spec_parse(&s, "", "", "", NULL));
	assert_int_equal(s.events, ACTION_EVENTS_ALL);
	assert_int_equal(s.reasons, ACTION_REASONS_ALL);
	assert_int_equal(s.min_severity, ALERT_SEV_INFO);
	assert_true(action_filter_spec_parse(&s, "raised,cleared", " smtp-fanout  smtp-novelty",
					     "warning", NULL));
	assert_int_equal(s.events, (1u << ALERT_RAISED) | (1u << ALERT_CLEARED));
	assert_int_equal(s.reasons, (1u << REASON_SMTP_FANOUT) | (1u << REASON_SMTP_NOVELTY));
	assert_int_equal(s.min_severity, ALERT_SEV_WARNING);
	g_autofree char *text = action_filter_spec_text(&s);
	assert_string_equal(text, "events=raised,cleared reasons=smtp-fanout,smtp-novelty "
				  "min_severity=warning");

	assert_false(action_filter_spec_parse(&s, "raised, banned", "", "", &err));
	assert_string_equal(err->message, "unknown event 'banned' (raised, updated or cleared)");
	g_clear_error(&err);
	assert_false(action_filter_spec_parse(&s, "", "smtp_fanout", "", &err));
	assert_string_equal(err->message, "unknown reason 'smtp_fanout'");
	g_clear_error(&err);
	assert_false(action_filter_spec_parse(&s, "", "", "high", &err));
	assert_non_null(strstr(err->message, "unknown severity 'high'"));
}

static AlertEvent
event(AlertKind kind, AlertReason reason, AlertSeverity sev, const char *host)
{
	AlertEvent ev = sample_alert(1000);
	ev.event = kind;
	ev.reason = reason;
	ev.severity = sev;
	sample_addr(ev.host, host);
	return ev;
}

static void
test_filter_memory(void **state)
{
	ActionFilterSpec s;
	(void)state;

	assert_true(action_filter_spec_parse(&s, "", "smtp-fanout, smtp-blocked", "warning", NULL));
	g_autoptr(ActionFilter) f = action_filter_new(&s, 2);
	AlertEvent blocked = event(ALERT_RAISED, REASON_SMTP_BLOCKED, ALERT_SEV_NOTICE, "10.0.0.1");
	AlertEvent fanout = event(ALERT_RAISED, REASON_SMTP_FANOUT, ALERT_SEV_WARNING, "10.0.0.2");
	AlertEvent surge = event(ALERT_RAISED, REASON_MTA_SURGE, ALERT_SEV_CRITICAL, "10.0.0.3");

	/* below min_severity, and a reason not listed: not acted on; nor their clears */
	assert_false(action_filter_pass(f, &blocked));
	assert_false(action_filter_pass(f, &surge));
	blocked.event = ALERT_CLEARED;
	blocked.severity = ALERT_SEV_INFO;
	assert_false(action_filter_pass(f, &blocked));
	/* a blocked host that escalates to critical is acted on from its update, and then
	 * its clear (severity info) passes too */
	blocked.event = ALERT_UPDATED;
	blocked.severity = ALERT_SEV_CRITICAL;
	assert_true(action_filter_pass(f, &blocked));
	assert_true(action_filter_pass(f, &fanout));
	fanout.event = ALERT_UPDATED;
	assert_true(action_filter_pass(f, &fanout));
	fanout.event = ALERT_CLEARED;
	fanout.severity = ALERT_SEV_INFO;
	assert_true(action_filter_pass(f, &fanout));
	assert_false(action_filter_pass(f, &fanout)); /* once */
	blocked.event = ALERT_CLEARED;
	blocked.severity = ALERT_SEV_INFO;
	assert_true(action_filter_pass(f, &blocked));

	/* forget: its clear is not acted on (released by hand) */
	fanout.event = ALERT_RAISED;
	fanout.severity = ALERT_SEV_WARNING;
	assert_true(action_filter_pass(f, &fanout));
	action_filter_forget(f, fanout.host, -1);
	fanout.event = ALERT_CLEARED;
	assert_false(action_filter_pass(f, &fanout));

	/* the cap: two pairs remembered; a third raised passes, its clear does not */
	const char *hosts[] = {"10.0.1.1", "10.0.1.2", "10.0.1.3"};
	for (guint i = 0; i < 3; i++) {
		AlertEvent e = event(ALERT_RAISED, REASON_SMTP_FANOUT, ALERT_SEV_WARNING, hosts[i]);
		assert_true(action_filter_pass(f, &e));
	}
	AlertEvent third = event(ALERT_CLEARED, REASON_SMTP_FANOUT, ALERT_SEV_INFO, hosts[2]);
	assert_false(action_filter_pass(f, &third));
	g_autoptr(GString) j = g_string_new(NULL);
	action_filter_stats_json(f, j);
	assert_string_equal(j->str, "\"filtered\":6,\"acted_on\":2,\"untracked\":1");
}

static void
test_events_filter(void **state)
{
	ActionFilterSpec s;
	(void)state;

	/* only raised: updates are not acted on, and clears are not either */
	assert_true(action_filter_spec_parse(&s, "raised", "", "", NULL));
	g_autoptr(ActionFilter) f = action_filter_new(&s, 10);
	AlertEvent e = event(ALERT_RAISED, REASON_SMTP_FANOUT, ALERT_SEV_WARNING, "10.0.0.9");
	assert_true(action_filter_pass(f, &e));
	e.event = ALERT_UPDATED;
	assert_false(action_filter_pass(f, &e));
	e.event = ALERT_CLEARED;
	assert_false(action_filter_pass(f, &e));
}

static void
test_log(void **state)
{
	g_autoptr(ActionLog) log = action_log_new(2);
	guint8 a[16], b[16], c[16];
	(void)state;

	sample_addr(a, "10.0.0.1");
	sample_addr(b, "10.0.0.2");
	sample_addr(c, "2001:db8::5");
	assert_int_equal(action_log_len(log), 0);
	assert_null(action_log_get(log, 0));
	action_log_add(log, "quarantine-add", a, REASON_SMTP_FANOUT, -1, "timeout %u s", 3600u);
	action_log_add(log, "quarantine-release", b, -1, 1000, "by hand");
	action_log_add(log, "quarantine-delete", c, REASON_SMTP_NOVELTY, -1, "cleared \"now\"");
	assert_int_equal(action_log_len(log), 2);
	const ActionRecord *r0 = action_log_get(log, 0), *r1 = action_log_get(log, 1);
	assert_string_equal(r0->action, "quarantine-delete");
	assert_string_equal(r1->action, "quarantine-release");
	assert_null(action_log_get(log, 2));
	g_autoptr(GString) j = g_string_new(NULL);
	ActionRecord fixed = *r0;
	fixed.time_ms = 1234;
	action_record_json(j, &fixed);
	assert_string_equal(j->str, "{\"time_ms\":1234,\"action\":\"quarantine-delete\","
				    "\"host\":\"2001:db8::5\",\"reason\":\"smtp-novelty\","
				    "\"uid\":null,\"detail\":\"cleared \\\"now\\\"\"}");
	g_string_truncate(j, 0);
	fixed = *r1;
	fixed.time_ms = 5;
	action_record_json(j, &fixed);
	assert_string_equal(j->str, "{\"time_ms\":5,\"action\":\"quarantine-release\","
				    "\"host\":\"10.0.0.2\",\"reason\":null,\"uid\":1000,"
				    "\"detail\":\"by hand\"}");
}

static void
test_summary(void **state)
{
	AlertEvent ev = sample_alert(1000);
	(void)state;

	g_strlcpy(ev.evidence, "e.ipfix", sizeof ev.evidence);
	g_autofree char *s = alert_summary(&ev);
	assert_non_null(g_str_has_prefix(s, "raised smtp-fanout host=192.0.2.10 severity=warning "
					    "short=62/50 long=80/150~ attempts=95")
			    ? s
			    : NULL);
	assert_non_null(strstr(s, " evidence=e.ipfix"));

	/* smtp-novelty: the new destinations over its window, the long window's distinct as
	 * context with its own span (it read "distinct=40" beside "in 3h") */
	ev.reason = REASON_SMTP_NOVELTY;
	ev.window[WINDOW_SHORT].span_ms = 3 * 3600000;
	ev.window[WINDOW_SHORT].value = 61;
	ev.window[WINDOW_SHORT].threshold = 60;
	ev.window[WINDOW_LONG].span_ms = 90 * 60000;
	ev.window[WINDOW_LONG].distinct = 40;
	ev.window[WINDOW_LONG].estimated = FALSE;
	g_autofree char *n = alert_summary(&ev);
	assert_non_null(strstr(n, " new=61/60 in 3h distinct=40 in 90min attempts=95") ? n : NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_parse),
	    cmocka_unit_test(test_filter_memory),
	    cmocka_unit_test(test_events_filter),
	    cmocka_unit_test(test_log),
	    cmocka_unit_test(test_summary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
