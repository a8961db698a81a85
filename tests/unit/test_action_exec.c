/* Unit tests for the exec hook action with real scripts in a temp dir, this process's main
 * context driving them: argv, stdin (the JSON sink's line), the exact environment, cwd and
 * process group; failures (exit status, a signal) counted and logged once a minute; the
 * timeout (SIGTERM to the whole group, SIGKILL 2 s later for a script that ignores it);
 * max_running held; one host's runs never overlap and keep their order; the per-host rate
 * limit (cleared never limited); a burst of 1,000 events (write() fast, bounded, drops
 * counted); a chatty script; flush and free at exit leave no child behind. */
#include "sample_alert.h"
#include "action_exec.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib/gstdio.h>

static const SinkCtx ctx = {.exporter_name = sample_exporter_name};

/* ---- log capture ---- */

static GPtrArray *logged; /* "W message" / "M message" */

static GLogWriterOutput
writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	(void)user_data;
	for (gsize i = 0; i < n; i++)
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			g_ptr_array_add(logged,
					g_strdup_printf("%c %s",
							(level & G_LOG_LEVEL_WARNING) ? 'W' : 'M',
							(const char *)fields[i].value));
	if (g_getenv("TEST_VERBOSE") != NULL)
		return g_log_writer_standard_streams(level, fields, n, user_data);
	return G_LOG_WRITER_HANDLED;
}

static guint
logged_count(const char *prefix, const char *part)
{
	guint n = 0;
	for (guint i = 0; i < logged->len; i++) {
		const char *l = g_ptr_array_index(logged, i);
		if (g_str_has_prefix(l, prefix) && strstr(l, part) != NULL)
			n++;
	}
	return n;
}

/* ---- scripts, events, the main context ---- */

typedef struct {
	char *dir;
} Fixture;

