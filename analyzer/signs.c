/* Side signs of a tracked host: inbound SMTP delivered to it (the unlisted mail server's
 * sign) and its DNS queries to external servers (what corroborates an smtp alert). They
 * raise nothing and create no host: a flood of inbound port 25 to random internal addresses
 * costs a table lookup per record and no memory. Counted over the last hour. */
#include "analyzer_private.h"

static guint32
bucket_of(gint64 t_ms)
{
	return (guint32)CLAMP(t_ms / SIGNS_BUCKET_MS, 0, (gint64)G_MAXUINT32);
}

/* One record at t_ms. A newer bucket drops those that left the hour; a record older than
 * the hour before the newest bucket (a clock stepped back, a late datagram) is not counted. */
void
signs_count(SignCount *sc, gint64 t_ms)
{
	bucket_count_add(sc, bucket_of(t_ms), 1);
}

guint32
signs_sum(const SignCount *sc, gint64 now)
{
	return bucket_count_sum(sc, bucket_of(now));
}

void
bucket_count_add(SignCount *sc, guint32 b, guint32 add)
{
	if (b > sc->cur) {
		guint32 gap = MIN(b - sc->cur, (guint32)SIGNS_BUCKETS);
		for (guint32 i = 1; i <= gap; i++)
			sc->n[(sc->cur + i) % SIGNS_BUCKETS] = 0;
		sc->cur = b;
	} else if (sc->cur - b >= SIGNS_BUCKETS) {
		return;
	}
	guint32 *n = &sc->n[b % SIGNS_BUCKETS];
	*n = (guint32)MIN((guint64)*n + add, G_MAXUINT32);
}

guint32
bucket_count_sum(const SignCount *sc, guint32 b_now)
{
	guint32 end = MAX(b_now, sc->cur);
	guint64 sum = 0;
	for (guint32 i = 0; i < SIGNS_BUCKETS && i <= sc->cur; i++) {
		guint32 b = sc->cur - i;
		if (end - b >= SIGNS_BUCKETS)
			break;
		sum += sc->n[b % SIGNS_BUCKETS];
	}
	return (guint32)MIN(sum, G_MAXUINT32);
}

void
signs_note(Analyzer *a, const HeurClass *c, gint64 now)
{
	guint32 i = host_index(a, c->host);
	if (i == HOST_NONE) {
		a->st.signs_untracked++;
		return;
	}
	Host *h = host_at(a, i);
	HostSigns *s = host_signs(h);
	if (s == NULL) {
		gsize ext0 = ext_mem(h);
		s = host_ext(h)->signs = g_new0(HostSigns, 1);
		a->mem += ext_mem(h) - ext0 + SIGNS_COST;
	}
	if (c->dir == HEUR_INBOUND_SMTP) {
		signs_count(&s->inbound, now);
		a->st.signs_inbound_smtp++;
	} else {
		signs_count(&s->dns, now);
		if (now >= s->dns_last_ms) {
			s->dns_last_ms = now;
			memcpy(s->dns_server, c->peer, 16);
		}
		a->st.signs_dns_external++;
	}
	hosts_enforce_caps(a, i);
}

guint32
host_inbound_smtp(const Host *h, gint64 now)
{
	const HostSigns *s = h != NULL ? host_signs(h) : NULL;
	return s != NULL ? signs_sum(&s->inbound, now) : 0;
}

guint32
host_dns_external(const Host *h, gint64 now)
{
	const HostSigns *s = h != NULL ? host_signs(h) : NULL;
	return s != NULL ? signs_sum(&s->dns, now) : 0;
}

gboolean
host_mta_like(const Analyzer *a, const Host *h, gint64 now)
{
	(void)a;
	/* sampled: each inbound session seen stands for N */
	return (guint64)host_inbound_smtp(h, now) * MAX(h->sampling, 1u) >= HEUR_MTA_MIN_INBOUND;
}

gboolean
host_dns_corroborates(const Analyzer *a, const Host *h, gint64 now)
{
	return h != NULL && netset_size(a->resolvers) > 0 &&
	       !netset_contains(a->resolvers, h->addr) && host_dns_external(h, now) > 0;
}
