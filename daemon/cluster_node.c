/* The main-loop side of a cluster node (cluster_node.h, doc/cluster.md). */
#include "cluster_node.h"

#include "bus.h"
#include "coord.h"
#include "fnv1a.h"
#include "gaps.h"
#include "alertjson.h"
#include "json.h"
#include "statebuf.h"
#include "wire.h"

#include <json-glib/json-glib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* One owned partition: its analyzer and how far into its stream it is. */
typedef struct {
	ClusterNode *node;
	guint p;
	Analyzer *a;
	guint64 applied_seq; /* the last flow batch applied (0: none since the snapshot) */
	guint64 lease_rev;
	gint64 from_ms; /* the analyzer clock of the snapshot it started from (0: none) */
	guint64 sent;	/* bus ticket of the last event it sent (bus_done_through()) */
	gint64 snap_ok_us; /* monotonic: taken, or its last snapshot made */
	GQueue held; /* Held: events, forgets and readings the bus's buffer had no room for */
	gboolean dropped;   /* one of those dropped: no snapshot any more, and restarted */
	guint64 drop_ticket; /* ... the node's last bus ticket then (part_restart_when_room()) */
	gboolean restarted; /* ... once the bus takes messages again (part_restart_when_room()) */
	GapTrack *gaps;	    /* the collectors' batch numbers that never came (gaps.h) */
	gint64 rewind_us;   /* gap_clock() of the last coord_rewind() (0: none) */
	/* stream time -> sequence (mark_note()): Mark, oldest first, at most MARKS_MAX */
	GArray *marks;
	gboolean marks_dropped; /* the oldest went: no mark reaches back to first_seq */
	guint64 first_seq;	/* the first sequence after the snapshot it started from */
} Part;

/* One mark a second of stream time, for a reading again from a time: coord_rewind() takes
 * a sequence (a consumer started by time was not made again by libnats 3.4 after a
 * server's restart). 1,024 of 16 bytes: about 17 minutes a partition. */
#define MARKS_MAX 1024
typedef struct {
	gint64 ms;
	guint64 seq;
} Mark;

/* A warning said at most once a minute: TRUE, and now kept in *last_us, when the last was
 * said more than a minute ago or never. */
static gboolean
warn_due(gint64 *last_us, gint64 now)
{
	if (*last_us != 0 && now - *last_us < 60 * G_USEC_PER_SEC)
		return FALSE;
	*last_us = now;
	return TRUE;
}

/* Batch numbers skipped by a partition's stream wait this long before they count missing:
 * a publish is retried for up to the bus's 2 s timeout while connected, and for as long as
 * the bus is away, and may be stored after the ones that followed it. So the wait is
 * counted in time this node's bus was calm (gap_clock()): a whole outage does not use it
 * up (cluster-outage, servers away 45 s: two batches came more than 30 s after their gap
 * was seen), nor do the seconds after it while libnats makes its consumers again and a
 * reading of the stream waits (coord_rewind()). Collectors tracked per partition and
 * numbers waiting per collector:
 * at most 64 x (256 x 32 + 64 x 16) bytes (holes, and ranges declared missing: gaps.c) a
 * partition, 576 KiB, whatever a client of the bus writes into it. */
#define GAP_GRACE_US (30 * G_USEC_PER_SEC)
#define GAP_MAX_SOURCES 64
#define GAP_MAX_HOLES 256
/* A number still skipped after REWIND_WAIT (calm) is looked for in the stream: the
 * partition's flows are read again (coord_rewind()) from REWIND_BEFORE_MS before the stream
 * time of the batch that preceded it from its collector, which covers a batch stored before
 * its predecessor (the predecessor's publish retried: 2 s an attempt, and a backoff below
 * 1 s); every repeat but the batches never had is skipped by its head. At most one reading
 * a partition every REWIND_EVERY, so that a collector whose bus gives batches up (never in
 * the stream) costs one reading of a minute or so of the partition every 20 s at worst;
 * 5 + 20 s < GAP_GRACE_US: every hole is looked for before it counts missing. */
#define REWIND_WAIT_US (5 * G_USEC_PER_SEC)
#define REWIND_EVERY_US (20 * G_USEC_PER_SEC)
#define REWIND_BEFORE_MS (60 * 1000)

/* A message for the alert or history stream that the bus did not take (its buffer full):
 * held in the partition's order and offered again (part_keep()). */
typedef struct {
	char *subject, *id;
	GBytes *data;
	gboolean alert; /* an event or forget (else a history reading): which count it is in */
} Held;

/* A collector's batch in the making, for one partition. */
typedef struct {
	GArray *flows;				 /* Flow, exporter = local index */
	guint32 exp[CLUSTER_WIRE_MAX_EXPORTERS]; /* local exporter indexes in the batch */
	guint n_exp;
	guint64 seq;
} Pending;

/* Estimated encoded bytes of a flow (wire.c measures about 40 for an IPv4 port-25 flow):
 * a batch is sent before batch_bytes / this many flows. */
#define FLOW_WIRE_ESTIMATE 48

/* The slices of one partition a node's store has, so that each is written once: a takeover
 * replays slices the old owner sent (the stream drops the repeats only within its duplicate
 * window), and the old owner, not yet aware that it lost the lease, may still send a few
 * after the new one's, so "not newer than the last" could drop slices never written. The
 * last HIST_SEEN_MAX slice times are remembered, each with its pieces (a bit each; pieces
 * past 31 share the last bit); anything older than what was forgotten counts as written. */
#define HIST_SEEN_MAX 512
typedef struct {
	GHashTable *pieces; /* gint64 slice time -> guint32 mask of pieces */
	GQueue order;	    /* the times, oldest first (owned) */
	gint64 forgotten;   /* the newest time dropped from them; G_MININT64: none */
} HistSeen;

/* TRUE: (t, piece) is new, and is now remembered */
static gboolean
hist_seen_add(HistSeen *h, gint64 t, guint piece)
{
	guint32 bit = 1u << MIN(piece, 31u);
	if (h->pieces == NULL) {
		h->pieces = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, NULL);
		h->forgotten = G_MININT64;
	}
	if (t <= h->forgotten)
		return FALSE;
	gpointer key, val;
	if (g_hash_table_lookup_extended(h->pieces, &t, &key, &val)) {
		guint32 mask = GPOINTER_TO_UINT(val);
		if (mask & bit)
			return FALSE;
		g_hash_table_insert(h->pieces, key, GUINT_TO_POINTER(mask | bit));
		return TRUE;
	}
	gint64 *k = g_new(gint64, 1);
	*k = t;
	g_queue_push_tail(&h->order, k);
	g_hash_table_insert(h->pieces, k, GUINT_TO_POINTER(bit));
	if (h->order.length > HIST_SEEN_MAX) {
		gint64 *old = g_queue_pop_head(&h->order);
		g_hash_table_remove(h->pieces, old);
		h->forgotten = MAX(h->forgotten, *old);
		g_free(old);
	}
	return TRUE;
}

static void
hist_seen_clear(HistSeen *h)
{
	if (h->pieces != NULL)
		g_hash_table_destroy(h->pieces);
	g_queue_clear_full(&h->order, g_free);
}

struct ClusterNode {
	const Config *cfg;
	ClusterNodeDeps deps;
	AnalyzerConfig pcfg; /* a partition's analyzer: the daemon's, caps divided */
	char name[64];
	gint64 boot_ms;
	guint roles;
	guint partitions;
	Bus *bus;
	Coord *coord;
	/* collector role */
	Analyzer *router; /* never fed: analyzer_flow_host() reads its configuration */
	AnalyzerScopeWatch scope; /* flows_outside against flows_routed (outside_check()) */
	Pending *pend;
	guint max_batch_flows;
	guint flush_id, tick_id, info_id;
	GByteArray *enc;
	/* analyzer role */
	Part **parts;
	guint snap_id;
	guint snap_next; /* the partition the next snapshot tick looks at first */
	gint64 defer_warn_us; /* the last warning of snapshots put off (at most one a minute) */
	gint64 defer_warn_after_us; /* ... said when a partition has none for this long */
	/* messages held by the partitions (part_keep()): bytes, bound, the retry timer, the
	 * last warning of one dropped */
	guint64 held_bytes, held_max;
	gint64 gap_warn_us; /* the last warning of batches missing (gap_note()) */
	gint64 twice_warn_us; /* ... of a batch stored twice (on_batch()) */
	gint64 gap_clock_us, gap_seen_us; /* gap_clock(): calm time, and when last read */
	guint64 last_ticket; /* of the last message bus_publish_keep() took from this node */
	guint held_id;
	gint64 held_warn_us;
	guint64 ctl_seq; /* control records asked here */
	/* exporters seen over the bus: address <-> registry index */
	GHashTable *exp_index; /* 16-byte key (owned) -> index + 1 */
	GArray *exp_addrs;     /* guint8[16] */
	/* history (deps.readings set) */
	GArray *hist_hosts;   /* HsegHost, reused */
	GByteArray *hist_enc; /* a slice payload, reused */
	HistSeen *hist_seen;  /* per partition: the slices written to the store */
	/* routed requests (ReqTag*) and control records (their tags) not answered yet: at the
	 * end their answers are dropped with the coordinator's queue, so they get an error */
	GHashTable *pending_req, *pending_ctl;
	ClusterNodeStats st;   /* the counters; partitions, owned, lag and bus_* filled on read */
};

#define EXPORTERS_MAX 65536 /* distinct exporter addresses remembered from the bus */

/* A request routed to another node (cluster_node_request()): who gets the answer. */
typedef struct {
	ClusterReplyFunc fn;
	gpointer tag;
} ReqTag;

static void on_coord(const CoordEvent *ev, gpointer user_data);

gboolean
cluster_node_collects(const ClusterNode *n)
{
	return (n->roles & COORD_ROLE_COLLECTOR) != 0;
}

gboolean
cluster_node_analyzes(const ClusterNode *n)
{
	return (n->roles & COORD_ROLE_ANALYZER) != 0;
}

const char *
cluster_node_name(const ClusterNode *n)
{
	return n->name;
}

/* ---- exporters ---- */

static guint
addr_hash(gconstpointer k)
{
	return fnv1a(k, 16);
}

static gboolean
addr_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 16) == 0;
}

