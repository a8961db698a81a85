/* The coordinator's pure parts (cluster/coord.c), declared for the unit tests
 * (tests/unit/test_cluster_coord.c): the rendezvous hash that places partitions on nodes,
 * the alert consumer's fence and deduplication, and the byte-bounded event queue between
 * the bus's threads and the main loop. Nothing here touches the bus. */
#pragma once

#include <glib.h>

#include "coord.h"

/* Rendezvous (highest-random-weight) hashing: partition p prefers the nodes in the order of
 * weight(p, node). Removing a node moves only its partitions (each to its second choice);
 * adding one takes from each node only what the newcomer now wins. */
guint64 coord_weight(guint p, const char *node);
/* Fill order[0..n) with the indexes of nodes[] by descending weight for p (ties: by name),
 * so order[0] is p's owner and order[1] the next in line. */
void coord_rendezvous_order(guint p, const char *const *nodes, guint n, guint *order);
/* order[0] alone; -1 when n is 0. */
gint coord_rendezvous(guint p, const char *const *nodes, guint n);
/* The owner (index into nodes, -1 when n is 0) of every partition: rendezvous, each node
 * capped at ceil(partitions / n), so 64 partitions over 3 nodes are 22/22/20 where plain
 * rendezvous gives anything from about 12 to 30. The cap costs a few extra moves when a
 * node leaves (partitions bumped to their second choice return to their first), and the
 * same node set always gives the same assignment, so a node that returns gets back exactly
 * what it had. */
void coord_assign(guint partitions, const char *const *nodes, guint n, gint *owner);

/* Alert consumer: deduplication by id, and a look at the lease revision. The stream keeps
 * the first message of an id (Nats-Msg-Id): when the old and the new owner of a partition
 * both send an event (a takeover replays what the old one had sent), one copy is stored, and
 * whichever it is, it is the only one: it is delivered. An event of a lease older than the
 * newest seen for its partition that happened after the newest owner's snapshot (time_ms >
 * that lease's from_ms) is told apart (STALE): an old owner still running after it lost the
 * lease, or its publish delayed by the bus. Its copy is the one the new owner would send (the
 * analysis is deterministic), so it is delivered too, and counted (old_lease_late). Dropping
 * it was tried: when the bus delays the old owner's publish past the new owner's other
 * events, the new owner's copy has been refused as a duplicate, and the event is lost. */
typedef enum {
	COORD_FENCE_PASS,      /* deliver */
	COORD_FENCE_STALE,     /* deliver; an older lease's, after the newest lease's snapshot */
	COORD_FENCE_DUPLICATE, /* id among the last dedup_ids ids */
	COORD_FENCE_BAD,       /* partition out of range, or an empty id */
} CoordFenceResult;
typedef struct CoordFence CoordFence;
CoordFence *coord_fence_new(guint partitions, guint dedup_ids);
void coord_fence_free(CoordFence *f);
/* Forget id (an event handed back without being handled): seen again, it passes. */
void coord_fence_forget(CoordFence *f, const char *id);
CoordFenceResult coord_fence_check(CoordFence *f, guint partition, guint64 lease_rev,
				   gint64 lease_from_ms, gint64 time_ms, const char *id);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CoordFence, coord_fence_free)

/* The alert consumer's acknowledgement floor, read at each round: how long (ms) events have
 * been pending while the floor stood still (0: none pending, or the floor moved). */
typedef struct {
	guint64 floor;
	gint64 since_ms; /* 0: not read yet */
} CoordAckTrack;
gint64 coord_ack_track(CoordAckTrack *t, guint64 ack_floor, guint64 ack_pending, gint64 now_ms);

/* The events waiting for the main loop, in order, bounded in bytes: a producer that may wait
 * (flows) waits while the queue holds more than max_bytes; the others never wait. An eventfd
 * is readable while events wait (the main loop's GSource watches it). */
typedef struct CoordQueue CoordQueue;
/* NULL: no eventfd (errno). */
CoordQueue *coord_queue_new(guint64 max_bytes);
/* Frees the events still waiting. */
void coord_queue_free(CoordQueue *q);
int coord_queue_fd(CoordQueue *q);
/* Queue a copy of ev (data ref'd, error copied; ev->request: the queue takes over the
 * reference the caller passes). wait: block while over the bound. closed (may be NULL):
 * read under the queue's lock; TRUE drops the event (its subscription was closed while the
 * producer waited). FALSE: dropped (closed, or the queue is stopping). */
gboolean coord_queue_push(CoordQueue *q, const CoordEvent *ev, gboolean wait,
			  const gboolean *closed);
/* Set *closed under the queue's lock, then queue ev (never waits): no event pushed against
 * closed comes after ev (NULL: none queued). Wakes producers waiting on closed. */
void coord_queue_close_push(CoordQueue *q, gboolean *closed, const CoordEvent *ev);
/* The oldest event (NULL: none); coord_queue_done() after handling it. */
CoordEvent *coord_queue_pop(CoordQueue *q);
void coord_queue_done(CoordQueue *q, CoordEvent *ev);
/* Producers stop waiting and every later push is dropped. */
void coord_queue_stop(CoordQueue *q);
void coord_queue_stats(CoordQueue *q, guint64 *bytes, guint64 *events, guint64 *waits);

/* The reference the main loop holds on a request until coord_reply(). */
void coord_request_unref(CoordRequest *r);
