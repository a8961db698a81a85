/* Unit tests for the side signs of a host (analyzer signs.c, heuristics.c): which records are
 * inbound SMTP and external DNS, their counts over the last hour per tracked host (decay,
 * no host created, memory counted), the unlisted mail server hint's rule, and DNS
 * corroboration's one severity step on smtp alerts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "analyzer.h"

#define MIN_MS (60 * 1000)
#define T0 ((gint64)1700000000 / 600 * 600 * 1000) /* on a 10-minute boundary */
#define F_SESSION 0x1b				   /* SYN ACK PSH FIN */
#define F_SYN 0x02
#define F_RST 0x04

typedef struct {
	GArray *ev;
	Analyzer *a;
} Ctx;

static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	Ctx *c = user_data;
	g_array_append_val(c->ev, *ev);
}

static void
v4(guint8 out[16], guint8 a, guint8 b, guint8 c, guint8 d)
{
	guint8 x[4] = {a, b, c, d};
	flow_addr_set_v4(out, x);
}

static void
ext(guint8 out[16], guint32 i)
{
	v4(out, 198, (guint8)(i >> 16), (guint8)(i >> 8), (guint8)i);
}

static Flow
mk(gint64 t, const guint8 src[16], const guint8 dst[16], guint8 proto, guint16 dport, guint8 flags)
{
	Flow f;
	memset(&f, 0, sizeof f);
	memcpy(f.src, src, 16);
	memcpy(f.dst, dst, 16);
	f.recv_ms = t;
	f.sport = 40000;
	f.dport = dport;
	f.proto = proto;
	f.tcp_flags = flags;
	f.packets = flags == F_SYN ? 1 : 12;
	f.bytes = flags == F_SYN ? 60 : 3000;
	f.sampling = 1;
	f.has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | (proto == 6 ? FLOW_HAS_TCP_FLAGS : 0);
	return f;
}

static Ctx *
ctx_new(AnalyzerConfig *cfg)
{
	Ctx *c = g_new0(Ctx, 1);
	c->ev = g_array_new(FALSE, FALSE, sizeof(AlertEvent));
	cfg->alert_fn = on_alert;
	cfg->alert_data = c;
	g_autoptr(GError) err = NULL;
	c->a = analyzer_new(cfg, &err);
	assert_null(err);
	assert_non_null(c->a);
	return c;
}

static void
ctx_free(Ctx *c)
{
	analyzer_free(c->a);
	g_array_free(c->ev, TRUE);
	g_free(c);
}

static void
feed(Ctx *c, const Flow *f)
{
	analyzer_process(c->a, f, 1);
}

/* The raised event of (host, reason), or NULL. */
static const AlertEvent *
raised(Ctx *c, const guint8 host[16], AlertReason r)
{
	for (guint i = 0; i < c->ev->len; i++) {
		const AlertEvent *e = &g_array_index(c->ev, AlertEvent, i);
		if (e->event == ALERT_RAISED && e->reason == r && memcmp(e->host, host, 16) == 0)
			return e;
	}
	return NULL;
}

/* ---- classification ---- */

typedef struct {
	const char *name;
	Flow f;
	HeurDir dir;
	const guint8 *host;
} ClassCase;

