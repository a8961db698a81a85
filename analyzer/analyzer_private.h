/* What the analyzer's files share and nothing else sees: the Analyzer itself, the host slab
 * and its table, the per-host extras (second windows, MTA baseline, country/ASN sets), the
 * offenders, and the functions each file gives the others. One concern per file:
 *   analyzer.c         processing and evaluation, ticks, queries, new/free
 *   analyzer_config.c  defaults, validation, applying and reconfiguring
 *   hosts.c            the host slab, its open-addressing table, recency list, caps
 *   baseline.c         MTA baselines (mta-surge)
 *   geo.c              distinct countries and ASNs per host window
 *   events.c           alert events, offenders, the history of events
 *   analyzer_state.c   saved state (restart without loss)
 *   alert.c            the names declared in alert.h
 * The functions one file gives another are G_GNUC_INTERNAL (hidden): the library is built
 * position-independent, where a visible function could be interposed, so the compiler would
 * neither inline it nor know which registers it uses, as it did when they were static in
 * one file. What runs for every flow is inline here (decode_bench counts it). */
#pragma once

#include <string.h>

#include "analyzer.h"
#include "fnv1a.h"

typedef struct {
	guint32 cap;
	guint32 n, head;
	guint32 next_slice;
	guint32 median[WINDOW_SPANS];
	guint32 ring[]; /* [k * cap + i] */
} Baseline;

/* Distinct countries and ASNs of one host window's destinations: small arrays grown by
 * doubling up to the ANALYZER_GEO_MAX_* caps, each entry stamped with the slice it was last
 * seen in so it leaves with the long window. */
typedef struct {
	guint32 slice;
	char cc[2];
} GeoCc;
typedef struct {
	guint32 slice;
	guint32 asn;
} GeoAs;
G_STATIC_ASSERT(G_STRUCT_OFFSET(GeoCc, slice) == 0 && G_STRUCT_OFFSET(GeoAs, slice) == 0);
typedef struct {
	GeoCc *cc;
	GeoAs *as;
	guint8 n_cc, cap_cc, n_as, cap_as;
	guint32 sat_cc, sat_as; /* 1 + slice of the last value a full set refused; 0 = none */
	guint32 est_skip;       /* estimated windows: attempts since the last sampled lookup */
	gboolean started;
} GeoSet;

/* What few hosts have: windows of a second kind of traffic, an MTA baseline, country/ASN
 * sets. Allocated on the first need, kept until the host goes. */
typedef struct {
	Window *win[HEUR_WIN_COUNT]; /* kinds other than the host's first (win1_kind) */
	Baseline *base;
	GeoSet *geo; /* [HEUR_WIN_COUNT], allocated when a window first needs one */
} HostExt;

/* Hosts live in a slab (chunks of HOST_CHUNK slots) and are named by a 32-bit index: the
 * recency list and the host table hold indices, not pointers. A Host * stays valid until
 * analyzer_tick() returns (slab_compact() may move hosts). Most hosts make one kind of
 * traffic: that window is inside the host's slot, the others in a HostExt. */
#define HOST_NONE G_MAXUINT32
#define HOST_FREE (G_MAXUINT32 - 1) /* prev of a free slot */
#define HOST_CHUNK_BITS 12
#define HOST_CHUNK (1u << HOST_CHUNK_BITS)

typedef struct Host Host;
struct Host {
	guint8 addr[16];
	guint32 prev, next; /* recency list, head = most recently seen; free slots: next free */
	gint64 last_ms;
	HostExt *ext; /* NULL until needed */
	guint32 sampling;
	guint32 exporters[2];
	guint8 n_exporters; /* distinct exporters seen, saturating; the first two are kept */
	guint8 offenders;   /* 1 << AlertReason per active offender */
	guint8 is_mta;
	guint8 win1_kind; /* kind of win1, HOST_NO_WIN: none */
	Window win1;      /* the window of the first kind of traffic seen */
};
#define HOST_NO_WIN 0xff
G_STATIC_ASSERT(sizeof(Host) == 128);

