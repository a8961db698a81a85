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
      {"since", CONTROL_ARG_TIME, FALSE, 0,
       "raised since this time (600 s, 30m, 24h ago, or 2026-12-24T08:00:00Z)"},
      LIMIT_ARG},
     "active offenders, most severe first, then by count"},
    {CONTROL_CMD_HISTORY, "history", FALSE, 5,
     {LIMIT_ARG,
      {"since", CONTROL_ARG_TIME, FALSE, 0,
       "read the history store from this time (30m, 24h, 7d ago, or 2026-12-24T08:00:00Z)"},
      {"until", CONTROL_ARG_TIME, FALSE, 0, "... up to this time (default: now)"},
      {"host", CONTROL_ARG_HOST, FALSE, 0, "only this host's (from the store)"},
      {"reason", CONTROL_ARG_REASON, FALSE, 0, "only this reason's (from the store)"}},
     "alert events and actions, newest first: the recent ones in memory, or with since=, "
     "until=, host= or reason= the history store on disk"},
    {CONTROL_CMD_HOST, "host", FALSE, 3,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"},
      {"since", CONTROL_ARG_TIME, FALSE, 0,
       "add the timeline from the history store since this time (30m, 24h, 7d ago, or "
       "2026-12-24T08:00:00Z)"},
      {"until", CONTROL_ARG_TIME, FALSE, 0, "... up to this time (default: now)"}},
     "everything held about a host: window counts, top destinations, state per reason, "
     "exporters; with since= its timeline: readings per slice, events and actions"},
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
    {CONTROL_CMD_SUPPRESS, "suppress", TRUE, 4,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"},
      {"reason", CONTROL_ARG_REASON, FALSE, 0, "only this reason (default: all)"},
      {"until", CONTROL_ARG_UNTIL, TRUE, 0,
       "a duration (90s, 30m, 2h, 7d, 1w; at most 366d) or a time (2026-12-24T08:00:00Z, "
       "local without a zone)"},
      {"note", CONTROL_ARG_TEXT, TRUE, 0, "why, for the log and the next admin (the rest of "
					  "the line)"}},
     "keep a host from raising alerts until a time; it is still tracked and shown"},
    {CONTROL_CMD_UNSUPPRESS, "unsuppress", TRUE, 2,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"},
      {"reason", CONTROL_ARG_REASON, FALSE, 0, "only this reason's suppression"}},
     "remove a host's suppressions (all, or the one of a reason)"},
    {CONTROL_CMD_SUPPRESSIONS, "suppressions", FALSE, 1, {LIMIT_ARG},
     "the suppressions in force, by host"},
    {CONTROL_CMD_QUARANTINE, "quarantine", FALSE, 0, {{0}},
     "the hosts in the nftables quarantine set, with the time left and why"},
    {CONTROL_CMD_RELEASE, "release", TRUE, 1,
     {{"ADDR", CONTROL_ARG_ADDR, TRUE, 0, "the host"}},
     "take a host out of the quarantine set now; it stays out until its offence clears"},
    {CONTROL_CMD_FOLLOW, "follow", FALSE, 0, {{0}},
     "stream alert events and actions as they happen, one JSON line each, until the client "
     "closes (a client that does not keep up is cut)"},
    {CONTROL_CMD_CLUSTER, "cluster", FALSE, 0, {{0}},
     "a cluster's nodes, partitions with their owners and lag, and the bus (doc/cluster.md)"},
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
		const char *what = a->type == CONTROL_ARG_REASON	? "R"
				   : a->type == CONTROL_ARG_HOST	? "ADDR"
				   : a->type == CONTROL_ARG_UNTIL || a->type == CONTROL_ARG_TIME
				       ? "DURATION|TIME"
				   : a->type == CONTROL_ARG_TEXT	? "TEXT"
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

/* "1h30m", "90", "2d" -> seconds */
static gboolean
parse_duration(const char *t, guint64 *out)
{
	guint64 total = 0;
	if (*t == '\0')
		return FALSE;
	while (*t != '\0') {
		guint64 n = 0, mult;
		const char *start = t;
		while (g_ascii_isdigit(*t)) {
			if (n > G_MAXUINT32)
				return FALSE;
			n = n * 10 + (guint64)(*t++ - '0');
		}
		if (t == start)
			return FALSE;
		switch (*t) {
		case '\0':
			mult = 1;
			break;
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case 'w':
			mult = 7 * 86400;
			break;
		default:
			return FALSE;
		}
		if (*t != '\0')
			t++;
		total += n * mult;
		if (total > CONTROL_MAX_UNTIL_S)
			return FALSE;
	}
	*out = total;
	return TRUE;
}

gboolean
control_parse_until(const char *text, guint64 *value, gboolean *absolute)
{
	if (strchr(text, '-') == NULL) {
		*absolute = FALSE;
		return parse_duration(text, value) && *value > 0;
	}
	/* ISO 8601 as glib reads it, with the forms it refuses but people write: a date
	 * alone (midnight) and minutes without seconds */
	GString *s = g_string_new(text);
	const char *tpos = strchr(text, 'T');
	if (tpos == NULL && s->len == 10)
		g_string_append(s, "T00:00:00");
	else if (tpos != NULL && strlen(tpos + 1) >= 5 && tpos[3] == ':' &&
		 (tpos[6] == '\0' || tpos[6] == 'Z' || tpos[6] == '+' || tpos[6] == '-'))
		g_string_insert(s, (gssize)(tpos - text) + 6, ":00");
	GTimeZone *tz = g_time_zone_new_local();
	GDateTime *dt = g_date_time_new_from_iso8601(s->str, tz);
	g_time_zone_unref(tz);
	g_string_free(s, TRUE);
	if (dt == NULL)
		return FALSE;
	gint64 unix_s = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	if (unix_s <= 0 || unix_s > G_GINT64_CONSTANT(1) << 40)
		return FALSE;
	*absolute = TRUE;
	*value = (guint64)unix_s * 1000;
	return TRUE;
}

