/* Control replies from the history store (histquery.h): the JSON contract the web page and
 * spamflowctl read (doc/control.md, "host ... since="). Runs on the main loop: the store's
 * query is bounded in bytes and time, the reply by max_reply; either sets "truncated". */
#include "histquery.h"

#include "alertjson.h"

#include <string.h>

#define REPLY_MARGIN 4096 /* room for what follows a list */

void
histquery_point_json(GString *out, gint64 t_ms, const HsegHost *hh)
{
	g_string_append_printf(out,
			       "{\"t\":%" G_GINT64_FORMAT ",\"flows\":%u,\"attempts\":%u,\"failed\":%u,"
			       "\"reasons\":{",
			       t_ms, hh->flows, hh->attempts, hh->failed);
	gboolean first = TRUE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (!(hh->reason_mask & (1u << r)))
			continue;
		const __typeof__(hh->reason[0]) *x = &hh->reason[r];
		g_string_append_printf(out,
				       "%s\"%s\":{\"short\":%u,\"long\":%u,\"short_threshold\":%u,"
				       "\"long_threshold\":%u",
				       first ? "" : ",", alert_reason_name(r), x->value[0], x->value[1],
				       x->threshold[0], x->threshold[1]);
		if (hh->sampled)
			g_string_append_printf(out, ",\"short_estimate\":%u,\"long_estimate\":%u",
					       x->estimate[0], x->estimate[1]);
		g_string_append_c(out, '}');
		first = FALSE;
	}
	g_string_append(out, "}}");
}

typedef struct {
	GString *points, *events, *actions;
	guint n_points, n_events, n_actions;
	gint64 last_t;
	gsize last_mark; /* where the last point starts in points */
	gsize max;       /* bytes for the three lists together */
	gboolean truncated;
} Timeline;

static gsize
tl_len(const Timeline *t)
{
	return t->points->len + t->events->len + t->actions->len;
}

static gboolean
tl_slice(gint64 t_ms, const HsegHost *hh, gpointer data)
{
	Timeline *t = data;
	if (t->n_points > 0 && t_ms == t->last_t) {
		/* the same slice written twice (a restart within it): the later stands */
		g_string_truncate(t->points, t->last_mark);
		t->n_points--;
	}
	gsize mark = t->points->len;
	if (t->n_points > 0)
		g_string_append_c(t->points, ',');
	histquery_point_json(t->points, t_ms, hh);
	if (tl_len(t) > t->max) {
		g_string_truncate(t->points, mark);
		t->truncated = TRUE;
		return FALSE;
	}
	t->last_mark = mark;
	t->last_t = t_ms;
	t->n_points++;
	return TRUE;
}

static gboolean
tl_note(HsegRecType type, const HsegNote *n, gpointer data)
{
	Timeline *t = data;
	GString *s = type == HSEG_REC_EVENT ? t->events : t->actions;
	guint *cnt = type == HSEG_REC_EVENT ? &t->n_events : &t->n_actions;
	gsize mark = s->len;
	if (*cnt > 0)
		g_string_append_c(s, ',');
	g_string_append_len(s, n->json, (gssize)n->json_len);
	if (tl_len(t) > t->max) {
		g_string_truncate(s, mark);
		t->truncated = TRUE;
		return FALSE;
	}
	(*cnt)++;
	return TRUE;
}

