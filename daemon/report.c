/* Renders the collector's counters: a text table (one row per exporter session) for people,
 * one JSON document for scripts, and the live daemon's periodic log lines. Every counter
 * struct is described by a field table below, so a counter added to a struct is exported by
 * adding one row, in every output at once. */
#include "report.h"

#include "alertjson.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

typedef enum { F_U64, F_U32, F_I64, F_U8, F_BOOL, F_VERSION } FieldKind;

typedef struct {
	const char *name;
	gsize off;
	FieldKind kind;
} Field;

/* clang-format off */
#define SS(f, k) {#f, offsetof(SessionStats, f), k}
#define CT(f) {#f, offsetof(CollectorTotals, f), F_U64}
#define RS(f) {#f, offsetof(ReplayStats, f), F_U64}
#define LS(f) {#f, offsetof(ListenerStats, f), F_U64}
#define AS(f) {#f, offsetof(AnalyzerStats, f), F_U64}
#define AE(name, i) {name, offsetof(AnalyzerStats, events) + (i) * sizeof(guint64), F_U64}
#define SK(f) {#f, offsetof(SinkStats, f), F_U64}
/* clang-format on */
/* SessionStats by name, malformed[] apart (an object keyed by malformed_name()). */
static const Field session_fields[] = {
    SS(version, F_VERSION),
    SS(datagrams, F_U64),
    SS(bytes, F_U64),
    SS(records, F_U64),
    SS(options_records, F_U64),
    SS(template_records, F_U64),
    SS(no_template_sets, F_U64),
    SS(no_template_bytes, F_U64),
    SS(templates_refused, F_U64),
    SS(templates_withdrawn, F_U64),
    SS(templates_expired, F_U64),
    SS(seq_lost, F_U64),
    SS(seq_resets, F_U64),
    SS(sets_skipped, F_U64),
    SS(times_dropped, F_U64),
    SS(ambiguous_addr, F_U64),
    SS(samples_lost, F_U64),
    SS(sample_drops, F_U64),
    SS(counter_samples, F_U64),
    SS(samples_not_ip, F_U64),
    SS(templates_active, F_U32),
    SS(sampling, F_U32),
    SS(first_seen_ms, F_I64),
    SS(last_seen_ms, F_I64),
    SS(seq_init, F_BOOL),
};

static const Field totals_fields[] = {
    CT(datagrams),	   CT(bytes),		CT(records), CT(bad_version), CT(exporters_denied), CT(exporters_refused),
    CT(exporters_expired), CT(domains_refused), CT(domains_expired), CT(templates_over_memory),
    CT(template_bytes), CT(sflow_no_agent), CT(sflow_sources), CT(sflow_sources_refused),
    CT(denied_sources), CT(denied_untracked),
};

static const Field replay_fields[] = {
    RS(packets),   RS(datagrams), RS(not_ip),	   RS(non_udp),
    RS(fragments), RS(truncated), RS(bad_headers), RS(read_errors),
};

static const Field listener_fields[] = {
    LS(datagrams), LS(bytes), LS(recv_errors), LS(kernel_drops), LS(truncated), LS(batches),
};

static const Field analyzer_fields[] = {
    AS(flows_seen),     AS(flows_relevant),   AS(flows_late),	AS(window_resets),
    AS(hosts_tracked),  AS(hosts_created),    AS(hosts_evicted),	AS(hosts_expired),
    AS(hosts_estimated), AS(estimate_switches), AS(signs_inbound_smtp),
    AS(signs_dns_external), AS(signs_untracked), AS(answers_untracked),
    AS(offenders_active),
    AE("events_raised", ALERT_RAISED), AE("events_updated", ALERT_UPDATED),
    AE("events_cleared", ALERT_CLEARED), AS(mem_bytes), AS(mem_cap),
    AS(state_hosts_restored), AS(state_offenders_restored), AS(state_hosts_dropped),
    AS(state_windows_dropped), AS(state_baselines_dropped), AS(state_hosts_evicted),
    AS(suppressions), AS(suppressions_set), AS(suppressions_refused), AS(suppressions_expired),
    AS(novelty_bytes), AS(novelty_capacity), AS(novelty_pairs), AS(novelty_lookups),
    AS(novelty_new), AS(novelty_rotations), AS(novelty_early_rotations),
    AS(novelty_generation_ms), AS(state_novelty_dropped), AS(flows_outside),
    AS(fw_domains_teardown), AS(fw_teardowns), AS(fw_teardowns_failed),
    AS(fw_creates_skipped), AS(fw_domains_refused),
};

