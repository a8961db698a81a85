/* spamflowctl's library: one request and one reply line over the control socket, the reply
 * read with json-glib (size and depth bounded first: the reply is trusted no more than any
 * input), and the renderers that make tables for people out of the daemon's JSON replies. */
#include "ctl.h"
#include "json.h"

#include "alert.h"

#include <errno.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* clang-format off */
G_DEFINE_QUARK(ctl-error-quark, ctl_error)
/* clang-format on */

/* ---- reading the reply ---- */

JsonNode *
ctl_reply_parse(const char *text, gsize len, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(GError) err = NULL;
	JsonNode *root;

	if (json_nesting(text, len, CTL_REPLY_MAX_DEPTH) > CTL_REPLY_MAX_DEPTH) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_REPLY,
			    "reply is not JSON: nested deeper than %d", CTL_REPLY_MAX_DEPTH);
		return NULL;
	}
	if (len > 0 && !json_parser_load_from_data(parser, text, (gssize)len, &err)) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_REPLY, "reply is not JSON: %s",
			    err->message);
		return NULL;
	}
	root = len > 0 ? json_parser_steal_root(parser) : NULL;
	if (root == NULL)
		g_set_error_literal(error, CTL_ERROR, CTL_ERROR_REPLY, "reply is not JSON: empty");
	return root;
}

static gboolean
is_value(JsonNode *v, GType type)
{
	return v != NULL && JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == type;
}

static gboolean
is_number(JsonNode *v)
{
	return is_value(v, G_TYPE_INT64) || is_value(v, G_TYPE_DOUBLE);
}

JsonNode *
ctl_json_get(JsonNode *j, const char *key)
{
	if (j == NULL || !JSON_NODE_HOLDS_OBJECT(j))
		return NULL;
	return json_object_get_member(json_node_get_object(j), key);
}

JsonNode *
ctl_json_path(JsonNode *j, const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, ".", -1);
	for (guint i = 0; parts[i] != NULL && j != NULL; i++)
		j = ctl_json_get(j, parts[i]);
	return j;
}

double
ctl_json_num(JsonNode *j, const char *path, double def)
{
	JsonNode *v = ctl_json_path(j, path);
	/* integers as doubles too: the renderers print "%.0f" */
	return is_number(v) ? json_node_get_double(v) : def;
}

const char *
ctl_json_str(JsonNode *j, const char *path, const char *def)
{
	JsonNode *v = ctl_json_path(j, path);
	return is_value(v, G_TYPE_STRING) ? json_node_get_string(v) : def;
}

gboolean
ctl_json_bool(JsonNode *j, const char *path, gboolean def)
{
	JsonNode *v = ctl_json_path(j, path);
	return is_value(v, G_TYPE_BOOLEAN) ? json_node_get_boolean(v) : def;
}

guint
ctl_json_len(JsonNode *j)
{
	if (j != NULL && JSON_NODE_HOLDS_ARRAY(j))
		return json_array_get_length(json_node_get_array(j));
	if (j != NULL && JSON_NODE_HOLDS_OBJECT(j))
		return json_object_get_size(json_node_get_object(j));
	return 0;
}

JsonNode *
ctl_json_at(JsonNode *j, guint i)
{
	if (j == NULL || !JSON_NODE_HOLDS_ARRAY(j) || i >= ctl_json_len(j))
		return NULL;
	return json_array_get_element(json_node_get_array(j), i);
}

/* ---- the connection ---- */

/* A connected socket to the daemon, or -1 with error set (with a hint for the usual
 * causes). */
static int
ctl_connect(const char *socket_path, GError **error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(socket_path) >= sizeof sa.sun_path) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_CONNECT, "cannot connect to %s: path too long",
			    socket_path);
		return -1;
	}
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, CTL_ERROR, CTL_ERROR_CONNECT,
			    "cannot connect to %s: %s(%s)", socket_path,
			    e == ENOENT || e == ECONNREFUSED ? "is spamflowd running? "
			    : e == EACCES			? "are you in the socket's group? "
							: "",
			    g_strerror(e));
		return -1;
	}
	return fd;
}

/* line and a newline; FALSE when not all of it went (the daemon may have said why before
 * closing: the caller reads on) */
static gboolean
send_line(int fd, const char *line)
{
	g_autofree char *msg = g_strconcat(line, "\n", NULL);
	gsize off = 0, len = strlen(msg);
	while (off < len) {
		ssize_t n = send(fd, msg + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FALSE;
		off += (gsize)n;
	}
	return TRUE;
}

gboolean
ctl_request(const char *socket_path, const char *line, gsize max_reply, GString *reply,
	    GError **error)
{
	int fd = ctl_connect(socket_path, error);

	if (fd < 0)
		return FALSE;
	(void)send_line(fd, line); /* a refusal is read below */
	g_string_truncate(reply, 0);
	for (;;) {
		char buf[65536];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			g_set_error(error, CTL_ERROR, CTL_ERROR_IO, "%s: receive: %s", socket_path,
				    g_strerror(errno));
			close(fd);
			return FALSE;
		}
		if (n == 0) {
			close(fd);
			g_set_error(error, CTL_ERROR, CTL_ERROR_IO,
				    "%s: the daemon closed the connection without a reply",
				    socket_path);
			return FALSE;
		}
		const char *nl = memchr(buf, '\n', (gsize)n);
		g_string_append_len(reply, buf, nl != NULL ? nl - buf : n);
		if (nl != NULL)
			break;
		if (reply->len > max_reply) {
			close(fd);
			g_set_error(error, CTL_ERROR, CTL_ERROR_REPLY,
				    "%s: reply longer than %" G_GSIZE_FORMAT " bytes", socket_path,
				    max_reply);
			return FALSE;
		}
	}
	close(fd);
	return TRUE;
}

gboolean
ctl_follow(const char *socket_path, const char *line, CtlLineFunc fn, gpointer data,
	   GError **error)
{
	int fd = ctl_connect(socket_path, error);

	if (fd < 0)
		return FALSE;
	if (!send_line(fd, line)) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_IO, "%s: send: %s", socket_path,
			    g_strerror(errno));
		close(fd);
		return FALSE;
	}
	g_autoptr(GString) buf = g_string_new(NULL);
	for (;;) {
		char chunk[65536];
		ssize_t n = recv(fd, chunk, sizeof chunk, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error(error, CTL_ERROR, CTL_ERROR_IO, "%s: %s", socket_path,
				    n == 0 ? "the daemon closed the stream" : g_strerror(errno));
			close(fd);
			return FALSE;
		}
		g_string_append_len(buf, chunk, n);
		char *nl;
		while ((nl = memchr(buf->str, '\n', buf->len)) != NULL) {
			gsize len = (gsize)(nl - buf->str);
			gboolean go = fn(buf->str, len, data);
			g_string_erase(buf, 0, (gssize)len + 1);
			if (!go) {
				close(fd);
				return TRUE;
			}
		}
		if (buf->len > 16u << 20) {
			g_set_error(error, CTL_ERROR, CTL_ERROR_REPLY, "%s: line too long", socket_path);
			close(fd);
			return FALSE;
		}
	}
}

static char *window_cell(JsonNode *ev, guint w);
static gboolean is_value(JsonNode *v, GType type);

