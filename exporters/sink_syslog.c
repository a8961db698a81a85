/* Syslog alert sinks: local syslog with key=value lines (our own non-blocking socket to
 * /dev/log, in syslog(3)'s format), and remote RFC 5424 over UDP or TCP (RFC 6587 octet
 * counting). Neither blocks collection: a syslog daemon that stops reading /dev/log costs
 * the events that do not fit its queue, counted. The TCP path: an async connect
 * (GSocketClient), a non-blocking socket watched by the default main context, a bounded
 * queue of framed messages while the server is away, and reconnects with backoff. */
#include "sink_syslog.h"

#include "alertfields.h"
#include "flow.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* ---- facilities and severities ---- */

static const struct {
	const char *name;
	int facility;
} facilities[] = {
    {"auth", LOG_AUTH},	    {"authpriv", LOG_AUTHPRIV}, {"cron", LOG_CRON},
    {"daemon", LOG_DAEMON}, {"ftp", LOG_FTP},		{"kern", LOG_KERN},
    {"lpr", LOG_LPR},	    {"mail", LOG_MAIL},		{"news", LOG_NEWS},
    {"syslog", LOG_SYSLOG}, {"user", LOG_USER},		{"uucp", LOG_UUCP},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},	{"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},	{"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

gboolean
sink_syslog_facility_from_name(const char *name, int *facility, GError **error)
{
	for (gsize i = 0; i < G_N_ELEMENTS(facilities); i++) {
		if (g_ascii_strcasecmp(name, facilities[i].name) == 0) {
			*facility = facilities[i].facility;
			return TRUE;
		}
	}
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
		    "unknown syslog facility '%s' (daemon, user, mail, local0..local7, auth, "
		    "authpriv, cron, ftp, kern, lpr, news, syslog, uucp)",
		    name);
	return FALSE;
}

const char *
sink_syslog_facility_name(int facility)
{
	for (gsize i = 0; i < G_N_ELEMENTS(facilities); i++)
		if (facilities[i].facility == facility)
			return facilities[i].name;
	return NULL;
}

int
sink_syslog_severity(AlertSeverity s)
{
	switch (s) {
	case ALERT_SEV_INFO:
		return LOG_INFO;
	case ALERT_SEV_NOTICE:
		return LOG_NOTICE;
	case ALERT_SEV_WARNING:
		return LOG_WARNING;
	case ALERT_SEV_CRITICAL:
		return LOG_CRIT;
	}
	return LOG_WARNING;
}

/* ---- local: key=value ---- */

