/* The cluster's messages on the bus (doc/cluster.md, "Wire format"): compact, versioned,
 * big-endian binary, never JSON on the flow path. Encoders append to a GByteArray; decoders
 * read untrusted bytes through a Cursor (lib/cursor.h) and fail with a CLUSTER_WIRE_ERROR
 * naming what was wrong, never reading past the end and never allocating more than the
 * bytes can hold. Pure: no bus, no threads. */
#pragma once

#include <glib.h>

#include "alert.h"
#include "flow.h"

#define CLUSTER_WIRE_ERROR cluster_wire_error_quark()
GQuark cluster_wire_error_quark(void);
typedef enum {
	CLUSTER_WIRE_ERROR_TRUNCATED, /* the bytes ran out */
	CLUSTER_WIRE_ERROR_MAGIC,     /* not a spamflow message */
	CLUSTER_WIRE_ERROR_VERSION,   /* a version this build does not read */
	CLUSTER_WIRE_ERROR_INVALID,   /* a count, length, index or value out of range */
} ClusterWireError;

/* Exporters named in one batch: their addresses (the collector's exporter table is local to
 * that node, so a batch carries the addresses its flows came from and each flow an index
 * into this list). */
#define CLUSTER_WIRE_MAX_EXPORTERS 256
/* Flows in one batch (a batch is also bounded in bytes by its sender). */
#define CLUSTER_WIRE_MAX_FLOWS 65535

/* A flow batch for one partition, from one collector node.
 *   node:       the collector's name (at most 63 bytes of text)
 *   batch_seq:  the collector's number of the batch among those to this partition its bus
 *               took, from 1 (the bus dedups retries by node and batch_seq; a number the
 *               partition's analyzer never sees is a batch lost: cluster/gaps.h)
 *   clock_ms:   the collector's clock when it sent the batch: a batch with no flows is a
 *               tick, telling an idle partition's analyzer that time has moved on (replayed
 *               like the flows, so a takeover sees the same ticks)
 * Each flow's Flow.exporter is an index into exporters[]. */
typedef struct {
	char node[64];
	guint32 partition;
	guint64 batch_seq;
	gint64 clock_ms;
	guint n_exporters;
	guint8 exporters[CLUSTER_WIRE_MAX_EXPORTERS][16];
	guint n_flows;
	const Flow *flows; /* encode: the caller's; decode: points into ClusterBatch.storage */
	GArray *storage;   /* decode: owned, Flow elements (free with cluster_batch_clear()) */
} ClusterBatch;

/* Append b (flows with exporter indexes < n_exporters). Every Flow field the analyzer,
 * evidence files and flow CSV read survives the round trip; pad_ is not sent. IPv4
 * addresses take 4 bytes. */
void cluster_wire_batch_encode(const ClusterBatch *b, GByteArray *out);
/* Decode into b (zeroed by the caller or cleared; storage made here). FALSE with an error
 * on anything not exactly one valid batch (trailing bytes included). */
gboolean cluster_wire_batch_decode(const guint8 *data, gsize len, ClusterBatch *b,
				   GError **error);
void cluster_batch_clear(ClusterBatch *b);
/* A batch's collector and number only, from its head (FALSE: not a batch's head); a batch
 * read again is taken only when the analyzer never had it. */
gboolean cluster_wire_batch_peek(const guint8 *data, gsize len, char node[64],
				 guint64 *batch_seq);

/* An alert event on spamflow.alerts, from the analyzer node that owns the partition.
 *   id:        unique per (partition, host, reason, transition): "p<P>-<host>-<reason>-
 *              <kind>-<time_ms>-<raised_ms>" (cluster_wire_alert_id())
 *   lease_rev: the revision of the owner's lease on the partition when it sent the event
 *              (consumers drop events of a partition older than the newest revision seen)
 *   exporter addresses travel instead of AlertEvent.exporters' local indexes.
 * AlertEvent.evidence is sent as is (the file is on the analyzer node). */
typedef struct {
	char node[64];
	guint32 partition;
	guint64 lease_rev;
	/* the analyzer clock of the partition when its owner took it (the newest snapshot's;
	 * 0: from the stream's start): the events of an older lease with a later time are the
	 * new owner's to send (coord's fence) */
	gint64 lease_from_ms;
	AlertEvent ev; /* decode: ev.exporters[i] = i, names in exporters[i] */
	guint8 exporters[ALERT_EXPORTERS_MAX][16];
} ClusterAlert;

