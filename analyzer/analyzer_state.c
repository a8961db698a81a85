/* Restart without loss: the analyzer's state written to bytes and read back, every value
 * of it checked (the bytes come from a file). The format:
 *
 * analyzer_state_save() writes, big-endian, every record behind a u32 length of its own
 * (parsed inside that length, which it must fill exactly):
 *   "SFAN", u16 version (ANALYZER_STATE_VERSION; version 1, without side signs, loads too)
 *   i64 slice_ms, u32 short span, u32 long span: the geometry the windows were counted in
 *   i64 now_ms, i64 last_tick_ms
 *   (version 2) i64 novelty window: the width of the hosts' novelty buckets x NOV_BUCKETS
 *   u32 nhosts,  nhosts x host, least recently seen first (loading each at the head of the
 *                recency list rebuilds the same order)
 *   u32 noff,    noff x offender, in creation order (the order ticks visit them)
 *   u32 nevents, nevents x event, the history oldest first
 *   (version 2) the smtp-novelty seen set: u32 length, novelty_state_save() (novelty.h);
 *               length 0: none was made
 * host:     16 addr, i64 last_ms, u32 sampling (>= 1), u8 exporters seen (saturating),
 *           min(that, 2) x u32 exporter, u8 offender bits (1 << reason), u8 parts: bit k
 *           (k < HEUR_WIN_COUNT) window k, bit 4 baseline, bit 5 country/ASN sets, bit 6
 *           side signs (version 2); then
 *           each window present: u32 length + window_state_save() (window.c);
 *           baseline: u32 next sample slice, u32 n, n x {u32 short, u32 long} oldest first;
 *           sets: HEUR_WIN_COUNT x {u8 started, u32 sat_cc, u32 sat_as, u32 est_skip,
 *           u8 n_cc, n_cc x {u32 slice, 2 chars}, u8 n_as, n_as x {u32 slice, u32 asn}};
 *           signs: inbound and dns, each u32 newest bucket + SIGNS_BUCKETS x u32 count
 *           (bucket b at b % SIGNS_BUCKETS), then i64 dns_last_ms, 16 dns_server
 *           (version 2) u32 nov_cur, NOV_BUCKETS x u16 novelty counts
 * offender: 16 addr, u8 reason, u8 state, i64 raised_ms, i64 last_event_ms, u8 below,
 *           i64 below_since_ms, f64 reported_level, u32 updates, u8 has_peer, 16 peer,
 *           then its last event
 * event:    alert_codec_put() (alert_codec.h: the AlertEvent's fields in declaration order;
 *           version 1 files hold ALERT_CODEC_VERSION_NO_SIGNS events, without the
 *           estimates, the side signs and the group)
 * Derived values are recomputed instead of saved: baseline medians, capacities of the small
 * sets, the memory estimate, is_mta. Statistics start from zero, as they do at every start. */
#include "analyzer_private.h"

#include <stdarg.h>

#include "alert_codec.h"
#include "statebuf.h"

#define ANALYZER_STATE_MAGIC "SFAN"
#define ANALYZER_STATE_VERSION 2 /* smtp-novelty, the estimates, the side signs */
#define ANALYZER_STATE_VERSION_NO_SIGNS 1 /* before them: still read */
#define STATE_PART_BASELINE (1u << HEUR_WIN_COUNT)
#define STATE_PART_GEO (2u << HEUR_WIN_COUNT)
#define STATE_PART_SIGNS (4u << HEUR_WIN_COUNT)
G_STATIC_ASSERT(HEUR_WIN_COUNT + 3 <= 8 && REASON_COUNT <= 8);
#define STATE_MIN_HOST (4 + 16 + 8 + 4 + 3) /* the smallest host record, with its length */
#define STATE_MIN_RECORD 4 /* a record length; its contents are checked inside it */
#define STATE_MAX_BASELINE 100000