static guint32
exporter_register(ClusterNode *n, const guint8 addr[16])
{
	gpointer v = g_hash_table_lookup(n->exp_index, addr);

	if (v != NULL)
		return CLUSTER_EXPORTER_BASE + GPOINTER_TO_UINT(v) - 1;
	if (n->exp_addrs->len >= EXPORTERS_MAX) {
		n->st.exporters_over++;
		return G_MAXUINT32; /* named "#4294967295": unknown */
	}
	g_array_append_vals(n->exp_addrs, addr, 1);
	g_hash_table_insert(n->exp_index, g_memdup2(addr, 16), GUINT_TO_POINTER(n->exp_addrs->len));
	return CLUSTER_EXPORTER_BASE + n->exp_addrs->len - 1;
}

gboolean
cluster_node_exporter_addr(ClusterNode *n, guint32 i, guint8 addr[16])
{
	if (i < CLUSTER_EXPORTER_BASE)
		return collector_exporter_addr(n->deps.collector, i, addr, NULL);
	if (i - CLUSTER_EXPORTER_BASE >= n->exp_addrs->len)
		return FALSE;
	memcpy(addr, &g_array_index(n->exp_addrs, guint8, (i - CLUSTER_EXPORTER_BASE) * 16), 16);
	return TRUE;
}

/* ---- collector role ---- */

static void
publish_batch(ClusterNode *n, guint p, gint64 clock_ms)
{
	Pending *b = &n->pend[p];
	ClusterBatch cb = {0};
	char subject[64], id[160];

	g_strlcpy(cb.node, n->name, sizeof cb.node);
	cb.partition = p;
	/* numbered 1, 2, ... among the batches the bus takes: a number the analyzer never sees
	 * is a batch lost after it (cluster/gaps.h) */
	cb.batch_seq = b->seq + 1;
	cb.clock_ms = clock_ms;
	cb.n_exporters = b->n_exp;
	for (guint i = 0; i < b->n_exp; i++)
		if (!collector_exporter_addr(n->deps.collector, b->exp[i], cb.exporters[i], NULL))
			memset(cb.exporters[i], 0, 16); /* expired meanwhile: unknown */
	cb.n_flows = b->flows->len;
	cb.flows = (const Flow *)(void *)b->flows->data;
	g_byte_array_set_size(n->enc, 0);
	cluster_wire_batch_encode(&cb, n->enc);
	g_snprintf(subject, sizeof subject, BUS_SUBJECT_FLOWS ".%u", p);
	g_snprintf(id, sizeof id, "%s-%" G_GINT64_FORMAT "-%u-%" G_GUINT64_FORMAT, n->name,
		   n->boot_ms, p, cb.batch_seq);
	if (bus_publish_weighted(n->bus, subject, n->enc->data, n->enc->len, id, cb.n_flows)) {
		b->seq = cb.batch_seq;
		n->st.batches_out++;
		n->st.batch_bytes_out += n->enc->len;
		if (cb.n_flows == 0)
			n->st.ticks_out++;
	} else {
		n->st.batches_dropped++;
		n->st.flows_dropped += cb.n_flows;
	}
	g_array_set_size(b->flows, 0);
	b->n_exp = 0;
}

/* The batch's index of local exporter e, adding it; -1 when the batch has no room left. */
static gint
batch_exporter(Pending *b, guint32 e)
{
	for (guint i = 0; i < b->n_exp; i++)
		if (b->exp[i] == e)
			return (gint)i;
	if (b->n_exp == CLUSTER_WIRE_MAX_EXPORTERS)
		return -1;
	b->exp[b->n_exp] = e;
	return (gint)b->n_exp++;
}

/* A collector's ANALYZER_NOTICE_OUTSIDE: it routes, so no analyzer sees the records that
 * have no host of the site; the same rule on the flows' clock, told here. */
static void
outside_check(ClusterNode *n, gint64 now_ms)
{
	guint64 told;
	gint64 period;

	if (!analyzer_scope_watch(&n->scope, now_ms, n->st.flows_outside, n->st.flows_routed, &told,
				  &period))
		return;
	g_warning("cluster: %" G_GUINT64_FORMAT " records on mail and login ports in the last "
		  "%" G_GINT64_FORMAT " min had neither end in [analyzer] internal_networks (%s) "
		  "or mail_servers, and this collector routed no record: no host is analyzed, "
		  "nothing can be raised. If your hosts have other addresses, list them in "
		  "internal_networks; if the exports only carry transit, this is expected. Counted "
		  "in stats as cluster.flows_outside; said at most once an hour",
		  told, period / 60000, n->cfg->internal_nets);
}

void
cluster_node_flows(ClusterNode *n, const Flow *flows, guint n_flows)
{
	guint8 host[16];

	for (guint i = 0; i < n_flows; i++) {
		const Flow *f = &flows[i];
		gboolean outside;
		if (!analyzer_flow_host(n->router, f, host, &outside)) {
			n->st.flows_ignored++;
			n->st.flows_outside += outside;
			continue;
		}
		guint p = cluster_partition(host, n->partitions);
		Pending *b = &n->pend[p];
		gint e = batch_exporter(b, f->exporter);
		if (e < 0) {
			publish_batch(n, p, f->recv_ms);
			e = batch_exporter(b, f->exporter);
		}
		Flow copy = *f;
		copy.exporter = (guint32)e;
		g_array_append_val(b->flows, copy);
		n->st.flows_routed++;
		if (b->flows->len >= n->max_batch_flows)
			publish_batch(n, p, f->recv_ms);
	}
	if (n_flows > 0)
		outside_check(n, flows[n_flows - 1].recv_ms);
}

gboolean
cluster_node_flush(ClusterNode *n, gint64 timeout_ms)
{
	gint64 now = g_get_real_time() / 1000;

	for (guint p = 0; n->pend != NULL && p < n->partitions; p++)
		if (n->pend[p].flows->len > 0)
			publish_batch(n, p, now);
	return bus_flush(n->bus, timeout_ms);
}

/* Every batch_ms: what waits goes out. */
static gboolean
on_flush(gpointer user_data)
{
	ClusterNode *n = user_data;
	gint64 now = g_get_real_time() / 1000;

	for (guint p = 0; p < n->partitions; p++)
		if (n->pend[p].flows->len > 0)
			publish_batch(n, p, now);
	return G_SOURCE_CONTINUE;
}

/* The analyzers' clock moves with the flows; a partition without flows learns that time
 * has passed (offenders clear, idle hosts go) from the collectors' ticks: an empty batch to
 * every partition, in the stream like the flows, so a takeover replays the same ticks. */
void
cluster_node_not_collected(ClusterNode *n, guint n_flows)
{
	n->st.flows_not_collected += n_flows;
}

void
cluster_node_tick(ClusterNode *n, gint64 clock_ms)
{
	for (guint p = 0; p < n->partitions; p++) {
		if (n->pend[p].flows->len > 0)
			publish_batch(n, p, clock_ms);
		publish_batch(n, p, clock_ms);
	}
}

static gboolean
on_tick(gpointer user_data)
{
	cluster_node_tick(user_data, g_get_real_time() / 1000);
	return G_SOURCE_CONTINUE;
}

/* Every NODE_INFO_S: the exporters in this node's entry of the nodes bucket. */
#define NODE_INFO_S 2

static gboolean
on_node_info(gpointer user_data)
{
	ClusterNode *n = user_data;
	g_autoptr(GString) reply = g_string_new(NULL);
	g_autoptr(JsonParser) parser = json_parser_new();

	n->deps.exporters(reply, n->deps.data);
	if (!json_parser_load_from_data(parser, reply->str, (gssize)reply->len, NULL))
		return G_SOURCE_CONTINUE;
	JsonNode *root = json_parser_get_root(parser);
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
	if (o == NULL || !json_object_has_member(o, "exporters"))
		return G_SOURCE_CONTINUE;
	g_autoptr(JsonObject) info = json_object_new();
	json_object_set_member(info, "exporters",
			       json_node_copy(json_object_get_member(o, "exporters")));
	g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), info);
	g_autofree char *text = json_to_string(node, FALSE);
	coord_set_node_info(n->coord, text);
	return G_SOURCE_CONTINUE;
}

void
cluster_node_exporters_json(ClusterNode *n, GString *out)
{
	g_autoptr(GString) st = g_string_new(NULL);
	g_autoptr(JsonParser) parser = json_parser_new();
	guint shown = 0;

	g_string_append(out, ",\"cluster\":[");
	if (n->coord != NULL)
		coord_status_json(n->coord, st);
	JsonNode *root =
	    st->len > 0 && json_parser_load_from_data(parser, st->str, (gssize)st->len, NULL)
		? json_parser_get_root(parser)
		: NULL;
	JsonObject *o =
	    root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
	JsonArray *nodes = o != NULL && json_object_has_member(o, "nodes")
			       ? json_object_get_array_member(o, "nodes")
			       : NULL;
	for (guint i = 0; nodes != NULL && i < json_array_get_length(nodes); i++) {
		JsonObject *nd = json_array_get_object_element(nodes, i);
		JsonObject *info =
		    nd != NULL && json_object_has_member(nd, "info") &&
			    JSON_NODE_HOLDS_OBJECT(json_object_get_member(nd, "info"))
			? json_object_get_object_member(nd, "info")
			: NULL;
		const char *name =
		    nd != NULL ? json_object_get_string_member_with_default(nd, "node", "") : "";
		if (info == NULL || !json_object_has_member(info, "exporters") ||
		    strcmp(name, n->name) == 0)
			continue;
		g_autoptr(JsonObject) item = json_object_new();
		json_object_set_string_member(item, "node", name);
		json_object_set_int_member(
		    item, "time_ms", json_object_get_int_member_with_default(info, "time_ms", 0));
		json_object_set_member(item, "exporters",
				       json_node_copy(json_object_get_member(info, "exporters")));
		g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), item);
		g_autofree char *text = json_to_string(node, FALSE);
		g_string_append_printf(out, "%s%s", shown++ > 0 ? "," : "", text);
	}
	g_string_append_c(out, ']');
}

/* ---- analyzer role ---- */

/* A host in a bucket key: IPv6's ':' is not a key character */
static void
host_key(const guint8 addr[16], char host[64])
{
	flow_addr_str(addr, host, 64);
	for (char *c = host; *c != '\0'; c++)
		if (*c == ':')
			*c = '_';
}

