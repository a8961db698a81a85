/* Unit tests for analyzer/netset: IPv4, IPv6 and IPv4-mapped prefixes, longest match, list
 * parsing and the errors that name a bad entry; a randomized check against a linear scan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "netset.h"

static void
addr(const char *s, guint8 out[16])
{
	guint8 v4[4];
	if (inet_pton(AF_INET, s, v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

/* value of the longest match, or -1 */
static gint64
match(const NetSet *s, const char *a, guint *plen)
{
	guint8 k[16];
	NetSetMatch m;
	addr(a, k);
	if (!netset_lookup(s, k, &m))
		return -1;
	if (plen)
		*plen = m.plen;
	return m.value;
}

static void
test_v4(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new();
	guint plen = 0;
	assert_true(netset_add(s, "10.0.0.0/8", 7, &err));
	assert_true(netset_add(s, "192.0.2.25", 9, &err));
	assert_int_equal(match(s, "10.1.2.3", &plen), 7);
	assert_int_equal(plen, 104);
	assert_int_equal(match(s, "10.255.255.255", NULL), 7);
	assert_int_equal(match(s, "11.0.0.0", NULL), -1);
	assert_int_equal(match(s, "9.255.255.255", NULL), -1);
	assert_int_equal(match(s, "192.0.2.25", &plen), 9);
	assert_int_equal(plen, 128);
	assert_int_equal(match(s, "192.0.2.24", NULL), -1);
	assert_int_equal(match(s, "192.0.2.26", NULL), -1);
	/* an IPv6 address with the same low bytes is not the IPv4 one */
	assert_int_equal(match(s, "::a01:203", NULL), -1);
	assert_int_equal(netset_size(s), 2);
}

static void
test_v4_default_route(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new();
	assert_true(netset_add(s, "0.0.0.0/0", 1, &err));
	assert_int_equal(match(s, "203.0.113.9", NULL), 1);
	assert_int_equal(match(s, "2001:db8::1", NULL), -1);
}

static void
test_longest_match(void **state)
{
	(void)state;
	/* both insertion orders build the same answers */
	const char *pfx[] = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25"};
	for (guint order = 0; order < 2; order++) {
		g_autoptr(NetSet) s = netset_new();
		for (guint i = 0; i < 4; i++) {
			guint j = order ? 3 - i : i;
			g_autoptr(GError) err = NULL;
			assert_true(netset_add(s, pfx[j], j + 1, &err));
		}
		guint plen = 0;
		assert_int_equal(match(s, "10.9.9.9", &plen), 1);
		assert_int_equal(plen, 104);
		assert_int_equal(match(s, "10.1.9.9", &plen), 2);
		assert_int_equal(plen, 112);
		assert_int_equal(match(s, "10.1.2.3", &plen), 3);
		assert_int_equal(plen, 120);
		assert_int_equal(match(s, "10.1.2.200", &plen), 4);
		assert_int_equal(plen, 121);
		assert_int_equal(match(s, "10.1.3.0", NULL), 2);
		assert_int_equal(netset_size(s), 4);
	}
}

static void
test_v6(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new_from_list("fc00::/7, 2001:db8::/32\n2001:db8:1::/48", &err);
	assert_non_null(s);
	assert_int_equal(match(s, "fd12:3456::1", NULL), 1);
	assert_int_equal(match(s, "fc00::", NULL), 1);
	assert_int_equal(match(s, "fe80::1", NULL), -1);
	guint plen = 0;
	assert_int_equal(match(s, "2001:db8:1::5", &plen), 1);
	assert_int_equal(plen, 48);
	assert_int_equal(match(s, "2001:db8:2::5", &plen), 1);
	assert_int_equal(plen, 32);
	assert_int_equal(match(s, "2001:db9::", NULL), -1);
	/* IPv4 is not inside an IPv6 ULA prefix */
	assert_int_equal(match(s, "10.0.0.1", NULL), -1);
}

static void
test_mapped(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new();
	assert_true(netset_add(s, "::ffff:1.2.3.4", 5, &err));
	assert_true(netset_add(s, "::ffff:10.0.0.0/104", 6, &err));
	guint plen = 0;
	assert_int_equal(match(s, "1.2.3.4", &plen), 5);
	assert_int_equal(plen, 128);
	assert_int_equal(match(s, "10.20.30.40", &plen), 6);
	assert_int_equal(plen, 104);
	/* re-adding the same prefix in IPv4 notation replaces, not duplicates */
	assert_true(netset_add(s, "10.0.0.0/8", 8, &err));
	assert_int_equal(netset_size(s), 2);
	assert_int_equal(match(s, "10.20.30.40", NULL), 8);
}

static void
test_bad_input(void **state)
{
	(void)state;
	struct {
		const char *in;
		const char *msg;
	} bad[] = {
		{"10.0.0.0/33", "bad prefix '10.0.0.0/33'"},
		{"10.0.0.1/8", "bad prefix '10.0.0.1/8': host bits set"},
		{"fc00::/129", "bad prefix 'fc00::/129'"},
		{"fc00::1/7", "host bits set"},
		{"banana", "bad prefix 'banana': not an address"},
		{"10.0.0.0/", "bad prefix '10.0.0.0/'"},
		{"10.0.0.0/-1", "bad prefix '10.0.0.0/-1'"},
		{"1.2.3.4.5", "not an address"},
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(NetSet) s = netset_new();
		assert_false(netset_add(s, bad[i].in, 1, &err));
		assert_non_null(err);
		assert_true(g_error_matches(err, NETSET_ERROR, NETSET_ERROR_INVALID));
		if (strstr(err->message, bad[i].msg) == NULL)
			fail_msg("'%s': got '%s'", bad[i].in, err->message);
		assert_int_equal(netset_size(s), 0);
	}
	/* a list with one bad entry changes nothing and names the entry */
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new();
	assert_false(netset_add_list(s, "10.0.0.0/8 # ok\n192.168.0.0/16, 172.16.0.0/33", 1, &err));
	assert_non_null(strstr(err->message, "'172.16.0.0/33'"));
	assert_int_equal(netset_size(s), 0);
	assert_int_equal(match(s, "10.0.0.1", NULL), -1);
}

