/* Unit tests for analyzer/offender: the alert lifecycle state machine (raise, rate-limited
 * escalation, hysteresis clear, clock steps), and the same transitions end to end through
 * the Analyzer with exactly one event per transition. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"
#include "analyzer_private.h" /* Analyzer.no_quick, quick_flows: test_quick_judge */
#include "offender.h"

#define MIN_MS (60 * 1000)
static const OffenderPolicy P = {.escalate_factor = 2.0,
				 .update_interval_ms = 15 * MIN_MS,
				 .clear_level = 0.5,
				 .hold_ms = 30 * MIN_MS};

static void
test_raise(void **state)
{
	(void)state;
	Offender o;
	offender_init(&o);
	assert_int_equal(offender_step(&o, &P, 1000, FALSE, 0.99), OFFENDER_STEP_NONE);
	assert_int_equal(o.state, OFFENDER_IDLE);
	assert_int_equal(offender_step(&o, &P, 2000, TRUE, 1.2), OFFENDER_STEP_RAISED);
	assert_int_equal(o.state, OFFENDER_ACTIVE);
	assert_int_equal(o.raised_ms, 2000);
	/* staying above: nothing in between */
	for (gint64 t = 3000; t < 60 * MIN_MS; t += 10000)
		assert_int_equal(offender_step(&o, &P, t, TRUE, 1.5), OFFENDER_STEP_NONE);
}

static void
test_update_rate_limited(void **state)
{
	(void)state;
	Offender o;
	offender_init(&o);
	assert_int_equal(offender_step(&o, &P, 0, TRUE, 1.0), OFFENDER_STEP_RAISED);
	/* doubled, but too soon */
	assert_int_equal(offender_step(&o, &P, 5 * MIN_MS, TRUE, 2.5), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, 15 * MIN_MS - 1, TRUE, 3.0), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, 15 * MIN_MS, TRUE, 3.0), OFFENDER_STEP_UPDATED);
	assert_int_equal(o.n_updates, 1);
	/* the next update needs 6.0 (double of the reported 3.0) and another interval */
	assert_int_equal(offender_step(&o, &P, 40 * MIN_MS, TRUE, 5.9), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, 41 * MIN_MS, TRUE, 6.0), OFFENDER_STEP_UPDATED);
	assert_int_equal(offender_step(&o, &P, 42 * MIN_MS, TRUE, 50.0), OFFENDER_STEP_NONE);
	assert_int_equal(o.n_updates, 2);
}

static void
test_hysteresis_clear(void **state)
{
	(void)state;
	Offender o;
	offender_init(&o);
	assert_int_equal(offender_step(&o, &P, 0, TRUE, 1.0), OFFENDER_STEP_RAISED);
	/* below the raise level but above the clear level: stays active for ever */
	for (gint64 t = MIN_MS; t < 300 * MIN_MS; t += MIN_MS)
		assert_int_equal(offender_step(&o, &P, t, FALSE, 0.6), OFFENDER_STEP_NONE);
	/* below clear level: hold time starts */
	gint64 t0 = 300 * MIN_MS;
	assert_int_equal(offender_step(&o, &P, t0, FALSE, 0.3), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, t0 + 20 * MIN_MS, FALSE, 0.2), OFFENDER_STEP_NONE);
	/* back above the clear level restarts the hold */
	assert_int_equal(offender_step(&o, &P, t0 + 25 * MIN_MS, FALSE, 0.55), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, t0 + 26 * MIN_MS, FALSE, 0.1), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, t0 + 56 * MIN_MS - 1, FALSE, 0.1),
			 OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, t0 + 56 * MIN_MS, FALSE, 0.1),
			 OFFENDER_STEP_CLEARED);
	assert_int_equal(o.state, OFFENDER_IDLE);
	assert_int_equal(offender_step(&o, &P, t0 + 57 * MIN_MS, FALSE, 0.1), OFFENDER_STEP_NONE);
	/* and can be raised again */
	assert_int_equal(offender_step(&o, &P, t0 + 58 * MIN_MS, TRUE, 1.1), OFFENDER_STEP_RAISED);
	assert_int_equal(o.raised_ms, t0 + 58 * MIN_MS);
	assert_int_equal(o.n_updates, 0);
}

