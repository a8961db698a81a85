/* The flow store behind evidence files: per (host, kind of traffic) a ring of the recent
 * records the analyzer counted, handed over by the analyzer with its classification so the
 * evidence holds exactly the flows that fed the alerting window. Bounded three ways:
 * records per ring, age (the long window), and total bytes (least recently fed ring goes). */
#include "flowstore.h"

#include <string.h>

#include "fnv1a.h"

typedef struct Ring Ring;
struct Ring {
	guint8 host[16]; /* first: the table hashes host + win */
	guint8 win;
	Ring *prev, *next; /* recency of feeding, head = newest */
	gint64 last_ms;
	guint32 head, n, cap; /* v[head] is the oldest record */
	Flow *v;
};

struct FlowStore {
	gint64 slice_ms;
	guint span; /* long window, slices */
	guint max_flows;
	guint64 max_bytes;
	GHashTable *rings;
	Ring *lru_head, *lru_tail;
	FlowStoreStats st;
};

gsize
flowstore_record_size(void)
{
	return sizeof(Flow);
}

static guint
ring_hash(gconstpointer p)
{
	return fnv1a(p, 17);
}

static gboolean
ring_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 17) == 0;
}

static gsize
ring_bytes(const Ring *r)
{
	return FLOWSTORE_RING_COST + (gsize)r->cap * sizeof(Flow);
}

static void
lru_unlink(FlowStore *fs, Ring *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		fs->lru_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		fs->lru_tail = r->prev;
	r->prev = r->next = NULL;
}

static void
lru_push_head(FlowStore *fs, Ring *r)
{
	r->prev = NULL;
	r->next = fs->lru_head;
	if (fs->lru_head)
		fs->lru_head->prev = r;
	fs->lru_head = r;
	if (fs->lru_tail == NULL)
		fs->lru_tail = r;
}

static void
ring_drop(FlowStore *fs, Ring *r)
{
	fs->st.bytes -= MIN(fs->st.bytes, ring_bytes(r));
	lru_unlink(fs, r);
	g_hash_table_remove(fs->rings, r);
	g_free(r->v);
	g_free(r);
	fs->st.rings--;
}

static inline gboolean
in_long(const FlowStore *fs, gint64 t_ms, guint32 now)
{
	guint32 s = (guint32)(MAX(t_ms, 0) / fs->slice_ms);
	return (guint64)s + fs->span > now;
}

static guint32
slice_of(const FlowStore *fs, gint64 t_ms)
{
	return (guint32)(MAX(t_ms, 0) / fs->slice_ms);
}

void
flowstore_reconfigure(FlowStore *fs, const AnalyzerConfig *acfg)
{
	fs->slice_ms = MAX(acfg->slice_ms, 1000);
	fs->span = MAX(acfg->span_slices[WINDOW_LONG], 1u);
}

FlowStore *
flowstore_new(const AnalyzerConfig *acfg, guint max_flows, guint64 max_bytes)
{
	FlowStore *fs = g_new0(FlowStore, 1);
	flowstore_reconfigure(fs, acfg);
	fs->max_bytes = max_bytes;
	/* a ring never needs more than the byte cap allows */
	guint64 fit =
	    max_bytes > FLOWSTORE_RING_COST ? (max_bytes - FLOWSTORE_RING_COST) / sizeof(Flow) : 0;
	fs->max_flows = (guint)MIN((guint64)MAX(max_flows, 1u), MAX(fit, 1));
	fs->st.max_bytes = max_bytes;
	fs->rings = g_hash_table_new(ring_hash, ring_equal);
	return fs;
}

void
flowstore_free(FlowStore *fs)
{
	if (fs == NULL)
		return;
	while (fs->lru_head != NULL)
		ring_drop(fs, fs->lru_head);
	g_hash_table_destroy(fs->rings);
	g_free(fs);
}

static Ring *
ring_lookup(FlowStore *fs, const guint8 host[16], HeurWin win)
{
	guint8 key[17];
	memcpy(key, host, 16);
	key[16] = (guint8)win;
	return g_hash_table_lookup(fs->rings, key);
}

/* Drop records that left the long window ending at slice now. */
static void
ring_expire(FlowStore *fs, Ring *r, guint32 now)
{
	while (r->n > 0 && !in_long(fs, r->v[r->head].recv_ms, now)) {
		r->head = (r->head + 1) % r->cap;
		r->n--;
		fs->st.flows_expired++;
	}
}

