/* The collector's part of the state file (collector/state.c): a collector restored from a
 * blob saved mid-capture decodes the rest of the capture exactly as one that never stopped
 * (same flows, no data set waiting for a template, no false sequence loss), and a truncated
 * or corrupted blob is refused or loaded without harm. Captures: the softflowd fixtures. */
#include "collector.h"
#include "replay.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <string.h>

typedef struct {
	guint8 addr[16];
	guint16 port;
	GBytes *payload;
	gint64 ts_ms;
} Dgram;

typedef struct {
	Collector *c;
	FlowBatch *b;
	GArray *flows; /* Flow */
} Run;

static void
collect(const Flow *f, guint n, gpointer data)
{
	g_array_append_vals(data, f, n);
}

static Run *
run_new(void)
{
	Run *r = g_new0(Run, 1);
	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	r->flows = g_array_new(FALSE, FALSE, sizeof(Flow));
	r->b = flow_batch_new(64, collect, r->flows);
	r->c = collector_new(&cfg, r->b);
	return r;
}

static void
run_free(Run *r)
{
	collector_free(r->c);
	flow_batch_free(r->b);
	g_array_unref(r->flows);
	g_free(r);
}

static void
feed(Run *r, GPtrArray *dg, guint from, guint to)
{
	for (guint i = from; i < to; i++) {
		const Dgram *d = dg->pdata[i];
		gsize len;
		const guint8 *p = g_bytes_get_data(d->payload, &len);
		collector_input(r->c, d->addr, d->port, p, len, d->ts_ms);
	}
	flow_batch_flush(r->b);
}

static void
dgram_free(gpointer p)
{
	Dgram *d = p;
	g_bytes_unref(d->payload);
	g_free(d);
}

static GPtrArray *
load_capture(const char *name)
{
	const char *dir = g_getenv("FIXTURES");
	g_autofree char *path = g_build_filename(dir != NULL ? dir : "fixtures", name, NULL);
	g_autoptr(GError) err = NULL;
	g_autoptr(Replay) r = replay_open(path, &err);
	ReplayDatagram d;
	GPtrArray *out = g_ptr_array_new_with_free_func(dgram_free);

	if (r == NULL)
		fail_msg("%s: %s", path, err->message);
	while (replay_next(r, &d, &err)) {
		Dgram *x = g_new0(Dgram, 1);
		memcpy(x->addr, d.addr, 16);
		x->port = d.port;
		x->payload = g_bytes_new(d.payload, d.len);
		x->ts_ms = d.ts_ms;
		g_ptr_array_add(out, x);
	}
	assert_null(err);
	assert_true(out->len > 10);
	return out;
}

typedef struct {
	guint64 records, no_template_sets, seq_lost, seq_resets, templates_active;
	guint32 sampling;
} Sum;

static void
sum_session(const SessionView *v, gpointer data)
{
	Sum *s = data;
	s->records += v->stats->records;
	s->no_template_sets += v->stats->no_template_sets;
	s->seq_lost += v->stats->seq_lost;
	s->seq_resets += v->stats->seq_resets;
	s->templates_active += v->stats->templates_active;
	if (v->has_domain)
		s->sampling = v->stats->sampling;
}

static Sum
sum_of(const Collector *c)
{
	Sum s = {0};
	collector_foreach_session(c, sum_session, &s);
	return s;
}

/* The first datagram at or after `from` that a collector without templates cannot fully
 * decode: splitting there shows what the restored templates are worth. */
static guint
split_point(GPtrArray *dg, guint from)
{
	for (guint k = from; k < dg->len; k++) {
		Run *fresh = run_new();
		feed(fresh, dg, k, k + 1);
		Sum s = sum_of(fresh->c);
		run_free(fresh);
		if (s.no_template_sets > 0)
			return k;
	}
	return from;
}

