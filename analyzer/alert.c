/* The names of alert kinds, reasons and severities (alert.h): the words sinks write and the
 * control socket reads. Depends on glib only, and is a library of its own (alert_lib) so
 * that the control protocol and spamflowctl use the names without linking the analyzer. */
#include "alert.h"

const char *
alert_kind_name(AlertKind k)
{
	static const char *const n[] = {"raised", "updated", "cleared"};
	return (guint)k < G_N_ELEMENTS(n) ? n[k] : "unknown";
}

static const char *const reason_names[REASON_COUNT] = {
	"smtp-fanout",     "smtp-blocked", "submission-fanout",
	"lateral-smtp",    "mta-surge",    "auth-bruteforce",
	"smtp-novelty",
};

const char *
alert_reason_name(AlertReason r)
{
	return (guint)r < REASON_COUNT ? reason_names[r] : "unknown";
}

gboolean
alert_reason_from_name(const char *name, AlertReason *out)
{
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (g_strcmp0(name, reason_names[r]) == 0) {
			*out = (AlertReason)r;
			return TRUE;
		}
	}
	return FALSE;
}

const char *
alert_severity_name(AlertSeverity s)
{
	static const char *const n[] = {"info", "notice", "warning", "critical"};
	return (guint)s < G_N_ELEMENTS(n) ? n[s] : "unknown";
}
