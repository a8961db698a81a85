/* The CSV alert sink: one alert event per RFC 4180 record (CRLF line ends, fields quoted
 * when they hold '"', ',', CR or LF; the top and exporters columns always quoted), columns
 * as in alertfields.h (the JSON fields in the JSON order; windows flattened to short_* and
 * long_*). A header record is written only when the file is new or empty; events are
 * appended and on disk after each write; reopen (SIGHUP) follows a rotated file. */
#pragma once

#include "sink.h"

/* path "-" is stdout (header first, no reopen). Fails when the file cannot be opened for
 * appending; write errors later are counted (st.errors), never fatal. */
Sink *sink_csv_new(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* The header record, CRLF included. */
const char *sink_csv_header(void);
/* Append one event as a CSV record (CRLF included) to out. */
void sink_csv_format(GString *out, const AlertEvent *ev, const SinkCtx *ctx);
/* Append value as one RFC 4180 field: quoted when it holds '"', ',', CR or LF, or when
 * always_quote; '"' doubled inside quotes. */
void sink_csv_field(GString *out, const char *value, gboolean always_quote);
