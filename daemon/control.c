/* The control protocol: the command table (shared by spamflowd's dispatcher, spamflowctl's
 * argument check and `help`), request parsing, and reply framing. Depends on glib and the
 * alert names only, so that spamflowctl links this and nothing else of the daemon. */
#include "control.h"

#include "json.h"

#include <arpa/inet.h>
#include <string.h>

/* clang-format off */
G_DEFINE_QUARK(control-error-quark, control_error)
/* clang-format on */

#define LIMIT_ARG {"limit", CONTROL_ARG_UINT, FALSE, 1000000, "at most N entries"}

static const ControlCommand commands[] = {
    {CONTROL_CMD_OFFENDERS, "offenders", FALSE, 3,
     {{"reason", CONTROL_ARG_REASON, FALSE, 0, "only this reason"},
      {"since", CONTROL_ARG_UINT, FALSE, 100000000, "raised in the last SECONDS"},
      LIMIT_ARG},
     "active offenders, most severe first, then by count"},
    {CONTROL_CMD_HISTORY, "history", FALSE, 1, {LIMIT_ARG}, "recent alert events, newest first"},
    {CONTROL_CMD_HOST, "host", FALSE, 1,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"}},
     "everything held about a host: window counts, top destinations, state per reason, "
     "exporters"},
    {CONTROL_CMD_EXPORTERS, "exporters", FALSE, 0, {{0}},
     "per-exporter counters, templates, sampling, sequence loss, last seen"},
    {CONTROL_CMD_STATS, "stats", FALSE, 0, {{0}},
     "every counter: receive, kernel drops, decode, analyzer, sinks, control"},
    {CONTROL_CMD_CONFIG, "config", FALSE, 0, {{0}}, "the effective configuration"},
    {CONTROL_CMD_RELOAD, "reload", TRUE, 0, {{0}},
     "re-read the configuration file; a broken one is refused and the old one kept"},
    {CONTROL_CMD_FORGET, "forget", TRUE, 1,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"}},
     "drop a host's windows and offenders (after it was cleaned)"},
    {CONTROL_CMD_HELP, "help", FALSE, 0, {{0}}, "the commands"},
    {CONTROL_CMD_VERSION, "version", FALSE, 0, {{0}}, "daemon and protocol version"},
};
G_STATIC_ASSERT(G_N_ELEMENTS(commands) == CONTROL_CMD_COUNT);

const ControlCommand *
control_commands(guint *n)
{
	*n = G_N_ELEMENTS(commands);
	return commands;
}

const ControlCommand *
control_command_find(const char *name)
{
	for (guint i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

char *
control_command_usage(const ControlCommand *c)
{
	GString *s = g_string_new(c->name);

	for (guint i = 0; i < c->n_args; i++) {
		const ControlArg *a = &c->args[i];
		const char *what = a->type == CONTROL_ARG_REASON ? "R"
				   : g_strcmp0(a->name, "since") == 0 ? "SECONDS"
								       : "N";
		if (a->type == CONTROL_ARG_ADDR)
			g_string_append_printf(s, a->required ? " %s" : " [%s]", a->name);
		else
			g_string_append_printf(s, a->required ? " %s=%s" : " [%s=%s]", a->name,
					       what);
	}
	return g_string_free(s, FALSE);
}

gboolean
control_parse_addr(const char *text, guint8 out[16])
{
	guint8 v4[4];

	if (strchr(text, ':') == NULL) {
		if (inet_pton(AF_INET, text, v4) != 1)
			return FALSE;
		/* IPv4-mapped (::ffff:a.b.c.d), as flow records hold IPv4 addresses */
		memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return TRUE;
	}
	return inet_pton(AF_INET6, text, out) == 1;
}

static int
arg_index(const ControlCommand *c, const char *name)
{
	for (guint i = 0; i < c->n_args; i++)
		if (strcmp(c->args[i].name, name) == 0)
			return (int)i;
	return -1;
}

gboolean
control_parse(const char *line, ControlRequest *req, GError **error)
{
	g_auto(GStrv) words = g_strsplit_set(line, " \t", -1);
	const ControlCommand *c = NULL;
	guint npos = 0;

	memset(req, 0, sizeof *req);
	req->max_reply = G_MAXSIZE;
	for (guint w = 0; words[w] != NULL; w++) {
		const char *word = words[w];
		if (word[0] == '\0')
			continue;
		if (c == NULL) {
			c = control_command_find(word);
			if (c == NULL) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "unknown command '%.64s' (try help)", word);
				return FALSE;
			}
			req->cmd = c;
			continue;
		}
		const char *eq = strchr(word, '=');
		int i;
		if (eq == NULL) {
			/* positional: the next ADDR argument */
			i = -1;
			for (guint j = 0, seen = 0; j < c->n_args; j++)
				if (c->args[j].type == CONTROL_ARG_ADDR && seen++ == npos)
					i = (int)j;
			if (i < 0) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: unexpected argument '%.64s'", c->name, word);
				return FALSE;
			}
			npos++;
			if (strlen(word) >= sizeof req->addr_text ||
			    !control_parse_addr(word, req->addr)) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: '%.64s' is not an IPv4 or IPv6 address", c->name,
					    word);
				return FALSE;
			}
			g_strlcpy(req->addr_text, word, sizeof req->addr_text);
			req->has[i] = TRUE;
			continue;
		}
		g_autofree char *name = g_strndup(word, (gsize)(eq - word));
		const char *v = eq + 1;
		i = arg_index(c, name);
		if (i < 0 || c->args[i].type == CONTROL_ARG_ADDR) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "%s: unknown argument '%.64s'", c->name, name);
			return FALSE;
		}
		if (req->has[i]) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "%s: '%s' given twice", c->name, name);
			return FALSE;
		}
		const ControlArg *a = &c->args[i];
		if (a->type == CONTROL_ARG_UINT) {
			guint64 n;
			if (!g_ascii_string_to_unsigned(v, 10, 0, a->max, &n, NULL)) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: %s: '%.64s' is not a number 0..%" G_GUINT64_FORMAT,
					    c->name, name, v, a->max);
				return FALSE;
			}
			req->value[i] = n;
		} else {
			AlertReason r;
			if (!alert_reason_from_name(v, &r)) {
				GString *all = g_string_new(NULL);
				for (guint k = 0; k < REASON_COUNT; k++)
					g_string_append_printf(all, "%s%s", k > 0 ? ", " : "",
							       alert_reason_name(k));
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: reason '%.64s' is not one of %s", c->name, v,
					    all->str);
				g_string_free(all, TRUE);
				return FALSE;
			}
			req->value[i] = r;
		}
		req->has[i] = TRUE;
	}
	if (c == NULL) {
		g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "empty request (try help)");
		return FALSE;
	}
	for (guint i = 0; i < c->n_args; i++) {
		if (c->args[i].required && !req->has[i]) {
			g_autofree char *usage = control_command_usage(c);
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "%s: missing %s (usage: %s)", c->name, c->args[i].name, usage);
			return FALSE;
		}
	}
	return TRUE;
}