static int
setup(void **state)
{
	Fixture *f = g_new0(Fixture, 1);
	f->dir = g_dir_make_tmp("test-exec-XXXXXX", NULL);
	assert_non_null(f->dir);
	g_ptr_array_set_size(logged, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	Fixture *f = *state;
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	g_free(f->dir);
	g_free(f);
	/* whatever a test did, no child of ours is left, not even a zombie */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	return 0;
}

/* A /bin/sh script NAME in the fixture dir; "@D@" in body is the dir. */
static char *
script(Fixture *f, const char *name, const char *body)
{
	char *path = g_build_filename(f->dir, name, NULL);
	g_autoptr(GString) text = g_string_new("#!/bin/sh\n");
	g_string_append(text, body);
	g_string_replace(text, "@D@", f->dir, 0);
	assert_true(g_file_set_contents(path, text->str, -1, NULL));
	assert_int_equal(chmod(path, 0755), 0);
	return path;
}

static char *
dir_file(Fixture *f, const char *name)
{
	g_autofree char *p = g_build_filename(f->dir, name, NULL);
	char *text = NULL;
	if (!g_file_get_contents(p, &text, NULL, NULL))
		return NULL;
	return text;
}

static ActionExecConfig
config(const char *path)
{
	ActionExecConfig c = {.path = path,
			      .timeout_s = 10,
			      .max_running = 4,
			      .queue = 256,
			      .host_limit = 0,
			      .output_lines = 5};
	assert_true(action_filter_spec_parse(&c.filter, "", "", "", NULL));
	return c;
}

static Sink *
exec_new(const ActionExecConfig *c)
{
	g_autoptr(GError) err = NULL;
	Sink *s = action_exec_new(c, &err);
	if (s == NULL)
		fail_msg("action_exec_new: %s", err->message);
	assert_string_equal(s->ops->kind, "exec");
	assert_string_equal(s->name, c->path);
	return s;
}

static AlertEvent
event(const char *host, AlertKind kind)
{
	AlertEvent ev = sample_alert(1700000000123);
	sample_addr(ev.host, host);
	ev.event = kind;
	if (kind == ALERT_CLEARED)
		ev.severity = ALERT_SEV_INFO;
	return ev;
}

static void
write_event(Sink *s, const char *host, AlertKind kind)
{
	AlertEvent ev = event(host, kind);
	s->ops->write(s, &ev, &ctx);
}

static gboolean
wake(gpointer user_data)
{
	(void)user_data;
	return G_SOURCE_REMOVE;
}

/* Iterate the default context until nothing runs or waits (or timeout_ms): returns the
 * most children seen running at once. */
static guint
drive(Sink *s, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	guint most = action_exec_running(s);

	while (action_exec_running(s) > 0 || action_exec_queued(s) > 0) {
		if (g_get_monotonic_time() > deadline)
			fail_msg("still %u running, %u queued after %u ms", action_exec_running(s),
				 action_exec_queued(s), timeout_ms);
		GSource *t = g_timeout_source_new(20);
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
		most = MAX(most, action_exec_running(s));
	}
	return most;
}

/* One member of the stats JSON, as a number. */
static gint64
stat_of(const Sink *s, const char *name)
{
	g_autoptr(GString) out = g_string_new(NULL);
	/* the sink's common counters, then its own (as `stats` prints them) */
	g_string_printf(out, "{\"events\":%" G_GUINT64_FORMAT ",\"errors\":%" G_GUINT64_FORMAT
			",\"dropped\":%" G_GUINT64_FORMAT ",",
			s->st.events, s->st.errors, s->st.dropped);
	s->ops->stats_json(s, out);
	g_string_append_c(out, '}');
	g_autofree char *key = g_strdup_printf("\"%s\":", name);
	const char *p = strstr(out->str, key);
	if (p == NULL)
		fail_msg("no %s in %s", name, out->str);
	return g_ascii_strtoll(p + strlen(key), NULL, 10);
}

/* ---- tests ---- */

static void
test_new_refused(void **state)
{
	Fixture *f = *state;
	g_autofree char *ok = script(f, "ok", "exit 0\n");
	g_autofree char *noexec = script(f, "noexec", "exit 0\n");
	assert_int_equal(chmod(noexec, 0644), 0);
	g_autofree char *missing = g_build_filename(f->dir, "missing", NULL);
	static const struct {
		int which;
		guint timeout_s, max_running;
		const char *word;
	} bad[] = {{0, 10, 4, "not an absolute path"}, {1, 10, 4, "no such file"},
		   {2, 10, 4, "not a regular file"},   {3, 10, 4, "not executable"},
		   {4, 0, 4, "timeout 0 s"},	       {4, 10, 0, "max_running is 0"}};
	const char *paths[] = {"bin/true", missing, f->dir, noexec, ok};

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		ActionExecConfig c = config(paths[bad[i].which]);
		g_autoptr(GError) err = NULL;
		c.timeout_s = bad[i].timeout_s;
		c.max_running = bad[i].max_running;
		assert_null(action_exec_new(&c, &err));
		assert_non_null(err);
		if (strstr(err->message, bad[i].word) == NULL ||
		    strstr(err->message, paths[bad[i].which]) == NULL)
			fail_msg("%s: %s", bad[i].word, err->message);
	}
	ActionExecConfig c = config(ok);
	g_autoptr(Sink) s = exec_new(&c);
}

