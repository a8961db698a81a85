/* Unit tests for spamflowctl's library (client/ctl.c), which links nothing of the daemon but
 * the protocol: reading replies with json-glib (bounded depth, empty and cut replies
 * refused), the time helper, and the renderers on fixed replies (width, dropped columns,
 * the sFlow agent row, nested counters as key.member=value, fractions to 3 decimals). */
#include "ctl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void
test_reply_parse(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "{}", "[]", "{\"a\":[1,2.5,-3e2,true,false,null,\"x\\u00e9\\n\"]}", " {\"a\" : {} } ",
	};
	for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(JsonNode) j = ctl_reply_parse(good[i], strlen(good[i]), NULL);
		assert_non_null(j);
	}
	g_autoptr(JsonNode) j = ctl_reply_parse(good[2], strlen(good[2]), NULL);
	JsonNode *a = ctl_json_get(j, "a");
	assert_int_equal(ctl_json_len(a), 7);
	assert_true(json_node_get_double(ctl_json_at(a, 1)) == 2.5);
	assert_null(ctl_json_at(a, 7));
	assert_string_equal(json_node_get_string(ctl_json_at(a, 6)), "x\xc3\xa9\n");
	/* the typed getters give the default for another type */
	const char *typed = "{\"n\":7,\"s\":\"7\",\"b\":true,\"o\":{\"n\":1}}";
	g_autoptr(JsonNode) t = ctl_reply_parse(typed, strlen(typed), NULL);
	assert_non_null(t);
	assert_true(ctl_json_num(t, "n", -1) == 7);
	assert_true(ctl_json_num(t, "s", -1) == -1);
	assert_string_equal(ctl_json_str(t, "n", "def"), "def");
	assert_true(ctl_json_bool(t, "b", FALSE));
	assert_true(ctl_json_bool(t, "n", FALSE) == FALSE);
	assert_true(ctl_json_num(t, "o.n", 0) == 1);
	assert_null(ctl_json_path(t, "o.n.x"));
	assert_int_equal(ctl_json_len(ctl_json_get(t, "o")), 1);

	static const char *const bad[] = {
	    "", "   ", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "\"abc", "tru", "1 2", "nan",
	    "\"\\u12\"", "{\"a\":\"\xff\"}",
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		assert_null(ctl_reply_parse(bad[i], strlen(bad[i]), &err));
		assert_true(g_error_matches(err, CTL_ERROR, CTL_ERROR_REPLY));
	}
	/* depth bound, before json-glib sees it; brackets in strings do not count */
	g_autoptr(GString) deep = g_string_new(NULL);
	for (int i = 0; i < 100; i++)
		g_string_append_c(deep, '[');
	for (int i = 0; i < 100; i++)
		g_string_append_c(deep, ']');
	assert_null(ctl_reply_parse(deep->str, deep->len, NULL));
	g_autoptr(GString) ok = g_string_new("{\"s\":\"");
	for (int i = 0; i < 100; i++)
		g_string_append(ok, "[{\\\"");
	g_string_append(ok, "\"}");
	g_autoptr(JsonNode) s = ctl_reply_parse(ok->str, ok->len, NULL);
	assert_non_null(s);
	/* every prefix of a reply is refused, never read past */
	const char *reply = "{\"ok\":true,\"version\":1,\"x\":[{\"y\":\"z\"}]}";
	for (gsize n = 0; n < strlen(reply); n++) {
		char *copy = g_malloc(n + 1); /* exact length: ASan sees an overrun */
		memcpy(copy, reply, n);
		assert_null(ctl_reply_parse(copy, n, NULL));
		g_free(copy);
	}
}

static void
test_ago(void **state)
{
	(void)state;
	static const struct {
		gint64 d;
		const char *want;
	} cases[] = {{0, "just now"},	      {999, "just now"},    {5000, "5s ago"},
		     {119000, "119s ago"},    {180000, "3m ago"},   {7100000, "118m ago"}, {7200000, "2h ago"},
		     {3 * 3600000, "3h ago"}, {3 * 86400000LL, "3d ago"}, {-5000, "in 5s"}};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *s = ctl_ago(1000000000000 - cases[i].d, 1000000000000);
		assert_string_equal(s, cases[i].want);
	}
	g_autofree char *none = ctl_ago(0, 5);
	assert_string_equal(none, "-");
}

