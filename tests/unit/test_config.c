/* Unit tests for the daemon configuration: defaults without a file, a good file, every
 * malformed value refused with an error naming file, line, section and key, unknown
 * sections and keys refused, and config_to_string() loading back to the same values. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void
assert_defaults(const Config *cfg)
{
	CollectorConfig def;

	collector_config_defaults(&def);
	assert_non_null(cfg->listen);
	assert_int_equal(g_strv_length(cfg->listen), 4);
	assert_string_equal(cfg->listen[0], "0.0.0.0:2055");
	assert_string_equal(cfg->listen[1], "[::]:2055");
	assert_string_equal(cfg->listen[2], "0.0.0.0:6343"); /* sFlow */
	assert_string_equal(cfg->listen[3], "[::]:6343");
	assert_int_equal(cfg->collector.max_sflow_sources, def.max_sflow_sources);
	assert_int_equal(cfg->rcvbuf, 33554432);
	assert_int_equal(cfg->collector.max_exporters, def.max_exporters);
	assert_int_equal(cfg->collector.max_domains, def.max_domains);
	assert_int_equal(cfg->collector.max_templates, def.max_templates);
	assert_int_equal(cfg->collector.template_timeout_s, def.template_timeout_s);
	assert_int_equal(cfg->collector.exporter_timeout_s, def.exporter_timeout_s);
	assert_int_equal(cfg->log_level, CONFIG_LOG_MESSAGE);
	assert_int_equal(cfg->stats_interval_s, 60);
}

static void
test_defaults(void **state)
{
	(void)state;
	g_autoptr(Config) cfg = config_new();
	assert_defaults(cfg);

	/* an empty file, and one with only comments and empty sections, change nothing */
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) empty = config_new_from_data("", -1, "empty.conf", &err);
	assert_non_null(empty);
	assert_defaults(empty);
	g_autoptr(Config) comments = config_new_from_data(
	    "# nothing set\n[collector]\n  # still nothing\n[daemon]\n", -1, "c.conf", &err);
	assert_non_null(comments);
	assert_defaults(comments);

	GLogLevelFlags mask = config_log_mask(cfg);
	assert_true(mask & G_LOG_LEVEL_WARNING);
	assert_true(mask & G_LOG_LEVEL_MESSAGE);
	assert_false(mask & G_LOG_LEVEL_INFO);
	config_free(NULL);
}

static void
test_good_file(void **state)
{
	(void)state;
	g_autofree char *path = NULL;
	g_autoptr(GError) err = NULL;
	int fd = g_file_open_tmp("test_config-XXXXXX.conf", &path, &err);
	static const char text[] = "# spamflowd test configuration\n"
				   "[collector]\n"
				   "listen = 127.0.0.1:9995 ; [::1]:9995;\n"
				   "rcvbuf = 8M\n"
				   "max_exporters = 10\n"
				   "max_domains=3\n"
				   "max_templates = 100\n"
				   "template_timeout = 600\n"
				   "exporter_timeout = 7200\n"
				   "\n"
				   "[daemon]\n"
				   "log_level = DEBUG\n"
				   "stats_interval = 0\n";

	assert_true(fd >= 0);
	close(fd);
	assert_true(g_file_set_contents(path, text, -1, &err));
	g_autoptr(Config) cfg = config_new_from_file(path, &err);
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s", err->message);
	assert_int_equal(g_strv_length(cfg->listen), 2);
	assert_string_equal(cfg->listen[0], "127.0.0.1:9995");
	assert_string_equal(cfg->listen[1], "[::1]:9995");
	assert_int_equal(cfg->rcvbuf, 8 * 1024 * 1024);
	assert_int_equal(cfg->collector.max_exporters, 10);
	assert_int_equal(cfg->collector.max_domains, 3);
	assert_int_equal(cfg->collector.max_templates, 100);
	assert_int_equal(cfg->collector.template_timeout_s, 600);
	assert_int_equal(cfg->collector.exporter_timeout_s, 7200);
	assert_int_equal(cfg->log_level, CONFIG_LOG_DEBUG);
	assert_string_equal(config_log_level_name(cfg->log_level), "debug");
	assert_true(config_log_mask(cfg) & G_LOG_LEVEL_DEBUG);
	assert_int_equal(cfg->stats_interval_s, 0);
}

