/* The collector core: version dispatch per datagram, the exporter table (one entry per
 * transport session, capped, idle ones expired), observation domains, sequence-loss
 * accounting and sampling state. Decoders live in v5.c, v9.c, ipfix.c and template.c. */
#include "template.h"

#include <string.h>

/* An exporter is a transport session (address, port) or an sFlow agent (agent address,
 * port 0, agent set): a router can send both, and they are different sources of records. */
typedef struct {
	guint8 addr[16];
	guint16 port;
	guint8 agent;
} ExporterKey;

struct Collector {
	CollectorConfig cfg;
	CollectorTotals totals;
	FlowBatch *out;
	GHashTable *exporters; /* ExporterKey* -> Exporter* (key lives in the value) */
	GHashTable *by_index;  /* guint index -> Exporter* */
	guint next_index;
};

static const char *const malformed_names[MAL_N] = {
    [MAL_SHORT_HEADER] = "short_header", [MAL_LENGTH] = "bad_length",
    [MAL_SET_LENGTH] = "bad_set_length", [MAL_TEMPLATE] = "bad_template",
    [MAL_TEMPLATE_ID] = "template_id_below_256", [MAL_SHORT_SET] = "short_data_set",
    [MAL_VARLEN] = "bad_varlen", [MAL_SAMPLE] = "bad_sample",
};

const char *
malformed_name(Malformed m)
{
	return (guint)m < MAL_N ? malformed_names[m] : "unknown";
}

void
collector_config_defaults(CollectorConfig *cfg)
{
	cfg->max_exporters = 1024;
	cfg->max_domains = 64;
	cfg->max_templates = 512;
	/* Real templates have 10-80 fields (NSEL about 40); 512 is far above any of them and
	 * keeps one template's plan and wire copy to a few KiB. */
	cfg->max_template_fields = 512;
	/* ~35k templates of the usual size: 1024 exporters x 32 each. Counted across exporters
	 * so that many source ports cannot multiply the per-exporter cap. */
	cfg->template_memory = 32ull << 20;
	cfg->template_timeout_s = 1800;
	cfg->exporter_timeout_s = 3600;
	cfg->allow = NULL;
	cfg->allow_data = NULL;
	/* A big chassis switch has a few thousand ports (one source each); 64k entries is a
	 * few MiB at most. */
	cfg->max_sflow_sources = 65536;
	cfg->notice = NULL;
	cfg->notice_data = NULL;
}

static guint
key_hash(gconstpointer p)
{
	const ExporterKey *k = p;
	guint h = 2166136261u; /* FNV-1a */
	for (guint i = 0; i < 16; i++)
		h = (h ^ k->addr[i]) * 16777619u;
	h = (h ^ (k->port & 0xff)) * 16777619u;
	h = (h ^ (k->port >> 8)) * 16777619u;
	return (h ^ k->agent) * 16777619u;
}

static gboolean
key_equal(gconstpointer a, gconstpointer b)
{
	const ExporterKey *x = a, *y = b;
	return x->port == y->port && x->agent == y->agent && memcmp(x->addr, y->addr, 16) == 0;
}

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

static void
exporter_free(gpointer p)
{
	Exporter *e = p;
	g_hash_table_destroy(e->domains);
	g_array_free(e->domain_order, TRUE);
	g_free(e);
}

Collector *
collector_new(const CollectorConfig *cfg, FlowBatch *out)
{
	Collector *c = g_new0(Collector, 1);
	c->cfg = *cfg;
	c->out = out;
	c->exporters = g_hash_table_new_full(key_hash, key_equal, g_free, exporter_free);
	c->by_index = g_hash_table_new(g_direct_hash, g_direct_equal);
	return c;
}

void
collector_free(Collector *c)
{
	if (c == NULL)
		return;
	g_hash_table_destroy(c->by_index);
	g_hash_table_destroy(c->exporters);
	g_free(c);
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

static Exporter *
exporter_add(Collector *c, const ExporterKey *kp, guint index)
{
	ExporterKey k = *kp;
	const guint8 *addr = k.addr;
	guint16 port = k.port;
	Exporter *e = g_new0(Exporter, 1);
	e->index = index;
	memcpy(e->addr, addr, 16);
	e->port = port;
	e->agent = k.agent != 0;
	e->domains = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, domain_free);
	e->domain_order = g_array_new(FALSE, FALSE, sizeof(guint32));
	e->cfg = &c->cfg;
	e->totals = &c->totals;
	g_hash_table_insert(c->exporters, g_memdup2(&k, sizeof k), e);
	g_hash_table_insert(c->by_index, GUINT_TO_POINTER(e->index), e);
	return e;
}

