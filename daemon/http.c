/* The HTTP endpoint's server (http.h). libmicrohttpd runs its one thread for the sockets,
 * TLS, parsing, access control and password checks, so no client ever holds the main loop
 * that receives the flows; a request that passes is handed to the main loop, whose handler
 * renders the reply in memory, and the server's thread sends it. Each connection has a
 * deadline (the request from its first byte to its last reply byte within timeout_s) kept
 * by a one-second sweep that shuts the socket of a slow client down: libmicrohttpd's own
 * timeout is for idle connections only, and a client that sends one byte a second would
 * never meet it. */
#include "http.h"

#include "listener.h"
#include "netset.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* clang-format off */
G_DEFINE_QUARK(http-error-quark, http_error)
/* clang-format on */

#define CSP_API "default-src 'none'; frame-ancestors 'none'"
#define REALM "Basic realm=\"spamflow\", charset=\"UTF-8\""
#define MAX_ARGS 16	    /* query arguments a request may have */
#define LOG_PER_MINUTE 5    /* refusal log lines */
#define HTTP_RENDER_SHARE 9 /* after a render of T, none for this x T (at most a tenth) */

/* What the main loop and the server's thread share about the jobs in flight: it outlives
 * the server while a job refers to it. */
typedef struct {
	gint ref;
	GMutex lock;
	GCond cond;
	gboolean stopping;
	GList *suspended; /* Job* whose connection waits for a deferred reply (a ref each) */
} Sync;

/* One request handed to the main loop. */
typedef struct {
	gint ref;
	Sync *sync;
	const HttpRoute *route;
	char *path;
	char **args; /* name, value pairs */
	gboolean head;
	HttpReply reply;
	gboolean done, abandoned;
	gint64 render_us; /* the main loop's time on it */
	/* a deferred reply: asked by the handler, then the connection suspended until it
	 * comes (or the timeout) */
	gboolean defer_asked, deferred, suspended;
	struct MHD_Connection *conn;
	gint64 suspended_us;
} Job;

/* One TCP connection (libmicrohttpd's socket context). */
typedef struct {
	int fd;
	gint64 start_us;   /* connection start, or the end of the last request */
	guint done;	   /* requests answered */
	gboolean uri_seen; /* a request line was read ... */
	gboolean handled;  /* ... and the request reached the handler */
	gboolean cut;	   /* shut down by the sweep */
	char peer[64];
} Conn;

struct HttpServer {
	struct MHD_Daemon *mhd;
	int listen_fd;
	unsigned int flags; /* libmicrohttpd's, for http_server_start() */
	char *address;
	gboolean tls;
	char *tls_cert, *tls_key; /* PEM text, kept while the daemon runs */
	NetSet *allow;
	HttpAuth *auth; /* NULL: no password */
	HttpConfig cfg;
	const HttpRoute *routes;
	guint n_routes;
	Sync *sync;
	guint sweep;
	/* under sync->lock: */
	gint64 render_free_us; /* no render before this (monotonic) */
	GList *conns;	       /* of Conn */
	HttpStats st;
	gint64 log_window_us;
	guint log_in_window;
	guint64 log_held;
};

static Sync *
sync_ref(Sync *s)
{
	g_atomic_int_inc(&s->ref);
	return s;
}

static void
sync_unref(Sync *s)
{
	if (!g_atomic_int_dec_and_test(&s->ref))
		return;
	g_mutex_clear(&s->lock);
	g_cond_clear(&s->cond);
	g_free(s);
}

static void
job_unref(gpointer p)
{
	Job *j = p;
	if (!g_atomic_int_dec_and_test(&j->ref))
		return;
	sync_unref(j->sync);
	g_free(j->path);
	g_strfreev(j->args);
	if (j->reply.body != NULL)
		g_string_free(j->reply.body, TRUE);
	if (j->reply.fd >= 0)
		close(j->reply.fd);
	g_free(j);
}

/* A refusal worth telling the admin: LOG_PER_MINUTE lines a minute, then a count. Called
 * with sync->lock held. */
