/* Sliding distinct-destination windows for one tracked host and one kind of traffic.
 * Exact mode: an open-addressing map destination -> slice of its last sighting, plus per
 * slice the number of destinations last sighted there; the distinct count of a window is the
 * sum over its slices. Past a per-window cap: HyperLogLog registers per slice, merged (max)
 * over the window, and a space-saving sketch for the top destinations. */
#include "window.h"

#include <math.h>
#include <string.h>

typedef struct {
	guint32 slice; /* absolute slice number: t_ms / slice_ms */
	guint32 ndist; /* destinations whose last sighting is in this slice (exact mode) */
	guint32 flows;
	guint32 attempts;
	guint32 failed;
} Slice;

#define DEST_ANSWERED 0x80000000u
#define DEST_COUNT_MASK 0x7fffffffu

typedef struct {
	guint8 addr[16];
	guint32 last;  /* slice of the last sighting */
	guint32 count; /* attempts (low 31 bits, saturating) | DEST_ANSWERED; 0 = empty slot */
} Dest;

#define TOPK 16 /* space-saving counters; 16 for a reported top 10 */

typedef struct {
	guint8 addr[16];
	guint32 count;
	guint32 error;
	guint32 last;
} TopEnt;

typedef struct {
	guint8 *reg; /* slice_cap x WINDOW_HLL_M, parallel to the slice array */
	guint32 reg_cap;
	guint32 changes; /* register increases, to know when a cached estimate is stale */
	TopEnt top[TOPK];
	guint ntop;
	struct {
		guint32 at_slice, at_changes, nslices, value;
		gboolean valid;
	} cache[WINDOW_SPANS];
} WindowEst;

struct Window {
	gint64 first_ms;
	gint64 last_ms;
	Slice *slices; /* ascending by slice, newest last */
	Dest *map;
	WindowEst *est; /* non-NULL in estimated mode */
	guint32 cur;    /* newest slice */
	guint32 live;   /* destinations in the map that are still in the long window */
	guint32 map_cap, map_used;
	guint16 nslices, slice_cap;
};

static inline guint64
addr_hash(const guint8 a[16])
{
	guint64 x, y;
	memcpy(&x, a, 8);
	memcpy(&y, a + 8, 8);
	x ^= y * 0x9e3779b97f4a7c15ull;
	/* fmix64 (MurmurHash3 finalizer): every input bit reaches every output bit */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	x ^= y;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return x;
}

Window *
window_new(void)
{
	return g_new0(Window, 1);
}

static void
est_free(WindowEst *e)
{
	if (e == NULL)
		return;
	g_free(e->reg);
	g_free(e);
}

void
window_free(Window *w)
{
	if (w == NULL)
		return;
	g_free(w->slices);
	g_free(w->map);
	est_free(w->est);
	g_free(w);
}

static void
window_reset(Window *w)
{
	g_clear_pointer(&w->slices, g_free);
	g_clear_pointer(&w->map, g_free);
	g_clear_pointer(&w->est, est_free);
	memset(w, 0, sizeof *w);
}

gboolean
window_estimating(const Window *w)
{
	return w->est != NULL;
}

gint64
window_last_ms(const Window *w)
{
	return w->last_ms;
}

gsize
window_mem(const Window *w)
{
	if (w == NULL)
		return 0;
	/* WINDOW_ALLOC_OVERHEAD per allocation approximates the allocator's chunk header */
	gsize n = sizeof *w + WINDOW_ALLOC_OVERHEAD;
	if (w->slices != NULL)
		n += (gsize)w->slice_cap * sizeof(Slice) + WINDOW_ALLOC_OVERHEAD;
	if (w->map != NULL)
		n += (gsize)w->map_cap * sizeof(Dest) + WINDOW_ALLOC_OVERHEAD;
	if (w->est != NULL)
		n += sizeof(WindowEst) + (gsize)w->est->reg_cap * WINDOW_HLL_M +
		     2 * WINDOW_ALLOC_OVERHEAD;
	return n;
}

