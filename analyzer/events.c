/* Alert events and offenders: an event filled with its evidence and emitted when an
 * offender's state machine (offender.c) steps, the offenders (by host and reason, and in the
 * order they were raised), and the ring of recent events. */
#include "analyzer_private.h"

static guint
off_hash(gconstpointer p)
{
	const OffEntry *o = p;
	return addr_hash16(o->addr) ^ (o->reason * 0x9e3779b1u);
}

static gboolean
off_equal(gconstpointer a, gconstpointer b)
{
	const OffEntry *x = a, *y = b;
	return x->reason == y->reason && memcmp(x->addr, y->addr, 16) == 0;
}

/* The side signs of an smtp alert: the unlisted mail server hint (inbound SMTP, or the
 * port-25 window's own signs: wc, the counts of the alert, whose long window is the port-25
 * window's for every smtp reason) and DNS corroboration, which raises the severity one
 * step. */
static void
fill_signs(Analyzer *a, AlertEvent *ev, Host *h, const WindowCounts *wc, gint64 now)
{
	ev->inbound_smtp = host_inbound_smtp(h, now);
	/* sampled: each inbound session seen stands for N */
	ev->mta_like = heuristics_mta_like(ev->inbound_smtp * MAX(h != NULL ? h->sampling : 1, 1u),
					   wc, now, analyzer_long_ms(a));
	ev->dns_external = host_dns_external(h, now);
	if (ev->dns_external > 0) {
		memcpy(ev->dns_server, host_signs(h)->dns_server, 16);
		ev->has_dns_server = TRUE;
	}
	ev->dns_corroborated = host_dns_corroborates(a, h, now);
	if (ev->dns_corroborated)
		ev->severity = heuristics_severity_step(ev->severity);
}

static void
fill_event(Analyzer *a, AlertEvent *ev, OffEntry *o, Host *h, AlertKind kind, gint64 now)
{
	AlertReason r = o->reason;
	HeurWin wk = heuristics_reason_win(r);
	Window *w = h ? host_win(h, wk) : NULL;
	WindowCounts wc;
	guint32 thr[WINDOW_SPANS];
	HeurSampling hs;

	memset(ev, 0, sizeof *ev);
	ev->time_ms = now;
	ev->event = kind;
	ev->reason = r;
	memcpy(ev->host, o->addr, 16);
	ev->raised_ms = o->sm.raised_ms;
	analyzer_policy_group_name(a, o->addr, ev->group);
	reason_counts(a, h, r, now, &wc);
	thresholds(a, h, o->addr, r, thr);
	host_sampling(a, h, &hs);
	ev->level = heuristics_level(r, &wc, thr, &hs, &ev->trigger);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		AlertWindow *aw = &ev->window[k];
		double e, se;
		aw->span_ms = a->cfg.slice_ms * a->cfg.span_slices[k];
		if (r == REASON_SMTP_NOVELTY && k == WINDOW_SHORT)
			aw->span_ms = a->cfg.novelty_window_ms;
		aw->value = heuristics_metric(r, &wc.span[k]);
		heuristics_estimate(r, &wc.span[k], &hs, &e, &se);
		aw->estimate = (guint32)MIN(e + 0.5, (double)G_MAXUINT32);
		aw->estimate_se = (guint32)MIN(se + 0.5, (double)G_MAXUINT32);
		aw->threshold = thr[k];
		aw->distinct = wc.span[k].distinct;
		aw->estimated = wc.span[k].estimated;
		aw->flows = wc.span[k].flows;
		aw->attempts = wc.span[k].attempts;
		aw->failed = wc.span[k].failed;
	}
	const WindowSpanCounts *l = &wc.span[WINDOW_LONG];
	ev->flows = l->flows;
	ev->attempts = l->attempts;
	ev->failed = l->failed;
	ev->succeeded = l->attempts - MIN(l->failed, l->attempts);
	ev->failed_share = l->attempts ? (double)l->failed / l->attempts : 0.0;
	ev->first_seen_ms = wc.first_ms;
	ev->last_seen_ms = wc.last_ms;
	if (w != NULL) {
		WindowTop top[ALERT_TOP_MAX];
		ev->answered = window_answered(w, &a->geom, now);
		ev->n_top = window_top(w, &a->geom, now, top, ALERT_TOP_MAX);
		for (guint i = 0; i < ev->n_top; i++) {
			memcpy(ev->top[i].addr, top[i].addr, 16);
			ev->top[i].count = top[i].count;
		}
	}
	if (a->geo_fn != NULL)
		geo_fill_event(a, ev, h, wk, now);
	if (r == REASON_AUTH_BRUTEFORCE && ev->n_top > 0) {
		memcpy(o->peer, ev->top[0].addr, 16);
		o->has_peer = TRUE;
	}
	if (o->has_peer) {
		memcpy(ev->peer, o->peer, 16);
		ev->has_peer = TRUE;
	}
	ev->sampling = 1;
	if (h != NULL) {
		ev->n_exporters = MIN(h->n_exporters, 2u);
		memcpy(ev->exporters, h->exporters, ev->n_exporters * sizeof(guint32));
		ev->exporters_truncated = h->n_exporters > 2;
		ev->sampling = h->sampling;
	}
	ev->lower_bound = ev->sampling > 1;
	if (kind == ALERT_CLEARED)
		ev->severity = ALERT_SEV_INFO;
	else if (ev->level >= ALERT_CRITICAL_LEVEL)
		ev->severity = ALERT_SEV_CRITICAL;
	else if (r == REASON_SMTP_BLOCKED)
		ev->severity = ALERT_SEV_NOTICE;
	else
		ev->severity = ALERT_SEV_WARNING;
	if (heuristics_reason_smtp(r) && h != NULL)
		fill_signs(a, ev, h, &wc, now);
}

