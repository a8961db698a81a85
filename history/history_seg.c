/* The history segment format (history_seg.h): encoders for the writer, and bounds-checked
 * decoders over untrusted bytes (a file may be cut by a crash, a full disk or an admin, or
 * damaged on disk) for the queries, the start-up index and the fuzzer. Big-endian fixed
 * fields, LEB128 varints for counts, CRC-32 per record. */
#include "history_seg.h"

#include "cursor.h"

#include <string.h>
#include <zlib.h>

guint32
hseg_crc(const guint8 *p, gsize len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	while (len > 0) {
		uInt n = (uInt)MIN(len, (gsize)G_MAXUINT32 / 2);
		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (guint32)c;
}

static void
put_u16(GByteArray *o, guint16 v)
{
	guint16 b = GUINT16_TO_BE(v);
	g_byte_array_append(o, (const guint8 *)&b, 2);
}

static void
put_u32(GByteArray *o, guint32 v)
{
	guint32 b = GUINT32_TO_BE(v);
	g_byte_array_append(o, (const guint8 *)&b, 4);
}

static void
put_u64(GByteArray *o, guint64 v)
{
	guint64 b = GUINT64_TO_BE(v);
	g_byte_array_append(o, (const guint8 *)&b, 8);
}

static void
put_var(GByteArray *o, guint32 v)
{
	guint8 b[5];
	guint n = 0;
	do {
		b[n] = (guint8)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	g_byte_array_append(o, b, n);
}

static gboolean
get_var(Cursor *c, guint32 *v)
{
	guint32 r = 0;
	for (guint i = 0; i < 5; i++) {
		guint8 b;
		if (!cursor_u8(c, &b))
			return FALSE;
		if (i == 4 && b > 0x0f)
			return FALSE; /* more than 32 bits */
		r |= (guint32)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return TRUE;
		}
	}
	return FALSE;
}

static gboolean
get_u64(Cursor *c, guint64 *v)
{
	guint32 hi, lo;
	if (!cursor_u32(c, &hi) || !cursor_u32(c, &lo))
		return FALSE;
	*v = (guint64)hi << 32 | lo;
	return TRUE;
}

void
hseg_header(GByteArray *out, gint64 created_ms)
{
	g_byte_array_append(out, (const guint8 *)HSEG_MAGIC, 4);
	put_u16(out, HSEG_VERSION);
	put_u16(out, 0);
	put_u64(out, (guint64)created_ms);
}

gboolean
hseg_header_parse(const guint8 *p, gsize len, gint64 *created_ms, GError **error)
{
	Cursor c;
	guint16 ver, flags;
	guint64 t;
	cursor_init(&c, p, len);
	if (len < HSEG_HEADER_LEN || memcmp(p, HSEG_MAGIC, 4) != 0) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "not a history segment (bad magic or too short)");
		return FALSE;
	}
	(void)cursor_skip(&c, 4);
	if (!cursor_u16(&c, &ver) || !cursor_u16(&c, &flags) || !get_u64(&c, &t))
		return FALSE; /* not reached: length checked */
	if (ver != HSEG_VERSION) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "history segment version %u (this build reads %u)", ver, HSEG_VERSION);
		return FALSE;
	}
	*created_ms = (gint64)t;
	return TRUE;
}

void
hseg_frame(GByteArray *out, HsegRecType type, const guint8 *payload, gsize len)
{
	guint start = out->len;
	guint8 t = (guint8)type;
	g_assert(len <= HSEG_MAX_PAYLOAD);
	g_byte_array_append(out, &t, 1);
	put_u32(out, (guint32)len);
	g_byte_array_append(out, payload, (guint)len);
	put_u32(out, hseg_crc(out->data + start, HSEG_FRAME_HEAD + len));
}

HsegStatus
hseg_next(const guint8 *buf, gsize len, gsize *off, HsegRecord *rec)
{
	Cursor c;
	guint8 type;
	guint32 plen, crc;

	if (*off >= len)
		return HSEG_END;
	cursor_init(&c, buf, len);
	c.off = *off;
	if (!cursor_u8(&c, &type))
		return HSEG_TRUNCATED;
	if (type == 0 || type > HSEG_REC_MAX)
		return HSEG_CORRUPT;
	if (!cursor_u32(&c, &plen))
		return HSEG_TRUNCATED;
	if (plen > HSEG_MAX_PAYLOAD)
		return HSEG_CORRUPT;
	if ((gsize)plen + HSEG_FRAME_TAIL > cursor_left(&c))
		return HSEG_TRUNCATED;
	const guint8 *payload = cursor_ptr(&c);
	(void)cursor_skip(&c, plen);
	if (!cursor_u32(&c, &crc))
		return HSEG_TRUNCATED;
	if (crc != hseg_crc(buf + *off, HSEG_FRAME_HEAD + plen))
		return HSEG_CORRUPT;
	rec->type = type;
	rec->payload = payload;
	rec->len = plen;
	rec->offset = *off;
	rec->frame_len = HSEG_FRAME_OVERHEAD + plen;
	*off = c.off;
	return HSEG_OK;
}

