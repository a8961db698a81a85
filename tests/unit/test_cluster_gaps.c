/* cluster/gaps.c: the batch numbers a partition's analyzer never saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "gaps.h"

#define S 1000000 /* a second, in us */

/* In order: nothing missing; the first number seen from a collector starts its count. */
static void
test_in_order(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(4, 16, 10 * S);
	for (guint64 q = 5; q < 100; q++)
		assert_int_equal(gap_track_see(g, "c1", q, (gint64)q), 0);
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
	assert_int_equal(gap_track_see(g, "c1", 1, 0), 0);
	assert_int_equal(gap_track_see(g, "c1", 5, 1 * S), 0); /* 2, 3, 4 skipped */
	assert_int_equal(gap_track_waiting(g), 3);
	assert_int_equal(gap_track_see(g, "c2", 7, 2 * S), 0); /* another collector */
	assert_int_equal(gap_track_see(g, "c2", 9, 3 * S), 0); /* 8 skipped */
	assert_int_equal(gap_track_see(g, "c1", 3, 4 * S), 0); /* late: retried */
	assert_int_equal(gap_track_waiting(g), 3);
	assert_int_equal(gap_track_expire(g, 10 * S), 0); /* 2 and 4 seen at 1 s */
	assert_int_equal(gap_track_expire(g, 11 * S), 2);
	assert_int_equal(gap_track_waiting(g), 1);
	assert_int_equal(gap_track_see(g, "c1", 2, 12 * S), 0); /* after its grace: late */
	assert_int_equal(gap_track_late(g), 1);
	assert_int_equal(gap_track_see(g, "c1", 6, 12 * S), 0); /* and c1 goes on */
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
	gap_track_see(g, "c1", 40, 0);
	gap_track_see(g, "c1", 43, 0); /* 41, 42 */
	assert_int_equal(gap_track_see(g, "c1", 1, 1 * S), 2);
	assert_int_equal(gap_track_see(g, "c1", 2, 1 * S), 0);
	assert_int_equal(gap_track_see(g, "c1", 2, 1 * S), 0); /* twice: late */
	assert_int_equal(gap_track_late(g), 1);
	for (guint64 q = 3; q <= 500; q++)
		assert_int_equal(gap_track_see(g, "c1", q, 2 * S), 0);
	/* a restart whose first two batches never came: far below, 1 and 2 of the new run
	 * wait */
	assert_int_equal(gap_track_see(g, "c1", 3, 3 * S), 0);
	assert_int_equal(gap_track_waiting(g), 2);
	assert_int_equal(gap_track_see(g, "c1", 4, 3 * S), 0);
	assert_int_equal(gap_track_expire(g, 13 * S), 2);
	assert_int_equal(gap_track_late(g), 1);
	gap_track_free(g);
}

/* Bounded: a jump past max_holes declares the excess missing at once; collectors past
 * max_sources are not tracked, and counted. */
static void
test_bounds(void **state)
{
	(void)state;
	GapTrack *g = gap_track_new(2, 16, 10 * S);
	gap_track_see(g, "c1", 1, 0);
	assert_int_equal(gap_track_see(g, "c1", 1002, 0), 1000 - 16);
	assert_int_equal(gap_track_waiting(g), 16);
	assert_int_equal(gap_track_see(g, "c1", 1001, 0), 0); /* the newest hole, filled */
	assert_int_equal(gap_track_waiting(g), 15);
	gap_track_see(g, "c2", 1, 0);
	assert_int_equal(gap_track_see(g, "c3", 1, 0), 0);
	assert_int_equal(gap_track_see(g, "c3", 9, 0), 0);
	assert_int_equal(gap_track_untracked(g), 2);
	assert_int_equal(gap_track_see(g, "c1", 0, 0), 0); /* not numbered */
	assert_int_equal(gap_track_expire(g, 10 * S), 15);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
