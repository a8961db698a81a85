/* Bounds-checked reads over untrusted memory.
 * Every byte the collector reads from the network, and every field of a saved state file
 * (statebuf.h), goes through a Cursor: a getter fails when the bytes run out, values are
 * copied out with memcpy and converted from network byte order, and a declared length is
 * only honoured inside a sub-cursor of that length. */
#pragma once

#include <glib.h>
#include <string.h>

typedef struct {
	const guint8 *p;
	gsize len;
	gsize off;
} Cursor;

static inline void
cursor_init(Cursor *c, const guint8 *p, gsize len)
{
	c->p = p;
	c->len = len;
	c->off = 0;
}

static inline gsize
cursor_left(const Cursor *c)
{
	return c->len - c->off;
}

static inline const guint8 *
cursor_ptr(const Cursor *c)
{
	return c->p + c->off;
}

static inline gboolean
cursor_skip(Cursor *c, gsize n)
{
	if (n > c->len - c->off)
		return FALSE;
	c->off += n;
	return TRUE;
}

static inline gboolean
cursor_u8(Cursor *c, guint8 *v)
{
	if (c->off >= c->len)
		return FALSE;
	*v = c->p[c->off++];
	return TRUE;
}

static inline gboolean
cursor_u16(Cursor *c, guint16 *v)
{
	guint16 t;
	if (2 > c->len - c->off)
		return FALSE;
	memcpy(&t, c->p + c->off, 2);
	*v = GUINT16_FROM_BE(t);
	c->off += 2;
	return TRUE;
}

static inline gboolean
cursor_u32(Cursor *c, guint32 *v)
{
	guint32 t;
	if (4 > c->len - c->off)
		return FALSE;
	memcpy(&t, c->p + c->off, 4);
	*v = GUINT32_FROM_BE(t);
	c->off += 4;
	return TRUE;
}

static inline gboolean
cursor_bytes(Cursor *c, void *dst, gsize n)
{
	if (n > c->len - c->off)
		return FALSE;
	memcpy(dst, c->p + c->off, n);
	c->off += n;
	return TRUE;
}

/* Carve the next n bytes out as a cursor of their own (a set, a record), and advance past
 * them. Reads inside the sub-cursor can never reach beyond its declared length. */
static inline gboolean
cursor_sub(Cursor *c, gsize n, Cursor *sub)
{
	if (n > c->len - c->off)
		return FALSE;
	cursor_init(sub, c->p + c->off, n);
	c->off += n;
	return TRUE;
}

/* Fixed-length big-endian reads; the caller has already checked that the bytes are present
 * at p. One unaligned load and a byte swap each (memcpy keeps them alignment-safe). */
static inline guint16
be_u16(const guint8 *p)
{
	guint16 t;
	memcpy(&t, p, 2);
	return GUINT16_FROM_BE(t);
}

static inline guint32
be_u32(const guint8 *p)
{
	guint32 t;
	memcpy(&t, p, 4);
	return GUINT32_FROM_BE(t);
}

static inline guint64
be_u64(const guint8 *p)
{
	guint64 t;
	memcpy(&t, p, 8);
	return GUINT64_FROM_BE(t);
}

/* Unsigned big-endian integer of 1..8 bytes (RFC 7011 6.2 reduced-length encoding).
 * The caller has already checked that n bytes are present at p. The common lengths take
 * one load; the odd ones (3, 5, 6, 7: reduced-length counters) the byte loop. */
static inline guint64
be_uint(const guint8 *p, gsize n)
{
	switch (n) {
	case 1:
		return p[0];
	case 2:
		return be_u16(p);
	case 4:
		return be_u32(p);
	case 8:
		return be_u64(p);
	default: {
		guint64 v = 0;
		for (gsize i = 0; i < n; i++)
			v = (v << 8) | p[i];
		return v;
	}
	}
}
