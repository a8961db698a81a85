/* Sliding distinct-destination windows for one tracked host and one kind of traffic.
 * Exact mode: a map destination -> slice of its last sighting (compact IPv4 entries in a small
 * array or an open-addressing table), plus per slice the number of destinations last sighted
 * there; the distinct count of a window is the sum over its slices, kept per span at the
 * newest slice. Past a per-window cap: HyperLogLog registers per slice, merged (max) over the
 * window (kept per span at the newest slice), and a space-saving sketch for the top
 * destinations. */
#include "window.h"

#include <math.h>
#include <string.h>

#include "statebuf.h"

typedef WindowSlice Slice;

#define DEST_ANSWERED 0x80000000u
#define DEST_COUNT_MASK 0x7fffffffu

/* A destination entry, in one of two forms for a whole table: IPv4 (the last 4 bytes of an
 * IPv4-mapped address) until the window sees its first IPv6 destination, which converts
 * the table to the 16-byte form (Window.dest6). The common part comes first. */
typedef struct {
	guint32 last;  /* slice of the last sighting */
	guint32 count; /* attempts (low 31 bits, saturating) | DEST_ANSWERED; 0 = empty slot */
} Dest;
typedef struct {
	Dest d;
	guint8 a4[4];
} Dest4;
typedef struct {
	Dest d;
	guint8 addr[16];
} Dest6;
G_STATIC_ASSERT(sizeof(Dest4) == 12 && sizeof(Dest6) == 24);
G_STATIC_ASSERT(G_STRUCT_OFFSET(Dest4, d) == 0 && G_STRUCT_OFFSET(Dest6, d) == 0);

/* Tables of up to DEST_SMALL entries are arrays in insertion order, searched linearly and
 * filled up (a host with a handful of destinations pays 12 bytes each, no empty slots);
 * larger ones are open-addressing tables (linear probing, load <= 3/4). Both sized to a
 * power of two. */
#define DEST_SMALL 8

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
	guint32 value;  /* hll_value(sum, zeros) when value_ok: most flows raise no register */
	guint8 valid;   /* TRUE/FALSE */
	guint8 value_ok;
} Merged;