/* argv, stdin, the environment (exactly), cwd, its own process group, output logged. */
static void
test_args_stdin_env(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(
	    f, "record",
	    "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > @D@/args\n"
	    "cat > @D@/stdin\n"
	    "tr '\\0' '\\n' < /proc/$$/environ | sort > @D@/env\n"
	    "pwd > @D@/cwd\n"
	    "read -r _ _ _ _ pgid _ < /proc/$$/stat; [ \"$pgid\" = $$ ] && echo own > @D@/pgid\n"
	    "echo 'to stdout'; echo 'to stderr' >&2\n");
	ActionExecConfig c = config(path);
	g_autoptr(Sink) s = exec_new(&c);
	AlertEvent ev = event("192.0.2.10", ALERT_RAISED);
	g_autoptr(GString) json = g_string_new(NULL);

	alert_json(json, &ev, sample_exporter_name, NULL);
	g_string_append_c(json, '\n');
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(action_exec_queued(s), 1);
	assert_int_equal(action_exec_running(s), 0); /* started by the main loop, not write() */
	drive(s, 5000);

	g_autofree char *args = dir_file(f, "args");
	assert_string_equal(args, "raised\n192.0.2.10\nsmtp-fanout\nwarning\n");
	g_autofree char *in = dir_file(f, "stdin");
	assert_string_equal(in, json->str);
	g_autofree char *env = dir_file(f, "env");
	assert_string_equal(env, "LANG=C.UTF-8\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
				 "SPAMFLOW_EVENT=raised\nSPAMFLOW_HOST=192.0.2.10\n"
				 "SPAMFLOW_REASON=smtp-fanout\nSPAMFLOW_SEVERITY=warning\n");
	g_autofree char *cwd = dir_file(f, "cwd");
	assert_string_equal(cwd, "/\n");
	g_autofree char *pgid = dir_file(f, "pgid");
	assert_non_null(pgid);
	g_autofree char *m1 = g_strdup_printf("M exec '%s' raised 192.0.2.10: to stdout", path);
	g_autofree char *m2 = g_strdup_printf("M exec '%s' raised 192.0.2.10: to stderr", path);
	assert_int_equal(logged_count(m1, ""), 1);
	assert_int_equal(logged_count(m2, ""), 1);
	assert_int_equal(stat_of(s, "started"), 1);
	assert_int_equal(stat_of(s, "succeeded"), 1);
	assert_int_equal(stat_of(s, "failed"), 0);
	assert_int_equal(s->st.events, 1);

	/* an IPv6 host and a cleared event: the same arguments in the same places */
	AlertEvent ev6 = event("2001:db8::5", ALERT_RAISED);
	s->ops->write(s, &ev6, &ctx);
	ev6.event = ALERT_CLEARED;
	ev6.severity = ALERT_SEV_INFO;
	drive(s, 5000);
	s->ops->write(s, &ev6, &ctx);
	drive(s, 5000);
	g_free(args);
	args = dir_file(f, "args");
	assert_string_equal(args, "cleared\n2001:db8::5\nsmtp-fanout\ninfo\n");
	assert_int_equal(stat_of(s, "succeeded"), 3);
}

/* A non-zero exit and a death by signal: failed, output logged, one warning a minute. */
static void
test_failures(void **state)
{
	Fixture *f = *state;
	g_autofree char *path =
	    script(f, "fail",
		   "case \"$2\" in\n"
		   "10.0.0.1) echo 'cannot ban'; echo 'no route' >&2; exit 3;;\n"
		   "10.0.0.2) kill -SEGV $$;;\n"
		   "*) exit 0;;\n"
		   "esac\n");
	ActionExecConfig c = config(path);
	c.max_running = 1; /* in this order */
	g_autoptr(Sink) s = exec_new(&c);

	write_event(s, "10.0.0.1", ALERT_RAISED);
	write_event(s, "10.0.0.2", ALERT_RAISED);
	write_event(s, "10.0.0.3", ALERT_RAISED);
	drive(s, 5000);
	assert_int_equal(stat_of(s, "started"), 3);
	assert_int_equal(stat_of(s, "failed"), 2);
	assert_int_equal(stat_of(s, "succeeded"), 1);
	assert_int_equal(stat_of(s, "timed_out"), 0);
	assert_int_equal(s->st.errors, 2);
	assert_int_equal(logged_count("W ", "raised 10.0.0.1 smtp-fanout: exited with status 3"),
			 1);
	/* the second failure within the minute is counted, not logged */
	assert_int_equal(logged_count("W ", "killed by signal"), 0);
	assert_int_equal(logged_count("W ", "exec action"), 1);
	assert_int_equal(logged_count("M ", "raised 10.0.0.1: cannot ban"), 1);
	assert_int_equal(logged_count("M ", "raised 10.0.0.1: no route"), 1);
}

