/* The message bus behind a spamflow cluster, as small as the cluster needs (doc/cluster.md,
 * "The bus"): publish to a partition's subject, consume a subject from a stream position,
 * leases and small records in key-value buckets, a snapshot store, request/reply. One
 * implementation: NATS JetStream (bus_nats.c, libnats). A Kafka backend would map publish to
 * a produce to partition p of one topic, consume-from-position to assign()+seek(), the
 * buckets to compacted topics, and leases to the consumer group's assignment.
 *
 * Threads: every function may be called from any one thread at a time per Bus except where
 * said. bus_publish() never blocks (a bounded buffer, drops counted); every other call may
 * block for up to BusConfig.timeout_ms and must not be made on the collector's thread.
 * Callbacks (BusMsgFunc, BusServeFunc) run on the bus's own threads. */
#pragma once

#include <glib.h>

#define BUS_ERROR bus_error_quark()
GQuark bus_error_quark(void);
typedef enum {
	BUS_ERROR_CONFIG,    /* bad configuration (server list, credentials files) */
	BUS_ERROR_IO,        /* the bus did not answer, or refused (text says what it said) */
	BUS_ERROR_NOT_FOUND, /* no such key / message */
	BUS_ERROR_EXISTS,    /* bus_kv_create(): the key holds a value */
	BUS_ERROR_CONFLICT,  /* bus_kv_update(): the key's revision is not last_rev */
	BUS_ERROR_TOO_BIG,   /* a value over what the bus takes (snapshot: BusConfig.max_snapshot) */
	BUS_ERROR_BEHIND,    /* bus_kv_mirror_list(): the watch lacks writes the bucket has */
} BusError;

/* The streams and buckets of a cluster (bus_setup() creates or checks them). Subjects:
 *   spamflow.flows.<p>   stream SPAMFLOW_FLOWS (flow batches, cluster/wire.h)
 *   spamflow.alerts      stream SPAMFLOW_ALERTS (alert events)
 *   spamflow.history.<p> stream SPAMFLOW_HISTORY (a partition's history readings, each
 *                        slice from its owner: cluster/wire.h)
 *   spamflow.snap.<p>    stream SPAMFLOW_SNAP (partition snapshots, the newest kept: a
 *                        commit record there names its chunks on spamflow.snap.<p>.chunk)
 *   spamflow.ctl.<node>  request/reply (no stream)
 * Buckets: BUS_KV_LEASES (TTL lease_ttl_ms), BUS_KV_NODES (TTL node_ttl_ms),
 * BUS_KV_OFFENDERS and BUS_KV_SUPPRESSIONS (no TTL), BUS_KV_META (no TTL; key "partitions": the cluster's count). */
#define BUS_STREAM_FLOWS "SPAMFLOW_FLOWS"
#define BUS_STREAM_ALERTS "SPAMFLOW_ALERTS"
#define BUS_STREAM_SNAP "SPAMFLOW_SNAP"
#define BUS_STREAM_HISTORY "SPAMFLOW_HISTORY"
#define BUS_SUBJECT_FLOWS "spamflow.flows"
#define BUS_SUBJECT_ALERTS "spamflow.alerts"
#define BUS_SUBJECT_SNAP "spamflow.snap"
#define BUS_SUBJECT_HISTORY "spamflow.history"
#define BUS_SUBJECT_CTL "spamflow.ctl"
#define BUS_KV_LEASES "spamflow_leases"
#define BUS_KV_NODES "spamflow_nodes"
#define BUS_KV_OFFENDERS "spamflow_offenders"
#define BUS_KV_META "spamflow_meta"
#define BUS_KV_SUPPRESSIONS "spamflow_suppressions" /* no TTL; written by partition owners */

