/* One alert event as one JSON object (the JSON-lines schema, README "Alerts"): field
 * names and order are the documented schema; new fields only go at the end. */
#pragma once

#include "alert.h"
#include "json.h"

#include <glib.h>

/* The exporter address text for a collector exporter index, or NULL when unknown. */
typedef const char *(*AlertExporterName)(guint32 exporter, gpointer user_data);

void alert_json(GString *out, const AlertEvent *ev, AlertExporterName name, gpointer user_data);
/* Append an address (16 bytes, IPv4-mapped for IPv4) as a JSON string of its text form. */
void json_addr(GString *out, const guint8 a[16]);