static gboolean
pid_gone(pid_t pid)
{
	g_autofree char *p = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *stat = NULL;
	if (!g_file_get_contents(p, &stat, NULL, NULL))
		return TRUE;
	const char *close = strrchr(stat, ')');
	return close != NULL && close[1] == ' ' && close[2] == 'Z';
}

/* A hanging script: SIGTERM to its group at the timeout (its sleep dies too); one that
 * ignores SIGTERM: SIGKILL 2 s later. */
static void
test_timeout(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(f, "hang",
				       "if [ \"$2\" = 10.0.0.2 ]; then trap '' TERM; fi\n"
				       "sleep 30 & echo $! > @D@/sleep.$2\n"
				       "wait; wait; echo 'after the sleep'\n");
	ActionExecConfig c = config(path);
	c.timeout_s = 1;
	c.max_running = 1;
	g_autoptr(Sink) s = exec_new(&c);

	gint64 t0 = g_get_monotonic_time();
	write_event(s, "10.0.0.1", ALERT_RAISED);
	drive(s, 5000);
	gint64 ms = (g_get_monotonic_time() - t0) / 1000;
	if (ms < 1000 || ms > 2500) /* the upper bound: a loaded CI machine */
		fail_msg("SIGTERM after %" G_GINT64_FORMAT " ms, not ~1000", ms);
	assert_int_equal(stat_of(s, "timed_out"), 1);
	assert_int_equal(stat_of(s, "failed"), 0);
	assert_int_equal(logged_count("W ", "raised 10.0.0.1 smtp-fanout: no exit within 1 s"), 1);
	g_autofree char *sleep1 = dir_file(f, "sleep.10.0.0.1");
	assert_non_null(sleep1);
	pid_t p1 = (pid_t)atoi(sleep1);
	for (int i = 0; i < 100 && !pid_gone(p1); i++)
		g_usleep(10000);
	assert_true(pid_gone(p1));

	t0 = g_get_monotonic_time();
	write_event(s, "10.0.0.2", ALERT_RAISED);
	drive(s, 8000);
	ms = (g_get_monotonic_time() - t0) / 1000;
	if (ms < 3000 || ms > 5000)
		fail_msg("SIGKILL after %" G_GINT64_FORMAT " ms, not ~3000", ms);
	assert_int_equal(stat_of(s, "timed_out"), 2);
	assert_int_equal(stat_of(s, "succeeded"), 0);
	assert_int_equal(stat_of(s, "failed"), 0);
	g_autofree char *sleep2 = dir_file(f, "sleep.10.0.0.2");
	assert_non_null(sleep2);
	pid_t p2 = (pid_t)atoi(sleep2);
	for (int i = 0; i < 100 && !pid_gone(p2); i++)
		g_usleep(10000);
	assert_true(pid_gone(p2));
	assert_int_equal(logged_count("W ", "no exit within"), 1); /* once a minute */
	assert_int_equal(logged_count("M ", "after the sleep"), 0);
}

typedef struct {
	gint64 start, end;
	char host[64];
} Span;

static GArray *
read_spans(Fixture *f)
{
	g_autofree char *text = dir_file(f, "times");
	assert_non_null(text);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	GArray *spans = g_array_new(FALSE, TRUE, sizeof(Span));
	for (guint i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++) {
		Span sp = {0};
		assert_int_equal(sscanf(lines[i], "%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %63s",
					&sp.start, &sp.end, sp.host),
				 3);
		g_array_append_val(spans, sp);
	}
	return spans;
}

/* The most spans that overlap at one instant. */
static guint
overlap(GArray *spans)
{
	guint most = 0;
	for (guint i = 0; i < spans->len; i++) {
		gint64 t = g_array_index(spans, Span, i).start;
		guint n = 0;
		for (guint k = 0; k < spans->len; k++) {
			const Span *o = &g_array_index(spans, Span, k);
			if (o->start <= t && t < o->end)
				n++;
		}
		most = MAX(most, n);
	}
	return most;
}

