/* The analyzer: classifies each flow (heuristics.c), feeds the host's window for that kind
 * of traffic (window.c), evaluates the reasons that read that window and drives their
 * offender state machines (offender.c), emitting alert events synchronously. Also the host
 * table with its caps, the MTA baselines, the event history and the query API. */
#include "analyzer.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fnv1a.h"
#include "statebuf.h"

G_DEFINE_QUARK(analyzer-error-quark, analyzer_error)

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
 *   + what each window holds (window_mem_held(): slices from the second one on, 20 x
 *     capacity + 16; destinations, 24 x table size + 16, the table size being the power of
 *     two that keeps load <= 3/4), and for windows in the HostExt their structure, 72 + 16
 *   + baseline_mem(), geo_mem().
 * A host with one window of d destinations: 128 + 8 + 16 = 152 bytes + 24 x table size.
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
	GHashTable *offenders;         /* set of OffEntry*, keyed by (addr, reason) */
	OffEntry *off_head, *off_tail; /* the same entries, oldest first */

	AlertEvent *history;
	guint hist_len, hist_head, hist_n;

	gint64 now_ms;
	gint64 last_tick_ms;
	guint64 mem;
	AnalyzerStats st;
};

/* ---- defaults: every number in one place, with the reason for it ---- */

void
analyzer_config_defaults(AnalyzerConfig *c)
{
	memset(c, 0, sizeof *c);
	/* RFC 1918, RFC 6598 (carrier-grade NAT space: often used inside large sites) and
	 * RFC 4193 ULA. Sites with public internal space add theirs. */
	c->internal_nets = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7";
	/* No sanctioned MTAs by default: every internal host is a client until told otherwise,
	 * which errs towards alerting on an unlisted MTA (and tells the admin to list it). */
	c->mail_servers = "";
	c->smtp_ports = "25";             /* MTA-to-MTA relay (RFC 5321) */
	c->submission_ports = "465, 587"; /* RFC 8314 implicit TLS, RFC 6409 submission */
	/* POP3, IMAP, IMAPS, POP3S, and the submission ports (AUTH happens there too) */
	c->login_ports = "110, 143, 993, 995, 465, 587";

	/* One-minute slices: alert time within a minute of the crossing, and a 60-slice long
	 * window costs at most 60 small slice records per active host. A 10-minute window
	 * catches bursts (fast bots send hundreds of MX connections a minute); a 60-minute one
	 * catches slow bots that pace themselves under a burst threshold. */
	c->slice_ms = 60 * 1000;
	c->span_slices[WINDOW_SHORT] = 10;
	c->span_slices[WINDOW_LONG] = 60;

	/* 4096 exact destinations per host window (~100 KiB worst case) is far above every
	 * threshold, so decisions near a threshold are exact; only floods past it estimate. */
	c->exact_cap = 4096;
	/* 1 GiB for hosts and windows; a host with one window costs 152 bytes plus 24 per
	 * destination slot (see HOST_COST): 176 with one destination, so 4 M such hosts fit
	 * before the byte cap matters (344 bytes with 4 destinations: 3.1 M). */
	c->mem_cap = G_GUINT64_CONSTANT(1) << 30;
	c->max_hosts = 4u << 20;
	c->history_len = 1024; /* days of events on a quiet site, hours on a noisy one */

	/* smtp-fanout: a workstation or server that is not an MTA normally sends port 25 to
	 * zero external hosts (ISPs and most sites block it or route through a smarthost);
	 * the odd direct-to-MX application reaches a few domains an hour. Spam bots reach
	 * hundreds to thousands of MXs an hour; the slowest seen pace at a few a minute.
	 * 50 in 10 min is 5 distinct MXs a minute sustained; 150 in 60 min catches 2.5/min. */
	c->h[REASON_SMTP_FANOUT] = (HeuristicConfig){TRUE, {50, 150}};
	/* smtp-blocked: a bot behind an egress block retries fast to many MXs and fails;
	 * lower thresholds because every attempt is SYN-only evidence, not a guess, and the
	 * admin wants to know about the infection even though the firewall holds. */
	c->h[REASON_SMTP_BLOCKED] = (HeuristicConfig){TRUE, {30, 100}};
	c->blocked_share = 0.8;        /* a real MTA sees <10% failures; 80% means blocked */
	c->blocked_min_attempts = 30;  /* no share judgement on a handful of flows */
	/* submission-fanout: a person submits to 1-3 providers; big providers' submission
	 * names rotate over several addresses, so an active user may reach ~10 addresses an
	 * hour. A credential-stuffing bot logs in at dozens of providers. */
	c->h[REASON_SUBMISSION_FANOUT] = (HeuristicConfig){TRUE, {20, 50}};
	/* lateral-smtp: clients talk SMTP to 1-3 internal relays; a worm sweeping for open
	 * relays or the next victim touches dozens to thousands of internal addresses. */
	c->h[REASON_LATERAL_SMTP] = (HeuristicConfig){TRUE, {20, 50}};
	/* mta-surge: thresholds are FLOORS; the live threshold is max(floor, k x median of the
	 * same window over the last day). A small-site MTA reaches 20-100 distinct MXs per 10
	 * minutes; 300/10 min and 1500/h are beyond a mailing list send of a small site.
	 * k = 5: daily peaks are 2-3x the median; a compromised account relaying spam is
	 * 10x and more. */
	c->h[REASON_MTA_SURGE] = (HeuristicConfig){TRUE, {300, 1500}};
	c->surge_k = 5.0;
	c->surge_history = 144;     /* a day of 10-minute samples (one per short window) */
	c->surge_min_samples = 36;  /* 6 hours before the median is trusted */
	c->surge_warmup_factor = 4; /* without a baseline only a very large surge alerts */
	/* auth-bruteforce: short connections from one external address to login ports. A mail
	 * client keeps IMAP sessions open (IDLE) or polls every few minutes; even a NAT of a
	 * few hundred users makes well under 10 a minute. Guessers make one or more a second. */
	c->h[REASON_AUTH_BRUTEFORCE] = (HeuristicConfig){TRUE, {100, 300}};
	c->auth_max_packets = 40; /* connect + banner + AUTH + failure: 10-25 packets */
	c->auth_max_bytes = 20000; /* a login exchange with TLS handshake: a few KB */

	/* Lifecycle: update when the level doubles, at most every 15 min (a bot ramping up
	 * gives a handful of updates, not one per flow); clear after 30 min below half the
	 * thresholds (a bot that pauses between campaigns does not flap). */
	c->escalate_factor = 2.0;
	c->update_interval_ms = 15 * 60 * 1000;
	c->clear_level = 0.5;
	c->hold_ms = 30 * 60 * 1000;
}

/* ---- host table ---- */

static guint
addr_hash16(gconstpointer p)
{
	return fnv1a(p, 16);
}

static guint
off_hash(gconstpointer p)
{
	const OffEntry *o = p;
	return addr_hash16(o->addr) ^ (o->reason * 0x9e3779b1u);
}

static gboolean
off_equal(gconstpointer a, gconstpointer b)
{
	const OffEntry *x = a, *y = b;
	return x->reason == y->reason && memcmp(x->addr, y->addr, 16) == 0;
}

static inline Host *
host_at(const Analyzer *a, guint32 i)
{
	return &a->chunks[i >> HOST_CHUNK_BITS][i & (HOST_CHUNK - 1)];
}

static void
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

static void
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

/* ---- host table: slab index + 1 per slot, 0 = empty ---- */

static inline guint32
table_home(const Analyzer *a, const guint8 addr[16])
{
	/* Fibonacci hashing of the FNV-1a hash: the top bits index the table */
	guint32 h = addr_hash16(addr) * 0x9e3779b1u;
	guint lg = (guint)__builtin_ctz(a->table_cap);
	return lg == 0 ? 0 : h >> (32 - lg);
}

/* The table slot holding addr, or HOST_NONE. */
static guint32
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

static void
table_put(Analyzer *a, guint32 i)
{
	guint32 mask = a->table_cap - 1;
	guint32 p = table_home(a, host_at(a, i)->addr);
	while (a->table[p] != 0)
		p = (p + 1) & mask;
	a->table[p] = i + 1;
}

static void
table_resize(Analyzer *a, guint32 cap)
{
	guint32 *old = a->table, old_cap = a->table_cap;
	a->table = g_new0(guint32, cap);
	a->table_cap = cap;
	for (guint32 p = 0; p < old_cap; p++) {
		if (old[p] != 0)
			table_put(a, old[p] - 1);
	}
	g_free(old);
}

static void
table_insert(Analyzer *a, guint32 i)
{
	if (a->n_hosts + 1 > a->table_cap - a->table_cap / 4)
		table_resize(a, a->table_cap == 0 ? 16 : a->table_cap * 2);
	table_put(a, i);
	a->n_hosts++;
}

/* Remove the entry at slot p, shifting back the entries after it that would no longer be
 * found (no tombstones). The table halves when it falls under 1/8 full. */
static void
table_remove(Analyzer *a, guint32 p)
{
	guint32 mask = a->table_cap - 1;
	guint32 hole = p;
	for (guint32 q = (p + 1) & mask; a->table[q] != 0; q = (q + 1) & mask) {
		guint32 home = table_home(a, host_at(a, a->table[q] - 1)->addr);
		/* q's entry may move to the hole when its home is not in (hole, q] */
		if (((q - home) & mask) >= ((q - hole) & mask)) {
			a->table[hole] = a->table[q];
			hole = q;
		}
	}
	a->table[hole] = 0;
	a->n_hosts--;
	if (a->table_cap > 16 && a->n_hosts < a->table_cap / 8)
		table_resize(a, a->table_cap / 2);
}

/* A zeroed slot from the free list or a new chunk; HOST_NONE when the index space is used
 * up (never in practice: max_hosts and mem_cap hold far below it). */
static guint32
slab_alloc(Analyzer *a)
{
	guint32 i;

	if (a->free_head != HOST_NONE) {
		i = a->free_head;
		a->free_head = host_at(a, i)->next;
	} else {
		/* Slots past `bump` were never used: a new chunk is not walked (or touched) to
		 * build a free list, so an analyzer with few hosts costs few pages. */
		if (a->bump == a->n_chunks << HOST_CHUNK_BITS) {
			if (a->n_chunks >= (HOST_NONE >> HOST_CHUNK_BITS))
				return HOST_NONE;
			a->chunks = g_renew(Host *, a->chunks, a->n_chunks + 1);
			a->chunks[a->n_chunks] = g_new(Host, HOST_CHUNK);
			a->n_chunks++;
			a->n_free += HOST_CHUNK;
		}
		i = a->bump++;
	}
	a->n_free--;
	Host *h = host_at(a, i);
	memset(h, 0, sizeof *h);
	h->prev = h->next = HOST_NONE;
	h->win1_kind = HOST_NO_WIN;
	return i;
}

