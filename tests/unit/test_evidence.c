/* Unit tests for exporters/evidence and exporters/flowstore: an evidence file read back with
 * libfixbuf's file collector holds exactly the flows written (IPv4, IPv6, both exporter
 * families); names and pruning by age and size; the flow store keeps the analyzer's
 * relevant flows per host, answers included, and honours its window, ring and byte caps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fixbuf/public.h>
#include <glib/gstdio.h>
#include <string.h>
#include <utime.h>

#include "evidence.h"
#include "flowstore.h"

/* The documented template (doc/enrichment.md), restated here so a change shows. */
typedef struct {
	uint64_t start, end, recv, packets, bytes, rpackets, rbytes;
	uint8_t src6[16], dst6[16], nsrc6[16], ndst6[16], exp6[16];
	uint32_t src4, dst4, nsrc4, ndst4, exp4, domain, sampling;
	uint16_t sport, dport, nsport, ndport, flags;
	uint8_t proto, fw;
} Rec;

static fbInfoElementSpec_t spec[] = {
    {"flowStartMilliseconds", 8, 0},
    {"flowEndMilliseconds", 8, 0},
    {"collectionTimeMilliseconds", 8, 0},
    {"packetDeltaCount", 8, 0},
    {"octetDeltaCount", 8, 0},
    {"reversePacketDeltaCount", 8, 0},
    {"reverseOctetDeltaCount", 8, 0},
    {"sourceIPv6Address", 16, 0},
    {"destinationIPv6Address", 16, 0},
    {"postNATSourceIPv6Address", 16, 0},
    {"postNATDestinationIPv6Address", 16, 0},
    {"exporterIPv6Address", 16, 0},
    {"sourceIPv4Address", 4, 0},
    {"destinationIPv4Address", 4, 0},
    {"postNATSourceIPv4Address", 4, 0},
    {"postNATDestinationIPv4Address", 4, 0},
    {"exporterIPv4Address", 4, 0},
    {"observationDomainId", 4, 0},
    {"samplingInterval", 4, 0},
    {"sourceTransportPort", 2, 0},
    {"destinationTransportPort", 2, 0},
    {"postNAPTSourceTransportPort", 2, 0},
    {"postNAPTDestinationTransportPort", 2, 0},
    {"tcpControlBits", 2, 0},
    {"protocolIdentifier", 1, 0},
    {"firewallEvent", 1, 0},
    FB_IESPEC_NULL,
};

/* Every record of an IPFIX file through libfixbuf's file collector. */
static GArray *
read_back(const char *path)
{
	GError *err = NULL;
	fbInfoModel_t *model = fbInfoModelAlloc();
	fbSession_t *s = fbSessionAlloc(model);
	fbTemplate_t *t = fbTemplateAlloc(model);
	assert_true(fbTemplateAppendSpecArray(t, spec, 0, &err));
	assert_int_equal(fbSessionAddTemplate(s, TRUE, 999, t, &err), 999);
	fbCollector_t *c = fbCollectorAllocFile(NULL, path, &err);
	assert_non_null(c);
	fBuf_t *b = fBufAllocForCollection(s, c);
	assert_true(fBufSetInternalTemplate(b, 999, &err));
	GArray *out = g_array_new(FALSE, TRUE, sizeof(Rec));
	for (;;) {
		Rec r;
		size_t len = sizeof r;
		memset(&r, 0, sizeof r);
		if (!fBufNext(b, (uint8_t *)&r, &len, &err))
			break;
		g_array_append_val(out, r);
	}
	assert_true(g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_EOF));
	g_clear_error(&err);
	fBufFree(b);
	fbInfoModelFree(model);
	return out;
}

static void
set4(guint8 a[16], guint8 x, guint8 y, guint8 z, guint8 w)
{
	const guint8 v[4] = {x, y, z, w};
	flow_addr_set_v4(a, v);
}