static void
test_max_running(void **state)
{
	Fixture *f = *state;
	g_autofree char *path =
	    script(f, "slow",
		   "s=$(date +%s%N); sleep 0.3; echo \"$s $(date +%s%N) $1.$2\" >> "
		   "@D@/times\n");
	ActionExecConfig c = config(path);
	c.max_running = 2;
	g_autoptr(Sink) s = exec_new(&c);

	for (int i = 1; i <= 6; i++) {
		g_autofree char *h = g_strdup_printf("10.0.1.%d", i);
		write_event(s, h, ALERT_RAISED);
	}
	assert_int_equal(drive(s, 10000), 2);
	g_autoptr(GArray) spans = read_spans(f);
	assert_int_equal(spans->len, 6);
	assert_int_equal(overlap(spans), 2);
	assert_int_equal(stat_of(s, "succeeded"), 6);
}

/* One host's events run one at a time, in order, however many places are free; the rate
 * limit drops the raised/updated beyond host_limit in a minute, never the cleared. */
static void
test_one_host_serial_and_rate_limit(void **state)
{
	Fixture *f = *state;
	g_autofree char *path =
	    script(f, "slow",
		   "s=$(date +%s%N); sleep 0.1; echo \"$s $(date +%s%N) $1.$2\" >> "
		   "@D@/times\n");
	ActionExecConfig c = config(path);
	c.max_running = 4;
	c.host_limit = 3;
	g_autoptr(Sink) s = exec_new(&c);

	write_event(s, "10.0.2.1", ALERT_RAISED);
	for (int i = 0; i < 4; i++)
		write_event(s, "10.0.2.1", ALERT_UPDATED);
	write_event(s, "10.0.2.2", ALERT_RAISED); /* another host: its own limit */
	write_event(s, "10.0.2.1", ALERT_CLEARED);
	assert_int_equal(stat_of(s, "rate_limited"), 2);
	assert_int_equal(logged_count("W ", "more than 3 runs for the host within 60 s"), 1);
	drive(s, 10000);
	g_autoptr(GArray) spans = read_spans(f);
	assert_int_equal(spans->len, 5);
	GPtrArray *order = g_ptr_array_new();
	for (guint i = 0; i < spans->len; i++) {
		Span *sp = &g_array_index(spans, Span, i);
		if (g_str_has_suffix(sp->host, ".10.0.2.1")) {
			g_ptr_array_add(order, sp);
			for (guint k = 0; k < spans->len; k++) { /* no overlap with its own */
				Span *o = &g_array_index(spans, Span, k);
				if (o != sp && g_str_has_suffix(o->host, ".10.0.2.1"))
					assert_true(o->end <= sp->start || sp->end <= o->start);
			}
		}
	}
	assert_int_equal(order->len, 4);
	const char *expect[] = {"raised", "updated", "updated", "cleared"};
	for (guint i = 0; i < 4; i++) {
		g_autofree char *h = g_strdup_printf("%s.10.0.2.1", expect[i]);
		assert_string_equal(((Span *)g_ptr_array_index(order, i))->host, h);
	}
	g_ptr_array_unref(order);
	/* the other host ran beside them */
	assert_int_equal(overlap(spans), 2);
	assert_int_equal(stat_of(s, "started"), 5);
	assert_int_equal(stat_of(s, "rate_limited"), 2);
}

/* 1,000 events at once (the hot path): write() returns quickly, the queue holds queue +
 * max_running, the rest is dropped and counted, logged once; never more than max_running
 * children. The script never reads its stdin. */
