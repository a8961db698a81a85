/* Renders the counters of the collector, listener, analyzer, sinks, actions, the control
 * socket and the HTTP endpoint as Prometheus text (exposition format 0.0.4): each family is
 * its # HELP and # TYPE lines and then all its samples, together. Scalar families come from
 * tables of (name, type, help, struct offset), so a counter is exported by one row. */
#include "metrics.h"

#include "report.h"

#include <stddef.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE } MetricType;

typedef struct {
	const char *name;
	MetricType type;
	gsize off; /* a guint64 in the source struct */
	const char *help;
} Scalar;

/* clang-format off */
#define CT(n, t, f, h) {n, t, offsetof(CollectorTotals, f), h}
#define LS(n, t, f, h) {n, t, offsetof(ListenerStats, f), h}
#define AS(n, t, f, h) {n, t, offsetof(AnalyzerStats, f), h}
#define HS(n, t, f, h) {n, t, offsetof(HttpStats, f), h}
#define CN(n, t, f, h) {n, t, offsetof(ClusterNodeStats, f), h}
/* clang-format on */

static const Scalar totals_scalars[] = {
    CT("spamflow_datagrams_total", M_COUNTER, datagrams,
       "Export datagrams the collector took in (NetFlow v5/v9, IPFIX, sFlow v5)."),
    CT("spamflow_bytes_total", M_COUNTER, bytes, "Bytes of those datagrams (UDP payload)."),
    CT("spamflow_records_total", M_COUNTER, records, "Flow records decoded."),
    CT("spamflow_unknown_version_datagrams_total", M_COUNTER, bad_version,
       "Datagrams that were not NetFlow v5/v9, IPFIX or sFlow v5."),
    CT("spamflow_denied_datagrams_total", M_COUNTER, exporters_denied,
       "Datagrams from sources [collector] allowed_exporters refuses."),
    CT("spamflow_exporters_refused_total", M_COUNTER, exporters_refused,
       "Datagrams of new exporters refused at [collector] max_exporters."),
    CT("spamflow_exporters_expired_total", M_COUNTER, exporters_expired,
       "Exporters forgotten after exporter_timeout of silence."),
    CT("spamflow_templates_over_memory_total", M_COUNTER, templates_over_memory,
       "Templates refused by template_memory or max_template_fields."),
    CT("spamflow_template_memory_bytes", M_GAUGE, template_bytes,
       "Bytes held by the templates of all exporters."),
};

static const Scalar listener_scalars[] = {
    LS("spamflow_listener_datagrams_total", M_COUNTER, datagrams,
       "Datagrams read from the UDP sockets."),
    LS("spamflow_listener_bytes_total", M_COUNTER, bytes, "Bytes read from the UDP sockets."),
    LS("spamflow_kernel_drops_total", M_COUNTER, kernel_drops,
       "Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL)."),
    LS("spamflow_receive_errors_total", M_COUNTER, recv_errors, "recvmmsg() errors."),
    LS("spamflow_listener_truncated_total", M_COUNTER, truncated,
       "Datagrams longer than the receive buffer (cut, dropped)."),
};