static void
kv_value(GString *out, const char *v)
{
	gboolean quote = *v == '\0' || strpbrk(v, " \"\\=") != NULL;

	for (const unsigned char *p = (const unsigned char *)v; *p != '\0' && !quote; p++)
		quote = *p < 0x20 || *p == 0x7f;
	if (!quote) {
		g_string_append(out, v);
		return;
	}
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(out, '\\');
		if (*p < 0x20 || *p == 0x7f)
			g_string_append_printf(out, "\\x%02x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	g_string_append_c(out, '"');
}

static void
add_kv(guint index, const char *name, const char *value, gpointer user_data)
{
	GString *out = user_data;
	(void)index;
	if (value == NULL) /* null: left out */
		return;
	if (out->len > 0)
		g_string_append_c(out, ' ');
	g_string_append_printf(out, "%s=", name);
	kv_value(out, value);
}

void
sink_syslog_format_kv(GString *out, const AlertEvent *ev, const SinkCtx *ctx)
{
	g_autoptr(GString) line = g_string_sized_new(1024);
	alert_fields(ev, ctx->exporter_name, ctx->user_data, add_kv, line);
	g_string_append_len(out, line->str, (gssize)line->len);
}

typedef struct {
	Sink base;
	char *ident;
	char *path; /* _PATH_LOG, or a test's socket */
	int facility;
	int fd;	  /* connected to path, non-blocking; -1 when not */
	int type; /* SOCK_DGRAM, or SOCK_STREAM when path is a stream socket */
	GString *buf;
	GString *msg;
} SinkSyslog;

static void
local_close(SinkSyslog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* Connected, or why not (errno value, 0 when connected). Cheap enough to try per event: a
 * socket(2) and a connect(2) to a local path, both without waiting. */
static int
local_connect(SinkSyslog *l)
{
	int e = 0;
	if (l->fd >= 0)
		return 0;
	l->fd = syslog_local_connect(l->path, &l->type, &e);
	return l->fd >= 0 ? 0 : e;
}

/* Hand the message to the socket without waiting. The event's fate: delivered (events), or
 * an error: nobody listening (ENOENT, ECONNREFUSED), the daemon not reading (EAGAIN: its
 * queue, net.unix.max_dgram_qlen datagrams, is full), too long (EMSGSIZE). */
static void
syslog_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	SinkSyslog *l = (SinkSyslog *)s;
	int d = 0;

	g_string_truncate(l->buf, 0);
	sink_syslog_format_kv(l->buf, ev, ctx);
	g_string_truncate(l->msg, 0);
	syslog_local_format(l->msg,
				 (l->facility & LOG_FACMASK) | sink_syslog_severity(ev->severity),
				 l->ident, (guint)getpid(), time(NULL), l->buf->str);

	SyslogLocalSend r = syslog_local_send(l->path, &l->fd, &l->type, l->msg, &d);
	if (r == SYSLOG_LOCAL_SENT) {
		s->st.events++;
		return;
	}
	s->st.errors++;
	switch (r) {
	case SYSLOG_LOCAL_NO_DAEMON:
		sink_log_error(s, "%s: %s: no syslog daemon is listening, event not delivered",
			       l->path, g_strerror(d));
		break;
	case SYSLOG_LOCAL_SHORT:
		sink_log_error(s,
			       "%s: short write (%d of %" G_GSIZE_FORMAT
			       " bytes), reconnecting; event not delivered",
			       l->path, d, l->msg->len + 1);
		break;
	case SYSLOG_LOCAL_NOT_READING:
		sink_log_error(s, "%s: %s: the syslog daemon is not reading, event dropped",
			       l->path, g_strerror(d));
		break;
	case SYSLOG_LOCAL_TOO_LONG:
		sink_log_error(s,
			       "%s: message of %" G_GSIZE_FORMAT " bytes too long, event dropped",
			       l->path, l->msg->len + (l->type == SOCK_STREAM ? 1 : 0));
		break;
	default:
		sink_log_error(s, "%s: %s: send failed, event not delivered", l->path,
			       g_strerror(d));
		break;
	}
}

/* SIGHUP: connect afresh (a syslog daemon restarted on a new socket); on failure keep the
 * old socket, the next event tries again anyway. */
static gboolean
syslog_reopen(Sink *s, GError **error)
{
	SinkSyslog *l = (SinkSyslog *)s;
	int e = 0, type = SOCK_DGRAM;
	int fd = syslog_local_connect(l->path, &type, &e);

	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
			    "%s: %s: no syslog daemon is listening", l->path, g_strerror(e));
		return FALSE;
	}
	local_close(l);
	l->fd = fd;
	l->type = type;
	return TRUE;
}

static void
syslog_stats_json(const Sink *s, GString *out)
{
	const SinkSyslog *l = (const SinkSyslog *)s;
	g_string_append_printf(out, "\"connected\":%s", l->fd >= 0 ? "true" : "false");
}

static void
syslog_free(Sink *s)
{
	SinkSyslog *l = (SinkSyslog *)s;
	local_close(l);
	g_free(l->ident);
	g_free(l->path);
	if (l->buf != NULL)
		g_string_free(l->buf, TRUE);
	if (l->msg != NULL)
		g_string_free(l->msg, TRUE);
	g_free(l);
}

static const SinkOps syslog_ops = {.kind = "syslog",
				   .write = syslog_write,
				   .reopen = syslog_reopen,
				   .stats_json = syslog_stats_json,
				   .free = syslog_free};