void
ctl_render_follow(GString *out, JsonNode *line)
{
	const char *type = ctl_json_str(line, "type", "?");
	JsonNode *x = ctl_json_get(line, type);
	if (strcmp(type, "event") == 0) {
		g_autofree char *when = ctl_time((gint64)ctl_json_num(x, "time_ms", 0));
		g_autofree char *sw = window_cell(x, 0);
		g_autofree char *lw = window_cell(x, 1);
		g_string_append_printf(out, "%s  %-8s %-7s %-17s %-15s short %s long %s\n", when,
				       ctl_json_str(x, "event", "?"), ctl_json_str(x, "severity", "?"),
				       ctl_json_str(x, "reason", "?"), ctl_json_str(x, "host", "?"), sw,
				       lw);
	} else if (strcmp(type, "action") == 0) {
		g_autofree char *when = ctl_time((gint64)ctl_json_num(x, "time_ms", 0));
		g_string_append_printf(out, "%s  action %s host %s%s%s: %s\n", when,
				       ctl_json_str(x, "action", "?"), ctl_json_str(x, "host", "?"),
				       is_value(ctl_json_get(x, "reason"), G_TYPE_STRING) ? " reason " : "",
				       is_value(ctl_json_get(x, "reason"), G_TYPE_STRING)
					   ? ctl_json_str(x, "reason", "")
					   : "",
				       ctl_json_str(x, "detail", ""));
	} else {
		g_string_append_printf(out, "(%s)\n", type);
	}
}

/* ---- helpers for people ---- */

char *
ctl_ago(gint64 then_ms, gint64 now_ms)
{
	if (then_ms == 0)
		return g_strdup("-");
	gint64 d = (now_ms - then_ms) / 1000;
	gboolean future = d < 0;
	if (future)
		d = -d;
	char unit = 's';
	if (d >= 2 * 86400) {
		d /= 86400;
		unit = 'd';
	} else if (d >= 2 * 3600) {
		d /= 3600;
		unit = 'h';
	} else if (d >= 120) {
		d /= 60;
		unit = 'm';
	} else if (d < 1) {
		return g_strdup("just now");
	}
	return future ? g_strdup_printf("in %" G_GINT64_FORMAT "%c", d, unit)
		      : g_strdup_printf("%" G_GINT64_FORMAT "%c ago", d, unit);
}

char *
ctl_time(gint64 ms)
{
	if (ms <= 0)
		return g_strdup("-");
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(ms / 1000);
	return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S %Z") : g_strdup("-");
}

guint
ctl_terminal_width(void)
{
	struct winsize ws;
	const char *env = g_getenv("COLUMNS");
	guint64 n;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (env != NULL && g_ascii_string_to_unsigned(env, 10, 10, 10000, &n, NULL))
		return (guint)n;
	return 0;
}

/* A table: columns with a header, right alignment for numbers and a priority; when the
 * rows do not fit the width, the columns of lowest priority go first. */
typedef struct {
	const char *head;
	gboolean right;
	guint prio; /* higher stays longer */
} Col;

typedef struct {
	const Col *cols;
	guint n;
	GPtrArray *rows; /* char ** of n strings */
} Table;

static void
table_init(Table *t, const Col *cols, guint n)
{
	t->cols = cols;
	t->n = n;
	t->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
}

/* Takes n strings (owned). */
static void
table_add(Table *t, char **cells)
{
	g_ptr_array_add(t->rows, cells);
}

static void
table_render(Table *t, GString *out, guint width, const char *indent)
{
	gsize w[16] = {0};
	gboolean show[16];
	g_assert(t->n <= G_N_ELEMENTS(w));

	for (guint j = 0; j < t->n; j++) {
		w[j] = g_utf8_strlen(t->cols[j].head, -1);
		show[j] = TRUE;
		for (guint i = 0; i < t->rows->len; i++)
			w[j] = MAX(w[j], (gsize)g_utf8_strlen(((char **)t->rows->pdata[i])[j], -1));
	}
	for (;;) {
		gsize total = strlen(indent);
		guint shown = 0, drop = G_MAXUINT;
		for (guint j = 0; j < t->n; j++) {
			if (!show[j])
				continue;
			total += w[j] + (shown++ > 0 ? 2 : 0);
			if (drop == G_MAXUINT || t->cols[j].prio < t->cols[drop].prio)
				drop = j;
		}
		if (width == 0 || total <= width || shown <= 2)
			break;
		show[drop] = FALSE;
	}
	for (guint i = 0; i <= t->rows->len; i++) {
		gsize start = out->len;
		guint shown = 0;
		g_string_append(out, indent);
		for (guint j = 0; j < t->n; j++) {
			if (!show[j])
				continue;
			const char *cell = i == 0 ? t->cols[j].head : ((char **)t->rows->pdata[i - 1])[j];
			gsize pad = w[j] - (gsize)g_utf8_strlen(cell, -1);
			if (shown++ > 0)
				g_string_append(out, "  ");
			if (t->cols[j].right)
				for (gsize k = 0; k < pad; k++)
					g_string_append_c(out, ' ');
			g_string_append(out, cell);
			if (!t->cols[j].right)
				for (gsize k = 0; k < pad; k++)
					g_string_append_c(out, ' ');
		}
		while (out->len > start && out->str[out->len - 1] == ' ')
			g_string_truncate(out, out->len - 1);
		g_string_append_c(out, '\n');
	}
	g_ptr_array_free(t->rows, TRUE);
}

static char *
num(JsonNode *j, const char *path)
{
	JsonNode *v = ctl_json_path(j, path);
	if (!is_number(v))
		return g_strdup("-");
	return g_strdup_printf("%.0f", json_node_get_double(v));
}

static char *
str(JsonNode *j, const char *path)
{
	return g_strdup(ctl_json_str(j, path, "-"));
}

static char *
ago(JsonNode *j, const char *path, gint64 now)
{
	return ctl_ago((gint64)ctl_json_num(j, path, 0), now);
}

/* How a sampled host's window estimate of reason x was made (the host reply's
 * estimate_basis, HeurEstimate): "  estimate smtp-blocked, short: 9 seen = 9.0 failed
 * attempts / p 0.145 (50% refused) + 0.0 sessions of 10.0 packets / p 0.651 -> 62+-17".
 * Nothing for a window with nothing seen. */
static void
render_basis(GString *out, JsonNode *x, const char *span)
{
	g_autofree char *path = g_strconcat("estimate_basis.", span, NULL);
	JsonNode *b = ctl_json_path(x, path);
	double seen = ctl_json_num(b, "seen", 0);
	if (b == NULL || seen <= 0)
		return;
	double phi = ctl_json_num(b, "failed_share", 0);
	g_string_append_printf(out, "  estimate %s, %s: %.0f seen =", ctl_json_str(x, "reason", "?"),
			       span, seen);
	if (phi > 0)
		g_string_append_printf(out, " %.1f failed attempts / p %.3f (%.0f%% refused)%s",
				       seen * phi, ctl_json_num(b, "p_failed", 0),
				       100 * ctl_json_num(b, "refused_share", 0), phi < 1 ? " +" : "");
	if (phi < 1)
		g_string_append_printf(out, " %.1f sessions of %.1f packets / p %.3f", seen * (1 - phi),
				       ctl_json_num(b, "session_packets", 0),
				       ctl_json_num(b, "p_session", 0));
	g_autofree char *e = g_strconcat("estimate.", span, NULL);
	g_autofree char *se = g_strconcat("estimate_se.", span, NULL);
	g_string_append_printf(out, " -> %.0f+-%.0f\n", ctl_json_num(x, e, 0), ctl_json_num(x, se, 0));
}

/* "31/50", "31 (est. 61+-9)/50" when sampled, "80" for a context window (threshold 0) */
static char *
value_cell(double value, double threshold, gboolean sampled, double estimate, double se)
{
	g_autofree char *v = sampled ? g_strdup_printf("%.0f (est. %.0f+-%.0f)", value, estimate, se)
				     : g_strdup_printf("%.0f", value);
	if (threshold == 0)
		return g_steal_pointer(&v);
	return g_strdup_printf("%s/%.0f", v, threshold);
}