static void
offender_key_of(const guint8 addr[16], AlertReason r, char *key, gsize len)
{
	char host[64];

	host_key(addr, host);
	g_snprintf(key, len, "%s.%s", host, alert_reason_name(r));
}

static void
offender_key(const AlertEvent *ev, char *key, gsize len)
{
	offender_key_of(ev->host, ev->reason, key, len);
}

void
cluster_node_suppression_key(const guint8 host[16], gboolean all, AlertReason r, char *key,
			     gsize len)
{
	char h[64];

	host_key(host, h);
	g_snprintf(key, len, "%s.%s", h, all ? "all" : alert_reason_name(r));
}

static gboolean on_held(gpointer user_data);

/* A partition that dropped a message is given up to be taken again from its stored
 * snapshot (coord_restart()), whose replay sends the message again, but only once the
 * streams take the node's messages again: every one the bus had taken when it dropped, and
 * every one the partition handed it since, acknowledged; none of its own held, and the
 * node's below half their bound. Sooner, the replay would drop it again, and a bus refusing
 * for an hour would have the partition replayed over and over. */
static void
part_restart_when_room(ClusterNode *n, Part *part)
{
	if (!part->dropped || part->restarted || n->coord == NULL ||
	    !g_queue_is_empty(&part->held) || n->held_bytes > n->held_max / 2 ||
	    !bus_done_through(n->bus, part->drop_ticket) || !bus_done_through(n->bus, part->sent))
		return;
	part->restarted = TRUE;
	n->st.restarts++;
	coord_restart(n->coord, part->p);
}

static gsize
held_cost(const Held *h)
{
	return g_bytes_get_size(h->data) + strlen(h->subject) + strlen(h->id);
}

static void
held_free(Held *h)
{
	g_free(h->subject);
	g_free(h->id);
	g_bytes_unref(h->data);
	g_free(h);
}

/* A message the bus took: an alert event or forget, or a history reading of len bytes. */
static void
count_out(ClusterNode *n, gboolean alert, gsize len)
{
	if (alert) {
		n->st.alerts_out++;
	} else {
		n->st.history_out++;
		n->st.history_bytes_out += len;
	}
}

/* Offer a partition's held messages to the bus again, in order; FALSE: some are left. */
static gboolean
part_offer_held(ClusterNode *n, Part *part)
{
	Held *h;
	while ((h = g_queue_peek_head(&part->held)) != NULL) {
		gsize len;
		const void *d = g_bytes_get_data(h->data, &len);
		if (!bus_publish_keep(n->bus, h->subject, d, len, h->id, &part->sent))
			return FALSE;
		n->last_ticket = MAX(n->last_ticket, part->sent);
		g_queue_pop_head(&part->held);
		n->held_bytes -= held_cost(h);
		n->st.held_now--;
		count_out(n, h->alert, len);
		g_debug("cluster: partition %u: held %s to the bus", part->p, h->id);
		held_free(h);
	}
	return TRUE;
}

/* A message the partition's snapshot must not hold as sent before the stream has it (an
 * alert event, a forget, a history reading): to the bus, or, when its buffer is full (a
 * slow bus, a collector's batches), held after the partition's earlier ones and offered
 * again every 100 ms; the partition's snapshots wait for them (part_snapshot()). Beyond
 * held_max (a quarter of publish_buffer) it is dropped, counted and said, and the partition
 * restarted from its stored snapshot when the bus has room (part_restart_when_room()).
 * FALSE: dropped. */
static gboolean
part_keep(ClusterNode *n, Part *part, const char *subject, const void *data, gsize len,
	  const char *id, gboolean alert)
{
	if (g_queue_is_empty(&part->held) &&
	    bus_publish_keep(n->bus, subject, data, len, id, &part->sent)) {
		n->last_ticket = MAX(n->last_ticket, part->sent);
		count_out(n, alert, len);
		return TRUE;
	}
	Held *h = g_new0(Held, 1);
	h->subject = g_strdup(subject);
	h->id = g_strdup(id);
	h->data = g_bytes_new(data, len);
	h->alert = alert;
	gsize cost = held_cost(h);
	if (n->held_bytes + cost > n->held_max) {
		held_free(h);
		if (alert)
			n->st.alerts_dropped++;
		else
			n->st.history_dropped++;
		/* the snapshot stored before it stays, and the partition is taken again from
		 * there once the bus has room: the replay sends it again */
		if (!part->dropped)
			part->drop_ticket = n->last_ticket;
		part->dropped = TRUE;
		gint64 now = g_get_monotonic_time();
		if (warn_due(&n->held_warn_us, now)) {
			BusStats bs;
			bus_get_stats(n->bus, &bs);
			g_warning("cluster: partition %u: %s %s dropped: the bus's buffer and the "
				  "%" G_GUINT64_FORMAT " bytes held for it are full (bus: %s); once "
				  "the bus takes messages again, the partition is taken again from its "
				  "stored snapshot, whose replay sends it again (said at most once a "
				  "minute)",
				  part->p, alert ? "alert event" : "history reading", id, n->held_max,
				  bs.last_error[0] != '\0' ? bs.last_error : "no error");
		}
		return FALSE;
	}
	g_queue_push_tail(&part->held, h);
	n->held_bytes += cost;
	n->st.held++;
	n->st.held_now++;
	g_debug("cluster: partition %u: %s held (the bus's buffer is full)", part->p, id);
	if (n->held_id == 0)
		n->held_id = g_timeout_add(100, on_held, n);
	return TRUE;
}

static gboolean
on_held(gpointer user_data)
{
	ClusterNode *n = user_data;
	gboolean left = FALSE;
	for (guint p = 0; p < n->partitions && !left; p++)
		if (n->parts[p] != NULL)
			left = !part_offer_held(n, n->parts[p]);
	for (guint p = 0; p < n->partitions; p++)
		if (n->parts[p] != NULL)
			part_restart_when_room(n, n->parts[p]);
	if (left)
		return G_SOURCE_CONTINUE;
	n->held_id = 0;
	return G_SOURCE_REMOVE;
}

/* An owned partition's analyzer raised, updated or cleared: evidence here, then the event
 * to the cluster's alert stream (the sinks run on the alert group's nodes) and the offender
 * to its bucket. A takeover's replay emits the events of the replayed part again: their ids
 * are the same, and the stream keeps the first. */
static void
on_part_alert(const AlertEvent *analyzer_ev, gpointer user_data)
{
	Part *part = user_data;
	ClusterNode *n = part->node;
	ClusterAlert ca = {0};
	char id[CLUSTER_WIRE_ID_MAX], key[96];

	ca.ev = *analyzer_ev;
	if (n->deps.evidence != NULL &&
	    (ca.ev.event == ALERT_RAISED || ca.ev.event == ALERT_UPDATED))
		n->deps.evidence(&ca.ev, n->deps.data);
	g_strlcpy(ca.node, n->name, sizeof ca.node);
	ca.partition = part->p;
	ca.lease_rev = part->lease_rev;
	ca.lease_from_ms = part->from_ms;
	for (guint i = 0; i < ca.ev.n_exporters && i < ALERT_EXPORTERS_MAX; i++)
		if (!cluster_node_exporter_addr(n, ca.ev.exporters[i], ca.exporters[i]))
			memset(ca.exporters[i], 0, 16);
	cluster_wire_alert_id(part->p, &ca.ev, id, sizeof id);
	g_byte_array_set_size(n->enc, 0);
	cluster_wire_alert_encode(&ca, n->enc);
	gboolean taken =
	    part_keep(n, part, BUS_SUBJECT_ALERTS, n->enc->data, n->enc->len, id, TRUE);
	g_debug("cluster: partition %u (lease revision %" G_GUINT64_FORMAT ", at sequence "
		"%" G_GUINT64_FORMAT "): event %s %s",
		part->p, part->lease_rev, part->applied_seq, id,
		taken ? "to the bus" : "dropped (buffer and held bytes full)");
	offender_key(&ca.ev, key, sizeof key);
	if (ca.ev.event == ALERT_CLEARED) {
		coord_offender(n->coord, key, NULL);
		return;
	}
	g_autoptr(GString) j = g_string_new(NULL);
	if (n->deps.offender_json(part->a, ca.ev.host, ca.ev.reason, j, n->deps.data))
		coord_offender(n->coord, key, j->str);
}

/* Hosts of one history message: 1,024 take at most 253 KB (history_seg.c: 16 + 3 x 5 + 1 + 5
 * + 7 reasons x 6 varints of at most 5 bytes each), under NATS's default 1 MB payload. */
#define HISTORY_PIECE_HOSTS 1024
G_STATIC_ASSERT(HISTORY_PIECE_HOSTS * (16 + 3 * 5 + 1 + 5 + REASON_COUNT * 6 * 5) + 20 <=
		CLUSTER_WIRE_MAX_HISTORY);

/* A partition analyzer's slice ended: its hosts' readings to the bus, where every node that
 * keeps a store reads them (this one too, on_history_in()). The id makes a takeover's
 * replayed slice a duplicate the stream drops (within its window; the readers drop the rest:
 * HistSeen). */
static void
on_part_slice(gint64 slice_end_ms, gpointer user_data)
{
	Part *part = user_data;
	ClusterNode *n = part->node;

	g_array_set_size(n->hist_hosts, 0);
	n->deps.readings(part->a, n->hist_hosts, n->deps.data);
	const HsegHost *h = (const HsegHost *)(void *)n->hist_hosts->data;
	char subject[64], id[96];
	g_snprintf(subject, sizeof subject, "%s.%u", BUS_SUBJECT_HISTORY, part->p);
	for (guint i = 0, piece = 0; i < n->hist_hosts->len; i += HISTORY_PIECE_HOSTS, piece++) {
		guint k = MIN(HISTORY_PIECE_HOSTS, n->hist_hosts->len - i);
		g_byte_array_set_size(n->hist_enc, 0);
		hseg_slice_encode(n->hist_enc, slice_end_ms, h + i, k);
		ClusterHistory m = {.partition = part->p,
				    .lease_rev = part->lease_rev,
				    .piece = (guint16)MIN(piece, G_MAXUINT16),
				    .slice = n->hist_enc->data,
				    .slice_len = n->hist_enc->len};
		g_strlcpy(m.node, n->name, sizeof m.node);
		g_byte_array_set_size(n->enc, 0);
		cluster_wire_history_encode(&m, n->enc);
		g_snprintf(id, sizeof id, "h%u-%" G_GINT64_FORMAT "-%u", part->p, slice_end_ms,
			   piece);
		/* kept like the events, and the partition's next snapshot waits for it: given
		 * up after a server loss it left a hole in every store's timeline (cluster-e2e:
		 * 7 slices); now the next owner's replay sends it again if this one cannot */
		part_keep(n, part, subject, n->enc->data, n->enc->len, id, FALSE);
	}
}