static const Field sink_fields[] = {SK(events), SK(errors), SK(dropped), SK(reopens)};

static void
append_field(GString *out, const void *base, const Field *f, gboolean json)
{
	const guint8 *p = (const guint8 *)base + f->off;

	switch (f->kind) {
	case F_U64:
		g_string_append_printf(out, "%" G_GUINT64_FORMAT, *(const guint64 *)p);
		break;
	case F_U32:
		g_string_append_printf(out, "%u", *(const guint32 *)p);
		break;
	case F_I64:
		g_string_append_printf(out, "%" G_GINT64_FORMAT, *(const gint64 *)p);
		break;
	case F_U8:
		g_string_append_printf(out, "%u", *p);
		break;
	case F_BOOL:
		g_string_append(out, *(const gboolean *)p ? "true" : "false");
		break;
	case F_VERSION: /* 5, 9, 10, or sflow5: a number unless it is sFlow */
		if (*p == FLOW_VERSION_SFLOW5)
			g_string_append_printf(out, json ? "\"%s\"" : "%s", flow_version_name(*p));
		else
			g_string_append_printf(out, "%u", *p);
		break;
	}
}

/* "name=value name=value" */
static void
append_kv(GString *out, const void *base, const Field *fields, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		g_string_append_printf(out, "%s%s=", i > 0 ? " " : "", fields[i].name);
		append_field(out, base, &fields[i], FALSE);
	}
}

/* "\"name\":value,..." without braces */
static void
append_json_fields(GString *out, const void *base, const Field *fields, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		report_json_string(out, fields[i].name);
		g_string_append_c(out, ':');
		append_field(out, base, &fields[i], TRUE);
	}
}

void
report_json_string(GString *out, const char *s)
{
	json_quote(out, s);
}

char *
report_exporter(const SessionView *v)
{
	char buf[INET6_ADDRSTRLEN];

	if (v->agent)
		return g_strdup(flow_addr_str(v->addr, buf, sizeof buf));
	return report_endpoint(v->addr, v->port);
}

char *
report_endpoint(const guint8 addr[16], guint16 port)
{
	char buf[INET6_ADDRSTRLEN];

	flow_addr_str(addr, buf, sizeof buf);
	if (flow_addr_is_v4(addr))
		return g_strdup_printf("%s:%u", buf, port);
	return g_strdup_printf("[%s]:%u", buf, port);
}

char *
report_time(gint64 ms)
{
	if (ms == 0)
		return g_strdup("-");
	gint64 sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(sec);
	if (dt == NULL)
		return g_strdup_printf("%" G_GINT64_FORMAT, ms);
	g_autofree char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
	return g_strdup_printf("%s.%03dZ", s, (int)(ms - sec * 1000));
}

static guint64
malformed_sum(const SessionStats *st)
{
	guint64 n = 0;
	for (guint m = 0; m < MAL_N; m++)
		n += st->malformed[m];
	return n;
}

/* ---- text table ---- */

enum {
	COL_EXPORTER,
	COL_DOMAIN,
	COL_VERSION,
	COL_DATAGRAMS,
	COL_RECORDS,
	COL_TEMPLATES,
	COL_NO_TEMPLATE,
	COL_MALFORMED,
	COL_SEQ_LOST,
	COL_SEQ_RESETS,
	COL_TIMES_DROPPED,
	COL_SAMPLING,
	COL_FIRST,
	COL_LAST,
	COL_REASONS,
	COL_N
};

static const char *const col_names[COL_N] = {
    "exporter",	    "domain",
    "ver",	    "datagrams",
    "records",	    "templates",
    "no_tmpl_sets", "malformed",
    "seq_lost",	    "seq_resets",
    "times_dropped", "sampling",
    "first_seen",   "last_seen",
    "details",
};
/* Numbers are right-aligned. */
static const gboolean col_right[COL_N] = {
    FALSE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, TRUE, FALSE, FALSE, FALSE,
};

/* Counters the table has no column for, named in its details column when not zero. */
static const Field detail_fields[] = {
    SS(ambiguous_addr, F_U64),	SS(samples_lost, F_U64),   SS(sample_drops, F_U64),
    SS(counter_samples, F_U64), SS(samples_not_ip, F_U64),
};

static char *
u64s(guint64 v)
{
	return g_strdup_printf("%" G_GUINT64_FORMAT, v);
}

