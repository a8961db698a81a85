/* The control socket server: a Unix stream socket, one request line in and one reply line
 * out per command. Each client has a bounded input line and a queue of reply bytes written
 * without blocking; a client is read only while its queue is short, so one that never reads
 * stops being served (and times out) instead of growing the daemon's memory or stalling the
 * main loop that also receives the flows. The max_clients slots are shared so that no user
 * can lock out another by holding connections open (see admit()). */
#include "control_server.h"

#include <errno.h>
#include <glib-unix.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Accepts per wake-up: a burst of connections must not keep the loop from the flows. */
#define ACCEPT_BURST 32
/* Read a client's next request only while fewer reply bytes than this wait for it. */
#define OUTPUT_LOW_WATER (64 * 1024)
#define READ_CHUNK 4096

typedef struct {
	ControlServer *ctl;
	int fd;
	guint watch;
	GIOCondition watching;
	ControlPeer peer;
	GString *in;
	GString *out;
	gsize out_off; /* bytes of out already sent */
	gint64 last_activity_us;
	gboolean closing; /* close once out is sent (a too-long request) */
	gboolean eof;     /* the client sent all it will */
	gboolean follower; /* `follow`: gets control_server_broadcast()'s lines */
	ControlDeferred *deferred; /* a reply that comes later: nothing more is read before */
} Client;

struct ControlDeferred {
	Client *client; /* NULL once the client is gone */
	char cmd[32];
	gint refs;
};

struct ControlServer {
	char *path;
	char *dir;
	gboolean made_dir;
	dev_t sock_dev;
	ino_t sock_ino;
	int fd;
	guint listen_watch;
	guint sweep;
	ControlLimits lim;
	ControlOps ops;
	gpointer ctx;
	GList *clients;	    /* of Client */
	GHashTable *per_uid; /* peer uid -> clients connected */
	ControlStats st;
	gboolean follow_asked; /* answer() saw `follow`: its client becomes a follower */
	gboolean in_answer;       /* ops.run is running for a client (defer allowed) */
	ControlDeferred *deferred; /* what ops.run deferred, for its client */
	gint64 cut_log_us;
};

void
control_server_limits_defaults(ControlLimits *lim)
{
	lim->max_clients = 64;
	lim->max_request = 4096;
	lim->idle_timeout_s = 60;
	lim->max_output = 4 * 1024 * 1024;
}

gboolean
control_server_peer_may_change(const ControlPeer *peer, uid_t daemon_uid)
{
	return peer->uid == 0 || peer->uid == daemon_uid;
}

/* Only text: no NUL, no control bytes but tab, valid UTF-8. */
static gboolean
line_is_text(const char *s, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		guchar ch = (guchar)s[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return FALSE;
	}
	return g_utf8_validate(s, (gssize)len, NULL);
}

