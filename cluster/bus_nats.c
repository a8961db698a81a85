/* The bus (bus.h) on NATS JetStream through libnats: the publish buffer and its sender
 * thread, stream and bucket set-up, ordered and durable consumers, key-value records by
 * revision, chunked partition snapshots with an atomic commit record, request/reply.
 * libnats calls back on its own threads (acks, messages, connection events): every such
 * callback takes Bus.lock only briefly and never calls libnats while holding it. */
#include "bus.h"

#include <nats/nats.h>
#include <string.h>

/* Publishes in flight at once (unacknowledged js_PublishMsgAsync calls); libnats' own
 * limit is set above this so that its PublishAsync never stalls the sender. */
#define PUB_WINDOW 1024
/* One attempt's wait for its ack; an item is retried until timeout_ms of attempts made
 * while connected have passed (a leader election after a server's loss takes seconds). */
#define PUB_ATTEMPT_MAX_MS 2000
#define PUB_BACKOFF_MIN_US (20 * G_TIME_SPAN_MILLISECOND)
#define PUB_BACKOFF_MAX_US (1000 * G_TIME_SPAN_MILLISECOND)
/* The flows stream's duplicate window: retries of publishes only (doc/cluster.md). */
#define FLOWS_DEDUP_MS (2 * 60 * 1000)
/* Snapshot chunks: below the server's max_payload (headers need room), at most this. */
#define SNAP_CHUNK_MAX (1u << 20)
#define SNAP_HEADER_ROOM 2048
#define SNAP_FORMAT "spamflow-snap 1"
#define HDR_MSG_ID "Nats-Msg-Id"
#define HDR_SNAP_ID "Spamflow-Snap-Id"
#define HDR_KV_OP "KV-Operation"
#define META_KEY_PARTITIONS "partitions"

G_DEFINE_QUARK(bus - error - quark, bus_error)

/* One bus_publish() payload, owned by the bus until acknowledged or failed. The natsMsg
 * (subject, Nats-Msg-Id header, data) is built once by bus_publish(); libnats owns it while
 * it is in flight and hands it back to on_ack(), which keeps it for a retry. */
typedef struct {
	natsMsg *msg;
	gsize cost;	    /* bytes counted against publish_buffer */
	gsize len;	    /* payload bytes (bytes_out) */
	guint64 seq;	    /* taken order: retries go back in this order */
	guint epoch;	    /* connection the deadline belongs to */
	gint64 deadline_us; /* fail after this (attempts while connected) */
	gint64 not_before_us;
	guint attempts;
	guint64 weight; /* what the caller counts in it (bus_publish_weighted()) */
	gboolean keep;	/* never given up while the bus answers (bus_publish_keep()) */
} PubItem;

struct BusSub {
	Bus *bus;
	natsSubscription *sub;
	BusMsgFunc fn;
	BusServeFunc serve;
	gpointer user_data;
	gboolean ack; /* durable: acknowledge after fn */
	GThread *puller; /* durable: the thread fetching its messages (a pull consumer) */
	gboolean stop;   /* ... told to stop (under lock) */
	gint64 open_until_us; /* ... its last pull request may still be open on the server until
			       * then (it returned with fewer than asked before its wait) */
	GMutex lock;
	GCond cond;
	gboolean complete; /* libnats: closed, and the handler has returned for good */
	/* js_Subscribe can deliver before it returns, and still fail (a consumer the server
	 * made after the request timed out): the handler holds messages until it knows */
	enum { SUB_PENDING, SUB_ACTIVE, SUB_FAILED } state;
	guint busy; /* on_stream_msg() calls in fn now (under lock) */
};

struct Bus {
	BusConfig cfg; /* its strings point at the copies below */
	char *servers, *node, *creds_file, *user, *password_file, *token_file, *tls_ca, *tls_cert,
	    *tls_key;
	char *ctl_subject; /* spamflow.ctl.<node> */
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	GThread *sender;

	GMutex lock;	      /* everything below */
	GCond wake;	      /* the sender: work, connection change, closing */
	GCond idle;	      /* bus_flush(): nothing left; bus_free(): the closed callback ran */
	GQueue queue;	      /* PubItem waiting to be sent, by seq */
	GHashTable *inflight; /* natsMsg* -> PubItem, handed to libnats */
	guint64 next_seq;
	guint epoch; /* connections made so far */
	gboolean closing, nc_closed;
	gboolean sent_async;	/* libnats' async-publish state exists (see bus_free) */
	GPtrArray *subs;	/* BusSub* not yet unsubscribed */
	GPtrArray *failed_subs; /* BusSub* of failed js_Subscribe calls (see sub_failed) */
	GPtrArray *left_subs;	/* BusSub* closed while leaving with the servers away (sub_leave) */
	gboolean leaving;	/* bus_leaving() */
	GArray *kept_watches;	/* KeptWatch: KV watches destroyed after the connection's close */
	BusStats st;
	gint64 warn_us; /* rate limit of publish-failure warnings */
	struct BusHooks *hooks; /* the connection callbacks' closure */
	/* a test's fault (SPAMFLOW_TEST_LOSE_FLOWS=N): the first delivery of each flow message
	 * whose stream sequence is a multiple of N is not handed on, as if libnats had lost it
	 * (tests/system/cluster_recover.py); lose_hi: the highest sequence lost so far */
	guint64 lose_every, lose_hi;
	/* monotonic: the last reconnect, and the last missed heartbeat, mismatch or slow
	 * consumer libnats told (it makes its ordered consumers again after each, on a thread
	 * of its own: bus_settled()) */
	gint64 reconnected_us, async_error_us;
};

/* What libnats' connection callbacks get as their closure instead of the Bus. They can run
 * after bus_free() has waited for on_closed: an error posted after the close (a heartbeat
 * missed by a KV watch kept for the close, whose destruction comes after it) is delivered on
 * libnats' callback thread later; ASan caught on_async_error writing into a freed Bus in
 * cluster-bus. bus_free() sets `bus` to NULL (waiting for a callback under way) before it
 * frees anything they touch; the hooks are freed by bus_shutdown_library(), once libnats'
 * threads are gone. */
typedef struct BusHooks {
	GMutex lock; /* held by a callback for its whole run */
	Bus *bus;    /* NULL once bus_free() is past the connection */
} BusHooks;

static GMutex all_hooks_lock;
static GPtrArray *all_hooks; /* BusHooks* of every bus made, for bus_shutdown_library() */

static BusHooks *
hooks_new(Bus *bus)
{
	BusHooks *h = g_new0(BusHooks, 1);
	g_mutex_init(&h->lock);
	h->bus = bus;
	g_mutex_lock(&all_hooks_lock);
	if (all_hooks == NULL)
		all_hooks = g_ptr_array_new();
	g_ptr_array_add(all_hooks, h);
	g_mutex_unlock(&all_hooks_lock);
	return h;
}

static void
hooks_free(gpointer p)
{
	BusHooks *h = p;
	g_mutex_clear(&h->lock);
	g_free(h);
}

/* The bus of a callback's closure, with its hooks held until hooks_leave(); NULL (nothing
 * held) once the bus is gone. */
static Bus *
hooks_enter(void *closure)
{
	BusHooks *h = closure;
	g_mutex_lock(&h->lock);
	if (h->bus == NULL) {
		g_mutex_unlock(&h->lock);
		return NULL;
	}
	return h->bus;
}

static void
hooks_leave(void *closure)
{
	g_mutex_unlock(&((BusHooks *)closure)->lock);
}

static void bus_sub_free(BusSub *bs);
static void left_subs_free(Bus *bus);

/* A KV watch a stopping mirror leaves to bus_free(): destroyed once the connection is
 * closed, when unsubscribing its ordered consumer no longer asks the server to delete it.
 * libnats 3.4 deletes it by a name that its own re-creation of the consumer (after missed
 * heartbeats: an outage of the servers) may free meanwhile: a use after free ASan caught in
 * cluster-outage, at the node's stop. */
typedef struct {
	kvWatcher *w;
	kvStore *kv;
} KeptWatch;

/* ---- small helpers ---- */

/* Wait on cond under lock until *flag is set or the monotonic deadline passes; the flag's
 * value then. */
static gboolean
flag_wait(GMutex *lock, GCond *cond, const gboolean *flag, gint64 until)
{
	g_mutex_lock(lock);
	while (!*flag)
		if (!g_cond_wait_until(cond, lock, until))
			break;
	gboolean set = *flag;
	g_mutex_unlock(lock);
	return set;
}

static gint64
attempt_ms(const Bus *bus)
{
	return CLAMP(bus->cfg.timeout_ms, 100, PUB_ATTEMPT_MAX_MS);
}

static void set_last_error(Bus *bus, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void
set_last_error(Bus *bus, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_vsnprintf(bus->st.last_error, sizeof(bus->st.last_error), fmt, ap);
	va_end(ap);
}

/* libnats' own words for the last failure on this thread (its error stack's top). */
static const char *
nats_text(natsStatus s)
{
	natsStatus ls = NATS_OK;
	const char *t = nats_GetLastError(&ls);
	if (t != NULL && *t != '\0' && ls == s)
		return t;
	return natsStatus_GetText(s);
}

static gboolean fail_nats(GError **error, BusError code, natsStatus s, jsErrCode jerr,
			  const char *fmt, ...) G_GNUC_PRINTF(5, 6);
static gboolean
fail_nats(GError **error, BusError code, natsStatus s, jsErrCode jerr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (jerr != 0)
		g_set_error(error, BUS_ERROR, code, "%s: %s (jetstream error %d)", what,
			    nats_text(s), (int)jerr);
	else
		g_set_error(error, BUS_ERROR, code, "%s: %s", what, nats_text(s));
	return FALSE;
}

static void
js_opts(Bus *bus, jsOptions *jo)
{
	jsOptions_Init(jo);
	jo->Wait = bus->cfg.timeout_ms;
}

static gboolean
not_found(natsStatus s, jsErrCode jerr)
{
	return s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr || jerr == JSStreamNotFoundErr ||
	       jerr == JSConsumerNotFoundErr;
}

/* The first line of path (a password or token kept out of the configuration). */
static char *
read_first_line(const char *what, const char *path, GError **error)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) e = NULL;
	if (!g_file_get_contents(path, &text, NULL, &e)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "cluster %s %s: %s", what, path,
			    e->message);
		return NULL;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (*text == '\0') {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "cluster %s %s: empty first line",
			    what, path);
		return NULL;
	}
	return g_steal_pointer(&text);
}

static gboolean
readable(const char *what, const char *path, GError **error)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) e = NULL;
	if (!g_file_get_contents(path, &text, NULL, &e)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "cluster %s %s: %s", what, path,
			    e->message);
		return FALSE;
	}
	return TRUE;
}

static gboolean
set(const char *s)
{
	return s != NULL && *s != '\0';
}

/* ---- connection events (libnats' callback thread, in order) ---- */

static void
on_connected(natsConnection *nc, void *closure)
{
	Bus *bus = hooks_enter(closure);
	(void)nc;
	if (bus == NULL)
		return;
	g_mutex_lock(&bus->lock);
	bus->epoch++;
	g_cond_broadcast(&bus->wake);
	g_mutex_unlock(&bus->lock);
	hooks_leave(closure);
}

static void
on_reconnected(natsConnection *nc, void *closure)
{
	Bus *bus = hooks_enter(closure);
	(void)nc;
	if (bus == NULL)
		return;
	g_mutex_lock(&bus->lock);
	bus->epoch++;
	bus->st.reconnects++;
	bus->reconnected_us = g_get_monotonic_time();
	g_cond_broadcast(&bus->wake);
	g_mutex_unlock(&bus->lock);
	hooks_leave(closure);
}

static void
on_disconnected(natsConnection *nc, void *closure)
{
	Bus *bus = hooks_enter(closure);
	(void)nc;
	if (bus == NULL)
		return;
	g_mutex_lock(&bus->lock);
	if (!bus->closing)
		set_last_error(bus, "disconnected from the NATS server");
	g_mutex_unlock(&bus->lock);
	hooks_leave(closure);
}

static void
on_closed(natsConnection *nc, void *closure)
{
	Bus *bus = hooks_enter(closure);
	(void)nc;
	if (bus == NULL)
		return;
	g_mutex_lock(&bus->lock);
	bus->nc_closed = TRUE;
	g_cond_broadcast(&bus->idle);
	g_mutex_unlock(&bus->lock);
	hooks_leave(closure);
}

/* A watcher's error that libnats mends by itself: its ordered consumer, told of missed
 * heartbeats (a reconnect, a server's loss) or a gap, is made again from the last sequence
 * it delivered, in a thread of libnats' own. The watcher is kept: destroying it then races
 * with that thread (libnats 3.4 deletes the old consumer by a name the re-creation frees:
 * a use after free ASan caught in cluster-outage). */
static gboolean
watch_recovers(natsStatus s)
{
	return s == NATS_MISSED_HEARTBEAT || s == NATS_MISMATCH || s == NATS_SLOW_CONSUMER;
}

static void
on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	Bus *bus = hooks_enter(closure);
	const char *text = NULL;
	(void)sub;
	if (bus == NULL)
		return;
	/* the server's words where it gave some ("Permissions Violation for Publish to ...") */
	if (natsConnection_GetLastError(nc, &text) != err || text == NULL || *text == '\0')
		text = natsStatus_GetText(err);
	gint64 now = g_get_monotonic_time();
	g_mutex_lock(&bus->lock);
	bus->st.async_errors++;
	if (watch_recovers(err))
		bus->async_error_us = now;
	set_last_error(bus, "nats: %s", text);
	/* a permission refused is the admin's to fix: what is refused is retried meanwhile */
	if (now - bus->warn_us > 10 * G_USEC_PER_SEC) {
		bus->warn_us = now;
		g_warning("cluster bus: %s (said at most every 10 s)", bus->st.last_error);
	}
	g_mutex_unlock(&bus->lock);
	hooks_leave(closure);
}

static gboolean make_options(Bus *bus, natsOptions **out, gboolean probe, GError **error);

