/* Prefix sets with longest-prefix match for the analyzer's network classification
 * (internal networks, sanctioned mail servers). A path-compressed binary radix tree over
 * 128-bit keys: a lookup visits at most one node per distinct prefix length on the path,
 * never a list of prefixes. IPv4 is stored IPv4-mapped so one tree serves both families.
 *
 * Lookups are accelerated two ways. Each node keeps its key and mask as two host-order
 * 64-bit words, so matching a node is two masked compares rather than a byte loop. And
 * IPv4-mapped addresses (the common case) start from a 256-entry table indexed by the
 * first IPv4 octet: for each /8 (a /104 in key space) it holds the longest prefix of
 * length <= 104 covering the whole /8, and the topmost tree node strictly inside it (NULL
 * when there is none). Most lookups end in the table; the rest walk only the tree below
 * their /8. The table is updated on insert for the /8s the new prefix touches. The head
 * (netset.h) repeats what the table says for each /8 in a byte, so that netset_contains()
 * answers inline for a /8 that needs no walk. */
#include "netset.h"

#include <arpa/inet.h>
#include <string.h>

typedef struct Node Node;
struct Node {
	guint64 w[2];   /* key as big-endian words in host order (bits past plen zero) */
	guint64 m[2];   /* mask of the first plen bits, same layout */
	guint8 key[16]; /* bits past plen are zero */
	guint8 plen;    /* 0..128 */
	gboolean has_value;
	guint32 value;
	Node *child[2];
};

typedef struct {
	const Node *best; /* longest valued prefix of length <= 104 covering the /8 */
	const Node *sub;  /* where the walk continues (plen >= 104, inside the /8), or NULL */
} Octet;

struct NetSet {
	NetSetHead head; /* first member: netset_contains() reads it (netset.h) */
	Node *root;
	guint n_nodes;
	Octet v4[256];
};

G_STATIC_ASSERT(G_STRUCT_OFFSET(NetSet, head) == 0);

#define V4_PLEN 96    /* ::ffff:0:0/96 */
#define OCTET_PLEN 104 /* ::ffff:a.0.0.0/104 */

static inline guint64
load_be64(const guint8 *p)
{
	guint64 t;
	memcpy(&t, p, 8);
	return GUINT64_FROM_BE(t);
}

static inline guint
key_bit(const guint8 *k, guint i)
{
	return (k[i >> 3] >> (7 - (i & 7))) & 1;
}

static inline guint
word_bit(guint64 a0, guint64 a1, guint i)
{
	return i < 64 ? (guint)(a0 >> (63 - i)) & 1 : (guint)(a1 >> (127 - i)) & 1;
}

/* Number of leading bits a and b share, at most max. */
static guint
common_bits(const guint8 *a, const guint8 *b, guint max)
{
	guint n = 0;
	for (guint i = 0; i < 16 && n < max; i++) {
		guint8 x = a[i] ^ b[i];
		if (x == 0) {
			n += 8;
			continue;
		}
		n += (guint)__builtin_clz((unsigned)x) - 24;
		break;
	}
	return MIN(n, max);
}

static void
mask_key(guint8 out[16], const guint8 in[16], guint plen)
{
	for (guint i = 0; i < 16; i++) {
		guint bits = plen > i * 8 ? MIN(plen - i * 8, 8u) : 0;
		out[i] = bits == 0 ? 0 : (guint8)(in[i] & (0xffu << (8 - bits)));
	}
}

static Node *
node_new(NetSet *set, const guint8 key[16], guint plen)
{
	Node *n = g_new0(Node, 1);
	guint8 mask[16], ones[16];
	mask_key(n->key, key, plen);
	memset(ones, 0xff, 16);
	mask_key(mask, ones, plen);
	n->w[0] = load_be64(n->key);
	n->w[1] = load_be64(n->key + 8);
	n->m[0] = load_be64(mask);
	n->m[1] = load_be64(mask + 8);
	n->plen = (guint8)plen;
	set->n_nodes++;
	return n;
}

/* Longest valued prefix covering (a0, a1) in the subtree at n, else `best`. */
static inline const Node *
walk(const Node *n, guint64 a0, guint64 a1, const Node *best)
{
	while (n != NULL) {
		if (((a0 & n->m[0]) ^ n->w[0]) | ((a1 & n->m[1]) ^ n->w[1]))
			break;
		if (n->has_value)
			best = n;
		if (n->plen >= 128)
			break;
		n = n->child[word_bit(a0, a1, n->plen)];
	}
	return best;
}

