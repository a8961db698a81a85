/* The nftables quarantine against a real nft set: the test moves itself into a private
 * network namespace (unshare(CLONE_NEWNET): needs root) and makes its table there with
 * libnftables, so the host's ruleset is never touched. Safety rules, refresh, clear,
 * release, dry_run, IPv6, reconcile, queue drops. */
#include "quarantine.h"

#include "sample_alert.h"

#include <json-glib/json-glib.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static struct nft_ctx *nft;

static int
run(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	int rc = nft_run_cmd_from_buffer(nft, cmd);
	(void)nft_ctx_get_output_buffer(nft);
	(void)nft_ctx_get_error_buffer(nft);
	return rc;
}

static gboolean
member(const char *set, const char *addr)
{
	return run("get element inet t %s { %s }", set, addr) == 0;
}

/* a fresh table t with set q (ipv4) and, when v6, q6 */
static void
fresh(gboolean v6)
{
	(void)run("flush ruleset");
	assert_int_equal(run("add table inet t"), 0);
	assert_int_equal(run("add set inet t q { type ipv4_addr; flags timeout; }"), 0);
	if (v6)
		assert_int_equal(run("add set inet t q6 { type ipv6_addr; flags timeout; }"), 0);
}

static QuarantineConfig
config(ActionLog *log)
{
	QuarantineConfig c = {.family = "inet",
			      .table = "t",
			      .set = "q",
			      .timeout_s = 100,
			      .delete_on_clear = TRUE,
			      .internal_networks = "10.0.0.0/8, fd00::/8",
			      .mail_servers = "10.0.0.25",
			      .never = "10.9.0.0/16",
			      .max_hosts = 3,
			      .queue = 64,
			      .log = log};
	GError *err = NULL;
	assert_true(
	    action_filter_spec_parse(&c.filter, "", "smtp-fanout, smtp-blocked", "warning", &err));
	return c;
}

static AlertEvent
event(AlertKind kind, const char *host)
{
	AlertEvent ev = sample_alert(g_get_real_time() / 1000);
	ev.event = kind;
	ev.severity = kind == ALERT_CLEARED ? ALERT_SEV_INFO : ALERT_SEV_WARNING;
	sample_addr(ev.host, host);
	ev.mta_like = FALSE; /* the sample looks like a mail server: a bot does not */
	return ev;
}

static void
emit(Sink *s, AlertKind kind, const char *host)
{
	AlertEvent ev = event(kind, host);
	SinkCtx ctx = {0};
	s->ops->write(s, &ev, &ctx);
}

static void
settle(Sink *s)
{
	assert_int_equal(s->ops->flush(s, 5000), 0);
}

/* one counter of the sink's stats */
static gint64
stat(Sink *s, const char *name)
{
	g_autoptr(GString) j = g_string_new("{");
	s->ops->stats_json(s, j);
	g_string_append_c(j, '}');
	g_autoptr(JsonParser) p = json_parser_new();
	assert_true(json_parser_load_from_data(p, j->str, -1, NULL));
	JsonObject *o = json_node_get_object(json_parser_get_root(p));
	assert_true(json_object_has_member(o, name));
	return json_object_get_int_member(o, name);
}

/* how many records of this action the log holds, and the newest one's detail */
static guint
records(ActionLog *log, const char *action, const char **detail)
{
	guint n = 0;
	for (guint i = 0; i < action_log_len(log); i++) {
		const ActionRecord *r = action_log_get(log, i);
		if (strcmp(r->action, action) != 0)
			continue;
		if (n++ == 0 && detail != NULL)
			*detail = r->detail;
	}
	return n;
}

static void
test_missing_set(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;

	(void)run("flush ruleset");
	assert_null(quarantine_new(&c, &err));
	assert_true(g_error_matches(err, QUARANTINE_ERROR, QUARANTINE_ERROR_NO_SET));
	/* the message tells how to make it */
	assert_non_null(strstr(err->message, "nft add set inet t q '{ type ipv4_addr; flags "
					     "timeout; }'"));
	g_clear_error(&err);
	/* of the wrong type */
	assert_int_equal(run("add table inet t"), 0);
	assert_int_equal(run("add set inet t q { type ipv6_addr; flags timeout; }"), 0);
	assert_null(quarantine_new(&c, &err));
	assert_non_null(strstr(err->message, "type ipv6_addr"));
	g_clear_error(&err);
	/* without timeouts */
	fresh(FALSE);
	assert_int_equal(run("delete set inet t q"), 0);
	assert_int_equal(run("add set inet t q { type ipv4_addr; }"), 0);
	assert_null(quarantine_new(&c, &err));
	assert_non_null(strstr(err->message, "without the timeout flag"));
	g_clear_error(&err);
	/* a name that is not an nft identifier never reaches a command */
	fresh(FALSE);
	c.set = "q }; flush ruleset; add set inet t x {";
	assert_null(quarantine_new(&c, &err));
	assert_true(g_error_matches(err, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG));
	assert_true(member("q", "10.0.0.1") == FALSE);
	assert_int_equal(run("list set inet t q"), 0);
}