static void
test_clock_back(void **state)
{
	(void)state;
	Offender o;
	offender_init(&o);
	assert_int_equal(offender_step(&o, &P, 100 * MIN_MS, TRUE, 1.0), OFFENDER_STEP_RAISED);
	assert_int_equal(offender_step(&o, &P, 101 * MIN_MS, FALSE, 0.1), OFFENDER_STEP_NONE);
	/* clock steps back a day: no early clear, no early update */
	assert_int_equal(offender_step(&o, &P, -1340 * MIN_MS, FALSE, 0.1), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, -1339 * MIN_MS, TRUE, 10.0), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, -1339 * MIN_MS + 1, FALSE, 0.1), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, -1310 * MIN_MS, FALSE, 0.1), OFFENDER_STEP_NONE);
	assert_int_equal(offender_step(&o, &P, -1309 * MIN_MS + 1, FALSE, 0.1),
			 OFFENDER_STEP_CLEARED);
}

/* Whenever offender_ignores_crossed() says so, the step and the state after it are the same
 * with crossed TRUE and FALSE (the analyzer then skips working it out): random histories of
 * levels, crossings and clock steps, also with no update interval. */
static void
test_ignores_crossed(void **state)
{
	(void)state;
	const OffenderPolicy zero = {.escalate_factor = 1.5, .clear_level = 0.5, .hold_ms = MIN_MS};
	for (guint32 seed = 1; seed <= 8; seed++) {
		const OffenderPolicy *p = seed % 4 == 0 ? &zero : &P;
		GRand *r = g_rand_new_with_seed(seed);
		Offender o;
		offender_init(&o);
		gint64 t = 100 * MIN_MS;
		guint skipped = 0;
		for (guint i = 0; i < 20000; i++) {
			gint op = g_rand_int_range(r, 0, 100);
			t += op == 0 ? -g_rand_int_range(r, 0, 20 * MIN_MS)
				     : g_rand_int_range(r, 0, MIN_MS / 2);
			/* growing, so that updates keep coming */
			double level = g_rand_double_range(r, 0, 4) * (double)(1u << (i / 1000));
			gboolean crossed = level >= 1 && g_rand_boolean(r);
			if (offender_ignores_crossed(&o, p, t)) {
				Offender a = o, b = o;
				OffenderStep sa = offender_step(&a, p, t, TRUE, level);
				OffenderStep sb = offender_step(&b, p, t, FALSE, level);
				assert_int_equal(sa, sb);
				assert_memory_equal(&a, &b, sizeof a);
				skipped++;
			}
			offender_step(&o, p, t, crossed, level);
		}
		if (p == &P)
			assert_true(skipped > 1000); /* the case is tried */
		else
			assert_int_equal(skipped, 0); /* no interval: every step may update */
		g_rand_free(r);
	}
}

/* ---- end to end through the Analyzer ---- */

typedef struct {
	GArray *ev;
} Sink;

static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	Sink *s = user_data;
	g_array_append_val(s->ev, *ev);
}

static Flow
smtp_flow(gint64 t, guint32 src, guint32 dst)
{
	Flow f;
	memset(&f, 0, sizeof f);
	guint8 s4[4] = {10, 0, (guint8)(src >> 8), (guint8)src};
	guint8 d4[4] = {198, (guint8)(dst >> 16), (guint8)(dst >> 8), (guint8)dst};
	flow_addr_set_v4(f.src, s4);
	flow_addr_set_v4(f.dst, d4);
	f.recv_ms = t;
	f.sport = 40000;
	f.dport = 25;
	f.proto = 6;
	f.tcp_flags = 0x1b; /* SYN ACK PSH FIN: a session */
	f.packets = 12;
	f.bytes = 3000;
	f.sampling = 1;
	f.has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
	return f;
}

#define T0 ((gint64)1700000000 / 600 * 600 * 1000)