struct WindowEst {
	guint8 *reg; /* slice_cap x WINDOW_HLL_M, parallel to the slice array */
	guint32 reg_cap;
	guint32 changes; /* register increases, to know when a cached estimate is stale */
	TopEnt top[TOPK];
	guint32 top_tag[TOPK]; /* top[i]'s address hash, high half: most compares stop here */
	guint ntop;
	/* The smallest counter of a full sketch: its value and the entries holding it (bit i:
	 * top[i]), 0 when not known. Counters only grow: an entry that grows leaves the mask,
	 * and a stream of misses takes the entries over in order, one scan for all of them. */
	guint32 min_c;
	guint32 min_mask;
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
G_STATIC_ASSERT(sizeof(WindowEst) == 2680); /* window.h and analyzer_private.h say so */

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

/* What glibc's malloc takes for a request of n bytes on a 64-bit system: n plus its 8-byte
 * size field rounded up to 16, at least 32 (n + WINDOW_ALLOC_OVERHEAD give or take 8, exact
 * for the small arrays most windows hold: a 12-byte destination array takes 32). */
static inline gsize
alloc_cost(gsize n)
{
	return MAX(32, (n + 8 + 15) & ~(gsize)15);
}

gsize
window_mem_held(const Window *w)
{
	gsize n = 0;
	if (w->slice_cap > 1) /* one slice is inline */
		n += alloc_cost(slices_bytes(w->slice_cap));
	if (w->map != NULL)
		n += alloc_cost((gsize)w->map_cap * (w->dest6 ? sizeof(Dest6) : sizeof(Dest4)));
	if (w->est != NULL)
		n += alloc_cost(sizeof(WindowEst)) +
		     (w->est->reg_cap > 0 ? alloc_cost((gsize)w->est->reg_cap * WINDOW_HLL_M) : 0);
	return n;
}

/* The slice of time t_ms: most flows of a window fall in its newest slice, which costs a
 * multiplication and two comparisons instead of a 64-bit division. */
static inline guint32
slice_of(const Window *w, const WindowGeom *g, gint64 t_ms)
{
	gint64 start = (gint64)w->cur * g->slice_ms;
	if (t_ms >= start && t_ms - start < g->slice_ms)
		return w->cur;
	return (guint32)(MAX(t_ms, 0) / g->slice_ms);
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

static const guint8 v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static inline gboolean
is_v4(const guint8 a[16])
{
	return memcmp(a, v4_prefix, 12) == 0;
}

static inline gsize
dest_size(gboolean v6)
{
	return v6 ? sizeof(Dest6) : sizeof(Dest4);
}

static inline Dest *
dest_in(void *map, gboolean v6, guint32 i)
{
	return (Dest *)(void *)((guint8 *)map + (gsize)i * dest_size(v6));
}

static inline Dest *
dest_at(const Window *w, guint32 i)
{
	return dest_in(w->map, w->dest6, i);
}

/* Slots to look at when walking the table: an array's entries are its first map_used. */
static inline guint32
map_walk_end(const Window *w)
{
	return w->map_cap <= DEST_SMALL ? w->map_used : w->map_cap;
}

/* Entries a table of cap slots may hold. */
static inline guint32
map_limit(guint32 cap)
{
	return cap <= DEST_SMALL ? cap : cap - cap / 4;
}

/* The smallest table that holds n entries. */
static guint32
map_cap_for(guint32 n)
{
	guint32 cap = 1;
	while (cap < n && cap < DEST_SMALL)
		cap *= 2;
	while (n > map_limit(cap))
		cap *= 2;
	return cap;
}

static inline void
dest_addr(gboolean v6, const Dest *d, guint8 out[16])
{
	if (v6) {
		memcpy(out, ((const Dest6 *)(const void *)d)->addr, 16);
	} else {
		memcpy(out, v4_prefix, 12);
		memcpy(out + 12, ((const Dest4 *)(const void *)d)->a4, 4);
	}
}

static inline void
dest_set_addr(gboolean v6, Dest *d, const guint8 a[16])
{
	if (v6)
		memcpy(((Dest6 *)(void *)d)->addr, a, 16);
	else
		memcpy(((Dest4 *)(void *)d)->a4, a + 12, 4);
}

/* a: in the table's form (an IPv4-mapped address when the table is IPv4) */
static inline gboolean
dest_is(gboolean v6, const Dest *d, const guint8 a[16])
{
	if (v6)
		return memcmp(((const Dest6 *)(const void *)d)->addr, a, 16) == 0;
	return memcmp(((const Dest4 *)(const void *)d)->a4, a + 12, 4) == 0;
}

static Dest *
map_find(Window *w, const guint8 a[16], guint64 h)
{
	if (w->map_cap == 0 || (!w->dest6 && !is_v4(a)))
		return NULL; /* an IPv4 table holds no IPv6 destination */
	if (w->map_cap <= DEST_SMALL) {
		for (guint32 i = 0; i < w->map_used; i++) {
			Dest *d = dest_at(w, i);
			if (dest_is(w->dest6, d, a))
				return d;
		}
		return NULL;
	}
	guint32 mask = w->map_cap - 1;
	for (guint32 i = (guint32)h & mask, n = 0; n < w->map_cap; i = (i + 1) & mask, n++) {
		Dest *d = dest_at(w, i);
		if (d->count == 0)
			return NULL;
		if (dest_is(w->dest6, d, a))
			return d;
	}
	return NULL;
}

/* A free slot for a new entry of hash h in a table of cap slots holding `used`. */
static Dest *
map_slot(void *map, gboolean v6, guint32 cap, guint32 used, guint64 h)
{
	if (cap <= DEST_SMALL)
		return dest_in(map, v6, used);
	guint32 mask = cap - 1;
	guint32 i = (guint32)h & mask;
	while (dest_in(map, v6, i)->count != 0)
		i = (i + 1) & mask;
	return dest_in(map, v6, i);
}

/* Rebuild with live entries only, in the 16-byte form when v6, into a table sized for
 * live + 1 (map_cap_for()). Sized by the entries it keeps when they outnumber `live`, so a
 * table can never be too small for them (map_slot() needs a free slot). Entries go in in
 * the old table's order. */
static void
map_rebuild(Window *w, const WindowGeom *g, gboolean v6)
{
	guint32 keep = 0, end = map_walk_end(w);
	for (guint32 i = 0; i < end; i++) {
		const Dest *d = dest_at(w, i);
		keep += d->count != 0 && in_long(g, d->last, w->cur);
	}
	guint32 need = MAX(w->live, keep) + 1;
	guint32 ncap = map_cap_for(need);
	if (ncap < w->map_cap && need * 2 > w->map_cap && v6 == w->dest6)
		ncap = w->map_cap; /* keep the size unless it is far too big: no flapping */
	void *nmap = g_malloc0((gsize)ncap * dest_size(v6));
	guint32 used = 0;
	for (guint32 i = 0; i < end; i++) {
		const Dest *d = dest_at(w, i);
		if (d->count == 0 || !in_long(g, d->last, w->cur))
			continue;
		guint8 a[16];
		dest_addr(w->dest6, d, a);
		Dest *nd = map_slot(nmap, v6, ncap, used, addr_hash(a));
		*nd = *d;
		dest_set_addr(v6, nd, a);
		used++;
	}
	g_free(w->map);
	w->map = nmap;
	w->map_cap = ncap;
	w->map_used = used;
	w->dest6 = v6 != 0;
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
			mg->value_ok = FALSE;
		}
	}
}

