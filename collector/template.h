/* The template engine shared by NetFlow v9 (RFC 3954) and IPFIX (RFC 7011): parses template
 * and options template records into a plan of precomputed offsets for the fields spamflow
 * uses (template.c, template_plan.c), and decodes data sets against that plan into
 * normalized flow records (template_data.c). */
#pragma once

#include "session.h"

typedef enum {
	TPL_OK = 0,
	TPL_WITHDRAWN, /* IPFIX withdrawal handled */
	TPL_BAD,       /* malformed: stop reading this set */
	TPL_BAD_ID,    /* template ID below 256: record skipped, set goes on */
	TPL_PADDING,   /* rest of the set is padding */
} TplResult;

/* Reads every template record in a template set (v9 flowset 0/1, IPFIX set 2/3) and
 * installs them in the domain. Counts into the domain's stats; returns FALSE when the set
 * was malformed (the caller stops reading the message). */
gboolean template_set(DecodeCtx *ctx, Cursor *set, guint16 set_id);

/* Decodes one data set (set ID >= 256) against the domain's template; returns FALSE when it
 * was malformed. Missing templates are counted, not malformed. */
gboolean template_data_set(DecodeCtx *ctx, Cursor *set, guint16 set_id);

void template_free(Template *t);

/* Restart without loss: append the domain's templates (each as its wire record, the set ID
 * and version it came in, and when it was last refreshed) to out; returns how many. */
guint template_state_save(const Domain *d, GByteArray *out);
/* Install one saved template record through the same parser as the wire (so a corrupt
 * state file can do no more than a hostile exporter), then set its refresh time. */
TplResult template_restore(DecodeCtx *ctx, guint16 set_id, const guint8 *raw, gsize len,
			   gint64 refreshed_ms);
/* Drop templates idle past the timeout; returns how many. */
guint template_expire(Exporter *e, Domain *d, gint64 now_ms);