/* Answer one request line (without its newline; it may hold any bytes). */
static void
answer(ControlServer *ctl, const ControlPeer *peer, const char *line, gsize len, GString *out)
{
	ControlRequest req;
	g_autoptr(GError) err = NULL;

	ctl->st.requests++;
	if (!line_is_text(line, len)) {
		ctl->st.requests_not_text++;
		ctl->st.requests_failed++;
		control_reply_error(out, NULL, "request is not text (NUL, control bytes or "
					       "invalid UTF-8)");
		return;
	}
	g_autofree char *text = g_strndup(line, len);
	if (!control_parse(text, &req, &err)) {
		ctl->st.requests_failed++;
		control_reply_error(out, NULL, err->message);
		return;
	}
	req.max_reply = ctl->lim.max_output > 1024 ? ctl->lim.max_output - 1024 : 0;
	if (req.cmd->changes && !control_server_peer_may_change(peer, geteuid())) {
		ctl->st.requests_denied++;
		ctl->st.requests_failed++;
		g_warning("control: %s refused for uid=%u pid=%d (needs root or uid %u)",
			  req.cmd->name, (unsigned)peer->uid, (int)peer->pid, (unsigned)geteuid());
		g_autofree char *msg =
		    g_strdup_printf("permission denied: %s needs root or uid %u", req.cmd->name,
				    (unsigned)geteuid());
		control_reply_error(out, req.cmd->name, msg);
		return;
	}
	switch (req.cmd->id) {
	case CONTROL_CMD_HELP:
		control_reply_help(out);
		return;
	case CONTROL_CMD_VERSION:
		control_reply_version(out, ctl->ops.daemon_version);
		return;
	case CONTROL_CMD_FOLLOW:
		/* the reply, then one line per event and action (control_server_broadcast) */
		ctl->follow_asked = TRUE;
		control_reply_begin(out, "follow");
		g_string_append_printf(out, ",\"following\":true,\"max_pending\":%d",
				       CONTROL_FOLLOW_MAX_PENDING);
		control_reply_end(out);
		return;
	default:
		break;
	}
	gsize start = out->len;
	ctl->in_answer = TRUE;
	gboolean ok = ctl->ops.run != NULL &&
		      ctl->ops.run(ctl, &req, peer, out, ctl->ctx, &err);
	ctl->in_answer = FALSE;
	if (ctl->deferred != NULL)
		g_strlcpy(ctl->deferred->cmd, req.cmd->name, sizeof ctl->deferred->cmd);
	if (req.cmd->changes) {
		ctl->st.changes++;
		g_message("control: %s%s%s by uid=%u pid=%d: %s", req.cmd->name,
			  req.addr_text[0] != '\0' ? " " : "", req.addr_text, (unsigned)peer->uid,
			  (int)peer->pid, ok ? "done" : err != NULL ? err->message : "failed");
	}
	if (!ok) {
		g_string_truncate(out, start);
		ctl->st.requests_failed++;
		control_reply_error(out, req.cmd->name,
				    err != NULL ? err->message : "command not available");
	}
}

/* Answer the complete lines of in (at eof, the unterminated rest too) while fewer than
 * OUTPUT_LOW_WATER reply bytes wait; out_sent bytes of out are already sent. Returns FALSE
 * when the connection must close once out is sent (a request over the size limit). */
static gboolean
handle_input(ControlServer *ctl, const ControlPeer *peer, GString *in, GString *out, gsize out_sent,
	     gboolean eof)
{
	gsize off = 0;
	gboolean keep = TRUE;

	while (off < in->len && out->len - out_sent < OUTPUT_LOW_WATER) {
		const char *line = in->str + off;
		const char *nl = memchr(line, '\n', in->len - off);
		gsize len = nl != NULL ? (gsize)(nl - line) : in->len - off;

		if (len > ctl->lim.max_request) {
			ctl->st.requests++;
			ctl->st.requests_too_long++;
			ctl->st.requests_failed++;
			g_autofree char *msg = g_strdup_printf(
			    "request longer than %" G_GSIZE_FORMAT " bytes: closing",
			    ctl->lim.max_request);
			control_reply_error(out, NULL, msg);
			off = in->len;
			keep = FALSE;
			break;
		}
		if (nl == NULL && !eof)
			break;
		gsize n = len;
		if (n > 0 && line[n - 1] == '\r') /* telnet and friends */
			n--;
		gboolean blank = TRUE;
		for (gsize i = 0; i < n && blank; i++)
			blank = line[i] == ' ' || line[i] == '\t';
		if (!blank)
			answer(ctl, peer, line, n, out);
		off += nl != NULL ? len + 1 : len;
		if (ctl->deferred != NULL)
			break; /* the next line waits for the deferred reply */
	}
	g_string_erase(in, 0, (gssize)off);
	return keep;
}

gboolean
control_server_feed(ControlServer *ctl, const ControlPeer *peer, GString *inbuf, const guint8 *data,
		    gsize len, GString *out)
{
	g_string_append_len(inbuf, (const char *)data, (gssize)len);
	ctl->st.bytes_in += len;
	/* a test reads everything at once: no low-water pause */
	gboolean keep = TRUE;
	gsize before;
	do {
		before = inbuf->len;
		keep = handle_input(ctl, peer, inbuf, out, out->len, FALSE);
	} while (keep && inbuf->len > 0 && inbuf->len < before);
	return keep;
}

static void client_update(Client *c);

static guint
uid_count(const ControlServer *ctl, uid_t uid)
{
	return GPOINTER_TO_UINT(g_hash_table_lookup(ctl->per_uid, GUINT_TO_POINTER(uid)));
}

