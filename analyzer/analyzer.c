/* The analyzer: classifies each flow (heuristics.c), feeds the host's window for that kind
 * of traffic (window.c), and has the reasons that read that window evaluated (events.c),
 * emitting alert events synchronously. Also the ticks, the query API, and making and
 * freeing an analyzer; analyzer_private.h says which file holds the rest. */
#include "analyzer_private.h"

/* ---- evaluation ---- */

/* The raise thresholds of reason r for host h (NULL: not tracked) at addr: the configured
 * ones or its group's (analyzer_policy.c), and for mta-surge those raised by the host's
 * baseline. */
static G_GNUC_NO_INLINE void
thresholds_surge(const Analyzer *a, const Host *h, guint32 thr[WINDOW_SPANS])
{
	const Baseline *b = h ? host_base(h) : NULL;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (thr[k] == 0)
			continue;
		if (b == NULL || b->n < a->cfg.surge_min_samples) {
			thr[k] = (guint32)MIN(thr[k] * a->cfg.surge_warmup_factor, (double)G_MAXUINT32);
		} else {
			double t = a->cfg.surge_k * b->median[k];
			thr[k] = (guint32)MAX((double)thr[k], MIN(t + 0.999, (double)G_MAXUINT32));
		}
	}
}

/* thresholds(), inline where every flow asks (judge(), evaluate()) */
static inline void
thresholds_of(const Analyzer *a, const Host *h, const guint8 addr[16], AlertReason r,
	      guint32 thr[WINDOW_SPANS])
{
	const guint32 *set = a->cfg.h[r].threshold;
	guint g = analyzer_policy_group_of(a, addr);
	if (g != POLICY_NO_GROUP && (a->groups[g].override & (1u << r)))
		set = a->groups[g].threshold[r];
	for (guint k = 0; k < WINDOW_SPANS; k++)
		thr[k] = set[k];
	if (r == REASON_SMTP_NOVELTY)
		thr[WINDOW_LONG] = 0; /* the long window is context */
	if (r == REASON_MTA_SURGE)
		thresholds_surge(a, h, thr);
}

void
thresholds(const Analyzer *a, const Host *h, const guint8 addr[16], AlertReason r,
	   guint32 thr[WINDOW_SPANS])
{
	thresholds_of(a, h, addr, r, thr);
}

void
host_sampling(const Analyzer *a, const Host *h, HeurSampling *s)
{
	s->sampling = h != NULL ? h->sampling : 1;
	s->packets = a->cfg.sample_packets;
	s->confidence = a->cfg.sample_confidence;
	const Sampled *sp = h != NULL ? host_sampled(h) : NULL;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		s->refused[k] = sp != NULL && sp->syns[k] > 0
				    ? MIN(1.0, (double)sp->resets[k] / sp->syns[k])
				    : sp != NULL && sp->resets[k] > 0 ? 1.0 : 0.0;
}

/* ---- smtp-novelty ---- */

static inline guint32
nov_bucket(const Analyzer *a, gint64 t_ms)
{
	return (guint32)(MAX(t_ms, 0) / MAX(a->cfg.novelty_window_ms / NOV_BUCKETS, 1));
}

guint32
nov_count(const Analyzer *a, const Host *h, gint64 now)
{
	guint32 b = nov_bucket(a, now);
	if (h->nov_cur + NOV_BUCKETS <= b)
		return 0; /* everything left the window */
	/* the buckets in (b - NOV_BUCKETS, nov_cur] (a clock stepped back: up to nov_cur) */
	guint32 keep = h->nov_cur >= b ? NOV_BUCKETS : NOV_BUCKETS - (b - h->nov_cur);
	keep = MIN(keep, h->nov_cur + 1);
	guint32 n = 0, i = h->nov_cur % NOV_BUCKETS;
	for (guint32 k = 0; k < keep; k++) {
		n += h->nov[i];
		i = i == 0 ? NOV_BUCKETS - 1 : i - 1;
	}
	return n;
}

/* One new destination of host h at now. A time before the newest bucket counts in it. */
static void
nov_add(Analyzer *a, Host *h, gint64 now)
{
	guint32 b = nov_bucket(a, now);
	if (b > h->nov_cur) {
		/* the signs' ring (bucket_count_add()) in 16-bit counts, which a host's slot has
		 * room for */
		guint32 gap = MIN(b - h->nov_cur, (guint32)NOV_BUCKETS);
		for (guint32 i = 1; i <= gap; i++)
			h->nov[(h->nov_cur + i) % NOV_BUCKETS] = 0;
		h->nov_cur = b;
	}
	guint16 *c = &h->nov[h->nov_cur % NOV_BUCKETS];
	if (*c < G_MAXUINT16)
		(*c)++;
}

/* The seen set, made at the first need, within a quarter of mem_cap. */
static Novelty *
nov_set(Analyzer *a)
{
	if (a->nov == NULL) {
		a->nov = novelty_new(a->nov_capacity, a->cfg.novelty_horizon_ms);
		a->mem += novelty_mem(a->nov);
	}
	return a->nov;
}

/* ---- sampled packets (Sampled) ---- */

static inline guint32
slice_of(const Analyzer *a, gint64 t_ms)
{
	return (guint32)(MAX(t_ms, 0) / a->cfg.slice_ms);
}

/* One sampled attempt of `packets` packets of kind k at now (and, for smtp-novelty, in its
 * bucket). A time before the newest slice counts in it. A failed one (hc) counts as a SYN
 * or, made of the server's reset, as a refusal (Sampled.syns, .resets). */
