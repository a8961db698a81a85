/* The history store's segment format and the store (history/): round trips, every
 * truncation, every bit flip caught by the CRC, resync after damage, the index sidecar;
 * the store on real files: queries by host, time and reason, a restart that reads the
 * sidecars, a lost sidecar rebuilt, retention by size and age, a full queue counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "history.h"

#include <glib/gstdio.h>
#include <string.h>

static void
make_host(HsegHost *h, guint i, gboolean sampled)
{
	memset(h, 0, sizeof *h);
	h->host[10] = h->host[11] = 0xff;
	h->host[12] = 10;
	h->host[14] = (guint8)(i >> 8);
	h->host[15] = (guint8)i;
	h->flows = i * 3;
	h->attempts = i * 2;
	h->failed = i;
	h->sampled = sampled;
	h->reason_mask = (1u << REASON_SMTP_FANOUT) | (i % 2 ? 1u << REASON_SMTP_NOVELTY : 0);
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (!(h->reason_mask & (1u << r)))
			continue;
		h->reason[r].value[0] = i;
		h->reason[r].value[1] = i * 1000000u;
		h->reason[r].threshold[0] = 50;
		h->reason[r].threshold[1] = G_MAXUINT32;
		if (sampled) {
			h->reason[r].estimate[0] = i * 7;
			h->reason[r].estimate[1] = i * 70;
		}
	}
}

static void
make_note(HsegNote *n, gint64 t, guint i, const char *json)
{
	memset(n, 0, sizeof *n);
	n->t_ms = t;
	n->host[10] = n->host[11] = 0xff;
	n->host[12] = 10;
	n->host[15] = (guint8)i;
	n->reason = (gint)(i % REASON_COUNT);
	n->kind = (guint8)(i % ALERT_KIND_COUNT);
	n->json = json;
	n->json_len = strlen(json);
}

/* A segment: header, a slice of 5 hosts, an event, an action. */
static GByteArray *
sample_segment(HsegHost hosts[5], gsize ends[4])
{
	GByteArray *seg = g_byte_array_new();
	g_autoptr(GByteArray) p = g_byte_array_new();
	HsegNote n;
	hseg_header(seg, 1700000000000);
	ends[0] = seg->len;
	for (guint i = 0; i < 5; i++)
		make_host(&hosts[i], i + 1, i == 3);
	hseg_slice_encode(p, 1700000060000, hosts, 5);
	hseg_frame(seg, HSEG_REC_SLICE, p->data, p->len);
	ends[1] = seg->len;
	g_byte_array_set_size(p, 0);
	make_note(&n, 1700000061000, 2, "{\"event\":\"raised\"}");
	hseg_note_encode(p, &n);
	hseg_frame(seg, HSEG_REC_EVENT, p->data, p->len);
	ends[2] = seg->len;
	g_byte_array_set_size(p, 0);
	make_note(&n, 1700000062000, 3, "{\"action\":\"quarantine-add\"}");
	n.reason = -1;
	n.kind = 0;
	hseg_note_encode(p, &n);
	hseg_frame(seg, HSEG_REC_ACTION, p->data, p->len);
	ends[3] = seg->len;
	return seg;
}

static void
test_round_trip(void **state)
{
	(void)state;
	HsegHost hosts[5], got;
	gsize ends[4];
	g_autoptr(GByteArray) seg = sample_segment(hosts, ends);
	gint64 created;
	assert_true(hseg_header_parse(seg->data, seg->len, &created, NULL));
	assert_int_equal(created, 1700000000000);
	gsize off = HSEG_HEADER_LEN;
	HsegRecord rec;
	assert_int_equal(hseg_next(seg->data, seg->len, &off, &rec), HSEG_OK);
	assert_int_equal(rec.type, HSEG_REC_SLICE);
	HsegSliceIter it;
	gint64 t;
	guint32 n;
	gboolean bad;
	assert_true(hseg_slice_begin(rec.payload, rec.len, &t, &n, &it));
	assert_int_equal(t, 1700000060000);
	assert_int_equal(n, 5);
	for (guint i = 0; i < 5; i++) {
		assert_true(hseg_slice_next(&it, &got, &bad));
		assert_memory_equal(&got, &hosts[i], sizeof got);
	}
	assert_false(hseg_slice_next(&it, &got, &bad));
	assert_false(bad);
	HsegIdxEntry e;
	assert_true(hseg_idx_entry(&rec, &e));
	assert_memory_equal(e.min, hosts[0].host, 16);
	assert_memory_equal(e.max, hosts[4].host, 16);
	assert_int_equal(hseg_next(seg->data, seg->len, &off, &rec), HSEG_OK);
	HsegNote note;
	assert_true(hseg_note_decode(rec.payload, rec.len, &note));
	assert_int_equal(note.t_ms, 1700000061000);
	assert_int_equal(note.reason, 2);
	assert_int_equal(note.kind, 2 % ALERT_KIND_COUNT);
	assert_int_equal(note.json_len, strlen("{\"event\":\"raised\"}"));
	assert_int_equal(hseg_next(seg->data, seg->len, &off, &rec), HSEG_OK);
	assert_true(hseg_note_decode(rec.payload, rec.len, &note));
	assert_int_equal(note.reason, -1);
	assert_int_equal(hseg_next(seg->data, seg->len, &off, &rec), HSEG_END);
}

