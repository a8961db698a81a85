/* The daemon's wiring (app.h): the parts built from the configuration, flows to the
 * analyzer, alert events to the log, the evidence files and the sinks; reload; the state
 * file restored at start; the live main loop and the replay of captures. */
#include "app.h"

#include "alertsummary.h"
#include "daemon_log.h"
#include "exitwatch.h"
#include "quarantine.h"
#include "replay.h"
#include "report.h"
#include "sinks.h"
#include "spamflow-config.h"
#include "statefile.h"

#include <glib-unix.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FLOW_BATCH_CAP 1024
#define EXPIRE_INTERVAL_S 60
#define SINKS_FLUSH_MS 5000 /* at exit, for queued remote syslog events (and actions) */
#define ACTION_LOG_LEN 1024 /* actions kept for `history` */

/* Command-line flags override the file. */
void
app_apply_options(Config *cfg, const AppOptions *opt)
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
	if (opt->history != NULL) {
		g_free(cfg->history_dir);
		cfg->history_dir = g_strdup(opt->history);
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
	if (app->snapshot != NULL)
		snapshot_stats_json(app->snapshot, out);
	if (app->history != NULL) {
		g_string_append(out, ",\"history\":{");
		history_stats_json(app->history, out);
		g_string_append_c(out, '}');
	}
	/* live only: a replay's report keeps the members it always had */
	if (app->live) {
		g_string_append(out, ",\"alerts\":{");
		for (guint r = 0; r < REASON_COUNT; r++) {
			g_string_append_printf(out, "%s\"%s\":{", r > 0 ? "," : "",
					       alert_reason_name(r));
			for (guint k = 0; k < ALERT_KIND_COUNT; k++)
				g_string_append_printf(out, "%s\"%s\":%" G_GUINT64_FORMAT,
						       k > 0 ? "," : "", alert_kind_name(k),
						       app->alerts[r][k]);
			g_string_append_c(out, '}');
		}
		g_string_append_c(out, '}');
	}
	if (app->cluster != NULL)
		cluster_node_stats_json(app->cluster, out);
	if (app->http.server != NULL) {
		g_string_append(out, ",\"http\":{");
		http_server_stats_json(app->http.server, out);
		g_string_append_c(out, '}');
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
			 .actions = app->actions.set,
			 .module_stats = app_module_stats,
			 .module_data = (gpointer)app};

	if (app->cluster != NULL && cluster_node_analyzes(app->cluster))
		cluster_node_analyzer_stats(app->cluster, &an);
	else
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
	if (app->cluster != NULL ? !cluster_node_exporter_addr(app->cluster, index, addr)
				 : !collector_exporter_addr(app->collector, index, addr, NULL))
		return NULL;
	char *copy = g_strdup(flow_addr_str(addr, buf, sizeof buf));
	g_hash_table_insert(app->exporter_names, GUINT_TO_POINTER(index), copy);
	return copy;
}

static gboolean
evidence_exporter_addr(guint32 exporter, guint8 addr[16], gpointer user_data)
{
	App *app = user_data;
	if (app->cluster != NULL)
		return cluster_node_exporter_addr(app->cluster, exporter, addr);
	return collector_exporter_addr(app->collector, exporter, addr, NULL);
}

/* `follow`: one line per event or action, {"type":"event","event":{...}} */
static void
app_follow(App *app, const char *type, const GString *json)
{
	if (control_server_followers(app->control) == 0)
		return;
	g_autoptr(GString) line = g_string_new(NULL);
	g_string_append_printf(line, "{\"type\":\"%s\",\"%s\":", type, type);
	g_string_append_len(line, json->str, (gssize)json->len);
	g_string_append(line, "}\n");
	control_server_broadcast(app->control, line->str, line->len);
}

/* Every action record (ActionLogFunc): into the history and to the followers. Live, at the
 * wall clock it has; a replay's (dry-run) at the capture's clock, as its events. */
static void
on_action_record(const ActionRecord *r, gpointer user_data)
{
	App *app = user_data;
	g_autoptr(GString) j = g_string_new(NULL);
	action_record_json(j, r);
	if (app->history != NULL) {
		HsegNote n = {.t_ms = app->live || app->analyzer == NULL ? r->time_ms
									 : analyzer_now(app->analyzer),
			      .reason = r->reason >= 0 && r->reason < REASON_COUNT ? r->reason : -1,
			      .json = j->str,
			      .json_len = j->len};
		memcpy(n.host, r->host, 16);
		history_add_note(app->history, HSEG_REC_ACTION, &n);
	}
	app_follow(app, "action", j);
}

static void
collect_reading(const AnalyzerReading *r, gpointer user_data)
{
	App *app = user_data;
	HsegHost h;
	memset(&h, 0, sizeof h);
	memcpy(h.host, r->addr, 16);
	h.flows = r->flows;
	h.attempts = r->attempts;
	h.failed = r->failed;
	h.sampled = r->sampled;
	h.reason_mask = r->reason_mask;
	for (guint k = 0; k < REASON_COUNT; k++)
		for (guint w = 0; w < WINDOW_SPANS; w++) {
			h.reason[k].value[w] = r->value[k][w];
			h.reason[k].threshold[w] = r->threshold[k][w];
			h.reason[k].estimate[w] = r->estimate[k][w];
		}
	g_array_append_val(app->history_hosts, h);
}

/* A slice ended (AnalyzerSliceFunc): the readings of every host at a quarter of a
 * threshold or more, and of every offender, into the history. */
static void
app_history_slice(Analyzer *a, gint64 slice_end_ms, gpointer user_data)
{
	App *app = user_data;
	if (app->history == NULL)
		return;
	g_array_set_size(app->history_hosts, 0);
	analyzer_foreach_reading(a, ANALYZER_READING_SHARE, collect_reading, app);
	if (app->history_hosts->len > 0)
		history_add_slice(app->history, slice_end_ms, (HsegHost *)(void *)app->history_hosts->data,
				  app->history_hosts->len);
}

