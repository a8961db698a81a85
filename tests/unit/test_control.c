/* Unit tests for the control socket: request parsing from the shared command table, reply
 * framing (one JSON line, version in every reply), limits fed through control_server_feed()
 * (a line over the limit closes, binary garbage and NUL bytes are answered), and the socket
 * directory checks, and how the client slots are shared: the one kept for root and the
 * daemon's uid, and room made from the user holding the most. Replies are read back with
 * spamflowctl's reader (test_ctl.c). */
#include "control_server.h"
#include "ctl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void
test_parse(void **state)
{
	ControlRequest req;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_true(control_parse("offenders", &req, &err));
	assert_int_equal(req.cmd->id, CONTROL_CMD_OFFENDERS);
	assert_false(control_request_has(&req, "limit"));
	assert_true(control_parse("  offenders\treason=smtp-blocked since=600 limit=5 ", &req, &err));
	assert_int_equal(control_request_uint(&req, "reason", 99), REASON_SMTP_BLOCKED);
	assert_int_equal(control_request_time_ms(&req, "since", 1000000, 0), 1000000 - 600000);
	assert_int_equal(control_request_uint(&req, "limit", 0), 5);
	/* a duration or a time, as history's and host's since= */
	assert_true(control_parse("offenders since=1h", &req, &err));
	assert_int_equal(control_request_time_ms(&req, "since", 10000000, 0), 10000000 - 3600000);
	assert_true(control_parse("offenders since=2026-12-24T08:00:00Z", &req, &err));
	assert_int_equal(control_request_time_ms(&req, "since", 0, 0), 1798099200000);
	assert_true(control_parse("host 192.0.2.7", &req, &err));
	assert_int_equal(req.addr[10], 0xff);
	assert_int_equal(req.addr[15], 7);
	assert_string_equal(req.addr_text, "192.0.2.7");
	assert_true(control_parse("forget 2001:db8::1", &req, &err));
	assert_true(req.cmd->changes);
	assert_int_equal(req.addr[0], 0x20);

	static const char *const bad[] = {
	    "",	 "   ",			"nosuch", "offenders limit=", "offenders limit=-1",
	    "offenders limit=1x", "offenders limit=1 limit=2", "offenders reason=nope",
	    "offenders color=red", "host", "host 300.1.1.1", "host 192.0.2.1 192.0.2.2",
	    "host a=b", "version extra", "forget ::g",
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_clear_error(&err);
		assert_false(control_parse(bad[i], &req, &err));
		assert_true(g_error_matches(err, CONTROL_ERROR, CONTROL_ERROR_USAGE));
	}
	/* every command in the table parses with its usage's required arguments filled */
	guint n;
	const ControlCommand *c = control_commands(&n);
	assert_int_equal(n, CONTROL_CMD_COUNT);
	for (guint i = 0; i < n; i++) {
		g_autofree char *usage = control_command_usage(&c[i]);
		g_autofree char *line = g_strdup_printf(
		    "%s%s%s%s", c[i].name, c[i].n_args > 0 && c[i].args[0].required ? " ::1" : "",
		    c[i].id == CONTROL_CMD_SUPPRESS ? " until=1h" : "",
		    c[i].id == CONTROL_CMD_SUPPRESS ? " note=x" : "");
		assert_true(strncmp(usage, c[i].name, strlen(c[i].name)) == 0);
		assert_true(control_parse(line, &req, NULL));
		assert_ptr_equal(control_command_find(c[i].name), &c[i]);
	}
}

