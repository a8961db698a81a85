/* The syslog alert sinks.
 * Local: to /dev/log as syslog(3) would write it, with an ident and facility; severity
 * from the alert's severity (info, notice, warning, critical -> LOG_INFO, LOG_NOTICE,
 * LOG_WARNING, LOG_CRIT); one line per event of key=value pairs (the keys are the CSV
 * columns, alertfields.h, in that order; a null value is left out; a value that is empty or
 * holds a space, '"', '\' or '=' is in double quotes with '"' and '\' backslash-escaped).
 * Remote: RFC 5424 messages to udp://host:port (one per datagram, RFC 5426) or
 * tcp://host:port (octet-counting framing, RFC 6587 3.4.1), every field in one SD element
 * [spamflow@32473 key="value" ...]; TCP is non-blocking on the glib main loop with a
 * bounded queue, reconnecting with backoff (1 s doubling to 60 s). */
#pragma once

#include "sink.h"
#include "syslog_local.h"

#include <time.h>

/* 32473 is the example Private Enterprise Number IANA reserves for documentation
 * (RFC 5612): spamflow has no PEN of its own. Change both together if it ever gets one. */
#define SINK_SYSLOG_PEN 32473
#define SINK_SYSLOG_SD_ID "spamflow@32473"
#define SINK_SYSLOG_DEFAULT_PORT 514
#define SINK_SYSLOG_QUEUE_DEFAULT 10000
#define SINK_SYSLOG_BACKOFF_MIN_S 1
#define SINK_SYSLOG_BACKOFF_MAX_S 60

/* ---- local ---- */

/* "daemon", "local0".."local7", "mail", "user", "auth", "authpriv", "cron", "ftp", "kern",
 * "lpr", "news", "syslog", "uucp" (any case) -> LOG_DAEMON etc. */
gboolean sink_syslog_facility_from_name(const char *name, int *facility,
					GError **error) G_GNUC_WARN_UNUSED_RESULT;
const char *sink_syslog_facility_name(int facility); /* NULL if not in the table */
int sink_syslog_severity(AlertSeverity s);	     /* LOG_INFO .. LOG_CRIT */

/* Messages as syslog(3) with LOG_PID writes them (syslog_local_format()), sent on the
 * sink's own non-blocking socket connected to /dev/log: it never waits for the syslog
 * daemon. Every event that is not handed over is counted in st.errors, never fatal: no
 * daemon (no /dev/log, or a stale socket: connected again at the next event), a daemon not
 * reading (its queue full: the event is dropped), a message too long. openlog() is not
 * called: the process's own syslog(3) settings are left alone. SIGHUP (reopen) connects
 * afresh. */
Sink *sink_syslog_new(const char *ident, int facility, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The same on another socket path (tests). */
Sink *sink_syslog_new_at(const char *path, const char *ident, int facility,
			 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The key=value line, without a newline. */
void sink_syslog_format_kv(GString *out, const AlertEvent *ev, const SinkCtx *ctx);

/* ---- remote ---- */

typedef enum {
	SINK_SYSLOG_UDP,
	SINK_SYSLOG_TCP,
} SinkSyslogTransport;

/* "udp://host:port", "tcp://[2001:db8::1]:6514", "tcp://logs.example.org" (port 514). */
gboolean sink_syslog_parse_url(const char *url, SinkSyslogTransport *transport, char **host,
			       guint16 *port, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* queue_max: TCP events held while the server is away (0 = SINK_SYSLOG_QUEUE_DEFAULT);
 * overflow drops the new event, counted in st.dropped. UDP names are resolved here
 * (blocking, once); TCP connects asynchronously on the default main context. */
Sink *sink_syslog_remote_new(const char *url, guint queue_max,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* APP-NAME and facility of the messages (default "spamflowd", LOG_DAEMON). */
void sink_syslog_remote_set_origin(Sink *s, const char *app_name, int facility);
/* For a run without a main loop (replay) or at exit: iterate the default main context
 * until the TCP queue is written out or timeout_ms passed. TRUE when nothing is left.
 * Any other sink: TRUE at once. */
gboolean sink_syslog_remote_flush(Sink *s, guint timeout_ms);
gboolean sink_is_syslog_remote(const Sink *s);
guint sink_syslog_remote_queue_len(const Sink *s);
gboolean sink_syslog_remote_connected(const Sink *s);

/* One RFC 5424 message, no framing: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
 * [spamflow@32473 ...] MSG. MSGID is the event kind (raised, updated, cleared); MSG a short
 * summary for people. time_us: the message's creation time (wall clock, UTC). */
void sink_syslog_format_5424(GString *out, const AlertEvent *ev, const SinkCtx *ctx, int facility,
			     const char *hostname, const char *app_name, guint pid, gint64 time_us);
/* RFC 5424 6.3.3 PARAM-VALUE: '"', '\' and ']' escaped with '\'; control characters
 * (never in spamflow's values, but a path could hold one) replaced by '?'. */
void sink_syslog_sd_value(GString *out, const char *value);
/* RFC 6587 3.4.1 octet counting: "MSG-LEN SP SYSLOG-MSG". */
void sink_syslog_frame(GString *out, const char *msg, gsize len);
