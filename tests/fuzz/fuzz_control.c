/* libFuzzer harness for the control protocol: the input is what a client sends, fed through
 * control_server_feed() (framing, the request-length limit, the text check, control_parse())
 * to commands_run() over spamflowd's own wiring (daemon/app.c): configuration from text,
 * analyzer, collector fed v5 datagrams that raise offenders of every kind, sinks (to
 * /dev/null), enricher, the control server. App.hooks stand in for the enricher's databases
 * and for the file `reload` reads. Each input gets a fresh daemon, so a `forget` or `reload`
 * does not leak into the next input. Every reply line must be one JSON object, one line per
 * request. */
#include "fuzz_daemon.h"

#include "app.h"
#include "config.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* More than 30 requests of the 512-byte limit; bounds the replies one input can ask for. */
#define FUZZ_CONTROL_MAX_INPUT 16384
#define T0 G_GINT64_CONSTANT(1700000000000)
#define V5_HEADER 24
#define V5_RECORD 48

/* Low thresholds so that a few dozen flows raise every reason; small limits so that the
 * too-long and truncated paths are near. The varying part and the socket path are added. */
static const char base_conf[] = "[smtp-blocked]\nshort = 4\nlong = 8\nmin_attempts = 4\n"
				"[submission-fanout]\nshort = 4\nlong = 8\n"
				"[lateral-smtp]\nshort = 3\nlong = 6\n"
				"[mta-surge]\nshort = 2\nlong = 4\nmin_samples = 1\n"
				"[auth-bruteforce]\nshort = 5\nlong = 10\n"
				"[alerts]\nupdate_interval = 60\n"
				"[control]\nmax_request = 512\nmax_output = 64K\n"
				"[evidence]\nmax_flows = 100\nmemory_cap = 1M\n"
				"[sinks]\njson = /dev/null\ncsv = /dev/null\n";

/* Groups: 10.1.2.0/24 with its own smtp-fanout thresholds, 10.1.2.6 in it exempt from
 * everything; suppressions capped at 16 so that a session reaches the cap. */
#define START_CONF                                                                                 \
	"[analyzer]\nmail_servers = 10.0.0.25\nhistory = 64\nmax_suppressions = 16\n"             \
	"[smtp-fanout]\nshort = 5\nlong = 10\n"                                                      \
	"[group lab]\nprefixes = 10.1.2.0/24\nsmtp-fanout = 3/6\nexempt = lateral-smtp\n"          \
	"[group quiet]\nprefixes = 10.1.2.6\nexempt = all\n"

/* What `reload` loads, in turn, instead of re-reading a file: keys that apply and keys that
 * need a restart; a broken file (refused, nothing changes); a new slice width (the windows
 * restart) without mail servers; the starting configuration again. */
static const char *const reload_conf[] = {
    "[analyzer]\nmail_servers = 10.0.0.25\nhistory = 16\n[smtp-fanout]\nshort = 7\nlong = 9\n"
    "[daemon]\nlog_level = debug\n[collector]\nmax_exporters = 8\n",
    START_CONF "[analyzer]\nno_such_key = 1\n",
    "[analyzer]\nmail_servers =\nhistory = 64\nslice = 30\nshort_window = 4\n"
    "[smtp-fanout]\nshort = 5\nlong = 10\n",
    START_CONF,
};

typedef struct {
	App app;
	AppOptions opt;
	guint n_reload;
	guint32 seq[3]; /* v5 flow sequence per exporter */
} Daemon;

static char *sock_dir;
static char *sock_path;
static Config *start_cfg; /* never changed: a reload replaces the App's cfg */

/* The history store's files, after each input: every input starts with an empty store. */
static void
clear_history_dir(gboolean remove_dir)
{
	g_autofree char *hist = g_build_filename(sock_dir, "history", NULL);
	g_autoptr(GDir) d = g_dir_open(hist, 0, NULL);
	const char *name;
	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(hist, name, NULL);
		(void)g_unlink(p);
	}
	if (remove_dir)
		(void)g_rmdir(hist);
}

static void
remove_sock_dir(void)
{
	if (sock_dir != NULL) {
		clear_history_dir(TRUE);
		(void)g_rmdir(sock_dir);
	}
}

static Config *
conf_with(const char *extra, const char *name, GError **error)
{
	/* the history store in the private directory: host since= and history since= read it */
	g_autofree char *text =
	    g_strdup_printf("%s%s[control]\nsocket = %s\n[history]\ndir = %s/history\n", base_conf,
			    extra, sock_path, sock_dir);
	return config_new_from_data(text, -1, name, error);
}

/* A private directory for the control socket and the starting configuration, made once
 * per process. */
