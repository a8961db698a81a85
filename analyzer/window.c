/* Sliding distinct-destination windows for one tracked host and one kind of traffic.
 * Exact mode: an open-addressing map destination -> slice of its last sighting, plus per
 * slice the number of destinations last sighted there; the distinct count of a window is the
 * sum over its slices. Past a per-window cap: HyperLogLog registers per slice, merged (max)
 * over the window, and a space-saving sketch for the top destinations. */
#include "window.h"

#include <math.h>
#include <string.h>

#include "statebuf.h"

typedef WindowSlice Slice;

#define DEST_ANSWERED 0x80000000u
#define DEST_COUNT_MASK 0x7fffffffu

typedef struct WindowDest Dest;
struct WindowDest {
	guint8 addr[16];
	guint32 last;  /* slice of the last sighting */
	guint32 count; /* attempts (low 31 bits, saturating) | DEST_ANSWERED; 0 = empty slot */
};

#define TOPK 16 /* space-saving counters; 16 for a reported top 10 */

typedef struct {
	guint8 addr[16];
	guint32 count;
	guint32 error;
	guint32 last;
} TopEnt;

/* Registers merged over the slices of one span as of the newest slice (`at`), with the sum
 * of 2^-register and the zero registers that hll_estimate() would compute from them. A flow
 * raises them in place (window_add()), so the estimate at the newest slice costs O(1); they
 * are rebuilt once after the newest slice moves. Kept only while every register is <=
 * MERGED_MAX_RANK: then each 2^-r is a multiple of 2^-42 and the sum (<= 1024) fits a
 * double's 53 bits exactly, whatever the order of additions and subtractions, so the
 * estimate is the very one a fresh merge gives. Past that (one item in 2^42) the slow path
 * merges. */
#define MERGED_MAX_RANK 42
typedef struct {
	guint8 reg[WINDOW_HLL_M];
	double sum;
	guint32 zeros;
	guint32 at;
	gboolean valid;
} Merged;

struct WindowEst {
	guint8 *reg; /* slice_cap x WINDOW_HLL_M, parallel to the slice array */
	guint32 reg_cap;
	guint32 changes; /* register increases, to know when a cached estimate is stale */
	TopEnt top[TOPK];
	guint ntop;
	struct {
		guint32 at_slice, at_changes, nslices, value;
		gboolean valid;
	} cache[WINDOW_SPANS]; /* window_counts() at a time past the newest slice */
	Merged merged[WINDOW_SPANS];
};

/* Per-span sums of the slice records (distinct, flows, attempts, failed) as of the newest
 * slice `at`, so that window_counts() at the newest slice is O(1) however many slices the
 * window holds. window_add() keeps them; anything else that changes the slices marks them
 * stale, and the next window_counts() at the newest slice rebuilds them. Kept right after
 * the slice array's slice_cap records (only windows of two slices or more have an array). */
typedef struct {
	guint32 ndist, flows, attempts, failed;
} SpanSum;
typedef struct {
	guint32 at;
	gboolean valid;
	SpanSum span[WINDOW_SPANS];
} Sums;
G_STATIC_ASSERT(sizeof(Slice) % G_ALIGNOF(Sums) == 0);

G_STATIC_ASSERT(sizeof(WindowSliceStore) == sizeof(Slice));
G_STATIC_ASSERT(sizeof(Window) == 72);

static inline Slice *
slices(const Window *w)
{
	return w->slice_cap <= 1 ? (Slice *)&w->sl.one : w->sl.many;
}

static void
slices_free(Window *w)
{
	if (w->slice_cap > 1)
		g_free(w->sl.many);
}

/* Bytes of a slice array of cap records (cap >= 2) with its sums. */
static inline gsize
slices_bytes(guint cap)
{
	return (gsize)cap * sizeof(Slice) + sizeof(Sums);
}

static inline Sums *
sums(const Window *w)
{
	return w->slice_cap > 1 ? (Sums *)(void *)(w->sl.many + w->slice_cap) : NULL;
}

