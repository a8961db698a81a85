/* The cluster coordinator (doc/cluster.md): everything a node does with the bus that may
 * wait, on a thread of its own, so that the daemon's main loop (socket -> decoder ->
 * analyzer) never does. It
 *   - sets the bus up (bus_setup(), retried until the bus answers) and registers the node
 *     in BUS_KV_NODES, renewed every rebalance_ms (a node whose entry stops changing for
 *     lease_ttl_ms is taken for dead, however long node_ttl_ms keeps it);
 *   - analyzer role: decides which partitions this node should own (rendezvous hashing of
 *     the partition over the live analyzer nodes, at most ceil(partitions / nodes) each:
 *     even, and a partition goes back to a node that returns), takes them through leases in BUS_KV_LEASES (bus_kv_create(), renewed
 *     with bus_kv_update() on the revision it holds: fenced), loads each taken partition's
 *     newest snapshot and consumes its flow subject from the sequence after it; hands a
 *     partition it should no longer own back through a snapshot (COORD_RELEASE);
 *   - alert consumer (alert_group set): a durable consumer of spamflow.alerts shared by the
 *     nodes of the group, dropping events older than the newest lease revision seen for
 *     their partition (fenced) and ids seen recently (deduplicated);
 *   - serves spamflow.ctl.<node> requests through the main loop, and sends requests for it;
 *   - keeps the status `spamflowctl cluster` prints, and the offenders of the whole cluster
 *     (BUS_KV_OFFENDERS, read every offenders_refresh_ms) that `offenders` prints.
 * Events reach the main loop through coord_attach()'s callback, in order. */
#pragma once

#include <glib.h>

#include "bus.h"

typedef enum {
	COORD_ROLE_COLLECTOR = 1u << 0,
	COORD_ROLE_ANALYZER = 1u << 1,
} CoordRole;

typedef struct {
	const char *node;
	guint roles;               /* CoordRole bits */
	guint partitions;
	const char *alert_group;   /* "" = this node runs no sinks for the cluster */
	gint64 lease_ttl_ms;       /* a dead owner's partitions move after this */
	gint64 node_ttl_ms;
	gint64 rebalance_ms;       /* how often ownership is looked at (<= lease_ttl_ms / 3) */
	gint64 request_timeout_ms;
	gint64 offenders_refresh_ms;
	guint64 queue_bytes;       /* events waiting for the main loop: the bus's threads wait
				      beyond (flow control), never drop */
	guint dedup_ids;           /* alert ids remembered for deduplication */
	/* this node keeps a history store: it reads every partition's readings
	 * (COORD_HISTORY), from the stream sequence after the one this file (in the store's
	 * directory) names; the coordinator keeps the file, once a second and at the end.
	 * NULL or "": no history */
	const char *history_position;
} CoordConfig;

typedef enum {
	/* analyzer role: partition is now ours (lease revision lease_rev). data: the newest
	 * snapshot's state (NULL: none, start empty); seq: the flow sequence it covers (0:
	 * none). COORD_FLOWS of the partition follow, from seq + 1. */
	COORD_ACQUIRED,
	/* a flow batch (cluster/wire.h) of partition p, stream sequence seq */
	COORD_FLOWS,
	/* the partition should move to another node: no more COORD_FLOWS for it; answer with
	 * coord_snapshot(..., release TRUE) (the lease is given up once it is stored) */
	COORD_RELEASE,
	/* the lease was lost (expired while the bus was away, or taken): drop the partition's
	 * state, no snapshot (another node owns it now) */
	COORD_LOST,
	/* alert consumer: an alert message (cluster/wire.h), fenced and deduplicated */
	COORD_ALERT,
	/* a request from another node: data is a control command line; answer with
	 * coord_reply(ev->request, ...) (once; the asker gives up after request_timeout_ms) */
	COORD_REQUEST,
	/* the answer to coord_request() (data NULL: error, text in ev->error) */
	COORD_REPLY,
	/* history consumer (CoordConfig.history_position): a history message (cluster/wire.h)
	 * of any partition, in stream order; its sequence is kept in the position file once
	 * the event has been handled */
	COORD_HISTORY,
	/* coord_publish()'s message is stored (seq: its stream sequence), or not (ev->error) */
	COORD_PUBLISHED,
} CoordEventKind;

typedef struct CoordRequest CoordRequest;

typedef struct {
	CoordEventKind kind;
	guint partition;
	guint64 lease_rev;
	guint64 seq;
	gint64 time_ms;	       /* COORD_FLOWS: when the stream stored it (ms, 0: unknown) */
	GBytes *data;          /* owned by the coordinator; valid during the callback */
	CoordRequest *request; /* COORD_REQUEST */
	gpointer tag;          /* COORD_REPLY, COORD_PUBLISHED: the caller's tag */
	const char *error;     /* COORD_REPLY with data NULL; COORD_PUBLISHED that failed */
} CoordEvent;