static void
test_classify(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	g_autoptr(NetSet) internal = netset_new_from_list(cfg.internal_nets, NULL);
	g_autoptr(NetSet) mtas = netset_new_from_list("10.0.1.26", NULL);
	g_autoptr(NetSet) resolvers = netset_new_from_list("10.0.0.53, 9.9.9.9", NULL);
	HeurClassifier hc;
	memset(&hc, 0, sizeof hc);
	hc.internal = internal;
	hc.mtas = mtas;
	hc.resolvers = resolvers;
	assert_true(portset_parse(&hc.smtp, "25", NULL));
	assert_true(portset_parse(&hc.submit, "465, 587", NULL));
	assert_true(portset_parse(&hc.login, "993", NULL));
	heuristics_classifier_index(&hc);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		hc.win_enabled[k] = TRUE;

	guint8 cl[16], res[16], mta[16], g8[16], q9[16], mx[16], peer[16];
	v4(cl, 10, 0, 2, 10);
	v4(res, 10, 0, 0, 53);
	v4(mta, 10, 0, 1, 26);
	v4(g8, 8, 8, 8, 8);
	v4(q9, 9, 9, 9, 9);
	v4(mx, 198, 18, 0, 7);
	v4(peer, 10, 0, 2, 11);

	ClassCase cs[] = {
	    {"udp query to an external server", mk(0, cl, g8, 17, 53, 0), HEUR_DNS_EXTERNAL, cl},
	    {"tcp query to an external server", mk(0, cl, g8, 6, 53, F_SESSION), HEUR_DNS_EXTERNAL,
	     cl},
	    {"query to the internal resolver", mk(0, cl, res, 17, 53, 0), HEUR_IGNORE, NULL},
	    {"the listed resolver forwarding", mk(0, res, g8, 17, 53, 0), HEUR_IGNORE, NULL},
	    {"query to a listed external resolver", mk(0, cl, q9, 17, 53, 0), HEUR_IGNORE, NULL},
	    {"query to a listed mail server", mk(0, cl, mta, 17, 53, 0), HEUR_IGNORE, NULL},
	    {"query from outside", mk(0, g8, cl, 17, 53, 0), HEUR_IGNORE, NULL},
	    {"mail delivered to an internal host", mk(0, mx, cl, 6, 25, F_SESSION),
	     HEUR_INBOUND_SMTP, cl},
	    {"inbound SYN only (a probe)", mk(0, mx, cl, 6, 25, F_SYN), HEUR_IGNORE, NULL},
	    {"inbound reset", mk(0, mx, cl, 6, 25, F_RST | 0x10), HEUR_IGNORE, NULL},
	    {"mail delivered to a listed mail server", mk(0, mx, mta, 6, 25, F_SESSION),
	     HEUR_IGNORE, NULL},
	    {"internal to internal on 25 is lateral", mk(0, peer, cl, 6, 25, F_SESSION),
	     HEUR_FORWARD, peer},
	};
	for (guint i = 0; i < G_N_ELEMENTS(cs); i++) {
		HeurClass c;
		heuristics_classify(&hc, &cs[i].f, &c);
		if (c.dir != cs[i].dir)
			print_error("%s: dir %d, want %d\n", cs[i].name, c.dir, cs[i].dir);
		assert_int_equal(c.dir, cs[i].dir);
		if (cs[i].host != NULL)
			assert_memory_equal(c.host, cs[i].host, 16);
		if (c.dir == HEUR_DNS_EXTERNAL)
			assert_memory_equal(c.peer, g8, 16);
		if (c.dir == HEUR_INBOUND_SMTP)
			assert_memory_equal(c.peer, mx, 16);
	}

	/* relevance: UDP to 53 only; answers (sport 53) and other UDP are not read */
	Flow q = mk(0, cl, g8, 17, 53, 0);
	assert_true(heuristics_relevant(&hc, &q));
	Flow answer = mk(0, g8, cl, 17, 40000, 0);
	answer.sport = 53;
	assert_false(heuristics_relevant(&hc, &answer));
	Flow ntp = mk(0, cl, g8, 17, 123, 0);
	assert_false(heuristics_relevant(&hc, &ntp));
	Flow icmp = mk(0, cl, g8, 1, 53, 0);
	assert_false(heuristics_relevant(&hc, &icmp));
	Flow tcp53 = mk(0, cl, g8, 6, 53, F_SESSION);
	assert_true(heuristics_relevant(&hc, &tcp53));

	/* a firewall's teardown record is no new query or session */
	Flow del = mk(0, cl, g8, 17, 53, 0);
	del.has |= FLOW_HAS_FW_EVENT;
	del.fw_event = FW_EVENT_DELETED;
	HeurClass c;
	heuristics_classify(&hc, &del, &c);
	assert_int_equal(c.dir, HEUR_IGNORE);
	Flow in_del = mk(0, mx, cl, 6, 25, F_SESSION);
	in_del.has |= FLOW_HAS_FW_EVENT;
	in_del.fw_event = FW_EVENT_DELETED;
	heuristics_classify(&hc, &in_del, &c);
	assert_int_equal(c.dir, HEUR_IGNORE);
}

