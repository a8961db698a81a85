/* What the analyzer's files share and nothing else sees: the Analyzer itself, the host slab
 * and its table, the per-host extras (second windows, MTA baseline, country/ASN sets), the
 * offenders, and the functions each file gives the others. One concern per file:
 *   analyzer.c         processing and evaluation, ticks, queries, new/free
 *   analyzer_config.c  defaults, validation, applying and reconfiguring
 *   hosts.c            the host slab, its open-addressing table, recency list, caps
 *   baseline.c         MTA baselines (mta-surge)
 *   geo.c              distinct countries and ASNs per host window
 *   signs.c            side signs of a host: inbound SMTP, external DNS (the evidence)
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
#include "novelty.h"

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

/* Side signs of a tracked host (signs.c), counted over the last hour in SIGNS_BUCKETS
 * buckets of SIGNS_BUCKET_MS: a count covers the buckets that end within the last hour
 * (50 to 60 minutes of records). */
#define SIGNS_BUCKETS 6
#define SIGNS_BUCKET_MS (10 * 60 * 1000)
#define SIGNS_HOUR_MS ((gint64)SIGNS_BUCKETS * SIGNS_BUCKET_MS)
typedef struct {
	guint32 cur;              /* bucket number (t_ms / SIGNS_BUCKET_MS) of the newest */
	guint32 n[SIGNS_BUCKETS]; /* n[b % SIGNS_BUCKETS]: records of bucket b, cur-5..cur */
} SignCount;
typedef struct {
	SignCount inbound;     /* SMTP sessions delivered to the host from outside */
	SignCount dns;         /* DNS queries to external servers (no listed resolver at either end) */
	gint64 dns_last_ms;    /* the newest of them, 0 = none */
	guint8 dns_server[16]; /* ... and its server */
} HostSigns;

#define NOV_BUCKETS 6 /* smtp-novelty's buckets per window (Host.nov) */

/* Sampled packets of a sampled host's attempts, for the sampling estimate
 * (heuristics_estimate(): the ratio of sampled packets to what was counted tells how many
 * packets an attempt had, so how likely it was to be seen): per kind of traffic, per slice
 * of the long window (pk[k * span + s % span], the slice cur[k] the newest), and per
 * novelty bucket. Allocated at a host's first sampled record (span: the long window's
 * slices when allocated; a new geometry frees it). Not saved: after a restart the estimate
 * takes the configured packets per attempt until the windows refill. */
typedef struct {
	guint32 span;
	guint32 cur[HEUR_WIN_COUNT];
	SignCount nov; /* in smtp-novelty's buckets (bucket_count_add()) */
	/* per kind, the host's latest sampled failed records: SYNs (the client's) and resets
	 * (the server's refusals), both halved when they reach SAMPLED_FAILED_MEMORY together;
	 * resets / SYNs is the share of failed attempts that were refused (HeurSampling) */
	guint16 syns[HEUR_WIN_COUNT], resets[HEUR_WIN_COUNT];
	guint32 pk[];
} Sampled;
#define SAMPLED_FAILED_MEMORY 256
G_STATIC_ASSERT(NOV_BUCKETS == SIGNS_BUCKETS);

/* What few hosts have: windows of a second kind of traffic, an MTA baseline, country/ASN
 * sets, side signs, sampled packets. Allocated on the first need, kept until the host
 * goes. */
typedef struct {
	Window *win[HEUR_WIN_COUNT]; /* kinds other than the host's first (win1_kind) */
	Baseline *base;
	GeoSet *geo;      /* [HEUR_WIN_COUNT], allocated when a window first needs one */
	HostSigns *signs; /* allocated at the first inbound SMTP or external DNS record */
	Sampled *samp;    /* allocated at the first sampled record (sampling > 1) */
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
	guint8 is_mta : 1;
	/* in Analyzer.hist_cand: judged at a quarter of a threshold or more since the last
	 * slice walk that found it below (analyzer_foreach_reading) */
	guint8 hist_cand : 1;
	guint8 win1_kind; /* kind of win1, HOST_NO_WIN: none */
	Window win1;      /* the window of the first kind of traffic seen */
	/* smtp-novelty: new destinations per bucket of novelty_window_ms / NOV_BUCKETS,
	 * nov[b % NOV_BUCKETS] for the buckets b in (nov_cur - NOV_BUCKETS, nov_cur];
	 * saturating. All zero for a host with no new port-25 destination in the window. */
	guint16 nov[6];
	guint32 nov_cur;
};
#define HOST_NO_WIN 0xff
G_STATIC_ASSERT(sizeof(Host) == 144);

