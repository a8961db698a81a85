/* The cluster coordinator (coord.h): one thread that talks to the bus for the node (setup,
 * registration, partition leases, snapshots, offenders, requests) and a byte-bounded queue
 * that hands what the bus delivers to the main loop in order. The rendezvous hash, the
 * alert fence and the queue are pure and unit-tested (coord_private.h). */
#include "coord.h"
#include "json.h"

#include <errno.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "coord_private.h"
#include "wire.h"

/* How often the owned partitions' last stream sequences are read (lag in `cluster`). */
#define LAST_SEQ_MS 3000
/* A bucket's watch is checked against the server this often (bus_kv_mirror_list()): the
 * nodes' entries expire (node_ttl), the offenders' do not */
#define WATCH_CHECK_MS 5000
/* Events handed to the main loop per dispatch, so that other sources get their turn. */
#define DISPATCH_BUDGET 256
/* Queue accounting: what an event costs beyond its data. */
#define EVENT_OVERHEAD 96
/* Bounds on what the main loop may queue for the thread. */
#define OFFENDERS_PENDING_MAX 65536
#define REQUESTS_PENDING_MAX 256
/* The suppressions bucket is listed at least this often (what expired goes), else only when
 * it changed. */
#define SUPPRESSIONS_RELIST_MS 30000
/* A partition taken because its target did not take it is not handed back to that target
 * for this many lease TTLs. */
#define PASSED_HOLD_TTLS 10

static gint64
now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

/* Bytes with a NUL after them (not counted in the size), so that text can be read as a C
 * string; coord.h's events and the bus's values follow this. */
static GBytes *
bytes_with_nul(const void *data, gsize len)
{
	char *copy = g_malloc(len + 1);
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	return g_bytes_new_take(copy, len);
}


/* ---- Rendezvous hashing ---- */

static guint64
mix64(guint64 x)
{
	/* MurmurHash3's 64-bit finalizer: FNV-1a alone spreads short, similar names badly */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

guint64
coord_weight(guint p, const char *node)
{
	guint64 h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
	for (const guchar *s = (const guchar *)node; *s; s++)
		h = (h ^ *s) * 0x100000001b3ull;
	return mix64(h ^ mix64((guint64)p + 0x9e3779b97f4a7c15ull));
}

typedef struct {
	guint64 w;
	guint idx;
	const char *name;
} Ranked;

static int
ranked_cmp(const void *a, const void *b)
{
	const Ranked *x = a, *y = b;
	if (x->w != y->w)
		return x->w > y->w ? -1 : 1;
	return strcmp(x->name, y->name);
}

void
coord_rendezvous_order(guint p, const char *const *nodes, guint n, guint *order)
{
	g_autofree Ranked *r = g_new(Ranked, n ? n : 1);
	for (guint i = 0; i < n; i++)
		r[i] = (Ranked){coord_weight(p, nodes[i]), i, nodes[i]};
	qsort(r, n, sizeof *r, ranked_cmp);
	for (guint i = 0; i < n; i++)
		order[i] = r[i].idx;
}

gint
coord_rendezvous(guint p, const char *const *nodes, guint n)
{
	gint best = -1;
	guint64 best_w = 0;
	for (guint i = 0; i < n; i++) {
		guint64 w = coord_weight(p, nodes[i]);
		if (best < 0 || w > best_w || (w == best_w && strcmp(nodes[i], nodes[best]) < 0)) {
			best = (gint)i;
			best_w = w;
		}
	}
	return best;
}

void
coord_assign(guint partitions, const char *const *nodes, guint n, gint *owner)
{
	if (n == 0) {
		for (guint p = 0; p < partitions; p++)
			owner[p] = -1;
		return;
	}
	/* consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): in
	 * partition order, each goes to the first node of its rendezvous order that holds
	 * fewer than ceil(partitions / n) */
	guint cap = (partitions + n - 1) / n;
	g_autofree guint *load = g_new0(guint, n);
	g_autofree guint *order = g_new(guint, n);
	for (guint p = 0; p < partitions; p++) {
		coord_rendezvous_order(p, nodes, n, order);
		guint k = 0;
		while (load[order[k]] >= cap)
			k++; /* cap * n >= partitions: someone has room */
		owner[p] = (gint)order[k];
		load[order[k]]++;
	}
}

/* ---- Alert fence and deduplication ---- */

struct CoordFence {
	guint partitions;
	guint64 *newest;   /* newest lease_rev seen per partition */
	gint64 *newest_from; /* ... and the time its owner's snapshot covered */
	guint cap;
	GHashTable *ids; /* set of the ids in fifo (owned by fifo) */
	GQueue fifo;	 /* oldest first */
};

CoordFence *
coord_fence_new(guint partitions, guint dedup_ids)
{
	CoordFence *f = g_new0(CoordFence, 1);
	f->partitions = partitions;
	f->newest = g_new0(guint64, partitions ? partitions : 1);
	f->newest_from = g_new0(gint64, partitions ? partitions : 1);
	f->cap = dedup_ids ? dedup_ids : 1;
	f->ids = g_hash_table_new(g_str_hash, g_str_equal);
	g_queue_init(&f->fifo);
	return f;
}

void
coord_fence_free(CoordFence *f)
{
	if (!f)
		return;
	g_hash_table_destroy(f->ids);
	g_queue_clear_full(&f->fifo, g_free);
	g_free(f->newest);
	g_free(f->newest_from);
	g_free(f);
}

CoordFenceResult
coord_fence_check(CoordFence *f, guint partition, guint64 lease_rev, gint64 lease_from_ms,
		  gint64 time_ms, const char *id)
{
	if (partition >= f->partitions || !id || !*id)
		return COORD_FENCE_BAD;
	gboolean stale = lease_rev < f->newest[partition] && time_ms > f->newest_from[partition];
	/* a duplicate still shows its owner's lease */
	if (lease_rev > f->newest[partition]) {
		f->newest[partition] = lease_rev;
		f->newest_from[partition] = lease_from_ms;
	}
	if (g_hash_table_contains(f->ids, id))
		return COORD_FENCE_DUPLICATE;
	char *copy = g_strdup(id);
	g_queue_push_tail(&f->fifo, copy);
	g_hash_table_add(f->ids, copy);
	while (f->fifo.length > f->cap) {
		char *old = g_queue_pop_head(&f->fifo);
		g_hash_table_remove(f->ids, old);
		g_free(old);
	}
	return stale ? COORD_FENCE_STALE : COORD_FENCE_PASS;
}

void
coord_fence_forget(CoordFence *f, const char *id)
{
	/* the fifo keeps its copy until it moves past it: removed there too */
	GList *l = g_queue_find_custom(&f->fifo, id, (GCompareFunc)strcmp);
	if (l == NULL)
		return;
	g_hash_table_remove(f->ids, l->data);
	g_free(l->data);
	g_queue_delete_link(&f->fifo, l);
}

gint64
coord_ack_track(CoordAckTrack *t, guint64 ack_floor, guint64 ack_pending, gint64 now_ms)
{
	if (ack_pending == 0 || ack_floor != t->floor || t->since_ms == 0) {
		t->floor = ack_floor;
		t->since_ms = now_ms;
	}
	return ack_pending > 0 ? MAX(now_ms - t->since_ms, (gint64)0) : 0;
}

/* ---- Requests served for other nodes ---- */

struct CoordRequest {
	gint ref;
	GMutex lock;
	GCond cond;
	GBytes *reply;
	gboolean answered;  /* coord_reply() came */
	gboolean abandoned; /* the serving thread gave up (timeout, shutdown) */
};

static CoordRequest *
coord_request_new(void)
{
	CoordRequest *r = g_new0(CoordRequest, 1);
	r->ref = 1;
	g_mutex_init(&r->lock);
	g_cond_init(&r->cond);
	return r;
}

void
coord_request_unref(CoordRequest *r)
{
	if (!r || !g_atomic_int_dec_and_test(&r->ref))
		return;
	if (r->reply)
		g_bytes_unref(r->reply);
	g_mutex_clear(&r->lock);
	g_cond_clear(&r->cond);
	g_free(r);
}

void
coord_reply(CoordRequest *r, const char *json, gsize len)
{
	if (!r)
		return;
	g_mutex_lock(&r->lock);
	if (!r->answered && !r->abandoned) {
		r->reply = bytes_with_nul(json, len);
		r->answered = TRUE;
		g_cond_signal(&r->cond);
	}
	g_mutex_unlock(&r->lock);
	coord_request_unref(r); /* the main loop's reference, from the COORD_REQUEST event */
}

/* Node entries and offenders come from the bus, written by any client allowed on it: text
 * nested deeper than this is not parsed (json_nesting()). Ours nest 4 levels at most. */
#define COORD_JSON_MAX_DEPTH 32

/* ---- The event queue ---- */

#define ALERT_HANDLE_WAIT_S 8

/* Who waits until an event has been handled on the main loop (the alert consumer: the
 * event is acknowledged to the stream only once the sinks have it). */
typedef struct {
	GMutex lock;
	GCond cond;
	gboolean done;
	gboolean handled; /* by the main loop (not dropped by a stopping queue) */
	gint refs;
} QWaiter;

static QWaiter *
qwaiter_new(void)
{
	QWaiter *w = g_new0(QWaiter, 1);
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->refs = 2; /* the waiter's and the queue item's */
	return w;
}

static void
qwaiter_unref(QWaiter *w)
{
	if (w != NULL && g_atomic_int_dec_and_test(&w->refs)) {
		g_mutex_clear(&w->lock);
		g_cond_clear(&w->cond);
		g_free(w);
	}
}

/* The item is gone: handled, or dropped by a stopping queue. */
static void
qwaiter_signal(QWaiter *w)
{
	g_mutex_lock(&w->lock);
	w->done = TRUE;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	qwaiter_unref(w);
}

typedef enum { QWAIT_HANDLED, QWAIT_DROPPED, QWAIT_TIMEOUT } QWaitResult;

static QWaitResult
qwaiter_wait(QWaiter *w, gint64 timeout_us)
{
	gint64 end = g_get_monotonic_time() + timeout_us;
	QWaitResult r;

	g_mutex_lock(&w->lock);
	while (!w->done && g_cond_wait_until(&w->cond, &w->lock, end))
		;
	r = !w->done ? QWAIT_TIMEOUT : w->handled ? QWAIT_HANDLED : QWAIT_DROPPED;
	g_mutex_unlock(&w->lock);
	qwaiter_unref(w);
	return r;
}

typedef struct {
	CoordEvent ev; /* ev.data ref'd, ev.error owned (error_copy), ev.request ref'd */
	char *error_copy;
	gsize bytes;
	QWaiter *waiter; /* signalled when the item goes; NULL: nobody waits */
} QItem;

struct CoordQueue {
	GMutex lock;
	GCond space;
	GQueue items; /* QItem*, oldest first */
	guint64 bytes, max_bytes;
	guint64 waits;
	int fd;
	gboolean signalled; /* fd holds a count the dispatcher has not read */
	gboolean stopping;
};

CoordQueue *
coord_queue_new(guint64 max_bytes)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return NULL; /* errno says why */
	CoordQueue *q = g_new0(CoordQueue, 1);
	g_mutex_init(&q->lock);
	g_cond_init(&q->space);
	g_queue_init(&q->items);
	q->max_bytes = max_bytes ? max_bytes : 1;
	q->fd = fd;
	return q;
}

static void
qitem_free(QItem *it)
{
	if (it->ev.data)
		g_bytes_unref(it->ev.data);
	coord_request_unref(it->ev.request);
	g_free(it->error_copy);
	if (it->waiter != NULL)
		qwaiter_signal(it->waiter);
	g_free(it);
}

void
coord_queue_free(CoordQueue *q)
{
	if (!q)
		return;
	g_queue_clear_full(&q->items, (GDestroyNotify)qitem_free);
	close(q->fd);
	g_mutex_clear(&q->lock);
	g_cond_clear(&q->space);
	g_free(q);
}

int
coord_queue_fd(CoordQueue *q)
{
	return q->fd;
}

static QItem *
qitem_new(const CoordEvent *ev)
{
	QItem *it = g_new0(QItem, 1);
	it->ev = *ev;
	if (ev->data)
		g_bytes_ref(ev->data);
	it->error_copy = g_strdup(ev->error);
	it->ev.error = it->error_copy;
	it->bytes = EVENT_OVERHEAD + (ev->data ? g_bytes_get_size(ev->data) : 0);
	return it;
}

static void
queue_append_locked(CoordQueue *q, QItem *it)
{
	g_queue_push_tail(&q->items, it);
	q->bytes += it->bytes;
	if (!q->signalled) {
		guint64 one = 1;
		if (write(q->fd, &one, sizeof one) == sizeof one)
			q->signalled = TRUE;
	}
}

gboolean
coord_queue_push(CoordQueue *q, const CoordEvent *ev, gboolean wait, const gboolean *closed)
{
	QItem *it = qitem_new(ev);
	g_mutex_lock(&q->lock);
	if (wait) {
		gboolean waited = FALSE;
		while (!q->stopping && !(closed && *closed) && q->bytes > 0 &&
		       it->bytes > q->max_bytes - MIN(q->bytes, q->max_bytes)) {
			waited = TRUE;
			g_cond_wait(&q->space, &q->lock);
		}
		q->waits += waited;
	}
	if (q->stopping || (closed && *closed)) {
		g_mutex_unlock(&q->lock);
		qitem_free(it);
		return FALSE;
	}
	queue_append_locked(q, it);
	g_mutex_unlock(&q->lock);
	return TRUE;
}

/* Push ev (never waiting for room: small) and return at once; w (NULL: none) is signalled
 * when the main loop has handled it, or when it is dropped. FALSE: dropped (stopping). */
