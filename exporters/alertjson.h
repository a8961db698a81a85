/* One alert event as one JSON object (the JSON-lines schema, README "Alerts"): field
 * names and order are the documented schema; new fields only go at the end. */
#pragma once

#include "alert.h"
#include "json.h"
#include "policy.h"

#include <glib.h>

/* The exporter address text for a collector exporter index, or NULL when unknown. */
typedef const char *(*AlertExporterName)(guint32 exporter, gpointer user_data);

void alert_json(GString *out, const AlertEvent *ev, AlertExporterName name, gpointer user_data);
/* Append an address (16 bytes, IPv4-mapped for IPv4) as a JSON string of its text form. */
void json_addr(GString *out, const guint8 a[16]);

/* A suppression object (doc/control.md, "Groups and suppressions in the replies"): host,
 * reason (null: all), until_ms, remaining_s (by wall_now_ms; left out when it is < 0),
 * set_ms, uid, note, and partition when >= 0 (the cluster's suppressions bucket). */
void suppression_json(GString *out, const PolicySuppression *s, gint64 wall_now_ms,
		      gint partition);
