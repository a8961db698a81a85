/* Unit tests for the CSV alert sink: RFC 4180 quoting of every special character, the exact
 * record for a known event, the header once per file across reopens, reopen after a rename
 * (logrotate), write errors on a full device counted, and a short write cut back off. */
#include "sample_alert.h"
#include "alertfields.h"
#include "sink_csv.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static const SinkCtx ctx = {.exporter_name = sample_exporter_name};

static char *
quoted(const char *v, gboolean always)
{
	GString *s = g_string_new(NULL);
	sink_csv_field(s, v, always);
	return g_string_free(s, FALSE);
}

static void
test_quoting(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"plain", "plain"},
	    {"", ""},
	    {"a,b", "\"a,b\""},
	    {"say \"hi\"", "\"say \"\"hi\"\"\""},
	    {"\"", "\"\"\"\""},
	    {"line\nbreak", "\"line\nbreak\""},
	    {"cr\rhere", "\"cr\rhere\""},
	    {"crlf\r\n", "\"crlf\r\n\""},
	    {"all ,\"\r\n", "\"all ,\"\"\r\n\""},
	    /* not special in RFC 4180: spaces, semicolons, slashes, single quotes, tabs */
	    {" lead; a/b 'q'\t", " lead; a/b 'q'\t"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = quoted(cases[i].in, FALSE);
		assert_string_equal(got, cases[i].out);
	}
	g_autofree char *forced = quoted("a;b", TRUE);
	assert_string_equal(forced, "\"a;b\"");
	g_autofree char *forced_empty = quoted("", TRUE);
	assert_string_equal(forced_empty, "\"\"");
}

static void
test_header(void **state)
{
	(void)state;
	const char *h = sink_csv_header();
	assert_true(g_str_has_prefix(h, "time_ms,event,reason,severity,host,peer,level,"
					"short_span_s,"));
	assert_true(g_str_has_suffix(h, ",raised_ms,countries,asns,evidence,short_estimate,"
					"short_estimate_se,long_estimate,long_estimate_se,mta_like,"
					"inbound_smtp,dns_external,dns_server,dns_corroborated,group\r\n"));
	g_auto(GStrv) cols = g_strsplit(h, ",", -1);
	assert_int_equal(g_strv_length(cols), ALERT_FIELDS_N);
}

static void
test_record(void **state)
{
	(void)state;
	AlertEvent ev = sample_alert(1700000000123);
	g_autoptr(GString) s = g_string_new(NULL);

	sink_csv_format(s, &ev, &ctx);
	assert_string_equal(s->str,
			    "1700000000123,raised,smtp-fanout,warning,192.0.2.10,,1.250,"
			    "600,62,50,62,false,70,71,9,3600,80,150,80,true,90,95,12,short,"
			    "90,95,12,83,77,0.126,1699999995123,1700000000123,"
			    "\"198.51.100.7/3/US/64500;2001:db8::9/1//\",\"203.0.113.1;#7\","
			    "false,1,false,1700000000123,1,1,,62,0,80,0,true,4,37,8.8.8.8,false,\r\n");
	/* a host in a [group NAME]: its name last */
	g_strlcpy(ev.group, "lab-2", sizeof ev.group);
	g_string_truncate(s, 0);
	sink_csv_format(s, &ev, &ctx);
	assert_true(g_str_has_suffix(s->str, ",8.8.8.8,false,lab-2\r\n"));

	/* a peer, an evidence path with every special character, no top, no exporters */
	ev.has_peer = TRUE;
	sample_addr(ev.peer, "2001:db8::25");
	ev.n_top = 0;
	ev.n_exporters = 0;
	ev.event = ALERT_CLEARED;
	ev.severity = ALERT_SEV_INFO;
	g_strlcpy(ev.evidence, "/var/ev/a,\"b\"\r\nc.ipfix", sizeof ev.evidence);
	/* no DNS server: an empty field (JSON null); corroborated */
	ev.has_dns_server = FALSE;
	ev.mta_like = FALSE;
	ev.dns_corroborated = TRUE;
	g_string_truncate(s, 0);
	sink_csv_format(s, &ev, &ctx);
	assert_true(g_str_has_prefix(s->str, "1700000000123,cleared,smtp-fanout,info,192.0.2.10,"
					     "2001:db8::25,1.250,"));
	assert_true(g_str_has_suffix(s->str, ",\"\",\"\",false,1,false,1700000000123,1,1,"
					     "\"/var/ev/a,\"\"b\"\"\r\nc.ipfix\",62,0,80,0,false,4,37,,true,lab-2\r\n"));
}

