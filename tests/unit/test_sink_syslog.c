/* Unit tests for the syslog sinks: facility names, severity mapping, the key=value line and
 * its quoting, RFC 5424 formatting (PRI, timestamp, header fields, SD-PARAM escaping), URL
 * parsing, and the remote sink against sockets in this process: UDP datagrams, TCP
 * octet-counting frames in order through partial writes, the queue while the server is
 * away with overflow counted, and delivery after the server comes (back). The local sink
 * against a datagram socket in a temp dir standing in for /dev/log: syslog(3)'s format, a
 * reader that stops reading (never blocks, exact error count), stale and missing socket. */
#include "sample_alert.h"
#include "alertfields.h"
#include "sink_syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib/gstdio.h>

static const SinkCtx ctx = {.exporter_name = sample_exporter_name};

static void
test_facility(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int facility;
	} good[] = {{"daemon", LOG_DAEMON}, {"local0", LOG_LOCAL0}, {"LOCAL7", LOG_LOCAL7},
		    {"mail", LOG_MAIL},	    {"user", LOG_USER},	    {"authpriv", LOG_AUTHPRIV}};
	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(GError) err = NULL;
		int f = -1;
		assert_true(sink_syslog_facility_from_name(good[i].name, &f, &err));
		assert_int_equal(f, good[i].facility);
		assert_null(err);
	}
	static const char *const bad[] = {"local8", "", "daemon ", "kernel", "LOG_DAEMON", "3"};
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		int f = -1;
		assert_false(sink_syslog_facility_from_name(bad[i], &f, &err));
		assert_int_equal(f, -1);
		assert_non_null(err);
		g_autofree char *quoted = g_strdup_printf("'%s'", bad[i]);
		assert_non_null(strstr(err->message, quoted));
	}
	assert_string_equal(sink_syslog_facility_name(LOG_LOCAL3), "local3");
	assert_null(sink_syslog_facility_name(99 << 3));
}

static void
test_severity(void **state)
{
	(void)state;
	assert_int_equal(sink_syslog_severity(ALERT_SEV_INFO), LOG_INFO);
	assert_int_equal(sink_syslog_severity(ALERT_SEV_NOTICE), LOG_NOTICE);
	assert_int_equal(sink_syslog_severity(ALERT_SEV_WARNING), LOG_WARNING);
	assert_int_equal(sink_syslog_severity(ALERT_SEV_CRITICAL), LOG_CRIT);
}

static void
test_kv_line(void **state)
{
	(void)state;
	AlertEvent ev = sample_alert(1700000000123);
	g_autoptr(GString) s = g_string_new(NULL);

	sink_syslog_format_kv(s, &ev, &ctx);
	assert_string_equal(
	    s->str,
	    "time_ms=1700000000123 event=raised reason=smtp-fanout severity=warning "
	    "host=192.0.2.10 level=1.250 short_span_s=600 short_value=62 short_threshold=50 "
	    "short_distinct=62 short_estimated=false short_flows=70 short_attempts=71 "
	    "short_failed=9 long_span_s=3600 long_value=80 long_threshold=150 long_distinct=80 "
	    "long_estimated=true long_flows=90 long_attempts=95 long_failed=12 trigger=short "
	    "flows=90 attempts=95 failed=12 succeeded=83 answered=77 failed_share=0.126 "
	    "first_seen_ms=1699999995123 last_seen_ms=1700000000123 "
	    "top=198.51.100.7/3/US/64500;2001:db8::9/1// exporters=203.0.113.1;#7 "
	    "exporters_truncated=false sampling=1 lower_bound=false raised_ms=1700000000123 "
	    "countries=1 asns=1 short_estimate=62 short_estimate_se=0 long_estimate=80 "
	    "long_estimate_se=0 mta_like=true inbound_smtp=4 dns_external=37 dns_server=8.8.8.8 "
	    "dns_corroborated=false");

	/* peer present; empty lists and a value with space, quote, backslash, '=' and a
	 * newline are quoted and escaped */
	ev.has_peer = TRUE;
	sample_addr(ev.peer, "192.0.2.25");
	ev.n_top = 0;
	g_strlcpy(ev.evidence, "/ev/a b\"c\\d=e\nf", sizeof ev.evidence);
	g_string_truncate(s, 0);
	sink_syslog_format_kv(s, &ev, &ctx);
	assert_non_null(strstr(s->str, " host=192.0.2.10 peer=192.0.2.25 level=1.250 "));
	assert_non_null(strstr(s->str, " top=\"\" exporters=203.0.113.1;#7 "));
	assert_non_null(strstr(s->str, " evidence=\"/ev/a b\\\"c\\\\d=e\\x0af\" short_estimate=62 "));
	assert_null(strchr(s->str, '\n'));
}