static void
uid_count_add(ControlServer *ctl, uid_t uid, int delta)
{
	gpointer key = GUINT_TO_POINTER(uid);
	guint n = uid_count(ctl, uid) + (guint)delta;

	if (n == 0)
		g_hash_table_remove(ctl->per_uid, key);
	else
		g_hash_table_insert(ctl->per_uid, key, GUINT_TO_POINTER(n));
}

static void
client_free(Client *c)
{
	ControlServer *ctl = c->ctl;

	/* may be the source being dispatched: glib allows removing it from its callback */
	if (c->watch != 0)
		g_source_remove(c->watch);
	/* Unread input makes close() reset the connection, and the peer could lose the reply it
	 * has not read yet (the "too long" error): discard a bounded amount first. */
	for (guint i = 0; c->closing && i < 16; i++) {
		char buf[READ_CHUNK];
		if (recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
			break;
	}
	close(c->fd);
	g_string_free(c->in, TRUE);
	g_string_free(c->out, TRUE);
	ctl->clients = g_list_remove(ctl->clients, c);
	ctl->st.clients_active--;
	if (c->follower)
		ctl->st.followers--;
	if (c->deferred != NULL) {
		c->deferred->client = NULL;
		control_deferred_unref(c->deferred);
	}
	uid_count_add(ctl, c->peer.uid, -1);
	g_free(c);
}

static gsize
client_pending(const Client *c)
{
	return c->out->len - c->out_off;
}

/* Send what the socket takes. FALSE on a write error (the client is gone). */
static gboolean
client_flush(Client *c)
{
	while (c->out_off < c->out->len) {
		ssize_t n = send(c->fd, c->out->str + c->out_off, c->out->len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		c->out_off += (gsize)n;
		c->ctl->st.bytes_out += (guint64)n;
		c->last_activity_us = g_get_monotonic_time();
	}
	g_string_truncate(c->out, 0);
	c->out_off = 0;
	return TRUE;
}

/* Answer what can be answered, send what can be sent, then watch for what comes next.
 * May free c. */
static void
client_process(Client *c)
{
	ControlServer *ctl = c->ctl;

	ctl->follow_asked = FALSE;
	if (c->deferred == NULL && !c->closing &&
	    !handle_input(ctl, &c->peer, c->in, c->out, c->out_off, c->eof))
		c->closing = TRUE;
	if (ctl->deferred != NULL) {
		c->deferred = ctl->deferred; /* the server's reference, now the client's */
		c->deferred->client = c;
		ctl->deferred = NULL;
	}
	if (ctl->follow_asked && !c->follower) {
		c->follower = TRUE;
		ctl->st.followers++;
	}
	ctl->follow_asked = FALSE;
	if (!client_flush(c)) {
		client_free(c);
		return;
	}
	if (client_pending(c) > ctl->lim.max_output) {
		ctl->st.clients_dropped++;
		g_warning("control: client uid=%u pid=%d dropped: %" G_GSIZE_FORMAT
			  " reply bytes unread",
			  (unsigned)c->peer.uid, (int)c->peer.pid, client_pending(c));
		client_free(c);
		return;
	}
	if ((c->closing || (c->eof && c->in->len == 0 && !c->follower && c->deferred == NULL)) &&
	    client_pending(c) == 0) {
		client_free(c);
		return;
	}
	/* compact: the sent part of out is dead */
	if (c->out_off > 0 && c->out_off >= c->out->len / 2) {
		g_string_erase(c->out, 0, (gssize)c->out_off);
		c->out_off = 0;
	}
	client_update(c);
}

static gboolean
on_client(gint fd, GIOCondition cond, gpointer user_data)
{
	Client *c = user_data;
	ControlServer *ctl = c->ctl;

	if ((c->watching & G_IO_IN) && (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))) {
		char buf[READ_CHUNK];
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			g_string_append_len(c->in, buf, n);
			ctl->st.bytes_in += (guint64)n;
			c->last_activity_us = g_get_monotonic_time();
		} else if (n == 0) {
			c->eof = TRUE; /* answer what was sent, then close */
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			client_free(c);
			return G_SOURCE_REMOVE;
		}
	} else if ((cond & (G_IO_HUP | G_IO_ERR)) && !(cond & G_IO_OUT)) {
		client_free(c); /* gone, and nothing more can be sent */
		return G_SOURCE_REMOVE;
	}
	/* may free c or replace this watch (removing this source): either way glib copes */
	client_process(c);
	return G_SOURCE_CONTINUE;
}