static void
slab_release(Analyzer *a, guint32 i)
{
	host_at(a, i)->prev = HOST_FREE;
	host_at(a, i)->next = a->free_head;
	a->free_head = i;
	a->n_free++;
}

/* Give back the slab's memory after many hosts went (a flood expired): when more than half
 * of it and two chunks' worth is free, move the hosts of the last chunks into free slots of
 * the first ones (their recency links and table entries follow) and free the emptied
 * chunks. Moves invalidate Host pointers: only from analyzer_tick(), which holds none. The
 * recency order and the table's contents are unchanged. O(slab), after at least as many
 * drops. */
static void
slab_compact(Analyzer *a)
{
	guint64 slots = (guint64)a->n_chunks * HOST_CHUNK;
	if (a->n_free <= slots / 2 || a->n_free < 2 * HOST_CHUNK)
		return;
	/* the never-used slots are free slots too */
	for (guint32 i = a->bump; i < slots; i++)
		host_at(a, i)->prev = HOST_FREE;
	guint32 keep = (a->n_hosts + HOST_CHUNK - 1) / HOST_CHUNK;
	guint32 limit = keep * HOST_CHUNK, j = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE;) {
		guint32 next = host_at(a, i)->next;
		if (i >= limit) {
			while (host_at(a, j)->prev != HOST_FREE)
				j++; /* there are limit - n_hosts free slots under limit */
			Host *h = host_at(a, j);
			*h = *host_at(a, i);
			if (h->prev != HOST_NONE)
				host_at(a, h->prev)->next = j;
			else
				a->lru_head = j;
			if (h->next != HOST_NONE)
				host_at(a, h->next)->prev = j;
			else
				a->lru_tail = j;
			a->table[table_find(a, h->addr)] = j + 1;
			host_at(a, i)->prev = HOST_FREE;
		}
		i = next;
	}
	for (guint32 c = keep; c < a->n_chunks; c++)
		g_free(a->chunks[c]);
	a->n_chunks = keep;
	a->chunks = g_renew(Host *, a->chunks, keep);
	a->free_head = HOST_NONE;
	a->n_free = 0;
	a->bump = limit;
	for (guint32 i = limit; i-- > 0;) {
		if (host_at(a, i)->prev == HOST_FREE) {
			host_at(a, i)->next = a->free_head;
			a->free_head = i;
			a->n_free++;
		}
	}
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

static HostExt *
host_ext(Host *h)
{
	if (h->ext == NULL)
		h->ext = g_new0(HostExt, 1);
	return h->ext;
}

/* Free an ext that holds nothing (so a host costs the same as one that never had it). */
static void
host_ext_trim(Host *h)
{
	HostExt *e = h->ext;
	if (e == NULL || e->base != NULL || e->geo != NULL)
		return;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (e->win[k] != NULL)
			return;
	}
	g_clear_pointer(&h->ext, g_free);
}

/* Whether a window of h other than kind `except` (HEUR_WIN_COUNT: none excepted) is in
 * estimated mode. a->n_hosts_est counts the hosts for which this holds with no exception;
 * it changes only where a window's mode can: window_add() in process_one(), host_drop(),
 * analyzer_reconfigure() and a state load. */
static gboolean
host_estimating_except(const Host *h, guint except)
{
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (k != except && host_win(h, k) != NULL && window_estimating(host_win(h, k)))
			return TRUE;
	}
	return FALSE;
}

static gboolean
host_estimating(const Host *h)
{
	return host_estimating_except(h, HEUR_WIN_COUNT);
}

/* A new window of kind k (the host has none of that kind). Not counted in a->mem. */
static Window *
host_win_new(Host *h, guint k)
{
	if (h->win1_kind == HOST_NO_WIN) {
		window_init(&h->win1);
		h->win1_kind = (guint8)k;
		return &h->win1;
	}
	return host_ext(h)->win[k] = window_new();
}

static gsize
baseline_mem(const Baseline *b)
{
	return b ? sizeof *b + (gsize)b->cap * WINDOW_SPANS * sizeof(guint32) +
			   WINDOW_ALLOC_OVERHEAD
		 : 0;
}

static gsize
geo_mem(const GeoSet *g)
{
	if (g == NULL)
		return 0;
	gsize n = HEUR_WIN_COUNT * sizeof(GeoSet) + WINDOW_ALLOC_OVERHEAD;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (g[k].cc != NULL)
			n += g[k].cap_cc * sizeof(GeoCc) + WINDOW_ALLOC_OVERHEAD;
		if (g[k].as != NULL)
			n += g[k].cap_as * sizeof(GeoAs) + WINDOW_ALLOC_OVERHEAD;
	}
	return n;
}

static void
geo_clear(GeoSet *g)
{
	g_free(g->cc);
	g_free(g->as);
	memset(g, 0, sizeof *g);
}

static void
geo_free(GeoSet *g)
{
	if (g == NULL)
		return;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		geo_clear(&g[k]);
	g_free(g);
}

static gsize
host_mem(const Host *h)
{
	gsize n = HOST_COST + ext_mem(h) + baseline_mem(host_base(h)) + geo_mem(host_geo(h));
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		n += host_win_mem(h, host_win(h, k));
	return n;
}

/* Free what a host holds (not its slot). */
static void
host_clear(Host *h)
{
	if (h->win1_kind != HOST_NO_WIN)
		window_clear(&h->win1);
	h->win1_kind = HOST_NO_WIN;
	if (h->ext != NULL) {
		for (guint k = 0; k < HEUR_WIN_COUNT; k++)
			window_free(h->ext->win[k]);
		g_free(h->ext->base);
		geo_free(h->ext->geo);
		g_free(h->ext);
	}
	h->ext = NULL;
}

/* Remove host i; its offenders stay and clear by themselves (their counts read zero). */
static void
host_drop(Analyzer *a, guint32 i)
{
	Host *h = host_at(a, i);
	a->mem -= MIN(a->mem, host_mem(h));
	if (host_estimating(h))
		a->n_hosts_est--;
	lru_unlink(a, i);
	table_remove(a, table_find(a, h->addr));
	host_clear(h);
	slab_release(a, i);
}

static void
enforce_caps(Analyzer *a, guint32 keep)
{
	while ((a->mem > a->cfg.mem_cap || a->n_hosts > a->cfg.max_hosts) &&
	       a->lru_tail != HOST_NONE && a->lru_tail != keep) {
		host_drop(a, a->lru_tail);
		a->st.hosts_evicted++;
	}
}

/* The slab index of a tracked host, or HOST_NONE. */
static guint32
host_index(const Analyzer *a, const guint8 addr[16])
{
	guint32 p = table_find(a, addr);
	return p == HOST_NONE ? HOST_NONE : a->table[p] - 1;
}

static Host *
host_lookup(Analyzer *a, const guint8 addr[16])
{
	guint32 i = host_index(a, addr);
	return i == HOST_NONE ? NULL : host_at(a, i);
}

/* The host (created when new) at the head of the recency list; *index: its slab index.
 * NULL only when the slab's index space is used up. */
static Host *
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
	enforce_caps(a, i);
	*index = i;
	return h;
}

/* ---- MTA baseline ---- */

static int
cmp_u32(const void *x, const void *y)
{
	guint32 a = *(const guint32 *)x, b = *(const guint32 *)y;
	return a < b ? -1 : a > b;
}

static void
baseline_push(Baseline *b, const guint32 v[WINDOW_SPANS])
{
	for (guint k = 0; k < WINDOW_SPANS; k++)
		b->ring[k * b->cap + b->head] = v[k];
	b->head = (b->head + 1) % b->cap;
	b->n = MIN(b->n + 1, b->cap);
}

static void
baseline_median(Baseline *b)
{
	guint32 tmp[b->n ? b->n : 1];
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (b->n == 0) {
			b->median[k] = 0;
			continue;
		}
		memcpy(tmp, &b->ring[k * b->cap], b->n * sizeof(guint32));
		qsort(tmp, b->n, sizeof(guint32), cmp_u32);
		b->median[k] = b->n % 2 ? tmp[b->n / 2] : (tmp[b->n / 2 - 1] + tmp[b->n / 2]) / 2;
	}
}

/* One sample of the MTA's window counts per short-window period, taken when its flows
 * arrive (before the current flow is added). Periods without flows get the counts seen
 * when the next flow arrives (zero after a long quiet time), so quiet hours are part of the
 * median. */
static void
baseline_sample(Analyzer *a, Host *h, Window *w, gint64 now)
{
	guint32 period = a->cfg.span_slices[WINDOW_SHORT];
	guint32 s = (guint32)(MAX(now, 0) / a->cfg.slice_ms);
	if (host_base(h) == NULL) {
		guint cap = MAX(a->cfg.surge_history, 1u);
		gsize ext0 = ext_mem(h);
		Baseline *nb =
		    g_malloc0(sizeof(Baseline) + (gsize)cap * WINDOW_SPANS * sizeof(guint32));
		nb->cap = cap;
		nb->next_slice = s + period;
		host_ext(h)->base = nb;
		a->mem += baseline_mem(nb) + ext_mem(h) - ext0;
		return;
	}
	Baseline *b = host_base(h);
	if (s < b->next_slice) {
		if (b->next_slice - s > 2 * period)
			b->next_slice = s + period; /* clock stepped back */
		return;
	}
	/* the windows ending with the last slice of the period that just ended */
	WindowCounts wc;
	window_counts(w, &a->geom, (gint64)b->next_slice * a->cfg.slice_ms - 1, &wc);
	guint32 v[WINDOW_SPANS];
	for (guint k = 0; k < WINDOW_SPANS; k++)
		v[k] = wc.span[k].distinct;
	for (guint i = 0; s >= b->next_slice && i < b->cap; i++) {
		baseline_push(b, v);
		b->next_slice += period;
	}
	if (s >= b->next_slice)
		b->next_slice = s + period;
	baseline_median(b);
}

