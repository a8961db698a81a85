/* Unit tests for analyzer/window: sliding counts (the 36+36 straddle), re-sightings, gaps in
 * time, clocks stepping back, expiry, top destinations, and the estimated mode's error
 * bound over many seeds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "window.h"

#define MIN_MS (60 * 1000)
#define T0 ((gint64)1700000000 / 600 * 600 * 1000) /* a 10-minute boundary */

static const WindowGeom G = {.slice_ms = MIN_MS, .span = {10, 60}, .exact_cap = 4096};

static void
dst(guint32 i, guint8 out[16])
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	out[12] = (guint8)(i >> 24);
	out[13] = (guint8)(i >> 16);
	out[14] = (guint8)(i >> 8);
	out[15] = (guint8)i;
}

static guint
add(Window *w, const WindowGeom *g, gint64 t, guint32 d, gboolean failed)
{
	guint8 a[16];
	dst(d, a);
	return window_add(w, g, t, a, TRUE, failed);
}

static WindowCounts
counts(Window *w, const WindowGeom *g, gint64 now)
{
	WindowCounts c;
	window_counts(w, g, now, &c);
	return c;
}

static void
test_exact_basic(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	guint8 a[16];
	for (guint rep = 0; rep < 3; rep++) {
		for (guint32 d = 0; d < 5; d++) {
			guint r = add(w, &G, T0 + rep * 1000 + d, d, d == 4);
			assert_int_equal((r & WINDOW_ADD_NEW_DEST) != 0, rep == 0);
		}
	}
	dst(99, a);
	assert_int_equal(window_add(w, &G, T0 + 5000, a, FALSE, FALSE), 0); /* not an attempt */
	WindowCounts c = counts(w, &G, T0 + 6000);
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		assert_int_equal(c.span[k].distinct, 5);
		assert_false(c.span[k].estimated);
		assert_int_equal(c.span[k].attempts, 15);
		assert_int_equal(c.span[k].flows, 16);
		assert_int_equal(c.span[k].failed, 3);
	}
	assert_int_equal(c.first_ms, T0);
	assert_int_equal(c.last_ms, T0 + 5000);
}

/* 36 destinations in the last 3 minutes of one 10-minute block and 36 in the first 3 of
 * the next: a sliding 10-minute window sees 72; each fixed block only 36. */
static void
test_straddle_36_36(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	for (guint32 i = 0; i < 36; i++)
		add(w, &G, T0 + 7 * MIN_MS + i * 5000, i, FALSE);
	WindowCounts c = counts(w, &G, T0 + 10 * MIN_MS - 1);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 36);
	for (guint32 i = 0; i < 36; i++)
		add(w, &G, T0 + 10 * MIN_MS + i * 5000, 1000 + i, FALSE);
	c = counts(w, &G, T0 + 13 * MIN_MS - 1);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 72);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 72);
	/* the window keeps sliding: at 17:00 the first block's slices (7, 8, 9) are gone */
	c = counts(w, &G, T0 + 17 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 72 - 12); /* slice 7 (12 dests) left */
	c = counts(w, &G, T0 + 20 * MIN_MS - 1);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 36);
	c = counts(w, &G, T0 + 20 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 24);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 72);
}

/* A re-sighting moves a destination to the newer slice: it stays in the short window. */
static void
test_resighting(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	add(w, &G, T0, 1, FALSE);
	add(w, &G, T0, 2, FALSE);
	add(w, &G, T0 + 8 * MIN_MS, 1, FALSE);
	WindowCounts c = counts(w, &G, T0 + 12 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 1); /* only 1 (seen at 8) */
	assert_int_equal(c.span[WINDOW_SHORT].attempts, 1);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 2);
	assert_int_equal(c.span[WINDOW_LONG].attempts, 3);
	/* after the long window, the old sighting of 2 expired; a new one counts as new */
	guint r = add(w, &G, T0 + 61 * MIN_MS, 2, FALSE);
	assert_true(r & WINDOW_ADD_NEW_DEST);
	c = counts(w, &G, T0 + 61 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 2); /* 1 (at 8) and 2 (at 61) */
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 1);
}