static void
collect(const char *text, guint32 value, gpointer user_data)
{
	(void)value;
	g_ptr_array_add(user_data, g_strdup(text));
}

static void
test_foreach(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(NetSet) s = netset_new_from_list(
		"# internal\n192.168.0.0/16 # lab\n\n 10.0.0.0/8;fc00::/7,10.1.0.0/16", &err);
	g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
	netset_foreach(s, collect, seen);
	assert_int_equal(seen->len, 4);
	/* address order, IPv4 in dotted form, glue nodes not listed */
	assert_string_equal(g_ptr_array_index(seen, 0), "10.0.0.0/8");
	assert_string_equal(g_ptr_array_index(seen, 1), "10.1.0.0/16");
	assert_string_equal(g_ptr_array_index(seen, 2), "192.168.0.0/16");
	assert_string_equal(g_ptr_array_index(seen, 3), "fc00::/7");
}

/* random prefixes and lookups against a linear scan */
static void
test_random_vs_linear(void **state)
{
	(void)state;
	enum { NP = 600, NL = 20000 };
	static guint8 pk[NP][16];
	static guint pl[NP];
	g_autoptr(GRand) r = g_rand_new_with_seed(42);
	g_autoptr(NetSet) s = netset_new();
	for (guint i = 0; i < NP; i++) {
		guint8 k[16];
		gboolean v4 = g_rand_boolean(r);
		for (guint b = 0; b < 16; b++)
			k[b] = (guint8)g_rand_int_range(r, 0, 4); /* dense keys share long prefixes */
		if (v4) {
			memset(k, 0, 10);
			k[10] = k[11] = 0xff;
		}
		guint plen = v4 ? 96 + (guint)g_rand_int_range(r, 0, 33)
				: (guint)g_rand_int_range(r, 0, 129);
		for (guint b = plen; b < 128; b++)
			k[b / 8] &= (guint8) ~(0x80u >> (b % 8));
		memcpy(pk[i], k, 16);
		pl[i] = plen;
		g_autoptr(GError) err = NULL;
		assert_true(netset_insert(s, k, plen, i, &err));
	}
	for (guint n = 0; n < NL; n++) {
		guint8 a[16];
		for (guint b = 0; b < 16; b++)
			a[b] = (guint8)g_rand_int_range(r, 0, 4);
		if (n % 2) {
			memset(a, 0, 10);
			a[10] = a[11] = 0xff;
		}
		gint best = -1;
		guint best_len = 0;
		for (guint i = 0; i < NP; i++) {
			gboolean ok = TRUE;
			for (guint b = 0; b < pl[i] && ok; b++)
				ok = ((a[b / 8] ^ pk[i][b / 8]) & (0x80u >> (b % 8))) == 0;
			/* duplicates: the last insert wins */
			if (ok && (best < 0 || pl[i] >= best_len)) {
				best = (gint)i;
				best_len = pl[i];
			}
		}
		NetSetMatch m;
		gboolean found = netset_lookup(s, a, &m);
		assert_int_equal(found, best >= 0);
		assert_int_equal(netset_contains(s, a), found);
		if (found) {
			assert_int_equal(m.plen, best_len);
			assert_int_equal(m.value, best);
		}
	}
}

/* netset_contains() answers inline for a /8 wholly in or out of the set: the same as
 * netset_lookup() after every insert, for IPv4 addresses of every /8 and for IPv6 ones, with
 * prefixes from /0 to /32 (IPv4) scattered over the space */
static void
test_contains_inline(void **state)
{
	(void)state;
	g_autoptr(GRand) r = g_rand_new_with_seed(7);
	for (guint round = 0; round < 4; round++) {
		g_autoptr(NetSet) s = netset_new();
		for (guint i = 0; i < 40; i++) {
			guint8 k[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
			for (guint b = 12; b < 16; b++)
				k[b] = (guint8)g_rand_int_range(r, 0, 256);
			guint plen = 96 + (guint)(round == 0 && i == 0 ? 0 : g_rand_int_range(r, 4, 33));
			if (i % 10 == 9) { /* an IPv6 prefix now and then */
				memset(k, 0, 12);
				k[0] = 0x20;
				plen = (guint)g_rand_int_range(r, 0, 65);
			}
			for (guint b = plen; b < 128; b++)
				k[b / 8] &= (guint8) ~(0x80u >> (b % 8));
			g_autoptr(GError) err = NULL;
			assert_true(netset_insert(s, k, plen, i, &err));
			for (guint o = 0; o < 256; o++) {
				guint8 a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, (guint8)o};
				for (guint b = 13; b < 16; b++)
					a[b] = (guint8)g_rand_int_range(r, 0, 256);
				if (o % 16 == 0) /* within a prefix of its /8 */
					memcpy(a + 13, k + 13, 3);
				assert_int_equal(netset_contains(s, a), netset_lookup(s, a, NULL));
				a[0] = 0x20; /* IPv6: the walk */
				assert_int_equal(netset_contains(s, a), netset_lookup(s, a, NULL));
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4),
		cmocka_unit_test(test_v4_default_route),
		cmocka_unit_test(test_longest_match),
		cmocka_unit_test(test_v6),
		cmocka_unit_test(test_mapped),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_random_vs_linear),
		cmocka_unit_test(test_contains_inline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
