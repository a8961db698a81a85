/* The JSON-lines sink: one alert event per line, appended to a file (or stdout), flushed
 * after each event, reopened on request so logrotate can move the file away. */
#pragma once

#include "alertjson.h"

typedef struct SinkJson SinkJson;

typedef struct {
	guint64 events;
	guint64 errors; /* events that could not be written completely */
	guint64 reopens;
} SinkStats;

/* path "-" is stdout. Fails when the file cannot be opened for appending. */
SinkJson *sink_json_new(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void sink_json_free(SinkJson *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SinkJson, sink_json_free)

/* Write one event; a failure is counted (and logged at a limited rate), never fatal. */
void sink_json_write(SinkJson *s, const AlertEvent *ev, AlertExporterName name,
		     gpointer user_data);
/* Reopen the path (after logrotate renamed it); the old stream stays on failure. */
gboolean sink_json_reopen(SinkJson *s, GError **error);
const SinkStats *sink_json_stats(const SinkJson *s);