static void
test_gap_in_time(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	for (guint32 i = 0; i < 20; i++)
		add(w, &G, T0 + i * 1000, i, FALSE);
	/* three hours without flows: everything expires at once */
	guint r = add(w, &G, T0 + 180 * MIN_MS, 500, FALSE);
	assert_int_equal(r & (WINDOW_ADD_LATE | WINDOW_ADD_RESET), 0);
	assert_true(r & WINDOW_ADD_NEW_DEST);
	WindowCounts c = counts(w, &G, T0 + 180 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 1);
	assert_int_equal(c.span[WINDOW_LONG].attempts, 1);
	assert_int_equal(c.first_ms, T0 + 180 * MIN_MS); /* a new episode */
	/* a gap of 30 slices inside the long window keeps the old slice */
	add(w, &G, T0 + 210 * MIN_MS, 501, FALSE);
	c = counts(w, &G, T0 + 210 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 2);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 1);
	/* counting at a later time without adding expires too, and window_expire frees */
	c = counts(w, &G, T0 + 271 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 0);
	assert_int_equal(c.span[WINDOW_LONG].flows, 0);
	assert_false(window_expire(w, &G, T0 + 269 * MIN_MS));
	assert_true(window_expire(w, &G, T0 + 271 * MIN_MS));
	g_autoptr(Window) fresh = window_new();
	assert_int_equal(window_mem(w), window_mem(fresh)); /* all arrays freed */
	c = counts(w, &G, T0 + 271 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 0);
}

static void
test_clock_backwards(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	for (guint32 i = 0; i < 10; i++)
		add(w, &G, T0 + 20 * MIN_MS, i, FALSE);
	/* five minutes back: counted in the newest slice, nothing lost, nothing negative */
	guint r = add(w, &G, T0 + 15 * MIN_MS, 100, TRUE);
	assert_true(r & WINDOW_ADD_LATE);
	assert_true(r & WINDOW_ADD_NEW_DEST);
	r = add(w, &G, T0 + 15 * MIN_MS, 3, FALSE); /* a re-sighting from the past */
	assert_true(r & WINDOW_ADD_LATE);
	assert_false(r & WINDOW_ADD_NEW_DEST);
	WindowCounts c = counts(w, &G, T0 + 15 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 11);
	assert_int_equal(c.span[WINDOW_SHORT].attempts, 12);
	assert_int_equal(c.span[WINDOW_SHORT].failed, 1);
	/* the clock then moves forward normally: the short window ends at slice 29 */
	add(w, &G, T0 + 29 * MIN_MS, 200, FALSE);
	c = counts(w, &G, T0 + 29 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 12); /* slice 20 is in 20..29 */
	c = counts(w, &G, T0 + 30 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 1);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 12);
	/* a jump back of more than the long window: the clock was reset, start afresh */
	r = add(w, &G, T0 - 120 * MIN_MS, 300, FALSE);
	assert_true(r & WINDOW_ADD_RESET);
	c = counts(w, &G, T0 - 120 * MIN_MS);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 1);
	assert_int_equal(c.span[WINDOW_LONG].attempts, 1);
	assert_int_equal(c.first_ms, T0 - 120 * MIN_MS);
	/* counting at a time before the newest slice uses the newest slice */
	c = counts(w, &G, T0 - 200 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 1);
}

static void
test_top(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	for (guint32 d = 1; d <= 12; d++) {
		for (guint32 n = 0; n < d; n++)
			add(w, &G, T0 + n, d, FALSE);
	}
	WindowTop top[WINDOW_TOP_MAX];
	guint n = window_top(w, &G, T0, top, WINDOW_TOP_MAX);
	assert_int_equal(n, 10);
	for (guint i = 0; i < n; i++) {
		guint8 a[16];
		dst(12 - i, a);
		assert_memory_equal(top[i].addr, a, 16);
		assert_int_equal(top[i].count, 12 - i);
	}
	n = window_top(w, &G, T0, top, 3);
	assert_int_equal(n, 3);
	assert_int_equal(top[2].count, 10);
	/* destinations that left the long window are not top any more */
	add(w, &G, T0 + 61 * MIN_MS, 77, FALSE);
	n = window_top(w, &G, T0 + 61 * MIN_MS, top, WINDOW_TOP_MAX);
	assert_int_equal(n, 1);
	assert_int_equal(top[0].count, 1);
}

