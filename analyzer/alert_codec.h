/* An AlertEvent as bytes: the binary form the analyzer's state file keeps its events in
 * (analyzer_state.c) and the cluster sends them in (cluster/wire.c). Big-endian, field by
 * field through statebuf.h, read back through a bounds-checked Cursor with every value
 * checked (enums in range, times and doubles bounded, strings without NUL). */
#pragma once

#include <glib.h>

#include "alert.h"
#include "cursor.h"

/* The forms alert_codec_get() reads; alert_codec_put() writes the newest. */
#define ALERT_CODEC_VERSION 2	       /* the windows' estimates, the side signs, the group */
#define ALERT_CODEC_VERSION_NO_SIGNS 1 /* before them (analyzer state version 1) */

/* ev's fields in declaration order: enums as u8, booleans as u8 0/1, doubles as IEEE 754
 * bits, top destinations and exporters as a u8 count and that many entries, country as 2
 * chars, evidence as a u8 length and its bytes; then per window u32 estimate and u32
 * estimate_se, the side signs from mta_like on, and the group as a u8 length and its bytes. */
void alert_codec_put(GByteArray *out, const AlertEvent *ev);
/* One event in form `version` from c into ev (zeroed first); FALSE when the bytes run out or
 * a value is not one alert_codec_put() can write. */
gboolean alert_codec_get(Cursor *c, guint version, AlertEvent *ev) G_GNUC_WARN_UNUSED_RESULT;