/* "30/30~" : a window's value over its threshold, ~ when estimated */
static char *
window_cell(JsonNode *ev, guint w)
{
	JsonNode *win = ctl_json_at(ctl_json_get(ev, "windows"), w);
	if (win == NULL)
		return g_strdup("-");
	return g_strdup_printf("%.0f/%.0f%s", ctl_json_num(win, "value", 0),
			       ctl_json_num(win, "threshold", 0),
			       ctl_json_bool(win, "estimated", FALSE) ? "~" : "");
}

/* ---- one renderer per command ---- */

static void
render_offenders(GString *out, JsonNode *r, guint width)
{
	static const Col cols[] = {
	    {"SEVERITY", FALSE, 9}, {"REASON", FALSE, 8}, {"HOST", FALSE, 10},
	    {"SHORT", TRUE, 6},     {"LONG", TRUE, 5},    {"ATTEMPTS", TRUE, 4},
	    {"FAILED", TRUE, 3},    {"FIRST SEEN", FALSE, 1}, {"LAST SEEN", FALSE, 2},
	};
	JsonNode *list = ctl_json_get(r, "offenders");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	Table t;

	if (ctl_json_len(list) == 0) {
		g_string_append(out, "no active offenders\n");
		return;
	}
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *o = ctl_json_at(list, i);
		JsonNode *ev = ctl_json_get(o, "event");
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = str(o, "severity");
		/* raised before a suppression: kept until it clears, with no update */
		row[1] = g_strdup_printf("%s%s", ctl_json_str(o, "reason", "-"),
					 is_number(ctl_json_get(o, "suppressed_until_ms"))
					     ? " (suppressed)"
					     : "");
		row[2] = str(o, "host");
		JsonNode *cur = ctl_json_get(o, "now");
		if (cur != NULL && JSON_NODE_HOLDS_OBJECT(cur)) {
			/* the windows now, against the thresholds of the last event (sampled: with
			 * what they estimate now) */
			double att = ctl_json_num(cur, "attempts", 0);
			JsonNode *ws = ctl_json_get(ev, "windows");
			gboolean sampled = ctl_json_get(cur, "short_estimate") != NULL;
			row[3] = value_cell(ctl_json_num(cur, "short", 0),
					    ctl_json_num(ctl_json_at(ws, 0), "threshold", 0), sampled,
					    ctl_json_num(cur, "short_estimate", 0),
					    ctl_json_num(cur, "short_estimate_se", 0));
			row[4] = value_cell(ctl_json_num(cur, "long", 0),
					    ctl_json_num(ctl_json_at(ws, 1), "threshold", 0), sampled,
					    ctl_json_num(cur, "long_estimate", 0),
					    ctl_json_num(cur, "long_estimate_se", 0));
			row[5] = g_strdup_printf("%.0f", att);
			row[6] = g_strdup_printf(
			    "%.0f%%", att > 0 ? 100 * ctl_json_num(cur, "failed", 0) / att : 0);
			row[8] = ago(cur, "last_seen_ms", now);
		} else {
			row[3] = window_cell(ev, 0);
			row[4] = window_cell(ev, 1);
			row[5] = num(ev, "attempts");
			row[6] = g_strdup_printf("%.0f%%",
						 ctl_json_num(ev, "failed_share", 0) * 100);
			row[8] = ago(ev, "last_seen_ms", now);
		}
		row[7] = ago(ev, "first_seen_ms", now);
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
	double total = ctl_json_num(r, "total", 0), shown = ctl_json_num(r, "shown", 0);
	if (shown < total)
		g_string_append_printf(out, "(%.0f of %.0f shown%s)\n", shown, total,
				       ctl_json_bool(r, "truncated", FALSE)
					   ? ": the reply reached its size limit, use limit="
					   : "");
}

/* history's "actions": what the quarantine did (none: nothing printed) */
static void
render_actions(GString *out, JsonNode *r, gint64 now, guint width)
{
	static const Col cols[] = {
	    {"WHEN", FALSE, 9},	 {"ACTION", FALSE, 10}, {"HOST", FALSE, 10},
	    {"REASON", FALSE, 8}, {"UID", TRUE, 3},	{"DETAIL", FALSE, 20},
	};
	JsonNode *list = ctl_json_get(r, "actions");
	Table t;

	if (ctl_json_len(list) == 0)
		return;
	g_string_append(out, "\nactions, newest first:\n");
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *a = ctl_json_at(list, i);
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = ago(a, "time_ms", now);
		row[1] = str(a, "action");
		row[2] = str(a, "host");
		row[3] = is_value(ctl_json_get(a, "reason"), G_TYPE_STRING) ? str(a, "reason")
									      : g_strdup("-");
		row[4] = is_number(ctl_json_get(a, "uid")) ? num(a, "uid") : g_strdup("-");
		row[5] = str(a, "detail");
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
}

static void
render_history(GString *out, JsonNode *r, guint width)
{
	static const Col cols[] = {
	    {"WHEN", FALSE, 9},	  {"EVENT", FALSE, 8}, {"SEVERITY", FALSE, 7}, {"REASON", FALSE, 8},
	    {"HOST", FALSE, 10}, {"SHORT", TRUE, 5},  {"LONG", TRUE, 4},
	};
	JsonNode *list = ctl_json_get(r, "events");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	Table t;

	if (ctl_json_len(list) == 0) {
		g_string_append(out, "no alert events yet\n");
		render_actions(out, r, now, width);
		return;
	}
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *ev = ctl_json_at(list, i);
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = ago(ev, "time_ms", now);
		row[1] = str(ev, "event");
		row[2] = str(ev, "severity");
		row[3] = str(ev, "reason");
		row[4] = str(ev, "host");
		row[5] = window_cell(ev, 0);
		row[6] = window_cell(ev, 1);
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
	render_actions(out, r, now, width);
}

static void
append_list(GString *out, JsonNode *arr)
{
	for (guint i = 0; i < ctl_json_len(arr); i++) {
		JsonNode *v = ctl_json_at(arr, i);
		g_string_append_printf(out, "%s%s", i > 0 ? ", " : "",
				       is_value(v, G_TYPE_STRING) ? json_node_get_string(v) : "?");
	}
	if (ctl_json_len(arr) == 0)
		g_string_append(out, "-");
}

/* The side signs of `host` (its "signs" member), one line each when there is something. */
static void
render_signs(GString *out, JsonNode *r)
{
	double inbound = ctl_json_num(r, "signs.inbound_smtp", 0);
	double dns = ctl_json_num(r, "signs.dns_external", 0);

	if (ctl_json_bool(r, "signs.mta_like", FALSE))
		g_string_append_printf(out, "%s (inbound SMTP: %.0f sessions in the last hour)\n",
				       ctl_json_str(r, "signs.hint", "looks like a mail server"),
				       inbound);
	else if (inbound > 0)
		g_string_append_printf(out, "inbound SMTP: %.0f sessions in the last hour\n",
				       inbound);
	if (dns > 0) {
		g_string_append_printf(out, "external DNS: %.0f quer%s in the last hour", dns,
				       dns == 1 ? "y" : "ies");
		if (ctl_json_str(r, "signs.dns_server", NULL) != NULL)
			g_string_append_printf(out, ", last to %s",
					       ctl_json_str(r, "signs.dns_server", "?"));
		if (ctl_json_bool(r, "signs.dns_corroborated", FALSE))
			g_string_append(out, " (corroborates its smtp alerts: severity one step up)");
		else if (!ctl_json_bool(r, "signs.resolvers_configured", FALSE))
			g_string_append(out, " (noted only: no [analyzer] resolvers configured)");
		g_string_append_c(out, '\n');
	}
	if (ctl_json_bool(r, "signs.resolver", FALSE))
		g_string_append(out, "listed resolver: its external DNS is not counted\n");
}

