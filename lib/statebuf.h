/* Saved state (the collector's state.c and template.c, the analyzer's state and windows):
 * the writer and the reader of its fields. Fixed big-endian (network order, like every wire
 * format here), one field at a time, never a struct image; the reader is the bounds-checked
 * Cursor (cursor.h), so a read past the end of the blob fails instead of overrunning it. */
#pragma once

#include <glib.h>
#include <math.h>
#include <string.h>

#include "cursor.h"

/* ---- writer ---- */

static inline void
statebuf_put_u8(GByteArray *out, guint8 v)
{
	g_byte_array_append(out, &v, 1);
}

static inline void
statebuf_put_u16(GByteArray *out, guint16 v)
{
	guint8 b[2] = {(guint8)(v >> 8), (guint8)v};
	g_byte_array_append(out, b, 2);
}

static inline void
statebuf_put_u32(GByteArray *out, guint32 v)
{
	guint8 b[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
	g_byte_array_append(out, b, 4);
}

static inline void
statebuf_put_u64(GByteArray *out, guint64 v)
{
	statebuf_put_u32(out, (guint32)(v >> 32));
	statebuf_put_u32(out, (guint32)v);
}

static inline void
statebuf_put_i64(GByteArray *out, gint64 v)
{
	statebuf_put_u64(out, (guint64)v);
}

/* IEEE 754 binary64, its bit pattern as a u64 */
static inline void
statebuf_put_f64(GByteArray *out, double v)
{
	guint64 u;
	memcpy(&u, &v, sizeof u);
	statebuf_put_u64(out, u);
}

static inline void
statebuf_put_bytes(GByteArray *out, const void *p, gsize n)
{
	g_byte_array_append(out, p, (guint)n);
}

/* A u32 length prefix to be patched by statebuf_end(): returns where it is. */
static inline gsize
statebuf_begin(GByteArray *out)
{
	statebuf_put_u32(out, 0);
	return out->len;
}

static inline void
statebuf_end(GByteArray *out, gsize mark)
{
	guint32 n = (guint32)(out->len - mark);
	guint8 *p = out->data + mark - 4;
	p[0] = (guint8)(n >> 24);
	p[1] = (guint8)(n >> 16);
	p[2] = (guint8)(n >> 8);
	p[3] = (guint8)n;
}

/* ---- reader: each getter fails when the bytes run out or the value is not one the writer
 * can produce ---- */

static inline gboolean
statebuf_get_u64(Cursor *c, guint64 *v)
{
	guint32 hi, lo;
	if (!cursor_u32(c, &hi) || !cursor_u32(c, &lo))
		return FALSE;
	*v = (guint64)hi << 32 | lo;
	return TRUE;
}

static inline gboolean
statebuf_get_i64(Cursor *c, gint64 *v)
{
	guint64 u;
	if (!statebuf_get_u64(c, &u))
		return FALSE;
	*v = (gint64)u;
	return TRUE;
}

/* A time in ms (or a length of time): within +-2^61 and no lower than the analyzer's "never"
 * (G_MININT64 / 2), so that the difference of any two cannot overflow. */
#define STATEBUF_TIME_MIN (G_MININT64 / 2)
#define STATEBUF_TIME_MAX (G_MAXINT64 / 4)

static inline gboolean
statebuf_get_time(Cursor *c, gint64 *v)
{
	gint64 t;
	if (!statebuf_get_i64(c, &t) || t < STATEBUF_TIME_MIN || t > STATEBUF_TIME_MAX)
		return FALSE;
	*v = t;
	return TRUE;
}

/* A Unix time in ms as the collector keeps them: in [0, 2^50) (year 37,000), so no timeout
 * arithmetic on it can overflow. The writer clamps into that range, because some of these
 * times come from exporters (systemInitTime) and an absurd one must not make the whole
 * file unloadable; the reader refuses anything outside it. */
#define STATEBUF_UNIX_MS_END (G_GINT64_CONSTANT(1) << 50)

static inline void
statebuf_put_unix_ms(GByteArray *out, gint64 v)
{
	statebuf_put_i64(out, CLAMP(v, 0, STATEBUF_UNIX_MS_END - 1));
}

static inline gboolean
statebuf_get_unix_ms(Cursor *c, gint64 *v)
{
	gint64 t;
	if (!statebuf_get_i64(c, &t) || t < 0 || t >= STATEBUF_UNIX_MS_END)
		return FALSE;
	*v = t;
	return TRUE;
}

/* A finite double in [lo, hi]: levels and shares are never NaN or infinite. */
static inline gboolean
statebuf_get_f64(Cursor *c, double lo, double hi, double *v)
{
	guint64 u;
	double d;
	if (!statebuf_get_u64(c, &u))
		return FALSE;
	memcpy(&d, &u, sizeof d);
	if (!isfinite(d) || d < lo || d > hi)
		return FALSE;
	*v = d;
	return TRUE;
}

static inline gboolean
statebuf_get_bool(Cursor *c, gboolean *v)
{
	guint8 b;
	if (!cursor_u8(c, &b) || b > 1)
		return FALSE;
	*v = b;
	return TRUE;
}

/* A u32 length, then that many bytes as a cursor of their own. */
static inline gboolean
statebuf_get_sub(Cursor *c, Cursor *sub)
{
	guint32 n;
	return cursor_u32(c, &n) && cursor_sub(c, n, sub);
}

/* A declared count of records of at least min_size bytes each: no more than the bytes left
 * can hold (so nothing is allocated for records that are not there) and at most max. */
static inline gboolean
statebuf_count_ok(const Cursor *c, guint64 n, gsize min_size, guint64 max)
{
	return n <= max && n <= cursor_left(c) / min_size;
}
