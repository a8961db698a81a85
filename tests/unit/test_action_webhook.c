/* Unit tests for the webhook action: URL and header validation, the backoff schedule, which
 * results are retried, the two body formats; and the sink against a small HTTP/1.1 server in
 * this process (a thread per connection): delivery with the header and Content-Type over
 * kept-alive connections, a 400 not retried, 503s retried then delivered, a 429's Retry-After
 * waited, a server slower than the timeout, failures in flight together as one backoff step,
 * a closed port given up after the attempts, a full queue counted, the filter applied, free
 * without flush. */
#include "sample_alert.h"
#include "action_webhook.h"
#include "alertjson.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

static const SinkCtx ctx = {.exporter_name = sample_exporter_name};

static void
test_url(void **state)
{
	(void)state;
	static const struct {
		const char *url, *name;
		gboolean clear;
	} good[] = {
	    {"https://hooks.example.com/services/T0/B0/x",
	     "https://hooks.example.com/services/T0/B0/x", FALSE},
	    {"http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook", FALSE},
	    {"http://[::1]:9/x", "http://[::1]:9/x", FALSE},
	    {"http://localhost/", "http://localhost/", FALSE},
	    {"http://198.51.100.2/alert", "http://198.51.100.2/alert", TRUE},
	    {"HTTPS://user:secret@example.com/h?token=abc#f", "https://example.com/h", FALSE},
	    {"http://example.com", "http://example.com/", TRUE},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *name = NULL;
		gboolean clear = !good[i].clear;
		assert_true(action_webhook_check_url(good[i].url, &name, &clear, &err));
		assert_null(err);
		assert_string_equal(name, good[i].name);
		assert_int_equal(clear, good[i].clear);
	}
	static const char *const bad[] = {
	    "example.com/hook", "ftp://example.com/x", "file:///etc/passwd",  "", "http://",
	    "http:// /x",	"gopher://h/",	       "http://exa mple.com/"};
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *name = NULL;
		gboolean clear = FALSE;
		assert_false(action_webhook_check_url(bad[i], &name, &clear, &err));
		assert_null(name);
		assert_non_null(err);
		assert_true(g_str_has_prefix(err->message, "webhook '"));
	}
}

static void
test_header(void **state)
{
	(void)state;
	static const struct {
		const char *in, *line;
	} good[] = {
	    {"Authorization: Bearer abc.def", "Authorization: Bearer abc.def"},
	    {"Authorization: Bearer abc\n", "Authorization: Bearer abc"}, /* a file's newline */
	    {"X-Token:t0k3n\r\n", "X-Token: t0k3n"},
	    {"X-A:  spaced value\t", "X-A: spaced value"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *line = NULL;
		assert_true(action_webhook_check_header(good[i].in, &line, &err));
		assert_string_equal(line, good[i].line);
	}
	static const char *const bad[] = {
	    "Authorization Bearer secret1",  ": secret1",      "Bad Name: secret1",
	    "X-T: secret1\r\nX-Injected: 1", "X-T: sec\nret1", "X-T:   ",
	    "Content-Type: text/plain",	     "host: secret1",  "X-T: a\001secret1",
	};
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *line = NULL;
		assert_false(action_webhook_check_header(bad[i], &line, &err));
		assert_null(line);
		assert_true(g_str_has_prefix(err->message, "webhook_header: "));
		/* the value is a token: never in a message */
		assert_null(strstr(err->message, "secret1"));
	}
}

