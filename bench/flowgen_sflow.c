/* flowgen_sflow.c: flowgen's sFlow v5 datagrams (sflow.org, sflow_version_5.txt), as an
 * access switch sends them (issue 12): flow samples of the generated flows with a raw
 * Ethernet header and the extended switch record, an occasional counter sample; built once
 * into the pool (sf_build), their header, sequence numbers and sample pools patched at each
 * send (sf_patch). The options, the traffic and the sending are flowgen.c's. */
#include <glib.h>

#include <string.h>

#include "flowgen.h"

/* ifIndex 1-48: access ports, one VLAN per 12 ports; 49-52 (to SF_PORTS): uplinks, 802.1Q
 * trunks */
#define SF_UPLINK 49
#define SF_UPLINK_VLAN 100

static gsize
sf_hdr_len(const Opts *o)
{
	/* version, agent address type, agent address, sub-agent, sequence, uptime, samples */
	return 4 + 4 + (o->agent6 ? 16 : 4) + 4 * 4;
}

static gboolean
is_internal(const guint8 *a, gboolean v6)
{
	return v6 ? a[0] == 0xfd : a[0] == 10;
}

/* A host's access port, from its address (the last two bytes) */
static guint
sf_host_port(const guint8 *a, gboolean v6)
{
	const guint8 *l = a + (v6 ? 14 : 2);
	return 1 + (guint)((l[0] << 8) | l[1]) % (SF_UPLINK - 1);
}

static guint8 *
put_mac(guint8 *p, const guint8 *a, gboolean v6, gboolean router)
{
	/* locally administered: 02:00 and the address's last four bytes; the router 02::01 */
	static const guint8 gw[6] = {0x02, 0, 0, 0, 0, 0x01};
	if (router)
		return putn(p, gw, 6);
	p = put16(p, 0x0200);
	return putn(p, a + (v6 ? 12 : 0), 4);
}

static guint16
ip_checksum(const guint8 *p, gsize n)
{
	guint32 sum = 0;
	for (gsize i = 0; i + 1 < n; i += 2)
		sum += (guint32)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (guint16)~sum;
}

static void
fill_random(guint8 *p, gsize n)
{
	for (gsize i = 0; i < n; i++)
		p[i] = (guint8)(rng() >> 56);
}

/* The first bytes of an application payload of n bytes (n <= SF_MAX_HDR are written) on
 * this port: DNS, NTP and STUN messages as they are, TLS records (443, 587 after STARTTLS,
 * 993), HTTP and SMTP text, opaque bytes for the rest (SSH). */
static void
sf_payload(guint8 *p, gsize n, guint16 sport, guint16 dport, guint8 proto)
{
	gsize w = MIN(n, SF_MAX_HDR);
	guint8 *q = p;

	fill_random(p, w);
	if (proto == 17 && (dport == 53 || sport == 53)) {
		/* a query for wNNNN.example.com A, or its answer */
		gboolean answer = sport == 53;
		q = put16(q, (guint16)rng());
		q = put16(q, answer ? 0x8180 : 0x0100);
		q = put16(q, 1);
		q = put16(q, answer ? 1 : 0);
		q = put32(q, 0);
		q = put8(q, 5);
		q = put8(q, 'w');
		for (guint i = 0; i < 4; i++)
			q = put8(q, (guint8)('0' + rng_below(10)));
		q = putn(q, (const guint8 *)"\007example\003com", 13);
		q = put32(q, 0x00010001); /* A, IN */
		if (answer) {
			q = put16(q, 0xc00c);
			q = put32(q, 0x00010001);
			q = put32(q, 300);
			q = put16(q, 4);
			q = put32(q, (guint32)rng());
		}
	} else if (proto == 17 && (dport == 123 || sport == 123)) {
		memset(p, 0, w);
		p[0] = dport == 123 ? 0x23 : 0x24; /* NTPv4 client, server */
		p[1] = dport == 123 ? 0 : 2;	   /* stratum */
		fill_random(p + 40, w - 40);	   /* transmit timestamp */
	} else if (proto == 17 && (dport == 3478 || sport == 3478)) {
		q = put16(q, dport == 3478 ? 0x0001 : 0x0101); /* binding request, success */
		q = put16(q, 0);
		q = put32(q, 0x2112a442); /* RFC 5389 magic cookie; 12 random bytes follow */
	} else if (proto == 6 && (dport == 443 || sport == 443 || dport == 993 || sport == 993 ||
				  dport == 587 || sport == 587)) {
		if (n >= 5) {
			q = put8(q, 23); /* TLS 1.2 application data record */
			q = put16(q, 0x0303);
			put16(q, (guint16)MIN(n - 5, 16384));
		}
	} else if (proto == 6 && (dport == 80 || sport == 80 || dport == 8080 || sport == 8080)) {
		/* the start of a request or response; a switch's 128 bytes end inside it */
		static const char req[] = "POST /api/v2/sync HTTP/1.1\r\nHost: www.example.com\r\n"
					  "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: "
					  "*/*\r\nContent-Type: application/octet-stream\r\n";
		static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/"
					   "octet-stream\r\nCache-Control: max-age=86400\r\nServer: "
					   "nginx\r\nDate: Sat, 28 Nov 2026 11:15:00 GMT\r\n";
		const char *t = dport == 80 || dport == 8080 ? req : resp;
		memcpy(p, t, MIN(w, strlen(t)));
	} else if (proto == 6 && (dport == 25 || sport == 25)) {
		static const char cmd[] = "MAIL FROM:<info@offers.example>\r\nRCPT TO:<user@"
					  "example.net>\r\nDATA\r\n";
		static const char reply[] = "250 2.1.0 Ok\r\n";
		const char *t = dport == 25 ? cmd : reply;
		gsize tl = strlen(t);
		for (gsize i = 0; i < w; i++)
			p[i] = (guint8)t[i % tl];
	}
}