static void
test_answered(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	guint8 a[16];
	for (guint32 d = 0; d < 6; d++)
		add(w, &G, T0, d, FALSE);
	dst(2, a);
	window_answer(w, &G, a);
	dst(4, a);
	window_answer(w, &G, a);
	dst(50, a); /* never contacted: ignored */
	window_answer(w, &G, a);
	assert_int_equal(window_answered(w, &G, T0), 2);
	WindowCounts c = counts(w, &G, T0);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 6);
}

/* The map stays exact past many expiries: churn of 10 dests a minute for 5 hours. */
static void
test_churn_exact(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	guint32 d = 0;
	for (guint m = 0; m < 300; m++) {
		for (guint i = 0; i < 10; i++)
			add(w, &G, T0 + (gint64)m * MIN_MS + i, d++, FALSE);
		if (m % 7 == 0)
			window_expire(w, &G, T0 + (gint64)m * MIN_MS);
	}
	WindowCounts c = counts(w, &G, T0 + 299 * MIN_MS);
	assert_int_equal(c.span[WINDOW_SHORT].distinct, 100);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 600);
	assert_false(c.span[WINDOW_LONG].estimated);
	/* bounded: 600 live entries at load <= 3/4 in a power-of-two table, plus 60 slices */
	assert_true(window_mem(w) < 1024 * 24 + 61 * 20 + 512);
}

/* Past the exact cap, counts are estimates within the documented bound. */
static void
test_switch_to_estimate(void **state)
{
	(void)state;
	WindowGeom g = G;
	g.exact_cap = 100;
	g_autoptr(Window) w = window_new();
	guint r = 0;
	for (guint32 d = 0; d < 100; d++)
		r |= add(w, &g, T0 + d * 100, d, FALSE);
	assert_false(r & WINDOW_ADD_ESTIMATING);
	assert_false(window_estimating(w));
	r = add(w, &g, T0 + 20000, 100, FALSE);
	assert_true(r & WINDOW_ADD_ESTIMATING);
	assert_true(window_estimating(w));
	for (guint32 d = 101; d < 3000; d++)
		add(w, &g, T0 + 20000 + d * 100, d, FALSE);
	/* heavy hitters survive into the sketch */
	for (guint n = 0; n < 50; n++)
		add(w, &g, T0 + 320000, 7, FALSE);
	WindowCounts c = counts(w, &g, T0 + 320000);
	assert_true(c.span[WINDOW_LONG].estimated);
	assert_true(fabs((double)c.span[WINDOW_LONG].distinct - 3000) <= 3000 * WINDOW_HLL_BOUND);
	assert_int_equal(c.span[WINDOW_LONG].attempts, 3050);
	WindowTop top[WINDOW_TOP_MAX];
	guint n = window_top(w, &g, T0 + 320000, top, 1);
	assert_int_equal(n, 1);
	guint8 a[16];
	dst(7, a);
	assert_memory_equal(top[0].addr, a, 16);
	assert_true(top[0].count >= 51 && top[0].count - top[0].error <= 51);
	/* when everything expires the window is exact again */
	add(w, &g, T0 + 200 * MIN_MS, 1, FALSE);
	assert_false(window_estimating(w));
	c = counts(w, &g, T0 + 200 * MIN_MS);
	assert_false(c.span[WINDOW_LONG].estimated);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 1);
}

/* Error over many seeds, with destinations spread over the long window so the per-slice
 * registers and their merge are exercised, and the short window read too. */
