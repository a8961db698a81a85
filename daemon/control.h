/* The control protocol: the command table shared by spamflowd's dispatcher, spamflowctl's
 * parser and `help`; request parsing; reply framing (one text command per line, one JSON
 * document per reply line). The server is control_server.h. */
#pragma once

#include "alert.h"

#include <glib.h>

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_DEFAULT_SOCKET "/run/spamflow/control.sock"
#define CONTROL_MAX_ARGS 5

#define CONTROL_ERROR (control_error_quark())
GQuark control_error_quark(void);
typedef enum {
	CONTROL_ERROR_USAGE,   /* unknown command, bad or missing argument */
	CONTROL_ERROR_DENIED,  /* a changing command from a peer that may not change */
	CONTROL_ERROR_SOCKET,  /* the socket or its directory */
	CONTROL_ERROR_UNSAFE,  /* a directory others may write, or a file that is no socket */
	CONTROL_ERROR_FAILED,  /* the command ran and failed (e.g. a broken config on reload) */
} ControlError;

typedef enum {
	CONTROL_CMD_OFFENDERS,
	CONTROL_CMD_HISTORY,
	CONTROL_CMD_HOST,
	CONTROL_CMD_EXPORTERS,
	CONTROL_CMD_STATS,
	CONTROL_CMD_CONFIG,
	CONTROL_CMD_RELOAD,
	CONTROL_CMD_FORGET,
	CONTROL_CMD_SUPPRESS,
	CONTROL_CMD_UNSUPPRESS,
	CONTROL_CMD_SUPPRESSIONS,
	CONTROL_CMD_QUARANTINE,
	CONTROL_CMD_RELEASE,
	CONTROL_CMD_FOLLOW,
	CONTROL_CMD_CLUSTER,
	CONTROL_CMD_HELP,
	CONTROL_CMD_VERSION,
	CONTROL_CMD_COUNT
} ControlCmdId;

typedef enum {
	CONTROL_ARG_ADDR,   /* positional: an IPv4 or IPv6 address */
	CONTROL_ARG_UINT,   /* name=N, 0 ..max */
	CONTROL_ARG_REASON, /* name=R, an alert reason name */
	CONTROL_ARG_UNTIL,  /* name=DURATION (90s, 30m, 2h, 7d, 1w, 1h30m; a bare number is
			       seconds) or name=TIME (ISO 8601: 2026-12-24T08:00:00Z, with an
			       offset, or local time: 2026-12-24T08:00, 2026-12-24) */
	CONTROL_ARG_TIME,   /* name=DURATION (that long ago) or name=TIME, as UNTIL reads them */
	CONTROL_ARG_HOST,   /* name=ADDR: an address (into ControlRequest.addr) */
	CONTROL_ARG_TEXT,   /* name=TEXT: the rest of the line (blanks included), so it comes
			       last; 1..CONTROL_MAX_TEXT bytes of UTF-8, no control characters */
} ControlArgType;
#define CONTROL_MAX_TEXT 200
#define CONTROL_MAX_UNTIL_S (366 * 86400) /* a suppression is for a while: a host that
					      should never raise belongs in a [group] */

typedef struct {
	const char *name; /* "limit"; for positional arguments the placeholder ("ADDR") */
	ControlArgType type;
	gboolean required;
	guint64 max;
	const char *help;
} ControlArg;

typedef struct {
	ControlCmdId id;
	const char *name;
	gboolean changes; /* reload, forget: root or the daemon's uid only, logged */
	guint n_args;
	ControlArg args[CONTROL_MAX_ARGS];
	const char *help;
} ControlCommand;

/* The table, in help order; n set to its length. */
const ControlCommand *control_commands(guint *n);
const ControlCommand *control_command_find(const char *name);
/* "offenders [reason=R] [since=SECONDS] [limit=N]" */
char *control_command_usage(const ControlCommand *c);

/* One parsed request line. Argument i of the command is in value[i] when has[i]. */
typedef struct {
	const ControlCommand *cmd;
	gboolean has[CONTROL_MAX_ARGS];
	guint64 value[CONTROL_MAX_ARGS]; /* UINT; REASON as its AlertReason; UNTIL: seconds from
					    now, or (until_absolute) the Unix time in ms */
	gboolean until_absolute;
	gboolean absolute[CONTROL_MAX_ARGS]; /* TIME and UNTIL: value[i] is a Unix time in ms */
	char text[CONTROL_MAX_TEXT + 1]; /* the TEXT argument */
	guint8 addr[16];                 /* the ADDR argument, IPv4-mapped for IPv4 */
	char addr_text[64];              /* ... as the client wrote it (validated) */
	gsize max_reply;                 /* bytes a reply may take; lists stop before it */
} ControlRequest;

/* Parse one request line (no newline). Words are separated by blanks; errors are
 * CONTROL_ERROR_USAGE with a message for the client. The client (spamflowctl) parses its
 * command line with this too, so both sides accept exactly the same requests. */
gboolean control_parse(const char *line, ControlRequest *req,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Value of the named argument, or def when absent. */
guint64 control_request_uint(const ControlRequest *req, const char *name, guint64 def);
gboolean control_request_has(const ControlRequest *req, const char *name);
/* A TIME argument as a Unix time in ms (a duration: now_ms minus it), or def when absent. */
gint64 control_request_time_ms(const ControlRequest *req, const char *name, gint64 now_ms,
			       gint64 def);
/* The UNTIL argument's text: *value seconds from now, or (*absolute) a Unix time in ms. */
gboolean control_parse_until(const char *text, guint64 *value, gboolean *absolute);
/* An address as the protocol writes it: IPv4 dotted quad or IPv6 text, to 16 bytes. */
gboolean control_parse_addr(const char *text, guint8 out[16]);

/* Reply framing: every reply is one line, {"ok":true,"version":1,"command":"...",...} or
 * {"ok":false,"version":1,"error":"..."}. begin/end wrap members the command appends
 * (",\"name\":value" each, leading comma included). */
void control_reply_begin(GString *out, const char *command);
void control_reply_end(GString *out);
void control_reply_error(GString *out, const char *command, const char *message);
/* The replies the protocol itself gives: `help` from the table, and `version`. */
void control_reply_help(GString *out);
void control_reply_version(GString *out, const char *daemon_version);