static inline gboolean
in_long(const WindowGeom *g, guint32 slice, guint32 now)
{
	return (guint64)slice + g->span[WINDOW_LONG] > now;
}

/* Remove slices that left the long window ending at `now`. */
static void
prune_slices(Window *w, const WindowGeom *g, guint32 now)
{
	guint k = 0;
	while (k < w->nslices && !in_long(g, w->slices[k].slice, now)) {
		w->live -= MIN(w->live, w->slices[k].ndist);
		k++;
	}
	if (k == 0)
		return;
	memmove(w->slices, w->slices + k, (w->nslices - k) * sizeof(Slice));
	if (w->est != NULL)
		memmove(w->est->reg, w->est->reg + (gsize)k * WINDOW_HLL_M,
			(gsize)(w->nslices - k) * WINDOW_HLL_M);
	w->nslices = (guint16)(w->nslices - k);
	if (w->est != NULL) {
		for (guint i = 0; i < WINDOW_SPANS; i++)
			w->est->cache[i].valid = FALSE;
	}
}

static Slice *
find_slice(Window *w, guint32 slice)
{
	/* newest first: most lookups are for recent slices */
	for (guint i = w->nslices; i-- > 0;) {
		if (w->slices[i].slice == slice)
			return &w->slices[i];
		if (w->slices[i].slice < slice)
			break;
	}
	return NULL;
}

/* The record of slice `cur` (always the newest), appended when missing. */
static guint
cur_slice_index(Window *w)
{
	if (w->nslices > 0 && w->slices[w->nslices - 1].slice == w->cur)
		return w->nslices - 1u;
	if (w->nslices == w->slice_cap) {
		guint ncap = w->slice_cap == 0 ? 1 : (guint)w->slice_cap * 2;
		ncap = MIN(ncap, WINDOW_MAX_SLICES + 1u);
		w->slices = g_renew(Slice, w->slices, ncap);
		if (w->est != NULL) {
			w->est->reg = g_realloc(w->est->reg, (gsize)ncap * WINDOW_HLL_M);
			w->est->reg_cap = ncap;
		}
		w->slice_cap = (guint16)ncap;
	}
	Slice *s = &w->slices[w->nslices];
	memset(s, 0, sizeof *s);
	s->slice = w->cur;
	if (w->est != NULL)
		memset(w->est->reg + (gsize)w->nslices * WINDOW_HLL_M, 0, WINDOW_HLL_M);
	return w->nslices++;
}

/* ---- exact map ---- */

static Dest *
map_find(Window *w, const guint8 a[16], guint64 h)
{
	if (w->map_cap == 0)
		return NULL;
	guint32 mask = w->map_cap - 1;
	for (guint32 i = (guint32)h & mask, n = 0; n < w->map_cap; i = (i + 1) & mask, n++) {
		Dest *d = &w->map[i];
		if (d->count == 0)
			return NULL;
		if (memcmp(d->addr, a, 16) == 0)
			return d;
	}
	return NULL;
}

static Dest *
map_slot(Dest *map, guint32 cap, guint64 h)
{
	guint32 mask = cap - 1;
	guint32 i = (guint32)h & mask;
	while (map[i].count != 0)
		i = (i + 1) & mask;
	return &map[i];
}

/* Rebuild with live entries only, into a table sized for live + 1 at load <= 3/4 (tables of
 * 1 and 2 slots may be full: probes are bounded by the table size). */
static void
map_rebuild(Window *w, const WindowGeom *g)
{
	guint32 need = w->live + 1;
	guint32 ncap = 1; /* most hosts have one destination: a one-slot table */
	while (need > ncap - ncap / 4)
		ncap *= 2;
	if (ncap < w->map_cap && need * 2 > w->map_cap)
		ncap = w->map_cap; /* keep the size unless it is far too big: no flapping */
	Dest *nmap = g_new0(Dest, ncap);
	guint32 used = 0;
	for (guint32 i = 0; i < w->map_cap; i++) {
		Dest *d = &w->map[i];
		if (d->count == 0 || !in_long(g, d->last, w->cur))
			continue;
		*map_slot(nmap, ncap, addr_hash(d->addr)) = *d;
		used++;
	}
	g_free(w->map);
	w->map = nmap;
	w->map_cap = ncap;
	w->map_used = used;
}