static void
samp_add(Analyzer *a, Host *h, HeurWin k, guint32 packets, const HeurClass *hc, gint64 now)
{
	Sampled *sp = host_sampled(h);
	if (sp == NULL) {
		gsize ext0 = ext_mem(h);
		guint32 span = a->cfg.span_slices[WINDOW_LONG];
		sp = host_ext(h)->samp = g_malloc0(sizeof(Sampled) +
						   (gsize)HEUR_WIN_COUNT * span * sizeof(guint32));
		sp->span = span;
		a->mem += ext_mem(h) - ext0 + SAMPLED_COST(span);
	}
	guint32 *pk = sp->pk + (gsize)k * sp->span;
	guint32 s = slice_of(a, now);
	if (s > sp->cur[k]) {
		if (s - sp->cur[k] >= sp->span)
			memset(pk, 0, sp->span * sizeof(guint32));
		else
			for (guint32 x = sp->cur[k] + 1; x <= s; x++)
				pk[x % sp->span] = 0;
		sp->cur[k] = s;
	}
	guint32 *c = &pk[sp->cur[k] % sp->span];
	*c = (guint32)MIN((guint64)*c + MAX(packets, 1u), G_MAXUINT32);
	if (k == HEUR_WIN_SMTP_EXT)
		bucket_count_add(&sp->nov, nov_bucket(a, now), MAX(packets, 1u));
	if (hc->failed) {
		if (hc->refusal)
			sp->resets[k]++;
		else
			sp->syns[k]++;
		if (sp->resets[k] + sp->syns[k] >= SAMPLED_FAILED_MEMORY) {
			sp->resets[k] /= 2;
			sp->syns[k] /= 2;
		}
	}
}

/* The sampled packets of kind k's spans ending at now into wc (a sampled host only). */
static void
samp_fill(const Analyzer *a, const Host *h, HeurWin k, gint64 now, WindowCounts *wc)
{
	const Sampled *sp = host_sampled(h);
	if (sp == NULL || h->sampling <= 1)
		return;
	const guint32 *pk = sp->pk + (gsize)k * sp->span;
	guint32 s = slice_of(a, now);
	for (guint w = 0; w < WINDOW_SPANS; w++) {
		guint64 sum = 0;
		guint32 span = MIN(a->cfg.span_slices[w], sp->span);
		for (guint32 i = 0; i < span && i <= sp->cur[k]; i++) {
			guint32 x = sp->cur[k] - i;
			if ((guint64)x + span > s)
				sum += pk[x % sp->span];
		}
		wc->span[w].packets = (guint32)MIN(sum, G_MAXUINT32);
	}
}

/* smtp-novelty's sampled packets in its window (a sampled host only). */
static guint32
samp_nov(const Analyzer *a, const Host *h, gint64 now)
{
	const Sampled *sp = host_sampled(h);
	if (sp == NULL || h->sampling <= 1)
		return 0;
	return bucket_count_sum(&sp->nov, nov_bucket(a, now));
}

/* smtp-novelty's counts from the port-25 window's (wc): span 0 = the new destinations in
 * the novelty window, with the sampled packets of the attempts in it. */
static void
novelty_counts(const Analyzer *a, const Host *h, gint64 now, WindowCounts *wc)
{
	WindowSpanCounts *n = &wc->span[WINDOW_SHORT];
	*n = wc->span[WINDOW_LONG];
	n->distinct = h != NULL ? nov_count(a, h, now) : 0;
	n->estimated = FALSE;
	n->packets = h != NULL ? samp_nov(a, h, now) : 0;
}

void
reason_counts(Analyzer *a, Host *h, AlertReason r, gint64 now, WindowCounts *wc)
{
	Window *w = h != NULL ? host_win(h, heuristics_reason_win(r)) : NULL;
	memset(wc, 0, sizeof *wc);
	if (w != NULL) {
		window_counts(w, &a->geom, now, wc);
		samp_fill(a, h, heuristics_reason_win(r), now, wc);
	}
	if (r == REASON_SMTP_NOVELTY)
		novelty_counts(a, h, now, wc);
}

/* One reason of one host, for a flow (evaluate()) and at every tick: thresholds, level,
 * whether the reason's raise condition holds, the offender's step, its event, and the
 * offender gone when it cleared. h: the host, NULL when it is no longer tracked; wc: the
 * counts of its window for r (zero without one); o: the offender, or NULL to look it up,
 * made when r crossed, nothing done when r neither crossed nor is active for h; hi: h's slab
 * index when o is NULL (the offender cache's key). A clear
 * takes r out of h->offenders; setting it is evaluate()'s, so a tick's update does not put
 * it back on a host that was evicted and came back. */
/* h is read at every slice's walk until a walk finds it below a quarter */
static inline void
hist_mark(Analyzer *a, Host *h)
{
	if (h->hist_cand)
		return;
	h->hist_cand = 1;
	g_array_append_vals(a->hist_cand, h->addr, 1);
}

/* ---- the quick judge ----
 * Most flows of a raised bot step nothing: its offender stays active and not below, and no
 * update is due (inside the update interval, or the level has not grown by the escalate
 * factor). Telling that needs the level alone, from its window's distinct counts, and the
 * other reason of the split returns early on the long window's failed share: the window's
 * kept sums give both (window_newest_tally()) without window_counts(), the crossing test or
 * judge_step(). Inside the update interval the level matters only against clear_level, and
 * once there it stays there until the next tick: between two ticks a window's counts in its
 * newest slice only grow (an estimate still read by linear counting excepted:
 * window_newest_distinct() says when). So the level found at clear_level or more is
 * remembered for the slice (OffEntry.quick_epoch, quick_cur) and an estimated window's
 * estimates are not asked again: half the quick judge's cost for a raised bot between its
 * updates (bench/README.md, "Issue 14, round 9"). */

/* evaluate() of window HEUR_WIN_SMTP_EXT of host h (slab index hi, not a mail server, no new
 * destination for smtp-novelty), right after the add of a flow at now, would step nothing:
 * h is unsampled, a history candidate already, and raised for exactly one of smtp-fanout
 * and smtp-blocked, whose offender's step is NONE and moves nothing at this level (active,
 * not below and staying so, no update due), and the other reason returns early in judge()
 * (not active, on the other side of the split). */