static Flow
mkflow(guint i, gboolean v6)
{
	Flow f;
	memset(&f, 0, sizeof f);
	f.recv_ms = 1768471239000 + i * 1000;
	f.start_ms = f.recv_ms - 500;
	f.end_ms = f.recv_ms - 100;
	f.packets = 1 + i;
	f.bytes = 60 * (1 + i);
	f.rev_packets = i;
	f.rev_bytes = 40 * i;
	if (v6) {
		const guint8 s6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 0x66};
		memcpy(f.src, s6, 16);
		memcpy(f.dst, s6, 16);
		f.dst[2] = 0x0d;
		f.dst[15] = (guint8)i;
	} else {
		set4(f.src, 10, 0, 0, 5);
		set4(f.dst, 198, 51, 100, (guint8)i);
		set4(f.nat_src, 203, 0, 113, 9);
		set4(f.nat_dst, 198, 51, 100, (guint8)i);
		f.nat_sport = (guint16)(50000 + i);
		f.nat_dport = 25;
		f.has |= FLOW_HAS_NAT;
	}
	f.sport = (guint16)(40000 + i);
	f.dport = 25;
	f.proto = 6;
	f.tcp_flags = 0x02;
	f.fw_event = FW_EVENT_DENIED;
	f.has |= FLOW_HAS_TCP_FLAGS | FLOW_HAS_FW_EVENT | FLOW_HAS_TIMES;
	f.sampling = i % 2 ? 10 : 1;
	f.exporter = i % 3;
	f.domain = 7 + i;
	return f;
}

/* exporter 0: 192.0.2.1, 1: 2001:db8::1, else unknown */
static gboolean
exp_addr(guint32 exporter, guint8 addr[16], gpointer user_data)
{
	(void)user_data;
	if (exporter == 0) {
		set4(addr, 192, 0, 2, 1);
		return TRUE;
	}
	if (exporter == 1) {
		const guint8 a6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
		memcpy(addr, a6, 16);
		return TRUE;
	}
	return FALSE;
}

static guint32
v4(const guint8 a[16])
{
	return (guint32)a[12] << 24 | (guint32)a[13] << 16 | (guint32)a[14] << 8 | a[15];
}

static void
check_rec(const Rec *r, const Flow *f)
{
	assert_int_equal(r->start, f->start_ms);
	assert_int_equal(r->end, f->end_ms);
	assert_int_equal(r->recv, f->recv_ms);
	assert_int_equal(r->packets, f->packets);
	assert_int_equal(r->bytes, f->bytes);
	assert_int_equal(r->rpackets, f->rev_packets);
	assert_int_equal(r->rbytes, f->rev_bytes);
	if (flow_addr_is_v4(f->src)) {
		assert_int_equal(r->src4, v4(f->src));
		assert_int_equal(r->dst4, v4(f->dst));
		assert_int_equal(r->nsrc4, v4(f->nat_src));
		assert_int_equal(r->ndst4, v4(f->nat_dst));
		assert_int_equal(r->nsport, f->nat_sport);
		guint8 zero[16] = {0};
		assert_memory_equal(r->src6, zero, 16);
	} else {
		assert_memory_equal(r->src6, f->src, 16);
		assert_memory_equal(r->dst6, f->dst, 16);
		assert_int_equal(r->src4, 0);
	}
	guint8 exp[16] = {0};
	if (exp_addr(f->exporter, exp, NULL) && !flow_addr_is_v4(exp))
		assert_memory_equal(r->exp6, exp, 16);
	else
		assert_int_equal(r->exp4, f->exporter == 0 ? 0xc0000201u : 0);
	assert_int_equal(r->domain, f->domain);
	assert_int_equal(r->sampling, f->sampling);
	assert_int_equal(r->sport, f->sport);
	assert_int_equal(r->dport, f->dport);
	assert_int_equal(r->flags, f->tcp_flags);
	assert_int_equal(r->proto, f->proto);
	assert_int_equal(r->fw, f->fw_event);
}

static AlertEvent
mkevent(gint64 t)
{
	AlertEvent ev;
	memset(&ev, 0, sizeof ev);
	ev.time_ms = t;
	ev.event = ALERT_RAISED;
	ev.reason = REASON_SMTP_BLOCKED;
	set4(ev.host, 10, 0, 0, 5);
	return ev;
}

static void
rm_rf(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *n;
	while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(dir, n, NULL);
		g_unlink(p);
	}
	g_rmdir(dir);
}

