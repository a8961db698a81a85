/* An in-memory bus (cluster/bus.h) for the coordinator's unit tests: one "server" per process
 * shared by every Bus, so several coordinators in one test see the same leases, streams and
 * snapshots; buckets expire by TTL on the monotonic clock; a Bus can be cut off
 * (cluster_fake_bus_set_down(): every call fails with BUS_ERROR_IO, as a node whose network
 * is gone sees it). Not a model of NATS beyond what bus.h promises. */
#include "cluster_fake_bus.h"

#include <string.h>

typedef struct {
	char *subject;
	guint64 seq;
	GBytes *data;
} FMsg;

typedef struct {
	GPtrArray *msgs; /* FMsg*, by seq (seq = index + 1) */
	GHashTable *ids; /* Nats-Msg-Id seen */
} FStream;

typedef struct {
	GBytes *value;
	guint64 rev;
	gint64 written_ms;
} FEntry;

typedef struct {
	GHashTable *keys; /* key -> FEntry* */
	gint64 ttl_ms;	  /* 0: none */
} FBucket;

typedef struct {
	guint64 covers;
	GBytes *data;
} FSnap;

struct Bus {
	char *node;
	BusConfig cfg;
	gboolean down;
	BusStats st;
};

struct BusSub {
	Bus *bus;
	char *stream, *subject, *durable;
	guint64 next;
	BusMsgFunc fn;
	BusServeFunc serve;
	gpointer user_data;
	GThread *thread;
	gboolean stop;
	guint active; /* serve: calls running */
};

static struct {
	GMutex lock;
	GCond cond;
	gboolean init;
	GHashTable *buckets;  /* name -> FBucket* */
	GHashTable *streams;  /* name -> FStream* */
	GHashTable *snaps;    /* partition -> FSnap* */
	GHashTable *servers;  /* node -> BusSub* */
	GHashTable *durables; /* name -> next seq (guint64*) */
	guint64 rev;
} S;

G_DEFINE_QUARK(spamflow_fake_bus_error, bus_error)

static gint64
now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

static void
fentry_free(gpointer p)
{
	FEntry *e = p;
	g_bytes_unref(e->value);
	g_free(e);
}

static void
fbucket_free(gpointer p)
{
	FBucket *b = p;
	g_hash_table_destroy(b->keys);
	g_free(b);
}

static void
fmsg_free(gpointer p)
{
	FMsg *m = p;
	g_free(m->subject);
	g_bytes_unref(m->data);
	g_free(m);
}

static void
fstream_free(gpointer p)
{
	FStream *s = p;
	g_ptr_array_unref(s->msgs);
	g_hash_table_destroy(s->ids);
	g_free(s);
}

static void
fsnap_free(gpointer p)
{
	FSnap *s = p;
	if (s->data)
		g_bytes_unref(s->data);
	g_free(s);
}

void
cluster_fake_bus_reset(void)
{
	if (S.init) {
		g_hash_table_destroy(S.buckets);
		g_hash_table_destroy(S.streams);
		g_hash_table_destroy(S.snaps);
		g_hash_table_destroy(S.servers);
		g_hash_table_destroy(S.durables);
	}
	S.init = TRUE;
	S.buckets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, fbucket_free);
	S.streams = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, fstream_free);
	S.snaps = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, fsnap_free);
	S.servers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	S.durables = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	S.rev = 0;
}

void
cluster_fake_bus_set_down(Bus *bus, gboolean down)
{
	g_mutex_lock(&S.lock);
	bus->down = down;
	g_mutex_unlock(&S.lock);
}

static gboolean
is_down(Bus *bus, GError **error)
{
	if (bus->down) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "fake bus: %s is cut off", bus->node);
		return TRUE;
	}
	return FALSE;
}