static void
check_capture(const char *name, gboolean templated)
{
	g_autoptr(GPtrArray) dg = load_capture(name);
	guint n = dg->len;
	guint k = templated ? split_point(dg, n / 2) : n / 2;

	/* the reference: one collector, the whole capture */
	Run *ref = run_new();
	feed(ref, dg, 0, k);
	guint ref_before = ref->flows->len;
	feed(ref, dg, k, n);
	Sum rs = sum_of(ref->c);

	/* stopped at k, saved, restored into a new collector, continued */
	Run *a = run_new();
	feed(a, dg, 0, k);
	g_autoptr(GByteArray) blob = g_byte_array_new();
	collector_state_save(a->c, blob);
	Run *b = run_new();
	CollectorStateLoad res;
	g_autoptr(GError) err = NULL;
	if (!collector_state_load(b->c, blob->data, blob->len, &res, &err))
		fail_msg("%s: load: %s", name, err->message);
	assert_int_equal(res.exporters, 1);
	assert_true(res.domains >= 1);
	assert_int_equal(res.exporters_dropped + res.domains_dropped + res.templates_dropped, 0);
	if (templated)
		assert_true(res.templates >= 1);

	/* save -> load -> save: the same bytes */
	g_autoptr(GByteArray) again = g_byte_array_new();
	collector_state_save(b->c, again);
	assert_int_equal(again->len, blob->len);
	assert_memory_equal(again->data, blob->data, blob->len);

	feed(b, dg, k, n);
	Sum bs = sum_of(b->c);
	assert_int_equal(a->flows->len, ref_before);
	assert_int_equal(b->flows->len, ref->flows->len - ref_before);
	assert_memory_equal(b->flows->data, &g_array_index(ref->flows, Flow, ref_before),
			    (gsize)b->flows->len * sizeof(Flow));
	assert_int_equal(bs.no_template_sets, 0);
	assert_int_equal(bs.seq_lost, rs.seq_lost);
	assert_int_equal(bs.seq_resets, rs.seq_resets);
	assert_int_equal(bs.sampling, rs.sampling);
	assert_int_equal(bs.templates_active, rs.templates_active);

	if (templated) {
		/* without the state the same datagrams lose records: the test can fail */
		Run *fresh = run_new();
		feed(fresh, dg, k, n);
		Sum fs = sum_of(fresh->c);
		assert_true(fs.no_template_sets > 0);
		assert_true(fresh->flows->len < b->flows->len);
		run_free(fresh);
	}

	/* every truncation is refused; the collector is freed without leaks either way */
	for (gsize len = 0; len < blob->len; len++) {
		Run *t = run_new();
		g_autoptr(GError) e = NULL;
		assert_false(collector_state_load(t->c, blob->data, len, &res, &e));
		assert_non_null(e);
		run_free(t);
	}
	/* every single-byte corruption: refused, or loaded and still decoding */
	g_autofree guint8 *bad = g_memdup2(blob->data, blob->len);
	for (gsize i = 0; i < blob->len; i++) {
		for (guint x = 0; x < 3; x++) {
			static const guint8 flips[] = {0x01, 0x80, 0xff};
			bad[i] = blob->data[i] ^ flips[x];
			Run *t = run_new();
			g_autoptr(GError) e = NULL;
			if (collector_state_load(t->c, bad, blob->len, &res, &e))
				feed(t, dg, k, MIN(n, k + 20));
			else
				assert_non_null(e);
			run_free(t);
			bad[i] = blob->data[i];
		}
	}
	run_free(ref);
	run_free(a);
	run_free(b);
}

static void
test_state_v5(void **state)
{
	(void)state;
	check_capture("softflowd-v5.pcap", FALSE);
}

static void
test_state_v9(void **state)
{
	(void)state;
	check_capture("softflowd-v9.pcap", TRUE);
}

static void
test_state_ipfix(void **state)
{
	(void)state;
	check_capture("softflowd-ipfix.pcap", TRUE);
}

static void
test_state_ipfix_sampled(void **state)
{
	(void)state;
	check_capture("softflowd-ipfix-sampled.pcap", TRUE);
}

/* A huge declared count must fail on the bytes that are missing, not allocate for it. */
static void
test_state_huge_counts(void **state)
{
	(void)state;
	static const guint8 blob[] = {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	Run *t = run_new();
	CollectorStateLoad res;
	g_autoptr(GError) err = NULL;
	assert_false(collector_state_load(t->c, blob, sizeof blob, &res, &err));
	assert_non_null(strstr(err->message, "truncated"));
	run_free(t);
}

/* An exporter the allowlist now refuses is dropped (counted), and its domains skipped. */
static gboolean
deny_all(const guint8 addr[16], gpointer data)
{
	(void)addr;
	(void)data;
	return FALSE;
}

static void
test_state_allowlist_drops(void **state)
{
	(void)state;
	g_autoptr(GPtrArray) dg = load_capture("softflowd-ipfix.pcap");
	Run *a = run_new();
	feed(a, dg, 0, dg->len);
	g_autoptr(GByteArray) blob = g_byte_array_new();
	collector_state_save(a->c, blob);

	CollectorConfig cfg;
	collector_config_defaults(&cfg);
	cfg.allow = deny_all;
	g_autoptr(GArray) flows = g_array_new(FALSE, FALSE, sizeof(Flow));
	g_autoptr(FlowBatch) b = flow_batch_new(64, collect, flows);
	g_autoptr(Collector) c = collector_new(&cfg, b);
	CollectorStateLoad res;
	g_autoptr(GError) err = NULL;
	assert_true(collector_state_load(c, blob->data, blob->len, &res, &err));
	assert_int_equal(res.exporters, 0);
	assert_int_equal(res.exporters_dropped, 1);
	assert_true(res.domains_dropped >= 1);
	g_autoptr(GByteArray) empty = g_byte_array_new();
	collector_state_save(c, empty);
	assert_int_equal(empty->len, 12); /* version, next index, no exporters */
	run_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_v5),
	    cmocka_unit_test(test_state_v9),
	    cmocka_unit_test(test_state_ipfix),
	    cmocka_unit_test(test_state_ipfix_sampled),
	    cmocka_unit_test(test_state_huge_counts),
	    cmocka_unit_test(test_state_allowlist_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