/* ---- HyperLogLog ---- */

static inline void
hll_add(WindowEst *e, guint idx, guint64 h)
{
	guint8 *reg = e->reg + (gsize)idx * WINDOW_HLL_M;
	guint j = (guint)(h >> (64 - WINDOW_HLL_P));
	guint64 rest = h << WINDOW_HLL_P;
	guint8 rank = rest == 0 ? (guint8)(64 - WINDOW_HLL_P + 1) : (guint8)(__builtin_clzll(rest) + 1);
	if (rank > reg[j]) {
		reg[j] = rank;
		e->changes++;
	}
}

static guint32
hll_estimate(const guint8 *merged)
{
	const double m = WINDOW_HLL_M;
	double sum = 0;
	guint zeros = 0;
	for (guint j = 0; j < WINDOW_HLL_M; j++) {
		sum += ldexp(1.0, -merged[j]);
		zeros += merged[j] == 0;
	}
	double alpha = 0.7213 / (1.0 + 1.079 / m);
	double est = alpha * m * m / sum;
	if (est <= 2.5 * m && zeros > 0)
		est = m * log(m / zeros); /* linear counting for small cardinalities */
	return (guint32)(est + 0.5);
}

static void
top_add(WindowEst *e, const guint8 a[16], guint32 slice, guint32 n)
{
	guint min_i = 0;
	for (guint i = 0; i < e->ntop; i++) {
		if (memcmp(e->top[i].addr, a, 16) == 0) {
			e->top[i].count += n;
			e->top[i].last = slice;
			return;
		}
		if (e->top[i].count < e->top[min_i].count)
			min_i = i;
	}
	if (e->ntop < TOPK) {
		TopEnt *t = &e->top[e->ntop++];
		memcpy(t->addr, a, 16);
		t->count = n;
		t->error = 0;
		t->last = slice;
		return;
	}
	/* space-saving: the smallest counter is taken over and keeps its count as error */
	TopEnt *t = &e->top[min_i];
	memcpy(t->addr, a, 16);
	t->error = t->count;
	t->count += n;
	t->last = slice;
}

/* Exact -> estimated: every live destination goes into the registers of its last slice. */
static void
start_estimating(Window *w, const WindowGeom *g)
{
	WindowEst *e = g_new0(WindowEst, 1);
	e->reg_cap = w->slice_cap;
	e->reg = g_malloc0((gsize)e->reg_cap * WINDOW_HLL_M);
	w->est = e;
	for (guint32 i = 0; i < w->map_cap; i++) {
		Dest *d = &w->map[i];
		if (d->count == 0 || !in_long(g, d->last, w->cur))
			continue;
		for (guint k = 0; k < w->nslices; k++) {
			if (w->slices[k].slice == d->last) {
				hll_add(e, k, addr_hash(d->addr));
				break;
			}
		}
		top_add(e, d->addr, d->last, d->count & DEST_COUNT_MASK);
	}
	g_clear_pointer(&w->map, g_free);
	w->map_cap = w->map_used = 0;
	w->live = 0;
}

