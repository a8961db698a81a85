/* The history store (history.h): the writer thread, segment rotation, sidecar indexes,
 * retention, the start-up scan and the bounded queries. The main loop only encodes a
 * record and queues it; everything that touches the disk for writing runs on the writer. */
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLICE_CHUNK 256 /* hosts per slice record: a host query reads one chunk per slice */
#define QUERY_MAX_BYTES (256ull << 20)
#define QUERY_MAX_US 500000
#define LOG_INTERVAL_US (60 * G_USEC_PER_SEC)

typedef struct {
	char *path; /* .seg; the sidecar is path + ".idx" */
	gint64 created_ms;
	gint64 min_ms, max_ms; /* record times; G_MAXINT64/G_MININT64 when empty */
	guint64 bytes;
	GArray *idx;           /* HsegIdxEntry: the open segment's (others load the sidecar) */
	gboolean open;
	gboolean damage_told;  /* one log line per damaged segment */
} Seg;

typedef struct {
	HsegRecType type;
	gint64 t_ms;
	guint8 min[16], max[16];
	GByteArray *frame; /* NULL: a sync marker */
	gboolean *synced;
} Item;

struct History {
	char *dir;
	HistoryConfig cfg;
	int lock_fd;
	GMutex lock; /* everything below but the writer-only fields */
	GCond cond, done;
	GQueue q;
	gboolean stop;
	GThread *thread;
	GPtrArray *segs; /* Seg*, oldest first */
	HistoryStats st;
	/* writer only */
	int fd;
	Seg *cur;
	gint64 last_fsync_us;
	gboolean dirty;
	gint64 enospc_log_us, error_log_us;
	guint64 seq;
};

gboolean
history_fsync_parse(const char *text, HistoryFsync *out)
{
	static const char *const names[] = {"segment", "interval", "never"};
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		if (g_strcmp0(text, names[i]) == 0) {
			*out = (HistoryFsync)i;
			return TRUE;
		}
	}
	return FALSE;
}

const char *
history_fsync_name(HistoryFsync f)
{
	return f == HISTORY_FSYNC_SEGMENT ? "segment" : f == HISTORY_FSYNC_INTERVAL ? "interval" : "never";
}

static void
seg_free(gpointer p)
{
	Seg *s = p;
	if (s == NULL)
		return;
	g_free(s->path);
	if (s->idx != NULL)
		g_array_unref(s->idx);
	g_free(s);
}

static void
seg_note_time(Seg *s, gint64 t)
{
	s->min_ms = MIN(s->min_ms, t);
	s->max_ms = MAX(s->max_ms, t);
}

static gint
seg_cmp(gconstpointer a, gconstpointer b)
{
	const Seg *x = *(Seg *const *)a, *y = *(Seg *const *)b;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* ---- damage reports ---- */

static void
seg_damage(History *h, Seg *s, HsegStatus why, gsize off)
{
	if (why == HSEG_TRUNCATED)
		h->st.truncated_records++;
	else
		h->st.corrupt_records++;
	if (!s->damage_told) {
		s->damage_told = TRUE;
		h->st.damaged_segments++;
		g_warning("history: %s: %s record at offset %" G_GSIZE_FORMAT ": skipped (said once "
			  "per segment; counted in stats history)",
			  s->path, why == HSEG_TRUNCATED ? "truncated" : "damaged", off);
	}
}

/* Index a segment's bytes: every whole record, damage skipped and counted. */
static GArray *
seg_scan(History *h, Seg *s, const guint8 *buf, gsize len)
{
	GArray *idx = g_array_new(FALSE, FALSE, sizeof(HsegIdxEntry));
	gsize off = HSEG_HEADER_LEN;
	for (;;) {
		HsegRecord rec;
		HsegIdxEntry e;
		HsegStatus st = hseg_next(buf, len, &off, &rec);
		if (st == HSEG_END)
			break;
		if (st == HSEG_OK) {
			if (hseg_idx_entry(&rec, &e)) {
				g_array_append_val(idx, e);
				seg_note_time(s, e.t_ms);
			} else {
				seg_damage(h, s, HSEG_CORRUPT, rec.offset);
			}
			continue;
		}
		seg_damage(h, s, st, off);
		if (!hseg_resync(buf, len, &off))
			break;
	}
	return idx;
}

static gboolean
write_all(int fd, const guint8 *p, gsize n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return FALSE;
		p += w;
		n -= (gsize)w;
	}
	return TRUE;
}

