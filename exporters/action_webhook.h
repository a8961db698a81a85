/* The webhook action: every alert event that passes its filter is POSTed to one URL (the
 * JSON sink's object, or a chat {"text": ...} line) by a worker thread running libcurl's multi
 * interface, off the collector's thread; a bounded queue, retries with backoff, counters in
 * stats. One Sink = one target URL. */
#pragma once

#include "action.h"
#include "sink.h"

#include <glib.h>

typedef enum { WEBHOOK_FORMAT_JSON, WEBHOOK_FORMAT_CHAT } WebhookFormat;

typedef struct {
	const char *url;
	const char *header;  /* one "Name: value" line, or NULL/"" */
	const char *ca_file; /* NULL/"" = the system's CA store; TLS always verified */
	WebhookFormat format;
	guint queue, timeout_s, max_attempts, backoff_ms;
	ActionFilterSpec filter;
} ActionWebhookConfig;

/* Requests at once per target (and connections kept open to it). While the target fails,
 * one request at a time probes it. */
#define WEBHOOK_MAX_IN_FLIGHT 4
#define WEBHOOK_BACKOFF_MAX_MS (5u * 60u * 1000u)
/* (host, reason) pairs the filter remembers, for the cleared events. */
#define WEBHOOK_FILTER_TRACKED 65536

/* kind "webhook", name the URL without its password and query (which may hold secrets). The
 * worker thread starts at the first event, after the daemon has given up its capabilities
 * (capset(2) is per thread: a thread started before would keep them). */
Sink *action_webhook_new(const ActionWebhookConfig *c, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* spamflowctl forget/release: forget that events of (host, reason) were posted (every reason
 * when reason < 0), so that its cleared event will not be. Main thread; NULL-safe, and a
 * no-op on a sink that is not a webhook. */
void action_webhook_forget(Sink *s, const guint8 host[16], int reason);

/* ---- the pure parts (unit tests) ---- */

/* An absolute http:// or https:// URL (no default scheme). *name: the URL as stats and logs
 * show it (no password, no query, no fragment); *clear_text: http:// to a host that is not
 * loopback (the header goes in clear). */
gboolean action_webhook_check_url(const char *url, char **name, gboolean *clear_text,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* "Name: value": a token name, a non-empty value, no CR/LF or other control character; the
 * trailing newline of a file is allowed (stripped). *line: the line curl sends. The error
 * never quotes the value (it is usually a token). */
gboolean action_webhook_check_header(const char *header, char **line,
				     GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The wait before the next attempt after `failures` failed ones in a row (>= 1): base_ms
 * doubling, at most WEBHOOK_BACKOFF_MAX_MS, minus a jitter of up to a quarter (jitter in
 * [0, 1)). */
guint action_webhook_backoff_ms(guint base_ms, guint failures, double jitter);

typedef enum {
	WEBHOOK_DELIVERED, /* 2xx */
	WEBHOOK_RETRY,	   /* connection, TLS, timeout, 5xx, 429, 408 */
	WEBHOOK_REFUSED,   /* any other status (4xx, an unfollowed 3xx): not retried */
} WebhookVerdict;

/* curl_code: the transfer's CURLcode; status: the HTTP status (0 when none). */
WebhookVerdict action_webhook_verdict(int curl_code, long status);
/* The request body for one event. */
void action_webhook_body(GString *out, WebhookFormat format, const AlertEvent *ev,
			 const SinkCtx *ctx);
