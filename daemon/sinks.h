/* The daemon's alert sinks from its configuration: [sinks] json, csv, syslog, remote. */
#pragma once

#include "config.h"
#include "sink.h"

/* The sinks in a fixed order: json, csv, syslog (local), remote. alerts_override (the
 * --alerts option) replaces [sinks] json when not NULL. Fails, naming the sink, when a file
 * cannot be opened or the remote address is bad; an empty set is not an error. */
SinkSet *sinks_from_config(const Config *cfg, const char *alerts_override,
			   GError **error) G_GNUC_WARN_UNUSED_RESULT;