static void
thresholds(const Analyzer *a, const Host *h, AlertReason r, guint32 thr[WINDOW_SPANS])
{
	for (guint k = 0; k < WINDOW_SPANS; k++)
		thr[k] = a->cfg.h[r].threshold[k];
	if (r != REASON_MTA_SURGE)
		return;
	const Baseline *b = h ? host_base(h) : NULL;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (thr[k] == 0)
			continue;
		if (b == NULL || b->n < a->cfg.surge_min_samples) {
			thr[k] = (guint32)MIN(thr[k] * a->cfg.surge_warmup_factor, (double)G_MAXUINT32);
		} else {
			double t = a->cfg.surge_k * b->median[k];
			thr[k] = (guint32)MAX((double)thr[k], MIN(t + 0.999, (double)G_MAXUINT32));
		}
	}
}

/* ---- geo: distinct countries and ASNs of a host window's destinations ----
 *
 * The windows keep destination hashes and addresses only; countries and ASNs come from the
 * optional geo hook, called when a window sees a new distinct destination. A window with
 * fewer than ANALYZER_GEO_MIN_DESTS destinations keeps no set (most hosts talk to 1-3
 * relays): its counts are taken at event time by looking up its few destinations. When it
 * reaches that many, its set starts with a lookup of each. In estimated mode (past the
 * exact cap) the window names no new destinations, so one attempt in GEO_EST_SAMPLE is
 * looked up instead. An entry seen last in a slice that left the long window does not
 * count: a destination that stays in the window without being new again can age out of
 * its country's entry unless another destination (or the event's top list) refreshes it,
 * so counts are exact for bots' streams of new destinations and may read low for a
 * long-lived few. Per host window: at most 32 x 8 + 64 x 8 bytes. */
#define GEO_EST_SAMPLE 8

static inline gboolean
slice_in_long(const Analyzer *a, guint32 slice, guint32 now)
{
	return (guint64)slice + a->cfg.span_slices[WINDOW_LONG] > now;
}

static guint32
slice_of(const Analyzer *a, gint64 t_ms)
{
	return (guint32)(MAX(t_ms, 0) / a->cfg.slice_ms);
}

/* Index of an entry whose value left the long window (each entry starts with its slice
 * stamp), -1 when every entry is live. */
static gint
geo_expired(const Analyzer *a, const void *base, gsize stride, guint n, guint32 slice)
{
	for (guint i = 0; i < n; i++) {
		guint32 stamp;
		memcpy(&stamp, (const guint8 *)base + i * stride, sizeof stamp);
		if (!slice_in_long(a, stamp, slice))
			return (gint)i;
	}
	return -1;
}

/* Add or refresh one country and one ASN ("" and 0: nothing to add). A full set takes over
 * an entry that left the window, else it saturates. */
static void
geo_note(const Analyzer *a, GeoSet *g, guint32 slice, const char cc[4], guint32 asn)
{
	if (cc[0] != '\0' && cc[1] != '\0') {
		gint i;
		for (i = 0; i < g->n_cc; i++) {
			if (g->cc[i].cc[0] == cc[0] && g->cc[i].cc[1] == cc[1])
				break;
		}
		if (i < g->n_cc) {
			g->cc[i].slice = MAX(g->cc[i].slice, slice);
		} else {
			if (g->n_cc == g->cap_cc && g->cap_cc < ANALYZER_GEO_MAX_COUNTRIES) {
				g->cap_cc = (guint8)MIN(g->cap_cc ? g->cap_cc * 2u : 4u,
							ANALYZER_GEO_MAX_COUNTRIES);
				g->cc = g_renew(GeoCc, g->cc, g->cap_cc);
			}
			i = g->n_cc < g->cap_cc ? g->n_cc++
						: geo_expired(a, g->cc, sizeof(GeoCc), g->n_cc, slice);
			if (i >= 0) {
				g->cc[i].cc[0] = cc[0];
				g->cc[i].cc[1] = cc[1];
				g->cc[i].slice = slice;
			} else {
				g->sat_cc = slice + 1;
			}
		}
	}
	if (asn != 0) {
		gint i;
		for (i = 0; i < g->n_as && g->as[i].asn != asn; i++)
			;
		if (i < g->n_as) {
			g->as[i].slice = MAX(g->as[i].slice, slice);
		} else {
			if (g->n_as == g->cap_as && g->cap_as < ANALYZER_GEO_MAX_ASNS) {
				g->cap_as = (guint8)MIN(g->cap_as ? g->cap_as * 2u : 4u,
							ANALYZER_GEO_MAX_ASNS);
				g->as = g_renew(GeoAs, g->as, g->cap_as);
			}
			i = g->n_as < g->cap_as ? g->n_as++
						: geo_expired(a, g->as, sizeof(GeoAs), g->n_as, slice);
			if (i >= 0) {
				g->as[i].asn = asn;
				g->as[i].slice = slice;
			} else {
				g->sat_as = slice + 1;
			}
		}
	}
}

static void
geo_counts(const Analyzer *a, const GeoSet *g, guint32 now, guint32 *n_cc, guint32 *n_as)
{
	guint32 c = 0, s = 0;
	for (guint i = 0; i < g->n_cc; i++)
		c += slice_in_long(a, g->cc[i].slice, now);
	for (guint i = 0; i < g->n_as; i++)
		s += slice_in_long(a, g->as[i].slice, now);
	if (g->sat_cc != 0 && slice_in_long(a, g->sat_cc - 1, now))
		c = ANALYZER_GEO_MAX_COUNTRIES;
	if (g->sat_as != 0 && slice_in_long(a, g->sat_as - 1, now))
		s = ANALYZER_GEO_MAX_ASNS;
	*n_cc = c;
	*n_as = s;
}

typedef struct {
	const Analyzer *a;
	GeoSet *set;
	guint32 slice;
} GeoWalk;

static void
geo_walk_note(const guint8 dst[16], gpointer user_data)
{
	GeoWalk *gw = user_data;
	char cc[4] = "";
	guint32 asn = 0;
	gw->a->geo_fn(dst, cc, &asn, gw->a->geo_data);
	geo_note(gw->a, gw->set, gw->slice, cc, asn);
}

/* After window_add() on window k of h returned r for destination dst. */
static void
geo_update(Analyzer *a, Host *h, HeurWin k, Window *w, const guint8 dst[16], guint r,
	   gint64 now)
{
	guint32 slice = MAX(slice_of(a, now), slice_of(a, window_last_ms(w)));
	GeoSet *g = host_geo(h) != NULL ? &host_geo(h)[k] : NULL;
	gsize before = geo_mem(host_geo(h)) + ext_mem(h);

	if ((r & WINDOW_ADD_RESET) && g != NULL)
		geo_clear(g);
	if (window_estimating(w)) {
		if (g == NULL || !g->started || ++g->est_skip < GEO_EST_SAMPLE)
			return;
		g->est_skip = 0;
	} else if (!(r & WINDOW_ADD_NEW_DEST)) {
		return;
	}
	if (g == NULL || !g->started) {
		if (window_foreach_dest(w, &a->geom, now, NULL, NULL) < ANALYZER_GEO_MIN_DESTS)
			return;
		if (host_geo(h) == NULL)
			host_ext(h)->geo = g_new0(GeoSet, HEUR_WIN_COUNT);
		g = &host_geo(h)[k];
		g->started = TRUE;
		GeoWalk gw = {a, g, slice};
		window_foreach_dest(w, &a->geom, now, geo_walk_note, &gw);
	} else {
		char cc[4] = "";
		guint32 asn = 0;
		a->geo_fn(dst, cc, &asn, a->geo_data);
		geo_note(a, g, slice, cc, asn);
	}
	a->mem = a->mem + geo_mem(host_geo(h)) + ext_mem(h) - MIN(before, a->mem);
}

/* The event's distinct countries/ASNs and its top destinations' country and ASN. */
static void
geo_fill_event(Analyzer *a, AlertEvent *ev, Host *h, HeurWin wk, gint64 now)
{
	Window *w = h != NULL ? host_win(h, wk) : NULL;
	guint32 slice = slice_of(a, now);
	GeoSet *hg = h != NULL ? host_geo(h) : NULL;
	GeoSet *g = hg != NULL && hg[wk].started ? &hg[wk] : NULL;
	gsize before = geo_mem(hg);

	if (w != NULL)
		slice = MAX(slice, slice_of(a, window_last_ms(w)));
	for (guint i = 0; i < ev->n_top; i++) {
		AlertDest *d = &ev->top[i];
		a->geo_fn(d->addr, d->country, &d->asn, a->geo_data);
		d->country[2] = '\0';
		if (g != NULL)
			geo_note(a, g, slice, d->country, d->asn); /* refresh long-lived ones */
	}
	if (g != NULL) {
		geo_counts(a, g, slice, &ev->n_countries, &ev->n_asns);
		a->mem = a->mem + geo_mem(hg) - MIN(before, a->mem);
	} else if (w != NULL) {
		/* a window without a set holds few destinations: look each up now */
		GeoSet tmp = {0};
		GeoWalk gw = {a, &tmp, slice};
		window_foreach_dest(w, &a->geom, now, geo_walk_note, &gw);
		geo_counts(a, &tmp, slice, &ev->n_countries, &ev->n_asns);
		geo_clear(&tmp);
	}
}

/* ---- events ---- */

