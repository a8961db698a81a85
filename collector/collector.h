/* The collector's pure core: datagrams in (with the exporter's address and a receive time),
 * normalized flow records out through a FlowBatch. Owns the exporter table, per-exporter
 * sessions, template state and counters. No sockets, no main loop, no globals: the UDP
 * listener and the offline replay both feed collector_input(). */
#pragma once

#include "flow.h"

#include <glib.h>

/* Why a datagram (or part of it) was rejected. Each value is a counter. */
typedef enum {
	MAL_SHORT_HEADER = 0, /* shorter than the version's header */
	MAL_LENGTH,           /* header length/count disagrees with the datagram */
	MAL_SET_LENGTH,       /* set/flowset length < 4 or past the end of the message */
	MAL_TEMPLATE,         /* template record truncated, 0 fields (v9), or too long */
	MAL_TEMPLATE_ID,      /* template ID below 256 */
	MAL_SHORT_SET,        /* data set holding no whole record */
	MAL_VARLEN,           /* variable-length field runs past its set */
	MAL_SAMPLE,           /* sFlow: a sample's fields contradict its length */
	MAL_N
} Malformed;

const char *malformed_name(Malformed m);

/* Counters kept per (exporter, observation domain). An exporter also keeps one for datagrams
 * that failed before a domain was known (its domain prints as "-"). */
typedef struct {
	guint64 datagrams;
	guint64 bytes;   /* datagram bytes */
	guint64 records; /* data records turned into flows */
	guint64 options_records;
	guint64 template_records;
	guint64 malformed[MAL_N];
	guint64 no_template_sets; /* data sets whose template is not (yet) known */
	guint64 no_template_bytes;
	guint64 templates_refused; /* over max_templates */
	guint64 templates_withdrawn;
	guint64 templates_expired;
	guint64 seq_lost;   /* v9, sFlow: datagrams; v5, IPFIX: records (RFC semantics) */
	guint64 seq_resets; /* exporter restarts and resyncs: not counted as loss */
	guint64 sets_skipped; /* reserved set IDs; sFlow: samples of unknown formats */
	guint64 times_dropped;  /* records whose exported times were implausible (kept empty) */
	guint64 ambiguous_addr; /* dual-stack template records whose family cannot be told */
	/* sFlow */
	guint64 samples_lost;    /* flow samples missing from the per-source sequence numbers */
	guint64 sample_drops;    /* increases of the agent's own "drops" counter per source */
	guint64 counter_samples; /* counted, not turned into flows */
	guint64 samples_not_ip;  /* flow samples with no IPv4/IPv6 packet (ARP, LLDP, ...) */
	guint32 templates_active;
	guint32 sampling; /* last interval seen; 1 = unsampled or unknown */
	gint64 first_seen_ms;
	gint64 last_seen_ms;
	guint8 version; /* 5, 9, 10 or FLOW_VERSION_SFLOW5 */
	gboolean seq_init;
} SessionStats;

/* What the collector tells its owner once per exporter when it starts happening, so the
 * admin of a misconfigured exporter gets one log line, not one per record. */
typedef enum {
	NOTICE_TIMES_DROPPED, /* exported times implausible against the export time */
	NOTICE_AMBIGUOUS_ADDR, /* dual-stack template record with both or neither family */
	NOTICE_DENIED_SOURCE,  /* a new source the allowlist refuses (addr, port) */
	NOTICE_N
} CollectorNotice;

typedef struct {
	const guint8 *addr; /* exporter (UDP source, or the sFlow agent) */
	guint16 port;       /* 0 for an sFlow agent */
	gboolean agent;     /* an sFlow agent rather than a transport session */
	guint32 domain;
	guint8 version;
	/* NOTICE_TIMES_DROPPED: the record's times and the message's export time, Unix ms */
	gint64 start_ms, end_ms, export_ms;
	guint16 template_id; /* NOTICE_AMBIGUOUS_ADDR */
	gint16 ipversion;    /* its ipVersion (IE 60), -1 when the template has none */
} CollectorNoticeInfo;

typedef struct {
	guint max_exporters;            /* default 1024 */
	guint max_domains;              /* observation domains per exporter, default 64 */
	guint max_templates;            /* templates per exporter (all domains), default 512 */
	guint max_template_fields;      /* fields in one template, default 512 */
	guint64 template_memory;        /* bytes for all templates of all exporters, 32 MiB */
	guint template_timeout_s;       /* templates not refreshed for this long expire, 1800 */
	guint exporter_timeout_s;       /* silent exporters are forgotten, default 3600 */
	/* Exporter allowlist: datagrams from addresses it refuses are counted and dropped
	 * before decoding. NULL accepts every source. */
	gboolean (*allow)(const guint8 addr[16], gpointer data);
	gpointer allow_data;
	/* sFlow per-source sequence state, across every agent (each entry ~48 bytes) */
	guint max_sflow_sources; /* default 65536 */
	/* Called once per exporter and notice kind (NULL: nothing is told). */
	void (*notice)(CollectorNotice what, const CollectorNoticeInfo *info, gpointer data);
	gpointer notice_data;
} CollectorConfig;

