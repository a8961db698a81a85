/* The webhook action (action_webhook.h). write() runs on the main thread: it filters, formats
 * the body and queues it, nothing more. A worker thread owns a curl multi handle (its
 * connection pool keeps connections to the target open between events) and posts what is
 * queued; it sleeps in curl_multi_poll() and write() wakes it with curl_multi_wakeup(). The
 * worker never logs itself: its lines go to the main thread (an idle source on the default
 * main context), where the daemon's log writer and sink_log_error()'s rate limit live. */
#include "action_webhook.h"

#include "alertsummary.h"
#include "json.h"
#include "spamflow-config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- pure parts ---- */

static gboolean
host_is_loopback(const char *host)
{
	guint8 a[16];
	g_autofree char *h = NULL;

	if (g_ascii_strcasecmp(host, "localhost") == 0)
		return TRUE;
	if (host[0] == '[') { /* curl gives IPv6 literals with their brackets */
		gsize n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			return FALSE;
		h = g_strndup(host + 1, n - 2);
		char *zone = strchr(h, '%');
		if (zone != NULL)
			*zone = '\0';
		return inet_pton(AF_INET6, h, a) == 1 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a);
	}
	return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

gboolean
action_webhook_check_url(const char *url, char **name, gboolean *clear_text, GError **error)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	gboolean ok = FALSE;

	if (u == NULL) {
		g_set_error(error, ACTION_ERROR, 0, "webhook: out of memory");
		return FALSE;
	}
	/* flags 0: no CURLU_DEFAULT_SCHEME, "example.com/hook" is not taken for http:// */
	CURLUcode rc =
	    url != NULL ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_MALFORMED_INPUT;
	if (rc != CURLUE_OK) {
		g_set_error(error, ACTION_ERROR, 0,
			    "webhook '%s': not an absolute http:// or https:// URL (%s)",
			    url != NULL ? url : "", curl_url_strerror(rc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (g_ascii_strcasecmp(scheme, "http") != 0 && g_ascii_strcasecmp(scheme, "https") != 0)) {
		g_set_error(error, ACTION_ERROR, 0,
			    "webhook '%s': scheme '%s' is not http or https", url,
			    scheme != NULL ? scheme : "");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		g_set_error(error, ACTION_ERROR, 0, "webhook '%s': no host", url);
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when the URL gives one */
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	*clear_text = g_ascii_strcasecmp(scheme, "http") == 0 && !host_is_loopback(host);
	*name = g_strdup_printf("%s://%s%s%s%s", scheme, host, port != NULL ? ":" : "",
				port != NULL ? port : "", path != NULL ? path : "/");
	ok = TRUE;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return ok;
}

/* RFC 9110 5.6.2: token = 1*tchar */
static gboolean
is_tchar(char c)
{
	return g_ascii_isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

gboolean
action_webhook_check_header(const char *header, char **line, GError **error)
{
	g_autofree char *h = g_strdup(header != NULL ? header : "");
	gsize n = strlen(h);

	/* a file's last line ends with a newline: not part of the header */
	while (n > 0 &&
	       (h[n - 1] == '\n' || h[n - 1] == '\r' || h[n - 1] == ' ' || h[n - 1] == '\t'))
		h[--n] = '\0';
	const char *colon = strchr(h, ':');
	if (colon == NULL || colon == h) {
		g_set_error(error, ACTION_ERROR, 0,
			    "webhook_header: not one \"Name: value\" line (no name before ':')");
		return FALSE;
	}
	for (const char *p = h; p < colon; p++)
		if (!is_tchar(*p)) {
			g_set_error(error, ACTION_ERROR, 0,
				    "webhook_header: the header name has a character a name "
				    "cannot have (offset %d)",
				    (int)(p - h));
			return FALSE;
		}
	for (const unsigned char *p = (const unsigned char *)colon; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			/* CR or LF would start another header (or the body): never */
			g_set_error(error, ACTION_ERROR, 0,
				    "webhook_header: the value has a control character (%s) at "
				    "offset %d; one line only",
				    *p == '\n'	 ? "LF"
				    : *p == '\r' ? "CR"
						 : "not printable",
				    (int)((const char *)p - h));
			return FALSE;
		}
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '\0') {
		g_set_error(error, ACTION_ERROR, 0, "webhook_header: '%.*s' has no value",
			    (int)(colon - h), h);
		return FALSE;
	}
	static const char *const ours[] = {"Content-Type", "Content-Length", "Transfer-Encoding",
					   "Host", "Expect"};
	for (gsize i = 0; i < G_N_ELEMENTS(ours); i++)
		if ((gsize)(colon - h) == strlen(ours[i]) &&
		    g_ascii_strncasecmp(h, ours[i], strlen(ours[i])) == 0) {
			g_set_error(error, ACTION_ERROR, 0,
				    "webhook_header: %s is set by spamflowd, not by the config",
				    ours[i]);
			return FALSE;
		}
	*line = g_strdup_printf("%.*s: %s", (int)(colon - h), h, v);
	return TRUE;
}

guint
action_webhook_backoff_ms(guint base_ms, guint failures, double jitter)
{
	guint64 d = MAX(base_ms, 1);

	for (guint i = 1; i < failures && d < WEBHOOK_BACKOFF_MAX_MS; i++)
		d *= 2;
	d = MIN(d, WEBHOOK_BACKOFF_MAX_MS);
	jitter = CLAMP(jitter, 0.0, 1.0);
	/* many targets failing together do not all come back at the same instant */
	return (guint)(d - (guint64)((double)d * jitter / 4.0));
}

WebhookVerdict
action_webhook_verdict(int curl_code, long status)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		break;
	/* our own setup: no attempt will do better */
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_TOO_MANY_REDIRECTS:
		return WEBHOOK_REFUSED;
	default: /* connect, resolve, TLS (a certificate may be replaced), timeout, reset */
		return WEBHOOK_RETRY;
	}
	if (status >= 200 && status <= 299)
		return WEBHOOK_DELIVERED;
	if (status >= 500 || status == 429 || status == 408)
		return WEBHOOK_RETRY;
	return WEBHOOK_REFUSED;
}