static char *
tmp_dir(void)
{
	g_autoptr(GError) err = NULL;
	char *dir = g_dir_make_tmp("sink-csv-XXXXXX", &err);
	assert_non_null(dir);
	return dir;
}

static char *
slurp(const char *path)
{
	char *text = NULL;
	assert_true(g_file_get_contents(path, &text, NULL, NULL));
	return text;
}

static guint
count_str(const char *hay, const char *needle)
{
	g_auto(GStrv) parts = g_strsplit(hay, needle, -1);
	return g_strv_length(parts) - 1;
}

static void
cleanup(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(dir, name, NULL);
		g_unlink(p);
	}
	g_rmdir(dir);
}

static void
test_header_once_across_reopen(void **state)
{
	(void)state;
	g_autofree char *dir = tmp_dir();
	g_autofree char *path = g_build_filename(dir, "alerts.csv", NULL);
	g_autoptr(GError) err = NULL;
	AlertEvent ev = sample_alert(1000);

	g_autoptr(SinkSet) set = sink_set_new();
	Sink *s = sink_csv_new(path, &err);
	assert_non_null(s);
	sink_set_add(set, s);
	/* created: header at once, before any event */
	g_autofree char *fresh = slurp(path);
	assert_string_equal(fresh, sink_csv_header());

	sink_set_write(set, &ev, &ctx);
	sink_set_reopen(set); /* same file still there: append, no second header */
	ev.time_ms = 2000;
	sink_set_write(set, &ev, &ctx);
	assert_int_equal(s->st.reopens, 1);
	assert_int_equal(s->st.events, 2);
	assert_int_equal(s->st.errors, 0);

	/* a second sink (a restart) on the same file adds no header either */
	g_autoptr(Sink) again = sink_csv_new(path, &err);
	assert_non_null(again);
	ev.time_ms = 3000;
	again->ops->write(again, &ev, &ctx);

	g_autofree char *text = slurp(path);
	assert_int_equal(count_str(text, "time_ms,event"), 1);
	assert_true(g_str_has_prefix(text, sink_csv_header()));
	assert_int_equal(count_str(text, "\r\n"), 4);
	/* the three records, in order, right after the header */
	g_auto(GStrv) lines = g_strsplit(text, "\r\n", -1);
	assert_int_equal(g_strv_length(lines), 5);
	assert_true(g_str_has_prefix(lines[1], "1000,raised,"));
	assert_true(g_str_has_prefix(lines[2], "2000,raised,"));
	assert_true(g_str_has_prefix(lines[3], "3000,raised,"));
	assert_string_equal(lines[4], "");

	/* emptied in place (copytruncate): the next event gets a header first */
	assert_int_equal(truncate(path, 0), 0);
	ev.time_ms = 4000;
	sink_set_write(set, &ev, &ctx);
	g_autofree char *after = slurp(path);
	assert_true(g_str_has_prefix(after, sink_csv_header()));
	assert_non_null(strstr(after, "\r\n4000,"));
	assert_int_equal(count_str(after, "\r\n"), 2);
	cleanup(dir);
}