static gboolean
coord_queue_push_waited(CoordQueue *q, const CoordEvent *ev, QWaiter *w)
{
	QItem *it = qitem_new(ev);

	it->waiter = w;
	g_mutex_lock(&q->lock);
	if (q->stopping) {
		g_mutex_unlock(&q->lock);
		qitem_free(it);
		return FALSE;
	}
	queue_append_locked(q, it);
	g_mutex_unlock(&q->lock);
	return TRUE;
}

void
coord_queue_close_push(CoordQueue *q, gboolean *closed, const CoordEvent *ev)
{
	QItem *it = ev != NULL ? qitem_new(ev) : NULL;
	g_mutex_lock(&q->lock);
	*closed = TRUE;
	g_cond_broadcast(&q->space);
	if (it == NULL || q->stopping) {
		g_mutex_unlock(&q->lock);
		if (it != NULL)
			qitem_free(it);
		return;
	}
	queue_append_locked(q, it);
	g_mutex_unlock(&q->lock);
}

CoordEvent *
coord_queue_pop(CoordQueue *q)
{
	g_mutex_lock(&q->lock);
	QItem *it = g_queue_pop_head(&q->items);
	if (it) {
		q->bytes -= it->bytes;
		g_cond_broadcast(&q->space);
	}
	g_mutex_unlock(&q->lock);
	return it ? &it->ev : NULL;
}

void
coord_queue_done(CoordQueue *q, CoordEvent *ev)
{
	(void)q;
	if (!ev)
		return;
	QItem *it = (QItem *)ev; /* ev is QItem's first member */
	it->ev.request = NULL;	 /* handed to the main loop, which gives it back in coord_reply() */
	if (it->waiter != NULL) {
		g_mutex_lock(&it->waiter->lock);
		it->waiter->handled = TRUE;
		g_mutex_unlock(&it->waiter->lock);
	}
	qitem_free(it);
}

void
coord_queue_stop(CoordQueue *q)
{
	GQueue left = G_QUEUE_INIT;

	g_mutex_lock(&q->lock);
	q->stopping = TRUE;
	g_cond_broadcast(&q->space);
	/* what waits is dropped now, so that nobody waits on it (an alert's acknowledgement) */
	left = q->items;
	g_queue_init(&q->items);
	q->bytes = 0;
	g_mutex_unlock(&q->lock);
	g_queue_clear_full(&left, (GDestroyNotify)qitem_free);
}

void
coord_queue_stats(CoordQueue *q, guint64 *bytes, guint64 *events, guint64 *waits)
{
	g_mutex_lock(&q->lock);
	*bytes = q->bytes;
	*events = q->items.length;
	*waits = q->waits;
	g_mutex_unlock(&q->lock);
}

/* Read the eventfd's count away: the dispatcher is about to hand out what waits. */
static void
queue_clear_signal(CoordQueue *q)
{
	g_mutex_lock(&q->lock);
	guint64 n;
	if (read(q->fd, &n, sizeof n) < 0 && errno != EAGAIN)
		g_warning("cluster: eventfd read: %s", g_strerror(errno));
	q->signalled = FALSE;
	g_mutex_unlock(&q->lock);
}

static void
queue_resignal(CoordQueue *q)
{
	g_mutex_lock(&q->lock);
	if (q->items.length > 0 && !q->signalled) {
		guint64 one = 1;
		if (write(q->fd, &one, sizeof one) == sizeof one)
			q->signalled = TRUE;
	}
	g_mutex_unlock(&q->lock);
}

/* ---- The coordinator ---- */

typedef enum {
	PART_FREE,
	PART_STARTING,	/* lease held; snapshot not loaded yet, nothing told to the main loop */
	PART_OWNED,	/* COORD_ACQUIRED sent, flows subscribed (sub NULL: to retry) */
	PART_RELEASING, /* COORD_RELEASE sent; the lease is kept until the snapshot is stored */
} PartState;

typedef struct {
	Coord *c;
	guint p;
	gboolean closed; /* under the queue's lock: no more COORD_FLOWS from this subscription */
} FlowSub;

typedef struct {
	/* the thread's own */
	PartState state;
	guint64 rev;	    /* the lease's revision now (changes with every renewal) */
	guint64 acq_rev;    /* its revision when taken: the fence the main loop sends */
	gint64 lease_ok_ms; /* our clock just before the last create/update that worked */
	gint64 released_ms; /* COORD_RELEASE sent */
	guint64 covers_seq; /* the snapshot loaded */
	BusSub *sub;
	FlowSub *fs;
	gint64 last_seq_ms;
	guint64 seen_rev;	/* the bucket as last listed: revision, */
	gint64 seen_ms;		/* when that revision was first seen, */
	gint64 free_since_ms;	/* and since when the partition has been free (grace) */
	char target[64];	/* the node it should go to, as last computed, */
	gint64 target_ms;	/* since when */
	char passed[64];	/* taken as the successor of this target (it did not take */
	gint64 passed_until_ms; /* it): not handed back to it before this */
	gboolean listed;	/* held by someone in the last listing */
	guint missing;		/* listings in a row without it */
	/* under lock: a snapshot from the main loop, and the status */
	GBytes *snap;
	guint64 snap_seq;
	gboolean snap_pending, snap_release;
	gboolean restart; /* coord_restart() */
	guint64 rewind_seq; /* coord_rewind(): read again from this stream sequence (0: no) */
	gboolean rewind_warned; /* the thread's own: a failed one said (once until one works) */
	char owner[64];
	guint64 owner_rev;
	guint64 last_seq;
	guint64 applied;
	gint64 applied_ms; /* when the stream stored the one applied (0: unknown) */
} Part;

typedef struct {
	char *name;
	guint64 rev;
	gint64 changed_ms; /* when rev was first seen: a node whose entry stops changing is dead */
	gboolean analyzer;
	gboolean listed;
	char *json; /* the entry, regenerated (NULL: not a JSON object) */
} Node;

typedef struct {
	char *json; /* NULL: delete */
} OffOp;

typedef struct {
	char *node;
	char *line;
	gpointer tag;
} ReqOut;

typedef struct {
	char *subject;
	char *msg_id;
	GBytes *data;
	gpointer tag;
} PubOut;

typedef struct {
	guint64 acquired, released, lost, lost_expired, release_timeouts;
	guint64 restarts; /* given up to be taken again (coord_restart()) */
	guint64 leases_adopted; /* a lease of our name at another revision: our own write */
	guint64 snapshots_stored, snapshots_failed, snapshots_dropped;
	guint64 offenders_put, offenders_deleted, offenders_failed, offenders_dropped;
	guint64 suppressions_put, suppressions_deleted, suppressions_expired;
	guint64 ctl_published, ctl_failed, ctl_forgets_received;
	guint64 requests_served, requests_busy, requests_sent, requests_failed;
	guint64 alerts_received, alerts_delivered, alerts_fenced, alerts_duplicates, alerts_bad;
	guint64 alerts_ack_unhandled; /* acknowledged before the main loop handled them */
	guint64 history_received, history_ack_unhandled, history_position_errors;
	guint64 flows_delivered;
	guint64 rereads, rereads_failed; /* coord_rewind(): subscriptions made, or not */
	guint64 bus_errors;
	/* the buckets read each round (nodes, leases, offenders): from their watches, or listed
	 * because a watch lacked writes the bucket had */
	guint64 watch_reads, watch_behind;
} Counters;

struct Coord {
	Bus *bus;
	CoordConfig cfg;
	char *node, *alert_group;
	CoordQueue *queue;
	GThread *thread;
	GSource *source;
	CoordEventFunc fn;
	gpointer fn_data;

	GMutex lock; /* everything below but the thread's own */
	GCond wake;
	gboolean work; /* something for the thread to do now */
	gboolean stopping;
	Part *parts;
	char *node_info;
	GHashTable *off_ops; /* key -> OffOp */
	GQueue off_order;    /* keys (owned by off_ops), oldest first */
	GQueue req_out;	     /* ReqOut* */
	GQueue pub_out;	     /* PubOut* */
	GHashTable *serving; /* CoordRequest* waiting on bus threads */
	GPtrArray *nodes;    /* Node*, sorted by name */
	CoordFence *fence;
	Counters n;
	BusStats bus_stats;
	gboolean setup_ok;
	char last_error[320];
	char *offenders;     /* JSON array */
	gint64 offenders_ms; /* when read (0: never) */
	char *suppressions;  /* JSON array */
	gint64 suppressions_ms;
	/* the thread's own: the bucket's last revision when it was last listed, and when */
	guint64 supp_rev;
	gint64 supp_listed_ms;

	/* the thread's own */
	guint rounds;
	gint64 probe_next_ms;
	char probe_said[256]; /* the last reason said for not connecting (connection_probe()) */
	BusKvMirror *watch_nodes, *watch_leases, *watch_offenders;
	guint64 node_rev;  /* our registration's revision, */
	guint64 lease_rev; /* and the newest of our lease writes: what a watch must have */
	gint64 reg_ok_ms;
	gint64 last_renew_ms;
	gint64 offenders_next_ms;
	gboolean setup_told;
	BusSub *alerts_sub;  /* under lock once made: coord_leave() takes it */
	BusSub *history_sub; /* ... likewise */
	gboolean leaving;    /* coord_leave(): consume no more (under lock) */
	/* the alert group's consumer as the server sees it (under lock), read at each round:
	 * an event left unacknowledged while the floor stands still is said */
	BusConsumerState alerts_state;
	gboolean alerts_state_ok;
	CoordAckTrack alerts_track;
	gint64 alerts_stuck_ms; /* coord_ack_track() at the last reading */
	gint64 alerts_stuck_warn_ms;
	BusSub *serve_sub;
	gboolean alerts_told, serve_told, history_told;
	char *history_position;	 /* the file; NULL: no history consumer */
	guint64 history_seq;	 /* the last history message handled (under lock) */
	guint64 history_saved;	 /* ... as the file says */
	gint64 history_saved_ms; /* when it was written */
};

static void
set_error(Coord *c, const char *what, const GError *err)
{
	g_mutex_lock(&c->lock);
	g_snprintf(c->last_error, sizeof c->last_error, "%s: %s", what,
		   err ? err->message : "failed");
	c->n.bus_errors++;
	g_mutex_unlock(&c->lock);
}

static void
emit(Coord *c, const CoordEvent *ev)
{
	coord_queue_push(c->queue, ev, FALSE, NULL);
}

static void
node_free(gpointer p)
{
	Node *n = p;
	g_free(n->name);
	g_free(n->json);
	g_free(n);
}

static void
off_op_free(gpointer p)
{
	OffOp *op = p;
	g_free(op->json);
	g_free(op);
}

static void
req_out_free(gpointer p)
{
	ReqOut *r = p;
	g_free(r->node);
	g_free(r->line);
	g_free(r);
}

static void
pub_out_free(gpointer p)
{
	PubOut *o = p;
	g_free(o->subject);
	g_free(o->msg_id);
	g_bytes_unref(o->data);
	g_free(o);
}

static gboolean
valid_key(const char *s)
{
	if (!s || !*s || strlen(s) > 63)
		return FALSE;
	for (const char *p = s; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("-/_=.", *p))
			return FALSE;
	return TRUE;
}

/* ---- Main-loop side ---- */

static gboolean
dispatch(gint fd, GIOCondition cond, gpointer data)
{
	(void)fd;
	(void)cond;
	Coord *c = data;
	queue_clear_signal(c->queue);
	for (guint i = 0; i < DISPATCH_BUDGET; i++) {
		CoordEvent *ev = coord_queue_pop(c->queue);
		if (!ev)
			return G_SOURCE_CONTINUE;
		if (c->fn) {
			c->fn(ev, c->fn_data);
		} else if (ev->kind == COORD_REQUEST) {
			static const char busy[] = "{\"ok\":false,\"error\":\"node busy\"}";
			coord_reply(ev->request, busy, sizeof busy - 1);
		}
		coord_queue_done(c->queue, ev);
	}
	queue_resignal(c->queue);
	return G_SOURCE_CONTINUE;
}

void
coord_attach(Coord *c, GMainContext *ctx, CoordEventFunc fn, gpointer user_data)
{
	g_return_if_fail(c->source == NULL);
	c->fn = fn;
	c->fn_data = user_data;
	c->source = g_unix_fd_source_new(coord_queue_fd(c->queue), G_IO_IN);
	g_source_set_callback(c->source, G_SOURCE_FUNC(dispatch), c, NULL);
	g_source_set_name(c->source, "cluster coordinator");
	g_source_attach(c->source, ctx);
}

static void
wake_locked(Coord *c)
{
	c->work = TRUE;
	g_cond_signal(&c->wake);
}