static void
fill_event(Analyzer *a, AlertEvent *ev, OffEntry *o, Host *h, AlertKind kind, gint64 now)
{
	AlertReason r = o->reason;
	HeurWin wk = heuristics_reason_win(r);
	Window *w = h ? host_win(h, wk) : NULL;
	WindowCounts wc;
	guint32 thr[WINDOW_SPANS];

	memset(ev, 0, sizeof *ev);
	ev->time_ms = now;
	ev->event = kind;
	ev->reason = r;
	memcpy(ev->host, o->addr, 16);
	ev->raised_ms = o->sm.raised_ms;
	if (w != NULL)
		window_counts(w, &a->geom, now, &wc);
	else
		memset(&wc, 0, sizeof wc);
	thresholds(a, h, r, thr);
	ev->level = heuristics_level(r, &wc, thr, &ev->trigger);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		AlertWindow *aw = &ev->window[k];
		aw->span_ms = a->cfg.slice_ms * a->cfg.span_slices[k];
		aw->value = heuristics_metric(r, &wc.span[k]);
		aw->threshold = thr[k];
		aw->distinct = wc.span[k].distinct;
		aw->estimated = wc.span[k].estimated;
		aw->flows = wc.span[k].flows;
		aw->attempts = wc.span[k].attempts;
		aw->failed = wc.span[k].failed;
	}
	const WindowSpanCounts *l = &wc.span[WINDOW_LONG];
	ev->flows = l->flows;
	ev->attempts = l->attempts;
	ev->failed = l->failed;
	ev->succeeded = l->attempts - MIN(l->failed, l->attempts);
	ev->failed_share = l->attempts ? (double)l->failed / l->attempts : 0.0;
	ev->first_seen_ms = wc.first_ms;
	ev->last_seen_ms = wc.last_ms;
	if (w != NULL) {
		WindowTop top[ALERT_TOP_MAX];
		ev->answered = window_answered(w, &a->geom, now);
		ev->n_top = window_top(w, &a->geom, now, top, ALERT_TOP_MAX);
		for (guint i = 0; i < ev->n_top; i++) {
			memcpy(ev->top[i].addr, top[i].addr, 16);
			ev->top[i].count = top[i].count;
		}
	}
	if (a->geo_fn != NULL)
		geo_fill_event(a, ev, h, wk, now);
	if (r == REASON_AUTH_BRUTEFORCE && ev->n_top > 0) {
		memcpy(o->peer, ev->top[0].addr, 16);
		o->has_peer = TRUE;
	}
	if (o->has_peer) {
		memcpy(ev->peer, o->peer, 16);
		ev->has_peer = TRUE;
	}
	ev->sampling = 1;
	if (h != NULL) {
		ev->n_exporters = MIN(h->n_exporters, 2u);
		memcpy(ev->exporters, h->exporters, ev->n_exporters * sizeof(guint32));
		ev->exporters_truncated = h->n_exporters > 2;
		ev->sampling = h->sampling;
	}
	ev->lower_bound = ev->sampling > 1;
	if (kind == ALERT_CLEARED)
		ev->severity = ALERT_SEV_INFO;
	else if (ev->level >= ALERT_CRITICAL_LEVEL)
		ev->severity = ALERT_SEV_CRITICAL;
	else if (r == REASON_SMTP_BLOCKED)
		ev->severity = ALERT_SEV_NOTICE;
	else
		ev->severity = ALERT_SEV_WARNING;
}

static void
emit(Analyzer *a, OffEntry *o, Host *h, AlertKind kind, gint64 now)
{
	AlertEvent *slot = &a->history[a->hist_head];
	fill_event(a, slot, o, h, kind, now);
	a->hist_head = (a->hist_head + 1) % a->hist_len;
	a->hist_n = MIN(a->hist_n + 1, a->hist_len);
	o->last = *slot;
	a->st.events[kind]++;
	if (kind == ALERT_RAISED)
		a->st.events_by_reason[o->reason]++;
	if (a->alert_fn != NULL)
		a->alert_fn(slot, a->alert_data);
}

static OffEntry *
off_lookup(Analyzer *a, const guint8 addr[16], AlertReason r)
{
	OffEntry key;
	memcpy(key.addr, addr, 16);
	key.reason = r;
	return g_hash_table_lookup(a->offenders, &key);
}

/* Offenders live in the table (lookups) and in a list in creation order, so that ticks emit
 * simultaneous transitions in an order that does not depend on hashing and survives a
 * restart (analyzer_state_save() writes the list). */
static void
off_insert(Analyzer *a, OffEntry *o)
{
	o->next = NULL;
	o->prev = a->off_tail;
	if (a->off_tail != NULL)
		a->off_tail->next = o;
	else
		a->off_head = o;
	a->off_tail = o;
	g_hash_table_add(a->offenders, o);
}

static void
off_remove(Analyzer *a, OffEntry *o)
{
	if (o->prev != NULL)
		o->prev->next = o->next;
	else
		a->off_head = o->next;
	if (o->next != NULL)
		o->next->prev = o->prev;
	else
		a->off_tail = o->prev;
	g_hash_table_remove(a->offenders, o); /* frees o */
}

/* Evaluate every enabled reason that reads window wk of host h. */
static void
evaluate(Analyzer *a, Host *h, HeurWin wk, gint64 now)
{
	AlertReason rs[2];
	guint nr = 0;
	switch (wk) {
	case HEUR_WIN_SMTP_EXT:
		if (h->is_mta) {
			rs[nr++] = REASON_MTA_SURGE;
		} else {
			rs[nr++] = REASON_SMTP_FANOUT;
			rs[nr++] = REASON_SMTP_BLOCKED;
		}
		break;
	case HEUR_WIN_SMTP_INT:
		rs[nr++] = REASON_LATERAL_SMTP;
		break;
	case HEUR_WIN_SUBMIT:
		rs[nr++] = REASON_SUBMISSION_FANOUT;
		break;
	default:
		rs[nr++] = REASON_AUTH_BRUTEFORCE;
		break;
	}
	WindowCounts wc;
	gboolean have = FALSE;
	for (guint i = 0; i < nr; i++) {
		AlertReason r = rs[i];
		if (!a->cfg.h[r].enabled && !(h->offenders & (1u << r)))
			continue;
		guint32 thr[WINDOW_SPANS];
		thresholds(a, h, r, thr);
		if (!have) {
			window_counts(host_win(h, wk), &a->geom, now, &wc);
			have = TRUE;
		}
		double level = heuristics_level(r, &wc, thr, NULL);
		gboolean crossed = a->cfg.h[r].enabled &&
				   heuristics_crossed(r, level, &wc, a->cfg.blocked_share,
						      a->cfg.blocked_min_attempts);
		if (!crossed && !(h->offenders & (1u << r)))
			continue;
		OffEntry *o = off_lookup(a, h->addr, r);
		if (o == NULL) {
			o = g_new0(OffEntry, 1);
			memcpy(o->addr, h->addr, 16);
			o->reason = r;
			offender_init(&o->sm);
			off_insert(a, o);
		}
		OffenderStep st = offender_step(&o->sm, &a->policy, now, crossed, level);
		if (st == OFFENDER_STEP_NONE)
			continue;
		emit(a, o, h, (AlertKind)st, now);
		if (st == OFFENDER_STEP_CLEARED) {
			h->offenders &= (guint8) ~(1u << r);
			off_remove(a, o);
		} else {
			h->offenders |= (guint8)(1u << r);
		}
	}
}

/* ---- processing ---- */

static void
note_exporter(Host *h, guint32 exporter)
{
	for (guint i = 0; i < MIN(h->n_exporters, 2u); i++) {
		if (h->exporters[i] == exporter)
			return;
	}
	if (h->n_exporters < 2)
		h->exporters[h->n_exporters] = exporter;
	if (h->n_exporters < G_MAXUINT8)
		h->n_exporters++;
}

static void
process_one(Analyzer *a, const Flow *f)
{
	gint64 now = f->recv_ms;
	HeurClass c;

	a->st.flows_seen++;
	a->now_ms = now;
	if (now - a->last_tick_ms >= a->cfg.slice_ms || now < a->last_tick_ms)
		analyzer_tick(a, now);
	if (!heuristics_relevant(&a->hc, f))
		return;
	heuristics_classify(&a->hc, f, &c);
	if (c.dir == HEUR_IGNORE)
		return;
	if (c.dir == HEUR_REVERSE) {
		Host *h = host_lookup(a, c.host);
		Window *rw = h != NULL ? host_win(h, c.win) : NULL;
		if (rw != NULL) {
			window_answer(rw, &a->geom, c.peer);
			a->st.flows_relevant++;
		}
		return;
	}
	a->st.flows_relevant++;
	guint32 hi;
	Host *h = host_get(a, c.host, &hi);
	if (h == NULL)
		return;
	h->last_ms = now;
	h->is_mta = (guint8)c.host_is_mta;
	note_exporter(h, f->exporter);
	h->sampling = MAX(h->sampling, MAX(f->sampling, 1u));
	Window *w = host_win(h, c.win);
	if (w == NULL) {
		gsize ext0 = ext_mem(h);
		w = host_win_new(h, c.win);
		a->mem += host_win_mem(h, w) + ext_mem(h) - ext0;
	}
	if (h->is_mta && c.win == HEUR_WIN_SMTP_EXT && a->cfg.h[REASON_MTA_SURGE].enabled)
		baseline_sample(a, h, w, now);
	gsize before = window_mem(w);
	gboolean was_est = window_estimating(w);
	guint r = window_add(w, &a->geom, now, c.peer, c.dir == HEUR_FORWARD, c.failed);
	a->mem = a->mem + window_mem(w) - MIN(before, a->mem);
	if (r & WINDOW_ADD_LATE)
		a->st.flows_late++;
	if (r & WINDOW_ADD_RESET)
		a->st.window_resets++;
	if (was_est != window_estimating(w) && !host_estimating_except(h, c.win)) {
		/* the host's only estimating window switched */
		if (was_est)
			a->n_hosts_est--;
		else
			a->n_hosts_est++;
	}
	if (!was_est && window_estimating(w))
		a->st.estimate_switches++;
	if (a->geo_fn != NULL && c.dir == HEUR_FORWARD)
		geo_update(a, h, c.win, w, c.peer, r, now);
	evaluate(a, h, c.win, now);
	enforce_caps(a, hi);
}

void
analyzer_process(Analyzer *a, const Flow *flows, guint n)
{
	for (guint i = 0; i < n; i++)
		process_one(a, &flows[i]);
}

