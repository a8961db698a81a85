/* A spamflowd that is a node of a cluster ([cluster] nats set; doc/cluster.md): the part that
 * runs on the main loop. The collector role routes each decoded flow to the partition of the
 * host it counts for (analyzer_flow_host()) and publishes per-partition batches (and ticks);
 * the analyzer role keeps one Analyzer per partition it owns, fed by the coordinator's
 * events, snapshots them, and publishes their alert events; a node of an alert group hands
 * the cluster's events to its sinks. What waits on the bus runs in the coordinator's thread
 * (cluster/coord.h): nothing here blocks. */
#pragma once

#include <glib.h>

#include "analyzer.h"
#include "collector.h"
#include "config.h"
#include "control.h"
#include "history_seg.h"
#include "wire.h"

typedef struct ClusterNode ClusterNode;

/* A node's counters (`stats` "cluster", /metrics spamflow_cluster_*): every member a
 * guint64. */
typedef struct {
	guint64 partitions, owned; /* now */
	guint64 lag;		   /* stream sequences the owned partitions have yet to apply */
	guint64 lag_ms; /* the furthest behind: how long ago the stream stored its batch */
	guint64 flows_routed, flows_ignored, flows_dropped, flows_not_collected;
	/* of flows_ignored, records on mail and login ports with neither end internal nor a
	 * listed mail server (the analyzer's flows_outside, seen where it is decided) */
	guint64 flows_outside;
	guint64 flows_failed; /* in batches the bus took and then gave up on (BusStats.failed) */
	guint64 batches_out, batch_bytes_out, batches_dropped, ticks_out;
	guint64 batches_in, batches_bad, batches_unowned, batches_repeated, flows_in;
	/* a collector's batch numbers to an owned partition that never arrived here (past a
	 * grace period: cluster/gaps.h), those that came after that, and those skipped and
	 * still within the grace period (now) */
	guint64 batches_missing, batches_late, batches_waiting;
	/* batch numbers the stream held twice: applied once, the copy skipped */
	guint64 batches_twice;
	/* skipped numbers found by reading the partition's stream again (after REWIND_WAIT:
	 * cluster_node.c), and those readings asked */
	guint64 batches_recovered, rereads;
	guint64 alerts_out, alerts_dropped, alerts_in, alerts_bad;
	/* events, forgets and history readings the bus's buffer had no room for: held by their
	 * partition and offered again (ever, now); alerts_dropped and history_dropped count
	 * those beyond the bytes held */
	guint64 held, held_now;
	/* partitions given up to be taken again from their stored snapshot, because one of
	 * those was dropped (coord_restart()) */
	guint64 restarts;
	guint64 restarts_waiting; /* now: partitions that dropped one, waiting for the bus */
	guint64 acquired, released, lost, snapshots, snapshot_bytes, snapshots_bad;
	/* snapshots not made because events before them were not yet in the alert stream */
	guint64 snapshots_deferred;
	guint64 requests_in, exporters_over;
	/* history readings: published (messages, bytes), not taken by the bus; received and
	 * written to this node's store, bad, repeated (a slice this store already has: a
	 * takeover's replay) */
	guint64 history_out, history_bytes_out, history_dropped;
	guint64 history_in, history_hosts_in, history_bad, history_repeated;
	/* control records (suppress, unsuppress, forget): asked here and stored on the bus;
	 * applied by an owned partition; bad (counted, skipped); refused by the analyzer
	 * (max_suppressions); forgets handed to this node's sinks */
	guint64 ctl_out, ctl_out_failed, ctl_in, ctl_bad, ctl_refused, ctl_forgets_in;
	/* the bus */
	guint64 bus_connected, bus_reconnects, bus_published, bus_duplicates, bus_retried,
	    bus_failed, bus_dropped, bus_buffered, bus_buffered_max,
	    bus_unreadable, bus_handler_dropped, bus_async_errors;
} ClusterNodeStats;

/* Exporter indexes of flows and events that came over the bus (the collector that saw the
 * exporter is another process): at or above this, an index into the node's registry of
 * exporter addresses (cluster_node_exporter_addr()). */
#define CLUSTER_EXPORTER_BASE 0x80000000u

typedef struct {
	/* what every partition's analyzer is made from: the daemon's, whose callbacks (flow,
	 * geo, notice) are kept; alert_fn is the node's. Its caps are divided among the
	 * partitions. */
	const AnalyzerConfig *acfg;
	Collector *collector; /* the local exporters' addresses */
	/* an alert event of an owned partition, on the analyzer node, before it is published:
	 * the evidence file is written here (ev->evidence may be filled) */
	void (*evidence)(AlertEvent *ev, gpointer data);
	/* an event of the cluster for this node's sinks and actions (alert group) */
	void (*deliver)(const AlertEvent *ev, gpointer data);
	/* the offender object `offenders` prints (commands.c), for the cluster's bucket; FALSE
	 * when a is not holding it */
	gboolean (*offender_json)(Analyzer *a, const guint8 host[16], AlertReason r, GString *out,
				  gpointer data);
	/* answer a control request line from another node (the daemon parses it and finds the
	 * partition's analyzer with cluster_node_analyzer_for()): the reply object, no
	 * newline */
	void (*answer)(const char *line, GString *out, gpointer data);
	/* this node keeps a history store (NULL = not): a partition analyzer's slice ended,
	 * its readings (HsegHost, appended to hosts) are published for every node's store
	 * (analyzer role) ... */
	void (*readings)(Analyzer *a, GArray *hosts, gpointer data);
	/* ... and every partition's readings, from the bus, go to this node's store, which
	 * keeps how far it has read in this file (its directory's) */
	void (*history)(gint64 t_ms, const HsegHost *hosts, guint n, gpointer data);
	const char *history_position; /* copied: needed only during cluster_node_new() */
	/* collector role: this node's `exporters` reply object (what it publishes in its node
	 * entry, so that `exporters` on any node shows every collector's) */
	void (*exporters)(GString *out, gpointer data);
	/* a control record of cluster_node_ctl() is stored on the bus (seq: its stream
	 * sequence), or could not be (error) */
	void (*stored)(gpointer tag, guint64 seq, const char *error, gpointer data);
	/* alert group: the owner of host's partition forgot it (the sinks and actions stop
	 * waiting for its cleared events); NULL = nothing */
	void (*forgotten)(const guint8 host[16], gpointer data);
	gpointer data;
} ClusterNodeDeps;