/* A partition's readings from the bus, into this node's store: each slice once, whichever
 * node sent it and however often the bus delivers it (HistSeen). */
static void
on_history_in(ClusterNode *n, const CoordEvent *ev)
{
	g_autoptr(GError) err = NULL;
	ClusterHistory m;
	gsize len;
	const guint8 *d = g_bytes_get_data(ev->data, &len);
	HsegSliceIter it;
	gint64 t;
	guint32 count;
	HsegHost h;
	gboolean bad = FALSE;

	if (!cluster_wire_history_decode(d, len, &m, &err) || m.partition >= n->partitions ||
	    !hseg_slice_begin(m.slice, m.slice_len, &t, &count, &it)) {
		n->st.history_bad++;
		g_debug("cluster: history message %" G_GUINT64_FORMAT ": %s", ev->seq,
			err != NULL ? err->message : "partition or slice not valid");
		return;
	}
	guint p = m.partition;
	/* a slice from the future would make the partition's later ones look forgotten */
	if (t > g_get_real_time() / 1000 + 3600 * 1000) {
		n->st.history_bad++;
		return;
	}
	g_array_set_size(n->hist_hosts, 0);
	while (hseg_slice_next(&it, &h, &bad)) {
		/* a host of another partition: not what its owner sends */
		if (cluster_partition(h.host, n->partitions) != p) {
			bad = TRUE;
			break;
		}
		g_array_append_val(n->hist_hosts, h);
	}
	if (bad || n->hist_hosts->len != count) {
		n->st.history_bad++;
		return;
	}
	if (!hist_seen_add(&n->hist_seen[p], t, m.piece)) {
		n->st.history_repeated++;
		return;
	}
	n->st.history_in++;
	n->st.history_hosts_in += count;
	if (count > 0)
		n->deps.history(t, (const HsegHost *)(void *)n->hist_hosts->data, count,
				n->deps.data);
}

/* Its held messages go with it: the next owner's replay from the stored snapshot (which
 * they kept from being replaced) emits them again. */
static void
part_free(Part *part)
{
	if (part == NULL)
		return;
	Held *h;
	while ((h = g_queue_pop_head(&part->held)) != NULL) {
		part->node->held_bytes -= held_cost(h);
		part->node->st.held_now--;
		held_free(h);
	}
	analyzer_free(part->a);
	g_array_unref(part->marks);
	part->node->st.batches_late += gap_track_late(part->gaps); /* kept past the partition */
	part->node->st.batches_twice += gap_track_twice(part->gaps);
	gap_track_free(part->gaps);
	g_free(part);
}

/* A partition's snapshot: "SFPS", u8 version 1, u32 length + the analyzer's state
 * (analyzer_state_save()), u32 length + its suppressions (analyzer_suppressions_save(): a
 * daemon keeps them in a state file section of their own). A snapshot without the magic is
 * an analyzer state alone, as nodes before suppressions in a cluster stored it. */
#define SNAP_MAGIC "SFPS"
#define SNAP_VERSION 1

static void
part_snapshot(ClusterNode *n, Part *part, gboolean release)
{
	g_autoptr(GByteArray) state = g_byte_array_new();
	gsize mark;

	/* A snapshot holds the events up to it as sent: stored only once the alert stream has
	 * them. Until then the stored one stays (a handover gives the lease up without a new
	 * one), and the next owner's replay from it emits them again, under the same ids. */
	gint64 now = g_get_monotonic_time();
	if (!release)
		part_restart_when_room(n, part);
	if (part->dropped || !g_queue_is_empty(&part->held) ||
	    !bus_done_through(n->bus, part->sent)) {
		n->st.snapshots_deferred++;
		g_debug("cluster: partition %u: snapshot at sequence %" G_GUINT64_FORMAT
			" put off: events before it not stored yet%s",
			part->p, part->applied_seq, release ? " (released on the stored one)" : "");
		if (release) {
			coord_snapshot(n->coord, part->p, 0, NULL, TRUE);
		} else if (now - part->snap_ok_us > n->defer_warn_after_us &&
			   warn_due(&n->defer_warn_us, now)) {
			/* the takeover's replay grows with it, and the flow stream's retention
			 * bounds it */
			BusStats bs;
			bus_get_stats(n->bus, &bs);
			g_warning("cluster: partition %u: no snapshot for %" G_GINT64_FORMAT
				  " s: alert events before it are not in the alert stream yet (bus: "
				  "%s; said at most once a minute)",
				  part->p, (now - part->snap_ok_us) / G_USEC_PER_SEC,
				  bs.last_error[0] != '\0' ? bs.last_error : "no error");
		}
		return;
	}
	part->snap_ok_us = now;
	g_debug("cluster: partition %u: snapshot at sequence %" G_GUINT64_FORMAT "%s", part->p,
		part->applied_seq, release ? ", released" : "");

	statebuf_put_bytes(state, SNAP_MAGIC, 4);
	statebuf_put_u8(state, SNAP_VERSION);
	mark = statebuf_begin(state);
	analyzer_state_save(part->a, state);
	statebuf_end(state, mark);
	mark = statebuf_begin(state);
	analyzer_suppressions_save(part->a, state);
	statebuf_end(state, mark);
	n->st.snapshots++;
	n->st.snapshot_bytes += state->len;
	g_autoptr(GBytes) b = g_byte_array_free_to_bytes(g_steal_pointer(&state));
	coord_snapshot(n->coord, part->p, part->applied_seq, b, release);
}

static void
on_acquired(ClusterNode *n, const CoordEvent *ev)
{
	g_autoptr(GError) err = NULL;
	Part *part = g_new0(Part, 1);

	part->node = n;
	part->p = ev->partition;
	part->gaps = gap_track_new(GAP_MAX_SOURCES, GAP_MAX_HOLES, GAP_GRACE_US);
	part->marks = g_array_new(FALSE, FALSE, sizeof(Mark));
	part->first_seq = ev->seq + 1;
	part->lease_rev = ev->lease_rev;
	part->applied_seq = ev->seq;
	part->snap_ok_us = g_get_monotonic_time();
	AnalyzerConfig c = n->pcfg;
	c.alert_fn = on_part_alert;
	c.alert_data = part;
	if (n->deps.readings != NULL) {
		c.slice_fn = on_part_slice;
		c.slice_data = part;
	}
	part->a = analyzer_new(&c, &err);
	if (part->a == NULL) { /* the daemon's own configuration, validated at start */
		g_warning("cluster: partition %u: %s", ev->partition, err->message);
		gap_track_free(part->gaps);
		g_array_unref(part->marks);
		g_free(part);
		return;
	}
	if (ev->data != NULL) {
		gsize len;
		const guint8 *d = g_bytes_get_data(ev->data, &len);
		Cursor cur, st = {0}, sup = {0};
		guint8 magic[4] = {0}, version = 0;
		gboolean framed = len >= 4 && memcmp(d, SNAP_MAGIC, 4) == 0;
		cursor_init(&cur, d, len);
		if (framed &&
		    (!cursor_bytes(&cur, magic, 4) || !cursor_u8(&cur, &version) ||
		     version != SNAP_VERSION || !statebuf_get_sub(&cur, &st) ||
		     !statebuf_get_sub(&cur, &sup) || cursor_left(&cur) != 0)) {
			g_set_error(&err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				    "not a partition snapshot of version %u", SNAP_VERSION);
		} else if (!framed) {
			cursor_init(&st, d, len);
		}
		guint dropped = 0;
		if (err != NULL ||
		    !analyzer_state_load(part->a, st.p, cursor_left(&st), &err) ||
		    (framed && !analyzer_suppressions_load(part->a, sup.p, cursor_left(&sup),
							    analyzer_now(part->a), &dropped,
							    &err))) {
			/* the stream from the snapshot on is all there is: counted, and the windows
			 * start from what comes */
			n->st.snapshots_bad++;
			g_warning("cluster: partition %u: snapshot at sequence %" G_GUINT64_FORMAT
				  " not loaded (%s): its windows restart",
				  ev->partition, ev->seq, err->message);
			analyzer_free(part->a);
			part->a = analyzer_new(&c, NULL);
		}
	}
	part->from_ms = ev->data != NULL ? MAX(analyzer_now(part->a), 0) : 0;
	part_free(n->parts[ev->partition]);
	n->parts[ev->partition] = part;
	n->st.acquired++;
	coord_applied(n->coord, part->p, part->applied_seq, 0); /* caught up if nothing follows */
	g_message("cluster: partition %u is ours (lease revision %" G_GUINT64_FORMAT
		  "), from %s sequence %" G_GUINT64_FORMAT,
		  ev->partition, ev->lease_rev, ev->data != NULL ? "a snapshot at" : "the stream's",
		  ev->data != NULL ? ev->seq : (guint64)1);
}

/* A control record in an owned partition's stream: applied at its place among the flows
 * (a takeover's replay applies it again at the same place), logged with who asked where,
 * and what `suppressions` and `offenders` show on every node updated. */