static void
test_reopen_after_rename(void **state)
{
	(void)state;
	g_autofree char *dir = tmp_dir();
	g_autofree char *path = g_build_filename(dir, "alerts.csv", NULL);
	g_autofree char *rotated = g_build_filename(dir, "alerts.csv.1", NULL);
	g_autoptr(GError) err = NULL;
	AlertEvent ev = sample_alert(1000);

	g_autoptr(SinkSet) set = sink_set_new();
	Sink *s = sink_csv_new(path, &err);
	assert_non_null(s);
	sink_set_add(set, s);
	sink_set_write(set, &ev, &ctx);
	assert_int_equal(rename(path, rotated), 0);
	ev.time_ms = 2000; /* before SIGHUP: still the old (renamed) file */
	sink_set_write(set, &ev, &ctx);
	sink_set_reopen(set);
	ev.time_ms = 3000;
	sink_set_write(set, &ev, &ctx);
	assert_int_equal(s->st.reopens, 1);
	assert_int_equal(s->st.events, 3);

	g_autofree char *old = slurp(rotated);
	g_autofree char *cur = slurp(path);
	assert_true(g_str_has_prefix(old, sink_csv_header()));
	assert_true(g_str_has_prefix(cur, sink_csv_header()));
	assert_non_null(strstr(old, "\r\n1000,"));
	assert_non_null(strstr(old, "\r\n2000,"));
	assert_null(strstr(old, "\r\n3000,"));
	assert_non_null(strstr(cur, "\r\n3000,"));
	assert_int_equal(count_str(old, "\r\n"), 3);
	assert_int_equal(count_str(cur, "\r\n"), 2);

	/* the rotated file's directory is gone: reopen fails, the old fd keeps working */
	assert_int_equal(g_unlink(path), 0);
	assert_int_equal(g_unlink(rotated), 0);
	assert_int_equal(g_rmdir(dir), 0);
	sink_set_reopen(set);
	assert_int_equal(s->st.reopens, 1);
	sink_set_write(set, &ev, &ctx);
	assert_int_equal(s->st.events, 4);
	assert_int_equal(s->st.errors, 0);
}

static void
test_dev_full(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	AlertEvent ev = sample_alert(1000);

	if (access("/dev/full", W_OK) != 0)
		skip();
	g_autoptr(Sink) s = sink_csv_new("/dev/full", &err);
	assert_non_null(s);
	s->ops->write(s, &ev, &ctx);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.errors, 2);
	assert_int_equal(s->st.events, 0);
	assert_int_equal(s->st.dropped, 0);
}

static void
test_open_fails(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	Sink *s = sink_csv_new("/nonexistent-dir/alerts.csv", &err);
	assert_null(s);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "/nonexistent-dir/alerts.csv"));
}

/* A write cut short by the file size limit (as by a full disk) leaves no partial record:
 * the file is cut back to the last whole record, and the next event follows it cleanly. */
static void
test_short_write_cut_back(void **state)
{
	(void)state;
	g_autofree char *dir = tmp_dir();
	g_autofree char *path = g_build_filename(dir, "alerts.csv", NULL);
	g_autoptr(GError) err = NULL;
	AlertEvent ev = sample_alert(1000);
	struct rlimit old, lim;
	struct stat st;

	g_autoptr(Sink) s = sink_csv_new(path, &err);
	assert_non_null(s);
	gsize hlen = strlen(sink_csv_header());
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)hlen);

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = hlen + 100; /* room for part of a record only */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(s->st.errors, 1);
	assert_int_equal(s->st.events, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)hlen);

	ev.time_ms = 2000;
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 1);
	g_autofree char *text = slurp(path);
	assert_true(g_str_has_prefix(text, sink_csv_header()));
	assert_true(g_str_has_prefix(text + hlen, "2000,raised,"));
	assert_int_equal(count_str(text, "\r\n"), 2);
	cleanup(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_header_once_across_reopen),
	    cmocka_unit_test(test_reopen_after_rename),
	    cmocka_unit_test(test_dev_full),
	    cmocka_unit_test(test_open_fails),
	    cmocka_unit_test(test_short_write_cut_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