/* Load text and expect CONFIG_ERROR code with every `want` substring in the message. */
static void
expect_error(const char *text, int code, const char *const *want)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) cfg = config_new_from_data(text, -1, "/etc/x.conf", &err);

	if (cfg != NULL)
		fail_msg("accepted:\n%s", text);
	assert_non_null(err);
	if (!g_error_matches(err, CONFIG_ERROR, code))
		fail_msg("code %d, want %d: %s", err->code, code, err->message);
	for (guint i = 0; want[i] != NULL; i++)
		if (strstr(err->message, want[i]) == NULL)
			fail_msg("'%s' not in '%s'", want[i], err->message);
}

static void
test_bad_values(void **state)
{
	(void)state;
	static const struct {
		const char *key;
		const char *value;
		const char *why;
	} cases[] = {
	    {"rcvbuf", "abc", "'abc' is not a number"},
	    {"rcvbuf", "-5", "'-5' is not a number"},
	    {"rcvbuf", "12X", "'12X' is not a number"},
	    {"rcvbuf", "", "'' is not a number"},
	    {"rcvbuf", "10", "'10' is out of range"},
	    {"rcvbuf", "99G", "'99G' is out of range"},
	    {"rcvbuf", "99999999999999999999", "is not a number"},
	    {"max_exporters", "0", "'0' is out of range 1.."},
	    {"max_exporters", "1.5", "'1.5' is not a number"},
	    {"max_domains", "lots", "'lots' is not a number"},
	    {"max_templates", "4294967296", "out of range"},
	    {"template_timeout", "0", "out of range"},
	    {"exporter_timeout", "1h", "'1h' is not a number"},
	    {"listen", "", "needs at least one address"},
	    {"listen", "0.0.0.0", "listen address '0.0.0.0': missing ':port'"},
	    {"listen", "0.0.0.0:2055;[::]:70000", "listen address '[::]:70000'"},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *text = g_strdup_printf("# line 1\n[daemon]\nstats_interval = 5\n"
							"[collector]\n# comment\n%s = %s\n",
							cases[i].key, cases[i].value);
		g_autofree char *at =
		    g_strdup_printf("/etc/x.conf:6: [collector] %s: ", cases[i].key);
		const char *want[] = {at, cases[i].why, NULL};
		expect_error(text, CONFIG_ERROR_VALUE, want);
	}

	const char *lv[] = {"/etc/x.conf:4: [daemon] log_level: 'loud' is not one of error, "
			    "critical, warning, message, info, debug",
			    NULL};
	expect_error("[collector]\n\n[daemon]\nlog_level = loud\n", CONFIG_ERROR_VALUE, lv);
	const char *si[] = {"/etc/x.conf:2: [daemon] stats_interval: '-1' is not a number", NULL};
	expect_error("[daemon]\n  stats_interval   =   -1  \n", CONFIG_ERROR_VALUE, si);
}

