/* Shared by the sink unit tests (test_sink_csv.c, test_sink_syslog.c): one fully filled
 * alert event with known values, and an exporter-name callback. Header-only. */
#pragma once

#include "alert.h"
#include "flow.h"

#include <arpa/inet.h>
#include <string.h>

static inline void
sample_addr(guint8 a[16], const char *text)
{
	guint8 v4[4];
	memset(a, 0, 16);
	if (inet_pton(AF_INET, text, v4) == 1)
		flow_addr_set_v4(a, v4);
	else
		g_assert(inet_pton(AF_INET6, text, a) == 1);
}

/* raised smtp-fanout, warning, host 192.0.2.10, two top destinations (one enriched, one
 * not), two exporters (one unknown by name), no peer, no evidence; looks like a mail server
 * (4 inbound sessions), 37 external DNS queries, the last to 8.8.8.8, not corroborated. */
static inline AlertEvent
sample_alert(gint64 time_ms)
{
	AlertEvent ev;
	memset(&ev, 0, sizeof ev);
	ev.time_ms = time_ms;
	ev.event = ALERT_RAISED;
	ev.reason = REASON_SMTP_FANOUT;
	ev.severity = ALERT_SEV_WARNING;
	sample_addr(ev.host, "192.0.2.10");
	ev.level = 1.25;
	ev.window[WINDOW_SHORT] = (AlertWindow){600000, 62, 50, 62, FALSE, 70, 71, 9, 62, 0};
	ev.window[WINDOW_LONG] = (AlertWindow){3600000, 80, 150, 80, TRUE, 90, 95, 12, 80, 0};
	ev.trigger = WINDOW_SHORT;
	ev.flows = 90;
	ev.attempts = 95;
	ev.failed = 12;
	ev.succeeded = 83;
	ev.answered = 77;
	ev.failed_share = 12.0 / 95.0;
	ev.first_seen_ms = time_ms - 5000;
	ev.last_seen_ms = time_ms;
	ev.n_top = 2;
	sample_addr(ev.top[0].addr, "198.51.100.7");
	ev.top[0].count = 3;
	memcpy(ev.top[0].country, "US", 3);
	ev.top[0].asn = 64500;
	sample_addr(ev.top[1].addr, "2001:db8::9");
	ev.top[1].count = 1;
	ev.n_exporters = 2;
	ev.exporters[0] = 0;
	ev.exporters[1] = 7;
	ev.sampling = 1;
	ev.raised_ms = time_ms;
	ev.n_countries = 1;
	ev.n_asns = 1;
	ev.mta_like = TRUE;
	ev.inbound_smtp = 4;
	ev.dns_external = 37;
	sample_addr(ev.dns_server, "8.8.8.8");
	ev.has_dns_server = TRUE;
	return ev;
}

/* exporter 0 is 203.0.113.1; the others are unknown (printed "#N") */
static inline const char *
sample_exporter_name(guint32 index, gpointer user_data)
{
	(void)user_data;
	return index == 0 ? "203.0.113.1" : NULL;
}