static void
test_safety_rules(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	const char *d = NULL;

	fresh(FALSE);
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	emit(s, ALERT_RAISED, "10.0.0.25"); /* a mail server */
	emit(s, ALERT_RAISED, "192.0.2.1"); /* external */
	emit(s, ALERT_RAISED, "10.9.1.1");  /* never */
	emit(s, ALERT_RAISED, "fd00::1");   /* IPv6 without q6 */
	emit(s, ALERT_RAISED, "10.0.0.2");
	emit(s, ALERT_RAISED, "10.0.0.3");
	emit(s, ALERT_RAISED, "10.0.0.4"); /* the fourth: max_hosts 3 */
	settle(s);
	assert_true(member("q", "10.0.0.1"));
	assert_true(member("q", "10.0.0.2"));
	assert_true(member("q", "10.0.0.3"));
	assert_false(member("q", "10.0.0.25"));
	assert_false(member("q", "10.9.1.1"));
	assert_false(member("q", "10.0.0.4"));
	assert_int_equal(stat(s, "added"), 3);
	assert_int_equal(stat(s, "refused_mail_server"), 1);
	assert_int_equal(stat(s, "refused_external"), 1);
	assert_int_equal(stat(s, "refused_never"), 1);
	assert_int_equal(stat(s, "refused_ipv6"), 1);
	assert_int_equal(stat(s, "refused_cap"), 1);
	assert_int_equal(stat(s, "members"), 3);
	assert_int_equal(records(log, "quarantine-add", &d), 3);
	assert_non_null(strstr(d, "timeout 100s"));
	assert_int_equal(records(log, "quarantine-refused", &d), 5);
	assert_non_null(strstr(d, "max_hosts = 3")); /* the newest: the cap */
	/* the latency from the event's time to the add, measured */
	assert_true(stat(s, "latencies") == 3);
	assert_true(stat(s, "max_latency_ms") >= 0 && stat(s, "max_latency_ms") < 2000);
	/* looks like a mail server (receives mail): refused, even with a place free */
	AlertEvent mta = event(ALERT_RAISED, "10.0.0.30");
	mta.mta_like = TRUE;
	SinkCtx mctx = {0};
	s->ops->write(s, &mta, &mctx);
	settle(s);
	assert_false(member("q", "10.0.0.30"));
	assert_int_equal(stat(s, "refused_mta_like"), 1);
	assert_non_null(strstr(action_log_get(log, 0)->detail, "looks like a mail server"));
	/* below min_severity, another reason: not acted on */
	AlertEvent ev = event(ALERT_RAISED, "10.0.0.9");
	ev.severity = ALERT_SEV_NOTICE;
	SinkCtx ctx = {0};
	s->ops->write(s, &ev, &ctx);
	ev = event(ALERT_RAISED, "10.0.0.9");
	ev.reason = REASON_AUTH_BRUTEFORCE;
	s->ops->write(s, &ev, &ctx);
	settle(s);
	assert_int_equal(stat(s, "filtered"), 2);
	assert_int_equal(stat(s, "refused_cap"), 1);
	/* a member is refreshed, not refused for the cap */
	emit(s, ALERT_UPDATED, "10.0.0.1");
	settle(s);
	assert_int_equal(stat(s, "refreshed"), 1);
	/* someone deletes a member behind spamflow's back: quarantine_list sees it */
	assert_int_equal(run("delete element inet t q { 10.0.0.3 }"), 0);
	g_autoptr(GString) out = g_string_new(NULL);
	assert_true(quarantine_list(s, out, &err));
	assert_null(strstr(out->str, "10.0.0.3"));
	assert_non_null(strstr(out->str, "\"host\":\"10.0.0.1\""));
	assert_non_null(strstr(out->str, "\"reason\":\"smtp-fanout\""));
	assert_int_equal(stat(s, "members"), 2);
	/* and a place is free again */
	emit(s, ALERT_RAISED, "10.0.0.4");
	settle(s);
	assert_true(member("q", "10.0.0.4"));
}

