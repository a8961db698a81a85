/* The daemon's control commands (ControlOps.run): each read-only command renders library
 * state as reply members; `stats` reuses report.c's JSON so every counter shows wherever it
 * is shown; reload and forget go through the daemon's hooks and the analyzer. Lists stop
 * before the reply budget and say so ("truncated"). */
#include "commands.h"

#include "histquery.h"

#include "alertjson.h"
#include "heuristics.h"
#include "quarantine.h"
#include "report.h"
#include "spamflow-config.h"

#include <errno.h>
#include <grp.h>
#include <json-glib/json-glib.h>
#include <linux/capability.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const win_names[HEUR_WIN_COUNT] = {"smtp-external", "smtp-internal",
						      "submission", "login"};

static gint64
now_ms(void)
{
	return g_get_real_time() / 1000;
}

static void
json_time(GString *out, gint64 ms)
{
	if (ms == 0)
		g_string_append(out, "null");
	else
		g_string_append_printf(out, "%" G_GINT64_FORMAT, ms);
}

/* how a sampled estimate was made (HeurEstimate), as a JSON object */
static void
json_basis(GString *out, const HeurEstimate *b)
{
	char k[G_ASCII_DTOSTR_BUF_SIZE], ps[G_ASCII_DTOSTR_BUF_SIZE], phi[G_ASCII_DTOSTR_BUF_SIZE],
	    rho[G_ASCII_DTOSTR_BUF_SIZE], pf[G_ASCII_DTOSTR_BUF_SIZE];
	g_string_append_printf(out,
			       "{\"seen\":%.0f,\"session_packets\":%s,\"p_session\":%s,"
			       "\"failed_share\":%s,\"refused_share\":%s,\"p_failed\":%s}",
			       b->seen, g_ascii_formatd(k, sizeof k, "%.1f", b->session_packets),
			       g_ascii_formatd(ps, sizeof ps, "%.4f", b->p_session),
			       g_ascii_formatd(phi, sizeof phi, "%.3f", b->failed_share),
			       g_ascii_formatd(rho, sizeof rho, "%.3f", b->refused_share),
			       g_ascii_formatd(pf, sizeof pf, "%.4f", b->p_failed));
}

static void
header(GString *out, const ControlRequest *req, const CommandsDeps *d)
{
	control_reply_begin(out, req->cmd->name);
	g_string_append_printf(out, ",\"now_ms\":%" G_GINT64_FORMAT, now_ms());
	if (d->analyzer != NULL)
		g_string_append_printf(out, ",\"analyzer_now_ms\":%" G_GINT64_FORMAT,
				       analyzer_now(d->analyzer));
}

/* ---- offenders ---- */

typedef struct {
	guint8 host[16];
	AlertReason reason;
	Offender state;
	AlertEvent ev;
} OffCopy;

typedef struct {
	GArray *v;
	gboolean has_reason;
	AlertReason reason;
	gint64 since_ms; /* raised at or after; G_MININT64: all */
	const guint8 *host; /* NULL: all */
} OffCollect;

static void
collect_offender(const AnalyzerOffender *o, gpointer user_data)
{
	OffCollect *oc = user_data;
	OffCopy c;

	if (oc->has_reason && o->reason != oc->reason)
		return;
	if (o->state.raised_ms < oc->since_ms)
		return;
	if (oc->host != NULL && memcmp(oc->host, o->host, 16) != 0)
		return;
	memcpy(c.host, o->host, 16);
	c.reason = o->reason;
	c.state = o->state;
	if (o->last != NULL)
		c.ev = *o->last;
	else
		memset(&c.ev, 0, sizeof c.ev);
	g_array_append_val(oc->v, c);
}

/* Most severe first, then the biggest count (long window, then short), then by address. */
static gint
cmp_offender(gconstpointer pa, gconstpointer pb)
{
	const OffCopy *a = pa, *b = pb;

	if (a->ev.severity != b->ev.severity)
		return a->ev.severity > b->ev.severity ? -1 : 1;
	for (int w = WINDOW_LONG; w >= WINDOW_SHORT; w--)
		if (a->ev.window[w].value != b->ev.window[w].value)
			return a->ev.window[w].value > b->ev.window[w].value ? -1 : 1;
	int c = memcmp(a->host, b->host, 16);
	return c != 0 ? c : (int)a->reason - (int)b->reason;
}

static void
offender_json(GString *out, const OffCopy *o, const CommandsDeps *d)
{
	g_string_append(out, "{\"host\":");
	json_addr(out, o->host);
	g_string_append(out, ",\"reason\":");
	json_quote(out, alert_reason_name(o->reason));
	g_string_append(out, ",\"severity\":");
	json_quote(out, alert_severity_name(o->ev.severity));
	g_string_append_printf(out, ",\"raised_ms\":%" G_GINT64_FORMAT ",\"updates\":%u,"
				    "\"last_event_ms\":%" G_GINT64_FORMAT ",\"quiet_since_ms\":",
			       o->state.raised_ms, o->state.n_updates, o->state.last_event_ms);
	json_time(out, o->state.below ? o->state.below_since_ms : 0);
	/* raised before it was suppressed: kept until it clears, with no update */
	g_string_append(out, ",\"suppressed_until_ms\":");
	const PolicySuppression *sup = analyzer_suppressed(d->analyzer, o->host, o->reason);
	json_time(out, sup != NULL ? sup->until_ms : 0);
	/* The windows as they are now: the event below is the last transition. */
	AnalyzerHostInfo hi;
	HeurWin k = heuristics_reason_win(o->reason);
	if (analyzer_host_info(d->analyzer, o->host, &hi) && hi.win[k].tracked) {
		const WindowCounts *c = &hi.win[k].counts;
		const __typeof__(hi.reason[0]) *rr = &hi.reason[o->reason];
		g_string_append_printf(
		    out,
		    ",\"now\":{\"short\":%u,\"long\":%u,\"attempts\":%u,\"failed\":%u,"
		    "\"last_seen_ms\":%" G_GINT64_FORMAT,
		    rr->value[WINDOW_SHORT], rr->value[WINDOW_LONG], c->span[WINDOW_LONG].attempts,
		    c->span[WINDOW_LONG].failed, hi.last_seen_ms);
		/* sampled: what the counts estimate now (AlertWindow.estimate) */
		if (hi.sampling > 1)
			g_string_append_printf(out,
					       ",\"short_estimate\":%u,\"short_estimate_se\":%u,"
					       "\"long_estimate\":%u,\"long_estimate_se\":%u",
					       rr->estimate[WINDOW_SHORT], rr->estimate_se[WINDOW_SHORT],
					       rr->estimate[WINDOW_LONG], rr->estimate_se[WINDOW_LONG]);
		g_string_append_c(out, '}');
	} else {
		g_string_append(out, ",\"now\":null");
	}
	g_string_append(out, ",\"event\":");
	alert_json(out, &o->ev, d->exporter_name, d->exporter_data);
	g_string_append_c(out, '}');
}

gboolean
commands_offender_json(const CommandsDeps *d, Analyzer *a, const guint8 host[16], AlertReason r,
		       GString *out)
{
	CommandsDeps da = *d;
	OffCollect oc = {.since_ms = G_MININT64, .host = host, .has_reason = TRUE, .reason = r};

	da.analyzer = a;
	oc.v = g_array_new(FALSE, FALSE, sizeof(OffCopy));
	analyzer_foreach_offender(a, collect_offender, &oc);
	gboolean found = oc.v->len > 0;
	if (found)
		offender_json(out, &g_array_index(oc.v, OffCopy, 0), &da);
	g_array_free(oc.v, TRUE);
	return found;
}

static GArray *
offenders_of(const CommandsDeps *d, const OffCollect *filter)
{
	OffCollect oc = *filter;

	oc.v = g_array_new(FALSE, FALSE, sizeof(OffCopy));
	analyzer_foreach_offender(d->analyzer, collect_offender, &oc);
	g_array_sort(oc.v, cmp_offender);
	return oc.v;
}