void
action_webhook_body(GString *out, WebhookFormat format, const AlertEvent *ev, const SinkCtx *ctx)
{
	if (format == WEBHOOK_FORMAT_CHAT) {
		/* Slack and Mattermost incoming webhooks: {"text": "..."} */
		g_autofree char *summary = alert_summary(ev);
		g_autofree char *text = g_strconcat("spamflow: ", summary, NULL);
		g_string_append(out, "{\"text\":");
		json_quote(out, text);
		g_string_append_c(out, '}');
		return;
	}
	alert_json(out, ev, ctx->exporter_name, ctx->user_data);
}

/* ---- the sink ---- */

typedef struct {
	char *body;
	gsize len;
	guint attempts; /* made so far */
	guint streak;	/* the target's fails_in_row when this attempt started */
	CURL *easy;	/* while in flight */
	char errbuf[CURL_ERROR_SIZE];
} Job;

typedef struct {
	gboolean error; /* sink_log_error() (rate-limited), else g_message() */
	char *text;
} LogLine;

#define WEBHOOK_LOG_LINES 16

typedef struct {
	Sink base;
	ActionFilter *filter; /* main thread only */
	WebhookFormat format;
	char *url;
	char *ca_file;
	struct curl_slist *headers; /* read-only once the worker runs */
	guint queue_max, timeout_s, max_attempts, backoff_ms;
	GString *buf;
	CURLM *multi;
	GThread *thread;
	gboolean thread_failed; /* logged once */
	GRand *rand;		/* the worker's */

	GMutex lock;  /* everything below */
	GCond cond;   /* a transfer ended or the worker stopped (flush waits on it) */
	GQueue queue; /* Job *: waiting; a retried one goes back to the head */
	guint in_flight;
	gboolean stop;
	guint fails_in_row;  /* failed attempts in a row: the target's backoff */
	guint64 fails_total; /* of the outage, for "reachable again" */
	gint64 next_try_us;  /* monotonic: no attempt starts before */
	guint64 sent, failed, retried;
	long last_status;
	char last_error[256];
	gint64 last_error_ms;
	GQueue logs; /* LogLine *: for the main thread */
	guint64 logs_lost;
	guint drain_id; /* the idle source that takes them, 0 when none */
} Webhook;

