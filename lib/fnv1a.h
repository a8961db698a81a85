/* FNV-1a, 32 bits (Fowler, Noll, Vo; draft-eastlake-fnv): the hash of the tables keyed by
 * short byte strings (addresses, exporter keys). Inline, so that a fixed-length key
 * unrolls where it is hashed. */
#pragma once

#include <glib.h>

#define FNV1A_INIT 2166136261u
#define FNV1A_PRIME 16777619u

/* Hash n more bytes into h (FNV1A_INIT to start). */
static inline guint32
fnv1a_update(guint32 h, const void *p, gsize n)
{
	const guint8 *b = p;
	for (gsize i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV1A_PRIME;
	return h;
}

static inline guint32
fnv1a(const void *p, gsize n)
{
	return fnv1a_update(FNV1A_INIT, p, n);
}