static void
test_unknown(void **state)
{
	(void)state;
	const char *key[] = {"/etc/x.conf:3: [collector] unknown key 'lisen'", NULL};
	expect_error("[collector]\nrcvbuf = 1M\nlisen = 0.0.0.0:2055\n", CONFIG_ERROR_UNKNOWN, key);
	const char *grp[] = {"/etc/x.conf:4: unknown section [colector]", NULL};
	expect_error("[daemon]\nlog_level = info\n\n[colector]\nlisten = 0.0.0.0:2055\n",
		     CONFIG_ERROR_UNKNOWN, grp);
	/* a key of one section in another */
	const char *moved[] = {"[daemon] unknown key 'rcvbuf'", NULL};
	expect_error("[daemon]\nrcvbuf = 1M\n", CONFIG_ERROR_UNKNOWN, moved);
	/* set twice, even in a repeated section */
	const char *dup[] = {"/etc/x.conf:5: [collector] rcvbuf: set twice (first on line 2)",
			     NULL};
	expect_error("[collector]\nrcvbuf = 1M\n[daemon]\n[collector]\nrcvbuf = 2M\n",
		     CONFIG_ERROR_DUPLICATE, dup);
	/* a localized key is not the key */
	const char *loc[] = {"unknown key 'listen[de]'", NULL};
	expect_error("[collector]\nlisten[de] = 0.0.0.0:2055\n", CONFIG_ERROR_UNKNOWN, loc);
}

static void
test_syntax_and_file(void **state)
{
	(void)state;
	/* every syntax error names its file and line */
	const char *before[] = {"/etc/x.conf:1: ", "'rcvbuf = 1M' comes before any [section]",
				NULL};
	expect_error("rcvbuf = 1M\n", CONFIG_ERROR_SYNTAX, before);
	const char *notini[] = {"/etc/x.conf:3: ", "'this is not ini' is not 'key = value'",
				NULL};
	expect_error("# a comment\n[collector]\nthis is not ini\n", CONFIG_ERROR_SYNTAX,
		     notini);
	const char *group[] = {"/etc/x.conf:2: ", "'[collector' is not a [section] line", NULL};
	expect_error("\n[collector\nrcvbuf = 1M\n", CONFIG_ERROR_SYNTAX, group);
	const char *nokey[] = {"/etc/x.conf:2: ", "'= 5' is not 'key = value'", NULL};
	expect_error("[collector]\n= 5\n", CONFIG_ERROR_SYNTAX, nokey);
	const char *utf8[] = {"/etc/x.conf:2: not UTF-8 text", NULL};
	expect_error("[daemon]\nuser = \xff\xfe\n", CONFIG_ERROR_SYNTAX, utf8);

	g_autoptr(GError) err = NULL;
	g_autoptr(Config) cfg = config_new_from_file("/nonexistent/spamflow.conf", &err);
	assert_null(cfg);
	assert_true(g_error_matches(err, CONFIG_ERROR, CONFIG_ERROR_FILE));
	assert_non_null(strstr(err->message, "/nonexistent/spamflow.conf"));
}

/* One comment rule for every key: from a '#' after a blank to the end of the line. Lists
 * take commas, semicolons or blanks, listen included. */
static void
test_inline_comments_and_lists(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) c = config_new_from_data(
	    "[collector]\n"
	    "listen = 127.0.0.1:2055, [::1]:2055;127.0.0.1:6343   # three\n"
	    "rcvbuf = 4M # bytes\n"
	    "[daemon]\n"
	    "user = spam#flow   # a '#' inside a word stays\n"
	    "log = syslog\t# tab before the hash\n"
	    "[sinks]\n"
	    "json = /var/log/spamflow/alerts.jsonl   # or --alerts FILE\n",
	    -1, "c.conf", &err);
	if (c == NULL)
		fail_msg("%s", err->message);
	assert_int_equal(g_strv_length(c->listen), 3);
	assert_string_equal(c->listen[1], "[::1]:2055");
	assert_string_equal(c->listen[2], "127.0.0.1:6343");
	assert_int_equal(c->rcvbuf, 4 * 1024 * 1024);
	assert_string_equal(c->user, "spam#flow");
	assert_int_equal(c->log_target, 1);
	assert_string_equal(c->sink_json, "/var/log/spamflow/alerts.jsonl");
}