static inline void
sums_stale(Window *w)
{
	Sums *sm = sums(w);
	if (sm != NULL)
		sm->valid = FALSE;
}

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

void
window_init(Window *w)
{
	memset(w, 0, sizeof *w);
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
	slices_free(w);
	g_free(w->map);
	est_free(w->est);
	g_free(w);
}

static void
window_reset(Window *w)
{
	slices_free(w);
	g_clear_pointer(&w->map, g_free);
	g_clear_pointer(&w->est, est_free);
	memset(w, 0, sizeof *w);
}

void
window_clear(Window *w)
{
	window_reset(w);
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
	return sizeof *w + WINDOW_ALLOC_OVERHEAD + window_mem_held(w);
}

gsize
window_mem_held(const Window *w)
{
	/* WINDOW_ALLOC_OVERHEAD per allocation approximates the allocator's chunk header */
	gsize n = 0;
	if (w->slice_cap > 1) /* one slice is inline */
		n += slices_bytes(w->slice_cap) + WINDOW_ALLOC_OVERHEAD;
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
	while (k < w->nslices && !in_long(g, slices(w)[k].slice, now)) {
		w->live -= MIN(w->live, slices(w)[k].ndist);
		k++;
	}
	if (k == 0)
		return;
	memmove(slices(w), slices(w) + k, (w->nslices - k) * sizeof(Slice));
	if (w->est != NULL)
		memmove(w->est->reg, w->est->reg + (gsize)k * WINDOW_HLL_M,
			(gsize)(w->nslices - k) * WINDOW_HLL_M);
	w->nslices = (guint16)(w->nslices - k);
	sums_stale(w);
	if (w->est != NULL) {
		for (guint i = 0; i < WINDOW_SPANS; i++)
			w->est->cache[i].valid = w->est->merged[i].valid = FALSE;
	}
}

/* The slice record of an absolute slice number (slices are ascending), or NULL. A window
 * that saw traffic in every slice holds them densely: try that position first. */
static Slice *
find_slice(Window *w, guint32 slice)
{
	Slice *sl = slices(w);
	guint n = w->nslices;
	if (n == 0 || slice > sl[n - 1].slice)
		return NULL;
	guint32 back = sl[n - 1].slice - slice;
	if (back < n && sl[n - 1 - back].slice == slice)
		return &sl[n - 1 - back];
	guint lo = 0, hi = n;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		if (sl[mid].slice < slice)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && sl[lo].slice == slice ? &sl[lo] : NULL;
}

/* The record of slice `cur` (always the newest), appended when missing. */
static guint
cur_slice_index(Window *w)
{
	if (w->nslices > 0 && slices(w)[w->nslices - 1].slice == w->cur)
		return w->nslices - 1u;
	if (w->nslices == w->slice_cap) {
		guint ncap = w->slice_cap == 0 ? 1 : (guint)w->slice_cap * 2;
		ncap = MIN(ncap, WINDOW_MAX_SLICES + 1u);
		if (ncap == 2) {
			Slice *arr = g_malloc0(slices_bytes(ncap));
			arr[0] = w->sl.one;
			w->sl.many = arr;
		} else if (ncap > 2) {
			w->sl.many = g_realloc(w->sl.many, slices_bytes(ncap));
		}
		if (w->est != NULL) {
			w->est->reg = g_realloc(w->est->reg, (gsize)ncap * WINDOW_HLL_M);
			w->est->reg_cap = ncap;
		}
		w->slice_cap = (guint16)ncap;
		sums_stale(w); /* they were at the old capacity's end */
	}
	Slice *s = &slices(w)[w->nslices];
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
 * 1 and 2 slots may be full: probes are bounded by the table size). Sized by the entries it
 * keeps when they outnumber `live`, so a table can never be too small for them (map_slot()
 * needs a free slot). */