/* Fill the next history slot with an event of o, count it and hand it to the alert
 * callback. */
void
events_emit(Analyzer *a, OffEntry *o, Host *h, AlertKind kind, gint64 now)
{
	AlertEvent *slot = &a->history[a->hist_head];
	fill_event(a, slot, o, h, kind, now);
	a->hist_head = (a->hist_head + 1) % a->hist_len;
	a->hist_n = MIN(a->hist_n + 1, a->hist_len);
	o->last = *slot;
	a->st.events[kind]++;
	if (kind == ALERT_RAISED)
		a->st.events_by_reason[o->reason]++;
	if (a->alert_fn != NULL)
		a->alert_fn(slot, a->alert_data);
}

OffEntry *
off_lookup(Analyzer *a, const guint8 addr[16], AlertReason r)
{
	OffEntry key;
	memcpy(key.addr, addr, 16);
	key.reason = r;
	return g_hash_table_lookup(a->offenders, &key);
}

/* off_find()'s miss: the table's entry, put in the cache slot of (hi, r) */
OffEntry *
off_lookup_slow(Analyzer *a, const Host *h, guint32 hi, AlertReason r)
{
	OffEntry *o = off_lookup(a, h->addr, r);
	if (o == NULL)
		return NULL;
	guint32 slot = (hi * REASON_COUNT + r) & (OFF_CACHE_SLOTS - 1);
	if (o->cache_slot != 0 && a->off_cache[o->cache_slot - 1] == o)
		a->off_cache[o->cache_slot - 1] = NULL; /* in one slot at most */
	o->cache_slot = slot + 1;
	a->off_cache[slot] = o;
	return o;
}

/* A new offender for (addr, r), idle, inserted. */
OffEntry *
off_new(Analyzer *a, const guint8 addr[16], AlertReason r)
{
	OffEntry *o = g_new0(OffEntry, 1);
	memcpy(o->addr, addr, 16);
	o->reason = r;
	offender_init(&o->sm);
	off_insert(a, o);
	return o;
}

/* Offenders live in the table (lookups) and in a list in creation order, so that ticks emit
 * simultaneous transitions in an order that does not depend on hashing and survives a
 * restart (analyzer_state_save() writes the list). */
void
off_insert(Analyzer *a, OffEntry *o)
{
	o->next = NULL;
	o->prev = a->off_tail;
	if (a->off_tail != NULL)
		a->off_tail->next = o;
	else
		a->off_head = o;
	a->off_tail = o;
	g_hash_table_add(a->offenders, o);
}

void
off_remove(Analyzer *a, OffEntry *o)
{
	if (o->prev != NULL)
		o->prev->next = o->next;
	else
		a->off_head = o->next;
	if (o->next != NULL)
		o->next->prev = o->prev;
	else
		a->off_tail = o->prev;
	if (o->cache_slot != 0 && a->off_cache[o->cache_slot - 1] == o)
		a->off_cache[o->cache_slot - 1] = NULL;
	g_hash_table_remove(a->offenders, o); /* frees o */
}

void
events_init(Analyzer *a, guint history_len)
{
	a->offenders = g_hash_table_new_full(off_hash, off_equal, g_free, NULL);
	a->hist_len = history_len;
	a->history = g_new0(AlertEvent, a->hist_len);
}

void
events_free(Analyzer *a)
{
	g_hash_table_destroy(a->offenders);
	g_free(a->history);
}

/* A new length for the event history; the newest events that fit are kept. */
void
events_history_resize(Analyzer *a, guint history_len)
{
	if (history_len == a->hist_len)
		return;
	AlertEvent *nh = g_new0(AlertEvent, history_len);
	guint keep = MIN(a->hist_n, history_len);
	for (guint i = 0; i < keep; i++)
		nh[keep - 1 - i] = *analyzer_history_get(a, i);
	g_free(a->history);
	a->history = nh;
	a->hist_len = history_len;
	a->hist_n = keep;
	a->hist_head = keep % a->hist_len;
}

/* ---- queries ---- */

void
analyzer_foreach_offender(Analyzer *a, AnalyzerOffenderFunc fn, gpointer user_data)
{
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next) {
		if (o->sm.state != OFFENDER_ACTIVE)
			continue;
		AnalyzerOffender v;
		memcpy(v.host, o->addr, 16);
		v.reason = o->reason;
		v.state = o->sm;
		v.last = &o->last;
		fn(&v, user_data);
	}
}

guint
analyzer_history_len(const Analyzer *a)
{
	return a->hist_n;
}

const AlertEvent *
analyzer_history_get(const Analyzer *a, guint i)
{
	if (i >= a->hist_n)
		return NULL;
	return &a->history[(a->hist_head + a->hist_len - 1 - i) % a->hist_len];
}