static void
init_once(void)
{
	g_autoptr(GError) err = NULL;

	if (sock_dir != NULL)
		return;
	fuzz_quiet_logs();
	sock_dir = g_dir_make_tmp("spamflow-fuzz-XXXXXX", &err);
	if (sock_dir == NULL) {
		fprintf(stderr, "fuzz_control: %s\n", err->message);
		abort();
	}
	sock_path = g_build_filename(sock_dir, "control.sock", NULL);
	atexit(remove_sock_dir);
	start_cfg = conf_with(START_CONF, "fuzz.conf", &err);
	FUZZ_CHECK(start_cfg != NULL);
}

/* Deterministic stand-in for the enricher's databases: two countries and some ASNs, and
 * every third address unknown, so both the known and unknown branches run. */
static gboolean
fake_geo(const guint8 dst[16], char country[4], guint32 *asn, gpointer data)
{
	(void)data;
	if (dst[15] % 3 == 0)
		return FALSE;
	g_strlcpy(country, dst[15] % 3 == 1 ? "DE" : "US", 4);
	*asn = dst[15] % 2 != 0 ? 64496 + dst[15] % 7 : 0;
	return TRUE;
}

/* What `reload` loads instead of re-reading the file (App.hooks.load_config). */
static Config *
load_reload_conf(gpointer user_data, GError **error)
{
	Daemon *d = user_data;
	g_autofree char *name = g_strdup_printf("reload-%u.conf", d->n_reload);
	const char *extra = reload_conf[d->n_reload++ % G_N_ELEMENTS(reload_conf)];

	return conf_with(extra, name, error);
}

/* ---- flows: NetFlow v5 datagrams through the collector ---- */

static void
put16(guint8 *p, guint v)
{
	p[0] = (guint8)(v >> 8);
	p[1] = (guint8)v;
}

static void
put32(guint8 *p, guint32 v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

typedef struct {
	guint8 buf[V5_HEADER + 30 * V5_RECORD];
	guint n;
} V5;

static void
v5_add(V5 *v, guint32 src, guint32 dst, guint16 sport, guint16 dport, guint8 flags, guint32 pkts,
       guint32 bytes)
{
	guint8 *r = v->buf + V5_HEADER + v->n * V5_RECORD;

	g_assert(v->n < 30);
	memset(r, 0, V5_RECORD);
	put32(r, src);
	put32(r + 4, dst);
	put16(r + 12, 1);
	put16(r + 14, 2);
	put32(r + 16, pkts);
	put32(r + 20, bytes);
	put32(r + 24, 99000); /* first, last: sysUptime ms */
	put32(r + 28, 99900);
	put16(r + 32, sport);
	put16(r + 34, dport);
	r[37] = flags;
	r[38] = 6;
	v->n++;
}

static void
v5_send(Daemon *d, V5 *v, guint exporter, guint16 sampling, gint64 now)
{
	guint8 addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};

	if (exporter == 1) { /* 2001:db8::1 */
		static const guint8 a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
					      0,    0,	  0,	0,    0, 0, 0, 1};
		memcpy(addr, a6, 16);
	} else if (exporter == 2) {
		addr[15] = 2;
	}
	put16(v->buf, 5);
	put16(v->buf + 2, v->n);
	put32(v->buf + 4, 100000);
	put32(v->buf + 8, (guint32)(now / 1000));
	put32(v->buf + 12, 0);
	put32(v->buf + 16, d->seq[exporter]);
	v->buf[20] = 0;
	v->buf[21] = (guint8)exporter;
	put16(v->buf + 22, sampling);
	d->seq[exporter] += v->n;
	(void)collector_input(d->app.collector, addr, 2055, v->buf, V5_HEADER + v->n * V5_RECORD,
			      now);
	flow_batch_flush(d->app.batch);
	v->n = 0;
}

#define IP4(a, b, c, e) (((guint32)(a) << 24) | ((guint32)(b) << 16) | ((guint32)(c) << 8) | (e))
#define SESSION 0x1b
#define SYN 0x02

/* One of each: a fan-out bot, a blocked bot, a worm, a guesser, a credential stuffer, a
 * mail server, over three exporters (one IPv6, one sampled); then the first bot again 20
 * minutes later so its offender is updated. */