Sink *
sink_syslog_new_at(const char *path, const char *ident, int facility, GError **error)
{
	struct sockaddr_un addr;

	if (sink_syslog_facility_name(facility) == NULL) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "syslog facility %d is not a known facility", facility);
		return NULL;
	}
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof addr.sun_path) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "syslog socket '%s': not a socket path (1-%zu bytes)",
			    path != NULL ? path : "", sizeof addr.sun_path - 1);
		return NULL;
	}
	if (ident == NULL || *ident == '\0')
		ident = "spamflowd";
	g_autofree char *name =
	    g_strdup_printf("%s.%s", ident, sink_syslog_facility_name(facility));
	SinkSyslog *l = g_new0(SinkSyslog, 1);
	sink_init(&l->base, &syslog_ops, name);
	l->ident = g_strdup(ident);
	l->path = g_strdup(path);
	l->facility = facility;
	l->fd = -1;
	l->type = SOCK_DGRAM;
	l->buf = g_string_sized_new(1024);
	l->msg = g_string_sized_new(1024);
	int e = local_connect(l); /* now, as LOG_NDELAY did */
	if (e != 0)
		g_warning("syslog sink '%s': %s: %s: no syslog daemon listening; events are "
			  "counted as errors until one is",
			  name, l->path, g_strerror(e));
	return &l->base;
}

Sink *
sink_syslog_new(const char *ident, int facility, GError **error)
{
	return sink_syslog_new_at(_PATH_LOG, ident, facility, error);
}

/* ---- RFC 5424 ---- */

/* PRINTUSASCII (%d33-126), at most max characters; "-" (NILVALUE) when empty. */
static void
printusascii(GString *out, const char *s, gsize max)
{
	gsize n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n < max; p++, n++)
		g_string_append_c(out, *p >= 33 && *p <= 126 ? (char)*p : '_');
	if (n == 0)
		g_string_append_c(out, '-');
}

void
sink_syslog_sd_value(GString *out, const char *value)
{
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		/* RFC 5424 6.3.3: '"', '\' and ']' MUST be escaped inside PARAM-VALUE */
		if (*p == '"' || *p == '\\' || *p == ']')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
	}
}

static void
add_sd_param(guint index, const char *name, const char *value, gpointer user_data)
{
	GString *out = user_data;
	(void)index;
	if (value == NULL)
		return;
	/* the names are SD-NAMEs already: <= 32 printable ASCII, no '=', ' ', ']' or '"' */
	g_string_append_printf(out, " %s=\"", name);
	sink_syslog_sd_value(out, value);
	g_string_append_c(out, '"');
}

void
sink_syslog_format_5424(GString *out, const AlertEvent *ev, const SinkCtx *ctx, int facility,
			const char *hostname, const char *app_name, guint pid, gint64 time_us)
{
	time_t secs = (time_t)(time_us / G_USEC_PER_SEC);
	struct tm tm;
	char stamp[64] = "-";
	char host[64];

	if (gmtime_r(&secs, &tm) != NULL) {
		char whole[32];
		strftime(whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &tm);
		/* RFC 5424 6.2.3: TIME-SECFRAC up to 6 digits, then Z for UTC */
		g_snprintf(stamp, sizeof stamp, "%s.%03dZ", whole,
			   (int)((time_us % G_USEC_PER_SEC) / 1000));
	}
	/* RFC 5424 6.2.1: PRI = facility * 8 + severity; LOG_DAEMON etc. are already * 8 */
	g_string_append_printf(
	    out, "<%d>1 %s ", (facility & LOG_FACMASK) | sink_syslog_severity(ev->severity), stamp);
	printusascii(out, hostname != NULL ? hostname : "", 255);
	g_string_append_c(out, ' ');
	printusascii(out, app_name != NULL ? app_name : "", 48);
	g_string_append_printf(out, " %u %s [" SINK_SYSLOG_SD_ID, pid, alert_kind_name(ev->event));
	alert_fields(ev, ctx->exporter_name, ctx->user_data, add_sd_param, out);
	g_string_append_printf(
	    out, "] %s %s host=%s severity=%s level=", alert_kind_name(ev->event),
	    alert_reason_name(ev->reason), flow_addr_str(ev->host, host, sizeof host),
	    alert_severity_name(ev->severity));
	char lvl[G_ASCII_DTOSTR_BUF_SIZE];
	g_string_append(out, g_ascii_formatd(lvl, sizeof lvl, "%.3f", ev->level));
}

void
sink_syslog_frame(GString *out, const char *msg, gsize len)
{
	g_string_append_printf(out, "%" G_GSIZE_FORMAT " ", len);
	g_string_append_len(out, msg, (gssize)len);
}

/* ---- remote ---- */