/* The sidecar, through a temporary file and a rename (a crash leaves the old or none). */
static void
idx_write(const Seg *s, const GArray *idx)
{
	g_autoptr(GByteArray) b = g_byte_array_new();
	g_autofree char *path = g_strconcat(s->path, ".idx", NULL);
	g_autofree char *tmp = g_strconcat(s->path, ".idx.tmp", NULL);
	hseg_idx_encode(b, s->bytes, (const HsegIdxEntry *)(void *)idx->data, idx->len);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	gboolean ok = write_all(fd, b->data, b->len);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0)
		(void)g_unlink(tmp); /* no sidecar: the next start scans the segment */
}

static GArray *
idx_load(const Seg *s)
{
	g_autofree char *path = g_strconcat(s->path, ".idx", NULL);
	g_autofree char *data = NULL;
	gsize len;
	guint64 seg_bytes;
	GArray *idx;
	if (!g_file_get_contents(path, &data, &len, NULL))
		return NULL;
	if (!hseg_idx_decode((const guint8 *)data, len, &seg_bytes, &idx, NULL))
		return NULL;
	if (seg_bytes != s->bytes) {
		g_array_unref(idx);
		return NULL;
	}
	return idx;
}

/* At start: one segment found on disk. */
static void
seg_index(History *h, const char *path)
{
	g_autofree char *data = NULL;
	gsize len;
	g_autoptr(GError) err = NULL;
	gint64 created;
	if (!g_file_get_contents(path, &data, &len, &err)) {
		g_warning("history: %s: skipped", err->message);
		return;
	}
	Seg *s = g_new0(Seg, 1);
	s->path = g_strdup(path);
	s->bytes = len;
	s->min_ms = G_MAXINT64;
	s->max_ms = G_MININT64;
	if (!hseg_header_parse((const guint8 *)data, len, &created, &err)) {
		h->st.damaged_segments++;
		g_warning("history: %s: %s: skipped (left in place)", path, err->message);
		seg_free(s);
		return;
	}
	s->created_ms = created;
	GArray *idx = idx_load(s);
	if (idx == NULL) {
		idx = seg_scan(h, s, (const guint8 *)data, len);
		idx_write(s, idx);
		h->st.index_rebuilt++;
	} else {
		for (guint i = 0; i < idx->len; i++)
			seg_note_time(s, g_array_index(idx, HsegIdxEntry, i).t_ms);
	}
	g_array_unref(idx);
	h->st.segments_indexed++;
	g_ptr_array_add(h->segs, s);
}

/* ---- retention (writer; h->lock held) ---- */

static void
seg_remove_at(History *h, guint i)
{
	Seg *s = h->segs->pdata[i];
	g_autofree char *idx = g_strconcat(s->path, ".idx", NULL);
	(void)g_unlink(s->path);
	(void)g_unlink(idx);
	h->st.bytes -= MIN(h->st.bytes, s->bytes);
	g_ptr_array_remove_index(h->segs, i); /* frees s */
}

static void
retention(History *h)
{
	gint64 newest = G_MININT64;
	guint64 total = 0;
	for (guint i = 0; i < h->segs->len; i++) {
		Seg *s = h->segs->pdata[i];
		newest = MAX(newest, s->max_ms);
		total += s->bytes;
	}
	h->st.bytes = total;
	while (h->segs->len > 0) {
		Seg *s = h->segs->pdata[0];
		if (s->open)
			break;
		/* age by the newest record's time (capture time on replay), not the wall clock */
		if (h->cfg.max_age_ms > 0 && newest != G_MININT64 && s->max_ms != G_MININT64 &&
		    s->max_ms < newest - h->cfg.max_age_ms) {
			h->st.segments_removed_age++;
		} else if (h->cfg.max_bytes > 0 && h->st.bytes > h->cfg.max_bytes) {
			h->st.segments_removed_size++;
		} else if (s->max_ms == G_MININT64 && s->bytes <= HSEG_HEADER_LEN) {
			/* an empty segment (a full disk at its first record) */
		} else {
			break;
		}
		seg_remove_at(h, 0);
	}
	h->st.segments = h->segs->len;
}

