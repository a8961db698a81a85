/* spamflowd: the daemon. Glue only: options and config in, then either live mode (UDP
 * listeners on the glib main loop, periodic expiry, analyzer ticks and counter lines, clean
 * exit on SIGINT/SIGTERM) or replay mode (capture files through the same collector and
 * analyzer, then a summary). Decoding, analysis and rendering live in the libraries. */
#include "analyzer.h"
#include "collector.h"
#include "config.h"
#include "flowsout.h"
#include "listener.h"
#include "replay.h"
#include "report.h"
#include "sink.h"
#include "sink_json.h"
#include "spamflow-config.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>

#define FLOW_BATCH_CAP 1024
#define EXPIRE_INTERVAL_S 60

typedef struct {
	char *config;
	char **listen;
	gboolean replay;
	char *flows;
	char *alerts;
	gboolean json;
	gboolean print_config;
	gboolean version;
	gint stats_interval; /* -1: from the config */
	char **files;
} Options;

typedef struct {
	Config *cfg;
	const Options *opt;
	Collector *collector;
	FlowBatch *batch;
	FlowsOut *flows;
	Analyzer *analyzer;
	SinkSet *sinks;
	GHashTable *exporter_names; /* exporter index -> "addr" text, for alert output */
	Listener *listener;
	GMainLoop *loop;
} App;

static GLogLevelFlags log_mask =
    G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE;

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	if ((level & log_mask & G_LOG_LEVEL_MASK) == 0)
		return G_LOG_WRITER_HANDLED;
	return g_log_writer_default(level, fields, n, user_data);
}

static void
set_log_level(const Config *cfg)
{
	log_mask = config_log_mask(cfg);
	/* g_log_writer_default() drops info and debug unless told otherwise. */
	g_log_set_debug_enabled((log_mask & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)) != 0);
}

static gboolean
parse_options(Options *opt, int *argc, char ***argv, GError **error)
{
	const GOptionEntry entries[] = {
	    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &opt->config,
	     "Configuration file (INI); every key has a default", "FILE"},
	    {"listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &opt->listen,
	     "Receive on ADDR:PORT ([v6]:port for IPv6); repeatable, replaces the config's "
	     "list",
	     "ADDR:PORT"},
	    {"replay", 0, 0, G_OPTION_ARG_NONE, &opt->replay,
	     "Read the capture FILEs (pcap/pcapng) instead of listening", NULL},
	    {"flows", 0, 0, G_OPTION_ARG_FILENAME, &opt->flows,
	     "Write every decoded flow record as CSV to FILE ('-' = stdout)", "FILE|-"},
	    {"alerts", 0, 0, G_OPTION_ARG_FILENAME, &opt->alerts,
	     "Append every alert event as a JSON line to FILE ('-' = stdout)", "FILE|-"},
	    {"json", 0, 0, G_OPTION_ARG_NONE, &opt->json, "Print the summary as one JSON document",
	     NULL},
	    {"print-config", 0, 0, G_OPTION_ARG_NONE, &opt->print_config,
	     "Print the effective configuration (every key, with its help) and exit", NULL},
	    {"stats-interval", 0, 0, G_OPTION_ARG_INT, &opt->stats_interval,
	     "Live mode: log counters every SECONDS (default 60, 0 = off)", "SECONDS"},
	    {"version", 'V', 0, G_OPTION_ARG_NONE, &opt->version, "Print the version", NULL},
	    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt->files, NULL, NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("[--replay FILE...]");

	g_option_context_set_summary(ctx, "Collects NetFlow v5/v9 and IPFIX exports.");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, argc, argv, error))
		return FALSE;
	if (opt->stats_interval < -1) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--stats-interval: %d is negative", opt->stats_interval);
		return FALSE;
	}
	if (opt->replay && (opt->files == NULL || opt->files[0] == NULL)) {
		g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
				    "--replay needs at least one capture file");
		return FALSE;
	}
	if (!opt->replay && opt->files != NULL && opt->files[0] != NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "unexpected argument '%s' (capture files need --replay)",
			    opt->files[0]);
		return FALSE;
	}
	return TRUE;
}

static void
options_clear(Options *opt)
{
	g_free(opt->config);
	g_strfreev(opt->listen);
	g_free(opt->flows);
	g_free(opt->alerts);
	g_strfreev(opt->files);
}

/* Command-line flags override the file. */
static void
apply_options(Config *cfg, const Options *opt)
{
	if (opt->listen != NULL && opt->listen[0] != NULL) {
		g_strfreev(cfg->listen);
		cfg->listen = g_strdupv(opt->listen);
	}
	if (opt->stats_interval >= 0)
		cfg->stats_interval_s = (guint)opt->stats_interval;
}

/* Reports go to stdout unless the flow CSV already does. */
static FILE *
report_stream(const App *app, gboolean prefer_stderr)
{
	if (prefer_stderr || g_strcmp0(app->opt->flows, "-") == 0 ||
	    g_strcmp0(app->opt->alerts, "-") == 0)
		return stderr;
	return stdout;
}