static void
test_backoff(void **state)
{
	(void)state;
	assert_int_equal(action_webhook_backoff_ms(1000, 1, 0), 1000);
	assert_int_equal(action_webhook_backoff_ms(1000, 2, 0), 2000);
	assert_int_equal(action_webhook_backoff_ms(1000, 5, 0), 16000);
	assert_int_equal(action_webhook_backoff_ms(1000, 9, 0), 256000);
	assert_int_equal(action_webhook_backoff_ms(1000, 10, 0), WEBHOOK_BACKOFF_MAX_MS);
	assert_int_equal(action_webhook_backoff_ms(1000, 4000000000u, 0), WEBHOOK_BACKOFF_MAX_MS);
	assert_int_equal(action_webhook_backoff_ms(400000, 1, 0), WEBHOOK_BACKOFF_MAX_MS);
	/* jitter takes off up to a quarter, never adds */
	assert_int_equal(action_webhook_backoff_ms(1000, 1, 0.5), 875);
	assert_int_equal(action_webhook_backoff_ms(1000, 3, 0.999999), 3001);
	assert_int_equal(action_webhook_backoff_ms(0, 1, 0), 1);
}

static void
test_verdict(void **state)
{
	(void)state;
	assert_int_equal(action_webhook_verdict(0, 200), WEBHOOK_DELIVERED);
	assert_int_equal(action_webhook_verdict(0, 204), WEBHOOK_DELIVERED);
	assert_int_equal(action_webhook_verdict(0, 500), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(0, 503), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(0, 429), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(0, 408), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(0, 400), WEBHOOK_REFUSED);
	assert_int_equal(action_webhook_verdict(0, 401), WEBHOOK_REFUSED);
	assert_int_equal(action_webhook_verdict(0, 404), WEBHOOK_REFUSED);
	assert_int_equal(action_webhook_verdict(0, 302), WEBHOOK_REFUSED); /* not followed */
	assert_int_equal(action_webhook_verdict(7 /* COULDNT_CONNECT */, 0), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(28 /* OPERATION_TIMEDOUT */, 0), WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(60 /* PEER_FAILED_VERIFICATION */, 0),
			 WEBHOOK_RETRY);
	assert_int_equal(action_webhook_verdict(1 /* UNSUPPORTED_PROTOCOL */, 0), WEBHOOK_REFUSED);
}

static void
test_body(void **state)
{
	(void)state;
	AlertEvent ev = sample_alert(1700000000123);
	g_autoptr(GString) json = g_string_new(NULL), want = g_string_new(NULL);
	g_autoptr(GString) chat = g_string_new(NULL);

	action_webhook_body(json, WEBHOOK_FORMAT_JSON, &ev, &ctx);
	alert_json(want, &ev, sample_exporter_name, NULL);
	assert_string_equal(json->str, want->str);
	action_webhook_body(chat, WEBHOOK_FORMAT_CHAT, &ev, &ctx);
	assert_true(g_str_has_prefix(
	    chat->str,
	    "{\"text\":\"spamflow: raised smtp-fanout host=192.0.2.10 severity=warning "));
	assert_true(g_str_has_suffix(chat->str, "\"}"));
	assert_null(strchr(chat->str, '\n'));
}

/* ---- a small HTTP/1.1 server ---- */

typedef struct {
	int lfd;
	guint16 port;
	GThread *acceptor;
	GMutex lock;
	GPtrArray *conns;   /* GThread * */
	GPtrArray *bodies;  /* char * */
	GPtrArray *headers; /* char *: each request's header block */
	guint connections;
	guint requests;
	int status;	   /* the answer */
	guint fail_first;  /* answer fail_status to this many requests first */
	int fail_status;   /* 503 unless set */
	guint retry_after; /* Retry-After on those answers, when > 0 */
	guint delay_ms;	   /* before each answer */
} Server;

typedef struct {
	Server *srv;
	int fd;
} Conn;

static gboolean
read_more(int fd, GString *buf)
{
	char tmp[4096];
	ssize_t n = recv(fd, tmp, sizeof tmp, 0);
	if (n <= 0)
		return FALSE;
	g_string_append_len(buf, tmp, n);
	return TRUE;
}