static const Scalar analyzer_scalars[] = {
    AS("spamflow_flows_seen_total", M_COUNTER, flows_seen, "Flow records the analyzer read."),
    AS("spamflow_flows_relevant_total", M_COUNTER, flows_relevant,
       "Flow records that fed a host's window."),
    AS("spamflow_flows_late_total", M_COUNTER, flows_late,
       "Flow records older than their host window's newest slice."),
    AS("spamflow_flows_outside_total", M_COUNTER, flows_outside,
       "Mail and login port records with neither end in internal_networks or mail_servers."),
    AS("spamflow_hosts_tracked", M_GAUGE, hosts_tracked, "Hosts tracked now."),
    AS("spamflow_hosts_created_total", M_COUNTER, hosts_created, "Hosts that began to be tracked."),
    AS("spamflow_hosts_evicted_total", M_COUNTER, hosts_evicted,
       "Hosts evicted by [analyzer] max_hosts or memory_cap, least recently seen first."),
    AS("spamflow_hosts_expired_total", M_COUNTER, hosts_expired,
       "Hosts idle for longer than the long window, dropped."),
    AS("spamflow_hosts_estimated", M_GAUGE, hosts_estimated,
       "Hosts with a window in estimated (HyperLogLog) mode now."),
    AS("spamflow_analyzer_memory_bytes", M_GAUGE, mem_bytes,
       "The analyzer's estimate of the bytes its hosts and windows hold."),
    AS("spamflow_analyzer_memory_limit_bytes", M_GAUGE, mem_cap, "[analyzer] memory_cap."),
    AS("spamflow_suppressions", M_GAUGE, suppressions, "Suppressions in force now."),
};

