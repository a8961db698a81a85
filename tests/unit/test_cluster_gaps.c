/* cluster/gaps.c: the batch numbers a partition's analyzer never saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "gaps.h"

#define S 1000000 /* a second, in us */
/* a stream sequence for a stream time in ms (a message a second) */
#define SQ(ms) ((guint64)(ms) / 1000)

/* A batch number seen, with no stream position or time (what most tests need). */
static guint64
see(GapTrack *g, const char *source, guint64 seq, gint64 now_us)
{
	return gap_track_see(g, source, seq, now_us, 0, 0, NULL);
}

/* In order: nothing missing; the first number seen from a collector starts its count. */
static void
test_in_order(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 10 * S);
	for (guint64 q = 5; q < 100; q++)
		assert_int_equal(see(g, "c1", q, (gint64)q), 0);
	assert_int_equal(gap_track_expire(g, 100 * S), 0);
	assert_int_equal(gap_track_waiting(g), 0);
	gap_track_free(g);
}

/* Skipped numbers wait for the grace period; one that comes late is no loss; the others
 * are declared missing once, when their grace is over. */
static void
test_holes(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 10 * S);
	assert_int_equal(see(g, "c1", 1, 0), 0);
	assert_int_equal(see(g, "c1", 5, 1 * S), 0); /* 2, 3, 4 skipped */
	assert_int_equal(gap_track_waiting(g), 3);
	assert_int_equal(see(g, "c2", 7, 2 * S), 0); /* another collector */
	assert_int_equal(see(g, "c2", 9, 3 * S), 0); /* 8 skipped */
	assert_int_equal(see(g, "c1", 3, 4 * S), 0); /* late: retried */
	assert_int_equal(gap_track_waiting(g), 3);
	assert_int_equal(gap_track_expire(g, 10 * S), 0); /* 2 and 4 seen at 1 s */
	assert_int_equal(gap_track_expire(g, 11 * S), 2);
	assert_int_equal(gap_track_waiting(g), 1);
	gboolean twice = TRUE;
	assert_int_equal(gap_track_see(g, "c1", 2, 12 * S, 0, 0, &twice), 0);
	assert_false(twice); /* after its grace: late, to apply */
	assert_int_equal(gap_track_late(g), 1);
	assert_int_equal(gap_track_see(g, "c1", 3, 12 * S, 0, 0, &twice), 0);
	assert_true(twice); /* 3 came late already: a copy */
	assert_int_equal(gap_track_see(g, "c1", 5, 12 * S, 0, 0, &twice), 0);
	assert_true(twice);
	assert_int_equal(gap_track_twice(g), 2);
	assert_int_equal(gap_track_late(g), 1);
	assert_int_equal(see(g, "c1", 6, 12 * S), 0); /* and c1 goes on */
	assert_int_equal(gap_track_expire(g, 13 * S), 1);	/* c2's 8 */
	assert_int_equal(gap_track_expire(g, 100 * S), 0);
	assert_int_equal(gap_track_waiting(g), 0);
	gap_track_free(g);
}

/* A collector that starts again numbers from 1: its old holes are missing at once. */
static void
test_restart(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 10 * S);
	see(g, "c1", 40, 0);
	see(g, "c1", 43, 0); /* 41, 42 */
	assert_int_equal(see(g, "c1", 1, 1 * S), 2);
	assert_int_equal(see(g, "c1", 2, 1 * S), 0);
	gboolean twice = FALSE;
	assert_int_equal(gap_track_see(g, "c1", 2, 1 * S, 0, 0, &twice), 0);
	assert_true(twice); /* seen already: stored twice */
	assert_int_equal(gap_track_twice(g), 1);
	assert_int_equal(gap_track_late(g), 0);
	for (guint64 q = 3; q <= 500; q++)
		assert_int_equal(see(g, "c1", q, 2 * S), 0);
	/* a restart whose first two batches never came: far below, 1 and 2 of the new run
	 * wait */
	assert_int_equal(see(g, "c1", 3, 3 * S), 0);
	assert_int_equal(gap_track_waiting(g), 2);
	assert_int_equal(see(g, "c1", 4, 3 * S), 0);
	assert_int_equal(gap_track_expire(g, 13 * S), 2);
	assert_int_equal(gap_track_late(g), 0);
	gap_track_free(g);
}