/* One sampled packet of flow f as the switch saw it: its first min(cap, frame - FCS) bytes
 * into out (returned), its length on the wire, FCS included, into *frame_len. */
static guint
sf_frame(const GenFlow *f, gboolean tagged, guint16 vlan, guint cap, guint8 *out,
	 guint32 *frame_len)
{
	guint8 fr[14 + 4 + 40 + 40 + SF_MAX_HDR];
	gboolean in = is_internal(f->src, f->v6);
	guint8 flags = 0;
	gsize l4h = 8, plen = 0, optlen = 0;
	guint8 *p = fr;

	if (f->proto == 6) {
		double r = rng_unit();
		gboolean server = f->sport < 1024; /* the answer direction */
		gsize l3l4 = (f->v6 ? 40 : 20) + 32;
		guint64 avg = f->bytes / MAX(f->packets, 1);
		if (f->flags == 0x02 || r < 0.04)
			flags = server ? 0x12 : 0x02; /* SYN (a blocked bot sends only these) */
		else if (r < 0.08)
			flags = 0x11; /* FIN ACK */
		else if (r < 0.45 || avg <= l3l4)
			flags = 0x10; /* a bare ACK */
		else {
			flags = 0x18; /* PSH ACK with data, at most a 1500-byte MTU */
			plen = (gsize)MIN(avg - l3l4, 1500 - l3l4);
		}
		optlen = flags & 0x02 ? 20 : 12; /* MSS, SACK, TS, WS; or TS */
		l4h = 20 + optlen;
	} else {
		guint16 port = f->dport < 1024 || f->dport == 3478 ? f->dport : f->sport;
		plen = port == 53 ? (f->dport == 53 ? 35 : 51) : port == 123 ? 48 : 20;
	}
	gsize l3 = (f->v6 ? 40 : 20) + l4h + plen;
	/* Ethernet: pads to 60 bytes before the FCS */
	*frame_len = (guint32)MAX(14 + (tagged ? 4 : 0) + l3, 60) + 4;

	p = put_mac(p, f->dst, f->v6, in);
	p = put_mac(p, f->src, f->v6, !in);
	if (tagged) {
		p = put16(p, 0x8100);
		p = put16(p, vlan);
	}
	p = put16(p, f->v6 ? 0x86dd : 0x0800);
	guint8 *ip = p;
	if (f->v6) {
		p = put32(p, 0x60000000u | (guint32)(rng() & 0xfffff));
		p = put16(p, (guint16)(l4h + plen));
		p = put8(p, f->proto);
		p = put8(p, in ? 64 : 52);
		p = putn(p, f->src, 16);
		p = putn(p, f->dst, 16);
	} else {
		p = put8(p, 0x45);
		p = put8(p, f->tos);
		p = put16(p, (guint16)l3);
		p = put16(p, (guint16)rng());
		p = put16(p, 0x4000); /* DF */
		p = put8(p, in ? 64 : 52);
		p = put8(p, f->proto);
		p = put16(p, 0);
		p = putn(p, f->src, 4);
		p = putn(p, f->dst, 4);
		put16(ip + 10, ip_checksum(ip, 20));
	}
	p = put16(p, f->sport);
	p = put16(p, f->dport);
	if (f->proto == 6) {
		p = put32(p, (guint32)rng());			 /* sequence */
		p = put32(p, flags == 0x02 ? 0 : (guint32)rng()); /* ack */
		p = put8(p, (guint8)((l4h / 4) << 4));
		p = put8(p, flags);
		p = put16(p, flags & 0x02 ? 64240 : (guint16)(501 + rng_below(60000)));
		p = put16(p, (guint16)rng()); /* checksum: over a payload we do not have */
		p = put16(p, 0);
		if (flags & 0x02) {
			static const guint8 syn[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10};
			p = putn(p, syn, sizeof syn);
			p = put32(p, (guint32)rng());
			p = put32(p, 0);
			p = put8(p, 1);
			p = put8(p, 3);
			p = put8(p, 3);
			p = put8(p, 7);
		} else {
			p = put16(p, 0x0101);
			p = put16(p, 0x080a);
			p = put32(p, (guint32)rng());
			p = put32(p, (guint32)rng());
		}
	} else {
		p = put16(p, (guint16)(8 + plen));
		p = put16(p, (guint16)(1 + rng_below(65535)));
	}
	sf_payload(p, plen, f->sport, f->dport, f->proto);
	gsize have = (gsize)(p - fr) + MIN(plen, SF_MAX_HDR);
	/* a frame padded to the minimum: the padding is zeros, and is part of the header. Only
	 * a frame wholly in fr is padded: a payload cut at SF_MAX_HDR ends fr's bytes (zeroing
	 * on to on_wire overran fr), and n <= cap <= SF_MAX_HDR never reaches past them */
	gsize on_wire = *frame_len - 4;
	if (plen <= SF_MAX_HDR && have < on_wire) {
		memset(fr + have, 0, on_wire - have);
		have = on_wire;
	}
	guint n = (guint)MIN(MIN(have, on_wire), cap);
	memcpy(out, fr, n);
	return n;
}

