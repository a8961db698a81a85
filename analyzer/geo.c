/* Distinct countries and ASNs of a host window's destinations (AlertEvent.n_countries,
 * n_asns) and the country/ASN of an event's top destinations.
 *
 * The windows keep destination hashes and addresses only; countries and ASNs come from the
 * optional geo hook, called when a window sees a new distinct destination. A window with
 * fewer than ANALYZER_GEO_MIN_DESTS destinations keeps no set (most hosts talk to 1-3
 * relays): its counts are taken at event time by looking up its few destinations. When it
 * reaches that many, its set starts with a lookup of each. In estimated mode (past the
 * exact cap) the window names no new destinations, so one attempt in GEO_EST_SAMPLE is
 * looked up instead. An entry seen last in a slice that left the long window does not
 * count: a destination that stays in the window without being new again can age out of
 * its country's entry unless another destination (or the event's top list) refreshes it,
 * so counts are exact for bots' streams of new destinations and may read low for a
 * long-lived few. Per host window: at most 32 x 8 + 64 x 8 bytes. */
#include "analyzer_private.h"

gsize
geo_mem(const GeoSet *g)
{
	if (g == NULL)
		return 0;
	gsize n = HEUR_WIN_COUNT * sizeof(GeoSet) + WINDOW_ALLOC_OVERHEAD;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (g[k].cc != NULL)
			n += g[k].cap_cc * sizeof(GeoCc) + WINDOW_ALLOC_OVERHEAD;
		if (g[k].as != NULL)
			n += g[k].cap_as * sizeof(GeoAs) + WINDOW_ALLOC_OVERHEAD;
	}
	return n;
}

void
geo_clear(GeoSet *g)
{
	g_free(g->cc);
	g_free(g->as);
	memset(g, 0, sizeof *g);
}

void
geo_free(GeoSet *g)
{
	if (g == NULL)
		return;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		geo_clear(&g[k]);
	g_free(g);
}

static inline gboolean
slice_in_long(const Analyzer *a, guint32 slice, guint32 now)
{
	return (guint64)slice + a->cfg.span_slices[WINDOW_LONG] > now;
}

static guint32
slice_of(const Analyzer *a, gint64 t_ms)
{
	return (guint32)(MAX(t_ms, 0) / a->cfg.slice_ms);
}

/* Index of an entry whose value left the long window (each entry starts with its slice
 * stamp), -1 when every entry is live. */
static gint
geo_expired(const Analyzer *a, const void *base, gsize stride, guint n, guint32 slice)
{
	for (guint i = 0; i < n; i++) {
		guint32 stamp;
		memcpy(&stamp, (const guint8 *)base + i * stride, sizeof stamp);
		if (!slice_in_long(a, stamp, slice))
			return (gint)i;
	}
	return -1;
}

/* Add or refresh one country and one ASN ("" and 0: nothing to add). A full set takes over
 * an entry that left the window, else it saturates. */
static void
geo_note(const Analyzer *a, GeoSet *g, guint32 slice, const char cc[4], guint32 asn)
{
	if (cc[0] != '\0' && cc[1] != '\0') {
		gint i;
		for (i = 0; i < g->n_cc; i++) {
			if (g->cc[i].cc[0] == cc[0] && g->cc[i].cc[1] == cc[1])
				break;
		}
		if (i < g->n_cc) {
			g->cc[i].slice = MAX(g->cc[i].slice, slice);
		} else {
			if (g->n_cc == g->cap_cc && g->cap_cc < ANALYZER_GEO_MAX_COUNTRIES) {
				g->cap_cc = (guint8)MIN(g->cap_cc ? g->cap_cc * 2u : 4u,
							ANALYZER_GEO_MAX_COUNTRIES);
				g->cc = g_renew(GeoCc, g->cc, g->cap_cc);
			}
			i = g->n_cc < g->cap_cc ? g->n_cc++
						: geo_expired(a, g->cc, sizeof(GeoCc), g->n_cc, slice);
			if (i >= 0) {
				g->cc[i].cc[0] = cc[0];
				g->cc[i].cc[1] = cc[1];
				g->cc[i].slice = slice;
			} else {
				g->sat_cc = slice + 1;
			}
		}
	}
	if (asn != 0) {
		gint i;
		for (i = 0; i < g->n_as && g->as[i].asn != asn; i++)
			;
		if (i < g->n_as) {
			g->as[i].slice = MAX(g->as[i].slice, slice);
		} else {
			if (g->n_as == g->cap_as && g->cap_as < ANALYZER_GEO_MAX_ASNS) {
				g->cap_as = (guint8)MIN(g->cap_as ? g->cap_as * 2u : 4u,
							ANALYZER_GEO_MAX_ASNS);
				g->as = g_renew(GeoAs, g->as, g->cap_as);
			}
			i = g->n_as < g->cap_as ? g->n_as++
						: geo_expired(a, g->as, sizeof(GeoAs), g->n_as, slice);
			if (i >= 0) {
				g->as[i].asn = asn;
				g->as[i].slice = slice;
			} else {
				g->sat_as = slice + 1;
			}
		}
	}
}