/* "group lab (10.20.0.0/16): smtp-fanout thresholds 200/600, exempt submission-fanout"
 * and "suppressed until ... by uid N: note" lines of a host reply */
static void
render_host_policy(GString *out, JsonNode *r, gint64 now)
{
	JsonNode *g = ctl_json_get(r, "group");
	if (g != NULL && JSON_NODE_HOLDS_OBJECT(g)) {
		JsonNode *thr = ctl_json_get(g, "thresholds");
		JsonObject *to = thr != NULL && JSON_NODE_HOLDS_OBJECT(thr) ? json_node_get_object(thr)
									    : NULL;
		g_autoptr(GList) names = to != NULL ? json_object_get_members(to) : NULL;
		guint n = 0;
		g_string_append_printf(out, "group %s (%s):", ctl_json_str(g, "name", "?"),
				       ctl_json_str(g, "prefix", "?"));
		for (GList *k = names; k != NULL; k = k->next) {
			JsonNode *t = json_object_get_member(to, k->data);
			if (ctl_json_get(t, "threshold") != NULL)
				g_string_append_printf(out, "%s %s threshold %.0f", n++ > 0 ? "," : "",
						       (const char *)k->data,
						       ctl_json_num(t, "threshold", 0));
			else
				g_string_append_printf(out, "%s %s thresholds %.0f/%.0f",
						       n++ > 0 ? "," : "", (const char *)k->data,
						       ctl_json_num(t, "short", 0),
						       ctl_json_num(t, "long", 0));
		}
		JsonNode *ex = ctl_json_get(g, "exempt");
		if (ctl_json_len(ex) > 0) {
			g_string_append_printf(out, "%s exempt ", n++ > 0 ? "," : "");
			append_list(out, ex);
		}
		if (n == 0)
			g_string_append(out, " the global thresholds, nothing exempt");
		g_string_append_c(out, '\n');
	}
	JsonNode *sup = ctl_json_get(r, "suppressions");
	for (guint i = 0; i < ctl_json_len(sup); i++) {
		JsonNode *s = ctl_json_at(sup, i);
		gint64 until = (gint64)ctl_json_num(s, "until_ms", 0);
		g_autofree char *when = ctl_time(until);
		g_autofree char *in = ctl_ago(until, now);
		g_string_append_printf(out, "suppressed (%s) until %s (%s) by uid %.0f: %s\n",
				       ctl_json_str(s, "reason", "all reasons"), when, in,
				       ctl_json_num(s, "uid", 0), ctl_json_str(s, "note", ""));
	}
}

/* "1h02m", "4m05s", "42s"; "never" when null */
static char *
duration_cell(JsonNode *j, const char *path)
{
	JsonNode *v = ctl_json_path(j, path);
	if (!is_number(v))
		return g_strdup("never");
	gint64 s = (gint64)json_node_get_double(v);
	if (s >= 3600)
		return g_strdup_printf("%" G_GINT64_FORMAT "h%02" G_GINT64_FORMAT "m", s / 3600,
				       s % 3600 / 60);
	if (s >= 60)
		return g_strdup_printf("%" G_GINT64_FORMAT "m%02" G_GINT64_FORMAT "s", s / 60,
				       s % 60);
	return g_strdup_printf("%" G_GINT64_FORMAT "s", s);
}

static void
render_quarantine(GString *out, JsonNode *r, guint width)
{
	static const Col cols[] = {
	    {"HOST", FALSE, 10},  {"LEFT", TRUE, 9},	  {"TIMEOUT", TRUE, 3},
	    {"REASON", FALSE, 8}, {"SEVERITY", FALSE, 4}, {"SINCE", FALSE, 6},
	};
	JsonNode *list = ctl_json_get(r, "members");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	const char *set6 = ctl_json_str(r, "set6", NULL);
	gboolean dry = ctl_json_bool(r, "dry_run", FALSE);
	Table t;

	g_string_append_printf(out, "%s %s%s%s: %u host%s%s\n",
			       dry ? "dry run, nothing in the kernel: the hosts" : "set",
			       ctl_json_str(r, "set", "?"), set6 != NULL ? " and " : "",
			       set6 != NULL ? set6 : "", ctl_json_len(list),
			       ctl_json_len(list) == 1 ? "" : "s", dry ? " it would hold" : "");
	if (ctl_json_len(list) == 0)
		return;
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *m = ctl_json_at(list, i);
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = str(m, "host");
		row[1] = duration_cell(m, "expires_s");
		row[2] = duration_cell(m, "timeout_s");
		/* a member spamflow did not add (or added before a restart and no longer
		 * offends) */
		row[3] = g_strdup(ctl_json_str(m, "reason", "(not spamflow's)"));
		row[4] = str(m, "severity");
		row[5] = ago(m, "since_ms", now);
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
}

static void
render_suppressions(GString *out, JsonNode *r, guint width)
{
	static const Col cols[] = {
	    {"HOST", FALSE, 10}, {"REASON", FALSE, 9}, {"UNTIL", FALSE, 8},
	    {"LEFT", FALSE, 7},	 {"UID", TRUE, 5},     {"SET", FALSE, 4}, {"NOTE", FALSE, 6},
	};
	JsonNode *list = ctl_json_get(r, "suppressions");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	Table t;

	if (ctl_json_len(list) == 0) {
		g_string_append(out, "no suppressions\n");
		return;
	}
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *s = ctl_json_at(list, i);
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = str(s, "host");
		row[1] = g_strdup(ctl_json_str(s, "reason", "all"));
		row[2] = ctl_time((gint64)ctl_json_num(s, "until_ms", 0));
		row[3] = ago(s, "until_ms", now);
		row[4] = num(s, "uid");
		row[5] = ago(s, "set_ms", now);
		row[6] = str(s, "note");
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
	double total = ctl_json_num(r, "total", 0), shown = ctl_json_num(r, "shown", 0);
	if (shown < total)
		g_string_append_printf(out, "(%.0f of %.0f shown)\n", shown, total);
}

/* ---- host ... since=: the timeline ---- */

/* One column per group of points: the largest short value of the group on 8 levels of
 * scale (the larger of the maximum and the threshold, so a line under the threshold stays
 * low); a group without points is blank. */
char *
ctl_sparkline(const double *v, const gboolean *present, guint n, double scale, guint cols)
{
	static const char *const bars[] = {"\u2581", "\u2582", "\u2583", "\u2584",
					   "\u2585", "\u2586", "\u2587", "\u2588"};
	GString *s = g_string_new(NULL);
	if (n == 0 || cols == 0)
		return g_string_free(s, FALSE);
	cols = MIN(cols, n);
	for (guint c = 0; c < cols; c++) {
		guint from = (guint)((guint64)c * n / cols), to = (guint)((guint64)(c + 1) * n / cols);
		double m = -1;
		for (guint i = from; i < to; i++)
			if (present[i])
				m = MAX(m, v[i]);
		if (m < 0) {
			g_string_append_c(s, ' ');
			continue;
		}
		guint level = scale > 0 ? (guint)MIN(7.0, m / scale * 7.0 + 0.5) : 0;
		g_string_append(s, bars[level]);
	}
	return g_string_free(s, FALSE);
}