/* Scan as the store does; the records found, in order. */
static guint
scan(const guint8 *p, gsize len, HsegRecType types[8], guint *damaged)
{
	guint n = 0;
	gsize off = HSEG_HEADER_LEN;
	*damaged = 0;
	for (;;) {
		HsegRecord rec;
		HsegStatus st = hseg_next(p, len, &off, &rec);
		if (st == HSEG_END)
			break;
		if (st == HSEG_OK) {
			HsegIdxEntry e;
			if (n < 8)
				types[n] = rec.type;
			n += hseg_idx_entry(&rec, &e);
			continue;
		}
		(*damaged)++;
		if (!hseg_resync(p, len, &off))
			break;
	}
	return n;
}

static void
test_every_truncation(void **state)
{
	(void)state;
	HsegHost hosts[5];
	gsize ends[4];
	g_autoptr(GByteArray) seg = sample_segment(hosts, ends);
	for (gsize cut = HSEG_HEADER_LEN; cut <= seg->len; cut++) {
		HsegRecType types[8];
		guint damaged;
		guint n = scan(seg->data, cut, types, &damaged);
		guint whole = (cut >= ends[1]) + (cut >= ends[2]) + (cut >= ends[3]);
		assert_int_equal(n, whole);
		/* a cut inside a record is one damaged (truncated) record, never more */
		gboolean at_end = cut == ends[0] || cut == ends[1] || cut == ends[2] || cut == ends[3];
		assert_int_equal(damaged, at_end ? 0 : 1);
	}
	/* the header itself */
	for (gsize cut = 0; cut < HSEG_HEADER_LEN; cut++) {
		gint64 c;
		assert_false(hseg_header_parse(seg->data, cut, &c, NULL));
	}
}

static void
test_every_bit_flip(void **state)
{
	(void)state;
	HsegHost hosts[5];
	gsize ends[4];
	g_autoptr(GByteArray) seg = sample_segment(hosts, ends);
	for (gsize byte = HSEG_HEADER_LEN; byte < seg->len; byte++) {
		for (guint bit = 0; bit < 8; bit++) {
			seg->data[byte] ^= (guint8)(1u << bit);
			HsegRecType types[8];
			guint damaged;
			guint n = scan(seg->data, seg->len, types, &damaged);
			/* the damaged record is lost, never read altered; the others stay */
			assert_int_equal(n, 2);
			assert_true(damaged >= 1);
			guint hit = byte < ends[1] ? 0 : byte < ends[2] ? 1 : 2;
			HsegRecType want[3] = {HSEG_REC_SLICE, HSEG_REC_EVENT, HSEG_REC_ACTION};
			for (guint i = 0, k = 0; i < 3; i++)
				if (i != hit)
					assert_int_equal(types[k++], want[i]);
			seg->data[byte] ^= (guint8)(1u << bit);
		}
	}
}