static void
on_ctl(ClusterNode *n, Part *part, const guint8 *d, gsize len, guint64 seq)
{
	g_autoptr(GError) err = NULL;
	ClusterCtl c;
	char host[64], key[96];

	if (!cluster_wire_ctl_decode(d, len, &c, &err) || c.partition != part->p ||
	    cluster_partition(c.host, n->partitions) != part->p) {
		n->st.ctl_bad++;
		g_debug("cluster: partition %u sequence %" G_GUINT64_FORMAT ": %s", part->p, seq,
			err != NULL ? err->message : "a control record for another partition");
		return;
	}
	n->st.ctl_in++;
	flow_addr_str(c.host, host, sizeof host);
	const char *why = c.all ? "all reasons" : alert_reason_name(c.reason);
	switch (c.op) {
	case CLUSTER_CTL_SUPPRESS: {
		PolicySuppression s = {0};
		gboolean replaced = FALSE;
		memcpy(s.addr, c.host, 16);
		s.all = c.all;
		s.reason = c.reason;
		s.until_ms = c.until_ms;
		s.set_ms = c.set_ms;
		s.uid = c.uid;
		g_strlcpy(s.note, c.note, sizeof s.note);
		if (!analyzer_suppress(part->a, &s, &replaced, &err)) {
			n->st.ctl_refused++;
			g_warning("cluster: partition %u: suppression of %s (%s) asked on %s by "
				  "uid=%u pid=%d not applied: %s",
				  part->p, host, why, c.node, c.uid, (int)c.pid, err->message);
			return;
		}
		g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(c.until_ms / 1000);
		g_autofree char *until = dt != NULL ? g_date_time_format_iso8601(dt) : NULL;
		g_message("cluster: suppression %s: %s (%s) until %s by uid=%u pid=%d on node %s "
			  "(partition %u, sequence %" G_GUINT64_FORMAT "): %s",
			  replaced ? "replaced" : "set", host, why, until ? until : "?", c.uid,
			  (int)c.pid, c.node, part->p, seq, c.note);
		g_autoptr(GString) j = g_string_new(NULL);
		suppression_json(j, &s, -1, (gint)part->p);
		cluster_node_suppression_key(c.host, c.all, c.reason, key, sizeof key);
		coord_suppression(n->coord, key, j->str);
		break;
	}
	case CLUSTER_CTL_UNSUPPRESS: {
		guint removed = analyzer_unsuppress(part->a, c.host, !c.all, c.reason);
		g_message("cluster: suppression removed: %s (%s): %u removed by uid=%u pid=%d on "
			  "node %s (partition %u, sequence %" G_GUINT64_FORMAT ")",
			  host, why, removed, c.uid, (int)c.pid, c.node, part->p, seq);
		/* every key it may have had: what the analyzer held is what it removed */
		for (guint r = 0; r <= REASON_COUNT; r++) {
			gboolean all = r == REASON_COUNT;
			if (!c.all && (all || r != c.reason))
				continue;
			cluster_node_suppression_key(c.host, all, (AlertReason)(all ? 0 : r), key,
						     sizeof key);
			coord_suppression(n->coord, key, NULL);
		}
		break;
	}
	case CLUSTER_CTL_FORGET: {
		gboolean found = analyzer_forget(part->a, c.host);
		char id[CLUSTER_WIRE_ID_MAX];
		g_message("cluster: forget %s: %s by uid=%u pid=%d on node %s (partition %u, "
			  "sequence %" G_GUINT64_FORMAT ")",
			  host, found ? "windows and offenders dropped" : "nothing was held", c.uid,
			  (int)c.pid, c.node, part->p, seq);
		for (guint r = 0; r < REASON_COUNT; r++) {
			offender_key_of(c.host, (AlertReason)r, key, sizeof key);
			coord_offender(n->coord, key, NULL);
		}
		/* the alert group's sinks and actions learn it from the alerts stream (the
		 * record's own id: a replay's copy is dropped there) */
		cluster_wire_ctl_id(&c, id, sizeof id);
		part_keep(n, part, BUS_SUBJECT_ALERTS, d, len, id, TRUE);
		break;
	}
	}
}

/* The clock of batch numbers' grace: monotonic time while the bus is calm (connected, no
 * reconnect and no missed heartbeat for BUS_CALM_US: bus_settled()). The time since the
 * last reading counts when calm now: read at least every snapshot tick. */
static gint64
gap_clock(ClusterNode *n)
{
	gint64 now = g_get_monotonic_time();
	if (n->gap_seen_us != 0 && bus_settled(n->bus, BUS_CALM_US))
		n->gap_clock_us += now - n->gap_seen_us;
	n->gap_seen_us = now;
	return n->gap_clock_us;
}

/* Batches declared missing at partition part: counted, and told at most once a minute. */
static void
gap_note(ClusterNode *n, Part *part, guint64 missing)
{
	if (missing == 0)
		return;
	n->st.batches_missing += missing;
	if (warn_due(&n->gap_warn_us, g_get_monotonic_time())) {
		g_warning("cluster: partition %u: %" G_GUINT64_FORMAT " flow batch%s from the "
			  "collectors never arrived here (%" G_GUINT64_FORMAT " in all): their "
			  "flows are not analyzed (a batch the collector's bus gave up on is "
			  "counted there as failed; any other was lost on the way; said at most "
			  "once a minute)",
			  part->p, missing, missing == 1 ? "" : "es", n->st.batches_missing);
	}
}

/* Stream sequence seq stored at time_ms (0: unknown), applied in order: a mark when it is
 * the first of its second. */
static void
mark_note(Part *part, guint64 seq, gint64 time_ms)
{
	if (time_ms <= 0)
		return;
	if (part->marks->len > 0 &&
	    time_ms / 1000 <= g_array_index(part->marks, Mark, part->marks->len - 1).ms / 1000)
		return;
	if (part->marks->len == MARKS_MAX) {
		g_array_remove_index(part->marks, 0);
		part->marks_dropped = TRUE;
	}
	Mark m = {time_ms, seq};
	g_array_append_val(part->marks, m);
}

/* A stream sequence at or before the first message stored at since_ms or later, as far as
 * the marks tell: the newest mark stored before since_ms; without one, the first sequence
 * after the snapshot (every message since is marked), or the oldest mark (older ones went:
 * a best effort, said in the log). */
static guint64
mark_seq_before(const Part *part, gint64 since_ms, gboolean *short_of)
{
	*short_of = FALSE;
	for (guint i = part->marks->len; i-- > 0;) {
		const Mark *m = &g_array_index(part->marks, Mark, i);
		if (m->ms < since_ms)
			return m->seq;
	}
	if (!part->marks_dropped || part->marks->len == 0)
		return MAX(part->first_seq, 1);
	*short_of = TRUE;
	return g_array_index(part->marks, Mark, 0).seq;
}

/* Partition part's holes at now (gap_clock()): those past their grace counted missing;
 * those past REWIND_WAIT_US looked for in the stream, once each, at most every
 * REWIND_EVERY_US. */
static void
gap_check(ClusterNode *n, Part *part, gint64 now)
{
	gint64 after_ms = 0;
	gap_note(n, part, gap_track_expire(part->gaps, now));
	if (part->rewind_us != 0 && now - part->rewind_us < REWIND_EVERY_US)
		return;
	guint holes = gap_track_rewind(part->gaps, now, REWIND_WAIT_US, &after_ms);
	if (holes == 0)
		return;
	part->rewind_us = now;
	n->st.rereads++;
	gint64 since = after_ms > REWIND_BEFORE_MS ? after_ms - REWIND_BEFORE_MS : 1;
	gboolean short_of = FALSE;
	guint64 from = mark_seq_before(part, since, &short_of);
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(since / 1000);
	g_autofree char *at = dt != NULL ? g_date_time_format_iso8601(dt) : NULL;
	g_message("cluster: partition %u: %u flow batch%s from the collectors still not here "
		  "after %d s: the partition's stream is read again from sequence "
		  "%" G_GUINT64_FORMAT " (%s %s, %d s before the stream stored the batch before "
		  "the earliest of them)",
		  part->p, holes, holes == 1 ? "" : "es", (int)(REWIND_WAIT_US / G_USEC_PER_SEC),
		  from, short_of ? "the oldest this node marked, after" : "stored before",
		  at != NULL ? at : "?", REWIND_BEFORE_MS / 1000);
	coord_rewind(n->coord, part->p, from);
}

static void
on_batch(ClusterNode *n, const CoordEvent *ev)
{
	Part *part = ev->partition < n->partitions ? n->parts[ev->partition] : NULL;
	g_autoptr(GError) err = NULL;
	ClusterBatch b = {0};
	gsize len;
	const guint8 *d;

	if (part == NULL) {
		n->st.batches_unowned++;
		return;
	}
	d = g_bytes_get_data(ev->data, &len);
	/* at or below what was applied: a repeat (a takeover's replay, a stream read again),
	 * but for a batch this partition never had (a hole, read again: coord_rewind()) */
	gboolean recovered = FALSE;
	if (ev->seq <= part->applied_seq) {
		char node[64];
		guint64 bseq = 0;
		if (!cluster_wire_batch_peek(d, len, node, &bseq) ||
		    !gap_track_is_hole(part->gaps, node, bseq, ev->seq)) {
			n->st.batches_repeated++;
			return;
		}
		recovered = TRUE;
	} else {
		part->applied_seq = ev->seq;
		mark_note(part, ev->seq, ev->time_ms);
	}
	if (cluster_wire_is_ctl(d, len)) {
		on_ctl(n, part, d, len, ev->seq);
		coord_applied(n->coord, part->p, part->applied_seq, ev->time_ms);
		return;
	}
	if (!cluster_wire_batch_decode(d, len, &b, &err)) {
		n->st.batches_bad++;
		g_debug("cluster: partition %u sequence %" G_GUINT64_FORMAT ": %s", ev->partition,
			ev->seq, err->message);
		return;
	}
	gboolean twice = FALSE;
	gap_note(n, part,
		 gap_track_see(part->gaps, b.node, b.batch_seq, gap_clock(n), ev->seq,
			       ev->time_ms, &twice));
	if (twice) {
		/* the stream holds this batch twice (counted): applied once */
		if (warn_due(&n->twice_warn_us, g_get_monotonic_time())) {
			g_warning("cluster: partition %u: batch %" G_GUINT64_FORMAT " of collector "
				  "%s came again (stream sequence %" G_GUINT64_FORMAT "): applied "
				  "once, the copy counted in batches_twice (two collectors with "
				  "one node name number alike: names must be unique; said at most "
				  "once a minute)",
				  part->p, b.batch_seq, b.node, ev->seq);
		}
		if (!recovered)
			coord_applied(n->coord, part->p, part->applied_seq, ev->time_ms);
		cluster_batch_clear(&b);
		return;
	}
	n->st.batches_in++;
	n->st.batches_recovered += recovered;
	guint32 reg[CLUSTER_WIRE_MAX_EXPORTERS];
	for (guint i = 0; i < b.n_exporters; i++)
		reg[i] = exporter_register(n, b.exporters[i]);
	Flow *f = b.storage != NULL ? (Flow *)(void *)b.storage->data : NULL;
	for (guint i = 0; i < b.n_flows; i++)
		f[i].exporter = reg[f[i].exporter];
	n->st.flows_in += b.n_flows;
	if (b.n_flows > 0)
		analyzer_process(part->a, f, b.n_flows);
	else if (!recovered) /* a tick found again is past: the ones after it judged */
		analyzer_tick(part->a, b.clock_ms);
	if (!recovered)
		coord_applied(n->coord, part->p, part->applied_seq, ev->time_ms);
	cluster_batch_clear(&b);
}