static void
test_estimate_error_seeds(void **state)
{
	(void)state;
	WindowGeom g = G;
	g.exact_cap = 256;
	double sum_err = 0;
	guint n_est = 0;
	for (guint32 seed = 1; seed <= 40; seed++) {
		g_autoptr(GRand) r = g_rand_new_with_seed(seed);
		g_autoptr(Window) w = window_new();
		g_autoptr(GHashTable) all = g_hash_table_new(g_direct_hash, g_direct_equal);
		g_autoptr(GHashTable) recent = g_hash_table_new(g_direct_hash, g_direct_equal);
		g_autoptr(GArray) seen = g_array_new(FALSE, FALSE, sizeof(guint32));
		guint n = (guint)g_rand_int_range(r, 2000, 30000);
		for (guint i = 0; i < n; i++) {
			guint32 d = g_rand_int(r) | 1; /* random addresses, every 5th a repeat */
			if (i % 5 == 0 && seen->len > 0)
				d = g_array_index(seen, guint32, g_rand_int_range(r, 0, (gint32)seen->len));
			else
				g_array_append_val(seen, d);
			gint64 t = T0 + (gint64)i * (60 * MIN_MS) / n;
			add(w, &g, t, d, FALSE);
			g_hash_table_add(all, GUINT_TO_POINTER(d));
			if (t >= T0 + 50 * MIN_MS)
				g_hash_table_add(recent, GUINT_TO_POINTER(d));
		}
		WindowCounts c = counts(w, &g, T0 + 60 * MIN_MS - 1);
		double truth = g_hash_table_size(all);
		double est = c.span[WINDOW_LONG].distinct;
		assert_true(c.span[WINDOW_LONG].estimated);
		if (fabs(est - truth) > truth * WINDOW_HLL_BOUND)
			fail_msg("seed %u: long estimate %.0f for %.0f", seed, est, truth);
		sum_err += fabs(est - truth) / truth;
		n_est++;
		double rt = g_hash_table_size(recent);
		double rest = c.span[WINDOW_SHORT].distinct;
		if (fabs(rest - rt) > rt * WINDOW_HLL_BOUND)
			fail_msg("seed %u: short estimate %.0f for %.0f", seed, rest, rt);
	}
	/* the mean error is near the standard error, not just inside the 3-sigma bound */
	assert_true(sum_err / n_est < 2 * WINDOW_HLL_REL_ERROR);
}

static void
test_memory_small(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	gsize empty = window_mem(w);
	add(w, &G, T0, 1, FALSE);
	gsize one = window_mem(w);
	assert_true(one > empty);
	/* one IPv4 destination: the struct (its one slice record inside) and a one-entry array
	 * of 12 bytes, which malloc serves from its smallest chunk, 32 bytes */
	assert_int_equal(one, empty + 32);
	print_message("window: %zu bytes empty, %zu with one destination\n", empty, one);
}

/* A longer long window (reconfiguration, or a state saved under shorter windows) must not
 * bring back destinations that already left the window: they have no slice to be counted in
 * any more, and a table rebuilt for the live ones could not hold them. */
static void
test_regeom_longer_window(void **state)
{
	(void)state;
	const WindowGeom longer = {.slice_ms = MIN_MS, .span = {10, 120}, .exact_cap = 4096};
	g_autoptr(Window) w = window_new();
	WindowTop top[WINDOW_TOP_MAX];
	for (guint32 d = 0; d < 3; d++)
		add(w, &G, T0 + d, d, FALSE);
	/* the first three leave the 60-slice window; their entries stay in the table (it has
	 * room for a fourth), expired */
	add(w, &G, T0 + 70 * MIN_MS, 100, FALSE);
	assert_int_equal(counts(w, &G, T0 + 70 * MIN_MS).span[WINDOW_LONG].distinct, 1);
	window_regeom(w, &G, &longer);
	assert_int_equal(window_top(w, &longer, T0 + 70 * MIN_MS, top, WINDOW_TOP_MAX), 1);
	assert_int_equal(window_foreach_dest(w, &longer, T0 + 70 * MIN_MS, NULL, NULL), 1);
	assert_true(add(w, &longer, T0 + 71 * MIN_MS, 0, FALSE) & WINDOW_ADD_NEW_DEST);
	for (guint32 d = 0; d < 200; d++) /* table rebuilds on the way */
		add(w, &longer, T0 + 72 * MIN_MS + d, 1000 + d, FALSE);
	assert_int_equal(counts(w, &longer, T0 + 72 * MIN_MS).span[WINDOW_LONG].distinct, 202);
}

