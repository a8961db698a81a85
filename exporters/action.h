/* What every action (exec hook, webhook, nftables quarantine) shares: which alert events it
 * acts on (ActionFilter), and the record of what the actions did (ActionLog, shown by
 * `spamflowctl history` and logged). Actions are sinks (sink.h): the daemon keeps them in
 * their own SinkSet after the alert sinks, and each applies its own filter in write(). */
#pragma once

#include "alert.h"

#include <glib.h>

#define ACTION_ERROR action_error_quark()
GQuark action_error_quark(void);

/* ---- filters ---- */

typedef struct {
	guint32 events;		     /* 1 << AlertKind of the events acted on */
	guint32 reasons;	     /* 1 << AlertReason of the reasons acted on */
	AlertSeverity min_severity;  /* raised/updated below this are not acted on */
} ActionFilterSpec;

#define ACTION_EVENTS_ALL ((1u << ALERT_KIND_COUNT) - 1)
#define ACTION_REASONS_ALL ((1u << REASON_COUNT) - 1)

/* Parse the three filter keys: events ("raised, updated, cleared"; "" = all), reasons
 * (reason names; "" = all), min_severity (a severity name; "" = info). Names are separated by
 * commas and/or blanks. The error names the bad word. */
gboolean action_filter_spec_parse(ActionFilterSpec *spec, const char *events,
				  const char *reasons, const char *min_severity,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* "events=raised,cleared reasons=all min_severity=warning", for logs and stats. */
char *action_filter_spec_text(const ActionFilterSpec *spec);

/* A filter with memory: a raised or updated event passes when its event, reason and severity
 * pass; a cleared event passes only when an earlier event of the same (host, reason) passed,
 * so whatever an action banned it also unbans, whatever min_severity says (a cleared event's
 * severity is always info). At most max_tracked (host, reason) pairs are remembered; beyond
 * that a raised event still passes but is not remembered (counted in dropped_tracking). */
typedef struct ActionFilter ActionFilter;

ActionFilter *action_filter_new(const ActionFilterSpec *spec, guint max_tracked);
void action_filter_free(ActionFilter *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ActionFilter, action_filter_free)
gboolean action_filter_pass(ActionFilter *f, const AlertEvent *ev);
/* Forget one (host, reason), or every reason of the host when reason < 0 (spamflowctl release,
 * forget): its cleared event will not pass. */
void action_filter_forget(ActionFilter *f, const guint8 host[16], int reason);
/* "filtered":N,"untracked":N JSON members (no braces, no leading comma). */
void action_filter_stats_json(const ActionFilter *f, GString *out);

/* ---- the record of actions ---- */

typedef struct {
	gint64 time_ms;	   /* wall clock */
	char action[24];   /* "quarantine-add", "quarantine-delete", "quarantine-release", ... */
	guint8 host[16];
	gint reason;	   /* AlertReason, or -1 for none */
	gint64 uid;	   /* the control client's uid (release), or -1 */
	char detail[160];  /* what was done and why, one line */
} ActionRecord;

typedef struct ActionLog ActionLog;

ActionLog *action_log_new(guint len);
void action_log_free(ActionLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ActionLog, action_log_free)
/* Record one action and log it: "action quarantine-add host=A reason=R [uid=N]: detail".
 * The main thread only. */
void action_log_add(ActionLog *log, const char *action, const guint8 host[16], gint reason,
		    gint64 uid, const char *fmt, ...) G_GNUC_PRINTF(6, 7);
/* Called with each record as it is added (the history store, `follow`); NULL = none. */
typedef void (*ActionLogFunc)(const ActionRecord *r, gpointer user_data);
void action_log_set_listener(ActionLog *log, ActionLogFunc fn, gpointer user_data);
/* Newest first: 0 .. len-1; NULL past the end. */
guint action_log_len(const ActionLog *log);
const ActionRecord *action_log_get(const ActionLog *log, guint i);
/* One record as a JSON object. */
void action_record_json(GString *out, const ActionRecord *r);