gboolean
bus_probe(Bus *bus, GError **error)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	if (!make_options(bus, &o, TRUE, error)) {
		natsOptions_Destroy(o);
		return FALSE;
	}
	natsStatus s = natsConnection_Connect(&nc, o);
	if (s == NATS_OK) {
		natsConnection_Close(nc);
		natsConnection_Destroy(nc);
		natsOptions_Destroy(o);
		return TRUE;
	}
	const char *text = nats_text(s);
	/* libnats' words start with its source position: "(conn.c:733): " */
	if (text[0] == '(' && strstr(text, "): ") != NULL)
		text = strstr(text, "): ") + 3;
	g_autofree char *why = g_strdup(text);
	/* a server that wants a client certificate it did not get just closes the connection */
	if (s == NATS_PROTOCOL_ERROR && strstr(why, "Expected 'PONG'") != NULL) {
		g_free(why);
		why = g_strdup("the server closed the connection (does it require a TLS client "
			       "certificate, tls_cert and tls_key?)");
	}
	g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "%s: %s", natsStatus_GetText(s), why);
	g_mutex_lock(&bus->lock);
	set_last_error(bus, "cannot connect: %s: %s", natsStatus_GetText(s), why);
	g_mutex_unlock(&bus->lock);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	return FALSE;
}

/* ---- the publish buffer ---- */

static void
pub_item_free(PubItem *it)
{
	natsMsg_Destroy(it->msg);
	g_free(it);
}

static gint
pub_item_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
	const PubItem *x = a, *y = b;
	(void)unused;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lock held: an item has left the buffer (acknowledged or failed). */
static void
pub_done(Bus *bus, PubItem *it)
{
	bus->st.buffered -= it->cost;
	if (g_queue_is_empty(&bus->queue) && g_hash_table_size(bus->inflight) == 0)
		g_cond_broadcast(&bus->idle);
}

gboolean
bus_publish(Bus *bus, const char *subject, const void *data, gsize len, const char *msg_id)
{
	return bus_publish_weighted(bus, subject, data, len, msg_id, 0);
}

static gboolean publish_item(Bus *bus, const char *subject, const void *data, gsize len,
			     const char *msg_id, guint64 weight, gboolean keep, guint64 *ticket);

gboolean
bus_publish_keep(Bus *bus, const char *subject, const void *data, gsize len, const char *msg_id,
		 guint64 *ticket)
{
	return publish_item(bus, subject, data, len, msg_id, 0, TRUE, ticket);
}

gboolean
bus_done_through(Bus *bus, guint64 ticket)
{
	if (ticket == 0)
		return TRUE;
	g_mutex_lock(&bus->lock);
	/* the queue is in taken order; the items in flight (at most PUB_WINDOW) in none */
	PubItem *head = g_queue_peek_head(&bus->queue);
	gboolean done = head == NULL || head->seq >= ticket;
	GHashTableIter iter;
	gpointer v;
	g_hash_table_iter_init(&iter, bus->inflight);
	while (done && g_hash_table_iter_next(&iter, NULL, &v))
		done = ((PubItem *)v)->seq >= ticket;
	g_mutex_unlock(&bus->lock);
	return done;
}

gboolean
bus_publish_weighted(Bus *bus, const char *subject, const void *data, gsize len,
		     const char *msg_id, guint64 weight)
{
	return publish_item(bus, subject, data, len, msg_id, weight, FALSE, NULL);
}

static gboolean
publish_item(Bus *bus, const char *subject, const void *data, gsize len, const char *msg_id,
	     guint64 weight, gboolean keep, guint64 *ticket)
{
	gsize cost = len + strlen(subject) + strlen(msg_id);
	natsMsg *m = NULL;

	/* the last eighth is kept for bus_publish_keep()'s: a collector's flow batches filling
	 * the buffer of a slow bus do not refuse the events of the node's partitions */
	guint64 room = keep ? bus->cfg.publish_buffer
			    : bus->cfg.publish_buffer - bus->cfg.publish_buffer / 8;
	g_mutex_lock(&bus->lock);
	if (bus->closing || cost > room || bus->st.buffered > room - cost || len > G_MAXINT) {
		bus->st.dropped++;
		g_mutex_unlock(&bus->lock);
		return FALSE;
	}
	bus->st.buffered += cost; /* reserved while the message is built without the lock */
	g_mutex_unlock(&bus->lock);

	/* natsMsg_Create copies; neither call does I/O or waits on the connection */
	natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, HDR_MSG_ID, msg_id);
	g_mutex_lock(&bus->lock);
	if (s != NATS_OK) {
		bus->st.buffered -= cost;
		bus->st.dropped++;
		set_last_error(bus, "publish to %s: %s", subject, natsStatus_GetText(s));
		g_mutex_unlock(&bus->lock);
		natsMsg_Destroy(m);
		return FALSE;
	}
	PubItem *it = g_new0(PubItem, 1);
	it->msg = m;
	it->cost = cost;
	it->len = len;
	it->seq = bus->next_seq++;
	if (ticket != NULL)
		*ticket = it->seq + 1; /* 0 stays "none" */
	it->epoch = G_MAXUINT;
	it->weight = weight;
	it->keep = keep;
	g_queue_push_tail(&bus->queue, it);
	g_cond_signal(&bus->wake);
	g_mutex_unlock(&bus->lock);
	return TRUE;
}

/* Lock held: back into the queue, in taken order, not before a backoff. */
static void
pub_requeue(Bus *bus, PubItem *it, gint64 now)
{
	gint64 backoff = PUB_BACKOFF_MIN_US << MIN(it->attempts, 6u);
	it->not_before_us = now + MIN(backoff, PUB_BACKOFF_MAX_US);
	g_queue_insert_sorted(&bus->queue, it, pub_item_cmp, NULL);
	g_cond_signal(&bus->wake);
}

/* A stream's answer to one async publish, or libnats' timeout (its thread). */
static void
on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	Bus *bus = closure;
	gboolean connected = natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
	gint64 now = g_get_monotonic_time();
	gboolean destroy = TRUE;
	(void)js;

	g_mutex_lock(&bus->lock);
	PubItem *it = g_hash_table_lookup(bus->inflight, msg);
	if (it == NULL) {
		g_mutex_unlock(&bus->lock);
		natsMsg_Destroy(msg);
		return;
	}
	g_hash_table_remove(bus->inflight, msg);
	it->msg = NULL; /* msg is the one in the item: destroyed below or kept */
	if (pa != NULL) {
		if (pa->Duplicate)
			bus->st.duplicates++;
		else
			bus->st.published++;
		if (it->keep && g_log_get_debug_enabled()) {
			const char *mid = NULL;
			(void)natsMsgHeader_Get(msg, HDR_MSG_ID, &mid);
			g_debug("cluster bus: %s stored at %s sequence %" PRIu64 "%s",
				mid != NULL ? mid : "?", pa->Stream, pa->Sequence,
				pa->Duplicate ? " (a duplicate)" : "");
		}
		bus->st.bytes_out += it->len;
		pub_done(bus, it);
		g_free(it);
	} else {
		natsStatus err = pae != NULL ? pae->Err : NATS_ERR;
		jsErrCode code = pae != NULL ? pae->ErrCode : 0;
		/* refused for good: too big for the server or the stream */
		gboolean permanent =
		    err == NATS_MAX_PAYLOAD || code == JSStreamMessageExceedsMaximumErr;
		/* no responders: the stream has no leader (a cluster still electing after a
		 * restart, an outage of its majority): the bus is away, as when disconnected,
		 * and the item's clock starts again with its next attempt */
		gboolean away = err == NATS_NO_RESPONDERS;
		gboolean expired = !away && !it->keep && connected && it->epoch == bus->epoch &&
				   now >= it->deadline_us;
		if (away)
			it->epoch = G_MAXUINT;
		set_last_error(bus, "publish to %s: %s", natsMsg_GetSubject(msg),
			       pae != NULL && pae->ErrText != NULL ? pae->ErrText
								   : natsStatus_GetText(err));
		if (permanent || expired) {
			bus->st.failed++;
			bus->st.failed_weight += it->weight;
			if (now - bus->warn_us > 10 * G_USEC_PER_SEC) {
				bus->warn_us = now;
				g_warning("cluster bus: %s: given up after %u attempts (counted in "
					  "stats, said at most every 10 s)",
					  bus->st.last_error, it->attempts);
			}
			pub_done(bus, it);
			g_free(it);
		} else {
			bus->st.retried++;
			it->msg = msg;
			destroy = FALSE;
			pub_requeue(bus, it, now);
		}
	}
	g_mutex_unlock(&bus->lock);
	if (destroy)
		natsMsg_Destroy(msg);
}

/* The sender: takes items off the queue in order while connected and hands them to
 * js_PublishMsgAsync, at most PUB_WINDOW in flight. Never holds the lock in libnats. */
static gpointer
sender_main(gpointer data)
{
	Bus *bus = data;
	jsPubOptions po;

	g_mutex_lock(&bus->lock);
	while (!bus->closing) {
		g_mutex_unlock(&bus->lock);
		gboolean connected = natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
		g_mutex_lock(&bus->lock);
		if (bus->closing)
			break;
		gint64 now = g_get_monotonic_time();
		PubItem *it = g_queue_peek_head(&bus->queue);
		if (it == NULL || !connected || g_hash_table_size(bus->inflight) >= PUB_WINDOW ||
		    it->not_before_us > now) {
			/* the poll covers what no callback announces: a connection coming up
			 * between the status check and the wait, a backoff ending */
			gint64 until = now + 100 * G_TIME_SPAN_MILLISECOND;
			if (it != NULL && connected && it->not_before_us > now)
				until = MIN(until, it->not_before_us);
			g_cond_wait_until(&bus->wake, &bus->lock, until);
			continue;
		}
		g_queue_pop_head(&bus->queue);
		if (it->epoch != bus->epoch) {
			it->epoch = bus->epoch;
			it->deadline_us = now + bus->cfg.timeout_ms * G_TIME_SPAN_MILLISECOND;
		}
		it->attempts++;
		natsMsg *m = it->msg;
		g_hash_table_insert(bus->inflight, m, it);
		bus->sent_async = TRUE;
		g_mutex_unlock(&bus->lock);

		jsPubOptions_Init(&po);
		po.MaxWait = attempt_ms(bus);
		natsStatus s = js_PublishMsgAsync(bus->js, &m, &po);

		g_mutex_lock(&bus->lock);
		if (s != NATS_OK) {
			/* not sent, or sent with its answer not registered: ours again (m is
			 * still set), unless the ack handler got there first */
			if (m != NULL && g_hash_table_remove(bus->inflight, m)) {
				bus->st.retried++;
				set_last_error(bus, "publish: %s", nats_text(s));
				pub_requeue(bus, it, g_get_monotonic_time());
			}
		}
	}
	g_mutex_unlock(&bus->lock);
	return NULL;
}

gboolean
bus_flush(Bus *bus, gint64 timeout_ms)
{
	gint64 until = g_get_monotonic_time() + timeout_ms * G_TIME_SPAN_MILLISECOND;
	gboolean ok = TRUE;
	g_mutex_lock(&bus->lock);
	while (!g_queue_is_empty(&bus->queue) || g_hash_table_size(bus->inflight) > 0) {
		if (!g_cond_wait_until(&bus->idle, &bus->lock, until)) {
			ok = g_queue_is_empty(&bus->queue) && g_hash_table_size(bus->inflight) == 0;
			break;
		}
	}
	g_mutex_unlock(&bus->lock);
	return ok;
}

/* ---- life cycle ---- */

static gboolean
check_config(const BusConfig *cfg, GError **error)
{
	if (!set(cfg->servers) || strspn(cfg->servers, ", \t") == strlen(cfg->servers)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "cluster: no NATS server URL");
		return FALSE;
	}
	if (!set(cfg->node) || strpbrk(cfg->node, " \t\r\n.*>") != NULL) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster node name '%s': empty or with a space, '.', '*' or '>'",
			    cfg->node != NULL ? cfg->node : "");
		return FALSE;
	}
	if (cfg->partitions == 0 || cfg->replicas == 0 || cfg->replicas > 5) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster: partitions %u, replicas %u (need partitions >= 1, replicas "
			    "1 to 5)",
			    cfg->partitions, cfg->replicas);
		return FALSE;
	}
	if (cfg->timeout_ms <= 0 || cfg->publish_buffer == 0) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster: timeout and publish buffer must be > 0");
		return FALSE;
	}
	if (set(cfg->password_file) && !set(cfg->user)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster: a password file without a user");
		return FALSE;
	}
	if (set(cfg->tls_cert) != set(cfg->tls_key)) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "cluster: a TLS certificate needs its key and the key its certificate");
		return FALSE;
	}
	return TRUE;
}

/* The bus's connection options (*out: the caller's to destroy, also on failure); probe: for
 * bus_probe()'s one attempt, with none of the bus's callbacks (on_closed would end it). */
static gboolean
make_options(Bus *bus, natsOptions **out, gboolean probe, GError **error)
{
	natsStatus s;
	g_auto(GStrv) parts = g_strsplit_set(bus->servers, ", \t", -1);
	g_autoptr(GPtrArray) urls = g_ptr_array_new();
	for (char **p = parts; *p != NULL; p++) {
		if (**p != '\0')
			g_ptr_array_add(urls, *p);
	}

	s = natsOptions_Create(out);
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster: nats options");
	natsOptions *o = *out;
	s = natsOptions_SetServers(o, (const char **)urls->pdata, (int)urls->len);
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster nats '%s'", bus->servers);
	/* "tried in turn": the configured order, not libnats' shuffle */
	natsOptions_SetNoRandomize(o, true);
	natsOptions_SetName(o, bus->node);
	natsOptions_SetTimeout(o, MIN(bus->cfg.timeout_ms, 2000));
	if (probe) {
		natsOptions_SetAllowReconnect(o, false);
		goto auth;
	}
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 250);
	natsOptions_SetReconnectJitter(o, 100, 1000);
	/* a dead server whose socket stays open (a frozen process, a cut link) is noticed
	 * within ~6 s rather than libnats' default 4 minutes */
	natsOptions_SetPingInterval(o, 2000);
	natsOptions_SetMaxPingsOut(o, 3);
	/* blocking calls fail at once when the connection drops (the caller retries);
	 * publishes never wait in libnats: the sender only sends while connected */
	natsOptions_SetFailRequestsOnDisconnect(o, true);
	natsOptions_SetDisconnectedCB(o, on_disconnected, bus->hooks);
	natsOptions_SetReconnectedCB(o, on_reconnected, bus->hooks);
	natsOptions_SetClosedCB(o, on_closed, bus->hooks);
	natsOptions_SetErrorHandler(o, on_async_error, bus->hooks);
	s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, bus->hooks);
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster: nats options");

