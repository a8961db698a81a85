/* The HTTP endpoint's server: libmicrohttpd on a thread of its own, bounded like the control
 * socket (clients, request size, time), with access by source prefix, optional basic auth
 * (httpauth.h) and TLS. It knows nothing about the daemon: each route's handler runs on the
 * main loop (the analyzer and collector are not thread-safe) and fills a reply in memory,
 * which the server's thread then sends. Refusals are counted (HttpStats, metrics.h). */
#pragma once

#include "httpauth.h"
#include "metrics.h"

#include <glib.h>

#define HTTP_ERROR (http_error_quark())
GQuark http_error_quark(void);
typedef enum {
	HTTP_ERROR_CONFIG, /* an address, prefix list or file that does not do */
	HTTP_ERROR_SOCKET, /* socket, bind, listen */
	HTTP_ERROR_START,  /* libmicrohttpd would not start */
} HttpError;

typedef struct {
	const char *listen;    /* "a.b.c.d:port" or "[v6]:port" (port 0: any) */
	const char *allow;     /* prefixes clients may come from */
	const char *auth_file; /* NULL or "": no password */
	const char *tls_cert;  /* PEM files; both or neither */
	const char *tls_key;
	guint max_clients;
	gsize max_request; /* bytes of the URL and headers */
	guint timeout_s;   /* a request from its first byte to its last reply byte; idle */
} HttpConfig;

/* One request as a handler sees it. */
typedef struct {
	const char *path;	 /* decoded, without the query */
	const char *const *args; /* query: name, value, name, value, ..., NULL ("" for "?x") */
	gboolean head;
} HttpRequest;

typedef struct {
	guint status;		  /* 200 unless the handler says otherwise */
	const char *content_type; /* a static string */
	gboolean no_store;	  /* Cache-Control: no-store */
	const char *cache;	  /* else a static Cache-Control ("max-age=300"); NULL: none */
	const char *csp;	  /* a static Content-Security-Policy; NULL: the API's,
				     default-src 'none'; frame-ancestors 'none' */
	char disposition[128];	  /* Content-Disposition when not empty */
	GString *body;
	/* Instead of body, a body that lives as long as the program (a file compiled in) ... */
	gconstpointer static_data;
	gsize static_len;
	/* ... or an open file, streamed from its start and closed by the server (>= 0). */
	int fd;
	guint64 fd_size;
	gpointer job_; /* the server's (http_reply_defer()) */
} HttpReply;

/* Runs on the main loop (the default main context). */
typedef void (*HttpHandler)(const HttpRequest *req, HttpReply *reply, gpointer data);

typedef struct {
	const char *path; /* "/metrics"; one ending in '/' takes every path under it ("/api/") */
	HttpHandler fn;
	gpointer data;
	/* The handler runs on the server's thread, not the main loop: for replies that read
	 * nothing of the daemon's state (files compiled in, the evidence directory), so that
	 * serving them never takes the loop that receives the flows. */
	gboolean on_thread;
} HttpRoute;

/* A reply that comes later (a cluster node's `host` for a host another node owns): from a
 * handler on the main loop (NULL for one on the server's thread), which then returns with
 * nothing in the reply but its content type. The connection is suspended meanwhile (the
 * server goes on with the others) and answered by http_deferred_reply() on the main loop,
 * or with 504 after HTTP_DEFER_TIMEOUT_S. */
#define HTTP_DEFER_TIMEOUT_S 5
typedef struct HttpDeferred HttpDeferred;
HttpDeferred *http_reply_defer(HttpReply *reply);
/* Exactly once per http_reply_defer(); a reply after the timeout or the server's end is
 * dropped. */
void http_deferred_reply(HttpDeferred *d, guint status, const char *body, gsize len);

typedef struct HttpServer HttpServer;

/* Bind cfg->listen and read the auth and TLS files: what needs the privileges the daemon
 * starts with. routes (n of them) must outlive the server. Nothing is served until
 * http_server_start(). */
HttpServer *http_server_new(const HttpConfig *cfg, const HttpRoute *routes, guint n,
			    GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Start the server's thread: after the privileges are dropped, so that the thread that
 * talks to the network never holds a capability (capset() is per thread). */
gboolean http_server_start(HttpServer *srv, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Stop the thread, close every connection. NULL-safe. Call on the main loop's thread. */
void http_server_free(HttpServer *srv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HttpServer, http_server_free)

/* "127.0.0.1:9300" as bound (the real port when 0 was asked for). */
const char *http_server_address(const HttpServer *srv);
gboolean http_server_tls(const HttpServer *srv);
void http_server_get_stats(HttpServer *srv, HttpStats *out);
/* "connections":N,... members (no braces) for `stats`. */
void http_server_stats_json(HttpServer *srv, GString *out);
