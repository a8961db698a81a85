/* spamflowd: the daemon. Glue only: options and config in, then either live mode (UDP
 * listeners on the glib main loop, periodic expiry, analyzer ticks and counter lines, clean
 * exit on SIGINT/SIGTERM) or replay mode (capture files through the same collector and
 * analyzer, then a summary). Decoding, analysis and rendering live in the libraries. */
#include "analyzer.h"
#include "collector.h"
#include "commands.h"
#include "config.h"
#include "enrich.h"
#include "evidence.h"
#include "flowsout.h"
#include "flowstore.h"
#include "listener.h"
#include "netset.h"
#include "replay.h"
#include "report.h"
#include "sink.h"
#include "sinks.h"
#include "sink_syslog.h"
#include "spamflow-config.h"
#include "statefile.h"
#include "alertjson.h"

#include <glib-unix.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define FLOW_BATCH_CAP 1024
#define EXPIRE_INTERVAL_S 60
#define SINKS_FLUSH_MS 5000 /* at exit, for queued remote syslog events */

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
	char *state;	     /* --state: overrides [state] file; "" = none */
	char **files;
} Options;

typedef struct {
	Config *cfg;
	const Options *opt;
	Collector *collector;
	FlowBatch *batch;
	FlowsOut *flows;
	Analyzer *analyzer;
	NetSet *allowed; /* [collector] allowed_exporters, NULL = every source */
	SinkSet *sinks;
	GHashTable *exporter_names; /* exporter index -> "addr" text, for alert output */
	Listener *listener;
	GMainLoop *loop;
	Config *reloaded;	 /* owned: the configuration of the last reload (cfg points here) */
	guint64 reloads[2];	 /* done, refused */
	CommandsDeps commands;	 /* what the control commands read */
	Control *control;
	Enricher *enricher;     /* [enrich]: country/ASN lookups (the analyzer's geo hook) */
	FlowStore *flowstore;   /* [evidence]: recent relevant flows per host; NULL = off */
	Evidence *evidence;     /* [evidence]: the IPFIX files; NULL = off */
	GArray *evidence_flows; /* scratch: one alert's flows */
	CollectorConfig ccfg;   /* what the collector was made with (a failed restore remakes it) */
	AnalyzerConfig acfg;    /* and the analyzer */
	struct {
		guint64 snapshots, errors;
		guint64 skipped; /* periodic snapshots not taken: the last one was still writing */
		gint64 last_ms, last_us, last_err_log_us;
		gint64 last_pause_us; /* the main loop's share of the last snapshot (the fork) */
		gsize last_bytes;
		GPid writer;	    /* the forked snapshot writer, or 0 */
		int writer_fd;	    /* its result pipe */
		guint writer_watch; /* its child watch */
		gint64 writer_ms;   /* when it was forked (the snapshot's time) */
		char *path;	/* [state] file as started (a reload cannot move it) */
		char *restored; /* JSON object: what the start restored, or why not */
	} state;
} App;

static GLogLevelFlags log_mask =
    G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE;

static gboolean log_to_syslog;

/* [daemon] log = syslog: the daemon's own lines go to /dev/log on a non-blocking socket, as
 * the local syslog sink's do. glibc's syslog(3) blocks when the syslog daemon stops reading,
 * and that would stall collection. Lines that cannot be sent are counted and the next one
 * that can says how many were lost. */
static struct {
	GMutex lock;
	int fd, type;
	guint64 dropped;
} daemon_log = {.fd = -1};

static void
daemon_log_send(int prio, const char *msg)
{
	g_autoptr(GString) m = g_string_new(NULL);
	int err;

	g_mutex_lock(&daemon_log.lock);
	if (daemon_log.dropped > 0)
		g_string_printf(m, "(%" G_GUINT64_FORMAT " earlier log lines lost: the syslog "
				   "daemon was not reading) %s",
				daemon_log.dropped, msg);
	else
		g_string_assign(m, msg);
	g_autoptr(GString) line = g_string_new(NULL);
	sink_syslog_format_local(line, LOG_DAEMON | prio, "spamflowd", (guint)getpid(),
				 time(NULL), m->str);
	if (sink_syslog_send_local("/dev/log", &daemon_log.fd, &daemon_log.type, line, &err) ==
	    SINK_SYSLOG_SENT)
		daemon_log.dropped = 0;
	else
		daemon_log.dropped++; /* never wait: a stalled syslog daemon costs lines, not us */
	g_mutex_unlock(&daemon_log.lock);
}

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	if ((level & log_mask & G_LOG_LEVEL_MASK) == 0)
		return G_LOG_WRITER_HANDLED;
	if (!log_to_syslog)
		return g_log_writer_default(level, fields, n, user_data);
	int prio = (level & G_LOG_LEVEL_ERROR)	    ? LOG_ERR
		   : (level & G_LOG_LEVEL_CRITICAL) ? LOG_CRIT
		   : (level & G_LOG_LEVEL_WARNING)  ? LOG_WARNING
		   : (level & G_LOG_LEVEL_MESSAGE)  ? LOG_NOTICE
		   : (level & G_LOG_LEVEL_INFO)	    ? LOG_INFO
						    : LOG_DEBUG;
	for (gsize i = 0; i < n; i++) {
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0) {
			daemon_log_send(prio, (const char *)fields[i].value);
			return G_LOG_WRITER_HANDLED;
		}
	}
	return G_LOG_WRITER_UNHANDLED;
}