static void
test_inbound_delivered(void **state)
{
	(void)state;
	guint8 a[16], b[16];
	v4(a, 198, 18, 0, 1);
	v4(b, 10, 0, 0, 1);
	Flow f = mk(0, a, b, 6, 25, F_SESSION);
	assert_true(heuristics_inbound_delivered(&f));
	f.tcp_flags = F_SYN;
	assert_false(heuristics_inbound_delivered(&f));
	f.tcp_flags = 0x10 | F_RST; /* ACK RST, no data: refused */
	assert_false(heuristics_inbound_delivered(&f));
	f.tcp_flags = 0x18; /* ACK PSH: the middle of a session */
	assert_true(heuristics_inbound_delivered(&f));
	/* no flags: more than two packets is a session, a SYN and its retry are not */
	f.has = FLOW_HAS_PACKETS;
	f.packets = 2;
	assert_false(heuristics_inbound_delivered(&f));
	f.packets = 3;
	assert_true(heuristics_inbound_delivered(&f));
	f.has |= FLOW_HAS_FW_EVENT;
	f.fw_event = FW_EVENT_DENIED;
	assert_false(heuristics_inbound_delivered(&f));
	/* packet samples: a packet of an established session counts, an opening SYN not */
	f = mk(0, a, b, 6, 25, 0x10);
	f.has |= FLOW_PACKET_SAMPLE;
	assert_true(heuristics_inbound_delivered(&f));
	f.tcp_flags = F_SYN;
	assert_false(heuristics_inbound_delivered(&f));
	f.tcp_flags = 0x10 | F_RST;
	assert_false(heuristics_inbound_delivered(&f));
}

/* ---- counts over the last hour ---- */

static void
host_signs(Ctx *c, const guint8 h[16], guint32 *inbound, guint32 *dns)
{
	AnalyzerHostInfo hi;
	assert_true(analyzer_host_info(c->a, h, &hi));
	*inbound = hi.inbound_smtp;
	*dns = hi.dns_external;
}

static void
test_counts_decay(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	Ctx *c = ctx_new(&cfg);
	guint8 h[16], g8[16], cf[16], mx[16], other[16];
	guint32 in, dns;
	AnalyzerStats st0, st;
	v4(h, 10, 0, 2, 10);
	v4(g8, 8, 8, 8, 8);
	v4(cf, 1, 1, 1, 1);
	v4(other, 10, 0, 2, 99);

	/* not tracked yet: nothing noted, no host made */
	Flow q = mk(T0, h, g8, 17, 53, 0);
	feed(c, &q);
	AnalyzerHostInfo hi;
	assert_false(analyzer_host_info(c->a, h, &hi));
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.hosts_tracked, 0);
	assert_int_equal(st.signs_untracked, 1);

	/* tracked by one port-25 attempt; then the signs cost their bytes */
	ext(mx, 1);
	Flow o = mk(T0 + 1000, h, mx, 6, 25, F_SESSION);
	feed(c, &o);
	analyzer_get_stats(c->a, &st0);
	q = mk(T0 + 1 * MIN_MS, h, g8, 17, 53, 0);
	for (guint i = 0; i < 3; i++)
		feed(c, &q);
	analyzer_get_stats(c->a, &st);
	/* HostExt (64 + 16 allocator) and HostSigns (80 + 16): analyzer_private.h */
	assert_int_equal(st.mem_bytes - st0.mem_bytes, 80 + 96);
	assert_int_equal(st.signs_dns_external, 3);
	/* the second kind of sign shares them */
	ext(mx, 2);
	Flow in1 = mk(T0 + 2 * MIN_MS, mx, h, 6, 25, F_SESSION);
	feed(c, &in1);
	analyzer_get_stats(c->a, &st0);
	assert_int_equal(st0.mem_bytes, st.mem_bytes);
	assert_int_equal(st0.signs_inbound_smtp, 1);

	/* minute by minute: 2 queries to 1.1.1.1 at minute 25, one over TCP to 8.8.8.8 at 55,
	 * a port-25 flow every 10 minutes to keep the host tracked; the counts cover the
	 * 10-minute buckets that end within the hour */
	for (gint64 m = 3; m <= 120; m++) {
		gint64 t = T0 + m * MIN_MS;
		if (m % 10 == 0) {
			Flow k = mk(t, h, mx, 6, 25, F_SESSION);
			feed(c, &k);
		}
		if (m == 25) {
			q = mk(t, h, cf, 17, 53, 0);
			feed(c, &q);
			feed(c, &q);
		}
		if (m == 55) {
			q = mk(t, h, g8, 6, 53, F_SESSION);
			feed(c, &q);
		}
		analyzer_tick(c->a, t + 1000);
		host_signs(c, h, &in, &dns);
		/* minutes 1 and 2 are bucket 0, gone from minute 60; 25 is bucket 2, gone from
		 * 80; 55 is bucket 5, gone from 110 */
		guint32 want_dns =
		    (m < 60 ? 3 : 0) + (m >= 25 && m < 80 ? 2 : 0) + (m >= 55 && m < 110 ? 1 : 0);
		if (dns != want_dns)
			print_error("minute %" G_GINT64_FORMAT ": dns %u, want %u\n", m, dns,
				    want_dns);
		assert_int_equal(dns, want_dns);
		assert_int_equal(in, m < 60 ? 1 : 0);
		if (m == 56) {
			assert_true(analyzer_host_info(c->a, h, &hi));
			assert_true(hi.has_dns_server);
			assert_memory_equal(hi.dns_server, g8, 16); /* the newest */
			assert_int_equal(hi.dns_last_ms, T0 + 55 * MIN_MS);
			assert_false(hi.resolvers_configured);
			assert_false(hi.dns_corroborated); /* no resolvers: noted only */
		}
	}
	/* late records (a clock stepped back, a late datagram): counted in their bucket when
	 * it is within the hour before the newest one, else not at all */
	q = mk(T0 + 120 * MIN_MS + 30000, h, g8, 17, 53, 0); /* bucket 12 */
	feed(c, &q);
	q = mk(T0 + 65 * MIN_MS, h, g8, 17, 53, 0); /* bucket 6: left the hour */
	feed(c, &q);
	q = mk(T0 + 75 * MIN_MS, h, g8, 17, 53, 0); /* bucket 7: still in it */
	feed(c, &q);
	host_signs(c, h, &in, &dns);
	assert_int_equal(dns, 2);

	/* a flood of mail "delivered" to random internal addresses makes no host */
	analyzer_get_stats(c->a, &st0);
	for (guint i = 0; i < 20000; i++) {
		guint8 d[16];
		v4(d, 10, (guint8)(i >> 16), (guint8)(i >> 8), (guint8)i);
		Flow f = mk(T0 + 121 * MIN_MS, mx, d, 6, 25, F_SESSION);
		feed(c, &f);
	}
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.hosts_tracked, st0.hosts_tracked);
	assert_int_equal(st.mem_bytes, st0.mem_bytes);
	assert_int_equal(st.signs_untracked - st0.signs_untracked, 20000 - 1); /* 10.0.2.10 */
	assert_false(analyzer_host_info(c->a, other, &hi));
	ctx_free(c);
}