/* Watch for input while the client may send a request (pending output short), for output
 * while replies wait. */
static void
client_update(Client *c)
{
	GIOCondition want = 0;

	if (!c->closing && !c->eof && c->deferred == NULL && client_pending(c) < OUTPUT_LOW_WATER)
		want |= G_IO_IN;
	if (client_pending(c) > 0)
		want |= G_IO_OUT;
	if (want == c->watching && c->watch != 0)
		return;
	if (c->watch != 0)
		g_source_remove(c->watch);
	c->watching = want;
	c->watch = want != 0 ? g_unix_fd_add(c->fd, want, on_client, c) : 0;
}

/* Tell a client why it is closed, if its socket takes the line at once. */
static void
say_goodbye(ControlServer *ctl, int fd, const char *why)
{
	g_autoptr(GString) msg = g_string_new(NULL);

	control_reply_error(msg, NULL, why);
	/* best effort: a fresh socket's buffer takes one short line */
	if (send(fd, msg->str, msg->len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
		ctl->st.bytes_out += msg->len;
}

static void
refuse(ControlServer *ctl, int fd)
{
	g_autofree char *text =
	    g_strdup_printf("too many clients (%u): try again later", ctl->lim.max_clients);

	say_goodbye(ctl, fd, text);
	close(fd);
	ctl->st.clients_refused++;
}

/* Slots: of max_clients, CONTROL_SERVER_RESERVED are kept for root and the daemon's own uid,
 * so that the admin's spamflowctl gets in whatever other users hold. */
static gboolean
slot_free(const ControlServer *ctl, gboolean privileged)
{
	guint reserved =
	    ctl->lim.max_clients > CONTROL_SERVER_RESERVED ? CONTROL_SERVER_RESERVED : 0;
	uid_t self = geteuid();
	guint privileged_active = uid_count(ctl, 0) + (self != 0 ? uid_count(ctl, self) : 0);

	if (ctl->st.clients_active >= ctl->lim.max_clients)
		return FALSE;
	return privileged ||
	       ctl->st.clients_active - privileged_active < ctl->lim.max_clients - reserved;
}

/* When the slots are taken: close the longest-idle client of a uid that holds at least two
 * more connections than the newcomer's uid, so one user's idle connections cannot lock out
 * another user until idle_timeout (a flood from a single uid is refused as before). The
 * clients of root and the daemon's uid are closed for their own kind only. FALSE when no
 * client may go. */
static gboolean
evict_one(ControlServer *ctl, const ControlPeer *newcomer, gboolean privileged)
{
	guint mine = uid_count(ctl, newcomer->uid);
	Client *victim = NULL;
	GHashTableIter it;
	gpointer uid, n;
	gboolean any = FALSE;

	/* cheap first: is any uid over the newcomer's share at all? */
	g_hash_table_iter_init(&it, ctl->per_uid);
	while (!any && g_hash_table_iter_next(&it, &uid, &n))
		any = GPOINTER_TO_UINT(n) >= mine + 2;
	if (!any)
		return FALSE;
	for (GList *l = ctl->clients; l != NULL; l = l->next) {
		Client *c = l->data;
		if (uid_count(ctl, c->peer.uid) < mine + 2)
			continue;
		if (!privileged && control_server_peer_may_change(&c->peer, geteuid()))
			continue;
		if (victim == NULL || c->last_activity_us < victim->last_activity_us)
			victim = c;
	}
	if (victim == NULL)
		return FALSE;
	g_debug("control: client uid=%u pid=%d closed to make room for uid=%u pid=%d",
		(unsigned)victim->peer.uid, (int)victim->peer.pid, (unsigned)newcomer->uid,
		(int)newcomer->pid);
	g_autofree char *why = g_strdup_printf(
	    "closed to make room for another user (uid %u holds %u of %u connections)",
	    (unsigned)victim->peer.uid, uid_count(ctl, victim->peer.uid), ctl->lim.max_clients);
	say_goodbye(ctl, victim->fd, why);
	ctl->st.clients_evicted++;
	client_free(victim);
	return TRUE;
}

ControlDeferred *
control_server_defer(ControlServer *ctl)
{
	if (ctl == NULL || !ctl->in_answer || ctl->deferred != NULL)
		return NULL;
	ctl->deferred = g_new0(ControlDeferred, 1);
	ctl->deferred->refs = 2; /* the client's, and the caller's */
	return ctl->deferred;
}

void
control_deferred_unref(ControlDeferred *d)
{
	if (d != NULL && --d->refs == 0)
		g_free(d);
}

void
control_deferred_reply(ControlDeferred *d, const char *reply, gsize len, const char *error)
{
	Client *c = d->client;

	if (c != NULL) {
		ControlServer *ctl = c->ctl;
		c->deferred = NULL;
		d->client = NULL;
		/* a reply from another node: one line of text, an object (it went over the bus,
		 * and must not end the line early or smuggle a second one) */
		if (reply != NULL && len >= 2 && reply[0] == '{' && reply[len - 1] == '}' &&
		    line_is_text(reply, len)) {
			g_string_append_len(c->out, reply, (gssize)len);
			g_string_append_c(c->out, '\n');
		} else {
			if (reply != NULL)
				error = "the node that answered sent no reply object";
			ctl->st.requests_failed++;
			control_reply_error(c->out, d->cmd, error != NULL ? error : "failed");
		}
		control_deferred_unref(d); /* the client's reference */
		c->last_activity_us = g_get_monotonic_time();
		client_process(c); /* send it, and go on with what the client sent since */
	}
	control_deferred_unref(d);
}

/* Slots held by clients that have already hung up but whose hang-up the main loop has not
 * dispatched yet (a spamflowctl that exited a moment ago): read what they sent, answer it
 * (their commands still run) and free them, so that a newcomer is not refused or made room
 * for by closing someone who is still there. Only when the slots are taken. */
static void
reap_departed(ControlServer *ctl)
{
	GList *l = ctl->clients;

	while (l != NULL) {
		Client *c = l->data;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};

		l = l->next; /* client_process() may free c */
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLHUP))
			continue;
		if (c->follower) { /* asked for nothing but the stream */
			client_free(c);
			continue;
		}
		for (guint i = 0; i < 16 && c->in->len <= ctl->lim.max_request; i++) {
			char buf[READ_CHUNK];
			ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n <= 0)
				break;
			g_string_append_len(c->in, buf, n);
			ctl->st.bytes_in += (guint64)n;
		}
		c->eof = TRUE;
		client_process(c);
	}
}