auth:
	if (set(bus->creds_file)) {
		if (!readable("creds file", bus->creds_file, error))
			return FALSE;
		s = natsOptions_SetUserCredentialsFromFiles(o, bus->creds_file, NULL);
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster creds file %s",
					 bus->creds_file);
	}
	if (set(bus->user)) {
		g_autofree char *pw = NULL;
		if (set(bus->password_file)) {
			pw = read_first_line("password file", bus->password_file, error);
			if (pw == NULL)
				return FALSE;
		}
		s = natsOptions_SetUserInfo(o, bus->user, pw != NULL ? pw : "");
		if (pw != NULL)
			memset(pw, 0, strlen(pw));
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster user");
	}
	if (set(bus->token_file)) {
		g_autofree char *tok = read_first_line("token file", bus->token_file, error);
		if (tok == NULL)
			return FALSE;
		s = natsOptions_SetToken(o, tok);
		memset(tok, 0, strlen(tok));
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster token");
	}
	if (set(bus->tls_ca) || set(bus->tls_cert)) {
		s = natsOptions_SetSecure(o, true);
		if (s == NATS_OK && set(bus->tls_ca)) {
			if (!readable("tls ca", bus->tls_ca, error))
				return FALSE;
			s = natsOptions_LoadCATrustedCertificates(o, bus->tls_ca);
		}
		if (s == NATS_OK && set(bus->tls_cert)) {
			if (!readable("tls cert", bus->tls_cert, error) ||
			    !readable("tls key", bus->tls_key, error))
				return FALSE;
			s = natsOptions_LoadCertificatesChain(o, bus->tls_cert, bus->tls_key);
		}
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster tls");
	}
	return TRUE;
}

Bus *
bus_new(const BusConfig *cfg, GError **error)
{
	if (!check_config(cfg, error))
		return NULL;
	Bus *bus = g_new0(Bus, 1);
	bus->cfg = *cfg;
#define COPY(f) bus->cfg.f = bus->f = g_strdup(cfg->f != NULL ? cfg->f : "")
	COPY(servers);
	COPY(node);
	COPY(creds_file);
	COPY(user);
	COPY(password_file);
	COPY(token_file);
	COPY(tls_ca);
	COPY(tls_cert);
	COPY(tls_key);
#undef COPY
	bus->ctl_subject = g_strdup_printf("%s.%s", BUS_SUBJECT_CTL, bus->node);
	g_mutex_init(&bus->lock);
	g_cond_init(&bus->wake);
	g_cond_init(&bus->idle);
	g_queue_init(&bus->queue);
	bus->inflight = g_hash_table_new(g_direct_hash, g_direct_equal);
	bus->subs = g_ptr_array_new();
	bus->failed_subs = g_ptr_array_new();
	bus->left_subs = g_ptr_array_new();
	bus->kept_watches = g_array_new(FALSE, FALSE, sizeof(KeptWatch));
	bus->st.buffered_max = cfg->publish_buffer;
	bus->hooks = hooks_new(bus);
	const char *lose = g_getenv("SPAMFLOW_TEST_LOSE_FLOWS");
	if (lose != NULL && *lose != '\0') {
		bus->lose_every = g_ascii_strtoull(lose, NULL, 10);
		g_warning("cluster bus: SPAMFLOW_TEST_LOSE_FLOWS=%s: a test's fault, flow "
			  "messages are lost on their way here",
			  lose);
	}

	if (!make_options(bus, &bus->opts, FALSE, error)) {
		bus_free(bus);
		return NULL;
	}
	/* NATS_NOT_YET_CONNECTED: libnats keeps trying in the background (on_connected) */
	natsStatus s = natsConnection_Connect(&bus->nc, bus->opts);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster nats '%s'", bus->servers);
		bus_free(bus);
		return NULL;
	}
	jsOptions jo;
	js_opts(bus, &jo);
	jo.PublishAsync.MaxPending = 4 * PUB_WINDOW;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = bus;
	s = natsConnection_JetStream(&bus->js, bus->nc, &jo);
	if (s != NATS_OK) {
		fail_nats(error, BUS_ERROR_CONFIG, s, 0, "cluster: jetstream context");
		bus_free(bus);
		return NULL;
	}
	bus->sender = g_thread_new("bus-send", sender_main, bus);
	return bus;
}

void
bus_free(Bus *bus)
{
	if (bus == NULL)
		return;
	g_mutex_lock(&bus->lock);
	bus->closing = TRUE;
	bus->leaving = TRUE;
	g_cond_broadcast(&bus->wake);
	g_mutex_unlock(&bus->lock);
	if (bus->sender != NULL)
		g_thread_join(bus->sender);

	/* (libnats 3.4's js_PublishAsyncGetPendingList crashes before a first async publish) */
	if (bus->js != NULL && bus->sent_async) {
		/* Take back what libnats still waits an answer for, then wait for handlers
		 * already running (libnats counts them pending until they return): after this
		 * on_ack is not running and will not run. */
		natsMsgList pending = {0};
		if (js_PublishAsyncGetPendingList(&pending, bus->js) == NATS_OK) {
			g_mutex_lock(&bus->lock);
			for (int i = 0; i < pending.Count; i++) {
				PubItem *it = g_hash_table_lookup(bus->inflight, pending.Msgs[i]);
				if (it != NULL) {
					g_hash_table_remove(bus->inflight, pending.Msgs[i]);
					it->msg = NULL; /* freed with the list */
					g_free(it);
				}
			}
			g_mutex_unlock(&bus->lock);
			natsMsgList_Destroy(&pending);
		}
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = 5000;
		(void)js_PublishAsyncComplete(bus->js, &po);
	}
	while (bus->subs->len > 0) {
		BusSub *bs = g_ptr_array_index(bus->subs, bus->subs->len - 1);
		g_warning("cluster bus: a subscription to %s left at bus_free(): unsubscribed",
			  natsSubscription_GetSubject(bs->sub));
		bus_unsubscribe(bs);
	}
	if (bus->js != NULL)
		jsCtx_Destroy(bus->js);
	if (bus->nc != NULL) {
		/* on_closed: the connection is closed. A callback libnats queues after it (an
		 * error that a kept watch's destruction below posts) finds the hooks emptied
		 * further down (BusHooks) */
		natsConnection_Close(bus->nc);
		if (!flag_wait(&bus->lock, &bus->idle, &bus->nc_closed,
			       g_get_monotonic_time() + 5 * G_USEC_PER_SEC))
			g_warning("cluster bus: the NATS connection's close was not confirmed "
				  "within 5 s");
	}
	for (guint i = 0; i < bus->kept_watches->len; i++) {
		KeptWatch *k = &g_array_index(bus->kept_watches, KeptWatch, i);
		kvWatcher_Destroy(k->w);
		kvStore_Destroy(k->kv);
	}
	g_array_free(bus->kept_watches, TRUE);
	if (bus->nc != NULL)
		natsConnection_Destroy(bus->nc);
	natsOptions_Destroy(bus->opts);
	/* from here on a callback still queued in libnats finds no bus (BusHooks) */
	if (bus->hooks != NULL) {
		g_mutex_lock(&bus->hooks->lock);
		bus->hooks->bus = NULL;
		g_mutex_unlock(&bus->hooks->lock);
	}

	PubItem *it;
	while ((it = g_queue_pop_head(&bus->queue)) != NULL)
		pub_item_free(it);
	/* items libnats did not give back (a handler still running after 5 s): their
	 * messages are libnats' */
	GHashTableIter iter;
	gpointer v;
	g_hash_table_iter_init(&iter, bus->inflight);
	while (g_hash_table_iter_next(&iter, NULL, &v))
		g_free(v);
	g_hash_table_unref(bus->inflight);
	g_ptr_array_unref(bus->subs);
	/* their libnats subscriptions closed with the connection above */
	g_ptr_array_set_free_func(bus->failed_subs, (GDestroyNotify)bus_sub_free);
	g_ptr_array_unref(bus->failed_subs);
	left_subs_free(bus);
	g_cond_clear(&bus->wake);
	g_cond_clear(&bus->idle);
	g_mutex_clear(&bus->lock);
	g_free(bus->servers);
	g_free(bus->node);
	g_free(bus->creds_file);
	g_free(bus->user);
	g_free(bus->password_file);
	g_free(bus->token_file);
	g_free(bus->tls_ca);
	g_free(bus->tls_cert);
	g_free(bus->tls_key);
	g_free(bus->ctl_subject);
	g_free(bus);
}

void
bus_shutdown_library(void)
{
	/* process-wide: every Bus (and any other libnats user) must be gone */
	if (nats_CloseAndWait(5000) != NATS_OK) {
		g_warning("cluster bus: libnats did not shut down within 5 s");
		return; /* its threads may still call a bus's hooks: they stay */
	}
	g_mutex_lock(&all_hooks_lock);
	if (all_hooks != NULL) {
		g_ptr_array_set_free_func(all_hooks, hooks_free);
		g_clear_pointer(&all_hooks, g_ptr_array_unref);
	}
	g_mutex_unlock(&all_hooks_lock);
}

void
bus_leaving(Bus *bus)
{
	g_mutex_lock(&bus->lock);
	bus->leaving = TRUE;
	g_mutex_unlock(&bus->lock);
}

gboolean
bus_connected(Bus *bus)
{
	return natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
}

gboolean
bus_settled(Bus *bus, gint64 for_us)
{
	gint64 now = g_get_monotonic_time();
	g_mutex_lock(&bus->lock);
	gboolean calm = (bus->reconnected_us == 0 || now - bus->reconnected_us >= for_us) &&
			(bus->async_error_us == 0 || now - bus->async_error_us >= for_us);
	g_mutex_unlock(&bus->lock);
	return calm && bus_connected(bus);
}

/* The messages libnats dropped for bs's handler (its pending limits); bs in bus->subs, under
 * bus->lock (bus_unsubscribe() takes it out under the lock before closing it). */
static guint64
sub_dropped(BusSub *bs)
{
	int64_t n = 0;
	if (bs->sub == NULL || natsSubscription_GetDropped(bs->sub, &n) != NATS_OK || n < 0)
		return 0;
	return (guint64)n;
}

void
bus_get_stats(Bus *bus, BusStats *out)
{
	gboolean connected = bus_connected(bus);
	g_mutex_lock(&bus->lock);
	*out = bus->st;
	/* the closed subscriptions' drops are kept; the open ones' asked now */
	for (guint i = 0; i < bus->subs->len; i++)
		out->handler_dropped += sub_dropped(g_ptr_array_index(bus->subs, i));
	g_mutex_unlock(&bus->lock);
	out->connected = connected;
}

/* ---- set-up ---- */

static gint64
ms_to_ns(gint64 ms)
{
	return ms <= 0 ? 0 : ms * 1000000;
}

static gboolean
same_subjects(const jsStreamConfig *a, const jsStreamConfig *b)
{
	if (a->SubjectsLen != b->SubjectsLen)
		return FALSE;
	for (int i = 0; i < a->SubjectsLen; i++)
		if (g_strcmp0(a->Subjects[i], b->Subjects[i]) != 0)
			return FALSE;
	return TRUE;
}

/* Create the stream, or check its replicas and bring subjects, retention and limits to
 * want's. Two nodes setting up at once: the loser of the create updates instead. */
static gboolean
ensure_stream(Bus *bus, jsStreamConfig *want, GError **error)
{
	jsOptions jo;
	js_opts(bus, &jo);
	for (int attempt = 0; attempt < 3; attempt++) {
		jsStreamInfo *si = NULL;
		jsErrCode jerr = 0;
		natsStatus s = js_GetStreamInfo(&si, bus->js, want->Name, &jo, &jerr);
		if (s != NATS_OK && !not_found(s, jerr))
			return fail_nats(error, BUS_ERROR_IO, s, jerr, "stream %s", want->Name);
		if (s != NATS_OK) {
			jerr = 0;
			s = js_AddStream(NULL, bus->js, want, &jo, &jerr);
			if (s == NATS_OK)
				return TRUE;
			if (jerr == JSStreamNameExistErr)
				continue; /* made meanwhile by another node */
			return fail_nats(error, BUS_ERROR_IO, s, jerr, "creating stream %s",
					 want->Name);
		}
		jsStreamConfig *have = si->Config;
		if (have->Replicas != want->Replicas) {
			g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
				    "stream %s has %" G_GINT64_FORMAT
				    " replicas, the configuration "
				    "says %" G_GINT64_FORMAT " (change it with the nats tool, not "
				    "silently)",
				    want->Name, have->Replicas, want->Replicas);
			jsStreamInfo_Destroy(si);
			return FALSE;
		}
		gboolean same = same_subjects(have, want) && have->MaxAge == want->MaxAge &&
				have->MaxBytes == want->MaxBytes &&
				have->Duplicates == want->Duplicates &&
				have->Discard == want->Discard &&
				/* the server says -1 for none, libnats' default is 0: every node
				 * updated every stream at each start, and two at once were refused */
				MAX(have->MaxMsgsPerSubject, 0) == MAX(want->MaxMsgsPerSubject, 0) &&
				g_strcmp0(have->Description, want->Description) == 0;
		if (same) {
			jsStreamInfo_Destroy(si);
			return TRUE;
		}
		g_autofree char *was = g_strdup_printf(
		    "subjects %s, max age %" G_GINT64_FORMAT " s, max bytes %" G_GINT64_FORMAT
		    ", duplicate window %" G_GINT64_FORMAT " s",
		    same_subjects(have, want) ? "same" : "other", have->MaxAge / 1000000000,
		    have->MaxBytes, have->Duplicates / 1000000000);
		jsStreamInfo_Destroy(si);
		jerr = 0;
		s = js_UpdateStream(NULL, bus->js, want, &jo, &jerr);
		if (s == NATS_OK) {
			g_message("cluster bus: stream %s brought to this node's configuration (it had "
				  "%s)",
				  want->Name, was);
			return TRUE;
		}
		/* two nodes updating at once: nats-server 2.9.10 refused one with "subjects
		 * overlap with an existing stream" (cluster-e2e's collectors starting together):
		 * read it again, and again update only if it still differs */
		if (attempt + 1 < 3) {
			g_usleep(200 * G_TIME_SPAN_MILLISECOND);
			continue;
		}
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "updating stream %s", want->Name);
	}
	g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "stream %s: created and gone again",
		    want->Name);
	return FALSE;
}