/* ---- the hint's rule, the severity step ---- */

static void
test_mta_rule(void **state)
{
	(void)state;
	const gint64 now = T0 + 200 * MIN_MS, hour = 60 * MIN_MS;
	WindowCounts w;
	memset(&w, 0, sizeof w);
	/* inbound alone: at least HEUR_MTA_MIN_INBOUND */
	assert_true(heuristics_mta_like(3, &w, now, hour));
	assert_true(heuristics_mta_like(500, &w, now, hour));
	assert_false(heuristics_mta_like(2, &w, now, hour));
	assert_false(heuristics_mta_like(0, &w, now, hour));

	/* all of the window's signs: mostly delivered, repeats, steady */
	w.span[WINDOW_LONG] = (WindowSpanCounts){.distinct = 40, .attempts = 100, .failed = 20};
	w.first_ms = now - hour;
	assert_true(heuristics_mta_signs(&w, now, hour));
	assert_true(heuristics_mta_like(0, &w, now, hour));
	WindowCounts x = w;
	x.span[WINDOW_LONG].failed = 21; /* 21 % failed */
	assert_false(heuristics_mta_like(0, &x, now, hour));
	assert_true(heuristics_mta_like(3, &x, now, hour));
	x = w;
	x.span[WINDOW_LONG].distinct = 51; /* 100 < 2 x 51: no repeats */
	assert_false(heuristics_mta_like(0, &x, now, hour));
	x = w;
	x.first_ms = now - hour + 1; /* not a whole long window yet */
	assert_false(heuristics_mta_like(0, &x, now, hour));
	x = w;
	x.span[WINDOW_LONG] = (WindowSpanCounts){.distinct = 10, .attempts = 29, .failed = 0};
	assert_false(heuristics_mta_like(0, &x, now, hour)); /* too few attempts to judge */
	x.span[WINDOW_LONG].attempts = 30;
	assert_true(heuristics_mta_like(0, &x, now, hour));

	assert_int_equal(heuristics_severity_step(ALERT_SEV_NOTICE), ALERT_SEV_WARNING);
	assert_int_equal(heuristics_severity_step(ALERT_SEV_WARNING), ALERT_SEV_CRITICAL);
	assert_int_equal(heuristics_severity_step(ALERT_SEV_CRITICAL), ALERT_SEV_CRITICAL);
	assert_int_equal(heuristics_severity_step(ALERT_SEV_INFO), ALERT_SEV_INFO);
	assert_true(heuristics_reason_smtp(REASON_SMTP_FANOUT));
	assert_true(heuristics_reason_smtp(REASON_SMTP_BLOCKED));
	assert_false(heuristics_reason_smtp(REASON_MTA_SURGE));
	assert_false(heuristics_reason_smtp(REASON_SUBMISSION_FANOUT));
	assert_false(heuristics_reason_smtp(REASON_AUTH_BRUTEFORCE));
}

