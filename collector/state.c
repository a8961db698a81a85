/* The collector's part of the daemon's state file: per exporter session and observation
 * domain, the sequence position, the sampling learnt from options records and every active
 * template as its wire record, so that after a restart the first data sets decode at once
 * and loss is measured from where the previous run stopped. Counters start again at zero. */
#include "statebuf.h"
#include "template.h"

#include <string.h>

/* 2: sFlow agents (a flag per exporter) and their per-source sample sequences. Version 1
 * files (no sFlow) are still read. */
#define STATE_VERSION 2
#define MAX_SAVED_SOURCES 65536

static gint
source_key_cmp(gconstpointer a, gconstpointer b)
{
	gsize x = GPOINTER_TO_SIZE(a), y = GPOINTER_TO_SIZE(b);
	return x < y ? -1 : x > y;
}

static void
save_domain(const Domain *d, GByteArray *out)
{
	const SessionStats *st = &d->st;

	statebuf_put_u32(out, d->id);
	statebuf_put_u8(out, st->version);
	statebuf_put_unix_ms(out, st->first_seen_ms);
	statebuf_put_unix_ms(out, st->last_seen_ms);
	statebuf_put_u8(out, st->seq_init ? 1 : 0);
	statebuf_put_u32(out, d->seq_last);
	statebuf_put_u32(out, d->seq_last_count);
	statebuf_put_u32(out, d->uptime_last);
	statebuf_put_u32(out, d->seq_last_data);
	statebuf_put_u8(out, (guint8)d->seq_mode);
	statebuf_put_u8(out, d->seq_votes);
	statebuf_put_u32(out, d->seq_pending);
	statebuf_put_u32(out, d->seq_pending_rfc);
	statebuf_put_u32(out, d->seq_pending_own);
	statebuf_put_u32(out, d->sampling);
	statebuf_put_u8(out, (guint8)d->n_samplers);
	for (guint i = 0; i < d->n_samplers; i++) {
		statebuf_put_u32(out, d->samplers[i].id);
		statebuf_put_u32(out, d->samplers[i].interval);
	}
	statebuf_put_unix_ms(out, d->sys_init_ms);
	/* sFlow sources, ascending keys so the same state gives the same bytes */
	g_autoptr(GList) keys = d->sources != NULL ? g_hash_table_get_keys(d->sources) : NULL;
	keys = g_list_sort(keys, source_key_cmp);
	statebuf_put_u32(out, g_list_length(keys));
	for (GList *l = keys; l != NULL; l = l->next) {
		const SflowSource *src = g_hash_table_lookup(d->sources, l->data);
		guint64 key = (guint64)GPOINTER_TO_SIZE(l->data);
		statebuf_put_u32(out, (guint32)(key >> 32));
		statebuf_put_u32(out, (guint32)key);
		statebuf_put_u32(out, src->seq);
		statebuf_put_u32(out, src->drops);
	}
	/* every installed template kept its wire record (template_record()) */
	statebuf_put_u32(out, g_hash_table_size(d->templates));
	template_state_save(d, out);
}

void
collector_state_save(const Collector *c, GByteArray *out)
{
	g_autoptr(GArray) idx = g_array_new(FALSE, FALSE, sizeof(guint));

	statebuf_put_u32(out, STATE_VERSION);
	statebuf_put_u32(out, collector_next_index(c));
	collector_exporter_indexes(c, idx);
	statebuf_put_u32(out, idx->len);
	for (guint i = 0; i < idx->len; i++) {
		const Exporter *e = collector_exporter(c, g_array_index(idx, guint, i));
		statebuf_put_u32(out, e->index);
		statebuf_put_bytes(out, e->addr, 16);
		statebuf_put_u16(out, e->port);
		statebuf_put_u8(out, e->agent ? 1 : 0);
		statebuf_put_unix_ms(out, e->last_seen_ms);
		statebuf_put_u32(out, e->domain_order->len);
		for (guint j = 0; j < e->domain_order->len; j++) {
			guint32 id = g_array_index(e->domain_order, guint32, j);
			save_domain(g_hash_table_lookup(e->domains, GUINT_TO_POINTER(id)), out);
		}
	}
}