static void
add_row(const SessionView *v, gpointer user_data)
{
	GPtrArray *rows = user_data;
	const SessionStats *st = v->stats;
	char **row = g_new0(char *, COL_N + 1);

	row[COL_EXPORTER] = report_exporter(v);
	row[COL_DOMAIN] = v->has_domain ? g_strdup_printf("%u", v->domain) : g_strdup("-");
	row[COL_VERSION] = g_strdup(flow_version_name(st->version));
	row[COL_DATAGRAMS] = u64s(st->datagrams);
	row[COL_RECORDS] = u64s(st->records);
	row[COL_TEMPLATES] = g_strdup_printf("%u", st->templates_active);
	row[COL_NO_TEMPLATE] = u64s(st->no_template_sets);
	row[COL_MALFORMED] = u64s(malformed_sum(st));
	row[COL_SEQ_LOST] = u64s(st->seq_lost);
	row[COL_SEQ_RESETS] = u64s(st->seq_resets);
	row[COL_TIMES_DROPPED] = u64s(st->times_dropped);
	row[COL_SAMPLING] = g_strdup_printf("%u", st->sampling);
	row[COL_FIRST] = report_time(st->first_seen_ms);
	row[COL_LAST] = report_time(st->last_seen_ms);
	GString *why = g_string_new(NULL);
	for (guint m = 0; m < MAL_N; m++)
		if (st->malformed[m] != 0)
			g_string_append_printf(why, "%s%s=%" G_GUINT64_FORMAT,
					       why->len > 0 ? "," : "", malformed_name(m),
					       st->malformed[m]);
	for (guint i = 0; i < G_N_ELEMENTS(detail_fields); i++) {
		guint64 n = *(const guint64 *)((const guint8 *)st + detail_fields[i].off);
		if (n != 0)
			g_string_append_printf(why, "%s%s=%" G_GUINT64_FORMAT, why->len > 0 ? "," : "",
					       detail_fields[i].name, n);
	}
	row[COL_REASONS] = g_string_free(why, FALSE);
	g_ptr_array_add(rows, row);
}

static void
add_text_denied(const DeniedView *v, gpointer user_data)
{
	GString *out = user_data;
	char buf[INET6_ADDRSTRLEN];
	g_autofree char *last = report_time(v->last_seen_ms);

	g_string_append_printf(out,
			       "refused (not in allowed_exporters): %s datagrams=%" G_GUINT64_FORMAT
			       " last_seen=%s\n",
			       flow_addr_str(v->addr, buf, sizeof buf), v->datagrams, last);
}

