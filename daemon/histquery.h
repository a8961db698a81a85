/* The history store's control replies (doc/control.md): `host ADDR since=` adds the
 * host's "timeline" (readings per slice, events, actions from the store, and the reading
 * now), `history since= until= host= reason=` lists events and actions from the store. */
#pragma once

#include "analyzer.h"
#include "history.h"

#include <glib.h>

/* ,"timeline":{...} for host addr over [since_ms, until_ms]; live: add the analyzer's
 * reading now as the last point ("live":true). Stops before max_reply ("truncated"). */
void histquery_timeline(GString *out, History *h, Analyzer *a, const guint8 addr[16],
			gint64 since_ms, gint64 until_ms, gboolean live, gsize max_reply);
/* The members of a `history` reply read from the store, newest first: "events", "total",
 * "shown", "truncated", "actions", "actions_total", "actions_shown", "source":"disk",
 * "since_ms", "until_ms". limit: per list. */
void histquery_history(GString *out, History *h, const HistoryQuery *q, guint64 limit,
		       gsize max_reply);
/* One timeline point. */
void histquery_point_json(GString *out, gint64 t_ms, const HsegHost *hh);