static inline gboolean
evaluate_quick(Analyzer *a, Host *h, guint32 hi, Window *w, gint64 now)
{
	const guint fan = 1u << REASON_SMTP_FANOUT, blk = 1u << REASON_SMTP_BLOCKED;
	guint m = h->offenders & (fan | blk);
	WindowTally t;
	if (m == 0) /* most hosts: raised for nothing */
		return FALSE;
	/* hist_cand as judge()'s early return asks it (a host a state load moved in has it
	 * clear: its first flows mark it) */
	if ((m != fan && m != blk) || h->sampling > 1 || !h->hist_cand || a->no_quick ||
	    !window_newest_attempts(w, &t))
		return FALSE;
	AlertReason r = m == fan ? REASON_SMTP_FANOUT : REASON_SMTP_BLOCKED;
	AlertReason other = m == fan ? REASON_SMTP_BLOCKED : REASON_SMTP_FANOUT;
	if (a->cfg.h[other].enabled &&
	    heuristics_split_side_of(other, t.long_attempts, t.long_failed, a->cfg.blocked_share,
				     a->cfg.blocked_min_attempts))
		return FALSE;
	OffEntry *o = off_find(a, h, hi, r);
	/* offender_step()'s early moves: a clock stepped back, a hold running. (A host's bit
	 * stands for an active offender, a clear takes both away; the state is read for a
	 * loaded state's sake.) */
	if (o == NULL || o->sm.state != OFFENDER_ACTIVE || o->sm.below || now < o->sm.last_event_ms)
		return FALSE;
	/* an update needs both the interval and the escalation, whatever `crossed` is */
	gboolean in_interval = now - o->sm.last_event_ms < a->policy.update_interval_ms;
	if (in_interval && o->quick_epoch == a->quick_epoch && o->quick_cur == window_cur(w)) {
		a->quick_known++;
		return TRUE; /* the level, at clear_level or more earlier in this slice, still is */
	}
	gboolean grows = window_newest_distinct(w, &a->geom, &t);
	guint32 thr[WINDOW_SPANS];
	thresholds_of(a, h, h->addr, r, thr);
	double level = heuristics_level_of(t.distinct, thr, NULL);
	if (level < a->policy.clear_level)
		return FALSE;
	/* (an estimate still read by linear counting may yet drop a little: not remembered) */
	o->quick_epoch = grows ? a->quick_epoch : 0;
	o->quick_cur = window_cur(w);
	return in_interval || level < o->sm.reported_level * a->policy.escalate_factor;
}

static G_GNUC_NO_INLINE OffenderStep
judge_step(Analyzer *a, Host *h, guint32 hi, AlertReason r, OffEntry *o, const WindowCounts *wc,
	   gint64 now)
{
	guint32 thr[WINDOW_SPANS];
	HeurSampling hs;
	thresholds_of(a, h, h != NULL ? h->addr : o->addr, r, thr);
	host_sampling(a, h, &hs);
	double level = heuristics_level(r, wc, thr, &hs, NULL);
	/* a sampled host's estimate can be at a quarter while its decision level is not: it is
	 * a candidate whenever judged (the walk keeps it only when its reading qualifies) */
	if (h != NULL && (level >= ANALYZER_READING_SHARE || h->sampling > 1))
		hist_mark(a, h);
	if (o == NULL && (h->offenders & (1u << r))) {
		o = off_find(a, h, hi, r);
		if (o == NULL)
			o = off_new(a, h->addr, r);
	}
	/* whether r crossed, unless the step would not read it (an active offender's flows
	 * between its updates: most of a raised host's) */
	gboolean crossed = FALSE;
	if (o == NULL || !offender_ignores_crossed(&o->sm, &a->policy, now)) {
		crossed = a->cfg.h[r].enabled &&
			  heuristics_crossed(r, level, wc, a->cfg.blocked_share,
					     a->cfg.blocked_min_attempts, &hs);
		crossed = crossed &&
			  !analyzer_policy_quiet(a, h != NULL ? h->addr : o->addr, r, now);
		/* smtp-novelty is the slow bot's reason: a host already raised for smtp-fanout
		 * or smtp-blocked is not raised for it too (one that was keeps it until it
		 * clears), ... */
		if (r == REASON_SMTP_NOVELTY && crossed && h != NULL &&
		    !(h->offenders & (1u << r)) &&
		    ((h->offenders & ((1u << REASON_SMTP_FANOUT) | (1u << REASON_SMTP_BLOCKED))) ||
		     host_mta_like(a, h, now)))
			crossed = FALSE; /* ... nor for a host that receives mail: an unlisted MTA */
	}
	if (o == NULL) {
		if (!crossed)
			return OFFENDER_STEP_NONE;
		o = off_find(a, h, hi, r);
		if (o == NULL)
			o = off_new(a, h->addr, r);
	}
	OffenderStep st = offender_step(&o->sm, &a->policy, now, crossed, level);
	if (st == OFFENDER_STEP_NONE)
		return st;
	events_emit(a, o, h, (AlertKind)st, now);
	if (st == OFFENDER_STEP_CLEARED) {
		if (h != NULL)
			h->offenders &= (guint8) ~(1u << r);
		off_remove(a, o);
	}
	return st;
}

static inline OffenderStep
judge(Analyzer *a, Host *h, guint32 hi, AlertReason r, OffEntry *o, const WindowCounts *wc,
      gint64 now)
{
	/* the other side of smtp-fanout/smtp-blocked's split, unsampled, not active, already a
	 * history candidate: it cannot cross and nothing in judge_step() would change */
	if (o == NULL && (r == REASON_SMTP_FANOUT || r == REASON_SMTP_BLOCKED) &&
	    h->sampling <= 1 && h->hist_cand && !(h->offenders & (1u << r)) &&
	    !heuristics_split_side(r, wc, a->cfg.blocked_share, a->cfg.blocked_min_attempts))
		return OFFENDER_STEP_NONE;
	return judge_step(a, h, hi, r, o, wc, now);
}

