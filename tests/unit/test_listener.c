/* Unit tests for the UDP listener: binds ephemeral ports on 127.0.0.1 and ::1, sends real
 * NetFlow v5 datagrams from real sockets, runs a private main context and checks the
 * counters, the exporter addresses the collector saw, the flushed records, and the kernel
 * drop counter (SO_RXQ_OVFL) after overflowing a small receive buffer. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
	guint flushes;
	guint flows;
} Sink;

static void
sink_flush(const Flow *flows, guint n, gpointer user_data)
{
	Sink *s = user_data;
	(void)flows;
	s->flushes++;
	s->flows += n;
}

static void
put16(guint8 *p, guint16 v)
{
	v = GUINT16_TO_BE(v);
	memcpy(p, &v, 2);
}

static void
put32(guint8 *p, guint32 v)
{
	v = GUINT32_TO_BE(v);
	memcpy(p, &v, 4);
}

/* A NetFlow v5 datagram with n records (RFC-less, Cisco's layout: 24 + n * 48 bytes). */
static gsize
make_v5(guint8 *buf, guint n, guint32 seq)
{
	gsize len = 24 + (gsize)n * 48;

	memset(buf, 0, len);
	put16(buf, 5);
	put16(buf + 2, (guint16)n);
	put32(buf + 4, 100000);	    /* sys_uptime ms */
	put32(buf + 8, 1700000000); /* unix_secs */
	put32(buf + 16, seq);
	for (guint i = 0; i < n; i++) {
		guint8 *r = buf + 24 + (gsize)i * 48;
		put32(r, 0x0a000001 + i); /* srcaddr 10.0.0.x */
		put32(r + 4, 0xc6336407); /* dstaddr 198.51.100.7 */
		put32(r + 16, 3);	  /* dPkts */
		put32(r + 20, 180);	  /* dOctets */
		put32(r + 24, 90000);	  /* First */
		put32(r + 28, 99000);	  /* Last */
		put16(r + 32, 40000);
		put16(r + 34, 25);
		r[37] = 0x02; /* SYN */
		r[38] = 6;    /* TCP */
	}
	return len;
}