/* The form of the events (alert_codec.h) in a state file of this version. */
static guint
event_version(guint version)
{
	return version == ANALYZER_STATE_VERSION_NO_SIGNS ? ALERT_CODEC_VERSION_NO_SIGNS
							  : ALERT_CODEC_VERSION;
}

static void
save_sign_count(GByteArray *out, const SignCount *sc)
{
	statebuf_put_u32(out, sc->cur);
	for (guint i = 0; i < SIGNS_BUCKETS; i++)
		statebuf_put_u32(out, sc->n[i]);
}

static void
save_geo(GByteArray *out, const GeoSet *g)
{
	statebuf_put_u8(out, g->started != 0);
	statebuf_put_u32(out, g->sat_cc);
	statebuf_put_u32(out, g->sat_as);
	statebuf_put_u32(out, g->est_skip);
	statebuf_put_u8(out, g->n_cc);
	for (guint i = 0; i < g->n_cc; i++) {
		statebuf_put_u32(out, g->cc[i].slice);
		statebuf_put_bytes(out, g->cc[i].cc, 2);
	}
	statebuf_put_u8(out, g->n_as);
	for (guint i = 0; i < g->n_as; i++) {
		statebuf_put_u32(out, g->as[i].slice);
		statebuf_put_u32(out, g->as[i].asn);
	}
}

static void
save_host(GByteArray *out, const Host *h)
{
	guint8 parts = 0;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (host_win(h, k) != NULL)
			parts |= (guint8)(1u << k);
	}
	if (host_base(h) != NULL)
		parts |= STATE_PART_BASELINE;
	if (host_geo(h) != NULL)
		parts |= STATE_PART_GEO;
	if (host_signs(h) != NULL)
		parts |= STATE_PART_SIGNS;
	statebuf_put_bytes(out, h->addr, 16);
	statebuf_put_i64(out, h->last_ms);
	statebuf_put_u32(out, h->sampling);
	statebuf_put_u8(out, h->n_exporters);
	for (guint i = 0; i < MIN(h->n_exporters, 2u); i++)
		statebuf_put_u32(out, h->exporters[i]);
	statebuf_put_u8(out, h->offenders);
	statebuf_put_u8(out, parts);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (host_win(h, k) == NULL)
			continue;
		gsize mark = statebuf_begin(out);
		window_state_save(host_win(h, k), out);
		statebuf_end(out, mark);
	}
	if (host_base(h) != NULL) {
		const Baseline *b = host_base(h);
		statebuf_put_u32(out, b->next_slice);
		statebuf_put_u32(out, b->n);
		/* oldest first: the ring's filled part ends just before head */
		for (guint i = 0; i < b->n; i++) {
			guint j = (b->head + b->cap - b->n + i) % b->cap;
			for (guint k = 0; k < WINDOW_SPANS; k++)
				statebuf_put_u32(out, b->ring[k * b->cap + j]);
		}
	}
	if (host_geo(h) != NULL) {
		for (guint k = 0; k < HEUR_WIN_COUNT; k++)
			save_geo(out, &host_geo(h)[k]);
	}
	if (host_signs(h) != NULL) {
		const HostSigns *sg = host_signs(h);
		save_sign_count(out, &sg->inbound);
		save_sign_count(out, &sg->dns);
		statebuf_put_i64(out, sg->dns_last_ms);
		statebuf_put_bytes(out, sg->dns_server, 16);
	}
	statebuf_put_u32(out, h->nov_cur);
	for (guint i = 0; i < NOV_BUCKETS; i++)
		statebuf_put_u16(out, h->nov[i]);
}

static void
save_offender(GByteArray *out, const OffEntry *o)
{
	statebuf_put_bytes(out, o->addr, 16);
	statebuf_put_u8(out, (guint8)o->reason);
	statebuf_put_u8(out, (guint8)o->sm.state);
	statebuf_put_i64(out, o->sm.raised_ms);
	statebuf_put_i64(out, o->sm.last_event_ms);
	statebuf_put_u8(out, o->sm.below != 0);
	statebuf_put_i64(out, o->sm.below_since_ms);
	statebuf_put_f64(out, o->sm.reported_level);
	statebuf_put_u32(out, o->sm.n_updates);
	statebuf_put_u8(out, o->has_peer != 0);
	statebuf_put_bytes(out, o->peer, 16);
	alert_codec_put(out, &o->last);
}