static void
test_lifecycle_analyzer(void **state)
{
	(void)state;
	Sink sink = {g_array_new(FALSE, FALSE, sizeof(AlertEvent))};
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.alert_fn = on_alert;
	cfg.alert_data = &sink;
	g_autoptr(GError) err = NULL;
	g_autoptr(Analyzer) a = analyzer_new(&cfg, &err);
	assert_non_null(a);
	guint32 d = 0;
	/* 60 distinct MXs in minute 0: raised at the 50th, in that very flow */
	for (guint i = 0; i < 60; i++) {
		Flow f = smtp_flow(T0 + i * 500, 7, d++);
		analyzer_process(a, &f, 1);
		assert_int_equal(sink.ev->len, i >= 49 ? 1 : 0);
	}
	AlertEvent *e = &g_array_index(sink.ev, AlertEvent, 0);
	assert_int_equal(e->event, ALERT_RAISED);
	assert_int_equal(e->reason, REASON_SMTP_FANOUT);
	assert_int_equal(e->window[WINDOW_SHORT].distinct, 50);
	assert_int_equal(e->time_ms, T0 + 49 * 500);
	/* escalation to 2.4x in minute 1 and 2.2x in minute 14: rate limited, no update */
	for (guint i = 0; i < 60; i++) {
		Flow f = smtp_flow(T0 + MIN_MS + i * 1000, 7, d++);
		analyzer_process(a, &f, 1);
	}
	for (guint i = 0; i < 110; i++) {
		Flow f = smtp_flow(T0 + 14 * MIN_MS + i * 500, 7, d++);
		analyzer_process(a, &f, 1);
	}
	assert_int_equal(sink.ev->len, 1);
	/* 15 min after the raise, the next flow's call is one update: the tick run at the start
	 * of the batch finds it due (short window 6..15 holds 110: 2.2x) before the flow adds */
	Flow f15 = smtp_flow(T0 + 15 * MIN_MS + 30000, 7, d++);
	analyzer_process(a, &f15, 1);
	assert_int_equal(sink.ev->len, 2);
	e = &g_array_index(sink.ev, AlertEvent, 1);
	assert_int_equal(e->event, ALERT_UPDATED);
	assert_int_equal(e->time_ms, T0 + 15 * MIN_MS + 30000);
	assert_int_equal(e->window[WINDOW_SHORT].distinct, 110);
	assert_int_equal(e->window[WINDOW_LONG].distinct, 230);
	assert_int_equal(e->trigger, WINDOW_SHORT);
	/* silence. The long window keeps the level >= 0.5 (75 of 150) until minute 74, when
	 * slice 14 (110 destinations) leaves it; then 30 minutes of hold. */
	for (gint64 m = 16; m < 104; m++) {
		analyzer_tick(a, T0 + m * MIN_MS);
		assert_int_equal(sink.ev->len, 2);
	}
	analyzer_tick(a, T0 + 104 * MIN_MS);
	assert_int_equal(sink.ev->len, 3);
	e = &g_array_index(sink.ev, AlertEvent, 2);
	assert_int_equal(e->event, ALERT_CLEARED);
	assert_int_equal(e->severity, ALERT_SEV_INFO);
	assert_int_equal(e->raised_ms, T0 + 49 * 500);
	assert_int_equal(e->window[WINDOW_LONG].distinct, 0);
	analyzer_tick(a, T0 + 200 * MIN_MS);
	assert_int_equal(sink.ev->len, 3);
	AnalyzerStats st;
	analyzer_get_stats(a, &st);
	assert_int_equal(st.events[ALERT_RAISED], 1);
	assert_int_equal(st.events[ALERT_UPDATED], 1);
	assert_int_equal(st.events[ALERT_CLEARED], 1);
	assert_int_equal(st.offenders_active, 0);
	/* history, newest first */
	assert_int_equal(analyzer_history_len(a), 3);
	assert_int_equal(analyzer_history_get(a, 0)->event, ALERT_CLEARED);
	assert_int_equal(analyzer_history_get(a, 2)->event, ALERT_RAISED);
	assert_null(analyzer_history_get(a, 3));
	g_array_free(sink.ev, TRUE);
}

