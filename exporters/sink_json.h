/* The JSON-lines sink: one alert event per line (alertjson.h schema), appended to a file (or
 * stdout), flushed after each event, reopened on SIGHUP so logrotate can move it away. */
#pragma once

#include "sink.h"

/* path "-" is stdout. Fails when the file cannot be opened for appending. */
Sink *sink_json_new(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;