/* Evaluate every enabled reason that reads window wk of host h; novel: the flow brought
 * host h a new destination for smtp-novelty (which is judged only then, and at ticks). */
static void
evaluate(Analyzer *a, Host *h, guint32 hi, HeurWin wk, gboolean novel, gint64 now)
{
	if (wk == HEUR_WIN_SMTP_EXT && !novel && !h->is_mta &&
	    evaluate_quick(a, h, hi, host_win(h, wk), now)) {
		a->quick_flows++;
		return;
	}
	AlertReason rs[2];
	guint nr = 0;
	switch (wk) {
	case HEUR_WIN_SMTP_EXT:
		if (h->is_mta) {
			rs[nr++] = REASON_MTA_SURGE;
		} else {
			rs[nr++] = REASON_SMTP_FANOUT;
			rs[nr++] = REASON_SMTP_BLOCKED;
		}
		break;
	case HEUR_WIN_SMTP_INT:
		rs[nr++] = REASON_LATERAL_SMTP;
		break;
	case HEUR_WIN_SUBMIT:
		rs[nr++] = REASON_SUBMISSION_FANOUT;
		break;
	default:
		rs[nr++] = REASON_AUTH_BRUTEFORCE;
		break;
	}
	WindowCounts wc;
	gboolean have = FALSE;
	for (guint i = 0; i < nr; i++) {
		AlertReason r = rs[i];
		if (!a->cfg.h[r].enabled && !(h->offenders & (1u << r)))
			continue; /* nothing to raise, nothing active */
		if (!have) {
			window_counts(host_win(h, wk), &a->geom, now, &wc);
			samp_fill(a, h, wk, now, &wc);
			have = TRUE;
		}
		OffenderStep st = judge(a, h, hi, r, NULL, &wc, now);
		if (st == OFFENDER_STEP_RAISED || st == OFFENDER_STEP_UPDATED)
			h->offenders |= (guint8)(1u << r);
	}
	if (novel) {
		/* after smtp-fanout and smtp-blocked, which it gives way to */
		const AlertReason r = REASON_SMTP_NOVELTY;
		if (!(h->offenders & (1u << r)) && h->sampling <= 1) {
			/* unsampled and not raised: nothing happens under the threshold (most
			 * new destinations: a count, a compare) */
			guint32 thr[WINDOW_SPANS];
			thresholds_of(a, h, h->addr, r, thr);
			guint32 n = thr[WINDOW_SHORT] > 0 ? nov_count(a, h, now) : 0;
			if ((double)n >= ANALYZER_READING_SHARE * thr[WINDOW_SHORT] && n > 0)
				hist_mark(a, h);
			if (thr[WINDOW_SHORT] == 0 || n < thr[WINDOW_SHORT])
				return;
		}
		if (!have) {
			window_counts(host_win(h, wk), &a->geom, now, &wc);
			samp_fill(a, h, wk, now, &wc);
		}
		novelty_counts(a, h, now, &wc);
		OffenderStep st = judge(a, h, hi, r, NULL, &wc, now);
		if (st == OFFENDER_STEP_RAISED || st == OFFENDER_STEP_UPDATED)
			h->offenders |= (guint8)(1u << r);
	}
}

/* ---- processing ---- */

static void
note_exporter(Host *h, guint32 exporter)
{
	for (guint i = 0; i < MIN(h->n_exporters, 2u); i++) {
		if (h->exporters[i] == exporter)
			return;
	}
	if (h->n_exporters < 2)
		h->exporters[h->n_exporters] = exporter;
	if (h->n_exporters < G_MAXUINT8)
		h->n_exporters++;
}