/* nft's `add element` keeps an existing element's timeout: the refresh must restart it */
static void
test_refresh_restarts_timeout(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;

	fresh(FALSE);
	c.timeout_s = 4;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	settle(s);
	g_usleep(2500 * 1000);
	emit(s, ALERT_UPDATED, "10.0.0.1");
	settle(s);
	g_autoptr(GString) out = g_string_new(NULL);
	assert_true(quarantine_list(s, out, &err));
	/* 4 s after the refresh, not 1.5 s after the add */
	assert_non_null(strstr(out->str, "\"timeout_s\":4,\"expires_s\":"));
	const char *e = strstr(out->str, "\"expires_s\":") + strlen("\"expires_s\":");
	assert_true(atoi(e) >= 3);
	g_usleep(2500 * 1000); /* 5 s after the add: still in thanks to the refresh */
	assert_true(member("q", "10.0.0.1"));
	g_usleep(2000 * 1000);
	assert_false(member("q", "10.0.0.1"));
}

/* An offender that keeps going without escalating gets no updated event: the renewal
 * keeps it in the set quietly; one the analyzer dropped without a cleared (forget) is not
 * renewed and leaves at its timeout. */
static void
test_renew(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;

	fresh(FALSE);
	c.timeout_s = 4;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	emit(s, ALERT_RAISED, "10.0.0.2");
	settle(s);
	guint recorded = action_log_len(log);
	QuarantineWant w = {.reason = REASON_SMTP_FANOUT, .severity = ALERT_SEV_WARNING};
	sample_addr(w.host, "10.0.0.1"); /* 10.0.0.2 was forgotten: not among the offenders */
	/* far from its timeout (interval 0: renewed with under 2 s left): nothing */
	quarantine_renew(s, &w, 1, 0);
	settle(s);
	assert_int_equal(stat(s, "renewed"), 0);
	for (guint i = 0; i < 3; i++) {
		g_usleep(1500 * 1000);
		quarantine_renew(s, &w, 1, 0);
		settle(s);
	}
	/* 4.5 s after the add: the offender is still in, the forgotten one gone */
	assert_true(member("q", "10.0.0.1"));
	assert_false(member("q", "10.0.0.2"));
	assert_true(stat(s, "renewed") >= 1);
	assert_int_equal(stat(s, "not_renewed"), 1);
	assert_int_equal(action_log_len(log), recorded); /* routine: not recorded */
	/* once it clears it is deleted as usual */
	emit(s, ALERT_CLEARED, "10.0.0.1");
	settle(s);
	assert_false(member("q", "10.0.0.1"));
}

static void
test_clear(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;

	fresh(FALSE);
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	AlertEvent ev = event(ALERT_RAISED, "10.0.0.1");
	ev.reason = REASON_SMTP_BLOCKED; /* a second offence of the same host */
	SinkCtx ctx = {0};
	s->ops->write(s, &ev, &ctx);
	settle(s);
	emit(s, ALERT_CLEARED, "10.0.0.1"); /* smtp-fanout clears; smtp-blocked holds it */
	settle(s);
	assert_true(member("q", "10.0.0.1"));
	ev.event = ALERT_CLEARED;
	s->ops->write(s, &ev, &ctx);
	settle(s);
	assert_false(member("q", "10.0.0.1"));
	assert_int_equal(stat(s, "deleted"), 1);
	assert_int_equal(records(log, "quarantine-delete", NULL), 1);
	/* a cleared event of a host it never held: nothing */
	emit(s, ALERT_CLEARED, "10.0.0.7");
	settle(s);
	assert_int_equal(stat(s, "deleted"), 1);

	/* on_clear = expire: stays until its timeout */
	g_autoptr(Sink) x = NULL;
	sink_free(g_steal_pointer(&s));
	c.delete_on_clear = FALSE;
	x = quarantine_new(&c, &err);
	assert_non_null(x);
	emit(x, ALERT_RAISED, "10.0.0.2");
	settle(x);
	emit(x, ALERT_CLEARED, "10.0.0.2");
	settle(x);
	assert_true(member("q", "10.0.0.2"));
	assert_int_equal(stat(x, "expiring"), 1);
	assert_int_equal(records(log, "quarantine-expire", NULL), 1);
}