guint
window_add(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16], gboolean attempt,
	   gboolean failed)
{
	guint res = 0;
	guint32 s = (guint32)(MAX(t_ms, 0) / g->slice_ms);

	if (w->nslices == 0) {
		/* new, or everything expired: a new episode (stale map entries go too) */
		if (w->map != NULL || w->est != NULL)
			window_reset(w);
		w->cur = s;
		w->first_ms = w->last_ms = t_ms;
	} else if (s > w->cur) {
		w->cur = s;
		prune_slices(w, g, s);
		if (w->nslices == 0) {
			/* everything expired: a new episode */
			w->first_ms = t_ms;
			g_clear_pointer(&w->est, est_free);
		}
		w->last_ms = t_ms;
	} else if (s < w->cur) {
		if ((guint64)w->cur - s >= g->span[WINDOW_LONG]) {
			window_reset(w);
			w->cur = s;
			w->first_ms = w->last_ms = t_ms;
			res |= WINDOW_ADD_RESET;
		} else {
			res |= WINDOW_ADD_LATE;
		}
	} else {
		w->last_ms = MAX(w->last_ms, t_ms);
	}

	guint idx = cur_slice_index(w);
	Slice *cs = &w->slices[idx];
	cs->flows++;
	if (!attempt)
		return res;
	cs->attempts++;
	if (failed)
		cs->failed++;

	guint64 h = addr_hash(dst);
	if (w->est != NULL) {
		hll_add(w->est, idx, h);
		top_add(w->est, dst, w->cur, 1);
		return res;
	}
	Dest *d = map_find(w, dst, h);
	if (d != NULL && in_long(g, d->last, w->cur)) {
		if (d->last != w->cur) {
			Slice *old = find_slice(w, d->last);
			if (old != NULL && old->ndist > 0)
				old->ndist--;
			cs->ndist++;
			d->last = w->cur;
		}
		if ((d->count & DEST_COUNT_MASK) != DEST_COUNT_MASK)
			d->count++;
		return res;
	}
	if (d != NULL) {
		/* expired entry: a new sighting */
		d->last = w->cur;
		d->count = 1;
		cs->ndist++;
		w->live++;
		return res | WINDOW_ADD_NEW_DEST;
	}
	if (w->live >= g->exact_cap) {
		start_estimating(w, g);
		hll_add(w->est, idx, h);
		top_add(w->est, dst, w->cur, 1);
		return res | WINDOW_ADD_NEW_DEST | WINDOW_ADD_ESTIMATING;
	}
	if (w->map_used + 1 > w->map_cap - w->map_cap / 4)
		map_rebuild(w, g);
	d = map_slot(w->map, w->map_cap, h);
	memcpy(d->addr, dst, 16);
	d->last = w->cur;
	d->count = 1;
	w->map_used++;
	w->live++;
	cs->ndist++;
	return res | WINDOW_ADD_NEW_DEST;
}

void
window_answer(Window *w, const WindowGeom *g, const guint8 dst[16])
{
	Dest *d = map_find(w, dst, addr_hash(dst));
	if (d != NULL && in_long(g, d->last, w->cur))
		d->count |= DEST_ANSWERED;
}

static guint32
now_slice(const Window *w, const WindowGeom *g, gint64 now_ms)
{
	guint32 s = (guint32)(MAX(now_ms, 0) / g->slice_ms);
	return MAX(s, w->cur);
}

void
window_counts(Window *w, const WindowGeom *g, gint64 now_ms, WindowCounts *out)
{
	guint32 now = now_slice(w, g, now_ms);
	memset(out, 0, sizeof *out);
	out->first_ms = w->first_ms;
	out->last_ms = w->last_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		WindowSpanCounts *c = &out->span[k];
		guint first = w->nslices;
		for (guint i = w->nslices; i-- > 0;) {
			const Slice *s = &w->slices[i];
			if ((guint64)s->slice + g->span[k] <= now)
				break;
			first = i;
			c->distinct += s->ndist;
			c->flows += s->flows;
			c->attempts += s->attempts;
			c->failed += s->failed;
		}
		if (w->est == NULL)
			continue;
		c->estimated = TRUE;
		WindowEst *e = w->est;
		guint nsl = w->nslices - first;
		if (e->cache[k].valid && e->cache[k].at_slice == now &&
		    e->cache[k].at_changes == e->changes && e->cache[k].nslices == nsl) {
			c->distinct = e->cache[k].value;
			continue;
		}
		guint8 merged[WINDOW_HLL_M];
		memset(merged, 0, sizeof merged);
		for (guint i = first; i < w->nslices; i++) {
			const guint8 *r = e->reg + (gsize)i * WINDOW_HLL_M;
			for (guint j = 0; j < WINDOW_HLL_M; j++)
				merged[j] = MAX(merged[j], r[j]);
		}
		c->distinct = nsl == 0 ? 0 : hll_estimate(merged);
		e->cache[k].valid = TRUE;
		e->cache[k].at_slice = now;
		e->cache[k].at_changes = e->changes;
		e->cache[k].nslices = nsl;
		e->cache[k].value = c->distinct;
	}
	if (out->span[WINDOW_LONG].flows == 0)
		out->first_ms = out->last_ms = 0;
}

