/* The control socket server: a Unix stream socket on the default main context, one text
 * command per line, one JSON document per reply line, bounded everything. It knows nothing
 * about the daemon: every command but help and version goes to ControlOps.run. */
#pragma once

#include "control.h"

#include <glib.h>
#include <sys/types.h>

/* Of max_clients, this many are kept for root and the daemon's own uid (when max_clients
 * is larger), so that other users' connections cannot lock the admin out. */
#define CONTROL_SERVER_RESERVED 1

typedef struct {
	guint max_clients;   /* at once; more are accepted, told, closed and counted */
	gsize max_request;   /* bytes in one request line, newline excluded */
	guint idle_timeout_s; /* no byte read or written for this long: closed */
	gsize max_output;    /* pending reply bytes per client; more and it is dropped */
} ControlLimits;
void control_server_limits_defaults(ControlLimits *lim);

typedef struct {
	uid_t uid;
	gid_t gid;
	pid_t pid;
} ControlPeer;

typedef struct {
	guint64 clients_accepted;
	guint64 clients_refused;   /* over max_clients */
	guint64 clients_evicted;   /* idle clients closed to let another user's in */
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
	guint64 followers;      /* now: clients of `follow` */
	guint64 followers_cut;  /* followers that did not read what was sent (FOLLOW_MAX_PENDING) */
	guint64 follow_lines;   /* lines queued to followers */
} ControlStats;

typedef struct ControlServer ControlServer;

typedef struct {
	/* Run req (any command but help and version) and append its reply members to out (see
	 * control_reply_begin). FALSE with error for an ok:false reply; out is then discarded. */
	gboolean (*run)(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer,
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
ControlServer *control_server_new(const char *path, const ControlLimits *lim,
				  const ControlOwner *owner, const ControlOps *ops, gpointer ctx,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Close every client and the socket and remove the socket file. NULL-safe. */
void control_server_free(ControlServer *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlServer, control_server_free)

const char *control_server_path(const ControlServer *ctl);
/* A reply that comes later (a command answered by another node of a cluster): called from
 * ControlOps.run, which then returns TRUE with nothing in out. The client gets nothing more
 * answered until control_deferred_reply(), which also drops the caller's reference. NULL
 * when the request cannot wait (not from a client of this server: the HTTP API, tests).
 * The client may go meanwhile: the reply is then dropped. */
typedef struct ControlDeferred ControlDeferred;
ControlDeferred *control_server_defer(ControlServer *ctl);
/* reply: one whole reply object, without its newline (checked: one line of text, an
 * object), or NULL for an ok:false reply saying error. */
void control_deferred_reply(ControlDeferred *d, const char *reply, gsize len,
			    const char *error);
void control_deferred_unref(ControlDeferred *d);
/* `follow`: a line (with its newline) for every follower. A follower with more than
 * CONTROL_FOLLOW_MAX_PENDING bytes unread is cut (closed, counted): it never holds the loop
 * or the daemon's memory. */
#define CONTROL_FOLLOW_MAX_PENDING (256 * 1024)
void control_server_broadcast(ControlServer *ctl, const char *line, gsize len);
guint control_server_followers(const ControlServer *ctl);
void control_server_get_stats(const ControlServer *ctl, ControlStats *out);
/* "clients_accepted":N,... members (no braces) for the stats reply. */
void control_server_stats_json(const ControlServer *ctl, GString *out);
/* May this peer run a changing command? Root and the daemon's own uid may. */
gboolean control_server_peer_may_change(const ControlPeer *peer, uid_t daemon_uid);

/* Serve fd (a connected stream socket) as a client with the credentials peer, as the
 * server does with each connection it accepts: admitted (TRUE), or told "too many clients"
 * and closed (FALSE). Tests use it with socketpair() to play several users. */
gboolean control_server_add_client(ControlServer *ctl, int fd, const ControlPeer *peer);
/* Feed bytes as a connection would (tests): appends the replies a client would read to
 * out and returns FALSE when the server would close the connection. */
gboolean control_server_feed(ControlServer *ctl, const ControlPeer *peer, GString *inbuf,
			     const guint8 *data, gsize len, GString *out);