static void
test_release(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	guint8 h[16];

	fresh(FALSE);
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	settle(s);
	sample_addr(h, "10.0.0.1");
	assert_true(quarantine_release(s, h, 1234, &err));
	assert_false(member("q", "10.0.0.1"));
	const ActionRecord *r = action_log_get(log, 0);
	assert_string_equal(r->action, "quarantine-release");
	assert_int_equal(r->uid, 1234);
	/* its offence goes on: not re-added */
	emit(s, ALERT_UPDATED, "10.0.0.1");
	settle(s);
	assert_false(member("q", "10.0.0.1"));
	assert_int_equal(stat(s, "held_released"), 1);
	/* it clears, then raises anew: quarantined again */
	emit(s, ALERT_CLEARED, "10.0.0.1");
	settle(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	settle(s);
	assert_true(member("q", "10.0.0.1"));
	/* released, then a new raise without a clear in between (another reason) */
	assert_true(quarantine_release(s, h, 0, &err));
	AlertEvent ev = event(ALERT_RAISED, "10.0.0.1");
	ev.reason = REASON_SMTP_BLOCKED;
	SinkCtx ctx = {0};
	s->ops->write(s, &ev, &ctx);
	settle(s);
	assert_true(member("q", "10.0.0.1"));
	/* not a member: an error, nothing recorded */
	guint n = action_log_len(log);
	sample_addr(h, "10.0.0.77");
	assert_false(quarantine_release(s, h, 0, &err));
	assert_true(g_error_matches(err, QUARANTINE_ERROR, QUARANTINE_ERROR_NOT_MEMBER));
	assert_int_equal(action_log_len(log), n);
	assert_int_equal(stat(s, "released"), 2);
}

static void
test_dry_run(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	const char *d = NULL;

	(void)run("flush ruleset"); /* no set at all: dry_run does not need one */
	c.dry_run = TRUE;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "10.0.0.1");
	emit(s, ALERT_RAISED, "10.0.0.25");
	emit(s, ALERT_RAISED, "fd00::5");
	assert_int_equal(records(log, "quarantine-dry-run", &d), 2);
	assert_non_null(strstr(d, "would add it in inet t q6"));
	assert_int_equal(records(log, "quarantine-refused", NULL), 1);
	assert_int_equal(stat(s, "dry_run_actions"), 2);
	assert_int_equal(stat(s, "added"), 0);
	assert_int_equal(stat(s, "nft_calls"), 0);
	/* the kernel was not touched: still no table */
	assert_int_not_equal(run("list table inet t"), 0);
	g_autoptr(GString) out = g_string_new(NULL);
	assert_true(quarantine_list(s, out, &err));
	assert_non_null(strstr(out->str, "\"dry_run\":true"));
	assert_non_null(strstr(out->str, "\"host\":\"10.0.0.1\""));
	emit(s, ALERT_CLEARED, "10.0.0.1");
	assert_int_equal(records(log, "quarantine-dry-run", &d), 3);
	assert_non_null(strstr(d, "would delete"));
}

static void
test_ipv6(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	guint8 h[16];

	fresh(TRUE);
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	emit(s, ALERT_RAISED, "fd00::1");
	emit(s, ALERT_RAISED, "2001:db8::1"); /* external */
	settle(s);
	assert_true(member("q6", "fd00::1"));
	assert_false(member("q", "10.0.0.1"));
	assert_int_equal(stat(s, "refused_external"), 1);
	g_autoptr(GString) out = g_string_new(NULL);
	assert_true(quarantine_list(s, out, &err));
	assert_non_null(strstr(out->str, "\"host\":\"fd00::1\""));
	assert_non_null(strstr(out->str, "\"set6\":\"inet t q6\""));
	sample_addr(h, "fd00::1");
	assert_true(quarantine_release(s, h, 0, &err));
	assert_false(member("q6", "fd00::1"));
}

