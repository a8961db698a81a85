/* NetFlow v5 decoder: a fixed 24-byte header and up to 30 fixed 48-byte records (Cisco's
 * published layout). The engine type and ID form the observation domain. */
#include "session.h"

#define V5_HEADER 24
#define V5_RECORD 48
#define V5_MAX_COUNT 30

guint
v5_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out)
{
	Cursor c;
	guint16 version, count, sampling;
	guint32 uptime, secs, nsecs, seq;
	guint8 engine_type, engine_id;

	cursor_init(&c, buf, len);
	if (!cursor_u16(&c, &version) || !cursor_u16(&c, &count) || !cursor_u32(&c, &uptime) ||
	    !cursor_u32(&c, &secs) || !cursor_u32(&c, &nsecs) || !cursor_u32(&c, &seq) ||
	    !cursor_u8(&c, &engine_type) || !cursor_u8(&c, &engine_id) ||
	    !cursor_u16(&c, &sampling)) {
		session_count_datagram(&e->hdr, 5, len, now_ms);
		e->hdr.malformed[MAL_SHORT_HEADER]++;
		return 0;
	}
	Domain *d = exporter_domain(e, ((guint32)engine_type << 8) | engine_id, now_ms);
	if (d == NULL) {
		session_count_datagram(&e->hdr, 5, len, now_ms);
		return 0;
	}
	session_count_datagram(&d->st, 5, len, now_ms);
	if (count == 0 || count > V5_MAX_COUNT || (gsize)count * V5_RECORD > cursor_left(&c)) {
		d->st.malformed[MAL_LENGTH]++;
		return 0;
	}

	/* Upper 2 bits: sampling mode; lower 14: interval (0 = unsampled). */
	domain_set_sampler(d, FALSE, 0, sampling & 0x3fff);

	/* A sysUptime that went backwards is a restarted exporter, not a loss. */
	if (d->st.seq_init && (gint32)(uptime - d->uptime_last) < 0) {
		d->st.seq_init = FALSE;
		d->st.seq_resets++;
	}
	d->uptime_last = uptime;
	seq_check(d, SEQ_PER_RECORD, seq, count, count);

	gint64 export_ms = (gint64)secs * 1000 + nsecs / 1000000;
	for (guint i = 0; i < count; i++) {
		Cursor r;
		guint8 src[4], dst[4], flags, proto;
		guint32 pkts, octets, first, last;
		guint16 sport, dport;
		if (!cursor_sub(&c, V5_RECORD, &r))
			break; /* checked above; keeps the cursor discipline */
		Flow *f = flow_batch_next(out);
		(void)cursor_bytes(&r, src, 4);
		(void)cursor_bytes(&r, dst, 4);
		(void)cursor_skip(&r, 8); /* nexthop, input, output */
		(void)cursor_u32(&r, &pkts);
		(void)cursor_u32(&r, &octets);
		(void)cursor_u32(&r, &first);
		(void)cursor_u32(&r, &last);
		(void)cursor_u16(&r, &sport);
		(void)cursor_u16(&r, &dport);
		(void)cursor_skip(&r, 1); /* pad1 */
		(void)cursor_u8(&r, &flags);
		(void)cursor_u8(&r, &proto);
		flow_addr_set_v4(f->src, src);
		flow_addr_set_v4(f->dst, dst);
		f->packets = pkts;
		f->bytes = octets;
		f->sport = sport;
		f->dport = dport;
		f->tcp_flags = flags;
		f->proto = proto;
		f->has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TCP_FLAGS;
		gint64 s = export_ms - (gint32)(uptime - first);
		gint64 en = export_ms - (gint32)(uptime - last);
		if (times_plausible(export_ms, s, en)) {
			f->start_ms = s;
			f->end_ms = en;
			f->has |= FLOW_HAS_TIMES;
		} else {
			f->has |= FLOW_TIMES_INVALID;
			domain_times_dropped(e, d, 5, s, en, export_ms);
		}
		f->sampling = d->sampling;
		f->recv_ms = now_ms;
		f->exporter = e->index;
		f->domain = d->id;
		f->version = 5;
		flow_batch_commit(out);
	}
	d->st.records += count;
	return count;
}