static void
count_offender(const AnalyzerOffender *o, gpointer user_data)
{
	(*(guint *)user_data)++;
	assert_int_equal(o->reason, REASON_SMTP_FANOUT);
	assert_int_equal(o->state.state, OFFENDER_ACTIVE);
	assert_int_equal(o->last->event, ALERT_RAISED);
}

static void
test_history_ring_and_offenders(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.history_len = 4;
	g_autoptr(GError) err = NULL;
	g_autoptr(Analyzer) a = analyzer_new(&cfg, &err);
	assert_non_null(a);
	/* six bots, one raised event each; the ring keeps the newest four */
	for (guint32 bot = 1; bot <= 6; bot++) {
		for (guint32 i = 0; i < 50; i++) {
			Flow f = smtp_flow(T0 + bot * 1000 + i, bot, bot * 1000 + i);
			analyzer_process(a, &f, 1);
		}
	}
	assert_int_equal(analyzer_history_len(a), 4);
	for (guint i = 0; i < 4; i++) {
		const AlertEvent *e = analyzer_history_get(a, i);
		assert_int_equal(e->host[15], 6 - i);
	}
	guint n = 0;
	analyzer_foreach_offender(a, count_offender, &n);
	assert_int_equal(n, 6);
	guint8 h[16];
	guint8 v4[4] = {10, 0, 0, 3};
	flow_addr_set_v4(h, v4);
	assert_true(analyzer_forget(a, h));
	assert_false(analyzer_forget(a, h));
	n = 0;
	analyzer_foreach_offender(a, count_offender, &n);
	assert_int_equal(n, 5);
	AnalyzerHostInfo info;
	assert_false(analyzer_host_info(a, h, &info));
}

/* evaluate()'s quick judge (analyzer.c) steps nothing where judge_step() would step
 * something: two analyzers, one with it off, fed the same random traffic (raised bots whose
 * level grows, stalls and drops, whose failed share crosses the blocked split, raised for
 * both smtp-fanout and smtp-blocked, clocks stepped back, slices expiring, evictions,
 * sampled flows, history walks, reloads, restarts) emit the same events and save the same
 * state. Every guard of evaluate_quick() fails this when left out but two that flows cannot
 * reach: the offender's state and the history flag (read for a loaded state's sake). */
static void
reading_noop(const AnalyzerReading *r, gpointer user_data)
{
	(void)r;
	(*(guint *)user_data)++;
}

static void
quick_config(AnalyzerConfig *cfg, Sink *sink, guint variant)
{
	analyzer_config_defaults(cfg);
	cfg->alert_fn = on_alert;
	cfg->alert_data = sink;
	cfg->span_slices[WINDOW_SHORT] = 3;
	cfg->span_slices[WINDOW_LONG] = 10;
	cfg->exact_cap = 60; /* some windows estimate */
	cfg->max_hosts = variant % 2 ? 5 : 64; /* of six hosts: evictions of raised ones */
	/* variant 3: smtp-fanout's level drops under clear_level well before smtp-blocked's,
	 * while both are raised */
	cfg->h[REASON_SMTP_FANOUT] = variant == 3 ? (HeuristicConfig){TRUE, {25, 60}}
						  : (HeuristicConfig){TRUE, {8 + variant, 20}};
	cfg->h[REASON_SMTP_BLOCKED] = (HeuristicConfig){variant != 2, {6, 15}};
	cfg->blocked_min_attempts = 10;
	cfg->escalate_factor = 1.3;
	cfg->update_interval_ms = 2 * MIN_MS;
	cfg->hold_ms = 3 * MIN_MS;
}

/* The two analyzers save the same state. */
static void
assert_same_state(Analyzer *a0, Analyzer *a1)
{
	g_autoptr(GByteArray) s0 = g_byte_array_new();
	g_autoptr(GByteArray) s1 = g_byte_array_new();
	analyzer_state_save(a0, s0);
	analyzer_state_save(a1, s1);
	assert_int_equal(s0->len, s1->len);
	assert_memory_equal(s0->data, s1->data, s0->len);
}

