/* The AlertEvent's binary form (alert_codec.h), shared by the analyzer's state file and the
 * cluster's alert messages: one writer and one checked reader, so the two never drift apart
 * and a value the state loader refuses is refused on the wire too. */
#include "alert_codec.h"

#include "statebuf.h"

void
alert_codec_put(GByteArray *out, const AlertEvent *ev)
{
	statebuf_put_i64(out, ev->time_ms);
	statebuf_put_u8(out, (guint8)ev->event);
	statebuf_put_u8(out, (guint8)ev->reason);
	statebuf_put_u8(out, (guint8)ev->severity);
	statebuf_put_bytes(out, ev->host, 16);
	statebuf_put_bytes(out, ev->peer, 16);
	statebuf_put_u8(out, ev->has_peer != 0);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		const AlertWindow *w = &ev->window[k];
		statebuf_put_i64(out, w->span_ms);
		statebuf_put_u32(out, w->value);
		statebuf_put_u32(out, w->threshold);
		statebuf_put_u32(out, w->distinct);
		statebuf_put_u8(out, w->estimated != 0);
		statebuf_put_u32(out, w->flows);
		statebuf_put_u32(out, w->attempts);
		statebuf_put_u32(out, w->failed);
	}
	statebuf_put_u8(out, (guint8)ev->trigger);
	statebuf_put_f64(out, ev->level);
	statebuf_put_u32(out, ev->flows);
	statebuf_put_u32(out, ev->attempts);
	statebuf_put_u32(out, ev->failed);
	statebuf_put_u32(out, ev->succeeded);
	statebuf_put_u32(out, ev->answered);
	statebuf_put_f64(out, ev->failed_share);
	statebuf_put_i64(out, ev->first_seen_ms);
	statebuf_put_i64(out, ev->last_seen_ms);
	statebuf_put_u8(out, (guint8)MIN(ev->n_top, ALERT_TOP_MAX));
	for (guint i = 0; i < MIN(ev->n_top, ALERT_TOP_MAX); i++) {
		statebuf_put_bytes(out, ev->top[i].addr, 16);
		statebuf_put_u32(out, ev->top[i].count);
		statebuf_put_u32(out, ev->top[i].asn);
		statebuf_put_bytes(out, ev->top[i].country, 2);
	}
	statebuf_put_u8(out, (guint8)MIN(ev->n_exporters, ALERT_EXPORTERS_MAX));
	for (guint i = 0; i < MIN(ev->n_exporters, ALERT_EXPORTERS_MAX); i++)
		statebuf_put_u32(out, ev->exporters[i]);
	statebuf_put_u8(out, ev->exporters_truncated != 0);
	statebuf_put_u32(out, ev->sampling);
	statebuf_put_u8(out, ev->lower_bound != 0);
	statebuf_put_i64(out, ev->raised_ms);
	statebuf_put_u32(out, ev->n_countries);
	statebuf_put_u32(out, ev->n_asns);
	gsize elen = strnlen(ev->evidence, sizeof ev->evidence - 1);
	statebuf_put_u8(out, (guint8)elen);
	statebuf_put_bytes(out, ev->evidence, elen);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		statebuf_put_u32(out, ev->window[k].estimate);
		statebuf_put_u32(out, ev->window[k].estimate_se);
	}
	statebuf_put_u8(out, ev->mta_like != 0);
	statebuf_put_u32(out, ev->inbound_smtp);
	statebuf_put_u32(out, ev->dns_external);
	statebuf_put_u8(out, ev->has_dns_server != 0);
	statebuf_put_bytes(out, ev->dns_server, 16);
	statebuf_put_u8(out, ev->dns_corroborated != 0);
	gsize glen = strnlen(ev->group, sizeof ev->group - 1);
	statebuf_put_u8(out, (guint8)glen);
	statebuf_put_bytes(out, ev->group, glen);
}