/* suppress: until= as a duration or a time, note= taking the rest of the line. */
static void
test_parse_suppress(void **state)
{
	ControlRequest req;
	g_autoptr(GError) err = NULL;
	(void)state;

	assert_true(control_parse("suppress 10.0.0.5 until=2h note=lab box,  ticket 42  ", &req,
				  &err));
	assert_int_equal(req.cmd->id, CONTROL_CMD_SUPPRESS);
	assert_true(req.cmd->changes);
	assert_false(control_request_has(&req, "reason"));
	assert_false(req.until_absolute);
	assert_int_equal(control_request_uint(&req, "until", 0), 7200);
	assert_string_equal(req.text, "lab box,  ticket 42");
	assert_string_equal(req.addr_text, "10.0.0.5");
	/* arguments in any order before the note; what looks like an argument inside the note
	 * is the note's */
	assert_true(control_parse("suppress until=1h30m reason=smtp-fanout 2001:db8::7 "
				  "note=see reason=x until=y",
				  &req, &err));
	assert_int_equal(control_request_uint(&req, "reason", 99), REASON_SMTP_FANOUT);
	assert_int_equal(control_request_uint(&req, "until", 0), 5400);
	assert_string_equal(req.text, "see reason=x until=y");
	assert_int_equal(req.addr[0], 0x20);
	static const struct {
		const char *t;
		guint64 s;
	} durations[] = {{"90", 90}, {"90s", 90}, {"30m", 1800}, {"7d", 604800},
			 {"1w", 604800}, {"1d2h3m4s", 93784}, {"366d", 366 * 86400}};
	for (guint i = 0; i < G_N_ELEMENTS(durations); i++) {
		guint64 v = 0;
		gboolean abs = TRUE;
		assert_true(control_parse_until(durations[i].t, &v, &abs));
		assert_false(abs);
		assert_int_equal(v, durations[i].s);
	}
	/* times: UTC, an offset, local without a zone (TZ=UTC here), a date alone */
	g_setenv("TZ", "UTC", TRUE);
	tzset();
	static const struct {
		const char *t;
		gint64 ms;
	} times[] = {{"2026-12-24T08:00:00Z", G_GINT64_CONSTANT(1798099200000)},
		     {"2026-12-24T09:00:00+01:00", G_GINT64_CONSTANT(1798099200000)},
		     {"2026-12-24T08:00", G_GINT64_CONSTANT(1798099200000)},
		     {"2026-12-24T08:00Z", G_GINT64_CONSTANT(1798099200000)},
		     {"2026-12-24", G_GINT64_CONSTANT(1798070400000)}};
	for (guint i = 0; i < G_N_ELEMENTS(times); i++) {
		guint64 v = 0;
		gboolean abs = FALSE;
		if (!control_parse_until(times[i].t, &v, &abs))
			fail_msg("'%s' refused", times[i].t);
		assert_true(abs);
		assert_int_equal(v, times[i].ms);
	}
	static const char *const bad[] = {
	    "suppress 10.0.0.5 until=2h",               /* no note */
	    "suppress 10.0.0.5 note=x",                 /* no until */
	    "suppress 10.0.0.5 until=2h note=",         /* empty note */
	    "suppress 10.0.0.5 until=2h note=   ",      /* blank note */
	    "suppress 10.0.0.5 until=0 note=x",         /* nothing */
	    "suppress 10.0.0.5 until=367d note=x",      /* past the longest */
	    "suppress 10.0.0.5 until=2x note=x",        /* no such unit */
	    "suppress 10.0.0.5 until=h note=x",         /* no number */
	    "suppress 10.0.0.5 until=2026-13-01 note=x", /* no such date */
	    "suppress 10.0.0.5 until=2h reason=smtp note=x",
	    "suppress until=2h note=x",                  /* no host */
	    "suppress 10.0.0.5 until=2h note=a\x01b",    /* control byte */
	    "suppress 10.0.0.5 until=2h note=\xff",      /* not UTF-8 */
	    "unsuppress",
	    "unsuppress 10.0.0.5 until=2h",
	    "suppressions 10.0.0.5",
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_clear_error(&err);
		if (control_parse(bad[i], &req, &err))
			fail_msg("accepted '%s'", bad[i]);
		assert_true(g_error_matches(err, CONTROL_ERROR, CONTROL_ERROR_USAGE));
	}
	/* the longest note, and one byte more */
	g_autofree char *longest = g_strnfill(CONTROL_MAX_TEXT, 'n');
	g_autofree char *ok = g_strdup_printf("suppress ::1 until=1h note=%s", longest);
	assert_true(control_parse(ok, &req, NULL));
	assert_int_equal(strlen(req.text), CONTROL_MAX_TEXT);
	g_autofree char *over = g_strdup_printf("%sn", ok);
	assert_false(control_parse(over, &req, NULL));
	assert_true(control_parse("unsuppress 10.0.0.5 reason=lateral-smtp", &req, &err));
	assert_int_equal(control_request_uint(&req, "reason", 99), REASON_LATERAL_SMTP);
	assert_true(control_parse("suppressions limit=3", &req, &err));
	assert_false(req.cmd->changes);
}

