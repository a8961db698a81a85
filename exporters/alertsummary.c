/* The alert summary line (alertsummary.h). */
#include "alertsummary.h"

#include "flow.h"

/* The side signs of an alert for its log line: " inbound_smtp=N dns_external=N dns_server=A
 * (dns corroborates: severity raised one step) (looks like a mail server: ...)", each part
 * only when there is something to say; "" for none. */
static char *
alert_signs_text(const AlertEvent *ev)
{
	GString *s = g_string_new(NULL);
	char buf[64];

	if (ev->inbound_smtp > 0)
		g_string_append_printf(s, " inbound_smtp=%u", ev->inbound_smtp);
	if (ev->dns_external > 0) {
		g_string_append_printf(s, " dns_external=%u", ev->dns_external);
		if (ev->has_dns_server)
			g_string_append_printf(s, " dns_server=%s",
					       flow_addr_str(ev->dns_server, buf, sizeof buf));
	}
	if (ev->dns_corroborated)
		g_string_append(s, " (external DNS corroborates: severity raised one step)");
	if (ev->mta_like)
		g_string_append(s, " (" ALERT_MTA_HINT ")");
	return g_string_free(s, FALSE);
}

/* A window's span as "3h", "90min" or "45s". */
static char *
span_text(gint64 ms)
{
	if (ms > 0 && ms % 3600000 == 0)
		return g_strdup_printf("%" G_GINT64_FORMAT "h", ms / 3600000);
	if (ms > 0 && ms % 60000 == 0)
		return g_strdup_printf("%" G_GINT64_FORMAT "min", ms / 60000);
	return g_strdup_printf("%" G_GINT64_FORMAT "s", ms / 1000);
}

char *
alert_summary(const AlertEvent *ev)
{
	char host[64], peer[64];
	const AlertWindow *sw = &ev->window[WINDOW_SHORT], *lw = &ev->window[WINDOW_LONG];

	flow_addr_str(ev->host, host, sizeof host);
	g_autofree char *geo = ev->n_countries > 0 || ev->n_asns > 0
				   ? g_strdup_printf(" countries=%u asns=%u", ev->n_countries,
						     ev->n_asns)
				   : g_strdup("");
	g_autofree char *signs = alert_signs_text(ev);
	/* smtp-novelty: its first window is the new destinations in hours, the second context
	 * over its own (shorter) span: "new=60/60 in 3h distinct=40 in 1h" */
	g_autofree char *nspan = span_text(sw->span_ms), *lspan = span_text(lw->span_ms);
	g_autofree char *counts =
	    ev->reason == REASON_SMTP_NOVELTY
		? g_strdup_printf("new=%u/%u in %s distinct=%u%s in %s", sw->value, sw->threshold,
				  nspan, lw->distinct, lw->estimated ? "~" : "", lspan)
		: g_strdup_printf("short=%u/%u%s long=%u/%u%s", sw->value, sw->threshold,
				  sw->estimated ? "~" : "", lw->value, lw->threshold,
				  lw->estimated ? "~" : "");
	/* sampled: the counts are what was sampled; say what they estimate */
	g_autofree char *sampled =
	    ev->lower_bound
		? g_strdup_printf(" (sampled 1:%u: estimated %s %u+-%u, %s %u+-%u)", ev->sampling,
				  ev->reason == REASON_SMTP_NOVELTY ? "new" : "short", sw->estimate,
				  sw->estimate_se, ev->reason == REASON_SMTP_NOVELTY ? "distinct" : "long",
				  lw->estimate, lw->estimate_se)
		: g_strdup("");
	return g_strdup_printf(
	    "%s %s host=%s%s%s severity=%s %s attempts=%u failed=%.0f%%%s%s%s%s%s",
	    alert_kind_name(ev->event), alert_reason_name(ev->reason), host,
	    ev->has_peer ? " target=" : "",
	    ev->has_peer ? flow_addr_str(ev->peer, peer, sizeof peer) : "",
	    alert_severity_name(ev->severity), counts, ev->attempts, ev->failed_share * 100, geo,
	    signs, ev->evidence[0] != '\0' ? " evidence=" : "", ev->evidence, sampled);
}
