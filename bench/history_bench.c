/* The history store at scale (issue 16, doc/history.md): with N tracked hosts of which a
 * share reaches a quarter of a threshold, the main loop's cost at a slice's end (the walk of
 * every host, analyzer_foreach_reading, and encoding + queueing the readings), the bytes per
 * recorded host per slice and per day on disk, the writer's rate, and a host's query over
 * the stored period. Prints one JSON object per measurement.
 *   history_bench [--hosts 1000000] [--share 0.01] [--hours 24] [--dir DIR] */
#include "analyzer.h"
#include "history.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

static void
make_flow(Flow *f, guint32 h, guint32 d, gint64 t_ms)
{
	guint8 s4[4] = {10, (guint8)(h >> 16), (guint8)(h >> 8), (guint8)h};
	guint8 d4[4] = {(guint8)(23 + (d >> 24) % 60), (guint8)(d >> 16), (guint8)(d >> 8), (guint8)d};
	memset(f, 0, sizeof *f);
	f->recv_ms = t_ms;
	flow_addr_set_v4(f->src, s4);
	flow_addr_set_v4(f->dst, d4);
	f->sport = (guint16)(40000 + (h + d) % 20000);
	f->dport = 25;
	f->proto = 6;
	f->tcp_flags = 0x1b;
	f->packets = 12;
	f->bytes = 4000;
	f->sampling = 1;
	f->version = 9;
	f->has = FLOW_HAS_TCP_FLAGS | FLOW_HAS_PACKETS | FLOW_HAS_BYTES;
}

typedef struct {
	GArray *hosts;
} Collect;

static void
collect(const AnalyzerReading *r, gpointer data)
{
	Collect *c = data;
	HsegHost h;
	memset(&h, 0, sizeof h);
	memcpy(h.host, r->addr, 16);
	h.flows = r->flows;
	h.attempts = r->attempts;
	h.failed = r->failed;
	h.sampled = r->sampled;
	h.reason_mask = r->reason_mask;
	for (guint k = 0; k < REASON_COUNT; k++)
		for (guint w = 0; w < 2; w++) {
			h.reason[k].value[w] = r->value[k][w];
			h.reason[k].threshold[w] = r->threshold[k][w];
		}
	g_array_append_val(c->hosts, h);
}

static gboolean
count_slice(gint64 t, const HsegHost *h, gpointer data)
{
	(void)t;
	(void)h;
	(*(guint *)data)++;
	return TRUE;
}

static guint64
dir_bytes(const char *dir)
{
	guint64 n = 0;
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(dir, name, NULL);
		GStatBuf st;
		if (g_stat(p, &st) == 0)
			n += (guint64)st.st_size;
	}
	return n;
}