static void
test_sd_escape(void **state)
{
	(void)state;
	g_autoptr(GString) s = g_string_new(NULL);
	/* RFC 5424 6.3.3: '"', '\' and ']' escaped; nothing else is */
	sink_syslog_sd_value(s, "a\"b\\c]d[e=f g");
	assert_string_equal(s->str, "a\\\"b\\\\c\\]d[e=f g");
	g_string_truncate(s, 0);
	sink_syslog_sd_value(s, "x\ny\x7f");
	assert_string_equal(s->str, "x?y?");
	g_string_truncate(s, 0);
	sink_syslog_sd_value(s, "");
	assert_string_equal(s->str, "");
}

static void
test_rfc5424(void **state)
{
	(void)state;
	AlertEvent ev = sample_alert(1700000000123);
	g_autoptr(GString) s = g_string_new(NULL);
	/* 2024-01-02T03:04:05.678901Z */
	gint64 t = G_GINT64_CONSTANT(1704164645678901);

	sink_syslog_format_5424(s, &ev, &ctx, LOG_DAEMON, "mx1.example.org", "spamflowd", 4242, t);
	/* PRI: daemon (3) * 8 + warning (4) = 28 */
	assert_true(g_str_has_prefix(s->str,
				     "<28>1 2024-01-02T03:04:05.678Z mx1.example.org "
				     "spamflowd 4242 raised [spamflow@32473 "
				     "time_ms=\"1700000000123\" event=\"raised\" "
				     "reason=\"smtp-fanout\" severity=\"warning\" "
				     "host=\"192.0.2.10\" level=\"1.250\" short_span_s=\"600\""));
	assert_non_null(strstr(s->str, " top=\"198.51.100.7/3/US/64500;2001:db8::9/1//\" "
				       "exporters=\"203.0.113.1;#7\" "));
	assert_true(g_str_has_suffix(s->str, " countries=\"1\" asns=\"1\" short_estimate=\"62\" "
					     "short_estimate_se=\"0\" long_estimate=\"80\" "
					     "long_estimate_se=\"0\" mta_like=\"true\" "
					     "inbound_smtp=\"4\" dns_external=\"37\" "
					     "dns_server=\"8.8.8.8\" dns_corroborated=\"false\"] raised "
					     "smtp-fanout host=192.0.2.10 severity=warning level=1.250"));
	assert_null(strstr(s->str, "peer="));
	assert_null(strstr(s->str, "evidence="));

	/* critical on local7: 23 * 8 + 2 = 186; odd host and app names; an evidence path
	 * that needs SD escaping */
	ev.severity = ALERT_SEV_CRITICAL;
	ev.event = ALERT_UPDATED;
	g_strlcpy(ev.evidence, "/ev/x]\"y\\z", sizeof ev.evidence);
	g_strlcpy(ev.group, "lab.2", sizeof ev.group);
	g_string_truncate(s, 0);
	sink_syslog_format_5424(s, &ev, &ctx, LOG_LOCAL7, "bad host", "", 1, t);
	assert_true(g_str_has_prefix(s->str, "<186>1 2024-01-02T03:04:05.678Z bad_host - 1 "
					     "updated [spamflow@32473 "));
	assert_non_null(strstr(s->str, " evidence=\"/ev/x\\]\\\"y\\\\z\" short_estimate=\"62\" "));
	assert_non_null(strstr(s->str, " dns_corroborated=\"false\" group=\"lab.2\"] updated "));

	/* every field of alertfields.h is a PARAM, in order */
	const char *prev = s->str;
	for (guint i = 0; i < ALERT_FIELDS_N; i++) {
		g_autofree char *param = g_strdup_printf(" %s=\"", alert_field_names[i]);
		const char *at = strstr(s->str, param);
		if (strcmp(alert_field_names[i], "peer") == 0) {
			assert_null(at);
			continue;
		}
		assert_non_null(at);
		assert_true(at > prev);
		prev = at;
	}
}