static void
test_quick_judge(void **state)
{
	(void)state;
	guint64 quick = 0, known = 0;
	for (guint32 seed = 1; seed <= 8; seed++) {
		Sink sink[2] = {{g_array_new(FALSE, FALSE, sizeof(AlertEvent))},
				{g_array_new(FALSE, FALSE, sizeof(AlertEvent))}};
		Analyzer *an[2];
		for (guint k = 0; k < 2; k++) {
			AnalyzerConfig cfg;
			quick_config(&cfg, &sink[k], seed % 4);
			an[k] = analyzer_new(&cfg, NULL);
			assert_non_null(an[k]);
		}
		an[1]->no_quick = TRUE;
		GRand *r = g_rand_new_with_seed(seed);
		gint64 t = T0;
		/* each bot's share of failed attempts: long phases of 0 % or 95 %, so that a bot
		 * raised for one reason is raised for the other too, and the split turns */
		guint failed_pct[6] = {0, 95, 0, 95, 0, 0};
		guint weight[6] = {10, 10, 1, 10, 1, 10};
		for (guint i = 0; i < 40000; i++) {
			gint op = g_rand_int_range(r, 0, 1000);
			if (op < 2) /* late, or older than the long window: a reset */
				t -= g_rand_int_range(r, 0, op == 0 ? 2 * MIN_MS : 15 * MIN_MS);
			else if (op >= 990) /* a little late: before the last event, not the tick */
				t -= g_rand_int_range(r, 0, 20000);
			else if (op < 6) /* quiet: slices leave the windows, levels drop */
				t += g_rand_int_range(r, MIN_MS, 12 * MIN_MS);
			else
				t += g_rand_int_range(r, 0, 400);
			if (op >= 6 && op < 8) {
				guint b = (guint)g_rand_int_range(r, 0, 6);
				failed_pct[b] = failed_pct[b] != 0 ? 0 : 95;
			}
			/* and its rate: busy or slow phases, so that levels rise past one reason's
			 * clear_level and fall under it while the other's stays raised */
			if (op >= 8 && op < 10) {
				guint b = (guint)g_rand_int_range(r, 0, 6);
				weight[b] = weight[b] == 10 ? 1 : 10;
			}
			guint32 bot = 0;
			gint x = g_rand_int_range(r, 0,
						  (gint)(weight[0] + weight[1] + weight[2] +
							 weight[3] + weight[4] + weight[5]));
			while (x >= (gint)weight[bot])
				x -= (gint)weight[bot++];
			/* a few destinations again and again, or fresh ones */
			guint32 dst = g_rand_int_range(r, 0, 3) == 0
					  ? bot * 100000 + (guint32)g_rand_int_range(r, 0, 30)
					  : (guint32)g_rand_int_range(r, 0, 1 << 22);
			Flow f = smtp_flow(t, bot, dst);
			if ((guint)g_rand_int_range(r, 0, 100) < failed_pct[bot])
				f.tcp_flags = 0x02; /* SYN alone */
			if (bot == 5 && g_rand_int_range(r, 0, 50) == 0)
				f.sampling = 10;
			guint rd[2] = {0, 0};
			for (guint k = 0; k < 2; k++) {
				if (op >= 16 && op < 18)
					analyzer_tick(an[k], t);
				if (op == 18) /* clears the history candidates */
					analyzer_foreach_reading(an[k], 0.25, reading_noop, &rd[k]);
				if (op == 19) {
					AnalyzerConfig cfg;
					quick_config(&cfg, &sink[k], (seed + i / 997) % 4);
					assert_true(analyzer_reconfigure(an[k], &cfg, NULL));
				}
				if (op == 20) { /* a restart: hosts moved in (host_adopt()) */
					g_autoptr(GByteArray) st = g_byte_array_new();
					analyzer_state_save(an[k], st);
					AnalyzerConfig cfg;
					quick_config(&cfg, &sink[k], (seed + i / 997) % 4);
					Analyzer *b = analyzer_new(&cfg, NULL);
					assert_true(
					    analyzer_state_load(b, st->data, st->len, NULL));
					b->no_quick = an[k]->no_quick;
					b->quick_flows = an[k]->quick_flows;
					analyzer_free(an[k]);
					an[k] = b;
				}
				analyzer_process(an[k], &f, 1);
			}
			assert_int_equal(rd[0], rd[1]);
			assert_int_equal(sink[0].ev->len, sink[1].ev->len);
		}
		for (guint j = 0; j < sink[0].ev->len; j++)
			assert_memory_equal(&g_array_index(sink[0].ev, AlertEvent, j),
					    &g_array_index(sink[1].ev, AlertEvent, j),
					    sizeof(AlertEvent));
		assert_same_state(an[0], an[1]);
		assert_int_equal(an[1]->quick_flows, 0);
		quick += an[0]->quick_flows;
		known += an[0]->quick_known;
		for (guint k = 0; k < 2; k++) {
			analyzer_free(an[k]);
			g_array_free(sink[k].ev, TRUE);
		}
		g_rand_free(r);
	}
	assert_true(quick > 6000); /* the case is tried (about 2,000 flows a seed) */
	/* and the level known from an earlier flow of the slice (inside the update interval,
	 * from exact windows and estimates past linear counting: about 150 of them) */
	g_test_message("quick judge: %" G_GUINT64_FORMAT " flows, %" G_GUINT64_FORMAT
		       " with the level known", quick, known);
	assert_true(known > 50);
}