/* ---- the writer ---- */

static void
rate_log(History *h, gint64 *last, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void
rate_log(History *h, gint64 *last, const char *fmt, ...)
{
	gint64 now = g_get_monotonic_time();
	(void)h;
	if (*last != 0 && now - *last < LOG_INTERVAL_US)
		return;
	*last = now;
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_warning("%s", msg);
}

static void
seg_close(History *h)
{
	if (h->cur == NULL)
		return;
	if (h->cfg.fsync != HISTORY_FSYNC_NEVER && fsync(h->fd) == 0) {
		g_mutex_lock(&h->lock);
		h->st.fsyncs++;
		g_mutex_unlock(&h->lock);
	}
	close(h->fd);
	h->fd = -1;
	g_mutex_lock(&h->lock);
	Seg *s = h->cur;
	GArray *idx = s->idx;
	s->idx = NULL;
	s->open = FALSE;
	h->cur = NULL;
	g_mutex_unlock(&h->lock);
	idx_write(s, idx);
	g_array_unref(idx);
}

static gboolean
seg_create(History *h, gint64 t_ms)
{
	g_autoptr(GByteArray) head = g_byte_array_new();
	g_autofree char *path = g_strdup_printf("%s/%013" G_GINT64_FORMAT "-%06" G_GUINT64_FORMAT
						".seg",
						h->dir, MAX(t_ms, 0), h->seq++ % 1000000);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		int e = errno;
		g_mutex_lock(&h->lock);
		if (e == ENOSPC || e == EDQUOT)
			h->st.enospc++;
		else
			h->st.write_errors++;
		g_mutex_unlock(&h->lock);
		rate_log(h, &h->error_log_us, "history: %s: %s (records are dropped and counted; "
			 "said at most once a minute)", path, g_strerror(e));
		return FALSE;
	}
	hseg_header(head, t_ms);
	if (!write_all(fd, head->data, head->len)) {
		int e = errno;
		close(fd);
		(void)g_unlink(path);
		g_mutex_lock(&h->lock);
		if (e == ENOSPC || e == EDQUOT)
			h->st.enospc++;
		else
			h->st.write_errors++;
		g_mutex_unlock(&h->lock);
		rate_log(h, e == ENOSPC ? &h->enospc_log_us : &h->error_log_us,
			 "history: %s: %s (records are dropped and counted until it can be written; "
			 "said at most once a minute)", path, g_strerror(e));
		return FALSE;
	}
	Seg *s = g_new0(Seg, 1);
	s->path = g_steal_pointer(&path);
	s->created_ms = t_ms;
	s->min_ms = G_MAXINT64;
	s->max_ms = G_MININT64;
	s->bytes = head->len;
	s->idx = g_array_new(FALSE, FALSE, sizeof(HsegIdxEntry));
	s->open = TRUE;
	h->fd = fd;
	g_mutex_lock(&h->lock);
	h->cur = s;
	g_ptr_array_add(h->segs, s);
	h->st.segments_created++;
	h->st.bytes += s->bytes;
	h->st.segments = h->segs->len;
	g_mutex_unlock(&h->lock);
	return TRUE;
}

