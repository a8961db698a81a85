/* Exporter sessions and their observation domains, as the decoders use them: creating a
 * domain on first use (capped), counting datagrams, sequence-loss accounting, the sampling
 * interval learnt per domain and sampler, and the notices told once per exporter. The
 * collector (collector.c) keeps the table of exporters and dispatches datagrams to the
 * decoders; the decoders call this file, never back into collector.c. */
#include "template.h"

#include <string.h>

static void
domain_free(gpointer p)
{
	Domain *d = p;
	g_hash_table_destroy(d->templates);
	if (d->sources != NULL) {
		*d->sources_acct -= MIN(*d->sources_acct, g_hash_table_size(d->sources));
		g_hash_table_destroy(d->sources);
	}
	g_free(d);
}

Exporter *
exporter_new(guint index, const guint8 addr[16], guint16 port, gboolean agent,
	     const CollectorConfig *cfg, CollectorTotals *totals)
{
	Exporter *e = g_new0(Exporter, 1);
	e->index = index;
	memcpy(e->addr, addr, 16);
	e->port = port;
	e->agent = agent;
	e->domains = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, domain_free);
	e->domain_order = g_array_new(FALSE, FALSE, sizeof(guint32));
	e->cfg = cfg;
	e->totals = totals;
	return e;
}

void
exporter_free(Exporter *e)
{
	if (e == NULL)
		return;
	g_hash_table_destroy(e->domains);
	g_array_free(e->domain_order, TRUE);
	g_free(e);
}

void
session_count_datagram(SessionStats *st, guint8 version, gsize len, gint64 now_ms)
{
	st->datagrams++;
	st->bytes += len;
	st->version = version;
	if (st->first_seen_ms == 0)
		st->first_seen_ms = now_ms;
	st->last_seen_ms = now_ms;
}

Domain *
exporter_domain(Exporter *e, guint32 id, gint64 now_ms)
{
	Domain *d = g_hash_table_lookup(e->domains, GUINT_TO_POINTER(id));
	(void)now_ms;
	if (d != NULL)
		return d;
	if (g_hash_table_size(e->domains) >= e->cfg->max_domains) {
		e->totals->domains_refused++;
		return NULL;
	}
	d = g_new0(Domain, 1);
	d->id = id;
	d->sampling = 1;
	d->st.sampling = 1;
	d->templates = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
					     (GDestroyNotify)template_free);
	d->sources_acct = &e->totals->sflow_sources;
	g_hash_table_insert(e->domains, GUINT_TO_POINTER(id), d);
	g_array_append_val(e->domain_order, id);
	return d;
}

/* IPFIX: RFC 7011 3.1 counts the Data Records sent before this message; softflowd counts
 * those up to and including this message's, and leaves options records out. Returns the
 * gap under the reading the domain has learnt, holding back what cannot be judged yet. */
static guint32
ipfix_gap(Domain *d, guint32 seq, guint32 n, guint32 n_data)
{
	guint32 e_rfc = d->seq_last + d->seq_last_count; /* RFC: options records count */
	guint32 e_own = d->seq_last + n_data;             /* softflowd: they do not */
	gboolean rfc = seq == e_rfc || seq == d->seq_last + d->seq_last_data;
	gboolean own = seq == e_own || seq == d->seq_last + n;
	gint8 m = rfc && !own ? 1 : own && !rfc ? 2 : 0;
	guint32 gap_rfc = rfc ? 0 : seq - e_rfc, gap_own = own ? 0 : seq - e_own;

	if (d->seq_mode == 0) {
		if (m == 0) {
			/* Not told apart yet. Where both readings give the same gap (equal-sized
			 * messages) it is the loss; otherwise keep both until one is learnt. */
			if (gap_rfc == gap_own || (gap_rfc >= SEQ_MAX_GAP && gap_own >= SEQ_MAX_GAP))
				return gap_rfc;
			d->seq_pending_rfc += gap_rfc;
			d->seq_pending_own += gap_own;
			return 0;
		}
		d->seq_mode = m; /* the first message that tells the readings apart */
		guint32 held = m == 1 ? d->seq_pending_rfc : d->seq_pending_own;
		d->seq_pending_rfc = d->seq_pending_own = 0;
		return held;
	}
	guint32 gap = d->seq_mode == 1 ? gap_rfc : gap_own;
	if (m != 0 && m != d->seq_mode) {
		/* Reads the other way: a coincidence (a loss the size of the difference) or an
		 * exporter that changed. Hold the loss back; three in a row switch the reading
		 * and drop what was held, anything else commits it. */
		d->seq_pending += gap;
		if (++d->seq_votes >= 3) {
			d->seq_mode = m;
			d->seq_votes = 0;
			d->seq_pending = 0;
		}
		return 0;
	}
	if (d->seq_votes > 0) {
		gap += d->seq_pending;
		d->seq_pending = 0;
		d->seq_votes = 0;
	}
	return gap;
}

