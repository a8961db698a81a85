/* Host groups and suppressions (policy.h): the groups' prefixes indexed in one NetSet whose
 * values are group indexes (longest prefix wins, a prefix in two groups is refused), and
 * the suppressions in a hash table keyed by (host, reason or all), with their saved form.
 *
 * Saved suppressions (policy_supp_save), big-endian:
 *   "SFSP", u16 version (POLICY_SUPP_VERSION), u32 n,
 *   n x {16 addr, u8 reason (0xff = all reasons), i64 until_ms, i64 set_ms, u32 uid,
 *        u8 note length (<= POLICY_NOTE_MAX), the note's bytes (UTF-8)} */
#include "policy.h"

#include <string.h>

#include "netset.h"
#include "statebuf.h"

G_DEFINE_QUARK(policy-error-quark, policy_error)

#define POLICY_SUPP_MAGIC "SFSP"
#define POLICY_SUPP_VERSION 1
#define SUPP_ALL 0xff
#define SUPP_MIN_ENTRY (16 + 1 + 8 + 8 + 4 + 1)

/* ---- groups ---- */

guint
policy_reason_thresholds(AlertReason r)
{
	/* reasons judged on one window only; the others have a short and a long one */
	static const char *const single[] = {"smtp-novelty"};
	for (guint i = 0; i < G_N_ELEMENTS(single); i++) {
		if (g_strcmp0(alert_reason_name(r), single[i]) == 0)
			return 1;
	}
	return WINDOW_SPANS;
}

struct PolicyGroups {
	NetSet *set; /* value: group index */
	guint n;
};

gboolean
policy_group_name_valid(const char *name)
{
	gsize n = name != NULL ? strlen(name) : 0;
	if (n == 0 || n > POLICY_GROUP_NAME_MAX)
		return FALSE;
	for (gsize i = 0; i < n; i++) {
		if (!g_ascii_isalnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return FALSE;
	}
	return TRUE;
}

typedef struct {
	PolicyGroups *pg;
	guint index;
	const PolicyGroup *groups;
	GError *error;
} AddCtx;

static void
add_prefix(const char *text, guint32 value, gpointer user_data)
{
	AddCtx *c = user_data;
	guint8 p[16];
	guint plen;
	NetSetMatch m;

	(void)value;
	if (c->error != NULL)
		return;
	if (!netset_parse_prefix(text, p, &plen, &c->error))
		return;
	/* the same prefix in another group: which one wins would be the order in the file */
	if (netset_lookup(c->pg->set, p, &m) && m.plen == plen && memcmp(m.prefix, p, 16) == 0 &&
	    m.value != c->index) {
		g_set_error(&c->error, POLICY_ERROR, POLICY_ERROR_INVALID,
			    "prefix %s is also in [group %s]: one prefix, one group", text,
			    c->groups[m.value].name);
		return;
	}
	if (!netset_insert(c->pg->set, p, plen, c->index, &c->error))
		return;
}

PolicyGroups *
policy_groups_new(const PolicyGroup *groups, guint n, guint *bad, GError **error)
{
	g_autoptr(PolicyGroups) pg = g_new0(PolicyGroups, 1);
	pg->set = netset_new();
	pg->n = n;
	for (guint i = 0; i < n; i++) {
		const PolicyGroup *g = &groups[i];
		GError *e = NULL;
		if (bad != NULL)
			*bad = i;
		if (!policy_group_name_valid(g->name)) {
			g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
				    "group name '%.64s': 1 to %d letters, digits, '-', '_' or '.'",
				    g->name != NULL ? g->name : "", POLICY_GROUP_NAME_MAX);
			return NULL;
		}
		for (guint j = 0; j < i; j++) {
			if (strcmp(groups[j].name, g->name) == 0) {
				g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
					    "[group %s] is defined twice", g->name);
				return NULL;
			}
		}
		if ((g->override | g->exempt) >> REASON_COUNT != 0) {
			g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
				    "[group %s]: a reason past the known ones", g->name);
			return NULL;
		}
		g_autoptr(NetSet) own = netset_new();
		if (!netset_add_list(own, g->prefixes, 0, &e)) {
			g_propagate_prefixed_error(error, e, "[group %s] prefixes: ", g->name);
			return NULL;
		}
		if (netset_size(own) == 0) {
			g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
				    "[group %s] prefixes: at least one prefix is needed", g->name);
			return NULL;
		}
		AddCtx c = {.pg = pg, .index = i, .groups = groups};
		netset_foreach(own, add_prefix, &c);
		if (c.error != NULL) {
			g_propagate_prefixed_error(error, c.error, "[group %s] prefixes: ", g->name);
			return NULL;
		}
	}
	return g_steal_pointer(&pg);
}

void
policy_groups_free(PolicyGroups *pg)
{
	if (pg == NULL)
		return;
	netset_free(pg->set);
	g_free(pg);
}