void
analyzer_state_save(Analyzer *a, GByteArray *out)
{
	gsize mark;
	guint n = 0;

	statebuf_put_bytes(out, ANALYZER_STATE_MAGIC, 4);
	statebuf_put_u16(out, ANALYZER_STATE_VERSION);
	statebuf_put_i64(out, a->cfg.slice_ms);
	statebuf_put_u32(out, a->cfg.span_slices[WINDOW_SHORT]);
	statebuf_put_u32(out, a->cfg.span_slices[WINDOW_LONG]);
	statebuf_put_i64(out, a->now_ms);
	statebuf_put_i64(out, a->last_tick_ms);
	statebuf_put_i64(out, a->cfg.novelty_window_ms);

	statebuf_put_u32(out, a->n_hosts);
	for (guint32 i = a->lru_tail; i != HOST_NONE; i = host_at(a, i)->prev) {
		mark = statebuf_begin(out);
		save_host(out, host_at(a, i));
		statebuf_end(out, mark);
	}
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next)
		n++;
	statebuf_put_u32(out, n);
	for (const OffEntry *o = a->off_head; o != NULL; o = o->next) {
		mark = statebuf_begin(out);
		save_offender(out, o);
		statebuf_end(out, mark);
	}
	statebuf_put_u32(out, a->hist_n);
	for (guint i = a->hist_n; i-- > 0;) {
		mark = statebuf_begin(out);
		alert_codec_put(out, analyzer_history_get(a, i));
		statebuf_end(out, mark);
	}
	mark = statebuf_begin(out);
	if (a->nov != NULL)
		novelty_state_save(a->nov, out);
	statebuf_end(out, mark);
}

/* ---- loading ---- */

static gboolean state_fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean
state_fail(GError **error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, ANALYZER_ERROR, ANALYZER_ERROR_INVALID, "analyzer state: %s", msg);
	return FALSE;
}

static gboolean
load_sign_count(Cursor *c, SignCount *sc)
{
	if (!cursor_u32(c, &sc->cur))
		return FALSE;
	for (guint i = 0; i < SIGNS_BUCKETS; i++) {
		if (!cursor_u32(c, &sc->n[i]))
			return FALSE;
	}
	return TRUE;
}

static gboolean
load_signs(Cursor *c, HostSigns *sg)
{
	return load_sign_count(c, &sg->inbound) && load_sign_count(c, &sg->dns) &&
	       statebuf_get_time(c, &sg->dns_last_ms) && cursor_bytes(c, sg->dns_server, 16);
}

/* The small sets' capacity follows from their size (grown 4, 8, 16, ... up to max). */
static guint8
geo_cap_for(guint n, guint max)
{
	guint cap = 0;
	while (cap < n)
		cap = MIN(cap ? cap * 2 : 4u, max);
	return (guint8)cap;
}

static gboolean
load_geo(Cursor *c, GeoSet *g)
{
	guint8 n;
	if (!statebuf_get_bool(c, &g->started) || !cursor_u32(c, &g->sat_cc) ||
	    !cursor_u32(c, &g->sat_as) || !cursor_u32(c, &g->est_skip) ||
	    g->est_skip >= GEO_EST_SAMPLE)
		return FALSE;
	if (!cursor_u8(c, &n) || n > ANALYZER_GEO_MAX_COUNTRIES)
		return FALSE;
	if (n > 0) {
		g->cap_cc = geo_cap_for(n, ANALYZER_GEO_MAX_COUNTRIES);
		g->cc = g_new0(GeoCc, g->cap_cc);
	}
	for (; g->n_cc < n; g->n_cc++) {
		GeoCc *e = &g->cc[g->n_cc];
		if (!cursor_u32(c, &e->slice) || !cursor_bytes(c, e->cc, 2) || e->cc[0] == '\0' ||
		    e->cc[1] == '\0')
			return FALSE;
	}
	if (!cursor_u8(c, &n) || n > ANALYZER_GEO_MAX_ASNS)
		return FALSE;
	if (n > 0) {
		g->cap_as = geo_cap_for(n, ANALYZER_GEO_MAX_ASNS);
		g->as = g_new0(GeoAs, g->cap_as);
	}
	for (; g->n_as < n; g->n_as++) {
		GeoAs *e = &g->as[g->n_as];
		if (!cursor_u32(c, &e->slice) || !cursor_u32(c, &e->asn) || e->asn == 0)
			return FALSE;
	}
	return TRUE;
}