static void
print_report(const App *app, const ReplayStats *replay, FILE *text_fp)
{
	g_autoptr(GString) s = g_string_new(NULL);
	AnalyzerStats an;
	ReportExtra x = {.replay = replay,
			 .listener = app->listener != NULL ? listener_stats(app->listener) : NULL,
			 .analyzer = &an,
			 .sinks = app->sinks};

	analyzer_get_stats(app->analyzer, &an);
	if (app->opt->json) {
		report_json(s, app->collector, &x);
		fputs(s->str, report_stream(app, FALSE));
	} else {
		report_text(s, app->collector, &x);
		fputs(s->str, text_fp);
	}
	fflush(stdout);
}

static const char *
exporter_name(guint32 index, gpointer user_data)
{
	App *app = user_data;
	const char *name = g_hash_table_lookup(app->exporter_names, GUINT_TO_POINTER(index));
	guint8 addr[16];
	char buf[64];

	if (name != NULL)
		return name;
	if (!collector_exporter_addr(app->collector, index, addr, NULL))
		return NULL;
	char *copy = g_strdup(flow_addr_str(addr, buf, sizeof buf));
	g_hash_table_insert(app->exporter_names, GUINT_TO_POINTER(index), copy);
	return copy;
}

/* Every alert event: one log line a person can read, and the JSON line for tools. */
static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	App *app = user_data;
	char host[64], peer[64];
	const AlertWindow *sw = &ev->window[WINDOW_SHORT], *lw = &ev->window[WINDOW_LONG];

	flow_addr_str(ev->host, host, sizeof host);
	g_message("alert %s %s host=%s%s%s severity=%s short=%u/%u%s long=%u/%u%s "
		  "attempts=%u failed=%.0f%%%s",
		  alert_kind_name(ev->event), alert_reason_name(ev->reason), host,
		  ev->has_peer ? " target=" : "",
		  ev->has_peer ? flow_addr_str(ev->peer, peer, sizeof peer) : "",
		  alert_severity_name(ev->severity), sw->value, sw->threshold,
		  sw->estimated ? "~" : "", lw->value, lw->threshold, lw->estimated ? "~" : "",
		  ev->attempts, ev->failed_share * 100,
		  ev->lower_bound ? " (sampled: counts are lower bounds)" : "");
	SinkCtx ctx = {.exporter_name = exporter_name, .user_data = app};
	sink_set_write(app->sinks, ev, &ctx);
}

/* Each batch of decoded records: to the --flows CSV, then through the analyzer. */
static void
on_flows(const Flow *flows, guint n, gpointer user_data)
{
	App *app = user_data;

	if (app->flows != NULL)
		flowsout_write(flows, n, app->flows);
	analyzer_process(app->analyzer, flows, n);
}

static gboolean
app_init(App *app, Config *cfg, const Options *opt, gboolean live, GError **error)
{
	AnalyzerConfig acfg = *config_analyzer(cfg);

	app->cfg = cfg;
	app->opt = opt;
	if (opt->flows != NULL) {
		app->flows = flowsout_new(opt->flows, live, error);
		if (app->flows == NULL)
			return FALSE;
	}
	app->sinks = sink_set_new();
	if (opt->alerts != NULL) {
		Sink *json = sink_json_new(opt->alerts, error);
		if (json == NULL)
			return FALSE;
		sink_set_add(app->sinks, json);
	}
	acfg.alert_fn = on_alert;
	acfg.alert_data = app;
	app->analyzer = analyzer_new(&acfg, error);
	if (app->analyzer == NULL)
		return FALSE;
	app->exporter_names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	app->batch = flow_batch_new(FLOW_BATCH_CAP, on_flows, app);
	app->collector = collector_new(&cfg->collector, app->batch);
	if (app->flows != NULL)
		flowsout_set_collector(app->flows, app->collector);
	return TRUE;
}