/* A new connection: a free slot, else one made by evict_one(), else refused. */
static gboolean
admit(ControlServer *ctl, int fd, const ControlPeer *peer)
{
	gboolean privileged = control_server_peer_may_change(peer, geteuid());

	if (!slot_free(ctl, privileged))
		reap_departed(ctl);
	while (!slot_free(ctl, privileged)) {
		if (!evict_one(ctl, peer, privileged)) {
			refuse(ctl, fd);
			return FALSE;
		}
	}
	Client *c = g_new0(Client, 1);
	c->ctl = ctl;
	c->fd = fd;
	c->peer = *peer;
	c->in = g_string_sized_new(256);
	c->out = g_string_sized_new(256);
	c->last_activity_us = g_get_monotonic_time();
	ctl->clients = g_list_prepend(ctl->clients, c);
	ctl->st.clients_accepted++;
	ctl->st.clients_active++;
	uid_count_add(ctl, peer->uid, 1);
	client_update(c);
	return TRUE;
}

gboolean
control_server_add_client(ControlServer *ctl, int fd, const ControlPeer *peer)
{
	return admit(ctl, fd, peer);
}

static gboolean
on_accept(gint fd, GIOCondition cond, gpointer user_data)
{
	ControlServer *ctl = user_data;

	(void)cond;
	for (guint i = 0; i < ACCEPT_BURST; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				g_debug("control: accept: %s", g_strerror(errno));
			break;
		}
		struct ucred cred;
		socklen_t len = sizeof cred;
		/* credentials unknown: read-only */
		ControlPeer peer = {.uid = (uid_t)-1, .gid = (gid_t)-1, .pid = 0};
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			peer.uid = cred.uid;
			peer.gid = cred.gid;
			peer.pid = cred.pid;
		}
		(void)admit(ctl, cfd, &peer);
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
on_sweep(gpointer user_data)
{
	ControlServer *ctl = user_data;
	gint64 now = g_get_monotonic_time();
	gint64 idle = (gint64)ctl->lim.idle_timeout_s * G_USEC_PER_SEC;

	for (GList *l = ctl->clients; l != NULL;) {
		Client *c = l->data;
		l = l->next;
		if (now - c->last_activity_us >= idle && !c->follower) {
			ctl->st.clients_timed_out++;
			g_debug("control: client uid=%u pid=%d idle: closed", (unsigned)c->peer.uid,
				(int)c->peer.pid);
			client_free(c);
		}
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
check_dir(const char *dir, const ControlOwner *owner, gboolean *made, GError **error)
{
	struct stat st;

	*made = FALSE;
	if (lstat(dir, &st) != 0) {
		if (errno != ENOENT) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
				    "control socket directory %s: %s", dir, g_strerror(errno));
			return FALSE;
		}
		if (mkdir(dir, 0750) != 0) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
				    "cannot create control socket directory %s: %s", dir,
				    g_strerror(errno));
			return FALSE;
		}
		*made = TRUE;
		/* the umask may have taken bits: say exactly what is meant */
		if (chmod(dir, 0750) != 0 || lstat(dir, &st) != 0) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
				    "control socket directory %s: %s", dir, g_strerror(errno));
			return FALSE;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "control socket directory %s is not a directory", dir);
		return FALSE;
	}
	if (st.st_mode & S_IWOTH) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_UNSAFE,
			    "control socket directory %s is writable by everyone (mode %04o): "
			    "refusing it; use a directory of its own",
			    dir, (unsigned)(st.st_mode & 07777));
		return FALSE;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() &&
	    !(owner != NULL && owner->chown && st.st_uid == owner->trusted_uid)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_UNSAFE,
			    "control socket directory %s is owned by uid %u, not by root or uid %u: "
			    "refusing it",
			    dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return FALSE;
	}
	return TRUE;
}