static const Scalar cluster_scalars[] = {
    CN("spamflow_cluster_partitions", M_GAUGE, partitions,
       "[cluster] partitions: the cluster's partition count."),
    CN("spamflow_cluster_partitions_owned", M_GAUGE, owned,
       "Partitions this node analyzes now (analyzer role)."),
    CN("spamflow_cluster_lag", M_GAUGE, lag,
       "Stream sequences this node's partitions have yet to apply (0: caught up)."),
    CN("spamflow_cluster_flows_routed_total", M_COUNTER, flows_routed,
       "Flow records this collector routed to a partition and batched."),
    CN("spamflow_cluster_flows_ignored_total", M_COUNTER, flows_ignored,
       "Flow records no heuristic reads: not published."),
    CN("spamflow_cluster_flows_outside_total", M_COUNTER, flows_outside,
       "Of them, mail and login port records with neither end in internal_networks or "
       "mail_servers."),
    CN("spamflow_cluster_flows_dropped_total", M_COUNTER, flows_dropped,
       "Flow records in batches the bus did not take (its buffer full)."),
    CN("spamflow_cluster_flows_failed_total", M_COUNTER, flows_failed,
       "Flow records in batches the bus took and then gave up on (no acknowledgement in time)."),
    CN("spamflow_cluster_flows_not_collected_total", M_COUNTER, flows_not_collected,
       "Flow records handed to a node without the collector role: dropped."),
    CN("spamflow_cluster_batches_published_total", M_COUNTER, batches_out,
       "Flow batches (ticks included) handed to the bus."),
    CN("spamflow_cluster_batch_bytes_total", M_COUNTER, batch_bytes_out,
       "Bytes of those batches."),
    CN("spamflow_cluster_batches_dropped_total", M_COUNTER, batches_dropped,
       "Flow batches the bus did not take (its buffer full)."),
    CN("spamflow_cluster_batches_applied_total", M_COUNTER, batches_in,
       "Flow batches this node's partitions applied."),
    CN("spamflow_cluster_flows_applied_total", M_COUNTER, flows_in,
       "Flow records in them."),
    CN("spamflow_cluster_batches_missing_total", M_COUNTER, batches_missing,
       "Collectors' flow batches to owned partitions not arrived after 30 s of a calm bus."),
    CN("spamflow_cluster_batches_late_total", M_COUNTER, batches_late,
       "Flow batches that arrived after they were counted missing."),
    CN("spamflow_cluster_batches_waiting", M_GAUGE, batches_waiting,
       "Flow batch numbers skipped, within their 30 s: missing unless they come."),
    CN("spamflow_cluster_batches_twice_total", M_COUNTER, batches_twice,
       "Flow batches the stream held twice: applied once, the copy skipped."),
    CN("spamflow_cluster_batches_recovered_total", M_COUNTER, batches_recovered,
       "Skipped flow batches found by reading the partition's stream again."),
    CN("spamflow_cluster_stream_rereads_total", M_COUNTER, rereads,
       "Readings of an owned partition's stream again, for batches skipped 5 s."),
    CN("spamflow_cluster_batches_bad_total", M_COUNTER, batches_bad,
       "Messages on a flow subject that were no valid batch: counted and skipped."),
    CN("spamflow_cluster_alerts_published_total", M_COUNTER, alerts_out,
       "Alert events this node's partitions handed to the bus."),
    CN("spamflow_cluster_alerts_dropped_total", M_COUNTER, alerts_dropped,
       "Alert events and forgets dropped: the bus's buffer and the bytes held for it full."),
    CN("spamflow_cluster_held_total", M_COUNTER, held,
       "Alert events, forgets and history messages the bus's buffer had no room for, held "
       "by their partition and offered again."),
    CN("spamflow_cluster_held", M_GAUGE, held_now,
       "Of those, held now (the partition's snapshots wait for them)."),
    CN("spamflow_cluster_partitions_restarted_total", M_COUNTER, restarts,
       "Partitions given up to be taken again from their stored snapshot after one of "
       "those was dropped: the replay sends it again."),
    CN("spamflow_cluster_partitions_restart_waiting", M_GAUGE, restarts_waiting,
       "Owned partitions that dropped an event, to be restarted once the bus takes their "
       "messages again."),
    CN("spamflow_cluster_alerts_received_total", M_COUNTER, alerts_in,
       "Alert events this node's sinks got from the cluster (alert group)."),
    CN("spamflow_cluster_alerts_bad_total", M_COUNTER, alerts_bad,
       "Alert messages that did not decode: counted and skipped."),
    CN("spamflow_cluster_history_published_total", M_COUNTER, history_out,
       "History messages (a partition's readings of a slice) handed to the bus."),
    CN("spamflow_cluster_history_dropped_total", M_COUNTER, history_dropped,
       "History messages dropped: the bus's buffer and the bytes held for it full."),
    CN("spamflow_cluster_history_received_total", M_COUNTER, history_in,
       "History messages from the cluster written to this node's store."),
    CN("spamflow_cluster_history_repeated_total", M_COUNTER, history_repeated,
       "History messages of a slice this node's store already had (a takeover's replay)."),
    CN("spamflow_cluster_history_bad_total", M_COUNTER, history_bad,
       "History messages that did not decode: counted and skipped."),
    CN("spamflow_cluster_partitions_acquired_total", M_COUNTER, acquired,
       "Partitions this node took (start, takeover, return)."),
    CN("spamflow_cluster_partitions_released_total", M_COUNTER, released,
       "Partitions handed over through a snapshot."),
    CN("spamflow_cluster_partitions_lost_total", M_COUNTER, lost,
       "Partitions whose lease expired or was taken while this node held them."),
    CN("spamflow_cluster_snapshots_total", M_COUNTER, snapshots,
       "Partition snapshots made."),
    CN("spamflow_cluster_snapshot_bytes_total", M_COUNTER, snapshot_bytes,
       "Bytes of those snapshots."),
    CN("spamflow_cluster_snapshots_bad_total", M_COUNTER, snapshots_bad,
       "Snapshots that did not load at a takeover (the windows restarted)."),
    CN("spamflow_cluster_snapshots_deferred_total", M_COUNTER, snapshots_deferred,
       "Snapshots put off because alert events before them were not yet stored on the bus."),
    CN("spamflow_cluster_ctl_stored_total", M_COUNTER, ctl_out,
       "Control records (suppress, unsuppress, forget) asked on this node and stored."),
    CN("spamflow_cluster_ctl_failed_total", M_COUNTER, ctl_out_failed,
       "Control records asked on this node that the bus did not store (the client was told)."),
    CN("spamflow_cluster_ctl_applied_total", M_COUNTER, ctl_in,
       "Control records applied by this node's partitions (replays included)."),
    CN("spamflow_cluster_ctl_bad_total", M_COUNTER, ctl_bad,
       "Control records that did not parse or named another partition (skipped)."),
    CN("spamflow_cluster_ctl_refused_total", M_COUNTER, ctl_refused,
       "Suppressions a partition analyzer refused (max_suppressions)."),
    CN("spamflow_cluster_bus_connected", M_GAUGE, bus_connected,
       "1 while connected to a NATS server."),
    CN("spamflow_cluster_bus_reconnects_total", M_COUNTER, bus_reconnects,
       "Reconnections to the NATS servers."),
    CN("spamflow_cluster_bus_published_total", M_COUNTER, bus_published,
       "Messages the streams acknowledged."),
    CN("spamflow_cluster_bus_duplicates_total", M_COUNTER, bus_duplicates,
       "Messages a stream acknowledged as duplicates of an earlier id."),
    CN("spamflow_cluster_bus_retried_total", M_COUNTER, bus_retried,
       "Publish attempts repeated after an error or no answer."),
    CN("spamflow_cluster_bus_failed_total", M_COUNTER, bus_failed,
       "Messages given up after the timeout of attempts while connected."),
    CN("spamflow_cluster_bus_dropped_total", M_COUNTER, bus_dropped,
       "Messages not taken: the publish buffer was full."),
    CN("spamflow_cluster_bus_buffered_bytes", M_GAUGE, bus_buffered,
       "Bytes taken and not yet acknowledged."),
    CN("spamflow_cluster_bus_buffer_limit_bytes", M_GAUGE, bus_buffered_max,
       "[cluster] publish_buffer."),
    CN("spamflow_cluster_bus_unreadable_total", M_COUNTER, bus_unreadable,
       "Stream messages dropped unread: no JetStream metadata, or a given-up subscription."),
    CN("spamflow_cluster_bus_handler_dropped_total", M_COUNTER, bus_handler_dropped,
       "Messages libnats dropped because a subscription's handler fell behind."),
    CN("spamflow_cluster_bus_async_errors_total", M_COUNTER, bus_async_errors,
       "libnats' asynchronous errors (missed heartbeats, timeouts, slow consumers)."),
};

