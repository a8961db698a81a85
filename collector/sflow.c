/* sFlow version 5 decoder (sflow.org, "sFlow Version 5", July 2004): one datagram names its
 * agent and sub-agent and carries samples. Each flow sample (standard or expanded) becomes at
 * most one Flow, from its raw packet header record (Ethernet, 802.1Q/QinQ, MPLS, IPv4, IPv6,
 * TCP, UDP) or else its sampled IPv4/IPv6 record; counter samples are only counted. Every
 * XDR structure is read inside a sub-cursor of its declared length. */
#include "session.h"

#include <string.h>

#define SFLOW_VERSION 5
/* sFlow v5 "address": 1 = IPv4, 2 = IPv6 (0 = unknown carries no address) */
#define ADDR_IP_V4 1
#define ADDR_IP_V6 2
/* sample formats, enterprise 0 */
#define SAMPLE_FLOW 1
#define SAMPLE_COUNTERS 2
#define SAMPLE_FLOW_EXPANDED 3
#define SAMPLE_COUNTERS_EXPANDED 4
/* flow record formats, enterprise 0 */
#define REC_RAW_HEADER 1
#define REC_IPV4 3
#define REC_IPV6 4
/* header_protocol of a raw packet header */
#define HDR_ETHERNET 1
#define HDR_IPV4 11
#define HDR_IPV6 12

#define MAX_VLAN_TAGS 8
#define MAX_MPLS_LABELS 16
#define MAX_IPV6_EXT 16
/* A source ID (type, index) as one key of the per-domain source table */
#define SOURCE_KEY(type, index) (((guint64)(type) << 32) | (index))
/* the key is stored in the table's pointer */
G_STATIC_ASSERT(sizeof(gpointer) >= sizeof(guint64));

/* What a flow sample's packet says, as far as its sampled bytes go. */
typedef struct {
	guint8 src[16], dst[16];
	guint16 sport, dport;
	guint8 proto;
	guint8 tcp_flags;
	gboolean has_flags;
	gboolean ok; /* an IPv4 or IPv6 packet with both addresses */
	guint32 bytes;
} Packet;

gboolean
sflow_agent(const guint8 *buf, gsize len, guint8 addr[16])
{
	Cursor c;
	guint32 version, type;

	cursor_init(&c, buf, len);
	if (!cursor_u32(&c, &version) || version != SFLOW_VERSION || !cursor_u32(&c, &type))
		return FALSE;
	if (type == ADDR_IP_V4) {
		guint8 v4[4];
		if (!cursor_bytes(&c, v4, 4))
			return FALSE;
		flow_addr_set_v4(addr, v4);
		return TRUE;
	}
	if (type == ADDR_IP_V6)
		return cursor_bytes(&c, addr, 16);
	return FALSE;
}

/* XDR opaque and structure lengths are padded to 4 bytes (RFC 4506 4.10): carve the next
 * len bytes as sub, then step over the padding. */
static gboolean
sub_padded(Cursor *c, guint32 len, Cursor *sub)
{
	if (!cursor_sub(c, len, sub))
		return FALSE;
	gsize pad = (4 - (len & 3)) & 3;
	return cursor_skip(c, MIN(pad, cursor_left(c)));
}

/* TCP or UDP ports (and TCP flags) at the start of c, as far as the sampled bytes go. */
static void
parse_l4(Cursor *c, Packet *pk)
{
	guint16 sport, dport;

	if (pk->proto != 6 && pk->proto != 17)
		return;
	if (!cursor_u16(c, &sport) || !cursor_u16(c, &dport))
		return;
	pk->sport = sport;
	pk->dport = dport;
	/* TCP: sequence, acknowledgement, data offset, then the flags byte (RFC 9293 3.1) */
	if (pk->proto == 6 && cursor_skip(c, 9) && cursor_u8(c, &pk->tcp_flags))
		pk->has_flags = TRUE;
}

static void
parse_ipv4(Cursor *c, Packet *pk)
{
	guint8 vihl, proto;
	guint16 frag;
	const guint8 *h = cursor_ptr(c);

	/* 20 bytes name both addresses; the L4 header needs the whole IHL */
	if (cursor_left(c) < 20)
		return;
	vihl = h[0];
	if ((vihl >> 4) != 4 || (vihl & 0x0f) < 5)
		return;
	frag = be_u16(h + 6);
	proto = h[9];
	flow_addr_set_v4(pk->src, h + 12);
	flow_addr_set_v4(pk->dst, h + 16);
	pk->proto = proto;
	pk->ok = TRUE;
	/* A non-first fragment carries no transport header (RFC 791). */
	if ((frag & 0x1fff) != 0 || !cursor_skip(c, (gsize)(vihl & 0x0f) * 4))
		return;
	parse_l4(c, pk);
}

