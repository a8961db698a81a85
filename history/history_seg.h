/* The history store's on-disk format, pure: segment header, framed records (type, length,
 * payload, CRC-32), the payloads (a slice's host readings, an event's or action's note) and
 * the per-segment index sidecar. Readers take untrusted bytes: every length is checked
 * through the Cursor, a damaged record is told apart from a clean end, and the scanner finds
 * the next whole record after damage. No files, no threads: history.c does those. */
#pragma once

#include "alert.h"

#include <glib.h>

#define HSEG_MAGIC "SFHS"
#define HSEG_IDX_MAGIC "SFHX"
#define HSEG_VERSION 1
#define HSEG_HEADER_LEN 16 /* magic 4, version u16, flags u16, created_ms i64 (BE) */
#define HSEG_FRAME_HEAD 5  /* type u8, payload length u32 (BE) */
#define HSEG_FRAME_TAIL 4  /* CRC-32 (zlib) of type, length and payload (BE) */
#define HSEG_FRAME_OVERHEAD (HSEG_FRAME_HEAD + HSEG_FRAME_TAIL)
#define HSEG_MAX_PAYLOAD (4u << 20)
#define HSEG_IDX_ENTRY_LEN 53 /* offset u64, length u32, type u8, t_ms i64, min[16], max[16] */
#define HSEG_IDX_HEADER_LEN 24 /* magic 4, version u16, pad u16, segment bytes u64, n u64 */

typedef enum {
	HSEG_REC_SLICE = 1,  /* readings of the recorded hosts at a slice's end */
	HSEG_REC_EVENT = 2,  /* an alert event (its JSON, as `history` prints it) */
	HSEG_REC_ACTION = 3, /* an action record (its JSON) */
	HSEG_REC_MAX = 3
} HsegRecType;

typedef enum {
	HSEG_OK,        /* a whole record */
	HSEG_END,       /* no bytes left: a clean end */
	HSEG_TRUNCATED, /* the bytes end inside a record (a crash while appending, a cut file) */
	HSEG_CORRUPT,   /* bad type, length or CRC */
} HsegStatus;

/* One host's readings at a slice's end: what the heuristics read. */
typedef struct {
	guint8 host[16];
	guint32 flows, attempts, failed; /* short window, summed over the host's windows */
	gboolean sampled;                /* estimate[] holds the sampling estimates */
	guint32 reason_mask;             /* 1 << AlertReason for each reason measured */
	struct {
		guint32 value[2], threshold[2], estimate[2]; /* [WINDOW_SHORT], [WINDOW_LONG] */
	} reason[REASON_COUNT];
} HsegHost;

/* An event or action record: the JSON points into the payload (not NUL-terminated). */
typedef struct {
	gint64 t_ms;
	guint8 host[16];
	gint reason; /* AlertReason, -1 none */
	guint8 kind; /* AlertKind for events; 0 for actions */
	const char *json;
	gsize json_len;
} HsegNote;

typedef struct {
	HsegRecType type;
	const guint8 *payload;
	gsize len;
	gsize offset; /* of the frame in the buffer */
	gsize frame_len;
} HsegRecord;

typedef struct {
	guint64 offset;
	guint32 len; /* frame bytes */
	guint8 type;
	gint64 t_ms;
	guint8 min[16], max[16]; /* host range of the record (a note: its host, twice) */
} HsegIdxEntry;

guint32 hseg_crc(const guint8 *p, gsize len);

void hseg_header(GByteArray *out, gint64 created_ms);
gboolean hseg_header_parse(const guint8 *p, gsize len, gint64 *created_ms,
			   GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Append one framed record. */
void hseg_frame(GByteArray *out, HsegRecType type, const guint8 *payload, gsize len);
/* The record at *off of buf[0..len): HSEG_OK moves *off past it. HSEG_TRUNCATED and
 * HSEG_CORRUPT leave *off; hseg_resync() then looks for the next whole record. */
HsegStatus hseg_next(const guint8 *buf, gsize len, gsize *off, HsegRecord *rec);
/* The first offset > *off where a whole record starts; FALSE (off = len) when none. */
gboolean hseg_resync(const guint8 *buf, gsize len, gsize *off);

/* Slice payload: t_ms, host count, the hosts (sorted by address by the writer). */
void hseg_slice_encode(GByteArray *out, gint64 t_ms, const HsegHost *hosts, guint n);
typedef struct {
	const guint8 *p;
	gsize len, off;
	guint32 left;
} HsegSliceIter;
gboolean hseg_slice_begin(const guint8 *payload, gsize len, gint64 *t_ms, guint32 *n,
			  HsegSliceIter *it) G_GNUC_WARN_UNUSED_RESULT;
/* The next host: FALSE at the end or on damage (*bad set). */
gboolean hseg_slice_next(HsegSliceIter *it, HsegHost *out, gboolean *bad);

void hseg_note_encode(GByteArray *out, const HsegNote *n);
gboolean hseg_note_decode(const guint8 *payload, gsize len, HsegNote *out) G_GNUC_WARN_UNUSED_RESULT;

/* Index sidecar: header (with the segment's size when written), entries, CRC-32. */
void hseg_idx_encode(GByteArray *out, guint64 seg_bytes, const HsegIdxEntry *e, guint64 n);
/* FALSE on any damage; *entries is a new GArray of HsegIdxEntry. */
gboolean hseg_idx_decode(const guint8 *p, gsize len, guint64 *seg_bytes, GArray **entries,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The index entry of a whole record (for a slice: its hosts' range; FALSE if the payload
 * does not decode). */
gboolean hseg_idx_entry(const HsegRecord *rec, HsegIdxEntry *out);
