/* Unit tests for the Prometheus rendering (daemon/metrics.c): label escaping (backslash,
 * quote, line feed, invalid UTF-8), and a whole exposition over a real collector fed one
 * NetFlow v5 datagram, an analyzer and sinks with hostile names, read back by a strict
 * little parser of format 0.0.4: every family's HELP and TYPE once and before its samples,
 * its samples together, counters ending in _total and gauges not, valid names, label values
 * that unescape to what was given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics.h"

#include <string.h>

static void
test_escape(void **state)
{
	(void)state;
	g_autoptr(GString) s = g_string_new(NULL);

	metrics_escape_label(s, "a\\b\"c\nd\te");
	assert_string_equal(s->str, "a\\\\b\\\"c\\nd\te");
	g_string_truncate(s, 0);
	metrics_escape_label(s, "\xff"
				"ok");
	assert_true(g_utf8_validate(s->str, -1, NULL));
	assert_non_null(strstr(s->str, "ok"));
	g_string_truncate(s, 0);
	metrics_escape_label(s, NULL);
	assert_string_equal(s->str, "");
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(metrics_name_valid("spamflow_records_total"));
	assert_true(metrics_name_valid("a:b_c9"));
	assert_false(metrics_name_valid("9abc"));
	assert_false(metrics_name_valid("a-b"));
	assert_false(metrics_name_valid(""));
	assert_false(metrics_name_valid(NULL));
}

/* ---- a whole exposition ---- */

static void
noop_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	(void)s;
	(void)ev;
	(void)ctx;
}

static void
free_sink(Sink *s)
{
	g_free(s);
}

static const SinkOps test_ops = {.kind = "json", .write = noop_write, .free = free_sink};

static void
flush_nothing(const Flow *flows, guint n, gpointer data)
{
	(void)flows;
	(void)n;
	(void)data;
}

static void
put16(guint8 *p, guint v)
{
	p[0] = (guint8)(v >> 8);
	p[1] = (guint8)v;
}

static void
put32(guint8 *p, guint32 v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* A label value as written: up to the closing quote, unescaped. Returns past the quote. */
static const char *
read_value(const char *p, GString *out)
{
	for (; *p != '"'; p++) {
		assert_true(*p != '\0' && *p != '\n');
		if (*p == '\\') {
			p++;
			assert_true(*p == '\\' || *p == '"' || *p == 'n');
			g_string_append_c(out, *p == 'n' ? '\n' : *p);
		} else {
			g_string_append_c(out, *p);
		}
	}
	return p + 1;
}

typedef struct {
	GHashTable *types; /* family -> "counter" / "gauge" */
	GHashTable *done;  /* families whose samples ended */
	char *current;
	GPtrArray *sink_names; /* the name labels of spamflow_sink_events_total */
	guint64 records;
} Parsed;

static void
parse(const char *text, Parsed *ps)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	g_autofree char *help_for = NULL;

	for (guint i = 0; lines[i] != NULL; i++) {
		const char *l = lines[i];
		if (l[0] == '\0') {
			assert_null(lines[i + 1]); /* only the end */
			continue;
		}
		if (g_str_has_prefix(l, "# HELP ")) {
			const char *sp = strchr(l + 7, ' ');
			assert_non_null(sp);
			g_free(help_for);
			help_for = g_strndup(l + 7, (gsize)(sp - l - 7));
			assert_true(metrics_name_valid(help_for));
			assert_false(g_hash_table_contains(ps->types, help_for));
			continue;
		}
		if (g_str_has_prefix(l, "# TYPE ")) {
			g_auto(GStrv) w = g_strsplit(l + 7, " ", -1);
			assert_int_equal(g_strv_length(w), 2);
			assert_string_equal(w[0], help_for); /* HELP first, then TYPE */
			assert_true(strcmp(w[1], "counter") == 0 || strcmp(w[1], "gauge") == 0);
			/* counters end in _total, gauges do not */
			assert_int_equal(g_str_has_suffix(w[0], "_total"),
					 strcmp(w[1], "counter") == 0);
			if (ps->current != NULL)
				g_hash_table_add(ps->done, ps->current);
			ps->current = g_strdup(w[0]);
			g_hash_table_insert(ps->types, g_strdup(w[0]), g_strdup(w[1]));
			continue;
		}
		assert_true(l[0] != '#');
		/* a sample of the current family */
		gsize n = strcspn(l, "{ ");
		g_autofree char *name = g_strndup(l, n);
		assert_non_null(ps->current);
		assert_string_equal(name, ps->current);
		assert_false(g_hash_table_contains(ps->done, name));
		const char *p = l + n;
		g_autoptr(GString) sink_name = g_string_new(NULL);
		gboolean has_sink_name = FALSE;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				gsize k = strcspn(p, "=");
				g_autofree char *label = g_strndup(p, k);
				assert_true(metrics_name_valid(label));
				p += k;
				assert_true(p[0] == '=' && p[1] == '"');
				g_autoptr(GString) v = g_string_new(NULL);
				p = read_value(p + 2, v);
				if (strcmp(label, "name") == 0) {
					g_string_assign(sink_name, v->str);
					has_sink_name = TRUE;
				}
				if (*p == ',')
					p++;
			}
			p++;
		}
		assert_true(*p == ' ');
		char *end = NULL;
		double d = g_ascii_strtod(p + 1, &end);
		assert_true(end != p + 1 && *end == '\0' && d >= 0);
		guint64 value = (guint64)d;
		if (strcmp(name, "spamflow_records_total") == 0)
			ps->records = value;
		if (strcmp(name, "spamflow_sink_events_total") == 0 && has_sink_name)
			g_ptr_array_add(ps->sink_names, g_strdup(sink_name->str));
	}
}