static void
test_round_trip(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("evidence-XXXXXX", NULL);
	g_autofree char *sub = g_build_filename(dir, "ev", NULL);
	g_autoptr(Evidence) e = evidence_new(sub, 0, 0, &err);
	assert_non_null(e);
	Flow flows[300];
	for (guint i = 0; i < G_N_ELEMENTS(flows); i++)
		flows[i] = mkflow(i, i % 5 == 4);
	AlertEvent ev = mkevent(1768471345001);
	char path[256];
	assert_true(evidence_write(e, &ev, flows, G_N_ELEMENTS(flows), exp_addr, NULL, path,
				   sizeof path, &err));
	g_autofree char *want =
	    g_build_filename(sub, "20260115T100225.001Z-smtp-blocked-10.0.0.5.ipfix", NULL);
	assert_string_equal(path, want);
	g_autoptr(GArray) got = read_back(path);
	assert_int_equal(got->len, G_N_ELEMENTS(flows));
	for (guint i = 0; i < got->len; i++)
		check_rec(&g_array_index(got, Rec, i), &flows[i]);

	/* the same name again: a suffix, never a replacement */
	char path2[256];
	assert_true(evidence_write(e, &ev, flows, 3, exp_addr, NULL, path2, sizeof path2, &err));
	assert_non_null(strstr(path2, "10.0.0.5-2.ipfix"));
	g_autoptr(GArray) got2 = read_back(path2);
	assert_int_equal(got2->len, 3);

	/* no flows: a valid file with templates only; an IPv6 host's name */
	const guint8 h6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x66};
	memcpy(ev.host, h6, 16);
	ev.reason = REASON_AUTH_BRUTEFORCE;
	assert_true(evidence_write(e, &ev, NULL, 0, NULL, NULL, path, sizeof path, &err));
	assert_non_null(strstr(path, "-auth-bruteforce-2001_db8__66.ipfix"));
	g_autoptr(GArray) got3 = read_back(path);
	assert_int_equal(got3->len, 0);

	EvidenceStats st;
	evidence_get_stats(e, &st);
	assert_int_equal(st.files_written, 3);
	assert_int_equal(st.flows_written, 303);
	assert_int_equal(st.files, 3);
	rm_rf(sub);
	g_rmdir(dir);
}

static void
test_bad_dir(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("evidence-XXXXXX", NULL);
	g_autofree char *file = g_build_filename(dir, "file", NULL);
	g_autofree char *under = g_build_filename(file, "ev", NULL);
	assert_true(g_file_set_contents(file, "x", 1, NULL));
	assert_null(evidence_new(file, 0, 0, &err));
	assert_non_null(strstr(err->message, file));
	g_clear_error(&err);
	assert_null(evidence_new(under, 0, 0, &err));
	assert_non_null(strstr(err->message, "evidence directory"));
	g_unlink(file);
	g_rmdir(dir);
}

static void
touch(const char *path, gsize size, gint64 mtime)
{
	g_autofree char *data = g_malloc0(size);
	struct utimbuf ut = {(time_t)mtime, (time_t)mtime};
	assert_true(g_file_set_contents(path, data, (gssize)size, NULL));
	assert_int_equal(utime(path, &ut), 0);
}