Bus *
bus_new(const BusConfig *cfg, GError **error)
{
	(void)error;
	Bus *bus = g_new0(Bus, 1);
	bus->node = g_strdup(cfg->node);
	bus->cfg = *cfg;
	bus->cfg.node = bus->node;
	bus->cfg.servers = NULL;
	g_mutex_lock(&S.lock);
	if (!S.init)
		cluster_fake_bus_reset();
	g_mutex_unlock(&S.lock);
	return bus;
}

void
bus_free(Bus *bus)
{
	if (!bus)
		return;
	g_free(bus->node);
	g_free(bus);
}

void
bus_leaving(Bus *bus)
{
	(void)bus; /* nothing kept: the fake bus has no servers to be away */
}

gboolean
bus_connected(Bus *bus)
{
	return !bus->down;
}

/* The fake stores nothing with a time: "now" */
gint64
bus_msg_time_ms(void)
{
	return g_get_real_time() / 1000;
}

gboolean
bus_probe(Bus *bus, GError **error)
{
	if (!bus->down)
		return TRUE;
	g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "the fake bus is down");
	return FALSE;
}

static void
bucket_add(const char *name, gint64 ttl)
{
	if (g_hash_table_contains(S.buckets, name))
		return;
	FBucket *b = g_new0(FBucket, 1);
	b->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, fentry_free);
	b->ttl_ms = ttl;
	g_hash_table_insert(S.buckets, g_strdup(name), b);
}

static void
stream_add(const char *name)
{
	if (g_hash_table_contains(S.streams, name))
		return;
	FStream *s = g_new0(FStream, 1);
	s->msgs = g_ptr_array_new_with_free_func(fmsg_free);
	s->ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_hash_table_insert(S.streams, g_strdup(name), s);
}

gboolean
bus_setup(Bus *bus, GError **error)
{
	g_mutex_lock(&S.lock);
	if (is_down(bus, error)) {
		g_mutex_unlock(&S.lock);
		return FALSE;
	}
	bucket_add(BUS_KV_LEASES, bus->cfg.lease_ttl_ms);
	bucket_add(BUS_KV_NODES, bus->cfg.node_ttl_ms);
	bucket_add(BUS_KV_OFFENDERS, 0);
	bucket_add(BUS_KV_SUPPRESSIONS, 0);
	stream_add(BUS_STREAM_FLOWS);
	stream_add(BUS_STREAM_ALERTS);
	g_mutex_unlock(&S.lock);
	return TRUE;
}

static const char *
stream_of(const char *subject)
{
	if (g_str_has_prefix(subject, BUS_SUBJECT_FLOWS "."))
		return BUS_STREAM_FLOWS;
	if (strcmp(subject, BUS_SUBJECT_ALERTS) == 0)
		return BUS_STREAM_ALERTS;
	return NULL;
}

gboolean
bus_publish(Bus *bus, const char *subject, const void *data, gsize len, const char *msg_id)
{
	g_mutex_lock(&S.lock);
	const char *name = stream_of(subject);
	FStream *s = name ? g_hash_table_lookup(S.streams, name) : NULL;
	if (bus->down || !s) {
		bus->st.dropped++;
		g_mutex_unlock(&S.lock);
		return FALSE;
	}
	if (msg_id && g_hash_table_contains(s->ids, msg_id)) {
		bus->st.duplicates++;
	} else {
		if (msg_id)
			g_hash_table_add(s->ids, g_strdup(msg_id));
		FMsg *m = g_new0(FMsg, 1);
		m->subject = g_strdup(subject);
		m->seq = s->msgs->len + 1;
		m->data = g_bytes_new(data, len);
		g_ptr_array_add(s->msgs, m);
		bus->st.published++;
		g_cond_broadcast(&S.cond);
	}
	g_mutex_unlock(&S.lock);
	return TRUE;
}