/* The counts window_counts() keeps at the newest slice (sums per span, merged registers in
 * estimated mode) equal a fresh computation: after every step of a random history (time
 * moving on, late flows, re-sightings, a restart, reconfigured spans, the switch to estimated
 * mode, IPv6 destinations in a table of IPv4 ones), the window's counts against those of a
 * copy made through the saved state, which starts with nothing kept. */
static WindowCounts
fresh_counts(const Window *w, const WindowGeom *g, gint64 now)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	g_autoptr(Window) c = window_new();
	g_autoptr(GError) err = NULL;
	window_state_save(w, buf);
	if (!window_state_load(c, g, g, buf->data, buf->len, &err))
		fail_msg("load: %s", err->message);
	return counts(c, g, now);
}

static void
tally_is(const WindowTally *t, const WindowCounts *c)
{
	for (guint k = 0; k < WINDOW_SPANS; k++)
		assert_int_equal(t->distinct[k], c->span[k].distinct);
	assert_int_equal(t->long_attempts, c->span[WINDOW_LONG].attempts);
	assert_int_equal(t->long_failed, c->span[WINDOW_LONG].failed);
}

static void
test_kept_counts(void **state)
{
	(void)state;
	guint tallies = 0;
	const WindowGeom geoms[2] = {
	    {.slice_ms = MIN_MS, .span = {10, 60}, .exact_cap = 300},
	    {.slice_ms = MIN_MS, .span = {5, 30}, .exact_cap = 300},
	};
	for (guint32 seed = 1; seed <= 6; seed++) {
		g_autoptr(Window) w = window_new();
		GRand *r = g_rand_new_with_seed(seed);
		guint gi = 0;
		gint64 t = T0;
		guint32 pool = seed % 2 ? 200 : 5000; /* odd seeds stay exact */
		for (guint step = 0; step < 4000; step++) {
			const WindowGeom *g = &geoms[gi];
			guint op = (guint)g_rand_int_range(r, 0, 100);
			if (op < 3) {
				t += g_rand_int_range(r, 0, 4 * MIN_MS);
			} else if (op == 3 && step % 400 == 3) {
				/* everything left the window: it starts over (an expiry that keeps
				 * some slices is not tried: the analyzer never asks for one, and
				 * it keeps destinations whose slice went, which the saved state
				 * cannot hold) */
				t += 61 * MIN_MS;
				assert_true(window_expire(w, g, t));
			} else if (op == 4 && step % 7 == 0) {
				window_regeom(w, g, &geoms[gi ^ 1]);
				gi ^= 1;
				g = &geoms[gi];
			}
			gint64 at = op < 10 ? t - g_rand_int_range(r, 0, 5 * MIN_MS) : t;
			guint8 a[16];
			dst((guint32)g_rand_int_range(r, 0, (gint32)pool), a);
			if (seed >= 5 && a[15] % 8 == 0)
				a[0] = 0x20; /* seeds 5 and 6: some IPv6 destinations */
			/* window_add_held() tells what window_mem() moved by, on every path */
			gsize mem0 = window_mem(w);
			gssize held = -1;
			window_add_held(w, g, at, a, op % 10 != 9, g_rand_boolean(r), &held);
			assert_int_equal((gssize)window_mem(w) - (gssize)mem0, held);
			/* window_newest_tally() right after the add is window_counts() at its
			 * time, when it answers, and it answers once they were counted */
			WindowTally tl;
			gboolean kept = window_newest_tally(w, g, &tl);
			WindowCounts want = fresh_counts(w, g, at);
			if (kept)
				tally_is(&tl, &want);
			WindowCounts got = counts(w, g, at);
			assert_memory_equal(&got, &want, sizeof got);
			assert_true(window_newest_tally(w, g, &tl));
			tally_is(&tl, &want);
			tallies += kept;
			if (step % 50 == 0) {
				gint64 later = t + g_rand_int_range(r, 0, 20 * MIN_MS);
				got = counts(w, g, later);
				want = fresh_counts(w, g, later);
				assert_memory_equal(&got, &want, sizeof got);
			}
		}
		g_rand_free(r);
	}
	assert_true(tallies > 12000); /* most adds find the sums kept */
}