gboolean
alert_codec_get(Cursor *c, guint version, AlertEvent *ev)
{
	guint8 kind, reason, sev, trigger, n, elen; /* elen < sizeof ev->evidence: a u8 */
	G_STATIC_ASSERT(sizeof ev->evidence > G_MAXUINT8);

	memset(ev, 0, sizeof *ev);
	if (!statebuf_get_time(c, &ev->time_ms) || !cursor_u8(c, &kind) || !cursor_u8(c, &reason) ||
	    !cursor_u8(c, &sev) || !cursor_bytes(c, ev->host, 16) ||
	    !cursor_bytes(c, ev->peer, 16) || !statebuf_get_bool(c, &ev->has_peer))
		return FALSE;
	if (kind >= ALERT_KIND_COUNT || reason >= REASON_COUNT || sev > ALERT_SEV_CRITICAL)
		return FALSE;
	ev->event = (AlertKind)kind;
	ev->reason = (AlertReason)reason;
	ev->severity = (AlertSeverity)sev;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		AlertWindow *w = &ev->window[k];
		if (!statebuf_get_time(c, &w->span_ms) || !cursor_u32(c, &w->value) ||
		    !cursor_u32(c, &w->threshold) || !cursor_u32(c, &w->distinct) ||
		    !statebuf_get_bool(c, &w->estimated) || !cursor_u32(c, &w->flows) ||
		    !cursor_u32(c, &w->attempts) || !cursor_u32(c, &w->failed))
			return FALSE;
	}
	if (!cursor_u8(c, &trigger) || trigger >= WINDOW_SPANS ||
	    !statebuf_get_f64(c, 0.0, G_MAXDOUBLE, &ev->level) || !cursor_u32(c, &ev->flows) ||
	    !cursor_u32(c, &ev->attempts) || !cursor_u32(c, &ev->failed) ||
	    !cursor_u32(c, &ev->succeeded) || !cursor_u32(c, &ev->answered) ||
	    !statebuf_get_f64(c, 0.0, 1.0, &ev->failed_share) ||
	    !statebuf_get_time(c, &ev->first_seen_ms) || !statebuf_get_time(c, &ev->last_seen_ms))
		return FALSE;
	ev->trigger = trigger;
	if (!cursor_u8(c, &n) || n > ALERT_TOP_MAX)
		return FALSE;
	ev->n_top = n;
	for (guint i = 0; i < n; i++) {
		AlertDest *d = &ev->top[i];
		if (!cursor_bytes(c, d->addr, 16) || !cursor_u32(c, &d->count) ||
		    !cursor_u32(c, &d->asn) || !cursor_bytes(c, d->country, 2))
			return FALSE;
	}
	if (!cursor_u8(c, &n) || n > ALERT_EXPORTERS_MAX)
		return FALSE;
	ev->n_exporters = n;
	for (guint i = 0; i < n; i++) {
		if (!cursor_u32(c, &ev->exporters[i]))
			return FALSE;
	}
	if (!statebuf_get_bool(c, &ev->exporters_truncated) || !cursor_u32(c, &ev->sampling) ||
	    ev->sampling == 0 || !statebuf_get_bool(c, &ev->lower_bound) ||
	    !statebuf_get_time(c, &ev->raised_ms) || !cursor_u32(c, &ev->n_countries) ||
	    !cursor_u32(c, &ev->n_asns) || !cursor_u8(c, &elen) ||
	    !cursor_bytes(c, ev->evidence, elen) || memchr(ev->evidence, '\0', elen) != NULL)
		return FALSE;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		AlertWindow *w = &ev->window[k];
		if (version == ALERT_CODEC_VERSION_NO_SIGNS) {
			w->estimate = w->value; /* version 1 knew no sampling estimate */
			continue;
		}
		if (!cursor_u32(c, &w->estimate) || !cursor_u32(c, &w->estimate_se))
			return FALSE;
	}
	if (version == ALERT_CODEC_VERSION_NO_SIGNS)
		return TRUE;
	guint8 glen;
	return statebuf_get_bool(c, &ev->mta_like) && cursor_u32(c, &ev->inbound_smtp) &&
	       cursor_u32(c, &ev->dns_external) && statebuf_get_bool(c, &ev->has_dns_server) &&
	       cursor_bytes(c, ev->dns_server, 16) && statebuf_get_bool(c, &ev->dns_corroborated) &&
	       cursor_u8(c, &glen) && glen < sizeof ev->group && cursor_bytes(c, ev->group, glen) &&
	       memchr(ev->group, '\0', glen) == NULL;
}