/* Always "changed": the coordinator lists the bucket every time, as it would without it. */
gboolean
bus_kv_last_rev(Bus *bus, const char *bucket, guint64 *rev, GError **error)
{
	static gint changes;
	(void)bucket;
	g_mutex_lock(&S.lock);
	gboolean ok = !is_down(bus, error);
	g_mutex_unlock(&S.lock);
	*rev = (guint64)g_atomic_int_add(&changes, 1) + 1;
	return ok;
}

gboolean
bus_publish_wait(Bus *bus, const char *subject, const void *data, gsize len, const char *msg_id,
		 guint64 *seq, GError **error)
{
	g_mutex_lock(&S.lock);
	const char *name = stream_of(subject);
	FStream *s = name ? g_hash_table_lookup(S.streams, name) : NULL;
	if (bus->down || !s) {
		g_mutex_unlock(&S.lock);
		g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "publish to %s: no answer", subject);
		return FALSE;
	}
	g_mutex_unlock(&S.lock);
	if (!bus_publish(bus, subject, data, len, msg_id))
		return FALSE;
	g_mutex_lock(&S.lock);
	/* the message of that id (a duplicate: the first one's) */
	for (guint i = s->msgs->len; i > 0; i--) {
		FMsg *m = s->msgs->pdata[i - 1];
		gsize mlen = 0;
		const void *md = g_bytes_get_data(m->data, &mlen);
		if (strcmp(m->subject, subject) == 0 && mlen == len && memcmp(md, data, len) == 0) {
			*seq = m->seq;
			break;
		}
	}
	g_mutex_unlock(&S.lock);
	return TRUE;
}

gboolean
bus_flush(Bus *bus, gint64 timeout_ms)
{
	(void)bus;
	(void)timeout_ms;
	return TRUE;
}

static gpointer
sub_thread(gpointer data)
{
	BusSub *sub = data;
	g_mutex_lock(&S.lock);
	while (!sub->stop) {
		FStream *s = g_hash_table_lookup(S.streams, sub->stream);
		guint64 *shared =
		    sub->durable ? g_hash_table_lookup(S.durables, sub->durable) : NULL;
		guint64 *next = shared ? shared : &sub->next;
		FMsg *m = NULL;
		while (s && *next >= 1 && *next <= s->msgs->len && !m) {
			FMsg *c = s->msgs->pdata[*next - 1];
			(*next)++;
			if (strcmp(c->subject, sub->subject) == 0)
				m = c;
		}
		if (!m || sub->bus->down) {
			g_cond_wait_until(&S.cond, &S.lock, g_get_monotonic_time() + 50000);
			continue;
		}
		GBytes *b = g_bytes_ref(m->data);
		guint64 seq = m->seq;
		char *subject = g_strdup(m->subject);
		sub->bus->st.received++;
		g_mutex_unlock(&S.lock);
		gsize len;
		const guint8 *d = g_bytes_get_data(b, &len);
		sub->fn(subject, seq, d, len, sub->user_data);
		g_bytes_unref(b);
		g_free(subject);
		g_mutex_lock(&S.lock);
	}
	g_mutex_unlock(&S.lock);
	return NULL;
}

static BusSub *
sub_start(Bus *bus, const char *stream, const char *subject, guint64 from_seq, const char *durable,
	  BusMsgFunc fn, gpointer user_data, GError **error)
{
	g_mutex_lock(&S.lock);
	FStream *s = g_hash_table_lookup(S.streams, stream);
	if (is_down(bus, error) || !s) {
		if (!bus->down)
			g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "no stream %s", stream);
		g_mutex_unlock(&S.lock);
		return NULL;
	}
	BusSub *sub = g_new0(BusSub, 1);
	sub->bus = bus;
	sub->stream = g_strdup(stream);
	sub->subject = g_strdup(subject);
	sub->fn = fn;
	sub->user_data = user_data;
	sub->next = from_seq ? from_seq : s->msgs->len + 1;
	if (durable) {
		sub->durable = g_strdup(durable);
		if (!g_hash_table_contains(S.durables, durable)) {
			guint64 *pos = g_new(guint64, 1);
			*pos = 1;
			g_hash_table_insert(S.durables, g_strdup(durable), pos);
		}
	}
	g_mutex_unlock(&S.lock);
	sub->thread = g_thread_new("fake-sub", sub_thread, sub);
	return sub;
}

