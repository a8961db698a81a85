/* Enricher: country and ASN of an address from optional MaxMind DB files (.mmdb) through
 * libmaxminddb. Reads MaxMind's GeoLite2/GeoIP2 schema and the common single-field schemas
 * of the free databases (DB-IP Lite, IPinfo Lite, ip-location-db); doc/enrichment.md lists
 * the fields. Not thread-safe: one Enricher per thread (the daemon has one, on its loop). */
#pragma once

#include <glib.h>

#define ENRICH_ERROR (enrich_error_quark())
GQuark enrich_error_quark(void);
typedef enum {
	ENRICH_ERROR_OPEN, /* missing, unreadable or not a MaxMind DB file */
} EnrichError;

typedef struct {
	guint64 lookups;	 /* enricher_lookup() calls with at least one database */
	guint64 misses;		 /* lookups that found neither a country nor an ASN */
	guint64 errors;		 /* lookups the library failed (corrupt search tree, data) */
	guint64 reloads;	 /* enricher_reload() calls that replaced every database */
	guint64 reload_failures; /* enricher_reload() calls that kept an old database */
} EnrichStats;

typedef struct Enricher Enricher;

/* Either path may be NULL or "" (that database is off). Both off: a valid Enricher that
 * finds nothing. A missing or broken file: NULL and an error naming the file. */
Enricher *enricher_new(const char *country_db, const char *asn_db,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
void enricher_free(Enricher *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Enricher, enricher_free)

/* TRUE when at least one database is open. */
gboolean enricher_active(const Enricher *e);

/* addr: 16 bytes, IPv4 as IPv4-mapped (::ffff:a.b.c.d). country: ISO 3166-1 alpha-2 in
 * upper case, "" when unknown; *asn: 0 when unknown. Either out pointer may be NULL.
 * TRUE when anything was found. */
gboolean enricher_lookup(Enricher *e, const guint8 addr[16], char country[4], guint32 *asn);
/* The same plus the AS organisation ("" when unknown), cut at org_len - 1 bytes. */
gboolean enricher_lookup_full(Enricher *e, const guint8 addr[16], char country[4], guint32 *asn,
			      char *org, gsize org_len);

/* enricher_lookup() in the shape of the analyzer's geo hook (AnalyzerGeoFunc):
 * user_data is the Enricher. */
gboolean enricher_geo_func(const guint8 addr[16], char country[4], guint32 *asn, gpointer enricher);

/* Reopen both files (SIGHUP: the files were replaced). A database whose file fails to open
 * keeps its old version, the other is still replaced; FALSE and an error naming the
 * file(s) that failed. */
gboolean enricher_reload(Enricher *e, GError **error) G_GNUC_WARN_UNUSED_RESULT;

void enricher_get_stats(const Enricher *e, EnrichStats *out);
/* Counters as "name":value JSON members (no braces), for the stats output. */
void enricher_stats_json(const Enricher *e, GString *out);