static void
map_rebuild(Window *w, const WindowGeom *g)
{
	guint32 keep = 0;
	for (guint32 i = 0; i < w->map_cap; i++)
		keep += w->map[i].count != 0 && in_long(g, w->map[i].last, w->cur);
	guint32 need = MAX(w->live, keep) + 1;
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

/* 2^-r for every register value r (0 .. 64 - WINDOW_HLL_P + 1): exact powers of two, the
 * values ldexp(1.0, -r) gives, without its call. */
static double pow2neg[65];

static void
pow2neg_init(void)
{
	static gsize done = 0;
	if (g_once_init_enter(&done)) {
		for (guint r = 0; r < G_N_ELEMENTS(pow2neg); r++)
			pow2neg[r] = ldexp(1.0, -(int)r);
		g_once_init_leave(&done, 1);
	}
}

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
		/* the newest slice is in every span: raise the merged registers kept for it */
		for (guint k = 0; k < WINDOW_SPANS; k++) {
			Merged *mg = &e->merged[k];
			if (!mg->valid || rank <= mg->reg[j])
				continue;
			if (rank > MERGED_MAX_RANK) {
				mg->valid = FALSE;
				continue;
			}
			mg->sum += pow2neg[rank] - pow2neg[mg->reg[j]];
			mg->zeros -= mg->reg[j] == 0;
			mg->reg[j] = rank;
		}
	}
}

/* The estimate from the sum of 2^-register and the zero registers of merged registers. */
static guint32
hll_value(double sum, guint zeros)
{
	const double m = WINDOW_HLL_M;
	double alpha = 0.7213 / (1.0 + 1.079 / m);
	double est = alpha * m * m / sum;
	if (est <= 2.5 * m && zeros > 0)
		est = m * log(m / zeros); /* linear counting for small cardinalities */
	return (guint32)(est + 0.5);
}

static void
hll_sum(const guint8 *merged, double *sum, guint *zeros)
{
	double s = 0;
	guint z = 0;
	pow2neg_init();
	for (guint j = 0; j < WINDOW_HLL_M; j++) {
		s += pow2neg[merged[j]];
		z += merged[j] == 0;
	}
	*sum = s;
	*zeros = z;
}

static guint32
hll_estimate(const guint8 *merged)
{
	double sum;
	guint zeros;
	hll_sum(merged, &sum, &zeros);
	return hll_value(sum, zeros);
}