/* Memory estimate (AnalyzerStats.mem_bytes, what mem_cap holds), per tracked host:
 *   HOST_COST = sizeof(Host) 128 (a slab slot, no allocator header, with the first window's
 *               72-byte structure and its first slice inside)
 *             + HOST_TABLE_SHARE 8 (the host table: one 4-byte slot at load 3/8..3/4, so
 *               5.3..10.7 bytes a host, 8 in the middle)
 *   + sizeof(HostExt) 48 + WINDOW_ALLOC_OVERHEAD when the host has one
 *   + what each window holds (window_mem_held(), each array as glibc's malloc takes n bytes:
 *     n + 8 rounded up to 16, at least 32: slices from the second one on, 20 x capacity +
 *     40 (the per-span sums); destinations, 12 x table size while all are IPv4, 24 x table
 *     size from the first IPv6 one on, the table size being the power of two >= d up to 8
 *     destinations (an array, full allowed) and the power of two that keeps load <= 3/4
 *     beyond; an estimated window 2,680 + 1,024 x slice capacity, plus 2 x 16, instead), and
 *     for windows in the HostExt their structure, 72 + 16
 *   + baseline_mem(), geo_mem().
 * A host with one window of d IPv4 destinations: 128 + 8 = 136 bytes + the array: 168 B
 * with one or two destinations (12 or 24 bytes take 32), 200 B with three or four (48 take
 * 64), 248 B with 5-8 (96 take 112); analyzer_host_overhead() is 136 + 16.
 * Slots freed by hosts that go are reused before the slab grows, and analyzer_tick() gives
 * the slab back down to about twice the tracked hosts (slab_compact()); the estimate counts
 * the tracked hosts only. */
#define HOST_TABLE_SHARE 8
#define HOST_COST (sizeof(Host) + HOST_TABLE_SHARE)
#define HOST_EXT_COST (sizeof(HostExt) + WINDOW_ALLOC_OVERHEAD)

typedef struct OffEntry OffEntry;
struct OffEntry {
	guint8 addr[16];
	guint32 reason;
	OffEntry *prev, *next; /* creation order: analyzer_tick() visits offenders in it */
	Offender sm;
	guint8 peer[16];
	gboolean has_peer;
	AlertEvent last;
};

struct Analyzer {
	AnalyzerConfig cfg; /* string fields point into the copies below */
	char *s_internal, *s_mtas, *s_smtp, *s_submit, *s_login;
	NetSet *internal;
	NetSet *mtas;
	HeurClassifier hc;
	WindowGeom geom;
	OffenderPolicy policy;
	AlertFunc alert_fn;
	gpointer alert_data;
	AnalyzerGeoFunc geo_fn;
	gpointer geo_data;
	AnalyzerNoticeFunc notice_fn;
	gpointer notice_data;

	/* hosts: the slab, its free list, and an open-addressing table of slab index + 1
	 * (0 = empty), linear probing, load <= 3/4, deletion by backward shift */
	Host **chunks;
	guint32 n_chunks, free_head, n_free;
	guint32 bump; /* slots from here to the end of the last chunk were never used */
	guint32 n_hosts;
	guint32 n_hosts_est; /* hosts with a window in estimated mode (host_estimating()) */
	guint32 *table;
	guint32 table_cap; /* a power of two, or 0 */
	guint32 lru_head, lru_tail;
	/* evictions not yet told (ANALYZER_NOTICE_EVICTED): hosts_evict() counts them,
	 * hosts_notice() tells them */
	guint64 evict_by_hosts, evict_by_mem;
	gint64 evict_first_ms, evict_last_ms;
	gint64 evict_notice_ms; /* when they were last told; G_MININT64: never */
	gboolean loading;       /* in analyzer_state_load(): no notices */
	GHashTable *offenders;         /* set of OffEntry*, keyed by (addr, reason) */
	OffEntry *off_head, *off_tail; /* the same entries, oldest first */

	AlertEvent *history;
	guint hist_len, hist_head, hist_n;

	gint64 now_ms;
	gint64 last_tick_ms;
	guint64 mem;
	AnalyzerStats st;
};

static inline guint
addr_hash16(gconstpointer p)
{
	return fnv1a(p, 16);
}

