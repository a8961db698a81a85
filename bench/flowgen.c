/* flowgen: load generator for the collector benchmarks (issue 6). Sends NetFlow v5, v9,
 * IPFIX or sFlow v5 over UDP from one or more exporter sockets, paced to a record rate or
 * unpaced with sendmmsg, with correct per-(exporter, domain) sequence numbers, periodic
 * templates and a seeded address mix (background, legitimate mail, spam bots fanning out on
 * port 25). sFlow datagrams are a switch's (issue 12): flow samples with a raw Ethernet
 * header and the extended switch record, an occasional counter sample; flowgen_sflow.c builds
 * them, flowgen.h holds what the two files share. It can also write the same datagrams to a
 * pcap file for offline decode benchmarks. With --spoof it is a spoofed flood instead: every
 * non-bot record is a port-25 flow from a fresh, never repeated internal source, while the
 * bots keep their addresses (issue 7). --mix bot-heavy (issue 14) is an outbreak: most records
 * are bots' short port-25 flows to fresh random destinations (--fresh-dst: patched at each
 * send), a fifth are unlisted MTAs' steady fan-out (--mta-share). */
#include <glib.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "flowgen.h"

#define MAX_BATCH 64
#define TPL_V4 256
#define TPL_V6 257

typedef struct {
	guint32 seq;
	guint32 since_tpl;
	gboolean tpl_sent;
} DomState;

/* ---- seeded randomness (xoshiro256**; rng() and its kin are in flowgen.h) ---- */

guint64 rng_s[4]; /* seeded by splitmix() in main() */