/* Replies and what spamflowctl printed for them before it read replies with json-glib. */
static const struct {
	const char *command;
	guint width;
	const char *reply;
	const char *text;
} render_cases[] = {
    {"offenders", 40,
	     "{\"ok\":true,\"version\":1,\"command\":\"offenders\",\"now_ms\":1700000100000,"
	     "\"total\":3,\"shown\":2,\"truncated\":true,\"offenders\":[{\"host\":\"10.0.0.1\","
	     "\"reason\":\"smtp-fanout\",\"severity\":\"warning\",\"now\":{\"short\":12,"
	     "\"long\":30,\"attempts\":40,\"failed\":10,\"last_seen_ms\":1700000095000},"
	     "\"event\":{\"windows\":[{\"value\":10,\"threshold\":10},{\"value\":30,\"threshold\":30,"
	     "\"estimated\":true}],\"first_seen_ms\":1700000000000,\"last_seen_ms\":1700000090000,"
	     "\"attempts\":40,\"failed_share\":0.25}},{\"host\":\"2001:db8::1\",\"reason\":\"smtp-blocked\","
	     "\"severity\":\"notice\",\"now\":null,\"event\":{\"windows\":[{\"value\":5,"
	     "\"threshold\":30,\"estimated\":true},{\"value\":100,\"threshold\":100}],"
	     "\"first_seen_ms\":1700000050000,\"last_seen_ms\":1700000099500,\"attempts\":416,"
	     "\"failed_share\":1}}]}",
	     "SEVERITY  REASON        HOST\n"
	     "warning   smtp-fanout   10.0.0.1\n"
	     "notice    smtp-blocked  2001:db8::1\n"
	     "(2 of 3 shown: the reply reached its size limit, use limit=)\n"},
    {"offenders", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"offenders\",\"now_ms\":1700000100000,"
	     "\"total\":3,\"shown\":2,\"truncated\":true,\"offenders\":[{\"host\":\"10.0.0.1\","
	     "\"reason\":\"smtp-fanout\",\"severity\":\"warning\",\"now\":{\"short\":12,"
	     "\"long\":30,\"attempts\":40,\"failed\":10,\"last_seen_ms\":1700000095000},"
	     "\"event\":{\"windows\":[{\"value\":10,\"threshold\":10},{\"value\":30,\"threshold\":30,"
	     "\"estimated\":true}],\"first_seen_ms\":1700000000000,\"last_seen_ms\":1700000090000,"
	     "\"attempts\":40,\"failed_share\":0.25}},{\"host\":\"2001:db8::1\",\"reason\":\"smtp-blocked\","
	     "\"severity\":\"notice\",\"now\":null,\"event\":{\"windows\":[{\"value\":5,"
	     "\"threshold\":30,\"estimated\":true},{\"value\":100,\"threshold\":100}],"
	     "\"first_seen_ms\":1700000050000,\"last_seen_ms\":1700000099500,\"attempts\":416,"
	     "\"failed_share\":1}}]}",
	     "SEVERITY  REASON        HOST         SHORT     LONG  ATTEMPTS  FAILED  FIRST SEEN  LAST SEEN\n"
	     "warning   smtp-fanout   10.0.0.1     12/10    30/30        40     25%  100s ago    5s ago\n"
	     "notice    smtp-blocked  2001:db8::1  5/30~  100/100       416    100%  50s ago     just now\n"
	     "(2 of 3 shown: the reply reached its size limit, use limit=)\n"},
    {"exporters", 80,
	     "{\"ok\":true,\"version\":1,\"command\":\"exporters\",\"now_ms\":1700000100000,"
	     "\"exporters\":[{\"addr\":\"192.0.2.1\",\"port\":2055,\"domain\":0,\"version\":10,"
	     "\"datagrams\":27,\"records\":526,\"templates_active\":5,\"seq_lost\":0,"
	     "\"malformed_total\":1,\"times_dropped\":0,\"sampling\":1,\"first_seen_ms\":1699990000000,"
	     "\"last_seen_ms\":1700000099000},{\"addr\":\"2001:db8::2\",\"port\":9995,"
	     "\"domain\":7,\"version\":9,\"datagrams\":3,\"records\":9,\"templates_active\":1,"
	     "\"seq_lost\":2,\"malformed_total\":0,\"times_dropped\":4,\"sampling\":100,"
	     "\"first_seen_ms\":1700000000000,\"last_seen_ms\":1700000000000},{\"addr\":\"192.0.2.10\","
	     "\"port\":null,\"domain\":1,\"version\":\"sflow5\",\"datagrams\":10719,\"records\":78497,"
	     "\"samples_lost\":3,\"malformed_total\":0,\"times_dropped\":0,\"sampling\":1,"
	     "\"first_seen_ms\":1700000099000,\"last_seen_ms\":1700000100000}]}",
	     "EXPORTER               VER  DATAGRAMS  RECORDS  SEQ LOST  MALFORMED\n"
	     "192.0.2.1:2055          10         27      526         0          1\n"
	     "[2001:db8::2]:9995       9          3        9         2          0\n"
	     "192.0.2.10          sflow5      10719    78497         3          0\n"},
    {"stats", 40,
	     "{\"ok\":true,\"version\":1,\"command\":\"stats\",\"now_ms\":1,\"analyzer_now_ms\":2,"
	     "\"exporters\":[{},{}],\"totals\":{\"datagrams\":10746,\"bytes\":14119564,"
	     "\"ratio\":0.5,\"flag\":true,\"off\":false,\"name\":\"x y\",\"nested\":{\"a\":1},"
	     "\"none\":null,\"big\":9007199254740993},\"sinks\":[{\"kind\":\"json\",\"name\":\"/tmp/a.jsonl\","
	     "\"events\":3,\"errors\":0}],\"listener\":{\"datagrams\":1,\"bytes\":2,\"recv_errors\":0,"
	     "\"kernel_drops\":0,\"truncated\":0,\"batches\":1},\"alerts\":{\"smtp-fanout\":{"
	     "\"raised\":3,\"updated\":1,\"cleared\":2},\"mta-surge\":{\"raised\":0,"
	     "\"updated\":0,\"cleared\":0}}}",
	     "exporters: 2 (spamflowctl exporters)\n"
	     "totals: datagrams=10746 bytes=14119564\n"
	     "    ratio=0.5 flag=true off=false\n"
	     "    name=x y nested.a=1 none=-\n"
	     "    big=9007199254740992\n"
	     "sinks json /tmp/a.jsonl: kind=json\n"
	     "    name=/tmp/a.jsonl events=3 errors=0\n"
	     "listener: datagrams=1 bytes=2\n"
	     "    recv_errors=0 kernel_drops=0\n"
	     "    truncated=0 batches=1\n"
	     "alerts smtp-fanout: raised=3 updated=1\n"
	     "    cleared=2\n"
	     "alerts mta-surge: raised=0 updated=0\n"
	     "    cleared=0\n"},
    {"host", 80,
	     "{\"ok\":true,\"version\":1,\"command\":\"host\",\"now_ms\":1700000100000,"
	     "\"host\":\"10.0.0.1\",\"internal\":true,\"mail_server\":true,\"last_seen_ms\":1700000090000,"
	     "\"sampling\":10,\"exporters\":[\"192.0.2.1\",\"192.0.2.10\"],\"baseline\":{\"median_short\":3,"
	     "\"median_long\":9,\"samples\":12},\"reasons\":[{\"reason\":\"smtp-fanout\","
	     "\"enabled\":true,\"state\":\"active\",\"value\":{\"short\":12,\"long\":30},"
	     "\"threshold\":{\"short\":10,\"long\":30},\"level\":1.2,\"offender\":{\"severity\":\"warning\","
	     "\"raised_ms\":1700000000000,\"updates\":2}},{\"reason\":\"mta-surge\",\"enabled\":false,"
	     "\"note\":\"disabled in the config\"},{\"reason\":\"smtp-blocked\",\"enabled\":true,"
	     "\"state\":\"idle\",\"offender\":null}],\"windows\":[{\"traffic\":\"smtp-external\","
	     "\"first_ms\":1700000000000,\"last_ms\":1700000090000,\"short\":{\"distinct\":12,"
	     "\"estimated\":false,\"flows\":40,\"attempts\":40,\"failed\":10},\"long\":{\"distinct\":30,"
	     "\"estimated\":true,\"flows\":80,\"attempts\":70,\"failed\":20},\"top\":[{\"addr\":\"198.51.100.1\","
	     "\"count\":5,\"country\":\"DE\",\"asn\":64496},{\"addr\":\"2001:db8::9\","
	     "\"count\":2}]}]}",
	     "host 10.0.0.1: internal, listed mail server, last seen 10s ago, sampling 1:10\n"
	     "exporters: 192.0.2.1, 192.0.2.10\n"
	     "baseline: median 3 (short), 9 (long) over 12 samples\n"
	     "\n"
	     "reasons\n"
	     "  REASON        STATE     SHORT   LONG  LEVEL  SEVERITY  RAISED    UPDATES\n"
	     "  smtp-fanout   active    12/10  30/30   1.20  warning   100s ago        2\n"
	     "  mta-surge     disabled      -      -      -  -         -               -\n"
	     "  smtp-blocked  idle          -      -      -  -         -               -\n"
	     "  note: mta-surge: disabled in the config\n"
	     "\n"
	     "traffic smtp-external (first 100s ago, last 10s ago)\n"
	     "  WINDOW  DISTINCT  FLOWS  ATTEMPTS  FAILED\n"
	     "  short         12     40        40      10\n"
	     "  long         30~     80        70      20\n"
	     "  TOP DESTINATION  ATTEMPTS  COUNTRY    ASN\n"
	     "  198.51.100.1            5  DE       64496\n"
	     "  2001:db8::9             2  -            -\n"},
    /* a sampled host: how each estimate was made, failed attempts alone (short), failed
     * attempts and sessions (long); nothing for a window with nothing seen */
    {"host", 100,
	     "{\"ok\":true,\"version\":1,\"command\":\"host\",\"now_ms\":1700000100000,"
	     "\"host\":\"10.0.0.2\",\"internal\":true,\"mail_server\":false,"
	     "\"last_seen_ms\":1700000090000,\"sampling\":10,\"exporters\":[\"192.0.2.1\"],"
	     "\"reasons\":[{\"reason\":\"smtp-fanout\",\"enabled\":true,\"state\":\"idle\","
	     "\"value\":{\"short\":9,\"long\":30},\"threshold\":{\"short\":50,\"long\":150},"
	     "\"level\":0.56,\"estimate\":{\"short\":62,\"long\":120},"
	     "\"estimate_se\":{\"short\":17,\"long\":20},\"estimate_basis\":{\"short\":{"
	     "\"seen\":9,\"session_packets\":10.0,\"p_session\":0.6513,\"failed_share\":1.0,"
	     "\"refused_share\":0.5,\"p_failed\":0.145},\"long\":{\"seen\":30,"
	     "\"session_packets\":12.5,\"p_session\":0.7306,\"failed_share\":0.4,"
	     "\"refused_share\":0.0,\"p_failed\":0.1}},\"offender\":null},"
	     "{\"reason\":\"submission-fanout\",\"enabled\":true,\"state\":\"idle\","
	     "\"value\":{\"short\":0,\"long\":0},\"threshold\":{\"short\":20,\"long\":50},"
	     "\"level\":0,\"estimate\":{\"short\":0,\"long\":0},"
	     "\"estimate_se\":{\"short\":0,\"long\":0},\"estimate_basis\":{\"short\":{"
	     "\"seen\":0,\"session_packets\":0.0,\"p_session\":0.0,\"failed_share\":0.0,"
	     "\"refused_share\":0.0,\"p_failed\":0.0},\"long\":{\"seen\":0,"
	     "\"session_packets\":0.0,\"p_session\":0.0,\"failed_share\":0.0,"
	     "\"refused_share\":0.0,\"p_failed\":0.0}},\"offender\":null}],\"windows\":[]}",
	     "host 10.0.0.2: internal, last seen 10s ago, sampling 1:10\n"
	     "exporters: 192.0.2.1\n"
	     "\n"
	     "reasons\n"
	     "  REASON             STATE               SHORT                   LONG  LEVEL  SEVERITY  RAISED\n"
	     "  smtp-fanout        idle   9 (est. 62+-17)/50  30 (est. 120+-20)/150   0.56  -         -\n"
	     "  submission-fanout  idle     0 (est. 0+-0)/20       0 (est. 0+-0)/50   0.00  -         -\n"
	     "  estimate smtp-fanout, short: 9 seen = 9.0 failed attempts / p 0.145 (50% refused) -> "
	     "62+-17\n"
	     "  estimate smtp-fanout, long: 30 seen = 12.0 failed attempts / p 0.100 (0% refused) + 18.0 "
	     "sessions of 12.5 packets / p 0.731 -> 120+-20\n"},
    {"reload", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"reload\",\"file\":\"/etc/x.conf\","
	     "\"applied\":[\"smtp-fanout.short\",\"analyzer.history\"],\"restart_needed\":[\"collector.max_exporters\"]}",
	     "reloaded /etc/x.conf\n"
	     "applied: smtp-fanout.short, analyzer.history\n"
	     "changed, in effect after a restart: collector.max_exporters\n"},
    {"forget", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"forget\",\"host\":\"::1\",\"forgotten\":false}",
	     "nothing was held about ::1\n"},
    {"history", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"history\",\"now_ms\":1700000100000,"
	     "\"events\":[]}",
	     "no alert events yet\n"},
    {"config", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"config\",\"file\":\"/etc/spamflow/spamflow.conf\","
	     "\"text\":\"[analyzer]\\nslice = 60\\n\"}",
	     "# in force now, from /etc/spamflow/spamflow.conf\n"
	     "[analyzer]\n"
	     "slice = 60\n"},
    {"version", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"version\",\"protocol\":1,\"daemon\":\"spamflowd 0.1.0\"}",
	     "spamflowd 0.1.0 (control protocol 1)\n"},
    /* a cluster node whose alert consumer has an event the server left pending: said in
     * words under the counters */
    {"cluster", 0,
	     "{\"ok\":true,\"version\":1,\"command\":\"cluster\",\"now_ms\":1700000002000,"
	     "\"status\":{\"node\":\"a1\","
	     "\"nodes\":[{\"node\":\"a1\",\"live\":true,\"info\":{\"roles\":[\"analyzer\"],"
	     "\"alert_group\":\"sinks\",\"partitions\":[1,2],\"lag\":40,\"lag_ms\":2500,"
	     "\"time_ms\":1700000000000}},{\"node\":\"a2\",\"live\":true,\"info\":{"
	     "\"roles\":[\"analyzer\"],\"alert_group\":\"sinks\",\"partitions\":[3],\"lag\":2,"
	     "\"lag_ms\":120,\"time_ms\":1700000001500}}],\"partitions\":[],"
	     "\"alerts\":{\"group\":\"sinks\","
	     "\"server_ack_floor\":8,\"server_ack_pending\":1,\"unacked_for_s\":45}}}",
	     "node ?: , bus NOT CONNECTED, 0 partitions, 0 owned here\n\n"
	     "node                 live  roles                alert group  partitions      lag   "
	     "behind  last heard\n"
	     "a1                   yes   analyzer             sinks                 2       40     "
	     "2.5s  2s ago\n"
	     "a2                   yes   analyzer             sinks                 1        2     "
	     "0.1s  just now\n\n"
	     "lag: 42 (stream sequences the owners have yet to apply, as each node last told; 0 = "
	     "caught up); behind: 2.5 s (the furthest-behind partition is at a batch the stream "
	     "stored that long ago: its alerts are that late)\n\n"
	     "alert consumer: group=sinks server_ack_floor=8 server_ack_pending=1 unacked_for_s=45\n"
	     "WARNING: the event after alert-stream sequence 8 has waited 45 s for its "
	     "acknowledgement (1 pending): each should be acknowledged within about 10 s\n"},
};

