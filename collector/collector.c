/* The collector core: the exporter table (one entry per transport session or sFlow agent,
 * capped, idle ones expired), version dispatch per datagram, and the read-only views of it
 * (totals, session rows, the table by index for state.c). The sessions themselves are in
 * session.c; the decoders in v5.c, v9.c, ipfix.c, sflow.c and template*.c. */
#include "template.h"

#include <string.h>

#include "fnv1a.h"

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
	GHashTable *denied;    /* 16-byte address -> DeniedView* (the key lives in the value) */
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
addr_hash(gconstpointer p)
{
	return fnv1a(p, 16);
}

static gboolean
addr_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 16) == 0;
}

/* A datagram the allowlist refused: counted per source (bounded), the owner told once per
 * new source. */
static void
denied_count(Collector *c, const guint8 addr[16], guint16 port, gsize len, gint64 now_ms)
{
	DeniedView *v = g_hash_table_lookup(c->denied, addr);
	if (v == NULL) {
		if (g_hash_table_size(c->denied) >= DENIED_SOURCES_MAX) {
			c->totals.denied_untracked++;
			return;
		}
		v = g_new0(DeniedView, 1);
		memcpy(v->addr, addr, 16);
		v->first_seen_ms = now_ms;
		g_hash_table_insert(c->denied, v->addr, v);
		c->totals.denied_sources = g_hash_table_size(c->denied);
		if (c->cfg.notice != NULL) {
			CollectorNoticeInfo info = {.addr = addr, .port = port};
			c->cfg.notice(NOTICE_DENIED_SOURCE, &info, c->cfg.notice_data);
		}
	}
	v->port = port;
	v->datagrams++;
	v->bytes += len;
	v->last_seen_ms = now_ms;
}

static gint
denied_by_recency(gconstpointer a, gconstpointer b)
{
	const DeniedView *x = *(DeniedView *const *)a, *y = *(DeniedView *const *)b;
	if (x->last_seen_ms != y->last_seen_ms)
		return x->last_seen_ms > y->last_seen_ms ? -1 : 1;
	return memcmp(x->addr, y->addr, 16);
}

void
collector_foreach_denied(const Collector *c, DeniedFunc fn, gpointer user_data)
{
	g_autoptr(GPtrArray) list = g_ptr_array_sized_new(g_hash_table_size(c->denied));
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, c->denied);
	while (g_hash_table_iter_next(&it, &k, &v))
		g_ptr_array_add(list, v);
	g_ptr_array_sort(list, denied_by_recency);
	for (guint i = 0; i < list->len; i++)
		fn(g_ptr_array_index(list, i), user_data);
}

static guint
key_hash(gconstpointer p)
{
	const ExporterKey *k = p;
	const guint8 rest[3] = {(guint8)(k->port & 0xff), (guint8)(k->port >> 8), k->agent};
	return fnv1a_update(fnv1a(k->addr, 16), rest, 3);
}

static gboolean
key_equal(gconstpointer a, gconstpointer b)
{
	const ExporterKey *x = a, *y = b;
	return x->port == y->port && x->agent == y->agent && memcmp(x->addr, y->addr, 16) == 0;
}

Collector *
collector_new(const CollectorConfig *cfg, FlowBatch *out)
{
	Collector *c = g_new0(Collector, 1);
	c->cfg = *cfg;
	c->out = out;
	c->exporters =
	    g_hash_table_new_full(key_hash, key_equal, g_free, (GDestroyNotify)exporter_free);
	c->by_index = g_hash_table_new(g_direct_hash, g_direct_equal);
	c->denied = g_hash_table_new_full(addr_hash, addr_equal, NULL, g_free);
	return c;
}

void
collector_free(Collector *c)
{
	if (c == NULL)
		return;
	g_hash_table_destroy(c->by_index);
	g_hash_table_destroy(c->exporters);
	g_hash_table_destroy(c->denied);
	g_free(c);
}

/* Out of line: once per exporter, so that exporter_get() stays small enough to inline. */
static G_GNUC_NO_INLINE Exporter *
exporter_add(Collector *c, const ExporterKey *kp, guint index)
{
	Exporter *e = exporter_new(index, kp->addr, kp->port, kp->agent != 0, &c->cfg, &c->totals);
	g_hash_table_insert(c->exporters, g_memdup2(kp, sizeof *kp), e);
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
		denied_count(c, addr, port, len, now_ms);
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

void
collector_expire(Collector *c, gint64 now_ms)
{
	gint64 idle = (gint64)c->cfg.exporter_timeout_s * 1000;
	GHashTableIter it;
	gpointer k, v;

	if (idle > 0) {
		/* a refused source that went quiet is told again if it comes back */
		g_hash_table_iter_init(&it, c->denied);
		while (g_hash_table_iter_next(&it, &k, &v))
			if (now_ms - ((DeniedView *)v)->last_seen_ms > idle)
				g_hash_table_iter_remove(&it);
		c->totals.denied_sources = g_hash_table_size(c->denied);
	}
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