/* Memory estimate (AnalyzerStats.mem_bytes, what mem_cap holds), per tracked host:
 *   HOST_COST = sizeof(Host) 144 (a slab slot, no allocator header, with the first window's
 *               72-byte structure and its first slice inside, and the 16-byte smtp-novelty
 *               counts)
 *             + HOST_TABLE_SHARE 8 (the host table: one 4-byte slot at load 3/8..3/4, so
 *               5.3..10.7 bytes a host, 8 in the middle)
 *   + sizeof(HostExt) 64 + WINDOW_ALLOC_OVERHEAD when the host has one
 *   + SAMPLED_COST(long window slices) for a sampled host (1,040 bytes at 60 slices)
 *   + sizeof(HostSigns) 80 + WINDOW_ALLOC_OVERHEAD when it has side signs (SIGNS_COST: a
 *     tracked host that receives mail or asks external DNS servers, 96 + 80 with the ext)
 *   + what each window holds (window_mem_held(), each array as glibc's malloc takes n bytes:
 *     n + 8 rounded up to 16, at least 32: slices from the second one on, 20 x capacity +
 *     40 (the per-span sums); destinations, 12 x table size while all are IPv4, 24 x table
 *     size from the first IPv6 one on, the table size being the power of two >= d up to 8
 *     destinations (an array, full allowed) and the power of two that keeps load <= 3/4
 *     beyond; an estimated window 2,680 + 1,024 x slice capacity, plus 2 x 16, instead), and
 *     for windows in the HostExt their structure, 72 + 16
 *   + baseline_mem(), geo_mem().
 * A host with one window of d IPv4 destinations: 144 + 8 = 152 bytes + the array: 184 B
 * with one or two destinations (12 or 24 bytes take 32), 216 B with three or four (48 take
 * 64), 264 B with 5-8 (96 take 112); analyzer_host_overhead() is 152 + 16.
 * Besides the hosts: the smtp-novelty seen set (novelty.h), a fixed size allocated at the
 * first port-25 flow that needs it, at most a quarter of mem_cap.
 * Slots freed by hosts that go are reused before the slab grows, and analyzer_tick() gives
 * the slab back down to about twice the tracked hosts (slab_compact()); the estimate counts
 * the tracked hosts only. */
#define HOST_TABLE_SHARE 8
#define HOST_COST (sizeof(Host) + HOST_TABLE_SHARE)
#define HOST_EXT_COST (sizeof(HostExt) + WINDOW_ALLOC_OVERHEAD)
#define SIGNS_COST (sizeof(HostSigns) + WINDOW_ALLOC_OVERHEAD)
G_STATIC_ASSERT(sizeof(HostExt) == 64 && sizeof(HostSigns) == 80);
/* the sampled packets (Sampled): their header and HEUR_WIN_COUNT x span u32 */
#define SAMPLED_COST(span) \
	(sizeof(Sampled) + (gsize)HEUR_WIN_COUNT * (span) * sizeof(guint32) + WINDOW_ALLOC_OVERHEAD)

typedef struct OffEntry OffEntry;
struct OffEntry {
	guint8 addr[16];
	guint32 reason;
	OffEntry *prev, *next; /* creation order: analyzer_tick() visits offenders in it */
	Offender sm;
	guint8 peer[16];
	gboolean has_peer;
	AlertEvent last;
	guint32 cache_slot; /* 1 + its slot in Analyzer.off_cache; 0: in none */
	/* the quick judge found the level at clear_level or more in the window's newest slice
	 * quick_cur during Analyzer.quick_epoch (evaluate_quick()) */
	guint64 quick_epoch;
	guint32 quick_cur;
};
/* The offenders of the hosts being fed, by host slab index and reason (off_find()): a raised
 * host's every flow judges its offender, and this saves the offender table's lookup. A slot
 * is a hint, checked against the entry's address and reason; an entry is in at most one slot,
 * the one it names, which off_remove() clears. */
#define OFF_CACHE_SLOTS 1024