static void
render_timeline(GString *out, JsonNode *r, guint width)
{
	JsonNode *tl = ctl_json_get(r, "timeline");
	JsonNode *pts = ctl_json_get(tl, "points");
	guint n = ctl_json_len(pts);
	g_autofree char *since = ctl_time((gint64)ctl_json_num(tl, "since_ms", 0));
	g_autofree char *until = ctl_time((gint64)ctl_json_num(tl, "until_ms", 0));
	static const Col cols[] = {
	    {"REASON", FALSE, 8}, {"SHORT WINDOW OVER THE PERIOD", FALSE, 10},
	    {"MAX", TRUE, 3},     {"THRESHOLD", TRUE, 4},
	};
	Table t;

	g_string_append_printf(out, "\ntimeline %s .. %s: %u readings (slice %.0f s), %u events, "
				    "%u actions%s%s\n",
			       since, until, n, ctl_json_num(tl, "slice_ms", 0) / 1000,
			       ctl_json_len(ctl_json_get(tl, "events")),
			       ctl_json_len(ctl_json_get(tl, "actions")),
			       ctl_json_bool(tl, "truncated", FALSE) ? " (truncated)" : "",
			       ctl_json_bool(tl, "stored", TRUE) ? "" : " (no history store)");
	if (n == 0)
		return;
	guint spark = width > 40 ? MIN(width - 36, 60u) : 40;
	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint reason = 0; reason < REASON_COUNT; reason++) {
		const char *name = alert_reason_name(reason);
		g_autofree double *v = g_new0(double, n);
		g_autofree gboolean *present = g_new0(gboolean, n);
		double max = 0, thr = 0;
		gboolean any = FALSE;
		for (guint i = 0; i < n; i++) {
			JsonNode *x = ctl_json_get(ctl_json_get(ctl_json_at(pts, i), "reasons"), name);
			if (x == NULL)
				continue;
			any = present[i] = TRUE;
			v[i] = ctl_json_num(x, "short", 0);
			max = MAX(max, v[i]);
			thr = ctl_json_num(x, "short_threshold", 0); /* the last in force */
		}
		if (!any)
			continue;
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		row[0] = g_strdup(name);
		row[1] = ctl_sparkline(v, present, n, MAX(max, thr), spark);
		row[2] = g_strdup_printf("%.0f", max);
		row[3] = g_strdup_printf("%.0f", thr);
		table_add(&t, row);
	}
	table_render(&t, out, width, "  ");
	JsonNode *evs = ctl_json_get(tl, "events");
	for (guint i = 0; i < ctl_json_len(evs); i++) {
		JsonNode *ev = ctl_json_at(evs, i);
		g_autofree char *when = ctl_time((gint64)ctl_json_num(ev, "time_ms", 0));
		g_string_append_printf(out, "  %s  %s %s (%s)\n", when, ctl_json_str(ev, "event", "?"),
				       ctl_json_str(ev, "reason", "?"), ctl_json_str(ev, "severity", "?"));
	}
	JsonNode *acts = ctl_json_get(tl, "actions");
	for (guint i = 0; i < ctl_json_len(acts); i++) {
		JsonNode *a = ctl_json_at(acts, i);
		g_autofree char *when = ctl_time((gint64)ctl_json_num(a, "time_ms", 0));
		g_string_append_printf(out, "  %s  action %s: %s\n", when, ctl_json_str(a, "action", "?"),
				       ctl_json_str(a, "detail", ""));
	}
}

static void
render_host(GString *out, JsonNode *r, guint width)
{
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	g_autofree char *seen = ago(r, "last_seen_ms", now);
	JsonNode *reasons = ctl_json_get(r, "reasons");
	JsonNode *wins = ctl_json_get(r, "windows");

	if (ctl_json_len(reasons) == 0 && ctl_json_len(wins) == 0 &&
	    !is_number(ctl_json_get(r, "last_seen_ms")) && ctl_json_get(r, "timeline") != NULL) {
		/* known to the history store only (expired, forgotten, or before a restart) */
		g_string_append_printf(out, "host %s: %s%s, not held by the analyzer now\n",
				       ctl_json_str(r, "host", "?"),
				       ctl_json_bool(r, "internal", FALSE) ? "internal" : "external",
				       ctl_json_bool(r, "mail_server", FALSE) ? ", listed mail server"
									      : "");
		render_host_policy(out, r, now);
		render_timeline(out, r, width);
		return;
	}
	g_string_append_printf(out, "host %s: %s%s, last seen %s, sampling 1:%.0f\n",
			       ctl_json_str(r, "host", "?"),
			       ctl_json_bool(r, "internal", FALSE) ? "internal" : "external",
			       ctl_json_bool(r, "mail_server", FALSE) ? ", listed mail server" : "",
			       seen, ctl_json_num(r, "sampling", 1));
	g_string_append(out, "exporters: ");
	append_list(out, ctl_json_get(r, "exporters"));
	g_string_append_c(out, '\n');
	render_host_policy(out, r, now);
	if (ctl_json_get(r, "baseline") != NULL &&
	    JSON_NODE_HOLDS_OBJECT(ctl_json_get(r, "baseline")))
		g_string_append_printf(out, "baseline: median %.0f (short), %.0f (long) over %.0f "
					    "samples\n",
				       ctl_json_num(r, "baseline.median_short", 0),
				       ctl_json_num(r, "baseline.median_long", 0),
				       ctl_json_num(r, "baseline.samples", 0));
	render_signs(out, r);

	static const Col rcols[] = {
	    {"REASON", FALSE, 9}, {"STATE", FALSE, 8},	 {"SHORT", TRUE, 7},  {"LONG", TRUE, 6},
	    {"LEVEL", TRUE, 5},	  {"SEVERITY", FALSE, 4}, {"RAISED", FALSE, 3}, {"UPDATES", TRUE, 2},
	};
	Table t;
	g_string_append(out, "\nreasons\n");
	table_init(&t, rcols, G_N_ELEMENTS(rcols));
	for (guint i = 0; i < ctl_json_len(reasons); i++) {
		JsonNode *x = ctl_json_at(reasons, i);
		JsonNode *off = ctl_json_get(x, "offender");
		gboolean enabled = ctl_json_bool(x, "enabled", TRUE);
		char **row = g_new0(char *, G_N_ELEMENTS(rcols) + 1);
		row[0] = str(x, "reason");
		/* the offender state, and why the reason cannot raise if it cannot */
		row[1] = g_strdup_printf(
		    "%s%s", !enabled ? "disabled" : ctl_json_str(x, "state", "-"),
		    ctl_json_bool(x, "exempt", FALSE) ? " (exempt)"
		    : is_number(ctl_json_get(x, "suppressed_until_ms")) ? " (suppressed)"
									  : "");
		if (ctl_json_get(x, "value") != NULL) {
			gboolean sampled = ctl_json_get(x, "estimate") != NULL;
			row[2] = value_cell(ctl_json_num(x, "value.short", 0),
					    ctl_json_num(x, "threshold.short", 0), sampled,
					    ctl_json_num(x, "estimate.short", 0),
					    ctl_json_num(x, "estimate_se.short", 0));
			row[3] = value_cell(ctl_json_num(x, "value.long", 0),
					    ctl_json_num(x, "threshold.long", 0), sampled,
					    ctl_json_num(x, "estimate.long", 0),
					    ctl_json_num(x, "estimate_se.long", 0));
			row[4] = g_strdup_printf("%.2f", ctl_json_num(x, "level", 0));
		} else {
			row[2] = g_strdup("-");
			row[3] = g_strdup("-");
			row[4] = g_strdup("-");
		}
		row[5] = off != NULL ? str(off, "severity") : g_strdup("-");
		row[6] = off != NULL ? ago(off, "raised_ms", now) : g_strdup("-");
		row[7] = off != NULL ? num(off, "updates") : g_strdup("-");
		table_add(&t, row);
	}
	table_render(&t, out, width, "  ");
	for (guint i = 0; i < ctl_json_len(reasons); i++) {
		JsonNode *x = ctl_json_at(reasons, i);
		if (ctl_json_get(x, "window_s") != NULL && ctl_json_get(x, "value") != NULL)
			g_string_append_printf(
			    out,
			    "  %s: SHORT is the destinations not contacted within the horizon, over "
			    "the last %.0f h; LONG the port-25 long window's distinct (context)\n",
			    ctl_json_str(x, "reason", "?"), ctl_json_num(x, "window_s", 0) / 3600);
		if (ctl_json_get(x, "note") != NULL)
			g_string_append_printf(out, "  note: %s: %s\n", ctl_json_str(x, "reason", "?"),
					       ctl_json_str(x, "note", ""));
		static const char *const spans[] = {"short", "long"};
		for (guint k = 0; k < G_N_ELEMENTS(spans); k++)
			render_basis(out, x, spans[k]);
	}

	for (guint i = 0; i < ctl_json_len(wins); i++) {
		JsonNode *w = ctl_json_at(wins, i);
		g_autofree char *first = ago(w, "first_ms", now);
		g_autofree char *last = ago(w, "last_ms", now);
		static const Col wcols[] = {
		    {"WINDOW", FALSE, 9}, {"DISTINCT", TRUE, 8}, {"FLOWS", TRUE, 5},
		    {"ATTEMPTS", TRUE, 7}, {"FAILED", TRUE, 6},
		};
		g_string_append_printf(out, "\ntraffic %s (first %s, last %s)\n",
				       ctl_json_str(w, "traffic", "?"), first, last);
		table_init(&t, wcols, G_N_ELEMENTS(wcols));
		for (guint s = 0; s < 2; s++) {
			JsonNode *c = ctl_json_get(w, s == 0 ? "short" : "long");
			char **row = g_new0(char *, G_N_ELEMENTS(wcols) + 1);
			row[0] = g_strdup(s == 0 ? "short" : "long");
			row[1] = g_strdup_printf("%.0f%s", ctl_json_num(c, "distinct", 0),
						 ctl_json_bool(c, "estimated", FALSE) ? "~" : "");
			row[2] = num(c, "flows");
			row[3] = num(c, "attempts");
			row[4] = num(c, "failed");
			table_add(&t, row);
		}
		table_render(&t, out, width, "  ");
		JsonNode *top = ctl_json_get(w, "top");
		if (ctl_json_len(top) == 0)
			continue;
		static const Col tcols[] = {
		    {"TOP DESTINATION", FALSE, 9}, {"ATTEMPTS", TRUE, 8}, {"COUNTRY", FALSE, 7},
		    {"ASN", TRUE, 6},
		};
		table_init(&t, tcols, G_N_ELEMENTS(tcols));
		for (guint k = 0; k < ctl_json_len(top); k++) {
			JsonNode *d = ctl_json_at(top, k);
			char **row = g_new0(char *, G_N_ELEMENTS(tcols) + 1);
			row[0] = str(d, "addr");
			row[1] = num(d, "count");
			row[2] = str(d, "country");
			row[3] = num(d, "asn");
			table_add(&t, row);
		}
		table_render(&t, out, width, "  ");
	}
	if (ctl_json_get(r, "timeline") != NULL)
		render_timeline(out, r, width);
}