static void
test_prune(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = g_dir_make_tmp("evidence-XXXXXX", NULL);
	const gint64 now = g_get_real_time() / G_USEC_PER_SEC;
	/* ours, oldest first: a (2 days), b (1 h), c (10 min), d (1 min); and others */
	const char *names[] = {"20260101T000000.000Z-smtp-fanout-10.0.0.1.ipfix",
			       "20260102T000000.000Z-smtp-fanout-10.0.0.2.ipfix",
			       "20260103T000000.000Z-smtp-fanout-10.0.0.3.ipfix",
			       "20260104T000000.000Z-smtp-fanout-10.0.0.4.ipfix"};
	const gint64 age[] = {2 * 86400, 3600, 600, 60};
	for (guint i = 0; i < 4; i++) {
		g_autofree char *p = g_build_filename(dir, names[i], NULL);
		touch(p, 1000, now - age[i]);
	}
	g_autofree char *other = g_build_filename(dir, "notes.ipfix", NULL);
	g_autofree char *stale = g_build_filename(dir, ".evidence-abc123", NULL);
	g_autofree char *fresh = g_build_filename(dir, ".evidence-def456", NULL);
	touch(other, 5000, now - 10 * 86400);
	touch(stale, 10, now - 7200);
	touch(fresh, 10, now - 10);

	/* max age one day, max 2500 bytes: a by age, then b by size; c and d stay. The start
	 * prunes already (a, b and the stale temp file); a second prune finds nothing. */
	g_autoptr(Evidence) e = evidence_new(dir, 86400, 2500, &err);
	assert_non_null(e);
	assert_int_equal(evidence_prune(e, now, NULL), 0);
	for (guint i = 0; i < 4; i++) {
		g_autofree char *p = g_build_filename(dir, names[i], NULL);
		assert_int_equal(g_file_test(p, G_FILE_TEST_EXISTS), i >= 2);
	}
	assert_true(g_file_test(other, G_FILE_TEST_EXISTS)); /* not ours */
	assert_false(g_file_test(stale, G_FILE_TEST_EXISTS));
	assert_true(g_file_test(fresh, G_FILE_TEST_EXISTS)); /* may be a write in progress */
	EvidenceStats st;
	evidence_get_stats(e, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 2000);
	assert_int_equal(st.files_pruned, 2);

	/* a file just written survives even alone over the cap; the next one replaces it */
	g_autofree char *dir2 = g_dir_make_tmp("evidence-XXXXXX", NULL);
	g_autoptr(Evidence) tiny = evidence_new(dir2, 0, 1, &err);
	AlertEvent ev = mkevent(1768471345001);
	Flow f = mkflow(1, FALSE);
	char p1[256], p2[256];
	assert_true(evidence_write(tiny, &ev, &f, 1, NULL, NULL, p1, sizeof p1, &err));
	assert_true(g_file_test(p1, G_FILE_TEST_EXISTS));
	ev.time_ms += 1000;
	assert_true(evidence_write(tiny, &ev, &f, 1, NULL, NULL, p2, sizeof p2, &err));
	assert_false(g_file_test(p1, G_FILE_TEST_EXISTS));
	assert_true(g_file_test(p2, G_FILE_TEST_EXISTS));
	rm_rf(dir2);
	rm_rf(dir);
}

/* ---- flow store ---- */

/* The store fed as the daemon feeds it: by the analyzer, with each flow it counted. */
typedef struct {
	Analyzer *a;
	FlowStore *fs;
} Fed;

static void
fed_init(Fed *x, guint max_flows, guint64 max_bytes)
{
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	x->fs = flowstore_new(&cfg, max_flows, max_bytes);
	assert_non_null(x->fs);
	cfg.flow_fn = flowstore_analyzer_flow;
	cfg.flow_data = x->fs;
	x->a = analyzer_new(&cfg, NULL);
	assert_non_null(x->a);
}

static void
fed_add(Fed *x, const Flow *f)
{
	analyzer_process(x->a, f, 1);
}

static void
fed_clear(Fed *x)
{
	analyzer_free(x->a);
	flowstore_free(x->fs);
}