void
report_text(GString *out, const Collector *c, const ReportExtra *x)
{
	static const ReportExtra none = {0};
	if (x == NULL)
		x = &none;
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	gsize width[COL_N];

	char **head = g_new0(char *, COL_N + 1);
	for (guint j = 0; j < COL_N; j++)
		head[j] = g_strdup(col_names[j]);
	g_ptr_array_add(rows, head);
	collector_foreach_session(c, add_row, rows);
	for (guint j = 0; j < COL_N; j++) {
		width[j] = 0;
		for (guint i = 0; i < rows->len; i++)
			width[j] = MAX(width[j], strlen(((char **)rows->pdata[i])[j]));
	}
	for (guint i = 0; i < rows->len; i++) {
		char **row = rows->pdata[i];
		gsize start = out->len;
		for (guint j = 0; j < COL_N; j++) {
			int w = (int)width[j];
			if (j > 0)
				g_string_append(out, "  ");
			g_string_append_printf(out, col_right[j] ? "%*s" : "%-*s", w, row[j]);
		}
		/* no trailing blanks */
		while (out->len > start && out->str[out->len - 1] == ' ')
			g_string_truncate(out, out->len - 1);
		g_string_append_c(out, '\n');
	}
	if (rows->len == 1)
		g_string_append(out, "(no exporters)\n");
	collector_foreach_denied(c, add_text_denied, out);
	g_string_append(out, "totals: ");
	append_kv(out, collector_totals(c), totals_fields, G_N_ELEMENTS(totals_fields));
	g_string_append_c(out, '\n');
	if (x->replay != NULL) {
		g_string_append(out, "replay: ");
		append_kv(out, x->replay, replay_fields, G_N_ELEMENTS(replay_fields));
		g_string_append_c(out, '\n');
	}
	if (x->listener != NULL) {
		g_string_append(out, "listener: ");
		append_kv(out, x->listener, listener_fields, G_N_ELEMENTS(listener_fields));
		g_string_append_c(out, '\n');
	}
	if (x->analyzer != NULL) {
		g_string_append(out, "analyzer: ");
		append_kv(out, x->analyzer, analyzer_fields, G_N_ELEMENTS(analyzer_fields));
		g_string_append_c(out, '\n');
	}
	if (x->module_stats != NULL) {
		/* ,"name":{"a":1,"b":2} -> "name: a=1 b=2" lines */
		g_autoptr(GString) j = g_string_new(NULL);
		x->module_stats(x->module_data, j);
		for (const char *p = j->str; *p != '\0'; p++) {
			if (*p == '"' || *p == '{')
				continue;
			if (*p == '}') {
				g_string_append_c(out, '\n');
				if (p[1] == ',')
					p++;
				continue;
			}
			if (*p == ',' && (p == j->str))
				continue;
			if (*p == ':')
				g_string_append(out, p[1] == '{' ? ": " : "=");
			else if (*p == ',')
				g_string_append_c(out, ' ');
			else
				g_string_append_c(out, *p);
		}
	}
	for (guint i = 0; x->sinks != NULL && i < sink_set_len(x->sinks); i++) {
		const Sink *sk = sink_set_get(x->sinks, i);
		g_string_append_printf(out, "sink %s %s: ", sk->ops->kind, sk->name);
		append_kv(out, &sk->st, sink_fields, G_N_ELEMENTS(sink_fields));
		g_string_append_c(out, '\n');
	}
	/* actions: their own counters matter most (timeouts, retries, refusals) */
	for (guint i = 0; x->actions != NULL && i < sink_set_len(x->actions); i++) {
		const Sink *sk = sink_set_get(x->actions, i);
		g_string_append_printf(out, "action %s %s: ", sk->ops->kind, sk->name);
		append_kv(out, &sk->st, sink_fields, G_N_ELEMENTS(sink_fields));
		if (sk->ops->stats_json != NULL) {
			g_autoptr(GString) j = g_string_new(NULL);
			sk->ops->stats_json(sk, j);
			gboolean in_str = FALSE;
			g_string_append_c(out, ' ');
			for (const char *p = j->str + (j->str[0] == ','); *p != '\0'; p++) {
				if (*p == '"')
					in_str = !in_str;
				else if (!in_str && *p == ':')
					g_string_append_c(out, '=');
				else if (!in_str && *p == ',')
					g_string_append_c(out, ' ');
				else
					g_string_append_c(out, *p);
			}
		}
		g_string_append_c(out, '\n');
	}
}

/* ---- JSON ---- */

typedef struct {
	GString *out;
	guint n;
} JsonRows;

static void
add_json_row(const SessionView *v, gpointer user_data)
{
	JsonRows *j = user_data;
	GString *out = j->out;
	char buf[INET6_ADDRSTRLEN];

	g_string_append(out, j->n++ > 0 ? ",{" : "{");
	g_string_append_printf(out, "\"index\":%u,\"addr\":", v->index);
	report_json_string(out, flow_addr_str(v->addr, buf, sizeof buf));
	if (v->agent)
		g_string_append(out, ",\"port\":null,\"domain\":");
	else
		g_string_append_printf(out, ",\"port\":%u,\"domain\":", v->port);
	if (v->has_domain)
		g_string_append_printf(out, "%u,", v->domain);
	else
		g_string_append(out, "null,");
	append_json_fields(out, v->stats, session_fields, G_N_ELEMENTS(session_fields));
	g_string_append_printf(out, ",\"malformed_total\":%" G_GUINT64_FORMAT ",\"malformed\":{",
			       malformed_sum(v->stats));
	for (guint m = 0; m < MAL_N; m++) {
		if (m > 0)
			g_string_append_c(out, ',');
		report_json_string(out, malformed_name(m));
		g_string_append_printf(out, ":%" G_GUINT64_FORMAT, v->stats->malformed[m]);
	}
	g_string_append(out, "}}");
}

/* A source the allowlist refused: {"addr","port","datagrams","bytes","first_seen_ms",
 * "last_seen_ms"} */
static void
add_json_denied(const DeniedView *v, gpointer user_data)
{
	JsonRows *j = user_data;
	char buf[INET6_ADDRSTRLEN];

	g_string_append(j->out, j->n++ > 0 ? ",{\"addr\":" : "{\"addr\":");
	report_json_string(j->out, flow_addr_str(v->addr, buf, sizeof buf));
	g_string_append_printf(j->out,
			       ",\"port\":%u,\"datagrams\":%" G_GUINT64_FORMAT
			       ",\"bytes\":%" G_GUINT64_FORMAT ",\"first_seen_ms\":%" G_GINT64_FORMAT
			       ",\"last_seen_ms\":%" G_GINT64_FORMAT "}",
			       v->port, v->datagrams, v->bytes, v->first_seen_ms, v->last_seen_ms);
}