#define HI(n, t, f, h) {n, t, offsetof(HistoryStats, f), h}
static const Scalar history_scalars[] = {
    HI("spamflow_history_records_written_total", M_COUNTER, records_written,
       "History records (a slice's readings of up to 256 hosts, an event, an action) written."),
    HI("spamflow_history_bytes_written_total", M_COUNTER, bytes_written,
       "Bytes of history records written."),
    HI("spamflow_history_records_dropped_total", M_COUNTER, records_dropped,
       "History records dropped because the writer's queue was full."),
    HI("spamflow_history_enospc_total", M_COUNTER, enospc,
       "History records lost to a full disk (ENOSPC, EDQUOT)."),
    HI("spamflow_history_write_errors_total", M_COUNTER, write_errors,
       "History records lost to other write errors."),
    HI("spamflow_history_corrupt_records_total", M_COUNTER, corrupt_records,
       "Damaged history records skipped (CRC, type, length or payload)."),
    HI("spamflow_history_truncated_records_total", M_COUNTER, truncated_records,
       "History records cut short (a segment ending inside one), skipped."),
    HI("spamflow_history_segments", M_GAUGE, segments, "History segment files on disk now."),
    HI("spamflow_history_bytes", M_GAUGE, bytes, "Bytes of the history segments on disk now."),
    HI("spamflow_history_queries_truncated_total", M_COUNTER, queries_truncated,
       "History queries stopped by their read or time budget."),
};
#undef HI