void collector_config_defaults(CollectorConfig *cfg);

typedef struct {
	guint64 datagrams;
	guint64 bytes;
	guint64 bad_version;       /* not NetFlow v5/v9, IPFIX or sFlow v5 */
	guint64 exporters_denied;  /* datagrams from sources the allowlist refuses */
	guint64 exporters_refused; /* over max_exporters */
	guint64 exporters_expired;
	guint64 domains_refused;
	guint64 domains_expired;   /* idle for exporter_timeout while their exporter was not */
	guint64 templates_over_memory; /* refused: template_memory or max_template_fields */
	guint64 template_bytes;    /* now: held by every template */
	guint64 records;
	guint64 sflow_no_agent;    /* sFlow datagrams too short to name their agent, or of an
				    * unknown agent address type */
	guint64 sflow_sources;     /* now: per-source sample sequence entries held */
	guint64 sflow_sources_refused; /* over max_sflow_sources: that source's loss uncounted */
	guint64 denied_sources;    /* now: sources the allowlist refused, kept for `exporters` */
	guint64 denied_untracked;  /* refused datagrams of sources past DENIED_SOURCES_MAX */
} CollectorTotals;

/* Sources the allowlist refused, each with its counts (at most this many are kept; they
 * expire like exporters). A wrong allowed_exporters shows here, not as silence. */
#define DENIED_SOURCES_MAX 256

typedef struct {
	guint8 addr[16];
	guint16 port; /* the last datagram's */
	guint64 datagrams;
	guint64 bytes;
	gint64 first_seen_ms;
	gint64 last_seen_ms;
} DeniedView;

typedef void (*DeniedFunc)(const DeniedView *v, gpointer user_data);

/* What a caller may read about one exporter session. */
typedef struct {
	guint index;
	guint8 addr[16];
	guint16 port;
	gboolean agent; /* an sFlow agent (addr from the datagram, no port) */
	guint32 domain;
	gboolean has_domain; /* FALSE for the "before a domain was known" row */
	const SessionStats *stats;
} SessionView;

typedef struct Collector Collector;

/* out receives every decoded record; records carry the exporter index and domain. */
Collector *collector_new(const CollectorConfig *cfg, FlowBatch *out);
void collector_free(Collector *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Collector, collector_free)

/* One datagram from addr:port (addr 16 bytes, IPv4-mapped for IPv4), received at now_ms.
 * NetFlow v5, v9, IPFIX and sFlow v5 are told apart per datagram.
 * Decoded records are pushed into the batch (not flushed: the caller flushes per
 * receive batch). Returns the number of records decoded. */
guint collector_input(Collector *c, const guint8 addr[16], guint16 port, const guint8 *buf,
		      gsize len, gint64 now_ms);

/* Forget exporters and domains silent for exporter_timeout_s, and templates past
 * template_timeout_s. */
void collector_expire(Collector *c, gint64 now_ms);

const CollectorTotals *collector_totals(const Collector *c);

typedef void (*SessionFunc)(const SessionView *v, gpointer user_data);
/* Every session row, in exporter order then domain order (stable for output). */
void collector_foreach_session(const Collector *c, SessionFunc fn, gpointer user_data);

/* The address and port of exporter `index` (as carried in Flow.exporter); FALSE when it has
 * expired. */
gboolean collector_exporter_addr(const Collector *c, guint index, guint8 addr[16],
				 guint16 *port);
/* Every source the allowlist refused, most recent first. */
void collector_foreach_denied(const Collector *c, DeniedFunc fn, gpointer user_data);

/* TRUE when exporter `index` is an sFlow agent. */
gboolean collector_exporter_is_agent(const Collector *c, guint index);

/* Restart without loss (the daemon's state file): exporter sessions with their sequence
 * positions, sampling and active templates, in a versioned big-endian blob. */
void collector_state_save(const Collector *c, GByteArray *out);

typedef struct {
	guint exporters, domains, templates;
	guint exporters_dropped; /* now refused by the allowlist, or over max_exporters */
	guint domains_dropped;   /* over max_domains, or under a dropped exporter */
	guint templates_dropped; /* over max_templates */
} CollectorStateLoad;

/* Restore a blob from collector_state_save() into a collector that has seen no datagram
 * yet. The blob is untrusted: every length is checked and each template goes through the
 * wire parser. Returns FALSE with an error naming what was wrong; the collector may then
 * hold part of the state, so the caller frees it and makes a fresh one. */
gboolean collector_state_load(Collector *c, const guint8 *data, gsize len,
			      CollectorStateLoad *res, GError **error) G_GNUC_WARN_UNUSED_RESULT;