static guint64
splitmix(guint64 *x)
{
	guint64 z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- the synthetic traffic ---- */

static void
internal_addr(const Opts *o, guint32 host, gboolean v6, guint8 out[16])
{
	memset(out, 0, 16);
	host %= (guint32)MAX(o->hosts, 1);
	if (v6) {
		out[0] = 0xfd; /* RFC 4193 ULA: internal */
		out[1] = 0x42;
		out[13] = (guint8)(host >> 16);
		out[14] = (guint8)(host >> 8);
		out[15] = (guint8)host;
	} else {
		out[0] = 10;
		out[1] = (guint8)(host >> 16);
		out[2] = (guint8)(host >> 8);
		out[3] = (guint8)host;
	}
}

/* A public address: v4 in 23.0.0.0-82.255.255.255 (no private space), v6 in 2001:db8::/32. */
static void
external_addr(guint32 id, gboolean v6, guint8 out[16])
{
	memset(out, 0, 16);
	if (v6) {
		out[0] = 0x20;
		out[1] = 0x01;
		out[2] = 0x0d;
		out[3] = 0xb8;
		out[12] = (guint8)(id >> 24);
		out[13] = (guint8)(id >> 16);
		out[14] = (guint8)(id >> 8);
		out[15] = (guint8)id;
	} else {
		out[0] = (guint8)(23 + (id >> 24) % 60);
		out[1] = (guint8)(id >> 16);
		out[2] = (guint8)(id >> 8);
		out[3] = (guint8)id;
	}
}

void
gen_flow(const Opts *o, GenFlow *f, gboolean allow_v6)
{
	static const guint16 bg_ports[] = {443, 443, 443, 443, 80, 80, 53, 123, 22, 8080, 993, 3478};
	double r = rng_unit();

	memset(f, 0, sizeof *f);
	f->v6 = allow_v6 && rng_unit() < o->ipv6;
	f->proto = 6;
	f->tos = 0;
	f->in_if = 1 + rng_below(4);
	f->out_if = 5 + rng_below(4);
	f->age_ms = rng_below(5000);
	f->dur_ms = rng_below(60000);
	f->sport = (guint16)(32768 + rng_below(28000));
	if (r < o->bot_share && o->bots > 0) {
		/* a spam bot: an internal host reaching a new MX each time */
		guint32 b = rng_below((guint32)o->bots);
		internal_addr(o, 0, f->v6, f->src);
		f->src[f->v6 ? 12 : 1] = 200; /* bots live in 10.200.0.0/16 or fd42::c8xx */
		f->src[f->v6 ? 14 : 2] = (guint8)(b >> 8);
		f->src[f->v6 ? 15 : 3] = (guint8)b;
		external_addr((guint32)rng(), f->v6, f->dst);
		f->dport = 25;
		f->flags = rng_unit() < 0.3 ? 0x02 : 0x1b; /* SYN only (blocked) or a session */
		f->packets = f->flags == 0x02 ? 1 + rng_below(3) : 8 + rng_below(20);
		f->bytes = f->packets * (40 + rng_below(900));
		f->bot = TRUE;
		f->fresh_dst = o->fresh_dst;
		return;
	}
	if (r < o->bot_share + o->mta_share && o->mtas > 0) {
		/* an unlisted mail server delivering: steady fan-out over its own 3,000 MX,
		 * sessions that went through */
		guint32 m = rng_below((guint32)o->mtas);
		internal_addr(o, 0, f->v6, f->src);
		f->src[f->v6 ? 12 : 1] = 201; /* 10.201.0.0/16 or fd42::c9xx */
		f->src[f->v6 ? 14 : 2] = (guint8)(m >> 8);
		f->src[f->v6 ? 15 : 3] = (guint8)m;
		external_addr(0x00300000u + m * 0x10000u + rng_below(3000), f->v6, f->dst);
		f->dport = 25;
		f->flags = 0x1b;
		f->packets = 10 + rng_below(50);
		f->bytes = f->packets * (60 + rng_below(1400));
		return;
	}
	if (o->spoof) {
		/* one delivered mail from a source never seen before: the address is a
		 * placeholder here, spoof_addr() writes a fresh one at each send */
		internal_addr(o, 0, f->v6, f->src);
		external_addr(rng_below(100000), f->v6, f->dst);
		f->dport = (guint16)o->spoof_port;
		f->flags = 0x1b;
		f->packets = 8 + rng_below(20);
		f->bytes = f->packets * (40 + rng_below(900));
		f->spoof = TRUE;
		return;
	}
	if (r < o->bot_share + o->mta_share + o->mail_share) {
		/* legitimate clients submitting to or reading from a few mail providers */
		internal_addr(o, rng_below((guint32)o->hosts), f->v6, f->src);
		external_addr(0x00AA0000u + rng_below(8), f->v6, f->dst);
		f->dport = rng_unit() < 0.5 ? 587 : 993;
		f->flags = 0x1b;
		f->packets = 10 + rng_below(200);
		f->bytes = f->packets * (60 + rng_below(1400));
		return;
	}
	/* background: web, DNS, NTP, SSH...; a third are the answer direction */
	guint8 in[16], ex[16];
	internal_addr(o, rng_below((guint32)o->hosts), f->v6, in);
	external_addr(rng_below(100000), f->v6, ex);
	guint16 port = bg_ports[rng_below(G_N_ELEMENTS(bg_ports))];
	if (port == 53 || port == 123 || port == 3478)
		f->proto = 17;
	f->flags = f->proto == 6 ? 0x1b : 0;
	f->packets = 1 + rng_below(500);
	f->bytes = f->packets * (40 + rng_below(1400));
	if (rng_unit() < 0.33) {
		memcpy(f->src, ex, 16);
		memcpy(f->dst, in, 16);
		f->dport = f->sport;
		f->sport = port;
	} else {
		memcpy(f->src, in, 16);
		memcpy(f->dst, ex, 16);
		f->dport = port;
	}
}

/* --spoof: the n-th fresh source (n from 1, one counter for both families). IPv4 10.0.0.1
 * up to 10.199.255.255, IPv6 fd42::xx:xxxx with byte 12 zero: never a bot's 10.200.0.0/16
 * or fd42::c8xx:xxxx. */
#define SPOOF_MAX (200u << 16)

static void
spoof_addr(guint8 *p, gboolean v6, guint32 n)
{
	if (v6) {
		static const guint8 pre[13] = {0xfd, 0x42};
		memcpy(p, pre, 13);
		p[13] = (guint8)(n >> 16);
		p[14] = (guint8)(n >> 8);
		p[15] = (guint8)n;
	} else {
		p[0] = 10;
		p[1] = (guint8)(n >> 16);
		p[2] = (guint8)(n >> 8);
		p[3] = (guint8)n;
	}
}

/* ---- encoders ---- */

static gsize
rec_len(gint version, gboolean v6)
{
	/* v9: src dst sport dport proto flags tos pkts(8) bytes(8) first last in out
	 * IPFIX: the same with packets reduced to 4 bytes (RFC 7011 6.2) and ms timestamps */
	if (version == 5)
		return 48;
	gsize base = version == 9 ? 47 : 51;
	return v6 ? base + 24 : base;
}

static guint8 *
put_v5_rec(guint8 *p, const GenFlow *f, guint32 uptime)
{
	guint32 last = uptime - f->age_ms;
	p = putn(p, f->src, 4);
	p = putn(p, f->dst, 4);
	p = put32(p, 0);
	p = put16(p, (guint16)f->in_if);
	p = put16(p, (guint16)f->out_if);
	p = put32(p, f->packets);
	p = put32(p, (guint32)MIN(f->bytes, G_MAXUINT32));
	p = put32(p, last - f->dur_ms);
	p = put32(p, last);
	p = put16(p, f->sport);
	p = put16(p, f->dport);
	p = put8(p, 0);
	p = put8(p, f->flags);
	p = put8(p, f->proto);
	p = put8(p, f->tos);
	p = put32(p, 0); /* src_as, dst_as */
	p = put16(p, 0); /* masks */
	return put16(p, 0);
}

static guint8 *
put_tmpl_rec(guint8 *p, const GenFlow *f, gint version, guint32 uptime, gint64 now_ms)
{
	gsize alen = f->v6 ? 16 : 4;
	p = putn(p, f->src, alen);
	p = putn(p, f->dst, alen);
	p = put16(p, f->sport);
	p = put16(p, f->dport);
	p = put8(p, f->proto);
	p = put8(p, f->flags);
	p = put8(p, f->tos);
	if (version == 9) {
		guint32 last = uptime - f->age_ms;
		p = put64(p, f->packets);
		p = put64(p, f->bytes);
		p = put32(p, last - f->dur_ms);
		p = put32(p, last);
	} else {
		guint64 last = (guint64)now_ms - f->age_ms;
		p = put32(p, f->packets);
		p = put64(p, f->bytes);
		p = put64(p, last - f->dur_ms);
		p = put64(p, last);
	}
	p = put32(p, f->in_if);
	return put32(p, f->out_if);
}

/* Both templates (IPv4 256, IPv6 257) in one template set/flowset. */
static gsize
put_templates(guint8 *buf, gint version)
{
	const guint16 v9_fields[] = {0, 0, 7, 2, 11, 2, 4, 1, 6, 1, 5, 1, 2, 8, 1, 8, 22, 4, 21, 4,
				     10, 4, 14, 4};
	const guint16 ipfix_fields[] = {0, 0, 7, 2, 11, 2, 4, 1, 6, 1, 5, 1, 2, 4, 1, 8, 152, 8,
					153, 8, 10, 4, 14, 4};
	const guint16 *fl = version == 9 ? v9_fields : ipfix_fields;
	guint n = G_N_ELEMENTS(v9_fields) / 2;
	guint8 *p = buf + 4;

	for (guint t = 0; t < 2; t++) {
		p = put16(p, t == 0 ? TPL_V4 : TPL_V6);
		p = put16(p, (guint16)(n + 1));
		/* addresses first: 8/12 for IPv4, 27/28 for IPv6 */
		p = put16(p, t == 0 ? 8 : 27);
		p = put16(p, t == 0 ? 4 : 16);
		p = put16(p, t == 0 ? 12 : 28);
		p = put16(p, t == 0 ? 4 : 16);
		for (guint i = 1; i < n; i++) {
			p = put16(p, fl[2 * i]);
			p = put16(p, fl[2 * i + 1]);
		}
	}
	put16(buf, version == 9 ? 0 : 2); /* RFC 3954 5.2: flowset 0; RFC 7011 3.3.2: set 2 */
	put16(buf + 2, (guint16)(p - buf));
	return (gsize)(p - buf);
}

static gsize
hdr_len(gint version)
{
	/* sFlow: sf_hdr_len() in flowgen_sflow.c */
	return version == 5 ? 24 : version == 9 ? 20 : 16;
}

/* Build the index-th data datagram of the pool (header left for patching). */
static void
build_dgram(const Opts *o, Dgram *d, guint index, guint32 uptime, gint64 now_ms)
{
	guint8 *buf = g_malloc(MAX_DGRAM);
	gsize hl = hdr_len(o->version);
	guint n = 0;
	/* records in a datagram: at most MAX_DGRAM / 47, the shortest v9/IPFIX record */
	guint16 off[MAX_DGRAM / 47 + 1];
	guint8 is6[MAX_DGRAM / 47 + 1];
	guint ns = 0;

	d->nbot = 0;
	d->pkts = 0;
	if (o->version == V_SFLOW) {
		/* a counter sample in every counter_every-th datagram, the ports in turn */
		guint cport = 0;
		if (o->counter_every > 0 && index % (guint)o->counter_every == 0)
			cport = 1 + (index / (guint)o->counter_every) % SF_PORTS;
		sf_build(o, d, buf, cport);
		d->buf = buf;
		d->nspoof = 0;
		d->spoof_off = NULL;
		d->spoof_v6 = NULL;
		return;
	}
	if (o->version == 5) {
		guint want = o->per_dgram > 0 ? (guint)o->per_dgram : 30;
		guint8 *p = buf + hl;
		for (; n < want; n++) {
			GenFlow f;
			gen_flow(o, &f, FALSE);
			d->nbot += f.bot;
			d->pkts += f.packets;
			if (f.spoof || f.fresh_dst) {
				/* srcaddr: the record's first field */
				off[ns] = (guint16)(p - buf);
				is6[ns++] = f.fresh_dst ? PATCH_DST : 0;
			}
			p = put_v5_rec(p, &f, uptime);
		}
		d->len = (guint16)(p - buf);
	} else {
		/* IPv4 records in one data set, IPv6 in another */
		guint8 v4[MAX_DGRAM], v6[MAX_DGRAM];
		gsize l4 = 0, l6 = 0;
		/* record offsets within their set's body, for the spoofed sources */
		guint16 off4[MAX_DGRAM / 47 + 1], off6[MAX_DGRAM / 47 + 1];
		guint8 kind4[MAX_DGRAM / 47 + 1], kind6[MAX_DGRAM / 47 + 1];
		guint n4s = 0, n6s = 0;
		for (;;) {
			GenFlow f;
			if (o->per_dgram > 0 && n >= (guint)o->per_dgram)
				break;
			gen_flow(o, &f, TRUE);
			gsize rl = rec_len(o->version, f.v6);
			gsize n4 = l4 + (f.v6 ? 0 : rl), n6 = l6 + (f.v6 ? rl : 0);
			/* each set: 4 header bytes and up to 3 of padding */
			gsize total = hl + (n4 > 0 ? n4 + 8 : 0) + (n6 > 0 ? n6 + 8 : 0);
			if (o->per_dgram <= 0 && total > (gsize)o->max_bytes && n > 0)
				break;
			if (total > MAX_DGRAM - 16)
				break;
			if ((f.spoof || f.fresh_dst) && f.v6) {
				kind6[n6s] = PATCH_V6 | (f.fresh_dst ? PATCH_DST : 0);
				off6[n6s++] = (guint16)l6;
			} else if (f.spoof || f.fresh_dst) {
				kind4[n4s] = f.fresh_dst ? PATCH_DST : 0;
				off4[n4s++] = (guint16)l4;
			}
			if (f.v6)
				l6 = (gsize)(put_tmpl_rec(v6 + l6, &f, o->version, uptime, now_ms) - v6);
			else
				l4 = (gsize)(put_tmpl_rec(v4 + l4, &f, o->version, uptime, now_ms) - v4);
			d->nbot += f.bot;
			d->pkts += f.packets;
			n++;
		}
		guint8 *p = buf + hl;
		for (guint s = 0; s < 2; s++) {
			gsize l = s == 0 ? l4 : l6;
			if (l == 0)
				continue;
			/* v9 flowsets are padded to 32 bits (RFC 3954 5.3); IPFIX sets need not be */
			gsize pad = o->version == 9 ? (4 - (l + 4) % 4) % 4 : 0;
			p = put16(p, s == 0 ? TPL_V4 : TPL_V6);
			p = put16(p, (guint16)(l + 4 + pad));
			/* records start with their source address (see put_tmpl_rec) */
			for (guint i = 0; i < (s == 0 ? n4s : n6s); i++) {
				off[ns] = (guint16)(p - buf + (s == 0 ? off4[i] : off6[i]));
				is6[ns++] = s == 0 ? kind4[i] : kind6[i];
			}
			p = putn(p, s == 0 ? v4 : v6, l);
			memset(p, 0, pad);
			p += pad;
		}
		d->len = (guint16)(p - buf);
	}
	d->nrec = (guint16)n;
	d->buf = buf;
	d->nspoof = (guint16)ns;
	d->spoof_off = ns > 0 ? g_memdup2(off, ns * sizeof off[0]) : NULL;
	d->spoof_v6 = ns > 0 ? g_memdup2(is6, ns) : NULL;
}

/* Patch the header of a datagram for (domain, sequence, clock). */
static void
patch_header(const Opts *o, guint8 *buf, gsize len, guint16 count, guint32 seq, guint32 domain,
	     guint32 uptime, gint64 now_ms)
{
	guint8 *p = put16(buf, (guint16)o->version);
	if (o->version == 5) {
		p = put16(p, count);
		p = put32(p, uptime);
		p = put32(p, (guint32)(now_ms / 1000));
		p = put32(p, (guint32)(now_ms % 1000) * 1000000u);
		p = put32(p, seq);
		p = put8(p, 0);
		p = put8(p, (guint8)domain); /* engine id */
		put16(p, 0);
	} else if (o->version == 9) {
		p = put16(p, count);
		p = put32(p, uptime);
		p = put32(p, (guint32)(now_ms / 1000));
		p = put32(p, seq);
		put32(p, domain);
	} else {
		p = put16(p, (guint16)len);
		p = put32(p, (guint32)(now_ms / 1000));
		p = put32(p, seq);
		put32(p, domain);
	}
}

/* ---- output: UDP or pcap ---- */

static gint64
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
wait_until(gint64 deadline_ns)
{
	for (;;) {
		gint64 left = deadline_ns - now_ns();
		if (left <= 0)
			return;
		if (left > 300000) {
			struct timespec ts = {0, left - 200000};
			nanosleep(&ts, NULL);
		}
	}
}

static gboolean
parse_dest(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	g_autofree char *host = NULL;
	const char *colon = strrchr(text, ':');
	guint64 port;

	if (colon == NULL || !g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL))
		return FALSE;
	if (text[0] == '[') {
		host = g_strndup(text + 1, (gsize)(colon - text - 2));
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		memset(ss, 0, sizeof *ss);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((guint16)port);
		*len = sizeof *s6;
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1;
	}
	host = g_strndup(text, (gsize)(colon - text));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof *ss);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((guint16)port);
	*len = sizeof *s4;
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1;
}