static void
test_frame(void **state)
{
	(void)state;
	g_autoptr(GString) s = g_string_new(NULL);
	sink_syslog_frame(s, "<28>1 - - - - - -", 17);
	assert_string_equal(s->str, "17 <28>1 - - - - - -");
	g_string_truncate(s, 0);
	sink_syslog_frame(s, "", 0);
	assert_string_equal(s->str, "0 ");
}

static void
test_url(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		SinkSyslogTransport t;
		const char *host;
		guint port;
	} good[] = {
	    {"udp://127.0.0.1:5514", SINK_SYSLOG_UDP, "127.0.0.1", 5514},
	    {"tcp://logs.example.org", SINK_SYSLOG_TCP, "logs.example.org", 514},
	    {"tcp://[2001:db8::1]:6514", SINK_SYSLOG_TCP, "2001:db8::1", 6514},
	    {"udp://[::1]", SINK_SYSLOG_UDP, "::1", 514},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *host = NULL;
		SinkSyslogTransport t = 99;
		guint16 port = 0;
		assert_true(sink_syslog_parse_url(good[i].url, &t, &host, &port, &err));
		assert_int_equal(t, good[i].t);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	static const char *const bad[] = {
	    "127.0.0.1:514", "http://x:514",  "udp://",	      "udp://:514",
	    "tcp://x:0",     "tcp://x:65536", "tcp://x:5a",   "tcp://2001:db8::1",
	    "tcp://[::1",    "tcp://[x]:514", "tcp://[::1]x", "udp://a b:514",
	};
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autofree char *host = NULL;
		SinkSyslogTransport t;
		guint16 port;
		assert_false(sink_syslog_parse_url(bad[i], &t, &host, &port, &err));
		assert_null(host);
		assert_non_null(err);
		assert_non_null(strstr(err->message, bad[i]));
	}
}

/* ---- sockets ---- */

static int
listen_tcp(guint16 *port, gboolean any_port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(any_port ? 0 : *port)};
	socklen_t len = sizeof sin;

	assert_true(fd >= 0);
	int small = 16384; /* inherited by accepted sockets: they fill up soon */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static gboolean
wake(gpointer data)
{
	(void)data;
	return G_SOURCE_REMOVE;
}

/* Run the default main context for up to ms, or until done(s) holds. */
static void
spin(Sink *s, gboolean (*done)(const Sink *s), guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
	while (g_get_monotonic_time() < end && (done == NULL || !done(s))) {
		GSource *t = g_timeout_source_new(10);
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
	}
}

/* Read octet-counted frames from fd into msgs until want frames or ms pass, spinning the
 * sink's main context meanwhile so it can keep writing. FALSE on a malformed frame. */
static gboolean
read_frames(int fd, GPtrArray *msgs, guint want, guint ms, Sink *s)
{
	g_autoptr(GString) in = g_string_new(NULL);
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (msgs->len < want && g_get_monotonic_time() < end) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0)
			g_string_append_len(in, buf, n);
		else if (n == 0)
			break;
		else
			spin(s, NULL, 5);
		for (;;) {
			char *sp = memchr(in->str, ' ', in->len);
			guint64 len;
			if (sp == NULL)
				break;
			g_autofree char *num = g_strndup(in->str, (gsize)(sp - in->str));
			if (!g_ascii_string_to_unsigned(num, 10, 1, 1 << 20, &len, NULL))
				return FALSE;
			gsize head = (gsize)(sp - in->str) + 1;
			if (in->len - head < len)
				break;
			g_ptr_array_add(msgs, g_strndup(in->str + head, (gsize)len));
			g_string_erase(in, 0, (gssize)(head + len));
		}
	}
	return in->len == 0;
}

