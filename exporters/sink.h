/* Alert sinks: every alert event goes to every configured sink, in order, exactly once.
 * A sink is a small vtable; the fan-out (SinkSet) owns them, counts per sink, and never
 * lets one sink's failure reach another sink or the collector. Sinks format the event
 * themselves (alertjson.h has the JSON form) and look nothing up: the countries and ASNs in
 * it come from the analyzer (its geo hook, which the daemon wires to the enricher). */
#pragma once

#include "alertjson.h"

#include <glib.h>

typedef struct Sink Sink;

typedef struct {
	guint64 events;  /* events written (or queued, for remote syslog) */
	guint64 errors;  /* events that could not be written completely */
	guint64 dropped; /* events dropped by a full queue (remote syslog) */
	guint64 reopens; /* files reopened (SIGHUP) */
} SinkStats;

/* What a sink may ask about an event beyond the event itself. */
typedef struct {
	AlertExporterName exporter_name; /* exporter index -> address text */
	gpointer user_data;
} SinkCtx;

typedef struct {
	const char *kind; /* "json", "csv", "syslog", "syslog-remote", ... */
	void (*write)(Sink *s, const AlertEvent *ev, const SinkCtx *ctx);
	/* Reopen files after log rotation; NULL when there is nothing to reopen. */
	gboolean (*reopen)(Sink *s, GError **error);
	/* Extra counters as "name":value JSON members (no braces), or NULL. */
	void (*stats_json)(const Sink *s, GString *out);
	/* Before exit: write out what the sink holds queued, waiting at most timeout_ms (the
	 * default main context is iterated); returns the events left unsent. NULL when the
	 * sink never queues (every write is done or failed when write returns). */
	guint (*flush)(Sink *s, guint timeout_ms);
	void (*free)(Sink *s);
	/* Actions: forget what was remembered about a host (`spamflowctl forget`: its offences
	 * end without a cleared event, so nothing must wait for one). NULL = nothing kept. */
	void (*forget)(Sink *s, const guint8 host[16]);
} SinkOps;

struct Sink {
	const SinkOps *ops;
	char *name; /* what the config said, e.g. the path: for logs and stats */
	SinkStats st;
	gint64 last_error_log_us; /* for sink_log_error()'s rate limit */
};

/* Initialise the common part (for implementations). */
void sink_init(Sink *s, const SinkOps *ops, const char *name);
/* A failure worth telling the admin: logged at most once a minute per sink. */
void sink_log_error(Sink *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void sink_free(Sink *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Sink, sink_free)

typedef struct SinkSet SinkSet;

SinkSet *sink_set_new(void);
void sink_set_free(SinkSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SinkSet, sink_set_free)
void sink_set_add(SinkSet *set, Sink *s); /* takes ownership */
guint sink_set_len(const SinkSet *set);
const Sink *sink_set_get(const SinkSet *set, guint i);
void sink_set_write(SinkSet *set, const AlertEvent *ev, const SinkCtx *ctx);
/* Every sink's forget (SinkOps.forget) for the host. */
void sink_set_forget(SinkSet *set, const guint8 host[16]);
/* Reopen every sink; failures are logged and the old outputs kept. */
void sink_set_reopen(SinkSet *set);
/* Before exit: flush every sink that queues, waiting at most timeout_ms in all. FALSE when
 * events were left unsent (logged per sink). */
gboolean sink_set_flush(SinkSet *set, guint timeout_ms);