/* The estimate from the sum of 2^-register and the zero registers of merged registers. */
/* The raw HyperLogLog estimate from the sum of 2^-register */
static inline double
hll_raw(double sum)
{
	const double m = WINDOW_HLL_M;
	return 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
}

/* The estimate is the raw one, not linear counting (used for small cardinalities: up to
 * 2.5 m with a register still at zero) */
static inline gboolean
hll_reads_raw(double sum, guint zeros)
{
	return zeros == 0 || hll_raw(sum) > 2.5 * WINDOW_HLL_M;
}

static guint32
hll_value(double sum, guint zeros)
{
	const double m = WINDOW_HLL_M;
	double est = hll_reads_raw(sum, zeros) ? hll_raw(sum) : m * log(m / zeros);
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

/* Four hash tags, compared in one vector operation where the target has one (GCC vector
 * extension: plain code elsewhere). */
typedef guint32 TagVec __attribute__((vector_size(16)));
G_STATIC_ASSERT(TOPK % 4 == 0);

G_STATIC_ASSERT(TOPK <= 32);

/* The smallest counter and the entries holding it (a full sketch). */
static void
top_min_scan(WindowEst *e)
{
	guint32 c = e->top[0].count, mask = 1;
	for (guint i = 1; i < TOPK; i++) {
		if (e->top[i].count < c) {
			c = e->top[i].count;
			mask = 0;
		}
		if (e->top[i].count == c)
			mask |= 1u << i;
	}
	e->min_c = c;
	e->min_mask = mask;
}

/* Entry i's counter grew by n (a counter that wraps makes the smallest one unknown). */
static inline void
top_grow(WindowEst *e, guint i, guint32 n)
{
	guint32 old = e->top[i].count;
	e->top[i].count = old + n;
	if (old + n < old)
		e->min_mask = 0;
	else if (n != 0)
		e->min_mask &= ~(1u << i);
}

static void
top_add(WindowEst *e, const guint8 a[16], guint64 h, guint32 slice, guint32 n)
{
	/* every estimated flow comes here: find a by its hash tag first, all 16 tags compared
	 * at once (most flows of a fan-out host miss); on a miss, the first smallest counter
	 * (space-saving takes it over) */
	guint32 tag = (guint32)(h >> 32);
	TagVec want = {tag, tag, tag, tag}, any = {0, 0, 0, 0};
	for (guint q = 0; q < TOPK / 4; q++) {
		TagVec v;
		memcpy(&v, e->top_tag + 4 * q, sizeof v);
		any |= (TagVec)(v == want);
	}
	guint64 any2[2];
	memcpy(any2, &any, sizeof any2);
	for (guint i = 0; (any2[0] | any2[1]) != 0 && i < e->ntop; i++) {
		if (e->top_tag[i] == tag && memcmp(e->top[i].addr, a, 16) == 0) {
			top_grow(e, i, n);
			e->top[i].last = slice;
			return;
		}
	}
	if (e->ntop < TOPK) {
		e->top_tag[e->ntop] = tag;
		TopEnt *t = &e->top[e->ntop++];
		memcpy(t->addr, a, 16);
		t->count = n;
		t->error = 0;
		t->last = slice;
		e->min_mask = 0;
		return;
	}
	if (e->min_mask == 0)
		top_min_scan(e);
	/* space-saving: the first smallest counter is taken over and keeps its count as error */
	guint min_i = (guint)__builtin_ctz(e->min_mask);
	TopEnt *t = &e->top[min_i];
	e->top_tag[min_i] = tag;
	memcpy(t->addr, a, 16);
	t->error = t->count;
	t->last = slice;
	top_grow(e, min_i, n);
}

/* Exact -> estimated: every live destination goes into the registers of its last slice. */
static void
start_estimating(Window *w, const WindowGeom *g)
{
	WindowEst *e = g_new0(WindowEst, 1);
	e->reg_cap = w->slice_cap;
	e->reg = g_malloc0((gsize)e->reg_cap * WINDOW_HLL_M);
	w->est = e;
	for (guint32 i = 0, end = map_walk_end(w); i < end; i++) {
		Dest *d = dest_at(w, i);
		if (d->count == 0 || !in_long(g, d->last, w->cur))
			continue;
		guint8 a[16];
		dest_addr(w->dest6, d, a);
		for (guint k = 0; k < w->nslices; k++) {
			if (slices(w)[k].slice == d->last) {
				hll_add(e, k, addr_hash(a));
				break;
			}
		}
		top_add(e, a, addr_hash(a), d->last, d->count & DEST_COUNT_MASK);
	}
	g_clear_pointer(&w->map, g_free);
	w->map_cap = w->map_used = 0;
	w->dest6 = 0;
	w->live = 0;
}

/* window_add_held()'s work. *held0: what the window held before this add, taken (and
 * *changed set) before the first change that can move it: on any path but a flow in the
 * newest slice of a window that has one, or before the map grows or the window switches to
 * estimating (nothing else allocates or frees on that path). */
static inline guint
add_flow(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16], gboolean attempt,
	 gboolean failed, gsize *held0, gboolean *changed)
{
	guint res = 0;
	guint32 s = slice_of(w, g, t_ms);

	if (!(w->nslices > 0 && s == w->cur && slices(w)[w->nslices - 1].slice == w->cur)) {
		*held0 = window_mem_held(w);
		*changed = TRUE;
	}
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
		/* no sums kept: counted into these and dropped (zeroed: an increment reads them) */
		memset(dummy, 0, sizeof dummy);
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
		top_add(w->est, dst, h, w->cur, 1);
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
	if (!*changed && (w->live >= g->exact_cap || w->map_used + 1 > map_limit(w->map_cap) ||
			  w->dest6 != (w->dest6 || !is_v4(dst)))) {
		*held0 = window_mem_held(w);
		*changed = TRUE;
	}
	if (w->live >= g->exact_cap) {
		start_estimating(w, g);
		hll_add(w->est, idx, h);
		top_add(w->est, dst, h, w->cur, 1);
		return res | WINDOW_ADD_NEW_DEST | WINDOW_ADD_ESTIMATING;
	}
	gboolean v6 = w->dest6 || !is_v4(dst);
	if (w->map_used + 1 > map_limit(w->map_cap) || v6 != w->dest6)
		map_rebuild(w, g, v6); /* grow, or the first IPv6 destination: the 16-byte form */
	d = map_slot(w->map, w->dest6, w->map_cap, w->map_used, h);
	dest_set_addr(w->dest6, d, dst);
	d->last = w->cur;
	d->count = 1;
	w->map_used++;
	w->live++;
	cs->ndist++;
	s0->ndist++;
	s1->ndist++;
	return res | WINDOW_ADD_NEW_DEST;
}