static gint64
msg_time_ms(const char *msg)
{
	const char *p = strstr(msg, "time_ms=\"");
	assert_non_null(p);
	return g_ascii_strtoll(p + 9, NULL, 10);
}

static void
test_tcp_frames_in_order(void **state)
{
	(void)state;
	guint16 port;
	int lfd = listen_tcp(&port, TRUE);
	g_autofree char *url = g_strdup_printf("tcp://127.0.0.1:%u", port);
	g_autoptr(GError) err = NULL;
	const guint n = 8000; /* ~9 MB: more than the socket buffers, so writes go partial */

	g_autoptr(Sink) s = sink_syslog_remote_new(url, n, &err);
	assert_non_null(s);
	spin(s, sink_syslog_remote_connected, 5000);
	assert_true(sink_syslog_remote_connected(s));
	int cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);

	AlertEvent ev = sample_alert(0);
	g_strlcpy(ev.evidence, "/ev/pad", sizeof ev.evidence);
	for (guint i = 0; i < n; i++) {
		ev.time_ms = i + 1;
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->st.events, n);
	assert_int_equal(s->st.dropped, 0);
	/* nothing read yet: the socket filled and the rest waits in the queue */
	assert_true(sink_syslog_remote_queue_len(s) > 0);

	g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
	assert_true(read_frames(cfd, msgs, n, 20000, s));
	assert_int_equal(msgs->len, n);
	for (guint i = 0; i < n; i++) {
		const char *m = g_ptr_array_index(msgs, i);
		assert_true(g_str_has_prefix(m, "<28>1 "));
		assert_int_equal(msg_time_ms(m), i + 1);
		assert_true(g_str_has_suffix(m, "level=1.250"));
	}
	assert_int_equal(sink_syslog_remote_queue_len(s), 0);
	g_autoptr(GString) js = g_string_new(NULL);
	s->ops->stats_json(s, js);
	assert_non_null(strstr(js->str, "\"transport\":\"tcp\",\"queue\":0,"));
	assert_non_null(strstr(js->str, "\"connected\":true,\"connects\":1,\"reconnects\":0"));
	close(cfd);
	close(lfd);
}

static void
test_tcp_queue_overflow_and_return(void **state)
{
	(void)state;
	guint16 port;
	int lfd = listen_tcp(&port, TRUE);
	close(lfd); /* nobody listens there now */
	g_autofree char *url = g_strdup_printf("tcp://127.0.0.1:%u", port);
	g_autoptr(GError) err = NULL;

	g_autoptr(Sink) s = sink_syslog_remote_new(url, 3, &err);
	assert_non_null(s);
	spin(s, NULL, 200); /* the first connect fails */
	assert_false(sink_syslog_remote_connected(s));
	AlertEvent ev = sample_alert(0);
	for (guint i = 0; i < 5; i++) {
		ev.time_ms = i + 1;
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->st.events, 3);
	assert_int_equal(s->st.dropped, 2);
	assert_int_equal(s->st.errors, 0);
	assert_int_equal(sink_syslog_remote_queue_len(s), 3);

	/* the server comes: the queue goes out in order, the dropped events do not */
	lfd = listen_tcp(&port, FALSE);
	assert_true(sink_syslog_remote_flush(s, 5000));
	int cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);
	g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
	assert_true(read_frames(cfd, msgs, 3, 2000, s));
	assert_int_equal(msgs->len, 3);
	for (guint i = 0; i < 3; i++)
		assert_int_equal(msg_time_ms(g_ptr_array_index(msgs, i)), i + 1);

	/* the server goes away (closes): the next events queue, then go to the new server */
	close(cfd);
	spin(s, NULL, 100);
	ev.time_ms = 10;
	s->ops->write(s, &ev, &ctx);
	spin(s, NULL, 100);
	assert_false(sink_syslog_remote_connected(s));
	ev.time_ms = 11;
	s->ops->write(s, &ev, &ctx);
	assert_true(sink_syslog_remote_flush(s, 5000));
	cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);
	g_ptr_array_set_size(msgs, 0);
	assert_true(read_frames(cfd, msgs, 2, 2000, s));
	assert_int_equal(msgs->len, 2);
	assert_int_equal(msg_time_ms(g_ptr_array_index(msgs, 0)), 10);
	assert_int_equal(msg_time_ms(g_ptr_array_index(msgs, 1)), 11);
	g_autoptr(GString) js = g_string_new(NULL);
	s->ops->stats_json(s, js);
	assert_non_null(strstr(js->str, "\"reconnects\":1,"));
	assert_int_equal(s->st.dropped, 2);
	close(cfd);
	close(lfd);
}