/* Bounded: a jump past max_holes declares the excess missing at once; collectors past
 * max_sources are not tracked, and counted. */
static void
test_bounds(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(2, 16, 10 * S);
	see(g, "c1", 1, 0);
	assert_int_equal(see(g, "c1", 1002, 0), 1000 - 16);
	assert_int_equal(gap_track_waiting(g), 16);
	assert_int_equal(see(g, "c1", 1001, 0), 0); /* the newest hole, filled */
	assert_int_equal(gap_track_waiting(g), 15);

	see(g, "c2", 1, 0);
	assert_int_equal(see(g, "c3", 1, 0), 0);
	assert_int_equal(see(g, "c3", 9, 0), 0);
	assert_int_equal(gap_track_untracked(g), 2);

	assert_int_equal(see(g, "c1", 0, 0), 0); /* not numbered */

	/* the cap with holes waiting: 15 of 16 taken, 4 more skipped, the lowest 3 of them
	 * missing at once though near the highest; one of those that comes is late (applied),
	 * not a copy */
	GapTrack *h = gap_track_new(2, 16, 10 * S);
	see(h, "c1", 1, 0);
	see(h, "c1", 17, 0); /* 2..16: 15 holes */
	assert_int_equal(see(h, "c1", 22, 0), 3); /* 18, 19, 20 missing; 21 the last hole */
	gboolean twice = TRUE;
	assert_int_equal(gap_track_see(h, "c1", 19, 0, 0, 0, &twice), 0);
	assert_false(twice);
	assert_int_equal(gap_track_late(h), 1);
	assert_int_equal(gap_track_twice(h), 0);
	gap_track_free(h);
	assert_int_equal(gap_track_expire(g, 10 * S), 15);
	gap_track_free(g);
}

/* Holes to look for in the stream: each handed out once, after the wait, with the stream
 * time of its collector's batch before it (the batch that revealed it when none is known);
 * is_hole() tells a hole from a repeat. */
static void
test_rewind(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 30 * S);
	gint64 after = -1;
	assert_int_equal(gap_track_see(g, "c1", 1, 0, SQ(1000), 1000, NULL), 0);
	assert_int_equal(gap_track_see(g, "c1", 2, 0, SQ(2000), 2000, NULL), 0);
	assert_int_equal(gap_track_see(g, "c1", 5, 1 * S, SQ(5000), 5000, NULL), 0); /* 3, 4 */
	assert_int_equal(gap_track_see(g, "c2", 7, 3 * S, SQ(7000), 7000, NULL), 0);
	assert_int_equal(gap_track_see(g, "c2", 9, 4 * S, SQ(9000), 9000, NULL), 0); /* 8 */
	assert_true(gap_track_is_hole(g, "c1", 3, 3));
	assert_true(gap_track_is_hole(g, "c1", 4, 4));
	assert_false(gap_track_is_hole(g, "c1", 2, 2)); /* had */
	assert_false(gap_track_is_hole(g, "c1", 5, 5));
	assert_false(gap_track_is_hole(g, "c1", 6, 9)); /* not yet skipped */
	assert_false(gap_track_is_hole(g, "c3", 3, 3)); /* unknown collector */
	assert_true(gap_track_is_hole(g, "c2", 8, 8));
	/* the wait: nothing at 5.9 s for holes seen at 1 s */
	assert_int_equal(gap_track_rewind(g, 5 * S + S / 2, 5 * S, &after), 0);
	assert_int_equal(after, -1);
	assert_int_equal(gap_track_rewind(g, 6 * S, 5 * S, &after), 2);
	assert_int_equal(after, 2000); /* c1's batch 2, stored at 2000 */
	/* handed out once; c2's 8 when its own wait is over */
	assert_int_equal(gap_track_rewind(g, 8 * S, 5 * S, &after), 0);
	assert_int_equal(gap_track_rewind(g, 9 * S, 5 * S, &after), 1);
	assert_int_equal(after, 7000);
	/* found: no hole any more; the others still wait for their grace */
	assert_int_equal(gap_track_see(g, "c1", 3, 10 * S, SQ(3000), 3000, NULL), 0);
	assert_false(gap_track_is_hole(g, "c1", 3, 3));
	assert_int_equal(gap_track_waiting(g), 2);
	assert_int_equal(gap_track_late(g), 0);
	assert_int_equal(gap_track_expire(g, 31 * S), 1); /* c1's 4 */
	assert_false(gap_track_is_hole(g, "c1", 4, 4));
	/* a collector seen first with a jump has no time before it: the revealing batch's */
	gap_track_see(g, "c3", 1, 40 * S, SQ(0), 0, NULL);
	gap_track_see(g, "c3", 3, 40 * S, SQ(41000), 41000, NULL);
	assert_int_equal(gap_track_rewind(g, 50 * S, 5 * S, &after), 1); /* c2's 8 was asked */
	assert_int_equal(after, 41000);
	assert_int_equal(gap_track_expire(g, 100 * S), 2);
	gap_track_see(g, "c3", 4, 100 * S, SQ(0), 0, NULL);
	gap_track_see(g, "c3", 6, 100 * S, SQ(60000), 60000, NULL);
	assert_int_equal(gap_track_rewind(g, 110 * S, 5 * S, &after), 1);
	assert_int_equal(after, 60000); /* batch 4's time unknown: 6's */
	gap_track_free(g);
}