/* One flow sample of flow f: standard (format 1) or expanded (format 3), with a raw packet
 * header record (1) and an extended switch record (1001). The sample is taken where the
 * packet enters the switch: an internal host's access port, or an uplink. */
static guint8 *
sf_put_flow_sample(const Opts *o, guint8 *p, const guint8 *base, const GenFlow *f,
		   SfSample *ref)
{
	gboolean in = is_internal(f->src, f->v6);
	guint port = in ? sf_host_port(f->src, f->v6) : SF_UPLINK + rng_below(4);
	guint out_port = in ? SF_UPLINK + rng_below(4) : sf_host_port(f->dst, f->v6);
	guint16 src_vlan = in ? (guint16)(10 + (port - 1) / 12 * 10) : SF_UPLINK_VLAN;
	guint16 dst_vlan = in ? SF_UPLINK_VLAN : (guint16)(10 + (out_port - 1) / 12 * 10);
	guint32 rate = (guint32)o->sampling * (port >= SF_UPLINK ? 4 : 1);
	gboolean expanded = rng_unit() < o->expanded;
	guint8 hdr[SF_MAX_HDR];
	guint32 frame_len;
	guint hl = sf_frame(f, port >= SF_UPLINK, src_vlan, (guint)o->header_bytes, hdr, &frame_len);
	guint pad = (4 - hl % 4) % 4;

	p = put32(p, expanded ? 3 : 1); /* enterprise 0 */
	guint8 *lenp = p;
	p += 4;
	ref->off = (guint16)(p - base);
	ref->port = (guint8)port;
	ref->rate = rate;
	p = put32(p, 0); /* sequence_number: patched at send time */
	if (expanded)
		p = put32(p, 0); /* source_id type: ifIndex */
	p = put32(p, port);	 /* format 1: type 0 in the top byte */
	p = put32(p, rate);
	ref->pool_off = (guint16)(p - base);
	p = put32(p, 0); /* sample_pool: patched */
	p = put32(p, 0); /* drops */
	if (expanded) {
		p = put32(p, 0);
		p = put32(p, port);
		p = put32(p, 0);
		p = put32(p, out_port);
	} else {
		p = put32(p, port);
		p = put32(p, out_port);
	}
	p = put32(p, 2);
	p = put32(p, 1); /* raw packet header */
	p = put32(p, 16 + hl + pad);
	p = put32(p, 1); /* header_protocol: ETHERNET-ISO88023 */
	p = put32(p, frame_len);
	p = put32(p, 4); /* stripped: the FCS */
	p = put32(p, hl);
	p = putn(p, hdr, hl);
	memset(p, 0, pad);
	p += pad;
	p = put32(p, 1001); /* extended switch */
	p = put32(p, 16);
	p = put32(p, src_vlan);
	p = put32(p, 0);
	p = put32(p, dst_vlan);
	p = put32(p, 0);
	put32(lenp, (guint32)(p - lenp - 4));
	return p;
}

/* A counter sample (format 2) for one port: generic interface (1) and Ethernet (2)
 * counters. Polled every 20-30 s per port on real switches. */
