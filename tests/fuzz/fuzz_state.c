/* libFuzzer harness for analyzer_state_load(), the analyzer's part of the state file that a
 * restarted daemon reads back: whatever the bytes, loading gives FALSE with an error, or an
 * analyzer within its caps whose state saves, loads again and saves to the same bytes, and
 * that keeps answering queries and working on flows and ticks. The seeds in corpus/state/
 * are real saved states (tests/unit/test_analyzer_state writes them when run with
 * SPAMFLOW_STATE_SEEDS=DIR).
 * An input that starts with "SFSP" is the state file's other analyzer section, the saved
 * suppressions (analyzer_suppressions_load): FALSE with an error and nothing held, or
 * suppressions that save to bytes that load to the same bytes, that a flow of a
 * suppressed host does not raise, and that expire at their times (seeds: seed-supp-*,
 * written by make_corpus.py). */
#include "fuzz.h"

#include "analyzer.h"

/* The configuration the seeds were saved under (test_analyzer_state.c, small_load_config). */
static void
state_config(AnalyzerConfig *cfg)
{
	analyzer_config_defaults(cfg);
	cfg->mail_servers = "10.9.9.1";
	cfg->resolvers = "10.0.0.53";
	cfg->exact_cap = 20;
	cfg->max_hosts = 16;
	cfg->surge_history = 12;
	cfg->surge_min_samples = 6;
	cfg->history_len = 8;
	cfg->h[REASON_SMTP_FANOUT].threshold[WINDOW_SHORT] = 10;
	cfg->h[REASON_SMTP_BLOCKED].threshold[WINDOW_SHORT] = 8;
	cfg->blocked_min_attempts = 8;
	cfg->h[REASON_AUTH_BRUTEFORCE].threshold[WINDOW_SHORT] = 20;
}

static gboolean
fuzz_geo(const guint8 dst[16], char country[4], guint32 *asn, gpointer user_data)
{
	(void)user_data;
	country[0] = (char)('A' + dst[15] % 7);
	country[1] = 'X';
	country[2] = '\0';
	*asn = 64500u + dst[14] % 5;
	return TRUE;
}

typedef struct {
	guint64 sum;
} Seen;

static void
on_alert(const AlertEvent *ev, gpointer user_data)
{
	Seen *s = user_data;
	FUZZ_CHECK((guint)ev->event < ALERT_KIND_COUNT && (guint)ev->reason < REASON_COUNT);
	FUZZ_CHECK(ev->n_top <= ALERT_TOP_MAX && ev->n_exporters <= ALERT_EXPORTERS_MAX);
	s->sum += (guint64)ev->time_ms + ev->flows + ev->n_countries + ev->n_asns;
}

static void
on_offender(const AnalyzerOffender *o, gpointer user_data)
{
	Seen *s = user_data;
	FUZZ_CHECK(o->last != NULL && (guint)o->reason < REASON_COUNT);
	s->sum += o->state.n_updates + o->last->n_top;
}

static void
exercise(Analyzer *a, Seen *seen)
{
	static const guint8 hosts[][4] = {
	    {10, 9, 9, 1}, {10, 1, 0, 1}, {10, 1, 0, 3}, {203, 0, 113, 7}};
	AnalyzerHostInfo hi;
	guint8 addr[16], dst[16];

	for (guint i = 0; i < G_N_ELEMENTS(hosts); i++) {
		flow_addr_set_v4(addr, hosts[i]);
		if (analyzer_host_info(a, addr, &hi))
			seen->sum += hi.last_seen_ms + hi.win[0].n_top + hi.baseline_samples;
	}
	analyzer_foreach_offender(a, on_offender, seen);
	for (guint i = 0; i < analyzer_history_len(a); i++)
		seen->sum += (guint64)analyzer_history_get(a, i)->time_ms;
	FUZZ_CHECK(analyzer_history_get(a, analyzer_history_len(a)) == NULL);

	/* more of a bot, answered; then hours of ticks */
	gint64 t = MAX(analyzer_now(a), 0);
	for (guint i = 0; i < 4; i++) {
		Flow f;
		memset(&f, 0, sizeof f);
		f.recv_ms = t + i * 1000;
		flow_addr_set_v4(f.src, hosts[1 + i % 3]);
		const guint8 d4[4] = {198, 18, (guint8)i, (guint8)(7 * i)};
		flow_addr_set_v4(dst, d4);
		memcpy(f.dst, dst, 16);
		f.sport = 40000;
		f.dport = i == 3 ? 993 : 25;
		f.proto = 6;
		f.tcp_flags = i % 2 ? 0x1b : 0x02;
		f.sampling = 1;
		f.has = FLOW_HAS_TCP_FLAGS;
		if (i == 3) {
			memcpy(f.dst, f.src, 16);
			flow_addr_set_v4(f.src, hosts[3]);
		}
		analyzer_process(a, &f, 1);
		Flow r = f;
		memcpy(r.src, f.dst, 16);
		memcpy(r.dst, f.src, 16);
		r.sport = f.dport;
		r.dport = f.sport;
		r.tcp_flags = 0x18;
		analyzer_process(a, &r, 1);
	}
	/* side signs: external DNS of a host, mail delivered to another */
	for (guint i = 0; i < 2; i++) {
		Flow f;
		memset(&f, 0, sizeof f);
		f.recv_ms = t + 5000 + i;
		flow_addr_set_v4(f.src, i == 0 ? hosts[1] : hosts[3]);
		const guint8 d4[4] = {8, 8, 8, 8};
		flow_addr_set_v4(f.dst, i == 0 ? d4 : hosts[2]);
		f.sport = 40000;
		f.dport = i == 0 ? 53 : 25;
		f.proto = i == 0 ? 17 : 6;
		f.tcp_flags = 0x1b;
		f.sampling = 1;
		f.has = FLOW_HAS_TCP_FLAGS;
		analyzer_process(a, &f, 1);
	}
	for (guint i = 1; i <= 3; i++)
		analyzer_tick(a, t + (gint64)i * 40 * 60 * 1000);
}