/* The level the quick judge found in a slice (OffEntry.quick_epoch) is forgotten on a
 * reload: thresholds raised above a raised bot's level make it "below" at its next flow, in
 * the same slice and inside the update interval, as the full judge has it (test_quick_judge's
 * random traffic reloads too rarely to tell). */
static void
test_quick_known_reload(void **state)
{
	(void)state;
	Sink sink[2] = {{g_array_new(FALSE, FALSE, sizeof(AlertEvent))},
			{g_array_new(FALSE, FALSE, sizeof(AlertEvent))}};
	Analyzer *an[2];
	AnalyzerConfig cfg;
	for (guint k = 0; k < 2; k++) {
		quick_config(&cfg, &sink[k], 0);
		an[k] = analyzer_new(&cfg, NULL);
		assert_non_null(an[k]);
	}
	an[1]->no_quick = TRUE;
	const gint64 t = T0 + 1000; /* every flow below in the slice from T0 */
	for (guint32 i = 0; i < 20; i++) {
		Flow f = smtp_flow(t + i, 0, 1000 + i);
		for (guint k = 0; k < 2; k++)
			analyzer_process(an[k], &f, 1);
	}
	/* raised at the 8th destination; the 12 after it are the quick judge's, all but the
	 * first with the level known */
	assert_int_equal(sink[0].ev->len, 1);
	assert_int_equal(an[0]->quick_flows, 12);
	assert_int_equal(an[0]->quick_known, 11);
	Flow f = smtp_flow(t + 100, 0, 1000);
	for (guint k = 0; k < 2; k++)
		analyzer_process(an[k], &f, 1);
	assert_int_equal(an[0]->quick_known, 12);
	for (guint k = 0; k < 2; k++) {
		quick_config(&cfg, &sink[k], 0);
		cfg.h[REASON_SMTP_FANOUT] = (HeuristicConfig){TRUE, {400, 1000}};
		assert_true(analyzer_reconfigure(an[k], &cfg, NULL));
		f = smtp_flow(t + 200, 0, 1000);
		analyzer_process(an[k], &f, 1);
	}
	assert_int_equal(an[0]->quick_known, 12);
	assert_same_state(an[0], an[1]);
	for (guint k = 0; k < 2; k++) {
		analyzer_free(an[k]);
		g_array_free(sink[k].ev, TRUE);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raise),
		cmocka_unit_test(test_update_rate_limited),
		cmocka_unit_test(test_hysteresis_clear),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_ignores_crossed),
		cmocka_unit_test(test_lifecycle_analyzer),
		cmocka_unit_test(test_history_ring_and_offenders),
		cmocka_unit_test(test_quick_judge),
		cmocka_unit_test(test_quick_known_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
