/* spamflowd: the daemon's main(). Options and the configuration in, then live mode (UDP
 * listeners on the glib main loop, periodic expiry, analyzer ticks and counter lines, clean
 * exit on SIGINT/SIGTERM) or replay mode (capture files through the same collector and
 * analyzer, then a summary), both in app.c. */
#include "app.h"
#include "bus.h"
#include "config.h"
#include "daemon_log.h"
#include "exitwatch.h"
#include "spamflow-config.h"

#include <stdio.h>

static gboolean
parse_options(AppOptions *opt, int *argc, char ***argv, GError **error)
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
	    {"replay-speed", 0, 0, G_OPTION_ARG_DOUBLE, &opt->replay_speed,
	     "Replay at X times the capture's pace (default 0: as fast as possible); with "
	     "[cluster], the collectors of one capture stay in step this way",
	     "X"},
	    {"replay-start", 0, 0, G_OPTION_ARG_INT64, &opt->replay_start_ms,
	     "With --replay-speed: the Unix time in ms when the first datagram is due (default: "
	     "at once), so that several replays run in step",
	     "MS"},
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
	    {"history", 0, 0, G_OPTION_ARG_FILENAME, &opt->history,
	     "Keep the history store in DIR, overriding [history] dir ('' = none; a replay writes "
	     "there too)",
	     "DIR"},
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
	if (!(opt->replay_speed >= 0.0 && opt->replay_speed <= 1e9)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--replay-speed: %g is not a factor from 0 (as fast as possible) to 1e9",
			    opt->replay_speed);
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
options_clear(AppOptions *opt)
{
	g_free(opt->config);
	g_strfreev(opt->listen);
	g_free(opt->flows);
	g_free(opt->alerts);
	g_free(opt->state);
	g_free(opt->history);
	g_strfreev(opt->files);
}

int
main(int argc, char **argv)
{
	AppOptions opt = {.stats_interval = -1};
	g_autoptr(GError) err = NULL;
	g_autoptr(Config) cfg = NULL;
	int rc;

	daemon_log_install();

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
	app_apply_options(cfg, &opt);
	daemon_log_set_level(cfg);
	if (opt.print_config) {
		g_autofree char *text = config_to_string(cfg);
		fputs(text, stdout);
		options_clear(&opt);
		return 0;
	}
	gboolean cluster = cfg->cluster_nats[0] != '\0';
	rc = opt.replay ? app_run_replay(cfg, &opt) : app_run_live(cfg, &opt);
	if (cluster) {
		exitwatch_step("libnats' shutdown");
		bus_shutdown_library(); /* libnats' threads, after the last bus */
	}
	options_clear(&opt);
	exitwatch_disarm(); /* armed by app_run_live() once its main loop returned */
	return rc;
}
