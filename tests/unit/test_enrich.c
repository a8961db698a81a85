/* Unit tests for exporters/enrich: lookups of IPv4 (mapped), IPv6 and unknown addresses in
 * each schema the enricher reads (GeoLite2, IPinfo Lite, IPinfo country_asn, single-field
 * country_code, numeric asn), no databases, missing and broken files, and a reload that
 * keeps the old database when the new file is broken. The databases come from
 * tests/tools/make_mmdb.pl (MMDB_DIR). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <glib/gstdio.h>
#include <string.h>

#include "enrich.h"

static char *
db(const char *name)
{
	const char *dir = g_getenv("MMDB_DIR");
	assert_non_null(dir);
	return g_build_filename(dir, name, NULL);
}

static void
addr(const char *text, guint8 out[16])
{
	guint8 v4[4];
	if (inet_pton(AF_INET, text, v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, text, out), 1);
}

static void
check(Enricher *e, const char *ip, const char *want_cc, guint32 want_asn)
{
	guint8 a[16];
	char cc[4] = "zz";
	guint32 asn = 99;
	addr(ip, a);
	gboolean found = enricher_lookup(e, a, cc, &asn);
	if (strcmp(cc, want_cc) != 0 || asn != want_asn)
		fail_msg("%s: got %s/%u, want %s/%u", ip, cc, asn, want_cc, want_asn);
	assert_int_equal(found, want_cc[0] != '\0' || want_asn != 0);
}

/* The answers make_mmdb.pl writes, for the full (IPv4 + IPv6) databases. */
static void
check_table(Enricher *e)
{
	check(e, "192.0.2.5", "US", 64496); /* GeoLite2: registered_country only */
	check(e, "192.0.2.200", "US", 64497);
	check(e, "198.51.100.10", "DE", 64498);
	check(e, "198.51.100.70", "FR", 64499);
	check(e, "198.51.100.129", "GB", 64500);
	check(e, "203.0.113.1", "JP", 64501);
	check(e, "203.0.113.255", "BR", 64502);
	check(e, "198.18.0.1", "NL", 64503);
	check(e, "198.18.0.200", "RU", 0); /* no ASN record */
	check(e, "198.18.77.1", "KR", 64509); /* spread[77 % 10 = 7] = KR, 64504 + 77 % 8 */
	check(e, "198.19.7.7", "KR", 64505);
	check(e, "2001:db8::1", "SE", 64507);
	check(e, "2001:db8:ff:a::25", "SE", 64507);
	check(e, "2001:db8:8000::1", "CH", 64508);
	check(e, "10.1.2.3", "", 0);
	check(e, "2001:db9::1", "", 0);
	check(e, "::ffff:0:1", "", 0);
}

static void
test_none(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(Enricher) e = enricher_new(NULL, "", &err);
	assert_non_null(e);
	assert_false(enricher_active(e));
	check(e, "198.51.100.10", "", 0);
	EnrichStats st;
	enricher_get_stats(e, &st);
	assert_int_equal(st.lookups, 0);
}

static void
test_geolite(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *c = db("geolite-country.mmdb");
	g_autofree char *a = db("geolite-asn.mmdb");
	g_autoptr(Enricher) e = enricher_new(c, a, &err);
	assert_non_null(e);
	assert_true(enricher_active(e));
	check_table(e);
	/* organisation */
	guint8 x[16];
	char cc[4], org[64];
	guint32 asn;
	addr("192.0.2.5", x);
	assert_true(enricher_lookup_full(e, x, cc, &asn, org, sizeof org));
	assert_string_equal(org, "Example Transit One");
	/* cut to the buffer */
	assert_true(enricher_lookup_full(e, x, cc, &asn, org, 8));
	assert_string_equal(org, "Example");
	EnrichStats st;
	enricher_get_stats(e, &st);
	assert_int_equal(st.lookups, 19);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.errors, 0);
}

static void
test_country_only_and_asn_only(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *c = db("geolite-country.mmdb");
	g_autofree char *a = db("geolite-asn.mmdb");
	g_autoptr(Enricher) ec = enricher_new(c, NULL, &err);
	g_autoptr(Enricher) ea = enricher_new(NULL, a, &err);
	assert_non_null(ec);
	assert_non_null(ea);
	check(ec, "198.51.100.10", "DE", 0);
	check(ea, "198.51.100.10", "", 64498);
	check(ec, "2001:db8:8000::1", "CH", 0);
	check(ea, "2001:db8:8000::1", "", 64508);
}

static void
test_ipinfo_lite(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *p = db("ipinfo-lite.mmdb");
	/* one file for both: country_code (country is a name there) and asn "AS64496" */
	g_autoptr(Enricher) e = enricher_new(p, p, &err);
	assert_non_null(e);
	check_table(e);
	guint8 x[16];
	char cc[4], org[64];
	guint32 asn;
	addr("203.0.113.1", x);
	assert_true(enricher_lookup_full(e, x, cc, &asn, org, sizeof org));
	assert_string_equal(org, "Rei Net");
}