static void
write_item(History *h, Item *it)
{
	if (h->cur != NULL &&
	    (it->t_ms / h->cfg.segment_ms > h->cur->created_ms / h->cfg.segment_ms ||
	     h->cur->bytes + it->frame->len > h->cfg.segment_bytes)) {
		seg_close(h);
		g_mutex_lock(&h->lock);
		retention(h);
		g_mutex_unlock(&h->lock);
	}
	if (h->cur == NULL && !seg_create(h, it->t_ms))
		return;
	if (!write_all(h->fd, it->frame->data, it->frame->len)) {
		int e = errno;
		/* no partial record stays behind: back to the last whole one */
		if (ftruncate(h->fd, (off_t)h->cur->bytes) != 0)
			g_debug("history: ftruncate: %s", g_strerror(errno));
		g_mutex_lock(&h->lock);
		if (e == ENOSPC || e == EDQUOT)
			h->st.enospc++;
		else
			h->st.write_errors++;
		g_mutex_unlock(&h->lock);
		rate_log(h, e == ENOSPC ? &h->enospc_log_us : &h->error_log_us,
			 "history: %s: %s: records are dropped and counted (stats history.%s) until "
			 "it can be written; collection goes on. Said at most once a minute",
			 h->cur->path, g_strerror(e), e == ENOSPC || e == EDQUOT ? "enospc" : "write_errors");
		return;
	}
	HsegIdxEntry e = {.offset = h->cur->bytes, .len = it->frame->len, .type = (guint8)it->type,
			  .t_ms = it->t_ms};
	memcpy(e.min, it->min, 16);
	memcpy(e.max, it->max, 16);
	g_mutex_lock(&h->lock);
	g_array_append_val(h->cur->idx, e);
	h->cur->bytes += it->frame->len;
	seg_note_time(h->cur, it->t_ms);
	h->st.records_written++;
	h->st.bytes_written += it->frame->len;
	h->st.bytes += it->frame->len;
	if (h->cfg.max_bytes > 0 && h->st.bytes > h->cfg.max_bytes)
		retention(h);
	g_mutex_unlock(&h->lock);
	h->dirty = TRUE;
}

static gpointer
writer(gpointer data)
{
	History *h = data;
	g_mutex_lock(&h->lock);
	for (;;) {
		Item *it = g_queue_pop_head(&h->q);
		if (it == NULL) {
			if (h->stop)
				break;
			gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;
			g_cond_wait_until(&h->cond, &h->lock, end);
			if (g_queue_is_empty(&h->q) && h->dirty && h->fd >= 0 &&
			    h->cfg.fsync == HISTORY_FSYNC_INTERVAL) {
				g_mutex_unlock(&h->lock);
				gboolean ok = fsync(h->fd) == 0;
				g_mutex_lock(&h->lock);
				h->dirty = FALSE;
				h->st.fsyncs += ok;
			}
			continue;
		}
		h->st.queue_len = g_queue_get_length(&h->q);
		g_mutex_unlock(&h->lock);
		if (it->frame != NULL) {
			write_item(h, it);
			g_byte_array_unref(it->frame);
			if (h->cfg.fsync == HISTORY_FSYNC_INTERVAL && h->dirty && h->fd >= 0 &&
			    g_get_monotonic_time() - h->last_fsync_us >= G_USEC_PER_SEC) {
				gboolean ok = fsync(h->fd) == 0;
				h->last_fsync_us = g_get_monotonic_time();
				h->dirty = FALSE;
				g_mutex_lock(&h->lock);
				h->st.fsyncs += ok;
				g_mutex_unlock(&h->lock);
			}
		}
		g_mutex_lock(&h->lock);
		if (it->synced != NULL) {
			*it->synced = TRUE;
			g_cond_broadcast(&h->done);
		}
		g_free(it);
	}
	g_mutex_unlock(&h->lock);
	seg_close(h);
	return NULL;
}

/* ---- setup ---- */

History *
history_open(const HistoryConfig *cfg, GError **error)
{
	g_autoptr(GDir) d = NULL;
	const char *name;

	if (g_mkdir_with_parents(cfg->dir, 0750) != 0) {
		int e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "history directory %s: %s", cfg->dir, g_strerror(e));
		return NULL;
	}
	g_autofree char *lockp = g_build_filename(cfg->dir, ".lock", NULL);
	int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (lfd >= 0)
			close(lfd);
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "history directory %s: cannot lock %s: %s (another spamflowd uses it?)",
			    cfg->dir, lockp, g_strerror(e));
		return NULL;
	}
	d = g_dir_open(cfg->dir, 0, error);
	if (d == NULL) {
		close(lfd);
		return NULL;
	}
	History *h = g_new0(History, 1);
	h->dir = g_strdup(cfg->dir);
	h->cfg = *cfg;
	h->cfg.dir = h->dir;
	if (h->cfg.segment_ms <= 0)
		h->cfg.segment_ms = 3600000;
	if (h->cfg.segment_bytes == 0)
		h->cfg.segment_bytes = MAX(MIN(64ull << 20, cfg->max_bytes > 0 ? cfg->max_bytes / 8 : 64ull << 20), 4096);
	if (h->cfg.queue == 0)
		h->cfg.queue = 1;
	h->lock_fd = lfd;
	h->fd = -1;
	g_mutex_init(&h->lock);
	g_cond_init(&h->cond);
	g_cond_init(&h->done);
	g_queue_init(&h->q);
	h->segs = g_ptr_array_new_with_free_func(seg_free);
	while ((name = g_dir_read_name(d)) != NULL) {
		if (!g_str_has_suffix(name, ".seg"))
			continue;
		g_autofree char *path = g_build_filename(cfg->dir, name, NULL);
		seg_index(h, path);
	}
	g_ptr_array_sort(h->segs, seg_cmp);
	h->seq = (guint64)g_get_real_time();
	retention(h);
	h->thread = g_thread_new("history", writer, h);
	return h;
}