typedef struct {
	const char *servers;    /* "nats://127.0.0.1:4222, nats://b:4222": tried in turn */
	const char *node;       /* this node's name: client name, ids */
	/* credentials as NATS clients take them; "" = none */
	const char *creds_file; /* a .creds file (JWT + nkey seed) */
	const char *user;
	const char *password_file; /* the password's first line (kept out of the config) */
	const char *token_file;
	const char *tls_ca;   /* verify the servers with this CA (TLS when any tls_* is set) */
	const char *tls_cert; /* client certificate and key */
	const char *tls_key;
	guint partitions;          /* fixed for the life of a cluster: bus_setup() refuses a
				      stream made with another count */
	guint replicas;            /* streams and buckets: 1, 3 or 5 */
	gint64 flows_max_age_ms;   /* SPAMFLOW_FLOWS retention (>= long window + snapshot
				      interval) */
	guint64 flows_max_bytes;   /* ... and its size limit (oldest dropped) */
	gint64 alerts_max_age_ms;  /* SPAMFLOW_ALERTS retention, and SPAMFLOW_HISTORY's (a node
				      away longer misses the readings of that time; its size
				      limit is flows_max_bytes / 4) */
	gint64 dedup_window_ms;    /* JetStream duplicate window of both streams (Nats-Msg-Id) */
	gint64 lease_ttl_ms;
	gint64 node_ttl_ms;
	guint64 max_snapshot;      /* bytes of one partition's snapshot */
	guint64 publish_buffer;    /* bytes bus_publish() may hold while unacknowledged */
	gint64 timeout_ms;         /* each blocking call, and a publish's acknowledgement */
	guint64 kv_read_max;       /* bytes of keys and values one bucket read may hold (any
				      client may write a bucket): beyond, BUS_ERROR_TOO_BIG;
				      0 = BUS_KV_READ_MAX */
} BusConfig;

#define BUS_KV_READ_MAX (64u << 20)

typedef struct Bus Bus;
typedef struct BusSub BusSub;

/* A Bus for cfg (strings copied). Connects in the background and keeps reconnecting: FALSE
 * only for a configuration that can never work (no server URL, unreadable credentials).
 * (The first attempt at each server is made before bus_new returns: a refused connection
 * costs nothing, an unreachable host up to min(timeout_ms, 2 s) per server.) */
Bus *bus_new(const BusConfig *cfg, GError **error);
/* Every BusSub of bus must have been unsubscribed (left ones are, with a warning). What is
 * still buffered is dropped: bus_flush() first to deliver it. */
void bus_free(Bus *bus);
/* libnats keeps process-wide state (threads, timers): after the last bus_free(), once, at
 * exit (nats_CloseAndWait). No Bus may be made afterwards. */
void bus_shutdown_library(void);
gboolean bus_connected(Bus *bus);
/* The node is leaving: consumers closed from now on while the servers are away are left to
 * bus_free() (after the connection's close) instead of asking the servers to delete them,
 * a request each that waits out its timeout. Not before: a consumer kept during a run
 * would resume with the connection and take its messages for nothing. */
void bus_leaving(Bus *bus);
/* Why the bus cannot connect: one attempt of its own, synchronous (up to the connect timeout
 * per server), with the bus's servers, credentials and TLS, closed again at once. FALSE with
 * what the servers or TLS said ("SSL handshake error: ...", "Authorization Violation"), also
 * kept as BusStats.last_error: libnats, retrying in the background, only says "no server
 * available". Blocks: never on the main loop. */
gboolean bus_probe(Bus *bus, GError **error);
/* Create the streams and buckets, or check that those there match (partitions, replicas
 * never changed silently; retention and limits updated). Idempotent; blocking. */
gboolean bus_setup(Bus *bus, GError **error);