static void log_refusal(HttpServer *srv, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void
log_refusal(HttpServer *srv, const char *fmt, ...)
{
	gint64 now = g_get_monotonic_time();
	va_list ap;

	if (now - srv->log_window_us >= 60 * G_USEC_PER_SEC) {
		srv->log_window_us = now;
		srv->log_in_window = 0;
	}
	if (srv->log_in_window >= LOG_PER_MINUTE) {
		srv->log_held++;
		return;
	}
	srv->log_in_window++;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_autofree char *more =
	    srv->log_held > 0
		? g_strdup_printf(" (and %" G_GUINT64_FORMAT " more refusals not logged; see "
				  "spamflowctl stats, \"http\")",
				  srv->log_held)
		: g_strdup("");
	srv->log_held = 0;
	g_warning("http: %s%s", msg, more);
}

static void
peer_text(const struct sockaddr *sa, char *buf, gsize size)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
		g_snprintf(buf, size, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
		g_snprintf(buf, size, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		g_strlcpy(buf, "?", size);
	}
}

/* 16 bytes, IPv4-mapped for IPv4 (as NetSet holds them) */
static gboolean
peer_addr(const struct sockaddr *sa, guint8 out[16])
{
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &in->sin_addr, 4);
		return TRUE;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		memcpy(out, &in6->sin6_addr, 16);
		return TRUE;
	}
	return FALSE;
}

static Conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i != NULL ? i->socket_context : NULL;
}

/* ---- libmicrohttpd's callbacks (the server's thread) ---- */

/* Over max_clients: closed before any byte is read (libmicrohttpd cannot answer here). */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	HttpServer *srv = cls;
	enum MHD_Result r = MHD_YES;

	(void)addrlen;
	g_mutex_lock(&srv->sync->lock);
	if (srv->st.active >= srv->cfg.max_clients) {
		char peer[64];
		srv->st.refused_clients++;
		peer_text(addr, peer, sizeof peer);
		log_refusal(srv, "connection from %s closed: %u connections already (max_clients)",
			    peer, srv->cfg.max_clients);
		r = MHD_NO;
	}
	g_mutex_unlock(&srv->sync->lock);
	return r;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
	      enum MHD_ConnectionNotificationCode what)
{
	HttpServer *srv = cls;
	Conn *conn = *socket_context;

	g_mutex_lock(&srv->sync->lock);
	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		conn = g_new0(Conn, 1);
		conn->fd = fi != NULL ? fi->connect_fd : -1;
		conn->start_us = g_get_monotonic_time();
		peer_text(ai != NULL ? ai->client_addr : NULL, conn->peer, sizeof conn->peer);
		*socket_context = conn;
		srv->conns = g_list_prepend(srv->conns, conn);
		srv->st.connections++;
		srv->st.active++;
	} else if (conn != NULL) {
		/* before libmicrohttpd closes the fd: the sweep never touches it after this */
		if (conn->uri_seen && !conn->handled && !conn->cut) {
			srv->st.bad_requests++;
			log_refusal(srv,
				    "a request from %s was refused by libmicrohttpd "
				    "(malformed, or headers over the connection's memory)",
				    conn->peer);
		}
		srv->conns = g_list_remove(srv->conns, conn);
		srv->st.active--;
		g_free(conn);
		*socket_context = NULL;
	}
	g_mutex_unlock(&srv->sync->lock);
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	HttpServer *srv = cls;

	(void)uri;
	g_mutex_lock(&srv->sync->lock);
	Conn *conn = conn_of(c);
	if (conn != NULL)
		conn->uri_seen = TRUE;
	g_mutex_unlock(&srv->sync->lock);
	return NULL;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	HttpServer *srv = cls;

	(void)toe;
	if (con_cls != NULL && *con_cls != NULL && *con_cls != srv) {
		job_unref(*con_cls); /* a connection that went while its reply was deferred */
		*con_cls = NULL;
	}
	g_mutex_lock(&srv->sync->lock);
	Conn *conn = conn_of(c);
	if (conn != NULL) {
		conn->start_us = g_get_monotonic_time();
		conn->done++;
		conn->uri_seen = conn->handled = FALSE;
	}
	g_mutex_unlock(&srv->sync->lock);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	g_debug("http: libmicrohttpd: %s", g_strchomp(msg));
}

/* ---- replies ---- */