/* A KV bucket as libnats makes it (js_CreateKeyValue), or the existing one checked
 * (replicas) and its TTL updated in place (the bucket is the stream KV_<bucket>). */
static gboolean
ensure_bucket(Bus *bus, const char *bucket, gint64 ttl_ms, GError **error)
{
	jsOptions jo;
	js_opts(bus, &jo);
	g_autofree char *stream = g_strdup_printf("KV_%s", bucket);
	for (int attempt = 0; attempt < 3; attempt++) {
		jsStreamInfo *si = NULL;
		jsErrCode jerr = 0;
		natsStatus s = js_GetStreamInfo(&si, bus->js, stream, &jo, &jerr);
		if (s != NATS_OK && !not_found(s, jerr))
			return fail_nats(error, BUS_ERROR_IO, s, jerr, "bucket %s", bucket);
		if (s != NATS_OK) {
			kvConfig kc;
			kvStore *kv = NULL;
			kvConfig_Init(&kc);
			kc.Bucket = bucket;
			kc.History = 1;
			kc.TTL = ms_to_ns(ttl_ms); /* libnats 3.4 passes it on as the max age: ns */
			kc.StorageType = js_FileStorage;
			kc.Replicas = (int)bus->cfg.replicas;
			s = js_CreateKeyValue(&kv, bus->js, &kc);
			kvStore_Destroy(kv);
			if (s == NATS_OK)
				return TRUE;
			if (attempt < 2)
				continue; /* perhaps made meanwhile by another node: look again */
			return fail_nats(error, BUS_ERROR_IO, s, 0, "creating bucket %s", bucket);
		}
		jsStreamConfig *have = si->Config;
		if (have->Replicas != (gint64)bus->cfg.replicas) {
			g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
				    "bucket %s has %" G_GINT64_FORMAT
				    " replicas, the configuration "
				    "says %u (change it with the nats tool, not silently)",
				    bucket, have->Replicas, bus->cfg.replicas);
			jsStreamInfo_Destroy(si);
			return FALSE;
		}
		gint64 age = ms_to_ns(ttl_ms);
		if (have->MaxAge != age) {
			have->MaxAge = age;
			/* the server wants the duplicate window within the age */
			have->Duplicates =
			    age > 0 ? MIN(age, ms_to_ns(FLOWS_DEDUP_MS)) : ms_to_ns(FLOWS_DEDUP_MS);
			jerr = 0;
			s = js_UpdateStream(NULL, bus->js, have, &jo, &jerr);
			jsStreamInfo_Destroy(si);
			if (s != NATS_OK)
				return fail_nats(error, BUS_ERROR_IO, s, jerr,
						 "updating bucket %s's TTL", bucket);
			return TRUE;
		}
		jsStreamInfo_Destroy(si);
		return TRUE;
	}
	g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "bucket %s: created and gone again", bucket);
	return FALSE;
}

/* The partition count is the cluster's for good (a host's partition is its hash modulo
 * the count): stored once, by create-if-absent, in the bucket spamflow_meta (no TTL) under
 * the key "partitions"; every later bus_setup() compares. */
static gboolean
check_partitions(Bus *bus, GError **error)
{
	char want[32];
	g_snprintf(want, sizeof(want), "%u", bus->cfg.partitions);
	g_autoptr(GError) e = NULL;
	guint64 rev = 0;
	if (bus_kv_create(bus, BUS_KV_META, META_KEY_PARTITIONS, want, strlen(want), &rev, &e))
		return TRUE;
	if (!g_error_matches(e, BUS_ERROR, BUS_ERROR_EXISTS)) {
		g_propagate_prefixed_error(error, g_steal_pointer(&e), "partition count: ");
		return FALSE;
	}
	g_autoptr(GBytes) have = NULL;
	if (!bus_kv_get(bus, BUS_KV_META, META_KEY_PARTITIONS, &have, &rev, error))
		return FALSE;
	const char *text = g_bytes_get_data(have, NULL);
	if (g_strcmp0(text, want) != 0) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "the cluster was made with %s partitions, this node is configured "
			    "with %u: the count is fixed for the life of a cluster (bucket %s, "
			    "key %s)",
			    text, bus->cfg.partitions, BUS_KV_META, META_KEY_PARTITIONS);
		return FALSE;
	}
	return TRUE;
}

/* What every stream of the cluster shares: file storage, the configured replicas, the
 * oldest dropped first at a limit. */
static void
stream_config(jsStreamConfig *sc, const BusConfig *c, const char *name, const char *desc,
	      const char **subjects, int n_subjects)
{
	jsStreamConfig_Init(sc);
	sc->Name = name;
	sc->Description = desc;
	sc->Subjects = subjects;
	sc->SubjectsLen = n_subjects;
	sc->Storage = js_FileStorage;
	sc->Replicas = c->replicas;
	sc->Discard = js_DiscardOld;
}

gboolean
bus_setup(Bus *bus, GError **error)
{
	const BusConfig *c = &bus->cfg;
	if (!ensure_bucket(bus, BUS_KV_META, 0, error) || !check_partitions(bus, error))
		return FALSE;

	g_autofree char *flows_desc =
	    g_strdup_printf("spamflow flow batches, %u partitions", c->partitions);
	const char *flows_subj[] = {BUS_SUBJECT_FLOWS ".*"};
	jsStreamConfig sc;
	stream_config(&sc, c, BUS_STREAM_FLOWS, flows_desc, flows_subj, 1);
	sc.MaxAge = ms_to_ns(c->flows_max_age_ms);
	sc.MaxBytes = c->flows_max_bytes > 0 ? (int64_t)c->flows_max_bytes : -1;
	sc.Duplicates = ms_to_ns(c->flows_max_age_ms > 0 ? MIN(FLOWS_DEDUP_MS, c->flows_max_age_ms)
							 : FLOWS_DEDUP_MS);
	if (!ensure_stream(bus, &sc, error))
		return FALSE;

	const char *alerts_subj[] = {BUS_SUBJECT_ALERTS};
	gint64 dedup = c->dedup_window_ms > 0 ? c->dedup_window_ms : c->flows_max_age_ms;
	if (dedup <= 0)
		dedup = FLOWS_DEDUP_MS;
	if (c->alerts_max_age_ms > 0)
		dedup = MIN(dedup, c->alerts_max_age_ms);
	stream_config(&sc, c, BUS_STREAM_ALERTS, "spamflow alert events", alerts_subj, 1);
	sc.MaxAge = ms_to_ns(c->alerts_max_age_ms);
	sc.Duplicates = ms_to_ns(dedup);
	if (!ensure_stream(bus, &sc, error))
		return FALSE;

	/* History readings: every node that keeps a store reads them all (from a position of
	 * its own), kept as long as the alerts and at most a quarter of the flows' max_bytes
	 * (JetStream reserves a stream's limit on every server: the readings are small, the
	 * stream only has to cover a node's absence); the alerts' duplicate window */
	const char *hist_subj[] = {BUS_SUBJECT_HISTORY ".*"};
	stream_config(&sc, c, BUS_STREAM_HISTORY,
		      "spamflow history readings, a slice per partition per message", hist_subj, 1);
	sc.MaxAge = ms_to_ns(c->alerts_max_age_ms);
	sc.MaxBytes = c->flows_max_bytes > 0 ? (int64_t)MAX(c->flows_max_bytes / 4, 1u << 20) : -1;
	sc.Duplicates = ms_to_ns(dedup);
	if (!ensure_stream(bus, &sc, error))
		return FALSE;

	/* Snapshots: chunks on spamflow.snap.<p>.chunk, the commit record naming them on
	 * spamflow.snap.<p>; bus_snapshot_put() purges what the newest commit replaced, so no
	 * age or per-subject limit (either could cut a snapshot still being read). */
	const char *snap_subj[] = {BUS_SUBJECT_SNAP ".*", BUS_SUBJECT_SNAP ".*.chunk"};
	stream_config(&sc, c, BUS_STREAM_SNAP, "spamflow partition snapshots", snap_subj, 2);
	sc.Duplicates = ms_to_ns(FLOWS_DEDUP_MS);
	if (!ensure_stream(bus, &sc, error))
		return FALSE;

	return ensure_bucket(bus, BUS_KV_LEASES, c->lease_ttl_ms, error) &&
	       ensure_bucket(bus, BUS_KV_NODES, c->node_ttl_ms, error) &&
	       ensure_bucket(bus, BUS_KV_OFFENDERS, 0, error) &&
	       ensure_bucket(bus, BUS_KV_SUPPRESSIONS, 0, error);
}

/* ---- consumers ---- */

static BusSub *
bus_sub_new(Bus *bus)
{
	BusSub *bs = g_new0(BusSub, 1);
	bs->bus = bus;
	g_mutex_init(&bs->lock);
	g_cond_init(&bs->cond);
	return bs;
}

static void
bus_sub_free(BusSub *bs)
{
	natsSubscription_Destroy(bs->sub);
	g_cond_clear(&bs->cond);
	g_mutex_clear(&bs->lock);
	g_free(bs);
}

static void
on_sub_complete(void *closure)
{
	BusSub *bs = closure;
	g_mutex_lock(&bs->lock);
	bs->complete = TRUE;
	g_cond_broadcast(&bs->cond);
	g_mutex_unlock(&bs->lock);
}

/* The subscription made: watch for its completion, remember it for bus_free(). */
static void
sub_set_state(BusSub *bs, int state)
{
	g_mutex_lock(&bs->lock);
	bs->state = state;
	g_cond_broadcast(&bs->cond);
	g_mutex_unlock(&bs->lock);
}

static BusSub *
bus_sub_started(Bus *bus, BusSub *bs)
{
	natsSubscription_SetOnCompleteCB(bs->sub, on_sub_complete, bs);
	g_mutex_lock(&bus->lock);
	g_ptr_array_add(bus->subs, bs);
	g_mutex_unlock(&bus->lock);
	sub_set_state(bs, SUB_ACTIVE);
	return bs;
}

/* A js_Subscribe that failed: libnats closed its subscription, but a delivery thread may
 * still hold a message for bs (waiting in on_stream_msg): told to drop it, bs is kept
 * until bus_free(), after the connection's close. */
static void
sub_failed(Bus *bus, BusSub *bs)
{
	sub_set_state(bs, SUB_FAILED);
	g_mutex_lock(&bus->lock);
	g_ptr_array_add(bus->failed_subs, bs);
	g_mutex_unlock(&bus->lock);
}

/* bus_msg_leave() during the current fn (delivery threads are libnats' own) */
static __thread gboolean leave_current;
static __thread gint64 time_current; /* bus_msg_time_ms() */
#define PULL_BATCH 16	   /* messages a durable's thread fetches at a time */
#define PULL_WAIT_MS 500   /* ... waiting this long for them (and to notice a stop) */
/* A message handed back is nak'ed without a delay: nats-server 2.9.10 left a message nak'ed
 * with one (1 s) pending for good, never redelivered, after a server of the cluster had been
 * killed and had come back (its /jsz: num_ack_pending 1, num_redelivered 0 for 40 s;
 * cluster-e2e lost the raised event that way). A plain nak puts it back in the consumer's
 * redelivery queue at once, without the timer. The stopping node does not fetch it again:
 * it stops fetching before it hands anything back (coord_leave()). */

gint64
bus_msg_time_ms(void)
{
	return time_current;
}

void
bus_msg_leave(void)
{
	leave_current = TRUE;
}

static void stream_msg_handle(BusSub *bs, natsMsg *msg);

static void
on_stream_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	BusSub *bs = closure;
	(void)nc;
	(void)sub;
	g_mutex_lock(&bs->lock);
	while (bs->state == SUB_PENDING)
		g_cond_wait(&bs->cond, &bs->lock);
	gboolean active = bs->state == SUB_ACTIVE;
	if (active)
		bs->busy++;
	g_mutex_unlock(&bs->lock);
	if (!active) {
		natsMsg_Destroy(msg);
		g_mutex_lock(&bs->bus->lock);
		bs->bus->st.unreadable++;
		g_mutex_unlock(&bs->bus->lock);
		return;
	}
	stream_msg_handle(bs, msg);
	g_mutex_lock(&bs->lock);
	bs->busy--;
	g_cond_broadcast(&bs->cond);
	g_mutex_unlock(&bs->lock);
}

