/* The analyzer's side of policy.h: the groups in force (copied from the configuration,
 * replaced on reconfiguring) and the suppressions (kept across reconfiguring, expired by the
 * analyzer's clock at each tick), what judge() and thresholds() ask of them, and the
 * queries and changes the daemon's control commands make. */
#include "analyzer_private.h"

void
analyzer_policy_init(Analyzer *a)
{
	a->supp = policy_supp_new();
}

static void
groups_clear(Analyzer *a)
{
	for (guint i = 0; i < a->n_groups; i++) {
		g_free((char *)a->groups[i].name);
		g_free((char *)a->groups[i].prefixes);
	}
	g_clear_pointer(&a->groups, g_free);
	a->n_groups = 0;
	g_clear_pointer(&a->group_set, policy_groups_free);
}

void
analyzer_policy_free(Analyzer *a)
{
	groups_clear(a);
	g_clear_pointer(&a->supp, policy_supp_free);
}

/* Called by analyzer_config_apply(): c's groups (indexed in set, which a takes) in force. */
void
analyzer_policy_apply(Analyzer *a, const AnalyzerConfig *c, PolicyGroups *set)
{
	groups_clear(a);
	a->n_groups = c->n_groups;
	a->groups = g_new0(PolicyGroup, MAX(c->n_groups, 1u));
	for (guint i = 0; i < c->n_groups; i++) {
		a->groups[i] = c->groups[i];
		a->groups[i].name = g_strdup(c->groups[i].name);
		a->groups[i].prefixes = g_strdup(c->groups[i].prefixes);
	}
	a->group_set = set;
	a->cfg.groups = a->groups;
}

void
analyzer_policy_group_name(const Analyzer *a, const guint8 addr[16],
			   char ev_group[POLICY_GROUP_NAME_MAX + 1])
{
	guint g = analyzer_policy_group_of(a, addr);
	g_strlcpy(ev_group, g != POLICY_NO_GROUP ? a->groups[g].name : "",
		  POLICY_GROUP_NAME_MAX + 1);
}

static void
tell_expired(const PolicySuppression *s, gpointer user_data)
{
	Analyzer *a = user_data;
	AnalyzerNoticeInfo info = {.suppression = s};
	if (a->notice_fn != NULL && !a->loading)
		a->notice_fn(ANALYZER_NOTICE_SUPPRESSION_EXPIRED, &info, a->notice_data);
}

void
analyzer_policy_expire(Analyzer *a, gint64 now)
{
	a->st.suppressions_expired += policy_supp_expire(a->supp, now, tell_expired, a);
}

/* ---- public ---- */

void
analyzer_host_policy(const Analyzer *a, const guint8 addr[16], AnalyzerHostPolicy *out)
{
	memset(out, 0, sizeof *out);
	out->index = POLICY_NO_GROUP;
	for (guint r = 0; r < REASON_COUNT; r++)
		memcpy(out->threshold[r], a->cfg.h[r].threshold, sizeof out->threshold[r]);
	if (a->n_groups == 0)
		return;
	guint g = policy_groups_lookup(a->group_set, addr, &out->plen);
	if (g == POLICY_NO_GROUP)
		return;
	const PolicyGroup *pg = &a->groups[g];
	out->index = g;
	g_strlcpy(out->name, pg->name, sizeof out->name);
	out->override = pg->override;
	out->exempt = pg->exempt;
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (pg->override & (1u << r))
			memcpy(out->threshold[r], pg->threshold[r], sizeof out->threshold[r]);
	}
}

gboolean
analyzer_suppress(Analyzer *a, const PolicySuppression *s, gboolean *replaced, GError **error)
{
	if (s->until_ms <= a->now_ms) {
		g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
			    "the suppression would be over already (until %" G_GINT64_FORMAT
			    " ms, the analyzer's clock is at %" G_GINT64_FORMAT " ms)",
			    s->until_ms, a->now_ms);
		return FALSE;
	}
	GError *e = NULL;
	if (!policy_supp_set(a->supp, s, a->cfg.max_suppressions, replaced, &e)) {
		if (g_error_matches(e, POLICY_ERROR, POLICY_ERROR_FULL))
			a->st.suppressions_refused++;
		g_propagate_error(error, e);
		return FALSE;
	}
	a->st.suppressions_set++;
	return TRUE;
}

guint
analyzer_unsuppress(Analyzer *a, const guint8 addr[16], gboolean has_reason, AlertReason r)
{
	return policy_supp_remove(a->supp, addr, has_reason, r);
}

const PolicySuppression *
analyzer_suppressed(const Analyzer *a, const guint8 addr[16], AlertReason r)
{
	return policy_supp_active(a->supp, addr, r, a->now_ms);
}

void
analyzer_foreach_suppression(const Analyzer *a, PolicySuppFunc fn, gpointer user_data)
{
	policy_supp_foreach(a->supp, fn, user_data);
}

guint
analyzer_suppression_count(const Analyzer *a)
{
	return policy_supp_count(a->supp);
}

void
analyzer_suppressions_save(const Analyzer *a, GByteArray *out)
{
	policy_supp_save(a->supp, out);
}

gboolean
analyzer_suppressions_load(Analyzer *a, const guint8 *data, gsize len, gint64 now_ms,
			   guint *dropped, GError **error)
{
	return policy_supp_load(a->supp, data, len, now_ms, a->cfg.max_suppressions, dropped,
				error);
}

G_STATIC_ASSERT(sizeof(((AlertEvent *)NULL)->group) == POLICY_GROUP_NAME_MAX + 1);
