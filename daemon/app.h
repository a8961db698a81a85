/* The daemon's wiring, apart from main() so that tests and fuzzers run the same daemon: the
 * App holds every part (collector, analyzer, sinks, enrichment, evidence, control socket,
 * state file), builds them from the configuration, routes flows to the analyzer and alert
 * events to the log, the evidence files and the sinks, reloads, and runs live on the glib
 * main loop or replays capture files. */
#pragma once

#include "actions.h"
#include "analyzer.h"
#include "collector.h"
#include "commands.h"
#include "config.h"
#include "enrich.h"
#include "evidence.h"
#include "flowsout.h"
#include "flowstore.h"
#include "history.h"
#include "cluster_node.h"
#include "httpapi.h"
#include "listener.h"
#include "netset.h"
#include "sink.h"
#include "snapshot.h"

#include <glib.h>

/* The command line (spamflowd.c parses it); flags override the file. */
typedef struct {
	char *config;
	char **listen;
	gboolean replay;
	double replay_speed;	 /* --replay-speed: 0 = as fast as possible */
	gint64 replay_start_ms;	 /* --replay-start: Unix ms the first datagram is due; 0 = now */
	char *flows;
	char *alerts;
	gboolean json;
	gboolean print_config;
	gboolean version;
	gint stats_interval; /* -1: from the config */
	char *state;	     /* --state: overrides [state] file; "" = none */
	char *history;	     /* --history: overrides [history] dir; "" = none */
	char **files;
} AppOptions;

/* Every part of a running daemon. Zero it, set hooks if any, then app_init(). */
typedef struct {
	Config *cfg;
	const AppOptions *opt;
	Collector *collector;
	FlowBatch *batch;
	FlowsOut *flows;
	Analyzer *analyzer;
	NetSet *allowed; /* [collector] allowed_exporters, NULL = every source */
	SinkSet *sinks;
	Actions actions;	    /* [actions], [quarantine]: after the sinks, each filtered */
	ActionLog *action_log;	    /* what the actions did, for `history` */
	GHashTable *exporter_names; /* exporter index -> "addr" text, for alert output */
	Listener *listener;
	GMainLoop *loop;
	Config *reloaded;	 /* owned: the configuration of the last reload (cfg points here) */
	guint64 reloads[2];	 /* done, refused */
	CommandsDeps commands;	 /* what the control commands read */
	ControlServer *control;
	HttpApi http;		 /* [http]: /metrics and /api/ (http.server NULL = off) */
	/* alert events handed to the sinks, by reason and event (stats "alerts", /metrics) */
	guint64 alerts[REASON_COUNT][ALERT_KIND_COUNT];
	Enricher *enricher;     /* [enrich]: country/ASN lookups (the analyzer's geo hook) */
	FlowStore *flowstore;   /* [evidence]: recent relevant flows per host; NULL = off */
	Evidence *evidence;     /* [evidence]: the IPFIX files; NULL = off */
	GArray *evidence_flows; /* scratch: one alert's flows */
	CollectorConfig ccfg;   /* what the collector was made with (a failed restore remakes it) */
	AnalyzerConfig acfg;    /* and the analyzer */
	History *history;	/* [history]: the store on disk; NULL = off */
	GArray *history_hosts;	/* scratch: one slice's HsegHost readings */
	gboolean live;
	Snapshot *snapshot;	/* [state]: the state file's writer; NULL = no state kept */
	ClusterNode *cluster;	/* [cluster]: this node's part of a cluster; NULL = alone */
	/* Stand-ins that tests and fuzzers set before app_init(); NULL = the real thing. */
	struct {
		AnalyzerGeoFunc geo; /* instead of the enricher's databases */
		/* what `reload` and SIGHUP load, instead of re-reading opt->config */
		Config *(*load_config)(gpointer data, GError **error);
		gpointer data;
	} hooks;
} App;

/* Command-line flags over the configuration from the file. */
void app_apply_options(Config *cfg, const AppOptions *opt);
/* Every part from cfg (kept, not owned: a reload's configuration is owned by the App) and
 * opt; live: for a daemon that listens (warns about an open allowed_exporters). On failure
 * app_clear() what was made. */
gboolean app_init(App *app, Config *cfg, const AppOptions *opt, gboolean live,
		  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The control socket as [control] says, answering from the App's parts (app->control stays
 * NULL when there is none, see commands_control_new()). */
gboolean app_control_start(App *app, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The HTTP endpoint as [http] says (after app_control_start(): it serves the same
 * commands): bound here, with the privileges the daemon starts with; it serves from
 * httpapi_run(&app->http), once they are dropped. app->http.server stays NULL when listen
 * is empty. */
gboolean app_http_start(App *app, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Reload (SIGHUP and the control socket's `reload`), as CommandsDeps.reload. */
gboolean app_reload(gpointer app, GString *members, GError **error);
/* Flush the sinks and close the flow CSV; FALSE when it could not be written completely. */
gboolean app_finish(App *app);
void app_clear(App *app);

/* Run until SIGINT/SIGTERM, or through the capture files; the exit status. */
int app_run_live(Config *cfg, const AppOptions *opt);
int app_run_replay(Config *cfg, const AppOptions *opt);