static void
render_exporter_rows(GString *out, JsonNode *list, gint64 now, guint width)
{
	static const Col cols[] = {
	    {"EXPORTER", FALSE, 12}, {"DOMAIN", TRUE, 6},    {"VER", TRUE, 7},
	    {"DATAGRAMS", TRUE, 10}, {"RECORDS", TRUE, 11},  {"TEMPLATES", TRUE, 4},
	    {"SEQ LOST", TRUE, 9},   {"MALFORMED", TRUE, 8}, {"TIMES DROPPED", TRUE, 6},
	    {"SAMPLING", TRUE, 5},   {"FIRST SEEN", FALSE, 2}, {"LAST SEEN", FALSE, 3},
	};
	Table t;

	table_init(&t, cols, G_N_ELEMENTS(cols));
	for (guint i = 0; i < ctl_json_len(list); i++) {
		JsonNode *e = ctl_json_at(list, i);
		const char *addr = ctl_json_str(e, "addr", "?");
		char **row = g_new0(char *, G_N_ELEMENTS(cols) + 1);
		JsonNode *port = ctl_json_get(e, "port");
		JsonNode *ver = ctl_json_get(e, "version");
		gboolean agent = !is_number(port);
		/* an sFlow agent has no port: its address is named inside its datagrams */
		if (agent)
			row[0] = g_strdup(addr);
		else
			row[0] = g_strdup_printf(strchr(addr, ':') != NULL ? "[%s]:%.0f" : "%s:%.0f",
						 addr, json_node_get_double(port));
		row[1] = num(e, "domain");
		row[2] = is_value(ver, G_TYPE_STRING) ? g_strdup(json_node_get_string(ver))
								    : num(e, "version");
		row[3] = num(e, "datagrams");
		row[4] = num(e, "records");
		row[5] = agent ? g_strdup("-") : num(e, "templates_active");
		/* v9: datagrams; v5, IPFIX: records; sFlow: flow samples (per-source sequence
		 * numbers, which also count the samples of lost datagrams) */
		row[6] = agent ? num(e, "samples_lost") : num(e, "seq_lost");
		row[7] = num(e, "malformed_total");
		row[8] = num(e, "times_dropped");
		row[9] = num(e, "sampling");
		row[10] = ago(e, "first_seen_ms", now);
		row[11] = ago(e, "last_seen_ms", now);
		table_add(&t, row);
	}
	table_render(&t, out, width, "");
}

static void
render_exporters(GString *out, JsonNode *r, guint width)
{
	JsonNode *list = ctl_json_get(r, "exporters");
	JsonNode *cluster = ctl_json_get(r, "cluster");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);

	if (ctl_json_len(list) == 0)
		g_string_append(out, cluster != NULL ? "no exporters on this node\n"
						     : "no exporters yet\n");
	else
		render_exporter_rows(out, list, now, width);
	/* a cluster node: every other collector's, as its node entry last said */
	for (guint i = 0; i < ctl_json_len(cluster); i++) {
		JsonNode *c = ctl_json_at(cluster, i);
		JsonNode *el = ctl_json_get(c, "exporters");
		g_autofree char *when = ago(c, "time_ms", now);
		g_string_append_printf(out, "\ncollector %s (told %s):\n", ctl_json_str(c, "node", "?"),
				       when);
		if (ctl_json_len(el) == 0)
			g_string_append(out, "no exporters yet\n");
		else
			render_exporter_rows(out, el, now, width);
	}
	/* sources the allowlist refused: a wrong allowed_exporters shows here */
	JsonNode *denied = ctl_json_get(r, "denied");
	if (ctl_json_len(denied) > 0) {
		g_string_append_printf(out, "%ssources refused by [collector] allowed_exporters:\n",
				       ctl_json_len(list) > 0 ? "\n" : "");
		for (guint i = 0; i < ctl_json_len(denied); i++) {
			JsonNode *d = ctl_json_at(denied, i);
			g_autofree char *n = num(d, "datagrams");
			g_autofree char *last = ago(d, "last_seen_ms", now);
			g_string_append_printf(out, "  %s  %s datagrams, last %s\n",
					       ctl_json_str(d, "addr", "?"), n, last);
		}
	}
}

static void render_counters(GString *out, const char *name, JsonNode *obj, guint width);