static const Scalar http_scalars[] = {
    HS("spamflow_http_connections_total", M_COUNTER, connections, "HTTP connections accepted."),
    HS("spamflow_http_connections", M_GAUGE, active, "HTTP connections open now."),
    HS("spamflow_http_requests_total", M_COUNTER, requests,
       "HTTP requests that reached the endpoint's handler."),
    HS("spamflow_http_not_found_total", M_COUNTER, not_found, "HTTP requests answered 404."),
    HS("spamflow_http_renders_delayed_total", M_COUNTER, renders_delayed,
       "HTTP replies held back so that rendering takes at most a tenth of the main loop."),
    HS("spamflow_http_deferred_total", M_COUNTER, deferred,
       "HTTP replies that came later (a cluster node's host routed to its owner)."),
    HS("spamflow_http_deferred_timeouts_total", M_COUNTER, deferred_timeouts,
       "Deferred HTTP replies that did not come in time (answered 504)."),
};

/* spamflow_http_refused_total{reason} */
static const struct {
	const char *reason;
	gsize off;
} http_refusals[] = {
    {"not_allowed", offsetof(HttpStats, refused_not_allowed)},
    {"auth", offsetof(HttpStats, refused_auth)},
    {"too_many_clients", offsetof(HttpStats, refused_clients)},
    {"too_big", offsetof(HttpStats, refused_too_big)},
    {"method", offsetof(HttpStats, refused_method)},
    {"busy", offsetof(HttpStats, refused_busy)},
    {"timeout", offsetof(HttpStats, timed_out)},
    {"bad_request", offsetof(HttpStats, bad_requests)},
};

static guint64
u64_at(const void *base, gsize off)
{
	guint64 v;
	memcpy(&v, (const guint8 *)base + off, sizeof v);
	return v;
}

gboolean
metrics_name_valid(const char *name)
{
	if (name == NULL || name[0] == '\0' || g_ascii_isdigit(name[0]))
		return FALSE;
	for (const char *p = name; *p != '\0'; p++)
		if (!g_ascii_isalnum(*p) && *p != '_' && *p != ':')
			return FALSE;
	return TRUE;
}

void
metrics_escape_label(GString *out, const char *value)
{
	g_autofree char *valid = g_utf8_make_valid(value != NULL ? value : "", -1);

	for (const char *p = valid; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		default:
			g_string_append_c(out, *p);
		}
	}
}

/* # HELP text escapes backslash and line feed only. */
static void
family(GString *out, const char *name, MetricType type, const char *help)
{
	g_assert(metrics_name_valid(name));
	g_string_append_printf(out, "# HELP %s ", name);
	for (const char *p = help; *p != '\0'; p++) {
		if (*p == '\\')
			g_string_append(out, "\\\\");
		else if (*p == '\n')
			g_string_append(out, "\\n");
		else
			g_string_append_c(out, *p);
	}
	g_string_append_printf(out, "\n# TYPE %s %s\n", name,
			       type == M_COUNTER ? "counter" : "gauge");
}

/* name{k1="v1",k2="v2"} value: labels as NULL-terminated name, value pairs */
static void
sample(GString *out, const char *name, const char *const *labels, guint64 value)
{
	g_string_append(out, name);
	if (labels != NULL && labels[0] != NULL) {
		g_string_append_c(out, '{');
		for (guint i = 0; labels[i] != NULL; i += 2) {
			g_string_append_printf(out, "%s%s=\"", i > 0 ? "," : "", labels[i]);
			metrics_escape_label(out, labels[i + 1]);
			g_string_append_c(out, '"');
		}
		g_string_append_c(out, '}');
	}
	g_string_append_printf(out, " %" G_GUINT64_FORMAT "\n", value);
}

static void
scalars(GString *out, const void *base, const Scalar *t, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		family(out, t[i].name, t[i].type, t[i].help);
		sample(out, t[i].name, NULL, u64_at(base, t[i].off));
	}
}

/* ---- exporters ---- */

typedef struct {
	char *exporter; /* "192.0.2.1:2055", or an sFlow agent's address */
	char domain[16];
	const SessionStats *st;
} Sess;