void
coord_snapshot(Coord *c, guint p, guint64 seq, GBytes *state, gboolean release)
{
	if (p >= c->cfg.partitions)
		return;
	g_mutex_lock(&c->lock);
	Part *pt = &c->parts[p];
	if (state != NULL) {
		if (pt->snap)
			g_bytes_unref(pt->snap); /* only the newest is worth storing */
		pt->snap = g_bytes_ref(state);
		pt->snap_seq = seq;
	}
	pt->snap_release = pt->snap_release || release;
	pt->snap_pending = TRUE;
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

void
coord_rewind(Coord *c, guint p, guint64 from_seq)
{
	if (p >= c->cfg.partitions || from_seq == 0)
		return;
	g_mutex_lock(&c->lock);
	Part *pt = &c->parts[p];
	pt->rewind_seq = pt->rewind_seq == 0 ? from_seq : MIN(pt->rewind_seq, from_seq);
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

void
coord_restart(Coord *c, guint p)
{
	if (p >= c->cfg.partitions)
		return;
	g_mutex_lock(&c->lock);
	c->parts[p].restart = TRUE;
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

/* The pending writes of both buckets share one ordered table: its keys are "o/<key>"
 * (offenders) and "s/<key>" (suppressions). */
static void
kv_op(Coord *c, char bucket, const char *key, const char *json)
{
	g_autofree char *hkey = g_strdup_printf("%c/%s", bucket, key);
	g_mutex_lock(&c->lock);
	OffOp *op = g_hash_table_lookup(c->off_ops, hkey);
	if (op) {
		/* not sent yet: only the newest value of the key matters, in its place */
		g_free(op->json);
		op->json = g_strdup(json);
	} else if (g_hash_table_size(c->off_ops) >= OFFENDERS_PENDING_MAX) {
		c->n.offenders_dropped++;
	} else {
		op = g_new0(OffOp, 1);
		op->json = g_strdup(json);
		char *k = g_steal_pointer(&hkey);
		g_hash_table_insert(c->off_ops, k, op);
		g_queue_push_tail(&c->off_order, k);
	}
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

void
coord_offender(Coord *c, const char *key, const char *json)
{
	kv_op(c, 'o', key, json);
}

void
coord_suppression(Coord *c, const char *key, const char *json)
{
	kv_op(c, 's', key, json);
}

void
coord_publish(Coord *c, const char *subject, const void *data, gsize len, const char *msg_id,
	      gpointer tag)
{
	g_mutex_lock(&c->lock);
	if (c->pub_out.length >= REQUESTS_PENDING_MAX || c->stopping) {
		c->n.ctl_failed++;
		g_mutex_unlock(&c->lock);
		emit(c, &(CoordEvent){.kind = COORD_PUBLISHED,
				      .tag = tag,
				      .error = "too many control records waiting for the bus"});
		return;
	}
	PubOut *o = g_new0(PubOut, 1);
	o->subject = g_strdup(subject);
	o->msg_id = g_strdup(msg_id);
	o->data = g_bytes_new(data, len);
	o->tag = tag;
	g_queue_push_tail(&c->pub_out, o);
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

void
coord_set_node_info(Coord *c, const char *json)
{
	g_mutex_lock(&c->lock);
	g_free(c->node_info);
	c->node_info = g_strdup(json);
	g_mutex_unlock(&c->lock);
}

void
coord_applied(Coord *c, guint p, guint64 seq, gint64 time_ms)
{
	if (p >= c->cfg.partitions)
		return;
	g_mutex_lock(&c->lock);
	c->parts[p].applied = seq;
	c->parts[p].applied_ms = time_ms;
	g_mutex_unlock(&c->lock);
}

/* Lock held: the stream sequences an owned partition has yet to apply. */
static guint64
part_lag(const Part *pt)
{
	return pt->last_seq > pt->applied ? pt->last_seq - pt->applied : 0;
}

/* Lock held: how long ago the stream stored the batch an owned partition is at, while it
 * has more to apply (the delay of its analysis, and of its alerts); 0 when caught up or not
 * known yet (a partition just taken, before its first batch). */
static gint64
part_lag_ms(const Part *pt, gint64 now_real_ms)
{
	if (part_lag(pt) == 0 || pt->applied_ms <= 0)
		return 0;
	return MAX(0, now_real_ms - pt->applied_ms);
}

/* Lock held: the owned partitions' lag, summed, and the furthest behind's in ms. */
static guint64
lag_locked(Coord *c, gint64 *lag_ms)
{
	guint64 lag = 0;
	gint64 ms = 0, now = g_get_real_time() / 1000;
	for (guint p = 0; p < c->cfg.partitions; p++) {
		const Part *pt = &c->parts[p];
		if (pt->state == PART_OWNED || pt->state == PART_RELEASING) {
			lag += part_lag(pt);
			ms = MAX(ms, part_lag_ms(pt, now));
		}
	}
	*lag_ms = ms;
	return lag;
}

guint64
coord_lag(Coord *c, gint64 *lag_ms)
{
	gint64 ms;
	g_mutex_lock(&c->lock);
	guint64 lag = lag_locked(c, &ms);
	g_mutex_unlock(&c->lock);
	if (lag_ms != NULL)
		*lag_ms = ms;
	return lag;
}

void
coord_request(Coord *c, const char *node, const char *line, gpointer tag)
{
	g_mutex_lock(&c->lock);
	if (c->req_out.length >= REQUESTS_PENDING_MAX || c->stopping) {
		c->n.requests_failed++;
		g_mutex_unlock(&c->lock);
		emit(c, &(CoordEvent){
			    .kind = COORD_REPLY, .tag = tag, .error = "too many requests waiting"});
		return;
	}
	ReqOut *r = g_new0(ReqOut, 1);
	r->node = g_strdup(node);
	r->line = g_strdup(line);
	r->tag = tag;
	g_queue_push_tail(&c->req_out, r);
	wake_locked(c);
	g_mutex_unlock(&c->lock);
}

gboolean
coord_owner(Coord *c, guint p, char node[64], guint64 *rev)
{
	node[0] = '\0';
	if (rev)
		*rev = 0;
	if (p >= c->cfg.partitions)
		return FALSE;
	g_mutex_lock(&c->lock);
	g_strlcpy(node, c->parts[p].owner, 64);
	if (rev)
		*rev = c->parts[p].owner_rev;
	g_mutex_unlock(&c->lock);
	return TRUE;
}

#define U64(name, v) g_string_append_printf(out, "\"%s\":%" G_GUINT64_FORMAT, name, (guint64)(v))

void
coord_status_json(Coord *c, GString *out)
{
	guint64 qbytes, qevents, qwaits;
	coord_queue_stats(c->queue, &qbytes, &qevents, &qwaits);
	g_mutex_lock(&c->lock);
	const BusStats *b = &c->bus_stats;
	g_string_append(out, "{\"node\":");
	json_quote(out, c->node);
	g_string_append(out, ",\"setup\":");
	g_string_append(out, c->setup_ok ? "true" : "false");
	g_string_append(out, ",\"bus\":{\"connected\":");
	g_string_append(out, b->connected ? "true" : "false");
	g_string_append_c(out, ',');
	U64("reconnects", b->reconnects);
	g_string_append_c(out, ',');
	U64("published", b->published);
	g_string_append_c(out, ',');
	U64("duplicates", b->duplicates);
	g_string_append_c(out, ',');
	U64("retried", b->retried);
	g_string_append_c(out, ',');
	U64("failed", b->failed);
	g_string_append_c(out, ',');
	U64("dropped", b->dropped);
	g_string_append_c(out, ',');
	U64("buffered", b->buffered);
	g_string_append_c(out, ',');
	U64("buffered_max", b->buffered_max);
	g_string_append_c(out, ',');
	U64("received", b->received);
	g_string_append_c(out, ',');
	U64("bytes_out", b->bytes_out);
	g_string_append_c(out, ',');
	U64("bytes_in", b->bytes_in);
	g_string_append(out, ",\"last_error\":");
	json_quote(out, b->last_error);
	g_string_append(out, "},\"nodes\":[");
	gint64 now = now_ms();
	for (guint i = 0; i < c->nodes->len; i++) {
		const Node *n = c->nodes->pdata[i];
		g_string_append(out, i ? ",{\"node\":" : "{\"node\":");
		json_quote(out, n->name);
		g_string_append_printf(
		    out, ",\"live\":%s,\"analyzer\":%s,\"rev\":%" G_GUINT64_FORMAT ",\"info\":%s}",
		    now - n->changed_ms < c->cfg.lease_ttl_ms ? "true" : "false",
		    n->analyzer ? "true" : "false", n->rev, n->json ? n->json : "null");
	}
	g_string_append(out, "],\"partitions\":[");
	for (guint p = 0; p < c->cfg.partitions; p++) {
		const Part *pt = &c->parts[p];
		g_string_append_printf(out, "%s{\"p\":%u,\"owner\":", p ? "," : "", p);
		json_quote(out, pt->owner);
		g_string_append_printf(out, ",\"rev\":%" G_GUINT64_FORMAT, pt->owner_rev);
		if (strcmp(pt->owner, c->node) == 0) {
			g_string_append_printf(
			    out,
			    ",\"last_seq\":%" G_GUINT64_FORMAT ",\"applied_seq\":%" G_GUINT64_FORMAT
			    ",\"lag\":%" G_GUINT64_FORMAT ",\"lag_ms\":%" G_GINT64_FORMAT,
			    pt->last_seq, pt->applied, part_lag(pt),
			    part_lag_ms(pt, g_get_real_time() / 1000));
		}
		g_string_append_c(out, '}');
	}
	const Counters *n = &c->n;
	g_string_append(out, "],\"alerts\":{\"group\":");
	json_quote(out, c->alert_group);
	g_string_append_c(out, ',');
	U64("received", n->alerts_received);
	g_string_append_c(out, ',');
	U64("delivered", n->alerts_delivered);
	g_string_append_c(out, ',');
	U64("old_lease_late", n->alerts_fenced);
	g_string_append_c(out, ',');
	U64("duplicates", n->alerts_duplicates);
	g_string_append_c(out, ',');
	U64("bad", n->alerts_bad);
	g_string_append_c(out, ',');
	U64("ack_unhandled", n->alerts_ack_unhandled);
	if (c->alerts_state_ok) {
		/* the group's consumer as the server sees it (stream sequences), last round */
		const BusConsumerState *cs = &c->alerts_state;
		g_string_append_c(out, ',');
		U64("server_delivered", cs->delivered);
		g_string_append_c(out, ',');
		U64("server_ack_floor", cs->ack_floor);
		g_string_append_c(out, ',');
		U64("server_ack_pending", cs->ack_pending);
		g_string_append_c(out, ',');
		U64("server_redelivered", cs->redelivered);
		g_string_append_c(out, ',');
		U64("server_not_sent", cs->pending);
		g_string_append_c(out, ',');
		U64("unacked_for_s", (guint64)(c->alerts_stuck_ms / 1000));
	}
	g_string_append(out, "},\"history\":{\"consumer\":");
	g_string_append(out, c->history_position != NULL ? "true" : "false");
	g_string_append_c(out, ',');
	U64("received", n->history_received);
	g_string_append_c(out, ',');
	U64("unhandled", n->history_ack_unhandled);
	g_string_append_c(out, ',');
	U64("position_errors", n->history_position_errors);
	g_string_append_printf(out, ",\"position\":%" G_GUINT64_FORMAT, c->history_seq);
	g_string_append(out, "},\"coord\":{");
	U64("acquired", n->acquired);
	g_string_append_c(out, ',');
	U64("released", n->released);
	g_string_append_c(out, ',');
	U64("lost", n->lost);
	g_string_append_c(out, ',');
	U64("lost_expired", n->lost_expired);
	g_string_append_c(out, ',');
	U64("leases_adopted", n->leases_adopted);
	g_string_append_c(out, ',');
	U64("release_timeouts", n->release_timeouts);
	g_string_append_c(out, ',');
	U64("restarts", n->restarts);
	g_string_append_c(out, ',');
	U64("snapshots_stored", n->snapshots_stored);
	g_string_append_c(out, ',');
	U64("snapshots_failed", n->snapshots_failed);
	g_string_append_c(out, ',');
	U64("snapshots_dropped", n->snapshots_dropped);
	g_string_append_c(out, ',');
	U64("offenders_put", n->offenders_put);
	g_string_append_c(out, ',');
	U64("offenders_deleted", n->offenders_deleted);
	g_string_append_c(out, ',');
	U64("offenders_failed", n->offenders_failed);
	g_string_append_c(out, ',');
	U64("offenders_dropped", n->offenders_dropped);
	g_string_append_c(out, ',');
	U64("suppressions_put", n->suppressions_put);
	g_string_append_c(out, ',');
	U64("suppressions_deleted", n->suppressions_deleted);
	g_string_append_c(out, ',');
	U64("suppressions_expired", n->suppressions_expired);
	g_string_append_c(out, ',');
	U64("ctl_published", n->ctl_published);
	g_string_append_c(out, ',');
	U64("ctl_failed", n->ctl_failed);
	g_string_append_c(out, ',');
	U64("ctl_forgets_received", n->ctl_forgets_received);
	g_string_append_c(out, ',');
	U64("requests_served", n->requests_served);
	g_string_append_c(out, ',');
	U64("requests_busy", n->requests_busy);
	g_string_append_c(out, ',');
	U64("requests_sent", n->requests_sent);
	g_string_append_c(out, ',');
	U64("requests_failed", n->requests_failed);
	g_string_append_c(out, ',');
	U64("flows_delivered", n->flows_delivered);
	g_string_append_c(out, ',');
	U64("rereads", n->rereads);
	g_string_append_c(out, ',');
	U64("rereads_failed", n->rereads_failed);
	g_string_append_c(out, ',');
	U64("bus_errors", n->bus_errors);
	g_string_append_c(out, ',');
	U64("watch_reads", n->watch_reads);
	g_string_append_c(out, ',');
	U64("watch_behind", n->watch_behind);
	g_string_append_c(out, ',');
	U64("queue_bytes", qbytes);
	g_string_append_c(out, ',');
	U64("queue_events", qevents);
	g_string_append_c(out, ',');
	U64("queue_waits", qwaits);
	g_string_append(out, ",\"last_error\":");
	json_quote(out, c->last_error);
	g_string_append(out, "}}");
	g_mutex_unlock(&c->lock);
}

void
coord_offenders_json(Coord *c, GString *out, gint64 *age_ms)
{
	g_mutex_lock(&c->lock);
	g_string_append(out, c->offenders ? c->offenders : "[]");
	if (age_ms)
		*age_ms = c->offenders_ms ? now_ms() - c->offenders_ms : -1;
	g_mutex_unlock(&c->lock);
}

void
coord_suppressions_json(Coord *c, GString *out, gint64 *age_ms)
{
	g_mutex_lock(&c->lock);
	g_string_append(out, c->suppressions ? c->suppressions : "[]");
	if (age_ms)
		*age_ms = c->suppressions_ms ? now_ms() - c->suppressions_ms : -1;
	g_mutex_unlock(&c->lock);
}

/* ---- Bus threads' callbacks ---- */

static void
flows_cb(const char *subject, guint64 seq, const guint8 *data, gsize len, gpointer user_data)
{
	(void)subject;
	FlowSub *fs = user_data;
	Coord *c = fs->c;
	g_autoptr(GBytes) b = bytes_with_nul(data, len);
	CoordEvent ev = {.kind = COORD_FLOWS,
			 .partition = fs->p,
			 .seq = seq,
			 .time_ms = bus_msg_time_ms(),
			 .data = b};
	/* waits while the main loop is behind: the bus holds the rest (flow control) */
	if (coord_queue_push(c->queue, &ev, TRUE, &fs->closed)) {
		g_mutex_lock(&c->lock);
		c->n.flows_delivered++;
		g_mutex_unlock(&c->lock);
	}
}

/* An event not handled here goes back to the bus, and its id is not remembered: seen again
 * (this node fetches it again before it stops), it is not a duplicate to drop and
 * acknowledge, which lost it (cluster-e2e under ASan, a node restarted while events came). */
static void
alert_hand_back(Coord *c, const char *id)
{
	g_debug("cluster: alert %s handed back (this node stops)", id);
	g_mutex_lock(&c->lock);
	coord_fence_forget(c->fence, id);
	g_mutex_unlock(&c->lock);
	bus_msg_leave();
}

static void
alerts_cb(const char *subject, guint64 seq, const guint8 *data, gsize len, gpointer user_data)
{
	(void)subject;
	Coord *c = user_data;
	ClusterAlert a;
	ClusterCtl ctl;
	memset(&a, 0, sizeof a);
	g_autoptr(GError) err = NULL;
	/* a forget, sent on by the partition's owner: deduplicated by its id like an event
	 * (lease revision 0 and time 0: never told apart as an old lease's) */
	gboolean is_ctl = cluster_wire_is_ctl(data, len);
	gboolean ok = is_ctl ? cluster_wire_ctl_decode(data, len, &ctl, &err) &&
				   ctl.op == CLUSTER_CTL_FORGET
			     : cluster_wire_alert_decode(data, len, &a, &err);
	char id[CLUSTER_WIRE_ID_MAX] = "";
	if (ok && is_ctl) {
		cluster_wire_ctl_id(&ctl, id, sizeof id);
		a.partition = ctl.partition;
	} else if (ok) {
		cluster_wire_alert_id(a.partition, &a.ev, id, sizeof id);
	}
	g_mutex_lock(&c->lock);
	c->n.alerts_received++;
	CoordFenceResult r =
	    ok ? coord_fence_check(c->fence, a.partition, a.lease_rev, a.lease_from_ms,
				      a.ev.time_ms, id) : COORD_FENCE_BAD;
	if (is_ctl && r == COORD_FENCE_PASS)
		c->n.ctl_forgets_received++;
	switch (r) {
	case COORD_FENCE_PASS:
		c->n.alerts_delivered++;
		break;
	case COORD_FENCE_STALE: /* delivered all the same: see coord_private.h */
		c->n.alerts_delivered++;
		c->n.alerts_fenced++;
		break;
	case COORD_FENCE_DUPLICATE:
		c->n.alerts_duplicates++;
		break;
	case COORD_FENCE_BAD:
		c->n.alerts_bad++;
		break;
	}
	g_mutex_unlock(&c->lock);
	g_debug("cluster: alert stream sequence %" G_GUINT64_FORMAT ": %s %s", seq, id,
		r == COORD_FENCE_PASS	   ? "to the sinks"
		: r == COORD_FENCE_STALE   ? "to the sinks (an old lease's)"
		: r == COORD_FENCE_DUPLICATE ? "a duplicate, dropped"
					     : "bad, dropped");
	if (r != COORD_FENCE_PASS && r != COORD_FENCE_STALE)
		return;
	g_autoptr(GBytes) b = bytes_with_nul(data, len);
	/* Acknowledged when this returns: wait until the sinks have the event, so that a node
	 * that dies before leaves it to the group's others (redelivered). Bounded: a main loop
	 * that does not get to it within ALERT_HANDLE_WAIT_S lets it be acknowledged
	 * (counted). */
	QWaiter *w = qwaiter_new();
	if (!coord_queue_push_waited(c->queue,
				     &(CoordEvent){.kind = COORD_ALERT,
						   .partition = a.partition,
						   .lease_rev = a.lease_rev,
						   .seq = seq,
						   .data = b},
				     w)) {
		qwaiter_unref(w);
		alert_hand_back(c, id); /* stopping: the group's other nodes get it */
		return;
	}
	switch (qwaiter_wait(w, ALERT_HANDLE_WAIT_S * G_USEC_PER_SEC)) {
	case QWAIT_HANDLED:
		break;
	case QWAIT_DROPPED: /* the node stops: not handled here, handed back */
		alert_hand_back(c, id);
		break;
	case QWAIT_TIMEOUT:
		g_debug("cluster: alert %s acknowledged unhandled (the main loop took over %d s)",
			id, ALERT_HANDLE_WAIT_S);
		g_mutex_lock(&c->lock);
		c->n.alerts_ack_unhandled++;
		g_mutex_unlock(&c->lock);
		break;
	}
}

/* A history message (an ordered consumer from the position file's sequence): to the main
 * loop; once handled (its readings queued for the store) its sequence is the position the
 * file will say. Not handled (the node stops): read again at the next start. */
static void
history_cb(const char *subject, guint64 seq, const guint8 *data, gsize len, gpointer user_data)
{
	(void)subject;
	Coord *c = user_data;
	g_autoptr(GBytes) b = bytes_with_nul(data, len);
	QWaiter *w = qwaiter_new();
	g_mutex_lock(&c->lock);
	c->n.history_received++;
	g_mutex_unlock(&c->lock);
	if (!coord_queue_push_waited(c->queue,
				     &(CoordEvent){.kind = COORD_HISTORY, .seq = seq, .data = b},
				     w)) {
		qwaiter_unref(w);
		return;
	}
	switch (qwaiter_wait(w, ALERT_HANDLE_WAIT_S * G_USEC_PER_SEC)) {
	case QWAIT_HANDLED:
		g_mutex_lock(&c->lock);
		c->history_seq = MAX(c->history_seq, seq);
		g_mutex_unlock(&c->lock);
		break;
	case QWAIT_DROPPED:
		break;
	case QWAIT_TIMEOUT: /* the main loop is far behind: it gets there, or the next start */
		g_mutex_lock(&c->lock);
		c->n.history_ack_unhandled++;
		g_mutex_unlock(&c->lock);
		break;
	}
}

/* The position file: "SPAMFLOW_HISTORY <sequence>\n", the last history message this node's
 * store has. 0: none (absent, or not readable: said once). */
static guint64
history_position_read(Coord *c)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;
	guint64 seq = 0;
	if (!g_file_get_contents(c->history_position, &text, NULL, &err)) {
		if (!g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_warning("cluster: %s: %s (the history is read from the stream's start)",
				  c->history_position, err->message);
		return 0;
	}
	const char *p = g_str_has_prefix(text, BUS_STREAM_HISTORY " ")
			    ? text + strlen(BUS_STREAM_HISTORY " ") : NULL;
	char *end = NULL;
	if (p != NULL)
		seq = g_ascii_strtoull(p, &end, 10);
	if (p == NULL || end == p || (*end != '\n' && *end != '\0')) {
		g_warning("cluster: %s: not a history position (the history is read from the "
			  "stream's start)", c->history_position);
		return 0;
	}
	return seq;
}

/* Written from this thread (never the main loop's): after a second or more, at the round
 * or the work that follows, and at the end. */
static void
history_position_save(Coord *c, gboolean now)
{
	g_mutex_lock(&c->lock);
	guint64 seq = c->history_seq;
	g_mutex_unlock(&c->lock);
	if (c->history_position == NULL || seq == c->history_saved ||
	    (!now && now_ms() - c->history_saved_ms < 1000))
		return;
	char text[64];
	g_snprintf(text, sizeof text, "%s %" G_GUINT64_FORMAT "\n", BUS_STREAM_HISTORY, seq);
	g_autoptr(GError) err = NULL;
	c->history_saved_ms = now_ms();
	if (!g_file_set_contents(c->history_position, text, -1, &err)) {
		g_mutex_lock(&c->lock);
		if (c->n.history_position_errors++ == 0)
			g_warning("cluster: %s: %s (a restart reads the history again from the "
				  "last position written)", c->history_position, err->message);
		g_mutex_unlock(&c->lock);
		return;
	}
	c->history_saved = seq;
}

static GBytes *
busy_reply(void)
{
	static const char busy[] = "{\"ok\":false,\"error\":\"node busy\"}";
	return bytes_with_nul(busy, sizeof busy - 1);
}

static GBytes *
serve_cb(const guint8 *data, gsize len, gpointer user_data)
{
	Coord *c = user_data;
	CoordRequest *r = coord_request_new();
	g_mutex_lock(&c->lock);
	if (c->stopping) {
		c->n.requests_busy++;
		g_mutex_unlock(&c->lock);
		coord_request_unref(r);
		return busy_reply();
	}
	g_hash_table_add(c->serving, r);
	g_mutex_unlock(&c->lock);

	g_atomic_int_inc(&r->ref); /* the main loop's, given back by coord_reply() */
	g_autoptr(GBytes) line = bytes_with_nul(data, len);
	emit(c, &(CoordEvent){.kind = COORD_REQUEST, .request = r, .data = line});

	gint64 deadline = g_get_monotonic_time() + c->cfg.request_timeout_ms * 1000;
	g_mutex_lock(&r->lock);
	while (!r->answered && !r->abandoned)
		if (!g_cond_wait_until(&r->cond, &r->lock, deadline))
			break;
	GBytes *reply = r->answered ? g_bytes_ref(r->reply) : NULL;
	r->abandoned = TRUE; /* a late coord_reply() is dropped */
	g_mutex_unlock(&r->lock);

	g_mutex_lock(&c->lock);
	g_hash_table_remove(c->serving, r);
	if (reply)
		c->n.requests_served++;
	else
		c->n.requests_busy++;
	g_mutex_unlock(&c->lock);
	coord_request_unref(r);
	return reply ? reply : busy_reply();
}

/* ---- The thread: leases ---- */

static void
lease_key(guint p, char key[16])
{
	g_snprintf(key, 16, "p%u", p);
}

/* Stop the partition's flows (none queued after ev), then send ev (RELEASE or LOST). */
static void
part_close(Coord *c, guint p, CoordEventKind kind)
{
	Part *pt = &c->parts[p];
	CoordEvent ev = {.kind = kind, .partition = p, .lease_rev = pt->acq_rev};
	if (pt->fs) {
		coord_queue_close_push(c->queue, &pt->fs->closed, &ev);
		bus_unsubscribe(pt->sub);
		g_free(pt->fs);
		pt->sub = NULL;
		pt->fs = NULL;
	} else {
		emit(c, &ev);
	}
}

static void
part_lose(Coord *c, guint p, gboolean expired)
{
	Part *pt = &c->parts[p];
	if (pt->state == PART_OWNED || pt->state == PART_RELEASING) {
		part_close(c, p, COORD_LOST);
		g_message("cluster: %s partition %u lost (%s)", c->node, p,
			  expired ? "lease expired while the bus did not answer" : "lease taken");
	}
	pt->state = PART_FREE;
	g_mutex_lock(&c->lock);
	if (pt->snap) {
		g_bytes_unref(pt->snap);
		pt->snap = NULL;
	}
	pt->snap_pending = pt->snap_release = FALSE;
	c->n.lost++;
	c->n.lost_expired += expired;
	g_mutex_unlock(&c->lock);
}

typedef enum { RENEW_OK, RENEW_LOST, RENEW_IO } RenewResult;

/* A lease write whose answer was lost (the bus went away with it in flight) may have been
 * applied: the key then holds our name at a revision we never heard of, and the next write
 * at the old one is refused. Our name in it means our own write (node names are unique):
 * take its revision back (TRUE, *rev). Anything else (another name, no key): FALSE. The
 * read failing is not an answer (FALSE, *error set): a read that timed out while a server
 * died lost leases nobody had taken (cluster-e2e). */
static gboolean
lease_is_ours(Coord *c, const char *key, guint64 *rev, GError **error)
{
	g_autoptr(GBytes) v = NULL;
	gsize len = 0;

	if (!bus_kv_get(c->bus, BUS_KV_LEASES, key, &v, rev, error) || v == NULL)
		return FALSE;
	const char *d = g_bytes_get_data(v, &len);
	if (len != strlen(c->node) || memcmp(d, c->node, len) != 0)
		return FALSE;
	g_mutex_lock(&c->lock);
	c->n.leases_adopted++;
	g_mutex_unlock(&c->lock);
	return TRUE;
}

/* Renew p's lease on the revision we hold (the fence). */
static RenewResult
part_renew(Coord *c, guint p)
{
	Part *pt = &c->parts[p];
	char key[16];
	lease_key(p, key);
	gint64 before = now_ms();
	g_autoptr(GError) err = NULL;
	guint64 rev = 0;
	if (bus_kv_update(c->bus, BUS_KV_LEASES, key, c->node, strlen(c->node), pt->rev, &rev,
			  &err)) {
		pt->rev = rev;
		c->lease_rev = MAX(c->lease_rev, rev);
		pt->lease_ok_ms = before;
		return RENEW_OK;
	}
	if (g_error_matches(err, BUS_ERROR, BUS_ERROR_CONFLICT)) {
		guint64 ours = 0;
		g_clear_error(&err);
		if (lease_is_ours(c, key, &ours, &err) &&
		    bus_kv_update(c->bus, BUS_KV_LEASES, key, c->node, strlen(c->node), ours, &rev,
				  &err)) {
			pt->rev = rev;
			c->lease_rev = MAX(c->lease_rev, rev);
			pt->lease_ok_ms = before;
			return RENEW_OK;
		}
		if (err == NULL || g_error_matches(err, BUS_ERROR, BUS_ERROR_CONFLICT) ||
		    g_error_matches(err, BUS_ERROR, BUS_ERROR_NOT_FOUND)) {
			part_lose(c, p, FALSE);
			return RENEW_LOST;
		}
	} else if (g_error_matches(err, BUS_ERROR, BUS_ERROR_NOT_FOUND)) {
		part_lose(c, p, FALSE);
		return RENEW_LOST;
	}
	set_error(c, "lease renewal", err);
	/* Never believe we own it longer than the bucket's TTL would keep it: our clock
	 * started before the last renewal the bucket took, so it expires here first. */
	if (now_ms() >= pt->lease_ok_ms + c->cfg.lease_ttl_ms) {
		part_lose(c, p, TRUE);
		return RENEW_LOST;
	}
	return RENEW_IO;
}

/* coord_free() asked the thread to stop: a round in progress ends early (while libnats
 * reconnects, each of its requests waits out its timeout: a round of 8 partitions took
 * about 25 s, and the stop waited for it) */
static gboolean
coord_stopping(Coord *c)
{
	g_mutex_lock(&c->lock);
	gboolean stop = c->stopping;
	g_mutex_unlock(&c->lock);
	return stop;
}

static void
renew_all(Coord *c)
{
	for (guint p = 0; p < c->cfg.partitions; p++) {
		if (coord_stopping(c))
			break; /* shutdown_run() renews what it stores */
		if (c->parts[p].state != PART_FREE)
			part_renew(c, p);
	}
	c->last_renew_ms = now_ms();
}

/* Renew now if a round's worth of time has passed since the last (between slow calls). */
static void
renew_if_due(Coord *c)
{
	if (now_ms() - c->last_renew_ms >= c->cfg.rebalance_ms)
		renew_all(c);
}

/* Give the lease back (last_rev: only ours). */
static void
part_give_up(Coord *c, guint p)
{
	Part *pt = &c->parts[p];
	char key[16];
	lease_key(p, key);
	g_autoptr(GError) err = NULL;
	if (!bus_kv_delete(c->bus, BUS_KV_LEASES, key, pt->rev, &err) &&
	    !g_error_matches(err, BUS_ERROR, BUS_ERROR_NOT_FOUND) &&
	    !g_error_matches(err, BUS_ERROR, BUS_ERROR_CONFLICT))
		set_error(c, "lease delete", err); /* not renewed any more: it expires */
	pt->state = PART_FREE;
}

/* coord_leave() has been called: nothing more is taken or consumed */
static gboolean
leaving(Coord *c)
{
	g_mutex_lock(&c->lock);
	gboolean l = c->leaving;
	g_mutex_unlock(&c->lock);
	return l;
}

/* A consumer made by this thread, kept in *slot unless coord_leave() came meanwhile (then
 * unsubscribed at once: FALSE). */
static gboolean
sub_keep(Coord *c, BusSub **slot, BusSub *sub)
{
	g_mutex_lock(&c->lock);
	gboolean l = c->leaving;
	if (!l)
		*slot = sub;
	g_mutex_unlock(&c->lock);
	if (l)
		bus_unsubscribe(sub);
	return !l;
}

/* The partition's flows from the sequence after its snapshot, or from the one a
 * coord_rewind() asked (from_seq > 0). */
static gboolean
part_subscribe_from(Coord *c, guint p, guint64 from_seq)
{
	Part *pt = &c->parts[p];
	char subject[64];
	g_snprintf(subject, sizeof subject, "%s.%u", BUS_SUBJECT_FLOWS, p);
	FlowSub *fs = g_new0(FlowSub, 1);
	fs->c = c;
	fs->p = p;
	g_autoptr(GError) err = NULL;
	BusSub *sub = bus_subscribe_from(c->bus, BUS_STREAM_FLOWS, subject,
					 from_seq > 0 ? from_seq : pt->covers_seq + 1, flows_cb, fs,
					 &err);
	if (!sub) {
		set_error(c, "flows subscription", err);
		g_free(fs);
		return FALSE;
	}
	pt->sub = sub;
	pt->fs = fs;
	return TRUE;
}

static void
part_subscribe(Coord *c, guint p)
{
	(void)part_subscribe_from(c, p, 0);
}

/* coord_rewind()s asked: an owned partition's flows subscription made again from the
 * sequence asked (by sequence, as every partition consumer: libnats 3.4 did not make a
 * consumer started by time again after a server's restart, and its partition stalled).
 * Its events still queued go first; a message its callback holds now is dropped, and comes
 * again from the new one (the main loop takes every message at or below what it applied
 * for a repeat, but the batches it misses). One not made: asked again next time (the
 * round's part_subscribe() meanwhile reads on from the snapshot's sequence). Only once the
 * bus has been calm for BUS_CALM_US: unsubscribing an ordered consumer that libnats is
 * making again can meet its use after free (bus_settled()); the holes are asked 5 s after
 * they are seen, and wait 30 s before they count missing, both in time the bus was calm
 * (daemon/cluster_node.c). */
static void
rewinds_run(Coord *c)
{
	if (!bus_settled(c->bus, BUS_CALM_US))
		return;
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		g_mutex_lock(&c->lock);
		guint64 from = pt->rewind_seq;
		pt->rewind_seq = 0;
		g_mutex_unlock(&c->lock);
		if (from == 0 || pt->state != PART_OWNED || leaving(c))
			continue;
		if (pt->fs) {
			coord_queue_close_push(c->queue, &pt->fs->closed, NULL);
			bus_unsubscribe(pt->sub);
			g_free(pt->fs);
			pt->sub = NULL;
			pt->fs = NULL;
		}
		gboolean ok = part_subscribe_from(c, p, from);
		char why[sizeof c->last_error];
		g_mutex_lock(&c->lock);
		if (ok) {
			c->n.rereads++;
		} else {
			c->n.rereads_failed++;
			pt->rewind_seq = pt->rewind_seq == 0 ? from : MIN(pt->rewind_seq, from);
		}
		g_strlcpy(why, c->last_error, sizeof why);
		g_mutex_unlock(&c->lock);
		if (ok) {
			g_debug("cluster: partition %u: flows read again from sequence "
				"%" G_GUINT64_FORMAT,
				p, from);
			if (pt->rewind_warned)
				g_message("cluster: partition %u: flows read again", p);
			pt->rewind_warned = FALSE;
		} else if (!pt->rewind_warned) {
			pt->rewind_warned = TRUE;
			g_warning("cluster: partition %u: flows not read again (%s): tried again "
				  "until it works (said again when it does)",
				  p, why);
		}
	}
}

/* Load the snapshot, tell the main loop, consume the flows after it. */
static void
part_start(Coord *c, guint p)
{
	Part *pt = &c->parts[p];
	g_autoptr(GError) err = NULL;
	g_autoptr(GBytes) data = NULL;
	guint64 covers = 0;
	if (leaving(c)) { /* nobody would analyze it here: given back at once */
		part_give_up(c, p);
		return;
	}
	if (!bus_snapshot_get(c->bus, p, &covers, &data, &err)) {
		set_error(c, "snapshot read", err);
		return; /* again next round, the lease renewed meanwhile */
	}
	pt->covers_seq = covers;
	pt->state = PART_OWNED;
	emit(c, &(CoordEvent){.kind = COORD_ACQUIRED,
			      .partition = p,
			      .lease_rev = pt->acq_rev,
			      .seq = covers,
			      .data = data});
	g_mutex_lock(&c->lock);
	c->n.acquired++;
	g_mutex_unlock(&c->lock);
	part_subscribe(c, p);
}

static void
part_acquire(Coord *c, guint p)
{
	Part *pt = &c->parts[p];
	char key[16];
	lease_key(p, key);
	gint64 before = now_ms();
	g_autoptr(GError) err = NULL;
	guint64 rev = 0;
	if (leaving(c))
		return; /* the main loop would never learn of it: the lease would wait for its TTL */
	if (!bus_kv_create(c->bus, BUS_KV_LEASES, key, c->node, strlen(c->node), &rev, &err)) {
		guint64 ours = 0;
		if (!g_error_matches(err, BUS_ERROR, BUS_ERROR_EXISTS)) {
			set_error(c, "lease create", err);
			return;
		}
		/* ours already (a write of ours whose answer was lost, or our last run's): take
		 * it at a revision of our own, which fences whatever wrote before */
		g_clear_error(&err);
		if (!lease_is_ours(c, key, &ours, NULL) ||
		    !bus_kv_update(c->bus, BUS_KV_LEASES, key, c->node, strlen(c->node), ours, &rev,
				   &err))
			return;
	}
	pt->state = PART_STARTING;
	pt->rev = pt->acq_rev = rev;
	c->lease_rev = MAX(c->lease_rev, rev);
	/* shown by `cluster` and used to route requests now, not after the next listing */
	g_mutex_lock(&c->lock);
	g_strlcpy(pt->owner, c->node, sizeof pt->owner);
	pt->owner_rev = rev;
	g_mutex_unlock(&c->lock);
	pt->lease_ok_ms = before;
	pt->last_seq_ms = 0;
	part_start(c, p);
}

/* ---- The thread: nodes ---- */

static gint
node_cmp(gconstpointer a, gconstpointer b)
{
	const Node *x = *(Node *const *)a, *y = *(Node *const *)b;
	return strcmp(x->name, y->name);
}

static gboolean
roles_has_analyzer(JsonObject *o)
{
	if (!json_object_has_member(o, "roles"))
		return FALSE;
	JsonNode *r = json_object_get_member(o, "roles");
	if (!JSON_NODE_HOLDS_ARRAY(r))
		return FALSE;
	JsonArray *a = json_node_get_array(r);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);
		if (JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING &&
		    g_strcmp0(json_node_get_string(e), "analyzer") == 0)
			return TRUE;
	}
	return FALSE;
}

/* A bucket entry's value as a JSON object (any bus client can write one): NULL when it is
 * not one, or nests deeper than COORD_JSON_MAX_DEPTH; *parser owns the object. */
static JsonNode *
entry_object(const BusKvEntry *e, JsonParser **parser)
{
	gsize len = 0;
	const char *text = e->value ? g_bytes_get_data(e->value, &len) : NULL;
	*parser = NULL;
	if (!text || json_nesting(text, len, COORD_JSON_MAX_DEPTH) > COORD_JSON_MAX_DEPTH)
		return NULL;
	*parser = json_parser_new();
	if (!json_parser_load_from_data(*parser, text, (gssize)len, NULL))
		return NULL;
	JsonNode *root = json_parser_get_root(*parser);
	return root && JSON_NODE_HOLDS_OBJECT(root) ? root : NULL;
}

static void
nodes_update(Coord *c, GArray *entries, gint64 now)
{
	g_mutex_lock(&c->lock);
	for (guint i = 0; i < c->nodes->len; i++)
		((Node *)c->nodes->pdata[i])->listed = FALSE;
	for (guint i = 0; i < entries->len; i++) {
		const BusKvEntry *e = &g_array_index(entries, BusKvEntry, i);
		Node *n = NULL;
		for (guint j = 0; j < c->nodes->len && !n; j++)
			if (strcmp(((Node *)c->nodes->pdata[j])->name, e->key) == 0)
				n = c->nodes->pdata[j];
		if (!n) {
			n = g_new0(Node, 1);
			n->name = g_strdup(e->key);
			g_ptr_array_add(c->nodes, n);
		}
		n->listed = TRUE;
		if (n->rev == e->rev)
			continue;
		n->rev = e->rev;
		n->changed_ms = now;
		g_clear_pointer(&n->json, g_free);
		n->analyzer = FALSE;
		g_autoptr(JsonParser) parser = NULL;
		JsonNode *root = entry_object(e, &parser);
		if (root) {
			n->analyzer = roles_has_analyzer(json_node_get_object(root));
			n->json = json_to_string(root, FALSE);
		}
	}
	for (guint i = c->nodes->len; i-- > 0;)
		if (!((Node *)c->nodes->pdata[i])->listed)
			g_ptr_array_remove_index(c->nodes, i);
	g_ptr_array_sort(c->nodes, node_cmp);
	g_mutex_unlock(&c->lock);
}

/* This node's entry: coord_set_node_info()'s object with what the cluster reads added. */
static char *
node_value(Coord *c)
{
	g_autofree char *info = NULL;
	g_mutex_lock(&c->lock);
	info = g_strdup(c->node_info);
	g_mutex_unlock(&c->lock);
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonObject *o = NULL;
	if (info && json_parser_load_from_data(parser, info, -1, NULL)) {
		JsonNode *root = json_parser_get_root(parser);
		if (root && JSON_NODE_HOLDS_OBJECT(root))
			o = json_object_ref(json_node_get_object(root));
	}
	if (!o)
		o = json_object_new();
	json_object_set_string_member(o, "node", c->node);
	JsonArray *roles = json_array_new();
	if (c->cfg.roles & COORD_ROLE_COLLECTOR)
		json_array_add_string_element(roles, "collector");
	if (c->cfg.roles & COORD_ROLE_ANALYZER)
		json_array_add_string_element(roles, "analyzer");
	json_object_set_array_member(o, "roles", roles);
	json_object_set_string_member(o, "alert_group", c->alert_group);
	json_object_set_int_member(o, "time_ms", g_get_real_time() / 1000);
	JsonArray *owned = json_array_new();
	gint64 lag_ms;
	g_mutex_lock(&c->lock);
	for (guint p = 0; p < c->cfg.partitions; p++)
		if (c->parts[p].state == PART_OWNED || c->parts[p].state == PART_RELEASING)
			json_array_add_int_element(owned, p);
	guint64 lag = lag_locked(c, &lag_ms);
	g_mutex_unlock(&c->lock);
	json_object_set_array_member(o, "partitions", owned);
	/* how far behind its partitions' streams the node is (stream sequences: 0 = caught
	 * up; and the age of the batch its furthest-behind partition is at), so that
	 * `cluster` on any node shows every node's lag */
	json_object_set_int_member(o, "lag", (gint64)lag);
	json_object_set_int_member(o, "lag_ms", lag_ms);
	g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), o);
	json_object_unref(o);
	return json_to_string(root, FALSE);
}

