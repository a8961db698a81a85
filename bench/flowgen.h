/* flowgen.h: what bench/flowgen.c (options, the synthetic traffic, NetFlow v5/v9/IPFIX
 * encoding, pacing and sending) and bench/flowgen_sflow.c (sFlow v5 datagrams) share: the
 * options, the generated flow and the prebuilt datagram, the seeded generator (one state for
 * both files, so a seed gives the same traffic) and the big-endian writers. Private to the
 * flowgen programs (bench/flowgen, tests/system flood-flowgen). */
#pragma once

#include <glib.h>

#include <string.h>

#define MAX_DGRAM 9000 /* a prebuilt datagram's buffer */
#define V_SFLOW 105 /* --version sflow: sFlow v5 */

typedef struct {
	gint version;
	char *dest;
	gint64 records;
	gint64 rate; /* records/s; 0 = unpaced */
	gint per_dgram;
	gint max_bytes;
	gint exporters;
	gint domains;
	gint template_every; /* data datagrams per (exporter, domain) between templates */
	double ipv6;
	gint64 seed;
	gint bots;
	double bot_share;
	double mail_share;
	gint mtas;	   /* unlisted mail servers with a steady fan-out (--mta-share) */
	double mta_share;
	char *mix;	   /* NULL or "default", or "bot-heavy" (main() applies it) */
	gint hosts;
	gint pool;
	gint batch;
	char *pcap;
	gboolean spoof;
	gint spoof_port;
	gboolean fresh_dst; /* bots: a fresh random destination at every send */
	/* sFlow */
	gint sampling;	    /* 1-in-N on access ports; uplinks sample 1 in 4N */
	gint header_bytes;  /* raw packet header cap, 128 as switches default to */
	double expanded;    /* share of flow samples in the expanded format (3) */
	gint counter_every; /* a counter sample in every N-th datagram; 0 = none */
	gboolean agent6;    /* IPv6 agent addresses */
} Opts;

/* sFlow: what the sender patches in a prebuilt datagram's samples */
typedef struct {
	guint16 off;	  /* the sample's sequence_number */
	guint16 pool_off; /* its sample_pool; 0 for a counter sample */
	guint8 port;	  /* source ifIndex */
	guint32 rate;	  /* sampling rate (flow samples) */
} SfSample;

/* One prebuilt datagram: header fields are patched at send time. */
typedef struct {
	guint8 *buf;
	guint16 len;
	guint16 nrec;
	guint16 nbot;	    /* records from a bot */
	guint32 pkts;	    /* the records' packet counts, summed (a loss check for collectors
			     * that only report aggregates, such as nfacctd) */
	guint16 nspoof;	    /* records patched at each send: --spoof sources, --fresh-dst bots */
	guint16 *spoof_off; /* their source address offsets in buf */
	guint8 *spoof_v6;   /* PATCH_V6 (IPv6) | PATCH_DST (the destination is rewritten) */
	guint16 nsamp;	    /* sFlow: samples, flow and counter */
	SfSample *samp;
} Dgram;

/* ---- seeded randomness (xoshiro256**): seeded in main(), drawn from by both files ---- */

extern guint64 rng_s[4];

static inline guint64
rng(void)
{
	guint64 r = ((rng_s[1] * 5) << 7 | (rng_s[1] * 5) >> 57) * 9;
	guint64 t = rng_s[1] << 17;
	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = (rng_s[3] << 45) | (rng_s[3] >> 19);
	return r;
}

static inline guint32
rng_below(guint32 n)
{
	return (guint32)(((rng() >> 32) * n) >> 32);
}

static inline double
rng_unit(void)
{
	return (double)(rng() >> 11) / (double)(1ULL << 53);
}

/* ---- big-endian writers ---- */

static inline guint8 *
put8(guint8 *p, guint8 v)
{
	*p = v;
	return p + 1;
}

static inline guint8 *
put16(guint8 *p, guint16 v)
{
	p[0] = (guint8)(v >> 8);
	p[1] = (guint8)v;
	return p + 2;
}

static inline guint8 *
put32(guint8 *p, guint32 v)
{
	p = put16(p, (guint16)(v >> 16));
	return put16(p, (guint16)v);
}

static inline guint8 *
put64(guint8 *p, guint64 v)
{
	p = put32(p, (guint32)(v >> 32));
	return put32(p, (guint32)v);
}

static inline guint8 *
putn(guint8 *p, const guint8 *src, gsize n)
{
	memcpy(p, src, n);
	return p + n;
}

/* ---- the synthetic traffic (flowgen.c) ---- */

typedef struct {
	gboolean v6;
	guint8 src[16], dst[16]; /* v4 in the first 4 bytes */
	guint16 sport, dport;
	guint8 proto, flags, tos;
	guint32 packets;
	guint64 bytes;
	guint32 in_if, out_if;
	guint32 age_ms, dur_ms; /* end = generation time - age; start = end - dur */
	gboolean bot;
	gboolean spoof; /* source rewritten at send time (--spoof) */
	gboolean fresh_dst; /* destination rewritten at send time (--fresh-dst) */
} GenFlow;
#define PATCH_V6 1
#define PATCH_DST 2

void gen_flow(const Opts *o, GenFlow *f, gboolean allow_v6);

/* ---- sFlow v5 (flowgen_sflow.c) ---- */

/* ifIndex 1-48: access ports, 49-52: uplinks (SF_UPLINK in flowgen_sflow.c) */
#define SF_PORTS 52
#define SF_MAX_HDR 256 /* the largest raw packet header (--header-bytes) */

/* Per (agent, sub-agent, source ifIndex): sample sequence numbers and the sample pool.
 * main() allocates SF_PORTS + 1 per (exporter, domain), indexed by ifIndex. */
typedef struct {
	guint32 flow_seq, counter_seq, pool;
} SfSource;

void sf_build(const Opts *o, Dgram *d, guint8 *buf, guint counter_port);
void sf_patch(const Opts *o, Dgram *d, guint exporter, guint32 sub_agent, guint32 seq,
	      guint32 uptime, SfSource *src);