gboolean
hseg_resync(const guint8 *buf, gsize len, gsize *off)
{
	for (gsize o = *off + 1; o < len; o++) {
		HsegRecord rec;
		gsize t = o;
		if (hseg_next(buf, len, &t, &rec) == HSEG_OK) {
			*off = o;
			return TRUE;
		}
	}
	*off = len;
	return FALSE;
}

void
hseg_slice_encode(GByteArray *out, gint64 t_ms, const HsegHost *hosts, guint n)
{
	put_u64(out, (guint64)t_ms);
	put_var(out, n);
	for (guint i = 0; i < n; i++) {
		const HsegHost *h = &hosts[i];
		g_byte_array_append(out, h->host, 16);
		put_var(out, h->flows);
		put_var(out, h->attempts);
		put_var(out, h->failed);
		guint8 flags = h->sampled ? 1 : 0;
		g_byte_array_append(out, &flags, 1);
		put_var(out, h->reason_mask);
		for (guint r = 0; r < REASON_COUNT; r++) {
			if (!(h->reason_mask & (1u << r)))
				continue;
			for (guint k = 0; k < 2; k++)
				put_var(out, h->reason[r].value[k]);
			for (guint k = 0; k < 2; k++)
				put_var(out, h->reason[r].threshold[k]);
			if (h->sampled)
				for (guint k = 0; k < 2; k++)
					put_var(out, h->reason[r].estimate[k]);
		}
	}
}

gboolean
hseg_slice_begin(const guint8 *payload, gsize len, gint64 *t_ms, guint32 *n, HsegSliceIter *it)
{
	Cursor c;
	guint64 t;
	cursor_init(&c, payload, len);
	if (!get_u64(&c, &t) || !get_var(&c, n))
		return FALSE;
	/* each host takes at least 16 + 5 bytes */
	if (*n > cursor_left(&c) / 21)
		return FALSE;
	*t_ms = (gint64)t;
	it->p = payload;
	it->len = len;
	it->off = c.off;
	it->left = *n;
	return TRUE;
}

gboolean
hseg_slice_next(HsegSliceIter *it, HsegHost *out, gboolean *bad)
{
	Cursor c;
	guint8 flags;
	*bad = FALSE;
	if (it->left == 0) {
		*bad = it->off != it->len; /* trailing bytes */
		return FALSE;
	}
	cursor_init(&c, it->p, it->len);
	c.off = it->off;
	memset(out, 0, sizeof *out);
	if (!cursor_bytes(&c, out->host, 16) || !get_var(&c, &out->flows) ||
	    !get_var(&c, &out->attempts) || !get_var(&c, &out->failed) ||
	    !cursor_u8(&c, &flags) || flags > 1 || !get_var(&c, &out->reason_mask) ||
	    out->reason_mask >= (1u << REASON_COUNT))
		goto fail;
	out->sampled = flags & 1;
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (!(out->reason_mask & (1u << r)))
			continue;
		for (guint k = 0; k < 2; k++)
			if (!get_var(&c, &out->reason[r].value[k]))
				goto fail;
		for (guint k = 0; k < 2; k++)
			if (!get_var(&c, &out->reason[r].threshold[k]))
				goto fail;
		if (out->sampled)
			for (guint k = 0; k < 2; k++)
				if (!get_var(&c, &out->reason[r].estimate[k]))
					goto fail;
	}
	it->off = c.off;
	it->left--;
	return TRUE;
fail:
	it->left = 0;
	*bad = TRUE;
	return FALSE;
}

void
hseg_note_encode(GByteArray *out, const HsegNote *n)
{
	guint8 rk[2] = {n->reason < 0 ? 0xff : (guint8)n->reason, n->kind};
	put_u64(out, (guint64)n->t_ms);
	g_byte_array_append(out, n->host, 16);
	g_byte_array_append(out, rk, 2);
	g_byte_array_append(out, (const guint8 *)n->json, (guint)n->json_len);
}