static void
test_framing(void **state)
{
	g_autoptr(GString) out = g_string_new(NULL);

	(void)state;
	control_reply_begin(out, "x");
	g_string_append(out, ",\"n\":1");
	control_reply_end(out);
	assert_string_equal(out->str, "{\"ok\":true,\"version\":1,\"command\":\"x\",\"n\":1}\n");
	g_string_truncate(out, 0);
	control_reply_error(out, NULL, "bad \"thing\"\n\xff");
	assert_non_null(strstr(out->str, "{\"ok\":false,\"version\":1,\"error\":\"bad \\\"thing\\\"\\n"));
	assert_null(memchr(out->str, '\n', out->len - 1)); /* one line */
	g_autoptr(JsonNode) j = ctl_reply_parse(out->str, out->len, NULL);
	assert_non_null(j);
	assert_false(ctl_json_bool(j, "ok", TRUE));
	assert_int_equal((int)ctl_json_num(j, "version", 0), 1);
}

static gboolean
fake_run(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer, GString *out,
	 gpointer ctx, GError **error)
{
	(void)ctl;
	(void)peer;
	(*(int *)ctx)++;
	if (req->cmd->id == CONTROL_CMD_CONFIG) {
		g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_FAILED, "no config here");
		return FALSE;
	}
	control_reply_begin(out, req->cmd->name);
	control_reply_end(out);
	return TRUE;
}

/* Every reply line in out parses and is ok:ok. */
static guint
count_replies(const GString *out, guint *n_ok)
{
	g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
	guint n = 0;
	*n_ok = 0;
	for (guint i = 0; lines[i] != NULL; i++) {
		if (lines[i][0] == '\0')
			continue;
		g_autoptr(JsonNode) j = ctl_reply_parse(lines[i], strlen(lines[i]), NULL);
		assert_non_null(j);
		assert_int_equal((int)ctl_json_num(j, "version", 0), CONTROL_PROTOCOL_VERSION);
		*n_ok += ctl_json_bool(j, "ok", FALSE);
		n++;
	}
	return n;
}

