/* Skipped batch numbers per collector (gaps.h). */
#include "gaps.h"

#include <string.h>

typedef struct {
	guint64 seq;
	gint64 since_us;
	gint64 after_ms; /* stored after this (the stream time of the number before it) */
	gboolean asked;	 /* handed out by gap_track_rewind() */
} Hole;

/* Numbers declared missing, lo..hi: one that comes after all is late, not a repeat. */
typedef struct {
	guint64 lo, hi;
} Gone;

/* Gone ranges kept per collector (the oldest dropped: a number declared missing longer ago
 * than that and arriving counts as a repeat). */
#define GONE_MAX 64

typedef struct {
	guint64 first; /* the first number seen of this run: those below were never tracked */
	guint64 hi;    /* the highest number seen */
	gint64 hi_ms;  /* when the stream stored it (0: unknown) */
	guint64 run_seq; /* the stream sequence of the first batch seen of this run (0: unknown) */
	GArray *holes; /* Hole, in the order seen (so oldest first) */
	GArray *gone;  /* Gone, oldest first, at most GONE_MAX */
} Source;

struct GapTrack {
	GHashTable *sources; /* name (owned) -> Source */
	guint max_sources, max_holes;
	gint64 grace_us;
	guint64 waiting, untracked, late, twice;
};

static void
source_free(gpointer p)
{
	Source *s = p;
	g_array_free(s->holes, TRUE);
	g_array_free(s->gone, TRUE);
	g_free(s);
}

GapTrack *
gap_track_new(guint max_sources, guint max_holes, gint64 grace_us)
{
	GapTrack *g = g_new0(GapTrack, 1);
	g->sources = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, source_free);
	g->max_sources = max_sources;
	g->max_holes = max_holes;
	g->grace_us = grace_us;
	return g;
}

void
gap_track_free(GapTrack *g)
{
	if (g == NULL)
		return;
	g_hash_table_destroy(g->sources);
	g_free(g);
}

/* lo..hi of s declared missing: remembered, so that one arriving after all is late. */
static void
gone_add(Source *s, guint64 lo, guint64 hi)
{
	if (s->gone->len > 0) {
		Gone *last = &g_array_index(s->gone, Gone, s->gone->len - 1);
		if (last->hi + 1 == lo) {
			last->hi = hi;
			return;
		}
	}
	if (s->gone->len == GONE_MAX)
		g_array_remove_index(s->gone, 0);
	Gone r = {lo, hi};
	g_array_append_val(s->gone, r);
}

static gboolean
gone_has(const Source *s, guint64 seq)
{
	for (guint i = 0; i < s->gone->len; i++) {
		const Gone *r = &g_array_index(s->gone, Gone, i);
		if (seq >= r->lo && seq <= r->hi)
			return TRUE;
	}
	return FALSE;
}

/* Drops every hole of s: declared missing, their count returned. */
static guint64
holes_clear(GapTrack *g, Source *s)
{
	guint64 n = s->holes->len;
	g->waiting -= n;
	g_array_set_size(s->holes, 0);
	return n;
}

/* The index of seq among the holes of s, or -1. */
static gint
hole_index(const Source *s, guint64 seq)
{
	for (guint i = 0; i < s->holes->len; i++)
		if (g_array_index(s->holes, Hole, i).seq == seq)
			return (gint)i;
	return -1;
}