static void
top_add(WindowEst *e, const guint8 a[16], guint32 slice, guint32 n)
{
	/* every estimated flow comes here: compare 8 bytes at a time, keep the minimum (the
	 * first one, as space-saving takes it over) in a register */
	guint64 a0, a1;
	memcpy(&a0, a, 8);
	memcpy(&a1, a + 8, 8);
	guint min_i = 0;
	guint32 min_c = G_MAXUINT32;
	for (guint i = 0; i < e->ntop; i++) {
		TopEnt *t = &e->top[i];
		guint64 t0, t1;
		memcpy(&t0, t->addr, 8);
		memcpy(&t1, t->addr + 8, 8);
		if (((t0 ^ a0) | (t1 ^ a1)) == 0) {
			t->count += n;
			t->last = slice;
			return;
		}
		if (t->count < min_c) {
			min_c = t->count;
			min_i = i;
		}
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
			if (slices(w)[k].slice == d->last) {
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
	Slice *cs = &slices(w)[idx];
	/* the sums kept at the newest slice (cs: in every span) follow each change to a slice */
	Sums *sm = sums(w);
	SpanSum *s0 = NULL, *s1 = NULL;
	if (sm != NULL && sm->valid && sm->at == w->cur) {
		s0 = &sm->span[0];
		s1 = &sm->span[1];
	}
	G_STATIC_ASSERT(WINDOW_SPANS == 2);
	SpanSum dummy[2];
	if (s0 == NULL) {
		s0 = &dummy[0];
		s1 = &dummy[1];
	}
	cs->flows++;
	s0->flows++;
	s1->flows++;
	if (!attempt)
		return res;
	cs->attempts++;
	s0->attempts++;
	s1->attempts++;
	if (failed) {
		cs->failed++;
		s0->failed++;
		s1->failed++;
	}

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
			if (old != NULL && old->ndist > 0) {
				old->ndist--;
				if ((guint64)old->slice + g->span[0] > w->cur)
					s0->ndist--;
				if ((guint64)old->slice + g->span[1] > w->cur)
					s1->ndist--;
			}
			cs->ndist++;
			s0->ndist++;
			s1->ndist++;
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
		s0->ndist++;
		s1->ndist++;
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
	s0->ndist++;
	s1->ndist++;
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

/* Sums of the slice records in span k of the window ending at slice `now`. */
static void
span_sum(const Window *w, const WindowGeom *g, guint32 now, guint k, SpanSum *c)
{
	memset(c, 0, sizeof *c);
	for (guint i = w->nslices; i-- > 0;) {
		const Slice *s = &slices(w)[i];
		if ((guint64)s->slice + g->span[k] <= now)
			break;
		c->ndist += s->ndist;
		c->flows += s->flows;
		c->attempts += s->attempts;
		c->failed += s->failed;
	}
}

/* The merged registers of span k at the newest slice, rebuilt when stale; NULL when they
 * cannot be kept exactly (a register past MERGED_MAX_RANK). */
static const Merged *
merged_at_cur(Window *w, const WindowGeom *g, guint k)
{
	WindowEst *e = w->est;
	Merged *mg = &e->merged[k];
	if (mg->valid && mg->at == w->cur)
		return mg;
	memset(mg->reg, 0, sizeof mg->reg);
	for (guint i = w->nslices; i-- > 0;) {
		if ((guint64)slices(w)[i].slice + g->span[k] <= w->cur)
			break;
		const guint8 *r = e->reg + (gsize)i * WINDOW_HLL_M;
		for (guint j = 0; j < WINDOW_HLL_M; j++)
			mg->reg[j] = MAX(mg->reg[j], r[j]);
	}
	guint8 top = 0;
	for (guint j = 0; j < WINDOW_HLL_M; j++)
		top = MAX(top, mg->reg[j]);
	hll_sum(mg->reg, &mg->sum, &mg->zeros);
	mg->at = w->cur;
	mg->valid = top <= MERGED_MAX_RANK;
	return mg->valid ? mg : NULL;
}

/* The estimate of span k ending at slice `now`: from the merged registers kept at the newest
 * slice when `now` is that slice, else from a merge of the span's slices (cached). */
static guint32
est_distinct(Window *w, const WindowGeom *g, guint32 now, guint k)
{
	WindowEst *e = w->est;
	if (now == w->cur) {
		const Merged *mg = merged_at_cur(w, g, k);
		if (mg != NULL)
			return hll_value(mg->sum, mg->zeros);
	}
	guint first = w->nslices;
	while (first > 0 && (guint64)slices(w)[first - 1].slice + g->span[k] > now)
		first--;
	guint nsl = w->nslices - first;
	if (e->cache[k].valid && e->cache[k].at_slice == now && e->cache[k].at_changes == e->changes &&
	    e->cache[k].nslices == nsl)
		return e->cache[k].value;
	guint8 merged[WINDOW_HLL_M];
	memset(merged, 0, sizeof merged);
	for (guint i = first; i < w->nslices; i++) {
		const guint8 *r = e->reg + (gsize)i * WINDOW_HLL_M;
		for (guint j = 0; j < WINDOW_HLL_M; j++)
			merged[j] = MAX(merged[j], r[j]);
	}
	guint32 v = nsl == 0 ? 0 : hll_estimate(merged);
	e->cache[k].valid = TRUE;
	e->cache[k].at_slice = now;
	e->cache[k].at_changes = e->changes;
	e->cache[k].nslices = nsl;
	e->cache[k].value = v;
	return v;
}

void
window_counts(Window *w, const WindowGeom *g, gint64 now_ms, WindowCounts *out)
{
	guint32 now = now_slice(w, g, now_ms);
	Sums *sm = sums(w);
	/* at the newest slice (every flow's evaluation) the kept sums: O(1) */
	if (now == w->cur && sm != NULL && !(sm->valid && sm->at == w->cur)) {
		for (guint k = 0; k < WINDOW_SPANS; k++)
			span_sum(w, g, now, k, &sm->span[k]);
		sm->at = w->cur;
		sm->valid = TRUE;
	}
	memset(out, 0, sizeof *out);
	out->first_ms = w->first_ms;
	out->last_ms = w->last_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		WindowSpanCounts *c = &out->span[k];
		SpanSum ss;
		if (now == w->cur && sm != NULL)
			ss = sm->span[k];
		else
			span_sum(w, g, now, k, &ss);
		c->distinct = ss.ndist;
		c->flows = ss.flows;
		c->attempts = ss.attempts;
		c->failed = ss.failed;
		if (w->est != NULL) {
			c->estimated = TRUE;
			c->distinct = est_distinct(w, g, now, k);
		}
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
	/* the kept sums and merged registers are per span: spans may have changed */
	sums_stale(w);
	if (w->est != NULL) {
		for (guint k = 0; k < WINDOW_SPANS; k++)
			w->est->merged[k].valid = FALSE;
	}
	/* A longer long window would bring destinations that expired from the map back
	 * without their slices: drop them first. */
	if (w->map != NULL && g->span[WINDOW_LONG] > old_g->span[WINDOW_LONG])
		map_rebuild(w, old_g);
	prune_slices(w, g, w->cur);
}

/* ---- saved state ----
 *
 * Big-endian, inside the length the caller puts around it:
 *   i64 first_ms, i64 last_ms, u32 cur (newest slice)
 *   u16 nslices, u16 slice capacity (a hint: the restored window allocates the same)
 *   nslices x {u32 slice, u32 flows, u32 attempts, u32 failed}, ascending, the last one
 *     being cur, all within the long window ending at cur
 *   u8 mode: 0 exact, 1 estimated
 *   exact:     u32 table size (a hint), u32 ndest,
 *              ndest x {16 addr, u32 last slice, u32 attempts (1..2^31-1), u8 answered}
 *   estimated: nslices x WINDOW_HLL_M register bytes (each <= 64 - WINDOW_HLL_P + 1),
 *              u8 ntop (<= 16), ntop x {16 addr, u32 count, u32 error, u32 last slice}
 * Destinations are written in the order that, inserted one by one into a table of the hinted
 * size, rebuilds the same table: ties in window_top() and the order start_estimating() feeds
 * the sketch then come out as they would have without the restart. Expired destinations
 * still in the table are written too (a new sighting reuses their slot). Derived values are
 * not saved but recomputed: each slice's count of destinations last sighted there and the
 * live count (from the destinations), the estimated counts (on first use). */

G_DEFINE_QUARK(window-error-quark, window_error)

#define STATE_DEST_SIZE (16 + 4 + 4 + 1)
#define STATE_SLICE_SIZE (4 * 4)
#define STATE_MAX_DESTS (1u << 26)
#define HLL_MAX_RANK (64 - WINDOW_HLL_P + 1)

static void
save_dest(GByteArray *out, const Dest *d)
{
	statebuf_put_bytes(out, d->addr, 16);
	statebuf_put_u32(out, d->last);
	statebuf_put_u32(out, d->count & DEST_COUNT_MASK);
	statebuf_put_u8(out, (d->count & DEST_ANSWERED) != 0);
}

/* Linear probing: the table's layout is what inserting its entries cluster by cluster, each
 * cluster from its first slot on, gives. A cluster starts after an empty slot; only tables of
 * one or two slots can be full (load <= 3/4 otherwise), and there an entry in its home slot
 * was inserted first. */
static void
save_map(const Window *w, GByteArray *out)
{
	guint32 cap = w->map_cap, mask = cap - 1, start = 0;
	if (cap == 0)
		return;
	if (w->map_used < cap) {
		while (w->map[start].count != 0)
			start++;
	} else {
		for (guint32 i = 0; i < cap; i++) {
			if (w->map[i].count != 0 &&
			    ((guint32)addr_hash(w->map[i].addr) & mask) == i) {
				start = i;
				break;
			}
		}
	}
	for (guint32 n = 0, i = start; n < cap; n++, i = (i + 1) & mask) {
		if (w->map[i].count != 0)
			save_dest(out, &w->map[i]);
	}
}

void
window_state_save(const Window *w, GByteArray *out)
{
	statebuf_put_i64(out, w->first_ms);
	statebuf_put_i64(out, w->last_ms);
	statebuf_put_u32(out, w->cur);
	statebuf_put_u16(out, w->nslices);
	statebuf_put_u16(out, w->slice_cap);
	for (guint i = 0; i < w->nslices; i++) {
		const Slice *s = &slices(w)[i];
		statebuf_put_u32(out, s->slice);
		statebuf_put_u32(out, s->flows);
		statebuf_put_u32(out, s->attempts);
		statebuf_put_u32(out, s->failed);
	}
	if (w->est == NULL) {
		statebuf_put_u8(out, 0);
		statebuf_put_u32(out, w->map_cap);
		statebuf_put_u32(out, w->map_used);
		save_map(w, out);
		return;
	}
	statebuf_put_u8(out, 1);
	statebuf_put_bytes(out, w->est->reg, (gsize)w->nslices * WINDOW_HLL_M);
	statebuf_put_u8(out, (guint8)w->est->ntop);
	for (guint i = 0; i < w->est->ntop; i++) {
		const TopEnt *t = &w->est->top[i];
		statebuf_put_bytes(out, t->addr, 16);
		statebuf_put_u32(out, t->count);
		statebuf_put_u32(out, t->error);
		statebuf_put_u32(out, t->last);
	}
}

static gboolean
load_fail(GError **error, const char *what)
{
	g_set_error(error, WINDOW_ERROR, WINDOW_ERROR_INVALID, "window: %s", what);
	return FALSE;
}

/* The smallest table that holds n entries at the load window_add() keeps (<= 3/4). */
static guint32
map_cap_for(guint32 n)
{
	guint32 cap = 1;
	while (n > cap - cap / 4)
		cap *= 2;
	return cap;
}

static gboolean
load_exact(Window *w, const WindowGeom *g, Cursor *c, GError **error)
{
	guint32 hint, n;
	if (!cursor_u32(c, &hint) || !cursor_u32(c, &n))
		return load_fail(error, "truncated destination table header");
	if (!statebuf_count_ok(c, n, STATE_DEST_SIZE, STATE_MAX_DESTS))
		return load_fail(error, "destination count past the end of the data");
	guint32 cap = n == 0 ? 0 : map_cap_for(n);
	/* the hint is honoured when it is a table this many entries can have grown into */
	if (hint != 0 && (hint & (hint - 1)) == 0 && hint >= cap && hint <= 16 * ((guint64)n + 1))
		cap = hint;
	if (cap == 0)
		return TRUE;
	w->map = g_new0(Dest, cap);
	w->map_cap = cap;
	for (guint32 i = 0; i < n; i++) {
		Dest d;
		guint8 answered;
		if (!cursor_bytes(c, d.addr, 16) || !cursor_u32(c, &d.last) ||
		    !cursor_u32(c, &d.count) || !cursor_u8(c, &answered))
			return load_fail(error, "truncated destination");
		if (d.count == 0 || d.count > DEST_COUNT_MASK || answered > 1)
			return load_fail(error, "bad destination attempt count");
		if (d.last > w->cur)
			return load_fail(error, "destination sighted after the newest slice");
		guint64 h = addr_hash(d.addr);
		if (map_find(w, d.addr, h) != NULL)
			return load_fail(error, "duplicate destination");
		/* a destination in the long window is counted in the slice it was last sighted
		 * in; one that left the window stays in the table as an expired entry */
		if (in_long(g, d.last, w->cur)) {
			Slice *s = find_slice(w, d.last);
			if (s == NULL)
				return load_fail(error, "destination sighted in a slice that is not there");
			s->ndist++;
			w->live++;
		}
		if (answered)
			d.count |= DEST_ANSWERED;
		*map_slot(w->map, w->map_cap, h) = d;
		w->map_used++;
	}
	return TRUE;
}

static gboolean
load_estimated(Window *w, Cursor *c, GError **error)
{
	WindowEst *e = w->est = g_new0(WindowEst, 1);
	gsize nreg = (gsize)w->nslices * WINDOW_HLL_M;
	guint8 ntop;
	e->reg_cap = w->slice_cap;
	if (e->reg_cap > 0)
		e->reg = g_malloc0((gsize)e->reg_cap * WINDOW_HLL_M);
	if (nreg > 0 && !cursor_bytes(c, e->reg, nreg))
		return load_fail(error, "truncated registers");
	for (gsize j = 0; j < nreg; j++) {
		if (e->reg[j] > HLL_MAX_RANK)
			return load_fail(error, "register out of range");
	}
	if (!cursor_u8(c, &ntop))
		return load_fail(error, "truncated top destinations");
	if (ntop > TOPK)
		return load_fail(error, "too many top destinations");
	for (guint i = 0; i < ntop; i++) {
		TopEnt *t = &e->top[i];
		if (!cursor_bytes(c, t->addr, 16) || !cursor_u32(c, &t->count) ||
		    !cursor_u32(c, &t->error) || !cursor_u32(c, &t->last))
			return load_fail(error, "truncated top destination");
		if (t->error > t->count || t->last > w->cur)
			return load_fail(error, "bad top destination");
		for (guint k = 0; k < i; k++) {
			if (memcmp(e->top[k].addr, t->addr, 16) == 0)
				return load_fail(error, "duplicate top destination");
		}
	}
	e->ntop = ntop;
	return TRUE;
}

gboolean
window_state_load(Window *w, const WindowGeom *saved_g, const WindowGeom *g, const guint8 *data,
		  gsize len, GError **error)
{
	Cursor c;
	guint16 nslices, cap;
	guint8 mode;

	cursor_init(&c, data, len);
	if (w->nslices != 0 || w->map != NULL || w->est != NULL)
		return load_fail(error, "not a fresh window");
	if (!statebuf_get_time(&c, &w->first_ms) || !statebuf_get_time(&c, &w->last_ms) ||
	    !cursor_u32(&c, &w->cur) || !cursor_u16(&c, &nslices) || !cursor_u16(&c, &cap))
		return load_fail(error, "truncated header");
	if (nslices > WINDOW_MAX_SLICES + 1u ||
	    !statebuf_count_ok(&c, nslices, STATE_SLICE_SIZE, G_MAXUINT16))
		return load_fail(error, "slice count past the end of the data");
	if (cap < nslices || cap > WINDOW_MAX_SLICES + 1u)
		cap = nslices;
	if (cap > 1)
		w->sl.many = g_malloc0(slices_bytes(cap));
	w->slice_cap = cap;
	for (guint i = 0; i < nslices; i++) {
		Slice *s = &slices(w)[i];
		if (!cursor_u32(&c, &s->slice) || !cursor_u32(&c, &s->flows) ||
		    !cursor_u32(&c, &s->attempts) || !cursor_u32(&c, &s->failed))
			return load_fail(error, "truncated slice");
		if (i > 0 && s->slice <= slices(w)[i - 1].slice)
			return load_fail(error, "slices out of order");
		if (!in_long(saved_g, s->slice, w->cur))
			return load_fail(error, "slice outside the long window");
		w->nslices++;
	}
	if (nslices > 0 && slices(w)[nslices - 1].slice != w->cur)
		return load_fail(error, "newest slice is not the current one");
	if (!cursor_u8(&c, &mode) || mode > 1)
		return load_fail(error, "bad mode");
	if (!(mode == 0 ? load_exact(w, saved_g, &c, error) : load_estimated(w, &c, error)))
		return FALSE;
	if (cursor_left(&c) != 0)
		return load_fail(error, "trailing bytes");
	window_regeom(w, saved_g, g);
	return TRUE;
}
