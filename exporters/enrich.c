/* Country and ASN enrichment over libmaxminddb. Each database is read for the fields of
 * every schema we know, first match wins, so the admin points the config at whatever
 * GeoLite2, DB-IP Lite, IPinfo Lite or ip-location-db file they have without saying which
 * it is. Reload on SIGHUP swaps each database only when its new file opens. */
#include "enrich.h"

#include <errno.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* clang-format off */
G_DEFINE_QUARK(enrich-error-quark, enrich_error)
/* clang-format on */

enum { DB_COUNTRY = 0, DB_ASN = 1, DB_N };
static const char *const db_what[DB_N] = {"country database", "asn database"};

struct Enricher {
	char *path[DB_N];
	MMDB_s *db[DB_N];
	EnrichStats st;
};

/* Where each schema keeps the fields, in the order they are tried. */
static const char *const country_paths[][3] = {
    {"country", "iso_code", NULL},	      /* GeoLite2/GeoIP2, DB-IP Lite */
    {"registered_country", "iso_code", NULL}, /* GeoLite2 when country is absent */
    {"country_code", NULL, NULL},	      /* IPinfo Lite, ip-location-db */
    {"country", NULL, NULL}, /* IPinfo's older country(_asn).mmdb: the code itself; IPinfo
				Lite's "country" is a name and fails the 2-letter test */
};
static const char *const asn_paths[][2] = {
    {"autonomous_system_number", NULL}, /* GeoLite2-ASN, DB-IP ASN Lite, ip-location-db */
    {"asn", NULL},			/* IPinfo ("AS15169"), numeric variants */
};
static const char *const org_paths[][2] = {
    {"autonomous_system_organization", NULL},
    {"as_name", NULL}, /* IPinfo */
    {"as_org", NULL},
    {"name", NULL}, /* IPinfo's older asn.mmdb */
};

static void
db_close(MMDB_s *m)
{
	if (m == NULL)
		return;
	MMDB_close(m);
	g_free(m);
}

static MMDB_s *
db_open(const char *path, guint which, GError **error)
{
	MMDB_s *m = g_new0(MMDB_s, 1);
	errno = 0;
	int st = MMDB_open(path, MMDB_MODE_MMAP, m);
	if (st == MMDB_SUCCESS)
		return m;
	int saved = errno;
	g_free(m);
	if (st == MMDB_IO_ERROR || (st == MMDB_FILE_OPEN_ERROR && saved != 0))
		g_set_error(error, ENRICH_ERROR, ENRICH_ERROR_OPEN, "%s '%s': %s (%s)",
			    db_what[which], path, MMDB_strerror(st), g_strerror(saved));
	else
		g_set_error(error, ENRICH_ERROR, ENRICH_ERROR_OPEN,
			    "%s '%s': %s (not a MaxMind DB file?)", db_what[which], path,
			    MMDB_strerror(st));
	return NULL;
}

Enricher *
enricher_new(const char *country_db, const char *asn_db, GError **error)
{
	g_autoptr(Enricher) e = g_new0(Enricher, 1);
	const char *paths[DB_N] = {country_db, asn_db};

	for (guint i = 0; i < DB_N; i++) {
		if (paths[i] == NULL || paths[i][0] == '\0')
			continue;
		e->path[i] = g_strdup(paths[i]);
		e->db[i] = db_open(paths[i], i, error);
		if (e->db[i] == NULL)
			return NULL;
	}
	return g_steal_pointer(&e);
}

void
enricher_free(Enricher *e)
{
	if (e == NULL)
		return;
	for (guint i = 0; i < DB_N; i++) {
		db_close(e->db[i]);
		g_free(e->path[i]);
	}
	g_free(e);
}

gboolean
enricher_active(const Enricher *e)
{
	return e != NULL && (e->db[DB_COUNTRY] != NULL || e->db[DB_ASN] != NULL);
}

/* A path that is absent or of another shape is not an error: it is how schemas differ. */
static gboolean
value_error(int st)
{
	return st != MMDB_SUCCESS && st != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR &&
	       st != MMDB_INVALID_LOOKUP_PATH_ERROR;
}

static gboolean
get_country(Enricher *e, MMDB_entry_s *entry, char country[4])
{
	for (gsize i = 0; i < G_N_ELEMENTS(country_paths); i++) {
		MMDB_entry_data_s d;
		int st = MMDB_aget_value(entry, &d, country_paths[i]);
		if (value_error(st))
			e->st.errors++;
		if (st != MMDB_SUCCESS || !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING ||
		    d.data_size != 2)
			continue;
		if (!g_ascii_isalpha(d.utf8_string[0]) || !g_ascii_isalpha(d.utf8_string[1]))
			continue;
		country[0] = g_ascii_toupper(d.utf8_string[0]);
		country[1] = g_ascii_toupper(d.utf8_string[1]);
		country[2] = '\0';
		return TRUE;
	}
	return FALSE;
}

/* "AS15169", "as15169" or "15169" -> 15169; 0 for anything else. */
static guint32
asn_from_text(const char *s, guint32 len)
{
	char buf[16];
	guint64 v;
	if (len >= 2 && g_ascii_toupper(s[0]) == 'A' && g_ascii_toupper(s[1]) == 'S') {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len >= sizeof buf)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!g_ascii_string_to_unsigned(buf, 10, 1, G_MAXUINT32, &v, NULL))
		return 0;
	return (guint32)v;
}