static void
security_headers(struct MHD_Response *r, const char *csp)
{
	MHD_add_response_header(r, "Content-Security-Policy", csp != NULL ? csp : CSP_API);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

/* Queue the reply's body (taken: the GString, or the fd, which libmicrohttpd closes) with
 * its status and the headers every reply carries. */
static enum MHD_Result
send_reply(struct MHD_Connection *c, HttpReply *rp, gboolean conn_close)
{
	struct MHD_Response *r;

	if (rp->fd >= 0) {
		/* streamed from the file as the client reads (sendfile() without TLS) */
		r = MHD_create_response_from_fd64(rp->fd_size, rp->fd);
		if (r == NULL)
			close(rp->fd);
		rp->fd = -1;
	} else if (rp->static_data != NULL) {
		r = MHD_create_response_from_buffer(rp->static_len, (void *)rp->static_data,
						    MHD_RESPMEM_PERSISTENT);
	} else {
		gsize len = rp->body->len;
		char *data = g_string_free(g_steal_pointer(&rp->body), FALSE);
		r = MHD_create_response_from_buffer_with_free_callback(len, data, g_free);
		if (r == NULL)
			g_free(data);
	}
	if (rp->body != NULL)
		g_string_free(g_steal_pointer(&rp->body), TRUE);
	if (r == NULL)
		return MHD_NO;
	security_headers(r, rp->csp);
	MHD_add_response_header(r, "Content-Type", rp->content_type);
	if (rp->no_store)
		MHD_add_response_header(r, "Cache-Control", "no-store");
	else if (rp->cache != NULL)
		MHD_add_response_header(r, "Cache-Control", rp->cache);
	if (rp->disposition[0] != '\0')
		MHD_add_response_header(r, "Content-Disposition", rp->disposition);
	if (rp->status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", REALM);
	if (rp->status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	if (conn_close)
		MHD_add_response_header(r, "Connection", "close");
	enum MHD_Result ret = MHD_queue_response(c, rp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
reply_init(HttpReply *rp)
{
	*rp = (HttpReply){.status = MHD_HTTP_OK,
			  .content_type = "text/plain; charset=utf-8",
			  .body = g_string_sized_new(4096),
			  .fd = -1};
}

static enum MHD_Result
send_text(struct MHD_Connection *c, guint status, gboolean conn_close, const char *text)
{
	HttpReply rp = {.status = status,
			.content_type = "text/plain; charset=utf-8",
			.no_store = TRUE,
			.body = g_string_new(text),
			.fd = -1};
	g_string_append_c(rp.body, '\n');
	return send_reply(c, &rp, conn_close);
}

/* URL and headers, as the client sent them give or take the separators. */
static enum MHD_Result
add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	gsize *n = cls;
	(void)kind;
	*n += strlen(key) + (value != NULL ? strlen(value) : 0) + 4;
	return MHD_YES;
}

typedef struct {
	GPtrArray *v;
	gboolean too_many;
} Args;

static enum MHD_Result
add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	Args *a = cls;
	(void)kind;
	if (a->v->len >= 2 * MAX_ARGS) {
		a->too_many = TRUE;
		return MHD_NO;
	}
	g_ptr_array_add(a->v, g_strdup(key));
	g_ptr_array_add(a->v, g_strdup(value != NULL ? value : ""));
	return MHD_YES;
}

static const HttpRoute *
find_route(const HttpServer *srv, const char *path)
{
	for (guint i = 0; i < srv->n_routes; i++) {
		const char *p = srv->routes[i].path;
		gsize n = strlen(p);
		if (n > 0 && p[n - 1] == '/' ? strncmp(path, p, n) == 0 : strcmp(path, p) == 0)
			return &srv->routes[i];
	}
	return NULL;
}

/* On the main loop: render the job's reply, unless the server gave up on it. */
static gboolean
job_run(gpointer data)
{
	Job *j = data;
	HttpRequest req = {.path = j->path, .args = (const char *const *)j->args, .head = j->head};
	HttpReply reply;

	reply_init(&reply);
	g_mutex_lock(&j->sync->lock);
	gboolean skip = j->abandoned || j->sync->stopping;
	g_mutex_unlock(&j->sync->lock);
	if (skip) {
		g_string_free(reply.body, TRUE);
		return G_SOURCE_REMOVE;
	}
	gint64 start = g_get_monotonic_time();
	reply.job_ = j;
	j->route->fn(&req, &reply, j->route->data);
	reply.job_ = NULL;
	g_mutex_lock(&j->sync->lock);
	j->render_us = MAX(g_get_monotonic_time() - start, 1);
	j->reply = reply;
	if (j->defer_asked)
		j->deferred = TRUE; /* the server's thread suspends the connection */
	else
		j->done = TRUE;
	g_cond_broadcast(&j->sync->cond);
	g_mutex_unlock(&j->sync->lock);
	return G_SOURCE_REMOVE;
}

HttpDeferred *
http_reply_defer(HttpReply *reply)
{
	Job *j = reply->job_;

	if (j == NULL || j->defer_asked)
		return NULL;
	j->defer_asked = TRUE; /* read under the lock once the handler returned */
	g_atomic_int_inc(&j->ref);
	return (HttpDeferred *)j;
}

/* Under sync->lock: the reply of a suspended job is in; TRUE when its connection is to be
 * resumed (outside the lock: libmicrohttpd's own lock is taken). */
static gboolean
job_finish_locked(Job *j, guint status, const char *body, gsize len)
{
	if (j->done)
		return FALSE;
	j->reply.status = status;
	if (j->reply.body == NULL)
		j->reply.body = g_string_new(NULL);
	g_string_truncate(j->reply.body, 0);
	g_string_append_len(j->reply.body, body, (gssize)len);
	j->done = TRUE;
	g_cond_broadcast(&j->sync->cond);
	if (!j->suspended)
		return FALSE;
	j->sync->suspended = g_list_remove(j->sync->suspended, j);
	return TRUE;
}

void
http_deferred_reply(HttpDeferred *d, guint status, const char *body, gsize len)
{
	Job *j = (Job *)d;

	g_mutex_lock(&j->sync->lock);
	gboolean resume = !j->abandoned && !j->sync->stopping &&
			  job_finish_locked(j, status, body, len);
	struct MHD_Connection *c = j->conn;
	g_mutex_unlock(&j->sync->lock);
	if (resume) {
		MHD_resume_connection(c);
		job_unref(j); /* the suspended list's */
	}
	job_unref(j); /* the deferral's */
}

/* Hand the request to the main loop and wait for its reply (at most timeout_s). */
static enum MHD_Result
serve(HttpServer *srv, struct MHD_Connection *c, const HttpRoute *route, const char *url,
      gboolean head, char **args, void **con_cls)
{
	Job *j = g_new0(Job, 1);
	gint64 deadline = g_get_monotonic_time() + (gint64)srv->cfg.timeout_s * G_USEC_PER_SEC;

	j->ref = 2; /* this thread's, the main loop's */
	j->reply.fd = -1;
	j->sync = sync_ref(srv->sync);
	j->route = route;
	j->path = g_strdup(url);
	j->args = args;
	j->head = head;
	g_mutex_lock(&srv->sync->lock);
	/* The main loop's share: after a reply that took it T, the next waits until
	 * HTTP_RENDER_SHARE x T have passed, so that clients, however many and however fast,
	 * take at most a tenth of the loop that receives the flows. The wait is this thread's. */
	if (srv->render_free_us > g_get_monotonic_time()) {
		srv->st.renders_delayed++;
		while (!srv->sync->stopping && g_get_monotonic_time() < srv->render_free_us &&
		       g_get_monotonic_time() < deadline)
			(void)g_cond_wait_until(&srv->sync->cond, &srv->sync->lock,
						MIN(srv->render_free_us, deadline));
	}
	g_mutex_unlock(&srv->sync->lock);
	g_main_context_invoke_full(NULL, G_PRIORITY_DEFAULT, job_run, j, job_unref);
	g_mutex_lock(&srv->sync->lock);
	while (!j->done && !j->deferred && !srv->sync->stopping)
		if (!g_cond_wait_until(&srv->sync->cond, &srv->sync->lock, deadline))
			break;
	if (j->deferred && !j->done && !srv->sync->stopping) {
		/* the reply comes later: the connection waits aside, this thread goes on with
		 * the others. Suspended under the lock, so that http_deferred_reply() resumes
		 * it only after this. */
		srv->st.render_us += (guint64)j->render_us;
		srv->st.deferred++;
		j->suspended = TRUE;
		j->conn = c;
		j->suspended_us = g_get_monotonic_time();
		g_atomic_int_inc(&j->ref); /* the list's */
		srv->sync->suspended = g_list_prepend(srv->sync->suspended, j);
		MHD_suspend_connection(c);
		*con_cls = j; /* this thread's reference, until the connection comes back */
		g_mutex_unlock(&srv->sync->lock);
		return MHD_YES;
	}
	gboolean done = j->done;
	if (!done) {
		j->abandoned = TRUE;
		srv->st.refused_busy++;
		log_refusal(srv, "%s: the main loop did not answer within %u s: 503", url,
			    srv->cfg.timeout_s);
	}
	if (done) {
		srv->st.render_us += (guint64)j->render_us;
		srv->render_free_us = g_get_monotonic_time() + HTTP_RENDER_SHARE * j->render_us;
	}
	HttpReply reply = j->reply;
	if (done) {
		/* taken from the job */
		j->reply.body = NULL;
		j->reply.fd = -1;
	}
	if (done && reply.status == MHD_HTTP_NOT_FOUND)
		srv->st.not_found++;
	g_mutex_unlock(&srv->sync->lock);
	job_unref(j);
	if (!done)
		return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, TRUE, "busy: try again");
	return send_reply(c, &reply, FALSE);
}

/* A route that reads nothing of the daemon's: answered here, on the server's thread. */
static enum MHD_Result
serve_here(HttpServer *srv, struct MHD_Connection *c, const HttpRoute *route, const char *url,
	   gboolean head, char **args)
{
	HttpRequest req = {.path = url, .args = (const char *const *)args, .head = head};
	HttpReply reply;

	reply_init(&reply);
	route->fn(&req, &reply, route->data);
	g_strfreev(args);
	if (reply.status == MHD_HTTP_NOT_FOUND) {
		g_mutex_lock(&srv->sync->lock);
		srv->st.not_found++;
		g_mutex_unlock(&srv->sync->lock);
	}
	return send_reply(c, &reply, FALSE);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	HttpServer *srv = cls;
	const union MHD_ConnectionInfo *ai =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ai != NULL ? ai->client_addr : NULL;
	guint8 addr[16];
	char peer[64];
	gsize size = strlen(url) + strlen(method) + strlen(version) + 4;

	(void)upload_data;
	if (*con_cls != NULL && *con_cls != srv) {
		/* back from a suspension: the deferred reply (or the timeout's) is in */
		Job *j = *con_cls;
		*con_cls = srv;
		g_mutex_lock(&srv->sync->lock);
		HttpReply reply = j->reply;
		gboolean done = j->done && reply.body != NULL;
		if (done) {
			j->reply.body = NULL;
			j->reply.fd = -1;
			if (reply.status == MHD_HTTP_NOT_FOUND)
				srv->st.not_found++;
		}
		g_mutex_unlock(&srv->sync->lock);
		job_unref(j);
		if (!done)
			return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, TRUE, "busy: try again");
		return send_reply(c, &reply, FALSE);
	}
	if (*con_cls != NULL) {
		/* a body we did not ask for (the reply is queued already): drop it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = srv;
	peer_text(sa, peer, sizeof peer);
	g_mutex_lock(&srv->sync->lock);
	Conn *conn = conn_of(c);
	if (conn != NULL)
		conn->handled = TRUE;
	srv->st.requests++;
	/* first who may ask at all, then whether the request is one we serve */
	if (!peer_addr(sa, addr) || !netset_contains(srv->allow, addr)) {
		srv->st.refused_not_allowed++;
		log_refusal(srv, "%s refused: not in [http] allow", peer);
		g_mutex_unlock(&srv->sync->lock);
		return send_text(c, MHD_HTTP_FORBIDDEN, TRUE,
				 "forbidden: your address is not in "
				 "[http] allow");
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_size, &size);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_header_size, &size);
	if (size > srv->cfg.max_request) {
		srv->st.refused_too_big++;
		log_refusal(srv,
			    "%s refused: %" G_GSIZE_FORMAT " bytes of URL and headers "
			    "(max_request %" G_GSIZE_FORMAT ")",
			    peer, size, srv->cfg.max_request);
		g_mutex_unlock(&srv->sync->lock);
		return send_text(c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, TRUE,
				 "request header fields too large");
	}
	gboolean head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		srv->st.refused_method++;
		g_mutex_unlock(&srv->sync->lock);
		return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, TRUE,
				 "method not allowed: this endpoint is read-only (GET, HEAD)");
	}
	g_mutex_unlock(&srv->sync->lock);
	if (srv->auth != NULL) {
		char *pass = NULL;
		char *user = MHD_basic_auth_get_username_password(c, &pass);
		gboolean cached = FALSE;
		/* the one slow step (a yescrypt hash is ~20 ms): outside the lock, on this
		 * thread, never the main loop's */
		gboolean ok =
		    httpauth_check(srv->auth, user, pass, g_get_monotonic_time(), &cached);
		if (pass != NULL)
			explicit_bzero(pass, strlen(pass));
		g_mutex_lock(&srv->sync->lock);
		if (cached)
			srv->st.auth_cache_hits++;
		if (!ok) {
			srv->st.refused_auth++;
			if (user != NULL) {
				/* the name is the client's: printable ASCII only into the log */
				char name[65];
				gsize k = 0;
				for (; user[k] != '\0' && k < sizeof name - 1; k++)
					name[k] = user[k] > 0x20 && user[k] < 0x7f ? user[k] : '?';
				name[k] = '\0';
				log_refusal(srv, "%s refused: wrong password for user '%s'", peer,
					    name);
			}
		}
		g_mutex_unlock(&srv->sync->lock);
		MHD_free(user);
		MHD_free(pass);
		if (!ok)
			return send_text(c, MHD_HTTP_UNAUTHORIZED, FALSE,
					 "authentication required");
	}
	const HttpRoute *route = find_route(srv, url);
	if (route == NULL) {
		g_mutex_lock(&srv->sync->lock);
		srv->st.not_found++;
		g_mutex_unlock(&srv->sync->lock);
		return send_text(c, MHD_HTTP_NOT_FOUND, FALSE, "not found");
	}
	Args a = {.v = g_ptr_array_new()};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &a);
	g_ptr_array_add(a.v, NULL);
	char **args = (char **)g_ptr_array_free(a.v, FALSE);
	if (a.too_many) {
		g_strfreev(args);
		return send_text(c, MHD_HTTP_BAD_REQUEST, FALSE, "too many query arguments");
	}
	if (route->on_thread)
		return serve_here(srv, c, route, url, head, args);
	return serve(srv, c, route, url, head, args, con_cls);
}

