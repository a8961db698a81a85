/* What the daemon serves over HTTP (http.h): GET /metrics (metrics.h), the read-only
 * control commands as JSON under /api/ (the objects `spamflowctl -j` prints, rendered by
 * commands.c), the web page (/, /host/ADDR and /static/: files compiled into the binary,
 * web/) and the evidence files (/evidence/NAME), with the security headers of http.c. */
#pragma once

#include "commands.h"
#include "config.h"
#include "http.h"
#include "metrics.h"

#include <glib.h>

#define HTTPAPI_DEFAULT_LISTEN "127.0.0.1:9300"

typedef struct {
	const CommandsDeps *commands;
	ControlServer *const *control; /* the control socket's counters for stats; may hold NULL */
	/* The counters /metrics renders, filled on the main loop at each scrape. */
	void (*metrics_source)(gpointer data, MetricsSource *out);
	gpointer data;
	gsize max_reply; /* as [control] max_output: lists stop short of it, as over the socket */
	const char *evidence_dir; /* [evidence] dir; NULL or "": /evidence/ is 404 */
	HttpServer *server;	  /* set by httpapi_start() */
	int evidence_fd;	  /* the directory, opened at start */
	HttpRoute routes[7];
	gboolean auth; /* for the log line at httpapi_run() */
	char allow[256];
} HttpApi;

/* The server as [http] says, serving api (which must outlive it); api->server stays NULL
 * when listen is empty, or when the built-in address is taken (logged: the daemon runs
 * without it; any other failure is an error). Bind before privileges are dropped: the auth and TLS
 * files are read here too. */
gboolean httpapi_start(HttpApi *api, const Config *cfg, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Then, once privileges are dropped, serve (nothing when there is no server). */
gboolean httpapi_run(HttpApi *api, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void httpapi_stop(HttpApi *api);

/* NAME is one the daemon gives an evidence file (exporters/evidence.h):
 * "20260115T100225.001Z-smtp-blocked-192.168.1.66.ipfix", an IPv6 host's ':' as '_',
 * "-2"... before ".ipfix" when the name was taken. Nothing else is served from the
 * directory: no slash, no dot first, no other characters. */
gboolean httpapi_evidence_name_ok(const char *name);

/* /api/COMMAND[/ADDR] and its query (name, value pairs, NULL-terminated) -> the control
 * request line ("history limit=10", "host 10.0.0.1"), for the read-only commands only.
 * path is what follows "/api/". FALSE with *status 404 (no such command, or a changing
 * one) or 400 (an argument the command has not, a value that is not a plain word, an
 * argument given twice) and error saying what. */
gboolean httpapi_control_line(const char *path, const char *const *args, GString *line,
			      guint *status, GError **error) G_GNUC_WARN_UNUSED_RESULT;