/* A cluster node's partition analyzer: its readings, for the bus (cluster_node.c) */
static void
app_history_readings(Analyzer *a, GArray *hosts, gpointer user_data)
{
	App *app = user_data;
	GArray *keep = app->history_hosts;
	app->history_hosts = hosts;
	analyzer_foreach_reading(a, ANALYZER_READING_SHARE, collect_reading, app);
	app->history_hosts = keep;
}

/* ... and every partition's, from the bus, into this node's store */
static void
app_history_write(gint64 t_ms, const HsegHost *hosts, guint n, gpointer user_data)
{
	App *app = user_data;
	if (app->history != NULL)
		history_add_slice(app->history, t_ms, hosts, n);
}

static void
on_slice(gint64 slice_end_ms, gpointer user_data)
{
	App *app = user_data;
	app_history_slice(app->analyzer, slice_end_ms, app);
}

/* [history] dir: the store. The built-in default is the live daemon's: a replay writes
 * only to a directory named in the file or with --history. A default directory that
 * cannot be used (another daemon holds it, no permission) leaves the store off, said once. */
static gboolean
app_history_open(App *app, gboolean live, GError **error)
{
	const Config *cfg = app->cfg;
	gboolean is_default = g_strcmp0(cfg->history_dir, CONFIG_HISTORY_DIR) == 0;
	g_autoptr(GError) err = NULL;

	if (cfg->history_dir[0] == '\0' || (!live && is_default))
		return TRUE;
	HistoryConfig hc = {.dir = cfg->history_dir,
			    .max_age_ms = (gint64)cfg->history_max_age_s * 1000,
			    .max_bytes = cfg->history_max_bytes,
			    .fsync = (HistoryFsync)cfg->history_fsync,
			    .queue = cfg->history_queue};
	app->history = history_open(&hc, &err);
	if (app->history == NULL) {
		if (is_default) {
			g_warning("%s: the history store is off (set [history] dir, or dir = to say "
				  "so)", err->message);
			return TRUE;
		}
		g_propagate_error(error, g_steal_pointer(&err));
		return FALSE;
	}
	/* the writer runs as [daemon] user once privileges go: the directory is its */
	if (cfg->user[0] != '\0') {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw != NULL && getuid() == 0) {
			if (chown(cfg->history_dir, pw->pw_uid, pw->pw_gid) != 0)
				g_warning("history directory %s: chown: %s", cfg->history_dir,
					  g_strerror(errno));
			/* and what a run as root left there (segments, sidecars, the lock) */
			g_autoptr(GDir) d = g_dir_open(cfg->history_dir, 0, NULL);
			const char *name;
			while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
				g_autofree char *p = g_build_filename(cfg->history_dir, name, NULL);
				(void)!chown(p, pw->pw_uid, pw->pw_gid);
			}
		}
	}
	app->history_hosts = g_array_new(FALSE, FALSE, sizeof(HsegHost));
	HistoryStats hs;
	history_get_stats(app->history, &hs);
	g_message("history store %s: %" G_GUINT64_FORMAT " segments, %" G_GUINT64_FORMAT
		  " bytes (%" G_GUINT64_FORMAT " damaged records skipped)",
		  cfg->history_dir, hs.segments, hs.bytes, hs.corrupt_records + hs.truncated_records);
	return TRUE;
}

/* A raised or updated event's evidence file, named in ev->evidence (on the node whose
 * analyzer raised it: the flows are there). */
static void
app_evidence(AlertEvent *ev, gpointer user_data)
{
	App *app = user_data;

	if (app->evidence != NULL && (ev->event == ALERT_RAISED || ev->event == ALERT_UPDATED)) {
		g_autoptr(GError) err = NULL;
		g_array_set_size(app->evidence_flows, 0);
		flowstore_collect(app->flowstore, ev->host, heuristics_reason_win(ev->reason),
				  ev->time_ms, app->evidence_flows);
		if (!evidence_write(app->evidence, ev, (const Flow *)(void *)app->evidence_flows->data,
				    app->evidence_flows->len, evidence_exporter_addr, app,
				    ev->evidence, sizeof ev->evidence, &err))
			g_warning("%s", err->message);
	}
}

/* Every alert event: one log line a person can read, and the JSON line for tools, the
 * actions, the history and the followers. A cluster node of an alert group gets the
 * cluster's events here. */
static void
app_deliver(const AlertEvent *ev, gpointer user_data)
{
	App *app = user_data;
	g_autofree char *summary = alert_summary(ev);

	g_message("alert %s", summary);
	if (ev->reason < REASON_COUNT && ev->event < ALERT_KIND_COUNT)
		app->alerts[ev->reason][ev->event]++;
	SinkCtx ctx = {.exporter_name = exporter_name, .user_data = app};
	sink_set_write(app->sinks, ev, &ctx);
	/* actions only queue here: their programs, requests and nft calls run elsewhere */
	if (app->actions.set != NULL)
		sink_set_write(app->actions.set, ev, &ctx);
	if (app->history != NULL || control_server_followers(app->control) > 0) {
		g_autoptr(GString) j = g_string_new(NULL);
		alert_json(j, ev, exporter_name, app);
		if (app->history != NULL) {
			HsegNote n = {.t_ms = ev->time_ms, .reason = ev->reason, .kind = ev->event,
				      .json = j->str, .json_len = j->len};
			memcpy(n.host, ev->host, 16);
			history_add_note(app->history, HSEG_REC_EVENT, &n);
		}
		app_follow(app, "event", j);
	}
}

static void
on_alert(const AlertEvent *analyzer_ev, gpointer user_data)
{
	AlertEvent copy = *analyzer_ev; /* the analyzer's is const: the evidence names its file */

	app_evidence(&copy, user_data);
	app_deliver(&copy, user_data);
}

/* Each batch of decoded records: to the --flows CSV, then through the analyzer. With
 * evidence on, the analyzer hands each record it counts to the flow store before it may
 * raise an alert on it (AnalyzerConfig.flow_fn), so an alert's evidence ends with the
 * record that raised it. */
