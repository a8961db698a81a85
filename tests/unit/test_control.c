/* Unit tests for the control socket: request parsing from the shared command table, reply
 * framing (one JSON line, version in every reply), limits fed through control_server_feed()
 * (a line over the limit closes, binary garbage and NUL bytes are answered), and the socket
 * directory checks. Replies are read back with spamflowctl's reader (test_ctl.c). */
#include "control_server.h"
#include "ctl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
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
	assert_int_equal(control_request_uint(&req, "since", 0), 600);
	assert_int_equal(control_request_uint(&req, "limit", 0), 5);
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
		    "%s%s", c[i].name, c[i].n_args > 0 && c[i].args[0].required ? " ::1" : "");
		assert_true(strncmp(usage, c[i].name, strlen(c[i].name)) == 0);
		assert_true(control_parse(line, &req, NULL));
		assert_ptr_equal(control_command_find(c[i].name), &c[i]);
	}
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_framing),
	    cmocka_unit_test(test_server_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