/* ---- the alerts ---- */

/* An unlisted MTA that receives mail: raised with the hint; a bot that fans out as fast
 * is not; an MTA that receives nothing but sends to the same providers all day gets the
 * hint from its window once its fan-out crosses. */
static void
test_alert_mta_hint(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	Ctx *c = ctx_new(&cfg);
	guint8 mta[16], bot[16], quiet[16], d[16];
	v4(mta, 10, 0, 1, 25);
	v4(bot, 192, 168, 10, 66);
	v4(quiet, 10, 0, 1, 27);

	/* both start sending; mail arrives at the MTA 4 times, the bot gets probed (SYN) */
	for (guint i = 0; i < 60; i++) {
		ext(d, 1000 + i);
		Flow f = mk(T0 + i * 6000, mta, d, 6, 25, F_SESSION);
		feed(c, &f);
		ext(d, 5000 + i);
		f = mk(T0 + i * 6000 + 10, bot, d, 6, 25, F_SESSION);
		feed(c, &f);
		if (i % 10 == 5) {
			ext(d, 9000 + i);
			Flow in = mk(T0 + i * 6000 + 20, d, mta, 6, 25, F_SESSION);
			feed(c, &in);
			in = mk(T0 + i * 6000 + 30, d, bot, 6, 25, F_SYN);
			feed(c, &in);
		}
	}
	const AlertEvent *e = raised(c, mta, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_true(e->mta_like);
	assert_int_equal(e->inbound_smtp, 5); /* mail at i = 5, 15, ..., 45: before 50 dests */
	assert_int_equal(e->severity, ALERT_SEV_WARNING);
	e = raised(c, bot, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_false(e->mta_like);
	assert_int_equal(e->inbound_smtp, 0);
	AnalyzerHostInfo hi;
	assert_true(analyzer_host_info(c->a, mta, &hi));
	assert_true(hi.mta_like);
	assert_int_equal(hi.inbound_smtp, 6);
	assert_true(analyzer_host_info(c->a, bot, &hi));
	assert_false(hi.mta_like);
	ctx_free(c);
	c = ctx_new(&cfg);

	/* the quiet one: 30 providers round robin every 20 s for 70 minutes (210 attempts),
	 * then a new one every 10 s: 50 distinct in the short window at ~T0+78 min */
	guint n = 0;
	for (gint64 t = T0; t < T0 + 70 * MIN_MS; t += 20000, n++) {
		ext(d, 20000 + n % 30);
		Flow f = mk(t, quiet, d, 6, 25, F_SESSION);
		feed(c, &f);
	}
	assert_null(raised(c, quiet, REASON_SMTP_FANOUT));
	for (guint i = 0; i < 60 && raised(c, quiet, REASON_SMTP_FANOUT) == NULL; i++) {
		ext(d, 30000 + i);
		Flow f = mk(T0 + 70 * MIN_MS + i * 10000, quiet, d, 6, 25, F_SESSION);
		feed(c, &f);
		ext(d, 20000 + i % 30);
		f = mk(T0 + 70 * MIN_MS + i * 10000 + 5000, quiet, d, 6, 25, F_SESSION);
		feed(c, &f);
	}
	e = raised(c, quiet, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_int_equal(e->inbound_smtp, 0);
	assert_true(e->window[WINDOW_LONG].attempts >= 2 * e->window[WINDOW_LONG].distinct);
	assert_true(e->time_ms - e->first_seen_ms >= 60 * MIN_MS);
	assert_true(e->failed_share == 0.0);
	assert_true(e->mta_like);
	ctx_free(c);
}

/* A bot asking 8.8.8.8 itself: with resolvers configured its smtp-fanout is raised one
 * step (warning -> critical) and a blocked one (notice -> warning); without resolvers the
 * DNS is noted, nothing raised; the listed resolver's own DNS is never counted. */
static void
run_dns(const char *resolvers, gboolean corroborated)
{
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.resolvers = resolvers;
	Ctx *c = ctx_new(&cfg);
	guint8 bot[16], blk[16], res[16], plain[16], g8[16], d[16];
	v4(bot, 192, 168, 10, 66);
	v4(blk, 192, 168, 10, 68);
	v4(res, 10, 0, 0, 53);
	v4(plain, 192, 168, 10, 67);
	v4(g8, 8, 8, 8, 8);
	for (guint i = 0; i < 60; i++) {
		const guint8 *src[] = {bot, blk, res, plain};
		for (guint k = 0; k < G_N_ELEMENTS(src); k++) {
			ext(d, 1000 * (k + 1) + i);
			Flow f =
			    mk(T0 + i * 5000 + k, src[k], d, 6, 25, k == 1 ? F_SYN : F_SESSION);
			feed(c, &f);
			if (k != 3 && i % 6 == 0) {
				Flow q = mk(T0 + i * 5000 + k + 100, src[k], g8, 17, 53, 0);
				feed(c, &q);
			}
		}
	}
	const AlertEvent *e = raised(c, bot, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_int_equal(e->dns_external, 9); /* i = 0, 6, ..., 48 */
	assert_true(e->has_dns_server);
	assert_memory_equal(e->dns_server, g8, 16);
	assert_int_equal(e->dns_corroborated, corroborated);
	assert_int_equal(e->severity, corroborated ? ALERT_SEV_CRITICAL : ALERT_SEV_WARNING);
	assert_true(e->level < ALERT_CRITICAL_LEVEL); /* critical only by the step */
	e = raised(c, blk, REASON_SMTP_BLOCKED);
	assert_non_null(e);
	assert_int_equal(e->dns_corroborated, corroborated);
	assert_int_equal(e->severity, corroborated ? ALERT_SEV_WARNING : ALERT_SEV_NOTICE);
	e = raised(c, plain, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_int_equal(e->dns_external, 0);
	assert_false(e->has_dns_server);
	assert_false(e->dns_corroborated);
	assert_int_equal(e->severity, ALERT_SEV_WARNING);
	/* the resolver is a host like the others here (it fans out on 25 too) */
	e = raised(c, res, REASON_SMTP_FANOUT);
	assert_non_null(e);
	assert_int_equal(e->dns_external, corroborated ? 0 : 9);
	assert_false(e->dns_corroborated);
	AnalyzerHostInfo hi;
	assert_true(analyzer_host_info(c->a, res, &hi));
	assert_int_equal(hi.is_resolver, corroborated);
	assert_int_equal(hi.resolvers_configured, corroborated);
	/* never an alert by itself: only the four fan-outs were raised */
	guint n = 0;
	for (guint i = 0; i < c->ev->len; i++)
		n += g_array_index(c->ev, AlertEvent, i).event == ALERT_RAISED;
	assert_int_equal(n, 4);
	ctx_free(c);
}

static void
test_dns_corroboration(void **state)
{
	(void)state;
	run_dns("10.0.0.53", TRUE);
	run_dns("", FALSE);
}

/* A host that only asks external DNS servers (thousands of them) raises nothing and is not
 * tracked. */
static void
test_dns_alone(void **state)
{
	(void)state;
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	cfg.resolvers = "10.0.0.53";
	Ctx *c = ctx_new(&cfg);
	guint8 h[16], d[16];
	v4(h, 10, 0, 2, 10);
	for (guint i = 0; i < 5000; i++) {
		ext(d, i);
		Flow q = mk(T0 + i * 100, h, d, 17, 53, 0);
		feed(c, &q);
	}
	AnalyzerStats st;
	analyzer_get_stats(c->a, &st);
	assert_int_equal(st.hosts_tracked, 0);
	assert_int_equal(st.signs_untracked, 5000);
	assert_int_equal(c->ev->len, 0);
	ctx_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),	   cmocka_unit_test(test_inbound_delivered),
	    cmocka_unit_test(test_counts_decay),   cmocka_unit_test(test_mta_rule),
	    cmocka_unit_test(test_alert_mta_hint), cmocka_unit_test(test_dns_corroboration),
	    cmocka_unit_test(test_dns_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