gboolean
sink_syslog_parse_url(const char *url, SinkSyslogTransport *transport, char **host, guint16 *port,
		      GError **error)
{
	const char *rest;
	g_autofree char *h = NULL;
	const char *portstr = NULL;

	if (g_str_has_prefix(url, "udp://")) {
		*transport = SINK_SYSLOG_UDP;
		rest = url + 6;
	} else if (g_str_has_prefix(url, "tcp://")) {
		*transport = SINK_SYSLOG_TCP;
		rest = url + 6;
	} else {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "remote syslog '%s': not udp://host[:port] or tcp://host[:port]", url);
		return FALSE;
	}
	if (rest[0] == '[') {
		const char *end = strchr(rest, ']');
		if (end == NULL || end == rest + 1) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "remote syslog '%s': unterminated '[' in the address", url);
			return FALSE;
		}
		h = g_strndup(rest + 1, (gsize)(end - rest - 1));
		g_autoptr(GInetAddress) a = g_inet_address_new_from_string(h);
		if (a == NULL || g_inet_address_get_family(a) != G_SOCKET_FAMILY_IPV6) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "remote syslog '%s': '%s' is not an IPv6 address", url, h);
			return FALSE;
		}
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0') {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "remote syslog '%s': unexpected text after ']'", url);
			return FALSE;
		}
	} else {
		const char *colon = strchr(rest, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "remote syslog '%s': an IPv6 address needs brackets: "
				    "tcp://[2001:db8::1]:514",
				    url);
			return FALSE;
		}
		h = colon != NULL ? g_strndup(rest, (gsize)(colon - rest)) : g_strdup(rest);
		if (colon != NULL)
			portstr = colon + 1;
		for (const char *c = h; *c != '\0'; c++) {
			if (!g_ascii_isalnum(*c) && *c != '.' && *c != '-' && *c != '_') {
				g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					    "remote syslog '%s': '%s' is not a host name or "
					    "address",
					    url, h);
				return FALSE;
			}
		}
	}
	if (*h == '\0') {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "remote syslog '%s': no host", url);
		return FALSE;
	}
	guint64 p = SINK_SYSLOG_DEFAULT_PORT;
	if (portstr != NULL && !g_ascii_string_to_unsigned(portstr, 10, 1, 65535, &p, NULL)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "remote syslog '%s': '%s' is not a port (1-65535)", url, portstr);
		return FALSE;
	}
	*port = (guint16)p;
	*host = g_steal_pointer(&h);
	return TRUE;
}

typedef struct {
	Sink base;
	SinkSyslogTransport transport;
	char *host;
	guint16 port;
	char *app_name;
	int facility;
	GString *buf;
	/* UDP */
	GSocket *udp;
	GSocketAddress *udp_addr;
	/* TCP */
	GQueue queue; /* GBytes: framed messages not yet written completely */
	guint queue_max;
	gsize head_off; /* bytes of the queue head already written on this connection */
	GSocketClient *client;
	GCancellable *cancel;
	gboolean connecting;
	GSocketConnection *conn;
	GSocket *sock;
	GSource *out_src; /* writable: only while the queue is not empty */
	GSource *in_src;  /* readable: the server closed (it never sends) */
	guint retry_id;
	guint backoff_s;
	gboolean ever_connected;
	guint64 connects, reconnects, connect_failures, disconnects;
} SinkRemote;

static void tcp_pump(SinkRemote *r);
static void tcp_connect(SinkRemote *r);

static void
destroy_source(GSource **src)
{
	if (*src == NULL)
		return;
	g_source_destroy(*src);
	g_source_unref(*src);
	*src = NULL;
}

static gboolean
on_retry(gpointer user_data)
{
	SinkRemote *r = user_data;
	r->retry_id = 0;
	tcp_connect(r);
	return G_SOURCE_REMOVE;
}

static void
schedule_retry(SinkRemote *r)
{
	if (r->retry_id != 0)
		return;
	r->retry_id =
	    g_timeout_add_seconds_full(G_PRIORITY_DEFAULT, r->backoff_s, on_retry, r, NULL);
	r->backoff_s = MIN(r->backoff_s * 2, SINK_SYSLOG_BACKOFF_MAX_S);
}