static void
set_log_level(const Config *cfg)
{
	log_to_syslog = cfg->log_target == 1;
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
	    {"state", 0, 0, G_OPTION_ARG_FILENAME, &opt->state,
	     "Live mode: keep state across restarts in FILE, overriding [state] file ('' = none)",
	     "FILE"},
	    {"version", 'V', 0, G_OPTION_ARG_NONE, &opt->version, "Print the version", NULL},
	    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt->files, NULL, NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("[--replay FILE...]");

	g_option_context_set_summary(ctx, "Collects NetFlow v5/v9, IPFIX and sFlow v5 exports.");
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
	g_free(opt->state);
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
	if (opt->state != NULL) {
		g_free(cfg->state_file);
		cfg->state_file = g_strdup(opt->state);
	}
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

/* Counters of the optional modules, for `stats` and the summary. */
static void
app_module_stats(gpointer user_data, GString *out)
{
	const App *app = user_data;

	if (app->enricher != NULL) {
		g_string_append(out, ",\"enrich\":{");
		enricher_stats_json(app->enricher, out);
		g_string_append_c(out, '}');
	}
	if (app->flowstore != NULL) {
		g_string_append(out, ",\"flowstore\":{");
		flowstore_stats_json(app->flowstore, out);
		g_string_append_c(out, '}');
	}
	if (app->evidence != NULL) {
		g_string_append(out, ",\"evidence\":{");
		evidence_stats_json(app->evidence, out);
		g_string_append_c(out, '}');
	}
	if (app->state.path != NULL) {
		g_string_append(out, ",\"state\":{\"file\":");
		json_string(out, app->state.path);
		g_string_append_printf(out,
				       ",\"snapshots\":%" G_GUINT64_FORMAT ",\"errors\":%" G_GUINT64_FORMAT
				       ",\"skipped\":%" G_GUINT64_FORMAT ",\"last_ms\":%" G_GINT64_FORMAT
				       ",\"last_bytes\":%" G_GSIZE_FORMAT
				       ",\"last_write_ms\":%.1f,\"last_pause_ms\":%.1f,\"restored\":%s}",
				       app->state.snapshots, app->state.errors, app->state.skipped,
				       app->state.last_ms, app->state.last_bytes,
				       app->state.last_us / 1000.0, app->state.last_pause_us / 1000.0,
				       app->state.restored != NULL ? app->state.restored : "null");
	}
}

static void
print_report(const App *app, const ReplayStats *replay, FILE *text_fp)
{
	g_autoptr(GString) s = g_string_new(NULL);
	AnalyzerStats an;
	ReportExtra x = {.replay = replay,
			 .listener = app->listener != NULL ? listener_stats(app->listener) : NULL,
			 .analyzer = &an,
			 .sinks = app->sinks,
			 .module_stats = app_module_stats,
			 .module_data = (gpointer)app};

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

static gboolean
evidence_exporter_addr(guint32 exporter, guint8 addr[16], gpointer user_data)
{
	App *app = user_data;
	return collector_exporter_addr(app->collector, exporter, addr, NULL);
}

/* Every alert event: one log line a person can read, and the JSON line for tools. A raised
 * or updated event first gets its evidence file, on a copy (the analyzer's is const). */
static void
on_alert(const AlertEvent *analyzer_ev, gpointer user_data)
{
	App *app = user_data;
	AlertEvent copy = *analyzer_ev;
	const AlertEvent *ev = &copy;
	char host[64], peer[64];

	if (app->evidence != NULL && (ev->event == ALERT_RAISED || ev->event == ALERT_UPDATED)) {
		g_autoptr(GError) err = NULL;
		g_array_set_size(app->evidence_flows, 0);
		flowstore_collect(app->flowstore, ev->host, heuristics_reason_win(ev->reason),
				  ev->time_ms, app->evidence_flows);
		if (!evidence_write(app->evidence, ev, (const Flow *)(void *)app->evidence_flows->data,
				    app->evidence_flows->len, evidence_exporter_addr, app,
				    copy.evidence, sizeof copy.evidence, &err))
			g_warning("%s", err->message);
	}
	const AlertWindow *sw = &ev->window[WINDOW_SHORT], *lw = &ev->window[WINDOW_LONG];

	flow_addr_str(ev->host, host, sizeof host);
	g_autofree char *geo = ev->n_countries > 0 || ev->n_asns > 0
				   ? g_strdup_printf(" countries=%u asns=%u", ev->n_countries,
						     ev->n_asns)
				   : g_strdup("");
	g_message("alert %s %s host=%s%s%s severity=%s short=%u/%u%s long=%u/%u%s "
		  "attempts=%u failed=%.0f%%%s%s%s%s",
		  alert_kind_name(ev->event), alert_reason_name(ev->reason), host,
		  ev->has_peer ? " target=" : "",
		  ev->has_peer ? flow_addr_str(ev->peer, peer, sizeof peer) : "",
		  alert_severity_name(ev->severity), sw->value, sw->threshold,
		  sw->estimated ? "~" : "", lw->value, lw->threshold, lw->estimated ? "~" : "",
		  ev->attempts, ev->failed_share * 100, geo,
		  ev->evidence[0] != '\0' ? " evidence=" : "", ev->evidence,
		  ev->lower_bound ? " (sampled: counts are lower bounds)" : "");
	SinkCtx ctx = {.exporter_name = exporter_name, .user_data = app};
	sink_set_write(app->sinks, ev, &ctx);
}

/* Each batch of decoded records: to the --flows CSV, then through the analyzer. With
 * evidence on, each record enters the flow store just before the analyzer sees it, so an
 * alert's evidence ends with the record that raised it. */
static void
on_flows(const Flow *flows, guint n, gpointer user_data)
{
	App *app = user_data;

	if (app->flows != NULL)
		flowsout_write(flows, n, app->flows);
	if (app->flowstore == NULL) {
		analyzer_process(app->analyzer, flows, n);
		return;
	}
	for (guint i = 0; i < n; i++) {
		flowstore_add(app->flowstore, &flows[i]);
		analyzer_process(app->analyzer, &flows[i], 1);
	}
}

static gboolean
exporter_allowed(const guint8 addr[16], gpointer set)
{
	return netset_contains(set, addr);
}

/* Once per exporter: the collector's notices, for the admin of that exporter. */
static void
on_collector_notice(CollectorNotice what, const CollectorNoticeInfo *i, gpointer user_data)
{
	SessionView v = {.port = i->port, .agent = i->agent};
	(void)user_data;
	memcpy(v.addr, i->addr, 16);
	g_autofree char *ep = report_exporter(&v);
	const char *ver = flow_version_name(i->version);

	switch (what) {
	case NOTICE_TIMES_DROPPED: {
		g_autofree char *start = report_time(i->start_ms);
		g_autofree char *end = report_time(i->end_ms);
		g_autofree char *sent = report_time(i->export_ms);
		g_warning("exporter %s domain %u (version %s): flow times %s .. %s are implausible "
			  "for a message sent at %s (accepted: up to 90 days before, 1 day after); "
			  "such times are dropped and counted as times_dropped. Check the exporter's "
			  "clock (NTP) and uptime. Said once per exporter",
			  ep, i->domain, ver, start, end, sent);
		break;
	}
	case NOTICE_AMBIGUOUS_ADDR: {
		g_autofree char *why =
		    i->ipversion >= 0
			? g_strdup_printf("its ipVersion (IE 60) is %d, neither 4 nor 6", i->ipversion)
			: g_strdup("it has both families set, or neither, and the template has no "
				   "ipVersion (IE 60) to tell");
		g_warning("exporter %s domain %u (version %s): template %u carries IPv4 and IPv6 "
			  "addresses, and a record cannot be placed: %s. Such records are dropped "
			  "and counted as ambiguous_addr. Said once per exporter",
			  ep, i->domain, ver, i->template_id, why);
		break;
	}
	case NOTICE_N:
		break;
	}
}

/* At most once a minute of flow time: hosts the analyzer evicted to hold its caps. */
static void
on_analyzer_notice(AnalyzerNotice what, const AnalyzerNoticeInfo *i, gpointer user_data)
{
	(void)user_data;
	if (what != ANALYZER_NOTICE_EVICTED)
		return;
	g_autofree char *first = report_time(i->first_ms);
	g_autofree char *last = report_time(i->last_ms);
	g_warning("analyzer: evicted %" G_GUINT64_FORMAT " of the tracked hosts between %s and %s "
		  "(%" G_GUINT64_FORMAT " at max_hosts = %u, %" G_GUINT64_FORMAT " at mem_cap = "
		  "%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT " since the start; tracking %"
		  G_GUINT64_FORMAT " hosts in %" G_GUINT64_FORMAT " bytes. The least recently seen "
		  "go first, with what their windows held: raise [analyzer] max_hosts or mem_cap if "
		  "the network is this big, else look for a flood of new source addresses. Said at "
		  "most once a minute",
		  i->evicted, first, last, i->by_max_hosts, i->max_hosts, i->by_mem_cap, i->mem_cap,
		  i->evicted_total, i->hosts, i->mem_bytes);
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
	app->sinks = sinks_from_config(cfg, opt->alerts, error);
	if (app->sinks == NULL)
		return FALSE;
	acfg.alert_fn = on_alert;
	acfg.alert_data = app;
	acfg.notice_fn = on_analyzer_notice;
	app->enricher = enricher_new(cfg->country_db, cfg->asn_db, error);
	if (app->enricher == NULL)
		return FALSE;
	if (enricher_active(app->enricher)) {
		acfg.geo_fn = enricher_geo_func;
		acfg.geo_data = app->enricher;
	}
	if (cfg->evidence_dir[0] != '\0') {
		app->evidence = evidence_new(cfg->evidence_dir, cfg->evidence_max_age_s,
					     cfg->evidence_max_bytes, error);
		if (app->evidence == NULL)
			return FALSE;
		app->flowstore = flowstore_new(&acfg, cfg->evidence_max_flows,
					       cfg->evidence_memory_cap, error);
		if (app->flowstore == NULL)
			return FALSE;
		app->evidence_flows = g_array_new(FALSE, FALSE, sizeof(Flow));
	}
	app->acfg = acfg;
	app->analyzer = analyzer_new(&app->acfg, error);
	if (app->analyzer == NULL)
		return FALSE;
	app->exporter_names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	app->batch = flow_batch_new(FLOW_BATCH_CAP, on_flows, app);
	CollectorConfig ccfg = cfg->collector;
	if (cfg->allowed_exporters[0] != '\0') {
		app->allowed = netset_new_from_list(cfg->allowed_exporters, error);
		if (app->allowed == NULL)
			return FALSE;
		ccfg.allow = exporter_allowed;
		ccfg.allow_data = app->allowed;
	} else if (live) {
		g_warning("accepting flow export from any source: anyone who can reach the port can "
			  "send spoofed flows that frame a host; set [collector] allowed_exporters");
	}
	ccfg.notice = on_collector_notice;
	app->ccfg = ccfg;
	app->collector = collector_new(&app->ccfg, app->batch);
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

	if (app->analyzer != NULL)
		analyzer_flush_notices(app->analyzer); /* the last evictions, if any */
	if (app->sinks != NULL)
		(void)sinks_flush(app->sinks, SINKS_FLUSH_MS); /* what is left is logged */
	if (app->flows != NULL && !flowsout_close(app->flows, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		ok = FALSE;
	}
	return ok;
}

static void
app_clear(App *app)
{
	g_clear_pointer(&app->control, control_free);
	g_clear_pointer(&app->listener, listener_free);
	g_clear_pointer(&app->collector, collector_free);
	g_clear_pointer(&app->batch, flow_batch_free);
	g_clear_pointer(&app->flows, flowsout_free);
	g_clear_pointer(&app->analyzer, analyzer_free);
	g_clear_pointer(&app->allowed, netset_free);
	g_clear_pointer(&app->sinks, sink_set_free);
	g_clear_pointer(&app->enricher, enricher_free);
	g_clear_pointer(&app->flowstore, flowstore_free);
	g_clear_pointer(&app->evidence, evidence_free);
	if (app->evidence_flows != NULL)
		g_clear_pointer(&app->evidence_flows, g_array_unref);
	g_clear_pointer(&app->exporter_names, g_hash_table_unref);
	g_clear_pointer(&app->loop, g_main_loop_unref);
	g_clear_pointer(&app->reloaded, config_free);
	g_clear_pointer(&app->state.restored, g_free);
	g_clear_pointer(&app->state.path, g_free);
}

/* How often the analyzer's clock ticks when no flow moves it (clears, due updates): six
 * times a slice, at most every 10 s (the default 60-s slice: every 10 s), so a clear is
 * late by a sixth of a slice at most. Live this is a timer; a replay ticks at the same
 * points of capture time, so both clear at the same moments. */
static gint64
tick_interval_ms(const Config *cfg)
{
	return CLAMP(cfg->analyzer.slice_ms / 6, 100, 10000);
}

/* Replay: the ticks a live daemon would have made before capture time ts_ms. */
static void
replay_ticks(App *app, gint64 tick_ms, gint64 *next, gint64 ts_ms)
{
	if (*next == G_MININT64 || ts_ms < *next - tick_ms) {
		*next = ts_ms + tick_ms; /* the first datagram, or the clock stepped back */
		return;
	}
	if (ts_ms < *next)
		return;
	flow_batch_flush(app->batch); /* the flows before the tick are analyzed first */
	/* a long silence: the ticks of its last day only (the windows are shorter) */
	gint64 day = 86400000 / tick_ms * tick_ms;
	if (ts_ms - *next > day)
		*next += (ts_ms - *next - day) / tick_ms * tick_ms;
	for (; *next <= ts_ms; *next += tick_ms)
		analyzer_tick(app->analyzer, *next);
}

static int
run_replay(Config *cfg, const Options *opt)
{
	App app = {0};
	ReplayStats total = {0};
	g_autoptr(GError) err = NULL;
	int rc = 0;
	gint64 tick_ms = tick_interval_ms(cfg), next_tick = G_MININT64;

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
		while (replay_next(r, &d, &err)) {
			replay_ticks(&app, tick_ms, &next_tick, d.ts_ms);
			collector_input(app.collector, d.addr, d.port, d.payload, d.len, d.ts_ms);
		}
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

/* Reload (SIGHUP and the control socket's `reload`): re-read -c; the analyzer takes the new
 * settings keeping its windows, and the log level changes. A broken file changes nothing.
 * members gets what changed (commands_reload_members). */
static gboolean
app_reload(gpointer user_data, GString *members, GError **error)
{
	App *app = user_data;
	AnalyzerConfig acfg;
	g_autoptr(Config) cfg = NULL;

	if (app->opt->config == NULL) {
		g_set_error_literal(error, CONFIG_ERROR, CONFIG_ERROR_FILE,
				    "started without -c: no configuration file to reload");
		app->reloads[1]++;
		return FALSE;
	}
	cfg = config_new_from_file(app->opt->config, error);
	if (cfg != NULL) {
		apply_options(cfg, app->opt);
		acfg = *config_analyzer(cfg);
	}
	if (cfg == NULL || !analyzer_reconfigure(app->analyzer, &acfg, error)) {
		app->reloads[1]++;
		return FALSE;
	}
	commands_reload_members(members, app->cfg, cfg);
	set_log_level(cfg);
	/* the first configuration is main()'s and may be referenced: only reloads are freed */
	g_clear_pointer(&app->reloaded, config_free);
	app->reloaded = g_steal_pointer(&cfg);
	app->cfg = app->reloaded;
	app->reloads[0]++;
	return TRUE;
}

/* SIGHUP: reload the configuration, reopen the alert files (logrotate). */
static gboolean
on_hup(gpointer user_data)
{
	App *app = user_data;
	g_autoptr(GString) changes = g_string_new(NULL);
	g_autoptr(GError) err = NULL;

	if (app->opt->config != NULL && !app_reload(app, changes, &err))
		g_warning("SIGHUP: %s: keeping the configuration in force", err->message);

	g_message("SIGHUP: reopening alert files");
	sink_set_reopen(app->sinks);
	g_clear_error(&err);
	if (enricher_active(app->enricher) && !enricher_reload(app->enricher, &err))
		g_warning("SIGHUP: %s", err->message);
	g_clear_error(&err);
	if (app->flowstore != NULL &&
	    !flowstore_reconfigure(app->flowstore, config_analyzer(app->cfg), &err))
		g_warning("SIGHUP: evidence flow store: %s", err->message);
	return G_SOURCE_CONTINUE;
}

/* ---- restart without loss: the state file ---- */

/* Build the collector's and the analyzer's state and write the file. */
static gboolean
state_write(App *app, gint64 now_ms, gsize *bytes, GError **error)
{
	g_autoptr(GByteArray) coll = g_byte_array_new();
	g_autoptr(GByteArray) anlz = g_byte_array_new();

	collector_state_save(app->collector, coll);
	analyzer_state_save(app->analyzer, anlz);
	StateSection sec[] = {
	    {.tag = STATEFILE_TAG_COLLECTOR, .data = coll->data, .len = coll->len},
	    {.tag = STATEFILE_TAG_ANALYZER, .data = anlz->data, .len = anlz->len},
	};
	return statefile_write(app->state.path, now_ms, sec, G_N_ELEMENTS(sec), bytes, error);
}

/* A failed snapshot: counted; logged at most every 10 min (always at exit). */
static void
state_failed(App *app, const char *msg, gboolean at_exit)
{
	gint64 now = g_get_monotonic_time();
	app->state.errors++;
	if (at_exit || app->state.last_err_log_us == 0 ||
	    now - app->state.last_err_log_us >= 600 * G_USEC_PER_SEC) {
		app->state.last_err_log_us = now;
		g_warning("%s (%" G_GUINT64_FORMAT " failed snapshots so far)", msg,
			  app->state.errors);
	}
}

static void
state_written(App *app, gint64 now_ms, gsize bytes, gint64 write_us)
{
	app->state.snapshots++;
	app->state.last_ms = now_ms;
	app->state.last_us = write_us;
	app->state.last_bytes = bytes;
}

/* Write the state now, on the main loop (at exit, or when a writer cannot be forked). */
static void
app_state_save(App *app, gboolean at_exit)
{
	g_autoptr(GError) err = NULL;
	gint64 t0 = g_get_monotonic_time();
	gint64 now_ms = g_get_real_time() / 1000;
	gsize bytes = 0;

	if (!state_write(app, now_ms, &bytes, &err)) {
		state_failed(app, err->message, at_exit);
		return;
	}
	state_written(app, now_ms, bytes, g_get_monotonic_time() - t0);
	app->state.last_pause_us = app->state.last_us;
	if (at_exit)
		g_message("state saved to %s (%" G_GSIZE_FORMAT " bytes in %.1f ms)",
			  app->state.path, app->state.last_bytes, app->state.last_us / 1000.0);
}

/* What a snapshot writer sends back before it exits: one write, under PIPE_BUF. */
typedef struct {
	gboolean ok;
	guint64 bytes;
	gint64 write_us;
	char msg[512];
} WriterResult;
G_STATIC_ASSERT(sizeof(WriterResult) <= PIPE_BUF);

/* The writer's result, once it has exited (status: its wait status). */
static void
writer_collect(App *app, int status)
{
	WriterResult r;
	ssize_t n;

	memset(&r, 0, sizeof r);
	do
		n = read(app->state.writer_fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	close(app->state.writer_fd);
	app->state.writer_fd = -1;
	app->state.writer = 0;
	if (n == (ssize_t)sizeof r && r.ok) {
		state_written(app, app->state.writer_ms, (gsize)r.bytes, r.write_us);
		return;
	}
	if (n == (ssize_t)sizeof r) {
		r.msg[sizeof r.msg - 1] = '\0';
		state_failed(app, r.msg, FALSE);
		return;
	}
	g_autofree char *msg = g_strdup_printf(
	    "state file %s: the snapshot writer %s %d without a result", app->state.path,
	    WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	state_failed(app, msg, FALSE);
}

static void
on_writer_exit(GPid pid, gint status, gpointer user_data)
{
	App *app = user_data;
	(void)pid;
	app->state.writer_watch = 0;
	writer_collect(app, status);
}

/* Before the exit save: wait for a snapshot writer still at work (one writer at a time). */
static void
app_state_wait_writer(App *app)
{
	int status = 0;
	if (app->state.writer == 0)
		return;
	if (app->state.writer_watch != 0) {
		g_source_remove(app->state.writer_watch);
		app->state.writer_watch = 0;
	}
	while (waitpid(app->state.writer, &status, 0) < 0 && errno == EINTR)
		;
	writer_collect(app, status);
}

/* A periodic snapshot without stopping collection: a forked child writes the state as it
 * was at the fork (copy-on-write) while this process goes on reading datagrams. The main
 * loop pays for the fork only (last_pause_ms), not for building and writing the file (about
 * 1 s per million hosts); and the file's image is built in the child's memory, not in this
 * process's heap. The writer dies with the daemon (PR_SET_PDEATHSIG), so a new daemon never
 * shares the temporary file with an orphan. If it cannot fork, the snapshot is written
 * here. */
static void
app_snapshot(App *app)
{
	int fds[2];
	gint64 t0 = g_get_monotonic_time();
	gint64 now_ms = g_get_real_time() / 1000;
	pid_t parent = getpid();

	if (app->state.writer != 0) {
		app->state.skipped++;
		return;
	}
	if (!g_unix_open_pipe(fds, FD_CLOEXEC, NULL)) {
		app_state_save(app, FALSE);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		app_state_save(app, FALSE);
		return;
	}
	if (pid == 0) {
		WriterResult r;
		GError *err = NULL;
		gsize bytes = 0;
		gint64 c0 = g_get_monotonic_time();

		close(fds[0]);
		/* the daemon's signal handlers are not this process's business */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(2);
		memset(&r, 0, sizeof r);
		r.ok = state_write(app, now_ms, &bytes, &err);
		r.bytes = bytes;
		r.write_us = g_get_monotonic_time() - c0;
		if (!r.ok)
			g_strlcpy(r.msg, err->message, sizeof r.msg);
		(void)!write(fds[1], &r, sizeof r);
		_exit(r.ok ? 0 : 1);
	}
	close(fds[1]);
	app->state.writer = pid;
	app->state.writer_fd = fds[0];
	app->state.writer_ms = now_ms;
	app->state.writer_watch = g_child_watch_add(pid, on_writer_exit, app);
	app->state.last_pause_us = g_get_monotonic_time() - t0;
}

static gboolean
on_snapshot(gpointer user_data)
{
	app_snapshot(user_data);
	return G_SOURCE_CONTINUE;
}

/* Fresh collector and analyzer, as app_init made them. */
static gboolean
app_state_reset(App *app, GError **error)
{
	g_clear_pointer(&app->collector, collector_free);
	g_clear_pointer(&app->analyzer, analyzer_free);
	app->collector = collector_new(&app->ccfg, app->batch);
	if (app->flows != NULL)
		flowsout_set_collector(app->flows, app->collector);
	app->analyzer = analyzer_new(&app->acfg, error);
	return app->analyzer != NULL;
}

/* At start, before any datagram: restore what the last run saved, when it is recent and
 * whole. Anything wrong with the file is reported and the file is not used at all. */
static gboolean
app_state_restore(App *app, GError **error)
{
	const char *path = app->state.path;
	StateFile sf;
	g_autoptr(GError) err = NULL;
	CollectorStateLoad cl;
	AnalyzerStats an;

	if (!statefile_read(path, &sf, &err)) {
		if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_message("no state file at %s: starting afresh", path);
			app->state.restored = g_strdup("{\"result\":\"none\"}");
		} else {
			g_warning("%s: ignored, starting afresh", err->message);
			app->state.restored = g_strdup("{\"result\":\"invalid\"}");
		}
		return TRUE;
	}
	gint64 age_ms = g_get_real_time() / 1000 - sf.written_ms;
	const StateSection *cs = statefile_section(&sf, STATEFILE_TAG_COLLECTOR);
	const StateSection *as = statefile_section(&sf, STATEFILE_TAG_ANALYZER);
	if (age_ms > (gint64)app->cfg->state_max_age_s * 1000 || age_ms < -86400 * 1000) {
		g_message("state file %s was written %" G_GINT64_FORMAT " s ago (max_age %u): "
			  "not restored",
			  path, age_ms / 1000, app->cfg->state_max_age_s);
		app->state.restored = g_strdup_printf("{\"result\":\"too_old\",\"age_s\":%" G_GINT64_FORMAT "}",
						      age_ms / 1000);
		statefile_clear(&sf);
		return TRUE;
	}
	if (cs == NULL || as == NULL) {
		g_set_error(&err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "state file %s: a section is missing", path);
	} else if (collector_state_load(app->collector, cs->data, cs->len, &cl, &err) &&
		   analyzer_state_load(app->analyzer, as->data, as->len, &err)) {
		analyzer_get_stats(app->analyzer, &an);
		g_message("restored state from %s, written %" G_GINT64_FORMAT " s ago: %u "
			  "exporters, %u domains, %u templates (dropped by the current limits: %u "
			  "exporters, %u domains, %u templates); %u hosts, %u offenders",
			  path, age_ms / 1000, cl.exporters, cl.domains, cl.templates,
			  cl.exporters_dropped, cl.domains_dropped, cl.templates_dropped,
			  (guint)an.hosts_tracked, (guint)an.offenders_active);
		app->state.restored = g_strdup_printf(
		    "{\"result\":\"restored\",\"age_s\":%" G_GINT64_FORMAT ",\"exporters\":%u,"
		    "\"domains\":%u,\"templates\":%u,\"exporters_dropped\":%u,"
		    "\"domains_dropped\":%u,\"templates_dropped\":%u,\"hosts\":%u,"
		    "\"offenders\":%u}",
		    age_ms / 1000, cl.exporters, cl.domains, cl.templates, cl.exporters_dropped,
		    cl.domains_dropped, cl.templates_dropped, (guint)an.hosts_tracked, (guint)an.offenders_active);
		statefile_clear(&sf);
		return TRUE;
	}
	g_warning("%s: state file not used, starting afresh", err->message);
	app->state.restored = g_strdup("{\"result\":\"invalid\"}");
	statefile_clear(&sf);
	return app_state_reset(app, error);
}

/* The state file's directory, owned by the user the daemon drops to. */
static void
app_state_prepare(App *app)
{
	gint64 uid = -1, gid = -1;
	g_autoptr(GError) err = NULL;

	if (app->cfg->user[0] != '\0') {
		struct passwd *pw = getpwnam(app->cfg->user);
		if (pw != NULL) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
	}
	if (!statefile_prepare_dir(app->state.path, uid, gid, &err))
		g_warning("%s: snapshots will fail", err->message);
}

static int
run_live(Config *cfg, const Options *opt)
{
	App app = {0};
	g_autoptr(GError) err = NULL;
	guint ids[7] = {0};
	int rc = 0;

	/* Bind first: a port in use should fail before anything else is set up. */
	app.listener = listener_new((const char *const *)cfg->listen, cfg->rcvbuf, &err);
	if (app.listener == NULL || !app_init(&app, cfg, opt, TRUE, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	if (cfg->state_file[0] != '\0') {
		app.state.path = g_strdup(cfg->state_file);
		app_state_prepare(&app);
		if (!app_state_restore(&app, &err)) {
			g_printerr("spamflowd: %s\n", err->message);
			app_clear(&app);
			return 1;
		}
	}
	for (guint i = 0; i < listener_n_sockets(app.listener); i++)
		g_message("listening on %s (udp, receive buffer %" G_GSIZE_FORMAT " bytes)",
			  listener_address(app.listener, i), listener_rcvbuf(app.listener, i));
	/* Then the control socket, then privileges go: rule 11, bind then drop then parse. */
	app.commands = (CommandsDeps){.collector = app.collector,
				      .analyzer = app.analyzer,
				      .sinks = app.sinks,
				      .listener = app.listener,
				      .cfg = &app.cfg,
				      .config_path = opt->config,
				      .exporter_name = exporter_name,
				      .exporter_data = &app,
				      .reload = app_reload,
				      .reload_data = &app,
				      .reload_counts = app.reloads,
				      .started_ms = g_get_real_time() / 1000,
				      .module_stats = app_module_stats,
				      .module_data = &app,
				      .geo = app.enricher != NULL ? enricher_geo_func : NULL,
				      .geo_data = app.enricher};
	app.control = commands_control_new(cfg, &app.commands, &err);
	if (err != NULL || !commands_drop_privileges(cfg, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	if (app.state.path != NULL) {
		/* Now as the user that will write it: say so at start, not at the first failure. */
		g_autofree char *dir = g_path_get_dirname(app.state.path);
		if (access(dir, W_OK | X_OK) != 0)
			g_warning("state directory %s is not writable by this process (%s): "
				  "snapshots will fail; chown it to [daemon] user",
				  dir, g_strerror(errno));
	}
	app.loop = g_main_loop_new(NULL, FALSE);
	listener_attach(app.listener, app.collector, app.batch, NULL);
	ids[0] = g_timeout_add_seconds(EXPIRE_INTERVAL_S, on_expire, &app);
	if (cfg->stats_interval_s > 0)
		ids[1] = g_timeout_add_seconds(cfg->stats_interval_s, on_stats, &app);
	ids[2] = g_unix_signal_add(SIGINT, on_quit_signal, &app);
	ids[3] = g_unix_signal_add(SIGTERM, on_quit_signal, &app);
	/* Clears and due updates when no flows arrive (tick_interval_ms()). */
	ids[4] = g_timeout_add((guint)tick_interval_ms(cfg), on_tick, &app);
	ids[5] = g_unix_signal_add(SIGHUP, on_hup, &app);
	if (app.state.path != NULL && cfg->state_interval_s > 0)
		ids[6] = g_timeout_add_seconds(cfg->state_interval_s, on_snapshot, &app);

	g_main_loop_run(app.loop);

	for (guint i = 0; i < G_N_ELEMENTS(ids); i++)
		if (ids[i] != 0)
			g_source_remove(ids[i]);
	listener_detach(app.listener);
	flow_batch_flush(app.batch);
	if (app.state.path != NULL) {
		app_state_wait_writer(&app);
		app_state_save(&app, TRUE);
	}
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