static guint32
get_asn(Enricher *e, MMDB_entry_s *entry)
{
	for (gsize i = 0; i < G_N_ELEMENTS(asn_paths); i++) {
		MMDB_entry_data_s d;
		int st = MMDB_aget_value(entry, &d, asn_paths[i]);
		if (value_error(st))
			e->st.errors++;
		if (st != MMDB_SUCCESS || !d.has_data)
			continue;
		guint64 v = 0;
		switch (d.type) {
		case MMDB_DATA_TYPE_UINT16:
			v = d.uint16;
			break;
		case MMDB_DATA_TYPE_UINT32:
			v = d.uint32;
			break;
		case MMDB_DATA_TYPE_UINT64:
			v = d.uint64;
			break;
		case MMDB_DATA_TYPE_INT32:
			v = d.int32 > 0 ? (guint64)d.int32 : 0;
			break;
		case MMDB_DATA_TYPE_UTF8_STRING:
			v = asn_from_text(d.utf8_string, d.data_size);
			break;
		default:
			break;
		}
		if (v > 0 && v <= G_MAXUINT32)
			return (guint32)v;
	}
	return 0;
}

static void
get_org(Enricher *e, MMDB_entry_s *entry, char *org, gsize org_len)
{
	for (gsize i = 0; i < G_N_ELEMENTS(org_paths); i++) {
		MMDB_entry_data_s d;
		int st = MMDB_aget_value(entry, &d, org_paths[i]);
		if (value_error(st))
			e->st.errors++;
		if (st != MMDB_SUCCESS || !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING)
			continue;
		gsize n = MIN((gsize)d.data_size, org_len - 1);
		memcpy(org, d.utf8_string, n);
		org[n] = '\0';
		return;
	}
}

/* The database entry for addr; FALSE when there is none (or the lookup failed). */
static gboolean
find(Enricher *e, MMDB_s *db, const guint8 addr[16], MMDB_entry_s *out)
{
	static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct sockaddr *sa;
	int st = MMDB_SUCCESS;

	if (memcmp(addr, mapped, 12) == 0) {
		/* An IPv4 lookup: libmaxminddb finds IPv4 under ::/96 of an IPv6 tree itself,
		 * and an IPv4-only database has no ::ffff:0:0/96. */
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, addr + 12, 4);
		sa = (const struct sockaddr *)&sin;
	} else {
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, addr, 16);
		sa = (const struct sockaddr *)&sin6;
	}
	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(db, sa, &st);
	if (st == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR)
		return FALSE; /* an IPv4-only database knows nothing about IPv6 */
	if (st != MMDB_SUCCESS) {
		e->st.errors++;
		return FALSE;
	}
	if (!r.found_entry)
		return FALSE;
	*out = r.entry;
	return TRUE;
}

gboolean
enricher_lookup_full(Enricher *e, const guint8 addr[16], char country[4], guint32 *asn, char *org,
		     gsize org_len)
{
	MMDB_entry_s entry;
	char cc[4] = "";
	guint32 as = 0;

	if (org != NULL && org_len > 0)
		org[0] = '\0';
	if (enricher_active(e)) {
		e->st.lookups++;
		if (e->db[DB_COUNTRY] != NULL && find(e, e->db[DB_COUNTRY], addr, &entry))
			get_country(e, &entry, cc);
		if (e->db[DB_ASN] != NULL && find(e, e->db[DB_ASN], addr, &entry)) {
			as = get_asn(e, &entry);
			if (as != 0 && org != NULL && org_len > 0)
				get_org(e, &entry, org, org_len);
		}
		if (cc[0] == '\0' && as == 0)
			e->st.misses++;
	}
	if (country != NULL)
		memcpy(country, cc, 4);
	if (asn != NULL)
		*asn = as;
	return cc[0] != '\0' || as != 0;
}

gboolean
enricher_lookup(Enricher *e, const guint8 addr[16], char country[4], guint32 *asn)
{
	return enricher_lookup_full(e, addr, country, asn, NULL, 0);
}

gboolean
enricher_geo_func(const guint8 addr[16], char country[4], guint32 *asn, gpointer enricher)
{
	return enricher_lookup(enricher, addr, country, asn);
}

gboolean
enricher_reload(Enricher *e, GError **error)
{
	GString *failed = NULL;

	for (guint i = 0; i < DB_N; i++) {
		g_autoptr(GError) err = NULL;
		if (e->path[i] == NULL)
			continue;
		MMDB_s *m = db_open(e->path[i], i, &err);
		if (m == NULL) {
			if (failed == NULL)
				failed = g_string_new(NULL);
			g_string_append_printf(failed, "%s%s", failed->len ? "; " : "",
					       err->message);
			continue;
		}
		db_close(e->db[i]);
		e->db[i] = m;
	}
	if (failed != NULL) {
		e->st.reload_failures++;
		g_set_error(error, ENRICH_ERROR, ENRICH_ERROR_OPEN, "%s (old database kept)",
			    failed->str);
		g_string_free(failed, TRUE);
		return FALSE;
	}
	e->st.reloads++;
	return TRUE;
}

void
enricher_get_stats(const Enricher *e, EnrichStats *out)
{
	if (e == NULL) {
		memset(out, 0, sizeof *out);
		return;
	}
	*out = e->st;
}

void
enricher_stats_json(const Enricher *e, GString *out)
{
	EnrichStats s;
	enricher_get_stats(e, &s);
	g_string_append_printf(
	    out,
	    "\"enrich_lookups\":%" G_GUINT64_FORMAT ",\"enrich_misses\":%" G_GUINT64_FORMAT
	    ",\"enrich_errors\":%" G_GUINT64_FORMAT ",\"enrich_reloads\":%" G_GUINT64_FORMAT
	    ",\"enrich_reload_failures\":%" G_GUINT64_FORMAT,
	    s.lookups, s.misses, s.errors, s.reloads, s.reload_failures);
}
