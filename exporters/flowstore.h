/* FlowStore: the recent relevant flows of each host the analyzer tracks, so an alert's
 * evidence file can hold the flows that made it (the analyzer keeps counts, not flows).
 * Fed by the analyzer itself (AnalyzerConfig.flow_fn = flowstore_analyzer_flow) with each
 * flow it counted and its classification, so every flow is classified once. One ring per
 * (host, kind of traffic), records older than the long window dropped, and a global byte
 * cap with least-recently-fed eviction. Memory (doc/enrichment.md):
 *   bytes <= max_bytes, where bytes = sum over rings of
 *            FLOWSTORE_RING_COST + capacity x flowstore_record_size()
 *   and a ring's capacity is at most min(max_flows, 2 x its records) (doubling). */
#pragma once

#include "analyzer.h"
#include "flow.h"
#include "heuristics.h"

#include <glib.h>

typedef struct {
	guint64 flows_stored;	   /* records appended */
	guint64 flows_overwritten; /* the oldest record of a full ring (max_flows) replaced */
	guint64 flows_expired;	   /* left the long window */
	guint64 rings_evicted;	   /* whole rings dropped by the byte cap (least recently fed) */
	guint64 flows_evicted;	   /* records in those rings */
	guint64 rings_expired;	   /* rings idle for longer than the long window */
	guint64 rings;		   /* now */
	guint64 bytes;		   /* now */
	guint64 max_bytes;
} FlowStoreStats;

typedef struct FlowStore FlowStore;

/* acfg: the analyzer's windows (slice width, long window); max_flows per ring; max_bytes
 * for all rings. */
FlowStore *flowstore_new(const AnalyzerConfig *acfg, guint max_flows, guint64 max_bytes);
void flowstore_free(FlowStore *fs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowStore, flowstore_free)

/* New windows (reload); the rings are kept. */
void flowstore_reconfigure(FlowStore *fs, const AnalyzerConfig *acfg);

/* Keep f, a flow the analyzer counted as c says: forward records (and teardowns) create
 * the ring of (c->host, c->win), answers (HEUR_REVERSE) join an existing one only. */
void flowstore_add(FlowStore *fs, const Flow *f, const HeurClass *c);
/* flowstore_add() as the analyzer's AnalyzerFlowFunc (user_data: the FlowStore). */
void flowstore_analyzer_flow(const Flow *f, const HeurClass *c, gpointer user_data);
/* The records of (host, win) in the long window ending at now_ms, oldest first, appended to
 * out (a GArray of Flow); returns how many. */
guint flowstore_collect(FlowStore *fs, const guint8 host[16], HeurWin win, gint64 now_ms,
			GArray *out);

gsize flowstore_record_size(void);
#define FLOWSTORE_RING_COST 160 /* ring struct, allocator headers, hash table slot */
void flowstore_get_stats(const FlowStore *fs, FlowStoreStats *out);
void flowstore_stats_json(const FlowStore *fs, GString *out);