static void
geo_counts(const Analyzer *a, const GeoSet *g, guint32 now, guint32 *n_cc, guint32 *n_as)
{
	guint32 c = 0, s = 0;
	for (guint i = 0; i < g->n_cc; i++)
		c += slice_in_long(a, g->cc[i].slice, now);
	for (guint i = 0; i < g->n_as; i++)
		s += slice_in_long(a, g->as[i].slice, now);
	if (g->sat_cc != 0 && slice_in_long(a, g->sat_cc - 1, now))
		c = ANALYZER_GEO_MAX_COUNTRIES;
	if (g->sat_as != 0 && slice_in_long(a, g->sat_as - 1, now))
		s = ANALYZER_GEO_MAX_ASNS;
	*n_cc = c;
	*n_as = s;
}

typedef struct {
	const Analyzer *a;
	GeoSet *set;
	guint32 slice;
} GeoWalk;

static void
geo_walk_note(const guint8 dst[16], gpointer user_data)
{
	GeoWalk *gw = user_data;
	char cc[4] = "";
	guint32 asn = 0;
	gw->a->geo_fn(dst, cc, &asn, gw->a->geo_data);
	geo_note(gw->a, gw->set, gw->slice, cc, asn);
}

/* After window_add() on window k of h returned r for destination dst. */
void
geo_update(Analyzer *a, Host *h, HeurWin k, Window *w, const guint8 dst[16], guint r, gint64 now)
{
	guint32 slice = MAX(slice_of(a, now), slice_of(a, window_last_ms(w)));
	GeoSet *g = host_geo(h) != NULL ? &host_geo(h)[k] : NULL;
	gsize before = geo_mem(host_geo(h)) + ext_mem(h);

	if ((r & WINDOW_ADD_RESET) && g != NULL)
		geo_clear(g);
	if (window_estimating(w)) {
		if (g == NULL || !g->started || ++g->est_skip < GEO_EST_SAMPLE)
			return;
		g->est_skip = 0;
	} else if (!(r & WINDOW_ADD_NEW_DEST)) {
		return;
	}
	if (g == NULL || !g->started) {
		if (window_foreach_dest(w, &a->geom, now, NULL, NULL) < ANALYZER_GEO_MIN_DESTS)
			return;
		if (host_geo(h) == NULL)
			host_ext(h)->geo = g_new0(GeoSet, HEUR_WIN_COUNT);
		g = &host_geo(h)[k];
		g->started = TRUE;
		GeoWalk gw = {a, g, slice};
		window_foreach_dest(w, &a->geom, now, geo_walk_note, &gw);
	} else {
		char cc[4] = "";
		guint32 asn = 0;
		a->geo_fn(dst, cc, &asn, a->geo_data);
		geo_note(a, g, slice, cc, asn);
	}
	a->mem = a->mem + geo_mem(host_geo(h)) + ext_mem(h) - MIN(before, a->mem);
}

/* The event's distinct countries/ASNs and its top destinations' country and ASN. */
void
geo_fill_event(Analyzer *a, AlertEvent *ev, Host *h, HeurWin wk, gint64 now)
{
	Window *w = h != NULL ? host_win(h, wk) : NULL;
	guint32 slice = slice_of(a, now);
	GeoSet *hg = h != NULL ? host_geo(h) : NULL;
	GeoSet *g = hg != NULL && hg[wk].started ? &hg[wk] : NULL;
	gsize before = geo_mem(hg);

	if (w != NULL)
		slice = MAX(slice, slice_of(a, window_last_ms(w)));
	for (guint i = 0; i < ev->n_top; i++) {
		AlertDest *d = &ev->top[i];
		a->geo_fn(d->addr, d->country, &d->asn, a->geo_data);
		d->country[2] = '\0';
		if (g != NULL)
			geo_note(a, g, slice, d->country, d->asn); /* refresh long-lived ones */
	}
	if (g != NULL) {
		geo_counts(a, g, slice, &ev->n_countries, &ev->n_asns);
		a->mem = a->mem + geo_mem(hg) - MIN(before, a->mem);
	} else if (w != NULL) {
		/* a window without a set holds few destinations: look each up now */
		GeoSet tmp = {0};
		GeoWalk gw = {a, &tmp, slice};
		window_foreach_dest(w, &a->geom, now, geo_walk_note, &gw);
		geo_counts(a, &tmp, slice, &ev->n_countries, &ev->n_asns);
		geo_clear(&tmp);
	}
}