static FILE *
pcap_open(const char *path)
{
	FILE *fp = fopen(path, "wb");
	if (fp == NULL)
		return NULL;
	/* pcap global header, host byte order, LINKTYPE_RAW (101): packets start at IPv4 */
	guint32 magic = 0xa1b2c3d4, snap = 65535, lt = 101;
	gint32 zone = 0;
	guint32 sig = 0;
	guint16 maj = 2, min = 4;
	fwrite(&magic, 4, 1, fp);
	fwrite(&maj, 2, 1, fp);
	fwrite(&min, 2, 1, fp);
	fwrite(&zone, 4, 1, fp);
	fwrite(&sig, 4, 1, fp);
	fwrite(&snap, 4, 1, fp);
	fwrite(&lt, 4, 1, fp);
	return fp;
}

static void
pcap_write(FILE *fp, gint64 t_us, guint16 sport, guint16 dport, const guint8 *data, gsize len)
{
	guint8 hdr[28];
	guint32 rec[4] = {(guint32)(t_us / 1000000), (guint32)(t_us % 1000000),
			  (guint32)(len + 28), (guint32)(len + 28)};
	guint8 *p = put8(hdr, 0x45);
	p = put8(p, 0);
	p = put16(p, (guint16)(len + 28));
	p = put32(p, 0);
	p = put8(p, 64);
	p = put8(p, 17);
	p = put16(p, 0);
	p = put32(p, 0x7f000001);
	p = put32(p, 0x7f000001);
	p = put16(p, sport);
	p = put16(p, dport);
	p = put16(p, (guint16)(len + 8));
	put16(p, 0);
	fwrite(rec, sizeof rec, 1, fp);
	fwrite(hdr, sizeof hdr, 1, fp);
	fwrite(data, len, 1, fp);
}