/* One message to fn; a durable's acknowledged after it, or handed back (bus_msg_leave()). */
static void
stream_msg_handle(BusSub *bs, natsMsg *msg)
{
	Bus *bus = bs->bus;
	jsMsgMetaData *meta = NULL;
	leave_current = FALSE;
	gboolean read = natsMsg_GetMetaData(&meta, msg) == NATS_OK;
	gsize len = 0;
	if (read && G_UNLIKELY(bus->lose_every > 0) && !bs->ack &&
	    meta->Sequence.Stream % bus->lose_every == 0 &&
	    g_str_has_prefix(natsMsg_GetSubject(msg), BUS_SUBJECT_FLOWS ".")) {
		g_mutex_lock(&bus->lock);
		gboolean lose = meta->Sequence.Stream > bus->lose_hi;
		if (lose)
			bus->lose_hi = meta->Sequence.Stream;
		g_mutex_unlock(&bus->lock);
		if (lose) {
			g_message("cluster bus: a test's fault: flow message %" PRIu64 " lost",
				  meta->Sequence.Stream);
			jsMsgMetaData_Destroy(meta);
			natsMsg_Destroy(msg);
			return;
		}
	}
	if (read) {
		len = (gsize)MAX(natsMsg_GetDataLength(msg), 0);
		time_current = meta->Timestamp / 1000000;
		bs->fn(natsMsg_GetSubject(msg), meta->Sequence.Stream,
		       (const guint8 *)natsMsg_GetData(msg), len, bs->user_data);
		time_current = 0;
		jsMsgMetaData_Destroy(meta);
	}
	g_mutex_lock(&bus->lock);
	if (read) {
		bus->st.received++;
		bus->st.bytes_in += len;
	} else {
		bus->st.unreadable++;
	}
	g_mutex_unlock(&bus->lock);
	if (bs->ack && leave_current)
		/* handed back: redelivered to another subscriber, or to this node's next start */
		(void)natsMsg_Nak(msg, NULL);
	else if (bs->ack)
		(void)natsMsg_Ack(msg, NULL); /* lost: redelivered after AckWait */
	leave_current = FALSE;
	natsMsg_Destroy(msg);
}

BusSub *
bus_subscribe_from(Bus *bus, const char *stream, const char *subject, guint64 from_seq,
		   BusMsgFunc fn, gpointer user_data, GError **error)
{
	jsOptions jo;
	jsSubOptions so;
	jsErrCode jerr = 0;
	js_opts(bus, &jo);
	jsSubOptions_Init(&so);
	so.Stream = stream;
	/* libnats' ordered consumer: an ephemeral R1 push consumer with flow control and
	 * heartbeats, made again from the last delivered sequence + 1 when a gap or a missed
	 * heartbeat shows it lost (a server's loss, a reconnect) */
	so.Ordered = true;
	so.Config.Heartbeat = 2 * (int64_t)1000000000;
	if (from_seq == 0) {
		so.Config.DeliverPolicy = js_DeliverNew;
	} else {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = from_seq;
	}
	/* nats-server 2.9 places this R1 consumer on any of the stream's peers, one it has not
	 * yet noticed is dead included, and then never answers: short attempts, repeated
	 * within timeout_ms (libnats' own re-creation after a loss retries every heartbeat) */
	natsStatus s = NATS_TIMEOUT;
	gint64 until = g_get_monotonic_time() + bus->cfg.timeout_ms * G_TIME_SPAN_MILLISECOND;
	for (gint64 left = bus->cfg.timeout_ms; left > 0;
	     left = (until - g_get_monotonic_time()) / G_TIME_SPAN_MILLISECOND) {
		BusSub *bs = bus_sub_new(bus);
		bs->fn = fn;
		bs->user_data = user_data;
		jo.Wait = MIN(left, PUB_ATTEMPT_MAX_MS);
		jerr = 0;
		s = js_Subscribe(&bs->sub, bus->js, subject, on_stream_msg, bs, &jo, &so, &jerr);
		if (s == NATS_OK)
			return bus_sub_started(bus, bs);
		sub_failed(bus, bs);
		if (s != NATS_TIMEOUT)
			break;
	}
	fail_nats(error, BUS_ERROR_IO, s, jerr, "subscribing to %s (stream %s)", subject, stream);
	return NULL;
}

/* A durable's thread: fetch a few at a time and hand each to fn, until told to stop; what
 * was fetched and not handled when it stops is handed back. */
static gpointer
pull_thread(gpointer data)
{
	BusSub *bs = data;
	for (;;) {
		g_mutex_lock(&bs->lock);
		gboolean stop = bs->stop;
		g_mutex_unlock(&bs->lock);
		if (stop)
			break;
		natsMsgList list = {0};
		jsErrCode jerr = 0;
		gint64 issued = g_get_monotonic_time();
		natsStatus s = natsSubscription_Fetch(&list, bs->sub, PULL_BATCH, PULL_WAIT_MS, &jerr);
		bs->open_until_us =
		    s == NATS_OK && list.Count < PULL_BATCH
			? issued + (PULL_WAIT_MS + 100) * G_TIME_SPAN_MILLISECOND
			: 0;
		if (s != NATS_OK && s != NATS_TIMEOUT) {
			/* the bus away, a server lost: try again shortly */
			g_mutex_lock(&bs->lock);
			if (!bs->stop)
				g_cond_wait_until(&bs->cond, &bs->lock,
						  g_get_monotonic_time() + 200 * G_TIME_SPAN_MILLISECOND);
			g_mutex_unlock(&bs->lock);
		}
		for (int i = 0; i < list.Count; i++) {
			natsMsg *m = list.Msgs[i];
			list.Msgs[i] = NULL;
			g_mutex_lock(&bs->lock);
			stop = bs->stop;
			g_mutex_unlock(&bs->lock);
			if (stop) {
				(void)natsMsg_Nak(m, NULL);
				natsMsg_Destroy(m);
			} else {
				stream_msg_handle(bs, m);
			}
		}
		natsMsgList_Destroy(&list);
	}
	return NULL;
}

gboolean
bus_consumer_state(Bus *bus, const char *stream, const char *durable, BusConsumerState *out,
		   GError **error)
{
	jsOptions jo;
	jsErrCode jerr = 0;
	jsConsumerInfo *ci = NULL;
	js_opts(bus, &jo);
	natsStatus s = js_GetConsumerInfo(&ci, bus->js, stream, durable, &jo, &jerr);
	if (s != NATS_OK)
		return fail_nats(error, not_found(s, jerr) ? BUS_ERROR_NOT_FOUND : BUS_ERROR_IO, s,
				 jerr, "consumer %s on %s", durable, stream);
	out->delivered = ci->Delivered.Stream;
	out->ack_floor = ci->AckFloor.Stream;
	out->ack_pending = (guint64)MAX(ci->NumAckPending, 0);
	out->redelivered = (guint64)MAX(ci->NumRedelivered, 0);
	out->waiting = (guint64)MAX(ci->NumWaiting, 0);
	out->pending = ci->NumPending;
	jsConsumerInfo_Destroy(ci);
	return TRUE;
}

BusSub *
bus_subscribe_durable(Bus *bus, const char *stream, const char *subject, const char *durable,
		      BusMsgFunc fn, gpointer user_data, GError **error)
{
	jsOptions jo;
	jsErrCode jerr = 0;
	jsConsumerInfo *ci = NULL;
	js_opts(bus, &jo);

	/* A pull consumer, made here so that it outlives its subscribers, which share it: each
	 * fetches a few messages at a time, and a message fetched by a node that stopped before
	 * acknowledging it is fetched again after AckWait by whoever asks. (A push consumer
	 * with a deliver group was used first: nats-server 2.9.10 left messages pushed to a
	 * subscriber that stopped unacknowledged and never redelivered them.) */
	natsStatus s = js_GetConsumerInfo(&ci, bus->js, stream, durable, &jo, &jerr);
	if (s != NATS_OK && !not_found(s, jerr)) {
		fail_nats(error, BUS_ERROR_IO, s, jerr, "consumer %s on %s", durable, stream);
		return NULL;
	}
	if (s == NATS_OK && ci->Config != NULL && ci->Config->DeliverSubject != NULL &&
	    ci->Config->DeliverSubject[0] != '\0') {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG,
			    "consumer %s on %s is a push consumer (made by an older spamflowd): "
			    "delete it (nats consumer rm %s %s) and this node makes it again",
			    durable, stream, stream, durable);
		jsConsumerInfo_Destroy(ci);
		return NULL;
	}
	if (s != NATS_OK) {
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = durable;
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckPolicy = js_AckExplicit;
		/* what a subscriber that stopped had been sent (its last pull request's
		 * messages in flight) comes again after this; fn's own wait is shorter
		 * (coord.c: ALERT_HANDLE_WAIT_S) */
		cc.AckWait = 10 * (int64_t)1000000000;
		cc.FilterSubject = subject;
		cc.MaxAckPending = 1024; /* the push-back: no more unacknowledged than this */
		jerr = 0;
		s = js_AddConsumer(&ci, bus->js, stream, &cc, &jo, &jerr);
		if (s != NATS_OK && jerr != JSConsumerNameExistErr) {
			fail_nats(error, BUS_ERROR_IO, s, jerr, "creating consumer %s on %s",
				  durable, stream);
			return NULL;
		}
	}
	jsConsumerInfo_Destroy(ci);

	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Consumer = durable;
	so.ManualAck = true;
	BusSub *bs = bus_sub_new(bus);
	bs->fn = fn;
	bs->user_data = user_data;
	bs->ack = TRUE;
	jerr = 0;
	s = js_PullSubscribe(&bs->sub, bus->js, subject, durable, &jo, &so, &jerr);
	if (s != NATS_OK) {
		bus_sub_free(bs);
		fail_nats(error, BUS_ERROR_IO, s, jerr, "subscribing to consumer %s on %s", durable,
			  stream);
		return NULL;
	}
	bs->state = SUB_ACTIVE;
	g_mutex_lock(&bus->lock);
	g_ptr_array_add(bus->subs, bs);
	g_mutex_unlock(&bus->lock);
	bs->puller = g_thread_new("spamflow-pull", pull_thread, bs);
	return bs;
}

void
bus_sub_stop_fetching(BusSub *bs)
{
	if (bs == NULL || bs->puller == NULL)
		return;
	g_mutex_lock(&bs->lock);
	bs->stop = TRUE;
	g_cond_broadcast(&bs->cond);
	g_mutex_unlock(&bs->lock);
}

/* Close push consumer bs while the node is leaving (bus_leaving()) and the connection is
 * not up: unsubscribing would ask the servers to delete its consumer and wait out the
 * request's timeout, 2 s each (an analyzer of 64 partitions took over two minutes to stop
 * while the servers were away, past systemd's 90 s). Instead its handler is told to drop
 * what comes, a call in fn now is waited for, and bs is left to bus_free(), which
 * destroys it after the connection's close (left_subs_free()): the servers drop an
 * ephemeral consumer nobody listens to by themselves. FALSE: the handler did not return in time (bs is then kept,
 * never freed: a leak beats a crash). */
static gboolean
sub_leave(Bus *bus, BusSub *bs)
{
	gint64 until =
	    g_get_monotonic_time() + (bus->cfg.timeout_ms + 10000) * G_TIME_SPAN_MILLISECOND;
	g_mutex_lock(&bs->lock);
	bs->state = SUB_FAILED;
	g_cond_broadcast(&bs->cond);
	while (bs->busy > 0)
		if (!g_cond_wait_until(&bs->cond, &bs->lock, until))
			break;
	gboolean idle = bs->busy == 0;
	g_mutex_unlock(&bs->lock);
	if (!idle) {
		g_warning("cluster bus: subscription %s did not return: left allocated",
			  natsSubscription_GetSubject(bs->sub));
		return FALSE;
	}
	g_mutex_lock(&bus->lock);
	g_ptr_array_add(bus->left_subs, bs);
	g_mutex_unlock(&bus->lock);
	return TRUE;
}

/* bus_free(), after the connection's close: the consumers sub_leave() kept. libnats
 * closed them with the connection, and calls on_sub_complete() on their delivery threads,
 * which may come after the connection's own close: each is freed once it has (a use after
 * free ASan caught in cluster-outage when they were freed at once), or left allocated. */
static void
left_subs_free(Bus *bus)
{
	if (bus->left_subs->len > 0)
		g_message("cluster bus: %u consumers closed while the servers were away, left to "
			  "the connection's close (not deleted on the servers: they drop them)",
			  bus->left_subs->len);
	gint64 until = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	guint kept = 0;
	for (guint i = 0; i < bus->left_subs->len; i++) {
		BusSub *bs = g_ptr_array_index(bus->left_subs, i);
		if (flag_wait(&bs->lock, &bs->cond, &bs->complete, until))
			bus_sub_free(bs);
		else
			kept++;
	}
	if (kept > 0)
		g_warning("cluster bus: %u consumers not closed by libnats within 5 s: left "
			  "allocated",
			  kept);
	g_ptr_array_unref(bus->left_subs);
}

static void
bus_sub_close(BusSub *bs)
{
	Bus *bus = bs->bus;
	if (bs->puller != NULL) {
		/* a durable: its thread returns within a fetch's wait, fn not running after */
		g_mutex_lock(&bs->lock);
		bs->stop = TRUE;
		g_cond_broadcast(&bs->cond);
		g_mutex_unlock(&bs->lock);
		g_thread_join(bs->puller);
		bs->puller = NULL;
		/* What the server sends to a pull request still open (the last one returned
		 * early) would reach no one once unsubscribed, and come again only after
		 * AckWait: once it has expired, what came is taken (a request that does not
		 * wait) and handed back too. */
		gint64 left = bs->open_until_us - g_get_monotonic_time();
		if (left > 0)
			g_usleep((gulong)left);
		jsFetchRequest req;
		jsFetchRequest_Init(&req);
		req.Batch = PULL_BATCH;
		req.NoWait = true;
		req.Expires = 200 * (int64_t)1000000;
		natsMsgList rest = {0};
		if (natsSubscription_FetchRequest(&rest, bs->sub, &req) == NATS_OK)
			for (int i = 0; i < rest.Count; i++)
				(void)natsMsg_Nak(rest.Msgs[i], NULL);
		natsMsgList_Destroy(&rest);
		(void)natsSubscription_Unsubscribe(bs->sub);
		bus_sub_free(bs);
		return;
	}
	g_mutex_lock(&bus->lock);
	gboolean leaving = bus->leaving;
	g_mutex_unlock(&bus->lock);
	if (leaving && bs->serve == NULL && bus->nc != NULL &&
	    natsConnection_Status(bus->nc) != NATS_CONN_STATUS_CONNECTED) {
		/* a stream's consumer (on_stream_msg() counts its calls in fn; a core
		 * subscription such as bus_serve()'s asks the servers nothing to go) */
		(void)sub_leave(bus, bs);
		return;
	}
	natsStatus s = natsSubscription_Unsubscribe(bs->sub);
	if (s != NATS_OK && s != NATS_INVALID_SUBSCRIPTION && s != NATS_CONNECTION_CLOSED)
		g_message("cluster bus: unsubscribing %s: %s", natsSubscription_GetSubject(bs->sub),
			  nats_text(s));
	/* the handler may be running (or blocked pushing back): wait for its return */
	gint64 until =
	    g_get_monotonic_time() + (bus->cfg.timeout_ms + 10000) * G_TIME_SPAN_MILLISECOND;
	if (!flag_wait(&bs->lock, &bs->cond, &bs->complete, until)) {
		/* freeing it now could crash the handler: kept (a leak beats a crash) */
		g_warning("cluster bus: subscription %s did not complete: left allocated",
			  natsSubscription_GetSubject(bs->sub));
		return;
	}
	bus_sub_free(bs);
}

