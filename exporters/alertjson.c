/* Formats alert events as JSON objects for the JSON-lines sink and the control socket's
 * offenders and history. Plain GString appends: no JSON library needed for a fixed schema. */
#include "alertjson.h"

#include "flow.h"

void
json_addr(GString *out, const guint8 a[16])
{
	char buf[64];
	json_quote(out, flow_addr_str(a, buf, sizeof buf));
}

void
suppression_json(GString *out, const PolicySuppression *s, gint64 wall_now_ms, gint partition)
{
	g_string_append(out, "{\"host\":");
	json_addr(out, s->addr);
	g_string_append(out, ",\"reason\":");
	if (s->all)
		g_string_append(out, "null");
	else
		json_quote(out, alert_reason_name(s->reason));
	g_string_append_printf(out, ",\"until_ms\":%" G_GINT64_FORMAT, s->until_ms);
	if (wall_now_ms >= 0)
		g_string_append_printf(out, ",\"remaining_s\":%" G_GINT64_FORMAT,
				       MAX(s->until_ms - wall_now_ms, 0) / 1000);
	g_string_append_printf(out, ",\"set_ms\":%" G_GINT64_FORMAT ",\"uid\":%u,\"note\":",
			       s->set_ms, s->uid);
	json_quote(out, s->note);
	if (partition >= 0)
		g_string_append_printf(out, ",\"partition\":%d", partition);
	g_string_append_c(out, '}');
}

static void
json_double(GString *out, double d)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];
	g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.3f", d));
}

void
alert_json(GString *out, const AlertEvent *ev, AlertExporterName name, gpointer user_data)
{
	g_string_append_printf(out, "{\"time_ms\":%" G_GINT64_FORMAT ",\"event\":\"%s\","
				    "\"reason\":\"%s\",\"severity\":\"%s\",\"host\":",
			       ev->time_ms, alert_kind_name(ev->event),
			       alert_reason_name(ev->reason), alert_severity_name(ev->severity));
	json_addr(out, ev->host);
	g_string_append(out, ",\"peer\":");
	if (ev->has_peer)
		json_addr(out, ev->peer);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"level\":");
	json_double(out, ev->level);
	g_string_append(out, ",\"windows\":[");
	for (guint i = 0; i < WINDOW_SPANS; i++) {
		const AlertWindow *w = &ev->window[i];
		g_string_append_printf(
		    out,
		    "%s{\"span_s\":%" G_GINT64_FORMAT ",\"value\":%u,\"threshold\":%u,"
		    "\"distinct\":%u,\"estimated\":%s,\"flows\":%u,\"attempts\":%u,\"failed\":%u}",
		    i > 0 ? "," : "", w->span_ms / 1000, w->value, w->threshold, w->distinct,
		    w->estimated ? "true" : "false", w->flows, w->attempts, w->failed);
	}
	g_string_append_printf(out, "],\"trigger\":\"%s\",\"flows\":%u,\"attempts\":%u,"
				    "\"failed\":%u,\"succeeded\":%u,\"answered\":%u,\"failed_share\":",
			       ev->trigger == WINDOW_SHORT ? "short" : "long", ev->flows,
			       ev->attempts, ev->failed, ev->succeeded, ev->answered);
	json_double(out, ev->failed_share);
	g_string_append_printf(out, ",\"first_seen_ms\":%" G_GINT64_FORMAT
				    ",\"last_seen_ms\":%" G_GINT64_FORMAT ",\"top\":[",
			       ev->first_seen_ms, ev->last_seen_ms);
	for (guint i = 0; i < ev->n_top && i < ALERT_TOP_MAX; i++) {
		const AlertDest *d = &ev->top[i];
		g_string_append(out, i > 0 ? ",{\"addr\":" : "{\"addr\":");
		json_addr(out, d->addr);
		g_string_append_printf(out, ",\"count\":%u,\"country\":", d->count);
		if (d->country[0] != '\0')
			json_quote(out, d->country);
		else
			g_string_append(out, "null");
		if (d->asn != 0)
			g_string_append_printf(out, ",\"asn\":%u}", d->asn);
		else
			g_string_append(out, ",\"asn\":null}");
	}
	g_string_append(out, "],\"exporters\":[");
	for (guint i = 0; i < ev->n_exporters && i < ALERT_EXPORTERS_MAX; i++) {
		const char *n = name != NULL ? name(ev->exporters[i], user_data) : NULL;
		if (i > 0)
			g_string_append_c(out, ',');
		if (n != NULL)
			json_quote(out, n);
		else
			g_string_append_printf(out, "\"#%u\"", ev->exporters[i]);
	}
	g_string_append_printf(out, "],\"exporters_truncated\":%s,\"sampling\":%u,"
				    "\"lower_bound\":%s,\"raised_ms\":%" G_GINT64_FORMAT
				    ",\"countries\":%u,\"asns\":%u,\"evidence\":",
			       ev->exporters_truncated ? "true" : "false", ev->sampling,
			       ev->lower_bound ? "true" : "false", ev->raised_ms, ev->n_countries,
			       ev->n_asns);
	if (ev->evidence[0] != '\0')
		json_quote(out, ev->evidence);
	else
		g_string_append(out, "null");
	/* issue 14: the windows' estimates under sampling (value and 0 when unsampled) */
	g_string_append_printf(out, ",\"short_estimate\":%u,\"short_estimate_se\":%u,"
				    "\"long_estimate\":%u,\"long_estimate_se\":%u",
			       ev->window[WINDOW_SHORT].estimate, ev->window[WINDOW_SHORT].estimate_se,
			       ev->window[WINDOW_LONG].estimate, ev->window[WINDOW_LONG].estimate_se);
	g_string_append_printf(out, ",\"mta_like\":%s,\"inbound_smtp\":%u,\"dns_external\":%u,"
				    "\"dns_server\":",
			       ev->mta_like ? "true" : "false", ev->inbound_smtp, ev->dns_external);
	if (ev->has_dns_server)
		json_addr(out, ev->dns_server);
	else
		g_string_append(out, "null");
	g_string_append_printf(out, ",\"dns_corroborated\":%s",
			       ev->dns_corroborated ? "true" : "false");
	g_autofree char *group = g_strndup(ev->group, sizeof ev->group);
	g_string_append(out, ",\"group\":");
	json_quote(out, group);
	g_string_append_c(out, '}');
}
