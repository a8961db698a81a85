/* The webhook action's throughput: N alert events through action_webhook_new()'s sink to an
 * HTTP server, timed from the first write() to the end of flush(). The server is a small
 * HTTP/1.1 one in this process (a thread per connection, keep-alive; --close answers
 * "Connection: close" and closes, as an HTTP/1.0 server does), or any URL given. Also
 * prints what write() costs the collector's thread per event (format + queue).
 *
 * usage: webhook_bench [-n EVENTS] [--close] [--chat] [--ca FILE] [URL] */
#include "action_webhook.h"
#include "flow.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static gboolean close_each;
static gint connections, requests;

static gpointer
conn_main(gpointer data)
{
	int fd = GPOINTER_TO_INT(data);
	g_autoptr(GString) buf = g_string_new(NULL);
	char tmp[65536];

	for (;;) {
		char *end;
		while ((end = strstr(buf->str, "\r\n\r\n")) == NULL) {
			ssize_t n = recv(fd, tmp, sizeof tmp, 0);
			if (n <= 0)
				goto out;
			g_string_append_len(buf, tmp, n);
		}
		gsize hlen = (gsize)(end - buf->str) + 4;
		g_autofree char *lower = g_ascii_strdown(buf->str, (gssize)hlen);
		const char *cl = strstr(lower, "\r\ncontent-length:");
		gsize blen = cl != NULL ? (gsize)g_ascii_strtoull(cl + 17, NULL, 10) : 0;
		while (buf->len < hlen + blen) {
			ssize_t n = recv(fd, tmp, sizeof tmp, 0);
			if (n <= 0)
				goto out;
			g_string_append_len(buf, tmp, n);
		}
		g_string_erase(buf, 0, (gssize)(hlen + blen));
		g_atomic_int_inc(&requests);
		const char *reply = close_each ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
						 "Connection: close\r\n\r\nok"
					       : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0 || close_each)
			goto out;
	}
out:
	close(fd);
	return NULL;
}

static gpointer
accept_main(gpointer data)
{
	int lfd = GPOINTER_TO_INT(data);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		g_atomic_int_inc(&connections);
		g_thread_unref(g_thread_new("conn", conn_main, GINT_TO_POINTER(fd)));
	}
}

static guint16
server_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
		perror("server");
		exit(1);
	}
	g_thread_unref(g_thread_new("accept", accept_main, GINT_TO_POINTER(lfd)));
	return ntohs(a.sin_port);
}

static AlertEvent
event(guint i)
{
	AlertEvent ev;
	guint8 v4[4] = {10, (guint8)(i >> 16), (guint8)(i >> 8), (guint8)i};

	memset(&ev, 0, sizeof ev);
	ev.time_ms = g_get_real_time() / 1000;
	ev.event = ALERT_RAISED;
	ev.reason = REASON_SMTP_FANOUT;
	ev.severity = ALERT_SEV_WARNING;
	flow_addr_set_v4(ev.host, v4);
	ev.level = 1.25;
	ev.window[WINDOW_SHORT] = (AlertWindow){600000, 62, 50, 62, FALSE, 70, 71, 9, 62, 0};
	ev.window[WINDOW_LONG] = (AlertWindow){3600000, 80, 150, 80, TRUE, 90, 95, 12, 80, 0};
	ev.flows = 90;
	ev.attempts = 95;
	ev.failed = 12;
	ev.failed_share = 12.0 / 95.0;
	ev.first_seen_ms = ev.time_ms - 5000;
	ev.last_seen_ms = ev.time_ms;
	ev.sampling = 1;
	ev.raised_ms = ev.time_ms;
	return ev;
}

int
main(int argc, char **argv)
{
	gint n = 20000;
	gboolean chat = FALSE;
	g_autofree char *ca = NULL;
	GOptionEntry entries[] = {
	    {"events", 'n', 0, G_OPTION_ARG_INT, &n, "events to send (20000)", "N"},
	    {"close", 0, 0, G_OPTION_ARG_NONE, &close_each, "the server closes each connection",
	     NULL},
	    {"chat", 0, 0, G_OPTION_ARG_NONE, &chat, "webhook_format = chat", NULL},
	    {"ca", 0, 0, G_OPTION_ARG_FILENAME, &ca, "webhook_ca (https URLs)", "FILE"},
	    {NULL}};
	g_autoptr(GOptionContext) oc = g_option_context_new("[URL]");
	g_autoptr(GError) err = NULL;

	g_option_context_add_main_entries(oc, entries, NULL);
	if (!g_option_context_parse(oc, &argc, &argv, &err) || argc > 2 || n <= 0) {
		fprintf(stderr, "webhook_bench: %s\n",
			err != NULL ? err->message : "bad arguments");
		return 2;
	}
	g_autofree char *url = argc == 2
				   ? g_strdup(argv[1])
				   : g_strdup_printf("http://127.0.0.1:%u/hook", server_start());
	ActionWebhookConfig c = {.url = url,
				 .ca_file = ca,
				 .format = chat ? WEBHOOK_FORMAT_CHAT : WEBHOOK_FORMAT_JSON,
				 .queue = (guint)n,
				 .timeout_s = 10,
				 .max_attempts = 3,
				 .backoff_ms = 100};
	if (!action_filter_spec_parse(&c.filter, "", "", "", &err)) {
		fprintf(stderr, "webhook_bench: %s\n", err->message);
		return 1;
	}
	Sink *s = action_webhook_new(&c, &err);
	if (s == NULL) {
		fprintf(stderr, "webhook_bench: %s\n", err->message);
		return 1;
	}
	SinkCtx ctx = {0};
	gint64 t0 = g_get_monotonic_time(), write_us = 0;
	for (gint i = 0; i < n; i++) {
		AlertEvent ev = event((guint)i);
		gint64 w0 = g_get_monotonic_time();
		s->ops->write(s, &ev, &ctx);
		write_us += g_get_monotonic_time() - w0;
	}
	guint left = s->ops->flush(s, 120000);
	double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
	g_autoptr(GString) st = g_string_new(NULL);
	s->ops->stats_json(s, st);
	const char *sp = strstr(st->str, "\"sent\":");
	guint64 sent = sp != NULL ? g_ascii_strtoull(sp + 7, NULL, 10) : 0;
	printf("%d events in %.3f s: %" G_GUINT64_FORMAT " delivered, %.0f events/s; write() "
	       "%.2f us/event on the caller's thread; %u left; %d connections for %d requests "
	       "(in-process server: %s)\n%s\n",
	       n, secs, sent, (double)sent / secs, (double)write_us / n, left,
	       g_atomic_int_get(&connections), g_atomic_int_get(&requests),
	       argc == 2    ? "no"
	       : close_each ? "closes each"
			    : "keep-alive",
	       st->str);
	sink_free(s);
	return sent == (guint64)n ? 0 : 1;
}
