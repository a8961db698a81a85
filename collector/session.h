/* Internal to the collector: per-exporter sessions and their observation domains, shared by
 * the decoders. An exporter is one transport session (address and port, RFC 7011 10.3.1) or
 * an sFlow agent; templates, sequence state, sampling and counters live per observation
 * domain (IPFIX), source ID (v9), engine (v5) or sub-agent (sFlow). The functions on them
 * are in session.c; the decoders call those, never the dispatcher in collector.c. */
#pragma once

#include "collector.h"
#include "cursor.h"

typedef struct Template Template;

#define SAMPLER_SLOTS 16

typedef struct {
	guint32 id;
	guint32 interval;
} SamplerSlot;

typedef struct {
	guint32 id;
	SessionStats st;
	GHashTable *templates; /* guint16 id -> Template* */
	/* sequence tracking (see seq_check() in session.c) */
	guint32 seq_last;
	guint32 seq_last_count; /* records in the last message (v5, IPFIX) */
	guint32 uptime_last;    /* v5/v9 sysUptime, sFlow agent uptime: a restart is no loss */
	guint32 seq_last_data;  /* IPFIX: data records only (no options) in the last message */
	gint8 seq_mode;         /* IPFIX: 0 unknown, 1 RFC 7011, 2 counts own records */
	guint8 seq_votes;       /* messages in a row that read the other way */
	guint32 seq_pending;    /* loss held back while those votes run */
	guint32 seq_pending_rfc; /* loss while the reading is unknown, under each reading */
	guint32 seq_pending_own;
	/* sampling learnt from options records or the v5 header */
	guint32 sampling;
	SamplerSlot samplers[SAMPLER_SLOTS];
	guint n_samplers;
	gint64 sys_init_ms; /* IPFIX systemInitTimeMilliseconds from options, 0 unknown */
	/* sFlow: per source ID (flow samples), the sample sequence and the drops counter */
	GHashTable *sources; /* guint64 key (SFLOW_SOURCE_KEY) -> SflowSource*, lazily made */
	guint64 *sources_acct; /* CollectorTotals.sflow_sources */
} Domain;

typedef struct {
	guint32 seq;   /* last flow sample sequence number */
	guint32 drops; /* last "drops" value */
} SflowSource;

typedef struct {
	guint index;
	guint8 addr[16];
	guint16 port;  /* 0 for an sFlow agent */
	gboolean agent; /* an sFlow agent: addr is the agent address inside the datagrams */
	guint8 noticed; /* CollectorNotice bits already told */
	SessionStats hdr; /* datagrams rejected before a domain was known */
	GHashTable *domains; /* guint32 -> Domain* */
	GArray *domain_order; /* guint32 ids in arrival order, for stable output */
	guint n_templates;    /* across all domains, for max_templates */
	gint64 last_seen_ms;
	const CollectorConfig *cfg;
	CollectorTotals *totals;
} Exporter;

/* Per-datagram context handed to the template engine. */
typedef struct {
	Exporter *exp;
	Domain *dom;
	FlowBatch *out;
	gint64 now_ms;
	gint64 export_ms; /* header export time, Unix ms */
	guint32 uptime;   /* v9 sysUptime (ms) */
	guint8 version;
} DecodeCtx;

/* ---- session.c ---- */

/* A new exporter session with no domain yet; the collector's table owns it. */
Exporter *exporter_new(guint index, const guint8 addr[16], guint16 port, gboolean agent,
		       const CollectorConfig *cfg, CollectorTotals *totals);
void exporter_free(Exporter *e);

/* The domain for id, created on first use; NULL (and counted) when over max_domains. */
Domain *exporter_domain(Exporter *e, guint32 id, gint64 now_ms);

/* Count one datagram against a domain (or the exporter's header row). */
void session_count_datagram(SessionStats *st, guint8 version, gsize len, gint64 now_ms);

typedef enum {
	SEQ_PER_RECORD,   /* v5: sequence of the first record in the datagram */
	SEQ_PER_DATAGRAM, /* v9, sFlow: datagram counter */
	SEQ_IPFIX,        /* RFC 7011 records before this message; softflowd counts its own */
} SeqKind;

/* The gap between two sequence numbers that counts as loss; larger jumps (and backwards
 * ones) are resyncs. */
#define SEQ_MAX_GAP 0x100000u

/* Track the header sequence number; n = data records in this message (for IPFIX with
 * options records, n_data without them). */
void seq_check(Domain *d, SeqKind kind, guint32 seq, guint32 n, guint32 n_data);

/* Sampling interval for a sampler id learnt from options data, else the domain's. */
guint32 domain_sampling(const Domain *d, gboolean has_id, guint32 id);
/* Set the domain's interval (0 reads as 1, unsampled), and the sampler's when has_id. */
void domain_set_sampler(Domain *d, gboolean has_id, guint32 id, guint32 interval);

/* Tell the collector's owner about a condition, once per exporter and kind. */
void exporter_notice(Exporter *e, CollectorNotice what, const CollectorNoticeInfo *info);

/* Count a record whose exported times were implausible (FLOW_TIMES_INVALID), telling the
 * owner the first time it happens on this exporter. */
void domain_times_dropped(Exporter *e, Domain *d, guint8 version, gint64 start_ms,
			  gint64 end_ms, gint64 export_ms);

/* Exported times are evidence, not the clock: accept them only when they are plausible
 * against the message's export time (90 days back, one day ahead). */
static inline gboolean
times_plausible(gint64 export_ms, gint64 start_ms, gint64 end_ms)
{
	const gint64 past = G_GINT64_CONSTANT(90) * 86400 * 1000;
	const gint64 future = G_GINT64_CONSTANT(86400) * 1000;
	return start_ms <= end_ms && start_ms >= export_ms - past && end_ms <= export_ms + future;
}

static inline guint64
malformed_total(const SessionStats *st)
{
	guint64 n = 0;
	for (guint i = 0; i < MAL_N; i++)
		n += st->malformed[i];
	return n;
}

/* ---- the decoders, one per wire format (v5.c, v9.c, ipfix.c, sflow.c) ---- */

/* Each returns the number of flow records pushed. */
guint v5_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out);
guint v9_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out);
guint ipfix_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out);
/* sFlow v5: the exporter is the agent named inside the datagram. sflow_agent() reads that
 * name (FALSE when the datagram is too short or the address type unknown); the collector
 * finds the agent's Exporter, then sflow_decode() reads the whole datagram. */
gboolean sflow_agent(const guint8 *buf, gsize len, guint8 addr[16]);
guint sflow_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out);

/* Restart without loss: one saved sFlow source; FALSE when over max_sflow_sources. */
gboolean domain_restore_source(Exporter *e, Domain *d, guint64 key, guint32 seq,
			       guint32 drops);

/* ---- collector.c, for the state file (state.c): the exporter table by index ---- */

guint collector_next_index(const Collector *c);
void collector_set_next_index(Collector *c, guint next);
void collector_exporter_indexes(const Collector *c, GArray *out); /* ascending guint */
Exporter *collector_exporter(const Collector *c, guint index);
const CollectorConfig *collector_config(const Collector *c);
typedef enum {
	COLLECTOR_RESTORE_OK,
	COLLECTOR_RESTORE_DROPPED,   /* allowlist or max_exporters: *out is NULL */
	COLLECTOR_RESTORE_DUPLICATE, /* index or address already present */
} CollectorRestore;
CollectorRestore collector_exporter_restore(Collector *c, guint index, const guint8 addr[16],
					    guint16 port, gboolean agent, gint64 last_seen_ms,
					    Exporter **out);