static void
test_server_limits(void **state)
{
	g_autofree char *dir = g_dir_make_tmp("spamflow-ctl-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "run", "control.sock", NULL);
	ControlLimits lim;
	int runs = 0;
	ControlOps ops = {.run = fake_run, .daemon_version = "test"};
	ControlPeer root = {.uid = 0}, other = {.uid = 12345};
	g_autoptr(GError) err = NULL;
	guint ok;

	(void)state;
	control_server_limits_defaults(&lim);
	lim.max_request = 64;
	g_autoptr(ControlServer) ctl = control_server_new(path, &lim, NULL, &ops, &runs, &err);
	assert_non_null(ctl);
	struct stat st;
	g_autofree char *sockdir = g_path_get_dirname(path);
	assert_int_equal(stat(sockdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);

	/* lines, split across feeds, CRLF, blank lines ignored */
	g_autoptr(GString) in = g_string_new(NULL);
	g_autoptr(GString) out = g_string_new(NULL);
	assert_true(control_server_feed(ctl, &root, in, (const guint8 *)"vers", 4, out));
	assert_int_equal(out->len, 0);
	assert_true(control_server_feed(ctl, &root, in, (const guint8 *)"ion\r\n\n  \nhelp\nstats\n", 20,
				 out));
	assert_int_equal(count_replies(out, &ok), 3);
	assert_int_equal(ok, 3);
	assert_int_equal(runs, 1);

	/* a failing command, garbage, NUL */
	g_string_truncate(out, 0);
	static const guint8 junk[] = "config\n\x01\x02\xff\xfe\n offenders\0x\nhost 1.2.3.4\n";
	assert_true(control_server_feed(ctl, &root, in, junk, sizeof junk - 1, out));
	assert_int_equal(count_replies(out, &ok), 4);
	assert_int_equal(ok, 1);
	assert_non_null(strstr(out->str, "no config here"));
	assert_non_null(strstr(out->str, "not text"));

	/* changing commands: root yes, others no */
	g_string_truncate(out, 0);
	assert_true(control_server_feed(ctl, &other, in, (const guint8 *)"forget ::1\noffenders\n", 21,
				 out));
	assert_int_equal(count_replies(out, &ok), 2);
	assert_int_equal(ok, 1);
	assert_non_null(strstr(out->str, "permission denied"));
	ControlPeer self = {.uid = geteuid()};
	assert_true(control_server_peer_may_change(&root, 4242));
	assert_true(control_server_peer_may_change(&self, geteuid()));
	assert_false(control_server_peer_may_change(&other, 4242));

	/* over the limit, with or without a newline: error, then close */
	g_string_truncate(out, 0);
	g_autofree char *longline = g_strnfill(65, 'a');
	assert_false(control_server_feed(ctl, &root, in, (const guint8 *)longline, 65, out));
	assert_non_null(strstr(out->str, "longer than 64"));
	g_string_truncate(in, 0);
	g_string_truncate(out, 0);
	g_autofree char *exact = g_strdup_printf("%s\n", longline + 1); /* 64: fine */
	assert_true(control_server_feed(ctl, &root, in, (const guint8 *)exact, 65, out));
	assert_non_null(strstr(out->str, "unknown command"));

	ControlStats cs;
	control_server_get_stats(ctl, &cs);
	assert_int_equal(cs.requests_too_long, 1);
	assert_int_equal(cs.requests_not_text, 2);
	assert_int_equal(cs.requests_denied, 1);

	/* a second server on the same path: in use */
	g_clear_error(&err);
	ControlServer *second = control_server_new(path, &lim, NULL, &ops, &runs, &err);
	assert_null(second);
	assert_non_null(strstr(err->message, "in use"));
	g_clear_pointer(&ctl, control_server_free);
	assert_int_equal(access(path, F_OK), -1); /* removed at exit */

	/* a stale socket is removed; a world-writable directory refused */
	g_clear_error(&err);
	ctl = control_server_new(path, &lim, NULL, &ops, &runs, &err);
	assert_non_null(ctl);
	g_clear_pointer(&ctl, control_server_free);
	assert_int_equal(access(sockdir, F_OK), -1); /* it made the directory: removed too */
	assert_int_equal(mkdir(sockdir, 0700), 0);
	assert_int_equal(chmod(sockdir, 0777), 0);
	g_clear_error(&err);
	assert_null(control_server_new(path, &lim, NULL, &ops, &runs, &err));
	assert_true(g_error_matches(err, CONTROL_ERROR, CONTROL_ERROR_UNSAFE));
	rmdir(sockdir);
	rmdir(dir);
}

/* ---- slots: the reserved one, and room made from the user who holds the most ---- */

typedef struct {
	char *dir;
	ControlServer *ctl;
	int runs;
} Slots;

static void
slots_init(Slots *t, guint max_clients)
{
	g_autofree char *path = NULL;
	ControlLimits lim;
	static const ControlOps ops = {.run = fake_run, .daemon_version = "test"};
	g_autoptr(GError) err = NULL;

	t->dir = g_dir_make_tmp("spamflow-slots-XXXXXX", NULL);
	path = g_build_filename(t->dir, "control.sock", NULL);
	control_server_limits_defaults(&lim);
	lim.max_clients = max_clients;
	t->runs = 0;
	t->ctl = control_server_new(path, &lim, NULL, &ops, &t->runs, &err);
	assert_non_null(t->ctl);
}

static void
slots_clear(Slots *t)
{
	control_server_free(t->ctl);
	(void)g_rmdir(t->dir);
	g_free(t->dir);
}

/* A connection from uid (a socketpair: the server gets one end as if it had accepted it).
 * Returns the test's end; *admitted says whether the server kept it. */
static int
connect_as(Slots *t, uid_t uid, gboolean *admitted)
{
	int sv[2];
	ControlPeer peer = {.uid = uid, .gid = uid, .pid = (pid_t)(1000 + uid % 1000)};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	*admitted = control_server_add_client(t->ctl, sv[0], &peer);
	g_usleep(2000); /* distinct idle times: the first connected is the longest idle */
	return sv[1];
}

/* What the server said before it closed the test's end (NULL when it is still open). */
static char *
closed_with(int fd)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL; /* EAGAIN: open, nothing said */
	buf[n] = '\0';
	return g_strdup(buf);
}

static void
run_loop_a_little(void)
{
	for (int i = 0; i < 20; i++)
		g_main_context_iteration(NULL, FALSE);
}

/* Two users who may not change anything, whoever runs the test. */
#define UID_A (geteuid() == 4242 ? 4244u : 4242u)
#define UID_B (geteuid() == 4243 ? 4245u : 4243u)

static void
test_slots_reserved(void **state)
{
	Slots t;
	gboolean in;
	int a[4], r[3];
	ControlStats st;

	(void)state;
	slots_init(&t, 4);
	/* another user gets 3 of the 4 slots; the 4th is kept for root and the daemon's uid */
	for (int i = 0; i < 3; i++) {
		a[i] = connect_as(&t, UID_A, &in);
		assert_true(in);
	}
	a[3] = connect_as(&t, UID_A, &in);
	assert_false(in);
	g_autofree char *why = closed_with(a[3]);
	assert_non_null(why);
	assert_non_null(strstr(why, "too many clients (4)"));
	r[0] = connect_as(&t, 0, &in);
	assert_true(in);
	/* the daemon's own uid is as good as root (a test run as root: uid 0 again) */
	control_server_get_stats(t.ctl, &st);
	assert_int_equal(st.clients_active, 4);
	assert_int_equal(st.clients_refused, 1);
	assert_int_equal(st.clients_evicted, 0);
	/* full, and the reserved slot in use: root's next client makes room from the user who
	 * holds the most, the longest idle of them: a[1], since a[0] has just asked something */
	assert_int_equal(send(a[0], "version\n", 8, 0), 8);
	run_loop_a_little();
	r[1] = connect_as(&t, geteuid(), &in);
	assert_true(in);
	g_autofree char *evicted = closed_with(a[1]);
	assert_non_null(evicted);
	assert_non_null(strstr(evicted, "closed to make room"));
	g_autofree char *answered = closed_with(a[0]); /* its reply, and still open */
	assert_non_null(answered);
	assert_non_null(strstr(answered, "\"command\":\"version\""));
	assert_null(closed_with(a[0]));
	assert_null(closed_with(a[2]));
	/* a user never closes root's clients: with root holding every slot, refused */
	Slots u;
	int ru[3];
	slots_init(&u, 3);
	for (int i = 0; i < 3; i++) {
		ru[i] = connect_as(&u, 0, &in);
		assert_true(in);
	}
	r[2] = connect_as(&u, UID_A, &in);
	assert_false(in);
	control_server_get_stats(u.ctl, &st);
	assert_int_equal(st.clients_evicted, 0);
	assert_int_equal(st.clients_refused, 1);
	for (int i = 0; i < 3; i++)
		close(ru[i]);
	close(r[2]);
	slots_clear(&u);
	for (int i = 0; i < 4; i++)
		close(a[i]);
	close(r[0]);
	close(r[1]);
	slots_clear(&t);
}

static void
test_slots_evict(void **state)
{
	Slots t;
	gboolean in;
	int a[5], b[3];
	ControlStats st;

	(void)state;
	slots_init(&t, 5);
	/* user A holds every slot a user may have (4 of 5) and idles */
	for (int i = 0; i < 4; i++) {
		a[i] = connect_as(&t, UID_A, &in);
		assert_true(in);
	}
	a[4] = connect_as(&t, UID_A, &in);
	assert_false(in); /* A's own flood is refused, as before */
	/* user B still gets in: A's longest-idle client makes room, and is told why */
	b[0] = connect_as(&t, UID_B, &in);
	assert_true(in);
	g_autofree char *why = closed_with(a[0]);
	assert_non_null(why);
	assert_non_null(strstr(why, "uid "));
	for (int i = 1; i < 4; i++)
		assert_null(closed_with(a[i]));
	/* and a second one: A holds 3, B 1 */
	b[1] = connect_as(&t, UID_B, &in);
	assert_true(in);
	g_autofree char *why2 = closed_with(a[1]);
	assert_non_null(why2);
	/* now A 2, B 2: even shares, B's third is refused and nobody is closed */
	b[2] = connect_as(&t, UID_B, &in);
	assert_false(in);
	assert_null(closed_with(a[2]));
	assert_null(closed_with(a[3]));
	/* the survivors are still served */
	assert_int_equal(send(b[0], "version\n", 8, 0), 8);
	run_loop_a_little();
	char buf[256];
	ssize_t n = recv(b[0], buf, sizeof buf - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"ok\":true"));
	control_server_get_stats(t.ctl, &st);
	assert_int_equal(st.clients_evicted, 2);
	assert_int_equal(st.clients_refused, 2);
	assert_int_equal(st.clients_active, 4);
	g_autoptr(GString) js = g_string_new(NULL);
	control_server_stats_json(t.ctl, js);
	assert_non_null(strstr(js->str, "\"clients_evicted\":2"));
	for (int i = 0; i < 5; i++)
		close(a[i]);
	for (int i = 0; i < 3; i++)
		close(b[i]);
	slots_clear(&t);
}