void
bus_unsubscribe(BusSub *sub)
{
	if (sub == NULL)
		return;
	Bus *bus = sub->bus;
	g_mutex_lock(&bus->lock);
	g_ptr_array_remove_fast(bus->subs, sub);
	bus->st.handler_dropped += sub_dropped(sub);
	g_mutex_unlock(&bus->lock);
	bus_sub_close(sub);
}

gboolean
bus_last_seq(Bus *bus, const char *stream, const char *subject, guint64 *seq, GError **error)
{
	jsOptions jo;
	jsErrCode jerr = 0;
	natsMsg *m = NULL;
	js_opts(bus, &jo);
	natsStatus s = js_GetLastMsg(&m, bus->js, stream, subject, &jo, &jerr);
	if (s != NATS_OK && not_found(s, jerr) && jerr != JSStreamNotFoundErr) {
		*seq = 0;
		return TRUE;
	}
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "last message of %s on %s", subject,
				 stream);
	*seq = natsMsg_GetSequence(m);
	natsMsg_Destroy(m);
	return TRUE;
}

/* ---- key-value ---- */

/* KV keys: [-/_=.a-zA-Z0-9]+, no leading or trailing '.' (the key is a subject's tail) */
static gboolean
kv_key_ok(const char *key, GError **error)
{
	gsize n = strlen(key);
	gboolean ok = n > 0 && key[0] != '.' && key[n - 1] != '.';
	for (gsize i = 0; ok && i < n; i++)
		ok = g_ascii_isalnum(key[i]) || strchr("-/_=.", key[i]) != NULL;
	if (!ok)
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "bad key '%s'", key);
	return ok;
}

typedef enum { EXPECT_ANY, EXPECT_NONE, EXPECT_REV } KvExpect;

/* One write to bucket: a value, or a delete marker (op "DEL"), optionally on condition of
 * the key's last revision. Done as libnats' kvStore does it (a publish to $KV.<b>.<key>),
 * here so that the stream's error code tells a conflict from a failure, and so that a
 * delete can be conditional (kvStore_Delete cannot in libnats 3.4). */
static natsStatus
kv_write(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	 const char *op, KvExpect expect, guint64 last_rev, guint64 *rev, jsErrCode *jerr)
{
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsPubOptions po;
	g_autofree char *subject = g_strdup_printf("$KV.%s.%s", bucket, key);
	*jerr = 0;
	if (len > G_MAXINT)
		return NATS_INVALID_ARG;
	natsStatus s = natsMsg_Create(&m, subject, NULL, value, (int)len);
	if (s == NATS_OK && op != NULL)
		s = natsMsgHeader_Set(m, HDR_KV_OP, op);
	if (s == NATS_OK) {
		jsPubOptions_Init(&po);
		po.MaxWait = bus->cfg.timeout_ms;
		if (expect == EXPECT_NONE)
			po.ExpectNoMessage = true;
		else if (expect == EXPECT_REV)
			po.ExpectLastSubjectSeq = last_rev;
		s = js_PublishMsg(&pa, bus->js, m, &po, jerr);
	}
	if (s == NATS_OK && rev != NULL)
		*rev = pa->Sequence;
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(m);
	return s;
}

/* The key's newest entry (a value or a delete marker). */
static natsStatus
kv_last(Bus *bus, const char *bucket, const char *key, natsMsg **m, jsErrCode *jerr)
{
	jsOptions jo;
	js_opts(bus, &jo);
	g_autofree char *stream = g_strdup_printf("KV_%s", bucket);
	g_autofree char *subject = g_strdup_printf("$KV.%s.%s", bucket, key);
	*jerr = 0;
	return js_GetLastMsg(m, bus->js, stream, subject, &jo, jerr);
}

static gboolean
kv_is_delete(natsMsg *m)
{
	const char *op = NULL;
	return natsMsgHeader_Get(m, HDR_KV_OP, &op) == NATS_OK && op != NULL &&
	       (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
}

static GBytes *
bytes_with_nul(const void *data, gsize len)
{
	char *copy = g_malloc(len + 1);
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	return g_bytes_new_take(copy, len);
}

gboolean
bus_kv_create(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	      guint64 *rev, GError **error)
{
	jsErrCode jerr;
	if (!kv_key_ok(key, error))
		return FALSE;
	natsStatus s = kv_write(bus, bucket, key, value, len, NULL, EXPECT_NONE, 0, rev, &jerr);
	if (s == NATS_OK)
		return TRUE;
	if (jerr != JSStreamWrongLastSequenceErr)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: create", bucket, key);
	/* a deleted key keeps its delete marker: create over it, on its revision */
	natsMsg *m = NULL;
	s = kv_last(bus, bucket, key, &m, &jerr);
	if (s == NATS_OK && kv_is_delete(m)) {
		guint64 del_rev = natsMsg_GetSequence(m);
		natsMsg_Destroy(m);
		s = kv_write(bus, bucket, key, value, len, NULL, EXPECT_REV, del_rev, rev, &jerr);
		if (s == NATS_OK)
			return TRUE;
		if (jerr != JSStreamWrongLastSequenceErr)
			return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: create", bucket,
					 key);
	} else {
		natsMsg_Destroy(m);
	}
	g_set_error(error, BUS_ERROR, BUS_ERROR_EXISTS, "%s/%s: the key holds a value", bucket,
		    key);
	return FALSE;
}

gboolean
bus_kv_update(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	      guint64 last_rev, guint64 *rev, GError **error)
{
	jsErrCode jerr;
	if (!kv_key_ok(key, error))
		return FALSE;
	if (last_rev == 0) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT, "%s/%s: update at revision 0",
			    bucket, key);
		return FALSE;
	}
	natsStatus s =
	    kv_write(bus, bucket, key, value, len, NULL, EXPECT_REV, last_rev, rev, &jerr);
	if (s == NATS_OK)
		return TRUE;
	if (jerr == JSStreamWrongLastSequenceErr) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT,
			    "%s/%s: not at revision %" G_GUINT64_FORMAT " (%s)", bucket, key,
			    last_rev, nats_text(s));
		return FALSE;
	}
	return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: update", bucket, key);
}

gboolean
bus_kv_put(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	   guint64 *rev, GError **error)
{
	jsErrCode jerr;
	if (!kv_key_ok(key, error))
		return FALSE;
	natsStatus s = kv_write(bus, bucket, key, value, len, NULL, EXPECT_ANY, 0, rev, &jerr);
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: put", bucket, key);
	return TRUE;
}

gboolean
bus_kv_get(Bus *bus, const char *bucket, const char *key, GBytes **value, guint64 *rev,
	   GError **error)
{
	jsErrCode jerr;
	natsMsg *m = NULL;
	if (!kv_key_ok(key, error))
		return FALSE;
	natsStatus s = kv_last(bus, bucket, key, &m, &jerr);
	if (s != NATS_OK && not_found(s, jerr) && jerr != JSStreamNotFoundErr) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "%s/%s: no such key", bucket,
			    key);
		return FALSE;
	}
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: get", bucket, key);
	if (kv_is_delete(m)) {
		natsMsg_Destroy(m);
		g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "%s/%s: deleted", bucket, key);
		return FALSE;
	}
	if (value != NULL)
		*value =
		    bytes_with_nul(natsMsg_GetData(m), (gsize)MAX(natsMsg_GetDataLength(m), 0));
	if (rev != NULL)
		*rev = natsMsg_GetSequence(m);
	natsMsg_Destroy(m);
	return TRUE;
}

gboolean
bus_kv_delete(Bus *bus, const char *bucket, const char *key, guint64 last_rev, GError **error)
{
	jsErrCode jerr;
	if (!kv_key_ok(key, error))
		return FALSE;
	natsStatus s = kv_write(bus, bucket, key, NULL, 0, "DEL",
				last_rev > 0 ? EXPECT_REV : EXPECT_ANY, last_rev, NULL, &jerr);
	if (s == NATS_OK)
		return TRUE;
	if (jerr == JSStreamWrongLastSequenceErr) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT,
			    "%s/%s: not at revision %" G_GUINT64_FORMAT " (%s)", bucket, key,
			    last_rev, nats_text(s));
		return FALSE;
	}
	return fail_nats(error, BUS_ERROR_IO, s, jerr, "%s/%s: delete", bucket, key);
}

static void
kv_entry_clear(gpointer p)
{
	BusKvEntry *e = p;
	g_free(e->key);
	if (e->value != NULL)
		g_bytes_unref(e->value);
}

void
bus_kv_entries_free(GArray *entries)
{
	if (entries != NULL)
		g_array_unref(entries);
}

static guint64
kv_read_max(const Bus *bus)
{
	return bus->cfg.kv_read_max > 0 ? bus->cfg.kv_read_max : BUS_KV_READ_MAX;
}

/* What an entry counts against kv_read_max: its key and value. */
static guint64
kv_entry_bytes(kvEntry *e)
{
	return strlen(kvEntry_Key(e)) + (guint64)MAX(kvEntry_ValueLen(e), 0);
}

GArray *
bus_kv_list(Bus *bus, const char *bucket, GError **error)
{
	kvStore *kv = NULL;
	kvWatcher *w = NULL;
	kvWatchOptions wo;
	natsStatus s = js_KeyValue(&kv, bus->js, bucket);
	if (s != NATS_OK) {
		fail_nats(error, not_found(s, 0) ? BUS_ERROR_NOT_FOUND : BUS_ERROR_IO, s, 0,
			  "bucket %s", bucket);
		return NULL;
	}
	/* a watcher from each key's last entry: libnats posts NULL once it has them all */
	kvWatchOptions_Init(&wo);
	wo.IgnoreDeletes = true;
	wo.Timeout = bus->cfg.timeout_ms;
	s = kvStore_WatchAll(&w, kv, &wo);
	if (s != NATS_OK) {
		fail_nats(error, BUS_ERROR_IO, s, 0, "listing bucket %s", bucket);
		kvStore_Destroy(kv);
		return NULL;
	}
	GArray *out = g_array_new(FALSE, TRUE, sizeof(BusKvEntry));
	g_array_set_clear_func(out, kv_entry_clear);
	gint64 until = g_get_monotonic_time() + bus->cfg.timeout_ms * G_TIME_SPAN_MILLISECOND;
	guint64 bytes = 0;
	for (;;) {
		kvEntry *e = NULL;
		gint64 left = (until - g_get_monotonic_time()) / G_TIME_SPAN_MILLISECOND;
		s = left > 0 ? kvWatcher_Next(&e, w, left) : NATS_TIMEOUT;
		if (watch_recovers(s)) {
			g_usleep(50 * 1000); /* until the deadline, not as fast as it fails */
			continue;
		}
		if (s != NATS_OK) {
			fail_nats(error, BUS_ERROR_IO, s, 0, "listing bucket %s", bucket);
			g_array_unref(out);
			out = NULL;
			break;
		}
		if (e == NULL)
			break; /* every key's current value delivered */
		bytes += kv_entry_bytes(e);
		if (bytes > kv_read_max(bus)) {
			kvEntry_Destroy(e);
			g_set_error(error, BUS_ERROR, BUS_ERROR_TOO_BIG,
				    "bucket %s holds more than %" G_GUINT64_FORMAT " bytes: not read",
				    bucket, kv_read_max(bus));
			g_array_unref(out);
			out = NULL;
			break;
		}
		BusKvEntry be = {
		    .key = g_strdup(kvEntry_Key(e)),
		    .value = bytes_with_nul(kvEntry_Value(e), (gsize)MAX(kvEntry_ValueLen(e), 0)),
		    .rev = kvEntry_Revision(e),
		};
		g_array_append_val(out, be);
		kvEntry_Destroy(e);
	}
	kvWatcher_Destroy(w);
	kvStore_Destroy(kv);
	return out;
}

/* ---- a bucket kept by a watch (bus_kv_mirror_new()) ---- */

#define MIRROR_WAIT_US (500 * G_TIME_SPAN_MILLISECOND)
#define MIRROR_RETRY_US (500 * G_TIME_SPAN_MILLISECOND) /* a watch that could not be made */
/* A watch that reported missed heartbeats (or a mismatch, or a slow consumer) is not
 * destroyed for a remake until this long after the last such report: libnats 3.4 makes its
 * ordered consumer again on a thread of its own meanwhile, and a destroy's unsubscribe then
 * deletes the old consumer by a name that thread frees (the use after free of KeptWatch,
 * seen again in cluster-outage under ASan: the coordinator found the mirror behind after
 * the servers' outage and asked for a remake). Nor until this long after the connection's
 * last reconnect or asynchronous error (bus_settled()): libnats makes its ordered consumers
 * again after a reconnect too, and tells the watch nothing (the same use after free, in a
 * remake, on 2026-12-07 after a reconnect). */
#define MIRROR_SETTLE_US (10 * G_USEC_PER_SEC)
#define MIRROR_TOO_BIG_US (10 * G_USEC_PER_SEC)		/* ... or held too much */