/* An unconnected UDP socket of the family of listener socket i, and its local port. */
static int
sender(int family, guint16 *port)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof ss;

	assert_true(fd >= 0);
	ss.ss_family = (sa_family_t)family;
	assert_int_equal(
	    bind(fd, (struct sockaddr *)&ss,
		 family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
	    0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
				  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void
send_to(int fd, int family, guint16 port, const guint8 *buf, gsize len)
{
	struct sockaddr_in sin = {0};
	struct sockaddr_in6 sin6 = {0};
	ssize_t n;

	if (family == AF_INET) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		n = sendto(fd, buf, len, 0, (struct sockaddr *)&sin, sizeof sin);
	} else {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		sin6.sin6_addr = in6addr_loopback;
		n = sendto(fd, buf, len, 0, (struct sockaddr *)&sin6, sizeof sin6);
	}
	assert_int_equal(n, (ssize_t)len);
}

/* Run ctx until the listener has handed over `want` datagrams (or 5 s pass). */
static void
run_until(GMainContext *ctx, const Listener *l, guint64 want)
{
	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

	while (listener_stats(l)->datagrams + listener_stats(l)->kernel_drops < want &&
	       g_get_monotonic_time() < deadline) {
		if (!g_main_context_iteration(ctx, FALSE))
			g_usleep(2000);
	}
}

typedef struct {
	guint8 addr[16];
	guint16 port;
	guint64 datagrams;
	guint64 records;
	gboolean found;
} Want;

static void
find_session(const SessionView *v, gpointer user_data)
{
	Want *w = user_data;
	if (memcmp(v->addr, w->addr, 16) == 0 && v->port == w->port) {
		w->found = TRUE;
		w->datagrams += v->stats->datagrams;
		w->records += v->stats->records;
	}
}

static void
test_receive(void **state)
{
	(void)state;
	const char *const addrs[] = {"127.0.0.1:0", "[::1]:0", NULL};
	g_autoptr(GError) err = NULL;
	g_autoptr(Listener) l = listener_new(addrs, 1 << 20, &err);
	CollectorConfig cfg;
	Sink sink = {0};
	guint8 buf[24 + 3 * 48];
	guint16 p4, p6;

	if (l == NULL)
		fail_msg("listener_new: %s", err->message);
	assert_int_equal(listener_n_sockets(l), 2);
	assert_int_not_equal(listener_local_port(l, 0), 0);
	assert_int_not_equal(listener_local_port(l, 1), 0);
	assert_int_equal(listener_local_port(l, 2), 0);
	assert_null(listener_address(l, 2));
	assert_true(g_str_has_prefix(listener_address(l, 0), "127.0.0.1:"));
	assert_true(g_str_has_prefix(listener_address(l, 1), "[::1]:"));
	assert_true(listener_rcvbuf(l, 0) > 0); /* clamped to rmem_max when not privileged */

	collector_config_defaults(&cfg);
	g_autoptr(FlowBatch) batch = flow_batch_new(64, sink_flush, &sink);
	g_autoptr(Collector) c = collector_new(&cfg, batch);
	g_autoptr(GMainContext) ctx = g_main_context_new();
	listener_attach(l, c, batch, ctx);

	int s4 = sender(AF_INET, &p4);
	int s6 = sender(AF_INET6, &p6);
	gsize len = make_v5(buf, 3, 0);
	for (guint i = 0; i < 4; i++) {
		make_v5(buf, 3, i * 3);
		send_to(s4, AF_INET, listener_local_port(l, 0), buf, len);
	}
	for (guint i = 0; i < 2; i++) {
		make_v5(buf, 3, i * 3);
		send_to(s6, AF_INET6, listener_local_port(l, 1), buf, len);
	}
	run_until(ctx, l, 6);

	const ListenerStats *st = listener_stats(l);
	assert_int_equal(st->datagrams, 6);
	assert_int_equal(st->bytes, 6 * len);
	assert_int_equal(st->recv_errors, 0);
	assert_int_equal(st->truncated, 0);
	assert_int_equal(st->kernel_drops, 0);
	assert_true(st->batches >= 2 && st->batches <= 6);

	/* collector_input() got every datagram, with the sender's address and port */
	assert_int_equal(collector_totals(c)->datagrams, 6);
	Want w4 = {.port = p4}, w6 = {.port = p6};
	static const guint8 lo4[4] = {127, 0, 0, 1};
	flow_addr_set_v4(w4.addr, lo4);
	memcpy(w6.addr, &in6addr_loopback, 16);
	collector_foreach_session(c, find_session, &w4);
	collector_foreach_session(c, find_session, &w6);
	assert_true(w4.found);
	assert_true(w6.found);
	assert_int_equal(w4.datagrams, 4);
	assert_int_equal(w6.datagrams, 2);
	assert_int_equal(w4.records, 12);
	assert_int_equal(w6.records, 6);
	/* the batch was flushed at the end of each receive batch */
	assert_int_equal(sink.flows, 18);
	assert_int_equal(batch->n, 0);
	assert_true(sink.flushes >= 2);

	/* detached: nothing more is read */
	listener_detach(l);
	send_to(s4, AF_INET, listener_local_port(l, 0), buf, len);
	for (guint i = 0; i < 20; i++)
		g_main_context_iteration(ctx, FALSE);
	assert_int_equal(listener_stats(l)->datagrams, 6);
	/* re-attached: the queued datagram arrives */
	listener_attach(l, c, batch, ctx);
	run_until(ctx, l, 7);
	assert_int_equal(listener_stats(l)->datagrams, 7);

	close(s4);
	close(s6);
}

/* Overflow a small receive buffer: the kernel drops, the counters show them at once, and
 * the next datagram's SO_RXQ_OVFL (the same cumulative count) adds nothing. */
static void
test_kernel_drops(void **state)
{
	(void)state;
	const char *const addrs[] = {"127.0.0.1:0", NULL};
	g_autoptr(GError) err = NULL;
	g_autoptr(Listener) l = listener_new(addrs, 4096, &err);
	CollectorConfig cfg;
	guint8 buf[24 + 20 * 48];
	const guint sent = 200;
	guint16 p4;

	if (l == NULL)
		fail_msg("listener_new: %s", err->message);
	collector_config_defaults(&cfg);
	g_autoptr(FlowBatch) batch = flow_batch_new(64, NULL, NULL);
	g_autoptr(Collector) c = collector_new(&cfg, batch);
	g_autoptr(GMainContext) ctx = g_main_context_new();
	listener_attach(l, c, batch, ctx);

	int s4 = sender(AF_INET, &p4);
	gsize len = make_v5(buf, 20, 0);
	for (guint i = 0; i < sent; i++)
		send_to(s4, AF_INET, listener_local_port(l, 0), buf, len);
	/* The drops are seen at once (SO_MEMINFO), not only when the next datagram carries
	 * them in SO_RXQ_OVFL: every datagram is accounted for without sending another. */
	run_until(ctx, l, sent);
	guint64 got = listener_stats(l)->datagrams;
	assert_true(got > 0 && got < sent);
	assert_int_equal(listener_stats(l)->kernel_drops, sent - got);
	/* the next datagram carries the same cumulative count: not counted twice */
	send_to(s4, AF_INET, listener_local_port(l, 0), buf, len);
	run_until(ctx, l, sent + 1);
	assert_int_equal(listener_stats(l)->datagrams, got + 1);
	assert_int_equal(listener_stats(l)->kernel_drops, sent - got);
	close(s4);
}

static void
assert_bad_address(const char *text, const char *why)
{
	const char *const addrs[] = {text, NULL};
	g_autoptr(GError) err = NULL;
	g_autoptr(Listener) l = listener_new(addrs, 0, &err);
	g_autofree char *prefix = g_strdup_printf("listen address '%s': ", text);

	assert_null(l);
	assert_true(g_error_matches(err, LISTENER_ERROR, LISTENER_ERROR_ADDRESS));
	if (!g_str_has_prefix(err->message, prefix) || strstr(err->message, why) == NULL)
		fail_msg("'%s': unexpected error '%s'", text, err->message);
}

static void
test_bad_addresses(void **state)
{
	(void)state;
	assert_bad_address("", "empty");
	assert_bad_address("127.0.0.1", "missing ':port'");
	/* nfcapd's habit: a bare port gets the two addresses to write instead */
	assert_bad_address("2055", "a port alone; give the address too, 0.0.0.0:2055 for IPv4 "
				   "and [::]:2055 for IPv6");
	assert_bad_address("127.0.0.1:", "port ''");
	assert_bad_address("127.0.0.1:65536", "port '65536'");
	assert_bad_address("127.0.0.1:-1", "port '-1'");
	assert_bad_address("localhost:2055", "not a numeric IPv4 address");
	assert_bad_address("300.0.0.1:2055", "not a numeric IPv4 address");
	assert_bad_address("::1:2055", "brackets");
	assert_bad_address("[::1:2055", "'[IPv6]:port'");
	assert_bad_address("[::1]2055", "'[IPv6]:port'");
	assert_bad_address("[127.0.0.1]:2055", "not a numeric IPv6 address");
}

static void
test_parse_and_bind_errors(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t len;
	g_autoptr(GError) err = NULL;

	assert_true(listener_parse_address("[::]:2055", &ss, &len, &err));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 2055);
	assert_true(listener_parse_address("0.0.0.0:9995", &ss, &len, &err));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9995);

	/* the same port twice: the second bind fails, and the error names the address */
	const char *const one[] = {"127.0.0.1:0", NULL};
	g_autoptr(Listener) a = listener_new(one, 0, &err);
	assert_non_null(a);
	g_autofree char *again = g_strdup_printf("127.0.0.1:%u", listener_local_port(a, 0));
	const char *const two[] = {again, NULL};
	g_autoptr(Listener) b = listener_new(two, 0, &err);
	assert_null(b);
	assert_true(g_error_matches(err, LISTENER_ERROR, LISTENER_ERROR_SOCKET));
	assert_non_null(strstr(err->message, again));
	assert_non_null(strstr(err->message, "bind"));
	g_clear_error(&err);

	/* IPV6_V6ONLY: v4 and v6 wildcard sockets share a port */
	g_autoptr(Listener) v6 = NULL;
	g_autofree char *any4 = g_strdup_printf("0.0.0.0:%u", listener_local_port(a, 0));
	g_autofree char *any6 = g_strdup_printf("[::]:%u", listener_local_port(a, 0));
	g_clear_pointer(&a, listener_free);
	const char *const both[] = {any4, any6, NULL};
	v6 = listener_new(both, 0, &err);
	if (v6 == NULL)
		fail_msg("both wildcards: %s", err->message);
	assert_int_equal(listener_n_sockets(v6), 2);
	listener_free(NULL);
}

