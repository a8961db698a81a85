/* Evidence: for a raised or updated alert, the flows that made it as an IPFIX file
 * (RFC 5655) written with libfixbuf, in an evidence directory pruned by age and total size.
 * The template is documented in doc/enrichment.md ("Evidence files"). */
#pragma once

#include "alert.h"
#include "flow.h"

#include <glib.h>

#define EVIDENCE_ERROR (evidence_error_quark())
GQuark evidence_error_quark(void);
typedef enum {
	EVIDENCE_ERROR_DIR,   /* the directory cannot be created or read */
	EVIDENCE_ERROR_WRITE, /* a file could not be written completely */
} EvidenceError;

typedef struct {
	guint64 files_written;
	guint64 flows_written;
	guint64 write_errors;
	guint64 files_pruned; /* removed by age or by the size cap */
	guint64 bytes;	      /* evidence files in the directory after the last prune */
	guint64 files;
} EvidenceStats;

/* The exporter (router, firewall) address of a collector exporter index; FALSE when
 * unknown. */
typedef gboolean (*EvidenceExporterAddr)(guint32 exporter, guint8 addr[16], gpointer user_data);

typedef struct Evidence Evidence;

/* dir is created (mode 0750) if missing. max_age_s 0 = no age limit; max_bytes 0 = no size
 * limit. Prunes once at start. */
Evidence *evidence_new(const char *dir, gint64 max_age_s, guint64 max_bytes,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
void evidence_free(Evidence *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Evidence, evidence_free)

/* Write flows[0..n) for ev as DIR/<time>-<reason>-<host>.ipfix (time: the event's, UTC,
 * "20260115T100225.001Z"; an IPv6 host's ':' as '_'; "-2", "-3"... if the name is taken).
 * The file appears complete or not at all (written aside, then linked). Prunes after.
 * path_out gets the full path. */
gboolean evidence_write(Evidence *e, const AlertEvent *ev, const Flow *flows, guint n,
			EvidenceExporterAddr exporter_addr, gpointer user_data, char *path_out,
			gsize path_len, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Remove evidence files older than max_age (mtime against now_s, Unix seconds), then the
 * oldest until the total is within max_bytes; never the file named keep (may be NULL).
 * Only names this module writes are touched. Returns the number removed. */
guint evidence_prune(Evidence *e, gint64 now_s, const char *keep);

const char *evidence_dir(const Evidence *e);
void evidence_get_stats(const Evidence *e, EvidenceStats *out);
void evidence_stats_json(const Evidence *e, GString *out);