static void
test_udp_datagram(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof sin;
	g_autoptr(GError) err = NULL;
	char buf[65536];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	g_autofree char *url = g_strdup_printf("udp://127.0.0.1:%u", ntohs(sin.sin_port));
	g_autoptr(Sink) s = sink_syslog_remote_new(url, 0, &err);
	assert_non_null(s);
	sink_syslog_remote_set_origin(s, "spamtest", LOG_LOCAL0);
	AlertEvent ev = sample_alert(77);
	s->ops->write(s, &ev, &ctx);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 2);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(poll(&p, 1, 2000), 1);
		ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
		assert_true(n > 0);
		buf[n] = '\0';
		/* one message per datagram, no framing; local0 (16) * 8 + warning = 132 */
		assert_true(g_str_has_prefix(buf, "<132>1 "));
		assert_non_null(strstr(buf, " spamtest "));
		assert_int_equal(msg_time_ms(buf), 77);
		assert_true(g_str_has_suffix(buf, "level=1.250"));
	}
	assert_true(sink_syslog_remote_flush(s, 10));
	close(fd);

	Sink *bad = sink_syslog_remote_new("udp://no-such-host.invalid:514", 0, &err);
	assert_null(bad);
	assert_non_null(strstr(err->message, "no-such-host.invalid"));
}

/* ---- local: our own non-blocking socket to /dev/log (a socket in a temp dir here) ---- */

/* A datagram socket standing in for /dev/log at dir/log. */
static int
devlog_bind(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof addr.sun_path);
	g_strlcpy(addr.sun_path, path, sizeof addr.sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
	return fd;
}

/* Every datagram waiting (none more within ms), appended to msgs. */
static guint
devlog_drain(int fd, GPtrArray *msgs, int ms)
{
	guint got = 0;
	char buf[65536];
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (poll(&p, 1, ms) == 1) {
		ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
		if (n < 0)
			break;
		buf[n] = '\0';
		if (msgs != NULL)
			g_ptr_array_add(msgs, g_strdup(buf));
		got++;
	}
	return got;
}

static char *
devlog_path(char **dir)
{
	g_autoptr(GError) err = NULL;
	*dir = g_dir_make_tmp("spamflow-devlog-XXXXXX", &err);
	assert_non_null(*dir);
	return g_build_filename(*dir, "log", NULL);
}

static void
test_local_format(void **state)
{
	(void)state;
	g_autoptr(GString) s = g_string_new(NULL);
	struct tm tm = {.tm_year = 124,
			.tm_mon = 2,
			.tm_mday = 5,
			.tm_hour = 7,
			.tm_min = 8,
			.tm_sec = 9,
			.tm_isdst = -1};
	time_t t = mktime(&tm); /* local time, as syslog(3) stamps */

	syslog_local_format(s, LOG_LOCAL3 | LOG_WARNING, "spamflowd", 4242, t, "a=b c=d");
	assert_string_equal(s->str, "<156>Mar  5 07:08:09 spamflowd[4242]: a=b c=d");
	tm = (struct tm){.tm_year = 125,
			 .tm_mon = 11,
			 .tm_mday = 31,
			 .tm_hour = 23,
			 .tm_min = 59,
			 .tm_sec = 58,
			 .tm_isdst = -1};
	t = mktime(&tm);
	g_string_truncate(s, 0);
	syslog_local_format(s, LOG_DAEMON | LOG_CRIT, "x", 1, t, "");
	assert_string_equal(s->str, "<26>Dec 31 23:59:58 x[1]: ");
}