BusSub *
bus_subscribe_from(Bus *bus, const char *stream, const char *subject, guint64 from_seq,
		   BusMsgFunc fn, gpointer user_data, GError **error)
{
	return sub_start(bus, stream, subject, from_seq, NULL, fn, user_data, error);
}

gboolean
bus_settled(Bus *bus, gint64 for_us)
{
	(void)for_us;
	return !bus->down;
}

void
bus_msg_leave(void)
{
	/* the in-memory bus acknowledges everything: nothing is redelivered */
}

BusSub *
bus_subscribe_durable(Bus *bus, const char *stream, const char *subject, const char *durable,
		      BusMsgFunc fn, gpointer user_data, GError **error)
{
	return sub_start(bus, stream, subject, 1, durable, fn, user_data, error);
}

gboolean
bus_consumer_state(Bus *bus, const char *stream, const char *durable, BusConsumerState *out,
		   GError **error)
{
	(void)bus;
	(void)out;
	g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "consumer %s on %s: not in the fake",
		    durable, stream);
	return FALSE;
}

void
bus_sub_stop_fetching(BusSub *sub)
{
	if (!sub)
		return;
	g_mutex_lock(&S.lock);
	sub->stop = TRUE;
	g_cond_broadcast(&S.cond);
	g_mutex_unlock(&S.lock);
}

void
bus_unsubscribe(BusSub *sub)
{
	if (!sub)
		return;
	g_mutex_lock(&S.lock);
	sub->stop = TRUE;
	g_cond_broadcast(&S.cond);
	if (sub->serve) {
		if (g_hash_table_lookup(S.servers, sub->bus->node) == sub)
			g_hash_table_remove(S.servers, sub->bus->node);
		while (sub->active)
			g_cond_wait(&S.cond, &S.lock);
	}
	g_mutex_unlock(&S.lock);
	if (sub->thread)
		g_thread_join(sub->thread);
	g_free(sub->stream);
	g_free(sub->subject);
	g_free(sub->durable);
	g_free(sub);
}

gboolean
bus_last_seq(Bus *bus, const char *stream, const char *subject, guint64 *seq, GError **error)
{
	g_mutex_lock(&S.lock);
	FStream *s = g_hash_table_lookup(S.streams, stream);
	*seq = 0;
	gboolean ok = !is_down(bus, error);
	for (guint i = s && ok ? s->msgs->len : 0; i-- > 0;) {
		FMsg *m = s->msgs->pdata[i];
		if (strcmp(m->subject, subject) == 0) {
			*seq = m->seq;
			break;
		}
	}
	g_mutex_unlock(&S.lock);
	return ok;
}

/* The live entry of key (NULL: none, or expired). */
static FEntry *
kv_lookup(FBucket *b, const char *key)
{
	FEntry *e = g_hash_table_lookup(b->keys, key);
	if (e && b->ttl_ms && now_ms() - e->written_ms >= b->ttl_ms) {
		g_hash_table_remove(b->keys, key);
		e = NULL;
	}
	return e;
}

static FBucket *
kv_bucket(Bus *bus, const char *bucket, GError **error)
{
	if (is_down(bus, error))
		return NULL;
	FBucket *b = g_hash_table_lookup(S.buckets, bucket);
	if (!b)
		g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "no bucket %s", bucket);
	return b;
}