static inline Host *
host_at(const Analyzer *a, guint32 i)
{
	return &a->chunks[i >> HOST_CHUNK_BITS][i & (HOST_CHUNK - 1)];
}

static inline Window *
host_win(const Host *h, guint k)
{
	if (h->win1_kind == k)
		return (Window *)&h->win1;
	return h->ext != NULL ? h->ext->win[k] : NULL;
}

/* Bytes of a host's window w in the estimate (the first one's structure is in HOST_COST). */
static inline gsize
host_win_mem(const Host *h, const Window *w)
{
	if (w == NULL)
		return 0;
	return w == &h->win1 ? window_mem_held(w) : window_mem(w);
}

static inline Baseline *
host_base(const Host *h)
{
	return h->ext != NULL ? h->ext->base : NULL;
}

static inline GeoSet *
host_geo(const Host *h)
{
	return h->ext != NULL ? h->ext->geo : NULL;
}

static inline gsize
ext_mem(const Host *h)
{
	return h->ext != NULL ? HOST_EXT_COST : 0;
}

/* ---- hosts.c, and the host table's per-flow path ---- */

/* The table slot holding addr, or HOST_NONE. */
G_GNUC_INTERNAL guint32 table_find(const Analyzer *a, const guint8 addr[16]);
G_GNUC_INTERNAL void table_insert(Analyzer *a, guint32 i);
G_GNUC_INTERNAL guint32 slab_alloc(Analyzer *a);
G_GNUC_INTERNAL void lru_unlink(Analyzer *a, guint32 i);
G_GNUC_INTERNAL HostExt *host_ext(Host *h);
/* Evict the least recently seen hosts until both caps hold, sparing host `keep` (the one
 * being fed; HOST_NONE: none). */
G_GNUC_INTERNAL void hosts_evict(Analyzer *a, guint32 keep);

/* The slab index of a tracked host, or HOST_NONE. */
static inline guint32
host_index(const Analyzer *a, const guint8 addr[16])
{
	guint32 p = table_find(a, addr);
	return p == HOST_NONE ? HOST_NONE : a->table[p] - 1;
}

static inline Host *
host_lookup(Analyzer *a, const guint8 addr[16])
{
	guint32 i = host_index(a, addr);
	return i == HOST_NONE ? NULL : host_at(a, i);
}

static inline gboolean
hosts_over_caps(const Analyzer *a)
{
	return a->mem > a->cfg.mem_cap || a->n_hosts > a->cfg.max_hosts;
}

/* hosts_evict() when a cap is exceeded: after every flow */
static inline void
hosts_enforce_caps(Analyzer *a, guint32 keep)
{
	if (hosts_over_caps(a))
		hosts_evict(a, keep);
}

static inline void
lru_push_head(Analyzer *a, guint32 i)
{
	Host *h = host_at(a, i);
	h->prev = HOST_NONE;
	h->next = a->lru_head;
	if (a->lru_head != HOST_NONE)
		host_at(a, a->lru_head)->prev = i;
	a->lru_head = i;
	if (a->lru_tail == HOST_NONE)
		a->lru_tail = i;
}

/* The host (created when new) at the head of the recency list; *index: its slab index.
 * NULL only when the slab's index space is used up. */
static inline Host *
host_get(Analyzer *a, const guint8 addr[16], guint32 *index)
{
	guint32 i = host_index(a, addr);
	if (i != HOST_NONE) {
		if (a->lru_head != i) {
			lru_unlink(a, i);
			lru_push_head(a, i);
		}
		*index = i;
		return host_at(a, i);
	}
	i = slab_alloc(a);
	if (i == HOST_NONE)
		return NULL;
	Host *h = host_at(a, i);
	memcpy(h->addr, addr, 16);
	h->sampling = 1;
	table_insert(a, i);
	lru_push_head(a, i);
	a->mem += HOST_COST;
	a->st.hosts_created++;
	hosts_enforce_caps(a, i);
	*index = i;
	return h;
}

/* A new window of kind k (the host has none of that kind). Not counted in a->mem. */
static inline Window *
host_win_new(Host *h, guint k)
{
	if (h->win1_kind == HOST_NO_WIN) {
		window_init(&h->win1);
		h->win1_kind = (guint8)k;
		return &h->win1;
	}
	return host_ext(h)->win[k] = window_new();
}