void
analyzer_tick(Analyzer *a, gint64 now_ms)
{
	OffEntry *next;

	a->last_tick_ms = now_ms;
	if (now_ms > a->now_ms)
		a->now_ms = now_ms;
	for (OffEntry *o = a->off_head; o != NULL; o = next) {
		next = o->next;
		Host *h = host_lookup(a, o->addr);
		HeurWin wk = heuristics_reason_win(o->reason);
		WindowCounts wc;
		guint32 thr[WINDOW_SPANS];
		memset(&wc, 0, sizeof wc);
		Window *w = h != NULL ? host_win(h, wk) : NULL;
		if (w != NULL)
			window_counts(w, &a->geom, now_ms, &wc);
		thresholds(a, h, o->reason, thr);
		double level = heuristics_level(o->reason, &wc, thr, NULL);
		gboolean crossed = a->cfg.h[o->reason].enabled &&
				   heuristics_crossed(o->reason, level, &wc, a->cfg.blocked_share,
						      a->cfg.blocked_min_attempts);
		OffenderStep st = offender_step(&o->sm, &a->policy, now_ms, crossed, level);
		if (st == OFFENDER_STEP_NONE)
			continue;
		emit(a, o, h, (AlertKind)st, now_ms);
		if (st == OFFENDER_STEP_CLEARED) {
			if (h != NULL)
				h->offenders &= (guint8) ~(1u << o->reason);
			off_remove(a, o);
		}
	}
	/* idle hosts: the oldest first, a bounded number per tick */
	gint64 idle_ms = a->cfg.slice_ms * (a->cfg.span_slices[WINDOW_LONG] + 1);
	for (guint i = 0; i < 4096 && a->lru_tail != HOST_NONE; i++) {
		guint32 t = a->lru_tail;
		Host *h = host_at(a, t);
		if (now_ms - h->last_ms <= idle_ms)
			break;
		if (h->offenders != 0 || host_base(h) != NULL) {
			/* keep offenders' evidence and MTA baselines: to the front */
			if (a->lru_head == t)
				break;
			lru_unlink(a, t);
			lru_push_head(a, t);
			continue;
		}
		host_drop(a, t);
		a->st.hosts_expired++;
	}
	slab_compact(a);
}

/* ---- setup ---- */

static gboolean
validate(const AnalyzerConfig *c, GError **error)
{
	const char *bad = NULL;
	if (c->slice_ms < 1000)
		bad = "slice length must be at least 1 s";
	else if (c->span_slices[WINDOW_SHORT] < 1 ||
		 c->span_slices[WINDOW_SHORT] > c->span_slices[WINDOW_LONG] ||
		 c->span_slices[WINDOW_LONG] > WINDOW_MAX_SLICES)
		bad = "windows must satisfy 1 <= short <= long <= 1440 slices";
	else if (c->exact_cap < 1 || c->exact_cap > (1u << 24))
		bad = "exact destination cap must be 1..16777216";
	else if (c->max_hosts < 1 || c->mem_cap < (1u << 20))
		bad = "host cap must be >= 1 and memory cap >= 1 MiB";
	else if (c->history_len < 1 || c->history_len > (1u << 20))
		bad = "history length must be 1..1048576";
	else if (!(c->escalate_factor > 1.0))
		bad = "escalate factor must be > 1";
	else if (!(c->clear_level > 0.0 && c->clear_level <= 1.0))
		bad = "clear level must be in (0, 1]";
	else if (c->hold_ms < 0 || c->update_interval_ms < 0)
		bad = "hold and update interval must not be negative";
	else if (!(c->blocked_share > 0.0 && c->blocked_share <= 1.0))
		bad = "blocked share must be in (0, 1]";
	else if (!(c->surge_k > 0.0) || c->surge_history < 1 || c->surge_history > 100000 ||
		 !(c->surge_warmup_factor >= 1.0))
		bad = "bad mta-surge baseline settings";
	if (bad != NULL) {
		g_set_error(error, ANALYZER_ERROR, ANALYZER_ERROR_INVALID, "%s", bad);
		return FALSE;
	}
	return TRUE;
}

typedef struct {
	NetSet *internal, *mtas;
	PortSet smtp, submit, login;
} Parsed;

static gboolean
parse_cfg(const AnalyzerConfig *c, Parsed *p, GError **error)
{
	GError *e = NULL;
	memset(p, 0, sizeof *p);
	if (!validate(c, error))
		return FALSE;
	p->internal = netset_new();
	p->mtas = netset_new();
	if (!netset_add_list(p->internal, c->internal_nets, 1, &e)) {
		g_propagate_prefixed_error(error, e, "internal networks: ");
		goto fail;
	}
	if (!netset_add_list(p->mtas, c->mail_servers, 1, &e)) {
		g_propagate_prefixed_error(error, e, "mail servers: ");
		goto fail;
	}
	if (!portset_parse(&p->smtp, c->smtp_ports, &e)) {
		g_propagate_prefixed_error(error, e, "smtp ports: ");
		goto fail;
	}
	if (!portset_parse(&p->submit, c->submission_ports, &e)) {
		g_propagate_prefixed_error(error, e, "submission ports: ");
		goto fail;
	}
	if (!portset_parse(&p->login, c->login_ports, &e)) {
		g_propagate_prefixed_error(error, e, "login ports: ");
		goto fail;
	}
	return TRUE;
fail:
	netset_free(p->internal);
	netset_free(p->mtas);
	return FALSE;
}

static void
apply_cfg(Analyzer *a, const AnalyzerConfig *c, Parsed *p)
{
	g_free(a->s_internal);
	g_free(a->s_mtas);
	g_free(a->s_smtp);
	g_free(a->s_submit);
	g_free(a->s_login);
	netset_free(a->internal);
	netset_free(a->mtas);
	a->cfg = *c;
	a->cfg.internal_nets = a->s_internal = g_strdup(c->internal_nets ? c->internal_nets : "");
	a->cfg.mail_servers = a->s_mtas = g_strdup(c->mail_servers ? c->mail_servers : "");
	a->cfg.smtp_ports = a->s_smtp = g_strdup(c->smtp_ports ? c->smtp_ports : "");
	a->cfg.submission_ports = a->s_submit =
		g_strdup(c->submission_ports ? c->submission_ports : "");
	a->cfg.login_ports = a->s_login = g_strdup(c->login_ports ? c->login_ports : "");
	a->internal = p->internal;
	a->mtas = p->mtas;
	memset(&a->hc, 0, sizeof a->hc);
	a->hc.internal = a->internal;
	a->hc.mtas = a->mtas;
	a->hc.smtp = p->smtp;
	a->hc.submit = p->submit;
	a->hc.login = p->login;
	heuristics_classifier_index(&a->hc);
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (c->h[r].enabled)
			a->hc.win_enabled[heuristics_reason_win(r)] = TRUE;
	}
	a->hc.auth_max_packets = c->auth_max_packets;
	a->hc.auth_max_bytes = c->auth_max_bytes;
	a->geom.slice_ms = c->slice_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++)
		a->geom.span[k] = c->span_slices[k];
	a->geom.exact_cap = c->exact_cap;
	a->policy.escalate_factor = c->escalate_factor;
	a->policy.update_interval_ms = c->update_interval_ms;
	a->policy.clear_level = c->clear_level;
	a->policy.hold_ms = c->hold_ms;
}

Analyzer *
analyzer_new(const AnalyzerConfig *cfg, GError **error)
{
	Parsed p;
	if (!parse_cfg(cfg, &p, error))
		return NULL;
	Analyzer *a = g_new0(Analyzer, 1);
	apply_cfg(a, cfg, &p);
	a->alert_fn = cfg->alert_fn;
	a->alert_data = cfg->alert_data;
	a->geo_fn = cfg->geo_fn;
	a->geo_data = cfg->geo_data;
	a->free_head = a->lru_head = a->lru_tail = HOST_NONE;
	a->offenders = g_hash_table_new_full(off_hash, off_equal, g_free, NULL);
	a->hist_len = cfg->history_len;
	a->history = g_new0(AlertEvent, a->hist_len);
	a->last_tick_ms = G_MININT64 / 2;
	return a;
}

void
analyzer_free(Analyzer *a)
{
	if (a == NULL)
		return;
	while (a->lru_head != HOST_NONE)
		host_drop(a, a->lru_head);
	for (guint32 c = 0; c < a->n_chunks; c++)
		g_free(a->chunks[c]);
	g_free(a->chunks);
	g_free(a->table);
	g_hash_table_destroy(a->offenders);
	g_free(a->history);
	netset_free(a->internal);
	netset_free(a->mtas);
	g_free(a->s_internal);
	g_free(a->s_mtas);
	g_free(a->s_smtp);
	g_free(a->s_submit);
	g_free(a->s_login);
	g_free(a);
}

gboolean
analyzer_reconfigure(Analyzer *a, const AnalyzerConfig *cfg, GError **error)
{
	Parsed p;
	if (!parse_cfg(cfg, &p, error))
		return FALSE;
	WindowGeom old = a->geom;
	if (cfg->history_len != a->hist_len) {
		/* keep the newest events that fit */
		AlertEvent *nh = g_new0(AlertEvent, cfg->history_len);
		guint keep = MIN(a->hist_n, cfg->history_len);
		for (guint i = 0; i < keep; i++)
			nh[keep - 1 - i] = *analyzer_history_get(a, i);
		g_free(a->history);
		a->history = nh;
		a->hist_len = cfg->history_len;
		a->hist_n = keep;
		a->hist_head = keep % a->hist_len;
	}
	AlertFunc fn = a->alert_fn;
	gpointer data = a->alert_data;
	apply_cfg(a, cfg, &p);
	a->alert_fn = fn;
	a->alert_data = data;
	a->cfg.geo_fn = a->geo_fn;
	a->cfg.geo_data = a->geo_data;
	a->mem = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next) {
		Host *h = host_at(a, i);
		gboolean was_est = host_estimating(h);
		for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
			if (host_win(h, k) != NULL)
				window_regeom(host_win(h, k), &old, &a->geom);
		}
		a->n_hosts_est = a->n_hosts_est - was_est + host_estimating(h);
		if (old.slice_ms != a->geom.slice_ms && h->ext != NULL) {
			g_clear_pointer(&h->ext->geo, geo_free); /* slice numbers changed meaning */
			host_ext_trim(h);
		}
		h->is_mta = (guint8)netset_contains(a->mtas, h->addr);
		a->mem += host_mem(h);
	}
	enforce_caps(a, HOST_NONE);
	return TRUE;
}

/* ---- queries ---- */

void
analyzer_get_stats(const Analyzer *a, AnalyzerStats *out)
{
	*out = a->st;
	out->hosts_tracked = a->n_hosts;
	out->offenders_active = g_hash_table_size(a->offenders);
	out->mem_bytes = a->mem;
	out->mem_cap = a->cfg.mem_cap;
	out->hosts_estimated = a->n_hosts_est; /* maintained: stats cost no walk of the hosts */
}

guint64
analyzer_count_estimating(const Analyzer *a)
{
	guint64 n = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next)
		n += host_estimating(host_at(a, i));
	return n;
}

