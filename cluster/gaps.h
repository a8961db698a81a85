/* Batches that never arrived (issue 17): a collector numbers its flow batches to each
 * partition 1, 2, 3, ... (ClusterBatch.batch_seq), one number for each batch its bus took;
 * the partition's analyzer sees which numbers are skipped. A skipped number is a batch
 * given up by the collector's bus after its timeout (counted there too, `failed`), or one
 * lost between the stream and this node. A publish retried can be stored after the batches
 * that followed it, so a number is declared missing only once it has stayed away for the
 * grace period. Meanwhile the caller looks for it in the stream (gap_track_rewind(),
 * gap_track_is_hole()). Pure: no bus, no clock of its own (the caller passes the time). */
#pragma once

#include <glib.h>

typedef struct GapTrack GapTrack;

/* Tracks up to max_sources collectors (more are not tracked) with up to max_holes numbers
 * waiting each (a jump past that declares the excess missing at once); a hole is declared
 * missing grace_us after it was seen. */
GapTrack *gap_track_new(guint max_sources, guint max_holes, gint64 grace_us);
void gap_track_free(GapTrack *g);

/* Batch number seq from collector `source` arrived at now_us (the caller's clock, which
 * must not go back: the daemon's counts the time its bus was calm), stored by the stream at
 * sequence stored_seq (0: unknown) and time stored_ms (ms since the epoch; 0: unknown),
 * which gap_track_is_hole() and gap_track_rewind() need. Returns the numbers declared
 * missing by it: a collector that starts again (its numbers begin anew: 1, or a number
 * more than max_holes below the highest seen) takes its old holes with it. A number near
 * the highest that is no hole is counted late when it was declared missing already (or is
 * below the first seen: never tracked), and else counted twice: a batch the stream holds
 * twice, said in *twice (may be NULL) for the caller to skip. */
guint64 gap_track_see(GapTrack *g, const char *source, guint64 seq, gint64 now_us,
		      guint64 stored_seq, gint64 stored_ms, gboolean *twice);
/* Is seq, stored at stream sequence stored_seq, a number of source skipped and still
 * waiting (the one to take from a stream read again, where every other batch is a
 * repeat)? Not when it was stored before the first batch seen of the collector's current
 * run: that is the same number of an earlier run (a collector that started again). */
gboolean gap_track_is_hole(const GapTrack *g, const char *source, guint64 seq,
			   guint64 stored_seq);
/* Holes waiting for wait_us or more at now_us, not handed out before: each is handed out
 * once (it still waits for its grace). Returns their count, and in *after_ms (set only when
 * the count is > 0) the earliest stream time after which they can have been stored: the
 * stream time of the batch before each hole from its collector (the batch that revealed it
 * when that is unknown). A batch retried by its collector's bus can be stored before its
 * predecessor: the caller reads the stream from some time before *after_ms. */
guint gap_track_rewind(GapTrack *g, gint64 now_us, gint64 wait_us, gint64 *after_ms);
/* Holes past the grace period at now_us: declared missing, their count returned. */
guint64 gap_track_expire(GapTrack *g, gint64 now_us);
/* Numbers skipped and still within their grace period, over every collector. */
guint64 gap_track_waiting(const GapTrack *g);
/* Collectors not tracked (max_sources reached), counted once each batch. */
guint64 gap_track_untracked(const GapTrack *g);
/* Numbers that came after they were declared missing (or from before the first seen). */
guint64 gap_track_late(const GapTrack *g);
/* Numbers that came again after they were seen (not applied twice: *twice above). */
guint64 gap_track_twice(const GapTrack *g);