/* A table of IPv4 destinations takes the 16-byte form at the first IPv6 one and keeps every
 * destination, its count and its answered bit; the saved state carries both forms. */
static void
test_ipv6_form(void **state)
{
	(void)state;
	g_autoptr(Window) w = window_new();
	guint8 a[16], six[16];
	memset(six, 0, 16);
	six[0] = 0x20;
	six[1] = 0x01;
	six[15] = 7;
	for (guint32 d = 1; d <= 3; d++)
		add(w, &G, T0 + d, d, FALSE);
	add(w, &G, T0 + 4, 2, FALSE);
	dst(3, a);
	window_answer(w, &G, a);
	gsize mem4 = window_mem(w);
	window_add(w, &G, T0 + 5, six, TRUE, FALSE);
	assert_true(window_mem(w) > mem4);
	WindowCounts c = counts(w, &G, T0 + 5);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 4);
	assert_int_equal(window_answered(w, &G, T0 + 5), 1);
	WindowTop top[WINDOW_TOP_MAX];
	assert_int_equal(window_top(w, &G, T0 + 5, top, WINDOW_TOP_MAX), 4);
	dst(2, a);
	assert_memory_equal(top[0].addr, a, 16);
	assert_int_equal(top[0].count, 2);
	/* an IPv4 destination again: found in the 16-byte form */
	assert_false(add(w, &G, T0 + 6, 1, FALSE) & WINDOW_ADD_NEW_DEST);
	assert_false(window_add(w, &G, T0 + 6, six, TRUE, FALSE) & WINDOW_ADD_NEW_DEST);
	WindowCounts want = fresh_counts(w, &G, T0 + 6);
	c = counts(w, &G, T0 + 6);
	assert_memory_equal(&c, &want, sizeof c);
	assert_int_equal(c.span[WINDOW_LONG].distinct, 4);
}

/* The space-saving sketch of an estimated window, as a plain model: the first smallest
 * counter is taken over. The window keeps where its smallest counter is between flows; its
 * top destinations (counts, errors, order) must be the model's after every flow. */
typedef struct {
	guint8 addr[16];
	guint32 count, error;
} RefEnt;

static void
ref_add(RefEnt *r, guint *n, const guint8 a[16], guint32 c)
{
	guint min_i = 0;
	for (guint i = 0; i < *n; i++) {
		if (memcmp(r[i].addr, a, 16) == 0) {
			r[i].count += c;
			return;
		}
		if (r[i].count < r[min_i].count)
			min_i = i;
	}
	if (*n < 16) {
		memcpy(r[*n].addr, a, 16);
		r[*n].count = c;
		r[(*n)++].error = 0;
		return;
	}
	memcpy(r[min_i].addr, a, 16);
	r[min_i].error = r[min_i].count;
	r[min_i].count += c;
}

static void
test_top_sketch(void **state)
{
	(void)state;
	const WindowGeom tiny = {.slice_ms = MIN_MS, .span = {10, 60}, .exact_cap = 1};
	for (guint32 seed = 1; seed <= 4; seed++) {
		g_autoptr(Window) w = window_new();
		GRand *r = g_rand_new_with_seed(seed);
		RefEnt ref[16];
		guint nref = 0;
		guint8 first[16];
		for (guint step = 0; step < 20000; step++) {
			/* a few heavy destinations among many one-offs */
			guint32 d = g_rand_boolean(r) ? (guint32)g_rand_int_range(r, 0, 24)
						      : (guint32)g_rand_int_range(r, 100, 100000);
			guint8 a[16];
			dst(d, a);
			guint res = window_add(w, &tiny, T0 + step, a, TRUE, FALSE);
			if (step == 0) {
				memcpy(first, a, 16);
				continue;
			}
			if (res & WINDOW_ADD_ESTIMATING) {
				/* the switch feeds the one exact destination, then this one */
				nref = 0;
				ref_add(ref, &nref, first, memcmp(first, a, 16) == 0 ? 2 : 1);
				if (memcmp(first, a, 16) != 0)
					ref_add(ref, &nref, a, 1);
			} else if (window_estimating(w)) {
				ref_add(ref, &nref, a, 1);
			} else {
				continue;
			}
			WindowTop top[WINDOW_TOP_MAX];
			guint n = window_top(w, &tiny, T0 + step, top, WINDOW_TOP_MAX);
			/* the model's top 10, most first, ties in entry order */
			guint order[16];
			for (guint i = 0; i < nref; i++) {
				guint k = i;
				while (k > 0 && ref[order[k - 1]].count < ref[i].count) {
					order[k] = order[k - 1];
					k--;
				}
				order[k] = i;
			}
			assert_int_equal(n, MIN(nref, WINDOW_TOP_MAX));
			for (guint i = 0; i < n; i++) {
				assert_memory_equal(top[i].addr, ref[order[i]].addr, 16);
				assert_int_equal(top[i].count, ref[order[i]].count);
				assert_int_equal(top[i].error, ref[order[i]].error);
			}
		}
		g_rand_free(r);
	}
}