guint
policy_groups_lookup(const PolicyGroups *pg, const guint8 addr[16], guint *plen)
{
	NetSetMatch m;
	if (pg == NULL || pg->n == 0 || !netset_lookup(pg->set, addr, &m))
		return POLICY_NO_GROUP;
	if (plen != NULL)
		*plen = m.plen;
	return m.value;
}

guint
policy_groups_count(const PolicyGroups *pg)
{
	return pg != NULL ? pg->n : 0;
}

/* ---- suppressions ---- */

struct PolicySuppressions {
	GHashTable *t; /* set of PolicySuppression *, keyed by (addr, reason or all) */
};

static guint8
supp_tag(const PolicySuppression *s)
{
	return s->all ? SUPP_ALL : (guint8)s->reason;
}

static guint
supp_hash(gconstpointer p)
{
	const PolicySuppression *s = p;
	guint h = 2166136261u;
	for (guint i = 0; i < 16; i++)
		h = (h ^ s->addr[i]) * 16777619u;
	return (h ^ supp_tag(s)) * 16777619u;
}

static gboolean
supp_equal(gconstpointer a, gconstpointer b)
{
	const PolicySuppression *x = a, *y = b;
	return supp_tag(x) == supp_tag(y) && memcmp(x->addr, y->addr, 16) == 0;
}

PolicySuppressions *
policy_supp_new(void)
{
	PolicySuppressions *ps = g_new0(PolicySuppressions, 1);
	ps->t = g_hash_table_new_full(supp_hash, supp_equal, g_free, NULL);
	return ps;
}

void
policy_supp_free(PolicySuppressions *ps)
{
	if (ps == NULL)
		return;
	g_hash_table_destroy(ps->t);
	g_free(ps);
}

guint
policy_supp_count(const PolicySuppressions *ps)
{
	return ps != NULL ? g_hash_table_size(ps->t) : 0;
}

static gboolean
supp_valid(const PolicySuppression *s, GError **error)
{
	const char *bad = NULL;
	if (!s->all && (guint)s->reason >= REASON_COUNT)
		bad = "unknown reason";
	else if (memchr(s->note, '\0', sizeof s->note) == NULL)
		bad = "note too long";
	else if (!g_utf8_validate(s->note, -1, NULL))
		bad = "note is not UTF-8";
	if (bad != NULL) {
		g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID, "suppression: %s", bad);
		return FALSE;
	}
	return TRUE;
}

gboolean
policy_supp_set(PolicySuppressions *ps, const PolicySuppression *s, guint cap,
		gboolean *replaced, GError **error)
{
	if (!supp_valid(s, error))
		return FALSE;
	gboolean had = g_hash_table_contains(ps->t, s);
	if (!had && g_hash_table_size(ps->t) >= cap) {
		g_set_error(error, POLICY_ERROR, POLICY_ERROR_FULL,
			    "%u suppressions are held, the most [analyzer] max_suppressions "
			    "allows: unsuppress some first, or raise it",
			    g_hash_table_size(ps->t));
		return FALSE;
	}
	PolicySuppression *e = g_memdup2(s, sizeof *s);
	if (e->all)
		e->reason = 0;
	g_hash_table_replace(ps->t, e, e);
	if (replaced != NULL)
		*replaced = had;
	return TRUE;
}

guint
policy_supp_remove(PolicySuppressions *ps, const guint8 addr[16], gboolean has_reason,
		   AlertReason reason)
{
	PolicySuppression k = {0};
	guint n = 0;
	memcpy(k.addr, addr, 16);
	for (guint r = 0; r <= REASON_COUNT; r++) {
		k.all = r == REASON_COUNT;
		k.reason = k.all ? 0 : (AlertReason)r;
		if (has_reason && (k.all || k.reason != reason))
			continue;
		n += g_hash_table_remove(ps->t, &k);
	}
	return n;
}

const PolicySuppression *
policy_supp_active(const PolicySuppressions *ps, const guint8 addr[16], AlertReason r,
		   gint64 now_ms)
{
	if (ps == NULL || g_hash_table_size(ps->t) == 0)
		return NULL; /* first: every judged flow asks, and most sites suppress nothing */
	PolicySuppression k = {0};
	memcpy(k.addr, addr, 16);
	k.all = TRUE;
	const PolicySuppression *s = g_hash_table_lookup(ps->t, &k);
	if (s != NULL && now_ms < s->until_ms)
		return s;
	k.all = FALSE;
	k.reason = r;
	s = g_hash_table_lookup(ps->t, &k);
	return s != NULL && now_ms < s->until_ms ? s : NULL;
}

gint
policy_suppression_cmp(const PolicySuppression *a, const PolicySuppression *b)
{
	int c = memcmp(a->addr, b->addr, 16);
	if (c != 0)
		return c;
	/* all reasons first, then by reason */
	guint ta = a->all ? 0 : 1 + (guint)a->reason, tb = b->all ? 0 : 1 + (guint)b->reason;
	return ta < tb ? -1 : ta > tb;
}

static gint
cmp_supp(gconstpointer pa, gconstpointer pb)
{
	return policy_suppression_cmp(*(PolicySuppression *const *)pa,
				      *(PolicySuppression *const *)pb);
}