static void
node_register(Coord *c)
{
	g_autofree char *value = node_value(c);
	gint64 before = now_ms();
	g_autoptr(GError) err = NULL;
	if (bus_kv_put(c->bus, BUS_KV_NODES, c->node, value, strlen(value), &c->node_rev, &err))
		c->reg_ok_ms = before;
	else
		set_error(c, "node registration", err);
}

/* The live analyzers' names (this one included while its registration holds). */
static GPtrArray *
live_analyzers(Coord *c, gint64 now)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	g_mutex_lock(&c->lock);
	for (guint i = 0; i < c->nodes->len; i++) {
		const Node *n = c->nodes->pdata[i];
		if (strcmp(n->name, c->node) == 0)
			continue; /* judged by our own registration below */
		/* a registered node whose entry stopped changing is dead: its registration may
		 * outlive it by node_ttl_ms, its renewals come every rebalance_ms */
		if (n->analyzer && now - n->changed_ms < c->cfg.lease_ttl_ms)
			g_ptr_array_add(names, g_strdup(n->name));
	}
	g_mutex_unlock(&c->lock);
	if ((c->cfg.roles & COORD_ROLE_ANALYZER) && c->reg_ok_ms &&
	    now - c->reg_ok_ms < c->cfg.lease_ttl_ms)
		g_ptr_array_add(names, g_strdup(c->node));
	return names;
}