static void
test_store_relevant(void **state)
{
	(void)state;
	Fed x;
	fed_init(&x, 100, 1 << 20);
	FlowStore *fs = x.fs;
	Flow f = mkflow(1, FALSE);
	fed_add(&x, &f); /* 10.0.0.5 -> 198.51.100.1:25: SMTP_EXT */
	Flow web = mkflow(2, FALSE);
	web.dport = 443;
	fed_add(&x, &web);     /* not relevant */
	Flow ans = mkflow(3, FALSE); /* the answer 198.51.100.1:25 -> 10.0.0.5 */
	memcpy(ans.src, f.dst, 16);
	memcpy(ans.dst, f.src, 16);
	ans.sport = 25;
	ans.dport = f.sport;
	ans.tcp_flags = 0x12;
	fed_add(&x, &ans);
	Flow stray = ans; /* an answer to a host without forward flows */
	set4(stray.dst, 10, 9, 9, 9);
	fed_add(&x, &stray);
	Flow sub = mkflow(4, FALSE);
	sub.dport = 587;
	fed_add(&x, &sub); /* SUBMIT: another ring */

	g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Flow));
	assert_int_equal(flowstore_collect(fs, f.src, HEUR_WIN_SMTP_EXT, ans.recv_ms, out), 2);
	assert_int_equal(g_array_index(out, Flow, 0).dport, 25);
	assert_int_equal(g_array_index(out, Flow, 1).sport, 25);
	g_array_set_size(out, 0);
	assert_int_equal(flowstore_collect(fs, f.src, HEUR_WIN_SUBMIT, sub.recv_ms, out), 1);
	assert_int_equal(flowstore_collect(fs, stray.dst, HEUR_WIN_SMTP_EXT, sub.recv_ms, out), 0);
	FlowStoreStats st;
	flowstore_get_stats(fs, &st);
	assert_int_equal(st.flows_stored, 3);
	assert_int_equal(st.rings, 2);

	/* an answer whose ring went (the byte cap) while the analyzer still tracks the host
	 * does not make a ring of its own */
	HeurClass c = {.dir = HEUR_REVERSE, .win = HEUR_WIN_SMTP_INT, .host = f.src};
	flowstore_add(fs, &ans, &c);
	flowstore_get_stats(fs, &st);
	assert_int_equal(st.rings, 2);
	/* a reload's windows apply to the rings kept: in a long window of one slice, records
	 * five minutes old are out */
	AnalyzerConfig cfg;
	analyzer_config_defaults(&cfg);
	g_array_set_size(out, 0);
	assert_int_equal(flowstore_collect(fs, f.src, HEUR_WIN_SMTP_EXT, ans.recv_ms + 300000, out),
			 2);
	cfg.span_slices[WINDOW_LONG] = 1;
	flowstore_reconfigure(fs, &cfg);
	g_array_set_size(out, 0);
	assert_int_equal(flowstore_collect(fs, f.src, HEUR_WIN_SMTP_EXT, ans.recv_ms + 300000, out),
			 0);
	fed_clear(&x);
}

static void
test_store_caps(void **state)
{
	(void)state;
	/* ring cap: the newest 10 of 25 */
	Fed x, y;
	fed_init(&x, 10, 1 << 20);
	FlowStore *fs = x.fs;
	for (guint i = 0; i < 25; i++) {
		Flow f = mkflow(i, FALSE);
		fed_add(&x, &f);
	}
	g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Flow));
	Flow last = mkflow(24, FALSE);
	assert_int_equal(flowstore_collect(fs, last.src, HEUR_WIN_SMTP_EXT, last.recv_ms, out), 10);
	assert_int_equal(g_array_index(out, Flow, 0).sport, 40015);
	FlowStoreStats st;
	flowstore_get_stats(fs, &st);
	assert_int_equal(st.flows_overwritten, 15);
	assert_true(st.bytes <= FLOWSTORE_RING_COST + 10 * flowstore_record_size());

	/* the long window (60 min): records older than that are not collected */
	g_array_set_size(out, 0);
	Flow late = mkflow(0, FALSE);
	late.recv_ms += 61 * 60 * 1000;
	fed_add(&x, &late);
	assert_int_equal(flowstore_collect(fs, late.src, HEUR_WIN_SMTP_EXT, late.recv_ms, out), 1);

	/* byte cap: room for about two rings of 4; the least recently fed ring goes */
	guint64 cap = 2 * (FLOWSTORE_RING_COST + 4 * flowstore_record_size()) + 10;
	fed_init(&y, 4, cap);
	FlowStore *small = y.fs;
	for (guint h = 0; h < 5; h++) {
		for (guint i = 0; i < 4; i++) {
			Flow f = mkflow(i, FALSE);
			set4(f.src, 10, 0, 1, (guint8)h);
			fed_add(&y, &f);
		}
	}
	flowstore_get_stats(small, &st);
	assert_true(st.bytes <= cap);
	assert_int_equal(st.rings, 2);
	assert_int_equal(st.rings_evicted, 3);
	assert_int_equal(st.flows_evicted, 12);
	g_array_set_size(out, 0);
	Flow f4 = mkflow(3, FALSE);
	set4(f4.src, 10, 0, 1, 4);
	assert_int_equal(flowstore_collect(small, f4.src, HEUR_WIN_SMTP_EXT, f4.recv_ms, out), 4);
	set4(f4.src, 10, 0, 1, 0);
	assert_int_equal(flowstore_collect(small, f4.src, HEUR_WIN_SMTP_EXT, f4.recv_ms, out), 0);
	fed_clear(&x);
	fed_clear(&y);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_bad_dir),
	    cmocka_unit_test(test_prune),      cmocka_unit_test(test_store_relevant),
	    cmocka_unit_test(test_store_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
