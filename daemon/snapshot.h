/* Snapshots of the daemon's state to its state file: on the main loop (at exit), or in a
 * forked writer (periodic), one at a time; counted for `stats`. */
#pragma once

#include <glib.h>

/* Build the state and write it to path, as of now_ms; *bytes = the file's size. Called on
 * the main loop, or in the forked writer (where it must not touch the main loop). */
typedef gboolean (*SnapshotWriteFunc)(const char *path, gint64 now_ms, gsize *bytes,
				      gpointer data, GError **error);

typedef struct Snapshot Snapshot;

Snapshot *snapshot_new(const char *path, SnapshotWriteFunc write, gpointer data);
/* NULL-safe. A writer still at work is left to finish (snapshot_wait() first at exit). */
void snapshot_free(Snapshot *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Snapshot, snapshot_free)

const char *snapshot_path(const Snapshot *s);
/* Write now, on the main loop; at_exit logs the result (and any failure) whatever the rate
 * limit. */
void snapshot_save(Snapshot *s, gboolean at_exit);
/* A periodic snapshot in a forked writer; skipped (counted) while the last one is still
 * writing, written here when no writer can be forked. */
void snapshot_take(Snapshot *s);
/* Wait for a writer still at work and collect its result. */
void snapshot_wait(Snapshot *s);
/* What the start restored, or why not, as a JSON object (taken) for `stats`. */
void snapshot_set_restored(Snapshot *s, char *json);
/* ,"state":{...} for `stats` and the summary. */
void snapshot_stats_json(const Snapshot *s, GString *out);