/* Whether a host still makes traffic of kind k under the current networks (the rules of
 * heuristics_classify()). */
static gboolean
host_fits(const Analyzer *a, const Host *h, HeurWin k)
{
	gboolean internal = netset_contains(a->internal, h->addr);
	switch (k) {
	case HEUR_WIN_SMTP_EXT:
		return internal;
	case HEUR_WIN_SMTP_INT:
	case HEUR_WIN_SUBMIT:
		return internal && !h->is_mta;
	default:
		return !internal && !h->is_mta;
	}
}

static gboolean
load_baseline(Analyzer *a, Cursor *c, Host *h, gint64 saved_slice_ms)
{
	guint32 next, n, v[WINDOW_SPANS];
	if (!cursor_u32(c, &next) || !cursor_u32(c, &n) ||
	    !statebuf_count_ok(c, n, WINDOW_SPANS * 4, STATE_MAX_BASELINE))
		return FALSE;
	Baseline *b = baseline_new(a);
	/* a changed slice width: the same moment in the new slices */
	if (saved_slice_ms != a->cfg.slice_ms)
		next = (guint32)CLAMP((double)next * saved_slice_ms / a->cfg.slice_ms, 0,
				      (double)G_MAXUINT32);
	b->next_slice = next;
	for (guint32 i = 0; i < n; i++) {
		for (guint k = 0; k < WINDOW_SPANS; k++) {
			if (!cursor_u32(c, &v[k])) {
				g_free(b);
				return FALSE;
			}
		}
		baseline_push(b, v); /* keeps the newest when surge_history got shorter */
	}
	baseline_median(b);
	if (!h->is_mta) {
		g_free(b);
		a->st.state_baselines_dropped++;
		return TRUE;
	}
	host_ext(h)->base = b;
	return TRUE;
}

/* The traffic kinds as `host` names them, for error messages. */
static const char *const state_win_names[HEUR_WIN_COUNT] = {"smtp-external", "smtp-internal",
							     "submission", "login"};

/* One host record; *out = NULL when nothing of it fits the configuration. saved: the
 * geometry the windows were counted in. */
