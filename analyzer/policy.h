/* Policy the admin shapes: host groups (prefixes with their own thresholds and exempt
 * reasons, longest prefix wins) and suppressions (a host, or one reason of it, raises
 * nothing until a time). Pure lookups and tables; the analyzer consults them in
 * thresholds() and judge(), the daemon fills them from [group NAME] sections and the
 * control socket's suppress/unsuppress. */
#pragma once

#include <glib.h>

#include "alert.h"
#include "window.h"

#define POLICY_GROUP_NAME_MAX 31 /* bytes of a group name (AlertEvent.group holds it + NUL) */
#define POLICY_NO_GROUP G_MAXUINT
#define POLICY_NOTE_MAX 200 /* bytes of a suppression's note */

/* One [group NAME] section. Strings are borrowed (the analyzer copies them). */
typedef struct {
	const char *name;     /* 1..POLICY_GROUP_NAME_MAX of [A-Za-z0-9_.-] */
	const char *prefixes; /* a list as netset_add_list() takes it; at least one prefix */
	/* reason r's thresholds are threshold[r] when override & (1 << r), else the global
	 * ones. 0 = that window off, as in the global keys. For mta-surge they are the floors
	 * the baseline raises. */
	guint32 override;
	guint32 threshold[REASON_COUNT][WINDOW_SPANS];
	guint32 exempt; /* 1 << reason: never raised for hosts of the group */
} PolicyGroup;

/* How many thresholds a reason's override takes: 1 for reasons that have a single one
 * (smtp-novelty: "smtp-novelty = 100"), else WINDOW_SPANS (short/long: "200/600"). By name,
 * so that a reason added to alert.h needs a line here only if it is single. */
guint policy_reason_thresholds(AlertReason r);

/* 1..POLICY_GROUP_NAME_MAX bytes of letters, digits, '-', '_' or '.' */
gboolean policy_group_name_valid(const char *name);

/* The groups' prefixes in one longest-prefix set. */
typedef struct PolicyGroups PolicyGroups;

/* Check and index n groups (names unique and well formed, every prefix parses, no prefix in
 * two groups). On error *bad (when not NULL) is the index of the group at fault. The groups
 * are not copied: keep them while the result lives. */
PolicyGroups *policy_groups_new(const PolicyGroup *groups, guint n, guint *bad,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;
void policy_groups_free(PolicyGroups *pg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PolicyGroups, policy_groups_free)
/* The index of the group whose longest prefix covers addr, or POLICY_NO_GROUP; *plen (may
 * be NULL) gets that prefix's length in key space (an IPv4 /24 is 120). */
guint policy_groups_lookup(const PolicyGroups *pg, const guint8 addr[16], guint *plen);
guint policy_groups_count(const PolicyGroups *pg);

/* A suppression: host (all reasons, or one) raises nothing until until_ms. */
typedef struct {
	guint8 addr[16];
	gboolean all;       /* every reason; else only `reason` */
	AlertReason reason;
	gint64 until_ms;    /* analyzer clock (epoch ms): active while now < until_ms */
	gint64 set_ms;      /* when it was set (wall clock, for people) */
	guint32 uid;        /* who set it */
	char note[POLICY_NOTE_MAX + 1];
} PolicySuppression;

/* Suppressions by (host, reason or all): at most one entry per pair. */
typedef struct PolicySuppressions PolicySuppressions;

/* The order suppressions are listed in: by host, the all-reasons one first, then by
 * reason. */
gint policy_suppression_cmp(const PolicySuppression *a, const PolicySuppression *b);

#define POLICY_ERROR policy_error_quark()
GQuark policy_error_quark(void);
typedef enum {
	POLICY_ERROR_INVALID, /* a bad group, suppression or saved state */
	POLICY_ERROR_FULL,    /* the suppression cap is reached */
} PolicyError;

PolicySuppressions *policy_supp_new(void);
void policy_supp_free(PolicySuppressions *ps);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PolicySuppressions, policy_supp_free)
guint policy_supp_count(const PolicySuppressions *ps);
/* Add s, or replace the entry of the same (host, reason or all). A new entry past cap
 * entries is refused (POLICY_ERROR_FULL); *replaced says whether one was replaced. */
G_GNUC_WARN_UNUSED_RESULT gboolean policy_supp_set(PolicySuppressions *ps,
						   const PolicySuppression *s, guint cap,
						   gboolean *replaced, GError **error);
/* Remove the host's entry for reason (has_reason), or all its entries; the number removed. */
guint policy_supp_remove(PolicySuppressions *ps, const guint8 addr[16], gboolean has_reason,
			 AlertReason reason);
/* The entry that keeps (addr, r) quiet at now_ms (the all-reasons one first), or NULL. */
const PolicySuppression *policy_supp_active(const PolicySuppressions *ps, const guint8 addr[16],
					    AlertReason r, gint64 now_ms);
typedef void (*PolicySuppFunc)(const PolicySuppression *s, gpointer user_data);
/* Every entry, ordered by host then reason (all-reasons first). */
void policy_supp_foreach(const PolicySuppressions *ps, PolicySuppFunc fn, gpointer user_data);
/* Remove the entries with until_ms <= now_ms, calling fn (may be NULL) for each first. */
guint policy_supp_expire(PolicySuppressions *ps, gint64 now_ms, PolicySuppFunc fn,
			 gpointer user_data);
/* The entries as bytes (format in policy.c), and back: load adds what it reads to ps
 * (entries already expired at now_ms, or past cap, are dropped and counted in *dropped).
 * Untrusted bytes: FALSE with an error, and ps unchanged, on anything malformed. */
void policy_supp_save(const PolicySuppressions *ps, GByteArray *out);
G_GNUC_WARN_UNUSED_RESULT gboolean policy_supp_load(PolicySuppressions *ps, const guint8 *data,
						    gsize len, gint64 now_ms, guint cap,
						    guint *dropped, GError **error);