/* An existing path: a socket nobody listens on is removed; anything else is refused. */
static gboolean
clear_stale(const char *path, const struct sockaddr_un *sa, GError **error)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return TRUE;
	if (!S_ISSOCK(st.st_mode)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_UNSAFE,
			    "%s exists and is not a socket: refusing to remove it", path);
		return FALSE;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET, "socket: %s",
			    g_strerror(errno));
		return FALSE;
	}
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	int err = errno;
	close(fd);
	if (rc == 0 || err == EAGAIN) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "control socket %s is in use (is another spamflowd running?)", path);
		return FALSE;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "cannot remove stale control socket %s: %s", path, g_strerror(errno));
		return FALSE;
	}
	g_debug("control: removed stale socket %s", path);
	return TRUE;
}

ControlServer *
control_server_new(const char *path, const ControlLimits *lim, const ControlOwner *owner,
		   const ControlOps *ops, gpointer ctx, GError **error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	g_autoptr(ControlServer) ctl = g_new0(ControlServer, 1);
	struct stat st;

	ctl->fd = -1;
	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof sa.sun_path) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "control socket path '%s' is empty or longer than %zu bytes",
			    path != NULL ? path : "", sizeof sa.sun_path - 1);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lim != NULL)
		ctl->lim = *lim;
	else
		control_server_limits_defaults(&ctl->lim);
	ctl->ops = *ops;
	ctl->ctx = ctx;
	ctl->per_uid = g_hash_table_new(g_direct_hash, g_direct_equal);
	ctl->path = g_strdup(path);
	ctl->dir = g_path_get_dirname(path);
	if (!check_dir(ctl->dir, owner, &ctl->made_dir, error) || !clear_stale(path, &sa, error))
		return NULL;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0 || bind(ctl->fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "cannot bind control socket %s: %s", path, g_strerror(errno));
		return NULL;
	}
	/* The directory (0750, ours) keeps others out between bind and chmod. */
	if (stat(path, &st) != 0 || chmod(path, 0660) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET, "control socket %s: %s",
			    path, g_strerror(errno));
		unlink(path);
		return NULL;
	}
	ctl->sock_dev = st.st_dev;
	ctl->sock_ino = st.st_ino;
	if (owner != NULL && owner->chown &&
	    (chown(ctl->dir, owner->owner_uid, owner->owner_gid) != 0 ||
	     chown(path, owner->owner_uid, owner->owner_gid) != 0)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "cannot hand control socket %s to uid %u gid %u: %s", path,
			    (unsigned)owner->owner_uid, (unsigned)owner->owner_gid,
			    g_strerror(errno));
		return NULL;
	}
	if (listen(ctl->fd, 128) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_SOCKET,
			    "cannot listen on control socket %s: %s", path, g_strerror(errno));
		return NULL;
	}
	ctl->listen_watch = g_unix_fd_add(ctl->fd, G_IO_IN, on_accept, ctl);
	ctl->sweep = g_timeout_add_seconds(1, on_sweep, ctl);
	return g_steal_pointer(&ctl);
}