static void
collect_session(const SessionView *v, gpointer user_data)
{
	GArray *a = user_data;
	Sess s = {.exporter = report_exporter(v), .st = v->stats};

	if (v->has_domain)
		g_snprintf(s.domain, sizeof s.domain, "%u", v->domain);
	g_array_append_val(a, s);
}

static void
clear_sess(gpointer p)
{
	g_free(((Sess *)p)->exporter);
}

typedef enum {
	SV_DATAGRAMS,
	SV_RECORDS,
	SV_BYTES,
	SV_SEQ_LOST,
	SV_TEMPLATES,
	SV_SAMPLING,
	SV_LAST_SEEN
} SessValue;

static guint64
sess_value(const SessionStats *st, SessValue v)
{
	switch (v) {
	case SV_DATAGRAMS:
		return st->datagrams;
	case SV_RECORDS:
		return st->records;
	case SV_BYTES:
		return st->bytes;
	case SV_SEQ_LOST:
		return st->seq_lost;
	case SV_TEMPLATES:
		return st->templates_active;
	case SV_SAMPLING:
		return st->sampling;
	case SV_LAST_SEEN:
		return st->last_seen_ms > 0 ? (guint64)st->last_seen_ms / 1000 : 0;
	}
	return 0;
}

static void
exporters(GString *out, const Collector *c)
{
	static const struct {
		const char *name;
		MetricType type;
		SessValue v;
		const char *help;
	} per[] = {
	    {"spamflow_exporter_datagrams_total", M_COUNTER, SV_DATAGRAMS,
	     "Datagrams from one exporter (address:port, or an sFlow agent) and domain."},
	    {"spamflow_exporter_records_total", M_COUNTER, SV_RECORDS,
	     "Flow records decoded from one exporter and domain."},
	    {"spamflow_exporter_bytes_total", M_COUNTER, SV_BYTES,
	     "Bytes of the datagrams from one exporter and domain."},
	    {"spamflow_exporter_sequence_lost_total", M_COUNTER, SV_SEQ_LOST,
	     "Records (v5, IPFIX) or datagrams (v9) lost by the exporter's sequence numbers."},
	    {"spamflow_exporter_templates", M_GAUGE, SV_TEMPLATES,
	     "Templates active for one exporter and domain (v9, IPFIX)."},
	    {"spamflow_exporter_sampling_interval", M_GAUGE, SV_SAMPLING,
	     "Sampling interval of one exporter and domain (1 = every packet)."},
	    {"spamflow_exporter_last_seen_timestamp_seconds", M_GAUGE, SV_LAST_SEEN,
	     "When the exporter's last datagram arrived (Unix time)."},
	};
	g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(Sess));
	guint64 mal[MAL_N] = {0}, seq_lost = 0, templates = 0;

	g_array_set_clear_func(a, clear_sess);
	collector_foreach_session(c, collect_session, a);
	for (guint i = 0; i < a->len; i++) {
		const SessionStats *st = g_array_index(a, Sess, i).st;
		for (guint m = 0; m < MAL_N; m++)
			mal[m] += st->malformed[m];
		seq_lost += st->seq_lost;
		templates += st->templates_active;
	}
	family(out, "spamflow_exporters", M_GAUGE,
	       "Exporter sessions (exporter and observation domain) held now.");
	sample(out, "spamflow_exporters", NULL, a->len);
	family(out, "spamflow_malformed_total", M_COUNTER,
	       "Malformed datagrams, sets and records, by what was wrong.");
	for (guint m = 0; m < MAL_N; m++) {
		const char *l[] = {"reason", malformed_name(m), NULL};
		sample(out, "spamflow_malformed_total", l, mal[m]);
	}
	family(out, "spamflow_sequence_lost_total", M_COUNTER,
	       "Records (v5, IPFIX) or datagrams (v9) lost by the exporters' sequence numbers.");
	sample(out, "spamflow_sequence_lost_total", NULL, seq_lost);
	family(out, "spamflow_templates", M_GAUGE, "Templates active, all exporters.");
	sample(out, "spamflow_templates", NULL, templates);
	for (guint f = 0; f < G_N_ELEMENTS(per); f++) {
		family(out, per[f].name, per[f].type, per[f].help);
		for (guint i = 0; i < a->len; i++) {
			const Sess *s = &g_array_index(a, Sess, i);
			const char *l[] = {"exporter", s->exporter, "domain", s->domain, NULL};
			sample(out, per[f].name, l, sess_value(s->st, per[f].v));
		}
	}
	/* malformed per exporter: the reasons that happened only (most are zero) */
	family(out, "spamflow_exporter_malformed_total", M_COUNTER,
	       "Malformed datagrams, sets and records from one exporter and domain, by what was "
	       "wrong (reasons seen only).");
	for (guint i = 0; i < a->len; i++) {
		const Sess *s = &g_array_index(a, Sess, i);
		for (guint m = 0; m < MAL_N; m++) {
			if (s->st->malformed[m] == 0)
				continue;
			const char *l[] = {"exporter", s->exporter,	  "domain", s->domain,
					   "reason",   malformed_name(m), NULL};
			sample(out, "spamflow_exporter_malformed_total", l, s->st->malformed[m]);
		}
	}
}