static void
run_offenders(const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	OffCollect f = {.since_ms = G_MININT64};
	guint64 limit = control_request_uint(req, "limit", G_MAXUINT64);

	if (control_request_has(req, "reason")) {
		f.has_reason = TRUE;
		f.reason = (AlertReason)control_request_uint(req, "reason", 0);
	}
	/* on the analyzer's clock (a replayed store's is its capture's) */
	f.since_ms = control_request_time_ms(req, "since", analyzer_now(d->analyzer), G_MININT64);
	g_autoptr(GArray) v = offenders_of(d, &f);
	header(out, req, d);
	g_string_append(out, ",\"offenders\":[");
	guint shown = 0;
	gboolean truncated = FALSE;
	for (guint i = 0; i < v->len && shown < limit; i++) {
		gsize mark = out->len;
		if (shown > 0)
			g_string_append_c(out, ',');
		offender_json(out, &g_array_index(v, OffCopy, i), d);
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		shown++;
	}
	g_string_append_printf(out, "],\"total\":%u,\"shown\":%u,\"truncated\":%s", v->len, shown,
			       truncated ? "true" : "false");
	control_reply_end(out);
}

/* ---- history ---- */

static gboolean
run_history(const ControlRequest *req, const CommandsDeps *d, GString *out, GError **error)
{
	guint n = analyzer_history_len(d->analyzer);
	guint64 limit = control_request_uint(req, "limit", G_MAXUINT64);
	guint shown = 0;
	gboolean truncated = FALSE;

	if (control_request_has(req, "since") || control_request_has(req, "until") ||
	    control_request_has(req, "host") || control_request_has(req, "reason")) {
		if (d->history == NULL) {
			g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
					    "the history store is off ([history] dir): since=, until=, "
					    "host= and reason= read it");
			return FALSE;
		}
		gint64 now = now_ms();
		HistoryQuery q = {.since_ms = control_request_time_ms(req, "since", now, G_MININT64),
				  .until_ms = control_request_time_ms(req, "until", now, G_MAXINT64),
				  .has_host = control_request_has(req, "host"),
				  .reason = control_request_has(req, "reason")
						? (gint)control_request_uint(req, "reason", 0)
						: -1,
				  .types = 1u << HSEG_REC_EVENT | 1u << HSEG_REC_ACTION,
				  .newest_first = TRUE};
		memcpy(q.host, req->addr, 16);
		header(out, req, d);
		histquery_history(out, d->history, &q, limit, req->max_reply);
		control_reply_end(out);
		return TRUE;
	}
	header(out, req, d);
	g_string_append(out, ",\"events\":[");
	for (guint i = 0; i < n && shown < limit; i++) {
		gsize mark = out->len;
		if (shown > 0)
			g_string_append_c(out, ',');
		alert_json(out, analyzer_history_get(d->analyzer, i), d->exporter_name,
			   d->exporter_data);
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		shown++;
	}
	g_string_append_printf(out, "],\"total\":%u,\"shown\":%u,\"truncated\":%s", n, shown,
			       truncated ? "true" : "false");
	/* what the actions did (quarantine adds and deletes, releases), newest first */
	g_string_append(out, ",\"actions\":[");
	guint na = d->action_log != NULL ? action_log_len(d->action_log) : 0, ashown = 0;
	for (guint i = 0; i < na && ashown < limit && !truncated; i++) {
		gsize mark = out->len;
		if (ashown > 0)
			g_string_append_c(out, ',');
		action_record_json(out, action_log_get(d->action_log, i));
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		ashown++;
	}
	g_string_append_printf(out, "],\"actions_total\":%u,\"actions_shown\":%u", na, ashown);
	control_reply_end(out);
	return TRUE;
}

/* ---- policy: groups and suppressions ---- */

typedef struct {
	GPtrArray *v;        /* const PolicySuppression * (valid until the analyzer changes) */
	const guint8 *host; /* NULL: all */
} SuppCollect;

static void
collect_suppression(const PolicySuppression *s, gpointer user_data)
{
	SuppCollect *sc = user_data;
	if (sc->host == NULL || memcmp(sc->host, s->addr, 16) == 0)
		g_ptr_array_add(sc->v, (gpointer)s);
}

/* {"name":..,"prefix":"10.20.0.0/16","thresholds":{"reason":{"short":..,"long":..}},
 * "exempt":[..]} or null: the group of addr, by its prefix that matched. */
static void
group_json(GString *out, const AnalyzerHostPolicy *p, const guint8 addr[16])
{
	guint8 net[16] = {0};
	char text[64];

	if (p->index == POLICY_NO_GROUP) {
		g_string_append(out, "null");
		return;
	}
	for (guint b = 0; b < p->plen && b < 128; b++)
		net[b / 8] |= addr[b / 8] & (0x80 >> (b % 8));
	gboolean v4 = p->plen >= 96 && flow_addr_is_v4(net);
	flow_addr_str(net, text, sizeof text);
	g_string_append(out, "{\"name\":");
	json_quote(out, p->name);
	g_autofree char *prefix = g_strdup_printf("%s/%u", text, v4 ? p->plen - 96 : p->plen);
	g_string_append(out, ",\"prefix\":");
	json_quote(out, prefix);
	g_string_append(out, ",\"thresholds\":{");
	for (guint r = 0, n = 0; r < REASON_COUNT; r++) {
		if (!(p->override & (1u << r)))
			continue;
		g_string_append(out, n++ > 0 ? "," : "");
		json_quote(out, alert_reason_name(r));
		if (policy_reason_thresholds(r) == 1)
			g_string_append_printf(out, ":{\"threshold\":%u}", p->threshold[r][0]);
		else
			g_string_append_printf(out, ":{\"short\":%u,\"long\":%u}",
					       p->threshold[r][WINDOW_SHORT],
					       p->threshold[r][WINDOW_LONG]);
	}
	g_string_append(out, "},\"exempt\":[");
	for (guint r = 0, n = 0; r < REASON_COUNT; r++) {
		if (!(p->exempt & (1u << r)))
			continue;
		g_string_append(out, n++ > 0 ? "," : "");
		json_quote(out, alert_reason_name(r));
	}
	g_string_append_c(out, ']');
	g_string_append_c(out, '}');
}

static void
run_suppressions(const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	SuppCollect sc = {.v = g_ptr_array_new()};
	g_autoptr(GPtrArray) v = sc.v;
	guint64 limit = control_request_uint(req, "limit", G_MAXUINT64);
	guint shown = 0;
	gboolean truncated = FALSE;

	analyzer_foreach_suppression(d->analyzer, collect_suppression, &sc);
	header(out, req, d);
	g_string_append(out, ",\"suppressions\":[");
	for (guint i = 0; i < v->len && shown < limit; i++) {
		gsize mark = out->len;
		if (shown > 0)
			g_string_append_c(out, ',');
		suppression_json(out, v->pdata[i], now_ms(), -1);
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		shown++;
	}
	g_string_append_printf(out, "],\"total\":%u,\"shown\":%u,\"truncated\":%s,\"max\":%u",
			       v->len, shown, truncated ? "true" : "false",
			       (*d->cfg)->analyzer.max_suppressions);
	control_reply_end(out);
}

static const char *
reason_text(gboolean all, AlertReason r)
{
	return all ? "all reasons" : alert_reason_name(r);
}

/* The suppression a `suppress` asks for, checked as a daemon checks it (until in the future,
 * within a year). */
static gboolean
suppression_from_request(const ControlRequest *req, const ControlPeer *peer, gint64 now,
			 PolicySuppression *sp, GError **error)
{
	PolicySuppression s = {0};
	int ui = -1;

	for (guint i = 0; i < req->cmd->n_args; i++)
		if (req->cmd->args[i].type == CONTROL_ARG_UNTIL)
			ui = (int)i;
	g_assert(ui >= 0);
	memcpy(s.addr, req->addr, 16);
	s.all = !control_request_has(req, "reason");
	s.reason = (AlertReason)control_request_uint(req, "reason", 0);
	/* the analyzer's clock is the flows' receive time: the wall clock, in a live daemon */
	s.until_ms = req->until_absolute ? (gint64)req->value[ui]
					 : now + (gint64)req->value[ui] * 1000;
	s.set_ms = now;
	s.uid = (guint32)peer->uid;
	g_strlcpy(s.note, req->text, sizeof s.note);
	if (s.until_ms <= now) {
		g_autofree char *t = report_time(s.until_ms);
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE, "until %s is in the past", t);
		return FALSE;
	}
	if (s.until_ms - now > (gint64)CONTROL_MAX_UNTIL_S * 1000) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
			    "until is more than 366 days away: a host that should never raise "
			    "belongs in a [group NAME] with exempt =");
		return FALSE;
	}
	*sp = s;
	return TRUE;
}