/* ---- reader: every field through the bounds-checked cursor ---- */

#define TRUNC(what)                                                                           \
	do {                                                                                  \
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,                       \
			    "collector state: truncated or invalid %s", what);                           \
		return FALSE;                                                                 \
	} while (0)

static gboolean
load_domain(Exporter *e, Cursor *c, guint32 state_version, CollectorStateLoad *res,
	    GError **error)
{
	guint32 id, ntpl;
	guint8 version, seq_init, seq_mode, votes, nsamp;
	gint64 first, last, sys_init;
	guint32 v[9];
	SamplerSlot samp[SAMPLER_SLOTS];

	if (!cursor_u32(c, &id) || !cursor_u8(c, &version) || !statebuf_get_unix_ms(c, &first) ||
	    !statebuf_get_unix_ms(c, &last) || !cursor_u8(c, &seq_init))
		TRUNC("domain");
	for (guint i = 0; i < 4; i++)
		if (!cursor_u32(c, &v[i]))
			TRUNC("domain sequence");
	if (!cursor_u8(c, &seq_mode) || !cursor_u8(c, &votes))
		TRUNC("domain sequence");
	for (guint i = 4; i < 8; i++)
		if (!cursor_u32(c, &v[i]))
			TRUNC("domain sequence");
	if (!cursor_u8(c, &nsamp))
		TRUNC("domain sampling");
	if (nsamp > SAMPLER_SLOTS || (version != 0 && version != 5 && version != 9 &&
				      version != 10 && version != FLOW_VERSION_SFLOW5) ||
	    seq_mode > 2) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "collector state: domain %u is not valid", id);
		return FALSE;
	}
	for (guint i = 0; i < nsamp; i++)
		if (!cursor_u32(c, &samp[i].id) || !cursor_u32(c, &samp[i].interval))
			TRUNC("sampler");
	if (!statebuf_get_unix_ms(c, &sys_init))
		TRUNC("domain");
	guint32 nsrc = 0;
	Cursor srcs;
	if (state_version >= 2) {
		if (!cursor_u32(c, &nsrc))
			TRUNC("domain sources");
		/* 16 bytes each; refuse a count the blob cannot hold before reading on */
		if (nsrc > MAX_SAVED_SOURCES || nsrc > cursor_left(c) / 16 ||
		    !cursor_sub(c, (gsize)nsrc * 16, &srcs))
			TRUNC("domain sources");
	}
	if (!cursor_u32(c, &ntpl))
		TRUNC("domain");
	if (e != NULL && g_hash_table_contains(e->domains, GUINT_TO_POINTER(id))) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "collector state: domain %u appears twice", id);
		return FALSE;
	}

	/* No exporter (dropped) or over max_domains now: read past it and its templates. */
	Domain *d = e != NULL ? exporter_domain(e, id, last) : NULL;
	if (d == NULL)
		res->domains_dropped++;
	else {
		SessionStats *st = &d->st;
		st->version = version;
		st->first_seen_ms = first;
		st->last_seen_ms = last;
		st->seq_init = seq_init != 0;
		d->seq_last = v[0];
		d->seq_last_count = v[1];
		d->uptime_last = v[2];
		d->seq_last_data = v[3];
		d->seq_mode = (gint8)seq_mode;
		d->seq_votes = votes;
		d->seq_pending = v[4];
		d->seq_pending_rfc = v[5];
		d->seq_pending_own = v[6];
		domain_set_sampler(d, FALSE, 0, v[7]);
		d->n_samplers = nsamp;
		for (guint i = 0; i < nsamp; i++) {
			d->samplers[i] = samp[i];
			if (d->samplers[i].interval == 0)
				d->samplers[i].interval = 1;
		}
		d->sys_init_ms = sys_init;
		for (guint32 i = 0; i < nsrc; i++) {
			guint32 hi = 0, lo = 0, seq = 0, drops = 0;
			(void)(cursor_u32(&srcs, &hi) && cursor_u32(&srcs, &lo) &&
			       cursor_u32(&srcs, &seq) && cursor_u32(&srcs, &drops));
			if (!domain_restore_source(e, d, ((guint64)hi << 32) | lo, seq, drops))
				break; /* over max_sflow_sources now */
		}
	}

	for (guint32 i = 0; i < ntpl; i++) {
		guint16 set_id, len;
		guint8 tver;
		gint64 refreshed;
		Cursor raw;
		if (!cursor_u16(c, &set_id) || !cursor_u8(c, &tver) || !statebuf_get_unix_ms(c, &refreshed) ||
		    !cursor_u16(c, &len) || !cursor_sub(c, len, &raw))
			TRUNC("template");
		if (d == NULL)
			continue;
		if (tver != 9 && tver != 10) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "collector state: template of version %u", tver);
			return FALSE;
		}
		DecodeCtx ctx = {.exp = e, .dom = d, .now_ms = refreshed, .version = tver};
		guint64 refused = d->st.templates_refused;
		TplResult r = template_restore(&ctx, set_id, cursor_ptr(&raw), len, refreshed);
		if (r != TPL_OK) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "collector state: template %u of domain %u does not parse", i, id);
			return FALSE;
		}
		if (d->st.templates_refused != refused)
			res->templates_dropped++;
		else
			res->templates++;
	}
	if (d != NULL) {
		/* Restored, not received: this run's counters start at zero. */
		d->st.template_records = 0;
		d->st.templates_refused = 0;
		res->domains++;
	}
	return TRUE;
}