struct BusKvMirror {
	Bus *bus;
	char *bucket;
	GThread *thread;
	GMutex lock; /* everything below */
	GCond cond;
	GHashTable *entries; /* key -> BusKvEntry* */
	GHashTable *tombs;   /* key (owned) -> guint64* revision of its deletion, still kept */
	guint64 last_rev;    /* the newest write the watch delivered */
	guint64 bytes;	     /* of the entries' keys and values (kv_read_max) */
	gboolean ready;	     /* every key's value at the watch's start delivered */
	gboolean too_big;    /* the bucket held more than kv_read_max: dropped for now */
	gboolean stop, remake;
	gint64 verified_us; /* when last_rev was last found at the server's or beyond */
	guint64 lists, behind;
};

static void
mirror_entry_free(gpointer p)
{
	kv_entry_clear(p);
	g_free(p);
}

/* Lock held: entry key leaves the mirror. */
static void
mirror_remove(BusKvMirror *m, const char *key)
{
	const BusKvEntry *old = g_hash_table_lookup(m->entries, key);
	if (old != NULL) {
		m->bytes -= strlen(old->key) + g_bytes_get_size(old->value);
		g_hash_table_remove(m->entries, key);
	}
}

/* The watch's thread: one watcher at a time, from each key's last value on, deletes
 * included (they remove the key). */
static gpointer
mirror_main(gpointer data)
{
	BusKvMirror *m = data;
	g_mutex_lock(&m->lock);
	while (!m->stop) {
		m->remake = FALSE;
		g_mutex_unlock(&m->lock);
		kvStore *kv = NULL;
		kvWatcher *w = NULL;
		kvWatchOptions wo;
		kvWatchOptions_Init(&wo);
		wo.Timeout = m->bus->cfg.timeout_ms;
		natsStatus s = js_KeyValue(&kv, m->bus->js, m->bucket);
		if (s == NATS_OK)
			s = kvStore_WatchAll(&w, kv, &wo);
		g_mutex_lock(&m->lock);
		g_hash_table_remove_all(m->entries);
		g_hash_table_remove_all(m->tombs);
		m->bytes = 0;
		m->ready = FALSE;
		m->too_big = FALSE;
		m->last_rev = 0;
		if (s != NATS_OK) {
			gint64 until = g_get_monotonic_time() + MIRROR_RETRY_US;
			while (!m->stop && g_cond_wait_until(&m->cond, &m->lock, until))
				;
			kvStore_Destroy(kv);
			continue;
		}
		gint64 unsettled_until = 0; /* MIRROR_SETTLE_US */
		while (!m->stop && !(m->remake && g_get_monotonic_time() >= unsettled_until &&
				     bus_settled(m->bus, MIRROR_SETTLE_US))) {
			g_mutex_unlock(&m->lock);
			kvEntry *e = NULL;
			/* short: stop and remake are looked at between waits */
			s = kvWatcher_Next(&e, w, 250);
			g_mutex_lock(&m->lock);
			if (s == NATS_TIMEOUT)
				continue;
			if (watch_recovers(s)) {
				unsettled_until = g_get_monotonic_time() + MIRROR_SETTLE_US;
				/* kept (not looked at again as fast as it fails; a remake asked
				 * meanwhile waits until the watch settles) */
				gint64 until = g_get_monotonic_time() + 250 * G_TIME_SPAN_MILLISECOND;
				while (!m->stop && g_cond_wait_until(&m->cond, &m->lock, until))
					;
				continue;
			}
			if (s != NATS_OK) {
				if (!m->stop)
					g_message("cluster bus: the watch of %s is made again after: %s",
						  m->bucket, natsStatus_GetText(s));
				break;
			}
			if (e == NULL) {
				m->ready = TRUE;
			} else {
				const char *key = kvEntry_Key(e);
				guint64 rev = kvEntry_Revision(e);
				mirror_remove(m, key);
				g_hash_table_remove(m->tombs, key);
				if (kvEntry_Operation(e) != kvOp_Put)
					g_hash_table_replace(m->tombs, g_strdup(key),
							     g_memdup2(&rev, sizeof rev));
				if (kvEntry_Operation(e) == kvOp_Put) {
					BusKvEntry *be = g_new0(BusKvEntry, 1);
					be->key = g_strdup(key);
					be->value = bytes_with_nul(
					    kvEntry_Value(e), (gsize)MAX(kvEntry_ValueLen(e), 0));
					be->rev = kvEntry_Revision(e);
					g_hash_table_replace(m->entries, be->key, be);
					m->bytes += kv_entry_bytes(e);
				}
				m->last_rev = MAX(m->last_rev, kvEntry_Revision(e));
				kvEntry_Destroy(e);
			}
			g_cond_broadcast(&m->cond);
			if (m->bytes > kv_read_max(m->bus)) {
				g_hash_table_remove_all(m->entries);
				g_hash_table_remove_all(m->tombs);
				m->bytes = 0;
				m->ready = FALSE;
				m->too_big = TRUE;
				g_cond_broadcast(&m->cond);
				break;
			}
		}
		gboolean stopping = m->stop;
		g_mutex_unlock(&m->lock);
		if (stopping) {
			KeptWatch k = {w, kv}; /* see KeptWatch */
			g_mutex_lock(&m->bus->lock);
			g_array_append_val(m->bus->kept_watches, k);
			g_mutex_unlock(&m->bus->lock);
		} else {
			kvWatcher_Destroy(w);
			kvStore_Destroy(kv);
		}
		g_mutex_lock(&m->lock);
		/* a watch that failed (a connection lost) is made again after a pause, not in a
		 * loop as fast as it fails */
		gint64 until = g_get_monotonic_time() + (m->too_big ? MIRROR_TOO_BIG_US : MIRROR_RETRY_US);
		while ((m->too_big || (s != NATS_OK && s != NATS_TIMEOUT)) && !m->stop &&
		       g_cond_wait_until(&m->cond, &m->lock, until))
			;
	}
	g_mutex_unlock(&m->lock);
	return NULL;
}

BusKvMirror *
bus_kv_mirror_new(Bus *bus, const char *bucket)
{
	BusKvMirror *m = g_new0(BusKvMirror, 1);
	m->bus = bus;
	m->bucket = g_strdup(bucket);
	g_mutex_init(&m->lock);
	g_cond_init(&m->cond);
	m->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, mirror_entry_free);
	m->tombs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	m->thread = g_thread_new("bus-kv-watch", mirror_main, m);
	return m;
}

static gint
entry_key_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(((const BusKvEntry *)a)->key, ((const BusKvEntry *)b)->key);
}

GArray *
bus_kv_mirror_list(BusKvMirror *m, guint64 min_rev, gint64 check_ms, GError **error)
{
	gint64 now = g_get_monotonic_time();
	guint64 first = 0, server_rev = 0, msgs = 0;
	g_mutex_lock(&m->lock);
	gboolean verify = now - m->verified_us >= check_ms * G_TIME_SPAN_MILLISECOND;
	g_mutex_unlock(&m->lock);
	if (verify) {
		if (!bus_kv_revs(m->bus, m->bucket, &first, &server_rev, &msgs, error))
			return NULL;
		min_rev = MAX(min_rev, server_rev);
	}
	g_mutex_lock(&m->lock);
	gint64 until = now + MIRROR_WAIT_US;
	while (!m->stop && !m->too_big && (!m->ready || m->last_rev < min_rev) &&
	       g_cond_wait_until(&m->cond, &m->lock, until))
		;
	if (m->too_big) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_TOO_BIG,
			    "bucket %s holds more than %" G_GUINT64_FORMAT " bytes: not read",
			    m->bucket, kv_read_max(m->bus));
		g_mutex_unlock(&m->lock);
		return NULL;
	}
	if (m->ready && verify) {
		/* expired: the stream no longer has them (the oldest go first) */
		GHashTableIter gone;
		gpointer gk, gv;
		g_hash_table_iter_init(&gone, m->entries);
		while (g_hash_table_iter_next(&gone, NULL, &gv)) {
			const BusKvEntry *x = gv;
			if (x->rev < first) {
				m->bytes -= strlen(x->key) + g_bytes_get_size(x->value);
				g_hash_table_iter_remove(&gone);
			}
		}
		g_hash_table_iter_init(&gone, m->tombs);
		while (g_hash_table_iter_next(&gone, &gk, &gv))
			if (*(const guint64 *)gv < first)
				g_hash_table_iter_remove(&gone);
	}
	/* a watch that missed a write (a value or a deletion) holds another count of keys
	 * than the stream keeps messages, one per key: judged where it has nothing newer */
	gboolean missed = m->ready && verify && m->last_rev == server_rev &&
			  g_hash_table_size(m->entries) + g_hash_table_size(m->tombs) != msgs;
	if (!m->ready || m->last_rev < min_rev || missed) {
		m->behind++;
		m->remake = TRUE;
		g_set_error(error, BUS_ERROR, BUS_ERROR_BEHIND,
			    "watch of bucket %s: %s (revision %" G_GUINT64_FORMAT
			    ", %" G_GUINT64_FORMAT " written, %u keys for %" G_GUINT64_FORMAT
			    " messages)",
			    m->bucket,
			    !m->ready ? "not complete" : missed ? "missed a write" : "behind",
			    m->last_rev, min_rev,
			    g_hash_table_size(m->entries) + g_hash_table_size(m->tombs), msgs);
		g_mutex_unlock(&m->lock);
		return NULL;
	}
	if (verify)
		m->verified_us = now;
	m->lists++;
	GArray *out = g_array_sized_new(FALSE, TRUE, sizeof(BusKvEntry),
					g_hash_table_size(m->entries));
	g_array_set_clear_func(out, kv_entry_clear);
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, m->entries);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const BusKvEntry *e = v;
		BusKvEntry c = {g_strdup(e->key), g_bytes_ref(e->value), e->rev};
		g_array_append_val(out, c);
	}
	g_mutex_unlock(&m->lock);
	g_array_sort(out, entry_key_cmp);
	return out;
}

void
bus_kv_mirror_counts(BusKvMirror *m, guint64 *lists, guint64 *behind)
{
	g_mutex_lock(&m->lock);
	*lists = m->lists;
	*behind = m->behind;
	g_mutex_unlock(&m->lock);
}

void
bus_kv_mirror_free(BusKvMirror *m)
{
	if (m == NULL)
		return;
	g_mutex_lock(&m->lock);
	m->stop = TRUE;
	g_cond_broadcast(&m->cond);
	g_mutex_unlock(&m->lock);
	g_thread_join(m->thread);
	g_hash_table_unref(m->entries);
	g_hash_table_unref(m->tombs);
	g_mutex_clear(&m->lock);
	g_cond_clear(&m->cond);
	g_free(m->bucket);
	g_free(m);
}

/* ---- snapshots ----
 * Partition p's snapshot is chunks on spamflow.snap.<p>.chunk (each below the server's
 * max_payload, the id in a header) and then one commit record on spamflow.snap.<p> naming
 * them by stream sequence, with covers_seq, the length and a SHA-256. The commit is
 * published only if the partition's last commit is still the one seen before the chunks
 * (Nats-Expected-Last-Subject-Sequence), so of two writers racing one wins and the other
 * fails; a writer dying before its commit leaves the previous commit, and its chunks,
 * readable. After a commit the writer purges older commits and chunks below its own
 * first chunk. A reader gets the last commit, then its chunks; a chunk purged meanwhile
 * (a newer commit landed) makes it start over with the newer commit. */

static char *
snap_subject(guint partition, gboolean chunk)
{
	return g_strdup_printf("%s.%u%s", BUS_SUBJECT_SNAP, partition, chunk ? ".chunk" : "");
}

static gboolean
snap_partition_ok(Bus *bus, guint partition, GError **error)
{
	if (partition < bus->cfg.partitions)
		return TRUE;
	g_set_error(error, BUS_ERROR, BUS_ERROR_CONFIG, "snapshot of partition %u of %u", partition,
		    bus->cfg.partitions);
	return FALSE;
}

static natsStatus
snap_publish(Bus *bus, const char *subject, const char *snap_id, const char *msg_id,
	     const void *data, gsize len, guint64 expect_last, gboolean expect, guint64 *seq,
	     jsErrCode *jerr)
{
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsPubOptions po;
	*jerr = 0;
	natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, HDR_SNAP_ID, snap_id);
	if (s == NATS_OK) {
		jsPubOptions_Init(&po);
		po.MaxWait = bus->cfg.timeout_ms;
		po.MsgId = msg_id;
		if (expect && expect_last == 0)
			po.ExpectNoMessage = true;
		else if (expect)
			po.ExpectLastSubjectSeq = expect_last;
		s = js_PublishMsg(&pa, bus->js, m, &po, jerr);
	}
	if (s == NATS_OK)
		*seq = pa->Sequence;
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(m);
	return s;
}

gboolean
bus_kv_last_rev(Bus *bus, const char *bucket, guint64 *rev, GError **error)
{
	guint64 first;
	return bus_kv_revs(bus, bucket, &first, rev, NULL, error);
}

gboolean
bus_kv_revs(Bus *bus, const char *bucket, guint64 *first, guint64 *rev, guint64 *msgs,
	    GError **error)
{
	jsOptions jo;
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	g_autofree char *stream = g_strdup_printf("KV_%s", bucket);

	js_opts(bus, &jo);
	natsStatus s = js_GetStreamInfo(&si, bus->js, stream, &jo, &jerr);
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "bucket %s", bucket);
	/* the newest message is never removed before the others (max age goes oldest first,
	 * a key's newer value removes its older one): when the last is gone, all are */
	*rev = si->State.Msgs > 0 ? si->State.LastSeq : 0;
	*first = si->State.FirstSeq;
	if (msgs != NULL)
		*msgs = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return TRUE;
}