static gboolean
run_suppress(const ControlRequest *req, const ControlPeer *peer, const CommandsDeps *d,
	     GString *out, GError **error)
{
	PolicySuppression s;
	gint64 now = now_ms();
	gboolean replaced = FALSE;
	g_autoptr(GError) err = NULL;

	if (!suppression_from_request(req, peer, now, &s, error))
		return FALSE;
	if (!analyzer_suppress(d->analyzer, &s, &replaced, &err)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED, "%s", err->message);
		return FALSE;
	}
	g_autofree char *until = report_time(s.until_ms);
	g_message("suppression %s: %s (%s) until %s by uid=%u pid=%d: %s",
		  replaced ? "replaced" : "set", req->addr_text, reason_text(s.all, s.reason), until,
		  s.uid, (int)peer->pid, s.note);
	if (d->state_changed != NULL)
		d->state_changed(d->state_data);
	header(out, req, d);
	g_string_append(out, ",\"suppression\":");
	suppression_json(out, &s, now, -1);
	g_string_append_printf(out, ",\"replaced\":%s", replaced ? "true" : "false");
	control_reply_end(out);
	return TRUE;
}

/* ,"host":"ADDR","reason":"R" (null: every reason), as unsuppress replies begin */
static void
host_reason_json(GString *out, const guint8 addr[16], gboolean has_reason, AlertReason r)
{
	g_string_append(out, ",\"host\":");
	json_addr(out, addr);
	g_string_append(out, ",\"reason\":");
	if (has_reason)
		json_quote(out, alert_reason_name(r));
	else
		g_string_append(out, "null");
}

static void
run_unsuppress(const ControlRequest *req, const ControlPeer *peer, const CommandsDeps *d,
	       GString *out)
{
	gboolean has_reason = control_request_has(req, "reason");
	AlertReason r = (AlertReason)control_request_uint(req, "reason", 0);
	guint n = analyzer_unsuppress(d->analyzer, req->addr, has_reason, r);
	SuppCollect sc = {.v = g_ptr_array_new(), .host = req->addr};
	g_autoptr(GPtrArray) left = sc.v;

	g_message("suppression removed: %s (%s): %u removed by uid=%u pid=%d", req->addr_text,
		  reason_text(!has_reason, r), n, (unsigned)peer->uid, (int)peer->pid);
	if (n > 0 && d->state_changed != NULL)
		d->state_changed(d->state_data);
	analyzer_foreach_suppression(d->analyzer, collect_suppression, &sc);
	header(out, req, d);
	host_reason_json(out, req->addr, has_reason, r);
	g_string_append_printf(out, ",\"removed\":%u,\"remaining\":[", n);
	for (guint i = 0; i < left->len; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		suppression_json(out, left->pdata[i], now_ms(), -1);
	}
	g_string_append_c(out, ']');
	control_reply_end(out);
}

/* ---- quarantine ---- */

static gboolean
quarantine_off(const CommandsDeps *d, GError **error)
{
	if (d->quarantine != NULL)
		return FALSE;
	g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "quarantine is off: set [quarantine] set");
	return TRUE;
}

static gboolean
run_quarantine(const ControlRequest *req, const CommandsDeps *d, GString *out, GError **error)
{
	g_autoptr(GString) members = g_string_new(NULL);
	g_autoptr(GError) err = NULL;

	if (quarantine_off(d, error))
		return FALSE;
	if (!quarantine_list(d->quarantine, members, &err)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED, "%s", err->message);
		return FALSE;
	}
	/* the set is bounded by [quarantine] max_hosts, not by the reply budget */
	if (req->max_reply > 0 && members->len > req->max_reply) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "the set's listing (%" G_GSIZE_FORMAT " bytes) is over [control] "
			    "max_output: raise it, or list the set with nft",
			    members->len);
		return FALSE;
	}
	header(out, req, d);
	g_string_append_len(out, members->str, (gssize)members->len);
	control_reply_end(out);
	return TRUE;
}

static gboolean
run_release(const ControlRequest *req, const ControlPeer *peer, const CommandsDeps *d, GString *out,
	    GError **error)
{
	g_autoptr(GError) err = NULL;

	if (quarantine_off(d, error))
		return FALSE;
	/* recorded in the action history with the uid (and logged by the control server) */
	if (!quarantine_release(d->quarantine, req->addr, (gint64)peer->uid, &err)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED, "%s", err->message);
		return FALSE;
	}
	header(out, req, d);
	g_string_append(out, ",\"host\":");
	json_addr(out, req->addr);
	g_string_append(out, ",\"released\":true,\"uid\":");
	g_string_append_printf(out, "%u", (unsigned)peer->uid);
	control_reply_end(out);
	return TRUE;
}

/* ---- host ---- */

static void
span_json(GString *out, const WindowSpanCounts *c)
{
	g_string_append_printf(out,
			       "{\"distinct\":%u,\"estimated\":%s,\"flows\":%u,\"attempts\":%u,"
			       "\"failed\":%u}",
			       c->distinct, c->estimated ? "true" : "false", c->flows, c->attempts,
			       c->failed);
}

static void
exporter_json(GString *out, guint32 index, const CommandsDeps *d)
{
	const char *n = d->exporter_name != NULL ? d->exporter_name(index, d->exporter_data) : NULL;
	if (n != NULL)
		json_quote(out, n);
	else
		g_string_append_printf(out, "\"#%u\"", index);
}

/* The host reply's note of reason r: why it is not raised although a count is past its
 * threshold (AnalyzerHeld); NULL when nothing is held back. */
static char *
held_note(const AnalyzerHostInfo *hi, AlertReason r, const AnalyzerConfig *acfg)
{
	const __typeof__(hi->reason[0]) *o = &hi->reason[r];
	const WindowSpanCounts *lw = &o->counts.span[WINDOW_LONG];
	static const char *const span_names[WINDOW_SPANS] = {"short", "long"};
	switch ((AnalyzerHeld)o->held) {
	case ANALYZER_HELD_SPLIT:
		if (lw->attempts == 0)
			return NULL;
		return g_strdup_printf(
		    "%.0f%% of %u attempts failed in the long window: counted as %s "
		    "(failed_share %.2f, min_attempts %u)",
		    100.0 * lw->failed / lw->attempts, lw->attempts,
		    r == REASON_SMTP_FANOUT ? "smtp-blocked" : "smtp-fanout", acfg->blocked_share,
		    acfg->blocked_min_attempts);
	case ANALYZER_HELD_CONFIDENCE: {
		/* the window whose estimate is furthest past its threshold */
		guint k = WINDOW_SPANS;
		double best = 0;
		for (guint i = 0; i < WINDOW_SPANS; i++) {
			if (o->threshold[i] == 0 || o->basis[i].estimate < o->threshold[i])
				continue;
			double x = o->basis[i].estimate / o->threshold[i];
			if (k == WINDOW_SPANS || x > best) {
				k = i;
				best = x;
			}
		}
		if (k == WINDOW_SPANS)
			return NULL;
		const HeurEstimate *b = &o->basis[k];
		return g_strdup_printf(
		    "estimated %.0f+-%.0f in the %s window, over its threshold %u, but not raised: "
		    "thresholds are compared with the estimate less %g standard errors ([sampling] "
		    "confidence), %.0f here",
		    b->estimate, b->se, span_names[k], o->threshold[k], acfg->sample_confidence,
		    MAX(0.0, b->estimate - acfg->sample_confidence * b->se));
	}
	case ANALYZER_HELD_FEW_SAMPLED:
		return g_strdup_printf(
		    "%u new destinations seen in the sample: a sampled host is raised "
		    "for it from %d on",
		    o->counts.span[WINDOW_SHORT].distinct, HEUR_NOVELTY_MIN_SAMPLED);
	case ANALYZER_HELD_GIVES_WAY_RAISED:
		return g_strdup_printf(
		    "not raised: the host is raised for %s, which tells its fan-out "
		    "already (smtp-novelty is the slow bot's reason); its new destinations "
		    "are not counted while it is",
		    hi->offender_mask & (1u << REASON_SMTP_FANOUT) ? "smtp-fanout"
								   : "smtp-blocked");
	case ANALYZER_HELD_GIVES_WAY_MAIL:
		return g_strdup_printf(
		    "not raised: the host receives mail (%u inbound SMTP sessions in "
		    "the last hour), as a mail server does; smtp-fanout tells an "
		    "unlisted one",
		    hi->inbound_smtp * MAX(hi->sampling, 1u));
	case ANALYZER_HELD_NONE:
		break;
	}
	return NULL;
}