/* ---- the deadline sweep (main loop) ---- */

static gboolean
on_sweep(gpointer user_data)
{
	HttpServer *srv = user_data;
	gint64 now = g_get_monotonic_time();
	gint64 limit = (gint64)srv->cfg.timeout_s * G_USEC_PER_SEC;

	GSList *resume = NULL;
	static const char late[] =
	    "{\"ok\":false,\"version\":1,\"error\":\"the node that owns the host did not "
	    "answer within " G_STRINGIFY(HTTP_DEFER_TIMEOUT_S) " s: try again\"}";

	g_mutex_lock(&srv->sync->lock);
	for (GList *l = srv->sync->suspended; l != NULL;) {
		Job *j = l->data;
		l = l->next;
		if (now - j->suspended_us < HTTP_DEFER_TIMEOUT_S * G_USEC_PER_SEC)
			continue;
		j->reply.content_type = "application/json";
		if (job_finish_locked(j, MHD_HTTP_GATEWAY_TIMEOUT, late, sizeof late - 1)) {
			srv->st.deferred_timeouts++;
			log_refusal(srv, "%s: no deferred reply within %d s: 504", j->path,
				    HTTP_DEFER_TIMEOUT_S);
			resume = g_slist_prepend(resume, j);
		}
	}
	for (GList *l = srv->conns; l != NULL; l = l->next) {
		Conn *conn = l->data;
		if (conn->cut || conn->fd < 0 || now - conn->start_us < limit)
			continue;
		/* libmicrohttpd sees the end of the stream and closes the connection itself;
		 * the fd is still open: its CLOSED notice takes this lock first */
		(void)shutdown(conn->fd, SHUT_RDWR);
		conn->cut = TRUE;
		/* an idle keep-alive connection between requests just goes */
		if (conn->uri_seen || conn->handled || conn->done == 0) {
			srv->st.timed_out++;
			log_refusal(srv, "%s cut: its request took longer than %u s (timeout)",
				    conn->peer, srv->cfg.timeout_s);
		}
	}
	g_mutex_unlock(&srv->sync->lock);
	for (GSList *l = resume; l != NULL; l = l->next) {
		Job *j = l->data;
		MHD_resume_connection(j->conn);
		job_unref(j); /* the list's */
	}
	g_slist_free(resume);
	return G_SOURCE_CONTINUE;
}