void
histquery_timeline(GString *out, History *h, Analyzer *a, const guint8 addr[16],
		   gint64 since_ms, gint64 until_ms, gboolean live, gsize max_reply)
{
	Timeline t = {.points = g_string_new(NULL),
		      .events = g_string_new(NULL),
		      .actions = g_string_new(NULL),
		      .last_t = G_MININT64};
	gsize used = out->len + REPLY_MARGIN;
	t.max = max_reply > used ? max_reply - used : 0;
	gboolean qtrunc = FALSE;
	if (h != NULL) {
		/* live: whatever the store has (a last reading at exit may be ahead of the
		 * wall clock after a quick restart, a replayed capture anywhere) */
		HistoryQuery q = {.since_ms = since_ms,
				  .until_ms = live ? G_MAXINT64 / 2 : until_ms,
				  .has_host = TRUE,
				  .reason = -1,
				  .types = 1u << HSEG_REC_SLICE | 1u << HSEG_REC_EVENT |
					   1u << HSEG_REC_ACTION};
		memcpy(q.host, addr, 16);
		history_query(h, &q, tl_slice, tl_note, &t, &qtrunc);
	}
	AnalyzerReading r;
	gint64 now = analyzer_now(a);
	if (live && !t.truncated && now > t.last_t && now >= since_ms &&
	    analyzer_host_reading(a, addr, &r)) {
		HsegHost hh;
		memset(&hh, 0, sizeof hh);
		hh.flows = r.flows;
		hh.attempts = r.attempts;
		hh.failed = r.failed;
		hh.sampled = r.sampled;
		hh.reason_mask = r.reason_mask;
		for (guint k = 0; k < REASON_COUNT; k++)
			for (guint w = 0; w < 2; w++) {
				hh.reason[k].value[w] = r.value[k][w];
				hh.reason[k].threshold[w] = r.threshold[k][w];
				hh.reason[k].estimate[w] = r.estimate[k][w];
			}
		if (tl_slice(now, &hh, &t)) {
			/* the reading now, not a slice's end: say so */
			g_string_truncate(t.points, t.points->len - 1);
			g_string_append(t.points, ",\"live\":true}");
		}
	}
	g_string_append_printf(out,
			       ",\"timeline\":{\"since_ms\":%" G_GINT64_FORMAT ",\"until_ms\":%" G_GINT64_FORMAT
			       ",\"slice_ms\":%" G_GINT64_FORMAT ",\"stored\":%s,\"points\":[",
			       since_ms, until_ms, analyzer_slice_ms(a), h != NULL ? "true" : "false");
	g_string_append_len(out, t.points->str, (gssize)t.points->len);
	g_string_append(out, "],\"events\":[");
	g_string_append_len(out, t.events->str, (gssize)t.events->len);
	g_string_append(out, "],\"actions\":[");
	g_string_append_len(out, t.actions->str, (gssize)t.actions->len);
	g_string_append_printf(out, "],\"truncated\":%s}", t.truncated || qtrunc ? "true" : "false");
	g_string_free(t.points, TRUE);
	g_string_free(t.events, TRUE);
	g_string_free(t.actions, TRUE);
}

typedef struct {
	GString *events, *actions;
	guint64 n_events, n_actions, shown_events, shown_actions, limit;
	gsize max;
	gboolean truncated;
} Listing;

static gboolean
list_note(HsegRecType type, const HsegNote *n, gpointer data)
{
	Listing *l = data;
	GString *s = type == HSEG_REC_EVENT ? l->events : l->actions;
	guint64 *total = type == HSEG_REC_EVENT ? &l->n_events : &l->n_actions;
	guint64 *shown = type == HSEG_REC_EVENT ? &l->shown_events : &l->shown_actions;
	(*total)++;
	if (*shown >= l->limit || l->truncated)
		return TRUE; /* counted, not shown */
	gsize mark = s->len;
	if (*shown > 0)
		g_string_append_c(s, ',');
	g_string_append_len(s, n->json, (gssize)n->json_len);
	if (l->events->len + l->actions->len > l->max) {
		g_string_truncate(s, mark);
		l->truncated = TRUE;
		return TRUE;
	}
	(*shown)++;
	return TRUE;
}

void
histquery_history(GString *out, History *h, const HistoryQuery *q, guint64 limit, gsize max_reply)
{
	Listing l = {.events = g_string_new(NULL), .actions = g_string_new(NULL), .limit = limit};
	gsize used = out->len + REPLY_MARGIN;
	gboolean qtrunc = FALSE;
	l.max = max_reply > used ? max_reply - used : 0;
	history_query(h, q, NULL, list_note, &l, &qtrunc);
	g_string_append(out, ",\"source\":\"disk\",\"since_ms\":");
	g_string_append_printf(out, "%" G_GINT64_FORMAT ",\"until_ms\":%" G_GINT64_FORMAT,
			       q->since_ms == G_MININT64 ? 0 : q->since_ms,
			       q->until_ms == G_MAXINT64 ? g_get_real_time() / 1000 : q->until_ms);
	g_string_append(out, ",\"events\":[");
	g_string_append_len(out, l.events->str, (gssize)l.events->len);
	g_string_append_printf(out,
			       "],\"total\":%" G_GUINT64_FORMAT ",\"shown\":%" G_GUINT64_FORMAT
			       ",\"truncated\":%s,\"actions\":[",
			       l.n_events, l.shown_events, l.truncated || qtrunc ? "true" : "false");
	g_string_append_len(out, l.actions->str, (gssize)l.actions->len);
	g_string_append_printf(out,
			       "],\"actions_total\":%" G_GUINT64_FORMAT
			       ",\"actions_shown\":%" G_GUINT64_FORMAT,
			       l.n_actions, l.shown_actions);
	g_string_free(l.events, TRUE);
	g_string_free(l.actions, TRUE);
}