guint
window_add_held(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16],
		gboolean attempt, gboolean failed, gssize *held_delta)
{
	gsize held0 = 0;
	gboolean changed = FALSE;
	guint res = add_flow(w, g, t_ms, dst, attempt, failed, &held0, &changed);
	*held_delta = changed ? (gssize)window_mem_held(w) - (gssize)held0 : 0;
	return res;
}

guint
window_add(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16], gboolean attempt,
	   gboolean failed)
{
	gssize held;
	return window_add_held(w, g, t_ms, dst, attempt, failed, &held);
}

void
window_answer(Window *w, const WindowGeom *g, const guint8 dst[16])
{
	Dest *d = map_find(w, dst, addr_hash(dst));
	if (d != NULL && in_long(g, d->last, w->cur))
		d->count |= DEST_ANSWERED;
}

gboolean
window_dest_answered(Window *w, const WindowGeom *g, const guint8 dst[16])
{
	const Dest *d = map_find(w, dst, addr_hash(dst));
	return d != NULL && (d->count & DEST_ANSWERED) && in_long(g, d->last, w->cur);
}

static guint32
now_slice(const Window *w, const WindowGeom *g, gint64 now_ms)
{
	guint32 s = slice_of(w, g, now_ms);
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
static Merged *
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
	mg->value_ok = FALSE;
	return mg->valid ? mg : NULL;
}