/* A client that has hung up, its hang-up not yet dispatched (a spamflowctl that just exited),
 * does not hold a slot against a newcomer: nobody is closed or refused for it, and what it
 * sent before leaving still runs. */
static void
test_slots_departed(void **state)
{
	Slots t;
	gboolean in;
	int a[3], r[2];
	ControlStats st;

	(void)state;
	slots_init(&t, 4);
	for (int i = 0; i < 3; i++) {
		a[i] = connect_as(&t, UID_A, &in);
		assert_true(in);
	}
	r[0] = connect_as(&t, 0, &in);
	assert_true(in);
	/* root's client asks and leaves at once; the loop has not run since */
	assert_int_equal(send(r[0], "version\n", 8, 0), 8);
	close(r[0]);
	r[1] = connect_as(&t, 0, &in);
	assert_true(in);
	control_server_get_stats(t.ctl, &st);
	assert_int_equal(st.clients_evicted, 0);
	assert_int_equal(st.clients_refused, 0);
	assert_int_equal(st.clients_active, 4);
	assert_int_equal(st.requests, 1); /* its request was answered before it was freed */
	for (int i = 0; i < 3; i++)
		assert_null(closed_with(a[i]));
	/* a user's departed client makes room for that user too */
	close(a[2]);
	a[2] = connect_as(&t, UID_A, &in);
	assert_true(in);
	control_server_get_stats(t.ctl, &st);
	assert_int_equal(st.clients_evicted, 0);
	assert_int_equal(st.clients_refused, 0);
	for (int i = 0; i < 3; i++)
		close(a[i]);
	close(r[1]);
	slots_clear(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_suppress),
	    cmocka_unit_test(test_framing),
	    cmocka_unit_test(test_server_limits),
	    cmocka_unit_test(test_slots_reserved),
	    cmocka_unit_test(test_slots_evict),
	    cmocka_unit_test(test_slots_departed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