void
history_free(History *h)
{
	if (h == NULL)
		return;
	g_mutex_lock(&h->lock);
	h->stop = TRUE;
	g_cond_signal(&h->cond);
	g_mutex_unlock(&h->lock);
	g_thread_join(h->thread);
	Item *it;
	while ((it = g_queue_pop_head(&h->q)) != NULL) {
		if (it->frame != NULL)
			g_byte_array_unref(it->frame);
		g_free(it);
	}
	g_ptr_array_unref(h->segs);
	g_mutex_clear(&h->lock);
	g_cond_clear(&h->cond);
	g_cond_clear(&h->done);
	close(h->lock_fd);
	g_free(h->dir);
	g_free(h);
}

const char *
history_dir(const History *h)
{
	return h->dir;
}

/* ---- the main loop's side ---- */

static void
enqueue(History *h, Item *it)
{
	g_mutex_lock(&h->lock);
	if (g_queue_get_length(&h->q) >= h->cfg.queue) {
		h->st.records_dropped++;
		g_mutex_unlock(&h->lock);
		g_byte_array_unref(it->frame);
		g_free(it);
		return;
	}
	h->st.records_queued++;
	g_queue_push_tail(&h->q, it);
	h->st.queue_len = g_queue_get_length(&h->q);
	g_cond_signal(&h->cond);
	g_mutex_unlock(&h->lock);
}

static int
host_cmp(const void *a, const void *b)
{
	return memcmp(((const HsegHost *)a)->host, ((const HsegHost *)b)->host, 16);
}

void
history_add_slice(History *h, gint64 t_ms, HsegHost *hosts, guint n)
{
	qsort(hosts, n, sizeof *hosts, host_cmp);
	g_autoptr(GByteArray) payload = g_byte_array_new();
	for (guint i = 0; i < n; i += SLICE_CHUNK) {
		guint k = MIN(SLICE_CHUNK, n - i);
		g_byte_array_set_size(payload, 0);
		hseg_slice_encode(payload, t_ms, hosts + i, k);
		Item *it = g_new0(Item, 1);
		it->type = HSEG_REC_SLICE;
		it->t_ms = t_ms;
		memcpy(it->min, hosts[i].host, 16);
		memcpy(it->max, hosts[i + k - 1].host, 16);
		it->frame = g_byte_array_sized_new(payload->len + HSEG_FRAME_OVERHEAD);
		hseg_frame(it->frame, HSEG_REC_SLICE, payload->data, payload->len);
		enqueue(h, it);
	}
}

void
history_add_note(History *h, HsegRecType type, const HsegNote *n)
{
	g_autoptr(GByteArray) payload = g_byte_array_new();
	hseg_note_encode(payload, n);
	if (payload->len > HSEG_MAX_PAYLOAD)
		return;
	Item *it = g_new0(Item, 1);
	it->type = type;
	it->t_ms = n->t_ms;
	memcpy(it->min, n->host, 16);
	memcpy(it->max, n->host, 16);
	it->frame = g_byte_array_sized_new(payload->len + HSEG_FRAME_OVERHEAD);
	hseg_frame(it->frame, type, payload->data, payload->len);
	enqueue(h, it);
}

void
history_sync(History *h)
{
	gboolean synced = FALSE;
	Item *it = g_new0(Item, 1);
	it->synced = &synced;
	g_mutex_lock(&h->lock);
	g_queue_push_tail(&h->q, it); /* a marker: not bounded by the queue */
	g_cond_signal(&h->cond);
	while (!synced)
		g_cond_wait(&h->done, &h->lock);
	g_mutex_unlock(&h->lock);
}