static void
process_one(Analyzer *a, const Flow *f)
{
	gint64 now = f->recv_ms;
	HeurClass c;
	Flow view; /* a firewall record as read (fwmode.c); c's addresses may point into it */

	a->st.flows_seen++;
	a->now_ms = now;
	if (now - a->last_tick_ms >= a->cfg.slice_ms || now < a->last_tick_ms)
		analyzer_tick(a, now);
	if (!heuristics_relevant(&a->hc, f))
		return;
	const Flow *cf = G_UNLIKELY(f->has & FLOW_HAS_FW_EVENT) ? fwmode_view(a, f, &view, now) : f;
	heuristics_classify_relevant(&a->hc, cf, &c);
	if (c.dir == HEUR_IGNORE) {
		if (G_UNLIKELY(c.outside))
			a->st.flows_outside++;
		return;
	}
	if (c.dir == HEUR_INBOUND_SMTP || c.dir == HEUR_DNS_EXTERNAL) {
		signs_note(a, &c, now);
		return;
	}
	if (c.dir == HEUR_REVERSE) {
		Host *h = host_lookup(a, c.host);
		Window *rw = h != NULL ? host_win(h, c.win) : NULL;
		if (rw != NULL) {
			window_answer(rw, &a->geom, c.peer);
			a->st.flows_relevant++;
			if (a->cfg.flow_fn != NULL)
				a->cfg.flow_fn(f, &c, a->cfg.flow_data);
		}
		return;
	}
	if (G_UNLIKELY(c.answer || c.refusal || c.host_answers)) {
		/* a server's packet is a sample of the host's attempt only if the host made
		 * some: SYN-ACKs and resets that answer SYNs spoofed in its name (backscatter)
		 * would otherwise make a bot of it; nor is the host's own answer to a connection
		 * it did not open (a flow of a host that has a window, no attempt) reason to
		 * track it */
		Host *h0 = host_lookup(a, c.host);
		if (h0 == NULL || host_win(h0, c.win) == NULL) {
			a->st.answers_untracked++;
			return;
		}
	}
	a->st.flows_relevant++;
	guint32 hi;
	Host *h = host_get(a, c.host, &hi);
	if (h == NULL)
		return;
	h->last_ms = now;
	h->is_mta = (guint8)c.host_is_mta;
	note_exporter(h, f->exporter);
	h->sampling = MAX(h->sampling, MAX(f->sampling, 1u));
	Window *w = host_win(h, c.win);
	if (w == NULL) {
		gsize ext0 = ext_mem(h);
		w = host_win_new(h, c.win);
		a->mem += host_win_mem(h, w) + ext_mem(h) - ext0;
	}
	if (h->is_mta && c.win == HEUR_WIN_SMTP_EXT && a->cfg.h[REASON_MTA_SURGE].enabled)
		baseline_sample(a, h, w, now);
	gboolean was_est = window_estimating(w);
	gssize held = 0;
	if (G_UNLIKELY(c.failed && f->sampling > 1) && window_dest_answered(w, &a->geom, c.peer))
		c.failed = FALSE;
	guint r = window_add_held(w, &a->geom, now, c.peer, c.dir == HEUR_FORWARD, c.failed, &held);
	if (G_UNLIKELY(c.answer))
		window_answer(w, &a->geom, c.peer);
	if (f->sampling > 1 && c.dir == HEUR_FORWARD)
		samp_add(a, h, c.win, (guint32)MIN(f->packets, (guint64)G_MAXUINT32), &c, now);
	if (a->cfg.flow_fn != NULL)
		a->cfg.flow_fn(f, &c, a->cfg.flow_data);
	/* a->mem holds the window's window_mem() (it moves by what the window's moved by) */
	if (held != 0)
		a->mem = held < 0 ? a->mem - MIN((gsize)-held, a->mem) : a->mem + (gsize)held;
	if (r & WINDOW_ADD_LATE)
		a->st.flows_late++;
	if (r & WINDOW_ADD_RESET)
		a->st.window_resets++;
	if (was_est != window_estimating(w) && !host_estimating_except(h, c.win)) {
		/* the host's only estimating window switched */
		if (was_est)
			a->n_hosts_est--;
		else
			a->n_hosts_est++;
	}
	if (!was_est && window_estimating(w))
		a->st.estimate_switches++;
	if (a->geo_fn != NULL && c.dir == HEUR_FORWARD)
		geo_update(a, h, c.win, w, c.peer, r, now);
	/* smtp-novelty: a destination new in the window (or any, when it estimates and cannot
	 * tell) is looked up in the seen set; not for a host raised for smtp-fanout or
	 * smtp-blocked and not for smtp-novelty (it would not be raised for it, and a bot's
	 * flood of fresh destinations would fill the seen set and shorten every host's
	 * memory: the outbreak is already told) */
	gboolean novel = FALSE;
	if (c.win == HEUR_WIN_SMTP_EXT && c.dir == HEUR_FORWARD && !h->is_mta &&
	    a->cfg.h[REASON_SMTP_NOVELTY].enabled &&
	    ((h->offenders & (1u << REASON_SMTP_NOVELTY)) ||
	     !(h->offenders & ((1u << REASON_SMTP_FANOUT) | (1u << REASON_SMTP_BLOCKED)))) &&
	    ((r & WINDOW_ADD_NEW_DEST) || window_estimating(w))) {
		a->st.novelty_lookups++;
		if (!novelty_check_insert(nov_set(a), novelty_pair_key(h->addr, c.peer), now)) {
			a->st.novelty_new++;
			nov_add(a, h, now);
			novel = TRUE;
		}
	}
	evaluate(a, h, hi, c.win, novel, now);
	hosts_enforce_caps(a, hi);
}

gboolean
analyzer_flow_host(const Analyzer *a, const Flow *f, guint8 host[16], gboolean *outside)
{
	HeurClass c;

	if (outside != NULL)
		*outside = FALSE;
	if (!heuristics_relevant(&a->hc, f))
		return FALSE;
	heuristics_classify_relevant(&a->hc, f, &c);
	if (c.dir == HEUR_IGNORE) {
		if (outside != NULL)
			*outside = c.outside;
		return FALSE;
	}
	memcpy(host, c.host, 16);
	return TRUE;
}

void
analyzer_process(Analyzer *a, const Flow *flows, guint n)
{
	for (const Flow *f = flows, *end = flows + n; f != end; f++)
		process_one(a, f);
}

/* Records that tell a host of ours: fed a window, or a side sign (noted or not), or an
 * answer to an internal host. */
static guint64
scope_inside(const Analyzer *a)
{
	return a->st.flows_relevant + a->st.signs_inbound_smtp + a->st.signs_dns_external +
	       a->st.signs_untracked + a->st.answers_untracked;
}

void
analyzer_scope_watch_init(AnalyzerScopeWatch *w)
{
	memset(w, 0, sizeof *w);
	w->since_ms = w->told_ms = G_MININT64;
}

gboolean
analyzer_scope_watch(AnalyzerScopeWatch *w, gint64 now, guint64 outside, guint64 inside,
		     guint64 *told, gint64 *period_ms)
{
	if (w->since_ms != G_MININT64 && now >= w->since_ms &&
	    now - w->since_ms < ANALYZER_SCOPE_PERIOD_MS)
		return FALSE;
	guint64 out = outside - w->outside0, in = inside - w->inside0;
	gboolean full = w->since_ms != G_MININT64 && now >= w->since_ms;
	gint64 period = full ? now - w->since_ms : 0;
	w->since_ms = now;
	w->outside0 = outside;
	w->inside0 = inside;
	if (!full || out < ANALYZER_SCOPE_MIN_OUTSIDE || in != 0)
		return FALSE;
	if (w->told_ms != G_MININT64 && now >= w->told_ms &&
	    now - w->told_ms < ANALYZER_SCOPE_REPEAT_MS)
		return FALSE;
	w->told_ms = now;
	*told = out;
	*period_ms = period;
	return TRUE;
}

/* ANALYZER_NOTICE_OUTSIDE: internal_networks that cover none of the hosts the exports see
 * leave the analyzer blind without a word; a period of mail traffic with no internal end at
 * all says so. (Transit alone, an exporter that sees no host of the site, says so too: the
 * notice names both.) */