/* ---- The thread: a round ---- */

static void
leases_update(Coord *c, GArray *entries, gint64 now)
{
	guint P = c->cfg.partitions;
	g_autofree char **owner = g_new0(char *, P);
	g_autofree guint64 *rev = g_new0(guint64, P);
	for (guint i = 0; i < entries->len; i++) {
		const BusKvEntry *e = &g_array_index(entries, BusKvEntry, i);
		guint64 p;
		if (e->key[0] != 'p' ||
		    !g_ascii_string_to_unsigned(e->key + 1, 10, 0, P - 1, &p, NULL))
			continue;
		owner[p] = e->value ? (char *)g_bytes_get_data(e->value, NULL) : (char *)"";
		rev[p] = e->rev;
	}
	g_mutex_lock(&c->lock);
	for (guint p = 0; p < P; p++) {
		Part *pt = &c->parts[p];
		if (owner[p]) {
			if (pt->seen_rev != rev[p]) {
				pt->seen_rev = rev[p];
				pt->seen_ms = now;
			}
			pt->listed = TRUE;
			pt->missing = 0;
			pt->free_since_ms = 0;
			g_strlcpy(pt->owner, owner[p], sizeof pt->owner);
			pt->owner_rev = rev[p];
		} else {
			/* the grace of a free partition counts from the last change we saw of its
			 * lease: an expired lease has served it already, a released one not */
			if (pt->listed || !pt->free_since_ms)
				pt->free_since_ms = pt->seen_ms ? pt->seen_ms : now;
			pt->listed = FALSE;
			/* A listing can miss a key renewed while it ran (seen with NATS KV): taking
			 * it for free costs one refused create, but the owner shown to `cluster`
			 * and to coord_owner() waits for a second listing without it. */
			if (++pt->missing >= 2) {
				pt->owner[0] = '\0';
				pt->owner_rev = 0;
			}
		}
	}
	g_mutex_unlock(&c->lock);
}