/* The TEXT argument `name=` of c, if the line has one: where it starts (its word) and its
 * value, the rest of the line without trailing blanks. */
static const char *
find_text_arg(const char *line, const ControlCommand *c, const char **value)
{
	for (guint i = 0; i < c->n_args; i++) {
		if (c->args[i].type != CONTROL_ARG_TEXT)
			continue;
		gsize n = strlen(c->args[i].name);
		for (const char *p = line; (p = strstr(p, c->args[i].name)) != NULL; p++) {
			if (p > line && (p[-1] == ' ' || p[-1] == '\t') && p[n] == '=') {
				*value = p + n + 1;
				return p;
			}
		}
	}
	return NULL;
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
	g_autofree char *head = g_strdup(line);
	const ControlCommand *c = NULL;
	guint npos = 0;

	memset(req, 0, sizeof *req);
	req->max_reply = G_MAXSIZE;
	/* a TEXT argument takes the rest of the line: cut it off before splitting words */
	{
		g_auto(GStrv) first = g_strsplit_set(g_strchug(head), " \t", 2);
		const ControlCommand *fc = first[0] != NULL ? control_command_find(first[0]) : NULL;
		const char *value = NULL;
		const char *at = fc != NULL ? find_text_arg(head, fc, &value) : NULL;
		if (at != NULL) {
			int i = 0;
			g_autofree char *v = g_strchomp(g_strdup(value));
			for (guint k = 0; k < fc->n_args; k++)
				if (fc->args[k].type == CONTROL_ARG_TEXT)
					i = (int)k;
			gsize vlen = strlen(v);
			gboolean ctrl = FALSE;
			for (gsize k = 0; k < vlen; k++)
				ctrl |= (guchar)v[k] < 0x20 || v[k] == 0x7f;
			if (vlen == 0 || vlen > CONTROL_MAX_TEXT || ctrl ||
			    !g_utf8_validate(v, (gssize)vlen, NULL)) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: %s: 1 to %d bytes of text, no control characters",
					    fc->name, fc->args[i].name, CONTROL_MAX_TEXT);
				return FALSE;
			}
			memcpy(req->text, v, vlen + 1);
			req->has[i] = TRUE;
			head[at - head] = '\0';
		}
	}
	g_auto(GStrv) words = g_strsplit_set(head, " \t", -1);
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
		if (i < 0 || c->args[i].type == CONTROL_ARG_ADDR ||
		    c->args[i].type == CONTROL_ARG_TEXT) {
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
		if (a->type == CONTROL_ARG_HOST) {
			if (strlen(v) >= sizeof req->addr_text || !control_parse_addr(v, req->addr)) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: %s: '%.64s' is not an IPv4 or IPv6 address", c->name,
					    name, v);
				return FALSE;
			}
			g_strlcpy(req->addr_text, v, sizeof req->addr_text);
		} else if (a->type == CONTROL_ARG_UNTIL || a->type == CONTROL_ARG_TIME) {
			gboolean abs = FALSE;
			if (!control_parse_until(v, &req->value[i], &abs)) {
				g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
					    "%s: %s: '%.64s' is neither a duration (90s, 30m, 2h, "
					    "7d, 1w; at most 366d) nor a time (2026-12-24T08:00:00Z)",
					    c->name, name, v);
				return FALSE;
			}
			req->absolute[i] = abs;
			if (a->type == CONTROL_ARG_UNTIL)
				req->until_absolute = abs;
		} else if (a->type == CONTROL_ARG_UINT) {
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

gint64
control_request_time_ms(const ControlRequest *req, const char *name, gint64 now_ms, gint64 def)
{
	int i = req->cmd != NULL ? arg_index(req->cmd, name) : -1;
	if (i < 0 || !req->has[i])
		return def;
	if (req->absolute[i])
		return (gint64)req->value[i];
	return now_ms - (gint64)req->value[i] * 1000;
}

void
control_reply_begin(GString *out, const char *command)
{
	g_string_append_printf(out, "{\"ok\":true,\"version\":%d,\"command\":",
			       CONTROL_PROTOCOL_VERSION);
	json_quote(out, command);
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
		json_quote(out, command);
	}
	g_string_append(out, ",\"error\":");
	/* the message may quote client bytes: keep only valid UTF-8 */
	g_autofree char *valid = g_utf8_make_valid(message, -1);
	json_quote(out, valid);
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
		json_quote(out, c[i].name);
		g_string_append(out, ",\"usage\":");
		json_quote(out, usage);
		g_string_append_printf(out, ",\"changes\":%s,\"help\":",
				       c[i].changes ? "true" : "false");
		json_quote(out, c[i].help);
		g_string_append(out, ",\"args\":[");
		for (guint j = 0; j < c[i].n_args; j++) {
			g_string_append(out, j > 0 ? ",{\"name\":" : "{\"name\":");
			json_quote(out, c[i].args[j].name);
			g_string_append(out, ",\"help\":");
			json_quote(out, c[i].args[j].help);
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
	json_quote(out, daemon_version != NULL ? daemon_version : "");
	control_reply_end(out);
}