gboolean
collector_state_load(Collector *c, const guint8 *data, gsize len, CollectorStateLoad *res,
		     GError **error)
{
	Cursor cur;
	guint32 version, next_index, n;

	memset(res, 0, sizeof *res);
	cursor_init(&cur, data, len);
	if (!cursor_u32(&cur, &version) || !cursor_u32(&cur, &next_index) ||
	    !cursor_u32(&cur, &n))
		TRUNC("header");
	if (version != 1 && version != STATE_VERSION) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "collector state: version %u, this build reads %u", version,
			    STATE_VERSION);
		return FALSE;
	}
	for (guint32 i = 0; i < n; i++) {
		guint32 index, ndom;
		guint8 addr[16];
		guint16 port;
		gint64 last;
		guint8 agent = 0;
		if (!cursor_u32(&cur, &index) || !cursor_bytes(&cur, addr, 16) ||
		    !cursor_u16(&cur, &port) || (version >= 2 && !cursor_u8(&cur, &agent)) ||
		    !statebuf_get_unix_ms(&cur, &last) || !cursor_u32(&cur, &ndom))
			TRUNC("exporter");
		if (agent > 1 || (agent && port != 0)) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "collector state: exporter %u is not valid", index);
			return FALSE;
		}
		if (index >= next_index) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "collector state: exporter index %u past the next index %u",
				    index, next_index);
			return FALSE;
		}
		Exporter *e = NULL;
		switch (collector_exporter_restore(c, index, addr, port, agent, last, &e)) {
		case COLLECTOR_RESTORE_OK:
			res->exporters++;
			break;
		case COLLECTOR_RESTORE_DROPPED:
			res->exporters_dropped++; /* refused by the allowlist or over the cap */
			break;
		default:
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "collector state: exporter %u appears twice", index);
			return FALSE;
		}
		for (guint32 j = 0; j < ndom; j++) {
			if (!load_domain(e, &cur, version, res, error))
				return FALSE;
		}
	}
	if (cursor_left(&cur) != 0) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "collector state: %zu bytes after the last exporter", cursor_left(&cur));
		return FALSE;
	}
	collector_set_next_index(c, next_index);
	return TRUE;
}