static void
test_hostile_payloads(void **state)
{
	(void)state;
	HsegSliceIter it;
	gint64 t;
	guint32 n;
	HsegHost h;
	gboolean bad;
	/* a host count far beyond the bytes */
	guint8 p1[] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f};
	assert_false(hseg_slice_begin(p1, sizeof p1, &t, &n, &it));
	/* a varint of 6 bytes */
	guint8 p2[8 + 1 + 16 + 6 + 40] = {0};
	p2[8] = 1;
	memset(p2 + 25, 0xff, 6);
	assert_true(hseg_slice_begin(p2, sizeof p2, &t, &n, &it));
	assert_false(hseg_slice_next(&it, &h, &bad));
	assert_true(bad);
	/* a reason mask with bits past REASON_COUNT */
	g_autoptr(GByteArray) p = g_byte_array_new();
	make_host(&h, 1, FALSE);
	h.reason_mask = 1u << REASON_COUNT;
	hseg_slice_encode(p, 1, &h, 1);
	assert_true(hseg_slice_begin(p->data, p->len, &t, &n, &it));
	assert_false(hseg_slice_next(&it, &h, &bad));
	assert_true(bad);
	/* a note with a newline, bad UTF-8, a reason out of range */
	HsegNote note;
	const char *bads[] = {"{\"a\":1}\n", "{\"a\":\"\xc3\"}"};
	for (guint i = 0; i < G_N_ELEMENTS(bads); i++) {
		g_byte_array_set_size(p, 0);
		make_note(&note, 1, 1, bads[i]);
		hseg_note_encode(p, &note);
		assert_false(hseg_note_decode(p->data, p->len, &note));
	}
	g_byte_array_set_size(p, 0);
	make_note(&note, 1, 1, "{}");
	hseg_note_encode(p, &note);
	p->data[24] = REASON_COUNT;
	assert_false(hseg_note_decode(p->data, p->len, &note));
	/* a frame length past the maximum */
	guint8 f[] = {1, 0x7f, 0xff, 0xff, 0xff, 0};
	gsize off = 0;
	HsegRecord rec;
	assert_int_equal(hseg_next(f, sizeof f, &off, &rec), HSEG_CORRUPT);
}

static void
test_index_sidecar(void **state)
{
	(void)state;
	HsegIdxEntry e[3];
	memset(e, 0, sizeof e); /* padding too: the entries are compared as bytes */
	for (guint i = 0; i < 3; i++) {
		e[i].offset = 16 + i * 100;
		e[i].len = 100;
		e[i].type = (guint8)(1 + i);
		e[i].t_ms = 1700000000000 + i;
		e[i].min[15] = (guint8)i;
		e[i].max[15] = (guint8)(i + 9);
	}
	g_autoptr(GByteArray) b = g_byte_array_new();
	hseg_idx_encode(b, 316, e, 3);
	guint64 sb;
	GArray *got;
	assert_true(hseg_idx_decode(b->data, b->len, &sb, &got, NULL));
	assert_int_equal(sb, 316);
	assert_int_equal(got->len, 3);
	for (guint i = 0; i < 3; i++) {
		const HsegIdxEntry *x = &g_array_index(got, HsegIdxEntry, i);
		assert_int_equal(x->offset, e[i].offset);
		assert_int_equal(x->len, e[i].len);
		assert_int_equal(x->type, e[i].type);
		assert_int_equal(x->t_ms, e[i].t_ms);
		assert_memory_equal(x->min, e[i].min, 16);
		assert_memory_equal(x->max, e[i].max, 16);
	}
	g_array_unref(got);
	for (gsize cut = 0; cut < b->len; cut++)
		assert_false(hseg_idx_decode(b->data, cut, &sb, &got, NULL));
	for (gsize byte = 0; byte < b->len; byte++) {
		b->data[byte] ^= 0x10;
		assert_false(hseg_idx_decode(b->data, b->len, &sb, &got, NULL));
		b->data[byte] ^= 0x10;
	}
}

/* ---- the store on files ---- */

typedef struct {
	guint slices, notes;
	gint64 last_t;
	guint8 host[16];
	guint32 last_value;
} Got;

static gboolean
got_slice(gint64 t, const HsegHost *h, gpointer data)
{
	Got *g = data;
	g->slices++;
	g->last_t = t;
	memcpy(g->host, h->host, 16);
	g->last_value = h->reason[REASON_SMTP_FANOUT].value[0];
	return TRUE;
}

static gboolean
got_note(HsegRecType type, const HsegNote *n, gpointer data)
{
	Got *g = data;
	(void)type;
	(void)n;
	g->notes++;
	return TRUE;
}

static void
fill_store(History *h, gint64 t0, guint slices, guint hosts)
{
	g_autofree HsegHost *hs = g_new(HsegHost, hosts);
	for (guint s = 0; s < slices; s++) {
		for (guint i = 0; i < hosts; i++) {
			make_host(&hs[i], i, FALSE);
			hs[i].reason[REASON_SMTP_FANOUT].value[0] = s;
		}
		history_add_slice(h, t0 + (gint64)s * 60000, hs, hosts);
		HsegNote n;
		make_note(&n, t0 + (gint64)s * 60000 + 1, s % 7, "{\"event\":\"raised\"}");
		history_add_note(h, HSEG_REC_EVENT, &n);
	}
	history_sync(h);
}