typedef struct {
	guint n;
	gint64 last_until;
	gboolean sorted;
	guint8 last[17];
} SuppSeen;

static void
on_supp(const PolicySuppression *s, gpointer user_data)
{
	SuppSeen *ss = user_data;
	guint8 key[17];
	memcpy(key, s->addr, 16);
	key[16] = s->all ? 0 : (guint8)(1 + s->reason);
	FUZZ_CHECK(s->all || (guint)s->reason < REASON_COUNT);
	FUZZ_CHECK(memchr(s->note, '\0', sizeof s->note) != NULL);
	if (ss->n > 0 && memcmp(ss->last, key, 17) >= 0)
		ss->sorted = FALSE; /* by host then reason, each pair once */
	memcpy(ss->last, key, 17);
	ss->last_until = MAX(ss->last_until, s->until_ms);
	ss->n++;
}

static int
fuzz_suppressions(const guint8 *buf, gsize size)
{
	AnalyzerConfig cfg;
	GError *err = NULL;
	guint dropped = 0;
	const gint64 now = G_GINT64_CONSTANT(1700000000000);

	state_config(&cfg);
	cfg.max_suppressions = 8;
	Analyzer *a = analyzer_new(&cfg, NULL);
	FUZZ_CHECK(a != NULL);
	if (!analyzer_suppressions_load(a, buf, size, now, &dropped, &err)) {
		FUZZ_CHECK(err != NULL && g_str_has_prefix(err->message, "suppressions: "));
		FUZZ_CHECK(analyzer_suppression_count(a) == 0);
		g_error_free(err);
		analyzer_free(a);
		return 0;
	}
	SuppSeen ss = {.sorted = TRUE};
	analyzer_foreach_suppression(a, on_supp, &ss);
	FUZZ_CHECK(ss.sorted && ss.n == analyzer_suppression_count(a) && ss.n <= 8);

	GByteArray *b1 = g_byte_array_new(), *b2 = g_byte_array_new();
	analyzer_suppressions_save(a, b1);
	Analyzer *a2 = analyzer_new(&cfg, NULL);
	FUZZ_CHECK(analyzer_suppressions_load(a2, b1->data, b1->len, now, &dropped, NULL));
	FUZZ_CHECK(dropped == 0);
	analyzer_suppressions_save(a2, b2);
	FUZZ_CHECK(b1->len == b2->len && memcmp(b1->data, b2->data, b1->len) == 0);
	analyzer_free(a2);
	g_byte_array_unref(b1);
	g_byte_array_unref(b2);

	/* every one is over after the last time: the tick drops them all */
	if (ss.n > 0)
		analyzer_tick(a, MAX(ss.last_until, now));
	FUZZ_CHECK(analyzer_suppression_count(a) == 0);
	analyzer_free(a);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	AnalyzerConfig cfg;
	Seen seen = {0};
	GError *err = NULL;

	state_config(&cfg);
	cfg.alert_fn = on_alert;
	cfg.alert_data = &seen;
	cfg.geo_fn = fuzz_geo;
	guint8 *buf = fuzz_copy(data, size);
	if (size >= 4 && memcmp(buf, "SFSP", 4) == 0) {
		fuzz_suppressions(buf, size);
		g_free(buf);
		return 0;
	}
	Analyzer *a = analyzer_new(&cfg, NULL);
	FUZZ_CHECK(a != NULL);
	if (!analyzer_state_load(a, buf, size, &err)) {
		FUZZ_CHECK(err != NULL && g_str_has_prefix(err->message, "analyzer state: "));
		g_error_free(err);
		analyzer_free(a);
		g_free(buf);
		return 0;
	}
	FUZZ_CHECK(err == NULL);
	FUZZ_CHECK(seen.sum == 0); /* loading emits nothing */
	AnalyzerStats st;
	analyzer_get_stats(a, &st);
	FUZZ_CHECK(st.hosts_tracked <= cfg.max_hosts && st.mem_bytes <= cfg.mem_cap);
	FUZZ_CHECK(st.state_hosts_restored == st.hosts_tracked);

	/* what was accepted saves to bytes that load to the same bytes */
	GByteArray *b1 = g_byte_array_new(), *b2 = g_byte_array_new();
	analyzer_state_save(a, b1);
	Analyzer *a2 = analyzer_new(&cfg, NULL);
	FUZZ_CHECK(analyzer_state_load(a2, b1->data, b1->len, NULL));
	analyzer_state_save(a2, b2);
	FUZZ_CHECK(b1->len == b2->len && memcmp(b1->data, b2->data, b1->len) == 0);
	analyzer_free(a2);
	g_byte_array_unref(b1);
	g_byte_array_unref(b2);

	exercise(a, &seen);
	analyzer_get_stats(a, &st);
	FUZZ_CHECK(st.hosts_tracked <= cfg.max_hosts && st.mem_bytes <= cfg.mem_cap);
	analyzer_free(a);
	g_free(buf);
	return 0;
}