static void
test_reconcile(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	QuarantineWant want[4];

	/* the set as a previous run left it: .5 no longer offends, .6 still does */
	fresh(FALSE);
	assert_int_equal(run("add element inet t q { 10.0.0.5 timeout 100s, 10.0.0.6 timeout "
			     "100s }"),
			 0);
	memset(want, 0, sizeof want);
	sample_addr(want[0].host, "10.0.0.6");
	sample_addr(want[1].host, "10.0.0.7");	/* restored from the state file, not in the set */
	sample_addr(want[2].host, "10.0.0.25"); /* a mail server: refused */
	sample_addr(want[3].host, "10.0.0.8");	/* a reason the quarantine does not act on */
	for (guint i = 0; i < 4; i++) {
		want[i].reason = REASON_SMTP_FANOUT;
		want[i].severity = ALERT_SEV_WARNING;
	}
	want[3].reason = REASON_AUTH_BRUTEFORCE;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	quarantine_reconcile(s, want, 4);
	settle(s);
	assert_false(member("q", "10.0.0.5"));
	assert_true(member("q", "10.0.0.6"));
	assert_true(member("q", "10.0.0.7"));
	assert_false(member("q", "10.0.0.8"));
	assert_int_equal(records(log, "quarantine-sync-delete", NULL), 1);
	assert_int_equal(records(log, "quarantine-sync-refresh", NULL), 1);
	assert_int_equal(records(log, "quarantine-sync-add", NULL), 1);
	assert_int_equal(records(log, "quarantine-refused", NULL), 1);
	/* the filter learnt the offenders: their cleared events pass and delete them */
	emit(s, ALERT_CLEARED, "10.0.0.7");
	settle(s);
	assert_false(member("q", "10.0.0.7"));

	/* on_clear = expire: what no one wants stays until its timeout */
	sink_free(g_steal_pointer(&s));
	assert_int_equal(run("add element inet t q { 10.0.0.5 timeout 100s }"), 0);
	c.delete_on_clear = FALSE;
	s = quarantine_new(&c, &err);
	assert_non_null(s);
	quarantine_reconcile(s, want, 1);
	settle(s);
	assert_true(member("q", "10.0.0.5"));
	assert_true(member("q", "10.0.0.6"));
	assert_int_equal(records(log, "quarantine-sync-keep", NULL), 1);
}

/* The set goes away under the daemon: the call fails, recorded with nft's error, counted;
 * the failed add holds no place under the cap. */
static void
test_nft_fails(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(64);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;
	const char *d = NULL;

	fresh(FALSE);
	c.max_hosts = 1;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	assert_int_equal(run("delete set inet t q"), 0);
	emit(s, ALERT_RAISED, "10.0.0.1");
	settle(s);
	assert_int_equal(s->st.errors, 1);
	assert_int_equal(stat(s, "added"), 0);
	assert_int_equal(records(log, "quarantine-failed", &d), 1);
	assert_non_null(strstr(d, "add (raised): "));
	assert_non_null(strstr(d, "No such file or directory"));
	assert_int_equal(stat(s, "members"), 0);
	/* the set is back: the next host gets the place */
	assert_int_equal(run("add set inet t q { type ipv4_addr; flags timeout; }"), 0);
	emit(s, ALERT_RAISED, "10.0.0.2");
	settle(s);
	assert_true(member("q", "10.0.0.2"));
	assert_int_equal(stat(s, "refused_cap"), 0);
}

/* A full queue drops, counted; every event is either done or dropped. */
static void
test_queue_full(void **state)
{
	(void)state;
	g_autoptr(ActionLog) log = action_log_new(512);
	QuarantineConfig c = config(log);
	g_autoptr(GError) err = NULL;

	fresh(FALSE);
	c.queue = 1;
	c.max_hosts = 500;
	g_autoptr(Sink) s = quarantine_new(&c, &err);
	assert_non_null(s);
	for (guint i = 0; i < 200; i++) {
		char a[32];
		g_snprintf(a, sizeof a, "10.1.%u.%u", i / 250, i % 250 + 1);
		emit(s, ALERT_RAISED, a);
	}
	settle(s);
	assert_true(s->st.dropped > 0);
	assert_int_equal(stat(s, "added") + (gint64)s->st.dropped, 200);
	assert_int_equal(stat(s, "members"), stat(s, "added"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing_set),
	    cmocka_unit_test(test_safety_rules),
	    cmocka_unit_test(test_refresh_restarts_timeout),
	    cmocka_unit_test(test_renew),
	    cmocka_unit_test(test_clear),
	    cmocka_unit_test(test_release),
	    cmocka_unit_test(test_dry_run),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_reconcile),
	    cmocka_unit_test(test_nft_fails),
	    cmocka_unit_test(test_queue_full),
	};
	/* a private network namespace: its own, empty ruleset */
	if (unshare(CLONE_NEWNET) != 0) {
		g_printerr("test_quarantine: unshare(CLONE_NEWNET): %s: the test needs root (a "
			   "private network namespace for its nft table)\n",
			   g_strerror(errno));
		return 1;
	}
	nft = nft_ctx_new(NFT_CTX_DEFAULT);
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	nft_ctx_free(nft);
	return rc;
}