/* country and ASN of dst: the geo hook, else what an event of this host carried. */
static void
dest_geo(const CommandsDeps *d, const GArray *offs, const guint8 dst[16], char country[4],
	 guint32 *asn)
{
	country[0] = '\0';
	*asn = 0;
	if (d->geo != NULL && d->geo(dst, country, asn, d->geo_data))
		return;
	for (guint i = 0; i < offs->len; i++) {
		const AlertEvent *ev = &g_array_index(offs, OffCopy, i).ev;
		for (guint t = 0; t < ev->n_top && t < ALERT_TOP_MAX; t++) {
			if (memcmp(ev->top[t].addr, dst, 16) == 0) {
				g_strlcpy(country, ev->top[t].country, 4);
				*asn = ev->top[t].asn;
				return;
			}
		}
	}
}

static gboolean
run_host(const ControlRequest *req, const CommandsDeps *d, GString *out, GError **error)
{
	AnalyzerHostInfo hi;
	const AnalyzerConfig *acfg = &(*d->cfg)->analyzer;
	OffCollect f = {.since_ms = G_MININT64, .host = req->addr};

	SuppCollect sc = {.v = g_ptr_array_new(), .host = req->addr};
	g_autoptr(GPtrArray) supps = sc.v;
	analyzer_foreach_suppression(d->analyzer, collect_suppression, &sc);
	/* a suppressed host is shown before its first flow too */
	/* with since= the store may know a host the analyzer no longer holds */
	gboolean timeline = control_request_has(req, "since") || control_request_has(req, "until");
	if (!analyzer_host_info(d->analyzer, req->addr, &hi) && supps->len == 0 &&
	    !(timeline && d->history != NULL)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "%s: nothing is held about this host (not tracked, no offender, not "
			    "suppressed)",
			    req->addr_text);
		return FALSE;
	}
	AnalyzerHostPolicy pol;
	analyzer_host_policy(d->analyzer, req->addr, &pol);
	g_autoptr(GArray) offs = offenders_of(d, &f);
	header(out, req, d);
	g_string_append(out, ",\"host\":");
	json_addr(out, req->addr);
	g_string_append(out, ",\"group\":");
	group_json(out, &pol, req->addr);
	g_string_append(out, ",\"suppressions\":[");
	for (guint i = 0; i < supps->len; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		suppression_json(out, supps->pdata[i], now_ms(), -1);
	}
	g_string_append_c(out, ']');
	g_string_append_printf(out, ",\"internal\":%s,\"mail_server\":%s,\"last_seen_ms\":",
			       hi.is_internal ? "true" : "false", hi.is_mta ? "true" : "false");
	json_time(out, hi.last_seen_ms);
	g_string_append_printf(out, ",\"sampling\":%u,\"exporters\":[", hi.sampling);
	for (guint i = 0; i < hi.n_exporters && i < ALERT_EXPORTERS_MAX; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		exporter_json(out, hi.exporters[i], d);
	}
	g_string_append(out, "],\"windows\":[");
	gboolean first = TRUE;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (!hi.win[k].tracked)
			continue;
		const WindowCounts *c = &hi.win[k].counts;
		g_string_append(out, first ? "{\"traffic\":" : ",{\"traffic\":");
		first = FALSE;
		json_quote(out, win_names[k]);
		g_string_append(out, ",\"first_ms\":");
		json_time(out, c->first_ms);
		g_string_append(out, ",\"last_ms\":");
		json_time(out, c->last_ms);
		g_string_append(out, ",\"short\":");
		span_json(out, &c->span[WINDOW_SHORT]);
		g_string_append(out, ",\"long\":");
		span_json(out, &c->span[WINDOW_LONG]);
		g_string_append(out, ",\"top\":[");
		for (guint t = 0; t < hi.win[k].n_top && t < WINDOW_TOP_MAX; t++) {
			const WindowTop *top = &hi.win[k].top[t];
			char country[4];
			guint32 asn;
			dest_geo(d, offs, top->addr, country, &asn);
			g_string_append(out, t > 0 ? ",{\"addr\":" : "{\"addr\":");
			json_addr(out, top->addr);
			g_string_append_printf(out, ",\"count\":%u,\"error\":%u,\"country\":",
					       top->count, top->error);
			if (country[0] != '\0')
				json_quote(out, country);
			else
				g_string_append(out, "null");
			if (asn != 0)
				g_string_append_printf(out, ",\"asn\":%u}", asn);
			else
				g_string_append(out, ",\"asn\":null}");
		}
		g_string_append(out, "]}");
	}
	g_string_append(out, "],\"baseline\":");
	if (hi.baseline_samples > 0)
		g_string_append_printf(out, "{\"samples\":%u,\"median_short\":%u,\"median_long\":%u}",
				       hi.baseline_samples, hi.baseline_median[WINDOW_SHORT],
				       hi.baseline_median[WINDOW_LONG]);
	else
		g_string_append(out, "null");
	/* side signs over the last hour: the unlisted mail server hint, external DNS */
	g_string_append_printf(out, ",\"signs\":{\"inbound_smtp\":%u,\"mta_like\":%s,\"hint\":",
			       hi.inbound_smtp, hi.mta_like ? "true" : "false");
	if (hi.mta_like)
		json_quote(out, ALERT_MTA_HINT);
	else
		g_string_append(out, "null");
	g_string_append_printf(out, ",\"dns_external\":%u,\"dns_server\":", hi.dns_external);
	if (hi.has_dns_server)
		json_addr(out, hi.dns_server);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"dns_last_ms\":");
	json_time(out, hi.has_dns_server ? hi.dns_last_ms : 0);
	g_string_append_printf(out, ",\"resolver\":%s,\"resolvers_configured\":%s,"
				    "\"dns_corroborated\":%s}",
			       hi.is_resolver ? "true" : "false",
			       hi.resolvers_configured ? "true" : "false",
			       hi.dns_corroborated ? "true" : "false");
	/* per reason: the metric against the configured thresholds, and the offender state */
	g_string_append(out, ",\"reasons\":[");
	first = TRUE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		HeurWin k = heuristics_reason_win(r);
		const OffCopy *off = NULL;
		for (guint i = 0; i < offs->len; i++)
			if (g_array_index(offs, OffCopy, i).reason == r)
				off = &g_array_index(offs, OffCopy, i);
		if (!hi.win[k].tracked && off == NULL)
			continue;
		/* mta-surge watches listed mail servers only, the fan-outs and smtp-novelty
		 * everyone else (a listed one's new destinations are not counted) */
		if (off == NULL && (r == REASON_MTA_SURGE) != (hi.is_mta != 0) &&
		    (r == REASON_MTA_SURGE || r == REASON_SMTP_FANOUT || r == REASON_SMTP_BLOCKED ||
		     r == REASON_SMTP_NOVELTY))
			continue;
		const HeuristicConfig *h = &acfg->h[r];
		g_string_append(out, first ? "{\"reason\":" : ",{\"reason\":");
		first = FALSE;
		json_quote(out, alert_reason_name(r));
		g_string_append(out, ",\"traffic\":");
		json_quote(out, win_names[k]);
		g_string_append_printf(out, ",\"enabled\":%s", h->enabled ? "true" : "false");
		const PolicySuppression *sup = analyzer_suppressed(d->analyzer, req->addr, r);
		g_string_append_printf(out, ",\"exempt\":%s,\"suppressed_until_ms\":",
				       pol.exempt & (1u << r) ? "true" : "false");
		json_time(out, sup != NULL ? sup->until_ms : 0);
		if (hi.win[k].tracked) {
			char buf[G_ASCII_DTOSTR_BUF_SIZE];
			double level = hi.reason[r].level;
			gboolean crossed = hi.reason[r].crossed;
			g_string_append_printf(
			    out,
			    ",\"value\":{\"short\":%u,\"long\":%u},\"threshold\":{\"short\":%u,"
			    "\"long\":%u},\"crossed\":%s,\"level\":%s",
			    hi.reason[r].value[WINDOW_SHORT], hi.reason[r].value[WINDOW_LONG],
			    hi.reason[r].threshold[WINDOW_SHORT], hi.reason[r].threshold[WINDOW_LONG],
			    crossed ? "true" : "false", g_ascii_formatd(buf, sizeof buf, "%.3f", level));
			if (hi.sampling > 1)
				g_string_append_printf(
				    out,
				    ",\"estimate\":{\"short\":%u,\"long\":%u},"
				    "\"estimate_se\":{\"short\":%u,\"long\":%u}",
				    hi.reason[r].estimate[WINDOW_SHORT],
				    hi.reason[r].estimate[WINDOW_LONG],
				    hi.reason[r].estimate_se[WINDOW_SHORT],
				    hi.reason[r].estimate_se[WINDOW_LONG]);
			if (hi.sampling > 1) {
				g_string_append(out, ",\"estimate_basis\":{\"short\":");
				json_basis(out, &hi.reason[r].basis[WINDOW_SHORT]);
				g_string_append(out, ",\"long\":");
				json_basis(out, &hi.reason[r].basis[WINDOW_LONG]);
				g_string_append_c(out, '}');
			}
			if (r == REASON_SMTP_NOVELTY)
				g_string_append_printf(out, ",\"window_s\":%" G_GINT64_FORMAT,
						       hi.novelty_window_ms / 1000);
			/* Past a threshold but not raised: say why, or the admin sees "idle" at
			 * level 2 (or est. 61+-9/50) and wonders */
			g_autofree char *note = held_note(&hi, r, acfg);
			if (note != NULL) {
				g_string_append(out, ",\"note\":");
				json_quote(out, note);
			}
		}
		g_string_append_printf(out, ",\"state\":\"%s\"", off != NULL ? "active" : "idle");
		if (off != NULL) {
			g_string_append(out, ",\"offender\":");
			offender_json(out, off, d);
		}
		g_string_append_c(out, '}');
	}
	g_string_append_c(out, ']');
	if (timeline) {
		gint64 now = now_ms();
		gint64 until = control_request_time_ms(req, "until", now, now);
		/* live: the analyzer's reading now ends the series, unless until= is past */
		gboolean live = !control_request_has(req, "until") || until >= now;
		histquery_timeline(out, d->history, d->analyzer, req->addr,
				   control_request_time_ms(req, "since", now, G_MININT64),
				   until, live, req->max_reply);
	}
	control_reply_end(out);
	return TRUE;
}