static void
job_free(Job *j)
{
	if (j == NULL)
		return;
	g_free(j->body);
	g_free(j);
}

static void
log_line_free(LogLine *l)
{
	g_free(l->text);
	g_free(l);
}

/* Main thread: the worker's log lines, and its failure count into the SinkStats the daemon
 * reads without the lock. */
static void
drain(Webhook *w)
{
	GQueue lines = G_QUEUE_INIT;
	guint64 lost;

	g_mutex_lock(&w->lock);
	lines = w->logs;
	g_queue_init(&w->logs);
	lost = w->logs_lost;
	w->logs_lost = 0;
	w->base.st.errors = w->failed;
	g_mutex_unlock(&w->lock);
	for (LogLine *l; (l = g_queue_pop_head(&lines)) != NULL; log_line_free(l)) {
		if (l->error)
			sink_log_error(&w->base, "%s", l->text);
		else
			g_message("webhook sink '%s': %s", w->base.name, l->text);
	}
	if (lost > 0)
		sink_log_error(&w->base, "%" G_GUINT64_FORMAT " more log lines not shown", lost);
}

static gboolean
on_drain(gpointer data)
{
	Webhook *w = data;
	g_mutex_lock(&w->lock);
	w->drain_id = 0;
	g_mutex_unlock(&w->lock);
	drain(w);
	return G_SOURCE_REMOVE;
}

static void log_later(Webhook *w, gboolean error, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Worker, with the lock held. */
static void
log_later(Webhook *w, gboolean error, const char *fmt, ...)
{
	va_list ap;

	if (w->logs.length >= WEBHOOK_LOG_LINES) {
		w->logs_lost++;
	} else {
		LogLine *l = g_new0(LogLine, 1);
		l->error = error;
		va_start(ap, fmt);
		l->text = g_strdup_vprintf(fmt, ap);
		va_end(ap);
		g_queue_push_tail(&w->logs, l);
	}
	if (w->drain_id == 0)
		w->drain_id = g_idle_add_full(G_PRIORITY_DEFAULT, on_drain, w, NULL);
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *data)
{
	(void)ptr;
	(void)data;
	return size * nmemb; /* the answer's body is not read */
}

static CURL *
job_easy(Webhook *w, Job *j)
{
	CURL *e = curl_easy_init();
	if (e == NULL)
		return NULL;
	j->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, w->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* a thread: no SIGALRM for DNS timeouts */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an answer, refused */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (w->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)w->timeout_s);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "spamflowd/" SPAMFLOW_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	return e;
}