int
main(int argc, char **argv)
{
	gint hosts = 1000000, hours = 24;
	gdouble share = 0.01;
	gboolean cold = FALSE;
	g_autofree char *dir = NULL;
	const GOptionEntry entries[] = {
	    {"hosts", 0, 0, G_OPTION_ARG_INT, &hosts, "tracked hosts (1000000)", "N"},
	    {"share", 0, 0, G_OPTION_ARG_DOUBLE, &share,
	     "share of them at a quarter of a threshold: recorded each slice (0.01)", "F"},
	    {"hours", 0, 0, G_OPTION_ARG_INT, &hours, "hours of readings to store (24)", "N"},
	    {"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "store directory (a new temporary one)", "DIR"},
	    {"cold", 0, 0, G_OPTION_ARG_NONE, &cold,
	     "drop the page cache (root: /proc/sys/vm/drop_caches) before each query", NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
	g_autoptr(GError) err = NULL;
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || hosts < 1 || share < 0 || share > 1) {
		g_printerr("history_bench: %s\n", err != NULL ? err->message : "bad arguments");
		return 2;
	}
	if (dir == NULL)
		dir = g_dir_make_tmp("history-bench-XXXXXX", NULL);
	guint recorded = (guint)(hosts * share + 0.5);

	/* the analyzer: every host one port-25 flow; the recorded ones 13 destinations, a
	 * quarter of smtp-fanout's 50 */
	AnalyzerConfig acfg;
	analyzer_config_defaults(&acfg);
	acfg.max_hosts = (guint)hosts + 16;
	acfg.mem_cap = 64ull << 30;
	g_autoptr(Analyzer) an = analyzer_new(&acfg, &err);
	gint64 t = G_GINT64_CONSTANT(1700000000000) / 60000 * 60000;
	Flow batch[1024];
	guint n = 0;
	guint stride = recorded > 0 ? (guint)hosts / recorded : G_MAXUINT;
	for (guint h = 0; h < (guint)hosts; h++) {
		guint dests = recorded > 0 && h % stride == 0 && h / stride < recorded ? 13 : 1;
		for (guint d = 0; d < dests; d++) {
			make_flow(&batch[n++], h, h * 7919u + d, t + 1000);
			if (n == G_N_ELEMENTS(batch)) {
				analyzer_process(an, batch, n);
				n = 0;
			}
		}
	}
	analyzer_process(an, batch, n);
	AnalyzerStats ast;
	analyzer_get_stats(an, &ast);
	Collect c = {.hosts = g_array_new(FALSE, FALSE, sizeof(HsegHost))};
	/* the first walk visits every host (as at start, or after a reload or a restore); the
	 * next ones only the candidates the flows marked */
	double t0 = now_s();
	analyzer_foreach_reading(an, ANALYZER_READING_SHARE, collect, &c);
	double walk_full = now_s() - t0;
	g_array_set_size(c.hosts, 0);
	t0 = now_s();
	analyzer_foreach_reading(an, ANALYZER_READING_SHARE, collect, &c);
	double walk = now_s() - t0;

	HistoryConfig hc = {.dir = dir, .queue = 10000000, .fsync = HISTORY_FSYNC_SEGMENT};
	History *hist = history_open(&hc, &err);
	if (hist == NULL) {
		g_printerr("history_bench: %s\n", err->message);
		return 1;
	}
	g_autoptr(GArray) copy = g_array_copy(c.hosts);
	t0 = now_s();
	history_add_slice(hist, t, (HsegHost *)(void *)copy->data, copy->len);
	double enqueue = now_s() - t0;
	history_sync(hist);
	double one_slice = now_s() - t0;
	printf("{\"bench\": \"slice\", \"hosts_tracked\": %" G_GUINT64_FORMAT ", \"recorded\": %u, "
	       "\"walk_full_ms\": %.1f, \"walk_ms\": %.1f, \"encode_queue_ms\": %.1f, "
	       "\"written_ms\": %.1f}\n",
	       ast.hosts_tracked, c.hosts->len, walk_full * 1e3, walk * 1e3, enqueue * 1e3,
	       one_slice * 1e3);
	fflush(stdout);

	/* hours of readings: the recorded hosts every slice, their values moving */
	HsegHost *hs = (HsegHost *)(void *)c.hosts->data;
	guint slices = (guint)hours * 60;
	double cpu_enqueue = 0;
	t0 = now_s();
	for (guint s = 1; s < slices; s++) {
		for (guint i = 0; i < c.hosts->len; i++) {
			hs[i].reason[REASON_SMTP_FANOUT].value[0] = (s + i) % 40;
			hs[i].reason[REASON_SMTP_FANOUT].value[1] = (s * 3 + i) % 120;
			hs[i].flows = (s + i) % 60;
		}
		g_array_set_size(copy, 0);
		g_array_append_vals(copy, c.hosts->data, c.hosts->len);
		double e0 = now_s();
		history_add_slice(hist, t + (gint64)s * 60000, (HsegHost *)(void *)copy->data,
				  copy->len);
		cpu_enqueue += now_s() - e0;
		if (s % 60 == 0)
			history_sync(hist); /* keep the queue bounded, as a live slice a minute would */
	}
	history_sync(hist);
	double fill = now_s() - t0;
	HistoryStats st;
	history_get_stats(hist, &st);
	guint64 bytes = dir_bytes(dir);
	double per_reading = (double)st.bytes_written / ((double)slices * MAX(c.hosts->len, 1u));
	printf("{\"bench\": \"fill\", \"hours\": %d, \"recorded\": %u, \"records\": %" G_GUINT64_FORMAT
	       ", \"bytes_written\": %" G_GUINT64_FORMAT ", \"bytes_on_disk\": %" G_GUINT64_FORMAT
	       ", \"bytes_per_reading\": %.1f, \"bytes_per_recorded_host_day\": %.0f, "
	       "\"bytes_per_day\": %.0f, \"bytes_per_tracked_host_day\": %.1f, "
	       "\"write_MBps_at_one_slice_a_minute\": %.3f, \"writer_MBps_flat_out\": %.1f, "
	       "\"main_loop_encode_ms_per_slice\": %.2f}\n",
	       hours, c.hosts->len, st.records_written, st.bytes_written, bytes, per_reading,
	       per_reading * 1440, per_reading * 1440 * c.hosts->len,
	       per_reading * 1440 * c.hosts->len / MAX(ast.hosts_tracked, 1),
	       per_reading * c.hosts->len / 60 / 1e6, st.bytes_written / fill / 1e6,
	       cpu_enqueue * 1e3 / slices);
	fflush(stdout);

	/* a host's query over the whole period, and the last hour; a host never recorded */
	for (guint k = 0; k < 3; k++) {
		HistoryQuery q = {.since_ms = k == 1 ? t + (gint64)(slices - 60) * 60000 : G_MININT64,
				  .until_ms = G_MAXINT64,
				  .has_host = TRUE,
				  .reason = -1,
				  .types = 1u << HSEG_REC_SLICE | 1u << HSEG_REC_EVENT,
				  .max_us = 60 * G_USEC_PER_SEC,
				  .max_bytes = G_MAXUINT64};
		if (k < 2 && c.hosts->len > 0)
			memcpy(q.host, hs[c.hosts->len / 2].host, 16);
		else
			flow_addr_set_v4(q.host, (const guint8[4]){172, 31, 255, 254});
		HistoryStats before, after;
		if (cold) {
			sync();
			if (!g_file_set_contents("/proc/sys/vm/drop_caches", "3", 1, NULL))
				g_printerr("history_bench: --cold: cannot drop the page cache\n");
		}
		history_get_stats(hist, &before);
		guint got = 0;
		gboolean trunc;
		double q0 = now_s();
		history_query(hist, &q, count_slice, NULL, &got, &trunc);
		double dq = now_s() - q0;
		history_get_stats(hist, &after);
		printf("{\"bench\": \"query\", \"cache\": \"%s\", \"what\": \"%s\", \"points\": %u, "
		       "\"ms\": %.1f, \"bytes_read\": %" G_GUINT64_FORMAT ", \"truncated\": %s}\n",
		       cold ? "cold" : "warm",
		       k == 0 ? "recorded host, whole period" : k == 1 ? "recorded host, last hour"
								: "host never recorded, whole period",
		       got, dq * 1e3, after.query_bytes_read - before.query_bytes_read,
		       trunc ? "true" : "false");
	}
	/* the start-up index of the period */
	history_free(hist);
	t0 = now_s();
	hist = history_open(&hc, &err);
	double open = now_s() - t0;
	history_get_stats(hist, &st);
	printf("{\"bench\": \"restart\", \"segments\": %" G_GUINT64_FORMAT ", \"index_ms\": %.1f}\n",
	       st.segments, open * 1e3);
	history_free(hist);
	g_array_unref(c.hosts);
	return 0;
}