/* ---- exporters, stats ---- */

/* report_json()'s members without its braces and newline. */
static void
append_report_members(GString *out, const CommandsDeps *d, gboolean exporters_only)
{
	g_autoptr(GString) s = g_string_new(NULL);
	AnalyzerStats an;
	ReportExtra x = {.listener = d->listener != NULL ? listener_stats(d->listener) : NULL,
			 .analyzer = &an,
			 .sinks = d->sinks,
			 .actions = d->actions};

	if (d->cluster != NULL)
		cluster_node_analyzer_stats(d->cluster, &an); /* its partitions' analyzers */
	else
		analyzer_get_stats(d->analyzer, &an);
	report_json(s, d->collector, exporters_only ? NULL : &x);
	/* "{" members "}\n" */
	g_assert(s->len >= 3 && s->str[0] == '{' && s->str[s->len - 2] == '}');
	g_string_append_c(out, ',');
	g_string_append_len(out, s->str + 1, (gssize)s->len - 3);
}

static void
run_exporters(const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	header(out, req, d);
	append_report_members(out, d, TRUE);
	control_reply_end(out);
}

static void
run_stats(ControlServer *ctl, const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	header(out, req, d);
	append_report_members(out, d, FALSE);
	if (ctl != NULL) {
		g_string_append(out, ",\"control\":{");
		control_server_stats_json(ctl, out);
		g_string_append_c(out, '}');
	} else {
		g_string_append(out, ",\"control\":null");
	}
	g_string_append_printf(out,
			       ",\"daemon\":{\"pid\":%d,\"uid\":%u,\"started_ms\":%" G_GINT64_FORMAT
			       ",\"uptime_s\":%" G_GINT64_FORMAT ",\"reloads\":%" G_GUINT64_FORMAT
			       ",\"reload_failures\":%" G_GUINT64_FORMAT "}",
			       (int)getpid(), (unsigned)geteuid(), d->started_ms,
			       (now_ms() - d->started_ms) / 1000,
			       d->reload_counts != NULL ? d->reload_counts[0] : 0,
			       d->reload_counts != NULL ? d->reload_counts[1] : 0);
	if (d->module_stats != NULL)
		d->module_stats(d->module_data, out);
	control_reply_end(out);
}

/* ---- config ---- */

/* config_to_string() text -> {"section":{"key":"value",...},...} */
static void
config_json(GString *out, const char *text)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	gboolean in_group = FALSE, first_key = TRUE;

	g_string_append_c(out, '{');
	for (guint i = 0; lines[i] != NULL; i++) {
		const char *l = lines[i];
		if (l[0] == '[') {
			const char *end = strchr(l, ']');
			if (end == NULL)
				continue;
			g_autofree char *group = g_strndup(l + 1, (gsize)(end - l - 1));
			g_string_append(out, in_group ? "}," : "");
			json_quote(out, group);
			g_string_append(out, ":{");
			in_group = TRUE;
			first_key = TRUE;
			continue;
		}
		const char *eq = strstr(l, " = ");
		if (!in_group || l[0] == '#' || eq == NULL)
			continue;
		g_autofree char *key = g_strndup(l, (gsize)(eq - l));
		if (!first_key)
			g_string_append_c(out, ',');
		first_key = FALSE;
		json_quote(out, key);
		g_string_append_c(out, ':');
		json_quote(out, eq + 3);
	}
	g_string_append(out, in_group ? "}}" : "}");
}

static void
run_config(const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	g_autofree char *text = config_to_string(*d->cfg);

	header(out, req, d);
	g_string_append(out, ",\"file\":");
	if (d->config_path != NULL)
		json_quote(out, d->config_path);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"config\":");
	config_json(out, text);
	g_string_append(out, ",\"text\":");
	json_quote(out, text);
	control_reply_end(out);
}

/* ---- reload ---- */

gboolean
commands_key_reloadable(const char *section, const char *key)
{
	if (strcmp(section, "collector") == 0 || strcmp(section, "control") == 0 ||
	    strcmp(section, "http") == 0)
		return FALSE; /* bound sockets and the collector's tables */
	if (strcmp(section, "daemon") == 0)
		return strcmp(key, "log_level") == 0;
	/* built once at start: files, queues, worker threads, the nftables set */
	if (strcmp(section, "sinks") == 0 || strcmp(section, "actions") == 0 ||
	    strcmp(section, "quarantine") == 0 || strcmp(section, "evidence") == 0 ||
	    strcmp(section, "state") == 0 || strcmp(section, "history") == 0 ||
	    strcmp(section, "cluster") == 0)
		return FALSE;
	return TRUE; /* [analyzer], the heuristics, [alerts]: analyzer_reconfigure() */
}

