/* Counter reports: the per-exporter table and totals for people, one JSON document for
 * scripts, and the periodic one-line counters of the live daemon. Pure rendering over the
 * collector's session list and the reader/listener counters. */
#pragma once

#include "analyzer.h"
#include "collector.h"
#include "sink.h"
#include "listener.h"
#include "replay.h"

#include <glib.h>

/* Counters beyond the collector's; any member may be NULL. */
typedef struct {
	const ReplayStats *replay;
	const ListenerStats *listener;
	const AnalyzerStats *analyzer;
	const SinkSet *sinks; /* alert sinks, one counter row each */
	const SinkSet *actions; /* actions (exec, webhook, quarantine), the same way */
	/* optional modules' counters as JSON members ,"name":{"counter":N,...} (flat) */
	void (*module_stats)(gpointer data, GString *out);
	gpointer module_data;
} ReportExtra;

void report_text(GString *out, const Collector *c, const ReportExtra *x);
/* {"exporters":[...],"totals":{...},"replay":{...}|"listener":{...},"analyzer":{...},
 * "sinks":[{...}],"actions":[{...}]} and a newline. */
void report_json(GString *out, const Collector *c, const ReportExtra *x);
/* Live mode: one g_message() with the totals, then one per exporter session. */
void report_log(const Collector *c, const ListenerStats *listener);

/* JSON string literal (quotes included) for UTF-8 text. */
void report_json_string(GString *out, const char *s);
/* A session's exporter: its endpoint, or an sFlow agent's bare address */
char *report_exporter(const SessionView *v);
/* "192.0.2.1:2055" or "[2001:db8::1]:2055" */
char *report_endpoint(const guint8 addr[16], guint16 port);
/* "2024-01-31T12:00:00.123Z", or "-" for 0 */
char *report_time(gint64 ms);
