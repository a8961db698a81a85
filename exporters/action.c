/* Action filters and the action record (action.h). */
#include "action.h"

#include "alertjson.h"
#include "flow.h"

#include <stdarg.h>
#include <string.h>

/* clang-format off */
G_DEFINE_QUARK(action-error-quark, action_error)
/* clang-format on */


static char **
split_words(const char *s)
{
	g_auto(GStrv) parts = g_strsplit_set(s != NULL ? s : "", ", \t", -1);
	GPtrArray *out = g_ptr_array_new();

	for (guint i = 0; parts[i] != NULL; i++)
		if (parts[i][0] != '\0')
			g_ptr_array_add(out, g_strdup(parts[i]));
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static gboolean
severity_from_name(const char *name, AlertSeverity *out)
{
	for (int s = ALERT_SEV_INFO; s <= ALERT_SEV_CRITICAL; s++)
		if (strcmp(name, alert_severity_name((AlertSeverity)s)) == 0) {
			*out = (AlertSeverity)s;
			return TRUE;
		}
	return FALSE;
}

gboolean
action_filter_spec_parse(ActionFilterSpec *spec, const char *events, const char *reasons,
			 const char *min_severity, GError **error)
{
	g_auto(GStrv) ev = split_words(events);
	g_auto(GStrv) rs = split_words(reasons);
	ActionFilterSpec s = {.events = 0, .reasons = 0, .min_severity = ALERT_SEV_INFO};

	for (guint i = 0; ev[i] != NULL; i++) {
		gboolean found = FALSE;
		for (int k = 0; k < ALERT_KIND_COUNT; k++)
			if (strcmp(ev[i], alert_kind_name((AlertKind)k)) == 0) {
				s.events |= 1u << k;
				found = TRUE;
			}
		if (!found) {
			g_set_error(error, ACTION_ERROR, 0,
				    "unknown event '%s' (raised, updated or cleared)", ev[i]);
			return FALSE;
		}
	}
	if (ev[0] == NULL)
		s.events = ACTION_EVENTS_ALL;
	for (guint i = 0; rs[i] != NULL; i++) {
		AlertReason r;
		if (!alert_reason_from_name(rs[i], &r)) {
			g_set_error(error, ACTION_ERROR, 0, "unknown reason '%s'", rs[i]);
			return FALSE;
		}
		s.reasons |= 1u << r;
	}
	if (rs[0] == NULL)
		s.reasons = ACTION_REASONS_ALL;
	if (min_severity != NULL && *min_severity != '\0' &&
	    !severity_from_name(min_severity, &s.min_severity)) {
		g_set_error(error, ACTION_ERROR, 0,
			    "unknown severity '%s' (info, notice, warning or critical)",
			    min_severity);
		return FALSE;
	}
	*spec = s;
	return TRUE;
}

char *
action_filter_spec_text(const ActionFilterSpec *spec)
{
	GString *s = g_string_new("events=");

	if (spec->events == ACTION_EVENTS_ALL)
		g_string_append(s, "all");
	else
		for (int k = 0, n = 0; k < ALERT_KIND_COUNT; k++)
			if (spec->events & (1u << k))
				g_string_append_printf(s, "%s%s", n++ ? "," : "",
						       alert_kind_name((AlertKind)k));
	g_string_append(s, " reasons=");
	if (spec->reasons == ACTION_REASONS_ALL)
		g_string_append(s, "all");
	else
		for (int r = 0, n = 0; r < REASON_COUNT; r++)
			if (spec->reasons & (1u << r))
				g_string_append_printf(s, "%s%s", n++ ? "," : "",
						       alert_reason_name((AlertReason)r));
	g_string_append_printf(s, " min_severity=%s", alert_severity_name(spec->min_severity));
	return g_string_free(s, FALSE);
}

/* ---- the filter ---- */

typedef struct {
	guint8 host[16];
	guint32 reason;
} PairKey;

struct ActionFilter {
	ActionFilterSpec spec;
	guint max_tracked;
	GHashTable *acted; /* PairKey -> itself: (host, reason) whose events passed */
	guint64 filtered;
	guint64 untracked;
};

static guint
pair_hash(gconstpointer p)
{
	const PairKey *k = p;
	guint h = 2166136261u;
	for (guint i = 0; i < 16; i++)
		h = (h ^ k->host[i]) * 16777619u;
	return (h ^ k->reason) * 16777619u;
}

static gboolean
pair_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, sizeof(PairKey)) == 0;
}

ActionFilter *
action_filter_new(const ActionFilterSpec *spec, guint max_tracked)
{
	ActionFilter *f = g_new0(ActionFilter, 1);
	f->spec = *spec;
	f->max_tracked = max_tracked;
	f->acted = g_hash_table_new_full(pair_hash, pair_equal, g_free, NULL);
	return f;
}