static void
test_render(void **state)
{
	(void)state;
	for (guint i = 0; i < G_N_ELEMENTS(render_cases); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(JsonNode) r =
		    ctl_reply_parse(render_cases[i].reply, strlen(render_cases[i].reply), &err);
		g_autoptr(GString) out = g_string_new(NULL);
		assert_non_null(r);
		ctl_render(out, render_cases[i].command, r, render_cases[i].width);
		assert_string_equal(out->str, render_cases[i].text);
	}
}

/* host since=: the sparklines, the host known to the store only; follow's lines */
static void
test_timeline(void **state)
{
	(void)state;
	const double v[] = {0, 25, 50, 100};
	const gboolean all[] = {TRUE, TRUE, TRUE, TRUE}, gap[] = {TRUE, FALSE, TRUE, TRUE};
	g_autofree char *a = ctl_sparkline(v, all, 4, 100, 4);
	assert_string_equal(a, "\u2581\u2583\u2585\u2588");
	g_autofree char *b = ctl_sparkline(v, gap, 4, 100, 4);
	assert_string_equal(b, "\u2581 \u2585\u2588");
	const double w[] = {1, 9, 2, 3};
	g_autofree char *c = ctl_sparkline(w, all, 4, 9, 2); /* the larger of each pair */
	assert_string_equal(c, "\u2588\u2583");
	g_autofree char *e = ctl_sparkline(w, all, 0, 9, 2);
	assert_string_equal(e, "");

	static const char host[] =
	    "{\"ok\":true,\"version\":1,\"command\":\"host\",\"now_ms\":1700000100000,"
	    "\"host\":\"10.0.0.1\",\"internal\":true,\"mail_server\":false,\"last_seen_ms\":null,"
	    "\"windows\":[],\"reasons\":[],\"timeline\":{\"since_ms\":1700000000000,"
	    "\"until_ms\":1700000100000,\"slice_ms\":60000,\"stored\":true,\"points\":["
	    "{\"t\":1700000040000,\"flows\":3,\"attempts\":3,\"failed\":0,\"reasons\":{"
	    "\"smtp-fanout\":{\"short\":10,\"long\":10,\"short_threshold\":50,\"long_threshold\":150}}},"
	    "{\"t\":1700000100000,\"flows\":3,\"attempts\":3,\"failed\":0,\"reasons\":{"
	    "\"smtp-fanout\":{\"short\":60,\"long\":60,\"short_threshold\":50,\"long_threshold\":150}},"
	    "\"live\":true}],\"events\":[{\"time_ms\":1700000090000,\"event\":\"raised\","
	    "\"reason\":\"smtp-fanout\",\"severity\":\"warning\"}],\"actions\":[],"
	    "\"truncated\":false}}";
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonNode) r = ctl_reply_parse(host, strlen(host), &err);
	assert_non_null(r);
	g_autoptr(GString) out = g_string_new(NULL);
	ctl_render(out, "host", r, 80);
	assert_non_null(strstr(out->str, "host 10.0.0.1: internal, not held by the analyzer now"));
	assert_non_null(strstr(out->str, "2 readings (slice 60 s), 1 events, 0 actions"));
	/* 10 and 60 on the scale of 60: the lowest and the highest bar, max 60, threshold 50 */
	assert_non_null(strstr(out->str, "  smtp-fanout  \u2582\u2588  "));
	assert_non_null(strstr(out->str, "  60         50\n"));
	assert_non_null(strstr(out->str, "raised smtp-fanout (warning)"));

	static const char line[] =
	    "{\"type\":\"event\",\"event\":{\"time_ms\":1700000090000,\"event\":\"raised\","
	    "\"reason\":\"smtp-fanout\",\"severity\":\"warning\",\"host\":\"10.0.0.1\","
	    "\"windows\":[{\"value\":60,\"threshold\":50},{\"value\":60,\"threshold\":150}]}}";
	g_autoptr(JsonNode) l = ctl_reply_parse(line, strlen(line), &err);
	assert_non_null(l);
	g_string_truncate(out, 0);
	ctl_render_follow(out, l);
	assert_non_null(strstr(out->str, "raised   warning smtp-fanout       10.0.0.1        short 60/50 long 60/150\n"));
	static const char act[] =
	    "{\"type\":\"action\",\"action\":{\"time_ms\":1700000090000,\"action\":"
	    "\"quarantine-add\",\"host\":\"10.0.0.1\",\"reason\":\"smtp-fanout\",\"detail\":\"added\"}}";
	g_autoptr(JsonNode) x = ctl_reply_parse(act, strlen(act), &err);
	g_string_truncate(out, 0);
	ctl_render_follow(out, x);
	assert_non_null(strstr(out->str, "action quarantine-add host 10.0.0.1 reason smtp-fanout: added\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_parse),
	    cmocka_unit_test(test_ago),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_timeline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
