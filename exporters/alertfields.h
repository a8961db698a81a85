/* An alert event as a flat list of named text fields: the one column list that the CSV
 * sink, the syslog key=value line and the RFC 5424 structured data all print, so the three
 * never drift apart. Same fields, same order as the JSON lines (alertjson.c); the two
 * windows are flattened to short_* and long_* columns, and the multi-valued fields (top,
 * exporters) are one text value each. Columns never reorder; new ones go at the end. */
#pragma once

#include "alertjson.h"

/* Column names, in order (ALERT_FIELDS_N of them). */
#define ALERT_FIELDS_N 51
extern const char *const alert_field_names[ALERT_FIELDS_N];

/* Inner separators of the multi-valued fields:
 *   top       = "addr/count/country/asn;addr/count/country/asn;..." (country and asn empty
 *               when unknown: "198.51.100.7/3/US/64500;203.0.113.9/1//")
 *   exporters = "addr;addr;..." ("#N" for an exporter whose address is no longer known)
 * Neither '/' nor ';' occurs in IPv4/IPv6 address text, counts, ISO codes or ASNs. */
#define ALERT_FIELD_LIST_SEP ';'
#define ALERT_FIELD_PART_SEP '/'

/* Called once per column, in order. value is NULL where the JSON has null (no peer, no
 * evidence file, no DNS server) or "" (no group); every other value is non-NULL text
 * (possibly empty for an empty list). */
typedef void (*AlertFieldFunc)(guint index, const char *name, const char *value,
			       gpointer user_data);

void alert_fields(const AlertEvent *ev, AlertExporterName exporter_name, gpointer name_data,
		  AlertFieldFunc fn, gpointer user_data);