static gpointer
conn_main(gpointer data)
{
	Conn *c = data;
	Server *srv = c->srv;
	g_autoptr(GString) buf = g_string_new(NULL);

	for (;;) {
		char *end;
		while ((end = strstr(buf->str, "\r\n\r\n")) == NULL)
			if (!read_more(c->fd, buf))
				goto out;
		gsize hlen = (gsize)(end - buf->str) + 4;
		g_autofree char *head = g_strndup(buf->str, hlen);
		g_autofree char *lower = g_ascii_strdown(head, -1);
		const char *cl = strstr(lower, "\r\ncontent-length:");
		gsize blen = cl != NULL ? (gsize)g_ascii_strtoull(cl + 17, NULL, 10) : 0;
		while (buf->len < hlen + blen)
			if (!read_more(c->fd, buf))
				goto out;
		int status;
		char extra[64] = "";
		g_mutex_lock(&srv->lock);
		srv->requests++;
		guint delay_ms = srv->delay_ms;
		if (srv->fail_first > 0) {
			srv->fail_first--;
			status = srv->fail_status != 0 ? srv->fail_status : 503;
			if (srv->retry_after > 0)
				g_snprintf(extra, sizeof extra, "Retry-After: %u\r\n",
					   srv->retry_after);
		} else {
			status = srv->status;
			g_ptr_array_add(srv->bodies, g_strndup(buf->str + hlen, blen));
			g_ptr_array_add(srv->headers, g_steal_pointer(&head));
		}
		g_mutex_unlock(&srv->lock);
		g_string_erase(buf, 0, (gssize)(hlen + blen));
		if (delay_ms > 0)
			g_usleep(delay_ms * 1000);
		char reply[192];
		int n = g_snprintf(reply, sizeof reply,
				   "HTTP/1.1 %d X\r\n%sContent-Length: 2\r\n\r\nok", status, extra);
		if (send(c->fd, reply, (size_t)n, MSG_NOSIGNAL) != n)
			goto out;
	}
out:
	close(c->fd);
	g_free(c);
	return NULL;
}

static gpointer
acceptor_main(gpointer data)
{
	Server *srv = data;
	for (;;) {
		int fd = accept(srv->lfd, NULL, NULL);
		if (fd < 0)
			return NULL; /* shut down */
		struct timeval tv = {.tv_sec = 10};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		Conn *c = g_new0(Conn, 1);
		c->srv = srv;
		c->fd = fd;
		g_mutex_lock(&srv->lock);
		srv->connections++;
		g_ptr_array_add(srv->conns, g_thread_new("conn", conn_main, c));
		g_mutex_unlock(&srv->lock);
	}
}