struct Analyzer {
	AnalyzerConfig cfg; /* string fields point into the copies below */
	char *s_internal, *s_mtas, *s_smtp, *s_submit, *s_login, *s_resolvers;
	NetSet *internal;
	NetSet *mtas;
	NetSet *resolvers;
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
	AnalyzerScopeWatch scope; /* ANALYZER_NOTICE_OUTSIDE */
	GHashTable *fw_modes; /* fwmode.c: exporter domains that sent teardowns, and when */
	gboolean loading;       /* in analyzer_state_load(): no notices */
	GHashTable *offenders;         /* set of OffEntry*, keyed by (addr, reason) */
	OffEntry *off_head, *off_tail; /* the same entries, oldest first */
	OffEntry *off_cache[OFF_CACHE_SLOTS];

	AlertEvent *history;
	guint hist_len, hist_head, hist_n;

	Novelty *nov;          /* smtp-novelty's seen set; NULL until needed */
	guint64 nov_capacity;  /* its capacity: the configured one within a quarter of mem_cap */

	gint64 now_ms;
	gint64 last_tick_ms;
	gint64 last_slice; /* start (ms) of the slice of the last tick (AnalyzerSliceFunc); -1:
			      none yet */
	/* analyzer_foreach_reading()'s candidates: the addresses (16 bytes each) of hosts judged
	 * at a quarter of a threshold or more, so that a slice's walk visits them and not every
	 * tracked host; hist_full: walk every host once (at start, after a reload or a restore:
	 * thresholds or hosts changed without a flow) */
	GArray *hist_cand;
	gboolean hist_full;
	/* tests only: evaluate() never takes the quick judge (the reference run); the flows it
	 * answered (that the case is tried) */
	gboolean no_quick;
	guint64 quick_flows;
	guint64 quick_known; /* of them, those whose level was known in the slice (quick_epoch) */
	/* between two ticks, with the same config, a window's counts in its newest slice only
	 * grow (window_newest_distinct() TRUE): a level found at clear_level or more stays so
	 * until one of them (OffEntry's quick_epoch); moved on by every tick, reconfiguring and
	 * state load; never 0 */
	guint64 quick_epoch;
	guint64 mem;
	AnalyzerStats st;

	/* policy (analyzer_policy.c): the groups in force (a copy of cfg's, strings owned) and
	 * their prefixes; the suppressions, kept across reconfiguring */
	PolicyGroup *groups;
	guint n_groups;
	PolicyGroups *group_set;
	PolicySuppressions *supp;
};

/* The hash of the host and offender tables: the two 64-bit halves folded by one 128-bit
 * multiply (the wyhash step), then its high half; every input bit reaches it. FNV-1a byte
 * by byte took ~50 instructions on every flow (bench/README.md, issue 14). */
static inline guint
addr_hash16(gconstpointer p)
{
	guint64 x, y;
	memcpy(&x, p, 8);
	memcpy(&y, (const guint8 *)p + 8, 8);
	unsigned __int128 m = (unsigned __int128)(x ^ 0xa0761d6478bd642full) *
			      (y ^ 0xe7037ed1a0b428dbull);
	guint64 h = (guint64)m ^ (guint64)(m >> 64);
	return (guint)(h ^ (h >> 32));
}