/* "section.key" -> value, from config_to_string() text */
static GHashTable *
config_values(const Config *cfg)
{
	g_autofree char *text = config_to_string(cfg);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_autofree char *group = NULL;

	for (guint i = 0; lines[i] != NULL; i++) {
		const char *l = lines[i];
		const char *eq = strstr(l, " = ");
		if (l[0] == '[') {
			const char *end = strchr(l, ']');
			g_free(group);
			group = end != NULL ? g_strndup(l + 1, (gsize)(end - l - 1)) : NULL;
		} else if (l[0] != '#' && eq != NULL && group != NULL) {
			g_autofree char *key = g_strndup(l, (gsize)(eq - l));
			g_hash_table_insert(h, g_strdup_printf("%s.%s", group, key),
					    g_strdup(eq + 3));
		}
	}
	return h;
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
commands_reload_members(GString *out, const Config *old_cfg, const Config *new_cfg)
{
	g_autoptr(GHashTable) a = config_values(old_cfg);
	g_autoptr(GHashTable) b = config_values(new_cfg);
	g_autoptr(GPtrArray) changed = g_ptr_array_new();
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, b);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (g_strcmp0(g_hash_table_lookup(a, k), v) != 0)
			g_ptr_array_add(changed, k);
	/* keys that went: a [group NAME] section removed */
	g_hash_table_iter_init(&it, a);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (!g_hash_table_contains(b, k))
			g_ptr_array_add(changed, k);
	g_ptr_array_sort(changed, cmp_str);
	for (int pass = 0; pass < 2; pass++) {
		g_autoptr(GString) list = g_string_new(NULL);
		g_string_append(out, pass == 0 ? ",\"applied\":[" : ",\"restart_needed\":[");
		guint n = 0;
		for (guint i = 0; i < changed->len; i++) {
			const char *id = changed->pdata[i];
			const char *dot = strchr(id, '.');
			g_autofree char *section = g_strndup(id, (gsize)(dot - id));
			if (commands_key_reloadable(section, dot + 1) != (pass == 0))
				continue;
			if (n++ > 0)
				g_string_append_c(out, ',');
			json_quote(out, id);
			g_string_append_printf(list, " %s", id);
		}
		g_string_append_c(out, ']');
		if (n > 0 && pass == 0)
			g_message("reload: applied%s", list->str);
		else if (n > 0)
			g_warning("reload: changed but only in effect after a restart:%s",
				  list->str);
	}
}

/* ---- a cluster node's routed host ---- */

void
commands_host_line(const ControlRequest *req, GString *line)
{
	g_string_append_printf(line, "host %s", req->addr_text);
	if (control_request_has(req, "since")) {
		gint64 since = control_request_time_ms(req, "since", now_ms(), 0);
		g_string_append_printf(line, " since=%" G_GINT64_FORMAT "s",
				       MAX((gint64)1, (now_ms() - since + 999) / 1000));
	}
}

static void
host_replied(gpointer tag, const char *reply, gsize len, const char *error)
{
	control_deferred_reply(tag, reply, len, error);
}

/* ---- policy commands on a cluster node ---- */

/* A control record on its way to the bus: the reply, but for its end, waits for it. */
typedef struct {
	ControlDeferred *def;
	GString *reply; /* the reply object without the closing brace */
	char *what;     /* for the log: "suppression of 10.0.1.27 (all reasons)" */
	gint64 asked_us;
} CtlPending;

void
commands_cluster_stored(gpointer tag, guint64 seq, const char *error)
{
	CtlPending *pd = tag;

	if (error != NULL) {
		g_warning("cluster: %s not stored on the bus: %s", pd->what, error);
		g_autofree char *msg = g_strdup_printf(
		    "not stored on the cluster's bus, so not applied: %s (try again)", error);
		control_deferred_reply(pd->def, NULL, 0, msg);
	} else {
		g_message("cluster: %s stored at sequence %" G_GUINT64_FORMAT " after %" G_GINT64_FORMAT
			  " ms",
			  pd->what, seq, (g_get_monotonic_time() - pd->asked_us) / 1000);
		g_string_append_printf(pd->reply, ",\"sequence\":%" G_GUINT64_FORMAT "}", seq);
		control_deferred_reply(pd->def, pd->reply->str, pd->reply->len, NULL);
	}
	g_string_free(pd->reply, TRUE);
	g_free(pd->what);
	g_free(pd);
}

/* The cluster's suppressions (the bucket the partitions' owners write), as PolicySuppression
 * values with the partition of each; *age_ms: how old the reading is. */
typedef struct {
	PolicySuppression s;
	guint partition;
} ClusterSupp;

static gint
cmp_cluster_supp(gconstpointer pa, gconstpointer pb)
{
	return policy_suppression_cmp(&((const ClusterSupp *)pa)->s, &((const ClusterSupp *)pb)->s);
}

/* A string member of an object from the bus, "" when it is absent or anything else. */
static const char *
bus_str(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);
	const char *s = n != NULL && JSON_NODE_HOLDS_VALUE(n) &&
				json_node_get_value_type(n) == G_TYPE_STRING
			    ? json_node_get_string(n)
			    : NULL;
	return s != NULL ? s : "";
}

/* An integer member of an object from the bus, 0 when it is absent or anything else. */
static gint64
bus_int(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);
	return n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64
		   ? json_node_get_int(n)
		   : 0;
}

static GArray *
cluster_suppressions(const CommandsDeps *d, const guint8 *host, gint64 *age_ms)
{
	g_autoptr(GString) text = g_string_new(NULL);
	g_autoptr(JsonParser) parser = json_parser_new();
	GArray *v = g_array_new(FALSE, TRUE, sizeof(ClusterSupp));

	cluster_node_suppressions(d->cluster, text, age_ms);
	if (!json_parser_load_from_data(parser, text->str, (gssize)text->len, NULL) ||
	    !JSON_NODE_HOLDS_ARRAY(json_parser_get_root(parser)))
		return v;
	JsonArray *list = json_node_get_array(json_parser_get_root(parser));
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonNode *node = json_array_get_element(list, i);
		if (!JSON_NODE_HOLDS_OBJECT(node))
			continue;
		JsonObject *o = json_node_get_object(node);
		ClusterSupp cs = {0};
		const char *addr = bus_str(o, "host");
		JsonNode *reason = json_object_get_member(o, "reason");
		if (!control_parse_addr(addr, cs.s.addr) || reason == NULL)
			continue;
		if (host != NULL && memcmp(host, cs.s.addr, 16) != 0)
			continue;
		if (JSON_NODE_HOLDS_NULL(reason)) {
			cs.s.all = TRUE;
		} else {
			if (!JSON_NODE_HOLDS_VALUE(reason) ||
			    json_node_get_value_type(reason) != G_TYPE_STRING ||
			    !alert_reason_from_name(json_node_get_string(reason), &cs.s.reason))
				continue;
		}
		cs.s.until_ms = bus_int(o, "until_ms");
		if (cs.s.until_ms <= now_ms()) /* over since the bucket was read */
			continue;
		cs.s.set_ms = bus_int(o, "set_ms");
		cs.s.uid = (guint32)bus_int(o, "uid");
		g_strlcpy(cs.s.note, bus_str(o, "note"), sizeof cs.s.note);
		cs.partition = (guint)bus_int(o, "partition");
		g_array_append_val(v, cs);
	}
	g_array_sort(v, cmp_cluster_supp);
	return v;
}

static void
run_cluster_suppressions(const ControlRequest *req, const CommandsDeps *d, GString *out)
{
	gint64 age_ms = -1;
	g_autoptr(GArray) v = cluster_suppressions(d, NULL, &age_ms);
	guint64 limit = control_request_uint(req, "limit", G_MAXUINT64);
	guint shown = 0;
	gboolean truncated = FALSE;

	header(out, req, d);
	g_string_append(out, ",\"suppressions\":[");
	for (guint i = 0; i < v->len && shown < limit; i++) {
		gsize mark = out->len;
		if (shown > 0)
			g_string_append_c(out, ',');
		suppression_json(out, &g_array_index(v, ClusterSupp, i).s, now_ms(), -1);
		if (out->len + 256 > req->max_reply) {
			g_string_truncate(out, mark);
			truncated = TRUE;
			break;
		}
		shown++;
	}
	g_string_append_printf(out,
			       "],\"total\":%u,\"shown\":%u,\"truncated\":%s,\"max\":%u"
			       ",\"cluster_age_ms\":%" G_GINT64_FORMAT,
			       v->len, shown, truncated ? "true" : "false",
			       (*d->cfg)->analyzer.max_suppressions, age_ms);
	control_reply_end(out);
}

/* suppress, unsuppress, forget on a cluster node: checked here, then a control record to
 * the host's partition stream (cluster_node_ctl()); the reply once the bus has stored it.
 * What the reply says beyond that (replaced, removed, remaining) is from the suppressions
 * bucket as last read (cluster_age_ms); the owner logs what it did. */