static void
test_round_trip(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) a = config_new_from_data("[collector]\nlisten=[::1]:1;127.0.0.1:2\n"
						   "max_templates=7\nrcvbuf=4K\n"
						   "[daemon]\nlog_level=warning\n",
						   -1, "a.conf", &err);
	assert_non_null(a);
	g_autofree char *text = config_to_string(a);
	g_autoptr(Config) b = config_new_from_data(text, -1, "b.conf", &err);
	if (b == NULL)
		fail_msg("%s\n%s", err->message, text);
	g_autofree char *text2 = config_to_string(b);
	assert_string_equal(text, text2);
	assert_int_equal(g_strv_length(b->listen), 2);
	assert_string_equal(b->listen[0], "[::1]:1");
	assert_int_equal(b->rcvbuf, 1024 * 4);
	assert_int_equal(b->collector.max_templates, 7);
	assert_int_equal(b->log_level, CONFIG_LOG_WARNING);

	/* the defaults render too, and load back to the defaults */
	g_autoptr(Config) d = config_new();
	g_autofree char *dt = config_to_string(d);
	assert_non_null(strstr(dt, "listen = 0.0.0.0:2055, [::]:2055, 0.0.0.0:6343, [::]:6343\n"));
	/* a double prints as typed, the shortest text that reads back the same */
	assert_non_null(strstr(dt, "failed_share = 0.8\n"));
	assert_non_null(strstr(dt, "rcvbuf = 33554432\n"));
	g_autoptr(Config) d2 = config_new_from_data(dt, -1, "d.conf", &err);
	assert_non_null(d2);
	assert_defaults(d2);
}

/* [group NAME] sections: loaded in file order, written back, and every mistake named with
 * its file:line. */
