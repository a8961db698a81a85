/* The control socket: command table and request parser (shared with spamflowctl), reply
 * framing, and the server. Each client has a bounded input line and a queue of reply bytes
 * written without blocking; a client is read only while its queue is short, so one that never
 * reads stops being served (and times out) instead of growing the daemon's memory or
 * stalling the main loop that also receives the flows. */
#include "control.h"

#include "alertjson.h"
#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* clang-format off */
G_DEFINE_QUARK(control-error-quark, control_error)
/* clang-format on */

/* Accepts per wake-up: a burst of connections must not keep the loop from the flows. */
#define ACCEPT_BURST 32
/* Read a client's next request only while fewer reply bytes than this wait for it. */
#define OUTPUT_LOW_WATER (64 * 1024)
#define READ_CHUNK 4096

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
		flow_addr_set_v4(out, v4);
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

/* ---- server ---- */

typedef struct {
	Control *ctl;
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
} Client;

struct Control {
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
	GList *clients; /* of Client */
	ControlStats st;
};

void
control_limits_defaults(ControlLimits *lim)
{
	lim->max_clients = 64;
	lim->max_request = 4096;
	lim->idle_timeout_s = 60;
	lim->max_output = 4 * 1024 * 1024;
}

gboolean
control_peer_may_change(const ControlPeer *peer, uid_t daemon_uid)
{
	return peer->uid == 0 || peer->uid == daemon_uid;
}

static void
reply_help(GString *out)
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
answer(Control *ctl, const ControlPeer *peer, const char *line, gsize len, GString *out)
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
	if (req.cmd->changes && !control_peer_may_change(peer, geteuid())) {
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
		reply_help(out);
		return;
	case CONTROL_CMD_VERSION:
		control_reply_begin(out, "version");
		g_string_append_printf(out, ",\"protocol\":%d,\"daemon\":",
				       CONTROL_PROTOCOL_VERSION);
		json_string(out, ctl->ops.daemon_version != NULL ? ctl->ops.daemon_version : "");
		control_reply_end(out);
		return;
	default:
		break;
	}
	gsize start = out->len;
	gboolean ok = ctl->ops.run != NULL &&
		      ctl->ops.run(ctl, &req, peer, out, ctl->ctx, &err);
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
handle_input(Control *ctl, const ControlPeer *peer, GString *in, GString *out, gsize out_sent,
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
	}
	g_string_erase(in, 0, (gssize)off);
	return keep;
}

gboolean
control_feed(Control *ctl, const ControlPeer *peer, GString *inbuf, const guint8 *data, gsize len,
	     GString *out)
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

static void
client_free(Client *c)
{
	Control *ctl = c->ctl;

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
	Control *ctl = c->ctl;

	if (!c->closing && !handle_input(ctl, &c->peer, c->in, c->out, c->out_off, c->eof))
		c->closing = TRUE;
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
	if ((c->closing || (c->eof && c->in->len == 0)) && client_pending(c) == 0) {
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
	Control *ctl = c->ctl;

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

	if (!c->closing && !c->eof && client_pending(c) < OUTPUT_LOW_WATER)
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

static void
refuse(Control *ctl, int fd)
{
	g_autoptr(GString) msg = g_string_new(NULL);
	g_autofree char *text =
	    g_strdup_printf("too many clients (%u): try again later", ctl->lim.max_clients);

	control_reply_error(msg, NULL, text);
	/* best effort: a fresh socket's buffer takes one short line */
	if (send(fd, msg->str, msg->len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
		ctl->st.bytes_out += msg->len;
	close(fd);
	ctl->st.clients_refused++;
}

static gboolean
on_accept(gint fd, GIOCondition cond, gpointer user_data)
{
	Control *ctl = user_data;

	(void)cond;
	for (guint i = 0; i < ACCEPT_BURST; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				g_debug("control: accept: %s", g_strerror(errno));
			break;
		}
		if (ctl->st.clients_active >= ctl->lim.max_clients) {
			refuse(ctl, cfd);
			continue;
		}
		struct ucred cred;
		socklen_t len = sizeof cred;
		Client *c = g_new0(Client, 1);
		c->ctl = ctl;
		c->fd = cfd;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			c->peer.uid = cred.uid;
			c->peer.gid = cred.gid;
			c->peer.pid = cred.pid;
		} else {
			c->peer.uid = (uid_t)-1; /* unknown: read-only */
			c->peer.gid = (gid_t)-1;
			c->peer.pid = 0;
		}
		c->in = g_string_sized_new(256);
		c->out = g_string_sized_new(256);
		c->last_activity_us = g_get_monotonic_time();
		ctl->clients = g_list_prepend(ctl->clients, c);
		ctl->st.clients_accepted++;
		ctl->st.clients_active++;
		client_update(c);
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
on_sweep(gpointer user_data)
{
	Control *ctl = user_data;
	gint64 now = g_get_monotonic_time();
	gint64 idle = (gint64)ctl->lim.idle_timeout_s * G_USEC_PER_SEC;

	for (GList *l = ctl->clients; l != NULL;) {
		Client *c = l->data;
		l = l->next;
		if (now - c->last_activity_us >= idle) {
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

Control *
control_new(const char *path, const ControlLimits *lim, const ControlOwner *owner,
	    const ControlOps *ops, gpointer ctx, GError **error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	g_autoptr(Control) ctl = g_new0(Control, 1);
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
		control_limits_defaults(&ctl->lim);
	ctl->ops = *ops;
	ctl->ctx = ctx;
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
control_free(Control *ctl)
{
	struct stat st;

	if (ctl == NULL)
		return;
	while (ctl->clients != NULL)
		client_free(ctl->clients->data);
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

const char *
control_path(const Control *ctl)
{
	return ctl->path;
}

void
control_get_stats(const Control *ctl, ControlStats *out)
{
	*out = ctl->st;
}

void
control_stats_json(const Control *ctl, GString *out)
{
	const ControlStats *s = &ctl->st;
#define F(name) "\"" #name "\":%" G_GUINT64_FORMAT
	g_string_append_printf(
	    out,
	    F(clients_accepted) "," F(clients_refused) "," F(clients_active) "," F(
		clients_timed_out) "," F(clients_dropped) "," F(requests) "," F(requests_failed) ","
		F(requests_too_long) "," F(requests_not_text) "," F(requests_denied) "," F(
		    changes) "," F(bytes_in) "," F(bytes_out),
	    s->clients_accepted, s->clients_refused, s->clients_active, s->clients_timed_out,
	    s->clients_dropped, s->requests, s->requests_failed, s->requests_too_long,
	    s->requests_not_text, s->requests_denied, s->changes, s->bytes_in, s->bytes_out);
#undef F
}