G_GNUC_INTERNAL void hosts_init(Analyzer *a);
G_GNUC_INTERNAL void hosts_free(Analyzer *a);
G_GNUC_INTERNAL void host_ext_trim(Host *h);
G_GNUC_INTERNAL gboolean host_estimating_except(const Host *h, guint except);
G_GNUC_INTERNAL gboolean host_estimating(const Host *h);
G_GNUC_INTERNAL gsize host_mem(const Host *h);
G_GNUC_INTERNAL void host_clear(Host *h);
G_GNUC_INTERNAL void host_free(Host *h);
G_GNUC_INTERNAL void host_drop(Analyzer *a, guint32 i);
G_GNUC_INTERNAL gboolean host_adopt(Analyzer *a, Host *h);
G_GNUC_INTERNAL void hosts_expire(Analyzer *a, gint64 now_ms);
G_GNUC_INTERNAL void hosts_notice(Analyzer *a, gboolean now);
G_GNUC_INTERNAL void hosts_reconfigure(Analyzer *a, const WindowGeom *old);

/* ---- baseline.c ---- */
G_GNUC_INTERNAL Baseline *baseline_new(const Analyzer *a);
G_GNUC_INTERNAL gsize baseline_mem(const Baseline *b);
G_GNUC_INTERNAL void baseline_push(Baseline *b, const guint32 v[WINDOW_SPANS]);
G_GNUC_INTERNAL void baseline_median(Baseline *b);
G_GNUC_INTERNAL void baseline_sample(Analyzer *a, Host *h, Window *w, gint64 now);

/* ---- geo.c ---- */
/* In estimated mode a window names no new destinations: one attempt in this many is looked
 * up instead (GeoSet.est_skip counts them). */
#define GEO_EST_SAMPLE 8

G_GNUC_INTERNAL gsize geo_mem(const GeoSet *g);
G_GNUC_INTERNAL void geo_clear(GeoSet *g);
G_GNUC_INTERNAL void geo_free(GeoSet *g);
G_GNUC_INTERNAL void geo_update(Analyzer *a, Host *h, HeurWin k, Window *w, const guint8 dst[16],
				guint r, gint64 now);
G_GNUC_INTERNAL void geo_fill_event(Analyzer *a, AlertEvent *ev, Host *h, HeurWin wk, gint64 now);

/* ---- events.c ---- */
G_GNUC_INTERNAL void events_init(Analyzer *a, guint history_len);
G_GNUC_INTERNAL void events_free(Analyzer *a);
G_GNUC_INTERNAL void events_history_resize(Analyzer *a, guint history_len);
G_GNUC_INTERNAL void events_emit(Analyzer *a, OffEntry *o, Host *h, AlertKind kind, gint64 now);
G_GNUC_INTERNAL OffEntry *off_lookup(Analyzer *a, const guint8 addr[16], AlertReason r);
G_GNUC_INTERNAL OffEntry *off_new(Analyzer *a, const guint8 addr[16], AlertReason r);
G_GNUC_INTERNAL void off_insert(Analyzer *a, OffEntry *o);
G_GNUC_INTERNAL void off_remove(Analyzer *a, OffEntry *o);

/* ---- analyzer.c ---- */
G_GNUC_INTERNAL void thresholds(const Analyzer *a, const Host *h, AlertReason r,
				guint32 thr[WINDOW_SPANS]);

/* ---- analyzer_config.c ---- */
typedef struct {
	NetSet *internal, *mtas;
	PortSet smtp, submit, login;
} AnalyzerParsed;
G_GNUC_INTERNAL G_GNUC_WARN_UNUSED_RESULT gboolean
analyzer_config_parse(const AnalyzerConfig *c, AnalyzerParsed *p, GError **error);
G_GNUC_INTERNAL void analyzer_config_apply(Analyzer *a, const AnalyzerConfig *c, AnalyzerParsed *p);
G_GNUC_INTERNAL void analyzer_config_clear(Analyzer *a);