/* Recompute the table entry of IPv4 first octet o from the tree. */
static void
octet_update(NetSet *set, guint o)
{
	guint8 blk[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, (guint8)o, 0, 0, 0};
	const Node *n = set->root, *best = NULL, *sub = NULL;

	while (n != NULL) {
		if (n->plen >= OCTET_PLEN) {
			/* inside the /8 or beside it */
			if (common_bits(n->key, blk, OCTET_PLEN) == OCTET_PLEN)
				sub = n;
			break;
		}
		if (common_bits(n->key, blk, n->plen) < n->plen)
			break;
		if (n->has_value)
			best = n;
		n = n->child[key_bit(blk, n->plen)];
	}
	/* a /8 leaf needs no walk */
	if (sub != NULL && sub->plen == OCTET_PLEN && sub->child[0] == NULL &&
	    sub->child[1] == NULL) {
		if (sub->has_value)
			best = sub;
		sub = NULL;
	}
	set->v4[o].best = best;
	set->v4[o].sub = sub;
	set->head.v4[o] = sub != NULL ? NETSET_V4_WALK : best != NULL ? NETSET_V4_ALL : NETSET_V4_NONE;
}

/* After inserting prefix/plen: update the /8 entries it intersects. */
static void
octets_touched(NetSet *set, const guint8 prefix[16], guint plen)
{
	static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	guint lo, hi;

	if (plen <= V4_PLEN) {
		if (common_bits(prefix, mapped, plen) < plen)
			return;
		lo = 0, hi = 255; /* covers all of IPv4 */
	} else {
		if (memcmp(prefix, mapped, 12) != 0)
			return;
		guint fixed = MIN(plen, (guint)OCTET_PLEN) - V4_PLEN; /* 1..8 octet bits */
		lo = prefix[12];
		hi = lo | (0xffu >> fixed);
	}
	for (guint o = lo; o <= hi; o++)
		octet_update(set, o);
}

G_DEFINE_QUARK(netset-error-quark, netset_error)

NetSet *
netset_new(void)
{
	return g_new0(NetSet, 1);
}

static void
node_free(Node *n)
{
	if (n == NULL)
		return;
	node_free(n->child[0]);
	node_free(n->child[1]);
	g_free(n);
}

void
netset_free(NetSet *set)
{
	if (set == NULL)
		return;
	node_free(set->root);
	g_free(set);
}

gboolean
netset_insert(NetSet *set, const guint8 prefix[16], guint plen, guint32 value, GError **error)
{
	guint8 key[16];
	if (plen > 128) {
		g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID,
			    "bad prefix length %u", plen);
		return FALSE;
	}
	mask_key(key, prefix, plen);
	if (memcmp(key, prefix, 16) != 0) {
		g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID,
			    "prefix has host bits set past /%u", plen);
		return FALSE;
	}
	Node **pp = &set->root;
	while (*pp != NULL) {
		Node *n = *pp;
		guint common = common_bits(n->key, key, MIN((guint)n->plen, plen));
		if (common < n->plen) {
			if (common == plen) {
				/* the new prefix is an ancestor of n */
				Node *a = node_new(set, key, plen);
				a->has_value = TRUE;
				a->value = value;
				a->child[key_bit(n->key, plen)] = n;
				*pp = a;
				set->head.n_prefixes++;
				octets_touched(set, key, plen);
				return TRUE;
			}
			/* diverge at bit `common`: a valueless glue node holds both */
			Node *glue = node_new(set, key, common);
			Node *leaf = node_new(set, key, plen);
			leaf->has_value = TRUE;
			leaf->value = value;
			glue->child[key_bit(key, common)] = leaf;
			glue->child[key_bit(n->key, common)] = n;
			*pp = glue;
			set->head.n_prefixes++;
			octets_touched(set, key, plen);
			return TRUE;
		}
		if (n->plen == plen) {
			gboolean was = n->has_value;
			n->has_value = TRUE;
			n->value = value;
			if (!was) {
				/* a glue node became a prefix */
				set->head.n_prefixes++;
				octets_touched(set, key, plen);
			}
			return TRUE;
		}
		pp = &n->child[key_bit(key, n->plen)];
	}
	Node *leaf = node_new(set, key, plen);
	leaf->has_value = TRUE;
	leaf->value = value;
	*pp = leaf;
	set->head.n_prefixes++;
	octets_touched(set, key, plen);
	return TRUE;
}

