/* spamflowctl's library: connect to the control socket, send one request line, read one reply
 * line; a small bounded JSON reader for the reply; and one renderer per command that turns
 * it into tables for people. The daemon's JSON is never rewritten: --json prints it as is. */
#pragma once

#include <glib.h>

typedef enum {
	CTL_JSON_NULL,
	CTL_JSON_BOOL,
	CTL_JSON_NUMBER,
	CTL_JSON_STRING,
	CTL_JSON_ARRAY,
	CTL_JSON_OBJECT,
} CtlJsonType;

typedef struct CtlJson CtlJson;
struct CtlJson {
	CtlJsonType type;
	gboolean b;
	double num;
	char *str;     /* STRING; for members of an object, also their key in key */
	char *key;     /* set on object members */
	GPtrArray *kids; /* ARRAY, OBJECT: CtlJson * */
};

#define CTL_JSON_MAX_DEPTH 32

/* Parse one JSON text (len bytes). NULL with an error on bad or too deep input. */
CtlJson *ctl_json_parse(const char *text, gsize len, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void ctl_json_free(CtlJson *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlJson, ctl_json_free)
/* Member of an object by key (NULL when absent or j is not an object). */
const CtlJson *ctl_json_get(const CtlJson *j, const char *key);
/* Path lookup "a.b.c" through objects. */
const CtlJson *ctl_json_path(const CtlJson *j, const char *path);
double ctl_json_num(const CtlJson *j, const char *path, double def);
const char *ctl_json_str(const CtlJson *j, const char *path, const char *def);
gboolean ctl_json_bool(const CtlJson *j, const char *path, gboolean def);
guint ctl_json_len(const CtlJson *j); /* array/object length, else 0 */
const CtlJson *ctl_json_at(const CtlJson *j, guint i);

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

/* "3m ago", "2h ago", "just now", "in 5s" (clock skew), "-" for 0. */
char *ctl_ago(gint64 then_ms, gint64 now_ms);
/* Columns of the terminal on stdout (TIOCGWINSZ), else $COLUMNS, else 0 (no limit). */
guint ctl_terminal_width(void);

/* Text for people from a parsed ok:true reply of command `command`, fitting width columns
 * (0: no limit). */
void ctl_render(GString *out, const char *command, const CtlJson *reply, guint width);