/* Worker: the transfer of j ended with code; the lock is not held. */
static void
job_done(Webhook *w, Job *j, CURLcode code)
{
	long status = 0;
	curl_off_t retry_after = 0;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
	j->easy = NULL; /* the caller removes and frees the handle */
	WebhookVerdict v = action_webhook_verdict((int)code, status);
	g_autofree char *why =
	    code != CURLE_OK ? g_strdup(j->errbuf[0] != '\0' ? j->errbuf : curl_easy_strerror(code))
			     : g_strdup_printf("HTTP status %ld", status);

	g_mutex_lock(&w->lock);
	w->in_flight--;
	if (status != 0)
		w->last_status = status;
	if (v != WEBHOOK_RETRY && w->fails_in_row > 0) {
		/* an answer, even a 4xx: the target is there again */
		log_later(w, FALSE, "reachable again after %" G_GUINT64_FORMAT " failed attempts",
			  w->fails_total);
		w->fails_in_row = 0;
		w->fails_total = 0;
		w->next_try_us = 0;
	}
	if (v == WEBHOOK_DELIVERED) {
		w->sent++;
		job_free(j);
		goto out;
	}
	g_strlcpy(w->last_error, why, sizeof w->last_error);
	w->last_error_ms = g_get_real_time() / 1000;
	if (v == WEBHOOK_REFUSED) {
		w->failed++;
		log_later(w, TRUE, "%s: event not delivered (not retried)", why);
		job_free(j);
		goto out;
	}
	/* requests that were in flight together fail together: one step of backoff for them */
	if (j->streak == w->fails_in_row)
		w->fails_in_row++;
	w->fails_total++;
	guint wait_ms =
	    action_webhook_backoff_ms(w->backoff_ms, w->fails_in_row, g_rand_double(w->rand));
	if ((status == 429 || status == 503) && retry_after > 0) /* the server says when */
		wait_ms = (guint)MIN((guint64)retry_after * 1000, WEBHOOK_BACKOFF_MAX_MS);
	w->next_try_us = g_get_monotonic_time() + (gint64)wait_ms * 1000;
	if (j->attempts >= w->max_attempts) {
		w->failed++;
		log_later(w, TRUE, "%s: event not delivered after %u attempts", why, j->attempts);
		job_free(j);
		goto out;
	}
	log_later(w, TRUE, "%s: retrying in %u ms (%u events queued)", why, wait_ms,
		  w->queue.length + 1);
	g_queue_push_head(&w->queue, j); /* before newer events: it waited longest */
out:
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
}

/* Worker: start what may start now; the poll timeout in ms. */
static int
start_transfers(Webhook *w, GPtrArray *active)
{
	/* every change the worker must see comes with curl_multi_wakeup(): idle, it sleeps */
	int timeout_ms = 60000;
	Job *take[WEBHOOK_MAX_IN_FLIGHT];
	guint n = 0;

	g_mutex_lock(&w->lock);
	gint64 now = g_get_monotonic_time();
	/* while the target fails, one request probes it; the others wait in the queue */
	guint limit = w->fails_in_row > 0 ? 1 : WEBHOOK_MAX_IN_FLIGHT;
	if (now < w->next_try_us) {
		limit = 0;
		timeout_ms = (int)MIN((w->next_try_us - now) / 1000 + 1, 60000);
	}
	while (active->len + n < limit && !g_queue_is_empty(&w->queue)) {
		Job *j = g_queue_pop_head(&w->queue);
		if (j->attempts++ > 0)
			w->retried++;
		j->streak = w->fails_in_row;
		w->in_flight++;
		take[n++] = j;
	}
	g_mutex_unlock(&w->lock);
	/* the handles are made without the lock: write() waits on it */
	for (guint i = 0; i < n; i++) {
		Job *j = take[i];
		j->easy = job_easy(w, j);
		if (j->easy != NULL && curl_multi_add_handle(w->multi, j->easy) == CURLM_OK) {
			g_ptr_array_add(active, j);
			continue;
		}
		if (j->easy != NULL)
			curl_easy_cleanup(j->easy);
		j->easy = NULL;
		g_mutex_lock(&w->lock); /* out of memory: later, as if not taken */
		if (--j->attempts > 0)
			w->retried--;
		w->in_flight--;
		g_queue_push_head(&w->queue, j);
		g_mutex_unlock(&w->lock);
		timeout_ms = 100;
	}
	return timeout_ms;
}

/* The worker needs no capability: it gives up any its thread still has (capset(2) is per
 * thread; it normally starts after the daemon gave up its own, see start_worker()). */