static gboolean
name_in(GPtrArray *names, const char *name)
{
	for (guint i = 0; i < names->len; i++)
		if (strcmp(names->pdata[i], name) == 0)
			return TRUE;
	return FALSE;
}

/* Who takes partition p when its target does not: the assignment without the target, then
 * without that one's target too, level by level (one lease TTL each). cache[i]: the
 * assignment without node i (a dead node's partitions all ask the same). */
static gboolean
successor_is(guint partitions, const char *const *names, guint n, guint p, gint target,
	     guint levels, gint me, gint **cache)
{
	g_autofree gboolean *out = g_new0(gboolean, n);
	g_autofree const char **sub = g_new(const char *, n);
	g_autofree guint *idx = g_new(guint, n);
	g_autofree gint *owner = NULL;
	for (guint level = 1; level <= levels && level < n; level++) {
		out[target] = TRUE;
		const gint *o;
		guint m = 0;
		for (guint i = 0; i < n; i++)
			if (!out[i]) {
				sub[m] = names[i];
				idx[m++] = i;
			}
		if (level == 1 && cache[target]) {
			o = cache[target];
		} else {
			gint *a = g_new(gint, partitions);
			coord_assign(partitions, sub, m, a);
			for (guint q = 0; q < partitions; q++)
				a[q] = (gint)idx[a[q]]; /* back to indexes into names */
			if (level == 1) {
				cache[target] = a;
			} else {
				g_free(owner);
				owner = a;
			}
			o = a;
		}
		target = o[p];
		if (target == me)
			return TRUE;
	}
	return FALSE;
}

static void
rebalance(Coord *c, gint64 now)
{
	g_autoptr(GPtrArray) live = live_analyzers(c, now);
	if (!name_in(live, c->node))
		return; /* not registered: others cannot see us, take nothing */
	guint n = live->len;
	const char *const *names = (const char *const *)live->pdata;
	gint me = 0;
	while (strcmp(names[me], c->node) != 0)
		me++;
	g_autofree gint *target = g_new(gint, c->cfg.partitions);
	coord_assign(c->cfg.partitions, names, n, target);
	g_autofree gint **cache = g_new0(gint *, n);
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		gboolean ours = target[p] == me;
		if (strcmp(pt->target, names[target[p]]) != 0) {
			g_strlcpy(pt->target, names[target[p]], sizeof pt->target);
			pt->target_ms = now;
		}
		if (pt->state == PART_OWNED && !ours &&
		    !(now < pt->passed_until_ms && strcmp(pt->passed, names[target[p]]) == 0)) {
			/* a live node should have it: hand it over through a snapshot */
			part_close(c, p, COORD_RELEASE);
			pt->state = PART_RELEASING;
			pt->released_ms = now;
			g_message("cluster: partition %u released to %s", p, names[target[p]]);
			continue;
		}
		if (pt->state == PART_STARTING && !ours &&
		    strcmp(pt->passed, names[target[p]]) != 0) {
			part_give_up(c, p); /* nothing told to the main loop yet */
			continue;
		}
		/* a lease in our name we do not hold (a write of ours whose answer was lost, or
		 * our last run's) is ours to take back at once (part_acquire() adopts it) */
		if (pt->state != PART_FREE || (pt->listed && strcmp(pt->owner, c->node) != 0))
			continue;
		/* free: ours when we are its target; else, when the target does not take it (dead
		 * but not seen so yet, or stuck), its successors after one lease TTL each. The
		 * grace counts from the last change seen of the lease (an expired lease has
		 * served it already: a dead owner's partitions go at once to where they would go
		 * without it), but never from before the target became the target (a new one
		 * gets its chance). */
		gint64 since = MAX(pt->free_since_ms, pt->target_ms);
		guint levels = (guint)((now - since) / c->cfg.lease_ttl_ms);
		gboolean successor =
		    !ours && levels > 0 &&
		    successor_is(c->cfg.partitions, names, n, p, target[p], levels, me, cache);
		/* A target that is registered and live but does not take what it is given (say,
		 * refused by the bus's permissions) would have it handed back and taken again
		 * every lease TTL: its successor keeps it for PASSED_HOLD_TTLS of them first. */
		pt->passed[0] = '\0';
		if (successor) {
			g_strlcpy(pt->passed, names[target[p]], sizeof pt->passed);
			pt->passed_until_ms = now + PASSED_HOLD_TTLS * c->cfg.lease_ttl_ms;
		}
		if (ours || successor) {
			part_acquire(c, p);
			renew_if_due(c);
		}
	}
	for (guint i = 0; i < n; i++)
		g_free(cache[i]);
}

static void
last_seqs(Coord *c, gint64 now)
{
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		if (pt->state != PART_OWNED || now - pt->last_seq_ms < LAST_SEQ_MS)
			continue;
		pt->last_seq_ms = now;
		char subject[64];
		g_snprintf(subject, sizeof subject, "%s.%u", BUS_SUBJECT_FLOWS, p);
		guint64 seq = 0;
		g_autoptr(GError) err = NULL;
		if (!bus_last_seq(c->bus, BUS_STREAM_FLOWS, subject, &seq, &err)) {
			set_error(c, "last sequence", err);
			break;
		}
		g_mutex_lock(&c->lock);
		pt->last_seq = seq;
		g_mutex_unlock(&c->lock);
	}
}

static void suppressions_refresh(Coord *c);

static GArray *bucket_read(Coord *c, BusKvMirror **watch, const char *bucket, guint64 written,
			   gint64 check_ms, GError **error);

static void
offenders_refresh(Coord *c, gint64 now)
{
	if (c->cfg.offenders_refresh_ms <= 0 || now < c->offenders_next_ms)
		return;
	c->offenders_next_ms = now + c->cfg.offenders_refresh_ms;
	g_autoptr(GError) err = NULL;
	GArray *entries =
	    bucket_read(c, &c->watch_offenders, BUS_KV_OFFENDERS, 0, WATCH_CHECK_MS, &err);
	if (!entries) {
		set_error(c, "offenders list", err);
		return;
	}
	GString *out = g_string_new("[");
	guint n = 0;
	for (guint i = 0; i < entries->len; i++) {
		const BusKvEntry *e = &g_array_index(entries, BusKvEntry, i);
		g_autoptr(JsonParser) parser = NULL;
		JsonNode *root = entry_object(e, &parser);
		if (!root)
			continue;
		g_autofree char *s = json_to_string(root, FALSE);
		g_string_append(out, n++ ? "," : "");
		g_string_append(out, s);
	}
	g_string_append_c(out, ']');
	bus_kv_entries_free(entries);
	g_mutex_lock(&c->lock);
	g_free(c->offenders);
	c->offenders = g_string_free(out, FALSE);
	c->offenders_ms = now_ms();
	g_mutex_unlock(&c->lock);
	suppressions_refresh(c);
}

/* The suppressions of the cluster, as the partitions' owners wrote them. One that is over
 * by the wall clock is left out and deleted at its revision (a suppression set again
 * meanwhile has another revision and stays): owners do not delete what expires, since
 * their clock is the flows'. */
static void
suppressions_refresh(Coord *c)
{
	g_autoptr(GError) err = NULL;
	guint64 rev = 0;
	/* listed again only when the bucket changed (one cheap request a round instead of a
	 * consumer), and every SUPPRESSIONS_RELIST_MS for what expired meanwhile */
	gboolean known = bus_kv_last_rev(c->bus, BUS_KV_SUPPRESSIONS, &rev, NULL);
	if (known && rev == c->supp_rev && now_ms() - c->supp_listed_ms < SUPPRESSIONS_RELIST_MS) {
		g_mutex_lock(&c->lock);
		c->suppressions_ms = now_ms(); /* the reading is as fresh as a new one */
		g_mutex_unlock(&c->lock);
		return;
	}
	GArray *entries = bus_kv_list(c->bus, BUS_KV_SUPPRESSIONS, &err);
	if (!entries) {
		set_error(c, "suppressions list", err);
		return;
	}
	gint64 now = g_get_real_time() / 1000;
	GString *out = g_string_new("[");
	guint n = 0;
	for (guint i = 0; i < entries->len; i++) {
		const BusKvEntry *e = &g_array_index(entries, BusKvEntry, i);
		g_autoptr(JsonParser) parser = NULL;
		JsonNode *root = entry_object(e, &parser);
		if (!root)
			continue;
		JsonObject *o = json_node_get_object(root);
		JsonNode *until = json_object_get_member(o, "until_ms");
		if (until == NULL || !JSON_NODE_HOLDS_VALUE(until) ||
		    json_node_get_value_type(until) != G_TYPE_INT64)
			continue;
		if (json_node_get_int(until) <= now) {
			g_autoptr(GError) derr = NULL;
			if (bus_kv_delete(c->bus, BUS_KV_SUPPRESSIONS, e->key, e->rev, &derr)) {
				g_mutex_lock(&c->lock);
				c->n.suppressions_expired++;
				g_mutex_unlock(&c->lock);
			}
			continue;
		}
		g_autofree char *s = json_to_string(root, FALSE);
		g_string_append(out, n++ ? "," : "");
		g_string_append(out, s);
	}
	g_string_append_c(out, ']');
	bus_kv_entries_free(entries);
	g_mutex_lock(&c->lock);
	g_free(c->suppressions);
	c->suppressions = g_string_free(out, FALSE);
	c->suppressions_ms = now_ms();
	g_mutex_unlock(&c->lock);
	/* the revision read before the listing: a write during it is listed next time (an
	 * expired entry deleted above moves it too: listed once more) */
	c->supp_rev = known ? rev : 0;
	c->supp_listed_ms = now_ms();
}