static void
on_alert_in(ClusterNode *n, const CoordEvent *ev)
{
	g_autoptr(GError) err = NULL;
	ClusterAlert ca;
	gsize len;
	const guint8 *d = g_bytes_get_data(ev->data, &len);

	if (cluster_wire_is_ctl(d, len)) {
		ClusterCtl c;
		if (!cluster_wire_ctl_decode(d, len, &c, &err) || c.op != CLUSTER_CTL_FORGET) {
			n->st.alerts_bad++;
			return;
		}
		n->st.ctl_forgets_in++;
		if (n->deps.forgotten != NULL)
			n->deps.forgotten(c.host, n->deps.data);
		return;
	}
	if (!cluster_wire_alert_decode(d, len, &ca, &err)) {
		n->st.alerts_bad++;
		g_debug("cluster: alert message: %s", err->message);
		return;
	}
	n->st.alerts_in++;
	for (guint i = 0; i < ca.ev.n_exporters && i < ALERT_EXPORTERS_MAX; i++)
		ca.ev.exporters[i] = exporter_register(n, ca.exporters[i]);
	n->deps.deliver(&ca.ev, n->deps.data);
}

static void
on_coord(const CoordEvent *ev, gpointer user_data)
{
	ClusterNode *n = user_data;
	Part *part = ev->partition < n->partitions ? n->parts[ev->partition] : NULL;

	switch (ev->kind) {
	case COORD_ACQUIRED:
		on_acquired(n, ev);
		break;
	case COORD_FLOWS:
		on_batch(n, ev);
		break;
	case COORD_RELEASE:
		if (part != NULL) {
			part_snapshot(n, part, TRUE);
			n->parts[ev->partition] = NULL;
			part_free(part);
			n->st.released++;
			g_message("cluster: partition %u handed over", ev->partition);
		}
		break;
	case COORD_LOST:
		if (part != NULL) {
			n->parts[ev->partition] = NULL;
			part_free(part);
			n->st.lost++;
			g_warning("cluster: partition %u lost (its lease expired or was taken): "
				  "another node analyzes it now",
				  ev->partition);
		}
		break;
	case COORD_ALERT:
		on_alert_in(n, ev);
		break;
	case COORD_REQUEST: {
		g_autoptr(GString) out = g_string_new(NULL);
		gsize len;
		const char *line = g_bytes_get_data(ev->data, &len);
		g_autofree char *text = g_strndup(line, len);
		n->st.requests_in++;
		n->deps.answer(text, out, n->deps.data);
		coord_reply(ev->request, out->str, out->len);
		break;
	}
	case COORD_HISTORY:
		if (n->deps.history != NULL)
			on_history_in(n, ev);
		break;
	case COORD_REPLY: {
		gsize len = 0;
		const char *r = ev->data != NULL ? g_bytes_get_data(ev->data, &len) : NULL;
		ReqTag *t = ev->tag;
		g_hash_table_remove(n->pending_req, t);
		t->fn(t->tag, r, len, ev->error);
		g_free(t);
		break;
	}
	case COORD_PUBLISHED:
		if (ev->error != NULL)
			n->st.ctl_out_failed++;
		else
			n->st.ctl_out++;
		g_hash_table_remove(n->pending_ctl, ev->tag);
		n->deps.stored(ev->tag, ev->seq, ev->error, n->deps.data);
		break;
	}
}

/* One partition's snapshot per tick, round robin, so that a node owning many does not
 * stop to save them all at once. */
static gboolean
on_snapshot(gpointer user_data)
{
	ClusterNode *n = user_data;

	gint64 now = gap_clock(n);
	for (guint p = 0; p < n->partitions; p++)
		if (n->parts[p] != NULL)
			gap_check(n, n->parts[p], now);
	for (guint i = 0; i < n->partitions; i++) {
		guint p = (n->snap_next + i) % n->partitions;
		if (n->parts[p] != NULL) {
			part_snapshot(n, n->parts[p], FALSE);
			n->snap_next = p + 1;
			break;
		}
	}
	return G_SOURCE_CONTINUE;
}

Analyzer *
cluster_node_analyzer_for(ClusterNode *n, const guint8 host[16], char owner[64])
{
	guint p = cluster_partition(host, n->partitions);
	guint64 rev;

	owner[0] = '\0';
	if (n->parts != NULL && n->parts[p] != NULL) {
		g_strlcpy(owner, n->name, 64);
		return n->parts[p]->a;
	}
	if (n->coord == NULL || !coord_owner(n->coord, p, owner, &rev))
		owner[0] = '\0';
	return NULL;
}

void
cluster_node_request(ClusterNode *n, const char *node, const char *line, ClusterReplyFunc fn,
		     gpointer tag)
{
	ReqTag *t = g_new0(ReqTag, 1);

	t->fn = fn;
	t->tag = tag;
	g_hash_table_add(n->pending_req, t);
	coord_request(n->coord, node, line, t);
}

gboolean
cluster_node_ctl(ClusterNode *n, ClusterCtl *ctl, gpointer tag)
{
	char subject[64], id[CLUSTER_WIRE_ID_MAX];

	if (n->coord == NULL)
		return FALSE;
	g_strlcpy(ctl->node, n->name, sizeof ctl->node);
	ctl->boot_ms = n->boot_ms;
	ctl->id = ++n->ctl_seq;
	ctl->partition = cluster_partition(ctl->host, n->partitions);
	g_byte_array_set_size(n->enc, 0);
	cluster_wire_ctl_encode(ctl, n->enc);
	g_snprintf(subject, sizeof subject, BUS_SUBJECT_FLOWS ".%u", ctl->partition);
	cluster_wire_ctl_id(ctl, id, sizeof id);
	g_hash_table_add(n->pending_ctl, tag);
	coord_publish(n->coord, subject, n->enc->data, n->enc->len, id, tag);
	return TRUE;
}

void
cluster_node_suppressions(ClusterNode *n, GString *out, gint64 *age_ms)
{
	if (n->coord == NULL) {
		g_string_append(out, "[]");
		*age_ms = -1;
		return;
	}
	coord_suppressions_json(n->coord, out, age_ms);
}

/* Every member of AnalyzerStats is a 64-bit count but the generation's start time. */
G_STATIC_ASSERT(sizeof(AnalyzerStats) % sizeof(guint64) == 0);

void
cluster_node_analyzer_stats(ClusterNode *n, AnalyzerStats *out)
{
	memset(out, 0, sizeof *out);
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++) {
		AnalyzerStats s;
		if (n->parts[p] == NULL)
			continue;
		analyzer_get_stats(n->parts[p]->a, &s);
		gint64 gen = MAX(out->novelty_generation_ms, s.novelty_generation_ms);
		guint64 *o = (guint64 *)(void *)out;
		const guint64 *v = (const guint64 *)(const void *)&s;
		for (gsize i = 0; i < sizeof s / sizeof(guint64); i++)
			o[i] += v[i];
		out->novelty_generation_ms = gen;
	}
}

void
cluster_node_foreach_analyzer(ClusterNode *n, void (*fn)(Analyzer *a, guint p, gpointer),
			      gpointer data)
{
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++)
		if (n->parts[p] != NULL)
			fn(n->parts[p]->a, p, data);
}

/* ---- queries ---- */

void
cluster_node_get_stats(ClusterNode *n, ClusterNodeStats *out)
{
	BusStats bs;

	*out = n->st;
	out->partitions = n->partitions;
	out->owned = out->restarts_waiting = 0;
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++) {
		out->owned += n->parts[p] != NULL;
		out->restarts_waiting += n->parts[p] != NULL && n->parts[p]->dropped &&
					 !n->parts[p]->restarted;
		if (n->parts[p] != NULL) {
			out->batches_late += gap_track_late(n->parts[p]->gaps);
			out->batches_twice += gap_track_twice(n->parts[p]->gaps);
			out->batches_waiting += gap_track_waiting(n->parts[p]->gaps);
		}
	}
	gint64 lag_ms = 0;
	out->lag = n->coord != NULL ? coord_lag(n->coord, &lag_ms) : 0;
	out->lag_ms = (guint64)lag_ms;
	bus_get_stats(n->bus, &bs);
	out->bus_connected = bs.connected;
	out->bus_reconnects = bs.reconnects;
	out->bus_published = bs.published;
	out->bus_duplicates = bs.duplicates;
	out->bus_retried = bs.retried;
	out->bus_failed = bs.failed;
	out->flows_failed = bs.failed_weight; /* only flow batches carry a weight */
	out->bus_dropped = bs.dropped;
	out->bus_buffered = bs.buffered;
	out->bus_buffered_max = bs.buffered_max;
	out->bus_unreadable = bs.unreadable;
	out->bus_handler_dropped = bs.handler_dropped;
	out->bus_async_errors = bs.async_errors;
}

static void
count_offender(const AnalyzerOffender *o, gpointer user_data)
{
	guint64 *by_reason = user_data;
	if (o->reason < REASON_COUNT)
		by_reason[o->reason]++;
}

void
cluster_node_offenders_by_reason(ClusterNode *n, guint64 by_reason[REASON_COUNT])
{
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++)
		if (n->parts[p] != NULL)
			analyzer_foreach_offender(n->parts[p]->a, count_offender, by_reason);
}

/* `stats` "cluster": the counters by name (the bus's in their own object below) */
#define NF(f)                                                                                      \
	{                                                                                          \
#f, offsetof(ClusterNodeStats, f)                                                  \
	}