void
analyzer_foreach_offender(Analyzer *a, AnalyzerOffenderFunc fn, gpointer user_data)
{
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next) {
		if (o->sm.state != OFFENDER_ACTIVE)
			continue;
		AnalyzerOffender v;
		memcpy(v.host, o->addr, 16);
		v.reason = o->reason;
		v.state = o->sm;
		v.last = &o->last;
		fn(&v, user_data);
	}
}

guint
analyzer_history_len(const Analyzer *a)
{
	return a->hist_n;
}

const AlertEvent *
analyzer_history_get(const Analyzer *a, guint i)
{
	if (i >= a->hist_n)
		return NULL;
	return &a->history[(a->hist_head + a->hist_len - 1 - i) % a->hist_len];
}

gboolean
analyzer_host_info(Analyzer *a, const guint8 addr[16], AnalyzerHostInfo *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->addr, addr, 16);
	out->is_mta = netset_contains(a->mtas, addr);
	out->is_internal = netset_contains(a->internal, addr);
	gboolean found = FALSE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (off_lookup(a, addr, r) != NULL) {
			out->offender_mask |= 1u << r;
			found = TRUE;
		}
	}
	Host *h = host_lookup(a, addr);
	if (h == NULL)
		return found;
	out->last_seen_ms = h->last_ms;
	out->sampling = h->sampling;
	out->n_exporters = MIN(h->n_exporters, 2u);
	memcpy(out->exporters, h->exporters, out->n_exporters * sizeof(guint32));
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		Window *w = host_win(h, k);
		if (w == NULL)
			continue;
		out->win[k].tracked = TRUE;
		window_counts(w, &a->geom, a->now_ms, &out->win[k].counts);
		out->win[k].n_top =
		    window_top(w, &a->geom, a->now_ms, out->win[k].top, WINDOW_TOP_MAX);
	}
	if (host_base(h) != NULL) {
		memcpy(out->baseline_median, host_base(h)->median, sizeof out->baseline_median);
		out->baseline_samples = host_base(h)->n;
	}
	return TRUE;
}

gboolean
analyzer_forget(Analyzer *a, const guint8 addr[16])
{
	gboolean found = FALSE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		OffEntry *o = off_lookup(a, addr, r);
		if (o != NULL) {
			off_remove(a, o);
			found = TRUE;
		}
	}
	guint32 i = host_index(a, addr);
	if (i != HOST_NONE) {
		host_drop(a, i);
		found = TRUE;
	}
	return found;
}

gsize
analyzer_host_overhead(void)
{
	/* the host, one window and its destination table's allocation (HOST_COST's comment) */
	return HOST_COST + WINDOW_ALLOC_OVERHEAD;
}

gint64
analyzer_now(const Analyzer *a)
{
	return a->now_ms;
}

/* ---- saved state ----
 *
 * analyzer_state_save() writes, big-endian, every record behind a u32 length of its own
 * (parsed inside that length, which it must fill exactly):
 *   "SFAN", u16 version (ANALYZER_STATE_VERSION)
 *   i64 slice_ms, u32 short span, u32 long span: the geometry the windows were counted in
 *   i64 now_ms, i64 last_tick_ms
 *   u32 nhosts,  nhosts x host, least recently seen first (loading each at the head of the
 *                recency list rebuilds the same order)
 *   u32 noff,    noff x offender, in creation order (the order ticks visit them)
 *   u32 nevents, nevents x event, the history oldest first
 * host:     16 addr, i64 last_ms, u32 sampling (>= 1), u8 exporters seen (saturating),
 *           min(that, 2) x u32 exporter, u8 offender bits (1 << reason), u8 parts: bit k
 *           (k < HEUR_WIN_COUNT) window k, bit 4 baseline, bit 5 country/ASN sets; then
 *           each window present: u32 length + window_state_save() (window.c);
 *           baseline: u32 next sample slice, u32 n, n x {u32 short, u32 long} oldest first;
 *           sets: HEUR_WIN_COUNT x {u8 started, u32 sat_cc, u32 sat_as, u32 est_skip,
 *           u8 n_cc, n_cc x {u32 slice, 2 chars}, u8 n_as, n_as x {u32 slice, u32 asn}}
 * offender: 16 addr, u8 reason, u8 state, i64 raised_ms, i64 last_event_ms, u8 below,
 *           i64 below_since_ms, f64 reported_level, u32 updates, u8 has_peer, 16 peer,
 *           then its last event
 * event:    the AlertEvent's fields in declaration order (enums as u8, booleans as u8 0/1,
 *           doubles as IEEE 754 bits, top destinations and exporters as a u8 count and that
 *           many entries, country as 2 chars, evidence as a u8 length and its bytes)
 * Derived values are recomputed instead of saved: baseline medians, capacities of the small
 * sets, the memory estimate, is_mta. Statistics start from zero, as they do at every start. */

#define ANALYZER_STATE_MAGIC "SFAN"
#define ANALYZER_STATE_VERSION 1
#define STATE_PART_BASELINE (1u << HEUR_WIN_COUNT)
#define STATE_PART_GEO (2u << HEUR_WIN_COUNT)
G_STATIC_ASSERT(HEUR_WIN_COUNT + 2 <= 8 && REASON_COUNT <= 8);
#define STATE_MIN_HOST (4 + 16 + 8 + 4 + 3) /* the smallest host record, with its length */
#define STATE_MIN_RECORD 4 /* a record length; its contents are checked inside it */
#define STATE_MAX_BASELINE 100000

static void
save_event(GByteArray *out, const AlertEvent *ev)
{
	statebuf_put_i64(out, ev->time_ms);
	statebuf_put_u8(out, (guint8)ev->event);
	statebuf_put_u8(out, (guint8)ev->reason);
	statebuf_put_u8(out, (guint8)ev->severity);
	statebuf_put_bytes(out, ev->host, 16);
	statebuf_put_bytes(out, ev->peer, 16);
	statebuf_put_u8(out, ev->has_peer != 0);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		const AlertWindow *w = &ev->window[k];
		statebuf_put_i64(out, w->span_ms);
		statebuf_put_u32(out, w->value);
		statebuf_put_u32(out, w->threshold);
		statebuf_put_u32(out, w->distinct);
		statebuf_put_u8(out, w->estimated != 0);
		statebuf_put_u32(out, w->flows);
		statebuf_put_u32(out, w->attempts);
		statebuf_put_u32(out, w->failed);
	}
	statebuf_put_u8(out, (guint8)ev->trigger);
	statebuf_put_f64(out, ev->level);
	statebuf_put_u32(out, ev->flows);
	statebuf_put_u32(out, ev->attempts);
	statebuf_put_u32(out, ev->failed);
	statebuf_put_u32(out, ev->succeeded);
	statebuf_put_u32(out, ev->answered);
	statebuf_put_f64(out, ev->failed_share);
	statebuf_put_i64(out, ev->first_seen_ms);
	statebuf_put_i64(out, ev->last_seen_ms);
	statebuf_put_u8(out, (guint8)MIN(ev->n_top, ALERT_TOP_MAX));
	for (guint i = 0; i < MIN(ev->n_top, ALERT_TOP_MAX); i++) {
		statebuf_put_bytes(out, ev->top[i].addr, 16);
		statebuf_put_u32(out, ev->top[i].count);
		statebuf_put_u32(out, ev->top[i].asn);
		statebuf_put_bytes(out, ev->top[i].country, 2);
	}
	statebuf_put_u8(out, (guint8)MIN(ev->n_exporters, ALERT_EXPORTERS_MAX));
	for (guint i = 0; i < MIN(ev->n_exporters, ALERT_EXPORTERS_MAX); i++)
		statebuf_put_u32(out, ev->exporters[i]);
	statebuf_put_u8(out, ev->exporters_truncated != 0);
	statebuf_put_u32(out, ev->sampling);
	statebuf_put_u8(out, ev->lower_bound != 0);
	statebuf_put_i64(out, ev->raised_ms);
	statebuf_put_u32(out, ev->n_countries);
	statebuf_put_u32(out, ev->n_asns);
	gsize elen = strnlen(ev->evidence, sizeof ev->evidence - 1);
	statebuf_put_u8(out, (guint8)elen);
	statebuf_put_bytes(out, ev->evidence, elen);
}

static void
save_geo(GByteArray *out, const GeoSet *g)
{
	statebuf_put_u8(out, g->started != 0);
	statebuf_put_u32(out, g->sat_cc);
	statebuf_put_u32(out, g->sat_as);
	statebuf_put_u32(out, g->est_skip);
	statebuf_put_u8(out, g->n_cc);
	for (guint i = 0; i < g->n_cc; i++) {
		statebuf_put_u32(out, g->cc[i].slice);
		statebuf_put_bytes(out, g->cc[i].cc, 2);
	}
	statebuf_put_u8(out, g->n_as);
	for (guint i = 0; i < g->n_as; i++) {
		statebuf_put_u32(out, g->as[i].slice);
		statebuf_put_u32(out, g->as[i].asn);
	}
}

static void
save_host(GByteArray *out, const Host *h)
{
	guint8 parts = 0;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (host_win(h, k) != NULL)
			parts |= (guint8)(1u << k);
	}
	if (host_base(h) != NULL)
		parts |= STATE_PART_BASELINE;
	if (host_geo(h) != NULL)
		parts |= STATE_PART_GEO;
	statebuf_put_bytes(out, h->addr, 16);
	statebuf_put_i64(out, h->last_ms);
	statebuf_put_u32(out, h->sampling);
	statebuf_put_u8(out, h->n_exporters);
	for (guint i = 0; i < MIN(h->n_exporters, 2u); i++)
		statebuf_put_u32(out, h->exporters[i]);
	statebuf_put_u8(out, h->offenders);
	statebuf_put_u8(out, parts);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (host_win(h, k) == NULL)
			continue;
		gsize mark = statebuf_begin(out);
		window_state_save(host_win(h, k), out);
		statebuf_end(out, mark);
	}
	if (host_base(h) != NULL) {
		const Baseline *b = host_base(h);
		statebuf_put_u32(out, b->next_slice);
		statebuf_put_u32(out, b->n);
		/* oldest first: the ring's filled part ends just before head */
		for (guint i = 0; i < b->n; i++) {
			guint j = (b->head + b->cap - b->n + i) % b->cap;
			for (guint k = 0; k < WINDOW_SPANS; k++)
				statebuf_put_u32(out, b->ring[k * b->cap + j]);
		}
	}
	if (host_geo(h) != NULL) {
		for (guint k = 0; k < HEUR_WIN_COUNT; k++)
			save_geo(out, &host_geo(h)[k]);
	}
}

