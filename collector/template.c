/* The templates of each observation domain, for NetFlow v9 (RFC 3954) and IPFIX (RFC 7011):
 * template and options template records read from template sets, installed under the
 * caps, withdrawn, expired, and saved for a restart as their wire records. Each record
 * becomes a plan in template_plan.c; data sets are decoded through it in template_data.c. */
#include "statebuf.h"
#include "template_plan.h"

#include <string.h>

void
template_free(Template *t)
{
	if (t == NULL)
		return;
	if (t->acct != NULL)
		*t->acct -= MIN(*t->acct, t->cost);
	g_free(t->flen);
	g_free(t->raw);
	g_free(t);
}

static void
install(DecodeCtx *ctx, Template *t)
{
	Domain *d = ctx->dom;
	Exporter *e = ctx->exp;
	Template *old = g_hash_table_lookup(d->templates, GUINT_TO_POINTER(t->id));

	if (old == NULL && e->n_templates >= e->cfg->max_templates) {
		d->st.templates_refused++;
		template_free(t);
		return;
	}
	/* Bytes, across every exporter: the count cap alone lets many source ports, or huge
	 * templates, hold without bound. A replacement is judged on what it adds. */
	guint32 cost = (guint32)(sizeof *t + t->raw_len + (t->flen != NULL ? t->nfields * 2u : 0));
	guint64 held = e->totals->template_bytes - (old != NULL ? old->cost : 0);
	if (t->nfields > e->cfg->max_template_fields || held + cost > e->cfg->template_memory) {
		d->st.templates_refused++;
		e->totals->templates_over_memory++;
		template_free(t);
		return;
	}
	t->cost = cost;
	t->acct = &e->totals->template_bytes;
	e->totals->template_bytes += cost;
	t->refreshed_ms = ctx->now_ms;
	if (old == NULL) {
		e->n_templates++;
		d->st.templates_active++;
	}
	/* Redefinition replaces (RFC 7011 8.1 asks for a withdrawal first; over UDP exporters
	 * simply resend, RFC 7011 8.4). */
	g_hash_table_replace(d->templates, GUINT_TO_POINTER(t->id), t);
	d->st.template_records++;
}

static void
withdraw(DecodeCtx *ctx, guint16 id, gboolean all, gboolean options)
{
	Domain *d = ctx->dom;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, d->templates);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Template *t = v;
		if (all ? t->options != options : t->id != id)
			continue;
		g_hash_table_iter_remove(&it);
		ctx->exp->n_templates--;
		d->st.templates_active--;
		d->st.templates_withdrawn++;
	}
}

/* One template record; the cursor is at its template ID. */
static TplResult
template_record(DecodeCtx *ctx, Cursor *c, guint16 set_id)
{
	gboolean ipfix = ctx->version == 10;
	gboolean options = ipfix ? set_id == 3 : set_id == 1;
	guint16 id, count, scope = 0;
	const guint8 *start = cursor_ptr(c);

	if (!cursor_u16(c, &id) || !cursor_u16(c, &count))
		return TPL_BAD;
	if (id == 0 && count == 0)
		return TPL_PADDING; /* zero padding at the end of a (options) template set */

	guint nfields = count;
	if (ipfix && count == 0) {
		/* RFC 7011 8.1: withdrawal; template ID = set ID withdraws all of that set kind */
		if (id == set_id) {
			withdraw(ctx, 0, TRUE, options);
			return TPL_WITHDRAWN;
		}
		if (id < 256)
			return TPL_BAD_ID;
		withdraw(ctx, id, FALSE, options);
		return TPL_WITHDRAWN;
	}
	if (options && ipfix) {
		/* RFC 7011 3.4.2.2: scope field count, at least 1 and within the field count */
		if (!cursor_u16(c, &scope))
			return TPL_BAD;
		if (scope == 0 || scope > count)
			return TPL_BAD;
	} else if (options) {
		/* RFC 3954 6.1: count is the scope length in bytes, then the option length */
		guint16 optlen;
		if (!cursor_u16(c, &optlen))
			return TPL_BAD;
		if (count % 4 != 0 || optlen % 4 != 0 || count + optlen == 0)
			return TPL_BAD;
		scope = count / 4;
		nfields = scope + optlen / 4;
	}
	if (nfields == 0)
		return TPL_BAD; /* v9 template with no fields */
	/* Each field spec takes at least 4 bytes: refuse counts the set cannot hold before
	 * allocating anything. */
	if ((gsize)nfields > cursor_left(c) / 4)
		return TPL_BAD;

	Template *t = g_new0(Template, 1);
	t->id = id;
	t->options = options;
	if (!template_plan_fields(t, c, ctx->version, nfields, scope)) {
		template_free(t);
		return TPL_BAD;
	}
	if (id < 256) {
		template_free(t);
		return TPL_BAD_ID;
	}
	if (!options)
		template_plan_compile(t, ctx->version);
	t->set_id = set_id;
	t->version = ctx->version;
	t->raw_len = (guint16)(cursor_ptr(c) - start); /* within one set: < 65536 */
	t->raw = g_memdup2(start, t->raw_len);
	install(ctx, t);
	return TPL_OK;
}