/* The wait after a partial read (listener.c): 10 ms at most for a trickle or a burst's
 * tail, up to 40 ms under a steady flow (the wakeup read a full recvmmsg batch of 64), for
 * about 1,024 datagrams, and never longer than a quarter of the receive buffer takes to
 * fill (4 KiB counted per datagram). */
static void
test_coalesce_delay(void **state)
{
	(void)state;
	const gsize big = 32u << 20, small = 212992;
	/* no recent read: no rate to go by */
	assert_int_equal(listener_coalesce_delay_us(5, 2 * G_USEC_PER_SEC, big), 1000);
	assert_int_equal(listener_coalesce_delay_us(0, 10000, big), 1000);
	/* a trickle, one datagram 50 ms after the last read: 10 ms, not 40 */
	assert_int_equal(listener_coalesce_delay_us(1, 50000, big), 10000);
	/* a burst's tail, 48 datagrams in 1 ms (48k/s): 1,024 would take 21 ms; 10 */
	assert_int_equal(listener_coalesce_delay_us(48, 1000, big), 10000);
	/* 200k v9 records/s, 74 datagrams in 10 ms: 1,024 take 138 ms; 40 */
	assert_int_equal(listener_coalesce_delay_us(74, 10000, big), 40000);
	/* 1 M records/s, 330 in 10 ms: 1,024 take 31.0 ms */
	gint64 d = listener_coalesce_delay_us(330, 10000, big);
	assert_true(d >= 31000 && d <= 31040);
	/* an unprivileged buffer (208 KiB: 13 datagrams' quarter) at 7,400/s: 1.76 ms */
	d = listener_coalesce_delay_us(74, 10000, small);
	assert_true(d >= 1750 && d <= 1760);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_receive),
	    cmocka_unit_test(test_coalesce_delay),
	    cmocka_unit_test(test_kernel_drops),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_parse_and_bind_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