static void
save_offender(GByteArray *out, const OffEntry *o)
{
	statebuf_put_bytes(out, o->addr, 16);
	statebuf_put_u8(out, (guint8)o->reason);
	statebuf_put_u8(out, (guint8)o->sm.state);
	statebuf_put_i64(out, o->sm.raised_ms);
	statebuf_put_i64(out, o->sm.last_event_ms);
	statebuf_put_u8(out, o->sm.below != 0);
	statebuf_put_i64(out, o->sm.below_since_ms);
	statebuf_put_f64(out, o->sm.reported_level);
	statebuf_put_u32(out, o->sm.n_updates);
	statebuf_put_u8(out, o->has_peer != 0);
	statebuf_put_bytes(out, o->peer, 16);
	save_event(out, &o->last);
}

void
analyzer_state_save(Analyzer *a, GByteArray *out)
{
	gsize mark;
	guint n = 0;

	statebuf_put_bytes(out, ANALYZER_STATE_MAGIC, 4);
	statebuf_put_u16(out, ANALYZER_STATE_VERSION);
	statebuf_put_i64(out, a->cfg.slice_ms);
	statebuf_put_u32(out, a->cfg.span_slices[WINDOW_SHORT]);
	statebuf_put_u32(out, a->cfg.span_slices[WINDOW_LONG]);
	statebuf_put_i64(out, a->now_ms);
	statebuf_put_i64(out, a->last_tick_ms);

	statebuf_put_u32(out, a->n_hosts);
	for (guint32 i = a->lru_tail; i != HOST_NONE; i = host_at(a, i)->prev) {
		mark = statebuf_begin(out);
		save_host(out, host_at(a, i));
		statebuf_end(out, mark);
	}
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next)
		n++;
	statebuf_put_u32(out, n);
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next) {
		mark = statebuf_begin(out);
		save_offender(out, o);
		statebuf_end(out, mark);
	}
	statebuf_put_u32(out, a->hist_n);
	for (guint i = a->hist_n; i-- > 0;) {
		mark = statebuf_begin(out);
		save_event(out, analyzer_history_get(a, i));
		statebuf_end(out, mark);
	}
}

/* ---- loading ---- */

static gboolean state_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
state_fail(GError **error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, ANALYZER_ERROR, ANALYZER_ERROR_INVALID, "analyzer state: %s", msg);
	return FALSE;
}

static gboolean
load_event(Cursor *c, AlertEvent *ev)
{
	guint8 kind, reason, sev, trigger, n, elen; /* elen < sizeof ev->evidence: a u8 */
	G_STATIC_ASSERT(sizeof ev->evidence > G_MAXUINT8);

	memset(ev, 0, sizeof *ev);
	if (!statebuf_get_time(c, &ev->time_ms) || !cursor_u8(c, &kind) || !cursor_u8(c, &reason) ||
	    !cursor_u8(c, &sev) || !cursor_bytes(c, ev->host, 16) ||
	    !cursor_bytes(c, ev->peer, 16) || !statebuf_get_bool(c, &ev->has_peer))
		return FALSE;
	if (kind >= ALERT_KIND_COUNT || reason >= REASON_COUNT || sev > ALERT_SEV_CRITICAL)
		return FALSE;
	ev->event = (AlertKind)kind;
	ev->reason = (AlertReason)reason;
	ev->severity = (AlertSeverity)sev;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		AlertWindow *w = &ev->window[k];
		if (!statebuf_get_time(c, &w->span_ms) || !cursor_u32(c, &w->value) ||
		    !cursor_u32(c, &w->threshold) || !cursor_u32(c, &w->distinct) ||
		    !statebuf_get_bool(c, &w->estimated) || !cursor_u32(c, &w->flows) ||
		    !cursor_u32(c, &w->attempts) || !cursor_u32(c, &w->failed))
			return FALSE;
	}
	if (!cursor_u8(c, &trigger) || trigger >= WINDOW_SPANS ||
	    !statebuf_get_f64(c, 0.0, G_MAXDOUBLE, &ev->level) || !cursor_u32(c, &ev->flows) ||
	    !cursor_u32(c, &ev->attempts) || !cursor_u32(c, &ev->failed) ||
	    !cursor_u32(c, &ev->succeeded) || !cursor_u32(c, &ev->answered) ||
	    !statebuf_get_f64(c, 0.0, 1.0, &ev->failed_share) ||
	    !statebuf_get_time(c, &ev->first_seen_ms) || !statebuf_get_time(c, &ev->last_seen_ms))
		return FALSE;
	ev->trigger = trigger;
	if (!cursor_u8(c, &n) || n > ALERT_TOP_MAX)
		return FALSE;
	ev->n_top = n;
	for (guint i = 0; i < n; i++) {
		AlertDest *d = &ev->top[i];
		if (!cursor_bytes(c, d->addr, 16) || !cursor_u32(c, &d->count) ||
		    !cursor_u32(c, &d->asn) || !cursor_bytes(c, d->country, 2))
			return FALSE;
	}
	if (!cursor_u8(c, &n) || n > ALERT_EXPORTERS_MAX)
		return FALSE;
	ev->n_exporters = n;
	for (guint i = 0; i < n; i++) {
		if (!cursor_u32(c, &ev->exporters[i]))
			return FALSE;
	}
	if (!statebuf_get_bool(c, &ev->exporters_truncated) || !cursor_u32(c, &ev->sampling) ||
	    ev->sampling == 0 || !statebuf_get_bool(c, &ev->lower_bound) ||
	    !statebuf_get_time(c, &ev->raised_ms) || !cursor_u32(c, &ev->n_countries) ||
	    !cursor_u32(c, &ev->n_asns) || !cursor_u8(c, &elen) ||
	    !cursor_bytes(c, ev->evidence, elen) || memchr(ev->evidence, '\0', elen) != NULL)
		return FALSE;
	return TRUE;
}

/* The small sets' capacity follows from their size (grown 4, 8, 16, ... up to max). */
static guint8
geo_cap_for(guint n, guint max)
{
	guint cap = 0;
	while (cap < n)
		cap = MIN(cap ? cap * 2 : 4u, max);
	return (guint8)cap;
}

static gboolean
load_geo(Cursor *c, GeoSet *g)
{
	guint8 n;
	if (!statebuf_get_bool(c, &g->started) || !cursor_u32(c, &g->sat_cc) ||
	    !cursor_u32(c, &g->sat_as) || !cursor_u32(c, &g->est_skip) ||
	    g->est_skip >= GEO_EST_SAMPLE)
		return FALSE;
	if (!cursor_u8(c, &n) || n > ANALYZER_GEO_MAX_COUNTRIES)
		return FALSE;
	if (n > 0) {
		g->cap_cc = geo_cap_for(n, ANALYZER_GEO_MAX_COUNTRIES);
		g->cc = g_new0(GeoCc, g->cap_cc);
	}
	for (; g->n_cc < n; g->n_cc++) {
		GeoCc *e = &g->cc[g->n_cc];
		if (!cursor_u32(c, &e->slice) || !cursor_bytes(c, e->cc, 2) || e->cc[0] == '\0' ||
		    e->cc[1] == '\0')
			return FALSE;
	}
	if (!cursor_u8(c, &n) || n > ANALYZER_GEO_MAX_ASNS)
		return FALSE;
	if (n > 0) {
		g->cap_as = geo_cap_for(n, ANALYZER_GEO_MAX_ASNS);
		g->as = g_new0(GeoAs, g->cap_as);
	}
	for (; g->n_as < n; g->n_as++) {
		GeoAs *e = &g->as[g->n_as];
		if (!cursor_u32(c, &e->slice) || !cursor_u32(c, &e->asn) || e->asn == 0)
			return FALSE;
	}
	return TRUE;
}

/* Whether a host still makes traffic of kind k under the current networks (the rules of
 * heuristics_classify()). */
static gboolean
host_fits(const Analyzer *a, const Host *h, HeurWin k)
{
	gboolean internal = netset_contains(a->internal, h->addr);
	switch (k) {
	case HEUR_WIN_SMTP_EXT:
		return internal;
	case HEUR_WIN_SMTP_INT:
	case HEUR_WIN_SUBMIT:
		return internal && !h->is_mta;
	default:
		return !internal && !h->is_mta;
	}
}

/* A host being loaded is built outside the slab, then copied into a slot. */
static void
host_free(Host *h)
{
	host_clear(h);
	g_free(h);
}

static gboolean
load_baseline(Analyzer *a, Cursor *c, Host *h, gint64 saved_slice_ms)
{
	guint32 next, n, v[WINDOW_SPANS];
	if (!cursor_u32(c, &next) || !cursor_u32(c, &n) ||
	    !statebuf_count_ok(c, n, WINDOW_SPANS * 4, STATE_MAX_BASELINE))
		return FALSE;
	guint cap = MAX(a->cfg.surge_history, 1u);
	Baseline *b = g_malloc0(sizeof(Baseline) + (gsize)cap * WINDOW_SPANS * sizeof(guint32));
	b->cap = cap;
	/* a changed slice width: the same moment in the new slices */
	if (saved_slice_ms != a->cfg.slice_ms)
		next = (guint32)CLAMP((double)next * saved_slice_ms / a->cfg.slice_ms, 0,
				      (double)G_MAXUINT32);
	b->next_slice = next;
	for (guint32 i = 0; i < n; i++) {
		for (guint k = 0; k < WINDOW_SPANS; k++) {
			if (!cursor_u32(c, &v[k])) {
				g_free(b);
				return FALSE;
			}
		}
		baseline_push(b, v); /* keeps the newest when surge_history got shorter */
	}
	baseline_median(b);
	if (!h->is_mta) {
		g_free(b);
		a->st.state_baselines_dropped++;
		return TRUE;
	}
	host_ext(h)->base = b;
	return TRUE;
}

/* The traffic kinds as `host` names them, for error messages. */
static const char *const state_win_names[HEUR_WIN_COUNT] = {"smtp-external", "smtp-internal",
							     "submission", "login"};

/* One host record; *out = NULL when nothing of it fits the configuration. saved: the
 * geometry the windows were counted in. */