/* Publish data to subject (a stream's) with msg_id as Nats-Msg-Id (the stream drops a
 * second message of the same id within dedup_window_ms: retries and a takeover's replayed
 * events are sent once). Copies data into the bounded buffer and returns at once; the bus's
 * thread sends it, waits for the stream's acknowledgement and retries on failure (same id)
 * until timeout_ms of attempts made while connected have passed, then counts it failed;
 * while no server is reachable nothing is attempted and nothing fails: the buffer holds what
 * it took, and the rest is dropped. Order is the taken order except around a retry.
 * FALSE: not taken (buffer full, or closed), counted in BusStats.dropped. Thread-safe.
 * Only bus_publish_keep() may fill the last eighth of publish_buffer. */
gboolean bus_publish(Bus *bus, const char *subject, const void *data, gsize len,
		     const char *msg_id);
/* Publish data to subject with msg_id and wait for the stream's acknowledgement (the message
 * is then stored on the stream's replicas): retried with the same id (stored once) until
 * timeout_ms has passed. *seq: its stream sequence. Blocks: never on the main loop. */
gboolean bus_publish_wait(Bus *bus, const char *subject, const void *data, gsize len,
			  const char *msg_id, guint64 *seq, GError **error);
/* bus_publish(), but never given up for want of an answer while a server is connected
 * (only a refusal fails it): retried with its id until the stream has it, or dropped with
 * the buffer at bus_free(). For what a partition's snapshot holds as sent: alert events,
 * forgets, history readings. ticket (may be NULL): set to the message's place in the bus's
 * order, for bus_done_through(). */
gboolean bus_publish_keep(Bus *bus, const char *subject, const void *data, gsize len,
			  const char *msg_id, guint64 *ticket);
/* TRUE once every message taken up to ticket (bus_publish_keep()'s; 0: none) has been
 * acknowledged by its stream or given up for good: a partition's snapshot is stored only
 * then, so that the events it holds as sent are in the alert stream (or are emitted again
 * by the replay of the next owner, which starts from an older snapshot). */
gboolean bus_done_through(Bus *bus, guint64 ticket);
/* bus_publish(), and weight (a count the caller keeps, such as a batch's flows) is added to
 * BusStats.failed_weight if the message fails, so that the caller's counts add up. */
gboolean bus_publish_weighted(Bus *bus, const char *subject, const void *data, gsize len,
			      const char *msg_id, guint64 weight);
/* Wait (up to timeout_ms) until everything taken by bus_publish() was acknowledged or
 * failed; FALSE on timeout. For shutdown and tests. */
gboolean bus_flush(Bus *bus, gint64 timeout_ms);

/* Messages of a stream subject, in stream order, each with its stream sequence. fn runs on a
 * bus thread, one message at a time; the next is not delivered before fn returns (so fn may
 * block to push back: JetStream flow control holds the rest). */
typedef void (*BusMsgFunc)(const char *subject, guint64 seq, const guint8 *data, gsize len,
			   gpointer user_data);
/* From stream sequence from_seq on (0: only what comes next; 1: everything kept): an
 * ordered consumer (no state on the server, no acknowledgements; the position is the
 * caller's, kept with its snapshot). Survives reconnects and server loss without gaps or
 * repeats; so far as the server's and libnats' part goes: doc/cluster.md, "Batches lost on
 * the way" says what the analyzer does about a message never handed to fn. */
BusSub *bus_subscribe_from(Bus *bus, const char *stream, const char *subject, guint64 from_seq,
			   BusMsgFunc fn, gpointer user_data, GError **error);
/* Connected, with no reconnect and no asynchronous error from libnats for for_us: its
 * ordered consumers are not being made again on its own threads (an unsubscribe then can
 * meet libnats 3.4's use after free, doc/cluster.md "What is left"). */
gboolean bus_settled(Bus *bus, gint64 for_us);
/* How calm the cluster's readers wait for (coord_rewind(), and the grace of a batch number
 * that never came: daemon/cluster_node.c) */
#define BUS_CALM_US (10 * G_USEC_PER_SEC)
/* A durable consumer named durable on the stream (created if absent, shared by every
 * subscriber of that name: each message goes to one of them), acknowledged after fn
 * returns; redelivered when a subscriber dies before (after 10 s). A pull consumer: a
 * thread of the subscription fetches up to 16 messages at a time; when it is unsubscribed,
 * the fetched ones fn has not had are handed back (redelivered a second later). */