void cluster_wire_alert_encode(const ClusterAlert *a, GByteArray *out);
gboolean cluster_wire_alert_decode(const guint8 *data, gsize len, ClusterAlert *a,
				   GError **error);
/* The event's id (see above) into buf; buf_len >= CLUSTER_WIRE_ID_MAX. */
#define CLUSTER_WIRE_ID_MAX 128
void cluster_wire_alert_id(guint partition, const AlertEvent *ev, char *buf, gsize buf_len);

/* A partition's history readings of one slice (doc/cluster.md, "History"), on
 * spamflow.history.<p>, from the analyzer node that owns the partition. Every node that
 * keeps a history store consumes them all, so that each store holds the whole cluster's
 * readings whichever node analyzed a partition at the time.
 *   piece:  a slice too large for one message goes in pieces 0, 1, ... (each a complete
 *           slice payload with some of the hosts, all with the slice's time)
 *   slice:  the payload of a history store slice record (history/history_seg.h,
 *           hseg_slice_encode()): opaque here, read by the receiver with hseg_slice_begin()
 *           and hseg_slice_next(); at most CLUSTER_WIRE_MAX_HISTORY bytes */
#define CLUSTER_WIRE_MAX_HISTORY (1u << 20)
typedef struct {
	char node[64];
	guint32 partition;
	guint64 lease_rev;
	guint16 piece;
	const guint8 *slice; /* encode: the caller's; decode: points into the message */
	gsize slice_len;
} ClusterHistory;
void cluster_wire_history_encode(const ClusterHistory *h, GByteArray *out);
gboolean cluster_wire_history_decode(const guint8 *data, gsize len, ClusterHistory *h,
				     GError **error);
/* The partition of an internal host: FNV-1a over its 16 bytes, mixed by MurmurHash3's
 * fmix32, mod partitions. Fixed for the life of a cluster (doc/cluster.md): every node must
 * agree. */
guint cluster_partition(const guint8 host[16], guint partitions);

/* A control record ("SFCC"): an admin's suppress, unsuppress or forget for one internal
 * host, published by the node asked to the host's partition subject (spamflow.flows.<p>), in
 * the stream with the flows, so that the partition's owner applies it in stream order and a
 * takeover's replay applies it again at the same point (doc/cluster.md, "Policy commands").
 * A forget is also sent on by the owner to spamflow.alerts, for the alert group's sinks and
 * actions. */
typedef enum {
	CLUSTER_CTL_SUPPRESS = 1,
	CLUSTER_CTL_UNSUPPRESS = 2,
	CLUSTER_CTL_FORGET = 3,
} ClusterCtlOp;
#define CLUSTER_CTL_NOTE_MAX 200 /* POLICY_NOTE_MAX */
typedef struct {
	char node[64];      /* the node asked */
	gint64 boot_ms;     /* when that node started */
	guint64 id;         /* its counter of records: node, boot_ms and id name the record */
	guint32 partition;  /* the host's */
	ClusterCtlOp op;
	guint8 host[16];
	gboolean all;       /* every reason (suppress, unsuppress); else reason */
	AlertReason reason;
	gint64 until_ms;    /* suppress: until when (the analyzer's clock, epoch ms) */
	gint64 set_ms;      /* the asking node's clock when asked */
	guint32 uid;        /* the control client's */
	gint32 pid;
	char note[CLUSTER_CTL_NOTE_MAX + 1];
} ClusterCtl;

void cluster_wire_ctl_encode(const ClusterCtl *c, GByteArray *out);
gboolean cluster_wire_ctl_decode(const guint8 *data, gsize len, ClusterCtl *c, GError **error);
/* Whether a message on a flow subject or the alerts subject is a control record (by its
 * magic: what follows is cluster_wire_ctl_decode()'s to judge). */
gboolean cluster_wire_is_ctl(const guint8 *data, gsize len);
/* Its Nats-Msg-Id: "c-<node>-<boot_ms>-<id>" (a retry, and a replay's forward of a forget
 * to the alerts stream, are stored once). buf_len >= CLUSTER_WIRE_ID_MAX. */
void cluster_wire_ctl_id(const ClusterCtl *c, char *buf, gsize buf_len);