static void
drop_thread_capabilities(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {{0}};

	(void)syscall(SYS_capset, &hdr, caps); /* giving up is always allowed */
}

static gpointer
worker(gpointer data)
{
	Webhook *w = data;
	g_autoptr(GPtrArray) active = g_ptr_array_new(); /* Job *: in flight */

	drop_thread_capabilities();

	for (;;) {
		g_mutex_lock(&w->lock);
		gboolean stop = w->stop;
		g_mutex_unlock(&w->lock);
		if (stop)
			break;
		int timeout_ms = start_transfers(w, active);
		int running = 0;
		curl_multi_perform(w->multi, &running);
		CURLMsg *m;
		int left, done = 0;
		while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
			char *priv = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			CURL *e = m->easy_handle;
			CURLcode code = m->data.result;
			curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
			Job *j = (Job *)priv;
			g_ptr_array_remove_fast(active, j);
			job_done(w, j, code); /* may free j, not e */
			curl_multi_remove_handle(w->multi, e);
			curl_easy_cleanup(e);
			done++;
		}
		if (done > 0) /* a retry's backoff, or room for the next ones: start again */
			continue;
		/* sleeps until a socket is ready, the timeout, or curl_multi_wakeup() */
		curl_multi_poll(w->multi, NULL, 0, timeout_ms, NULL);
	}
	/* stopped: what is in flight goes back to the queue, unsent */
	g_mutex_lock(&w->lock);
	for (guint i = 0; i < active->len; i++) {
		Job *j = g_ptr_array_index(active, i);
		curl_multi_remove_handle(w->multi, j->easy);
		curl_easy_cleanup(j->easy);
		j->easy = NULL;
		g_queue_push_head(&w->queue, j);
		w->in_flight--;
	}
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	return NULL;
}

static const int worker_blocked[] = {SIGPIPE, SIGHUP,  SIGINT,	SIGTERM,
				     SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};

static void
start_worker(Webhook *w)
{
	g_autoptr(GError) err = NULL;

	if (w->thread != NULL)
		return;
	/* The worker is born with the daemon's signals blocked: SIGTERM, SIGHUP and SIGCHLD are
	 * for the main thread, and a SIGPIPE from a peer that closed (with CURLOPT_NOSIGNAL
	 * libcurl does not ignore it itself) stays pending in the worker instead of killing the
	 * process. */
	sigset_t block, old;
	sigemptyset(&block);
	for (gsize i = 0; i < G_N_ELEMENTS(worker_blocked); i++)
		sigaddset(&block, worker_blocked[i]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	w->thread = g_thread_try_new("webhook", worker, w, &err);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (w->thread == NULL && !w->thread_failed) {
		w->thread_failed = TRUE;
		g_warning("webhook sink '%s': cannot start its thread: %s; events stay queued",
			  w->base.name, err->message);
	}
}

static void
stop_worker(Webhook *w)
{
	if (w->thread == NULL)
		return;
	g_mutex_lock(&w->lock);
	w->stop = TRUE;
	g_mutex_unlock(&w->lock);
	curl_multi_wakeup(w->multi);
	g_thread_join(w->thread);
	w->thread = NULL;
}

static void
webhook_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	Webhook *w = (Webhook *)s;

	if (!action_filter_pass(w->filter, ev))
		return;
	g_string_truncate(w->buf, 0);
	action_webhook_body(w->buf, w->format, ev, ctx);
	g_mutex_lock(&w->lock);
	gboolean full = w->queue.length >= w->queue_max;
	/* A worker with a queue already has a reason to wake up (a transfer ending, the end of
	 * a backoff): only an empty queue needs the wakeup, a write(2) saved per event. */
	gboolean wake = w->queue.length == 0;
	if (full) {
		s->st.dropped++;
	} else {
		Job *j = g_new0(Job, 1);
		j->len = w->buf->len;
		j->body = g_strndup(w->buf->str, w->buf->len);
		g_queue_push_tail(&w->queue, j);
		s->st.events++;
	}
	gboolean stopped = w->stop;
	g_mutex_unlock(&w->lock);
	if (full)
		sink_log_error(s, "queue full (%u events): event dropped", w->queue_max);
	if (!stopped && !full) {
		start_worker(w); /* the first event: privileges are gone by now */
		if (wake)
			curl_multi_wakeup(w->multi);
	}
	drain(w);
}