static void
ring_append(FlowStore *fs, Ring *r, const Flow *f)
{
	if (r->n == r->cap && r->cap < fs->max_flows) {
		guint32 ncap = (guint32)MIN((guint64)MAX(r->cap * 2u, 4u), fs->max_flows);
		Flow *nv = g_new(Flow, ncap);
		for (guint32 i = 0; i < r->n; i++)
			nv[i] = r->v[(r->head + i) % r->cap];
		fs->st.bytes += (guint64)(ncap - r->cap) * sizeof(Flow);
		g_free(r->v);
		r->v = nv;
		r->head = 0;
		r->cap = ncap;
	}
	if (r->n == r->cap) {
		r->head = (r->head + 1) % r->cap;
		r->n--;
		fs->st.flows_overwritten++;
	}
	r->v[(r->head + r->n) % r->cap] = *f;
	r->n++;
	fs->st.flows_stored++;
}

void
flowstore_add(FlowStore *fs, const Flow *f, const HeurClass *c)
{
	guint32 now = slice_of(fs, f->recv_ms);

	/* rings that went quiet for a whole long window: a few per record */
	for (guint i = 0; i < 4 && fs->lru_tail != NULL; i++) {
		Ring *old = fs->lru_tail;
		if (in_long(fs, old->last_ms, now) || slice_of(fs, old->last_ms) > now)
			break;
		fs->st.flows_expired += old->n;
		fs->st.rings_expired++;
		ring_drop(fs, old);
	}

	if (c->dir == HEUR_IGNORE)
		return;
	Ring *r = ring_lookup(fs, c->host, c->win);
	if (r == NULL) {
		if (c->dir == HEUR_REVERSE)
			return; /* an answer to a host whose ring went (byte cap, idle) */
		r = g_new0(Ring, 1);
		memcpy(r->host, c->host, 16);
		r->win = (guint8)c->win;
		g_hash_table_add(fs->rings, r);
		lru_push_head(fs, r);
		fs->st.rings++;
		fs->st.bytes += ring_bytes(r);
	} else if (fs->lru_head != r) {
		lru_unlink(fs, r);
		lru_push_head(fs, r);
	}
	r->last_ms = MAX(r->last_ms, f->recv_ms);
	ring_expire(fs, r, MAX(now, slice_of(fs, r->last_ms)));
	ring_append(fs, r, f);
	while (fs->st.bytes > fs->max_bytes && fs->lru_tail != NULL && fs->lru_tail != r) {
		Ring *victim = fs->lru_tail;
		fs->st.rings_evicted++;
		fs->st.flows_evicted += victim->n;
		ring_drop(fs, victim);
	}
}

void
flowstore_analyzer_flow(const Flow *f, const HeurClass *c, gpointer user_data)
{
	flowstore_add(user_data, f, c);
}

guint
flowstore_collect(FlowStore *fs, const guint8 host[16], HeurWin win, gint64 now_ms, GArray *out)
{
	Ring *r = ring_lookup(fs, host, win);
	if (r == NULL)
		return 0;
	guint32 now = MAX(slice_of(fs, now_ms), slice_of(fs, r->last_ms));
	guint n = 0;
	for (guint32 i = 0; i < r->n; i++) {
		const Flow *f = &r->v[(r->head + i) % r->cap];
		if (!in_long(fs, f->recv_ms, now))
			continue;
		g_array_append_val(out, *f);
		n++;
	}
	return n;
}

void
flowstore_get_stats(const FlowStore *fs, FlowStoreStats *out)
{
	*out = fs->st;
}

void
flowstore_stats_json(const FlowStore *fs, GString *out)
{
	const FlowStoreStats *s = &fs->st;
	g_string_append_printf(
	    out,
	    "\"flowstore_flows_stored\":%" G_GUINT64_FORMAT
	    ",\"flowstore_flows_overwritten\":%" G_GUINT64_FORMAT
	    ",\"flowstore_flows_expired\":%" G_GUINT64_FORMAT
	    ",\"flowstore_rings_evicted\":%" G_GUINT64_FORMAT
	    ",\"flowstore_flows_evicted\":%" G_GUINT64_FORMAT
	    ",\"flowstore_rings_expired\":%" G_GUINT64_FORMAT
	    ",\"flowstore_rings\":%" G_GUINT64_FORMAT ",\"flowstore_bytes\":%" G_GUINT64_FORMAT
	    ",\"flowstore_max_bytes\":%" G_GUINT64_FORMAT,
	    s->flows_stored, s->flows_overwritten, s->flows_expired, s->rings_evicted,
	    s->flows_evicted, s->rings_expired, s->rings, s->bytes, s->max_bytes);
}