static void
test_ipinfo_country_asn(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *p = db("ipinfo-country-asn.mmdb");
	g_autoptr(Enricher) e = enricher_new(p, p, &err);
	assert_non_null(e);
	check_table(e);
}

/* An IPv4-only country_code database: IPv6 lookups are misses, not errors; a numeric asn. */
static void
test_single_field_v4_only(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *c = db("cc-country.mmdb");
	g_autofree char *a = db("numeric-asn.mmdb");
	g_autoptr(Enricher) e = enricher_new(c, a, &err);
	assert_non_null(e);
	check(e, "198.51.100.129", "GB", 64500);
	check(e, "198.18.0.200", "RU", 0);
	check(e, "192.0.2.5", "US", 64496);
	check(e, "2001:db8::1", "", 64507);
	check(e, "10.0.0.1", "", 0);
	EnrichStats st;
	enricher_get_stats(e, &st);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.misses, 1);
}

static void
test_missing_and_broken(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("enrich-XXXXXX", NULL);
	g_autofree char *missing = g_build_filename(dir, "nope.mmdb", NULL);
	g_autofree char *broken = g_build_filename(dir, "broken.mmdb", NULL);
	g_autofree char *good = db("geolite-asn.mmdb");

	assert_null(enricher_new(missing, NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(err->message, "country database"));
	assert_non_null(strstr(err->message, missing));
	g_clear_error(&err);

	assert_true(g_file_set_contents(broken, "this is not a maxmind database\n", -1, NULL));
	assert_null(enricher_new(NULL, broken, &err));
	assert_non_null(strstr(err->message, "asn database"));
	assert_non_null(strstr(err->message, broken));
	g_clear_error(&err);

	/* a good country path does not hide a broken asn path */
	assert_null(enricher_new(good, broken, &err));
	assert_non_null(strstr(err->message, broken));
	g_clear_error(&err);

	/* an empty file */
	assert_true(g_file_set_contents(broken, "", 0, NULL));
	assert_null(enricher_new(broken, NULL, &err));
	assert_non_null(strstr(err->message, broken));
	g_unlink(broken);
	g_rmdir(dir);
}

static void
copy_file(const char *from, const char *to)
{
	g_autofree char *data = NULL;
	gsize len = 0;
	g_autofree char *tmp = g_strconcat(to, ".tmp", NULL);
	assert_true(g_file_get_contents(from, &data, &len, NULL));
	assert_true(g_file_set_contents(tmp, data, (gssize)len, NULL));
	assert_int_equal(g_rename(tmp, to), 0); /* replaced as a whole, as an updater does */
}

static void
test_reload(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("enrich-XXXXXX", NULL);
	g_autofree char *cpath = g_build_filename(dir, "country.mmdb", NULL);
	g_autofree char *apath = g_build_filename(dir, "asn.mmdb", NULL);
	g_autofree char *geo_c = db("geolite-country.mmdb");
	g_autofree char *geo_a = db("geolite-asn.mmdb");
	g_autofree char *v4only = db("cc-country.mmdb");
	g_autofree char *numeric = db("numeric-asn.mmdb");

	copy_file(geo_c, cpath);
	copy_file(geo_a, apath);
	g_autoptr(Enricher) e = enricher_new(cpath, apath, &err);
	assert_non_null(e);
	check(e, "2001:db8::1", "SE", 64507);

	/* a good reload: the IPv4-only country file takes over (IPv6 country gone) */
	copy_file(v4only, cpath);
	assert_true(enricher_reload(e, &err));
	check(e, "2001:db8::1", "", 64507);
	check(e, "198.51.100.10", "DE", 64498);

	/* the country file broken, the asn file replaced: the old country database stays,
	 * the asn one is still swapped, and the error names the broken file */
	assert_true(g_file_set_contents(cpath, "garbage", -1, NULL));
	copy_file(numeric, apath);
	assert_false(enricher_reload(e, &err));
	assert_non_null(strstr(err->message, cpath));
	assert_non_null(strstr(err->message, "old database kept"));
	g_clear_error(&err);
	check(e, "198.51.100.10", "DE", 64498);
	check(e, "2001:db8::1", "", 64507);

	/* the file removed: same */
	g_unlink(cpath);
	assert_false(enricher_reload(e, &err));
	g_clear_error(&err);
	check(e, "203.0.113.1", "JP", 64501);

	EnrichStats st;
	enricher_get_stats(e, &st);
	assert_int_equal(st.reloads, 1);
	assert_int_equal(st.reload_failures, 2);
	g_autoptr(GString) json = g_string_new(NULL);
	enricher_stats_json(e, json);
	assert_non_null(strstr(json->str, "\"enrich_reload_failures\":2"));
	g_unlink(apath);
	g_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_none),
	    cmocka_unit_test(test_geolite),
	    cmocka_unit_test(test_country_only_and_asn_only),
	    cmocka_unit_test(test_ipinfo_lite),
	    cmocka_unit_test(test_ipinfo_country_asn),
	    cmocka_unit_test(test_single_field_v4_only),
	    cmocka_unit_test(test_missing_and_broken),
	    cmocka_unit_test(test_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