/* ---- setup ---- */

static int
bind_listen(const char *text, char **bound, GError **error)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	g_autoptr(GError) err = NULL;

	if (!listener_parse_address(text, &ss, &len, &err)) {
		g_set_error(error, HTTP_ERROR, HTTP_ERROR_CONFIG, "[http] listen: %s",
			    err->message);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
		g_set_error(error, HTTP_ERROR, HTTP_ERROR_SOCKET, "[http] listen %s: %s", text,
			    g_strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	len = sizeof ss;
	char peer[64];
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		peer_text((struct sockaddr *)&ss, peer, sizeof peer);
	else
		g_strlcpy(peer, text, sizeof peer);
	*bound = g_strdup(peer);
	return fd;
}

HttpServer *
http_server_new(const HttpConfig *cfg, const HttpRoute *routes, guint n, GError **error)
{
	g_autoptr(HttpServer) srv = g_new0(HttpServer, 1);
	g_autoptr(GError) err = NULL;
	gboolean has_cert = cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0';
	gboolean has_key = cfg->tls_key != NULL && cfg->tls_key[0] != '\0';
	/* suspend/resume: a deferred reply's connection waits aside (http_reply_defer()) */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
			     MHD_ALLOW_SUSPEND_RESUME;

	srv->listen_fd = -1;
	srv->cfg = *cfg;
	srv->routes = routes;
	srv->n_routes = n;
	srv->sync = g_new0(Sync, 1);
	srv->sync->ref = 1;
	g_mutex_init(&srv->sync->lock);
	g_cond_init(&srv->sync->cond);
	srv->allow = netset_new_from_list(cfg->allow != NULL ? cfg->allow : "", &err);
	if (srv->allow == NULL) {
		g_set_error(error, HTTP_ERROR, HTTP_ERROR_CONFIG, "[http] allow: %s", err->message);
		return NULL;
	}
	if (has_cert != has_key) {
		g_set_error_literal(error, HTTP_ERROR, HTTP_ERROR_CONFIG,
				    "[http] tls_cert and tls_key go together: set both or neither");
		return NULL;
	}
	if (has_cert) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			g_set_error_literal(error, HTTP_ERROR, HTTP_ERROR_CONFIG,
					    "[http] tls_cert: this libmicrohttpd has no TLS");
			return NULL;
		}
		if (!g_file_get_contents(cfg->tls_cert, &srv->tls_cert, NULL, &err) ||
		    !g_file_get_contents(cfg->tls_key, &srv->tls_key, NULL, &err)) {
			g_set_error(error, HTTP_ERROR, HTTP_ERROR_CONFIG, "[http] %s",
				    err->message);
			return NULL;
		}
		srv->tls = TRUE;
		flags |= MHD_USE_TLS;
	}
	if (cfg->auth_file != NULL && cfg->auth_file[0] != '\0') {
		srv->auth = httpauth_new_from_file(cfg->auth_file, &err);
		if (srv->auth == NULL) {
			g_set_error(error, HTTP_ERROR, HTTP_ERROR_CONFIG, "[http] auth_file: %s",
				    err->message);
			return NULL;
		}
	}
	srv->listen_fd = bind_listen(cfg->listen, &srv->address, error);
	if (srv->listen_fd < 0)
		return NULL;
	srv->flags = flags;
	return g_steal_pointer(&srv);
}