/* The estimate of span k ending at slice `now`: from the merged registers kept at the newest
 * slice when `now` is that slice, else from a merge of the span's slices (cached). */
static guint32
est_distinct(Window *w, const WindowGeom *g, guint32 now, guint k)
{
	WindowEst *e = w->est;
	if (now == w->cur) {
		Merged *mg = merged_at_cur(w, g, k);
		if (mg != NULL) {
			if (!mg->value_ok) {
				mg->value = hll_value(mg->sum, mg->zeros);
				mg->value_ok = TRUE;
			}
			return mg->value;
		}
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

gboolean
window_newest_attempts(const Window *w, WindowTally *t)
{
	if (w->nslices == 0)
		return FALSE;
	const Slice *s = &slices(w)[w->nslices - 1];
	const Sums *sm = sums(w);
	if (w->nslices == 1 && s->slice == w->cur) {
		/* window_counts()'s first case: one slice, in every span */
		for (guint k = 0; k < WINDOW_SPANS; k++)
			t->distinct[k] = s->ndist;
		t->long_attempts = s->attempts;
		t->long_failed = s->failed;
	} else if (sm != NULL && sm->valid && sm->at == w->cur) {
		for (guint k = 0; k < WINDOW_SPANS; k++)
			t->distinct[k] = sm->span[k].ndist;
		t->long_attempts = sm->span[WINDOW_LONG].attempts;
		t->long_failed = sm->span[WINDOW_LONG].failed;
	} else {
		return FALSE;
	}
	return TRUE;
}

/* Span k's estimate at the newest slice, read from its merged registers, can only grow
 * with later adds to that slice: it is the raw HyperLogLog estimate (above 2.5 m, or no
 * register left at zero), which more registers only raise. Linear counting, below, grows
 * too, but gives way to the raw estimate at 2.5 m, which may be lower. */
static gboolean
est_grows_only(const WindowEst *e, guint32 cur, guint k)
{
	const Merged *mg = &e->merged[k];
	if (!mg->valid || mg->at != cur)
		return FALSE;
	return hll_reads_raw(mg->sum, mg->zeros);
}

gboolean
window_newest_distinct(Window *w, const WindowGeom *g, WindowTally *t)
{
	if (w->est == NULL)
		return TRUE;
	gboolean grows = TRUE;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		t->distinct[k] = est_distinct(w, g, w->cur, k);
		grows = grows && est_grows_only(w->est, w->cur, k);
	}
	return grows;
}

gboolean
window_newest_tally(Window *w, const WindowGeom *g, WindowTally *t)
{
	if (!window_newest_attempts(w, t))
		return FALSE;
	window_newest_distinct(w, g, t);
	return TRUE;
}

void
window_counts(Window *w, const WindowGeom *g, gint64 now_ms, WindowCounts *out)
{
	guint32 now = now_slice(w, g, now_ms);
	SpanSum sp[WINDOW_SPANS];
	Sums *sm = sums(w);
	if (now == w->cur && w->nslices == 1 && slices(w)[0].slice == now) {
		/* most windows: one slice, the newest, in every span */
		const Slice *s = slices(w);
		sp[0].ndist = s->ndist;
		sp[0].flows = s->flows;
		sp[0].attempts = s->attempts;
		sp[0].failed = s->failed;
		for (guint k = 1; k < WINDOW_SPANS; k++)
			sp[k] = sp[0];
	} else if (now == w->cur && sm != NULL) {
		/* at the newest slice (every flow's evaluation): the kept sums, O(1) */
		if (!(sm->valid && sm->at == now)) {
			for (guint k = 0; k < WINDOW_SPANS; k++)
				span_sum(w, g, now, k, &sm->span[k]);
			sm->at = now;
			sm->valid = TRUE;
		}
		for (guint k = 0; k < WINDOW_SPANS; k++)
			sp[k] = sm->span[k];
	} else {
		for (guint k = 0; k < WINDOW_SPANS; k++)
			span_sum(w, g, now, k, &sp[k]);
	}
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		WindowSpanCounts *c = &out->span[k];
		c->distinct = sp[k].ndist;
		c->estimated = w->est != NULL;
		c->flows = sp[k].flows;
		c->attempts = sp[k].attempts;
		c->failed = sp[k].failed;
		c->packets = 0; /* the analyzer's (sampled hosts) */
		if (w->est != NULL)
			c->distinct = est_distinct(w, g, now, k);
	}
	if (out->span[WINDOW_LONG].flows == 0) {
		out->first_ms = out->last_ms = 0;
	} else {
		out->first_ms = w->first_ms;
		out->last_ms = w->last_ms;
	}
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
	for (guint32 i = 0, end = map_walk_end(w); i < end; i++) {
		const Dest *d = dest_at(w, i);
		if (d->count == 0 || !in_long(g, d->last, now))
			continue;
		guint32 count = d->count & DEST_COUNT_MASK;
		/* top_insert()'s own refusal, before the address is made: once the list is full
		 * most destinations of a fan-out are refused (each raised or updated event walks
		 * them all) */
		if (n == max && out[max - 1].count >= count)
			continue;
		guint8 a[16];
		dest_addr(w->dest6, d, a);
		top_insert(out, &n, max, a, count, 0);
	}
	return n;
}