static void
top_insert(WindowTop *out, guint *n, guint max, const guint8 a[16], guint32 count,
	   guint32 error)
{
	if (*n == max && out[max - 1].count >= count)
		return;
	guint i = *n < max ? (*n)++ : max - 1;
	while (i > 0 && out[i - 1].count < count) {
		out[i] = out[i - 1];
		i--;
	}
	memcpy(out[i].addr, a, 16);
	out[i].count = count;
	out[i].error = error;
}

guint
window_top(const Window *w, const WindowGeom *g, gint64 now_ms, WindowTop *out, guint max)
{
	guint32 now = now_slice(w, g, now_ms);
	guint n = 0;
	max = MIN(max, WINDOW_TOP_MAX);
	if (max == 0)
		return 0;
	if (w->est != NULL) {
		for (guint i = 0; i < w->est->ntop; i++) {
			const TopEnt *t = &w->est->top[i];
			if (in_long(g, t->last, now))
				top_insert(out, &n, max, t->addr, t->count, t->error);
		}
		return n;
	}
	for (guint32 i = 0; i < w->map_cap; i++) {
		const Dest *d = &w->map[i];
		if (d->count != 0 && in_long(g, d->last, now))
			top_insert(out, &n, max, d->addr, d->count & DEST_COUNT_MASK, 0);
	}
	return n;
}

guint
window_foreach_dest(const Window *w, const WindowGeom *g, gint64 now_ms, WindowDestFunc fn,
		    gpointer user_data)
{
	guint32 now = now_slice(w, g, now_ms);
	guint n = 0;
	for (guint32 i = 0; i < w->map_cap; i++) {
		const Dest *d = &w->map[i];
		if (d->count != 0 && in_long(g, d->last, now)) {
			if (fn != NULL)
				fn(d->addr, user_data);
			n++;
		}
	}
	return n;
}

guint32
window_answered(const Window *w, const WindowGeom *g, gint64 now_ms)
{
	guint32 now = now_slice(w, g, now_ms);
	guint32 n = 0;
	for (guint32 i = 0; i < w->map_cap; i++) {
		const Dest *d = &w->map[i];
		if (d->count != 0 && (d->count & DEST_ANSWERED) && in_long(g, d->last, now))
			n++;
	}
	return n;
}

gboolean
window_expire(Window *w, const WindowGeom *g, gint64 now_ms)
{
	guint32 now = now_slice(w, g, now_ms);
	prune_slices(w, g, now);
	if (w->nslices == 0) {
		window_reset(w);
		return TRUE;
	}
	/* shrink a map that is mostly expired entries */
	if (w->map != NULL && w->map_cap > 8 && w->live * 4 < w->map_cap / 2) {
		guint32 cur = w->cur;
		w->cur = now;
		map_rebuild(w, g);
		w->cur = cur;
	}
	return FALSE;
}

void
window_regeom(Window *w, const WindowGeom *old_g, const WindowGeom *g)
{
	if (old_g->slice_ms != g->slice_ms) {
		window_reset(w);
		return;
	}
	prune_slices(w, g, w->cur);
}