gboolean
http_server_start(HttpServer *srv, GError **error)
{
	const HttpConfig *cfg = &srv->cfg;

	g_return_val_if_fail(srv->mhd == NULL, FALSE);
	/* the pool holds the request's headers and the reply's head: max_request fits with
	 * room, so that a request over it reaches on_request and is answered (and counted)
	 * there, and only a far bigger one is refused by libmicrohttpd itself */
	gsize pool = MAX((gsize)32768, 2 * cfg->max_request + 16384);
	struct MHD_OptionItem opts[] = {
	    {MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, NULL},
	    /* a few more than max_clients, so that on_accept is the one that refuses (and
	     * counts) */
	    {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_clients + 8, NULL},
	    {MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s, NULL},
	    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL},
	    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
	    {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv},
	    {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv},
	    {srv->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert},
	    {srv->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, srv->tls_key},
	    {MHD_OPTION_END, 0, NULL},
	};
	srv->mhd = MHD_start_daemon(srv->flags, 0, on_accept, srv, on_request, srv,
				    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		g_set_error(error, HTTP_ERROR, HTTP_ERROR_START,
			    "[http] libmicrohttpd would not start on %s%s (run with log_level = "
			    "debug for its reasons)",
			    srv->address, srv->tls ? " (check tls_cert and tls_key)" : "");
		return FALSE;
	}
	srv->sweep = g_timeout_add_seconds(1, on_sweep, srv);
	return TRUE;
}