/* The long window's length. */
static inline gint64
analyzer_long_ms(const Analyzer *a)
{
	return a->cfg.slice_ms * a->cfg.span_slices[WINDOW_LONG];
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

static inline HostSigns *
host_signs(const Host *h)
{
	return h->ext != NULL ? h->ext->signs : NULL;
}

static inline Sampled *
host_sampled(const Host *h)
{
	return h->ext != NULL ? h->ext->samp : NULL;
}

static inline gsize
ext_mem(const Host *h)
{
	return h->ext != NULL ? HOST_EXT_COST : 0;
}

/* ---- hosts.c, and the host table's per-flow path ---- */

/* The table: slab index + 1 per slot, 0 = empty. Where addr's probe starts. */
static inline guint32
table_home(const Analyzer *a, const guint8 addr[16])
{
	/* Fibonacci hashing of addr_hash16(): the top bits index the table */
	guint32 h = addr_hash16(addr) * 0x9e3779b1u;
	guint lg = (guint)__builtin_ctz(a->table_cap);
	return lg == 0 ? 0 : h >> (32 - lg);
}
/* The table slot holding addr, or HOST_NONE. */
static inline guint32
table_find(const Analyzer *a, const guint8 addr[16])
{
	if (a->table_cap == 0)
		return HOST_NONE;
	guint32 mask = a->table_cap - 1;
	for (guint32 p = table_home(a, addr);; p = (p + 1) & mask) {
		guint32 e = a->table[p];
		if (e == 0)
			return HOST_NONE;
		if (memcmp(host_at(a, e - 1)->addr, addr, 16) == 0)
			return p;
	}
}
G_GNUC_INTERNAL void table_insert(Analyzer *a, guint32 i);
G_GNUC_INTERNAL guint32 slab_alloc(Analyzer *a);
/* The recency list: head = most recently seen. */
static inline void
lru_unlink(Analyzer *a, guint32 i)
{
	Host *h = host_at(a, i);
	if (h->prev != HOST_NONE)
		host_at(a, h->prev)->next = h->next;
	else
		a->lru_head = h->next;
	if (h->next != HOST_NONE)
		host_at(a, h->next)->prev = h->prev;
	else
		a->lru_tail = h->prev;
	h->prev = h->next = HOST_NONE;
}
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

/* ---- signs.c ---- */
/* A side-sign record (HEUR_INBOUND_SMTP, HEUR_DNS_EXTERNAL) of c->host: counted when the
 * host is tracked, never creating it, nor making it recently seen. */
G_GNUC_INTERNAL void signs_note(Analyzer *a, const HeurClass *c, gint64 now);
G_GNUC_INTERNAL void signs_count(SignCount *sc, gint64 t_ms);
/* Records of the buckets that end within the hour before now (or before the newest
 * bucket, if that is later). */
G_GNUC_INTERNAL guint32 signs_sum(const SignCount *sc, gint64 now);
/* The ring under both, for buckets of any width (the sampled packets of smtp-novelty's
 * buckets too): add n in bucket b (a newer one drops what left the last SIGNS_BUCKETS, an
 * older one than that is not counted); the sum of the SIGNS_BUCKETS buckets ending at
 * b_now (or at the newest, if later). */
G_GNUC_INTERNAL void bucket_count_add(SignCount *sc, guint32 b, guint32 n);
G_GNUC_INTERNAL guint32 bucket_count_sum(const SignCount *sc, guint32 b_now);
G_GNUC_INTERNAL guint32 host_inbound_smtp(const Host *h, gint64 now);
G_GNUC_INTERNAL guint32 host_dns_external(const Host *h, gint64 now);
/* Looks like a mail server: at least HEUR_MTA_MIN_INBOUND inbound SMTP sessions delivered
 * to it in the last hour (the strong sign alone: what keeps smtp-novelty from raising). The
 * alert's hint (AlertEvent.mta_like) adds the window's signs: heuristics_mta_like(). */
G_GNUC_INTERNAL gboolean host_mta_like(const Analyzer *a, const Host *h, gint64 now);
/* DNS corroborates an smtp alert of h: resolvers are configured, h is not one of them, and
 * h asked an external DNS server in the last hour. */
G_GNUC_INTERNAL gboolean host_dns_corroborates(const Analyzer *a, const Host *h, gint64 now);

/* ---- fwmode.c ---- */
/* an exporter domain's teardowns count for an hour after its last one; at most this many
 * domains are followed (more: their creates keep counting, fw_domains_refused) */
#define FWMODE_HOLD_MS (60 * 60000)
#define FWMODE_MAX 4096
/* a teardown whose responder sent at most this many octets (one bare TCP packet: a reset,
 * or a SYN-ACK with options, over IPv6's 40-byte header) held no dialog: failed */
#define FWMODE_BARE_OCTETS 60
/* ... judged so only for a session shorter than this: an ASA's flow-update (a minute apart
 * at the least) resets the counters a later teardown carries */
#define FWMODE_UPDATE_MIN_MS 60000
G_GNUC_INTERNAL void fwmode_init(Analyzer *a);
G_GNUC_INTERNAL void fwmode_free(Analyzer *a);
/* f as the classifier is to read it (f itself, or view rewritten): a firewall create or
 * teardown (FLOW_HAS_FW_EVENT) read as its session's attempt or as a flow only */
G_GNUC_INTERNAL const Flow *fwmode_view(Analyzer *a, const Flow *f, Flow *view, gint64 now);

/* ---- events.c ---- */
G_GNUC_INTERNAL void events_init(Analyzer *a, guint history_len);
G_GNUC_INTERNAL void events_free(Analyzer *a);
G_GNUC_INTERNAL void events_history_resize(Analyzer *a, guint history_len);
G_GNUC_INTERNAL void events_emit(Analyzer *a, OffEntry *o, Host *h, AlertKind kind, gint64 now);
G_GNUC_INTERNAL OffEntry *off_lookup(Analyzer *a, const guint8 addr[16], AlertReason r);
G_GNUC_INTERNAL OffEntry *off_lookup_slow(Analyzer *a, const Host *h, guint32 hi, AlertReason r);
/* off_lookup() for tracked host h at slab index hi, through the cache */
static inline OffEntry *
off_find(Analyzer *a, const Host *h, guint32 hi, AlertReason r)
{
	OffEntry *o = a->off_cache[(hi * REASON_COUNT + r) & (OFF_CACHE_SLOTS - 1)];
	guint64 x0, x1, y0, y1;
	if (o != NULL && o->reason == r) {
		memcpy(&x0, o->addr, 8);
		memcpy(&x1, o->addr + 8, 8);
		memcpy(&y0, h->addr, 8);
		memcpy(&y1, h->addr + 8, 8);
		if (((x0 ^ y0) | (x1 ^ y1)) == 0)
			return o;
	}
	return off_lookup_slow(a, h, hi, r);
}
G_GNUC_INTERNAL OffEntry *off_new(Analyzer *a, const guint8 addr[16], AlertReason r);
G_GNUC_INTERNAL void off_insert(Analyzer *a, OffEntry *o);
G_GNUC_INTERNAL void off_remove(Analyzer *a, OffEntry *o);

/* ---- analyzer.c ---- */
/* h: the host, NULL when not tracked; addr: its address (h->addr when h is not NULL) */
G_GNUC_INTERNAL void thresholds(const Analyzer *a, const Host *h, const guint8 addr[16],
				AlertReason r, guint32 thr[WINDOW_SPANS]);

/* ---- analyzer_policy.c ---- */
/* The group of addr (its index in a->groups), or POLICY_NO_GROUP. */
static inline guint
analyzer_policy_group_of(const Analyzer *a, const guint8 addr[16])
{
	return a->n_groups == 0 ? POLICY_NO_GROUP : policy_groups_lookup(a->group_set, addr, NULL);
}
/* Is reason r of addr kept from crossing now (its group exempts r, or it is suppressed)? */
static inline gboolean
analyzer_policy_quiet(const Analyzer *a, const guint8 addr[16], AlertReason r, gint64 now)
{
	guint g = analyzer_policy_group_of(a, addr);
	if (g != POLICY_NO_GROUP && (a->groups[g].exempt & (1u << r)))
		return TRUE;
	return policy_supp_active(a->supp, addr, r, now) != NULL;
}
/* The name of addr's group into ev_group ("" when none). */
G_GNUC_INTERNAL void analyzer_policy_group_name(const Analyzer *a, const guint8 addr[16],
				       char ev_group[POLICY_GROUP_NAME_MAX + 1]);
G_GNUC_INTERNAL void analyzer_policy_expire(Analyzer *a, gint64 now);
G_GNUC_INTERNAL void analyzer_policy_init(Analyzer *a);
G_GNUC_INTERNAL void analyzer_policy_apply(Analyzer *a, const AnalyzerConfig *c, PolicyGroups *set);
G_GNUC_INTERNAL void analyzer_policy_free(Analyzer *a);
/* The sampling model for host h (NULL: unsampled). */
G_GNUC_INTERNAL void host_sampling(const Analyzer *a, const Host *h, HeurSampling *s);
/* The counts reason r reads for host h (NULL: none, all zero) at now: its window's; for
 * smtp-novelty span 0 = the new destinations in the novelty window (as distinct, with the
 * long window's attempts and failed for the sampling estimate), span 1 = the port-25 long
 * window (context: its threshold is 0). */
G_GNUC_INTERNAL void reason_counts(Analyzer *a, Host *h, AlertReason r, gint64 now,
				   WindowCounts *wc);
/* smtp-novelty's count of host h at now. */
G_GNUC_INTERNAL guint32 nov_count(const Analyzer *a, const Host *h, gint64 now);

/* ---- analyzer_config.c ---- */
typedef struct {
	NetSet *internal, *mtas, *resolvers;
	PortSet smtp, submit, login;
	PolicyGroups *group_set;
} AnalyzerParsed;
G_GNUC_INTERNAL G_GNUC_WARN_UNUSED_RESULT gboolean
analyzer_config_parse(const AnalyzerConfig *c, AnalyzerParsed *p, GError **error);
G_GNUC_INTERNAL void analyzer_config_apply(Analyzer *a, const AnalyzerConfig *c, AnalyzerParsed *p);
G_GNUC_INTERNAL void analyzer_config_clear(Analyzer *a);