static const struct {
	const char *name;
	gsize off;
} node_fields[] = {
    NF(partitions),
    NF(owned),
    NF(lag),
    NF(lag_ms),
    NF(flows_routed),
    NF(flows_ignored),
    NF(flows_outside),
    NF(flows_dropped),
    NF(flows_failed),
    NF(flows_not_collected),
    NF(batches_out),
    NF(batch_bytes_out),
    NF(batches_dropped),
    NF(ticks_out),
    NF(batches_in),
    NF(batches_bad),
    NF(batches_unowned),
    NF(batches_repeated),
    NF(batches_missing),
    NF(batches_late),
    NF(batches_waiting),
    NF(batches_twice),
    NF(batches_recovered),
    NF(rereads),
    NF(flows_in),
    NF(alerts_out),
    NF(alerts_dropped),
    NF(held),
    NF(held_now),
    NF(restarts),
    NF(restarts_waiting),
    NF(alerts_in),
    NF(alerts_bad),
    NF(acquired),
    NF(released),
    NF(lost),
    NF(snapshots),
    NF(snapshot_bytes),
    NF(snapshots_bad),
    NF(snapshots_deferred),
    NF(requests_in),
    NF(exporters_over),
    NF(history_out),
    NF(history_bytes_out),
    NF(history_dropped),
    NF(history_in),
    NF(history_hosts_in),
    NF(history_bad),
    NF(history_repeated),
    NF(ctl_out),
    NF(ctl_out_failed),
    NF(ctl_in),
    NF(ctl_bad),
    NF(ctl_refused),
    NF(ctl_forgets_in),
};
#undef NF

void
cluster_node_stats_json(ClusterNode *n, GString *out)
{
	ClusterNodeStats cs;
	BusStats bs;

	cluster_node_get_stats(n, &cs);
	bus_get_stats(n->bus, &bs);
	g_string_append(out, ",\"cluster\":{\"node\":");
	json_quote(out, n->name);
	g_string_append_printf(out, ",\"collector\":%s,\"analyzer\":%s",
			       cluster_node_collects(n) ? "true" : "false",
			       cluster_node_analyzes(n) ? "true" : "false");
	for (gsize i = 0; i < G_N_ELEMENTS(node_fields); i++)
		g_string_append_printf(
		    out, ",\"%s\":%" G_GUINT64_FORMAT, node_fields[i].name,
		    *(const guint64 *)(const void *)((const char *)&cs + node_fields[i].off));
	g_string_append_printf(
	    out,
	    ",\"bus\":{\"connected\":%s,\"reconnects\":%" G_GUINT64_FORMAT
	    ",\"published\":%" G_GUINT64_FORMAT ",\"duplicates\":%" G_GUINT64_FORMAT
	    ",\"retried\":%" G_GUINT64_FORMAT ",\"failed\":%" G_GUINT64_FORMAT
	    ",\"dropped\":%" G_GUINT64_FORMAT ",\"buffered\":%" G_GUINT64_FORMAT
	    ",\"buffered_max\":%" G_GUINT64_FORMAT ",\"received\":%" G_GUINT64_FORMAT
	    ",\"unreadable\":%" G_GUINT64_FORMAT ",\"handler_dropped\":%" G_GUINT64_FORMAT
	    ",\"async_errors\":%" G_GUINT64_FORMAT ",\"bytes_out\":%" G_GUINT64_FORMAT
	    ",\"bytes_in\":%" G_GUINT64_FORMAT ",\"last_error\":",
	    bs.connected ? "true" : "false", bs.reconnects, bs.published, bs.duplicates, bs.retried,
	    bs.failed, bs.dropped, bs.buffered, bs.buffered_max, bs.received, bs.unreadable,
	    bs.handler_dropped, bs.async_errors, bs.bytes_out, bs.bytes_in);
	json_quote(out, bs.last_error);
	g_string_append(out, "}}");
}

void
cluster_node_status_json(ClusterNode *n, GString *out)
{
	g_string_append(out, ",\"status\":");
	if (n->coord != NULL)
		coord_status_json(n->coord, out);
	else
		g_string_append(out, "null");
	cluster_node_stats_json(n, out);
}

/* ---- offenders of the cluster ---- */

typedef struct {
	JsonNode *node;
	gint sev;
	gint64 v_long, v_short, raised_ms;
	const char *host, *reason;
} OffItem;

static gint
sev_rank(const char *s)
{
	static const char *const names[] = {"info", "notice", "warning", "critical"};
	for (gint i = 0; i < (gint)G_N_ELEMENTS(names); i++)
		if (g_strcmp0(s, names[i]) == 0)
			return i;
	return -1;
}

/* As a single node sorts them: most severe first, then the biggest count. */
static gint
cmp_off(gconstpointer pa, gconstpointer pb)
{
	const OffItem *a = pa, *b = pb;

	if (a->sev != b->sev)
		return a->sev > b->sev ? -1 : 1;
	if (a->v_long != b->v_long)
		return a->v_long > b->v_long ? -1 : 1;
	if (a->v_short != b->v_short)
		return a->v_short > b->v_short ? -1 : 1;
	gint c = g_strcmp0(a->host, b->host);
	return c != 0 ? c : g_strcmp0(a->reason, b->reason);
}

static gint64
window_value(JsonObject *o, guint w)
{
	JsonObject *ev = json_object_get_object_member(o, "event");
	JsonArray *ws = ev != NULL && json_object_has_member(ev, "windows")
			    ? json_object_get_array_member(ev, "windows")
			    : NULL;
	if (ws == NULL || json_array_get_length(ws) <= w)
		return 0;
	JsonObject *wo = json_array_get_object_element(ws, w);
	return wo != NULL && json_object_has_member(wo, "value")
		   ? json_object_get_int_member(wo, "value")
		   : 0;
}

void
cluster_node_offenders_json(ClusterNode *n, const ControlRequest *req, GString *out)
{
	g_autoptr(GString) arr = g_string_new(NULL);
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GArray) items = g_array_new(FALSE, FALSE, sizeof(OffItem));
	guint64 limit = control_request_uint(req, "limit", G_MAXUINT64);
	gboolean has_reason = control_request_has(req, "reason");
	AlertReason reason = (AlertReason)control_request_uint(req, "reason", 0);
	gint64 since_ms =
	    control_request_time_ms(req, "since", g_get_real_time() / 1000, G_MININT64);
	gint64 age_ms = -1;

	coord_offenders_json(n->coord, arr, &age_ms);
	JsonArray *list = NULL;
	if (json_parser_load_from_data(parser, arr->str, (gssize)arr->len, NULL) &&
	    JSON_NODE_HOLDS_ARRAY(json_parser_get_root(parser)))
		list = json_node_get_array(json_parser_get_root(parser));
	for (guint i = 0; list != NULL && i < json_array_get_length(list); i++) {
		JsonNode *node = json_array_get_element(list, i);
		if (!JSON_NODE_HOLDS_OBJECT(node))
			continue;
		JsonObject *o = json_node_get_object(node);
		OffItem it = {
		    .node = node,
		    .sev = sev_rank(json_object_get_string_member_with_default(o, "severity", "")),
		    .v_long = window_value(o, WINDOW_LONG),
		    .v_short = window_value(o, WINDOW_SHORT),
		    .raised_ms = json_object_get_int_member_with_default(o, "raised_ms", 0),
		    .host = json_object_get_string_member_with_default(o, "host", ""),
		    .reason = json_object_get_string_member_with_default(o, "reason", "")};
		if (has_reason && g_strcmp0(it.reason, alert_reason_name(reason)) != 0)
			continue;
		if (it.raised_ms < since_ms)
			continue;
		g_array_append_val(items, it);
	}
	g_array_sort(items, cmp_off);
	g_string_append(out, ",\"offenders\":[");
	guint shown = 0;
	gboolean truncated = FALSE;
	for (guint i = 0; i < items->len && shown < limit; i++) {
		gsize mark = out->len;
		g_autofree char *text =
		    json_to_string(g_array_index(items, OffItem, i).node, FALSE);
		if (shown > 0)
			g_string_append_c(out, ',');
		g_string_append(out, text);
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		shown++;
	}
	g_string_append_printf(
	    out,
	    "],\"total\":%u,\"shown\":%u,\"truncated\":%s,\"cluster_age_ms\":%" G_GINT64_FORMAT,
	    items->len, shown, truncated ? "true" : "false", age_ms);
}

/* ---- life ---- */

static guint
parse_roles(const char *text, GError **error)
{
	g_auto(GStrv) words = g_strsplit_set(text, ", \t", -1);
	guint roles = 0;

	for (guint i = 0; words[i] != NULL; i++) {
		if (words[i][0] == '\0')
			continue;
		if (strcmp(words[i], "collector") == 0)
			roles |= COORD_ROLE_COLLECTOR;
		else if (strcmp(words[i], "analyzer") == 0)
			roles |= COORD_ROLE_ANALYZER;
		else {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "[cluster] roles: \"%s\" is not a role (collector, analyzer)",
				    words[i]);
			return 0;
		}
	}
	if (roles == 0)
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "[cluster] roles: empty (collector, analyzer or both)");
	return roles;
}

static gboolean
node_name(const Config *cfg, char name[64], GError **error)
{
	const char *src = cfg->cluster_node[0] != '\0' ? cfg->cluster_node : g_get_host_name();
	gsize len = strlen(src);

	if (len == 0 || len >= 64) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "[cluster] node: \"%s\" must be 1..63 characters", src);
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isalnum(src[i]) && src[i] != '-' && src[i] != '_') {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "[cluster] node: \"%s\": letters, digits, - and _ only (it "
				    "names keys and subjects on the bus)",
				    src);
			return FALSE;
		}
	}
	g_strlcpy(name, src, 64);
	return TRUE;
}

gboolean
cluster_node_config_collects(const Config *cfg)
{
	g_autoptr(GError) err = NULL;

	if (cfg->cluster_nats[0] == '\0')
		return TRUE;
	guint roles = parse_roles(cfg->cluster_roles, &err);
	return roles == 0 || (roles & COORD_ROLE_COLLECTOR) != 0; /* a bad list: said later */
}