static void
parse_ipv6(Cursor *c, Packet *pk)
{
	guint8 vtc, next;

	if (cursor_left(c) < 40)
		return;
	const guint8 *h = cursor_ptr(c);
	vtc = h[0];
	if ((vtc >> 4) != 6)
		return;
	next = h[6];
	memcpy(pk->src, h + 8, 16);
	memcpy(pk->dst, h + 24, 16);
	pk->proto = next;
	pk->ok = TRUE;
	(void)cursor_skip(c, 40);
	/* Extension headers (RFC 8200 4): skipped to the transport header, if it was sampled. */
	for (guint i = 0; i < MAX_IPV6_EXT; i++) {
		guint8 nh, hlen;
		guint16 off;
		const guint8 *e = cursor_ptr(c);
		switch (next) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
			if (!cursor_u8(c, &nh) || !cursor_u8(c, &hlen) ||
			    !cursor_skip(c, (gsize)hlen * 8 + 6))
				return;
			break;
		case 44: /* fragment: 8 bytes; a non-first fragment has no transport header */
			if (cursor_left(c) < 8)
				return;
			nh = e[0];
			off = be_u16(e + 2);
			(void)cursor_skip(c, 8);
			pk->proto = nh;
			if ((off & 0xfff8) != 0)
				return;
			break;
		case 51: /* AH (RFC 4302 2.2): length in 4-byte units, minus 2 */
			if (!cursor_u8(c, &nh) || !cursor_u8(c, &hlen) ||
			    !cursor_skip(c, ((gsize)hlen + 2) * 4 - 2))
				return;
			break;
		default:
			pk->proto = next;
			parse_l4(c, pk);
			return;
		}
		next = nh;
		pk->proto = next;
	}
}

/* IP by its first nibble (after an MPLS label stack). */
static void
parse_ip_guess(Cursor *c, Packet *pk)
{
	if (cursor_left(c) == 0)
		return;
	guint8 v = cursor_ptr(c)[0] >> 4;
	if (v == 4)
		parse_ipv4(c, pk);
	else if (v == 6)
		parse_ipv6(c, pk);
}

static void
parse_ethernet(Cursor *c, Packet *pk)
{
	guint16 type;

	if (!cursor_skip(c, 12) || !cursor_u16(c, &type))
		return;
	/* IEEE 802.1Q, 802.1ad and the older 0x9100 QinQ: a 2-byte tag, then the next type */
	for (guint i = 0; i < MAX_VLAN_TAGS && (type == 0x8100 || type == 0x88a8 || type == 0x9100);
	     i++)
		if (!cursor_skip(c, 2) || !cursor_u16(c, &type))
			return;
	if (type < 0x0600) {
		/* IEEE 802.3 length: IP only behind LLC/SNAP with an EtherType (RFC 1042) */
		const guint8 *l = cursor_ptr(c);
		if (cursor_left(c) < 8 || l[0] != 0xaa || l[1] != 0xaa || l[2] != 0x03)
			return;
		type = be_u16(l + 6);
		(void)cursor_skip(c, 8);
	}
	switch (type) {
	case 0x0800:
		parse_ipv4(c, pk);
		break;
	case 0x86dd:
		parse_ipv6(c, pk);
		break;
	case 0x8847: /* MPLS unicast, multicast (RFC 3032): labels to bottom of stack */
	case 0x8848:
		for (guint i = 0; i < MAX_MPLS_LABELS; i++) {
			guint32 lse;
			if (!cursor_u32(c, &lse))
				return;
			if (lse & 0x100) {
				parse_ip_guess(c, pk);
				return;
			}
		}
		break;
	default:
		break;
	}
}

/* Raw packet header record (format 1). FALSE when its fields contradict its length. */
static gboolean
rec_raw_header(Cursor *r, Packet *pk)
{
	guint32 proto, frame_len, hlen;
	Cursor h;
	const guint8 *f = cursor_ptr(r);

	/* protocol, frame length, stripped, header length, then the header */
	if (!cursor_skip(r, 16))
		return FALSE;
	proto = be_u32(f);
	frame_len = be_u32(f + 4);
	hlen = be_u32(f + 12);
	if (!sub_padded(r, hlen, &h))
		return FALSE;
	if (pk->ok)
		return TRUE; /* the first usable header wins */
	switch (proto) {
	case HDR_ETHERNET:
		parse_ethernet(&h, pk);
		break;
	case HDR_IPV4:
		parse_ipv4(&h, pk);
		break;
	case HDR_IPV6:
		parse_ipv6(&h, pk);
		break;
	default:
		break;
	}
	if (pk->ok)
		pk->bytes = frame_len;
	return TRUE;
}

