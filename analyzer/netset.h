/* NetSet: a set of IPv4/IPv6 prefixes with longest-prefix match. Keys are 16-byte
 * addresses; IPv4 lives IPv4-mapped (::ffff:a.b.c.d), so 10.0.0.0/8 is ::ffff:10.0.0.0/104. */
#pragma once

#include <glib.h>
#include <string.h>

typedef struct NetSet NetSet;

#define NETSET_ERROR netset_error_quark()
GQuark netset_error_quark(void);
typedef enum { NETSET_ERROR_INVALID } NetSetError;

/* Result of a longest-prefix lookup. `plen` is in the 128-bit key space (an IPv4 /8 is 104). */
typedef struct {
	guint8 prefix[16];
	guint plen;
	guint32 value;
} NetSetMatch;

NetSet *netset_new(void);
void netset_free(NetSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetSet, netset_free)

/* Add a prefix in key space (plen 0..128) with a caller-defined value. Host bits past plen
 * must be zero. Re-adding a prefix replaces its value. */
G_GNUC_WARN_UNUSED_RESULT gboolean netset_insert(NetSet *set, const guint8 prefix[16], guint plen,
						   guint32 value, GError **error);

/* Parse one entry: "10.0.0.0/8", "192.0.2.25" (a /32), "fc00::/7", "2001:db8::1" (a /128),
 * "::ffff:1.2.3.4" (IPv4; a length after a mapped
 * address is in IPv6 terms, ::ffff:10.0.0.0/104 == 10.0.0.0/8). IPv4 prefix lengths are 0..32, IPv6 0..128. An entry with host
 * bits set past the prefix ("10.0.0.1/8") is an ERROR, not silently normalized: it is far
 * more often a typo for a /32 or a wrong length than a deliberate network. */
G_GNUC_WARN_UNUSED_RESULT gboolean netset_parse_prefix(const char *text, guint8 prefix[16],
							 guint *plen, GError **error);
G_GNUC_WARN_UNUSED_RESULT gboolean netset_add(NetSet *set, const char *text, guint32 value,
						GError **error);
/* A list separated by commas, semicolons or white space; '#' starts a comment to end of line.
 * On error nothing is added and the message names the bad entry. */
G_GNUC_WARN_UNUSED_RESULT gboolean netset_add_list(NetSet *set, const char *list, guint32 value,
						     GError **error);
/* Convenience: a new set from a list (NULL on error). */
NetSet *netset_new_from_list(const char *list, GError **error);

/* Longest-prefix match; FALSE when no prefix covers addr. `m` may be NULL. */
gboolean netset_lookup(const NetSet *set, const guint8 addr[16], NetSetMatch *m);

/* The first member of every NetSet (netset.c asserts it): lets the inline membership test
 * answer for an empty set (e.g. no mail servers configured) without a call, and for an
 * IPv4 address whose /8 is wholly in the set or wholly out (v4[first octet]: netset.c's
 * table of /8s, which it keeps). */
enum { NETSET_V4_NONE = 0, NETSET_V4_ALL = 1, NETSET_V4_WALK = 2 };
typedef struct {
	guint n_prefixes;
	guint8 v4[256];
} NetSetHead;

static inline gboolean
netset_contains(const NetSet *set, const guint8 addr[16])
{
	if (set == NULL)
		return FALSE;
	const NetSetHead *hd = (const NetSetHead *)(const void *)set;
	if (hd->n_prefixes == 0)
		return FALSE;
	guint64 a0;
	guint32 a1;
	memcpy(&a0, addr, 8);
	memcpy(&a1, addr + 8, 4);
	if (a0 == 0 && a1 == GUINT32_TO_BE(0xffffu)) { /* IPv4-mapped: ::ffff:a.b.c.d */
		guint8 st = hd->v4[addr[12]];
		if (st != NETSET_V4_WALK)
			return st == NETSET_V4_ALL;
	}
	return netset_lookup(set, addr, NULL);
}
guint netset_size(const NetSet *set); /* prefixes stored */
gsize netset_mem(const NetSet *set);  /* bytes held */
/* Each stored prefix in address order, written as text ("10.0.0.0/8", "fc00::/7"). */
typedef void (*NetSetFunc)(const char *text, guint32 value, gpointer user_data);
void netset_foreach(const NetSet *set, NetSetFunc fn, gpointer user_data);