static Server *
server_new(int status)
{
	Server *srv = g_new0(Server, 1);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;

	g_mutex_init(&srv->lock);
	srv->status = status;
	srv->conns = g_ptr_array_new();
	srv->bodies = g_ptr_array_new_with_free_func(g_free);
	srv->headers = g_ptr_array_new_with_free_func(g_free);
	srv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(srv->lfd >= 0);
	assert_int_equal(bind(srv->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(srv->lfd, 16), 0);
	assert_int_equal(getsockname(srv->lfd, (struct sockaddr *)&a, &alen), 0);
	srv->port = ntohs(a.sin_port);
	srv->acceptor = g_thread_new("accept", acceptor_main, srv);
	return srv;
}

/* After the sink is freed (its connections closed). */
static void
server_free(Server *srv)
{
	shutdown(srv->lfd, SHUT_RDWR);
	g_thread_join(srv->acceptor);
	close(srv->lfd);
	for (guint i = 0; i < srv->conns->len; i++)
		g_thread_join(g_ptr_array_index(srv->conns, i));
	g_ptr_array_unref(srv->conns);
	g_ptr_array_unref(srv->bodies);
	g_ptr_array_unref(srv->headers);
	g_mutex_clear(&srv->lock);
	g_free(srv);
}

/* A port nothing listens on. */
static guint16
closed_port(void)
{
	Server *srv = server_new(200);
	guint16 port = srv->port;
	server_free(srv);
	return port;
}

static ActionWebhookConfig
config(const char *url)
{
	ActionWebhookConfig c = {.url = url,
				 .format = WEBHOOK_FORMAT_JSON,
				 .queue = 100,
				 .timeout_s = 5,
				 .max_attempts = 3,
				 .backoff_ms = 10};
	assert_true(action_filter_spec_parse(&c.filter, "", "", "", NULL));
	return c;
}

static char *
stats(Sink *s)
{
	GString *out = g_string_new(NULL);
	s->ops->stats_json(s, out);
	return g_string_free(out, FALSE);
}

static void
assert_stat(const char *stats_text, const char *member)
{
	if (strstr(stats_text, member) == NULL)
		fail_msg("'%s' not in %s", member, stats_text != NULL ? stats_text : "(none)");
}

static void
test_deliver(void **state)
{
	(void)state;
	Server *srv = server_new(200);
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/hook", srv->port);
	ActionWebhookConfig c = config(url);
	c.header = "Authorization: Bearer t0ken\n";
	g_autoptr(GError) err = NULL;
	Sink *s = action_webhook_new(&c, &err);
	assert_non_null(s);
	assert_string_equal(s->ops->kind, "webhook");
	assert_string_equal(s->name, url);

	g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
	for (int i = 0; i < 40; i++) {
		AlertEvent ev = sample_alert(1700000000000 + i);
		ev.host[15] = (guint8)i; /* 40 (host, reason) pairs */
		g_autoptr(GString) j = g_string_new(NULL);
		alert_json(j, &ev, sample_exporter_name, NULL);
		g_ptr_array_add(want, g_string_free(g_steal_pointer(&j), FALSE));
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->ops->flush(s, 10000), 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":40,\"failed\":0,\"retried\":0,\"queued\":0,");
	assert_stat(st, "\"in_flight\":0,");
	assert_stat(st, "\"last_status\":200,\"last_error\":\"\",\"last_error_ms\":0,");
	assert_stat(st, "\"filtered\":0,\"acted_on\":40,");
	assert_int_equal(s->st.events, 40);
	assert_int_equal(s->st.errors, 0);
	sink_free(s);

	g_mutex_lock(&srv->lock);
	assert_int_equal(srv->bodies->len, 40);
	/* each once, in any order */
	for (guint i = 0; i < want->len; i++) {
		guint n = 0;
		for (guint k = 0; k < srv->bodies->len; k++)
			n += strcmp(g_ptr_array_index(srv->bodies, k),
				    g_ptr_array_index(want, i)) == 0;
		assert_int_equal(n, 1);
	}
	for (guint k = 0; k < srv->headers->len; k++) {
		const char *h = g_ptr_array_index(srv->headers, k);
		assert_true(g_str_has_prefix(h, "POST /hook HTTP/1.1\r\n"));
		assert_non_null(strstr(h, "\r\nContent-Type: application/json\r\n"));
		assert_non_null(strstr(h, "\r\nAuthorization: Bearer t0ken\r\n"));
		assert_null(strstr(h, "Expect:"));
	}
	/* kept alive: 40 requests over at most WEBHOOK_MAX_IN_FLIGHT connections */
	assert_true(srv->connections >= 1 && srv->connections <= WEBHOOK_MAX_IN_FLIGHT);
	g_mutex_unlock(&srv->lock);
	server_free(srv);
}

static void
test_refused(void **state)
{
	(void)state;
	Server *srv = server_new(400);
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", srv->port);
	ActionWebhookConfig c = config(url);
	Sink *s = action_webhook_new(&c, NULL);
	for (int i = 0; i < 3; i++) {
		AlertEvent ev = sample_alert(1700000000000 + i);
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->ops->flush(s, 10000), 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":0,\"failed\":3,\"retried\":0,");
	assert_stat(st, "\"last_status\":400,\"last_error\":\"HTTP status 400\",");
	assert_int_equal(s->st.errors, 3);
	sink_free(s);
	assert_int_equal(srv->requests, 3);
	server_free(srv);
}

static void
test_retry_then_deliver(void **state)
{
	(void)state;
	Server *srv = server_new(200);
	srv->fail_first = 3;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", srv->port);
	ActionWebhookConfig c = config(url);
	c.max_attempts = 8;
	Sink *s = action_webhook_new(&c, NULL);
	for (int i = 0; i < 5; i++) {
		AlertEvent ev = sample_alert(1700000000000 + i);
		ev.host[15] = (guint8)i;
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->ops->flush(s, 10000), 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":5,\"failed\":0,\"retried\":3,");
	assert_stat(st, "\"last_status\":200,\"last_error\":\"HTTP status 503\",");
	sink_free(s);
	assert_int_equal(srv->bodies->len, 5);
	assert_int_equal(srv->requests, 8);
	server_free(srv);
}

/* 429 with Retry-After: 1 waits the second the server asks, not the 10 ms backoff */
static void
test_retry_after(void **state)
{
	(void)state;
	Server *srv = server_new(200);
	srv->fail_first = 1;
	srv->fail_status = 429;
	srv->retry_after = 1;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", srv->port);
	ActionWebhookConfig c = config(url);
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent ev = sample_alert(1700000000000);
	gint64 t0 = g_get_monotonic_time();
	s->ops->write(s, &ev, &ctx);
	for (int i = 0; i < 300; i++) { /* flush would not sit out the wait: poll */
		g_autofree char *st = stats(s);
		if (strstr(st, "\"sent\":1,") != NULL)
			break;
		g_usleep(10000);
	}
	gint64 took = g_get_monotonic_time() - t0;
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":1,\"failed\":0,\"retried\":1,");
	assert_stat(st, "\"last_error\":\"HTTP status 429\",");
	assert_true(took >= 900000 && took < 2500000);
	assert_int_equal(s->ops->flush(s, 1000), 0);
	sink_free(s);
	server_free(srv);
}