/* FALSE when the flow CSV could not be written completely. */
static gboolean
app_finish(App *app)
{
	g_autoptr(GError) err = NULL;
	gboolean ok = TRUE;

	if (app->flows != NULL && !flowsout_close(app->flows, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		ok = FALSE;
	}
	return ok;
}

static void
app_clear(App *app)
{
	g_clear_pointer(&app->listener, listener_free);
	g_clear_pointer(&app->collector, collector_free);
	g_clear_pointer(&app->batch, flow_batch_free);
	g_clear_pointer(&app->flows, flowsout_free);
	g_clear_pointer(&app->analyzer, analyzer_free);
	g_clear_pointer(&app->sinks, sink_set_free);
	g_clear_pointer(&app->exporter_names, g_hash_table_unref);
	g_clear_pointer(&app->loop, g_main_loop_unref);
}

static int
run_replay(Config *cfg, const Options *opt)
{
	App app = {0};
	ReplayStats total = {0};
	g_autoptr(GError) err = NULL;
	int rc = 0;

	if (!app_init(&app, cfg, opt, FALSE, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	for (guint i = 0; opt->files[i] != NULL; i++) {
		g_autoptr(Replay) r = replay_open(opt->files[i], &err);
		ReplayDatagram d;

		if (r == NULL) {
			g_printerr("spamflowd: cannot replay: %s\n", err->message);
			rc = 1;
			break;
		}
		while (replay_next(r, &d, &err))
			collector_input(app.collector, d.addr, d.port, d.payload, d.len, d.ts_ms);
		if (err != NULL) {
			g_printerr("spamflowd: warning: %s (stopped reading it there)\n",
				   err->message);
			g_clear_error(&err);
		}
		flow_batch_flush(app.batch);
		replay_stats_add(&total, replay_stats(r));
	}
	if (rc == 0) {
		if (!app_finish(&app))
			rc = 1;
		print_report(&app, &total, report_stream(&app, FALSE));
	}
	app_clear(&app);
	return rc;
}

static gboolean
on_expire(gpointer user_data)
{
	App *app = user_data;

	collector_expire(app->collector, g_get_real_time() / 1000);
	if (app->flows != NULL)
		flowsout_forget_exporters(app->flows);
	g_hash_table_remove_all(app->exporter_names);
	return G_SOURCE_CONTINUE;
}

/* Clears and due updates must happen when no flows arrive too. */
static gboolean
on_tick(gpointer user_data)
{
	App *app = user_data;

	analyzer_tick(app->analyzer, g_get_real_time() / 1000);
	return G_SOURCE_CONTINUE;
}

static gboolean
on_stats(gpointer user_data)
{
	App *app = user_data;

	report_log(app->collector, listener_stats(app->listener));
	return G_SOURCE_CONTINUE;
}

static gboolean
on_quit_signal(gpointer user_data)
{
	App *app = user_data;

	g_message("signal received, exiting");
	g_main_loop_quit(app->loop);
	return G_SOURCE_CONTINUE;
}

static int
run_live(Config *cfg, const Options *opt)
{
	App app = {0};
	g_autoptr(GError) err = NULL;
	guint ids[5] = {0};
	int rc = 0;

	/* Bind first: a port in use should fail before anything else is set up. */
	app.listener = listener_new((const char *const *)cfg->listen, cfg->rcvbuf, &err);
	if (app.listener == NULL || !app_init(&app, cfg, opt, TRUE, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	for (guint i = 0; i < listener_n_sockets(app.listener); i++)
		g_message("listening on %s (udp, receive buffer %" G_GSIZE_FORMAT " bytes)",
			  listener_address(app.listener, i), listener_rcvbuf(app.listener, i));
	app.loop = g_main_loop_new(NULL, FALSE);
	listener_attach(app.listener, app.collector, app.batch, NULL);
	ids[0] = g_timeout_add_seconds(EXPIRE_INTERVAL_S, on_expire, &app);
	if (cfg->stats_interval_s > 0)
		ids[1] = g_timeout_add_seconds(cfg->stats_interval_s, on_stats, &app);
	ids[2] = g_unix_signal_add(SIGINT, on_quit_signal, &app);
	ids[3] = g_unix_signal_add(SIGTERM, on_quit_signal, &app);
	/* Clears and due updates when no flows arrive: at least once a slice. */
	ids[4] = g_timeout_add_seconds(
	    (guint)CLAMP(cfg->analyzer.slice_ms / 1000, 1, 10), on_tick, &app);

	g_main_loop_run(app.loop);

	for (guint i = 0; i < G_N_ELEMENTS(ids); i++)
		if (ids[i] != 0)
			g_source_remove(ids[i]);
	listener_detach(app.listener);
	flow_batch_flush(app.batch);
	if (!app_finish(&app))
		rc = 1;
	print_report(&app, NULL, stderr);
	app_clear(&app);
	return rc;
}

int
main(int argc, char **argv)
{
	Options opt = {.stats_interval = -1};
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) cfg = NULL;
	int rc;

	g_log_set_writer_func(log_writer, NULL, NULL);
	g_log_writer_default_set_use_stderr(TRUE);

	if (!parse_options(&opt, &argc, &argv, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		options_clear(&opt);
		return 2;
	}
	if (opt.version) {
		printf("spamflowd %s\n", SPAMFLOW_VERSION);
		options_clear(&opt);
		return 0;
	}
	cfg = opt.config != NULL ? config_new_from_file(opt.config, &err) : config_new();
	if (cfg == NULL) {
		g_printerr("spamflowd: %s\n", err->message);
		options_clear(&opt);
		return 1;
	}
	apply_options(cfg, &opt);
	set_log_level(cfg);
	if (opt.print_config) {
		g_autofree char *text = config_to_string(cfg);
		fputs(text, stdout);
		options_clear(&opt);
		return 0;
	}
	rc = opt.replay ? run_replay(cfg, &opt) : run_live(cfg, &opt);
	options_clear(&opt);
	return rc;
}
