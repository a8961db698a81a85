/* Prometheus text exposition (format 0.0.4) of the daemon's counters for GET /metrics: one
 * family per counter, names spamflow_* in base units, counters ending in _total, labels by
 * exporter, reason, event and sink only (never by internal host: unbounded cardinality).
 * Pure rendering over the libraries' counters, so a unit test drives it. */
#pragma once

#include "alert.h"
#include "analyzer.h"
#include "cluster_node.h"
#include "collector.h"
#include "control_server.h"
#include "history.h"
#include "listener.h"
#include "sink.h"

#include <glib.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The HTTP endpoint's own counters (http.h fills them; here so metrics needs no server). */
typedef struct {
	guint64 connections;	     /* accepted */
	guint64 active;		     /* connections now */
	guint64 requests;	     /* reached the handler */
	guint64 refused_not_allowed; /* 403: source outside [http] allow */
	guint64 refused_auth;	     /* 401: no or wrong credentials */
	guint64 refused_clients;     /* over max_clients: closed at once */
	guint64 refused_too_big;     /* 431: URL and headers over max_request */
	guint64 refused_method;	     /* 405: not GET or HEAD */
	guint64 refused_busy;	     /* 503: the main loop did not answer within the timeout */
	guint64 timed_out;	     /* cut: a request not done within the timeout (slowloris) */
	guint64 bad_requests;	     /* a request libmicrohttpd refused before it reached us
					(malformed, or over the connection's memory) */
	guint64 not_found;	     /* 404 */
	guint64 auth_cache_hits;     /* credentials known good, no hash computed */
	guint64 renders_delayed;     /* replies held back to keep the main loop's share */
	guint64 render_us;	     /* the main loop's time rendering replies */
	guint64 deferred;	     /* replies that came later (a cluster node's routed host),
					the connection suspended meanwhile */
	guint64 deferred_timeouts;   /* ... that did not come in time: 504 */
} HttpStats;

typedef struct {
	const Collector *collector;
	const ListenerStats *listener; /* NULL: none (replay) */
	guint listener_sockets;
	Analyzer *analyzer; /* walked for the active offenders by reason */
	const SinkSet *sinks;
	const SinkSet *actions; /* may be NULL */
	/* alert events handed to the sinks, by reason and event; NULL: not shown */
	const guint64 (*alerts)[ALERT_KIND_COUNT];
	const HttpStats *http;	     /* NULL: not shown */
	const ControlStats *control; /* NULL: no control socket */
	const HistoryStats *history; /* NULL: the history store is off */
	/* a cluster node: its counters, and its partitions' analyzers in place of the
	 * analyzer's (summed; offenders by reason); NULL: a daemon on its own */
	const ClusterNodeStats *cluster;
	const AnalyzerStats *cluster_analyzer;
	const guint64 *cluster_offenders; /* [REASON_COUNT] */
	gint64 started_ms;	     /* Unix ms */
	gint64 now_ms;
	const char *version;
} MetricsSource;

/* The whole exposition, appended to out. */
void metrics_render(GString *out, const MetricsSource *src);
/* A label value as the format wants it: backslash, double quote and line feed escaped
 * (\\, \", \n); invalid UTF-8 replaced. Without the quotes. */
void metrics_escape_label(GString *out, const char *value);
/* A metric or label name: [a-zA-Z_:][a-zA-Z0-9_:]* (TRUE) */
gboolean metrics_name_valid(const char *name);
