/* spamflowctl's library: connect to the control socket, send one request line, read one reply
 * line; read the reply with json-glib; and one renderer per command that turns it into
 * tables for people. The daemon's JSON is never rewritten: --json prints it as is. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Reading a reply (json-glib). A reply nested deeper than this is refused before it is
 * parsed: json-glib's parser recurses without a bound (the daemon's replies nest 5 deep). */
#define CTL_REPLY_MAX_DEPTH 32

/* Parse one reply line (len bytes). NULL with CTL_ERROR_REPLY when it is not JSON, is
 * empty, or nests too deep. */
JsonNode *ctl_reply_parse(const char *text, gsize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Member of an object by key (NULL when absent or j is not an object). */
JsonNode *ctl_json_get(JsonNode *j, const char *key);
/* Path lookup "a.b.c" through objects. */
JsonNode *ctl_json_path(JsonNode *j, const char *path);
/* A number, string or boolean at path, or def when absent or of another type. */
double ctl_json_num(JsonNode *j, const char *path, double def);
const char *ctl_json_str(JsonNode *j, const char *path, const char *def);
gboolean ctl_json_bool(JsonNode *j, const char *path, gboolean def);
guint ctl_json_len(JsonNode *j);	 /* array/object length, else 0 */
JsonNode *ctl_json_at(JsonNode *j, guint i); /* array element, NULL past the end */

#define CTL_ERROR (ctl_error_quark())
GQuark ctl_error_quark(void);
typedef enum {
	CTL_ERROR_CONNECT, /* no daemon there */
	CTL_ERROR_IO,      /* the connection broke */
	CTL_ERROR_REPLY,   /* the reply is not what the protocol says */
} CtlError;

/* Connect, send line + "\n", read the reply line (at most max_reply bytes) into reply
 * (newline removed). */
gboolean ctl_request(const char *socket_path, const char *line, gsize max_reply, GString *reply,
		     GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* A streaming request (`follow`): send line, then call fn with each reply line (without
 * its newline) until it returns FALSE (TRUE returned) or the connection ends (FALSE, error). */
typedef gboolean (*CtlLineFunc)(const char *line, gsize len, gpointer data);
gboolean ctl_follow(const char *socket_path, const char *line, CtlLineFunc fn, gpointer data,
		    GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* One `follow` line ({"type":"event","event":{...}} or "action") as one line of text. */
void ctl_render_follow(GString *out, JsonNode *line);
/* A sparkline of n values (present[i] FALSE: no value) in at most cols columns, on the
 * scale given (UTF-8 block characters). */
char *ctl_sparkline(const double *v, const gboolean *present, guint n, double scale, guint cols);

/* "3m ago", "2h ago", "just now", "in 5s" (clock skew), "-" for 0. */
char *ctl_ago(gint64 then_ms, gint64 now_ms);
/* "2026-12-24 08:00:00 UTC" in local time, "-" for 0. */
char *ctl_time(gint64 ms);
/* Columns of the terminal on stdout (TIOCGWINSZ), else $COLUMNS, else 0 (no limit). */
guint ctl_terminal_width(void);

/* Text for people from a parsed ok:true reply of command `command`, fitting width columns
 * (0: no limit). */
void ctl_render(GString *out, const char *command, JsonNode *reply, guint width);