/* a server slower than webhook_timeout: abandoned, counted, retried (here: no attempt left) */
static void
test_timeout(void **state)
{
	(void)state;
	Server *srv = server_new(200);
	srv->delay_ms = 2500;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", srv->port);
	ActionWebhookConfig c = config(url);
	c.timeout_s = 1;
	c.max_attempts = 1;
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent ev = sample_alert(1700000000000);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->ops->flush(s, 5000), 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":0,\"failed\":1,\"retried\":0,");
	assert_stat(st, "\"last_error\":\"Operation timed out after ");
	sink_free(s);
	server_free(srv);
}

/* requests in flight together that fail together are one step of backoff */
static void
test_failures_together(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	c.backoff_ms = 60000;
	c.max_attempts = 8;
	Sink *s = action_webhook_new(&c, NULL);
	for (int i = 0; i < WEBHOOK_MAX_IN_FLIGHT; i++) {
		AlertEvent ev = sample_alert(1700000000000 + i);
		s->ops->write(s, &ev, &ctx);
	}
	char *st = stats(s);
	for (int i = 0; i < 500; i++) {
		if (strstr(st, "\"in_flight\":0,\"failing\":1,") != NULL &&
		    strstr(st, "\"queued\":4,") != NULL)
			break;
		g_usleep(10000);
		g_free(st);
		st = stats(s);
	}
	assert_stat(st, "\"queued\":4,");
	assert_stat(st, "\"in_flight\":0,\"failing\":1,");
	g_free(st);
	g_usleep(100000);
	st = stats(s);
	assert_stat(st, "\"failing\":1,"); /* and it stays so: 60 s before the next try */
	g_free(st);
	sink_free(s);
}

static void
test_unreachable(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent ev = sample_alert(1700000000000);
	s->ops->write(s, &ev, &ctx);
	/* 3 attempts, 10 + 20 ms apart */
	assert_int_equal(s->ops->flush(s, 10000), 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":0,\"failed\":1,\"retried\":2,");
	assert_stat(st, "\"last_status\":0,\"last_error\":\"Failed to connect to 127.0.0.1 port");
	assert_int_equal(s->st.errors, 1);
	sink_free(s);
}