gboolean
hseg_note_decode(const guint8 *payload, gsize len, HsegNote *out)
{
	Cursor c;
	guint64 t;
	guint8 r, k;
	cursor_init(&c, payload, len);
	if (!get_u64(&c, &t) || !cursor_bytes(&c, out->host, 16) || !cursor_u8(&c, &r) ||
	    !cursor_u8(&c, &k))
		return FALSE;
	if (r != 0xff && r >= REASON_COUNT)
		return FALSE;
	if (k >= ALERT_KIND_COUNT)
		return FALSE;
	out->t_ms = (gint64)t;
	out->reason = r == 0xff ? -1 : r;
	out->kind = k;
	out->json = (const char *)cursor_ptr(&c);
	out->json_len = cursor_left(&c);
	/* the JSON goes into replies as it is: valid UTF-8, no control bytes, no newline */
	if (!g_utf8_validate(out->json, (gssize)out->json_len, NULL))
		return FALSE;
	for (gsize i = 0; i < out->json_len; i++)
		if ((guchar)out->json[i] < 0x20)
			return FALSE;
	return TRUE;
}

void
hseg_idx_encode(GByteArray *out, guint64 seg_bytes, const HsegIdxEntry *e, guint64 n)
{
	guint start = out->len;
	g_byte_array_append(out, (const guint8 *)HSEG_IDX_MAGIC, 4);
	put_u16(out, HSEG_VERSION);
	put_u16(out, 0);
	put_u64(out, seg_bytes);
	put_u64(out, n);
	for (guint64 i = 0; i < n; i++) {
		put_u64(out, e[i].offset);
		put_u32(out, e[i].len);
		g_byte_array_append(out, &e[i].type, 1);
		put_u64(out, (guint64)e[i].t_ms);
		g_byte_array_append(out, e[i].min, 16);
		g_byte_array_append(out, e[i].max, 16);
	}
	put_u32(out, hseg_crc(out->data + start, out->len - start));
}

gboolean
hseg_idx_decode(const guint8 *p, gsize len, guint64 *seg_bytes, GArray **entries, GError **error)
{
	Cursor c;
	guint16 ver, pad;
	guint64 n;
	guint32 crc;

	*entries = NULL;
	if (len < HSEG_IDX_HEADER_LEN + 4 || memcmp(p, HSEG_IDX_MAGIC, 4) != 0)
		goto bad;
	memcpy(&crc, p + len - 4, 4);
	if (GUINT32_FROM_BE(crc) != hseg_crc(p, len - 4))
		goto bad;
	cursor_init(&c, p, len - 4);
	(void)cursor_skip(&c, 4);
	if (!cursor_u16(&c, &ver) || !cursor_u16(&c, &pad) || !get_u64(&c, seg_bytes) ||
	    !get_u64(&c, &n) || ver != HSEG_VERSION)
		goto bad;
	if (n != cursor_left(&c) / HSEG_IDX_ENTRY_LEN ||
	    cursor_left(&c) % HSEG_IDX_ENTRY_LEN != 0)
		goto bad;
	GArray *a = g_array_sized_new(FALSE, FALSE, sizeof(HsegIdxEntry), (guint)n);
	for (guint64 i = 0; i < n; i++) {
		HsegIdxEntry e;
		guint64 t;
		if (!get_u64(&c, &e.offset) || !cursor_u32(&c, &e.len) || !cursor_u8(&c, &e.type) ||
		    !get_u64(&c, &t) || !cursor_bytes(&c, e.min, 16) || !cursor_bytes(&c, e.max, 16) ||
		    e.offset > *seg_bytes || e.len > *seg_bytes - e.offset || e.type == 0 ||
		    e.type > HSEG_REC_MAX) {
			g_array_unref(a);
			goto bad;
		}
		e.t_ms = (gint64)t;
		g_array_append_val(a, e);
	}
	*entries = a;
	return TRUE;
bad:
	g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "damaged history index (magic, version, size or CRC)");
	return FALSE;
}

gboolean
hseg_idx_entry(const HsegRecord *rec, HsegIdxEntry *out)
{
	memset(out, 0, sizeof *out);
	out->offset = rec->offset;
	out->len = (guint32)rec->frame_len;
	out->type = (guint8)rec->type;
	if (rec->type == HSEG_REC_SLICE) {
		HsegSliceIter it;
		guint32 n;
		HsegHost h;
		gboolean bad, first = TRUE;
		if (!hseg_slice_begin(rec->payload, rec->len, &out->t_ms, &n, &it))
			return FALSE;
		while (hseg_slice_next(&it, &h, &bad)) {
			if (first || memcmp(h.host, out->min, 16) < 0)
				memcpy(out->min, h.host, 16);
			if (first || memcmp(h.host, out->max, 16) > 0)
				memcpy(out->max, h.host, 16);
			first = FALSE;
		}
		return !bad;
	}
	HsegNote note;
	if (!hseg_note_decode(rec->payload, rec->len, &note))
		return FALSE;
	out->t_ms = note.t_ms;
	memcpy(out->min, note.host, 16);
	memcpy(out->max, note.host, 16);
	return TRUE;
}