/* ---- analyzer ---- */

static void
count_offender(const AnalyzerOffender *o, gpointer user_data)
{
	guint64 *by_reason = user_data;
	if (o->reason < REASON_COUNT)
		by_reason[o->reason]++;
}

static void
sinks(GString *out, const char *what, const SinkSet *set)
{
	static const struct {
		const char *suffix;
		gsize off;
		const char *help;
	} per[] = {
	    {"events_total", offsetof(SinkStats, events), "Alert events written by one %s."},
	    {"errors_total", offsetof(SinkStats, errors), "Write errors of one %s."},
	    {"dropped_total", offsetof(SinkStats, dropped),
	     "Alert events one %s dropped (queue full, or given up)."},
	};

	for (guint f = 0; f < G_N_ELEMENTS(per); f++) {
		g_autofree char *name = g_strdup_printf("spamflow_%s_%s", what, per[f].suffix);
		g_autofree char *help = g_strdup_printf(per[f].help, what);
		family(out, name, M_COUNTER, help);
		for (guint i = 0; set != NULL && i < sink_set_len(set); i++) {
			const Sink *sk = sink_set_get(set, i);
			const char *l[] = {"kind", sk->ops->kind, "name", sk->name, NULL};
			sample(out, name, l, u64_at(&sk->st, per[f].off));
		}
	}
}