/* `cluster`: the nodes, who owns how many partitions, how far behind, the bus, this node. */
static void
render_cluster(GString *out, JsonNode *r, guint width)
{
	JsonNode *st = ctl_json_get(r, "status");
	JsonNode *me = ctl_json_get(r, "cluster");
	JsonNode *nodes = ctl_json_get(st, "nodes");
	JsonNode *parts = ctl_json_get(st, "partitions");
	JsonNode *bus = ctl_json_get(me, "bus");
	gint64 now = (gint64)ctl_json_num(r, "now_ms", 0);
	g_autoptr(GString) orphans = g_string_new(NULL);
	guint n_orphans = 0;
	double lag_total = 0, behind_max = 0;

	g_string_append_printf(out, "node %s: %s%s%s, bus %s, %.0f partitions, %.0f owned here\n",
			       ctl_json_str(me, "node", "?"),
			       ctl_json_bool(me, "collector", FALSE) ? "collector" : "",
			       ctl_json_bool(me, "collector", FALSE) && ctl_json_bool(me, "analyzer", FALSE)
				   ? " and "
				   : "",
			       ctl_json_bool(me, "analyzer", FALSE) ? "analyzer" : "",
			       ctl_json_bool(bus, "connected", FALSE) ? "connected" : "NOT CONNECTED",
			       ctl_json_num(me, "partitions", 0), ctl_json_num(me, "owned", 0));
	for (guint i = 0; i < ctl_json_len(parts); i++) {
		JsonNode *p = ctl_json_at(parts, i);
		if (ctl_json_str(p, "owner", "")[0] == '\0' && n_orphans++ < 16)
			g_string_append_printf(orphans, " %.0f", ctl_json_num(p, "p", 0));
	}
	g_string_append_printf(out, "\n%-20s %-5s %-20s %-12s %10s %8s %8s  %s\n", "node",
			       "live", "roles", "alert group", "partitions", "lag", "behind",
			       "last heard");
	for (guint i = 0; i < ctl_json_len(nodes); i++) {
		JsonNode *nd = ctl_json_at(nodes, i);
		JsonNode *info = ctl_json_get(nd, "info");
		JsonNode *roles = ctl_json_get(info, "roles");
		g_autoptr(GString) rs = g_string_new(NULL);
		for (guint k = 0; k < ctl_json_len(roles); k++) {
			JsonNode *ro = ctl_json_at(roles, k);
			if (JSON_NODE_HOLDS_VALUE(ro) && json_node_get_value_type(ro) == G_TYPE_STRING)
				g_string_append_printf(rs, "%s%s", k > 0 ? "," : "",
						       json_node_get_string(ro));
		}
		g_autofree char *heard = ago(info, "time_ms", now);
		double lag = ctl_json_num(info, "lag", 0);
		double behind = ctl_json_num(info, "lag_ms", 0) / 1000;
		lag_total += lag;
		behind_max = MAX(behind_max, behind);
		g_string_append_printf(out, "%-20s %-5s %-20s %-12s %10u %8.0f %7.1fs  %s\n",
				       ctl_json_str(nd, "node", "?"),
				       ctl_json_bool(nd, "live", FALSE) ? "yes" : "NO", rs->str,
				       ctl_json_str(info, "alert_group", ""),
				       ctl_json_len(ctl_json_get(info, "partitions")), lag, behind,
				       heard);
	}
	if (n_orphans > 0)
		g_string_append_printf(out, "\n%u partitions without an owner:%s%s\n", n_orphans,
				       orphans->str, n_orphans > 16 ? " ..." : "");
	g_string_append_printf(out,
			       "\nlag: %.0f (stream sequences the owners have yet to apply, as each "
			       "node last told; 0 = caught up); behind: %.1f s (the furthest-behind "
			       "partition is at a batch the stream stored that long ago: its alerts are "
			       "that late)\n\n",
			       lag_total, behind_max);
	if (me != NULL && JSON_NODE_HOLDS_OBJECT(me)) {
		/* its counters; the bus's on a line of their own below */
		JsonObject *mo = json_node_get_object(me);
		g_autoptr(JsonObject) flat = json_object_new();
		g_autoptr(GList) keys = json_object_get_members(mo);
		for (GList *k = keys; k != NULL; k = k->next)
			if (strcmp(k->data, "bus") != 0)
				json_object_set_member(flat, k->data,
						       json_node_copy(json_object_get_member(mo, k->data)));
		g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), flat);
		render_counters(out, "this node", node, width);
	}
	if (bus != NULL)
		render_counters(out, "bus", bus, width);
	JsonNode *alerts = ctl_json_get(st, "alerts");
	if (alerts != NULL && JSON_NODE_HOLDS_OBJECT(alerts)) {
		render_counters(out, "alert consumer", alerts, width);
		/* said in words: an event the server has not delivered again (doc/cluster.md,
		 * "Watching it") */
		double stuck = ctl_json_num(alerts, "unacked_for_s", 0);
		if (stuck >= 30)
			g_string_append_printf(
			    out,
			    "WARNING: the event after alert-stream sequence %.0f has waited %.0f s "
			    "for its acknowledgement (%.0f pending): each should be acknowledged within "
			    "about 10 s\n",
			    ctl_json_num(alerts, "server_ack_floor", 0), stuck,
			    ctl_json_num(alerts, "server_ack_pending", 0));
	}
	JsonNode *co = ctl_json_get(st, "coord");
	if (co != NULL && JSON_NODE_HOLDS_OBJECT(co))
		render_counters(out, "coordinator", co, width);
}

/* A counter's number: whole as it is, a fraction to 3 decimals without trailing zeros
 * (last_pause_ms=0.4, not 0). */
static char *
counter_number(double v)
{
	if (v == floor(v) || fabs(v) >= 1e15)
		return g_strdup_printf("%.0f", v);
	char *s = g_strdup_printf("%.3f", v);
	gsize n = strlen(s);
	while (n > 0 && s[n - 1] == '0')
		s[--n] = '\0';
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	return s;
}

/* One " key=value" item of a counters line; an object's members as "key.member=value"
 * (the state file's "restored": state restored.result=restored restored.age_s=12 ...),
 * null as "-", an array as its length in brackets. */
static void
counter_items(GString *out, gsize *line_start, gsize indent, const char *prefix,
	      JsonObject *o, guint width)
{
	g_autoptr(GList) keys = json_object_get_members(o);

	for (GList *k = keys; k != NULL; k = k->next) {
		JsonNode *v = json_object_get_member(o, k->data);
		g_autofree char *key = g_strconcat(prefix, (const char *)k->data, NULL);
		if (JSON_NODE_HOLDS_OBJECT(v)) {
			g_autofree char *sub = g_strconcat(key, ".", NULL);
			counter_items(out, line_start, indent, sub, json_node_get_object(v), width);
			continue;
		}
		g_autofree char *val = is_number(v) ? counter_number(json_node_get_double(v))
				       : is_value(v, G_TYPE_BOOLEAN)
					   ? g_strdup(json_node_get_boolean(v) ? "true" : "false")
				       : is_value(v, G_TYPE_STRING) ? g_strdup(json_node_get_string(v))
				       : JSON_NODE_HOLDS_ARRAY(v)
					   ? g_strdup_printf("[%u]", ctl_json_len(v))
					   : g_strdup("-");
		g_autofree char *item = g_strdup_printf(" %s=%s", key, val);
		if (width > 0 && out->len - *line_start + strlen(item) > width &&
		    out->len - *line_start > indent) {
			g_string_append_c(out, '\n');
			*line_start = out->len;
			g_string_append(out, "   ");
		}
		g_string_append(out, item);
	}
}