static void
test_burst(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(f, "quick", "echo x >> @D@/runs\n");
	ActionExecConfig c = config(path);
	c.max_running = 2;
	c.queue = 16;
	c.host_limit = 6;
	g_autoptr(Sink) s = exec_new(&c);

	gint64 t0 = g_get_monotonic_time();
	for (int i = 0; i < 1000; i++) {
		g_autofree char *h = g_strdup_printf("10.1.%d.%d", i / 250, i % 250 + 1);
		write_event(s, h, ALERT_RAISED);
	}
	gint64 us = g_get_monotonic_time() - t0;
	print_message("1000 write() calls: %" G_GINT64_FORMAT " us\n", us);
	assert_true(us < 500000); /* ~10 us each; ASan several times that */
	assert_int_equal(action_exec_queued(s), 18);
	assert_int_equal(action_exec_running(s), 0);
	assert_int_equal(stat_of(s, "dropped"), 982);
	assert_int_equal(s->st.dropped, 982);
	assert_int_equal(logged_count("W ", "queue full"), 1);
	assert_true(drive(s, 20000) <= 2);
	g_autofree char *runs = dir_file(f, "runs");
	assert_non_null(runs);
	assert_int_equal(strlen(runs), 18 * 2);
	assert_int_equal(stat_of(s, "started"), 18);
	assert_int_equal(stat_of(s, "succeeded"), 18);
	assert_int_equal(stat_of(s, "queued"), 0);
	assert_int_equal(stat_of(s, "running"), 0);
	/* a second burst after the queue drained: room again, and no second "first" warning */
	for (int i = 0; i < 100; i++) {
		g_autofree char *h = g_strdup_printf("10.2.0.%d", i + 1);
		write_event(s, h, ALERT_RAISED);
	}
	assert_int_equal(stat_of(s, "dropped"), 982 + 82);
	assert_int_equal(logged_count("W ", "queue full"), 1);
	drive(s, 20000);
	assert_int_equal(stat_of(s, "succeeded"), 36);
}

/* A full queue still takes the cleared events (a reserve as big as the queue). */
static void
test_cleared_reserve(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(f, "log", "echo \"$1 $2\" >> @D@/runs\n");
	ActionExecConfig c = config(path);
	c.max_running = 1;
	c.queue = 2;
	g_autoptr(Sink) s = exec_new(&c);

	for (int i = 1; i <= 4; i++) {
		g_autofree char *h = g_strdup_printf("10.3.0.%d", i);
		write_event(s, h, ALERT_RAISED);
	}
	assert_int_equal(stat_of(s, "dropped"), 1); /* 10.3.0.4: 1 place + 2 waiting */
	write_event(s, "10.3.0.1", ALERT_CLEARED);
	write_event(s, "10.3.0.4", ALERT_CLEARED); /* its raised passed the filter */
	assert_int_equal(stat_of(s, "dropped"), 1);
	write_event(s, "10.3.0.2", ALERT_CLEARED); /* beyond the reserve */
	assert_int_equal(stat_of(s, "dropped"), 2);
	write_event(s, "10.3.0.9", ALERT_CLEARED); /* nothing passed for it: filtered */
	assert_int_equal(stat_of(s, "filtered"), 1);
	guint8 h3[16];
	sample_addr(h3, "10.3.0.3");
	action_exec_forget(s, h3, -1); /* spamflowctl forget: its cleared does not run */
	write_event(s, "10.3.0.3", ALERT_CLEARED);
	assert_int_equal(stat_of(s, "filtered"), 2);
	assert_int_equal(stat_of(s, "dropped"), 2);
	drive(s, 10000);
	g_autofree char *runs = dir_file(f, "runs");
	assert_string_equal(runs, "raised 10.3.0.1\nraised 10.3.0.2\nraised 10.3.0.3\n"
				  "cleared 10.3.0.1\ncleared 10.3.0.4\n");
}

/* A script that writes a lot: it does not stall on the pipe; output_lines lines a run are
 * logged, 60 a minute in all, the rest counted. */