void
metrics_render(GString *out, const MetricsSource *src)
{
	AnalyzerStats an;
	guint64 by_reason[REASON_COUNT] = {0};

	family(out, "spamflow_build_info", M_GAUGE, "The daemon's version, as a label; always 1.");
	{
		const char *l[] = {"version", src->version != NULL ? src->version : "", NULL};
		sample(out, "spamflow_build_info", l, 1);
	}
	family(out, "spamflow_start_time_seconds", M_GAUGE, "When the daemon started (Unix time).");
	sample(out, "spamflow_start_time_seconds", NULL, (guint64)MAX(src->started_ms, 0) / 1000);
	family(out, "spamflow_uptime_seconds", M_GAUGE, "Seconds since the daemon started.");
	sample(out, "spamflow_uptime_seconds", NULL,
	       (guint64)MAX(src->now_ms - src->started_ms, 0) / 1000);

	scalars(out, collector_totals(src->collector), totals_scalars,
		G_N_ELEMENTS(totals_scalars));
	exporters(out, src->collector);

	family(out, "spamflow_listener_sockets", M_GAUGE,
	       "UDP sockets receiving export (0: not listening, as in a replay).");
	sample(out, "spamflow_listener_sockets", NULL,
	       src->listener != NULL ? src->listener_sockets : 0);
	if (src->listener != NULL)
		scalars(out, src->listener, listener_scalars, G_N_ELEMENTS(listener_scalars));

	if (src->cluster_analyzer != NULL)
		an = *src->cluster_analyzer;
	else
		analyzer_get_stats(src->analyzer, &an);
	scalars(out, &an, analyzer_scalars, G_N_ELEMENTS(analyzer_scalars));
	if (src->cluster_offenders != NULL)
		memcpy(by_reason, src->cluster_offenders, sizeof by_reason);
	else
		analyzer_foreach_offender(src->analyzer, count_offender, by_reason);
	family(out, "spamflow_offenders", M_GAUGE,
	       "Active offenders (host and reason), by reason.");
	for (guint r = 0; r < REASON_COUNT; r++) {
		const char *l[] = {"reason", alert_reason_name(r), NULL};
		sample(out, "spamflow_offenders", l, by_reason[r]);
	}
	if (src->alerts != NULL) {
		family(out, "spamflow_alerts_total", M_COUNTER,
		       "Alert events handed to the sinks, by reason and event (raised, updated, "
		       "cleared).");
		for (guint r = 0; r < REASON_COUNT; r++) {
			for (guint k = 0; k < ALERT_KIND_COUNT; k++) {
				const char *l[] = {"reason", alert_reason_name(r), "event",
						   alert_kind_name(k), NULL};
				sample(out, "spamflow_alerts_total", l, src->alerts[r][k]);
			}
		}
	}
	sinks(out, "sink", src->sinks);
	sinks(out, "action", src->actions);

	if (src->control != NULL) {
		family(out, "spamflow_control_clients", M_GAUGE, "Control socket clients now.");
		sample(out, "spamflow_control_clients", NULL, src->control->clients_active);
		family(out, "spamflow_control_requests_total", M_COUNTER,
		       "Control socket requests answered.");
		sample(out, "spamflow_control_requests_total", NULL, src->control->requests);
		family(out, "spamflow_control_refused_total", M_COUNTER,
		       "Control socket clients refused at max_clients.");
		sample(out, "spamflow_control_refused_total", NULL, src->control->clients_refused);
	}
	if (src->history != NULL)
		scalars(out, src->history, history_scalars, G_N_ELEMENTS(history_scalars));
	if (src->cluster != NULL) {
		scalars(out, src->cluster, cluster_scalars, G_N_ELEMENTS(cluster_scalars));
		family(out, "spamflow_cluster_lag_seconds", M_GAUGE,
		       "How long ago the stream stored the batch this node's furthest-behind "
		       "partition is at (0: caught up): the delay of its alerts.");
		g_string_append_printf(out,
				       "spamflow_cluster_lag_seconds %" G_GUINT64_FORMAT
				       ".%03" G_GUINT64_FORMAT "\n",
				       src->cluster->lag_ms / 1000, src->cluster->lag_ms % 1000);
	}
	if (src->http != NULL) {
		scalars(out, src->http, http_scalars, G_N_ELEMENTS(http_scalars));
		family(out, "spamflow_http_render_seconds_total", M_COUNTER,
		       "Time the main loop spent rendering HTTP replies.");
		g_string_append_printf(out,
				       "spamflow_http_render_seconds_total %" G_GUINT64_FORMAT
				       ".%06" G_GUINT64_FORMAT "\n",
				       src->http->render_us / G_USEC_PER_SEC,
				       src->http->render_us % G_USEC_PER_SEC);
		family(out, "spamflow_http_refused_total", M_COUNTER,
		       "HTTP connections and requests refused, by why.");
		for (guint i = 0; i < G_N_ELEMENTS(http_refusals); i++) {
			const char *l[] = {"reason", http_refusals[i].reason, NULL};
			sample(out, "spamflow_http_refused_total", l,
			       u64_at(src->http, http_refusals[i].off));
		}
	}
}