static void
kv_write(FBucket *b, const char *key, const void *value, gsize len, guint64 *rev)
{
	FEntry *e = g_new0(FEntry, 1);
	char *copy = g_malloc(len + 1);
	memcpy(copy, value, len);
	copy[len] = '\0';
	e->value = g_bytes_new_take(copy, len);
	e->rev = ++S.rev;
	e->written_ms = now_ms();
	g_hash_table_replace(b->keys, g_strdup(key), e);
	if (rev)
		*rev = e->rev;
}

gboolean
bus_kv_create(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	      guint64 *rev, GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	gboolean ok = b && !kv_lookup(b, key);
	if (b && !ok)
		g_set_error(error, BUS_ERROR, BUS_ERROR_EXISTS, "%s exists", key);
	if (ok)
		kv_write(b, key, value, len, rev);
	g_mutex_unlock(&S.lock);
	return ok;
}

gboolean
bus_kv_update(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	      guint64 last_rev, guint64 *rev, GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	FEntry *e = b ? kv_lookup(b, key) : NULL;
	gboolean ok = e && e->rev == last_rev;
	if (b && !e)
		g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "%s not found", key);
	else if (b && !ok)
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT, "%s: wrong revision", key);
	if (ok)
		kv_write(b, key, value, len, rev);
	g_mutex_unlock(&S.lock);
	return ok;
}

gboolean
bus_kv_put(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
	   guint64 *rev, GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	if (b)
		kv_write(b, key, value, len, rev);
	g_mutex_unlock(&S.lock);
	return b != NULL;
}

gboolean
bus_kv_get(Bus *bus, const char *bucket, const char *key, GBytes **value, guint64 *rev,
	   GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	FEntry *e = b ? kv_lookup(b, key) : NULL;
	if (b && !e)
		g_set_error(error, BUS_ERROR, BUS_ERROR_NOT_FOUND, "%s not found", key);
	if (e) {
		*value = g_bytes_ref(e->value);
		if (rev)
			*rev = e->rev;
	}
	g_mutex_unlock(&S.lock);
	return e != NULL;
}

gboolean
bus_kv_delete(Bus *bus, const char *bucket, const char *key, guint64 last_rev, GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	FEntry *e = b ? kv_lookup(b, key) : NULL;
	gboolean ok = b && (!last_rev || (e && e->rev == last_rev));
	if (b && !ok)
		g_set_error(error, BUS_ERROR, BUS_ERROR_CONFLICT, "%s: wrong revision", key);
	if (ok)
		g_hash_table_remove(b->keys, key);
	g_mutex_unlock(&S.lock);
	return ok;
}

GArray *
bus_kv_list(Bus *bus, const char *bucket, GError **error)
{
	g_mutex_lock(&S.lock);
	FBucket *b = kv_bucket(bus, bucket, error);
	if (!b) {
		g_mutex_unlock(&S.lock);
		return NULL;
	}
	GArray *out = g_array_new(FALSE, TRUE, sizeof(BusKvEntry));
	guint n = 0;
	g_autofree gpointer *keys = g_hash_table_get_keys_as_array(b->keys, &n);
	for (guint i = 0; i < n; i++) {
		g_autofree char *key = g_strdup(keys[i]); /* kv_lookup() may free keys[i] */
		FEntry *e = kv_lookup(b, key);
		if (!e)
			continue;
		BusKvEntry x = {g_steal_pointer(&key), g_bytes_ref(e->value), e->rev};
		g_array_append_val(out, x);
	}
	g_mutex_unlock(&S.lock);
	return out;
}

void
bus_kv_entries_free(GArray *entries)
{
	if (!entries)
		return;
	for (guint i = 0; i < entries->len; i++) {
		BusKvEntry *e = &g_array_index(entries, BusKvEntry, i);
		g_free(e->key);
		if (e->value)
			g_bytes_unref(e->value);
	}
	g_array_unref(entries);
}