/* window_newest_distinct() tells when an estimated window's counts can only grow with more
 * adds to its newest slice (the analyzer's quick judge remembers a level found then): after
 * every TRUE, no later count of the slice is lower. Linear counting gives way to the raw
 * estimate at 2.5 x 1,024 registers; it answers FALSE until then. */
static void
test_newest_grows_only(void **state)
{
	(void)state;
	const WindowGeom tiny = {.slice_ms = MIN_MS, .span = {10, 60}, .exact_cap = 1};
	guint n_true = 0, n_false = 0, dips = 0;
	for (guint32 seed = 1; seed <= 8; seed++) {
		g_autoptr(Window) w = window_new();
		GRand *r = g_rand_new_with_seed(seed);
		guint32 floor[WINDOW_SPANS] = {0, 0}, last[WINDOW_SPANS] = {0, 0};
		gboolean have_floor = FALSE;
		/* an earlier slice in both spans, so that the merged registers are a merge */
		for (guint32 i = 0; i < 300; i++) {
			guint8 a[16];
			dst(g_rand_int(r), a);
			window_add(w, &tiny, T0 + (gint64)i, a, TRUE, FALSE);
		}
		for (guint32 i = 0; i < 6000; i++) {
			guint8 a[16];
			dst(g_rand_int(r), a);
			gint64 at = T0 + MIN_MS + (gint64)i;
			window_add(w, &tiny, at, a, TRUE, FALSE);
			WindowTally t;
			if (!window_newest_attempts(w, &t)) {
				WindowCounts c; /* keeps the sums at the newest slice */
				window_counts(w, &tiny, at, &c);
				assert_true(window_newest_attempts(w, &t));
			}
			gboolean grows = window_newest_distinct(w, &tiny, &t);
			for (guint k = 0; k < WINDOW_SPANS; k++) {
				if (have_floor)
					assert_true(t.distinct[k] >= floor[k]);
				dips += t.distinct[k] < last[k];
				last[k] = t.distinct[k];
			}
			if (grows) {
				memcpy(floor, t.distinct, sizeof floor);
				have_floor = TRUE;
				n_true++;
			} else {
				assert_false(have_floor); /* once past linear counting, for good */
				n_false++;
			}
		}
		g_rand_free(r);
	}
	g_test_message("grows only: %u answers TRUE, %u FALSE, %u counts lower than the one "
		       "before", n_true, n_false, dips);
	assert_true(n_true > 8 * 3000 && n_false > 8 * 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_basic),
		cmocka_unit_test(test_straddle_36_36),
		cmocka_unit_test(test_resighting),
		cmocka_unit_test(test_gap_in_time),
		cmocka_unit_test(test_clock_backwards),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_answered),
		cmocka_unit_test(test_churn_exact),
		cmocka_unit_test(test_switch_to_estimate),
		cmocka_unit_test(test_estimate_error_seeds),
		cmocka_unit_test(test_memory_small),
		cmocka_unit_test(test_regeom_longer_window),
		cmocka_unit_test(test_kept_counts),
		cmocka_unit_test(test_ipv6_form),
		cmocka_unit_test(test_top_sketch),
		cmocka_unit_test(test_newest_grows_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
