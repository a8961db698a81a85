/* Novelty: has this internal host contacted this destination within the horizon (24 h by
 * default)? One analyzer-wide set of (host, destination) pairs, a rotating pair of blocked
 * Bloom filters (smtp-novelty, issue 14):
 *
 *   - a pair is "seen" when it is in the current or the previous generation;
 *   - a generation lasts the horizon, or until it holds `capacity` pairs (counted as an early
 *     rotation: the horizon is then shorter than configured, and the owner is told), then the
 *     current one becomes the previous one and a cleared one starts;
 *   - so a contact is remembered for at least one horizon after it (at most two), unless a
 *     flood of pairs rotates early.
 *
 * Blocked Bloom filter (Putze, Sanders, Singler, "Cache-, Hash- and Space-Efficient Bloom
 * Filters", 2007): each pair sets NOVELTY_K bits inside one 512-bit block (one cache line),
 * so a lookup costs one cache miss per generation instead of K. At NOVELTY_BITS_PER_PAIR
 * bits a pair the false-positive rate at capacity is about 1 % (measured by the unit test
 * test-novelty); a false positive makes a new destination look seen: novelty is
 * under-counted by that much, never over-counted.
 *
 * One structure for all hosts instead of one per host: a host with a handful of
 * destinations costs NOVELTY_BITS_PER_PAIR bits per destination, not a per-host structure
 * and its allocation, and what a host contacted is remembered when the host itself stops
 * being tracked (idle hosts leave the host table after an hour; the horizon is a day).
 * The memory is fixed at creation: 2 x capacity x NOVELTY_BITS_PER_PAIR bits. */
#pragma once

#include <glib.h>

#define NOVELTY_K 7
#define NOVELTY_BITS_PER_PAIR 10
#define NOVELTY_BLOCK_WORDS 8 /* 512 bits */

typedef struct Novelty Novelty;

typedef struct {
	guint64 capacity;       /* pairs per generation before an early rotation */
	gint64 horizon_ms;      /* a generation's life */
	guint64 pairs[2];       /* inserted into the current [0] and the previous [1] */
	gint64 started_ms[2];   /* when each began; G_MININT64: never used */
	guint64 rotations;      /* since creation (or the loaded state) */
	guint64 early_rotations; /* ... of them forced by capacity */
	gsize bytes;            /* memory held */
} NoveltyInfo;

/* capacity >= 1; horizon_ms >= 1000. */
Novelty *novelty_new(guint64 capacity, gint64 horizon_ms);
void novelty_free(Novelty *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Novelty, novelty_free)

/* The 64-bit key of a (host, destination) pair. */
guint64 novelty_pair_key(const guint8 host[16], const guint8 dst[16]);

/* Whether the pair was seen within the horizon; either way it is seen from now on
 * (inserted into the current generation, rotating first if the generation is over its time
 * or capacity). now_ms: the analyzer clock; a clock that steps back rotates nothing. */
gboolean novelty_check_insert(Novelty *n, guint64 key, gint64 now_ms);
/* Only look (no insertion, no rotation). */
gboolean novelty_seen(const Novelty *n, guint64 key);

/* A new horizon for the generations from now on (the current one ends when it is over it). */
void novelty_set_horizon(Novelty *n, gint64 horizon_ms);
guint64 novelty_capacity(const Novelty *n);
void novelty_info(const Novelty *n, NoveltyInfo *out);
gsize novelty_mem(const Novelty *n);

/* Saved state: u64 capacity, i64 horizon_ms, u64 block count, u64 rotations, u64 early
 * rotations, then per generation (current first) i64 started_ms, u64 pairs, the blocks as a
 * run-length form (u32 zero words skipped, u32 literal words, literal words as u64; until
 * the generation's words are covered), all big-endian. */
void novelty_state_save(const Novelty *n, GByteArray *out);
/* Restore into n from exactly len bytes of novelty_state_save(). A saved set of another
 * size (capacity changed) is not loadable bit for bit: it is dropped and FALSE is returned
 * with *dropped = TRUE and no error (the novelty memory starts afresh); bytes that are not
 * something novelty_state_save() writes: FALSE with an error. */
#define NOVELTY_ERROR novelty_error_quark()
GQuark novelty_error_quark(void);
typedef enum { NOVELTY_ERROR_INVALID } NoveltyError;
G_GNUC_WARN_UNUSED_RESULT gboolean novelty_state_load(Novelty *n, const guint8 *data, gsize len,
						      gboolean *dropped, GError **error);