/* "name: k=v k=v ..." wrapped to width, continuation lines indented. */
static void
render_counters(GString *out, const char *name, JsonNode *obj, guint width)
{
	gsize line_start = out->len;

	g_string_append_printf(out, "%s:", name);
	if (JSON_NODE_HOLDS_OBJECT(obj))
		counter_items(out, &line_start, strlen(name) + 1, "", json_node_get_object(obj),
			      width);
	g_string_append_c(out, '\n');
}

/* A non-empty object whose members are all objects. */
static gboolean
all_objects(JsonNode *v)
{
	JsonObject *o = json_node_get_object(v);
	g_autoptr(GList) members = json_object_get_members(o);

	for (GList *m = members; m != NULL; m = m->next)
		if (!JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, m->data)))
			return FALSE;
	return members != NULL;
}

static void
render_stats(GString *out, JsonNode *r, guint width)
{
	static const char *const skip[] = {"ok", "version", "command", "now_ms", "analyzer_now_ms"};
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
	g_autoptr(GList) keys = o != NULL ? json_object_get_members(o) : NULL;

	for (GList *m = keys; m != NULL; m = m->next) {
		const char *key = m->data;
		JsonNode *v = json_object_get_member(o, key);
		gboolean skipped = FALSE;
		for (guint k = 0; k < G_N_ELEMENTS(skip); k++)
			skipped |= g_strcmp0(key, skip[k]) == 0;
		if (skipped)
			continue;
		if (g_strcmp0(key, "exporters") == 0) {
			g_string_append_printf(out, "exporters: %u (spamflowctl exporters)\n",
					       ctl_json_len(v));
		} else if (JSON_NODE_HOLDS_OBJECT(v) && all_objects(v)) {
			/* counters by a name ("alerts": by reason): one line each */
			JsonObject *g = json_node_get_object(v);
			g_autoptr(GList) subs = json_object_get_members(g);
			for (GList *sub = subs; sub != NULL; sub = sub->next) {
				g_autofree char *name =
				    g_strdup_printf("%s %s", key, (const char *)sub->data);
				render_counters(out, name, json_object_get_member(g, sub->data),
						width);
			}
		} else if (JSON_NODE_HOLDS_OBJECT(v)) {
			render_counters(out, key, v, width);
		} else if (JSON_NODE_HOLDS_ARRAY(v)) {
			for (guint k = 0; k < ctl_json_len(v); k++) {
				JsonNode *e = ctl_json_at(v, k);
				g_autofree char *name = g_strdup_printf(
				    "%s %s %s", key, ctl_json_str(e, "kind", "?"),
				    ctl_json_str(e, "name", "?"));
				render_counters(out, name, e, width);
			}
		}
	}
}

void
ctl_render(GString *out, const char *command, JsonNode *r, guint width)
{
	if (strcmp(command, "offenders") == 0) {
		render_offenders(out, r, width);
	} else if (strcmp(command, "history") == 0) {
		render_history(out, r, width);
	} else if (strcmp(command, "host") == 0) {
		render_host(out, r, width);
	} else if (strcmp(command, "exporters") == 0) {
		render_exporters(out, r, width);
	} else if (strcmp(command, "stats") == 0) {
		render_stats(out, r, width);
	} else if (strcmp(command, "cluster") == 0) {
		render_cluster(out, r, width);
	} else if (strcmp(command, "config") == 0) {
		const char *file = ctl_json_str(r, "file", NULL);
		g_string_append_printf(out, "# in force now%s%s\n", file != NULL ? ", from " : "",
				       file != NULL ? file : " (built-in defaults)");
		g_string_append(out, ctl_json_str(r, "text", ""));
	} else if (strcmp(command, "reload") == 0) {
		JsonNode *applied = ctl_json_get(r, "applied");
		JsonNode *restart = ctl_json_get(r, "restart_needed");
		g_string_append_printf(out, "reloaded %s\n", ctl_json_str(r, "file", "?"));
		if (ctl_json_len(applied) + ctl_json_len(restart) == 0)
			g_string_append(out, "nothing changed\n");
		if (ctl_json_len(applied) > 0) {
			g_string_append(out, "applied: ");
			append_list(out, applied);
			g_string_append_c(out, '\n');
		}
		if (ctl_json_len(restart) > 0) {
			g_string_append(out, "changed, in effect after a restart: ");
			append_list(out, restart);
			g_string_append_c(out, '\n');
		}
	} else if (strcmp(command, "forget") == 0 && ctl_json_get(r, "sequence") != NULL) {
		/* a cluster node: stored for the owner of the host's partition */
		g_string_append_printf(out,
				       "forget of %s stored (partition %.0f, sequence %.0f): its "
				       "owner drops its windows and offenders\n",
				       ctl_json_str(r, "host", "?"), ctl_json_num(r, "partition", 0),
				       ctl_json_num(r, "sequence", 0));
	} else if (strcmp(command, "forget") == 0) {
		g_string_append_printf(out,
				       ctl_json_bool(r, "forgotten", FALSE)
					   ? "forgot %s: windows and offenders dropped\n"
					   : "nothing was held about %s\n",
				       ctl_json_str(r, "host", "?"));
	} else if (strcmp(command, "suppressions") == 0) {
		render_suppressions(out, r, width);
	} else if (strcmp(command, "suppress") == 0) {
		JsonNode *s = ctl_json_get(r, "suppression");
		g_autofree char *when = ctl_time((gint64)ctl_json_num(s, "until_ms", 0));
		g_string_append_printf(out, "%s %s (%s) until %s: it raises nothing until then\n",
				       ctl_json_bool(r, "replaced", FALSE) ? "suppression replaced:"
									   : "suppressed",
				       ctl_json_str(s, "host", "?"),
				       ctl_json_str(s, "reason", "all reasons"), when);
	} else if (strcmp(command, "unsuppress") == 0) {
		JsonNode *left = ctl_json_get(r, "remaining");
		g_string_append_printf(out, "%.0f suppression%s of %s removed\n",
				       ctl_json_num(r, "removed", 0),
				       ctl_json_num(r, "removed", 0) == 1 ? "" : "s",
				       ctl_json_str(r, "host", "?"));
		for (guint i = 0; i < ctl_json_len(left); i++) {
			JsonNode *s = ctl_json_at(left, i);
			g_autofree char *when = ctl_time((gint64)ctl_json_num(s, "until_ms", 0));
			g_string_append_printf(out, "still suppressed (%s) until %s\n",
					       ctl_json_str(s, "reason", "all reasons"), when);
		}
	} else if (strcmp(command, "quarantine") == 0) {
		render_quarantine(out, r, width);
	} else if (strcmp(command, "release") == 0) {
		g_string_append_printf(out,
				       "released %s: out of the quarantine set until its offence "
				       "clears (a new alert quarantines it again)\n",
				       ctl_json_str(r, "host", "?"));
	} else if (strcmp(command, "help") == 0) {
		JsonNode *cmds = ctl_json_get(r, "commands");
		gsize w = 0;
		for (guint i = 0; i < ctl_json_len(cmds); i++)
			w = MAX(w, strlen(ctl_json_str(ctl_json_at(cmds, i), "usage", "")));
		for (guint i = 0; i < ctl_json_len(cmds); i++) {
			JsonNode *c = ctl_json_at(cmds, i);
			g_string_append_printf(out, "  %-*s  %s%s\n", (int)w,
					       ctl_json_str(c, "usage", ""),
					       ctl_json_bool(c, "changes", FALSE) ? "(root) " : "",
					       ctl_json_str(c, "help", ""));
		}
	} else if (strcmp(command, "version") == 0) {
		g_string_append_printf(out, "%s (control protocol %.0f)\n",
				       ctl_json_str(r, "daemon", "?"), ctl_json_num(r, "protocol", 0));
	}
}