static guint8 *
sf_put_counter_sample(guint8 *p, const guint8 *base, guint port, SfSample *ref)
{
	gboolean up = port >= SF_UPLINK;
	guint64 in_oct = rng() >> 20, out_oct = rng() >> 20;

	p = put32(p, 2);
	p = put32(p, 12 + 8 + 88 + 8 + 52); /* after the tag and length */
	ref->off = (guint16)(p - base);
	ref->pool_off = 0;
	ref->port = (guint8)port;
	ref->rate = 0;
	p = put32(p, 0); /* sequence_number: patched */
	p = put32(p, port);
	p = put32(p, 2);
	p = put32(p, 1); /* generic interface counters */
	p = put32(p, 88);
	p = put32(p, port);
	p = put32(p, 6); /* ethernetCsmacd */
	p = put64(p, up ? 10000000000ULL : 1000000000ULL);
	p = put32(p, 1); /* full duplex */
	p = put32(p, 3); /* admin and oper up */
	p = put64(p, in_oct);
	p = put32(p, (guint32)(in_oct / 700));
	p = put32(p, (guint32)(in_oct / 700000));
	p = put32(p, (guint32)(in_oct / 2000000));
	p = put32(p, 0);
	p = put32(p, 0);
	p = put32(p, 0);
	p = put64(p, out_oct);
	p = put32(p, (guint32)(out_oct / 700));
	p = put32(p, (guint32)(out_oct / 700000));
	p = put32(p, (guint32)(out_oct / 2000000));
	p = put32(p, 0);
	p = put32(p, 0);
	p = put32(p, 0); /* not promiscuous */
	p = put32(p, 2); /* Ethernet interface counters: 13 dot3Stats, all zero */
	p = put32(p, 52);
	memset(p, 0, 52);
	return p + 52;
}

/* A datagram of samples filling o->max_bytes (or o->per_dgram flow samples), a counter
 * sample first when `counter_port` is not 0. */
void
sf_build(const Opts *o, Dgram *d, guint8 *buf, guint counter_port)
{
	SfSample refs[MAX_DGRAM / 64];
	guint8 tmp[1024];
	guint8 *p = buf + sf_hdr_len(o);
	guint n = 0, ns = 0;

	if (counter_port > 0)
		p = sf_put_counter_sample(p, buf, counter_port, &refs[ns++]);
	for (;;) {
		GenFlow f;
		SfSample r;
		if (o->per_dgram > 0 && n >= (guint)o->per_dgram)
			break;
		gen_flow(o, &f, TRUE);
		/* written aside first: it goes in only if it fits */
		gsize l = (gsize)(sf_put_flow_sample(o, tmp, tmp, &f, &r) - tmp);
		gsize at = (gsize)(p - buf);
		if (o->per_dgram <= 0 && at + l > (gsize)o->max_bytes && n > 0)
			break;
		if (at + l > MAX_DGRAM || ns >= G_N_ELEMENTS(refs))
			break;
		memcpy(p, tmp, l);
		r.off = (guint16)(r.off + at);
		r.pool_off = (guint16)(r.pool_off + at);
		refs[ns++] = r;
		p += l;
		d->nbot += f.bot;
		d->pkts++; /* a flow sample is one sampled packet */
		n++;
	}
	d->len = (guint16)(p - buf);
	d->nrec = (guint16)n;
	d->nsamp = (guint16)ns;
	d->samp = g_memdup2(refs, ns * sizeof refs[0]);
}

/* The datagram header and each sample's sequence number and pool, at send time. */
void
sf_patch(const Opts *o, Dgram *d, guint exporter, guint32 sub_agent, guint32 seq,
	 guint32 uptime, SfSource *src)
{
	guint8 *p = put32(d->buf, 5);
	p = put32(p, o->agent6 ? 2 : 1);
	if (o->agent6) {
		/* fd00:5f::N, N from 1 */
		static const guint8 pre[12] = {0xfd, 0x00, 0x00, 0x5f};
		p = putn(p, pre, 12);
		p = put32(p, exporter + 1);
	} else {
		/* 10.255.x.y: switch management addresses */
		p = put32(p, 0x0aff0000u | (exporter + 1));
	}
	p = put32(p, sub_agent);
	p = put32(p, seq);
	p = put32(p, uptime);
	put32(p, d->nsamp);
	for (guint i = 0; i < d->nsamp; i++) {
		const SfSample *s = &d->samp[i];
		SfSource *ss = &src[s->port];
		if (s->pool_off == 0) {
			put32(d->buf + s->off, ++ss->counter_seq);
			continue;
		}
		put32(d->buf + s->off, ++ss->flow_seq);
		/* packets that could have been sampled: on average rate per sample */
		ss->pool += s->rate;
		put32(d->buf + s->pool_off, ss->pool);
	}
}
