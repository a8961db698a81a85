/* The (host, destination) pairs seen within the horizon: a rotating pair of blocked Bloom
 * filters (novelty.h says why and how). */
#include "novelty.h"

#include <string.h>

#include "statebuf.h"

G_DEFINE_QUARK(novelty-error-quark, novelty_error)

struct Novelty {
	guint64 *gen[2]; /* [0] current, [1] previous: nblocks x NOVELTY_BLOCK_WORDS words */
	guint64 nblocks;
	guint64 pairs[2];
	gint64 started_ms[2];
	guint64 capacity;
	gint64 horizon_ms;
	guint64 rotations, early_rotations;
};

G_STATIC_ASSERT(NOVELTY_K * 9 <= 64); /* K bit positions of 9 bits from one 64-bit word */

static inline guint64
mum(guint64 a, guint64 b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (guint64)r ^ (guint64)(r >> 64);
}

static inline guint64
load64(const guint8 *p)
{
	guint64 v;
	memcpy(&v, p, 8);
	return v;
}

guint64
novelty_pair_key(const guint8 host[16], const guint8 dst[16])
{
	/* two multiply-fold rounds over the four words (the wyhash construction), then the
	 * MurmurHash3 finalizer so that every input bit reaches every output bit */
	guint64 x = mum(load64(host) ^ 0xa0761d6478bd642full, load64(host + 8) ^ 0xe7037ed1a0b428dbull);
	guint64 y = mum(load64(dst) ^ 0x8ebc6af09c88c6e3ull, load64(dst + 8) ^ 0x589965cc75374cc3ull);
	guint64 k = mum(x ^ 0x1d8e4e27c47d124full, y ^ 0x9e3779b97f4a7c15ull);
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

static guint64
blocks_for(guint64 capacity)
{
	guint64 bits = capacity * NOVELTY_BITS_PER_PAIR;
	guint64 b = (bits + 511) / 512;
	return MAX(b, 1);
}

Novelty *
novelty_new(guint64 capacity, gint64 horizon_ms)
{
	Novelty *n = g_new0(Novelty, 1);
	n->capacity = MAX(capacity, 1);
	n->horizon_ms = MAX(horizon_ms, 1000);
	n->nblocks = blocks_for(n->capacity);
	for (guint g = 0; g < 2; g++) {
		n->gen[g] = g_new0(guint64, n->nblocks * NOVELTY_BLOCK_WORDS);
		n->started_ms[g] = G_MININT64;
	}
	return n;
}

void
novelty_free(Novelty *n)
{
	if (n == NULL)
		return;
	g_free(n->gen[0]);
	g_free(n->gen[1]);
	g_free(n);
}

/* The block of a key (Lemire's multiply-shift range reduction of its high half) and the
 * K bit positions in it (9 bits each from a remix of the key: independent of the block). */
static inline guint64 *
block_of(guint64 *gen, guint64 nblocks, guint64 key)
{
	return gen + ((key >> 32) * nblocks >> 32) * NOVELTY_BLOCK_WORDS;
}

static inline guint64
bit_word(guint64 key)
{
	return key * 0x9e3779b97f4a7c15ull ^ (key >> 29);
}

static inline gboolean
block_has(const guint64 *b, guint64 bits)
{
	for (guint i = 0; i < NOVELTY_K; i++) {
		guint p = (guint)(bits >> (9 * i)) & 511;
		if (!(b[p >> 6] >> (p & 63) & 1))
			return FALSE;
	}
	return TRUE;
}

static inline void
block_set(guint64 *b, guint64 bits)
{
	for (guint i = 0; i < NOVELTY_K; i++) {
		guint p = (guint)(bits >> (9 * i)) & 511;
		b[p >> 6] |= 1ull << (p & 63);
	}
}

static void
rotate(Novelty *n, gint64 now_ms, gboolean early)
{
	guint64 *old = n->gen[1];
	n->gen[1] = n->gen[0];
	n->pairs[1] = n->pairs[0];
	n->started_ms[1] = n->started_ms[0];
	memset(old, 0, n->nblocks * NOVELTY_BLOCK_WORDS * sizeof(guint64));
	n->gen[0] = old;
	n->pairs[0] = 0;
	n->started_ms[0] = now_ms;
	n->rotations++;
	if (early)
		n->early_rotations++;
}

gboolean
novelty_seen(const Novelty *n, guint64 key)
{
	guint64 bits = bit_word(key);
	return block_has(block_of(n->gen[0], n->nblocks, key), bits) ||
	       block_has(block_of(n->gen[1], n->nblocks, key), bits);
}

gboolean
novelty_check_insert(Novelty *n, guint64 key, gint64 now_ms)
{
	if (n->started_ms[0] == G_MININT64)
		n->started_ms[0] = now_ms;
	else if (now_ms - n->started_ms[0] >= n->horizon_ms)
		rotate(n, now_ms, FALSE);
	guint64 bits = bit_word(key);
	guint64 *cur = block_of(n->gen[0], n->nblocks, key);
	if (block_has(cur, bits))
		return TRUE;
	gboolean seen = block_has(block_of(n->gen[1], n->nblocks, key), bits);
	if (n->pairs[0] >= n->capacity) {
		rotate(n, now_ms, TRUE);
		cur = block_of(n->gen[0], n->nblocks, key);
	}
	block_set(cur, bits);
	n->pairs[0]++;
	return seen;
}

void
novelty_set_horizon(Novelty *n, gint64 horizon_ms)
{
	n->horizon_ms = MAX(horizon_ms, 1000);
}

guint64
novelty_capacity(const Novelty *n)
{
	return n->capacity;
}

void
novelty_info(const Novelty *n, NoveltyInfo *out)
{
	memset(out, 0, sizeof *out);
	out->capacity = n->capacity;
	out->horizon_ms = n->horizon_ms;
	for (guint g = 0; g < 2; g++) {
		out->pairs[g] = n->pairs[g];
		out->started_ms[g] = n->started_ms[g];
	}
	out->rotations = n->rotations;
	out->early_rotations = n->early_rotations;
	out->bytes = novelty_mem(n);
}

gsize
novelty_mem(const Novelty *n)
{
	return sizeof *n + 2 * (n->nblocks * NOVELTY_BLOCK_WORDS * sizeof(guint64) + 16);
}

/* ---- saved state ---- */

#define RUN_MAX G_MAXUINT32

void
novelty_state_save(const Novelty *n, GByteArray *out)
{
	guint64 words = n->nblocks * NOVELTY_BLOCK_WORDS;
	statebuf_put_u64(out, n->capacity);
	statebuf_put_i64(out, n->horizon_ms);
	statebuf_put_u64(out, n->nblocks);
	statebuf_put_u64(out, n->rotations);
	statebuf_put_u64(out, n->early_rotations);
	for (guint g = 0; g < 2; g++) {
		const guint64 *w = n->gen[g];
		statebuf_put_i64(out, n->started_ms[g]);
		statebuf_put_u64(out, n->pairs[g]);
		/* runs: zero words skipped, then literal words */
		for (guint64 i = 0; i < words;) {
			guint64 z = i;
			while (z < words && z - i < RUN_MAX && w[z] == 0)
				z++;
			guint64 l = z;
			while (l < words && l - z < RUN_MAX && w[l] != 0)
				l++;
			statebuf_put_u32(out, (guint32)(z - i));
			statebuf_put_u32(out, (guint32)(l - z));
			for (guint64 j = z; j < l; j++)
				statebuf_put_u64(out, w[j]);
			i = l;
		}
	}
}

static gboolean
load_fail(GError **error, const char *what)
{
	g_set_error(error, NOVELTY_ERROR, NOVELTY_ERROR_INVALID, "novelty state: bad %s", what);
	return FALSE;
}

/* One generation's runs: checked only (gen NULL), or written into gen (zero beforehand). */
static gboolean
load_runs(Cursor *c, guint64 words, guint64 *gen)
{
	for (guint64 i = 0; i < words;) {
		guint32 z, l;
		if (!cursor_u32(c, &z) || !cursor_u32(c, &l) || z > words - i || l > words - i - z ||
		    (z == 0 && l == 0))
			return FALSE;
		i += z;
		for (guint32 j = 0; j < l; j++, i++) {
			guint64 v;
			if (!statebuf_get_u64(c, &v) || v == 0)
				return FALSE;
			if (gen != NULL)
				gen[i] = v;
		}
	}
	return TRUE;
}

gboolean
novelty_state_load(Novelty *n, const guint8 *data, gsize len, gboolean *dropped, GError **error)
{
	Cursor c, body;
	guint64 capacity, nblocks, rotations, early;
	gint64 horizon;

	*dropped = FALSE;
	cursor_init(&c, data, len);
	if (!statebuf_get_u64(&c, &capacity) || capacity < 1 || !statebuf_get_i64(&c, &horizon) ||
	    horizon < 1000 || !statebuf_get_u64(&c, &nblocks) || nblocks != blocks_for(capacity) ||
	    !statebuf_get_u64(&c, &rotations) || !statebuf_get_u64(&c, &early) || early > rotations)
		return load_fail(error, "header");
	if (nblocks != n->nblocks) {
		/* another capacity: the bits mean other positions; start afresh */
		*dropped = TRUE;
		return FALSE;
	}
	guint64 words = nblocks * NOVELTY_BLOCK_WORDS;
	gint64 started[2];
	guint64 pairs[2];
	/* checked whole first, so that a bad blob leaves n as it was */
	body = c;
	for (guint g = 0; g < 2; g++) {
		if (!statebuf_get_i64(&c, &started[g]) || !statebuf_get_u64(&c, &pairs[g]))
			return load_fail(error, "generation");
		if (!load_runs(&c, words, NULL))
			return load_fail(error, "run");
	}
	if (cursor_left(&c) != 0)
		return load_fail(error, "length");
	for (guint g = 0; g < 2; g++) {
		gint64 t;
		guint64 p;
		if (n->pairs[g] != 0 || n->started_ms[g] != G_MININT64)
			memset(n->gen[g], 0, words * sizeof(guint64)); /* not a fresh one */
		gboolean ok = statebuf_get_i64(&body, &t) && statebuf_get_u64(&body, &p) &&
			      load_runs(&body, words, n->gen[g]);
		g_assert(ok); /* checked above */
		n->started_ms[g] = started[g];
		n->pairs[g] = pairs[g];
	}
	n->rotations = rotations;
	n->early_rotations = early;
	/* the configured horizon and capacity stay: the saved ones only describe the bits */
	return TRUE;
}