static gboolean
load_host(Analyzer *a, Cursor *c, guint version, const WindowGeom *saved,
	  gint64 saved_novelty_window_ms, Host **out, GError **error)
{
	g_autofree char *what = NULL;
	char buf[64];
	guint8 n_exp, offenders, parts;
	gint64 saved_slice_ms = saved->slice_ms;
	gboolean same_slices = saved_slice_ms == a->cfg.slice_ms;
	Host *h = g_new0(Host, 1);

	h->win1_kind = HOST_NO_WIN;
	*out = NULL;
	if (!cursor_bytes(c, h->addr, 16) || !statebuf_get_time(c, &h->last_ms) ||
	    !cursor_u32(c, &h->sampling) || h->sampling == 0 || !cursor_u8(c, &n_exp)) {
		what = g_strdup("bad host header");
		goto fail;
	}
	h->n_exporters = n_exp;
	for (guint i = 0; i < MIN(n_exp, 2u); i++) {
		if (!cursor_u32(c, &h->exporters[i])) {
			what = g_strdup("truncated exporters");
			goto fail;
		}
	}
	guint parts_end = version == ANALYZER_STATE_VERSION_NO_SIGNS ? STATE_PART_SIGNS
								      : STATE_PART_SIGNS << 1;
	if (!cursor_u8(c, &offenders) || offenders >= (1u << REASON_COUNT) ||
	    !cursor_u8(c, &parts) || parts >= parts_end) {
		what = g_strdup("bad offender or part bits");
		goto fail;
	}
	h->offenders = offenders;
	h->is_mta = (guint8)netset_contains(a->mtas, h->addr);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		Cursor wc;
		g_autoptr(GError) e = NULL;
		if (!(parts & (1u << k)))
			continue;
		if (!statebuf_get_sub(c, &wc)) {
			what = g_strdup_printf("%s window: length past the end", state_win_names[k]);
			goto fail;
		}
		if (!same_slices || !host_fits(a, h, (HeurWin)k)) {
			a->st.state_windows_dropped++;
			continue;
		}
		Window *w = host_win_new(h, k);
		if (!window_state_load(w, saved, &a->geom, cursor_ptr(&wc), cursor_left(&wc), &e)) {
			what = g_strdup_printf("%s %s", state_win_names[k], e->message);
			goto fail;
		}
	}
	if ((parts & STATE_PART_BASELINE) && !load_baseline(a, c, h, saved_slice_ms)) {
		what = g_strdup("bad baseline");
		goto fail;
	}
	if (parts & STATE_PART_GEO) {
		GeoSet *geo = host_ext(h)->geo = g_new0(GeoSet, HEUR_WIN_COUNT);
		for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
			if (!load_geo(c, &geo[k])) {
				what = g_strdup("bad country/ASN set");
				goto fail;
			}
			/* the sets count slices of their window: they go with it */
			if (host_win(h, k) == NULL)
				geo_clear(&geo[k]);
		}
		if (!same_slices) {
			g_clear_pointer(&h->ext->geo, geo_free);
			host_ext_trim(h);
		}
	}
	if (parts & STATE_PART_SIGNS) {
		/* counted in their own buckets of wall time: a new slice width keeps them */
		HostSigns *sg = host_ext(h)->signs = g_new0(HostSigns, 1);
		if (!load_signs(c, sg)) {
			what = g_strdup("bad side signs");
			goto fail;
		}
	}
	if (version != ANALYZER_STATE_VERSION_NO_SIGNS) {
		gboolean ok = cursor_u32(c, &h->nov_cur);
		for (guint i = 0; ok && i < NOV_BUCKETS; i++)
			ok = cursor_u16(c, &h->nov[i]);
		if (!ok) {
			what = g_strdup("truncated novelty counts");
			goto fail;
		}
		if (h->is_mta || !host_fits(a, h, HEUR_WIN_SMTP_EXT) ||
		    a->cfg.novelty_window_ms != saved_novelty_window_ms) {
			/* another bucket width, or the host's port-25 traffic no longer counts */
			h->nov_cur = 0;
			memset(h->nov, 0, sizeof h->nov);
		}
	}
	if (cursor_left(c) != 0) {
		what = g_strdup("trailing bytes");
		goto fail;
	}
	gboolean any = host_base(h) != NULL;
	if (nov_count(a, h, a->now_ms) > 0)
		any = TRUE; /* novelty counts still in their window */
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		any = any || host_win(h, k) != NULL;
	if (!any) {
		a->st.state_hosts_dropped++;
		host_free(h);
		return TRUE;
	}
	*out = h;
	return TRUE;
fail:
	state_fail(error, "host %s: %s", flow_addr_str(h->addr, buf, sizeof buf), what);
	host_free(h);
	return FALSE;
}