/* Sampled IPv4 (format 3) or IPv6 (format 4) record: used when no raw header was usable. */
static gboolean
rec_sampled_ip(Cursor *r, Packet *pk, gboolean v6)
{
	guint32 length, proto, sport, dport, flags, tos;
	guint8 s[16], d[16];
	gsize alen = v6 ? 16 : 4;

	if (!cursor_u32(r, &length) || !cursor_u32(r, &proto) || !cursor_bytes(r, s, alen) ||
	    !cursor_bytes(r, d, alen) || !cursor_u32(r, &sport) || !cursor_u32(r, &dport) ||
	    !cursor_u32(r, &flags) || !cursor_u32(r, &tos))
		return FALSE;
	if (pk->ok)
		return TRUE;
	if (v6) {
		memcpy(pk->src, s, 16);
		memcpy(pk->dst, d, 16);
	} else {
		flow_addr_set_v4(pk->src, s);
		flow_addr_set_v4(pk->dst, d);
	}
	pk->proto = (guint8)proto;
	pk->sport = (guint16)sport;
	pk->dport = (guint16)dport;
	pk->tcp_flags = (guint8)flags;
	pk->has_flags = TRUE;
	pk->bytes = length;
	pk->ok = TRUE;
	return TRUE;
}

static SflowSource *
source_add(Exporter *e, Domain *d, guint64 key)
{
	if (e->totals->sflow_sources >= e->cfg->max_sflow_sources) {
		e->totals->sflow_sources_refused++;
		return NULL;
	}
	if (d->sources == NULL)
		d->sources = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	SflowSource *s = g_new(SflowSource, 1);
	g_hash_table_replace(d->sources, GSIZE_TO_POINTER((gsize)key), s);
	e->totals->sflow_sources++;
	return s;
}

gboolean
domain_restore_source(Exporter *e, Domain *d, guint64 key, guint32 seq, guint32 drops)
{
	if (d->sources != NULL && g_hash_table_contains(d->sources, GSIZE_TO_POINTER((gsize)key)))
		return TRUE; /* a duplicate in the file: the first one stands */
	SflowSource *s = source_add(e, d, key);
	if (s == NULL)
		return FALSE;
	s->seq = seq;
	s->drops = drops;
	return TRUE;
}

/* Per source: flow samples lost (their sequence) and the agent's drops counter. Sources
 * are bounded across the collector; one over the bound is counted and not followed. */
static void
source_check(Exporter *e, Domain *d, guint64 key, guint32 seq, guint32 drops)
{
	SflowSource *s = d->sources != NULL
			     ? g_hash_table_lookup(d->sources, GSIZE_TO_POINTER((gsize)key))
			     : NULL;
	if (s == NULL) {
		s = source_add(e, d, key);
		if (s != NULL) {
			s->seq = seq;
			s->drops = drops;
		}
		return;
	}
	guint32 gap = seq - (s->seq + 1);
	if (gap != 0) {
		if (gap < SEQ_MAX_GAP)
			d->st.samples_lost += gap;
		else
			d->st.seq_resets++; /* backwards or a huge jump: resync */
	}
	/* drops counts up from the source's last reset; a smaller value is a new count */
	d->st.sample_drops += drops >= s->drops ? drops - s->drops : drops;
	s->seq = seq;
	s->drops = drops;
}

/* One flow sample (standard or expanded) in s. FALSE when malformed. */
static gboolean
flow_sample(Exporter *e, Domain *d, Cursor *s, gboolean expanded, gint64 now_ms,
	    FlowBatch *out)
{
	guint32 seq, type, index, rate, drops, nrec;
	Packet pk;
	/* The fixed part, checked once: sequence, source ID (type and index apart in the
	 * expanded form), rate, pool, drops, input and output interfaces (format and value
	 * apart in the expanded form), record count. */
	const gsize fixed = expanded ? 44 : 32;
	const guint8 *h = cursor_ptr(s);

	if (!cursor_skip(s, fixed))
		return FALSE;
	seq = be_u32(h);
	if (expanded) {
		type = be_u32(h + 4);
		index = be_u32(h + 8);
		h += 4;
	} else {
		guint32 id = be_u32(h + 4);
		type = id >> 24;
		index = id & 0xffffff;
	}
	rate = be_u32(h + 8);
	drops = be_u32(h + 16);
	nrec = be_u32(h + (expanded ? 36 : 28));
	if (nrec > cursor_left(s) / 8)
		return FALSE; /* each record takes at least its 8-byte header */
	memset(&pk, 0, sizeof pk);
	for (guint32 i = 0; i < nrec; i++) {
		guint32 fmt, len;
		Cursor r;
		if (!cursor_u32(s, &fmt) || !cursor_u32(s, &len) || !sub_padded(s, len, &r))
			return FALSE;
		gboolean ok = TRUE;
		switch (fmt) { /* enterprise 0 only: the upper 20 bits */
		case REC_RAW_HEADER:
			ok = rec_raw_header(&r, &pk);
			break;
		case REC_IPV4:
			ok = rec_sampled_ip(&r, &pk, FALSE);
			break;
		case REC_IPV6:
			ok = rec_sampled_ip(&r, &pk, TRUE);
			break;
		default:
			break; /* extended records and other enterprises: skipped by length */
		}
		if (!ok)
			return FALSE;
	}
	source_check(e, d, SOURCE_KEY(type, index), seq, drops);
	d->st.sampling = rate > 0 ? rate : 1;
	if (!pk.ok) {
		d->st.samples_not_ip++;
		return TRUE;
	}
	Flow *f = flow_batch_next(out);
	memcpy(f->src, pk.src, 16);
	memcpy(f->dst, pk.dst, 16);
	f->sport = pk.sport;
	f->dport = pk.dport;
	f->proto = pk.proto;
	f->tcp_flags = pk.tcp_flags;
	f->packets = 1;
	f->bytes = pk.bytes;
	/* sFlow carries no flow times: the sample was taken about when it arrived */
	f->start_ms = f->end_ms = now_ms;
	f->has = FLOW_HAS_PACKETS | FLOW_HAS_BYTES | FLOW_HAS_TIMES | FLOW_PACKET_SAMPLE |
		 (pk.has_flags ? FLOW_HAS_TCP_FLAGS : 0);
	f->sampling = d->st.sampling;
	f->recv_ms = now_ms;
	f->exporter = e->index;
	f->domain = d->id;
	f->version = FLOW_VERSION_SFLOW5;
	flow_batch_commit(out);
	d->st.records++;
	return TRUE;
}