void
action_filter_free(ActionFilter *f)
{
	if (f == NULL)
		return;
	g_hash_table_unref(f->acted);
	g_free(f);
}

gboolean
action_filter_pass(ActionFilter *f, const AlertEvent *ev)
{
	PairKey k = {.reason = (guint32)ev->reason};
	memcpy(k.host, ev->host, 16);

	if (ev->event == ALERT_CLEARED) {
		gboolean acted = g_hash_table_remove(f->acted, &k);
		if (acted && (f->spec.events & (1u << ALERT_CLEARED)))
			return TRUE;
		f->filtered++;
		return FALSE;
	}
	if (!(f->spec.events & (1u << ev->event)) || !(f->spec.reasons & (1u << ev->reason)) ||
	    ev->severity < f->spec.min_severity) {
		f->filtered++;
		return FALSE;
	}
	if (!g_hash_table_contains(f->acted, &k)) {
		if (g_hash_table_size(f->acted) < f->max_tracked)
			g_hash_table_add(f->acted, g_memdup2(&k, sizeof k));
		else
			f->untracked++;
	}
	return TRUE;
}

void
action_filter_forget(ActionFilter *f, const guint8 host[16], int reason)
{
	for (int r = 0; r < REASON_COUNT; r++) {
		if (reason >= 0 && r != reason)
			continue;
		PairKey k = {.reason = (guint32)r};
		memcpy(k.host, host, 16);
		g_hash_table_remove(f->acted, &k);
	}
}

void
action_filter_stats_json(const ActionFilter *f, GString *out)
{
	g_string_append_printf(out, "\"filtered\":%" G_GUINT64_FORMAT ",\"acted_on\":%u,"
			       "\"untracked\":%" G_GUINT64_FORMAT,
			       f->filtered, g_hash_table_size(f->acted), f->untracked);
}

/* ---- the record ---- */

struct ActionLog {
	ActionRecord *ring;
	guint len, head, n;
	ActionLogFunc fn;
	gpointer fn_data;
};

void
action_log_set_listener(ActionLog *log, ActionLogFunc fn, gpointer user_data)
{
	log->fn = fn;
	log->fn_data = user_data;
}

ActionLog *
action_log_new(guint len)
{
	ActionLog *log = g_new0(ActionLog, 1);
	log->len = MAX(len, 1);
	log->ring = g_new0(ActionRecord, log->len);
	return log;
}

void
action_log_free(ActionLog *log)
{
	if (log == NULL)
		return;
	g_free(log->ring);
	g_free(log);
}

void
action_log_add(ActionLog *log, const char *action, const guint8 host[16], gint reason,
	       gint64 uid, const char *fmt, ...)
{
	ActionRecord *r = &log->ring[log->head];
	va_list ap;
	char addr[64];

	memset(r, 0, sizeof *r);
	r->time_ms = g_get_real_time() / 1000;
	g_strlcpy(r->action, action, sizeof r->action);
	memcpy(r->host, host, 16);
	r->reason = reason;
	r->uid = uid;
	va_start(ap, fmt);
	g_vsnprintf(r->detail, sizeof r->detail, fmt, ap);
	va_end(ap);
	log->head = (log->head + 1) % log->len;
	if (log->n < log->len)
		log->n++;
	g_autofree char *who = uid >= 0 ? g_strdup_printf(" uid=%" G_GINT64_FORMAT, uid)
					: g_strdup("");
	g_message("action %s host=%s%s%s%s: %s", r->action, flow_addr_str(host, addr, sizeof addr),
		  reason >= 0 ? " reason=" : "",
		  reason >= 0 ? alert_reason_name((AlertReason)reason) : "", who, r->detail);
	if (log->fn != NULL)
		log->fn(r, log->fn_data);
}

guint
action_log_len(const ActionLog *log)
{
	return log->n;
}

const ActionRecord *
action_log_get(const ActionLog *log, guint i)
{
	if (i >= log->n)
		return NULL;
	return &log->ring[(log->head + log->len - 1 - i) % log->len];
}

void
action_record_json(GString *out, const ActionRecord *r)
{
	g_string_append_printf(out, "{\"time_ms\":%" G_GINT64_FORMAT ",\"action\":", r->time_ms);
	json_quote(out, r->action);
	g_string_append(out, ",\"host\":");
	json_addr(out, r->host);
	g_string_append(out, ",\"reason\":");
	if (r->reason >= 0)
		json_quote(out, alert_reason_name((AlertReason)r->reason));
	else
		g_string_append(out, "null");
	if (r->uid >= 0)
		g_string_append_printf(out, ",\"uid\":%" G_GINT64_FORMAT, r->uid);
	else
		g_string_append(out, ",\"uid\":null");
	g_string_append(out, ",\"detail\":");
	json_quote(out, r->detail);
	g_string_append_c(out, '}');
}