static gboolean
load_offender(Analyzer *a, Cursor *c, guint version, GError **error)
{
	OffEntry *o = g_new0(OffEntry, 1);
	guint8 reason, state;
	char buf[64];

	if (!cursor_bytes(c, o->addr, 16) || !cursor_u8(c, &reason) || reason >= REASON_COUNT ||
	    !cursor_u8(c, &state) || state > OFFENDER_ACTIVE ||
	    !statebuf_get_time(c, &o->sm.raised_ms) ||
	    !statebuf_get_time(c, &o->sm.last_event_ms) || !statebuf_get_bool(c, &o->sm.below) ||
	    !statebuf_get_time(c, &o->sm.below_since_ms) ||
	    !statebuf_get_f64(c, 0.0, G_MAXDOUBLE, &o->sm.reported_level) ||
	    !cursor_u32(c, &o->sm.n_updates) || !statebuf_get_bool(c, &o->has_peer) ||
	    !cursor_bytes(c, o->peer, 16)) {
		g_free(o);
		return state_fail(error, "bad offender");
	}
	o->reason = reason;
	o->sm.state = (OffenderState)state;
	if (!alert_codec_get(c, event_version(version), &o->last) || cursor_left(c) != 0) {
		state_fail(error, "offender %s %s: bad last event",
			   flow_addr_str(o->addr, buf, sizeof buf), alert_reason_name(reason));
		g_free(o);
		return FALSE;
	}
	if (off_lookup(a, o->addr, reason) != NULL) {
		state_fail(error, "offender %s %s: twice", flow_addr_str(o->addr, buf, sizeof buf),
			   alert_reason_name(reason));
		g_free(o);
		return FALSE;
	}
	off_insert(a, o);
	return TRUE;
}