guint64
gap_track_see(GapTrack *g, const char *source, guint64 seq, gint64 now_us, guint64 stored_seq,
	      gint64 stored_ms, gboolean *twice)
{
	if (twice != NULL)
		*twice = FALSE;
	if (seq == 0)
		return 0; /* not numbered */
	Source *s = g_hash_table_lookup(g->sources, source);
	if (s == NULL) {
		if (g_hash_table_size(g->sources) >= g->max_sources) {
			g->untracked++;
			return 0;
		}
		/* the first batch seen from it here: what came before is not ours to judge (a
		 * partition taken over starts from its snapshot) */
		s = g_new0(Source, 1);
		s->holes = g_array_new(FALSE, FALSE, sizeof(Hole));
		s->gone = g_array_new(FALSE, FALSE, sizeof(Gone));
		s->first = seq;
		s->hi = seq;
		s->hi_ms = stored_ms;
		s->run_seq = stored_seq;
		g_hash_table_insert(g->sources, g_strdup(source), s);
		return 0;
	}
	if (seq == s->hi + 1) {
		s->hi = seq;
		s->hi_ms = stored_ms;
		return 0;
	}
	if (seq > s->hi) {
		/* skipped s->hi + 1 .. seq - 1: holes, as far as there is room */
		guint64 skipped = seq - s->hi - 1, missing = 0;
		guint64 room = g->max_holes > s->holes->len ? g->max_holes - s->holes->len : 0;
		if (skipped > room) {
			/* the lowest ones count missing at once; with holes still waiting they can
			 * be near the highest, so remembered: one that comes after all is late */
			missing = skipped - room;
			skipped = room;
			gone_add(s, s->hi + 1, s->hi + missing);
		}
		/* a number skipped was taken by the collector's bus after the one before it, so
		 * stored after it too, but for a retry: the caller allows for that */
		gint64 after = s->hi_ms != 0 ? s->hi_ms : stored_ms;
		for (guint64 q = seq - skipped; q < seq; q++) {
			Hole h = {q, now_us, after, FALSE};
			g_array_append_val(s->holes, h);
		}
		g->waiting += skipped;
		s->hi = seq;
		s->hi_ms = stored_ms;
		return missing;
	}
	gint at = hole_index(s, seq);
	if (at >= 0) {
		g_array_remove_index(s->holes, (guint)at); /* late: it arrived after all */
		g->waiting--;
		return 0;
	}
	if (seq != 1 && s->hi - seq <= g->max_holes) { /* seq <= s->hi here */
		/* near the highest and no hole: one already declared missing (or from before
		 * the first seen), late; or one seen already, stored twice */
		if (seq < s->first || gone_has(s, seq)) {
			g->late++;
		} else {
			g->twice++;
			if (twice != NULL)
				*twice = TRUE;
		}
		return 0;
	}
	/* 1, or far below anything that could still come late: the collector started again
	 * (its numbers begin anew); its old holes go, the new run's skipped numbers are holes */
	guint64 missing = holes_clear(g, s);
	g_array_set_size(s->gone, 0); /* the new run's numbers are new */
	s->hi = 0;
	s->hi_ms = 0;
	s->first = 1; /* from 1 on, every number is a hole, gone or seen */
	s->run_seq = stored_seq;
	return missing + gap_track_see(g, source, seq, now_us, stored_seq, stored_ms, twice);
}

gboolean
gap_track_is_hole(const GapTrack *g, const char *source, guint64 seq, guint64 stored_seq)
{
	const Source *s = g_hash_table_lookup(g->sources, source);
	/* stored before this run's first batch: the same number of an earlier run */
	return s != NULL && seq != 0 && seq < s->hi && stored_seq >= s->run_seq &&
	       hole_index(s, seq) >= 0;
}

guint
gap_track_rewind(GapTrack *g, gint64 now_us, gint64 wait_us, gint64 *after_ms)
{
	guint n = 0;
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, g->sources);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		Source *s = v;
		for (guint i = 0; i < s->holes->len; i++) {
			Hole *h = &g_array_index(s->holes, Hole, i);
			if (now_us - h->since_us < wait_us)
				break; /* oldest first: the rest are younger */
			if (h->asked)
				continue;
			h->asked = TRUE;
			if (n == 0 || h->after_ms < *after_ms)
				*after_ms = h->after_ms;
			n++;
		}
	}
	return n;
}

guint64
gap_track_expire(GapTrack *g, gint64 now_us)
{
	guint64 missing = 0;
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, g->sources);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		Source *s = v;
		guint n = 0;
		while (n < s->holes->len &&
		       now_us - g_array_index(s->holes, Hole, n).since_us >= g->grace_us)
			n++;
		for (guint i = 0; i < n; i++) {
			guint64 q = g_array_index(s->holes, Hole, i).seq;
			gone_add(s, q, q);
		}
		if (n > 0) {
			g_array_remove_range(s->holes, 0, n);
			g->waiting -= n;
			missing += n;
		}
	}
	return missing;
}

guint64
gap_track_waiting(const GapTrack *g)
{
	return g->waiting;
}

guint64
gap_track_untracked(const GapTrack *g)
{
	return g->untracked;
}

guint64
gap_track_late(const GapTrack *g)
{
	return g->late;
}

guint64
gap_track_twice(const GapTrack *g)
{
	return g->twice;
}