typedef void (*CoordEventFunc)(const CoordEvent *ev, gpointer user_data);

typedef struct Coord Coord;

/* Starts the thread. The bus is borrowed and outlives the coordinator. */
Coord *coord_new(Bus *bus, const CoordConfig *cfg, GError **error);
/* Stops the thread: owned partitions' leases are given up only through COORD_RELEASE
 * snapshots already stored (a stop without them lets the leases expire). */
void coord_free(Coord *c);
/* The main loop has ended (a stop): stop consuming alerts and history at once, handing back
 * what was fetched, rather than after the last snapshots and the coordinator's current
 * round (a stopping node's consumer fetched events only to hold them meanwhile). Main
 * loop's thread; coord_free() still follows. */
void coord_leave(Coord *c);
/* Deliver events on ctx's loop to fn (call once, before any event matters). */
void coord_attach(Coord *c, GMainContext *ctx, CoordEventFunc fn, gpointer user_data);

/* Main loop -> coordinator; none of these wait. */
/* Store partition p's state covering flow sequence seq (copied); release: then give the
 * lease up (after COORD_RELEASE, or at shutdown). Only while the lease is held. state NULL
 * (with release): give the lease up on the snapshot already stored (or one still waiting to
 * be), the next owner replaying from there. */
void coord_snapshot(Coord *c, guint p, guint64 seq, GBytes *state, gboolean release);
/* Partition p's owner dropped a message its snapshot would hold as sent (an alert event): give
 * the partition up through COORD_RELEASE (the main loop answers with coord_snapshot(...,
 * NULL, TRUE), keeping the stored snapshot) so that its next owner, most often this node
 * again, replays from that snapshot and sends the message again under its id. */
void coord_restart(Coord *c, guint p);
/* Read owned partition p's flows again from stream sequence from_seq: COORD_FLOWS from
 * there follow those already delivered, repeats included (the main loop takes what it
 * never had: batches lost on the way, doc/cluster.md). Several before the thread gets to
 * it: the earliest. */
void coord_rewind(Coord *c, guint p, guint64 from_seq);
/* The offender (host, reason) in BUS_KV_OFFENDERS: json NULL deletes it. Per key in order. */
void coord_offender(Coord *c, const char *key, const char *json);
/* The same for a suppression in BUS_KV_SUPPRESSIONS. */
void coord_suppression(Coord *c, const char *key, const char *json);
/* Publish data (copied) to subject with msg_id and wait, on the coordinator's thread, for
 * the stream to store it; COORD_PUBLISHED with tag follows (a control record: the reply
 * waits for it). */
void coord_publish(Coord *c, const char *subject, const void *data, gsize len,
		   const char *msg_id, gpointer tag);
/* What this node says about itself in BUS_KV_NODES (a JSON object, replaced). */
void coord_set_node_info(Coord *c, const char *json);
/* The sequence applied of an owned partition (for lag). */
void coord_applied(Coord *c, guint p, guint64 seq, gint64 time_ms);
/* Send line to node's spamflow.ctl; the answer comes as COORD_REPLY with tag. */
void coord_request(Coord *c, const char *node, const char *line, gpointer tag);
/* Exactly once per COORD_REQUEST, during the callback or later: it gives the request back
 * (a reply after the asker's wait is dropped, the object stays valid until then). */
void coord_reply(CoordRequest *r, const char *json, gsize len);

/* Read by the main loop (copies, under the coordinator's lock). */
/* The owner of partition p ("" = none known) into node; its lease revision. */
gboolean coord_owner(Coord *c, guint p, char node[64], guint64 *rev);
/* `cluster -j`: {"node":..,"setup":bool,"bus":{...},"nodes":[{"node":,"live":,"analyzer":,
 * "rev":,"info":{entry}},...],"partitions":[{"p":,"owner":,"rev":, and for this node's
 * "last_seq":,"applied_seq":,"lag":},...],"alerts":{...},"coord":{counters}} */
void coord_status_json(Coord *c, GString *out);
/* Stream sequences the owned partitions have yet to apply, summed (0 = caught up); *lag_ms
 * (may be NULL): the furthest behind's, how long ago the stream stored the batch it is at
 * (0 = caught up). */
guint64 coord_lag(Coord *c, gint64 *lag_ms);
/* `offenders` of the cluster: a JSON array of the objects in BUS_KV_OFFENDERS, as last
 * read; *age_ms: how long ago. */
void coord_offenders_json(Coord *c, GString *out, gint64 *age_ms);
/* `suppressions` of the cluster: a JSON array of the objects in BUS_KV_SUPPRESSIONS, read
 * with the offenders (those over by the wall clock left out, and deleted from the bucket at
 * their revision); *age_ms: how long ago. */
void coord_suppressions_json(Coord *c, GString *out, gint64 *age_ms);