static gboolean
load_state(Analyzer *a, const guint8 *data, gsize len, GError **error)
{
	Cursor c, rc;
	char magic[4];
	guint16 version;
	gint64 slice_ms;
	guint32 span[WINDOW_SPANS], n;
	guint64 evicted_before = a->st.hosts_evicted;

	if (a->n_hosts != 0 || g_hash_table_size(a->offenders) != 0 || a->hist_n != 0)
		return state_fail(error, "the analyzer already holds state");
	cursor_init(&c, data, len);
	if (!cursor_bytes(&c, magic, 4) || memcmp(magic, ANALYZER_STATE_MAGIC, 4) != 0)
		return state_fail(error, "not analyzer state (bad magic)");
	if (!cursor_u16(&c, &version))
		return state_fail(error, "truncated header");
	if (version != ANALYZER_STATE_VERSION && version != ANALYZER_STATE_VERSION_NO_SIGNS)
		return state_fail(error, "unsupported version %u (this build reads %u and %u)",
				  version, ANALYZER_STATE_VERSION_NO_SIGNS, ANALYZER_STATE_VERSION);
	if (!statebuf_get_time(&c, &slice_ms) || !cursor_u32(&c, &span[WINDOW_SHORT]) ||
	    !cursor_u32(&c, &span[WINDOW_LONG]) || !statebuf_get_time(&c, &a->now_ms) ||
	    !statebuf_get_time(&c, &a->last_tick_ms))
		return state_fail(error, "bad header (truncated, or a time out of range)");
	gint64 nov_window_ms = a->cfg.novelty_window_ms;
	if (version != ANALYZER_STATE_VERSION_NO_SIGNS && !statebuf_get_i64(&c, &nov_window_ms))
		return state_fail(error, "bad header (truncated novelty window)");
	if (slice_ms < 1000 || span[WINDOW_SHORT] < 1 || span[WINDOW_SHORT] > span[WINDOW_LONG] ||
	    span[WINDOW_LONG] > WINDOW_MAX_SLICES)
		return state_fail(error, "bad window geometry");
	WindowGeom saved = a->geom;
	saved.slice_ms = slice_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++)
		saved.span[k] = span[k];

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_HOST, G_MAXUINT32))
		return state_fail(error, "host count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		Host *h;
		if (!statebuf_get_sub(&c, &rc))
			return state_fail(error, "host %u: length past the end of the data", i);
		if (!load_host(a, &rc, version, &saved, nov_window_ms, &h, error))
			return FALSE;
		if (h == NULL)
			continue;
		if (host_lookup(a, h->addr) != NULL) {
			char buf[64];
			state_fail(error, "host %s: twice",
				   flow_addr_str(h->addr, buf, sizeof buf));
			host_free(h);
			return FALSE;
		}
		if (!host_adopt(a, h))
			return state_fail(error, "too many hosts");
		hosts_enforce_caps(a, HOST_NONE);
	}

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_RECORD, G_MAXUINT32))
		return state_fail(error, "offender count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		if (!statebuf_get_sub(&c, &rc))
			return state_fail(error, "offender %u: length past the end of the data", i);
		if (!load_offender(a, &rc, version, error))
			return FALSE;
	}
	/* a host's offender bit always has its offender: drop bits that do not */
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next) {
		Host *h = host_at(a, i);
		for (guint r = 0; r < REASON_COUNT; r++) {
			if ((h->offenders & (1u << r)) && off_lookup(a, h->addr, r) == NULL)
				h->offenders &= (guint8) ~(1u << r);
		}
	}

	if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, STATE_MIN_RECORD, G_MAXUINT32))
		return state_fail(error, "event count past the end of the data");
	for (guint32 i = 0; i < n; i++) {
		AlertEvent *slot = &a->history[a->hist_head];
		if (!statebuf_get_sub(&c, &rc) || !alert_codec_get(&rc, event_version(version), slot) ||
		    cursor_left(&rc) != 0) {
			memset(slot, 0, sizeof *slot);
			return state_fail(error, "event %u of the history: bad", i);
		}
		/* a shorter history than when saved keeps the newest */
		a->hist_head = (a->hist_head + 1) % a->hist_len;
		a->hist_n = MIN(a->hist_n + 1, a->hist_len);
	}
	if (version != ANALYZER_STATE_VERSION_NO_SIGNS) {
		gboolean dropped = FALSE;
		g_autoptr(GError) e = NULL;
		if (!statebuf_get_sub(&c, &rc))
			return state_fail(error, "novelty set: length past the end of the data");
		if (cursor_left(&rc) > 0) {
			Novelty *nv = novelty_new(a->nov_capacity, a->cfg.novelty_horizon_ms);
			if (novelty_state_load(nv, cursor_ptr(&rc), cursor_left(&rc), &dropped, &e)) {
				if (a->nov != NULL)
					a->mem -= MIN(a->mem, novelty_mem(a->nov));
				novelty_free(a->nov);
				a->nov = nv;
				a->mem += novelty_mem(nv);
			} else {
				novelty_free(nv);
				if (!dropped)
					return state_fail(error, "%s", e->message);
				a->st.state_novelty_dropped++;
			}
		}
	}
	if (cursor_left(&c) != 0)
		return state_fail(error, "%" G_GSIZE_FORMAT " trailing bytes", cursor_left(&c));

	a->st.state_hosts_restored = a->n_hosts;
	a->st.state_offenders_restored = g_hash_table_size(a->offenders);
	a->st.state_hosts_evicted = a->st.hosts_evicted - evicted_before;
	a->st.hosts_evicted = evicted_before;
	return TRUE;
}

gboolean
analyzer_state_load(Analyzer *a, const guint8 *data, gsize len, GError **error)
{
	/* hosts the caps evict while loading are counted in state_hosts_evicted, not told */
	guint64 by_hosts = a->evict_by_hosts, by_mem = a->evict_by_mem;
	gint64 first_ms = a->evict_first_ms, last_ms = a->evict_last_ms;
	a->loading = TRUE;
	a->hist_full = TRUE; /* hosts restored without a flow: the next slice walks them all */
	a->quick_epoch++;
	gboolean ok = load_state(a, data, len, error);
	a->loading = FALSE;
	a->evict_by_hosts = by_hosts;
	a->evict_by_mem = by_mem;
	a->evict_first_ms = first_ms;
	a->evict_last_ms = last_ms;
	return ok;
}
