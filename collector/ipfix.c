/* IPFIX message decoder (RFC 7011): a 16-byte header whose length bounds the message, then
 * sets walked by their length field. Templates, options and data go through the template
 * engine shared with NetFlow v9. */
#include "template.h"

#define IPFIX_HEADER 16

guint
ipfix_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out)
{
	Cursor c, msg;
	guint16 version, mlen;
	guint32 export_s, seq, domain_id;

	cursor_init(&c, buf, len);
	if (!cursor_u16(&c, &version) || !cursor_u16(&c, &mlen) || !cursor_u32(&c, &export_s) ||
	    !cursor_u32(&c, &seq) || !cursor_u32(&c, &domain_id)) {
		session_count_datagram(&e->hdr, 10, len, now_ms);
		e->hdr.malformed[MAL_SHORT_HEADER]++;
		return 0;
	}
	Domain *d = exporter_domain(e, domain_id, now_ms);
	if (d == NULL) {
		session_count_datagram(&e->hdr, 10, len, now_ms);
		return 0;
	}
	session_count_datagram(&d->st, 10, len, now_ms);
	/* RFC 7011 3.1: the length covers the header; one message per datagram (10.3.1). */
	if (mlen < IPFIX_HEADER || mlen > len) {
		d->st.malformed[MAL_LENGTH]++;
		return 0;
	}
	cursor_init(&msg, buf, mlen);
	(void)cursor_skip(&msg, IPFIX_HEADER);

	DecodeCtx ctx = {.exp = e,
			 .dom = d,
			 .out = out,
			 .now_ms = now_ms,
			 .export_ms = (gint64)export_s * 1000,
			 .version = 10};
	guint64 before = d->st.records, opts_before = d->st.options_records;
	guint64 ambiguous_before = d->st.ambiguous_addr;
	guint64 no_tpl_before = d->st.no_template_sets;
	guint64 mal_before = malformed_total(&d->st);

	while (cursor_left(&msg) > 0) {
		guint16 id, slen;
		Cursor set;
		/* RFC 7011 3.3.2: the set length includes its 4-byte header */
		if (!cursor_u16(&msg, &id) || !cursor_u16(&msg, &slen) || slen < 4 ||
		    !cursor_sub(&msg, slen - 4u, &set)) {
			d->st.malformed[MAL_SET_LENGTH]++;
			break;
		}
		gboolean ok = TRUE;
		if (id == 2 || id == 3)
			ok = template_set(&ctx, &set, id);
		else if (id >= 256)
			ok = template_data_set(&ctx, &set, id);
		else
			d->st.sets_skipped++; /* RFC 7011 3.3.2: 0, 1, 4-255 are not for us */
		if (!ok)
			break;
	}
	/* RFC 7011 3.1: the sequence counts Data Records, options data records included, and
	 * records whose address family could not be told were received all the same. */
	guint32 flows = (guint32)(d->st.records - before);
	guint32 data = flows + (guint32)(d->st.ambiguous_addr - ambiguous_before);
	if (d->st.no_template_sets != no_tpl_before || malformed_total(&d->st) != mal_before)
		d->st.seq_init = FALSE; /* records we could not count: judge from the next one */
	else
		seq_check(d, SEQ_IPFIX, seq, data + (guint32)(d->st.options_records - opts_before),
			  data);
	return flows;
}