static void
on_flows(const Flow *flows, guint n, gpointer user_data)
{
	App *app = user_data;

	if (app->flows != NULL)
		flowsout_write(flows, n, app->flows);
	if (app->cluster == NULL)
		analyzer_process(app->analyzer, flows, n);
	else if (cluster_node_collects(app->cluster))
		cluster_node_flows(app->cluster, flows, n);
	else
		cluster_node_not_collected(app->cluster, n);
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
	case NOTICE_DENIED_SOURCE: {
		/* Each new source once, at most 5 lines a minute: a wrong allowed_exporters shows
		 * at once, a flood of spoofed sources does not fill the log. */
		static gint64 window_start;
		static guint in_window;
		static guint64 held;
		gint64 now = g_get_monotonic_time();
		if (now - window_start >= 60 * G_USEC_PER_SEC) {
			window_start = now;
			in_window = 0;
		}
		if (in_window >= 5) {
			held++;
			break;
		}
		in_window++;
		g_autofree char *more =
		    held > 0 ? g_strdup_printf(" (and %" G_GUINT64_FORMAT " more new sources not "
					       "logged; see spamflowctl exporters)", held)
			     : g_strdup("");
		held = 0;
		g_warning("datagrams from %s refused: not in [collector] allowed_exporters; if it "
			  "is your exporter, add its address. Counted per source in spamflowctl "
			  "exporters%s",
			  ep, more);
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
	App *app = user_data;

	if (what == ANALYZER_NOTICE_OUTSIDE) {
		g_warning("analyzer: %" G_GUINT64_FORMAT " records on mail and login ports in the "
			  "last %" G_GINT64_FORMAT " min had neither end in [analyzer] "
			  "internal_networks (%s) or mail_servers, and no record had one: no host "
			  "is tracked, nothing can be raised. If your hosts have other addresses "
			  "(public space, another private range), list them in internal_networks; if "
			  "the exports only carry transit, this is expected. Counted in stats as "
			  "flows_outside; said at most once an hour",
			  i->outside, i->outside_ms / 60000, app->cfg->internal_nets);
		return;
	}
	if (what == ANALYZER_NOTICE_FW_TEARDOWN) {
		const char *name = exporter_name(i->exporter, app);
		g_message("exporter %s domain %u sends firewall teardown events: each of its "
			  "sessions is counted once, at its teardown (a create it sends as well is "
			  "a flow only; a teardown whose responder sent at most one bare packet is "
			  "a failed attempt). Said again after an hour without one",
			  name != NULL ? name : "(gone)", i->domain);
		return;
	}
	if (what == ANALYZER_NOTICE_SUPPRESSION_EXPIRED && i->suppression != NULL) {
		const PolicySuppression *s = i->suppression;
		char addr[64];
		g_autofree char *set = report_time(s->set_ms);
		g_message("suppression expired: %s (%s), set by uid=%u at %s: %s",
			  flow_addr_str(s->addr, addr, sizeof addr),
			  s->all ? "all reasons" : alert_reason_name(s->reason), s->uid, set,
			  s->note);
		return;
	}
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

/* What the analyzer counts as the site's, at start and when a reload changes it: the first
 * thing to check when nothing is raised (or everything is). */
static void
app_log_scope(const Config *cfg)
{
	g_message("analyzer: internal networks %s; mail servers %s; resolvers %s", cfg->internal_nets,
		  cfg->mail_servers[0] != '\0' ? cfg->mail_servers
					       : "none listed (an unlisted MTA raises smtp-fanout, "
						 "which says it looks like a mail server)",
		  cfg->resolvers[0] != '\0' ? cfg->resolvers
					    : "none listed (external DNS is shown, never "
					      "corroborates)");
}

gboolean
app_init(App *app, Config *cfg, const AppOptions *opt, gboolean live, GError **error)
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
	app->live = live;
	app->action_log = action_log_new(ACTION_LOG_LEN);
	action_log_set_listener(app->action_log, on_action_record, app);
	if (!app_history_open(app, live, error))
		return FALSE;
	/* a replay acts on a capture's past: its hosts are not today's, so the quarantine
	 * only says what it would do */
	if (!live && cfg->quarantine_set[0] != '\0' && !cfg->quarantine_dry_run)
		g_message("replay: [quarantine] runs as dry_run (a capture's hosts are not "
			  "quarantined now)");
	if (!actions_from_config(&app->actions, cfg, app->action_log, !live, error))
		return FALSE;
	if (!live && (cfg->action_exec[0] != '\0' || cfg->action_webhook[0] != '\0'))
		g_message("replay: [actions] exec and webhook act on the capture's events (replay "
			  "with a configuration without them to keep them quiet)");
	acfg.alert_fn = on_alert;
	acfg.alert_data = app;
	acfg.notice_fn = on_analyzer_notice;
	acfg.notice_data = app;
	if (app->history != NULL) {
		acfg.slice_fn = on_slice;
		acfg.slice_data = app;
	}
	app->enricher = enricher_new(cfg->country_db, cfg->asn_db, error);
	if (app->enricher == NULL)
		return FALSE;
	if (enricher_active(app->enricher)) {
		acfg.geo_fn = enricher_geo_func;
		acfg.geo_data = app->enricher;
	}
	if (app->hooks.geo != NULL) {
		acfg.geo_fn = app->hooks.geo;
		acfg.geo_data = app->hooks.data;
	}
	if (cfg->evidence_dir[0] != '\0') {
		app->evidence = evidence_new(cfg->evidence_dir, cfg->evidence_max_age_s,
					     cfg->evidence_max_bytes, error);
		if (app->evidence == NULL)
			return FALSE;
		app->flowstore = flowstore_new(&acfg, cfg->evidence_max_flows,
					       cfg->evidence_memory_cap);
		acfg.flow_fn = flowstore_analyzer_flow;
		acfg.flow_data = app->flowstore;
		app->evidence_flows = g_array_new(FALSE, FALSE, sizeof(Flow));
	}
	app->acfg = acfg;
	app->analyzer = analyzer_new(&app->acfg, error);
	if (app->analyzer == NULL)
		return FALSE;
	app_log_scope(cfg);
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
gboolean
app_finish(App *app)
{
	g_autoptr(GError) err = NULL;
	gboolean ok = TRUE;

	if (app->analyzer != NULL)
		analyzer_flush_notices(app->analyzer); /* the last evictions, if any */
	/* the readings at exit (at the analyzer's clock, inside the slice under way), so that
	 * the store ends where the run did */
	if (app->history != NULL && app->analyzer != NULL && analyzer_now(app->analyzer) > 0)
		on_slice(analyzer_now(app->analyzer), app);
	if (app->history != NULL)
		history_sync(app->history); /* on disk before the summary counts it */
	if (app->sinks != NULL)
		(void)sink_set_flush(app->sinks, SINKS_FLUSH_MS); /* what is left is logged */
	if (app->actions.set != NULL)
		(void)sink_set_flush(app->actions.set, SINKS_FLUSH_MS);
	if (app->flows != NULL && !flowsout_close(app->flows, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		ok = FALSE;
	}
	return ok;
}

void
app_clear(App *app)
{
	/* (each step named for the exit watchdog, when armed: exitwatch.h) */
	exitwatch_step("the HTTP endpoint's stop");
	httpapi_stop(&app->http); /* first: its thread may be waiting on the main loop */
	exitwatch_step("the cluster node's stop (handover, bus)");
	g_clear_pointer(&app->cluster, cluster_node_free);
	exitwatch_step("the control socket's close");
	g_clear_pointer(&app->control, control_server_free);
	exitwatch_step("the listener's close");
	g_clear_pointer(&app->listener, listener_free);
	g_clear_pointer(&app->collector, collector_free);
	g_clear_pointer(&app->batch, flow_batch_free);
	g_clear_pointer(&app->flows, flowsout_free);
	exitwatch_step("the analyzer's free");
	g_clear_pointer(&app->analyzer, analyzer_free);
	g_clear_pointer(&app->allowed, netset_free);
	exitwatch_step("the sinks' stop");
	g_clear_pointer(&app->sinks, sink_set_free);
	exitwatch_step("the actions' stop");
	actions_clear(&app->actions);
	g_clear_pointer(&app->action_log, action_log_free);
	exitwatch_step("the enricher's, flow store's and evidence's close");
	g_clear_pointer(&app->enricher, enricher_free);
	g_clear_pointer(&app->flowstore, flowstore_free);
	g_clear_pointer(&app->evidence, evidence_free);
	if (app->evidence_flows != NULL)
		g_clear_pointer(&app->evidence_flows, g_array_unref);
	g_clear_pointer(&app->exporter_names, g_hash_table_unref);
	g_clear_pointer(&app->loop, g_main_loop_unref);
	g_clear_pointer(&app->reloaded, config_free);
	g_clear_pointer(&app->snapshot, snapshot_free);
	exitwatch_step("the history store's close");
	g_clear_pointer(&app->history, history_free);
	if (app->history_hosts != NULL)
		g_clear_pointer(&app->history_hosts, g_array_unref);
}

/* A suppression changed: into the state file now, not at the next interval. */
static void
app_state_changed(gpointer user_data)
{
	App *app = user_data;
	snapshot_take(app->snapshot);
}

gboolean
app_control_start(App *app, GError **error)
{
	g_autoptr(GError) err = NULL;

	app->commands = (CommandsDeps){.collector = app->collector,
				       .analyzer = app->analyzer,
				       .sinks = app->sinks,
				       .actions = app->actions.set,
				       .action_log = app->action_log,
				       .history = app->history,
				       .quarantine = app->actions.quarantine,
				       .listener = app->listener,
				       .cfg = &app->cfg,
				       .config_path = app->opt->config,
				       .exporter_name = exporter_name,
				       .exporter_data = app,
				       .reload = app_reload,
				       .reload_data = app,
				       .reload_counts = app->reloads,
				       .started_ms = g_get_real_time() / 1000,
				       .module_stats = app_module_stats,
				       .module_data = app,
				       .state_changed = app->snapshot != NULL ? app_state_changed : NULL,
				       .state_data = app,
				       .geo = app->enricher != NULL ? enricher_geo_func : NULL,
				       .geo_data = app->enricher,
				       .cluster = app->cluster};
	if (app->hooks.geo != NULL) {
		app->commands.geo = app->hooks.geo;
		app->commands.geo_data = app->hooks.data;
	}
	app->control = commands_control_new(app->cfg, &app->commands, &err);
	if (err != NULL) {
		g_propagate_error(error, g_steal_pointer(&err));
		return FALSE;
	}
	return TRUE;
}

/* What /metrics shows, gathered at each scrape on the main loop. */
static void
app_metrics_source(gpointer user_data, MetricsSource *out)
{
	App *app = user_data;
	static HttpStats hs;
	static ControlStats cs;
	static HistoryStats his;

	*out = (MetricsSource){.collector = app->collector,
			       .listener = app->listener != NULL ? listener_stats(app->listener) : NULL,
			       .listener_sockets =
				   app->listener != NULL ? listener_n_sockets(app->listener) : 0,
			       .analyzer = app->analyzer,
			       .sinks = app->sinks,
			       .actions = app->actions.set,
			       .alerts = (const guint64(*)[ALERT_KIND_COUNT])app->alerts,
			       .started_ms = app->commands.started_ms,
			       .now_ms = g_get_real_time() / 1000,
			       .version = SPAMFLOW_VERSION};
	if (app->http.server != NULL) {
		http_server_get_stats(app->http.server, &hs);
		out->http = &hs;
	}
	if (app->control != NULL) {
		control_server_get_stats(app->control, &cs);
		out->control = &cs;
	}
	if (app->history != NULL) {
		history_get_stats(app->history, &his);
		out->history = &his;
	}
	if (app->cluster != NULL) {
		static ClusterNodeStats cs_node;
		static AnalyzerStats cs_an;
		static guint64 cs_off[REASON_COUNT];
		cluster_node_get_stats(app->cluster, &cs_node);
		cluster_node_analyzer_stats(app->cluster, &cs_an);
		memset(cs_off, 0, sizeof cs_off);
		cluster_node_offenders_by_reason(app->cluster, cs_off);
		out->cluster = &cs_node;
		out->cluster_analyzer = &cs_an;
		out->cluster_offenders = cs_off;
	}
}

gboolean
app_http_start(App *app, GError **error)
{
	app->http = (HttpApi){.commands = &app->commands,
			      .control = &app->control,
			      .metrics_source = app_metrics_source,
			      .data = app,
			      .evidence_dir = app->evidence != NULL ? evidence_dir(app->evidence)
								    : NULL,
			      .max_reply = app->cfg->control_max_output > 1024
					       ? (gsize)app->cfg->control_max_output - 1024
					       : 0};
	return httpapi_start(&app->http, app->cfg, error);
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
	for (; *next <= ts_ms; *next += tick_ms) {
		if (app->cluster != NULL)
			cluster_node_tick(app->cluster, *next); /* the partitions' analyzers tick */
		else
			analyzer_tick(app->analyzer, *next);
	}
}

/* The capture time of the datagram being replayed, for the log lines. */
static gint64
replay_clock(gpointer data)
{
	return *(const gint64 *)data;
}

/* "12,345,678" */
static char *
thousands(guint64 v)
{
	g_autofree char *d = g_strdup_printf("%" G_GUINT64_FORMAT, v);
	GString *s = g_string_new(NULL);
	gsize n = strlen(d);
	for (gsize i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			g_string_append_c(s, ',');
		g_string_append_c(s, d[i]);
	}
	return g_string_free(s, FALSE);
}

/* On a terminal: where the replay is, every second or so. */
static void
replay_status(App *app, const char *file, guint i, guint n, gint64 ts_ms, gint64 start_us)
{
	AnalyzerStats as;
	analyzer_get_stats(app->analyzer, &as);
	guint64 recs = collector_totals(app->collector)->records;
	double secs = (double)(g_get_monotonic_time() - start_us) / 1e6;
	g_autofree char *r = thousands(recs);
	g_autofree char *rate = thousands((guint64)(secs > 0 ? recs / secs : 0));
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(ts_ms / 1000);
	g_autofree char *at = t != NULL ? g_date_time_format(t, "%F %T") : g_strdup("?");
	g_autofree char *line = g_strdup_printf(
	    "replay %u/%u %s: %s records (%s/s), capture time %s, %" G_GUINT64_FORMAT
	    " raised, %" G_GUINT64_FORMAT " offenders now",
	    i + 1, n, file, r, rate, at, as.events[ALERT_RAISED], as.offenders_active);
	daemon_log_status(line);
}

/* --replay-speed: wait until capture time ts_ms is due (the first datagram at
 * --replay-start, or at once). */
typedef struct {
	gint64 t0_ms;	/* capture time of the first datagram; G_MININT64 before it */
	gint64 wall0_us; /* when it was due */
} ReplayPace;

static void
replay_pace(const AppOptions *opt, ReplayPace *p, gint64 ts_ms)
{
	if (p->t0_ms == G_MININT64) {
		p->t0_ms = ts_ms;
		p->wall0_us = opt->replay_start_ms > 0 ? opt->replay_start_ms * 1000
						       : g_get_real_time();
	}
	gint64 due_us =
	    p->wall0_us + (gint64)((double)(ts_ms - p->t0_ms) * 1000.0 / opt->replay_speed);
	gint64 wait_us = due_us - g_get_real_time();
	if (wait_us > 0)
		g_usleep((gulong)MIN(wait_us, (gint64)G_USEC_PER_SEC * 3600));
}

int
app_run_replay(Config *cfg, const AppOptions *opt)
{
	App app = {0};
	ReplayStats total = {0};
	g_autoptr(GError) err = NULL;
	int rc = 0;
	gboolean cut_short = FALSE;
	gint64 tick_ms = tick_interval_ms(cfg), next_tick = G_MININT64, now_ms = 0;
	gboolean tty = isatty(STDERR_FILENO);
	/* the first status line at once (after 256 datagrams), then every second */
	gint64 start_us = g_get_monotonic_time(), next_status_us = start_us;
	guint nfiles = g_strv_length(opt->files);
	ReplayPace pace = {.t0_ms = G_MININT64};

	if (!app_init(&app, cfg, opt, FALSE, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	if (cfg->cluster_nats[0] != '\0') {
		/* a collector of the cluster, at capture time: its analyzers raise the alerts */
		ClusterNodeDeps cd = {.acfg = &app.acfg, .collector = app.collector, .data = &app};
		app.cluster = cluster_node_new(cfg, &cd, TRUE, &err);
		if (app.cluster == NULL) {
			g_printerr("spamflowd: %s\n", err->message);
			app_clear(&app);
			return 1;
		}
		g_message("replay: publishing the capture's flows to the cluster as node %s (the "
			  "cluster's analyzers raise the alerts)",
			  cluster_node_name(app.cluster));
	}
	/* log lines say when in the capture they happened */
	daemon_log_set_clock(replay_clock, &now_ms);
	for (guint i = 0; opt->files[i] != NULL; i++) {
		g_autoptr(Replay) r = replay_open(opt->files[i], &err);
		g_autofree char *base = g_path_get_basename(opt->files[i]);
		ReplayDatagram d;
		guint64 seen = 0, dispatched = 0;

		if (r == NULL) {
			daemon_log_status(NULL);
			g_printerr("spamflowd: cannot replay: %s\n", err->message);
			rc = 1;
			break;
		}
		while (replay_next(r, &d, &err)) {
			now_ms = d.ts_ms;
			if (opt->replay_speed > 0)
				replay_pace(opt, &pace, d.ts_ms);
			replay_ticks(&app, tick_ms, &next_tick, d.ts_ms);
			collector_input(app.collector, d.addr, d.port, d.payload, d.len, d.ts_ms);
			/* actions' children and requests finish on the main context */
			if ((++dispatched & 255) == 0 && sink_set_len(app.actions.set) > 0)
				g_main_context_iteration(NULL, FALSE);
			if (tty && (++seen & 255) == 0 && g_get_monotonic_time() >= next_status_us) {
				replay_status(&app, base, i, nfiles, d.ts_ms, start_us);
				next_status_us = g_get_monotonic_time() + G_USEC_PER_SEC;
			}
		}
		if (err != NULL) {
			/* what came before the cut was read and counts; the exit status says it */
			daemon_log_status(NULL);
			g_printerr("spamflowd: warning: %s (stopped reading it there)\n",
				   err->message);
			g_clear_error(&err);
			cut_short = TRUE;
		}
		flow_batch_flush(app.batch);
		replay_stats_add(&total, replay_stats(r));
	}
	daemon_log_status(NULL);
	if (app.cluster != NULL && !cluster_node_flush(app.cluster, 60000)) {
		g_printerr("spamflowd: the cluster's bus did not take every batch within 60 s\n");
		rc = 1;
	}
	if (rc == 0) {
		if (!app_finish(&app))
			rc = 1;
		daemon_log_set_clock(NULL, NULL);
		if (tty) {
			AnalyzerStats as;
			analyzer_get_stats(app.analyzer, &as);
			guint64 recs = collector_totals(app.collector)->records;
			double secs = (double)(g_get_monotonic_time() - start_us) / 1e6;
			g_autofree char *r = thousands(recs);
			g_autofree char *rate = thousands((guint64)(secs > 0 ? recs / secs : 0));
			g_autofree char *dg = thousands(total.datagrams);
			g_printerr("replayed %s records from %s datagrams in %.*f s (%s records/s); "
				   "%" G_GUINT64_FORMAT " alerts raised, %" G_GUINT64_FORMAT
				   " offenders at the end\n",
				   r, dg, secs < 10 ? 2 : 0, secs, rate, as.events[ALERT_RAISED],
				   as.offenders_active);
		}
		print_report(&app, &total, report_stream(&app, FALSE));
		if (rc == 0 && cut_short)
			rc = 3;
	}
	daemon_log_set_clock(NULL, NULL);
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
static void app_quarantine_renew(App *app, guint interval_s);

static gboolean
on_tick(gpointer user_data)
{
	App *app = user_data;

	analyzer_tick(app->analyzer, g_get_real_time() / 1000);
	app_quarantine_renew(app, (guint)((tick_interval_ms(app->cfg) + 999) / 1000));
	return G_SOURCE_CONTINUE;
}

static gboolean
on_stats(gpointer user_data)
{
	App *app = user_data;

	if (app->listener != NULL)
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
 * settings keeping its windows, the flow store the new windows, and the log level changes.
 * A broken file changes nothing. members gets what changed (commands_reload_members). */
gboolean
app_reload(gpointer user_data, GString *members, GError **error)
{
	App *app = user_data;
	AnalyzerConfig acfg;
	g_autoptr(Config) cfg = NULL;
	g_autoptr(GError) qerr = NULL;

	if (app->opt->config == NULL) {
		g_set_error_literal(error, CONFIG_ERROR, CONFIG_ERROR_FILE,
				    "started without -c: no configuration file to reload");
		app->reloads[1]++;
		return FALSE;
	}
	cfg = app->hooks.load_config != NULL ? app->hooks.load_config(app->hooks.data, error)
					     : config_new_from_file(app->opt->config, error);
	if (cfg != NULL) {
		app_apply_options(cfg, app->opt);
		acfg = *config_analyzer(cfg);
	}
	if (cfg == NULL || !analyzer_reconfigure(app->analyzer, &acfg, error)) {
		app->reloads[1]++;
		return FALSE;
	}
	if (app->flowstore != NULL)
		flowstore_reconfigure(app->flowstore, &acfg); /* the windows it keeps */
	/* the quarantine's safety lists follow [analyzer] (quarantine helper) */
	if (app->actions.quarantine != NULL &&
	    !quarantine_set_networks(app->actions.quarantine, cfg->internal_nets,
				     cfg->mail_servers, &qerr))
		g_warning("reload: the quarantine keeps its old networks: %s", qerr->message);
	commands_reload_members(members, app->cfg, cfg);
	if (g_strcmp0(app->cfg->internal_nets, cfg->internal_nets) != 0 ||
	    g_strcmp0(app->cfg->mail_servers, cfg->mail_servers) != 0 ||
	    g_strcmp0(app->cfg->resolvers, cfg->resolvers) != 0)
		app_log_scope(cfg);
	daemon_log_set_level(cfg);
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
	return G_SOURCE_CONTINUE;
}

/* ---- restart without loss: the state file ---- */

/* Build the collector's and the analyzer's state and write the file (SnapshotWriteFunc). */
static gboolean
state_write(const char *path, gint64 now_ms, gsize *bytes, gpointer user_data, GError **error)
{
	App *app = user_data;
	g_autoptr(GByteArray) coll = g_byte_array_new();
	g_autoptr(GByteArray) anlz = g_byte_array_new();
	g_autoptr(GByteArray) supp = g_byte_array_new();

	collector_state_save(app->collector, coll);
	analyzer_state_save(app->analyzer, anlz);
	analyzer_suppressions_save(app->analyzer, supp);
	StateSection sec[] = {
	    {.tag = STATEFILE_TAG_COLLECTOR, .data = coll->data, .len = coll->len},
	    {.tag = STATEFILE_TAG_ANALYZER, .data = anlz->data, .len = anlz->len},
	    {.tag = STATEFILE_TAG_SUPPRESSIONS, .data = supp->data, .len = supp->len},
	};
	return statefile_write(path, now_ms, sec, G_N_ELEMENTS(sec), bytes, error);
}

static gboolean
on_snapshot(gpointer user_data)
{
	App *app = user_data;
	snapshot_take(app->snapshot);
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

/* The suppressions of a state file that was read whole, whatever its age: dropped only
 * when they are over by now (or past max_suppressions). A bad section is reported and
 * skipped; the rest of the state stands. */
static void
app_suppressions_restore(App *app, const StateFile *sf)
{
	const StateSection *ss = statefile_section(sf, STATEFILE_TAG_SUPPRESSIONS);
	g_autoptr(GError) err = NULL;
	guint dropped = 0;

	if (ss == NULL)
		return; /* a file from before suppressions */
	if (!analyzer_suppressions_load(app->analyzer, ss->data, ss->len,
					g_get_real_time() / 1000, &dropped, &err)) {
		g_warning("state file %s: %s: not restored", snapshot_path(app->snapshot),
			  err->message);
		return;
	}
	g_message("restored %u suppressions (%u over or past max_suppressions, dropped)",
		  analyzer_suppression_count(app->analyzer), dropped);
}

/* At start, before any datagram: restore what the last run saved, when it is recent and
 * whole. Anything wrong with the file is reported and the file is not used at all, except
 * that the suppressions of a whole file are restored whatever its age. */
static gboolean
app_state_restore(App *app, GError **error)
{
	const char *path = snapshot_path(app->snapshot);
	StateFile sf;
	g_autoptr(GError) err = NULL;
	CollectorStateLoad cl;
	AnalyzerStats an;

	if (!statefile_read(path, &sf, &err)) {
		if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_message("no state file at %s: starting afresh", path);
			snapshot_set_restored(app->snapshot, g_strdup("{\"result\":\"none\"}"));
		} else {
			g_warning("%s: ignored, starting afresh", err->message);
			snapshot_set_restored(app->snapshot, g_strdup("{\"result\":\"invalid\"}"));
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
		snapshot_set_restored(app->snapshot,
				      g_strdup_printf("{\"result\":\"too_old\",\"age_s\":%" G_GINT64_FORMAT "}",
						      age_ms / 1000));
		app_suppressions_restore(app, &sf);
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
		snapshot_set_restored(app->snapshot, g_strdup_printf(
		    "{\"result\":\"restored\",\"age_s\":%" G_GINT64_FORMAT ",\"exporters\":%u,"
		    "\"domains\":%u,\"templates\":%u,\"exporters_dropped\":%u,"
		    "\"domains_dropped\":%u,\"templates_dropped\":%u,\"hosts\":%u,"
		    "\"offenders\":%u}",
		    age_ms / 1000, cl.exporters, cl.domains, cl.templates, cl.exporters_dropped,
		    cl.domains_dropped, cl.templates_dropped, (guint)an.hosts_tracked, (guint)an.offenders_active));
		app_suppressions_restore(app, &sf);
		statefile_clear(&sf);
		return TRUE;
	}
	g_warning("%s: state file not used, starting afresh", err->message);
	snapshot_set_restored(app->snapshot, g_strdup("{\"result\":\"invalid\"}"));
	gboolean ok = app_state_reset(app, error);
	if (ok)
		app_suppressions_restore(app, &sf);
	statefile_clear(&sf);
	return ok;
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
	if (!statefile_prepare_dir(snapshot_path(app->snapshot), uid, gid, &err))
		g_warning("%s: snapshots will fail", err->message);
}

/* ---- quarantine reconcile at start (issue 15, quarantine helper; the lead may move it) ----
 * The nftables set outlived the last run (it lives in the kernel): make it agree with the
 * offenders the state file brought back. */
static void
collect_want(const AnalyzerOffender *o, gpointer user_data)
{
	GArray *want = user_data;
	QuarantineWant w = {.reason = o->reason,
			    .severity = o->last != NULL ? o->last->severity : ALERT_SEV_WARNING,
			    .mta_like = o->last != NULL && o->last->mta_like};
	memcpy(w.host, o->host, 16);
	g_array_append_val(want, w);
}

/* on_tick: offenders still active keep their place in the set */
static void
app_quarantine_renew(App *app, guint interval_s)
{
	if (app->actions.quarantine == NULL)
		return;
	g_autoptr(GArray) want = g_array_new(FALSE, FALSE, sizeof(QuarantineWant));
	analyzer_foreach_offender(app->analyzer, collect_want, want);
	quarantine_renew(app->actions.quarantine, (const QuarantineWant *)(void *)want->data,
			 want->len, interval_s);
}

static void
app_quarantine_reconcile(App *app)
{
	if (app->actions.quarantine == NULL)
		return;
	g_autoptr(GArray) want = g_array_new(FALSE, FALSE, sizeof(QuarantineWant));
	analyzer_foreach_offender(app->analyzer, collect_want, want);
	quarantine_reconcile(app->actions.quarantine, (const QuarantineWant *)(void *)want->data,
			     want->len);
}
/* ---- end of the quarantine reconcile ---- */

/* ---- [cluster] ---- */

static gboolean
app_cluster_offender(Analyzer *a, const guint8 host[16], AlertReason r, GString *out,
		     gpointer data)
{
	App *app = data;
	return commands_offender_json(&app->commands, a, host, r, out);
}

/* Another node asks what this one holds about a host (`host ADDR` routed to the owner of
 * its partition): the reply object, one line without its newline. Read-only: host only. */
static void
app_cluster_answer(const char *line, GString *out, gpointer data)
{
	App *app = data;
	ControlRequest req;
	g_autoptr(GError) err = NULL;
	ControlPeer peer = {.uid = geteuid(), .gid = getegid(), .pid = 0};
	Analyzer *a = NULL;
	char owner[64];

	if (control_parse(line, &req, &err) && req.cmd->id == CONTROL_CMD_HOST)
		a = cluster_node_analyzer_for(app->cluster, req.addr, owner);
	if (err != NULL) {
		control_reply_error(out, NULL, err->message);
	} else if (req.cmd->id != CONTROL_CMD_HOST) {
		control_reply_error(out, req.cmd->name, "only host is answered for other nodes");
	} else if (a == NULL) {
		g_autofree char *msg = g_strdup_printf(
		    "%s: node %s does not own its partition (any more): try again", req.addr_text,
		    cluster_node_name(app->cluster));
		control_reply_error(out, req.cmd->name, msg);
	} else {
		CommandsDeps d = app->commands;
		gsize start = out->len;
		d.analyzer = a;
		d.cluster = NULL;
		req.max_reply = 1 << 20;
		if (!commands_run(NULL, &req, &peer, out, &d, &err)) {
			g_string_truncate(out, start);
			control_reply_error(out, req.cmd->name, err->message);
		}
	}
	while (out->len > 0 && out->str[out->len - 1] == '\n')
		g_string_truncate(out, out->len - 1);
}

static void
app_cluster_exporters(GString *out, gpointer data)
{
	App *app = data;
	ControlRequest req;
	ControlPeer peer = {.uid = geteuid(), .gid = getegid(), .pid = 0};
	CommandsDeps d = app->commands;

	d.cluster = NULL; /* this node's own */
	if (!control_parse("exporters", &req, NULL))
		return;
	req.max_reply = 1 << 20;
	(void)commands_run(NULL, &req, &peer, out, &d, NULL);
}


static void
app_cluster_stored(gpointer tag, guint64 seq, const char *error, gpointer data)
{
	(void)data;
	commands_cluster_stored(tag, seq, error);
}

/* the owner of host's partition forgot it: its offences end without a cleared event, so
 * the actions stop waiting for one, as `forget` does on one daemon */
static void
app_cluster_forgotten(const guint8 host[16], gpointer data)
{
	App *app = data;
	char text[64];

	flow_addr_str(host, text, sizeof text);
	g_message("cluster: %s forgotten by its partition's owner: the actions stop waiting "
		  "for its cleared events",
		  text);
	if (app->actions.set != NULL)
		sink_set_forget(app->actions.set, host);
}

static gboolean
app_cluster_start(App *app, GError **error)
{
	g_autofree char *position =
	    app->history != NULL
		? g_build_filename(history_dir(app->history), "cluster-history.position", NULL)
		: NULL;
	ClusterNodeDeps cd = {.acfg = &app->acfg,
			      .collector = app->collector,
			      .evidence = app_evidence,
			      .deliver = app_deliver,
			      .offender_json = app_cluster_offender,
			      .answer = app_cluster_answer,
			      .exporters = app_cluster_exporters,
			      .readings = app->history != NULL ? app_history_readings : NULL,
			      .history = app->history != NULL ? app_history_write : NULL,
			      .history_position = position,
			      .stored = app_cluster_stored,
			      .forgotten = app_cluster_forgotten,
			      .data = app};

	if (app->cfg->cluster_nats[0] == '\0')
		return TRUE;
	app->cluster = cluster_node_new(app->cfg, &cd, FALSE, error);
	return app->cluster != NULL;
}

int
app_run_live(Config *cfg, const AppOptions *opt)
{
	App app = {0};
	g_autoptr(GError) err = NULL;
	guint ids[7] = {0};
	int rc = 0;

	/* Bind first: a port in use should fail before anything else is set up. */
	/* a cluster's analyzer-only node receives no exports: it opens no flow socket */
	if (cluster_node_config_collects(cfg))
		app.listener = listener_new((const char *const *)cfg->listen, cfg->rcvbuf, &err);
	if ((app.listener == NULL && err != NULL) || !app_init(&app, cfg, opt, TRUE, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	if (cfg->state_file[0] != '\0') {
		app.snapshot = snapshot_new(cfg->state_file, state_write, &app);
		app_state_prepare(&app);
		if (!app_state_restore(&app, &err)) {
			g_printerr("spamflowd: %s\n", err->message);
			app_clear(&app);
			return 1;
		}
	}
	app_quarantine_reconcile(&app); /* after the restore: the offenders are back */
	if (!app_cluster_start(&app, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	for (guint i = 0; app.listener != NULL && i < listener_n_sockets(app.listener); i++)
		g_message("listening on %s (udp, receive buffer %" G_GSIZE_FORMAT " bytes)",
			  listener_address(app.listener, i), listener_rcvbuf(app.listener, i));
	/* The signals are ours before anything outside can see the daemon: a SIGHUP (a reload,
	 * logrotate) sent once the control socket is there killed a daemon still starting.
	 * Their sources run with the main loop. */
	app.loop = g_main_loop_new(NULL, FALSE);
	ids[2] = g_unix_signal_add(SIGINT, on_quit_signal, &app);
	ids[3] = g_unix_signal_add(SIGTERM, on_quit_signal, &app);
	ids[5] = g_unix_signal_add(SIGHUP, on_hup, &app);
	/* Then the control socket, then privileges go: bind, then drop, then parse. */
	/* the quarantine's nft calls need CAP_NET_ADMIN for as long as the daemon runs */
	if (!app_control_start(&app, &err) || !app_http_start(&app, &err) ||
	    !commands_drop_privileges(cfg, quarantine_needs_net_admin(app.commands.quarantine),
				      &err) ||
	    !httpapi_run(&app.http, &err)) {
		g_printerr("spamflowd: %s\n", err->message);
		app_clear(&app);
		return 1;
	}
	if (app.snapshot != NULL) {
		/* Now as the user that will write it: say so at start, not at the first failure. */
		g_autofree char *dir = g_path_get_dirname(snapshot_path(app.snapshot));
		if (access(dir, W_OK | X_OK) != 0)
			g_warning("state directory %s is not writable by this process (%s): "
				  "snapshots will fail; chown it to [daemon] user",
				  dir, g_strerror(errno));
	}
	if (app.listener != NULL)
		listener_attach(app.listener, app.collector, app.batch, NULL);
	ids[0] = g_timeout_add_seconds(EXPIRE_INTERVAL_S, on_expire, &app);
	if (cfg->stats_interval_s > 0)
		ids[1] = g_timeout_add_seconds(cfg->stats_interval_s, on_stats, &app);
	/* Clears and due updates when no flows arrive (tick_interval_ms()). */
	ids[4] = g_timeout_add((guint)tick_interval_ms(cfg), on_tick, &app);
	if (app.snapshot != NULL && cfg->state_interval_s > 0)
		ids[6] = g_timeout_add_seconds(cfg->state_interval_s, on_snapshot, &app);

	g_main_loop_run(app.loop);

	/* from here on a step that never ends is told, not waited for (main() disarms it) */
	exitwatch_arm(EXITWATCH_TIMEOUT_S);
	exitwatch_step("the last flows");
	for (guint i = 0; i < G_N_ELEMENTS(ids); i++)
		if (ids[i] != 0)
			g_source_remove(ids[i]);
	if (app.listener != NULL)
		listener_detach(app.listener);
	flow_batch_flush(app.batch);
	/* hands the partitions over and publishes what waits, before the sinks close */
	exitwatch_step("the cluster node's stop (handover, bus)");
	g_clear_pointer(&app.cluster, cluster_node_free);
	if (app.snapshot != NULL) {
		exitwatch_step("the state file");
		snapshot_wait(app.snapshot);
		snapshot_save(app.snapshot, TRUE);
	}
	exitwatch_step("the sinks' and actions' last events");
	if (!app_finish(&app))
		rc = 1;
	exitwatch_step("the summary");
	print_report(&app, NULL, stderr);
	app_clear(&app);
	exitwatch_step("the end of main()");
	return rc;
}