/* The daemon's analyzer configuration for one partition: the caps shared out. */
static void
partition_config(ClusterNode *n, const AnalyzerConfig *acfg)
{
	AnalyzerConfig *c = &n->pcfg;

	*c = *acfg;
	c->max_hosts = MAX(1u, acfg->max_hosts / n->partitions);
	c->mem_cap = MAX((guint64)1 << 20, acfg->mem_cap / n->partitions);
	c->novelty_capacity = MAX((guint64)1000, acfg->novelty_capacity / n->partitions);
	/* not divided: max_suppressions is the cluster's, checked by the node asked against the
	 * suppressions bucket (a partition may hold them all) */
	c->max_suppressions = acfg->max_suppressions;
	c->slice_fn = NULL; /* on_part_slice(), per partition, when the daemon keeps history */
}

ClusterNode *
cluster_node_new(const Config *cfg, const ClusterNodeDeps *deps, gboolean replay, GError **error)
{
	ClusterNode *n = g_new0(ClusterNode, 1);

	n->cfg = cfg;
	n->deps = *deps;
	n->deps.history_position = NULL; /* the caller's string: the coordinator keeps a copy */
	n->boot_ms = g_get_real_time() / 1000;
	n->partitions = cfg->cluster_partitions;
	n->enc = g_byte_array_new();
	n->exp_index = g_hash_table_new_full(addr_hash, addr_equal, g_free, NULL);
	n->exp_addrs = g_array_new(FALSE, FALSE, 16);
	n->hist_hosts = g_array_new(FALSE, FALSE, sizeof(HsegHost));
	n->hist_enc = g_byte_array_new();
	n->hist_seen = g_new0(HistSeen, MAX(1u, n->partitions));
	n->pending_req = g_hash_table_new(NULL, NULL);
	n->pending_ctl = g_hash_table_new(NULL, NULL);
	if (!node_name(cfg, n->name, error) ||
	    (n->roles = parse_roles(replay ? "collector" : cfg->cluster_roles, error)) == 0) {
		cluster_node_free(n);
		return NULL;
	}
	/* flow batches may fill seven eighths of the buffer (bus_publish()) */
	if (cfg->cluster_batch_bytes > cfg->cluster_publish_buffer / 8 * 7) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "[cluster] batch_bytes (%" G_GUINT64_FORMAT ") must be at most seven "
			    "eighths of publish_buffer (%" G_GUINT64_FORMAT " bytes): a full batch "
			    "would never be taken",
			    (guint64)cfg->cluster_batch_bytes, (guint64)cfg->cluster_publish_buffer);
		cluster_node_free(n);
		return NULL;
	}
	partition_config(n, deps->acfg);
	BusConfig bc = {.servers = cfg->cluster_nats,
			.node = n->name,
			.creds_file = cfg->cluster_creds,
			.user = cfg->cluster_user,
			.password_file = cfg->cluster_password_file,
			.token_file = cfg->cluster_token_file,
			.tls_ca = cfg->cluster_tls_ca,
			.tls_cert = cfg->cluster_tls_cert,
			.tls_key = cfg->cluster_tls_key,
			.partitions = n->partitions,
			.replicas = cfg->cluster_replicas,
			.flows_max_age_ms = (gint64)cfg->cluster_retention_s * 1000,
			.flows_max_bytes = cfg->cluster_max_bytes,
			.alerts_max_age_ms = 7 * 86400 * 1000ll,
			.dedup_window_ms = (gint64)cfg->cluster_retention_s * 1000,
			.lease_ttl_ms = (gint64)cfg->cluster_lease_ttl_s * 1000,
			.node_ttl_ms = (gint64)cfg->cluster_lease_ttl_s * 1000,
			.max_snapshot = cfg->cluster_max_snapshot,
			.publish_buffer = cfg->cluster_publish_buffer,
			.timeout_ms = 2000};
	n->bus = bus_new(&bc, error);
	if (n->bus == NULL) {
		cluster_node_free(n);
		return NULL;
	}
	CoordConfig cc = {.node = n->name,
			  .roles = n->roles,
			  .partitions = n->partitions,
			  .alert_group = cfg->cluster_alert_group,
			  .lease_ttl_ms = (gint64)cfg->cluster_lease_ttl_s * 1000,
			  .node_ttl_ms = (gint64)cfg->cluster_lease_ttl_s * 1000,
			  .rebalance_ms = MAX(250, (gint64)cfg->cluster_lease_ttl_s * 1000 / 5),
			  .request_timeout_ms = 2000,
			  .offenders_refresh_ms = 1000,
			  .queue_bytes = 64u << 20,
			  .dedup_ids = 65536,
			  .history_position = deps->history != NULL ? deps->history_position : NULL};
	if (replay) {
		/* a capture's flows, at capture time: no leases, no sinks; the streams must be
		 * there (made by the cluster's nodes, or here) */
		if (!bus_setup(n->bus, error)) {
			cluster_node_free(n);
			return NULL;
		}
	} else if ((n->coord = coord_new(n->bus, &cc, error)) == NULL) {
		cluster_node_free(n);
		return NULL;
	}
	if (cluster_node_collects(n)) {
		/* the router is an analyzer that is never fed: it holds the classifier */
		n->router = analyzer_new(&n->pcfg, error);
		if (n->router == NULL) {
			cluster_node_free(n);
			return NULL;
		}
		analyzer_scope_watch_init(&n->scope);
		n->pend = g_new0(Pending, n->partitions);
		for (guint p = 0; p < n->partitions; p++)
			n->pend[p].flows = g_array_new(FALSE, FALSE, sizeof(Flow));
		n->max_batch_flows = (guint)MIN(cfg->cluster_batch_bytes / FLOW_WIRE_ESTIMATE,
						(guint64)CLUSTER_WIRE_MAX_FLOWS);
		if (!replay) {
			if (deps->exporters != NULL)
				n->info_id = g_timeout_add_seconds(NODE_INFO_S, on_node_info, n);
			n->flush_id = g_timeout_add(cfg->cluster_batch_ms, on_flush, n);
			n->tick_id = g_timeout_add(
			    (guint)CLAMP(deps->acfg->slice_ms / 6, 100, 10000), on_tick, n);
		}
	}
	if (cluster_node_analyzes(n)) {
		n->parts = g_new0(Part *, n->partitions);
		/* ten snapshot intervals without one: the replay of a takeover grows */
		n->defer_warn_after_us = 10 * (gint64)cfg->cluster_snapshot_s * G_USEC_PER_SEC;
		n->snap_id = g_timeout_add(MAX(10u, cfg->cluster_snapshot_s * 1000 / n->partitions),
					   on_snapshot, n);
		n->held_max = cfg->cluster_publish_buffer / 4;
	}
	if (n->coord != NULL)
		coord_attach(n->coord, g_main_context_default(), on_coord, n);
	g_message("cluster: node %s (%s%s%s) on %s, %u partitions, alert group %s", n->name,
		  cluster_node_collects(n) ? "collector" : "",
		  n->roles == (COORD_ROLE_COLLECTOR | COORD_ROLE_ANALYZER) ? ", " : "",
		  cluster_node_analyzes(n) ? "analyzer" : "", cfg->cluster_nats, n->partitions,
		  replay				? "(none: a replay)"
		  : cfg->cluster_alert_group[0] != '\0' ? cfg->cluster_alert_group
							: "(none)");
	return n;
}

void
cluster_node_free(ClusterNode *n)
{
	if (n == NULL)
		return;
	if (n->flush_id != 0)
		g_source_remove(n->flush_id);
	if (n->tick_id != 0)
		g_source_remove(n->tick_id);
	if (n->info_id != 0)
		g_source_remove(n->info_id);
	if (n->snap_id != 0)
		g_source_remove(n->snap_id);
	/* no more alerts or history taken from the bus: this node's main loop has ended */
	if (n->coord != NULL)
		coord_leave(n->coord);
	if (n->pend != NULL) {
		gint64 now = g_get_real_time() / 1000;
		for (guint p = 0; p < n->partitions; p++) {
			if (n->pend[p].flows->len > 0)
				publish_batch(n, p, now);
			g_array_free(n->pend[p].flows, TRUE);
		}
		g_free(n->pend);
	}
	/* the events first: a partition's snapshot waits for those it holds as sent (and
	 * those held, offered once more) */
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++)
		if (n->parts[p] != NULL)
			part_offer_held(n, n->parts[p]);
	if (n->bus != NULL && !bus_flush(n->bus, n->coord != NULL ? 3000 : 30000))
		g_warning("cluster: the bus did not take everything in time: the rest is dropped "
			  "(counted failed); alert events among it are sent again by the next "
			  "owners of their partitions, which start from the snapshots before them");
	/* hand every owned partition over: the next owner starts from here (or, where events
	 * were not stored in time, from the snapshot before, emitting them again) */
	for (guint p = 0; n->parts != NULL && p < n->partitions; p++) {
		if (n->parts[p] != NULL) {
			part_snapshot(n, n->parts[p], TRUE);
			part_free(n->parts[p]);
		}
	}
	g_free(n->parts);
	if (n->held_id != 0)
		g_source_remove(n->held_id);
	if (n->coord != NULL)
		coord_free(n->coord);
	/* what the coordinator did not answer (its queue is gone): answered here, once */
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, n->pending_req);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		ReqTag *t = key;
		t->fn(t->tag, NULL, 0, "this node is stopping");
		g_free(t);
	}
	g_hash_table_iter_init(&it, n->pending_ctl);
	while (g_hash_table_iter_next(&it, &key, NULL))
		n->deps.stored(key, 0, "this node is stopping", n->deps.data);
	g_hash_table_remove_all(n->pending_req);
	g_hash_table_remove_all(n->pending_ctl);
	if (n->bus != NULL)
		bus_free(n->bus);
	if (n->router != NULL)
		analyzer_free(n->router);
	g_hash_table_unref(n->exp_index);
	g_array_free(n->exp_addrs, TRUE);
	g_byte_array_free(n->enc, TRUE);
	g_hash_table_unref(n->pending_req);
	g_hash_table_unref(n->pending_ctl);
	g_array_free(n->hist_hosts, TRUE);
	g_byte_array_free(n->hist_enc, TRUE);
	for (guint p = 0; n->hist_seen != NULL && p < MAX(1u, n->partitions); p++)
		hist_seen_clear(&n->hist_seen[p]);
	g_free(n->hist_seen);
	g_free(n);
}