static void
test_queue_full(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	c.queue = 2;
	c.backoff_ms = 60000;
	c.max_attempts = 8;
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent ev = sample_alert(1700000000000);
	s->ops->write(s, &ev, &ctx);
	/* the first attempt fails: it waits 60 s at the head of the queue */
	for (int i = 0; i < 500; i++) {
		g_autofree char *st = stats(s);
		if (strstr(st, "\"failing\":1,") != NULL)
			break;
		g_usleep(10000);
	}
	for (int i = 1; i < 6; i++) {
		ev = sample_alert(1700000000000 + i);
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->st.events, 2);
	assert_int_equal(s->st.dropped, 4);
	/* at exit: one more try of the head; it fails, and its next try is after the time:
	 * given up at once, the time left to the other actions */
	gint64 t0 = g_get_monotonic_time();
	assert_int_equal(s->ops->flush(s, 5000), 2);
	assert_true(g_get_monotonic_time() - t0 < 2 * G_USEC_PER_SEC);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"sent\":0,\"failed\":0,");
	sink_free(s);
}

static void
test_filter(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	assert_true(action_filter_spec_parse(&c.filter, "raised", "smtp-blocked", "", NULL));
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent ev = sample_alert(1700000000000); /* smtp-fanout */
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 0);
	g_autofree char *st = stats(s);
	assert_stat(st, "\"queued\":0,");
	assert_stat(st, "\"filtered\":1,");
	sink_free(s); /* no thread was started, no flush */
}

/* forget: the cleared event of a forgotten (host, reason) is not posted */
static void
test_forget(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	c.backoff_ms = 60000;
	Sink *s = action_webhook_new(&c, NULL);
	AlertEvent a = sample_alert(1700000000000), b = a;
	b.host[15] ^= 1;
	s->ops->write(s, &a, &ctx);
	s->ops->write(s, &b, &ctx);
	action_webhook_forget(s, a.host, -1);
	action_webhook_forget(NULL, a.host, -1); /* NULL-safe */
	a.event = b.event = ALERT_CLEARED;
	a.severity = b.severity = ALERT_SEV_INFO;
	s->ops->write(s, &a, &ctx);
	s->ops->write(s, &b, &ctx);
	assert_int_equal(s->st.events, 3); /* a raised, b raised, b cleared */
	g_autofree char *st = stats(s);
	assert_stat(st, "\"filtered\":1,\"acted_on\":0,");
	sink_free(s);
}

static void
test_free_busy(void **state)
{
	(void)state;
	g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", closed_port());
	ActionWebhookConfig c = config(url);
	c.backoff_ms = 60000;
	Sink *s = action_webhook_new(&c, NULL);
	for (int i = 0; i < 10; i++) {
		AlertEvent ev = sample_alert(1700000000000 + i);
		s->ops->write(s, &ev, &ctx);
	}
	sink_free(s); /* the worker stops, the queue is freed */
}

static void
test_new_errors(void **state)
{
	(void)state;
	ActionWebhookConfig c = config("http://127.0.0.1:9/");
	g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

	c.header = "Authorization Bearer secret1";
	assert_null(action_webhook_new(&c, &e1));
	assert_true(g_str_has_prefix(e1->message, "webhook_header: "));
	c.header = NULL;
	c.ca_file = "/nonexistent/ca.pem";
	assert_null(action_webhook_new(&c, &e2));
	assert_true(g_str_has_prefix(e2->message, "webhook_ca: '/nonexistent/ca.pem'"));
	c.ca_file = NULL;
	c.url = "hooks.example.com/x";
	assert_null(action_webhook_new(&c, &e3));
	assert_true(g_str_has_prefix(e3->message, "webhook 'hooks.example.com/x': "));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_verdict),
	    cmocka_unit_test(test_body),
	    cmocka_unit_test(test_deliver),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_retry_then_deliver),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_failures_together),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_queue_full),
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_forget),
	    cmocka_unit_test(test_free_busy),
	    cmocka_unit_test(test_new_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