static void
tcp_disconnect(SinkRemote *r, const char *why)
{
	destroy_source(&r->out_src);
	destroy_source(&r->in_src);
	if (r->conn != NULL) {
		g_io_stream_close(G_IO_STREAM(r->conn), NULL, NULL);
		g_clear_object(&r->conn);
	}
	r->sock = NULL;
	/* A message cut off mid-write goes again whole on the next connection: the receiver
	 * drops the truncated frame with the old connection. */
	r->head_off = 0;
	r->disconnects++;
	sink_log_error(&r->base, "%s; %u events queued, reconnecting", why, r->queue.length);
	schedule_retry(r);
}

/* The server never sends: readable means it closed the connection (or an error). */
static gboolean
check_peer(SinkRemote *r)
{
	char buf[512];
	g_autoptr(GError) err = NULL;

	for (;;) {
		gssize n = g_socket_receive(r->sock, buf, sizeof buf, NULL, &err);
		if (n > 0)
			continue;
		if (n == 0) {
			tcp_disconnect(r, "server closed the connection");
			return FALSE;
		}
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
			return TRUE;
		g_autofree char *why = g_strdup_printf("connection lost: %s", err->message);
		tcp_disconnect(r, why);
		return FALSE;
	}
}

static gboolean
on_readable(GSocket *sock, GIOCondition cond, gpointer user_data)
{
	SinkRemote *r = user_data;
	(void)sock;
	(void)cond;
	if (!check_peer(r))
		return G_SOURCE_REMOVE;
	return G_SOURCE_CONTINUE;
}

static gboolean
on_writable(GSocket *sock, GIOCondition cond, gpointer user_data)
{
	SinkRemote *r = user_data;
	(void)sock;
	(void)cond;
	tcp_pump(r);
	return G_SOURCE_CONTINUE;
}

/* Write queued messages until the queue is empty or the socket would block. */
static void
tcp_pump(SinkRemote *r)
{
	if (r->sock == NULL)
		return;
	/* catch a closed server before writing into a dead connection */
	if ((g_socket_condition_check(r->sock, G_IO_IN | G_IO_HUP | G_IO_ERR) != 0) &&
	    !check_peer(r))
		return;
	while (!g_queue_is_empty(&r->queue)) {
		GBytes *head = g_queue_peek_head(&r->queue);
		gsize len;
		const char *data = g_bytes_get_data(head, &len);
		g_autoptr(GError) err = NULL;
		gssize n =
		    g_socket_send(r->sock, data + r->head_off, len - r->head_off, NULL, &err);

		if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
			if (r->out_src == NULL) {
				r->out_src = g_socket_create_source(r->sock, G_IO_OUT, NULL);
				g_source_set_callback(r->out_src, G_SOURCE_FUNC(on_writable), r,
						      NULL);
				g_source_attach(r->out_src, NULL);
			}
			return;
		}
		if (n < 0) {
			g_autofree char *why = g_strdup_printf("write failed: %s", err->message);
			tcp_disconnect(r, why);
			return;
		}
		r->head_off += (gsize)n; /* a partial write continues from here */
		if (r->head_off == len) {
			g_bytes_unref(g_queue_pop_head(&r->queue));
			r->head_off = 0;
		}
	}
	destroy_source(&r->out_src);
}