/* (a) the messages as syslog(3) would write them, one per datagram */
static void
test_local_delivery(void **state)
{
	(void)state;
	g_autofree char *dir = NULL;
	g_autofree char *path = devlog_path(&dir);
	g_autoptr(GError) err = NULL;
	int rfd = devlog_bind(path);

	g_autoptr(Sink) s = sink_syslog_new_at(path, "spamflow-test", LOG_LOCAL3, &err);
	assert_non_null(s);
	assert_string_equal(s->name, "spamflow-test.local3");
	AlertEvent ev = sample_alert(1700000000123);
	s->ops->write(s, &ev, &ctx);
	ev.severity = ALERT_SEV_CRITICAL;
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 2);
	assert_int_equal(s->st.errors, 0);

	g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
	assert_int_equal(devlog_drain(rfd, msgs, 200), 2);
	g_autoptr(GString) kv = g_string_new(NULL);
	ev.severity = ALERT_SEV_WARNING;
	sink_syslog_format_kv(kv, &ev, &ctx);
	g_autofree char *tail = g_strdup_printf(" spamflow-test[%u]: %s", (guint)getpid(), kv->str);
	for (guint i = 0; i < 2; i++) {
		const char *m = g_ptr_array_index(msgs, i);
		/* local3 (19) * 8 + warning (4) = 156; + critical (2) = 154 */
		assert_true(g_str_has_prefix(m, i == 0 ? "<156>" : "<154>"));
		assert_true(
		    g_regex_match_simple("^<\\d+>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d "
					 "spamflow-test\\[\\d+\\]: time_ms=",
					 m, 0, 0));
		if (i == 0)
			assert_true(g_str_has_suffix(m, tail));
		else
			assert_non_null(strstr(m, " severity=critical "));
		assert_int_equal(strlen(m), strlen(m + 5) + 5); /* no NUL, no newline */
		assert_null(strchr(m, '\n'));
	}
	g_autoptr(GString) js = g_string_new(NULL);
	s->ops->stats_json(s, js);
	assert_string_equal(js->str, "\"connected\":true");
	close(rfd);
	unlink(path);
	g_rmdir(dir);
}

/* (b) a syslog daemon that does not read: every write returns at once, the events that do
 * not fit its queue are errors, exactly; (c) once it reads again, events arrive again */
static void
test_local_stalled_reader(void **state)
{
	(void)state;
	g_autofree char *dir = NULL;
	g_autofree char *path = devlog_path(&dir);
	g_autoptr(GError) err = NULL;
	int rfd = devlog_bind(path);
	const guint n = 1000;

	g_autoptr(Sink) s = sink_syslog_new_at(path, "spamflow-test", LOG_DAEMON, &err);
	assert_non_null(s);
	AlertEvent ev = sample_alert(0);
	gint64 t0 = g_get_monotonic_time();
	for (guint i = 0; i < n; i++) {
		ev.time_ms = i + 1;
		s->ops->write(s, &ev, &ctx);
	}
	gint64 took = g_get_monotonic_time() - t0;
	print_message("1000 events into a full /dev/log queue: %" G_GINT64_FORMAT " us\n", took);
	assert_true(took < G_USEC_PER_SEC);
	assert_int_equal(s->st.events + s->st.errors, n);
	assert_true(s->st.errors > 0);

	/* what the reader finds is exactly what was counted as delivered: the first ones */
	g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
	guint fit = devlog_drain(rfd, msgs, 100);
	assert_int_equal(fit, s->st.events);
	assert_int_equal(s->st.errors, n - fit);
	for (guint i = 0; i < fit; i++) {
		const char *p = strstr(g_ptr_array_index(msgs, i), " time_ms=");
		assert_non_null(p);
		assert_int_equal(g_ascii_strtoll(p + 9, NULL, 10), i + 1);
	}

	/* (c) reading again: the next events go through, in order */
	for (guint i = 0; i < 5; i++) {
		ev.time_ms = 5000 + i;
		s->ops->write(s, &ev, &ctx);
	}
	assert_int_equal(s->st.events, fit + 5);
	assert_int_equal(s->st.errors, n - fit);
	g_ptr_array_set_size(msgs, 0);
	assert_int_equal(devlog_drain(rfd, msgs, 200), 5);
	for (guint i = 0; i < 5; i++) {
		const char *p = strstr(g_ptr_array_index(msgs, i), " time_ms=");
		assert_int_equal(g_ascii_strtoll(p + 9, NULL, 10), 5000 + i);
	}
	close(rfd);
	unlink(path);
	g_rmdir(dir);
}