void
control_server_free(ControlServer *ctl)
{
	struct stat st;

	if (ctl == NULL)
		return;
	while (ctl->clients != NULL)
		client_free(ctl->clients->data);
	if (ctl->per_uid != NULL)
		g_hash_table_destroy(ctl->per_uid);
	if (ctl->listen_watch != 0)
		g_source_remove(ctl->listen_watch);
	if (ctl->sweep != 0)
		g_source_remove(ctl->sweep);
	if (ctl->fd >= 0) {
		close(ctl->fd);
		/* only our own socket: a successor may have replaced it */
		if (ctl->sock_ino != 0 && lstat(ctl->path, &st) == 0 &&
		    st.st_ino == ctl->sock_ino && st.st_dev == ctl->sock_dev)
			unlink(ctl->path);
	}
	if (ctl->made_dir)
		(void)rmdir(ctl->dir); /* fails when not empty or not ours any more: fine */
	g_free(ctl->path);
	g_free(ctl->dir);
	g_free(ctl);
}

void
control_server_broadcast(ControlServer *ctl, const char *line, gsize len)
{
	for (GList *l = ctl->clients; l != NULL;) {
		Client *c = l->data;
		l = l->next;
		if (!c->follower)
			continue;
		if (client_pending(c) + len > CONTROL_FOLLOW_MAX_PENDING) {
			ctl->st.followers_cut++;
			gint64 now = g_get_monotonic_time();
			if (ctl->cut_log_us == 0 || now - ctl->cut_log_us >= 60 * G_USEC_PER_SEC) {
				ctl->cut_log_us = now;
				g_warning("control: follower uid=%u pid=%d cut: %" G_GSIZE_FORMAT
					  " bytes unread (counted as followers_cut; said at most "
					  "once a minute)",
					  (unsigned)c->peer.uid, (int)c->peer.pid, client_pending(c));
			}
			client_free(c);
			continue;
		}
		g_string_append_len(c->out, line, (gssize)len);
		ctl->st.follow_lines++;
		client_process(c); /* may free c */
	}
}

guint
control_server_followers(const ControlServer *ctl)
{
	return ctl != NULL ? (guint)ctl->st.followers : 0;
}

const char *
control_server_path(const ControlServer *ctl)
{
	return ctl->path;
}

void
control_server_get_stats(const ControlServer *ctl, ControlStats *out)
{
	*out = ctl->st;
}

void
control_server_stats_json(const ControlServer *ctl, GString *out)
{
	const ControlStats *s = &ctl->st;
#define F(name) "\"" #name "\":%" G_GUINT64_FORMAT
	g_string_append_printf(
	    out,
	    F(clients_accepted) "," F(clients_refused) "," F(clients_evicted) "," F(
		clients_active) "," F(clients_timed_out) "," F(clients_dropped) "," F(requests) ","
		F(requests_failed) "," F(requests_too_long) "," F(requests_not_text) "," F(
		    requests_denied) "," F(changes) "," F(bytes_in) "," F(bytes_out) "," F(followers)
		"," F(followers_cut) "," F(follow_lines),
	    s->clients_accepted, s->clients_refused, s->clients_evicted, s->clients_active,
	    s->clients_timed_out,
	    s->clients_dropped, s->requests, s->requests_failed, s->requests_too_long,
	    s->requests_not_text, s->requests_denied, s->changes, s->bytes_in, s->bytes_out,
	    s->followers, s->followers_cut, s->follow_lines);
#undef F
}
