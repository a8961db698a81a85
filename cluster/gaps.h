/* Batches that never arrived (issue 17): a collector numbers its flow batches to each
 * partition 1, 2, 3, ... (ClusterBatch.batch_seq), one number for each batch its bus took;
 * the partition's analyzer sees which numbers are skipped. A skipped number is a batch
 * given up by the collector's bus after its timeout (counted there too, `failed`), or one
 * lost between the stream and this node. A publish retried can be stored after the batches
 * that followed it, so a number is declared missing only once it has stayed away for the
 * grace period. Pure: no bus, no clock of its own (the caller passes the time). */
#pragma once

#include <glib.h>

typedef struct GapTrack GapTrack;

/* Tracks up to max_sources collectors (more are not tracked) with up to max_holes numbers
 * waiting each (a jump past that declares the excess missing at once); a hole is declared
 * missing grace_us after it was seen. */
GapTrack *gap_track_new(guint max_sources, guint max_holes, gint64 grace_us);
void gap_track_free(GapTrack *g);

/* Batch number seq from collector `source` arrived at now_us (the caller's clock, which
 * must not go back: the daemon's counts the time its bus was connected). Returns the
 * numbers declared missing by it: a collector that starts again (its numbers begin anew: 1,
 * or a number more than max_holes below the highest seen) takes its old holes with it. A
 * number near the highest that is no hole (declared missing already, or seen twice) is
 * counted late. */
guint64 gap_track_see(GapTrack *g, const char *source, guint64 seq, gint64 now_us);
/* Holes past the grace period at now_us: declared missing, their count returned. */
guint64 gap_track_expire(GapTrack *g, gint64 now_us);
/* Numbers skipped and still within their grace period, over every collector. */
guint64 gap_track_waiting(const GapTrack *g);
/* Collectors not tracked (max_sources reached), counted once each batch. */
guint64 gap_track_untracked(const GapTrack *g);
/* Numbers that came after they were declared missing (or twice). */
guint64 gap_track_late(const GapTrack *g);