/* ---- queries ---- */

typedef struct {
	char *path;
	guint64 bytes;
	GArray *idx; /* the open segment's entries, copied; NULL: load the sidecar */
	Seg *seg;    /* for damage reports (under the lock) */
} SegView;

static gboolean
entry_wanted(const HistoryQuery *q, const HsegIdxEntry *e)
{
	if (!(q->types & (1u << e->type)) || e->t_ms < q->since_ms || e->t_ms > q->until_ms)
		return FALSE;
	if (q->has_host && (memcmp(q->host, e->min, 16) < 0 || memcmp(q->host, e->max, 16) > 0))
		return FALSE;
	return TRUE;
}

static void
query_damage(History *h, Seg *s, HsegStatus st, gsize off)
{
	g_mutex_lock(&h->lock);
	/* the segment may have been removed meanwhile: look it up */
	for (guint i = 0; i < h->segs->len; i++)
		if (h->segs->pdata[i] == s)
			seg_damage(h, s, st, off);
	g_mutex_unlock(&h->lock);
}

void
history_query(History *h, const HistoryQuery *q, HistorySliceFunc slice_fn,
	      HistoryNoteFunc note_fn, gpointer data, gboolean *truncated)
{
	gint64 start = g_get_monotonic_time();
	guint64 budget = q->max_bytes > 0 ? q->max_bytes : QUERY_MAX_BYTES, read_bytes = 0;
	gint64 max_us = q->max_us > 0 ? q->max_us : QUERY_MAX_US;
	g_autoptr(GArray) views = g_array_new(FALSE, TRUE, sizeof(SegView));
	g_autoptr(GByteArray) buf = g_byte_array_new();
	gboolean stop = FALSE;

	*truncated = FALSE;
	g_mutex_lock(&h->lock);
	for (guint i = 0; i < h->segs->len; i++) {
		Seg *s = h->segs->pdata[i];
		if (s->max_ms < q->since_ms || s->min_ms > q->until_ms)
			continue;
		SegView v = {.path = g_strdup(s->path), .bytes = s->bytes, .seg = s};
		if (s->open) {
			v.idx = g_array_new(FALSE, FALSE, sizeof(HsegIdxEntry));
			for (guint k = 0; k < s->idx->len; k++) {
				const HsegIdxEntry *e = &g_array_index(s->idx, HsegIdxEntry, k);
				if (entry_wanted(q, e))
					g_array_append_val(v.idx, *e);
			}
		}
		g_array_append_val(views, v);
	}
	h->st.queries++;
	g_mutex_unlock(&h->lock);

	for (guint vi = 0; vi < views->len && !stop; vi++) {
		SegView *v = &g_array_index(views, SegView, q->newest_first ? views->len - 1 - vi : vi);
		Seg tmp = {.path = v->path, .bytes = v->bytes};
		GArray *idx = v->idx != NULL ? g_array_ref(v->idx) : idx_load(&tmp);
		if (idx == NULL) {
			/* no sidecar (removed, or a segment cut since the start): scan it */
			g_autofree char *all = NULL;
			gsize len;
			if (!g_file_get_contents(v->path, &all, &len, NULL))
				continue;
			read_bytes += len;
			Seg scan = {.path = v->path, .damage_told = TRUE, .min_ms = G_MAXINT64, .max_ms = G_MININT64};
			g_mutex_lock(&h->lock);
			idx = seg_scan(h, &scan, (const guint8 *)all, len);
			g_mutex_unlock(&h->lock);
		}
		int fd = open(v->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			g_array_unref(idx);
			continue; /* removed by retention meanwhile */
		}
		for (guint k = 0; k < idx->len && !stop; k++) {
			guint ki = q->newest_first ? idx->len - 1 - k : k;
			const HsegIdxEntry *e = &g_array_index(idx, HsegIdxEntry, ki);
			if (!entry_wanted(q, e))
				continue;
			if (read_bytes + e->len > budget || g_get_monotonic_time() - start > max_us) {
				*truncated = TRUE;
				stop = TRUE;
				break;
			}
			g_byte_array_set_size(buf, e->len);
			ssize_t r = pread(fd, buf->data, e->len, (off_t)e->offset);
			read_bytes += e->len;
			HsegRecord rec;
			gsize off = 0;
			HsegStatus st = r < 0 ? HSEG_TRUNCATED : hseg_next(buf->data, (gsize)r, &off, &rec);
			if (st == HSEG_END)
				st = HSEG_TRUNCATED;
			if (st != HSEG_OK || rec.frame_len != e->len || rec.type != e->type) {
				query_damage(h, v->seg, st == HSEG_OK ? HSEG_CORRUPT : st, e->offset);
				continue;
			}
			if (rec.type == HSEG_REC_SLICE) {
				HsegSliceIter it;
				gint64 t;
				guint32 n;
				HsegHost hh;
				gboolean bad = FALSE;
				if (!hseg_slice_begin(rec.payload, rec.len, &t, &n, &it)) {
					query_damage(h, v->seg, HSEG_CORRUPT, e->offset);
					continue;
				}
				while (!stop && hseg_slice_next(&it, &hh, &bad)) {
					if (q->has_host && memcmp(hh.host, q->host, 16) != 0)
						continue;
					if (slice_fn != NULL && !slice_fn(t, &hh, data))
						stop = TRUE;
				}
				if (bad)
					query_damage(h, v->seg, HSEG_CORRUPT, e->offset);
			} else {
				HsegNote n;
				if (!hseg_note_decode(rec.payload, rec.len, &n)) {
					query_damage(h, v->seg, HSEG_CORRUPT, e->offset);
					continue;
				}
				if (q->has_host && memcmp(n.host, q->host, 16) != 0)
					continue;
				if (q->reason >= 0 && n.reason != q->reason)
					continue;
				if (note_fn != NULL && !note_fn(rec.type, &n, data))
					stop = TRUE;
			}
		}
		close(fd);
		g_array_unref(idx);
	}
	for (guint vi = 0; vi < views->len; vi++) {
		SegView *v = &g_array_index(views, SegView, vi);
		g_free(v->path);
		if (v->idx != NULL)
			g_array_unref(v->idx);
	}
	g_mutex_lock(&h->lock);
	h->st.queries_truncated += *truncated;
	h->st.query_bytes_read += read_bytes;
	h->st.query_us += (guint64)(g_get_monotonic_time() - start);
	g_mutex_unlock(&h->lock);
}

