/* NetFlow v9 decoder (RFC 3954): a 20-byte header, then flowsets walked by their length
 * field. Templates and data go through the template engine shared with IPFIX. The header
 * count is not trusted: softflowd, for one, leaves template records out of it. */
#include "template.h"

guint
v9_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out)
{
	Cursor c;
	guint16 version, count;
	guint32 uptime, secs, seq, source_id;

	cursor_init(&c, buf, len);
	if (!cursor_u16(&c, &version) || !cursor_u16(&c, &count) || !cursor_u32(&c, &uptime) ||
	    !cursor_u32(&c, &secs) || !cursor_u32(&c, &seq) || !cursor_u32(&c, &source_id)) {
		session_count_datagram(&e->hdr, 9, len, now_ms);
		e->hdr.malformed[MAL_SHORT_HEADER]++;
		return 0;
	}
	Domain *d = exporter_domain(e, source_id, now_ms);
	if (d == NULL) {
		session_count_datagram(&e->hdr, 9, len, now_ms);
		return 0;
	}
	session_count_datagram(&d->st, 9, len, now_ms);

	/* sysUptime going backwards: the exporter restarted; its sequence starts over. */
	if (d->st.seq_init && (gint32)(uptime - d->uptime_last) < 0) {
		d->st.seq_init = FALSE;
		d->st.seq_resets++;
	}
	d->uptime_last = uptime;
	seq_check(d, SEQ_PER_DATAGRAM, seq, 1, 1);

	DecodeCtx ctx = {.exp = e,
			 .dom = d,
			 .out = out,
			 .now_ms = now_ms,
			 .export_ms = (gint64)secs * 1000, /* v9 export time: whole seconds */
			 .uptime = uptime,
			 .version = 9};
	guint64 before = d->st.records;

	/* RFC 3954 5.3: a flowset may be followed by padding; fewer than 4 bytes left ends. */
	while (cursor_left(&c) >= 4) {
		guint16 id, slen;
		Cursor set;
		if (!cursor_u16(&c, &id) || !cursor_u16(&c, &slen) || slen < 4 ||
		    !cursor_sub(&c, slen - 4u, &set)) {
			d->st.malformed[MAL_SET_LENGTH]++;
			break;
		}
		gboolean ok = TRUE;
		if (id == 0 || id == 1)
			ok = template_set(&ctx, &set, id);
		else if (id >= 256)
			ok = template_data_set(&ctx, &set, id);
		else
			d->st.sets_skipped++; /* reserved flowset IDs 2-255 */
		if (!ok)
			break;
	}
	return (guint)(d->st.records - before);
}
