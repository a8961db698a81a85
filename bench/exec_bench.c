/* exec_bench: events per second through the exec hook action (issue 15). N raised events,
 * each for its own host (so none waits for another run of its host), are written into an
 * exec action with a queue that holds them all; the default main context runs them at
 * max_running at once. Prints one JSON object: events, seconds, events/s, and the time the
 * N write() calls took (the hot path's share).
 *
 * usage: exec_bench PROGRAM [EVENTS [MAX_RUNNING]] */
#include "action_exec.h"
#include "flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
no_name(guint32 index, gpointer user_data)
{
	(void)index;
	(void)user_data;
	return NULL;
}

static gboolean
wake(gpointer user_data)
{
	(void)user_data;
	return G_SOURCE_REMOVE;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: exec_bench PROGRAM [EVENTS [MAX_RUNNING]]\n");
		return 2;
	}
	guint n = argc > 2 ? (guint)strtoul(argv[2], NULL, 10) : 2000;
	guint maxr = argc > 3 ? (guint)strtoul(argv[3], NULL, 10) : 4;
	ActionExecConfig c = {.path = argv[1],
			      .timeout_s = 10,
			      .max_running = maxr,
			      .queue = n,
			      .host_limit = 6,
			      .output_lines = 5};
	g_autoptr(GError) err = NULL;
	SinkCtx ctx = {.exporter_name = no_name};

	if (!action_filter_spec_parse(&c.filter, "", "", "", &err)) {
		fprintf(stderr, "%s\n", err->message);
		return 1;
	}
	Sink *s = action_exec_new(&c, &err);
	if (s == NULL) {
		fprintf(stderr, "%s\n", err->message);
		return 1;
	}
	AlertEvent ev;
	memset(&ev, 0, sizeof ev);
	ev.event = ALERT_RAISED;
	ev.reason = REASON_SMTP_FANOUT;
	ev.severity = ALERT_SEV_WARNING;
	ev.level = 1.2;
	gint64 t0 = g_get_monotonic_time();
	for (guint i = 0; i < n; i++) {
		guint8 v4[4] = {10, (guint8)(i >> 16), (guint8)(i >> 8), (guint8)i};
		flow_addr_set_v4(ev.host, v4);
		s->ops->write(s, &ev, &ctx);
	}
	gint64 t_write = g_get_monotonic_time() - t0;
	while (action_exec_running(s) + action_exec_queued(s) > 0) {
		GSource *t = g_timeout_source_new(50);
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
	}
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
	g_autoptr(GString) st = g_string_new(NULL);
	s->ops->stats_json(s, st);
	printf("{\"program\":\"%s\",\"events\":%u,\"max_running\":%u,\"seconds\":%.3f,"
	       "\"events_per_s\":%.0f,\"write_us_per_event\":%.2f,%s}\n",
	       argv[1], n, maxr, secs, n / secs, (double)t_write / n, st->str);
	sink_free(s);
	return 0;
}