void
http_server_free(HttpServer *srv)
{
	if (srv == NULL)
		return;
	if (srv->sweep != 0)
		g_source_remove(srv->sweep);
	GList *suspended = NULL;
	if (srv->sync != NULL) {
		/* wake a request waiting for the main loop (which is here, not rendering) */
		g_mutex_lock(&srv->sync->lock);
		srv->sync->stopping = TRUE;
		g_cond_broadcast(&srv->sync->cond);
		/* connections waiting for a deferred reply: answered 503 (a late reply is
		 * dropped), and resumed, since libmicrohttpd stops only without them */
		static const char gone[] = "{\"ok\":false,\"version\":1,\"error\":\"the "
					   "daemon is stopping\"}";
		for (GList *l = srv->sync->suspended; l != NULL; l = l->next) {
			Job *j = l->data;
			j->abandoned = TRUE;
			j->suspended = FALSE; /* job_finish_locked() leaves the list alone */
			(void)job_finish_locked(j, MHD_HTTP_SERVICE_UNAVAILABLE, gone,
						sizeof gone - 1);
		}
		suspended = g_steal_pointer(&srv->sync->suspended);
		g_mutex_unlock(&srv->sync->lock);
	}
	for (GList *l = suspended; l != NULL; l = l->next) {
		Job *j = l->data;
		MHD_resume_connection(j->conn);
		job_unref(j);
	}
	g_list_free(suspended);
	if (srv->mhd != NULL)
		MHD_stop_daemon(srv->mhd);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->sync != NULL)
		sync_unref(srv->sync);
	g_list_free_full(srv->conns, g_free);
	netset_free(srv->allow);
	httpauth_free(srv->auth);
	if (srv->tls_key != NULL)
		explicit_bzero(srv->tls_key, strlen(srv->tls_key));
	g_free(srv->tls_key);
	g_free(srv->tls_cert);
	g_free(srv->address);
	g_free(srv);
}