void
seq_check(Domain *d, SeqKind kind, guint32 seq, guint32 n, guint32 n_data)
{
	SessionStats *st = &d->st;
	guint32 gap;

	if (!st->seq_init) {
		st->seq_init = TRUE;
		d->seq_last = seq;
		d->seq_last_count = n;
		d->seq_last_data = n_data;
		return;
	}
	switch (kind) {
	case SEQ_PER_DATAGRAM: /* RFC 3954 5.1: counts export packets */
		gap = seq - (d->seq_last + 1);
		break;
	case SEQ_PER_RECORD: /* v5: sequence of this datagram's first flow */
		gap = seq - (d->seq_last + d->seq_last_count);
		break;
	default:
		gap = ipfix_gap(d, seq, n, n_data);
		break;
	}
	if (gap != 0) {
		if (gap < SEQ_MAX_GAP)
			st->seq_lost += gap;
		else
			st->seq_resets++; /* backwards or a huge jump: resync */
	}
	d->seq_last = seq;
	d->seq_last_count = n;
	d->seq_last_data = n_data;
}

guint32
domain_sampling(const Domain *d, gboolean has_id, guint32 id)
{
	if (d == NULL)
		return 1;
	if (has_id)
		for (guint i = 0; i < d->n_samplers; i++)
			if (d->samplers[i].id == id)
				return d->samplers[i].interval;
	return d->sampling > 0 ? d->sampling : 1;
}

void
domain_set_sampler(Domain *d, gboolean has_id, guint32 id, guint32 interval)
{
	if (interval == 0)
		interval = 1;
	d->sampling = interval;
	d->st.sampling = interval;
	if (!has_id)
		return;
	for (guint i = 0; i < d->n_samplers; i++) {
		if (d->samplers[i].id == id) {
			d->samplers[i].interval = interval;
			return;
		}
	}
	/* Bounded: a flood of sampler IDs overwrites slots instead of growing. */
	guint slot = d->n_samplers < SAMPLER_SLOTS ? d->n_samplers++ : id % SAMPLER_SLOTS;
	d->samplers[slot] = (SamplerSlot){.id = id, .interval = interval};
}

void
exporter_notice(Exporter *e, CollectorNotice what, const CollectorNoticeInfo *info)
{
	if ((e->noticed & (1u << what)) != 0)
		return;
	e->noticed |= (guint8)(1u << what);
	if (e->cfg->notice != NULL)
		e->cfg->notice(what, info, e->cfg->notice_data);
}

void
domain_times_dropped(Exporter *e, Domain *d, guint8 version, gint64 start_ms, gint64 end_ms,
		     gint64 export_ms)
{
	d->st.times_dropped++;
	if ((e->noticed & (1u << NOTICE_TIMES_DROPPED)) != 0)
		return;
	CollectorNoticeInfo info = {.addr = e->addr,
				    .port = e->port,
				    .agent = e->agent,
				    .domain = d->id,
				    .version = version,
				    .start_ms = start_ms,
				    .end_ms = end_ms,
				    .export_ms = export_ms};
	exporter_notice(e, NOTICE_TIMES_DROPPED, &info);
}