static void
on_connected(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) err = NULL;
	GSocketConnection *conn =
	    g_socket_client_connect_finish(G_SOCKET_CLIENT(source), res, &err);

	/* cancelled: the sink is gone, user_data with it */
	if (conn == NULL && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	SinkRemote *r = user_data;
	r->connecting = FALSE;
	if (conn == NULL) {
		r->connect_failures++;
		sink_log_error(&r->base, "cannot connect: %s; %u events queued, retrying in %u s",
			       err->message, r->queue.length, r->backoff_s);
		schedule_retry(r);
		return;
	}
	r->conn = conn;
	r->sock = g_socket_connection_get_socket(conn);
	g_socket_set_blocking(r->sock, FALSE);
	g_socket_set_timeout(r->sock, 0);
	r->connects++;
	if (r->ever_connected) {
		r->reconnects++;
		g_message("syslog-remote sink '%s': connected again, sending %u queued events",
			  r->base.name, r->queue.length);
	}
	r->ever_connected = TRUE;
	r->backoff_s = SINK_SYSLOG_BACKOFF_MIN_S;
	r->head_off = 0;
	r->in_src = g_socket_create_source(r->sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
	g_source_set_callback(r->in_src, G_SOURCE_FUNC(on_readable), r, NULL);
	g_source_attach(r->in_src, NULL);
	tcp_pump(r);
}

static void
tcp_connect(SinkRemote *r)
{
	if (r->connecting || r->conn != NULL || r->retry_id != 0)
		return;
	g_autoptr(GSocketConnectable) addr = g_network_address_new(r->host, r->port);
	r->connecting = TRUE;
	g_socket_client_connect_async(r->client, addr, r->cancel, on_connected, r);
}

static void
remote_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	SinkRemote *r = (SinkRemote *)s;

	g_string_truncate(r->buf, 0);
	sink_syslog_format_5424(r->buf, ev, ctx, r->facility, g_get_host_name(), r->app_name,
				(guint)getpid(), g_get_real_time());
	if (r->transport == SINK_SYSLOG_UDP) {
		g_autoptr(GError) err = NULL;
		/* RFC 5426 3.1: one message per datagram */
		if (g_socket_send_to(r->udp, r->udp_addr, r->buf->str, r->buf->len, NULL, &err) ==
		    (gssize)r->buf->len) {
			s->st.events++;
			return;
		}
		s->st.errors++;
		sink_log_error(s, "send failed: %s", err != NULL ? err->message : "short send");
		return;
	}
	if (r->queue.length >= r->queue_max) {
		s->st.dropped++;
		sink_log_error(s, "queue full (%u events): event dropped", r->queue_max);
		return;
	}
	g_autoptr(GString) framed = g_string_sized_new(r->buf->len + 8);
	sink_syslog_frame(framed, r->buf->str, r->buf->len);
	gsize flen = framed->len;
	g_queue_push_tail(&r->queue,
			  g_bytes_new_take(g_string_free(g_steal_pointer(&framed), FALSE), flen));
	s->st.events++;
	if (r->sock != NULL)
		tcp_pump(r);
	else
		tcp_connect(r);
}

static void
remote_stats_json(const Sink *s, GString *out)
{
	const SinkRemote *r = (const SinkRemote *)s;
	g_string_append_printf(
	    out,
	    "\"transport\":\"%s\",\"queue\":%u,\"queue_max\":%u,\"connected\":%s,"
	    "\"connects\":%" G_GUINT64_FORMAT ",\"reconnects\":%" G_GUINT64_FORMAT
	    ",\"connect_failures\":%" G_GUINT64_FORMAT ",\"disconnects\":%" G_GUINT64_FORMAT,
	    r->transport == SINK_SYSLOG_TCP ? "tcp" : "udp", r->queue.length, r->queue_max,
	    r->sock != NULL ? "true" : "false", r->connects, r->reconnects, r->connect_failures,
	    r->disconnects);
}

static void
remote_free(Sink *s)
{
	SinkRemote *r = (SinkRemote *)s;
	if (r->cancel != NULL)
		g_cancellable_cancel(r->cancel);
	if (r->retry_id != 0)
		g_source_remove(r->retry_id);
	destroy_source(&r->out_src);
	destroy_source(&r->in_src);
	if (r->conn != NULL)
		g_io_stream_close(G_IO_STREAM(r->conn), NULL, NULL);
	g_clear_object(&r->conn);
	g_clear_object(&r->client);
	g_clear_object(&r->cancel);
	g_clear_object(&r->udp);
	g_clear_object(&r->udp_addr);
	g_queue_clear_full(&r->queue, (GDestroyNotify)g_bytes_unref);
	if (r->buf != NULL)
		g_string_free(r->buf, TRUE);
	g_free(r->host);
	g_free(r->app_name);
	g_free(r);
}

static guint remote_flush(Sink *s, guint timeout_ms);

static const SinkOps remote_ops = {.kind = "syslog-remote",
				   .write = remote_write,
				   .stats_json = remote_stats_json,
				   .flush = remote_flush,
				   .free = remote_free};

gboolean
sink_is_syslog_remote(const Sink *s)
{
	return s != NULL && s->ops == &remote_ops;
}