static void
feed_flows(Daemon *d)
{
	V5 v = {.n = 0};

	for (guint i = 0; i < 12; i++)
		v5_add(&v, IP4(10, 1, 2, 3), IP4(198, 51, 100, 1 + i), 40000, 25, SESSION, 12,
		       3000);
	v5_send(d, &v, 0, 0, T0);
	for (guint i = 0; i < 10; i++)
		v5_add(&v, IP4(10, 1, 2, 4), IP4(198, 51, 100, 101 + i), 40001, 25, SYN, 1, 60);
	for (guint i = 0; i < 8; i++)
		v5_add(&v, IP4(10, 1, 2, 5), IP4(10, 2, 0, 1 + i), 40002, 25, SESSION, 12, 3000);
	v5_send(d, &v, 0, 0, T0 + 20000);
	for (guint i = 0; i < 12; i++)
		v5_add(&v, IP4(203, 0, 113, 7), IP4(10, 0, 0, 25), (guint16)(50000 + i), 993,
		       SESSION, 10, 2000);
	for (guint i = 0; i < 9; i++)
		v5_add(&v, IP4(10, 1, 2, 6), IP4(192, 0, 2, 50 + i), 40003, 587, SESSION, 20, 6000);
	v5_send(d, &v, 1, 0, T0 + 40000);
	for (guint i = 0; i < 8; i++)
		v5_add(&v, IP4(10, 0, 0, 25), IP4(203, 0, 113, 10 + i), 40004, 25, SESSION, 30,
		       9000);
	v5_send(d, &v, 2, 0x4000 | 100, T0 + 60000);
	analyzer_tick(d->app.analyzer, T0 + 3 * 60000);
	for (guint i = 0; i < 24; i++)
		v5_add(&v, IP4(10, 1, 2, 3), IP4(198, 51, 101, 1 + i), 40000, 25, SESSION, 12,
		       3000);
	v5_send(d, &v, 0, 0, T0 + 20 * 60000);
	analyzer_tick(d->app.analyzer, T0 + 21 * 60000);
}

static void
daemon_init(Daemon *d)
{
	g_autoptr(GError) err = NULL;

	memset(d, 0, sizeof *d);
	d->opt.config = (char *)"fuzz.conf";
	d->opt.stats_interval = -1;
	d->app.hooks.geo = fake_geo;
	d->app.hooks.load_config = load_reload_conf;
	d->app.hooks.data = d;
	FUZZ_CHECK(app_init(&d->app, start_cfg, &d->opt, FALSE, &err));
	feed_flows(d);
	if (d->app.history != NULL)
		history_sync(d->app.history); /* the same store for every run of an input */
	FUZZ_CHECK(app_control_start(&d->app, &err) && d->app.control != NULL);
}

static void
daemon_clear(Daemon *d)
{
	app_clear(&d->app);
	clear_history_dir(FALSE);
}

/* out holds whole lines only, one per request answered, each a reply object. */
static void
check_replies(const GString *out, guint64 answered, gboolean closed)
{
	static const char ok[] = "{\"ok\":true,\"version\":1,\"command\":\"";
	static const char fail[] = "{\"ok\":false,\"version\":1,";
	gsize off = 0;
	guint64 lines = 0;
	const char *last = NULL;

	FUZZ_CHECK(out->len == 0 || out->str[out->len - 1] == '\n');
	while (off < out->len) {
		const char *line = out->str + off;
		const char *nl = memchr(line, '\n', out->len - off);
		gsize len = (gsize)(nl - line);
		FUZZ_CHECK(fuzz_json_is_object(line, len));
		FUZZ_CHECK((len > sizeof ok - 1 && memcmp(line, ok, sizeof ok - 1) == 0) ||
			   (len > sizeof fail - 1 && memcmp(line, fail, sizeof fail - 1) == 0));
		last = line;
		lines++;
		off += len + 1;
	}
	FUZZ_CHECK(lines == answered);
	FUZZ_CHECK(!closed || (last != NULL && memcmp(last, fail, sizeof fail - 1) == 0));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Daemon d;
	const ControlPeer root = {.uid = 0, .gid = 0, .pid = 1};
	/* a uid that is neither root nor the daemon's: its reload and forget are refused */
	const ControlPeer other = {.uid = geteuid() == 4242 ? 4243 : 4242, .gid = 4242, .pid = 2};

	if (size > FUZZ_CONTROL_MAX_INPUT)
		return 0;
	init_once();
	daemon_init(&d);
	g_autoptr(GString) in = g_string_new(NULL);
	g_autoptr(GString) out = g_string_new(NULL);
	/* Three writes, so lines span writes; a line is answered for whoever sent its end. */
	const gsize cut[4] = {0, size / 3, 2 * size / 3, size};
	for (guint i = 0; i < 3; i++) {
		ControlStats before, after;
		control_server_get_stats(d.app.control, &before);
		gboolean keep = control_server_feed(d.app.control, i == 1 ? &other : &root, in, data + cut[i],
					     cut[i + 1] - cut[i], out);
		control_server_get_stats(d.app.control, &after);
		if (g_getenv("FUZZ_VERBOSE") != NULL)
			fwrite(out->str, 1, out->len, stderr);
		check_replies(out, after.requests - before.requests, !keep);
		FUZZ_CHECK(keep || after.requests_too_long == before.requests_too_long + 1);
		FUZZ_CHECK(in->len <= 512 || !keep);
		g_string_truncate(out, 0);
		if (!keep)
			break;
	}
	daemon_clear(&d);
	return 0;
}
