/* spamflowctl: asks a running spamflowd over its control socket. Glue only: the command line
 * is checked with the protocol's own command table (control_parse), the request goes through
 * ctl_request(), and the reply is printed as the daemon sent it (--json) or as tables. */
#include "control.h"
#include "ctl.h"
#include "spamflow-config.h"

#include <stdio.h>

enum { EXIT_OK = 0, EXIT_DAEMON = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define MAX_REPLY ((gsize)256 * 1024 * 1024)

static char *
commands_help(void)
{
	guint n;
	const ControlCommand *c = control_commands(&n);
	GString *s = g_string_new("Commands:\n");
	gsize w = 0;

	for (guint i = 0; i < n; i++) {
		g_autofree char *u = control_command_usage(&c[i]);
		w = MAX(w, strlen(u));
	}
	for (guint i = 0; i < n; i++) {
		g_autofree char *u = control_command_usage(&c[i]);
		g_string_append_printf(s, "  %-*s  %s%s\n", (int)w, u, c[i].changes ? "(root) " : "",
				       c[i].help);
	}
	g_string_append(s, "\nExit status: 0 ok, 1 the daemon answered with an error, 2 usage, "
			   "3 cannot connect.");
	return g_string_free(s, FALSE);
}

/* `follow`: the first line is the reply (ok or not), then one line per event or action,
 * until interrupted (SIGINT ends the process) or the daemon closes. */
typedef struct {
	gboolean json;
	gboolean started, failed;
} FollowCtx;

static gboolean
follow_line(const char *line, gsize len, gpointer data)
{
	FollowCtx *fc = data;
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonNode) r = ctl_reply_parse(line, len, &err);
	if (r == NULL) {
		g_printerr("spamflowctl: %s\n", err->message);
		fc->failed = TRUE;
		return FALSE;
	}
	if (!fc->started) {
		fc->started = TRUE;
		if (!ctl_json_bool(r, "ok", FALSE)) {
			g_printerr("spamflowctl: follow: %s\n", ctl_json_str(r, "error", "refused"));
			fc->failed = TRUE;
			return FALSE;
		}
		return TRUE;
	}
	if (fc->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		g_autoptr(GString) out = g_string_new(NULL);
		ctl_render_follow(out, r);
		fwrite(out->str, 1, out->len, stdout);
	}
	return fflush(stdout) == 0;
}

int
main(int argc, char **argv)
{
	g_autofree char *socket_path = NULL;
	gboolean json = FALSE, version = FALSE;
	const GOptionEntry entries[] = {
	    {"socket", 's', 0, G_OPTION_ARG_FILENAME, &socket_path,
	     "Control socket (default " CONTROL_DEFAULT_SOCKET ")", "SOCKET"},
	    {"json", 'j', 0, G_OPTION_ARG_NONE, &json,
	     "Print the daemon's JSON reply line unchanged", NULL},
	    {"version", 'V', 0, G_OPTION_ARG_NONE, &version, "Print spamflowctl's version", NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) octx = g_option_context_new("COMMAND [ARGS]");
	g_autoptr(GError) err = NULL;
	g_autofree char *help = commands_help();

	g_option_context_set_summary(octx, "Asks a running spamflowd: who is spamming now, and why.");
	g_option_context_set_description(octx, help);
	g_option_context_add_main_entries(octx, entries, NULL);
	/* options stop at the command: its arguments are the daemon's */
	g_option_context_set_strict_posix(octx, TRUE);
	if (!g_option_context_parse(octx, &argc, &argv, &err)) {
		g_printerr("spamflowctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	if (version) {
		printf("spamflowctl %s (control protocol %d)\n", SPAMFLOW_VERSION,
		       CONTROL_PROTOCOL_VERSION);
		return EXIT_OK;
	}
	if (argc < 2) {
		g_autofree char *usage = g_option_context_get_help(octx, TRUE, NULL);
		g_printerr("%s", usage);
		return EXIT_USAGE;
	}
	g_autofree char *line = g_strjoinv(" ", argv + 1);
	ControlRequest req;
	if (!control_parse(line, &req, &err)) {
		g_printerr("spamflowctl: %s\n", err->message);
		return EXIT_USAGE;
	}
	const char *path = socket_path != NULL ? socket_path : CONTROL_DEFAULT_SOCKET;
	if (req.cmd->id == CONTROL_CMD_FOLLOW) {
		FollowCtx fc = {.json = json};
		if (!ctl_follow(path, line, follow_line, &fc, &err)) {
			g_printerr("spamflowctl: %s\n", err->message);
			return g_error_matches(err, CTL_ERROR, CTL_ERROR_CONNECT) ? EXIT_CONNECT
										  : EXIT_DAEMON;
		}
		return fc.failed ? EXIT_DAEMON : EXIT_OK;
	}
	g_autoptr(GString) reply = g_string_new(NULL);
	if (!ctl_request(path, line, MAX_REPLY, reply, &err)) {
		g_printerr("spamflowctl: %s\n", err->message);
		return g_error_matches(err, CTL_ERROR, CTL_ERROR_CONNECT) ? EXIT_CONNECT
									  : EXIT_DAEMON;
	}
	g_autoptr(JsonNode) r = ctl_reply_parse(reply->str, reply->len, &err);
	if (r == NULL) {
		g_printerr("spamflowctl: %s\n", err->message);
		return EXIT_DAEMON;
	}
	gboolean ok = ctl_json_bool(r, "ok", FALSE);
	if (json) {
		fwrite(reply->str, 1, reply->len, stdout);
		fputc('\n', stdout);
	} else if (!ok) {
		g_printerr("spamflowctl: %s: %s\n", req.cmd->name,
			   ctl_json_str(r, "error", "the daemon answered with an error"));
	} else {
		g_autoptr(GString) out = g_string_new(NULL);
		ctl_render(out, req.cmd->name, r, ctl_terminal_width());
		fwrite(out->str, 1, out->len, stdout);
	}
	if (fflush(stdout) != 0)
		return EXIT_DAEMON;
	return ok ? EXIT_OK : EXIT_DAEMON;
}