/* An event sent more than this long ago and still unacknowledged: the node it went to died
 * without answering, and the server has not sent it again (3 x the consumer's AckWait). */
#define ALERT_STUCK_MS 30000

/* The alert consumer's state on the server, for `cluster` and for the admin: nats-server
 * 2.9.10 once left an event pending for good (see bus_nats.c, HANDBACK): said once a
 * minute while the acknowledgement floor stands still with events pending. */
static void
alert_consumer_check(Coord *c, gint64 now)
{
	if (!c->alert_group[0])
		return;
	g_autofree char *durable = g_strdup_printf("alerts-%s", c->alert_group);
	BusConsumerState st;
	g_autoptr(GError) err = NULL;
	gboolean ok = bus_consumer_state(c->bus, BUS_STREAM_ALERTS, durable, &st, &err);
	g_mutex_lock(&c->lock);
	c->alerts_state_ok = ok;
	if (!ok) {
		g_mutex_unlock(&c->lock);
		return;
	}
	c->alerts_state = st;
	gint64 stuck = coord_ack_track(&c->alerts_track, st.ack_floor, st.ack_pending, now);
	c->alerts_stuck_ms = stuck;
	gboolean warn = stuck >= ALERT_STUCK_MS &&
			(c->alerts_stuck_warn_ms == 0 || now - c->alerts_stuck_warn_ms >= 60000);
	if (warn)
		c->alerts_stuck_warn_ms = now;
	g_mutex_unlock(&c->lock);
	if (warn)
		g_warning("cluster: alert consumer %s: the event after stream sequence %" G_GUINT64_FORMAT
			  " has waited %" G_GINT64_FORMAT " s for its acknowledgement (%" G_GUINT64_FORMAT
			  " pending, %" G_GUINT64_FORMAT " sent again): the server has not delivered "
			  "it again (said at most once a minute)",
			  durable, st.ack_floor, stuck / 1000, st.ack_pending, st.redelivered);
}

static void
consumers_start(Coord *c)
{
	g_autoptr(GError) err = NULL;
	g_mutex_lock(&c->lock);
	gboolean left = c->leaving, have_alerts = c->alerts_sub != NULL,
		 have_history = c->history_sub != NULL;
	g_mutex_unlock(&c->lock);
	if (c->alert_group[0] && !have_alerts && !left) {
		g_autofree char *durable = g_strdup_printf("alerts-%s", c->alert_group);
		BusSub *sub = bus_subscribe_durable(c->bus, BUS_STREAM_ALERTS, BUS_SUBJECT_ALERTS,
						    durable, alerts_cb, c, &err);
		if (!sub_keep(c, &c->alerts_sub, sub))
			return;
		if (!sub && !c->alerts_told) {
			g_warning("cluster: alert consumer %s: %s (retrying)", durable,
				  err->message);
			c->alerts_told = TRUE;
		}
		if (!sub)
			set_error(c, "alert consumer", err);
		g_clear_error(&err);
	}
	if (c->history_position != NULL && !have_history && !left) {
		/* each store reads every partition's readings, from where it stopped: an
		 * ordered consumer from the position the file keeps (a durable consumer's
		 * acknowledgements were tried: nats-server 2.9 left messages a stopped node
		 * had been pushed unacknowledged and never redelivered them). A position past
		 * the stream's end is another stream's (made again): read it from its start. */
		guint64 from = history_position_read(c), last = 0;
		if (from > 0 &&
		    bus_last_seq(c->bus, BUS_STREAM_HISTORY, BUS_SUBJECT_HISTORY ".*", &last, NULL) &&
		    from > last) {
			g_warning("cluster: %s says sequence %" G_GUINT64_FORMAT ", the history "
				  "stream ends at %" G_GUINT64_FORMAT ": read from its start",
				  c->history_position, from, last);
			from = 0;
		}
		g_mutex_lock(&c->lock);
		c->history_seq = from;
		g_mutex_unlock(&c->lock);
		c->history_saved = from;
		BusSub *sub = bus_subscribe_from(c->bus, BUS_STREAM_HISTORY,
						 BUS_SUBJECT_HISTORY ".*", from + 1, history_cb, c,
						 &err);
		if (!sub_keep(c, &c->history_sub, sub))
			return;
		if (!sub && !c->history_told) {
			g_warning("cluster: history consumer: %s (retrying)", err->message);
			c->history_told = TRUE;
		}
		if (!sub)
			set_error(c, "history consumer", err);
		g_clear_error(&err);
	}
	if (!c->serve_sub) {
		c->serve_sub = bus_serve(c->bus, serve_cb, c, &err);
		if (!c->serve_sub && !c->serve_told) {
			g_warning("cluster: serving %s.%s: %s (retrying)", BUS_SUBJECT_CTL, c->node,
				  err->message);
			c->serve_told = TRUE;
		}
		if (!c->serve_sub)
			set_error(c, "serve", err);
	}
}

/* The bus's counters as `cluster` shows them (read without waiting on the bus). */
static void
bus_stats_keep(Coord *c)
{
	BusStats st;
	bus_get_stats(c->bus, &st);
	g_mutex_lock(&c->lock);
	c->bus_stats = st;
	g_mutex_unlock(&c->lock);
}

/* A bucket's entries, from its watch (made at the first read) when that has our last write
 * to it; else listed (counted), as every round did before the watches: at 100 nodes the
 * listings were the servers' first limit (doc/cluster.md). */
static GArray *
bucket_read(Coord *c, BusKvMirror **watch, const char *bucket, guint64 written, gint64 check_ms,
	    GError **error)
{
	if (*watch == NULL)
		*watch = bus_kv_mirror_new(c->bus, bucket);
	g_autoptr(GError) werr = NULL;
	GArray *a = bus_kv_mirror_list(*watch, written, check_ms, &werr);
	gboolean behind = a == NULL && g_error_matches(werr, BUS_ERROR, BUS_ERROR_BEHIND);
	g_mutex_lock(&c->lock);
	if (a != NULL)
		c->n.watch_reads++;
	c->n.watch_behind += behind;
	g_mutex_unlock(&c->lock);
	if (a != NULL)
		return a;
	if (!behind) { /* the bus did not answer: a listing would not either */
		g_propagate_error(error, g_steal_pointer(&werr));
		return NULL;
	}
	g_debug("cluster: %s: listed instead", werr->message);
	return bus_kv_list(c->bus, bucket, error);
}

static void
round_run(Coord *c)
{
	gint64 now = now_ms();
	node_register(c);
	if (coord_stopping(c))
		return;
	g_autoptr(GError) err = NULL;
	GArray *nodes =
	    bucket_read(c, &c->watch_nodes, BUS_KV_NODES, c->node_rev, WATCH_CHECK_MS, &err);
	if (nodes) {
		nodes_update(c, nodes, now);
		bus_kv_entries_free(nodes);
	} else {
		set_error(c, "nodes list", err); /* judged on the last listing */
		g_clear_error(&err);
	}
	/* checked every round: a dead owner's leases expire with no word to the watch */
	GArray *leases = bucket_read(c, &c->watch_leases, BUS_KV_LEASES, c->lease_rev, 0, &err);
	gboolean listed = leases != NULL;
	if (leases) {
		leases_update(c, leases, now);
		bus_kv_entries_free(leases);
	} else {
		set_error(c, "leases list", err);
	}
	renew_all(c);
	if (coord_stopping(c))
		return; /* nothing new is taken or started on the way out */
	/* a node waits one round before taking partitions: nodes that start together see
	 * each other first, instead of one taking everything and handing most of it back */
	if ((c->cfg.roles & COORD_ROLE_ANALYZER) && listed && c->rounds >= 1)
		rebalance(c, now_ms());
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		g_mutex_lock(&c->lock);
		gboolean restart = pt->restart;
		pt->restart = FALSE;
		g_mutex_unlock(&c->lock);
		if (restart && pt->state == PART_OWNED) {
			/* a handover to ourselves: the release snapshot keeps the stored one, and
			 * the free partition is ours again at the next round */
			part_close(c, p, COORD_RELEASE);
			pt->state = PART_RELEASING;
			pt->released_ms = now_ms();
			g_mutex_lock(&c->lock);
			c->n.restarts++;
			g_mutex_unlock(&c->lock);
			g_message("cluster: partition %u given up to be taken again: an event was "
				  "dropped, and the replay from the stored snapshot sends it again",
				  p);
			continue;
		}
		if (pt->state == PART_STARTING)
			part_start(c, p);
		else if (pt->state == PART_OWNED && !pt->sub)
			part_subscribe(c, p);
		else if (pt->state == PART_RELEASING &&
			 now_ms() - pt->released_ms > 3 * c->cfg.lease_ttl_ms) {
			/* the main loop never sent the snapshot: the next owner replays from the
			 * previous one (alert ids make the replayed events duplicates) */
			g_warning("cluster: partition %u: no release snapshot, lease given up", p);
			part_give_up(c, p);
			g_mutex_lock(&c->lock);
			c->n.release_timeouts++;
			g_mutex_unlock(&c->lock);
		}
	}
	consumers_start(c);
	alert_consumer_check(c, now_ms());
	last_seqs(c, now_ms());
	offenders_refresh(c, now_ms());
	bus_stats_keep(c);
	c->rounds++;
}

/* ---- The thread: work from the main loop ---- */

/* Put back a snapshot that could not be stored, unless a newer one came meanwhile. */
static void
snap_restore(Coord *c, guint p, GBytes *snap, guint64 seq, gboolean release)
{
	Part *pt = &c->parts[p];
	g_mutex_lock(&c->lock);
	if (!pt->snap_pending) {
		pt->snap = snap != NULL ? g_bytes_ref(snap) : NULL;
		pt->snap_seq = seq;
		pt->snap_pending = TRUE;
	}
	pt->snap_release = pt->snap_release || release;
	g_mutex_unlock(&c->lock);
}

/* Store the snapshots waiting; FALSE: the bus did not answer (the rest waits). */
static gboolean
snapshots_store(Coord *c, gint64 deadline_ms)
{
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		g_mutex_lock(&c->lock);
		if (!pt->snap_pending) {
			g_mutex_unlock(&c->lock);
			continue;
		}
		g_autoptr(GBytes) snap = pt->snap;
		guint64 seq = pt->snap_seq;
		gboolean release = pt->snap_release;
		pt->snap = NULL;
		pt->snap_pending = pt->snap_release = FALSE;
		if (pt->state != PART_OWNED && pt->state != PART_RELEASING) {
			c->n.snapshots_dropped++; /* not ours (any more) */
			g_mutex_unlock(&c->lock);
			continue;
		}
		g_mutex_unlock(&c->lock);
		if (deadline_ms && now_ms() >= deadline_ms)
			return FALSE;
		/* only while the lease is ours: the fenced renewal checks the revision */
		RenewResult rr = part_renew(c, p);
		if (rr == RENEW_LOST)
			continue;
		if (rr == RENEW_IO) {
			snap_restore(c, p, snap, seq, release);
			return FALSE;
		}
		gsize len = 0;
		const void *data = snap != NULL ? g_bytes_get_data(snap, &len) : NULL;
		g_autoptr(GError) err = NULL;
		if (snap == NULL) {
			/* a release without a new snapshot (coord_snapshot()): the stored one
			 * stays */
		} else if (!bus_snapshot_put(c->bus, p, seq, data, len, &err)) {
			set_error(c, "snapshot store", err);
			if (g_error_matches(err, BUS_ERROR, BUS_ERROR_IO)) {
				snap_restore(c, p, snap, seq, release);
				return FALSE;
			}
			g_warning("cluster: partition %u: snapshot not stored: %s", p,
				  err->message);
			g_mutex_lock(&c->lock);
			c->n.snapshots_failed++;
			g_mutex_unlock(&c->lock);
		} else {
			g_mutex_lock(&c->lock);
			c->n.snapshots_stored++;
			g_mutex_unlock(&c->lock);
		}
		if (release) {
			part_give_up(c, p);
			g_mutex_lock(&c->lock);
			c->n.released++;
			g_mutex_unlock(&c->lock);
		}
	}
	return TRUE;
}

/* Send the offenders waiting, in order; FALSE: the bus did not answer. */
static gboolean
offenders_send(Coord *c, gint64 deadline_ms)
{
	for (;;) {
		if (deadline_ms && now_ms() >= deadline_ms)
			return FALSE;
		g_mutex_lock(&c->lock);
		char *key = g_queue_pop_head(&c->off_order);
		if (!key) {
			g_mutex_unlock(&c->lock);
			return TRUE;
		}
		gpointer k, v;
		g_hash_table_lookup_extended(c->off_ops, key, &k, &v);
		g_hash_table_steal(c->off_ops, key);
		g_mutex_unlock(&c->lock);
		g_autofree char *owned_key = k;
		OffOp *op = v;
		g_autoptr(GError) err = NULL;
		gboolean ok, supp = key[0] == 's';
		const char *bucket = supp ? BUS_KV_SUPPRESSIONS : BUS_KV_OFFENDERS;
		const char *bkey = key + 2; /* past "o/" or "s/" (kv_op()) */
		if (op->json)
			ok = bus_kv_put(c->bus, bucket, bkey, op->json, strlen(op->json), NULL,
					&err);
		else
			ok = bus_kv_delete(c->bus, bucket, bkey, 0, &err) ||
			     g_error_matches(err, BUS_ERROR, BUS_ERROR_NOT_FOUND);
		g_mutex_lock(&c->lock);
		if (ok) {
			if (supp && op->json)
				c->n.suppressions_put++;
			else if (supp)
				c->n.suppressions_deleted++;
			else if (op->json)
				c->n.offenders_put++;
			else
				c->n.offenders_deleted++;
		} else if (g_error_matches(err, BUS_ERROR, BUS_ERROR_IO) &&
			   !g_hash_table_contains(c->off_ops, key)) {
			/* again first, unless a newer value of the key came meanwhile */
			g_hash_table_insert(c->off_ops, g_steal_pointer(&owned_key), op);
			g_queue_push_head(&c->off_order, (gpointer)key);
			op = NULL;
		} else if (!g_error_matches(err, BUS_ERROR, BUS_ERROR_IO)) {
			c->n.offenders_failed++; /* refused (a key or value the bus will not take)
						  */
		}
		g_mutex_unlock(&c->lock);
		if (op)
			off_op_free(op);
		if (!ok) {
			set_error(c, "offender", err);
			if (g_error_matches(err, BUS_ERROR, BUS_ERROR_IO))
				return FALSE;
		}
		renew_if_due(c);
	}
}