BusSub *bus_subscribe_durable(Bus *bus, const char *stream, const char *subject,
			      const char *durable, BusMsgFunc fn, gpointer user_data,
			      GError **error);
/* From within a durable subscription's fn: the message is not acknowledged but handed back
 * (a negative acknowledgement, redelivered a second later), so that another subscriber of
 * the durable, or this node's next start, gets it (a node stopping with the message not yet
 * handled). No effect elsewhere. */
void bus_msg_leave(void);
/* From within a BusMsgFunc: when the stream stored the message being handled (ms since the
 * epoch, by the server's clock); 0 elsewhere. */
gint64 bus_msg_time_ms(void);
/* Stops delivery; fn is not running and will not run once this returns (so never call it
 * from fn: it waits for fn). NULL: nothing. */
void bus_unsubscribe(BusSub *sub);
/* A durable's: fetch no more (what its thread holds is handed back), without waiting;
 * bus_unsubscribe() still follows. NULL or not a durable: nothing. */
void bus_sub_stop_fetching(BusSub *sub);

/* A durable consumer as its stream's server sees it (stream sequences). */
typedef struct {
	guint64 delivered;   /* the last sent to a subscriber */
	guint64 ack_floor;   /* everything up to it acknowledged */
	guint64 ack_pending; /* sent, not yet acknowledged */
	guint64 redelivered; /* sent again now (pending among those) */
	guint64 waiting;     /* pull requests waiting */
	guint64 pending;     /* in the stream, not yet sent */
} BusConsumerState;
gboolean bus_consumer_state(Bus *bus, const char *stream, const char *durable,
			    BusConsumerState *out, GError **error);

/* The stream sequence of the last message on subject (0 = none yet), for lag. */
gboolean bus_last_seq(Bus *bus, const char *stream, const char *subject, guint64 *seq,
		      GError **error);

/* The last sequence of a bucket's stream (every put and delete moves it; 0 when every entry
 * has expired): one request, much cheaper than bus_kv_list(), to tell whether a bucket
 * changed. */
gboolean bus_kv_last_rev(Bus *bus, const char *bucket, guint64 *rev, GError **error);
/* The same, the first revision still kept (entries below it expired or were replaced), and
 * the messages kept (msgs may be NULL): one per key, its value or its deletion. */
gboolean bus_kv_revs(Bus *bus, const char *bucket, guint64 *first, guint64 *last,
		     guint64 *msgs, GError **error);

/* Key-value buckets. Revisions are the bucket's, > 0. Values are bytes (NUL added after
 * them in GBytes for text). */
gboolean bus_kv_create(Bus *bus, const char *bucket, const char *key, const void *value,
		       gsize len, guint64 *rev, GError **error);
gboolean bus_kv_update(Bus *bus, const char *bucket, const char *key, const void *value,
		       gsize len, guint64 last_rev, guint64 *rev, GError **error);
gboolean bus_kv_put(Bus *bus, const char *bucket, const char *key, const void *value, gsize len,
		    guint64 *rev, GError **error);
gboolean bus_kv_get(Bus *bus, const char *bucket, const char *key, GBytes **value, guint64 *rev,
		    GError **error);
/* Delete key; with last_rev > 0 only if its revision is last_rev (BUS_ERROR_CONFLICT). */
gboolean bus_kv_delete(Bus *bus, const char *bucket, const char *key, guint64 last_rev,
		       GError **error);
typedef struct {
	char *key;
	GBytes *value;
	guint64 rev;
} BusKvEntry;
/* Every live key of the bucket: an array of BusKvEntry, freed with bus_kv_entries_free().
 * BUS_ERROR_TOO_BIG: the bucket holds more than kv_read_max bytes. */