static Got
query_host(History *h, guint i, gint64 since, gint64 until)
{
	Got g = {0};
	HsegHost x;
	gboolean trunc;
	make_host(&x, i, FALSE);
	HistoryQuery q = {.since_ms = since, .until_ms = until, .has_host = TRUE, .reason = -1,
			  .types = 1u << HSEG_REC_SLICE | 1u << HSEG_REC_EVENT};
	memcpy(q.host, x.host, 16);
	history_query(h, &q, got_slice, got_note, &g, &trunc);
	assert_false(trunc);
	return g;
}

static void
test_store(void **state)
{
	(void)state;
	g_autofree char *dir = g_dir_make_tmp("sfhist-XXXXXX", NULL);
	HistoryConfig hc = {.dir = dir, .queue = 100000, .segment_ms = 3600000};
	const gint64 t0 = 1700000000000 / 3600000 * 3600000;
	History *h = history_open(&hc, NULL);
	assert_non_null(h);
	/* one daemon per directory */
	g_autoptr(GError) err = NULL;
	assert_null(history_open(&hc, &err));
	assert_non_null(err);
	fill_store(h, t0, 150, 600); /* 2.5 hours: 3 segments; 3 records a slice */
	Got g = query_host(h, 300, G_MININT64, G_MAXINT64);
	assert_int_equal(g.slices, 150);
	assert_int_equal(g.last_value, 149);
	assert_int_equal(g.notes, 0); /* the notes are of hosts 0..6 */
	g = query_host(h, 2, t0 + 60 * 60000, t0 + 70 * 60000);
	assert_int_equal(g.slices, 11);
	assert_int_equal(g.notes, 1); /* slice 65: 65 % 7 == 2 */
	HistoryStats st;
	history_get_stats(h, &st);
	assert_int_equal(st.segments, 3);
	assert_int_equal(st.records_written, 150 * 4);
	history_free(h);
	/* a restart reads the sidecars */
	h = history_open(&hc, NULL);
	history_get_stats(h, &st);
	assert_int_equal(st.segments_indexed, 3);
	assert_int_equal(st.index_rebuilt, 0);
	g = query_host(h, 599, G_MININT64, G_MAXINT64);
	assert_int_equal(g.slices, 150);
	history_free(h);
	/* a lost sidecar is rebuilt */
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;
	while ((name = g_dir_read_name(d)) != NULL) {
		if (g_str_has_suffix(name, ".idx")) {
			g_autofree char *p = g_build_filename(dir, name, NULL);
			g_unlink(p);
			break;
		}
	}
	h = history_open(&hc, NULL);
	history_get_stats(h, &st);
	assert_int_equal(st.index_rebuilt, 1);
	assert_int_equal(st.corrupt_records + st.truncated_records, 0);
	g = query_host(h, 0, G_MININT64, G_MAXINT64);
	assert_int_equal(g.slices, 150);
	history_free(h);
	/* retention by size: the oldest go first */
	hc.max_bytes = st.bytes / 2;
	h = history_open(&hc, NULL);
	history_get_stats(h, &st);
	assert_true(st.bytes <= hc.max_bytes);
	assert_true(st.segments_removed_size >= 1);
	g = query_host(h, 1, G_MININT64, G_MAXINT64);
	assert_true(g.slices < 150 && g.slices > 0);
	assert_int_equal(g.last_t, t0 + 149 * 60000);
	history_free(h);
	/* retention by age, by the newest record's time */
	hc.max_bytes = 0;
	h = history_open(&hc, NULL);
	fill_store(h, t0 + 180 * 60000, 90, 10); /* two more segments */
	history_free(h);
	hc.max_age_ms = 20 * 60000;
	h = history_open(&hc, NULL);
	history_get_stats(h, &st);
	assert_int_equal(st.segments, 1);
	assert_true(st.segments_removed_age >= 1);
	history_free(h);
	/* a full queue drops and counts, never blocks */
	hc.max_age_ms = 0;
	hc.queue = 1;
	h = history_open(&hc, NULL);
	HsegHost one;
	make_host(&one, 1, FALSE);
	for (guint i = 0; i < 10000; i++)
		history_add_slice(h, t0 + 200 * 60000, &one, 1);
	history_sync(h);
	history_get_stats(h, &st);
	assert_int_equal(st.records_queued + st.records_dropped, 10000);
	assert_int_equal(st.records_written, st.records_queued);
	history_free(h);
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),	     cmocka_unit_test(test_every_truncation),
	    cmocka_unit_test(test_every_bit_flip),   cmocka_unit_test(test_hostile_payloads),
	    cmocka_unit_test(test_index_sidecar),    cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