static gboolean
load_host(Analyzer *a, Cursor *c, const WindowGeom *saved, Host **out, GError **error)
{
	g_autofree char *what = NULL;
	char buf[64];
	guint8 n_exp, offenders, parts;
	gint64 saved_slice_ms = saved->slice_ms;
	gboolean same_slices = saved_slice_ms == a->cfg.slice_ms;
	Host *h = g_new0(Host, 1);

	h->win1_kind = HOST_NO_WIN;
	*out = NULL;
	if (!cursor_bytes(c, h->addr, 16) || !statebuf_get_time(c, &h->last_ms) ||
	    !cursor_u32(c, &h->sampling) || h->sampling == 0 || !cursor_u8(c, &n_exp)) {
		what = g_strdup("bad host header");
		goto fail;
	}
	h->n_exporters = n_exp;
	for (guint i = 0; i < MIN(n_exp, 2u); i++) {
		if (!cursor_u32(c, &h->exporters[i])) {
			what = g_strdup("truncated exporters");
			goto fail;
		}
	}
	if (!cursor_u8(c, &offenders) || offenders >= (1u << REASON_COUNT) ||
	    !cursor_u8(c, &parts) || parts >= (4u << HEUR_WIN_COUNT)) {
		what = g_strdup("bad offender or part bits");
		goto fail;
	}
	h->offenders = offenders;
	h->is_mta = (guint8)netset_contains(a->mtas, h->addr);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		Cursor wc;
		g_autoptr(GError) e = NULL;
		if (!(parts & (1u << k)))
			continue;
		if (!statebuf_get_sub(c, &wc)) {
			what = g_strdup_printf("%s window: length past the end", state_win_names[k]);
			goto fail;
		}
		if (!same_slices || !host_fits(a, h, (HeurWin)k)) {
			a->st.state_windows_dropped++;
			continue;
		}
		Window *w = host_win_new(h, k);
		if (!window_state_load(w, saved, &a->geom, cursor_ptr(&wc), cursor_left(&wc), &e)) {
			what = g_strdup_printf("%s %s", state_win_names[k], e->message);
			goto fail;
		}
	}
	if ((parts & STATE_PART_BASELINE) && !load_baseline(a, c, h, saved_slice_ms)) {
		what = g_strdup("bad baseline");
		goto fail;
	}
	if (parts & STATE_PART_GEO) {
		GeoSet *geo = host_ext(h)->geo = g_new0(GeoSet, HEUR_WIN_COUNT);
		for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
			if (!load_geo(c, &geo[k])) {
				what = g_strdup("bad country/ASN set");
				goto fail;
			}
			/* the sets count slices of their window: they go with it */
			if (host_win(h, k) == NULL)
				geo_clear(&geo[k]);
		}
		if (!same_slices) {
			g_clear_pointer(&h->ext->geo, geo_free);
			host_ext_trim(h);
		}
	}
	if (cursor_left(c) != 0) {
		what = g_strdup("trailing bytes");
		goto fail;
	}
	gboolean any = host_base(h) != NULL;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		any = any || host_win(h, k) != NULL;
	if (!any) {
		a->st.state_hosts_dropped++;
		host_free(h);
		return TRUE;
	}
	*out = h;
	return TRUE;
fail:
	state_fail(error, "host %s: %s", flow_addr_str(h->addr, buf, sizeof buf), what);
	host_free(h);
	return FALSE;
}

static gboolean
load_offender(Analyzer *a, Cursor *c, GError **error)
{
	OffEntry *o = g_new0(OffEntry, 1);
	guint8 reason, state;
	char buf[64];

	if (!cursor_bytes(c, o->addr, 16) || !cursor_u8(c, &reason) || reason >= REASON_COUNT ||
	    !cursor_u8(c, &state) || state > OFFENDER_ACTIVE ||
	    !statebuf_get_time(c, &o->sm.raised_ms) ||
	    !statebuf_get_time(c, &o->sm.last_event_ms) || !statebuf_get_bool(c, &o->sm.below) ||
	    !statebuf_get_time(c, &o->sm.below_since_ms) ||
	    !statebuf_get_f64(c, 0.0, G_MAXDOUBLE, &o->sm.reported_level) ||
	    !cursor_u32(c, &o->sm.n_updates) || !statebuf_get_bool(c, &o->has_peer) ||
	    !cursor_bytes(c, o->peer, 16)) {
		g_free(o);
		return state_fail(error, "bad offender");
	}
	o->reason = reason;
	o->sm.state = (OffenderState)state;
	if (!load_event(c, &o->last) || cursor_left(c) != 0) {
		state_fail(error, "offender %s %s: bad last event",
			   flow_addr_str(o->addr, buf, sizeof buf), alert_reason_name(reason));
		g_free(o);
		return FALSE;
	}
	if (off_lookup(a, o->addr, reason) != NULL) {
		state_fail(error, "offender %s %s: twice", flow_addr_str(o->addr, buf, sizeof buf),
			   alert_reason_name(reason));
		g_free(o);
		return FALSE;
	}
	off_insert(a, o);
	return TRUE;
}

gboolean
analyzer_state_load(Analyzer *a, const guint8 *data, gsize len, GError **error)
{
	Cursor c, rc;
	char magic[4];
	guint16 version;
	gint64 slice_ms;
	guint32 span[WINDOW_SPANS], n;
	guint64 evicted_before = a->st.hosts_evicted;

	if (a->n_hosts != 0 || g_hash_table_size(a->offenders) != 0 || a->hist_n != 0)
		return state_fail(error, "the analyzer already holds state");
	cursor_init(&c, data, len);
	if (!cursor_bytes(&c, magic, 4) || memcmp(magic, ANALYZER_STATE_MAGIC, 4) != 0)
		return state_fail(error, "not analyzer state (bad magic)");
	if (!cursor_u16(&c, &version))
		return state_fail(error, "truncated header");
	if (version != ANALYZER_STATE_VERSION)
		return state_fail(error, "unsupported version %u (this build reads %u)", version,
				  ANALYZER_STATE_VERSION);
	if (!statebuf_get_time(&c, &slice_ms) || !cursor_u32(&c, &span[WINDOW_SHORT]) ||
	    !cursor_u32(&c, &span[WINDOW_LONG]) || !statebuf_get_time(&c, &a->now_ms) ||
	    !statebuf_get_time(&c, &a->last_tick_ms))
		return state_fail(error, "bad header (truncated, or a time out of range)");
	if (slice_ms < 1000 || span[WINDOW_SHORT] < 1 || span[WINDOW_SHORT] > span[WINDOW_LONG] ||
	    span[WINDOW_LONG] > WINDOW_MAX_SLICES)
		return state_fail(error, "bad window geometry");
	WindowGeom saved = a->geom;
	saved.slice_ms = slice_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++)
		saved.span[k] = span[k];

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_HOST, G_MAXUINT32))
		return state_fail(error, "host count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		Host *h;
		if (!statebuf_get_sub(&c, &rc))
			return state_fail(error, "host %u: length past the end of the data", i);
		if (!load_host(a, &rc, &saved, &h, error))
			return FALSE;
		if (h == NULL)
			continue;
		if (host_lookup(a, h->addr) != NULL) {
			char buf[64];
			state_fail(error, "host %s: twice",
				   flow_addr_str(h->addr, buf, sizeof buf));
			host_free(h);
			return FALSE;
		}
		guint32 slot = slab_alloc(a);
		if (slot == HOST_NONE) {
			host_free(h);
			return state_fail(error, "too many hosts");
		}
		*host_at(a, slot) = *h;
		g_free(h); /* what it held is the slot's now */
		h = host_at(a, slot);
		h->prev = h->next = HOST_NONE;
		table_insert(a, slot);
		lru_push_head(a, slot);
		a->mem += host_mem(h);
		a->n_hosts_est += host_estimating(h);
		enforce_caps(a, HOST_NONE);
	}

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_RECORD, G_MAXUINT32))
		return state_fail(error, "offender count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		if (!statebuf_get_sub(&c, &rc))
			return state_fail(error, "offender %u: length past the end of the data", i);
		if (!load_offender(a, &rc, error))
			return FALSE;
	}
	/* a host's offender bit always has its offender: drop bits that do not */
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next) {
		Host *h = host_at(a, i);
		for (guint r = 0; r < REASON_COUNT; r++) {
			if ((h->offenders & (1u << r)) && off_lookup(a, h->addr, r) == NULL)
				h->offenders &= (guint8) ~(1u << r);
		}
	}

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_RECORD, G_MAXUINT32))
		return state_fail(error, "event count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		AlertEvent *slot = &a->history[a->hist_head];
		if (!statebuf_get_sub(&c, &rc) || !load_event(&rc, slot) || cursor_left(&rc) != 0) {
			memset(slot, 0, sizeof *slot);
			return state_fail(error, "event %u of the history: bad", i);
		}
		/* a shorter history than when saved keeps the newest */
		a->hist_head = (a->hist_head + 1) % a->hist_len;
		a->hist_n = MIN(a->hist_n + 1, a->hist_len);
	}
	if (cursor_left(&c) != 0)
		return state_fail(error, "%" G_GSIZE_FORMAT " trailing bytes", cursor_left(&c));

	a->st.state_hosts_restored = a->n_hosts;
	a->st.state_offenders_restored = g_hash_table_size(a->offenders);
	a->st.state_hosts_evicted = a->st.hosts_evicted - evicted_before;
	a->st.hosts_evicted = evicted_before;
	return TRUE;
}

/* ---- names ---- */

const char *
alert_kind_name(AlertKind k)
{
	static const char *const n[] = {"raised", "updated", "cleared"};
	return (guint)k < G_N_ELEMENTS(n) ? n[k] : "unknown";
}

static const char *const reason_names[REASON_COUNT] = {
	"smtp-fanout",     "smtp-blocked", "submission-fanout",
	"lateral-smtp",    "mta-surge",    "auth-bruteforce",
};

const char *
alert_reason_name(AlertReason r)
{
	return (guint)r < REASON_COUNT ? reason_names[r] : "unknown";
}

gboolean
alert_reason_from_name(const char *name, AlertReason *out)
{
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (g_strcmp0(name, reason_names[r]) == 0) {
			*out = (AlertReason)r;
			return TRUE;
		}
	}
	return FALSE;
}

const char *
alert_severity_name(AlertSeverity s)
{
	static const char *const n[] = {"info", "notice", "warning", "critical"};
	return (guint)s < G_N_ELEMENTS(n) ? n[s] : "unknown";
}