static void
test_render(void **state)
{
	(void)state;
	CollectorConfig ccfg;
	AnalyzerConfig acfg;
	g_autoptr(GError) err = NULL;
	guint8 dg[24 + 2 * 48] = {0};
	const guint8 exporter[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
	static const char *const hostile[] = {"/var/log/a \"b\"\\c.jsonl", "line\nbreak",
					      "\xfe\xff"};

	collector_config_defaults(&ccfg);
	FlowBatch *batch = flow_batch_new(64, flush_nothing, NULL);
	Collector *c = collector_new(&ccfg, batch);
	put16(dg, 5);
	put16(dg + 2, 2);
	put32(dg + 4, 100000);
	put32(dg + 8, 1700000000);
	for (guint i = 0; i < 2; i++) {
		guint8 *r = dg + 24 + i * 48;
		put32(r, 0x0a000001);
		put32(r + 4, 0xc6336401 + i);
		put32(r + 16, 3);
		put32(r + 20, 180);
		put32(r + 24, 99000);
		put32(r + 28, 99900);
		put16(r + 34, 25);
		r[38] = 6;
	}
	assert_int_equal(collector_input(c, exporter, 2055, dg, sizeof dg, 1700000000000), 2);
	flow_batch_flush(batch);
	analyzer_config_defaults(&acfg);
	Analyzer *a = analyzer_new(&acfg, &err);
	assert_non_null(a);
	SinkSet *sinks = sink_set_new();
	for (guint i = 0; i < G_N_ELEMENTS(hostile); i++) {
		Sink *s = g_new0(Sink, 1);
		sink_init(s, &test_ops, hostile[i]);
		s->st.events = 7 + i;
		sink_set_add(sinks, s);
	}
	guint64 alerts[REASON_COUNT][ALERT_KIND_COUNT] = {{0}};
	alerts[REASON_SMTP_FANOUT][ALERT_RAISED] = 3;
	HttpStats hs = {.connections = 5, .refused_auth = 2, .render_us = 2000123};
	MetricsSource src = {.collector = c,
			     .analyzer = a,
			     .sinks = sinks,
			     .alerts = (const guint64(*)[ALERT_KIND_COUNT])alerts,
			     .http = &hs,
			     .started_ms = 1700000000000,
			     .now_ms = 1700000005000,
			     .version = "0.1.0\"x"};
	g_autoptr(GString) out = g_string_new(NULL);
	metrics_render(out, &src);

	Parsed ps = {.types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
		     .done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
		     .sink_names = g_ptr_array_new_with_free_func(g_free)};
	parse(out->str, &ps);
	assert_int_equal(ps.records, 2);
	assert_int_equal(ps.sink_names->len, G_N_ELEMENTS(hostile));
	assert_string_equal(g_ptr_array_index(ps.sink_names, 0), hostile[0]);
	assert_string_equal(g_ptr_array_index(ps.sink_names, 1), hostile[1]);
	assert_true(g_utf8_validate(g_ptr_array_index(ps.sink_names, 2), -1, NULL));
	assert_non_null(
	    strstr(out->str, "spamflow_alerts_total{reason=\"smtp-fanout\",event=\"raised\"} 3\n"));
	assert_non_null(strstr(
	    out->str,
	    "spamflow_exporter_records_total{exporter=\"192.0.2.1:2055\",domain=\"0\"} 2\n"));
	assert_non_null(strstr(out->str, "spamflow_http_refused_total{reason=\"auth\"} 2\n"));
	assert_non_null(strstr(out->str, "spamflow_uptime_seconds 5\n"));
	assert_non_null(strstr(out->str, "spamflow_http_render_seconds_total 2.000123\n"));
	assert_non_null(strstr(out->str, "spamflow_build_info{version=\"0.1.0\\\"x\"} 1\n"));
	/* no listener: its families are left out, the socket count says 0 */
	assert_non_null(strstr(out->str, "spamflow_listener_sockets 0\n"));
	assert_null(strstr(out->str, "spamflow_kernel_drops_total"));
	assert_true(g_hash_table_contains(ps.types, "spamflow_offenders"));
	assert_string_equal(g_hash_table_lookup(ps.types, "spamflow_hosts_tracked"), "gauge");
	/* the internal host of the records is never a label */
	assert_null(strstr(out->str, "10.0.0.1"));

	g_hash_table_destroy(ps.types);
	g_hash_table_destroy(ps.done);
	g_free(ps.current);
	g_ptr_array_free(ps.sink_names, TRUE);
	sink_set_free(sinks);
	analyzer_free(a);
	collector_free(c);
	flow_batch_free(batch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