/* From [cluster] (cfg->cluster_nats set). Starts the bus connection and the coordinator; the
 * events reach the default main context. replay: a collector that publishes a capture (no
 * coordinator, no timers: batches go out when full and at cluster_node_tick(), at capture
 * time); the bus must answer at once. */
ClusterNode *cluster_node_new(const Config *cfg, const ClusterNodeDeps *deps, gboolean replay,
			      GError **error);
/* Hands the owned partitions over (a last snapshot each, then the lease is given up),
 * flushes what waits for the bus (up to a few seconds) and stops. */
void cluster_node_free(ClusterNode *n);

gboolean cluster_node_collects(const ClusterNode *n);
/* Whether a daemon with cfg receives exports: alone, or a cluster node with the collector
 * role (an analyzer-only node opens no flow socket). */
gboolean cluster_node_config_collects(const Config *cfg);
gboolean cluster_node_analyzes(const ClusterNode *n);
const char *cluster_node_name(const ClusterNode *n);

/* Collector role: route and batch decoded flows (the FlowBatch callback). */
void cluster_node_flows(ClusterNode *n, const Flow *flows, guint n_flows);
/* Flows a node that is no collector was handed (counted, dropped). */
void cluster_node_not_collected(ClusterNode *n, guint n_flows);
/* Collector role: publish what waits, then a tick at clock_ms to every partition (a replay's
 * ticks, at capture time; live, a timer does it with the wall clock). */
void cluster_node_tick(ClusterNode *n, gint64 clock_ms);

/* Publish what waits and wait (up to timeout_ms) until the bus has taken everything; FALSE
 * on timeout (the rest is counted failed later). The end of a replay. */
gboolean cluster_node_flush(ClusterNode *n, gint64 timeout_ms);

/* The address of exporter index i (local or from the bus); FALSE when unknown. */
gboolean cluster_node_exporter_addr(ClusterNode *n, guint32 i, guint8 addr[16]);

/* The analyzer of the partition of host when this node owns it, else NULL (*owner: the
 * owner's name, "" when none is known). */
Analyzer *cluster_node_analyzer_for(ClusterNode *n, const guint8 host[16], char owner[64]);
/* The answer to cluster_node_request(): reply NULL on error (text in error). */
typedef void (*ClusterReplyFunc)(gpointer tag, const char *reply, gsize len, const char *error);
/* Ask node for line's answer; fn(tag, ...) follows on the main loop, once. */
void cluster_node_request(ClusterNode *n, const char *node, const char *line,
			  ClusterReplyFunc fn, gpointer tag);

/* A policy command for ctl->host (op, all, reason, until_ms, set_ms, uid, pid, note filled
 * by the caller; node, boot_ms, id and partition here): a control record published to the
 * host's partition stream, applied by the partition's owner in stream order (and again by a
 * takeover's replay). deps->stored(tag, ...) follows on the main loop (never before this
 * returns) once the stream has it. FALSE: a node without a coordinator (a replay); nothing
 * follows. */
gboolean cluster_node_ctl(ClusterNode *n, ClusterCtl *ctl, gpointer tag);
/* The cluster's suppressions as the owners last wrote them to their bucket (a JSON array of
 * {"host","reason","until_ms","set_ms","uid","note","partition"}); *age_ms: how long ago
 * it was read. */
void cluster_node_suppressions(ClusterNode *n, GString *out, gint64 *age_ms);
/* The bucket key of a suppression of host (reason, or every reason with all). */
void cluster_node_suppression_key(const guint8 host[16], gboolean all, AlertReason r,
				  char *key, gsize len);

/* `cluster`: members ,"cluster":{...} (the coordinator's status and this node's counters) */
void cluster_node_status_json(ClusterNode *n, GString *out);
/* `offenders` of the whole cluster (from the offenders bucket): the reply's members
 * ,"offenders":[...],"total":..,"shown":..,"truncated":..,"cluster_age_ms":.. */
void cluster_node_offenders_json(ClusterNode *n, const ControlRequest *req, GString *out);
/* `exporters`: ,"cluster":[{"node":..,"time_ms":..,"exporters":[...]},...], the other
 * collectors' exporters as their node entries last said */
void cluster_node_exporters_json(ClusterNode *n, GString *out);
void cluster_node_get_stats(ClusterNode *n, ClusterNodeStats *out);
/* Active offenders of the owned partitions, by reason (added to by_reason). */
void cluster_node_offenders_by_reason(ClusterNode *n, guint64 by_reason[REASON_COUNT]);
/* `stats`: ,"cluster":{...} */
void cluster_node_stats_json(ClusterNode *n, GString *out);
/* The owned partitions' analyzers' counters, summed (mem_cap: their caps; the smtp-novelty
 * generation: the newest); zero with none. */
void cluster_node_analyzer_stats(ClusterNode *n, AnalyzerStats *out);
/* Every owned partition's analyzer (stats, history). */
void cluster_node_foreach_analyzer(ClusterNode *n, void (*fn)(Analyzer *a, guint p, gpointer),
				   gpointer data);