/* UDP: resolve once, here (blocking: this runs at start-up). */
static gboolean
udp_setup(SinkRemote *r, GError **error)
{
	g_autoptr(GInetAddress) literal = g_inet_address_new_from_string(r->host);
	g_autoptr(GInetAddress) addr = NULL;

	if (literal != NULL) {
		addr = g_steal_pointer(&literal);
	} else {
		g_autoptr(GResolver) res = g_resolver_get_default();
		g_autoptr(GError) err = NULL;
		GList *list = g_resolver_lookup_by_name(res, r->host, NULL, &err);
		if (list == NULL) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				    "remote syslog '%s': cannot resolve '%s': %s", r->base.name,
				    r->host, err->message);
			return FALSE;
		}
		addr = g_object_ref(list->data);
		g_resolver_free_addresses(list);
	}
	r->udp_addr = g_inet_socket_address_new(addr, r->port);
	r->udp = g_socket_new(g_inet_address_get_family(addr), G_SOCKET_TYPE_DATAGRAM,
			      G_SOCKET_PROTOCOL_UDP, error);
	if (r->udp == NULL) {
		g_prefix_error(error, "remote syslog '%s': ", r->base.name);
		return FALSE;
	}
	g_socket_set_blocking(r->udp, FALSE);
	return TRUE;
}

Sink *
sink_syslog_remote_new(const char *url, guint queue_max, GError **error)
{
	SinkSyslogTransport transport;
	g_autofree char *host = NULL;
	guint16 port;

	if (!sink_syslog_parse_url(url, &transport, &host, &port, error))
		return NULL;
	SinkRemote *r = g_new0(SinkRemote, 1);
	sink_init(&r->base, &remote_ops, url);
	r->transport = transport;
	r->host = g_steal_pointer(&host);
	r->port = port;
	r->app_name = g_strdup("spamflowd");
	r->facility = LOG_DAEMON;
	r->buf = g_string_sized_new(2048);
	r->queue_max = queue_max > 0 ? queue_max : SINK_SYSLOG_QUEUE_DEFAULT;
	r->backoff_s = SINK_SYSLOG_BACKOFF_MIN_S;
	g_queue_init(&r->queue);
	if (transport == SINK_SYSLOG_UDP) {
		if (!udp_setup(r, error)) {
			sink_free(&r->base);
			return NULL;
		}
		return &r->base;
	}
	r->client = g_socket_client_new();
	g_socket_client_set_timeout(r->client, 10); /* a black hole must not stall forever */
	r->cancel = g_cancellable_new();
	tcp_connect(r); /* completes on the main loop; a down server only queues */
	return &r->base;
}

void
sink_syslog_remote_set_origin(Sink *s, const char *app_name, int facility)
{
	if (!sink_is_syslog_remote(s))
		return;
	SinkRemote *r = (SinkRemote *)s;
	g_free(r->app_name);
	r->app_name = g_strdup(app_name != NULL && *app_name != '\0' ? app_name : "spamflowd");
	r->facility = facility;
}

guint
sink_syslog_remote_queue_len(const Sink *s)
{
	return sink_is_syslog_remote(s) ? ((const SinkRemote *)s)->queue.length : 0;
}

gboolean
sink_syslog_remote_connected(const Sink *s)
{
	return sink_is_syslog_remote(s) && ((const SinkRemote *)s)->sock != NULL;
}

static gboolean
wake(gpointer user_data)
{
	(void)user_data;
	return G_SOURCE_REMOVE;
}

gboolean
sink_syslog_remote_flush(Sink *s, guint timeout_ms)
{
	if (!sink_is_syslog_remote(s))
		return TRUE;
	SinkRemote *r = (SinkRemote *)s;
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	if (r->transport == SINK_SYSLOG_UDP)
		return TRUE;
	/* at exit, do not sit out a backoff: try now */
	if (!g_queue_is_empty(&r->queue) && r->retry_id != 0) {
		g_source_remove(r->retry_id);
		r->retry_id = 0;
		tcp_connect(r);
	}
	while (!g_queue_is_empty(&r->queue)) {
		gint64 left = deadline - g_get_monotonic_time();
		if (left <= 0)
			break;
		/* wake up at least every 50 ms to look at the clock */
		GSource *t = g_timeout_source_new((guint)MIN(left / 1000 + 1, 50));
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
	}
	return g_queue_is_empty(&r->queue);
}

/* SinkOps.flush: the events still queued after trying. */
static guint
remote_flush(Sink *s, guint timeout_ms)
{
	(void)sink_syslog_remote_flush(s, timeout_ms);
	return sink_syslog_remote_queue_len(s);
}
