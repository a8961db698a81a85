/* Flattens an AlertEvent into the documented column list (alertfields.h) for the text
 * sinks: CSV, the local syslog key=value line and RFC 5424 structured data. The order here
 * is the JSON order of alertjson.c; a test compares the two field by field. */
#include "alertfields.h"

#include "flow.h"

G_STATIC_ASSERT(WINDOW_SPANS == 2); /* short_* and long_* columns */

const char *const alert_field_names[ALERT_FIELDS_N] = {
    "time_ms",
    "event",
    "reason",
    "severity",
    "host",
    "peer",
    "level",
    "short_span_s",
    "short_value",
    "short_threshold",
    "short_distinct",
    "short_estimated",
    "short_flows",
    "short_attempts",
    "short_failed",
    "long_span_s",
    "long_value",
    "long_threshold",
    "long_distinct",
    "long_estimated",
    "long_flows",
    "long_attempts",
    "long_failed",
    "trigger",
    "flows",
    "attempts",
    "failed",
    "succeeded",
    "answered",
    "failed_share",
    "first_seen_ms",
    "last_seen_ms",
    "top",
    "exporters",
    "exporters_truncated",
    "sampling",
    "lower_bound",
    "raised_ms",
    "countries",
    "asns",
    "evidence",
    "short_estimate",
    "short_estimate_se",
    "long_estimate",
    "long_estimate_se",
    "mta_like",
    "inbound_smtp",
    "dns_external",
    "dns_server",
    "dns_corroborated",
    "group",
};

typedef struct {
	AlertFieldFunc fn;
	gpointer user_data;
	guint index;
} Walk;

static void
emit(Walk *w, const char *value)
{
	w->fn(w->index, alert_field_names[w->index], value, w->user_data);
	w->index++;
}

static void
emit_u64(Walk *w, guint64 v)
{
	char buf[24];
	g_snprintf(buf, sizeof buf, "%" G_GUINT64_FORMAT, v);
	emit(w, buf);
}

static void
emit_i64(Walk *w, gint64 v)
{
	char buf[24];
	g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, v);
	emit(w, buf);
}

/* The same rounding as the JSON ("%.3f", C locale). */
static void
emit_double(Walk *w, double d)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];
	emit(w, g_ascii_formatd(buf, sizeof buf, "%.3f", d));
}

static void
emit_bool(Walk *w, gboolean b)
{
	emit(w, b ? "true" : "false");
}

static void
emit_addr(Walk *w, const guint8 a[16])
{
	char buf[64];
	emit(w, flow_addr_str(a, buf, sizeof buf));
}

void
alert_fields(const AlertEvent *ev, AlertExporterName exporter_name, gpointer name_data,
	     AlertFieldFunc fn, gpointer user_data)
{
	g_autoptr(GString) list = g_string_sized_new(512);
	Walk w = {fn, user_data, 0};
	char buf[64];

	emit_i64(&w, ev->time_ms);
	emit(&w, alert_kind_name(ev->event));
	emit(&w, alert_reason_name(ev->reason));
	emit(&w, alert_severity_name(ev->severity));
	emit_addr(&w, ev->host);
	if (ev->has_peer)
		emit_addr(&w, ev->peer);
	else
		emit(&w, NULL);
	emit_double(&w, ev->level);
	for (guint i = 0; i < WINDOW_SPANS; i++) {
		const AlertWindow *win = &ev->window[i];
		emit_i64(&w, win->span_ms / 1000);
		emit_u64(&w, win->value);
		emit_u64(&w, win->threshold);
		emit_u64(&w, win->distinct);
		emit_bool(&w, win->estimated);
		emit_u64(&w, win->flows);
		emit_u64(&w, win->attempts);
		emit_u64(&w, win->failed);
	}
	emit(&w, ev->trigger == WINDOW_SHORT ? "short" : "long");
	emit_u64(&w, ev->flows);
	emit_u64(&w, ev->attempts);
	emit_u64(&w, ev->failed);
	emit_u64(&w, ev->succeeded);
	emit_u64(&w, ev->answered);
	emit_double(&w, ev->failed_share);
	emit_i64(&w, ev->first_seen_ms);
	emit_i64(&w, ev->last_seen_ms);

	for (guint i = 0; i < ev->n_top && i < ALERT_TOP_MAX; i++) {
		const AlertDest *d = &ev->top[i];
		if (i > 0)
			g_string_append_c(list, ALERT_FIELD_LIST_SEP);
		g_string_append_printf(list, "%s%c%u%c", flow_addr_str(d->addr, buf, sizeof buf),
				       ALERT_FIELD_PART_SEP, d->count, ALERT_FIELD_PART_SEP);
		/* the country is two letters from the database: keep only safe characters */
		for (const char *c = d->country; *c != '\0' && c < d->country + sizeof d->country;
		     c++)
			if (g_ascii_isalnum(*c))
				g_string_append_c(list, *c);
		g_string_append_c(list, ALERT_FIELD_PART_SEP);
		if (d->asn != 0)
			g_string_append_printf(list, "%u", d->asn);
	}
	emit(&w, list->str);

	g_string_truncate(list, 0);
	for (guint i = 0; i < ev->n_exporters && i < ALERT_EXPORTERS_MAX; i++) {
		const char *n =
		    exporter_name != NULL ? exporter_name(ev->exporters[i], name_data) : NULL;
		if (i > 0)
			g_string_append_c(list, ALERT_FIELD_LIST_SEP);
		if (n != NULL)
			g_string_append(list, n);
		else
			g_string_append_printf(list, "#%u", ev->exporters[i]);
	}
	emit(&w, list->str);

	emit_bool(&w, ev->exporters_truncated);
	emit_u64(&w, ev->sampling);
	emit_bool(&w, ev->lower_bound);
	emit_i64(&w, ev->raised_ms);
	emit_u64(&w, ev->n_countries);
	emit_u64(&w, ev->n_asns);
	if (ev->evidence[0] != '\0') {
		g_autofree char *e = g_strndup(ev->evidence, sizeof ev->evidence);
		emit(&w, e);
	} else {
		emit(&w, NULL);
	}
	for (guint i = 0; i < WINDOW_SPANS; i++) {
		emit_u64(&w, ev->window[i].estimate);
		emit_u64(&w, ev->window[i].estimate_se);
	}
	emit_bool(&w, ev->mta_like);
	emit_u64(&w, ev->inbound_smtp);
	emit_u64(&w, ev->dns_external);
	if (ev->has_dns_server)
		emit_addr(&w, ev->dns_server);
	else
		emit(&w, NULL);
	emit_bool(&w, ev->dns_corroborated);
	{
		/* the host's [group NAME] (names are [A-Za-z0-9_.-]); none: NULL, which the CSV
		 * prints empty like the JSON's "" and the key=value forms leave out */
		g_autofree char *g = g_strndup(ev->group, sizeof ev->group);
		emit(&w, g[0] != '\0' ? g : NULL);
	}
	g_assert(w.index == ALERT_FIELDS_N);
}
