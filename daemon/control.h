/* Control socket: the command table shared by spamflowd's dispatcher, spamflowctl's parser
 * and `help`; request parsing and reply framing; and the Unix stream socket server (one text
 * command per line, one JSON document per reply line, bounded everything). The server knows
 * nothing about the daemon: commands it does not answer itself go to ControlOps.run. */
#pragma once

#include "alert.h"

#include <glib.h>
#include <sys/types.h>

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_DEFAULT_SOCKET "/run/spamflow/control.sock"
#define CONTROL_MAX_ARGS 4

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
	CONTROL_CMD_HELP,
	CONTROL_CMD_VERSION,
	CONTROL_CMD_COUNT
} ControlCmdId;

typedef enum {
	CONTROL_ARG_ADDR,   /* positional: an IPv4 or IPv6 address */
	CONTROL_ARG_UINT,   /* name=N, 0 ..max */
	CONTROL_ARG_REASON, /* name=R, an alert reason name */
} ControlArgType;

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
	guint64 value[CONTROL_MAX_ARGS]; /* UINT; REASON as its AlertReason */
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
/* An address as the protocol writes it: IPv4 dotted quad or IPv6 text, to 16 bytes. */
gboolean control_parse_addr(const char *text, guint8 out[16]);

/* Reply framing: every reply is one line, {"ok":true,"version":1,"command":"...",...} or
 * {"ok":false,"version":1,"error":"..."}. begin/end wrap members the command appends
 * (",\"name\":value" each, leading comma included). */
void control_reply_begin(GString *out, const char *command);
void control_reply_end(GString *out);
void control_reply_error(GString *out, const char *command, const char *message);

/* ---- server ---- */

typedef struct {
	guint max_clients;   /* at once; more are accepted, told, closed and counted */
	gsize max_request;   /* bytes in one request line, newline excluded */
	guint idle_timeout_s; /* no byte read or written for this long: closed */
	gsize max_output;    /* pending reply bytes per client; more and it is dropped */
} ControlLimits;
void control_limits_defaults(ControlLimits *lim);

typedef struct {
	uid_t uid;
	gid_t gid;
	pid_t pid;
} ControlPeer;

typedef struct {
	guint64 clients_accepted;
	guint64 clients_refused;   /* over max_clients */
	guint64 clients_active;    /* now */
	guint64 clients_timed_out; /* idle */
	guint64 clients_dropped;   /* pending output over max_output */
	guint64 requests;          /* lines answered */
	guint64 requests_failed;   /* answered with ok:false (all reasons below included) */
	guint64 requests_too_long; /* over max_request: answered and closed */
	guint64 requests_not_text; /* NUL, control or invalid UTF-8 bytes */
	guint64 requests_denied;   /* changing commands from other uids */
	guint64 changes;           /* changing commands run */
	guint64 bytes_in;
	guint64 bytes_out;
} ControlStats;

typedef struct Control Control;

typedef struct {
	/* Run req (any command but help and version) and append its reply members to out (see
	 * control_reply_begin). FALSE with error for an ok:false reply; out is then discarded. */
	gboolean (*run)(Control *ctl, const ControlRequest *req, const ControlPeer *peer,
			GString *out, gpointer ctx, GError **error);
	/* What `version` says about the daemon, e.g. "spamflowd 0.1.0". */
	const char *daemon_version;
} ControlOps;

/* How the socket's directory is checked and made, and who owns the socket. */
typedef struct {
	uid_t owner_uid; /* chown the directory and socket to this (after making them) */
	gid_t owner_gid;
	gboolean chown;  /* FALSE: leave them to the daemon's uid and gid */
	uid_t trusted_uid; /* an existing directory may also be owned by this uid (besides root
			      and the daemon's own uid): the user the daemon drops to */
} ControlOwner;

/* Make the directory (mode 0750) unless it exists; refuse a directory that is writable by
 * others or owned by an untrusted uid; remove a stale socket (refuse a live one); bind,
 * listen, chmod 0660, chown. The server runs on the default main context. */
Control *control_new(const char *path, const ControlLimits *lim, const ControlOwner *owner,
		     const ControlOps *ops, gpointer ctx, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Close every client and the socket and remove the socket file. NULL-safe. */
void control_free(Control *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Control, control_free)

const char *control_path(const Control *ctl);
void control_get_stats(const Control *ctl, ControlStats *out);
/* "clients_accepted":N,... members (no braces) for the stats reply. */
void control_stats_json(const Control *ctl, GString *out);
/* May this peer run a changing command? Root and the daemon's own uid may. */
gboolean control_peer_may_change(const ControlPeer *peer, uid_t daemon_uid);

/* Feed bytes as a connection would (tests): appends the replies a client would read to
 * out and returns FALSE when the server would close the connection. */
gboolean control_feed(Control *ctl, const ControlPeer *peer, GString *inbuf, const guint8 *data,
		      gsize len, GString *out);