static void
webhook_stats_json(const Sink *s, GString *out)
{
	Webhook *w = (Webhook *)s; /* the lock, and the filter's counters (main thread) */

	g_mutex_lock(&w->lock);
	gint64 wait_us = w->next_try_us - g_get_monotonic_time();
	g_string_append_printf(
	    out,
	    "\"format\":\"%s\",\"sent\":%" G_GUINT64_FORMAT ",\"failed\":%" G_GUINT64_FORMAT
	    ",\"retried\":%" G_GUINT64_FORMAT ",\"queued\":%u,\"queue_max\":%u,\"in_flight\":%u,"
	    "\"failing\":%u,\"retry_in_ms\":%" G_GINT64_FORMAT ",\"last_status\":%ld,"
	    "\"last_error\":",
	    w->format == WEBHOOK_FORMAT_CHAT ? "chat" : "json", w->sent, w->failed, w->retried,
	    w->queue.length, w->queue_max, w->in_flight, w->fails_in_row,
	    wait_us > 0 ? wait_us / 1000 : 0, w->last_status);
	json_quote(out, w->last_error);
	g_string_append_printf(out, ",\"last_error_ms\":%" G_GINT64_FORMAT ",", w->last_error_ms);
	g_mutex_unlock(&w->lock);
	action_filter_stats_json(w->filter, out);
}

/* At exit: the worker goes on until the queue is empty or the time is up; a backoff is not
 * sat out (one more try now), and a target whose next try falls after the time is given up
 * at once. */
static guint
webhook_flush(Sink *s, guint timeout_ms)
{
	Webhook *w = (Webhook *)s;
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	g_mutex_lock(&w->lock);
	gboolean work = !g_queue_is_empty(&w->queue) || w->in_flight > 0;
	w->next_try_us = 0;
	g_mutex_unlock(&w->lock);
	if (work && !w->stop)
		start_worker(w);
	if (w->thread != NULL) {
		curl_multi_wakeup(w->multi);
		g_mutex_lock(&w->lock);
		while (!g_queue_is_empty(&w->queue) || w->in_flight > 0) {
			/* a target that failed again waits past the deadline: the time is the
			 * other actions' (sink_set_flush() shares it) */
			if (w->in_flight == 0 && w->next_try_us > deadline)
				break;
			if (!g_cond_wait_until(&w->cond, &w->lock, deadline))
				break;
		}
		g_mutex_unlock(&w->lock);
		stop_worker(w);
	}
	g_mutex_lock(&w->lock);
	w->stop = TRUE; /* later writes only queue */
	guint left = w->queue.length;
	g_mutex_unlock(&w->lock);
	drain(w);
	return left;
}

static void
webhook_free(Sink *s)
{
	Webhook *w = (Webhook *)s;

	stop_worker(w);
	if (w->drain_id != 0)
		g_source_remove(w->drain_id);
	g_queue_clear_full(&w->queue, (GDestroyNotify)job_free);
	g_queue_clear_full(&w->logs, (GDestroyNotify)log_line_free);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	curl_slist_free_all(w->headers);
	action_filter_free(w->filter);
	if (w->buf != NULL)
		g_string_free(w->buf, TRUE);
	if (w->rand != NULL)
		g_rand_free(w->rand);
	g_free(w->url);
	g_free(w->ca_file);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w);
}

static void
webhook_forget_host(Sink *s, const guint8 host[16])
{
	action_filter_forget(((Webhook *)s)->filter, host, -1);
}