static gboolean
run_cluster_policy(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer,
		   const CommandsDeps *d, GString *out, GError **error)
{
	ClusterCtl c = {0};
	gint64 now = now_ms(), age_ms = -1;
	gboolean has_reason = control_request_has(req, "reason");
	AlertReason r = (AlertReason)control_request_uint(req, "reason", 0);
	g_autoptr(GArray) host_supps = cluster_suppressions(d, req->addr, &age_ms);
	g_autoptr(GString) reply = g_string_new(NULL);
	g_autofree char *what = NULL;
	(void)out;

	memcpy(c.host, req->addr, 16);
	c.set_ms = now;
	c.uid = (guint32)peer->uid;
	c.pid = (gint32)peer->pid;
	c.all = !has_reason;
	c.reason = has_reason ? r : 0;
	header(reply, req, d);
	switch (req->cmd->id) {
	case CONTROL_CMD_SUPPRESS: {
		PolicySuppression s;
		gboolean replaced = FALSE;
		if (!suppression_from_request(req, peer, now, &s, error))
			return FALSE;
		for (guint i = 0; i < host_supps->len; i++) {
			const PolicySuppression *o = &g_array_index(host_supps, ClusterSupp, i).s;
			replaced = replaced || (o->all == s.all && (s.all || o->reason == s.reason));
		}
		/* max_suppressions is the cluster's: counted in the bucket as last read */
		gint64 all_age = -1;
		g_autoptr(GArray) every = cluster_suppressions(d, NULL, &all_age);
		guint max = (*d->cfg)->analyzer.max_suppressions;
		if (!replaced && every->len >= max) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
				    "%u suppressions in the cluster: max_suppressions (%u) reached "
				    "(unsuppress one, or raise [analyzer] max_suppressions on every "
				    "node)",
				    every->len, max);
			return FALSE;
		}
		c.op = CLUSTER_CTL_SUPPRESS;
		c.until_ms = s.until_ms;
		g_strlcpy(c.note, s.note, sizeof c.note);
		g_autofree char *until = report_time(s.until_ms);
		what = g_strdup_printf("suppression of %s (%s) until %s", req->addr_text,
				       reason_text(s.all, s.reason), until);
		g_message("cluster: %s asked by uid=%u pid=%d: %s", what, s.uid, (int)peer->pid,
			  s.note);
		g_string_append(reply, ",\"suppression\":");
		suppression_json(reply, &s, now, -1);
		g_string_append_printf(reply, ",\"replaced\":%s", replaced ? "true" : "false");
		break;
	}
	case CONTROL_CMD_UNSUPPRESS: {
		guint removed = 0;
		c.op = CLUSTER_CTL_UNSUPPRESS;
		what = g_strdup_printf("unsuppress of %s (%s)", req->addr_text,
				       reason_text(!has_reason, r));
		g_message("cluster: %s asked by uid=%u pid=%d", what, (unsigned)peer->uid,
			  (int)peer->pid);
		host_reason_json(reply, req->addr, has_reason, r);
		g_autoptr(GString) left = g_string_new(NULL);
		for (guint i = 0; i < host_supps->len; i++) {
			const PolicySuppression *o = &g_array_index(host_supps, ClusterSupp, i).s;
			if (!has_reason || (!o->all && o->reason == r)) {
				removed++;
				continue;
			}
			if (left->len > 0)
				g_string_append_c(left, ',');
			suppression_json(left, o, now, -1);
		}
		g_string_append_printf(reply, ",\"removed\":%u,\"remaining\":[%s]", removed,
				       left->str);
		break;
	}
	case CONTROL_CMD_FORGET:
		c.op = CLUSTER_CTL_FORGET;
		what = g_strdup_printf("forget of %s", req->addr_text);
		g_message("cluster: %s asked by uid=%u pid=%d", what, (unsigned)peer->uid,
			  (int)peer->pid);
		g_string_append(reply, ",\"host\":");
		json_addr(reply, req->addr);
		/* whether the owner held anything is in its log: the record is what is known */
		g_string_append(reply, ",\"forgotten\":true");
		break;
	default:
		g_assert_not_reached();
	}
	ControlDeferred *def = control_server_defer(ctl);
	if (def == NULL) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "%s: on a cluster node through the control socket only",
			    req->cmd->name);
		return FALSE;
	}
	g_string_append_printf(reply, ",\"cluster_age_ms\":%" G_GINT64_FORMAT, age_ms);
	CtlPending *pd = g_new0(CtlPending, 1);
	pd->def = def;
	pd->reply = g_steal_pointer(&reply);
	pd->what = g_steal_pointer(&what);
	pd->asked_us = g_get_monotonic_time();
	if (!cluster_node_ctl(d->cluster, &c, pd)) {
		control_deferred_reply(def, NULL, 0, "this node has no cluster coordinator");
		g_string_free(pd->reply, TRUE);
		g_free(pd->what);
		g_free(pd);
		return TRUE;
	}
	/* the stored event comes on a later turn of the main loop */
	g_string_append_printf(pd->reply, ",\"partition\":%u", c.partition);
	return TRUE;
}

/* A cluster node ([cluster]): what the cluster answers instead of this daemon's own
 * analyzer. FALSE with *handled: failed; !*handled: the single-node answer stands. */
static gboolean
run_cluster(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer,
	    const CommandsDeps *d, GString *out, GError **error, gboolean *handled)
{
	*handled = TRUE;
	switch (req->cmd->id) {
	case CONTROL_CMD_CLUSTER:
		header(out, req, d);
		cluster_node_status_json(d->cluster, out);
		control_reply_end(out);
		return TRUE;
	case CONTROL_CMD_OFFENDERS:
		control_reply_begin(out, req->cmd->name);
		g_string_append_printf(out, ",\"now_ms\":%" G_GINT64_FORMAT, now_ms());
		cluster_node_offenders_json(d->cluster, req, out);
		control_reply_end(out);
		return TRUE;
	case CONTROL_CMD_HOST: {
		char owner[64];
		Analyzer *a = cluster_node_analyzer_for(d->cluster, req->addr, owner);
		if (a != NULL) {
			CommandsDeps da = *d;
			da.analyzer = a;
			return run_host(req, &da, out, error);
		}
		if (owner[0] == '\0') {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
				    "%s: no node owns its partition now (a takeover is under way, or "
				    "no analyzer runs): try again in a few seconds",
				    req->addr_text);
			return FALSE;
		}
		ControlDeferred *def = control_server_defer(ctl);
		if (def == NULL) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
				    "%s is analyzed on node %s: ask there (spamflowctl on this node's "
				    "socket forwards it)",
				    req->addr_text, owner);
			return FALSE;
		}
		g_autoptr(GString) line = g_string_new(NULL);
		commands_host_line(req, line);
		cluster_node_request(d->cluster, owner, line->str, host_replied, def);
		return TRUE;
	}
	case CONTROL_CMD_EXPORTERS:
		/* this node's, then every other collector's from its node entry */
		header(out, req, d);
		append_report_members(out, d, TRUE);
		cluster_node_exporters_json(d->cluster, out);
		control_reply_end(out);
		return TRUE;
	case CONTROL_CMD_FORGET:
	case CONTROL_CMD_SUPPRESS:
	case CONTROL_CMD_UNSUPPRESS:
		return run_cluster_policy(ctl, req, peer, d, out, error);
	case CONTROL_CMD_SUPPRESSIONS:
		run_cluster_suppressions(req, d, out);
		return TRUE;
	default:
		*handled = FALSE;
		return TRUE;
	}
}