void
history_get_stats(History *h, HistoryStats *out)
{
	g_mutex_lock(&h->lock);
	*out = h->st;
	out->queue_len = g_queue_get_length(&h->q);
	out->oldest_ms = 0;
	out->newest_ms = 0;
	for (guint i = 0; i < h->segs->len; i++) {
		const Seg *s = h->segs->pdata[i];
		if (s->max_ms == G_MININT64)
			continue;
		if (out->oldest_ms == 0 || s->min_ms < out->oldest_ms)
			out->oldest_ms = s->min_ms;
		out->newest_ms = MAX(out->newest_ms, s->max_ms);
	}
	g_mutex_unlock(&h->lock);
}

void
history_stats_json(History *h, GString *out)
{
	HistoryStats s;
	history_get_stats(h, &s);
	g_string_append(out, "\"dir\":");
	g_autofree char *esc = g_strescape(h->dir, NULL);
	g_string_append_printf(out, "\"%s\"", esc);
#define M(name) g_string_append_printf(out, ",\"" #name "\":%" G_GUINT64_FORMAT, (guint64)s.name)
	M(records_queued);
	M(records_dropped);
	M(records_written);
	M(bytes_written);
	M(write_errors);
	M(enospc);
	M(segments);
	M(bytes);
	M(segments_created);
	M(segments_removed_age);
	M(segments_removed_size);
	M(segments_indexed);
	M(index_rebuilt);
	M(corrupt_records);
	M(truncated_records);
	M(damaged_segments);
	M(fsyncs);
	M(queries);
	M(queries_truncated);
	M(query_bytes_read);
	M(query_us);
	M(queue_len);
#undef M
	g_string_append_printf(out, ",\"oldest_ms\":%" G_GINT64_FORMAT ",\"newest_ms\":%" G_GINT64_FORMAT,
			       s.oldest_ms, s.newest_ms);
}