static GPtrArray *
sorted(const PolicySuppressions *ps)
{
	GPtrArray *v = g_ptr_array_sized_new(g_hash_table_size(ps->t));
	GHashTableIter it;
	gpointer k;
	g_hash_table_iter_init(&it, ps->t);
	while (g_hash_table_iter_next(&it, &k, NULL))
		g_ptr_array_add(v, k);
	g_ptr_array_sort(v, cmp_supp);
	return v;
}

void
policy_supp_foreach(const PolicySuppressions *ps, PolicySuppFunc fn, gpointer user_data)
{
	if (ps == NULL || g_hash_table_size(ps->t) == 0)
		return;
	g_autoptr(GPtrArray) v = sorted(ps);
	for (guint i = 0; i < v->len; i++)
		fn(v->pdata[i], user_data);
}

guint
policy_supp_expire(PolicySuppressions *ps, gint64 now_ms, PolicySuppFunc fn, gpointer user_data)
{
	if (ps == NULL || g_hash_table_size(ps->t) == 0)
		return 0;
	g_autoptr(GPtrArray) v = sorted(ps);
	guint n = 0;
	for (guint i = 0; i < v->len; i++) {
		PolicySuppression *s = v->pdata[i];
		if (s->until_ms > now_ms)
			continue;
		if (fn != NULL)
			fn(s, user_data);
		g_hash_table_remove(ps->t, s); /* frees s */
		n++;
	}
	return n;
}

void
policy_supp_save(const PolicySuppressions *ps, GByteArray *out)
{
	statebuf_put_bytes(out, POLICY_SUPP_MAGIC, 4);
	statebuf_put_u16(out, POLICY_SUPP_VERSION);
	statebuf_put_u32(out, policy_supp_count(ps));
	if (policy_supp_count(ps) == 0)
		return;
	g_autoptr(GPtrArray) v = sorted(ps);
	for (guint i = 0; i < v->len; i++) {
		const PolicySuppression *s = v->pdata[i];
		gsize nlen = strnlen(s->note, POLICY_NOTE_MAX);
		statebuf_put_bytes(out, s->addr, 16);
		statebuf_put_u8(out, supp_tag(s));
		statebuf_put_i64(out, s->until_ms);
		statebuf_put_i64(out, s->set_ms);
		statebuf_put_u32(out, s->uid);
		statebuf_put_u8(out, (guint8)nlen);
		statebuf_put_bytes(out, s->note, nlen);
	}
}

gboolean
policy_supp_load(PolicySuppressions *ps, const guint8 *data, gsize len, gint64 now_ms, guint cap,
		 guint *dropped, GError **error)
{
	Cursor c;
	char magic[4];
	guint16 version;
	guint32 n;
	const char *bad = NULL;
	g_autoptr(GArray) v = g_array_new(FALSE, TRUE, sizeof(PolicySuppression));

	*dropped = 0;
	cursor_init(&c, data, len);
	if (!cursor_bytes(&c, magic, 4) || memcmp(magic, POLICY_SUPP_MAGIC, 4) != 0)
		bad = "not saved suppressions (magic)";
	else if (!cursor_u16(&c, &version) || version != POLICY_SUPP_VERSION)
		bad = "unsupported version";
	else if (!cursor_u32(&c, &n) || !statebuf_count_ok(&c, n, SUPP_MIN_ENTRY, G_MAXUINT32))
		bad = "count past the end";
	for (guint32 i = 0; bad == NULL && i < n; i++) {
		PolicySuppression s = {0};
		guint8 tag, nlen;
		if (!cursor_bytes(&c, s.addr, 16) || !cursor_u8(&c, &tag) ||
		    !statebuf_get_time(&c, &s.until_ms) || !statebuf_get_time(&c, &s.set_ms) ||
		    !cursor_u32(&c, &s.uid) || !cursor_u8(&c, &nlen) || nlen > POLICY_NOTE_MAX ||
		    !cursor_bytes(&c, s.note, nlen)) {
			bad = "truncated entry, or a time or note length out of range";
			break;
		}
		if (tag != SUPP_ALL && tag >= REASON_COUNT) {
			bad = "unknown reason";
			break;
		}
		s.all = tag == SUPP_ALL;
		s.reason = s.all ? 0 : (AlertReason)tag;
		if (!g_utf8_validate(s.note, nlen, NULL) || memchr(s.note, '\0', nlen) != NULL) {
			bad = "note is not UTF-8 text";
			break;
		}
		g_array_append_val(v, s);
	}
	if (bad == NULL && cursor_left(&c) != 0)
		bad = "bytes after the last entry";
	if (bad != NULL) {
		g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID, "suppressions: %s", bad);
		return FALSE;
	}
	for (guint i = 0; i < v->len; i++) {
		const PolicySuppression *s = &g_array_index(v, PolicySuppression, i);
		if (s->until_ms <= now_ms || !policy_supp_set(ps, s, cap, NULL, NULL))
			(*dropped)++;
	}
	return TRUE;
}