/* (d) the syslog daemon dies (a stale socket file), then its socket goes (missing): errors,
 * never fatal; it comes back on a new socket: delivery resumes at the next event. SIGHUP
 * connects afresh. */
static void
test_local_daemon_gone_and_back(void **state)
{
	(void)state;
	g_autofree char *dir = NULL;
	g_autofree char *path = devlog_path(&dir);
	g_autoptr(GError) err = NULL;
	int rfd = devlog_bind(path);

	g_autoptr(Sink) s = sink_syslog_new_at(path, "spamflow-test", LOG_DAEMON, &err);
	assert_non_null(s);
	AlertEvent ev = sample_alert(1);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(devlog_drain(rfd, NULL, 200), 1);

	close(rfd); /* stale: the file stays, nobody reads (ECONNREFUSED) */
	s->ops->write(s, &ev, &ctx);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 1);
	assert_int_equal(s->st.errors, 2);
	g_autoptr(GString) js = g_string_new(NULL);
	s->ops->stats_json(s, js);
	assert_string_equal(js->str, "\"connected\":false");
	assert_false(s->ops->reopen(s, &err));
	assert_non_null(strstr(err->message, "Connection refused"));
	g_clear_error(&err);

	unlink(path); /* missing (ENOENT) */
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.errors, 3);

	rfd = devlog_bind(path); /* back */
	s->ops->write(s, &ev, &ctx);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 3);
	assert_int_equal(s->st.errors, 3);
	assert_int_equal(devlog_drain(rfd, NULL, 200), 2);

	/* restarted on a new socket while we were connected to the old one: the send fails
	 * on the dead peer, the sink connects again and the event is not lost */
	close(rfd);
	unlink(path);
	rfd = devlog_bind(path);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 4);
	assert_int_equal(s->st.errors, 3);
	assert_int_equal(devlog_drain(rfd, NULL, 200), 1);

	/* SIGHUP: a new connection, the old one closed */
	assert_true(s->ops->reopen(s, &err));
	assert_null(err);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.events, 5);
	assert_int_equal(devlog_drain(rfd, NULL, 200), 1);
	close(rfd);
	unlink(path);
	g_rmdir(dir);
}

/* No syslog daemon at all: every event is an error, counted, never fatal. */
static void
test_local_without_daemon(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = NULL;
	g_autofree char *path = devlog_path(&dir);

	assert_null(sink_syslog_new("spamflow-test", 12345, &err));
	assert_non_null(err);
	g_clear_error(&err);
	g_autofree char *longpath = g_strnfill(200, 'x');
	assert_null(sink_syslog_new_at(longpath, "spamflow-test", LOG_LOCAL3, &err));
	assert_non_null(err);
	g_clear_error(&err);
	g_autoptr(Sink) s = sink_syslog_new_at(path, "spamflow-test", LOG_LOCAL3, &err);
	assert_non_null(s);
	assert_string_equal(s->name, "spamflow-test.local3");
	AlertEvent ev = sample_alert(1);
	s->ops->write(s, &ev, &ctx);
	s->ops->write(s, &ev, &ctx);
	assert_int_equal(s->st.errors, 2);
	assert_int_equal(s->st.events, 0);
	g_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_facility),
	    cmocka_unit_test(test_severity),
	    cmocka_unit_test(test_kv_line),
	    cmocka_unit_test(test_sd_escape),
	    cmocka_unit_test(test_rfc5424),
	    cmocka_unit_test(test_frame),
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_tcp_frames_in_order),
	    cmocka_unit_test(test_tcp_queue_overflow_and_return),
	    cmocka_unit_test(test_udp_datagram),
	    cmocka_unit_test(test_local_format),
	    cmocka_unit_test(test_local_delivery),
	    cmocka_unit_test(test_local_stalled_reader),
	    cmocka_unit_test(test_local_daemon_gone_and_back),
	    cmocka_unit_test(test_local_without_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