static void append_sinks_json(GString *out, const char *name, const SinkSet *set);

void
report_json(GString *out, const Collector *c, const ReportExtra *x)
{
	static const ReportExtra none = {0};
	JsonRows j = {out, 0};

	if (x == NULL)
		x = &none;
	g_string_append(out, "{\"exporters\":[");
	collector_foreach_session(c, add_json_row, &j);
	g_string_append(out, "],\"denied\":[");
	j.n = 0;
	collector_foreach_denied(c, add_json_denied, &j);
	g_string_append(out, "],\"totals\":{");
	append_json_fields(out, collector_totals(c), totals_fields, G_N_ELEMENTS(totals_fields));
	g_string_append_c(out, '}');
	if (x->replay != NULL) {
		g_string_append(out, ",\"replay\":{");
		append_json_fields(out, x->replay, replay_fields, G_N_ELEMENTS(replay_fields));
		g_string_append_c(out, '}');
	}
	if (x->listener != NULL) {
		g_string_append(out, ",\"listener\":{");
		append_json_fields(out, x->listener, listener_fields, G_N_ELEMENTS(listener_fields));
		g_string_append_c(out, '}');
	}
	if (x->analyzer != NULL) {
		g_string_append(out, ",\"analyzer\":{");
		append_json_fields(out, x->analyzer, analyzer_fields, G_N_ELEMENTS(analyzer_fields));
		g_string_append_c(out, '}');
	}
	if (x->module_stats != NULL)
		x->module_stats(x->module_data, out);
	if (x->sinks != NULL)
		append_sinks_json(out, "sinks", x->sinks);
	if (x->actions != NULL)
		append_sinks_json(out, "actions", x->actions);
	g_string_append(out, "}\n");
}

/* ,"name":[{"kind":..,"name":..,counters..,own counters..},...] */
static void
append_sinks_json(GString *out, const char *name, const SinkSet *set)
{
	{
		g_string_append_printf(out, ",\"%s\":[", name);
		for (guint i = 0; i < sink_set_len(set); i++) {
			const Sink *sk = sink_set_get(set, i);
			g_string_append(out, i > 0 ? ",{\"kind\":" : "{\"kind\":");
			report_json_string(out, sk->ops->kind);
			g_string_append(out, ",\"name\":");
			report_json_string(out, sk->name);
			g_string_append_c(out, ',');
			append_json_fields(out, &sk->st, sink_fields, G_N_ELEMENTS(sink_fields));
			if (sk->ops->stats_json != NULL) {
				g_string_append_c(out, ',');
				sk->ops->stats_json(sk, out);
			}
			g_string_append_c(out, '}');
		}
		g_string_append_c(out, ']');
	}
}

/* ---- live log lines ---- */

static void
log_row(const SessionView *v, gpointer user_data)
{
	const SessionStats *st = v->stats;
	g_autofree char *ep = report_exporter(v);
	g_autofree char *dom = v->has_domain ? g_strdup_printf("%u", v->domain) : g_strdup("-");

	(void)user_data;
	g_message(
	    "exporter %s domain %s %s%s: datagrams=%" G_GUINT64_FORMAT " records=%" G_GUINT64_FORMAT
	    " templates=%u no_template_sets=%" G_GUINT64_FORMAT " malformed=%" G_GUINT64_FORMAT
	    " seq_lost=%" G_GUINT64_FORMAT " seq_resets=%" G_GUINT64_FORMAT
	    " times_dropped=%" G_GUINT64_FORMAT " sampling=%u",
	    ep, dom, st->version == FLOW_VERSION_SFLOW5 ? "" : "v", flow_version_name(st->version),
	    st->datagrams, st->records,
	    st->templates_active, st->no_template_sets, malformed_sum(st), st->seq_lost,
	    st->seq_resets, st->times_dropped, st->sampling);
}

void
report_log(const Collector *c, const ListenerStats *listener)
{
	g_autoptr(GString) s = g_string_new("stats: ");

	append_kv(s, collector_totals(c), totals_fields, G_N_ELEMENTS(totals_fields));
	if (listener != NULL) {
		g_string_append(s, " | listener: ");
		append_kv(s, listener, listener_fields, G_N_ELEMENTS(listener_fields));
	}
	g_message("%s", s->str);
	collector_foreach_session(c, log_row, NULL);
}