gboolean
bus_snapshot_put(Bus *bus, guint partition, guint64 covers_seq, const void *data, gsize len,
		 GError **error)
{
	g_mutex_lock(&S.lock);
	gboolean ok = !is_down(bus, error);
	if (ok && bus->cfg.max_snapshot && len > bus->cfg.max_snapshot) {
		g_set_error(error, BUS_ERROR, BUS_ERROR_TOO_BIG, "snapshot too big");
		ok = FALSE;
	}
	if (ok) {
		FSnap *s = g_new0(FSnap, 1);
		s->covers = covers_seq;
		s->data = g_bytes_new(data, len);
		g_hash_table_replace(S.snaps, GUINT_TO_POINTER(partition), s);
	}
	g_mutex_unlock(&S.lock);
	return ok;
}

gboolean
bus_snapshot_get(Bus *bus, guint partition, guint64 *covers_seq, GBytes **data, GError **error)
{
	g_mutex_lock(&S.lock);
	gboolean ok = !is_down(bus, error);
	FSnap *s = ok ? g_hash_table_lookup(S.snaps, GUINT_TO_POINTER(partition)) : NULL;
	*covers_seq = s ? s->covers : 0;
	*data = s ? g_bytes_ref(s->data) : NULL;
	g_mutex_unlock(&S.lock);
	return ok;
}

BusSub *
bus_serve(Bus *bus, BusServeFunc fn, gpointer user_data, GError **error)
{
	g_mutex_lock(&S.lock);
	if (is_down(bus, error)) {
		g_mutex_unlock(&S.lock);
		return NULL;
	}
	BusSub *sub = g_new0(BusSub, 1);
	sub->bus = bus;
	sub->serve = fn;
	sub->user_data = user_data;
	g_hash_table_replace(S.servers, g_strdup(bus->node), sub);
	g_mutex_unlock(&S.lock);
	return sub;
}

gboolean
bus_request(Bus *bus, const char *node, const void *data, gsize len, gint64 timeout_ms,
	    GBytes **reply, GError **error)
{
	(void)timeout_ms;
	g_mutex_lock(&S.lock);
	BusSub *sub = is_down(bus, error) ? NULL : g_hash_table_lookup(S.servers, node);
	if (!sub) {
		if (!bus->down)
			g_set_error(error, BUS_ERROR, BUS_ERROR_IO, "no responders for %s", node);
		g_mutex_unlock(&S.lock);
		return FALSE;
	}
	sub->active++;
	g_mutex_unlock(&S.lock);
	*reply = sub->serve(data, len, sub->user_data);
	g_mutex_lock(&S.lock);
	sub->active--;
	g_cond_broadcast(&S.cond);
	g_mutex_unlock(&S.lock);
	return TRUE;
}

void
bus_get_stats(Bus *bus, BusStats *out)
{
	g_mutex_lock(&S.lock);
	*out = bus->st;
	out->connected = !bus->down;
	g_mutex_unlock(&S.lock);
}

/* The watch is the fake's own table: always there, always current (BUS_ERROR_IO when the
 * fake bus is down, as the real one's revision check). */
struct BusKvMirror {
	Bus *bus;
	char *bucket;
	guint64 lists;
};

BusKvMirror *
bus_kv_mirror_new(Bus *bus, const char *bucket)
{
	BusKvMirror *m = g_new0(BusKvMirror, 1);
	m->bus = bus;
	m->bucket = g_strdup(bucket);
	return m;
}

GArray *
bus_kv_mirror_list(BusKvMirror *m, guint64 min_rev, gint64 check_ms, GError **error)
{
	(void)min_rev;
	(void)check_ms;
	GArray *out = bus_kv_list(m->bus, m->bucket, error);
	if (out)
		m->lists++;
	return out;
}

void
bus_kv_mirror_counts(BusKvMirror *m, guint64 *lists, guint64 *behind)
{
	*lists = m->lists;
	*behind = 0;
}

void
bus_kv_mirror_free(BusKvMirror *m)
{
	if (!m)
		return;
	g_free(m->bucket);
	g_free(m);
}