static Exporter *
exporter_get(Collector *c, const guint8 addr[16], guint16 port, gboolean agent)
{
	ExporterKey k;
	memset(&k, 0, sizeof k);
	memcpy(k.addr, addr, 16);
	k.port = port;
	k.agent = agent ? 1 : 0;
	Exporter *e = g_hash_table_lookup(c->exporters, &k);
	if (e != NULL)
		return e;
	if (g_hash_table_size(c->exporters) >= c->cfg.max_exporters) {
		c->totals.exporters_refused++;
		return NULL;
	}
	return exporter_add(c, &k, c->next_index++);
}

CollectorRestore
collector_exporter_restore(Collector *c, guint index, const guint8 addr[16], guint16 port,
			   gboolean agent, gint64 last_seen_ms, Exporter **out)
{
	ExporterKey k;
	memset(&k, 0, sizeof k);
	memcpy(k.addr, addr, 16);
	k.port = agent ? 0 : port;
	k.agent = agent ? 1 : 0;
	*out = NULL;
	if (g_hash_table_contains(c->exporters, &k) ||
	    g_hash_table_contains(c->by_index, GUINT_TO_POINTER(index)))
		return COLLECTOR_RESTORE_DUPLICATE;
	/* The allowlist names UDP sources; an agent's source is not saved, so an agent comes
	 * back and is judged again by its next datagram's source. */
	if ((!agent && c->cfg.allow != NULL && !c->cfg.allow(addr, c->cfg.allow_data)) ||
	    g_hash_table_size(c->exporters) >= c->cfg.max_exporters)
		return COLLECTOR_RESTORE_DROPPED;
	Exporter *e = exporter_add(c, &k, index);
	e->last_seen_ms = last_seen_ms;
	*out = e;
	return COLLECTOR_RESTORE_OK;
}

guint
collector_next_index(const Collector *c)
{
	return c->next_index;
}

void
collector_set_next_index(Collector *c, guint next)
{
	if (next > c->next_index)
		c->next_index = next;
}

Exporter *
collector_exporter(const Collector *c, guint index)
{
	return g_hash_table_lookup(c->by_index, GUINT_TO_POINTER(index));
}

const CollectorConfig *
collector_config(const Collector *c)
{
	return &c->cfg;
}

static gint
uint_cmp(gconstpointer a, gconstpointer b)
{
	guint x = *(const guint *)a, y = *(const guint *)b;
	return x < y ? -1 : x > y;
}

void
collector_exporter_indexes(const Collector *c, GArray *out)
{
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, c->by_index);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		guint i = GPOINTER_TO_UINT(k);
		g_array_append_val(out, i);
	}
	g_array_sort(out, uint_cmp);
}