guint
sflow_decode(Exporter *e, const guint8 *buf, gsize len, gint64 now_ms, FlowBatch *out)
{
	Cursor c;
	guint32 version, atype, sub_agent, seq, uptime, nsamples;

	cursor_init(&c, buf, len);
	/* sflow_agent() has read version and agent already; read them again for the offset */
	if (!cursor_u32(&c, &version) || !cursor_u32(&c, &atype) ||
	    !cursor_skip(&c, atype == ADDR_IP_V6 ? 16 : 4) || !cursor_u32(&c, &sub_agent)) {
		session_count_datagram(&e->hdr, FLOW_VERSION_SFLOW5, len, now_ms);
		e->hdr.malformed[MAL_SHORT_HEADER]++;
		return 0;
	}
	Domain *d = exporter_domain(e, sub_agent, now_ms);
	if (d == NULL) {
		session_count_datagram(&e->hdr, FLOW_VERSION_SFLOW5, len, now_ms);
		return 0;
	}
	session_count_datagram(&d->st, FLOW_VERSION_SFLOW5, len, now_ms);
	if (!cursor_u32(&c, &seq) || !cursor_u32(&c, &uptime) || !cursor_u32(&c, &nsamples)) {
		d->st.malformed[MAL_SHORT_HEADER]++;
		return 0;
	}
	/* An agent whose uptime went backwards restarted: its sequences start over. */
	if (d->st.seq_init && (gint32)(uptime - d->uptime_last) < 0) {
		d->st.seq_init = FALSE;
		d->st.seq_resets++;
		if (d->sources != NULL) {
			*d->sources_acct -= MIN(*d->sources_acct, g_hash_table_size(d->sources));
			g_hash_table_remove_all(d->sources);
		}
	}
	d->uptime_last = uptime;
	seq_check(d, SEQ_PER_DATAGRAM, seq, 1, 1);

	guint64 before = d->st.records;
	for (guint32 i = 0; i < nsamples; i++) {
		guint32 fmt, slen;
		Cursor s;
		if (!cursor_u32(&c, &fmt) || !cursor_u32(&c, &slen)) {
			d->st.malformed[MAL_LENGTH]++; /* fewer samples than the count says */
			return (guint)(d->st.records - before);
		}
		if (!sub_padded(&c, slen, &s)) {
			d->st.malformed[MAL_SET_LENGTH]++;
			return (guint)(d->st.records - before);
		}
		gboolean ok = TRUE;
		switch (fmt) {
		case SAMPLE_FLOW:
		case SAMPLE_FLOW_EXPANDED:
			ok = flow_sample(e, d, &s, fmt == SAMPLE_FLOW_EXPANDED, now_ms, out);
			break;
		case SAMPLE_COUNTERS:
		case SAMPLE_COUNTERS_EXPANDED:
			d->st.counter_samples++;
			break;
		default:
			d->st.sets_skipped++; /* other formats and enterprises */
			break;
		}
		if (!ok)
			d->st.malformed[MAL_SAMPLE]++; /* that sample only: the next one is framed */
	}
	if (cursor_left(&c) != 0)
		d->st.malformed[MAL_LENGTH]++; /* more bytes than the samples it counts */
	return (guint)(d->st.records - before);
}