static void
requests_send(Coord *c, gboolean fail, const char *why)
{
	for (;;) {
		g_mutex_lock(&c->lock);
		ReqOut *r = g_queue_pop_head(&c->req_out);
		g_mutex_unlock(&c->lock);
		if (!r)
			return;
		g_autoptr(GError) err = NULL;
		g_autoptr(GBytes) reply = NULL;
		/* a little longer than the server waits for its main loop, so that its "node
		 * busy" reaches us rather than our own timeout */
		gboolean ok = !fail && bus_request(c->bus, r->node, r->line, strlen(r->line),
						   c->cfg.request_timeout_ms + 500, &reply, &err);
		g_mutex_lock(&c->lock);
		c->n.requests_sent += !fail;
		c->n.requests_failed += !ok;
		g_mutex_unlock(&c->lock);
		if (ok) {
			emit(c, &(CoordEvent){.kind = COORD_REPLY, .tag = r->tag, .data = reply});
		} else {
			g_autofree char *msg =
			    g_strdup_printf("%s: %s", r->node, err ? err->message : why);
			emit(c, &(CoordEvent){.kind = COORD_REPLY, .tag = r->tag, .error = msg});
		}
		req_out_free(r);
		if (!fail)
			renew_if_due(c);
	}
}

/* Control records waiting to be published, each acknowledged before the next (their order
 * is the order asked). fail: answered with why, unsent. */
static void
publishes_send(Coord *c, gboolean fail, const char *why)
{
	for (;;) {
		g_mutex_lock(&c->lock);
		PubOut *o = g_queue_pop_head(&c->pub_out);
		g_mutex_unlock(&c->lock);
		if (!o)
			return;
		g_autoptr(GError) err = NULL;
		guint64 seq = 0;
		gsize len = 0;
		const void *data = g_bytes_get_data(o->data, &len);
		gboolean ok =
		    !fail && bus_publish_wait(c->bus, o->subject, data, len, o->msg_id, &seq, &err);
		g_mutex_lock(&c->lock);
		if (ok)
			c->n.ctl_published++;
		else
			c->n.ctl_failed++;
		g_mutex_unlock(&c->lock);
		if (ok) {
			emit(c, &(CoordEvent){.kind = COORD_PUBLISHED, .tag = o->tag, .seq = seq});
		} else {
			if (err)
				set_error(c, "control record", err);
			emit(c, &(CoordEvent){.kind = COORD_PUBLISHED,
					      .tag = o->tag,
					      .error = err ? err->message : why});
		}
		pub_out_free(o);
		if (!fail)
			renew_if_due(c);
	}
}

/* ---- The thread ---- */

static gboolean
bus_ready(Coord *c)
{
	g_autoptr(GError) err = NULL;
	if (bus_setup(c->bus, &err)) {
		g_message("cluster: bus set up%s", c->setup_told ? " (after failures)" : "");
		g_mutex_lock(&c->lock);
		c->setup_ok = TRUE;
		g_mutex_unlock(&c->lock);
		return TRUE;
	}
	/* not connected: the probe says why (connection_probe()) */
	if (!c->setup_told && bus_connected(c->bus)) {
		g_warning("cluster: bus setup failed: %s (retrying, at least every %" G_GINT64_FORMAT
			  " ms)", err->message, c->cfg.rebalance_ms);
		c->setup_told = TRUE;
	}
	set_error(c, "bus setup", err);
	return FALSE;
}

static void
shutdown_run(Coord *c)
{
	gboolean ready;
	g_mutex_lock(&c->lock);
	ready = c->setup_ok;
	g_mutex_unlock(&c->lock);
	/* the main loop is leaving: nothing waits for it, nothing more is handed to it */
	coord_leave(c);
	history_position_save(c, TRUE);
	if (ready) {
		/* release snapshots the main loop sent before coord_free(), bounded: a bus that
		 * does not answer lets the leases expire */
		gint64 deadline = now_ms() + c->cfg.lease_ttl_ms;
		if (snapshots_store(c, deadline))
			offenders_send(c, deadline);
	}
	requests_send(c, TRUE, "shutting down");
	publishes_send(c, TRUE, "shutting down");
	bus_leaving(c->bus);
	bus_unsubscribe(c->serve_sub);
	c->serve_sub = NULL;
	for (guint p = 0; p < c->cfg.partitions; p++) {
		Part *pt = &c->parts[p];
		if (pt->sub) {
			bus_unsubscribe(pt->sub);
			g_free(pt->fs);
			pt->sub = NULL;
			pt->fs = NULL;
		}
	}
	if (ready && c->reg_ok_ms) {
		/* gone at once rather than after node_ttl_ms, unless a request would wait out
		 * its timeout */
		g_autoptr(GError) err = NULL;
		if (!bus_connected(c->bus))
			g_message("cluster: node entry left to expire (the NATS servers are away)");
		else if (!bus_kv_delete(c->bus, BUS_KV_NODES, c->node, 0, &err) &&
			 !g_error_matches(err, BUS_ERROR, BUS_ERROR_NOT_FOUND))
			g_message("cluster: node entry not deleted: %s", err->message);
	}
}

/* While the bus is not connected, every PROBE_MS: why (bus_probe()), said when it changes. */
#define PROBE_MS 10000

static void
connection_probe(Coord *c)
{
	gint64 now = now_ms();
	if (bus_connected(c->bus)) {
		c->probe_said[0] = '\0';
		return;
	}
	if (now < c->probe_next_ms)
		return;
	c->probe_next_ms = now + PROBE_MS;
	g_autoptr(GError) err = NULL;
	gboolean ok = bus_probe(c->bus, &err);
	bus_stats_keep(c); /* `cluster` shows the reason: no round copies it meanwhile */
	if (ok)
		return; /* the bus's own connection follows within its reconnect wait */
	set_error(c, "connect", err);
	if (strcmp(c->probe_said, err->message) != 0) {
		g_strlcpy(c->probe_said, err->message, sizeof c->probe_said);
		g_warning("cluster: cannot connect to the NATS servers: %s (trying again; said "
			  "again when this changes)",
			  err->message);
	}
}

static gpointer
coord_thread(gpointer data)
{
	Coord *c = data;
	gboolean ready = FALSE;
	gint64 next_round = 0, setup_wait = 0;
	for (;;) {
		g_mutex_lock(&c->lock);
		gboolean stop = c->stopping;
		c->work = FALSE;
		g_mutex_unlock(&c->lock);
		if (stop)
			break;
		connection_probe(c);
		if (!ready && now_ms() >= next_round) {
			ready = bus_ready(c);
			if (ready)
				next_round = 0;
		}
		if (ready) {
			if (now_ms() >= next_round) {
				round_run(c);
				/* the round after the first comes soon: it is the one that takes
				 * partitions, once nodes that started together have seen each other */
				next_round = now_ms() + (c->rounds == 1 ? MIN(c->cfg.rebalance_ms, 1000)
									: c->cfg.rebalance_ms);
			}
			rewinds_run(c);
			if (snapshots_store(c, 0))
				offenders_send(c, 0);
			publishes_send(c, FALSE, NULL);
			requests_send(c, FALSE, NULL);
			history_position_save(c, FALSE);
		} else {
			publishes_send(c, TRUE, "the cluster bus is not set up");
			requests_send(c, TRUE, "the cluster bus is not set up");
			/* servers that are starting answer within a second or two: retry after
			 * 250 ms, doubling up to a round */
			if (now_ms() >= next_round) {
				setup_wait = setup_wait ? MIN(setup_wait * 2, c->cfg.rebalance_ms)
							: MIN(250, c->cfg.rebalance_ms);
				next_round = now_ms() + setup_wait;
			}
		}
		g_mutex_lock(&c->lock);
		gint64 until = g_get_monotonic_time() + (next_round - now_ms()) * 1000;
		while (!c->work && !c->stopping)
			if (!g_cond_wait_until(&c->wake, &c->lock, until))
				break;
		g_mutex_unlock(&c->lock);
	}
	shutdown_run(c);
	return NULL;
}

Coord *
coord_new(Bus *bus, const CoordConfig *cfg, GError **error)
{
	if (!valid_key(cfg->node)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster node name '%s': 1 to 63 of [-/_=.a-zA-Z0-9]",
			    cfg->node ? cfg->node : "");
		return NULL;
	}
	if (cfg->partitions == 0 || cfg->lease_ttl_ms <= 0 || cfg->rebalance_ms <= 0 ||
	    cfg->rebalance_ms > cfg->lease_ttl_ms / 3) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster: partitions > 0 and 0 < rebalance_ms <= lease_ttl_ms / 3 "
			    "(%u, %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ")",
			    cfg->partitions, cfg->rebalance_ms, cfg->lease_ttl_ms);
		return NULL;
	}
	CoordQueue *queue = coord_queue_new(cfg->queue_bytes);
	if (!queue) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "cluster: eventfd: %s", g_strerror(errno));
		return NULL;
	}
	Coord *c = g_new0(Coord, 1);
	c->bus = bus;
	c->queue = queue;
	c->cfg = *cfg;
	c->node = g_strdup(cfg->node);
	c->alert_group = g_strdup(cfg->alert_group ? cfg->alert_group : "");
	c->history_position = cfg->history_position != NULL && cfg->history_position[0] != '\0'
				  ? g_strdup(cfg->history_position)
				  : NULL;
	c->cfg.history_position = c->history_position;
	c->cfg.node = c->node;
	c->cfg.alert_group = c->alert_group;
	if (c->cfg.request_timeout_ms <= 0)
		c->cfg.request_timeout_ms = 2000;
	g_mutex_init(&c->lock);
	g_cond_init(&c->wake);
	c->parts = g_new0(Part, cfg->partitions);
	c->off_ops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, off_op_free);
	g_queue_init(&c->off_order);
	g_queue_init(&c->req_out);
	g_queue_init(&c->pub_out);
	c->serving = g_hash_table_new(g_direct_hash, g_direct_equal);
	c->nodes = g_ptr_array_new_with_free_func(node_free);
	c->fence = coord_fence_new(cfg->partitions, cfg->dedup_ids ? cfg->dedup_ids : 65536);
	c->thread = g_thread_try_new("cluster", coord_thread, c, error);
	if (!c->thread) {
		c->stopping = TRUE;
		coord_free(c);
		return NULL;
	}
	return c;
}

void
coord_leave(Coord *c)
{
	g_mutex_lock(&c->lock);
	c->leaving = TRUE;
	BusSub *alerts = c->alerts_sub, *history = c->history_sub;
	c->alerts_sub = c->history_sub = NULL;
	g_mutex_unlock(&c->lock);
	/* first no more fetching, then what waits for the main loop is handed back (an alert
	 * to the group's other nodes, a history message to this node's next start): what is
	 * handed back is not fetched here again */
	bus_sub_stop_fetching(alerts);
	coord_queue_stop(c->queue);
	bus_unsubscribe(alerts);
	bus_unsubscribe(history);
}

void
coord_free(Coord *c)
{
	if (!c)
		return;
	g_mutex_lock(&c->lock);
	c->stopping = TRUE;
	g_cond_signal(&c->wake);
	/* requests waiting for this main loop will not be answered */
	GHashTableIter it;
	gpointer r;
	g_hash_table_iter_init(&it, c->serving);
	while (g_hash_table_iter_next(&it, &r, NULL)) {
		CoordRequest *req = r;
		g_mutex_lock(&req->lock);
		req->abandoned = TRUE;
		g_cond_signal(&req->cond);
		g_mutex_unlock(&req->lock);
	}
	g_mutex_unlock(&c->lock);
	if (c->thread)
		g_thread_join(c->thread);
	bus_kv_mirror_free(c->watch_nodes);
	bus_kv_mirror_free(c->watch_leases);
	bus_kv_mirror_free(c->watch_offenders);
	coord_queue_stop(c->queue);
	if (c->source) {
		g_source_destroy(c->source);
		g_source_unref(c->source);
	}
	coord_queue_free(c->queue);
	for (guint p = 0; p < c->cfg.partitions; p++)
		if (c->parts[p].snap)
			g_bytes_unref(c->parts[p].snap);
	g_free(c->parts);
	g_hash_table_destroy(c->off_ops);
	g_queue_clear(&c->off_order);
	g_queue_clear_full(&c->req_out, req_out_free);
	g_queue_clear_full(&c->pub_out, pub_out_free);
	g_hash_table_destroy(c->serving);
	g_ptr_array_unref(c->nodes);
	coord_fence_free(c->fence);
	g_free(c->node_info);
	g_free(c->offenders);
	g_free(c->suppressions);
	g_free(c->node);
	g_free(c->alert_group);
	g_free(c->history_position);
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->wake);
	g_free(c);
}