static void
scope_check(Analyzer *a, gint64 now)
{
	AnalyzerNoticeInfo info = {0};
	if (analyzer_scope_watch(&a->scope, now, a->st.flows_outside, scope_inside(a),
				 &info.outside, &info.outside_ms) &&
	    a->notice_fn != NULL)
		a->notice_fn(ANALYZER_NOTICE_OUTSIDE, &info, a->notice_data);
}

void
analyzer_tick(Analyzer *a, gint64 now_ms)
{
	OffEntry *next;

	a->last_tick_ms = now_ms;
	a->quick_epoch++;
	if (now_ms > a->now_ms)
		a->now_ms = now_ms;
	if (a->cfg.slice_fn != NULL && now_ms >= 0) {
		/* in ms, not slice numbers: a reload that changes the width goes on from here */
		gint64 start = now_ms / a->cfg.slice_ms * a->cfg.slice_ms;
		if (start > a->last_slice) {
			if (a->last_slice >= 0)
				a->cfg.slice_fn(start, a->cfg.slice_data);
			a->last_slice = start;
		}
	}
	for (OffEntry *o = a->off_head; o != NULL; o = next) {
		next = o->next; /* judge() frees o when it clears */
		Host *h = host_lookup(a, o->addr);
		WindowCounts wc;
		reason_counts(a, h, o->reason, now_ms, &wc);
		judge(a, h, HOST_NONE, o->reason, o, &wc, now_ms);
	}
	hosts_expire(a, now_ms);
	hosts_notice(a, FALSE);
	scope_check(a, now_ms);
	analyzer_policy_expire(a, now_ms);
}

void
analyzer_flush_notices(Analyzer *a)
{
	hosts_notice(a, TRUE);
}

/* ---- setup ---- */

Analyzer *
analyzer_new(const AnalyzerConfig *cfg, GError **error)
{
	AnalyzerParsed p;
	if (!analyzer_config_parse(cfg, &p, error))
		return NULL;
	Analyzer *a = g_new0(Analyzer, 1);
	a->quick_epoch = 1; /* an OffEntry's 0 matches none */
	analyzer_policy_init(a);
	analyzer_config_apply(a, cfg, &p);
	a->alert_fn = cfg->alert_fn;
	a->alert_data = cfg->alert_data;
	a->geo_fn = cfg->geo_fn;
	a->geo_data = cfg->geo_data;
	a->notice_fn = cfg->notice_fn;
	a->notice_data = cfg->notice_data;
	hosts_init(a);
	fwmode_init(a);
	analyzer_scope_watch_init(&a->scope);
	events_init(a, cfg->history_len);
	a->last_tick_ms = G_MININT64 / 2;
	a->last_slice = -1;
	a->hist_cand = g_array_new(FALSE, FALSE, 16);
	a->hist_full = TRUE;
	return a;
}

void
analyzer_free(Analyzer *a)
{
	if (a == NULL)
		return;
	hosts_free(a);
	fwmode_free(a);
	events_free(a);
	if (a->hist_cand != NULL)
		g_array_unref(a->hist_cand);
	analyzer_config_clear(a);
	novelty_free(a->nov);
	analyzer_policy_free(a);
	g_free(a);
}

/* ---- queries ---- */

void
analyzer_get_stats(const Analyzer *a, AnalyzerStats *out)
{
	*out = a->st;
	out->hosts_tracked = a->n_hosts;
	out->offenders_active = g_hash_table_size(a->offenders);
	out->mem_bytes = a->mem;
	out->mem_cap = a->cfg.mem_cap;
	out->hosts_estimated = a->n_hosts_est; /* maintained: stats cost no walk of the hosts */
	out->novelty_capacity = a->nov_capacity;
	if (a->nov != NULL) {
		NoveltyInfo ni;
		novelty_info(a->nov, &ni);
		out->novelty_bytes = ni.bytes;
		out->novelty_capacity = ni.capacity;
		out->novelty_pairs = ni.pairs[0];
		out->novelty_rotations = ni.rotations;
		out->novelty_early_rotations = ni.early_rotations;
		out->novelty_generation_ms = MAX(ni.started_ms[0], 0);
	}
	out->suppressions = analyzer_suppression_count(a);
}

guint64
analyzer_count_estimating(const Analyzer *a)
{
	guint64 n = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next)
		n += host_estimating(host_at(a, i));
	return n;
}

/* Why reason r of host h, at level with the raise condition `crossed` (heuristics_crossed()),
 * would not be raised now: AnalyzerHeld. The same rules as judge_step()'s. The split is told
 * of an active offender too (its flows now count for the other reason); the rest only of a
 * reason not active; smtp-novelty's giving way to a raised smtp-fanout/smtp-blocked whether
 * it is past its threshold or not. */
static AnalyzerHeld
held_why(const Analyzer *a, const Host *h, AlertReason r, double level, gboolean crossed,
	 const guint32 thr[WINDOW_SPANS], const HeurEstimate basis[WINDOW_SPANS])
{
	AnalyzerHeld why = ANALYZER_HELD_NONE;
	if (level >= 1.0 && !crossed) {
		/* heuristics_crossed() says no past the threshold: the split, or too few seen */
		if (r == REASON_SMTP_FANOUT || r == REASON_SMTP_BLOCKED)
			return ANALYZER_HELD_SPLIT;
		if (r == REASON_SMTP_NOVELTY)
			why = ANALYZER_HELD_FEW_SAMPLED;
	} else if (!crossed && h->sampling > 1) {
		for (guint k = 0; k < WINDOW_SPANS && why == ANALYZER_HELD_NONE; k++)
			if (thr[k] > 0 && basis[k].estimate >= thr[k])
				why = ANALYZER_HELD_CONFIDENCE;
	}
	if (h->offenders & (1u << r))
		return ANALYZER_HELD_NONE;
	/* smtp-novelty gives way, whatever else holds it back. To a host raised for smtp-fanout
	 * or smtp-blocked also under its threshold: its new destinations are not looked up
	 * meanwhile (process_one()), so its count stopped growing when that was raised, and a
	 * count far below the window's distinct destinations needs saying why */
	if (r == REASON_SMTP_NOVELTY &&
	    (h->offenders & ((1u << REASON_SMTP_FANOUT) | (1u << REASON_SMTP_BLOCKED))))
		return ANALYZER_HELD_GIVES_WAY_RAISED;
	if (r == REASON_SMTP_NOVELTY && (crossed || why != ANALYZER_HELD_NONE) &&
	    host_mta_like(a, h, a->now_ms))
		return ANALYZER_HELD_GIVES_WAY_MAIL;
	return why;
}

