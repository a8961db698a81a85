/* The history store: per-slice host readings, alert events and action records appended to
 * segment files (history_seg.h) by a writer thread fed through a bounded queue, so the main
 * loop never waits on the disk (a full queue drops and counts). One segment per hour of
 * record time (capture time on replay), each with an index sidecar (record offsets, times,
 * host ranges) so a host query reads only the records that can hold the host. Retention by
 * age and total size, oldest first. Damaged or cut segments and records are skipped and
 * counted, a full disk is counted and logged at most once a minute, and the store goes on
 * when space returns. Queries run on the caller's thread, bounded in bytes and time. */
#pragma once

#include "history_seg.h"

#include <glib.h>

typedef enum {
	HISTORY_FSYNC_SEGMENT,  /* at each segment's close (rotation, exit) */
	HISTORY_FSYNC_INTERVAL, /* every second while records arrive, and at close */
	HISTORY_FSYNC_NEVER,    /* left to the kernel */
} HistoryFsync;

typedef struct {
	const char *dir;
	gint64 max_age_ms;   /* 0: no age limit */
	guint64 max_bytes;   /* 0: no size limit */
	HistoryFsync fsync;
	guint queue;         /* records waiting for the writer; more are dropped and counted */
	gint64 segment_ms;   /* record time per segment (3600000) */
	guint64 segment_bytes; /* a segment this big is closed early (64 MiB; max_bytes / 8) */
} HistoryConfig;

typedef struct {
	guint64 records_queued, records_dropped; /* dropped: the queue was full */
	guint64 records_written, bytes_written;
	guint64 write_errors, enospc;            /* records lost to them */
	guint64 segments, bytes;                 /* on disk now */
	guint64 segments_created, segments_removed_age, segments_removed_size;
	guint64 segments_indexed, index_rebuilt; /* at start; rebuilt: no or a stale sidecar */
	guint64 corrupt_records, truncated_records, damaged_segments;
	guint64 fsyncs;
	guint64 queries, queries_truncated, query_bytes_read, query_us;
	gint64 oldest_ms, newest_ms;             /* record times on disk; 0 = none */
	guint queue_len;
} HistoryStats;

typedef struct History History;

gboolean history_fsync_parse(const char *text, HistoryFsync *out);
const char *history_fsync_name(HistoryFsync f);

/* Make the directory (0750) unless it exists, lock it (one daemon per store), index the
 * segments there, start the writer. */
History *history_open(const HistoryConfig *cfg, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Drain the queue, close the segment (its sidecar), stop the thread. NULL-safe. */
void history_free(History *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(History, history_free)

/* Queue one slice's readings (hosts need not be sorted; copied). Never blocks. */
void history_add_slice(History *h, gint64 t_ms, HsegHost *hosts, guint n);
/* Queue an event or an action (n->json copied). Never blocks. */
void history_add_note(History *h, HsegRecType type, const HsegNote *n);
/* Wait until what was queued before the call is on disk (tests, the end of a replay). */
void history_sync(History *h);

typedef struct {
	gint64 since_ms, until_ms; /* inclusive record times */
	gboolean has_host;
	guint8 host[16];
	gint reason;           /* notes: only this AlertReason; -1 all */
	guint types;           /* 1 << HsegRecType */
	gboolean newest_first; /* notes in reverse (history); slices always oldest first */
	guint64 max_bytes;     /* read budget; 0 = default (256 MiB) */
	gint64 max_us;         /* time budget; 0 = default (500 ms) */
} HistoryQuery;

/* Return FALSE to stop. host: a slice's host reading (only the queried host when has_host). */
typedef gboolean (*HistorySliceFunc)(gint64 t_ms, const HsegHost *host, gpointer data);
typedef gboolean (*HistoryNoteFunc)(HsegRecType type, const HsegNote *n, gpointer data);

/* Read the disk. *truncated: a budget ran out before the end. */
void history_query(History *h, const HistoryQuery *q, HistorySliceFunc slice_fn,
		   HistoryNoteFunc note_fn, gpointer data, gboolean *truncated);

void history_get_stats(History *h, HistoryStats *out);
/* "history":{...} members without braces */
void history_stats_json(History *h, GString *out);
const char *history_dir(const History *h);