guint64
control_request_uint(const ControlRequest *req, const char *name, guint64 def)
{
	int i = req->cmd != NULL ? arg_index(req->cmd, name) : -1;
	return i >= 0 && req->has[i] ? req->value[i] : def;
}

gboolean
control_request_has(const ControlRequest *req, const char *name)
{
	int i = req->cmd != NULL ? arg_index(req->cmd, name) : -1;
	return i >= 0 && req->has[i];
}

void
control_reply_begin(GString *out, const char *command)
{
	g_string_append_printf(out, "{\"ok\":true,\"version\":%d,\"command\":",
			       CONTROL_PROTOCOL_VERSION);
	json_string(out, command);
}

void
control_reply_end(GString *out)
{
	g_string_append(out, "}\n");
}

void
control_reply_error(GString *out, const char *command, const char *message)
{
	g_string_append_printf(out, "{\"ok\":false,\"version\":%d", CONTROL_PROTOCOL_VERSION);
	if (command != NULL) {
		g_string_append(out, ",\"command\":");
		json_string(out, command);
	}
	g_string_append(out, ",\"error\":");
	/* the message may quote client bytes: keep only valid UTF-8 */
	g_autofree char *valid = g_utf8_make_valid(message, -1);
	json_string(out, valid);
	g_string_append(out, "}\n");
}

void
control_reply_help(GString *out)
{
	guint n;
	const ControlCommand *c = control_commands(&n);

	control_reply_begin(out, "help");
	g_string_append(out, ",\"commands\":[");
	for (guint i = 0; i < n; i++) {
		g_autofree char *usage = control_command_usage(&c[i]);
		g_string_append(out, i > 0 ? ",{\"name\":" : "{\"name\":");
		json_string(out, c[i].name);
		g_string_append(out, ",\"usage\":");
		json_string(out, usage);
		g_string_append_printf(out, ",\"changes\":%s,\"help\":",
				       c[i].changes ? "true" : "false");
		json_string(out, c[i].help);
		g_string_append(out, ",\"args\":[");
		for (guint j = 0; j < c[i].n_args; j++) {
			g_string_append(out, j > 0 ? ",{\"name\":" : "{\"name\":");
			json_string(out, c[i].args[j].name);
			g_string_append(out, ",\"help\":");
			json_string(out, c[i].args[j].help);
			g_string_append_c(out, '}');
		}
		g_string_append(out, "]}");
	}
	g_string_append_c(out, ']');
	control_reply_end(out);
}

void
control_reply_version(GString *out, const char *daemon_version)
{
	control_reply_begin(out, "version");
	g_string_append_printf(out, ",\"protocol\":%d,\"daemon\":", CONTROL_PROTOCOL_VERSION);
	json_string(out, daemon_version != NULL ? daemon_version : "");
	control_reply_end(out);
}