gboolean
analyzer_host_info(Analyzer *a, const guint8 addr[16], AnalyzerHostInfo *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->addr, addr, 16);
	out->is_mta = netset_contains(a->mtas, addr);
	out->is_internal = netset_contains(a->internal, addr);
	gboolean found = FALSE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (off_lookup(a, addr, r) != NULL) {
			out->offender_mask |= 1u << r;
			found = TRUE;
		}
	}
	Host *h = host_lookup(a, addr);
	if (h == NULL)
		return found;
	out->last_seen_ms = h->last_ms;
	out->sampling = h->sampling;
	out->n_exporters = MIN(h->n_exporters, 2u);
	memcpy(out->exporters, h->exporters, out->n_exporters * sizeof(guint32));
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		Window *w = host_win(h, k);
		if (w == NULL)
			continue;
		out->win[k].tracked = TRUE;
		window_counts(w, &a->geom, a->now_ms, &out->win[k].counts);
		out->win[k].n_top =
		    window_top(w, &a->geom, a->now_ms, out->win[k].top, WINDOW_TOP_MAX);
	}
	out->novelty = nov_count(a, h, a->now_ms);
	out->novelty_window_ms = a->cfg.novelty_window_ms;
	HeurSampling hs;
	host_sampling(a, h, &hs);
	for (guint r = 0; r < REASON_COUNT; r++) {
		__typeof__(out->reason[0]) *o = &out->reason[r];
		reason_counts(a, h, r, a->now_ms, &o->counts);
		thresholds(a, h, addr, r, o->threshold);
		for (guint k = 0; k < WINDOW_SPANS; k++) {
			o->value[k] = heuristics_metric(r, &o->counts.span[k]);
			heuristics_estimate_basis(r, &o->counts.span[k], &hs, &o->basis[k]);
			o->estimate[k] = (guint32)MIN(o->basis[k].estimate + 0.5, (double)G_MAXUINT32);
			o->estimate_se[k] = (guint32)MIN(o->basis[k].se + 0.5, (double)G_MAXUINT32);
		}
		o->level = heuristics_level(r, &o->counts, o->threshold, &hs, NULL);
		gboolean crossed = heuristics_crossed(r, o->level, &o->counts, a->cfg.blocked_share,
						      a->cfg.blocked_min_attempts, &hs);
		/* disabled, exempt or suppressed: the reply says that itself, no held note */
		gboolean off = !a->cfg.h[r].enabled || analyzer_policy_quiet(a, addr, r, a->now_ms);
		o->held = off ? ANALYZER_HELD_NONE
			      : held_why(a, h, r, o->level, crossed, o->threshold, o->basis);
		if (o->held == ANALYZER_HELD_GIVES_WAY_RAISED ||
		    o->held == ANALYZER_HELD_GIVES_WAY_MAIL)
			crossed = FALSE;
		o->crossed = !off && crossed;
	}
	if (host_base(h) != NULL) {
		memcpy(out->baseline_median, host_base(h)->median, sizeof out->baseline_median);
		out->baseline_samples = host_base(h)->n;
	}
	out->is_resolver = netset_contains(a->resolvers, addr);
	out->resolvers_configured = netset_size(a->resolvers) > 0;
	out->inbound_smtp = host_inbound_smtp(h, a->now_ms);
	out->dns_external = host_dns_external(h, a->now_ms);
	out->dns_corroborated = host_dns_corroborates(a, h, a->now_ms);
	if (host_signs(h) != NULL && host_signs(h)->dns_last_ms != 0) {
		memcpy(out->dns_server, host_signs(h)->dns_server, 16);
		out->has_dns_server = TRUE;
		out->dns_last_ms = host_signs(h)->dns_last_ms;
	}
	if (!out->is_mta) {
		WindowCounts none;
		memset(&none, 0, sizeof none);
		gboolean t = out->win[HEUR_WIN_SMTP_EXT].tracked;
		/* sampled: each inbound session seen stands for N */
		out->mta_like = heuristics_mta_like(out->inbound_smtp * MAX(out->sampling, 1u),
						    t ? &out->win[HEUR_WIN_SMTP_EXT].counts : &none,
						    a->now_ms, analyzer_long_ms(a));
	}
	return TRUE;
}