/* A collector that started again reuses its numbers: a batch read again that was stored
 * before the first one seen of the new run is the old run's, no hole of the new one. */
static void
test_rewind_restart(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 30 * S);
	for (guint64 q = 1; q <= 600; q++)
		gap_track_see(g, "c1", q, 0, 10 + q, 1000 + (gint64)q, NULL);
	/* the new run: 1 at stream sequence 700, then 2 skipped */
	assert_int_equal(gap_track_see(g, "c1", 1, 1 * S, 700, 5000, NULL), 0);
	assert_int_equal(gap_track_see(g, "c1", 3, 1 * S, 702, 5002, NULL), 0);
	assert_false(gap_track_is_hole(g, "c1", 2, 12)); /* the old run's 2 */
	assert_false(gap_track_is_hole(g, "c1", 2, 699));
	assert_true(gap_track_is_hole(g, "c1", 2, 701));
	/* a new run whose first batch was lost too: its first seen starts the run */
	gap_track_see(g, "c2", 500, 0, 800, 6000, NULL);
	assert_int_equal(gap_track_see(g, "c2", 3, 1 * S, 900, 7000, NULL), 0); /* 1, 2 */
	assert_int_equal(gap_track_waiting(g), 3);
	assert_false(gap_track_is_hole(g, "c2", 1, 850));
	assert_true(gap_track_is_hole(g, "c2", 1, 901));
	gint64 after = 0;
	assert_int_equal(gap_track_rewind(g, 10 * S, 5 * S, &after), 3);
	assert_int_equal(after, 5000); /* c1's new 1, the batch before its hole */
	gap_track_free(g);
}

/* Below the first number seen from a collector: never tracked, so late, applied (a retry
 * stored after the batch a takeover started from); from the first on, a copy. */
static void
test_twice_first(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 10 * S);
	gboolean twice = TRUE;
	see(g, "c1", 50, 0);
	see(g, "c1", 51, 0);
	assert_int_equal(gap_track_see(g, "c1", 48, 0, 0, 0, &twice), 0);
	assert_false(twice);
	assert_int_equal(gap_track_see(g, "c1", 50, 0, 0, 0, &twice), 0);
	assert_true(twice);
	assert_int_equal(gap_track_late(g), 1);
	assert_int_equal(gap_track_twice(g), 1);
	gap_track_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_holes),
	    cmocka_unit_test(test_restart),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_rewind),
	    cmocka_unit_test(test_rewind_restart),
	    cmocka_unit_test(test_twice_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