gboolean
template_set(DecodeCtx *ctx, Cursor *set, guint16 set_id)
{
	SessionStats *st = &ctx->dom->st;
	gboolean bad_id = FALSE;

	/* A set may end in padding shorter than a record header (RFC 7011 3.3.1). */
	while (cursor_left(set) >= 4) {
		TplResult r = template_record(ctx, set, set_id);
		if (r == TPL_PADDING)
			break;
		if (r == TPL_BAD) {
			st->malformed[MAL_TEMPLATE]++;
			return FALSE;
		}
		if (r == TPL_BAD_ID)
			bad_id = TRUE;
	}
	if (bad_id)
		st->malformed[MAL_TEMPLATE_ID]++;
	return TRUE;
}

static gint
template_id_cmp(gconstpointer a, gconstpointer b)
{
	guint x = GPOINTER_TO_UINT(a), y = GPOINTER_TO_UINT(b);
	return x < y ? -1 : x > y;
}

guint
template_state_save(const Domain *d, GByteArray *out)
{
	g_autoptr(GList) ids = g_hash_table_get_keys(d->templates);
	guint n = 0;

	/* Ascending IDs: the same state always gives the same bytes. */
	ids = g_list_sort(ids, (GCompareFunc)template_id_cmp);
	for (GList *l = ids; l != NULL; l = l->next) {
		const Template *t = g_hash_table_lookup(d->templates, l->data);
		statebuf_put_u16(out, t->set_id);
		statebuf_put_u8(out, t->version);
		statebuf_put_unix_ms(out, t->refreshed_ms);
		statebuf_put_u16(out, t->raw_len);
		statebuf_put_bytes(out, t->raw, t->raw_len);
		n++;
	}
	return n;
}

TplResult
template_restore(DecodeCtx *ctx, guint16 set_id, const guint8 *raw, gsize len,
		 gint64 refreshed_ms)
{
	Cursor c;
	guint16 id;
	guint32 refused = ctx->dom->st.templates_refused;

	if (ctx->version == 10 ? set_id != 2 && set_id != 3 : set_id > 1)
		return TPL_BAD;
	cursor_init(&c, raw, len);
	if (!cursor_u16(&c, &id))
		return TPL_BAD;
	c.off = 0;
	TplResult r = template_record(ctx, &c, set_id);
	/* One whole record, or it is not what was saved. */
	if (r == TPL_OK && cursor_left(&c) != 0)
		return TPL_BAD;
	if (r != TPL_OK)
		return r == TPL_WITHDRAWN || r == TPL_PADDING ? TPL_BAD : r;
	Template *t = g_hash_table_lookup(ctx->dom->templates, GUINT_TO_POINTER(id));
	if (t != NULL && ctx->dom->st.templates_refused == refused)
		t->refreshed_ms = refreshed_ms;
	return TPL_OK;
}

guint
template_expire(Exporter *e, Domain *d, gint64 now_ms)
{
	gint64 max_age = (gint64)e->cfg->template_timeout_s * 1000;
	GHashTableIter it;
	gpointer k, v;
	guint n = 0;

	if (max_age <= 0)
		return 0;
	g_hash_table_iter_init(&it, d->templates);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Template *t = v;
		if (now_ms - t->refreshed_ms <= max_age)
			continue;
		g_hash_table_iter_remove(&it);
		e->n_templates--;
		d->st.templates_active--;
		d->st.templates_expired++;
		n++;
	}
	return n;
}
