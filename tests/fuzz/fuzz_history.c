/* libFuzzer harness for the history store's readers (history/history_seg.c, history.c):
 * the bytes are a segment file (or, starting with "SFHX", an index sidecar) as a crash, a
 * full disk or a damaged disk leaves it. Whatever they are: the scanner ends, every record it
 * accepts decodes and re-encodes to a payload that decodes the same, a sidecar that decodes
 * encodes to the same bytes, and the store opened on a directory holding the file indexes
 * it, answers a query and closes, counting what it skipped. Seeds in corpus/history/: real
 * segments and sidecars of the scenario's replay, cut and damaged ones. */
#include "fuzz.h"

#include "history.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

static void
check_slice(const HsegRecord *rec)
{
	HsegSliceIter it, it2;
	gint64 t, t2;
	guint32 n, n2;
	HsegHost h, h2;
	gboolean bad, bad2;
	if (!hseg_slice_begin(rec->payload, rec->len, &t, &n, &it))
		return;
	g_autoptr(GArray) hosts = g_array_new(FALSE, FALSE, sizeof(HsegHost));
	while (hseg_slice_next(&it, &h, &bad))
		g_array_append_val(hosts, h);
	if (bad)
		return;
	FUZZ_CHECK(hosts->len == n);
	g_autoptr(GByteArray) again = g_byte_array_new();
	hseg_slice_encode(again, t, (const HsegHost *)(void *)hosts->data, hosts->len);
	FUZZ_CHECK(hseg_slice_begin(again->data, again->len, &t2, &n2, &it2));
	FUZZ_CHECK(t2 == t && n2 == n);
	for (guint i = 0; i < n; i++) {
		FUZZ_CHECK(hseg_slice_next(&it2, &h2, &bad2));
		FUZZ_CHECK(memcmp(&h2, &g_array_index(hosts, HsegHost, i), sizeof h2) == 0);
	}
	FUZZ_CHECK(!hseg_slice_next(&it2, &h2, &bad2) && !bad2);
}

static void
check_note(const HsegRecord *rec)
{
	HsegNote n, n2;
	if (!hseg_note_decode(rec->payload, rec->len, &n))
		return;
	g_autoptr(GByteArray) again = g_byte_array_new();
	hseg_note_encode(again, &n);
	FUZZ_CHECK(again->len == rec->len && memcmp(again->data, rec->payload, rec->len) == 0);
	FUZZ_CHECK(hseg_note_decode(again->data, again->len, &n2));
	FUZZ_CHECK(n2.t_ms == n.t_ms && n2.reason == n.reason && n2.kind == n.kind);
}

static gboolean
count_slice(gint64 t, const HsegHost *h, gpointer data)
{
	(void)t;
	(void)h;
	(*(guint *)data)++;
	return TRUE;
}

static gboolean
count_note(HsegRecType type, const HsegNote *n, gpointer data)
{
	(void)type;
	(void)n;
	(*(guint *)data)++;
	return TRUE;
}

static char *dir;

/* Damage is logged (once per segment): quiet, but a critical is a bug (FUZZ_VERBOSE shows
 * the messages). */
static GLogWriterOutput
quiet(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	if (g_getenv("FUZZ_VERBOSE") != NULL)
		g_log_writer_default(level, fields, n, user_data);
	FUZZ_CHECK((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) == 0);
	return G_LOG_WRITER_HANDLED;
}

static void
remove_dir(void)
{
	g_autofree char *lock = g_build_filename(dir, ".lock", NULL);
	(void)g_unlink(lock);
	(void)g_rmdir(dir);
}

/* The store on a directory holding the bytes as its only segment. */
static void
check_store(const guint8 *data, size_t size)
{
	if (dir == NULL) {
		g_log_set_writer_func(quiet, NULL, NULL);
		dir = g_dir_make_tmp("fuzz-history-XXXXXX", NULL);
		if (dir != NULL)
			atexit(remove_dir);
	}
	if (dir == NULL)
		return;
	g_autofree char *seg = g_build_filename(dir, "0000000000000-000000.seg", NULL);
	g_autofree char *idx = g_strconcat(seg, ".idx", NULL);
	if (!g_file_set_contents(seg, (const char *)data, (gssize)size, NULL))
		return;
	HistoryConfig hc = {.dir = dir, .queue = 16};
	History *h = history_open(&hc, NULL);
	FUZZ_CHECK(h != NULL);
	HistoryQuery q = {.since_ms = G_MININT64, .until_ms = G_MAXINT64, .reason = -1,
			  .types = 1u << HSEG_REC_SLICE | 1u << HSEG_REC_EVENT | 1u << HSEG_REC_ACTION};
	guint n = 0;
	gboolean trunc;
	history_query(h, &q, count_slice, count_note, &n, &trunc);
	HistoryStats st;
	history_get_stats(h, &st);
	FUZZ_CHECK(st.segments <= 1);
	history_free(h);
	(void)g_unlink(seg);
	(void)g_unlink(idx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree guint8 *p = fuzz_copy(data, size);

	if (size >= 4 && memcmp(p, HSEG_IDX_MAGIC, 4) == 0) {
		guint64 sb;
		GArray *e = NULL;
		if (hseg_idx_decode(p, size, &sb, &e, NULL)) {
			g_autoptr(GByteArray) again = g_byte_array_new();
			hseg_idx_encode(again, sb, (const HsegIdxEntry *)(void *)e->data, e->len);
			FUZZ_CHECK(again->len == size && memcmp(again->data, p, size) == 0);
			g_array_unref(e);
		}
		return 0;
	}
	gint64 created;
	gboolean header_ok = hseg_header_parse(p, size, &created, NULL);
	(void)header_ok; /* a bad header is read on: the scanner must cope with anything */
	gsize off = MIN((gsize)HSEG_HEADER_LEN, size);
	guint steps = 0;
	for (;;) {
		HsegRecord rec;
		gsize before = off;
		HsegStatus st = hseg_next(p, size, &off, &rec);
		FUZZ_CHECK(++steps <= size + 1);
		if (st == HSEG_END)
			break;
		if (st == HSEG_OK) {
			FUZZ_CHECK(off > before && off <= size && rec.frame_len == off - before);
			HsegIdxEntry e;
			(void)hseg_idx_entry(&rec, &e);
			if (rec.type == HSEG_REC_SLICE)
				check_slice(&rec);
			else
				check_note(&rec);
			continue;
		}
		FUZZ_CHECK(off == before);
		if (!hseg_resync(p, size, &off))
			break;
		FUZZ_CHECK(off > before);
	}
	if (size <= 1 << 16)
		check_store(p, size);
	return 0;
}