gboolean
bus_publish_wait(Bus *bus, const char *subject, const void *data, gsize len,
		 const char *msg_id, guint64 *seq, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + bus->cfg.timeout_ms * 1000;
	natsStatus s;
	jsErrCode jerr = 0;

	if (len > G_MAXINT) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_TOO_BIG, "publish to %s: too big", subject);
		return FALSE;
	}
	for (;;) {
		natsMsg *m = NULL;
		jsPubAck *pa = NULL;
		jsPubOptions po;
		jerr = 0;
		s = natsMsg_Create(&m, subject, NULL, data, (int)len);
		if (s == NATS_OK) {
			jsPubOptions_Init(&po);
			po.MaxWait = MAX((gint64)100, (deadline - g_get_monotonic_time()) / 1000);
			po.MsgId = msg_id;
			s = js_PublishMsg(&pa, bus->js, m, &po, &jerr);
		}
		if (s == NATS_OK && seq != NULL)
			*seq = pa->Sequence;
		gboolean dup = s == NATS_OK && pa->Duplicate;
		jsPubAck_Destroy(pa);
		natsMsg_Destroy(m);
		g_mutex_lock(&bus->lock);
		if (s == NATS_OK) {
			if (dup)
				bus->st.duplicates++;
			else
				bus->st.published++;
			bus->st.bytes_out += len;
		}
		g_mutex_unlock(&bus->lock);
		if (s == NATS_OK)
			return TRUE;
		/* a refusal by the stream (jerr) will not change; anything else may */
		if (jerr != 0 || g_get_monotonic_time() + 100 * 1000 >= deadline)
			break;
		g_mutex_lock(&bus->lock);
		bus->st.retried++;
		g_mutex_unlock(&bus->lock);
		g_usleep(100 * 1000);
	}
	return fail_nats(error, BUS_ERROR_IO, s, jerr, "publish to %s", subject);
}

static void
snap_purge(Bus *bus, const char *subject, guint64 below)
{
	jsOptions jo;
	jsErrCode jerr = 0;
	/* nothing is below 1, and the server reads a purge "below 1" as "all of subject" */
	if (below <= 1)
		return;
	js_opts(bus, &jo);
	jo.Stream.Purge.Subject = subject;
	jo.Stream.Purge.Sequence = below;
	natsStatus s = js_PurgeStream(bus->js, BUS_STREAM_SNAP, &jo, &jerr);
	if (s != NATS_OK)
		g_message("cluster bus: purging %s below %" G_GUINT64_FORMAT ": %s (the next "
			  "snapshot purges it)",
			  subject, below, nats_text(s));
}

gboolean
bus_snapshot_put(Bus *bus, guint partition, guint64 covers_seq, const void *data, gsize len,
		 GError **error)
{
	if (!snap_partition_ok(bus, partition, error))
		return FALSE;
	if (len > bus->cfg.max_snapshot) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_TOO_BIG,
			    "snapshot of partition %u: %" G_GSIZE_FORMAT " bytes, over "
			    "max_snapshot %" G_GUINT64_FORMAT,
			    partition, len, bus->cfg.max_snapshot);
		return FALSE;
	}
	int64_t max_payload = natsConnection_GetMaxPayload(bus->nc);
	if (max_payload <= SNAP_HEADER_ROOM) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_IO,
			    "snapshot of partition %u: not connected", partition);
		return FALSE;
	}
	gsize chunk = MIN((gsize)(max_payload - SNAP_HEADER_ROOM), SNAP_CHUNK_MAX);
	g_autofree char *commit_subj = snap_subject(partition, FALSE);
	g_autofree char *chunk_subj = snap_subject(partition, TRUE);

	/* the commit this one replaces: the condition of ours */
	guint64 prev = 0;
	if (!bus_last_seq(bus, BUS_STREAM_SNAP, commit_subj, &prev, error))
		return FALSE;

	g_autofree char *id = g_strdup_printf("%s-%" G_GINT64_FORMAT "-%08x", bus->node,
					      g_get_real_time(), g_random_int());
	g_autoptr(GString) body = g_string_new(SNAP_FORMAT "\n");
	g_autofree char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
	g_string_append_printf(
	    body, "id %s\ncovers %" G_GUINT64_FORMAT "\nlen %" G_GSIZE_FORMAT "\nsha256 %s\nchunks",
	    id, covers_seq, len, sum);
	guint64 first = 0, seq = 0;
	jsErrCode jerr;
	for (gsize off = 0, i = 0; off < len; off += chunk, i++) {
		gsize n = MIN(chunk, len - off);
		g_autofree char *msg_id = g_strdup_printf("%s.%" G_GSIZE_FORMAT, id, i);
		natsStatus s = snap_publish(bus, chunk_subj, id, msg_id, (const guint8 *)data + off,
					    n, 0, FALSE, &seq, &jerr);
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_IO, s, jerr,
					 "snapshot of partition %u: chunk %" G_GSIZE_FORMAT,
					 partition, i);
		if (first == 0)
			first = seq;
		g_string_append_printf(body, " %" G_GUINT64_FORMAT, seq);
	}
	g_string_append_c(body, '\n');
	g_autofree char *commit_id = g_strdup_printf("%s.commit", id);
	natsStatus s = snap_publish(bus, commit_subj, id, commit_id, body->str, body->len, prev,
				    TRUE, &seq, &jerr);
	if (s != NATS_OK && jerr == JSStreamWrongLastSequenceErr) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT,
			    "snapshot of partition %u: another writer's snapshot landed first",
			    partition);
		return FALSE;
	}
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, jerr, "snapshot of partition %u: commit",
				 partition);
	snap_purge(bus, commit_subj, seq);
	snap_purge(bus, chunk_subj, first > 0 ? first : seq);
	return TRUE;
}

typedef struct {
	char *id;
	guint64 covers;
	guint64 len;
	char *sha256;
	GArray *chunks; /* guint64 stream sequences */
} SnapCommit;

static void
snap_commit_clear(SnapCommit *c)
{
	g_free(c->id);
	g_free(c->sha256);
	if (c->chunks != NULL)
		g_array_unref(c->chunks);
}

static gboolean
parse_u64(const char *s, guint64 *out)
{
	return g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

/* The commit record's text (from the bus: checked like any input). */
static gboolean
snap_commit_parse(const char *data, gsize len, SnapCommit *c)
{
	g_autofree char *text = g_strndup(data, len);
	g_auto(GStrv) lines = g_strsplit(text, "\n", 0);
	gboolean have_len = FALSE, have_covers = FALSE;
	if (lines[0] == NULL || strcmp(lines[0], SNAP_FORMAT) != 0)
		return FALSE;
	c->chunks = g_array_new(FALSE, FALSE, sizeof(guint64));
	for (char **l = lines + 1; *l != NULL; l++) {
		if (g_str_has_prefix(*l, "id ")) {
			g_free(c->id);
			c->id = g_strdup(*l + 3);
		} else if (g_str_has_prefix(*l, "covers ")) {
			have_covers = parse_u64(*l + 7, &c->covers);
		} else if (g_str_has_prefix(*l, "len ")) {
			have_len = parse_u64(*l + 4, &c->len);
		} else if (g_str_has_prefix(*l, "sha256 ")) {
			g_free(c->sha256);
			c->sha256 = g_strdup(*l + 7);
		} else if (g_str_has_prefix(*l, "chunks")) {
			g_auto(GStrv) seqs = g_strsplit(*l + 6, " ", 0);
			for (char **q = seqs; *q != NULL; q++) {
				guint64 v;
				if (**q == '\0')
					continue;
				if (!parse_u64(*q, &v) || c->chunks->len >= 1u << 20)
					return FALSE;
				g_array_append_val(c->chunks, v);
			}
		}
	}
	return c->id != NULL && c->sha256 != NULL && have_len && have_covers;
}

gboolean
bus_snapshot_get(Bus *bus, guint partition, guint64 *covers_seq, GBytes **data, GError **error)
{
	*covers_seq = 0;
	*data = NULL;
	if (!snap_partition_ok(bus, partition, error))
		return FALSE;
	g_autofree char *commit_subj = snap_subject(partition, FALSE);
	g_autofree char *chunk_subj = snap_subject(partition, TRUE);
	jsOptions jo;
	js_opts(bus, &jo);

	for (int attempt = 0; attempt < 5; attempt++) {
		jsErrCode jerr = 0;
		natsMsg *m = NULL;
		natsStatus s = js_GetLastMsg(&m, bus->js, BUS_STREAM_SNAP, commit_subj, &jo, &jerr);
		if (s != NATS_OK && not_found(s, jerr) && jerr != JSStreamNotFoundErr)
			return TRUE; /* none yet */
		if (s != NATS_OK)
			return fail_nats(error, BUS_ERROR_IO, s, jerr, "snapshot of partition %u",
					 partition);
		SnapCommit c = {0};
		gboolean ok = snap_commit_parse(natsMsg_GetData(m),
						(gsize)MAX(natsMsg_GetDataLength(m), 0), &c);
		natsMsg_Destroy(m);
		if (!ok || c.len > bus->cfg.max_snapshot) {
			g_set_error(error, BUS_ERROR, BUS_ERROR_IO,
				    "snapshot of partition %u: a commit record that does not "
				    "parse, or over max_snapshot",
				    partition);
			snap_commit_clear(&c);
			return FALSE;
		}
		GByteArray *buf = g_byte_array_sized_new((guint)c.len);
		gboolean gone = FALSE;
		for (guint i = 0; i < c.chunks->len && !gone; i++) {
			guint64 seq = g_array_index(c.chunks, guint64, i);
			const char *cid = NULL;
			jerr = 0;
			s = js_GetMsg(&m, bus->js, BUS_STREAM_SNAP, seq, &jo, &jerr);
			if (s != NATS_OK && not_found(s, jerr)) {
				gone = TRUE; /* purged by a newer commit: start over */
				break;
			}
			if (s != NATS_OK) {
				g_byte_array_unref(buf);
				snap_commit_clear(&c);
				return fail_nats(error, BUS_ERROR_IO, s, jerr,
						 "snapshot of partition %u: chunk %u", partition,
						 i);
			}
			gsize n = (gsize)MAX(natsMsg_GetDataLength(m), 0);
			if (g_strcmp0(natsMsg_GetSubject(m), chunk_subj) != 0 ||
			    natsMsgHeader_Get(m, HDR_SNAP_ID, &cid) != NATS_OK ||
			    g_strcmp0(cid, c.id) != 0 || n > c.len - buf->len) {
				natsMsg_Destroy(m);
				gone = TRUE; /* the sequence holds something else now */
				break;
			}
			g_byte_array_append(buf, (const guint8 *)natsMsg_GetData(m), (guint)n);
			natsMsg_Destroy(m);
		}
		if (gone) {
			g_byte_array_unref(buf);
			snap_commit_clear(&c);
			continue;
		}
		g_autofree char *sum =
		    g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf->data, buf->len);
		if (buf->len != c.len || g_strcmp0(sum, c.sha256) != 0) {
			g_set_error(error, BUS_ERROR, BUS_ERROR_IO,
				    "snapshot of partition %u (%s): %u bytes of %" G_GUINT64_FORMAT
				    " or a checksum that does not match",
				    partition, c.id, buf->len, c.len);
			g_byte_array_unref(buf);
			snap_commit_clear(&c);
			return FALSE;
		}
		*covers_seq = c.covers;
		*data = g_byte_array_free_to_bytes(buf);
		snap_commit_clear(&c);
		return TRUE;
	}
	g_set_error(error, BUS_ERROR, BUS_ERROR_IO,
		    "snapshot of partition %u: replaced while being read, 5 times", partition);
	return FALSE;
}

/* ---- request/reply ---- */

static void
on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	BusSub *bs = closure;
	(void)sub;
	GBytes *reply = bs->serve((const guint8 *)natsMsg_GetData(msg),
				  (gsize)MAX(natsMsg_GetDataLength(msg), 0), bs->user_data);
	const char *to = natsMsg_GetReply(msg);
	if (to != NULL && *to != '\0') {
		gsize n = 0;
		const void *d = reply != NULL ? g_bytes_get_data(reply, &n) : NULL;
		natsStatus s = natsConnection_Publish(nc, to, d, (int)MIN(n, (gsize)G_MAXINT));
		if (s != NATS_OK) {
			g_mutex_lock(&bs->bus->lock);
			set_last_error(bs->bus, "reply: %s", natsStatus_GetText(s));
			g_mutex_unlock(&bs->bus->lock);
		}
	}
	if (reply != NULL)
		g_bytes_unref(reply);
	natsMsg_Destroy(msg);
}

BusSub *
bus_serve(Bus *bus, BusServeFunc fn, gpointer user_data, GError **error)
{
	BusSub *bs = bus_sub_new(bus);
	bs->serve = fn;
	bs->user_data = user_data;
	natsStatus s =
	    natsConnection_Subscribe(&bs->sub, bus->nc, bus->ctl_subject, on_request, bs);
	if (s != NATS_OK) {
		bus_sub_free(bs);
		fail_nats(error, BUS_ERROR_IO, s, 0, "serving %s", bus->ctl_subject);
		return NULL;
	}
	return bus_sub_started(bus, bs);
}

gboolean
bus_request(Bus *bus, const char *node, const void *data, gsize len, gint64 timeout_ms,
	    GBytes **reply, GError **error)
{
	natsMsg *m = NULL;
	g_autofree char *subject = g_strdup_printf("%s.%s", BUS_SUBJECT_CTL, node);
	if (len > G_MAXINT)
		return fail_nats(error, BUS_ERROR_TOO_BIG, NATS_INVALID_ARG, 0, "request to %s",
				 node);
	natsStatus s = natsConnection_Request(&m, bus->nc, subject, data, (int)len, timeout_ms);
	if (s == NATS_NO_RESPONDERS) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND,
			    "request to %s: no node of "
			    "that name is serving",
			    node);
		return FALSE;
	}
	if (s == NATS_TIMEOUT) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_IO,
			    "request to %s: no answer within %" G_GINT64_FORMAT " ms", node,
			    timeout_ms);
		return FALSE;
	}
	if (s != NATS_OK)
		return fail_nats(error, BUS_ERROR_IO, s, 0, "request to %s", node);
	*reply = bytes_with_nul(natsMsg_GetData(m), (gsize)MAX(natsMsg_GetDataLength(m), 0));
	natsMsg_Destroy(m);
	return TRUE;
}