GArray *bus_kv_list(Bus *bus, const char *bucket, GError **error);
void bus_kv_entries_free(GArray *entries);

/* A bucket kept up to date by a watch: one ordered consumer for as long as it lives (made
 * again after a failure), where every bus_kv_list() makes a consumer (and asks for the
 * stream's info) on the servers: a node reading its buckets every round costs them that much
 * per node. Free it before the bus. */
typedef struct BusKvMirror BusKvMirror;
BusKvMirror *bus_kv_mirror_new(Bus *bus, const char *bucket);
/* Every live key, by key, as bus_kv_list() lists them, once the watch has delivered the
 * bucket's writes up to revision min_rev (a write of the caller's). When the last check is
 * check_ms old or more (0: every time), it also asks the server for the bucket's first and
 * last revision (one request: BUS_ERROR_IO when the bus does not answer it): the watch must
 * have the last, and entries below the first are gone (a TTL expires them without a word to
 * a watch). Waits up to 500 ms for the watch; then NULL with BUS_ERROR_BEHIND: the caller
 * lists instead, and the watch is made again. BUS_ERROR_TOO_BIG: the bucket holds more than
 * kv_read_max bytes (the watch is dropped, and made again every 10 s). */
GArray *bus_kv_mirror_list(BusKvMirror *m, guint64 min_rev, gint64 check_ms, GError **error);
/* The lists answered and the times the watch was not there */
void bus_kv_mirror_counts(BusKvMirror *m, guint64 *lists, guint64 *behind);
void bus_kv_mirror_free(BusKvMirror *m);

/* Partition snapshots: one per partition, the newest complete one wins (a writer that dies
 * halfway leaves the previous one readable). covers_seq: the SPAMFLOW_FLOWS sequence the
 * state includes. Up to max_snapshot bytes (BUS_ERROR_TOO_BIG beyond). get: TRUE with
 * *data NULL and *covers_seq 0 when there is none. */
gboolean bus_snapshot_put(Bus *bus, guint partition, guint64 covers_seq, const void *data,
			  gsize len, GError **error);
gboolean bus_snapshot_get(Bus *bus, guint partition, guint64 *covers_seq, GBytes **data,
			  GError **error);

/* Request/reply on spamflow.ctl.<node>: serve this node's requests; fn runs on a bus thread
 * and returns the reply (owned by the bus). */
typedef GBytes *(*BusServeFunc)(const guint8 *data, gsize len, gpointer user_data);
BusSub *bus_serve(Bus *bus, BusServeFunc fn, gpointer user_data, GError **error);
gboolean bus_request(Bus *bus, const char *node, const void *data, gsize len,
		     gint64 timeout_ms, GBytes **reply, GError **error);

typedef struct {
	gboolean connected;
	guint64 reconnects;
	guint64 published;    /* acknowledged by the stream */
	guint64 duplicates;   /* acknowledged as a duplicate (the stream already had the id) */
	guint64 retried;      /* publish attempts repeated after an error or no answer */
	guint64 failed;       /* given up after timeout_ms */
	guint64 failed_weight; /* the weights of those (bus_publish_weighted()) */
	guint64 dropped;      /* not taken: buffer full */
	guint64 buffered;     /* bytes taken, not yet acknowledged (now) */
	guint64 buffered_max; /* publish_buffer */
	guint64 received;     /* messages handed to BusMsgFunc */
	/* stream messages not handed to BusMsgFunc: without JetStream's metadata, or for a
	 * subscription already given up (dropped) */
	guint64 unreadable;
	/* messages libnats dropped because a subscription's handler fell behind (its pending
	 * limits: a slow consumer) */
	guint64 handler_dropped;
	guint64 async_errors; /* libnats' asynchronous errors (missed heartbeats, timeouts,
			       * a consumer it could not make again, slow consumers) */
	guint64 bytes_out, bytes_in;
	char last_error[256];
} BusStats;
void bus_get_stats(Bus *bus, BusStats *out);