guint
collector_input(Collector *c, const guint8 addr[16], guint16 port, const guint8 *buf,
		gsize len, gint64 now_ms)
{
	guint n = 0;

	c->totals.datagrams++;
	c->totals.bytes += len;
	/* Anyone can spoof a UDP source: an allowlist keeps strangers out of every table. */
	if (c->cfg.allow != NULL && !c->cfg.allow(addr, c->cfg.allow_data)) {
		c->totals.exporters_denied++;
		return 0;
	}
	/* sFlow's version is 32 bits (00 00 00 05); NetFlow's and IPFIX's the first 16. */
	if (len >= 4 && be_u32(buf) == 5) {
		guint8 agent[16];
		if (!sflow_agent(buf, len, agent)) {
			c->totals.sflow_no_agent++;
			return 0;
		}
		Exporter *e = exporter_get(c, agent, 0, TRUE);
		if (e == NULL)
			return 0;
		e->last_seen_ms = now_ms;
		n = sflow_decode(e, buf, len, now_ms, c->out);
		c->totals.records += n;
		return n;
	}
	/* Dispatch on the first two bytes; anything else is not flow export. */
	guint16 version = len >= 2 ? (guint16)((buf[0] << 8) | buf[1]) : 0;
	if (version != 5 && version != 9 && version != 10) {
		c->totals.bad_version++;
		return 0;
	}
	Exporter *e = exporter_get(c, addr, port, FALSE);
	if (e == NULL)
		return 0;
	e->last_seen_ms = now_ms;
	switch (version) {
	case 5:
		n = v5_decode(e, buf, len, now_ms, c->out);
		break;
	case 9:
		n = v9_decode(e, buf, len, now_ms, c->out);
		break;
	default:
		n = ipfix_decode(e, buf, len, now_ms, c->out);
		break;
	}
	c->totals.records += n;
	return n;
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
collector_expire(Collector *c, gint64 now_ms)
{
	gint64 idle = (gint64)c->cfg.exporter_timeout_s * 1000;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, c->exporters);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Exporter *e = v;
		if (idle > 0 && now_ms - e->last_seen_ms > idle) {
			g_hash_table_remove(c->by_index, GUINT_TO_POINTER(e->index));
			g_hash_table_iter_remove(&it);
			c->totals.exporters_expired++;
			continue;
		}
		GHashTableIter di;
		gpointer dk, dv;
		g_hash_table_iter_init(&di, e->domains);
		while (g_hash_table_iter_next(&di, &dk, &dv)) {
			Domain *d = dv;
			/* A domain the exporter stopped using frees its slot under max_domains. */
			if (idle > 0 && now_ms - d->st.last_seen_ms > idle) {
				e->n_templates -= MIN(e->n_templates,
						      g_hash_table_size(d->templates));
				for (guint j = 0; j < e->domain_order->len; j++) {
					if (g_array_index(e->domain_order, guint32, j) == d->id) {
						g_array_remove_index(e->domain_order, j);
						break;
					}
				}
				g_hash_table_iter_remove(&di);
				c->totals.domains_expired++;
				continue;
			}
			template_expire(e, d, now_ms);
		}
	}
}

const CollectorTotals *
collector_totals(const Collector *c)
{
	return &c->totals;
}

static gint
by_index(gconstpointer a, gconstpointer b)
{
	const Exporter *x = *(Exporter *const *)a, *y = *(Exporter *const *)b;
	return x->index < y->index ? -1 : x->index > y->index;
}

void
collector_foreach_session(const Collector *c, SessionFunc fn, gpointer user_data)
{
	g_autoptr(GPtrArray) list = g_ptr_array_sized_new(g_hash_table_size(c->exporters));
	GHashTableIter it;
	gpointer k, val;
	g_hash_table_iter_init(&it, c->exporters);
	while (g_hash_table_iter_next(&it, &k, &val))
		g_ptr_array_add(list, val);
	g_ptr_array_sort(list, by_index);
	for (guint i = 0; i < list->len; i++) {
		const Exporter *e = g_ptr_array_index(list, i);
		SessionView v = {.index = e->index, .port = e->port, .agent = e->agent};
		memcpy(v.addr, e->addr, 16);
		if (e->hdr.datagrams > 0) {
			v.has_domain = FALSE;
			v.stats = &e->hdr;
			fn(&v, user_data);
		}
		for (guint j = 0; j < e->domain_order->len; j++) {
			guint32 id = g_array_index(e->domain_order, guint32, j);
			const Domain *d = g_hash_table_lookup(e->domains, GUINT_TO_POINTER(id));
			v.has_domain = TRUE;
			v.domain = id;
			v.stats = &d->st;
			fn(&v, user_data);
		}
	}
}

gboolean
collector_exporter_is_agent(const Collector *c, guint index)
{
	const Exporter *e = g_hash_table_lookup(c->by_index, GUINT_TO_POINTER(index));
	return e != NULL && e->agent;
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

gboolean
collector_exporter_addr(const Collector *c, guint index, guint8 addr[16], guint16 *port)
{
	const Exporter *e = g_hash_table_lookup(c->by_index, GUINT_TO_POINTER(index));
	if (e == NULL)
		return FALSE;
	memcpy(addr, e->addr, 16);
	if (port != NULL)
		*port = e->port;
	return TRUE;
}