static void
test_groups(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) cfg = config_new_from_data(
	    "[analyzer]\nhistory = 5\n"
	    "[group lab]\nprefixes = 10.20.0.0/16, fd00:20::/48  # the lab\n"
	    "smtp-fanout = 200/600\nexempt = submission-fanout lateral-smtp\n"
	    "[group printers]\nprefixes = 10.20.9.0/24\nexempt = all\nmta-surge = 0/10\n",
	    -1, "g.conf", &err);
	if (cfg == NULL)
		fail_msg("%s", err->message);
	assert_int_equal(cfg->n_groups, 2);
	const AnalyzerConfig *ac = config_analyzer(cfg);
	assert_int_equal(ac->n_groups, 2);
	assert_string_equal(ac->groups[0].name, "lab");
	assert_string_equal(ac->groups[0].prefixes, "10.20.0.0/16, fd00:20::/48");
	assert_int_equal(ac->groups[0].override, 1u << REASON_SMTP_FANOUT);
	assert_int_equal(ac->groups[0].threshold[REASON_SMTP_FANOUT][WINDOW_SHORT], 200);
	assert_int_equal(ac->groups[0].threshold[REASON_SMTP_FANOUT][WINDOW_LONG], 600);
	assert_int_equal(ac->groups[0].exempt,
			 (1u << REASON_SUBMISSION_FANOUT) | (1u << REASON_LATERAL_SMTP));
	assert_string_equal(ac->groups[1].name, "printers");
	assert_int_equal(ac->groups[1].exempt, (1u << REASON_COUNT) - 1);
	assert_int_equal(ac->groups[1].threshold[REASON_MTA_SURGE][WINDOW_LONG], 10);

	g_autofree char *text = config_to_string(cfg);
	assert_non_null(strstr(text, "\n[group lab]\nprefixes = 10.20.0.0/16, fd00:20::/48\n"
				     "smtp-fanout = 200/600\n"
				     "exempt = submission-fanout, lateral-smtp\n"));
	assert_non_null(strstr(text, "\n[group printers]\nprefixes = 10.20.9.0/24\n"
				     "mta-surge = 0/10\nexempt = all\n"));
	g_autoptr(Config) back = config_new_from_data(text, -1, "back.conf", &err);
	assert_non_null(back);
	g_autofree char *text2 = config_to_string(back);
	assert_string_equal(text, text2);
	/* the defaults: no group, only the commented example */
	g_autoptr(Config) d = config_new();
	g_autofree char *dt = config_to_string(d);
	assert_int_equal(d->n_groups, 0);
	assert_non_null(strstr(dt, "# [group lab]\n# prefixes = "));
	assert_null(strstr(dt, "\n[group "));

	static const char *const bad_prefix[] = {"/etc/x.conf:3:", "[group a] prefixes",
						 "10.0.0.0/33", NULL};
	expect_error("[group a]\n\nprefixes = 10.0.0.0/33\n", CONFIG_ERROR_VALUE, bad_prefix);
	static const char *const unknown_reason[] = {"/etc/x.conf:3:", "unknown key 'smtp-fanin'",
						     NULL};
	expect_error("[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanin = 1/2\n", CONFIG_ERROR_UNKNOWN,
		     unknown_reason);
	static const char *const bad_exempt[] = {"/etc/x.conf:4:", "[group a] exempt",
						 "'smtp' is not a reason", NULL};
	expect_error("[group a]\nprefixes = 10.0.0.0/8\n# x\nexempt = smtp-fanout, smtp\n",
		     CONFIG_ERROR_VALUE, bad_exempt);
	static const char *const one_number[] = {"/etc/x.conf:2:", "[group a] smtp-fanout",
						 "short/long", NULL};
	expect_error("[group a]\nsmtp-fanout = 200\nprefixes = 10.0.0.0/8\n", CONFIG_ERROR_VALUE,
		     one_number);
	static const char *const bad_thr[] = {"/etc/x.conf:3:", "'-5' is not a threshold", NULL};
	expect_error("[group a]\nprefixes = 10.0.0.0/8\nlateral-smtp = 10/-5\n",
		     CONFIG_ERROR_VALUE, bad_thr);
	static const char *const big_thr[] = {"/etc/x.conf:3:", "'10000001' is not a threshold",
					      NULL};
	expect_error("[group a]\nprefixes = 10.0.0.0/8\nlateral-smtp = 10000001/1\n",
		     CONFIG_ERROR_VALUE, big_thr);
	static const char *const missing[] = {"/etc/x.conf:2:", "[group a]", "prefixes is missing",
					      NULL};
	expect_error("[daemon]\n[group a]\nexempt = all\n", CONFIG_ERROR_VALUE, missing);
	static const char *const tie[] = {"/etc/x.conf:5:", "[group b] prefixes",
					  "10.1.0.0/16 is also in [group a]", NULL};
	expect_error("[group a]\nprefixes = 10.1.0.0/16\n[group b]\n\nprefixes = 10.0.0.0/8 "
		     "10.1.0.0/16\n",
		     CONFIG_ERROR_VALUE, tie);
	static const char *const name[] = {"/etc/x.conf:2:", "[group a/b]", "group name", NULL};
	expect_error("\n[group a/b]\nprefixes = 10.0.0.0/8\n", CONFIG_ERROR_VALUE, name);
	static const char *const noname[] = {"/etc/x.conf:1:", "[group]", NULL};
	expect_error("[group]\nprefixes = 10.0.0.0/8\n", CONFIG_ERROR_VALUE, noname);
	static const char *const twice[] = {"/etc/x.conf:4:", "set twice", NULL};
	expect_error("[group a]\nprefixes = 10.0.0.0/8\n[group a]\nprefixes = 10.1.0.0/16\n",
		     CONFIG_ERROR_DUPLICATE, twice);
	static const char *const supp[] = {"/etc/x.conf:2:", "max_suppressions", NULL};
	expect_error("[analyzer]\nmax_suppressions = 0\n", CONFIG_ERROR_VALUE, supp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	    cmocka_unit_test(test_good_file),
	    cmocka_unit_test(test_bad_values),	    cmocka_unit_test(test_unknown),
	    cmocka_unit_test(test_syntax_and_file), cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_inline_comments_and_lists),
	    cmocka_unit_test(test_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