guint
window_foreach_dest(const Window *w, const WindowGeom *g, gint64 now_ms, WindowDestFunc fn,
		    gpointer user_data)
{
	guint32 now = now_slice(w, g, now_ms);
	guint n = 0;
	for (guint32 i = 0, end = map_walk_end(w); i < end; i++) {
		const Dest *d = dest_at(w, i);
		if (d->count != 0 && in_long(g, d->last, now)) {
			if (fn != NULL) {
				guint8 a[16];
				dest_addr(w->dest6, d, a);
				fn(a, user_data);
			}
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
	for (guint32 i = 0, end = map_walk_end(w); i < end; i++) {
		const Dest *d = dest_at(w, i);
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
		map_rebuild(w, g, w->dest6);
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
		map_rebuild(w, old_g, w->dest6);
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
save_dest(GByteArray *out, gboolean v6, const Dest *d)
{
	guint8 a[16];
	dest_addr(v6, d, a);
	statebuf_put_bytes(out, a, 16);
	statebuf_put_u32(out, d->last);
	statebuf_put_u32(out, d->count & DEST_COUNT_MASK);
	statebuf_put_u8(out, (d->count & DEST_ANSWERED) != 0);
}

/* An array: its order. Linear probing: the table's layout is what inserting its entries
 * cluster by cluster, each cluster from its first slot on, gives; a cluster starts after an
 * empty slot (a table at load <= 3/4 has one). */
static void
save_map(const Window *w, GByteArray *out)
{
	guint32 cap = w->map_cap, mask = cap - 1, start = 0;
	if (cap == 0)
		return;
	if (cap <= DEST_SMALL) {
		for (guint32 i = 0; i < w->map_used; i++)
			save_dest(out, w->dest6, dest_at(w, i));
		return;
	}
	while (dest_at(w, start)->count != 0)
		start++;
	for (guint32 n = 0, i = start; n < cap; n++, i = (i + 1) & mask) {
		if (dest_at(w, i)->count != 0)
			save_dest(out, w->dest6, dest_at(w, i));
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
	/* read first (n is bounded by the bytes there), to know the table's form */
	g_autofree Dest6 *in = g_new(Dest6, n);
	gboolean v6 = FALSE;
	for (guint32 i = 0; i < n; i++) {
		Dest6 *e = &in[i];
		guint8 answered;
		if (!cursor_bytes(c, e->addr, 16) || !cursor_u32(c, &e->d.last) ||
		    !cursor_u32(c, &e->d.count) || !cursor_u8(c, &answered))
			return load_fail(error, "truncated destination");
		if (e->d.count == 0 || e->d.count > DEST_COUNT_MASK || answered > 1)
			return load_fail(error, "bad destination attempt count");
		if (e->d.last > w->cur)
			return load_fail(error, "destination sighted after the newest slice");
		if (answered)
			e->d.count |= DEST_ANSWERED;
		v6 = v6 || !is_v4(e->addr);
	}
	w->dest6 = v6;
	w->map = g_malloc0((gsize)cap * dest_size(v6));
	w->map_cap = cap;
	for (guint32 i = 0; i < n; i++) {
		const Dest6 *e = &in[i];
		guint64 h = addr_hash(e->addr);
		if (map_find(w, e->addr, h) != NULL)
			return load_fail(error, "duplicate destination");
		/* a destination in the long window is counted in the slice it was last sighted
		 * in; one that left the window stays in the table as an expired entry */
		if (in_long(g, e->d.last, w->cur)) {
			Slice *s = find_slice(w, e->d.last);
			if (s == NULL)
				return load_fail(error, "destination sighted in a slice that is not there");
			s->ndist++;
			w->live++;
		}
		Dest *d = map_slot(w->map, v6, w->map_cap, w->map_used, h);
		*d = e->d;
		dest_set_addr(v6, d, e->addr);
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
	for (guint i = 0; i < ntop; i++)
		e->top_tag[i] = (guint32)(addr_hash(e->top[i].addr) >> 32);
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