static void
test_chatty(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(f, "chatty", "seq 1 100000; seq 1 1000 >&2\n");
	ActionExecConfig c = config(path);
	c.output_lines = 2;
	g_autoptr(Sink) s = exec_new(&c);

	for (int i = 1; i <= 40; i++) {
		g_autofree char *h = g_strdup_printf("10.4.0.%d", i);
		write_event(s, h, ALERT_RAISED);
	}
	drive(s, 20000);
	assert_int_equal(stat_of(s, "succeeded"), 40);
	assert_int_equal(logged_count("M ", ": 1"), 30);
	assert_int_equal(logged_count("M ", ": 2"), 30);
	assert_int_equal(logged_count("M ", ": 3"), 0);
	assert_int_equal(stat_of(s, "output_lines_not_logged"), 20);

	/* a background writer that outlives the script: the run ends with the script, the
	 * main loop is not held, and the writer dies of SIGPIPE once the pipe is closed */
	g_autofree char *bg = script(f, "bg", "yes & echo $! > @D@/yes; sleep 0.1; exit 0\n");
	ActionExecConfig cb = config(bg);
	g_autoptr(Sink) sb = exec_new(&cb);
	gint64 t0 = g_get_monotonic_time();
	write_event(sb, "10.4.1.1", ALERT_RAISED);
	drive(sb, 5000);
	assert_true(g_get_monotonic_time() - t0 < 3 * G_USEC_PER_SEC);
	assert_int_equal(stat_of(sb, "succeeded"), 1);
	g_autofree char *yes = dir_file(f, "yes");
	assert_non_null(yes);
	pid_t py = (pid_t)atoi(yes);
	for (int i = 0; i < 200 && !pid_gone(py); i++)
		g_usleep(10000);
	assert_true(pid_gone(py));
}

/* At exit: flush waits as long as it is told, then kills and reaps; free kills and reaps
 * what is still running (teardown checks that no child is left). */
static void
test_flush_and_free(void **state)
{
	Fixture *f = *state;
	g_autofree char *quick = script(f, "quick", "exit 0\n");
	g_autofree char *hang = script(f, "hang", "sleep 30\n");
	ActionExecConfig c = config(quick);
	c.max_running = 1;
	g_autoptr(Sink) q = exec_new(&c);

	for (int i = 1; i <= 3; i++) {
		g_autofree char *h = g_strdup_printf("10.5.0.%d", i);
		write_event(q, h, ALERT_RAISED);
	}
	assert_int_equal(q->ops->flush(q, 5000), 0);
	assert_int_equal(stat_of(q, "succeeded"), 3);

	c.path = hang;
	Sink *h = exec_new(&c);
	for (int i = 1; i <= 3; i++) {
		g_autofree char *a = g_strdup_printf("10.5.1.%d", i);
		write_event(h, a, ALERT_RAISED);
	}
	gint64 t0 = g_get_monotonic_time();
	assert_int_equal(h->ops->flush(h, 300), 3); /* 1 running (killed) + 2 never started */
	gint64 ms = (g_get_monotonic_time() - t0) / 1000;
	assert_true(ms >= 300 && ms < 1500);
	assert_int_equal(action_exec_running(h), 0);
	assert_int_equal(action_exec_queued(h), 0);
	assert_int_equal(logged_count("W ", "3 runs killed or not started at exit"), 1);
	sink_free(h);

	h = exec_new(&c);
	write_event(h, "10.5.2.1", ALERT_RAISED);
	for (int i = 0; i < 50 && action_exec_running(h) == 0; i++)
		g_main_context_iteration(NULL, FALSE);
	assert_int_equal(action_exec_running(h), 1);
	sink_free(h);
}

/* The program removed after start: a spawn error, counted and logged; nothing runs. */
static void
test_spawn_error(void **state)
{
	Fixture *f = *state;
	g_autofree char *path = script(f, "gone", "exit 0\n");
	ActionExecConfig c = config(path);
	g_autoptr(Sink) s = exec_new(&c);

	assert_int_equal(unlink(path), 0);
	write_event(s, "10.6.0.1", ALERT_RAISED);
	write_event(s, "10.6.0.2", ALERT_RAISED);
	drive(s, 5000);
	assert_int_equal(stat_of(s, "spawn_errors"), 2);
	assert_int_equal(stat_of(s, "started"), 0);
	assert_int_equal(s->st.errors, 2);
	assert_int_equal(logged_count("W ", "raised 10.6.0.1: cannot run: "), 1);
	assert_int_equal(logged_count("W ", "cannot run"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_new_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_args_stdin_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_host_serial_and_rate_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cleared_reserve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chatty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_and_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spawn_error, setup, teardown),
	};
	logged = g_ptr_array_new_with_free_func(g_free);
	g_log_set_writer_func(writer, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