gboolean
commands_run(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer, GString *out,
	     gpointer deps, GError **error)
{
	const CommandsDeps *d = deps;

	if (d->cluster != NULL) {
		gboolean handled;
		gboolean ok = run_cluster(ctl, req, peer, d, out, error, &handled);
		if (handled)
			return ok;
	}
	switch (req->cmd->id) {
	case CONTROL_CMD_CLUSTER:
		g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
				    "this daemon is not a cluster node ([cluster] nats is empty)");
		return FALSE;
	case CONTROL_CMD_SUPPRESS:
		return run_suppress(req, peer, d, out, error);
	case CONTROL_CMD_UNSUPPRESS:
		run_unsuppress(req, peer, d, out);
		return TRUE;
	case CONTROL_CMD_SUPPRESSIONS:
		run_suppressions(req, d, out);
		return TRUE;
	case CONTROL_CMD_OFFENDERS:
		run_offenders(req, d, out);
		return TRUE;
	case CONTROL_CMD_HISTORY:
		return run_history(req, d, out, error);
	case CONTROL_CMD_HOST:
		return run_host(req, d, out, error);
	case CONTROL_CMD_EXPORTERS:
		run_exporters(req, d, out);
		return TRUE;
	case CONTROL_CMD_STATS:
		run_stats(ctl, req, d, out);
		return TRUE;
	case CONTROL_CMD_CONFIG:
		run_config(req, d, out);
		return TRUE;
	case CONTROL_CMD_RELOAD: {
		g_autoptr(GString) members = g_string_new(NULL);
		if (d->reload == NULL) {
			g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
					    "reload is not available");
			return FALSE;
		}
		if (!d->reload(d->reload_data, members, error))
			return FALSE;
		header(out, req, d);
		g_string_append(out, ",\"file\":");
		if (d->config_path != NULL)
			json_quote(out, d->config_path);
		else
			g_string_append(out, "null");
		g_string_append_len(out, members->str, (gssize)members->len);
		control_reply_end(out);
		return TRUE;
	}
	case CONTROL_CMD_FORGET: {
		gboolean found = analyzer_forget(d->analyzer, req->addr);
		/* its offences end without a cleared event: the actions stop waiting for one
		 * (the quarantine does not renew it; it leaves the set at its timeout) */
		if (d->actions != NULL)
			sink_set_forget(d->actions, req->addr);
		header(out, req, d);
		g_string_append(out, ",\"host\":");
		json_addr(out, req->addr);
		g_string_append_printf(out, ",\"forgotten\":%s", found ? "true" : "false");
		control_reply_end(out);
		return TRUE;
	}
	case CONTROL_CMD_QUARANTINE:
		return run_quarantine(req, d, out, error);
	case CONTROL_CMD_RELEASE:
		return run_release(req, peer, d, out, error);
	case CONTROL_CMD_FOLLOW:
		g_set_error_literal(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "follow streams: the control socket only");
		return FALSE;
	case CONTROL_CMD_HELP:
	case CONTROL_CMD_VERSION:
	case CONTROL_CMD_COUNT:
		break;
	}
	g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE, "%s: not handled here",
		    req->cmd->name);
	return FALSE;
}

/* ---- daemon setup ---- */

static gboolean
lookup_user(const char *name, uid_t *uid, gid_t *gid, GError **error)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "[daemon] user: no user '%s'%s%s", name, errno != 0 ? ": " : "",
			    errno != 0 ? g_strerror(errno) : "");
		return FALSE;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return TRUE;
}

ControlServer *
commands_control_new(const Config *cfg, CommandsDeps *deps, GError **error)
{
	static ControlOps ops = {.run = commands_run, .daemon_version = "spamflowd " SPAMFLOW_VERSION};
	ControlLimits lim = {
	    .max_clients = cfg->control_max_clients,
	    .max_request = (gsize)cfg->control_max_request,
	    .idle_timeout_s = cfg->control_idle_timeout_s,
	    .max_output = (gsize)cfg->control_max_output,
	};
	ControlOwner owner = {.owner_uid = geteuid(), .owner_gid = getegid(),
			      .trusted_uid = geteuid()};
	g_autoptr(GError) err = NULL;

	if (cfg->control_socket[0] == '\0')
		return NULL;
	if (cfg->user[0] != '\0') {
		if (!lookup_user(cfg->user, &owner.owner_uid, &owner.owner_gid, error))
			return NULL;
		owner.trusted_uid = owner.owner_uid;
		owner.chown = TRUE;
	}
	if (cfg->control_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->control_group);
		if (gr == NULL) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
				    "[control] group: no group '%s'", cfg->control_group);
			return NULL;
		}
		owner.owner_gid = gr->gr_gid;
		owner.chown = TRUE;
	}
	ControlServer *ctl = control_server_new(cfg->control_socket, &lim, &owner, &ops, deps, &err);
	if (ctl != NULL) {
		g_message("control socket %s (mode 0660, uid %u, gid %u)", cfg->control_socket,
			  (unsigned)owner.owner_uid, (unsigned)owner.owner_gid);
		return ctl;
	}
	/* The built-in path is a convenience: a second daemon, or one run by a user who may
	 * not write /run, still collects. An unsafe directory is never shrugged off. */
	if (strcmp(cfg->control_socket, CONTROL_DEFAULT_SOCKET) == 0 &&
	    !g_error_matches(err, CONTROL_ERROR, CONTROL_ERROR_UNSAFE)) {
		g_warning("%s; running without a control socket", err->message);
		return NULL;
	}
	g_propagate_error(error, g_steal_pointer(&err));
	return NULL;
}

/* A daemon started as a user other than root with capabilities (spamflowd.service gives
 * CAP_NET_ADMIN, for SO_RCVBUFFORCE) gives them up once its sockets are set: all of them, or
 * all but CAP_NET_ADMIN for the nftables quarantine (every libnftables call needs it; netlink
 * checks the caller at each message). What is kept stays in the permitted and effective sets
 * only: the ambient and inheritable sets are cleared, so that no child (exec hooks) inherits
 * it. Root without [daemon] user stays root. */
static gboolean
drop_capabilities(gboolean keep_net_admin, GError **error)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {{0}};
	const guint32 net_admin = 1u << CAP_NET_ADMIN; /* 12: in the first word */

	if (geteuid() == 0 || syscall(SYS_capget, &hdr, caps) != 0)
		return TRUE;
	if (keep_net_admin && !(caps[0].permitted & net_admin)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "the quarantine needs CAP_NET_ADMIN, and this process does not have "
			    "it: start spamflowd as root, or give the unit "
			    "AmbientCapabilities=CAP_NET_ADMIN (dist/spamflowd-quarantine.conf)");
		return FALSE;
	}
	if (caps[0].permitted == (keep_net_admin ? net_admin : 0) && caps[1].permitted == 0 &&
	    caps[0].effective == caps[0].permitted && caps[0].inheritable == 0 &&
	    caps[1].inheritable == 0 &&
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) == 0)
		return TRUE; /* nothing to give up (the ambient set is a subset of these) */
	memset(caps, 0, sizeof caps);
	if (keep_net_admin)
		caps[0].permitted = caps[0].effective = net_admin;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 ||
	    syscall(SYS_capset, &hdr, caps) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "cannot give up capabilities: %s", g_strerror(errno));
		return FALSE;
	}
	g_message(keep_net_admin ? "gave up capabilities but CAP_NET_ADMIN (the quarantine's "
				   "nftables set; not inherited by child processes)"
				 : "gave up capabilities: sockets are set");
	return TRUE;
}

gboolean
commands_drop_privileges(const Config *cfg, gboolean keep_net_admin, GError **error)
{
	uid_t uid;
	gid_t gid;

	if (cfg->user[0] == '\0')
		return drop_capabilities(keep_net_admin, error);
	if (!lookup_user(cfg->user, &uid, &gid, error))
		return FALSE;
	if (geteuid() == uid && getegid() == gid)
		return drop_capabilities(keep_net_admin, error);
	/* setuid() from root clears the permitted set unless told to keep it; the effective
	 * set is cleared either way, and drop_capabilities() sets what is kept */
	if (keep_net_admin && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "cannot keep CAP_NET_ADMIN across the switch to user %s: %s", cfg->user,
			    g_strerror(errno));
		return FALSE;
	}
	if (initgroups(cfg->user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "cannot switch to user %s (uid %u, gid %u): %s", cfg->user,
			    (unsigned)uid, (unsigned)gid, g_strerror(errno));
		return FALSE;
	}
	if (keep_net_admin)
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	g_message("running as user %s (uid %u, gid %u)", cfg->user, (unsigned)uid, (unsigned)gid);
	if (!drop_capabilities(keep_net_admin, error))
		return FALSE;
	/* paranoia: a setuid() that kept a way back would be worse than none */
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_FAILED,
			    "switched to user %s but could regain root: refusing to run",
			    cfg->user);
		return FALSE;
	}
	return TRUE;
}