int
main(int argc, char **argv)
{
	Opts o = {.version = 9,
		  .dest = NULL,
		  .records = 1000000,
		  .rate = 0,
		  .per_dgram = 0,
		  .max_bytes = 1400,
		  .exporters = 1,
		  .domains = 1,
		  .template_every = 100,
		  .ipv6 = 0.1,
		  .seed = 1,
		  .bots = 50,
		  .bot_share = 0.02,
		  .mail_share = 0.02,
		  .mtas = 4,
		  .mta_share = 0,
		  .hosts = 20000,
		  .pool = 8192,
		  .batch = 0,
		  .spoof = FALSE,
		  .spoof_port = 25,
		  .sampling = 1000,
		  .header_bytes = 128,
		  .expanded = 0,
		  .counter_every = 20,
		  .agent6 = FALSE};
	g_autofree char *vtext = NULL;
	const GOptionEntry entries[] = {
	    {"version", 'v', 0, G_OPTION_ARG_STRING, &vtext,
	     "5, 9, 10 (or ipfix) or sflow (sFlow v5); default 9", "V"},
	    {"dest", 'd', 0, G_OPTION_ARG_STRING, &o.dest, "Collector a.b.c.d:port or [v6]:port",
	     "ADDR"},
	    {"records", 'n', 0, G_OPTION_ARG_INT64, &o.records,
	     "Records to send (rounded up to whole datagrams); default 1000000", "N"},
	    {"rate", 'r', 0, G_OPTION_ARG_INT64, &o.rate, "Records per second; 0 = unpaced", "R"},
	    {"per-dgram", 0, 0, G_OPTION_ARG_INT, &o.per_dgram,
	     "Records per datagram (default: v5 30, v9/IPFIX fill to --max-bytes)", "N"},
	    {"max-bytes", 0, 0, G_OPTION_ARG_INT, &o.max_bytes,
	     "v9/IPFIX/sFlow datagram size, 1400", "B"},
	    {"exporters", 'e', 0, G_OPTION_ARG_INT, &o.exporters,
	     "Exporters (distinct source ports), default 1", "N"},
	    {"domains", 0, 0, G_OPTION_ARG_INT, &o.domains,
	     "Observation domains (v5 engine ids) per exporter, default 1", "N"},
	    {"template-every", 0, 0, G_OPTION_ARG_INT, &o.template_every,
	     "Resend templates after this many data datagrams per domain, default 100", "N"},
	    {"ipv6", 0, 0, G_OPTION_ARG_DOUBLE, &o.ipv6,
	     "Share of IPv6 records (v9/IPFIX), default 0.1", "F"},
	    {"seed", 0, 0, G_OPTION_ARG_INT64, &o.seed, "Random seed, default 1", "S"},
	    {"bots", 0, 0, G_OPTION_ARG_INT, &o.bots, "Spam bots (internal), default 50", "N"},
	    {"bot-share", 0, 0, G_OPTION_ARG_DOUBLE, &o.bot_share,
	     "Share of records from bots to port 25, default 0.02", "F"},
	    {"mail-share", 0, 0, G_OPTION_ARG_DOUBLE, &o.mail_share,
	     "Share of legitimate mail client records (587/993), default 0.02", "F"},
	    {"mtas", 0, 0, G_OPTION_ARG_INT, &o.mtas,
	     "Unlisted mail servers (internal, 10.201.0.0/16), default 4", "N"},
	    {"mta-share", 0, 0, G_OPTION_ARG_DOUBLE, &o.mta_share,
	     "Share of records from unlisted mail servers delivering to port 25 (steady fan-out "
	     "over 3,000 MX each), default 0",
	     "F"},
	    {"mix", 0, 0, G_OPTION_ARG_STRING, &o.mix,
	     "Record mix: default, or bot-heavy (issue 14: --bots 20 --bot-share 0.6 --mta-share "
	     "0.2 --mail-share 0 --fresh-dst; those options are then set by the mix)",
	     "NAME"},
	    {"hosts", 0, 0, G_OPTION_ARG_INT, &o.hosts, "Internal hosts, default 20000", "N"},
	    {"pool", 0, 0, G_OPTION_ARG_INT, &o.pool,
	     "Distinct prebuilt datagrams cycled through, default 8192", "N"},
	    {"batch", 0, 0, G_OPTION_ARG_INT, &o.batch,
	     "Datagrams per sendmmsg (default: 64 unpaced, ~200 us of traffic paced)", "N"},
	    {"pcap", 0, 0, G_OPTION_ARG_FILENAME, &o.pcap,
	     "Write the datagrams to this pcap file (raw IPv4) instead of sending", "FILE"},
	    {"spoof", 0, 0, G_OPTION_ARG_NONE, &o.spoof,
	     "Spoofed flood: every non-bot record is a delivered port-25 flow (see --spoof-port) "
	     "from a fresh internal source never used before (10.0.0.1 up, fd42::1 up; at most "
	     "13 M); bots (--bots, --bot-share, in 10.200.0.0/16) keep their addresses. "
	     "--mail-share and --hosts are ignored",
	     NULL},
	    {"fresh-dst", 0, 0, G_OPTION_ARG_NONE, &o.fresh_dst,
	     "Bots' destinations: a fresh random address at every send (NetFlow/IPFIX), not the "
	     "datagram pool's, which repeat every --pool datagrams",
	     NULL},
	    {"spoof-port", 0, 0, G_OPTION_ARG_INT, &o.spoof_port,
	     "Destination port of the --spoof records, default 25", "P"},
	    {"sampling", 0, 0, G_OPTION_ARG_INT, &o.sampling,
	     "sFlow: sampling rate 1-in-N on access ports (uplinks: 4N), default 1000", "N"},
	    {"header-bytes", 0, 0, G_OPTION_ARG_INT, &o.header_bytes,
	     "sFlow: raw packet header bytes at most, default 128", "B"},
	    {"expanded", 0, 0, G_OPTION_ARG_DOUBLE, &o.expanded,
	     "sFlow: share of flow samples in the expanded format, default 0", "F"},
	    {"counter-every", 0, 0, G_OPTION_ARG_INT, &o.counter_every,
	     "sFlow: a counter sample in every N-th datagram (0: none), default 20", "N"},
	    {"agent6", 0, 0, G_OPTION_ARG_NONE, &o.agent6,
	     "sFlow: IPv6 agent addresses (fd00:5f::N) instead of 10.255.0.N", NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- NetFlow/IPFIX/sFlow load generator");
	g_autoptr(GError) err = NULL;
	struct sockaddr_storage dst;
	socklen_t dstlen = 0;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
		g_printerr("flowgen: %s\n", err->message);
		return 2;
	}
	if (vtext != NULL) {
		if (g_ascii_strcasecmp(vtext, "sflow") == 0 || g_ascii_strcasecmp(vtext, "sflow5") == 0)
			o.version = V_SFLOW;
		else if (g_ascii_strcasecmp(vtext, "ipfix") == 0)
			o.version = 10;
		else
			o.version = (gint)g_ascii_strtoll(vtext, NULL, 10);
	}
	if (o.version != 5 && o.version != 9 && o.version != 10 && o.version != V_SFLOW) {
		g_printerr("flowgen: --version must be 5, 9, 10 (ipfix) or sflow\n");
		return 2;
	}
	if (o.version == V_SFLOW &&
	    (o.spoof || o.sampling < 1 || o.header_bytes < 14 || o.header_bytes > SF_MAX_HDR ||
	     o.expanded < 0 || o.expanded > 1 || o.counter_every < 0)) {
		g_printerr("flowgen: sflow: --sampling >= 1, --header-bytes 14-%d, --expanded 0-1, "
			   "--counter-every >= 0, no --spoof\n", SF_MAX_HDR);
		return 2;
	}
	if (o.dest == NULL && o.pcap == NULL) {
		g_printerr("flowgen: --dest ADDR:PORT or --pcap FILE is needed\n");
		return 2;
	}
	if (o.dest != NULL && !parse_dest(o.dest, &dst, &dstlen)) {
		g_printerr("flowgen: --dest '%s': expected a.b.c.d:port or [v6]:port\n", o.dest);
		return 2;
	}
	if (o.mix != NULL && g_str_equal(o.mix, "bot-heavy")) {
		/* issue 14's "cost under attack": internal hosts sending short port-25 flows to
		 * many distinct random destinations, plus unlisted MTAs with a steady fan-out */
		o.bots = 20;
		o.bot_share = 0.6;
		o.mta_share = 0.2;
		o.mail_share = 0;
		o.fresh_dst = TRUE;
	} else if (o.mix != NULL && !g_str_equal(o.mix, "default")) {
		g_printerr("flowgen: --mix: default or bot-heavy\n");
		return 2;
	}
	if (o.exporters < 1 || o.domains < 1 || o.pool < MAX_BATCH * 2 || o.hosts < 1 ||
	    o.records < 1 || o.rate < 0 || o.template_every < 1 || o.batch < 0 ||
	    o.batch > MAX_BATCH || (o.version == 5 && o.per_dgram > 30) || o.per_dgram > 150 ||
	    o.max_bytes < 200 || o.max_bytes > MAX_DGRAM - 200 || o.spoof_port < 0 ||
	    o.spoof_port > 65535 || o.bots > 65536 || o.mtas < 0 || o.mtas > 65536 ||
	    o.bot_share + o.mta_share + o.mail_share > 1) {
		g_printerr("flowgen: an option is out of range (see --help)\n");
		return 2;
	}
	if (o.version == 5)
		o.ipv6 = 0;
	/* every spoofed record needs its own address; the last datagram may go 150 over */
	if (o.spoof && o.records + 150 >= (gint64)SPOOF_MAX) {
		g_printerr("flowgen: --spoof: at most %u records\n", SPOOF_MAX - 151);
		return 2;
	}

	guint64 seed = (guint64)o.seed;
	for (guint i = 0; i < 4; i++)
		rng_s[i] = splitmix(&seed);

	/* clocks: a sysUptime that started an hour ago; real time for export times */
	gint64 real0_ms = g_get_real_time() / 1000;
	gint64 boot_ms = real0_ms - 3600 * 1000;
	Dgram *pool = g_new0(Dgram, o.pool);
	guint64 pool_recs = 0;
	for (gint i = 0; i < o.pool; i++) {
		build_dgram(&o, &pool[i], (guint)i, (guint32)(real0_ms - boot_ms), real0_ms);
		pool_recs += pool[i].nrec;
	}
	double rpd = (double)pool_recs / o.pool;

	/* template datagrams, one buffer per batch slot */
	guint8 tplbody[512];
	gsize tpl_set_len =
	    o.version == 5 || o.version == V_SFLOW ? 0 : put_templates(tplbody, o.version);
	guint8 *tplbuf = g_malloc0((gsize)MAX_BATCH * 600);

	int *fds = g_new0(int, o.exporters);
	guint16 *sports = g_new0(guint16, o.exporters);
	FILE *pcap = NULL;
	guint16 dport = o.version == V_SFLOW ? 6343 : 2055;
	if (o.pcap != NULL) {
		pcap = pcap_open(o.pcap);
		if (pcap == NULL) {
			g_printerr("flowgen: %s: %s\n", o.pcap, g_strerror(errno));
			return 1;
		}
		if (o.dest != NULL)
			dport = ntohs(((struct sockaddr_in *)&dst)->sin_port);
		for (gint e = 0; e < o.exporters; e++)
			sports[e] = (guint16)(40000 + e);
	} else {
		for (gint e = 0; e < o.exporters; e++) {
			struct sockaddr_storage me;
			socklen_t mel = sizeof me;
			int sndbuf = 4 << 20;
			fds[e] = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (fds[e] < 0 || connect(fds[e], (struct sockaddr *)&dst, dstlen) != 0) {
				g_printerr("flowgen: socket/connect %s: %s\n", o.dest,
					   g_strerror(errno));
				return 1;
			}
			(void)setsockopt(fds[e], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
			getsockname(fds[e], (struct sockaddr *)&me, &mel);
			sports[e] = ntohs(((struct sockaddr_in *)&me)->sin_port);
		}
	}
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	DomState *dom = g_new0(DomState, (gsize)o.exporters * o.domains);
	SfSource *sfsrc = o.version == V_SFLOW
			      ? g_new0(SfSource, (gsize)o.exporters * o.domains * (SF_PORTS + 1))
			      : NULL;
	guint64 *edg = g_new0(guint64, o.exporters); /* data datagrams per exporter */
	guint batch = (guint)o.batch;
	if (batch == 0) {
		batch = MAX_BATCH;
		if (o.rate > 0 && o.pcap == NULL)
			batch = (guint)CLAMP((double)o.rate / rpd * 200e-6, 1, MAX_BATCH);
	}

	struct mmsghdr msgs[MAX_BATCH * 2];
	struct iovec iov[MAX_BATCH * 2];
	guint64 sent_recs = 0, sent_dgrams = 0, tpl_dgrams = 0, bytes = 0, send_errors = 0;
	guint64 bot_recs = 0, pkts = 0, counter_samples = 0;
	guint32 spoofed = 0; /* fresh sources handed out (--spoof) */
	guint64 pool_i = 0, batch_no = 0;
	gint64 t0 = now_ns();

	while (sent_recs < (guint64)o.records) {
		guint e = (guint)(batch_no++ % (guint64)o.exporters);
		gint64 now_real = real0_ms + (now_ns() - t0) / 1000000;
		if (o.pcap != NULL) /* simulated time: the asked rate, or 1 M records/s */
			now_real = real0_ms + (gint64)((double)sent_recs * 1000.0 /
						       (double)(o.rate > 0 ? o.rate : 1000000));
		guint32 uptime = (guint32)(now_real - boot_ms);
		guint nm = 0, brecs = 0;

		if (o.rate > 0 && o.pcap == NULL)
			wait_until(t0 + (gint64)((double)sent_recs * 1e9 / (double)o.rate));
		for (guint i = 0; i < batch && sent_recs + brecs < (guint64)o.records; i++) {
			guint32 d = (guint32)(edg[e] % (guint64)o.domains);
			DomState *ds = &dom[(gsize)e * o.domains + d];
			/* domain ids unique over all exporters: nfcapd keys sessions by
			 * address and domain, not port, and loopback exporters share 127.0.0.1 */
			guint32 dom_id = e * (guint32)o.domains + d;
			if (o.version != 5 && o.version != V_SFLOW && (!ds->tpl_sent || ds->since_tpl >= (guint32)o.template_every)) {
				guint8 *tb = tplbuf + (gsize)i * 600;
				gsize hl = hdr_len(o.version);
				memcpy(tb + hl, tplbody, tpl_set_len);
				patch_header(&o, tb, hl + tpl_set_len, 2, ds->seq, dom_id, uptime, now_real);
				iov[nm].iov_base = tb;
				iov[nm].iov_len = hl + tpl_set_len;
				nm++;
				tpl_dgrams++;
				if (o.version == 9)
					ds->seq++; /* RFC 3954 5.1: every export packet counts */
				ds->tpl_sent = TRUE;
				ds->since_tpl = 0;
			}
			Dgram *dg = &pool[pool_i++ % (guint64)o.pool];
			/* in one batch once at most (pool >= 2 batches): patch it in place */
			for (guint s = 0; s < dg->nspoof; s++) {
				guint8 k = dg->spoof_v6[s], *rec = dg->buf + dg->spoof_off[s];
				if (k & PATCH_DST) {
					/* the destination follows the source */
					guint8 a[16];
					gsize alen = (k & PATCH_V6) ? 16 : 4;
					external_addr((guint32)rng(), (k & PATCH_V6) != 0, a);
					memcpy(rec + alen, a, alen);
				} else {
					spoof_addr(rec, (k & PATCH_V6) != 0, ++spoofed);
				}
			}
			bot_recs += dg->nbot;
			pkts += dg->pkts;
			if (o.version == V_SFLOW) {
				/* the agent is the exporter, the sub-agent its domain */
				sf_patch(&o, dg, e, d, ds->seq, uptime,
					 sfsrc + ((gsize)e * o.domains + d) * (SF_PORTS + 1));
				counter_samples += dg->nsamp - dg->nrec;
			} else {
				patch_header(&o, dg->buf, dg->len, dg->nrec, ds->seq, dom_id, uptime,
					     now_real);
			}
			iov[nm].iov_base = dg->buf;
			iov[nm].iov_len = dg->len;
			nm++;
			/* v5 and IPFIX (RFC 7011 3.1) count records; v9 and sFlow datagrams */
			ds->seq += o.version == 9 || o.version == V_SFLOW ? 1 : dg->nrec;
			ds->since_tpl++;
			edg[e]++;
			brecs += dg->nrec;
		}
		if (pcap != NULL) {
			for (guint i = 0; i < nm; i++) {
				pcap_write(pcap, now_real * 1000, sports[e], dport, iov[i].iov_base,
					   iov[i].iov_len);
				bytes += iov[i].iov_len;
			}
			sent_dgrams += nm;
			sent_recs += brecs;
			continue;
		}
		for (guint i = 0; i < nm; i++) {
			memset(&msgs[i], 0, sizeof msgs[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		guint done = 0;
		while (done < nm) {
			int r = sendmmsg(fds[e], msgs + done, nm - done, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/* ENOBUFS/ECONNREFUSED: the datagram is gone; count it */
				send_errors++;
				done++;
				continue;
			}
			for (int i = 0; i < r; i++)
				bytes += msgs[done + i].msg_len;
			done += (guint)r;
		}
		sent_dgrams += nm;
		sent_recs += brecs;
	}
	double elapsed = (double)(now_ns() - t0) / 1e9;
	if (pcap != NULL)
		fclose(pcap);
	double achieved = elapsed > 0 ? (double)sent_recs / elapsed : 0;
	/* generator-bound: paced, and more than 2 % short of the asked rate */
	gboolean gen_bound = o.pcap == NULL && (o.rate == 0 || achieved < 0.98 * (double)o.rate);
	g_autofree char *vjson = o.version == V_SFLOW ? g_strdup("\"sflow\"")
						     : g_strdup_printf("%d", o.version);
	printf("{\"version\": %s, \"records\": %" G_GUINT64_FORMAT
	       ", \"datagrams\": %" G_GUINT64_FORMAT ", \"template_datagrams\": %" G_GUINT64_FORMAT
	       ", \"bytes\": %" G_GUINT64_FORMAT ", \"send_errors\": %" G_GUINT64_FORMAT
	       ", \"records_per_datagram\": %.2f, \"elapsed_s\": %.4f, \"asked_rate\": %" G_GINT64_FORMAT
	       ", \"achieved_rate\": %.0f, \"generator_bound\": %s, \"exporters\": %d, "
	       "\"domains\": %d, \"bot_records\": %" G_GUINT64_FORMAT ", \"spoofed\": %u, "
	       "\"packets\": %" G_GUINT64_FORMAT ", \"counter_samples\": %" G_GUINT64_FORMAT "}\n",
	       vjson, sent_recs, sent_dgrams, tpl_dgrams, bytes, send_errors, rpd, elapsed,
	       o.rate, achieved, gen_bound ? "true" : "false", o.exporters, o.domains, bot_recs,
	       spoofed, pkts, counter_samples);
	for (gint i = 0; i < o.pool; i++) {
		g_free(pool[i].buf);
		g_free(pool[i].spoof_off);
		g_free(pool[i].spoof_v6);
		g_free(pool[i].samp);
	}
	g_free(pool);
	g_free(tplbuf);
	for (gint e = 0; e < o.exporters && o.pcap == NULL; e++)
		close(fds[e]);
	g_free(fds);
	g_free(sports);
	g_free(dom);
	g_free(sfsrc);
	g_free(edg);
	g_free(o.dest);
	g_free(o.pcap);
	return send_errors > 0 && sent_dgrams == send_errors ? 1 : 0;
}