const char *
http_server_address(const HttpServer *srv)
{
	return srv->address;
}

gboolean
http_server_tls(const HttpServer *srv)
{
	return srv->tls;
}

void
http_server_get_stats(HttpServer *srv, HttpStats *out)
{
	g_mutex_lock(&srv->sync->lock);
	*out = srv->st;
	g_mutex_unlock(&srv->sync->lock);
}

void
http_server_stats_json(HttpServer *srv, GString *out)
{
	static const struct {
		const char *name;
		gsize off;
	} fields[] = {
#define F(f) {#f, offsetof(HttpStats, f)}
	    F(connections),	F(active),	    F(requests),	F(refused_not_allowed),
	    F(refused_auth),	F(refused_clients), F(refused_too_big), F(refused_method),
	    F(refused_busy),	F(timed_out),	    F(bad_requests),	F(not_found),
	    F(auth_cache_hits), F(renders_delayed), F(render_us),	F(deferred),
	    F(deferred_timeouts),
#undef F
	};
	HttpStats s;

	http_server_get_stats(srv, &s);
	for (guint i = 0; i < G_N_ELEMENTS(fields); i++) {
		guint64 v;
		memcpy(&v, (const guint8 *)&s + fields[i].off, sizeof v);
		g_string_append_printf(out, "%s\"%s\":%" G_GUINT64_FORMAT, i > 0 ? "," : "",
				       fields[i].name, v);
	}
}