gboolean
netset_lookup(const NetSet *set, const guint8 addr[16], NetSetMatch *m)
{
	if (set == NULL || set->root == NULL)
		return FALSE;
	guint64 a0 = load_be64(addr), a1 = load_be64(addr + 8);
	const Node *best;
	if (a0 == 0 && (a1 >> 32) == 0xffff) {
		/* IPv4-mapped: start at the table entry of the first octet */
		const Octet *o = &set->v4[(a1 >> 24) & 0xff];
		best = o->sub != NULL ? walk(o->sub, a0, a1, o->best) : o->best;
	} else {
		best = walk(set->root, a0, a1, NULL);
	}
	if (best == NULL)
		return FALSE;
	if (m != NULL) {
		memcpy(m->prefix, best->key, 16);
		m->plen = best->plen;
		m->value = best->value;
	}
	return TRUE;
}

gboolean
netset_parse_prefix(const char *text, guint8 prefix[16], guint *plen, GError **error)
{
	g_autofree char *s = g_strstrip(g_strdup(text));
	char *slash = strchr(s, '/');
	guint max, len;
	guint8 v4[4];

	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, s, v4) == 1) {
		memset(prefix, 0, 10);
		prefix[10] = prefix[11] = 0xff;
		memcpy(prefix + 12, v4, 4);
		max = 32;
	} else if (inet_pton(AF_INET6, s, prefix) == 1) {
		max = 128;
	} else {
		g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID,
			    "bad prefix '%s': not an address", text);
		return FALSE;
	}
	len = max;
	if (slash != NULL) {
		guint64 v;
		if (!g_ascii_string_to_unsigned(slash + 1, 10, 0, max, &v, NULL)) {
			g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID,
				    "bad prefix '%s': length must be 0..%u", text, max);
			return FALSE;
		}
		len = (guint)v;
	}
	if (max == 32)
		len += 96;
	guint8 masked[16];
	mask_key(masked, prefix, len);
	if (memcmp(masked, prefix, 16) != 0) {
		g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID,
			    "bad prefix '%s': host bits set past the prefix length", text);
		return FALSE;
	}
	*plen = len;
	return TRUE;
}

gboolean
netset_add(NetSet *set, const char *text, guint32 value, GError **error)
{
	guint8 p[16];
	guint plen;
	if (!netset_parse_prefix(text, p, &plen, error))
		return FALSE;
	return netset_insert(set, p, plen, value, error);
}

gboolean
netset_add_list(NetSet *set, const char *list, guint32 value, GError **error)
{
	g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
	g_auto(GStrv) lines = g_strsplit(list ? list : "", "\n", -1);
	guint8 p[16];
	guint plen;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *hash = strchr(lines[i], '#');
		if (hash != NULL)
			*hash = '\0';
		g_auto(GStrv) toks = g_strsplit_set(lines[i], ", ;\t\r", -1);
		for (guint j = 0; toks[j] != NULL; j++) {
			if (toks[j][0] == '\0')
				continue;
			/* validate everything before changing the set */
			if (!netset_parse_prefix(toks[j], p, &plen, error))
				return FALSE;
			g_ptr_array_add(items, g_strdup(toks[j]));
		}
	}
	for (guint i = 0; i < items->len; i++) {
		if (!netset_add(set, g_ptr_array_index(items, i), value, error))
			return FALSE;
	}
	return TRUE;
}

NetSet *
netset_new_from_list(const char *list, GError **error)
{
	g_autoptr(NetSet) set = netset_new();
	if (!netset_add_list(set, list, 1, error))
		return NULL;
	return g_steal_pointer(&set);
}

guint
netset_size(const NetSet *set)
{
	return set ? set->head.n_prefixes : 0;
}

gsize
netset_mem(const NetSet *set)
{
	return set ? sizeof *set + (gsize)set->n_nodes * sizeof(Node) : 0;
}

static void
node_foreach(const Node *n, NetSetFunc fn, gpointer user_data)
{
	if (n == NULL)
		return;
	if (n->has_value) {
		static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		char buf[INET6_ADDRSTRLEN + 8];
		char out[INET6_ADDRSTRLEN + 16];
		if (n->plen >= 96 && memcmp(n->key, mapped, 12) == 0) {
			inet_ntop(AF_INET, n->key + 12, buf, sizeof buf);
			g_snprintf(out, sizeof out, "%s/%u", buf, n->plen - 96u);
		} else {
			inet_ntop(AF_INET6, n->key, buf, sizeof buf);
			g_snprintf(out, sizeof out, "%s/%u", buf, (guint)n->plen);
		}
		fn(out, n->value, user_data);
	}
	node_foreach(n->child[0], fn, user_data);
	node_foreach(n->child[1], fn, user_data);
}

void
netset_foreach(const NetSet *set, NetSetFunc fn, gpointer user_data)
{
	if (set != NULL)
		node_foreach(set->root, fn, user_data);
}