static const SinkOps webhook_ops = {.kind = "webhook",
				    .write = webhook_write,
				    .stats_json = webhook_stats_json,
				    .flush = webhook_flush,
				    .free = webhook_free,
				    .forget = webhook_forget_host};

void
action_webhook_forget(Sink *s, const guint8 host[16], int reason)
{
	if (s != NULL && s->ops == &webhook_ops)
		action_filter_forget(((Webhook *)s)->filter, host, reason);
}

static gboolean
global_init(GError **error)
{
	static gsize once = 0;
	static CURLcode rc;

	if (g_once_init_enter(&once)) {
		rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&once, 1);
	}
	if (rc != CURLE_OK) {
		g_set_error(error, ACTION_ERROR, 0, "webhook: libcurl: %s", curl_easy_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

Sink *
action_webhook_new(const ActionWebhookConfig *c, GError **error)
{
	g_autofree char *name = NULL, *header = NULL;
	gboolean clear_text = FALSE;

	if (!global_init(error) || !action_webhook_check_url(c->url, &name, &clear_text, error))
		return NULL;
	if (c->header != NULL && c->header[0] != '\0' &&
	    !action_webhook_check_header(c->header, &header, error))
		return NULL;
	if (c->format != WEBHOOK_FORMAT_JSON && c->format != WEBHOOK_FORMAT_CHAT) {
		g_set_error(error, ACTION_ERROR, 0, "webhook_format: %d is not json or chat",
			    (int)c->format);
		return NULL;
	}
	if (c->ca_file != NULL && c->ca_file[0] != '\0' &&
	    !g_file_test(c->ca_file, G_FILE_TEST_IS_REGULAR)) {
		/* readable is checked where it matters: libcurl reads it at each new
		 * connection, as the daemon's user (last_error says so when it cannot) */
		g_set_error(error, ACTION_ERROR, 0, "webhook_ca: '%s': %s", c->ca_file,
			    g_file_test(c->ca_file, G_FILE_TEST_EXISTS) ? "not a regular file"
									: "no such file");
		return NULL;
	}
	Webhook *w = g_new0(Webhook, 1);
	sink_init(&w->base, &webhook_ops, name);
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	g_queue_init(&w->queue);
	g_queue_init(&w->logs);
	w->filter = action_filter_new(&c->filter, WEBHOOK_FILTER_TRACKED);
	w->format = c->format;
	w->url = g_strdup(c->url);
	w->ca_file = c->ca_file != NULL && c->ca_file[0] != '\0' ? g_strdup(c->ca_file) : NULL;
	w->queue_max = MAX(c->queue, 1);
	w->timeout_s = MAX(c->timeout_s, 1);
	w->max_attempts = MAX(c->max_attempts, 1);
	w->backoff_ms = c->backoff_ms;
	w->buf = g_string_sized_new(2048);
	w->rand = g_rand_new();
	w->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* no "Expect: 100-continue" for bodies over 1 KiB: one round trip less, and servers
	 * that never answer it would cost a second each */
	w->headers = curl_slist_append(w->headers, "Expect:");
	if (header != NULL)
		w->headers = curl_slist_append(w->headers, header);
	w->multi = curl_multi_init();
	if (w->headers == NULL || w->multi == NULL) {
		g_set_error(error, ACTION_ERROR, 0, "webhook '%s': libcurl: out of memory", name);
		sink_free(&w->base);
		return NULL;
	}
	/* keep-alive: at most this many connections to the target, kept between events */
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)WEBHOOK_MAX_IN_FLIGHT);
	curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)WEBHOOK_MAX_IN_FLIGHT);
	if (clear_text)
		g_warning(
		    "webhook '%s': plain http:// to a host that is not loopback: the events%s "
		    "cross the network in clear; use https://",
		    name, header != NULL ? " and the header (token)" : "");
	return &w->base;
}