/* The readings of tracked host h now (AnalyzerReading). */
static void
host_reading(Analyzer *a, Host *h, AnalyzerReading *out)
{
	HeurSampling hs;
	gboolean is_mta = h->is_mta;

	memset(out, 0, sizeof *out);
	memcpy(out->addr, h->addr, 16);
	out->sampled = h->sampling > 1;
	out->offender_mask = h->offenders;
	host_sampling(a, h, &hs);
	/* each window counted once (reason_counts() per reason would count the port-25 window
	 * three times): at a million hosts this walk is the store's cost on the main loop */
	WindowCounts wcs[HEUR_WIN_COUNT];
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		Window *w = host_win(h, k);
		memset(&wcs[k], 0, sizeof wcs[k]);
		if (w == NULL)
			continue;
		window_counts(w, &a->geom, a->now_ms, &wcs[k]);
		samp_fill(a, h, k, a->now_ms, &wcs[k]);
		out->flows += wcs[k].span[WINDOW_SHORT].flows;
		out->attempts += wcs[k].span[WINDOW_SHORT].attempts;
		out->failed += wcs[k].span[WINDOW_SHORT].failed;
	}
	for (guint r = 0; r < REASON_COUNT; r++) {
		gboolean active = (h->offenders & (1u << r)) != 0;
		if (host_win(h, heuristics_reason_win(r)) == NULL && !active)
			continue;
		/* as `host` lists them: mta-surge for mail servers, the fan-outs and smtp-novelty
		 * for the others */
		if (!active && (r == REASON_MTA_SURGE) != is_mta &&
		    (r == REASON_MTA_SURGE || r == REASON_SMTP_FANOUT || r == REASON_SMTP_BLOCKED ||
		     r == REASON_SMTP_NOVELTY))
			continue;
		out->reason_mask |= 1u << r;
		/* = reason_counts(a, h, r, a->now_ms, &wc) */
		WindowCounts wc = wcs[heuristics_reason_win(r)];
		if (r == REASON_SMTP_NOVELTY)
			novelty_counts(a, h, a->now_ms, &wc);
		thresholds(a, h, h->addr, r, out->threshold[r]);
		for (guint k = 0; k < WINDOW_SPANS; k++) {
			out->value[r][k] = heuristics_metric(r, &wc.span[k]);
			if (out->sampled) {
				double e, se;
				heuristics_estimate(r, &wc.span[k], &hs, &e, &se);
				out->estimate[r][k] = (guint32)MIN(e + 0.5, (double)G_MAXUINT32);
			}
		}
		if (r == REASON_SMTP_NOVELTY) /* as its alerts: the long window is context */
			out->value[r][WINDOW_LONG] = out->estimate[r][WINDOW_LONG] = 0;
	}
}

gboolean
analyzer_host_reading(Analyzer *a, const guint8 addr[16], AnalyzerReading *out)
{
	Host *h = host_lookup(a, addr);
	if (h == NULL)
		return FALSE;
	host_reading(a, h, out);
	return TRUE;
}

/* The reading r qualifies for the history: an offender, or a quarter of a threshold */
static gboolean
reading_kept(const Analyzer *a, const AnalyzerReading *r, double min_share)
{
	if (r->offender_mask != 0)
		return TRUE;
	for (guint k = 0; k < REASON_COUNT; k++) {
		if (!(r->reason_mask & (1u << k)) || !a->cfg.h[k].enabled)
			continue;
		for (guint w = 0; w < WINDOW_SPANS; w++) {
			guint32 v = MAX(r->value[k][w], r->estimate[k][w]);
			if (r->threshold[k][w] > 0 && v > 0 &&
			    (double)v >= min_share * r->threshold[k][w])
				return TRUE;
		}
	}
	return FALSE;
}

void
analyzer_foreach_reading(Analyzer *a, double min_share, AnalyzerReadingFunc fn, gpointer user_data)
{
	AnalyzerReading r;

	/* values only grow with flows, and judge() marks a host as it reaches a quarter: the
	 * candidates hold every host that can qualify, unless thresholds or hosts changed
	 * without a flow (start, reload, restore: hist_full) or a lower share is asked */
	gboolean rebuild = min_share >= ANALYZER_READING_SHARE;
	/* with a candidate in every eighth host, the recency list's order beats their lookups
	 * (measured: 195 against 400 ms with every one of a million hosts recorded) */
	if (a->hist_full || !rebuild ||
	    (a->hist_cand->len > 4096 && a->hist_cand->len > a->n_hosts / 8)) {
		if (rebuild)
			g_array_set_size(a->hist_cand, 0); /* made again from this walk */
		for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next) {
			Host *h = host_at(a, i);
			host_reading(a, h, &r);
			gboolean keep = reading_kept(a, &r, min_share);
			if (rebuild) {
				h->hist_cand = 0;
				if (keep)
					hist_mark(a, h);
			}
			if (keep)
				fn(&r, user_data);
		}
		if (rebuild)
			a->hist_full = FALSE;
		return;
	}
	/* pass 1: each candidate once (a host dropped and made again can have two entries: the
	 * flag, cleared at its first, drops the second); pass 2: the kept ones flagged again */
	guint8(*addrs)[16] = (guint8(*)[16])(void *)a->hist_cand->data;
	guint n = a->hist_cand->len, kept = 0;
	for (guint i = 0; i < n; i++) {
		Host *h = host_lookup(a, addrs[i]);
		if (h == NULL || !h->hist_cand)
			continue;
		h->hist_cand = 0;
		host_reading(a, h, &r);
		if (!reading_kept(a, &r, min_share))
			continue;
		fn(&r, user_data);
		if (kept != i)
			memcpy(addrs[kept], addrs[i], 16);
		kept++;
	}
	g_array_set_size(a->hist_cand, kept);
	for (guint i = 0; i < kept; i++)
		host_lookup(a, addrs[i])->hist_cand = 1;
}

gboolean
analyzer_forget(Analyzer *a, const guint8 addr[16])
{
	gboolean found = FALSE;
	for (guint r = 0; r < REASON_COUNT; r++) {
		OffEntry *o = off_lookup(a, addr, r);
		if (o != NULL) {
			off_remove(a, o);
			found = TRUE;
		}
	}
	guint32 i = host_index(a, addr);
	if (i != HOST_NONE) {
		host_drop(a, i);
		found = TRUE;
	}
	return found;
}

gsize
analyzer_host_overhead(void)
{
	/* the host, one window and its destination table's allocation (HOST_COST's comment) */
	return HOST_COST + WINDOW_ALLOC_OVERHEAD;
}

gint64
analyzer_now(const Analyzer *a)
{
	return a->now_ms;
}

gint64
analyzer_slice_ms(const Analyzer *a)
{
	return a->cfg.slice_ms;
}
