/* decode_bench: in-memory throughput and memory of the collector and analyzer libraries
 * (issues 6, 12). Decode-only records/s per core from captures (flowgen --pcap; NetFlow v5,
 * v9, IPFIX or sFlow v5, each datagram detected as the daemon does), decode+analyze
 * from the same captures, analyzer flows/s with 100,000 tracked hosts, and RSS against
 * tracked hosts (10k, 100k, 1M; each in a forked child) next to the analyzer's own memory
 * estimate, and port-25 flows/s into fan-out hosts (bots), in exact and estimated mode. Prints one JSON object per measurement on stdout. */
#include "analyzer.h"
#include "collector.h"
#include "replay.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	guint8 addr[16];
	guint16 port;
	gint64 ts_ms;
	guint32 off, len;
} Dg;

typedef struct {
	GArray *dgs;
	GByteArray *data;
	guint64 records; /* per pass, from the first pass */
} Capture;

static double
cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
median(double *v, guint n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* VmRSS or VmHWM from /proc/self/status, in bytes. */
static guint64
proc_status_kb(const char *key)
{
	g_autofree char *text = NULL;
	if (!g_file_get_contents("/proc/self/status", &text, NULL, NULL))
		return 0;
	const char *p = strstr(text, key);
	if (p == NULL)
		return 0;
	return g_ascii_strtoull(p + strlen(key) + 1, NULL, 10) * 1024;
}

static gboolean
capture_load(const char *path, Capture *cap, GError **error)
{
	g_autoptr(Replay) r = replay_open(path, error);
	ReplayDatagram d;

	if (r == NULL)
		return FALSE;
	cap->dgs = g_array_new(FALSE, FALSE, sizeof(Dg));
	cap->data = g_byte_array_new();
	while (replay_next(r, &d, error)) {
		Dg x = {.port = d.port, .ts_ms = d.ts_ms, .off = cap->data->len,
			.len = (guint32)d.len};
		memcpy(x.addr, d.addr, 16);
		g_byte_array_append(cap->data, d.payload, (guint)d.len);
		g_array_append_val(cap->dgs, x);
	}
	return *error == NULL;
}

static void
count_flush(const Flow *flows, guint n, gpointer user_data)
{
	(void)flows;
	*(guint64 *)user_data += n;
}

static void
analyze_flush(const Flow *flows, guint n, gpointer user_data)
{
	analyzer_process(user_data, flows, n);
}

/* One pass over the capture with a fresh collector (so sequence numbers start over);
 * returns CPU seconds. With `an`, every record also goes through the analyzer. */
static double
decode_pass(const Capture *cap, Analyzer *an, guint64 *records)
{
	guint64 n = 0;
	g_autoptr(FlowBatch) b =
	    an != NULL ? flow_batch_new(1024, analyze_flush, an) : flow_batch_new(1024, count_flush, &n);
	CollectorConfig cc;
	collector_config_defaults(&cc);
	g_autoptr(Collector) c = collector_new(&cc, b);
	const Dg *dg = (const Dg *)(void *)cap->dgs->data;

	double t0 = cpu_s();
	for (guint i = 0; i < cap->dgs->len; i++) {
		collector_input(c, dg[i].addr, dg[i].port, cap->data->data + dg[i].off, dg[i].len,
				dg[i].ts_ms);
		if (i % 64 == 63) /* the listener flushes once per receive batch */
			flow_batch_flush(b);
	}
	flow_batch_flush(b);
	double t = cpu_s() - t0;
	*records = collector_totals(c)->records;
	return t;
}

static void
bench_capture(const char *path, guint passes)
{
	g_autoptr(GError) err = NULL;
	Capture cap = {0};
	double dec[64], ana[64];
	guint64 recs = 0;
	AnalyzerStats st = {0};

	if (!capture_load(path, &cap, &err)) {
		g_printerr("decode_bench: %s: %s\n", path, err ? err->message : "empty");
		exit(1);
	}
	passes = MIN(passes, G_N_ELEMENTS(dec));
	for (guint p = 0; p < passes; p++)
		dec[p] = decode_pass(&cap, NULL, &recs);
	for (guint p = 0; p < passes; p++) {
		AnalyzerConfig acfg;
		analyzer_config_defaults(&acfg);
		g_autoptr(Analyzer) an = analyzer_new(&acfg, &err);
		ana[p] = decode_pass(&cap, an, &recs);
		analyzer_get_stats(an, &st);
	}
	double md = median(dec, passes), ma = median(ana, passes);
	printf("{\"bench\": \"decode\", \"capture\": \"%s\", \"datagrams\": %u, \"records\": %" G_GUINT64_FORMAT
	       ", \"passes\": %u, \"decode_rec_per_s\": %.0f, \"decode_min\": %.0f, \"decode_max\": %.0f"
	       ", \"decode_ns_per_rec\": %.1f, \"decode_analyze_rec_per_s\": %.0f"
	       ", \"decode_analyze_ns_per_rec\": %.1f, \"flows_relevant\": %" G_GUINT64_FORMAT
	       ", \"hosts_created\": %" G_GUINT64_FORMAT ", \"hosts_estimated\": %" G_GUINT64_FORMAT
	       ", \"events_raised\": %" G_GUINT64_FORMAT "}\n",
	       path, cap.dgs->len, recs, passes, recs / md, recs / dec[passes - 1], recs / dec[0],
	       md * 1e9 / recs, recs / ma, ma * 1e9 / recs, st.flows_relevant, st.hosts_created,
	       st.hosts_estimated, st.events[ALERT_RAISED]);
	fflush(stdout);
	g_array_unref(cap.dgs);
	g_byte_array_unref(cap.data);
}

/* A port-25 flow from internal host `h` (10.x.y.z) to external destination `d`. */
static void
make_flow(Flow *f, guint32 h, guint32 d, gint64 t_ms)
{
	guint8 s4[4] = {10, (guint8)(h >> 16), (guint8)(h >> 8), (guint8)h};
	guint8 d4[4] = {(guint8)(23 + (d >> 24) % 60), (guint8)(d >> 16), (guint8)(d >> 8),
			(guint8)d};
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

/* The timed analyzer calls of bench_analyzer() and bench_fanout(), apart from their warm-up
 * ones, so that callgrind can count just them: --toggle-collect=timed_process. */
static void __attribute__((noinline))
timed_process(Analyzer *an, const Flow *flows, guint n)
{
	analyzer_process(an, flows, n);
}

/* Analyzer throughput: `hosts` tracked hosts, each seen once first; then `flows` port-25
 * flows spread uniformly over them, each host cycling through `dests` destinations. */
static void
bench_analyzer(guint hosts, guint64 flows, guint dests)
{
	g_autoptr(GError) err = NULL;
	AnalyzerConfig acfg;
	analyzer_config_defaults(&acfg);
	g_autoptr(Analyzer) an = analyzer_new(&acfg, &err);
	gint64 t = G_GINT64_CONSTANT(1700000000000);
	Flow batch[1024];
	guint n = 0;
	guint64 rng = 88172645463325252ULL;

	for (guint h = 0; h < hosts; h++) {
		make_flow(&batch[n++], h, h * 7919u, t);
		if (n == G_N_ELEMENTS(batch)) {
			analyzer_process(an, batch, n);
			n = 0;
		}
	}
	analyzer_process(an, batch, n);
	n = 0;
	double t0 = cpu_s();
	for (guint64 i = 0; i < flows; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		guint32 h = (guint32)(rng % hosts);
		guint32 d = h * 7919u + (guint32)((rng >> 40) % dests);
		/* 1 M flows per simulated second: slices roll over as they would live */
		make_flow(&batch[n++], h, d, t + (gint64)(i / 1000));
		if (n == G_N_ELEMENTS(batch)) {
			timed_process(an, batch, n);
			n = 0;
		}
	}
	timed_process(an, batch, n);
	double dt = cpu_s() - t0;
	AnalyzerStats st;
	analyzer_get_stats(an, &st);
	printf("{\"bench\": \"analyzer\", \"hosts\": %u, \"dests_per_host\": %u, \"flows\": %" G_GUINT64_FORMAT
	       ", \"flows_per_s\": %.0f, \"ns_per_flow\": %.1f, \"hosts_tracked\": %" G_GUINT64_FORMAT
	       ", \"events_raised\": %" G_GUINT64_FORMAT "}\n",
	       hosts, dests, flows, flows / dt, dt * 1e9 / flows, st.hosts_tracked,
	       st.events[ALERT_RAISED]);
	fflush(stdout);
}

/* Fan-out hosts (the bot-heavy mix, issue 14): `bots` internal hosts each sending port-25
 * flows to many distinct external destinations, the case where the window's distinct count
 * is the analyzer's cost. Each flow picks a random bot; its destination is a fresh random
 * address (`pool` 0: every window goes estimated past exact_cap) or one of the bot's `pool`
 * random addresses (exact_cap raised above `pool`: exact mode, destinations re-sighted across
 * slices).
 * First `flows` flows spread over one long window (60 one-minute slices by default) fill the
 * windows (not timed), so every measured flow lands in a window holding a full hour of
 * slices; then `flows` timed flows at `rate` flows/s per bot (simulated time). What a window
 * does once per slice (expire a slice, rebuild its merged registers) is spread over the
 * flows of that slice, so a lower rate shows more of it per flow. */
static void
bench_fanout(guint bots, guint64 flows, guint pool, guint rate)
{
	g_autoptr(GError) err = NULL;
	AnalyzerConfig acfg;
	analyzer_config_defaults(&acfg);
	/* the exact-mode run holds `pool` (3,000) destinations a window exactly, as it did when
	 * exact_cap's default was 4,096 */
	acfg.exact_cap = MAX(acfg.exact_cap, pool + 1);
	g_autoptr(Analyzer) an = analyzer_new(&acfg, &err);
	gint64 t = G_GINT64_CONSTANT(1700000000000);
	gint64 span_ms = acfg.slice_ms * acfg.span_slices[1];
	Flow batch[1024];
	guint n = 0;
	guint64 rng = 88172645463325252ULL;
	double t0 = 0;

	for (guint64 i = 0; i < 2 * flows; i++) {
		gint64 at = i < flows ? t + (gint64)(i * span_ms / flows)
				      : t + span_ms + (gint64)((i - flows) * 1000 / ((guint64)rate * bots));
		if (i == flows) {
			analyzer_process(an, batch, n);
			n = 0;
			t0 = cpu_s();
		}
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		guint32 h = (guint32)(rng % bots);
		guint32 r = (guint32)(rng >> 32);
		/* a pool address: bot h's k-th, scattered by a multiplicative hash */
		guint32 d = pool == 0 ? r : (h * 65537u + r % pool) * 2654435761u;
		make_flow(&batch[n++], 0x10000u + h, d, at);
		if (n == G_N_ELEMENTS(batch)) {
			if (i < flows)
				analyzer_process(an, batch, n);
			else
				timed_process(an, batch, n);
			n = 0;
		}
	}
	timed_process(an, batch, n);
	double dt = cpu_s() - t0;
	AnalyzerStats st;
	analyzer_get_stats(an, &st);
	printf("{\"bench\": \"fanout\", \"mode\": \"%s\", \"bots\": %u, \"pool\": %u, \"rate_per_bot\": %u, \"flows\": %" G_GUINT64_FORMAT
	       ", \"flows_per_s\": %.0f, \"ns_per_flow\": %.1f, \"hosts_tracked\": %" G_GUINT64_FORMAT
	       ", \"hosts_estimated\": %" G_GUINT64_FORMAT ", \"events_raised\": %" G_GUINT64_FORMAT
	       ", \"mem_bytes\": %" G_GUINT64_FORMAT "}\n",
	       pool == 0 ? "estimated" : "exact", bots, pool, rate, flows, flows / dt, dt * 1e9 / flows,
	       st.hosts_tracked, st.hosts_estimated, st.events[ALERT_RAISED], st.mem_bytes);
	fflush(stdout);
}

/* RSS against tracked hosts, in a child so each size starts from a clean heap. */
static void
bench_memory_child(guint hosts, guint dests)
{
	g_autoptr(GError) err = NULL;
	AnalyzerConfig acfg;
	analyzer_config_defaults(&acfg);
	acfg.history_len = 16;
	g_autoptr(Analyzer) an = analyzer_new(&acfg, &err);
	gint64 t = G_GINT64_CONSTANT(1700000000000);
	Flow *batch = g_new(Flow, 1024);
	guint n = 0;

	struct mallinfo2 m0 = mallinfo2();
	guint64 rss0 = proc_status_kb("VmRSS:");
	for (guint d = 0; d < dests; d++) {
		for (guint h = 0; h < hosts; h++) {
			make_flow(&batch[n++], h, h * 7919u + d, t);
			if (n == 1024) {
				analyzer_process(an, batch, n);
				n = 0;
			}
		}
	}
	analyzer_process(an, batch, n);
	struct mallinfo2 m1 = mallinfo2();
	guint64 rss1 = proc_status_kb("VmRSS:");
	AnalyzerStats st;
	analyzer_get_stats(an, &st);
	double heap = (double)(m1.uordblks + m1.hblkhd) - (double)(m0.uordblks + m0.hblkhd);
	printf("{\"bench\": \"memory\", \"hosts\": %u, \"dests_per_host\": %u, \"hosts_tracked\": %" G_GUINT64_FORMAT
	       ", \"rss_delta\": %" G_GUINT64_FORMAT ", \"rss_per_host\": %.1f, \"heap_delta\": %.0f"
	       ", \"heap_per_host\": %.1f, \"estimate_bytes\": %" G_GUINT64_FORMAT
	       ", \"estimate_per_host\": %.1f, \"host_overhead\": %" G_GSIZE_FORMAT ", \"vmrss\": %" G_GUINT64_FORMAT
	       "}\n",
	       hosts, dests, st.hosts_tracked, rss1 - rss0, (double)(rss1 - rss0) / hosts, heap,
	       heap / hosts, st.mem_bytes, (double)st.mem_bytes / hosts, analyzer_host_overhead(),
	       rss1);
	fflush(stdout);
	g_free(batch);
}

/* Each size in a fresh process (re-executed), so no heap left by an earlier run counts. */
static void
bench_memory(guint hosts, guint dests)
{
	g_autofree char *h = g_strdup_printf("%u", hosts);
	g_autofree char *d = g_strdup_printf("%u", dests);
	char *argv[] = {"decode_bench", "--memory-child", h, "--dests", d, NULL};

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
}

int
main(int argc, char **argv)
{
	gint passes = 5, dests = 4, hosts = 100000, bots = 32, pool = 3000, bot_rate = 500;
	gboolean no_fanout = FALSE;
	g_autofree char *only = NULL;
	gint64 flows = 5000000;
	gboolean quick = FALSE, no_memory = FALSE;
	gint memory_child = 0;
	g_auto(GStrv) captures = NULL;
	const GOptionEntry entries[] = {
	    {"passes", 'p', 0, G_OPTION_ARG_INT, &passes, "Passes over each capture, default 5",
	     "N"},
	    {"flows", 0, 0, G_OPTION_ARG_INT64, &flows,
	     "Flows for the analyzer throughput run, default 5000000", "N"},
	    {"dests", 0, 0, G_OPTION_ARG_INT, &dests, "Destinations per host, default 4", "N"},
	    {"hosts", 0, 0, G_OPTION_ARG_INT, &hosts,
	     "Tracked hosts for the analyzer throughput run, default 100000", "N"},
	    {"bots", 0, 0, G_OPTION_ARG_INT, &bots,
	     "Fan-out hosts for the bot-heavy runs, default 32", "N"},
	    {"pool", 0, 0, G_OPTION_ARG_INT, &pool,
	     "Destinations per fan-out host in the exact-mode run (exact_cap raised above it), "
	     "default 3000",
	     "N"},
	    {"only", 0, 0, G_OPTION_ARG_STRING, &only,
	     "Run only this analyzer measurement: hosts, exact or estimated (for profiling; no "
	     "captures, no memory runs)",
	     "NAME"},
	    {"bot-rate", 0, 0, G_OPTION_ARG_INT, &bot_rate,
	     "Flows per second per fan-out host in the timed part (simulated time), default 500",
	     "N"},
	    {"no-fanout", 0, 0, G_OPTION_ARG_NONE, &no_fanout, "Skip the bot-heavy runs", NULL},
	    {"quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Memory only up to 100k hosts", NULL},
	    {"no-memory", 0, 0, G_OPTION_ARG_NONE, &no_memory, "Skip the RSS runs", NULL},
	    {"memory-child", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &memory_child,
	     "(internal) one RSS run with this many hosts", "N"},
	    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &captures, NULL, NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("[CAPTURE.pcap...]");
	g_autoptr(GError) err = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || passes < 1 || dests < 1 ||
	    hosts < 1 || bots < 1 || pool < 1 || bot_rate < 1 || flows < 1) {
		g_printerr("decode_bench: %s\n", err ? err->message : "bad option value");
		return 2;
	}
	if (memory_child > 0) {
		bench_memory_child((guint)memory_child, (guint)dests);
		return 0;
	}
	if (only != NULL) {
		if (g_str_equal(only, "hosts"))
			bench_analyzer((guint)hosts, (guint64)flows, (guint)dests);
		else if (g_str_equal(only, "exact"))
			bench_fanout((guint)bots, (guint64)flows, (guint)pool, (guint)bot_rate);
		else if (g_str_equal(only, "estimated"))
			bench_fanout((guint)bots, (guint64)flows, 0, (guint)bot_rate);
		else {
			g_printerr("decode_bench: --only: hosts, exact or estimated\n");
			return 2;
		}
		return 0;
	}
	for (guint i = 0; captures != NULL && captures[i] != NULL; i++)
		bench_capture(captures[i], (guint)passes);
	bench_analyzer((guint)hosts, (guint64)flows, (guint)dests);
	if (!no_fanout) {
		bench_fanout((guint)bots, (guint64)flows, (guint)pool, (guint)bot_rate);
		bench_fanout((guint)bots, (guint64)flows, 0, (guint)bot_rate);
	}
	if (!no_memory) {
		const guint sizes[] = {10000, 100000, 1000000};
		for (guint i = 0; i < G_N_ELEMENTS(sizes) - (quick ? 1 : 0); i++)
			bench_memory(sizes[i], (guint)dests);
	}
	return 0;
}
