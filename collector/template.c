/* Template engine for NetFlow v9 and IPFIX. A template is parsed once into a plan: for each
 * field spamflow uses, its kind, length and (for fixed-length templates) its offset in the
 * record. Decoding a record then reads only planned fields, without walking the field list;
 * templates with variable-length fields (RFC 7011 7) walk the lengths once per record. */
#include "template.h"
#include "statebuf.h"

#include <stddef.h>
#include <string.h>

/* What a planned field means. Several kinds can feed one flow field; compile_plan() applies
 * the precedence (e.g. packetDeltaCount over packetTotalCount over initiatorPackets). */
typedef enum {
	FK_SRC4,
	FK_DST4,
	FK_SRC6,
	FK_DST6,
	FK_SPORT,
	FK_DPORT,
	FK_PROTO,
	FK_TCPFLAGS,
	FK_PKTS,       /* 2 packetDeltaCount */
	FK_PKTS_TOTAL, /* 86 */
	FK_PKTS_INIT,  /* 298 initiatorPackets (NSEL) */
	FK_BYTES,      /* 1 octetDeltaCount */
	FK_BYTES_TOTAL,
	FK_BYTES_INIT,  /* 231 initiatorOctets */
	FK_REV_PKTS,    /* RFC 5103 reverse 2/86, or 299 responderPackets */
	FK_REV_BYTES,   /* RFC 5103 reverse 1/85, or 232 responderOctets */
	FK_FIRST_UPTIME, /* 22 flowStartSysUpTime / FIRST_SWITCHED, ms */
	FK_LAST_UPTIME,  /* 21 flowEndSysUpTime / LAST_SWITCHED */
	FK_START_S,
	FK_END_S,
	FK_START_MS,
	FK_END_MS,
	FK_START_NTP, /* 154/156 micro/nanoseconds, NTP timestamp format */
	FK_END_NTP,
	FK_START_DELTA_US, /* 158/159 relative to export time */
	FK_END_DELTA_US,
	FK_SYSINIT_MS, /* 160 */
	FK_EVENT_MS,   /* 323 observationTimeMilliseconds / NSEL event time */
	FK_SAMPLING,   /* 34 samplingInterval */
	FK_SAMPLER_ID, /* 48 samplerId, 302 selectorId */
	FK_SAMPLER_RANDOM, /* 50 samplerRandomInterval */
	FK_PKT_INTERVAL,   /* 305 samplingPacketInterval */
	FK_PKT_SPACE,      /* 306 samplingPacketSpace */
	FK_FW_EVENT,       /* 233 firewallEvent, NSEL 40005 */
	FK_DIRECTION,      /* 61 flowDirection */
	FK_NAT_SRC4,
	FK_NAT_DST4,
	FK_NAT_SPORT,
	FK_NAT_DPORT,
	FK_NAT_SRC6,
	FK_NAT_DST6,
	FK_OUT_BYTES,  /* 23 OUT_BYTES / postOctetDeltaCount: egress-only exporters */
	FK_OUT_PKTS,   /* 24 OUT_PKTS / postPacketDeltaCount */
	FK_IPVERSION,  /* 60 ipVersion: which family a dual-stack template's record holds */
	FK_N
} FieldKind;

G_STATIC_ASSERT(FK_N <= 64);

#define VARLEN 65535
#define MAX_PLAN 48
#define PEN_REVERSE 29305 /* RFC 5103 reverse information elements */

typedef struct {
	guint16 off; /* offset in the record (fixed-length templates) */
	guint16 len;
	guint16 idx; /* field index (variable-length templates) */
	guint8 kind;
} PlanItem;

/* A data template's plan compiled into length-specialised steps (compile_plan()): each one
 * reads one field with a fixed-size load and stores it straight into the Flow (addresses,
 * ports, protocol, flags, counters) or, for the kinds that need the whole record (times,
 * sampling), into the Values array. Which kinds are present is a property of the template,
 * so the precedence between kinds (packetDeltaCount over packetTotalCount, ...) and the
 * record's `has` bits are settled once, here, not per record. */
typedef enum {
	OP_ADDR4,  /* 4 bytes -> IPv4-mapped address at Flow+dst (the Flow starts zeroed) */
	OP_ADDR6,  /* 16 bytes -> address at Flow+dst */
	OP_F8,     /* 1 byte -> guint8 at Flow+dst */
	OP_F16,    /* 2 bytes -> guint16 at Flow+dst */
	OP_F64_1,  /* 1/2/4/8-byte counter -> guint64 at Flow+dst */
	OP_F64_2,
	OP_F64_4,
	OP_F64_8,
	OP_F64_N,  /* reduced-length counter of 3, 5, 6 or 7 bytes (RFC 7011 6.2) */
	OP_V_1,    /* 1/2/4/8 bytes -> Values.v[dst] */
	OP_V_2,
	OP_V_4,
	OP_V_8,
	OP_V_N,
} OpCode;

typedef struct {
	guint16 off;  /* offset in the record (fixed-length templates), adj included */
	guint8 code;  /* OpCode */
	guint8 len;   /* field length (OP_F64_N, OP_V_N) */
	guint8 adj;   /* bytes to skip inside the field (2-byte tcpControlBits: the low byte) */
	guint8 pidx;  /* plan index: offs[] slot for variable-length templates */
	guint16 dst;  /* byte offset in Flow, or the kind in Values */
} Op;

/* The commonest fields of fixed-length data templates skip the Op loop: a template bit says
 * the field is there and fo[] where; the record is then decoded by straight-line code whose
 * branches depend only on the template. */
enum { FS_SRC, FS_DST, FS_SPORT, FS_DPORT, FS_PROTO, FS_FLAGS, FS_PKTS, FS_BYTES, FS_T0, FS_T1, FS_N };
enum {
	FAST_SRC4 = 1u << 0,
	FAST_SRC6 = 1u << 1,
	FAST_DST4 = 1u << 2,
	FAST_DST6 = 1u << 3,
	FAST_SPORT = 1u << 4,
	FAST_DPORT = 1u << 5,
	FAST_PROTO = 1u << 6,
	FAST_FLAGS = 1u << 7,
	FAST_PKTS4 = 1u << 8,
	FAST_PKTS8 = 1u << 9,
	FAST_BYTES4 = 1u << 10,
	FAST_BYTES8 = 1u << 11,
};
/* Start/end time forms read directly (fixed-length templates whose only time fields are
 * these two); anything else goes through Values and finish_times(). */
typedef enum {
	TM_GENERIC = 0,
	TM_UPTIME_V9, /* v9 FIRST_SWITCHED/LAST_SWITCHED (22/21), 4 bytes each */
	TM_MS,        /* flowStartMilliseconds/flowEndMilliseconds (152/153) */
} TimeMode;

struct Template {
	guint16 id;
	guint16 nfields;
	gboolean options;
	gboolean varlen;
	guint32 min_len; /* fixed-length record size, or the minimum with 1 byte per varlen */
	guint16 *flen;   /* field lengths, only kept for variable-length templates */
	guint nplan;
	PlanItem plan[MAX_PLAN];
	/* compiled plan (data templates) */
	guint32 fast;         /* FAST_* bits: fields read by straight-line code (fixed-length) */
	guint8 tmode;         /* TimeMode */
	guint16 fo[FS_N];     /* record offsets of the fast fields */
	guint nops;
	guint64 vmask;    /* kinds read into Values (times, sampling) */
	guint16 flow_has; /* FLOW_HAS_* every record of this template sets */
	/* Dual-stack templates (IPv4 and IPv6 address fields in one template, the unused
	 * family zero-filled): each record's family is settled by dual_family(), from the
	 * plan index of each address kind (DA_*, -1 when absent) and of ipVersion. */
	gint8 dual_pi[8];
	gint8 ipver_pi;
	/* EG_*: OUT_PKTS/OUT_BYTES stand in when the ingress counter reads 0; EX_DUAL: the
	 * dual-stack rule. One byte, so records of other templates pay one test for both. */
	guint8 extra;
	Op ops[MAX_PLAN];
	gint64 refreshed_ms;
	/* The record as received (from its template ID on) and what it was read under, kept
	 * so a restart can install it again without waiting for the exporter to resend it. */
	guint8 *raw;
	guint16 raw_len;
	guint16 set_id;
	guint8 version;
	guint32 cost;	/* bytes counted in *acct while installed */
	guint64 *acct;	/* CollectorTotals.template_bytes */
};

void
template_free(Template *t)
{
	if (t == NULL)
		return;
	if (t->acct != NULL)
		*t->acct -= MIN(*t->acct, t->cost);
	g_free(t->flen);
	g_free(t->raw);
	g_free(t);
}

/* Map an information element to the kind spamflow uses, checking its length. Returns -1 for
 * fields we skip. Reduced-length encoding (RFC 7011 6.2) is accepted for counters. */
static int
field_kind(guint8 version, guint32 pen, guint16 ie, guint16 len)
{
	gboolean counter = len >= 1 && len <= 8;

	if (pen == PEN_REVERSE) {
		if ((ie == 1 || ie == 85) && counter)
			return FK_REV_BYTES;
		if ((ie == 2 || ie == 86) && counter)
			return FK_REV_PKTS;
		return -1;
	}
	if (pen != 0)
		return -1;
	switch (ie) {
	case 1:
		return counter ? FK_BYTES : -1;
	case 2:
		return counter ? FK_PKTS : -1;
	case 4:
		return len == 1 ? FK_PROTO : -1;
	case 6: /* v9: 1 byte; IPFIX tcpControlBits: 2 bytes (RFC 7125), 1 when reduced */
		return len == 1 || len == 2 ? FK_TCPFLAGS : -1;
	case 7:
		return len == 2 ? FK_SPORT : -1;
	case 8:
		return len == 4 ? FK_SRC4 : -1;
	case 11:
		return len == 2 ? FK_DPORT : -1;
	case 12:
		return len == 4 ? FK_DST4 : -1;
	case 21:
		return len == 4 ? FK_LAST_UPTIME : -1;
	case 23:
		return counter ? FK_OUT_BYTES : -1;
	case 24:
		return counter ? FK_OUT_PKTS : -1;
	case 22:
		return len == 4 ? FK_FIRST_UPTIME : -1;
	case 27:
		return len == 16 ? FK_SRC6 : -1;
	case 28:
		return len == 16 ? FK_DST6 : -1;
	case 34:
		return len >= 1 && len <= 4 ? FK_SAMPLING : -1;
	case 48:
	case 302:
		return counter ? FK_SAMPLER_ID : -1;
	case 50:
		return len >= 1 && len <= 4 ? FK_SAMPLER_RANDOM : -1;
	case 60:
		return len == 1 ? FK_IPVERSION : -1;
	case 61:
		return len == 1 ? FK_DIRECTION : -1;
	case 85:
		return counter ? FK_BYTES_TOTAL : -1;
	case 86:
		return counter ? FK_PKTS_TOTAL : -1;
	case 150:
		return len == 4 ? FK_START_S : -1;
	case 151:
		return len == 4 ? FK_END_S : -1;
	case 152:
		return len == 8 ? FK_START_MS : -1;
	case 153:
		return len == 8 ? FK_END_MS : -1;
	case 154:
	case 156:
		return len == 8 ? FK_START_NTP : -1;
	case 155:
	case 157:
		return len == 8 ? FK_END_NTP : -1;
	case 158:
		return len == 4 ? FK_START_DELTA_US : -1;
	case 159:
		return len == 4 ? FK_END_DELTA_US : -1;
	case 160:
		return len == 8 ? FK_SYSINIT_MS : -1;
	case 225:
		return len == 4 ? FK_NAT_SRC4 : -1;
	case 226:
		return len == 4 ? FK_NAT_DST4 : -1;
	case 227:
		return len == 2 ? FK_NAT_SPORT : -1;
	case 228:
		return len == 2 ? FK_NAT_DPORT : -1;
	case 231:
		return counter ? FK_BYTES_INIT : -1;
	case 232:
		return counter ? FK_REV_BYTES : -1;
	case 233:
		return len == 1 ? FK_FW_EVENT : -1;
	case 281:
		return len == 16 ? FK_NAT_SRC6 : -1;
	case 282:
		return len == 16 ? FK_NAT_DST6 : -1;
	case 298:
		return counter ? FK_PKTS_INIT : -1;
	case 299:
		return counter ? FK_REV_PKTS : -1;
	case 305:
		return len >= 1 && len <= 4 ? FK_PKT_INTERVAL : -1;
	case 306:
		return len >= 1 && len <= 4 ? FK_PKT_SPACE : -1;
	case 323:
		return len == 8 ? FK_EVENT_MS : -1;
	case 40005: /* Cisco NSEL NF_F_FW_EVENT; only a plain ID in v9 (IPFIX: enterprise bit) */
		return version == 9 && len == 1 ? FK_FW_EVENT : -1;
	default:
		return -1;
	}
}

/* Parse the field specifiers of one template record into t. n fields, the first `scope`
 * of them scope fields (v9 scope types are not information elements, so they are only
 * measured). Returns FALSE when the record is truncated or cannot describe a record. */
static gboolean
parse_fields(DecodeCtx *ctx, Cursor *c, Template *t, guint n, guint scope)
{
	g_autofree guint16 *flen = g_new(guint16, n);
	guint64 seen = 0;
	guint32 off = 0;

	for (guint i = 0; i < n; i++) {
		guint16 ie, len;
		guint32 pen = 0;
		if (!cursor_u16(c, &ie) || !cursor_u16(c, &len))
			return FALSE;
		if (ctx->version == 10 && (ie & 0x8000)) {
			/* RFC 7011 3.2: enterprise bit, a 4-byte PEN follows */
			if (!cursor_u32(c, &pen))
				return FALSE;
			ie &= 0x7fff;
		}
		flen[i] = len;
		/* RFC 7011 7: 65535 means variable length. RFC 3954 has no such length, but
		 * exporters (H3C NetStream's VRF name, IE 236) send it in v9 with IPFIX's
		 * encoding, and a 65535-byte fixed field could never fit a datagram anyway. */
		if (len == VARLEN) {
			t->varlen = TRUE;
			t->min_len += 1;
		} else {
			t->min_len += len;
		}
		if (t->min_len > 65535)
			return FALSE;
		/* v9 scope types (system, interface, ...) are not information elements */
		gboolean v9_scope = ctx->version == 9 && i < scope;
		int k = len == VARLEN || v9_scope ? -1 : field_kind(ctx->version, pen, ie, len);
		/* The first occurrence of a kind wins; duplicates are skipped. */
		if (k < 0 || (seen & (G_GUINT64_CONSTANT(1) << k)) || t->nplan == MAX_PLAN) {
			if (!t->varlen)
				off += len;
			continue;
		}
		seen |= G_GUINT64_CONSTANT(1) << k;
		t->plan[t->nplan++] = (PlanItem){
		    .off = t->varlen ? 0 : (guint16)off, .len = len, .idx = (guint16)i, .kind = (guint8)k};
		if (!t->varlen)
			off += len;
	}
	if (t->min_len == 0)
		return FALSE;
	t->nfields = (guint16)n;
	if (t->varlen)
		t->flen = g_steal_pointer(&flen);
	return TRUE;
}

#define KBIT(k) (G_GUINT64_CONSTANT(1) << (k))
#define TIME_KINDS                                                                            \
	(KBIT(FK_FIRST_UPTIME) | KBIT(FK_LAST_UPTIME) | KBIT(FK_START_S) | KBIT(FK_END_S) |     \
	 KBIT(FK_START_MS) | KBIT(FK_END_MS) | KBIT(FK_START_NTP) | KBIT(FK_END_NTP) |           \
	 KBIT(FK_START_DELTA_US) | KBIT(FK_END_DELTA_US) | KBIT(FK_SYSINIT_MS) | KBIT(FK_EVENT_MS))
#define SAMPLING_KINDS                                                                        \
	(KBIT(FK_SAMPLING) | KBIT(FK_SAMPLER_ID) | KBIT(FK_SAMPLER_RANDOM) |                    \
	 KBIT(FK_PKT_INTERVAL) | KBIT(FK_PKT_SPACE))
#define NAT_ADDR_KINDS \
	(KBIT(FK_NAT_SRC4) | KBIT(FK_NAT_DST4) | KBIT(FK_NAT_SRC6) | KBIT(FK_NAT_DST6))
#define ADDR_KINDS                                                                            \
	(KBIT(FK_SRC4) | KBIT(FK_DST4) | KBIT(FK_SRC6) | KBIT(FK_DST6) | NAT_ADDR_KINDS)
#define PKTS_KINDS (KBIT(FK_PKTS) | KBIT(FK_PKTS_TOTAL) | KBIT(FK_PKTS_INIT))
#define BYTES_KINDS (KBIT(FK_BYTES) | KBIT(FK_BYTES_TOTAL) | KBIT(FK_BYTES_INIT))

/* dual_pi[] slots, in FieldKind order of the address kinds */
enum { DA_SRC4, DA_DST4, DA_SRC6, DA_DST6, DA_NAT_SRC4, DA_NAT_DST4, DA_NAT_SRC6, DA_NAT_DST6 };
enum { EG_PKTS = 1, EG_BYTES = 2, EX_DUAL = 4 };

static int
dual_slot(guint kind)
{
	switch (kind) {
	case FK_SRC4:
		return DA_SRC4;
	case FK_DST4:
		return DA_DST4;
	case FK_SRC6:
		return DA_SRC6;
	case FK_DST6:
		return DA_DST6;
	case FK_NAT_SRC4:
		return DA_NAT_SRC4;
	case FK_NAT_DST4:
		return DA_NAT_DST4;
	case FK_NAT_SRC6:
		return DA_NAT_SRC6;
	case FK_NAT_DST6:
		return DA_NAT_DST6;
	default:
		return -1;
	}
}

static guint8
counter_op(guint16 len, guint8 base)
{
	/* base is OP_F64_1 or OP_V_1; the four fixed lengths follow it, then _N */
	switch (len) {
	case 1:
		return base;
	case 2:
		return base + 1;
	case 4:
		return base + 2;
	case 8:
		return base + 3;
	default:
		return base + 4;
	}
}

/* Compile a data template's plan into Ops (see Op). The first occurrence of a kind is
 * already the only one planned; here a kind that a higher-precedence kind overrides for
 * the same Flow field is dropped, and NAT ports are dropped when
 * no NAT address is present (the flow then has no NAT).
 *
 * Counter precedence: packets from 2 packetDeltaCount, else 86 packetTotalCount, else 298
 * initiatorPackets, else 24 OUT_PKTS/postPacketDeltaCount; bytes likewise from 1, 85, 231,
 * else 23. Egress-only exporters (Cisco egress NetFlow, some firewalls) fill 23/24 and
 * leave 1/2 absent or zero: when a template has both, a record whose chosen ingress
 * counter reads 0 takes 23/24 instead. */
static void
compile_plan(Template *t, guint8 version)
{
	guint64 have = 0, drop = 0;

	for (guint i = 0; i < t->nplan; i++)
		have |= KBIT(t->plan[i].kind);
	if (have & KBIT(FK_PKTS))
		drop |= KBIT(FK_PKTS_TOTAL) | KBIT(FK_PKTS_INIT);
	else if (have & KBIT(FK_PKTS_TOTAL))
		drop |= KBIT(FK_PKTS_INIT);
	if (have & KBIT(FK_BYTES))
		drop |= KBIT(FK_BYTES_TOTAL) | KBIT(FK_BYTES_INIT);
	else if (have & KBIT(FK_BYTES_TOTAL))
		drop |= KBIT(FK_BYTES_INIT);
	if ((have & KBIT(FK_OUT_PKTS)) && (have & PKTS_KINDS))
		t->extra |= EG_PKTS;
	if ((have & KBIT(FK_OUT_BYTES)) && (have & BYTES_KINDS))
		t->extra |= EG_BYTES;
	if (!(have & NAT_ADDR_KINDS))
		drop |= KBIT(FK_NAT_SPORT) | KBIT(FK_NAT_DPORT);
	else
		t->flow_has |= FLOW_HAS_NAT;
	/* Both families' address fields: each record is settled by dual_family(), so none of
	 * them is an Op; ipVersion is read only for such templates. */
	if ((have & (KBIT(FK_SRC4) | KBIT(FK_DST4))) && (have & (KBIT(FK_SRC6) | KBIT(FK_DST6)))) {
		t->extra |= EX_DUAL;
		memset(t->dual_pi, -1, sizeof t->dual_pi);
		t->ipver_pi = -1;
		for (guint i = 0; i < t->nplan; i++) {
			int slot = dual_slot(t->plan[i].kind);
			if (slot >= 0)
				t->dual_pi[slot] = (gint8)i;
			else if (t->plan[i].kind == FK_IPVERSION)
				t->ipver_pi = (gint8)i;
		}
		drop |= ADDR_KINDS;
	}
	drop |= KBIT(FK_IPVERSION);

	guint64 times = have & TIME_KINDS;
	if (!t->varlen && version == 9 && times == (KBIT(FK_FIRST_UPTIME) | KBIT(FK_LAST_UPTIME)))
		t->tmode = TM_UPTIME_V9;
	else if (!t->varlen && times == (KBIT(FK_START_MS) | KBIT(FK_END_MS)))
		t->tmode = TM_MS;

	t->nops = 0;
	for (guint i = 0; i < t->nplan; i++) {
		const PlanItem *pi = &t->plan[i];
		Op op = {.len = (guint8)MIN(pi->len, 255u), .pidx = (guint8)i};
		guint k = pi->kind;
		if (drop & KBIT(k))
			continue;
		switch (k) {
		case FK_SRC4:
		case FK_DST4:
		case FK_NAT_SRC4:
		case FK_NAT_DST4:
			op.code = OP_ADDR4;
			op.dst = k == FK_SRC4	? offsetof(Flow, src)
				 : k == FK_DST4 ? offsetof(Flow, dst)
				 : k == FK_NAT_SRC4 ? offsetof(Flow, nat_src)
						    : offsetof(Flow, nat_dst);
			break;
		case FK_SRC6:
		case FK_DST6:
		case FK_NAT_SRC6:
		case FK_NAT_DST6:
			op.code = OP_ADDR6;
			op.dst = k == FK_SRC6	? offsetof(Flow, src)
				 : k == FK_DST6 ? offsetof(Flow, dst)
				 : k == FK_NAT_SRC6 ? offsetof(Flow, nat_src)
						    : offsetof(Flow, nat_dst);
			break;
		case FK_SPORT:
		case FK_DPORT:
		case FK_NAT_SPORT:
		case FK_NAT_DPORT:
			op.code = OP_F16;
			op.dst = k == FK_SPORT	   ? offsetof(Flow, sport)
				 : k == FK_DPORT   ? offsetof(Flow, dport)
				 : k == FK_NAT_SPORT ? offsetof(Flow, nat_sport)
						     : offsetof(Flow, nat_dport);
			break;
		case FK_PROTO:
			op.code = OP_F8;
			op.dst = offsetof(Flow, proto);
			break;
		case FK_TCPFLAGS:
			/* 2-byte tcpControlBits: the flags spamflow keeps are the low byte */
			op.code = OP_F8;
			op.adj = (guint8)(pi->len - 1);
			op.dst = offsetof(Flow, tcp_flags);
			t->flow_has |= FLOW_HAS_TCP_FLAGS;
			break;
		case FK_FW_EVENT:
			op.code = OP_F8;
			op.dst = offsetof(Flow, fw_event);
			t->flow_has |= FLOW_HAS_FW_EVENT;
			break;
		case FK_DIRECTION:
			op.code = OP_F8;
			op.dst = offsetof(Flow, direction);
			t->flow_has |= FLOW_HAS_DIRECTION;
			break;
		case FK_OUT_PKTS:
		case FK_OUT_BYTES:
			if (t->extra & (k == FK_OUT_PKTS ? EG_PKTS : EG_BYTES)) {
				/* the fallback: read into Values, used when the ingress one is 0 */
				op.code = counter_op(pi->len, OP_V_1);
				op.dst = (guint16)k;
				t->vmask |= KBIT(k);
			} else {
				/* the only counter of its kind in the template */
				op.code = counter_op(pi->len, OP_F64_1);
				op.dst = k == FK_OUT_PKTS ? offsetof(Flow, packets) : offsetof(Flow, bytes);
				t->flow_has |= k == FK_OUT_PKTS ? FLOW_HAS_PACKETS : FLOW_HAS_BYTES;
			}
			break;
		case FK_PKTS:
		case FK_PKTS_TOTAL:
		case FK_PKTS_INIT:
			op.code = counter_op(pi->len, OP_F64_1);
			op.dst = offsetof(Flow, packets);
			t->flow_has |= FLOW_HAS_PACKETS;
			break;
		case FK_BYTES:
		case FK_BYTES_TOTAL:
		case FK_BYTES_INIT:
			op.code = counter_op(pi->len, OP_F64_1);
			op.dst = offsetof(Flow, bytes);
			t->flow_has |= FLOW_HAS_BYTES;
			break;
		case FK_REV_PKTS:
		case FK_REV_BYTES:
			op.code = counter_op(pi->len, OP_F64_1);
			op.dst = k == FK_REV_PKTS ? offsetof(Flow, rev_packets) : offsetof(Flow, rev_bytes);
			t->flow_has |= FLOW_HAS_REVERSE;
			break;
		default: /* times, sampling: finished from Values */
			op.code = counter_op(pi->len, OP_V_1);
			op.dst = (guint16)k;
			t->vmask |= KBIT(k);
			break;
		}
		/* variable-length templates: off is relative to the field (offs[pidx]) */
		op.off = (guint16)((t->varlen ? 0 : pi->off) + op.adj);
		if (!t->varlen) {
			int slot = -1;
			guint32 bit = 0;
			if (op.code == OP_ADDR4 || op.code == OP_ADDR6) {
				gboolean v4 = op.code == OP_ADDR4;
				if (k == FK_SRC4 || k == FK_SRC6)
					slot = FS_SRC, bit = v4 ? FAST_SRC4 : FAST_SRC6;
				else if (k == FK_DST4 || k == FK_DST6)
					slot = FS_DST, bit = v4 ? FAST_DST4 : FAST_DST6;
			} else if (k == FK_SPORT) {
				slot = FS_SPORT, bit = FAST_SPORT;
			} else if (k == FK_DPORT) {
				slot = FS_DPORT, bit = FAST_DPORT;
			} else if (k == FK_PROTO) {
				slot = FS_PROTO, bit = FAST_PROTO;
			} else if (k == FK_TCPFLAGS) {
				slot = FS_FLAGS, bit = FAST_FLAGS;
			} else if (op.dst == offsetof(Flow, packets) &&
				   (op.code == OP_F64_4 || op.code == OP_F64_8)) {
				slot = FS_PKTS, bit = op.code == OP_F64_4 ? FAST_PKTS4 : FAST_PKTS8;
			} else if (op.dst == offsetof(Flow, bytes) &&
				   (op.code == OP_F64_4 || op.code == OP_F64_8)) {
				slot = FS_BYTES, bit = op.code == OP_F64_4 ? FAST_BYTES4 : FAST_BYTES8;
			} else if ((t->tmode == TM_UPTIME_V9 && k == FK_FIRST_UPTIME) ||
				   (t->tmode == TM_MS && k == FK_START_MS)) {
				slot = FS_T0;
			} else if ((t->tmode == TM_UPTIME_V9 && k == FK_LAST_UPTIME) ||
				   (t->tmode == TM_MS && k == FK_END_MS)) {
				slot = FS_T1;
			}
			if (slot >= 0) {
				t->fo[slot] = op.off;
				t->fast |= bit;
				if (slot == FS_T0 || slot == FS_T1)
					t->vmask &= ~KBIT(k); /* read directly, not into Values */
				continue;
			}
		}
		t->ops[t->nops++] = op;
	}
}

static void
install(DecodeCtx *ctx, Template *t)
{
	Domain *d = ctx->dom;
	Exporter *e = ctx->exp;
	Template *old = g_hash_table_lookup(d->templates, GUINT_TO_POINTER(t->id));

	if (old == NULL && e->n_templates >= e->cfg->max_templates) {
		d->st.templates_refused++;
		template_free(t);
		return;
	}
	/* Bytes, across every exporter: the count cap alone lets many source ports, or huge
	 * templates, hold without bound. A replacement is judged on what it adds. */
	guint32 cost = (guint32)(sizeof *t + t->raw_len + (t->flen != NULL ? t->nfields * 2u : 0));
	guint64 held = e->totals->template_bytes - (old != NULL ? old->cost : 0);
	if (t->nfields > e->cfg->max_template_fields || held + cost > e->cfg->template_memory) {
		d->st.templates_refused++;
		e->totals->templates_over_memory++;
		template_free(t);
		return;
	}
	t->cost = cost;
	t->acct = &e->totals->template_bytes;
	e->totals->template_bytes += cost;
	t->refreshed_ms = ctx->now_ms;
	if (old == NULL) {
		e->n_templates++;
		d->st.templates_active++;
	}
	/* Redefinition replaces (RFC 7011 8.1 asks for a withdrawal first; over UDP exporters
	 * simply resend, RFC 7011 8.4). */
	g_hash_table_replace(d->templates, GUINT_TO_POINTER(t->id), t);
	d->st.template_records++;
}

static void
withdraw(DecodeCtx *ctx, guint16 id, gboolean all, gboolean options)
{
	Domain *d = ctx->dom;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, d->templates);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Template *t = v;
		if (all ? t->options != options : t->id != id)
			continue;
		g_hash_table_iter_remove(&it);
		ctx->exp->n_templates--;
		d->st.templates_active--;
		d->st.templates_withdrawn++;
	}
}

/* One template record; the cursor is at its template ID. */
static TplResult
template_record(DecodeCtx *ctx, Cursor *c, guint16 set_id)
{
	gboolean ipfix = ctx->version == 10;
	gboolean options = ipfix ? set_id == 3 : set_id == 1;
	guint16 id, count, scope = 0;
	const guint8 *start = cursor_ptr(c);

	if (!cursor_u16(c, &id) || !cursor_u16(c, &count))
		return TPL_BAD;
	if (id == 0 && count == 0)
		return TPL_PADDING; /* zero padding at the end of a (options) template set */

	guint nfields = count;
	if (ipfix && count == 0) {
		/* RFC 7011 8.1: withdrawal; template ID = set ID withdraws all of that set kind */
		if (id == set_id) {
			withdraw(ctx, 0, TRUE, options);
			return TPL_WITHDRAWN;
		}
		if (id < 256)
			return TPL_BAD_ID;
		withdraw(ctx, id, FALSE, options);
		return TPL_WITHDRAWN;
	}
	if (options && ipfix) {
		/* RFC 7011 3.4.2.2: scope field count, at least 1 and within the field count */
		if (!cursor_u16(c, &scope))
			return TPL_BAD;
		if (scope == 0 || scope > count)
			return TPL_BAD;
	} else if (options) {
		/* RFC 3954 6.1: count is the scope length in bytes, then the option length */
		guint16 optlen;
		if (!cursor_u16(c, &optlen))
			return TPL_BAD;
		if (count % 4 != 0 || optlen % 4 != 0 || count + optlen == 0)
			return TPL_BAD;
		scope = count / 4;
		nfields = scope + optlen / 4;
	}
	if (nfields == 0)
		return TPL_BAD; /* v9 template with no fields */
	/* Each field spec takes at least 4 bytes: refuse counts the set cannot hold before
	 * allocating anything. */
	if ((gsize)nfields > cursor_left(c) / 4)
		return TPL_BAD;

	Template *t = g_new0(Template, 1);
	t->id = id;
	t->options = options;
	if (!parse_fields(ctx, c, t, nfields, scope)) {
		template_free(t);
		return TPL_BAD;
	}
	if (id < 256) {
		template_free(t);
		return TPL_BAD_ID;
	}
	if (!options)
		compile_plan(t, ctx->version);
	t->set_id = set_id;
	t->version = ctx->version;
	t->raw_len = (guint16)(cursor_ptr(c) - start); /* within one set: < 65536 */
	t->raw = g_memdup2(start, t->raw_len);
	install(ctx, t);
	return TPL_OK;
}

gboolean
template_set(DecodeCtx *ctx, Cursor *set, guint16 set_id)
{
	SessionStats *st = &ctx->dom->st;
	gboolean bad_id = FALSE;

	/* A set may end in padding shorter than a record header (RFC 7011 3.3.1). */
	while (cursor_left(set) >= 4) {
		TplResult r = template_record(ctx, set, set_id);
		if (r == TPL_PADDING)
			break;
		if (r == TPL_BAD) {
			st->malformed[MAL_TEMPLATE]++;
			return FALSE;
		}
		if (r == TPL_BAD_ID)
			bad_id = TRUE;
	}
	if (bad_id)
		st->malformed[MAL_TEMPLATE_ID]++;
	return TRUE;
}

static gint
template_id_cmp(gconstpointer a, gconstpointer b)
{
	guint x = GPOINTER_TO_UINT(a), y = GPOINTER_TO_UINT(b);
	return x < y ? -1 : x > y;
}

guint
template_state_save(const Domain *d, GByteArray *out)
{
	g_autoptr(GList) ids = g_hash_table_get_keys(d->templates);
	guint n = 0;

	/* Ascending IDs: the same state always gives the same bytes. */
	ids = g_list_sort(ids, (GCompareFunc)template_id_cmp);
	for (GList *l = ids; l != NULL; l = l->next) {
		const Template *t = g_hash_table_lookup(d->templates, l->data);
		statebuf_put_u16(out, t->set_id);
		statebuf_put_u8(out, t->version);
		statebuf_put_unix_ms(out, t->refreshed_ms);
		statebuf_put_u16(out, t->raw_len);
		statebuf_put_bytes(out, t->raw, t->raw_len);
		n++;
	}
	return n;
}

TplResult
template_restore(DecodeCtx *ctx, guint16 set_id, const guint8 *raw, gsize len,
		 gint64 refreshed_ms)
{
	Cursor c;
	guint16 id;
	guint32 refused = ctx->dom->st.templates_refused;

	if (ctx->version == 10 ? set_id != 2 && set_id != 3 : set_id > 1)
		return TPL_BAD;
	cursor_init(&c, raw, len);
	if (!cursor_u16(&c, &id))
		return TPL_BAD;
	c.off = 0;
	TplResult r = template_record(ctx, &c, set_id);
	/* One whole record, or it is not what was saved. */
	if (r == TPL_OK && cursor_left(&c) != 0)
		return TPL_BAD;
	if (r != TPL_OK)
		return r == TPL_WITHDRAWN || r == TPL_PADDING ? TPL_BAD : r;
	Template *t = g_hash_table_lookup(ctx->dom->templates, GUINT_TO_POINTER(id));
	if (t != NULL && ctx->dom->st.templates_refused == refused)
		t->refreshed_ms = refreshed_ms;
	return TPL_OK;
}

guint
template_expire(Exporter *e, Domain *d, gint64 now_ms)
{
	gint64 max_age = (gint64)e->cfg->template_timeout_s * 1000;
	GHashTableIter it;
	gpointer k, v;
	guint n = 0;

	if (max_age <= 0)
		return 0;
	g_hash_table_iter_init(&it, d->templates);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		Template *t = v;
		if (now_ms - t->refreshed_ms <= max_age)
			continue;
		g_hash_table_iter_remove(&it);
		e->n_templates--;
		d->st.templates_active--;
		d->st.templates_expired++;
		n++;
	}
	return n;
}

/* Values of one record, by kind. */
typedef struct {
	guint64 present;
	guint64 v[FK_N];
} Values;

#define HAS(vals, k) (((vals)->present >> (k)) & 1)
/* Absent kinds read as 0; only planned kinds were written. */
#define VAL(vals, k) (HAS(vals, k) ? (vals)->v[k] : 0)

static void
read_planned(Values *vals, Flow *f, const guint8 *p, guint8 kind, guint16 len)
{
	switch (kind) {
	case FK_SRC4:
		flow_addr_set_v4(f->src, p);
		break;
	case FK_DST4:
		flow_addr_set_v4(f->dst, p);
		break;
	case FK_SRC6:
		memcpy(f->src, p, 16);
		break;
	case FK_DST6:
		memcpy(f->dst, p, 16);
		break;
	case FK_NAT_SRC4:
		flow_addr_set_v4(f->nat_src, p);
		break;
	case FK_NAT_DST4:
		flow_addr_set_v4(f->nat_dst, p);
		break;
	case FK_NAT_SRC6:
		memcpy(f->nat_src, p, 16);
		break;
	case FK_NAT_DST6:
		memcpy(f->nat_dst, p, 16);
		break;
	default:
		vals->v[kind] = be_uint(p, len);
		break;
	}
	vals->present |= G_GUINT64_CONSTANT(1) << kind;
}

/* NTP timestamp (RFC 5905, as RFC 7011 6.1.9/6.1.10 use it) to Unix ms. */
static gint64
ntp_to_ms(guint64 v)
{
	gint64 secs = (gint64)(v >> 32) - G_GINT64_CONSTANT(2208988800);
	return secs * 1000 + (gint64)(((v & 0xffffffffu) * 1000) >> 32);
}

static void
finish_times(const DecodeCtx *ctx, const Values *vals, Flow *f)
{
	gint64 s = 0, e = 0;
	gboolean hs = FALSE, he = FALSE;

	if (HAS(vals, FK_START_MS) || HAS(vals, FK_END_MS)) {
		s = (gint64)VAL(vals, FK_START_MS), hs = HAS(vals, FK_START_MS);
		e = (gint64)VAL(vals, FK_END_MS), he = HAS(vals, FK_END_MS);
	} else if (HAS(vals, FK_START_S) || HAS(vals, FK_END_S)) {
		s = (gint64)VAL(vals, FK_START_S) * 1000, hs = HAS(vals, FK_START_S);
		e = (gint64)VAL(vals, FK_END_S) * 1000, he = HAS(vals, FK_END_S);
	} else if (HAS(vals, FK_START_NTP) || HAS(vals, FK_END_NTP)) {
		s = ntp_to_ms(VAL(vals, FK_START_NTP)), hs = HAS(vals, FK_START_NTP);
		e = ntp_to_ms(VAL(vals, FK_END_NTP)), he = HAS(vals, FK_END_NTP);
	} else if (HAS(vals, FK_FIRST_UPTIME) || HAS(vals, FK_LAST_UPTIME)) {
		if (ctx->version == 9) {
			/* RFC 3954 5.2: switched times are sysUptime ms; the header pairs
			 * sysUptime with Unix seconds. Signed 32-bit difference survives the
			 * sysUptime wrap. */
			guint32 up = ctx->uptime;
			s = ctx->export_ms - (gint32)(up - (guint32)VAL(vals, FK_FIRST_UPTIME));
			e = ctx->export_ms - (gint32)(up - (guint32)VAL(vals, FK_LAST_UPTIME));
			hs = HAS(vals, FK_FIRST_UPTIME), he = HAS(vals, FK_LAST_UPTIME);
		} else {
			/* RFC 7011 / IANA 21, 22: relative to systemInitTimeMilliseconds */
			gint64 init = HAS(vals, FK_SYSINIT_MS) ? (gint64)VAL(vals, FK_SYSINIT_MS)
							       : ctx->dom->sys_init_ms;
			if (init > 0) {
				s = init + (gint64)VAL(vals, FK_FIRST_UPTIME);
				e = init + (gint64)VAL(vals, FK_LAST_UPTIME);
				hs = HAS(vals, FK_FIRST_UPTIME), he = HAS(vals, FK_LAST_UPTIME);
			}
		}
	} else if (HAS(vals, FK_START_DELTA_US) || HAS(vals, FK_END_DELTA_US)) {
		s = ctx->export_ms - (gint64)VAL(vals, FK_START_DELTA_US) / 1000;
		e = ctx->export_ms - (gint64)VAL(vals, FK_END_DELTA_US) / 1000;
		hs = HAS(vals, FK_START_DELTA_US), he = HAS(vals, FK_END_DELTA_US);
	} else if (HAS(vals, FK_EVENT_MS)) {
		s = e = (gint64)VAL(vals, FK_EVENT_MS);
		hs = he = TRUE;
	}
	/* NSEL: flowStartMilliseconds with an event time (323) and no end: the event is when
	 * the flow was last seen (teardown or deny). */
	if (hs && !he && HAS(vals, FK_EVENT_MS)) {
		e = (gint64)VAL(vals, FK_EVENT_MS);
		he = TRUE;
	}
	if (!hs && !he)
		return;
	if (!hs)
		s = e;
	if (!he)
		e = s;
	if (!times_plausible(ctx->export_ms, s, e)) {
		f->has |= FLOW_TIMES_INVALID;
		domain_times_dropped(ctx->exp, ctx->dom, ctx->version, s, e, ctx->export_ms);
		return;
	}
	f->start_ms = s;
	f->end_ms = e;
	f->has |= FLOW_HAS_TIMES;
}

/* Both times known (the direct TimeModes): finish_times()'s tail. */
static inline void
set_times(const DecodeCtx *ctx, Flow *f, gint64 s, gint64 e)
{
	if (!times_plausible(ctx->export_ms, s, e)) {
		f->has |= FLOW_TIMES_INVALID;
		domain_times_dropped(ctx->exp, ctx->dom, ctx->version, s, e, ctx->export_ms);
		return;
	}
	f->start_ms = s;
	f->end_ms = e;
	f->has |= FLOW_HAS_TIMES;
}

static guint32
sampling_of(const Domain *d, const Values *vals)
{
	if (HAS(vals, FK_SAMPLING) && VAL(vals, FK_SAMPLING) > 0)
		return (guint32)VAL(vals, FK_SAMPLING);
	if (HAS(vals, FK_PKT_INTERVAL) && VAL(vals, FK_PKT_INTERVAL) > 0) {
		/* RFC 5477: sample `interval` packets, then skip `space` */
		guint64 i = VAL(vals, FK_PKT_INTERVAL), sp = VAL(vals, FK_PKT_SPACE);
		return (guint32)MIN((i + sp) / i, G_MAXUINT32);
	}
	if (HAS(vals, FK_SAMPLER_RANDOM) && VAL(vals, FK_SAMPLER_RANDOM) > 0)
		return (guint32)VAL(vals, FK_SAMPLER_RANDOM);
	return domain_sampling(d, HAS(vals, FK_SAMPLER_ID), (guint32)VAL(vals, FK_SAMPLER_ID));
}

/* Options data: learn sampling and the system init time for the domain. */
static void
options_record(DecodeCtx *ctx, const Values *vals)
{
	Domain *d = ctx->dom;

	d->st.options_records++;
	if (HAS(vals, FK_SYSINIT_MS))
		d->sys_init_ms = (gint64)VAL(vals, FK_SYSINIT_MS);
	if (HAS(vals, FK_SAMPLING) || HAS(vals, FK_PKT_INTERVAL) || HAS(vals, FK_SAMPLER_RANDOM)) {
		Values v = *vals;
		v.present &= ~(G_GUINT64_CONSTANT(1) << FK_SAMPLER_ID);
		guint32 interval = sampling_of(NULL, &v);
		domain_set_sampler(d, HAS(vals, FK_SAMPLER_ID), (guint32)VAL(vals, FK_SAMPLER_ID),
				   interval);
	}
}

/* Options record at p: the generic path (rare; learns sampling and init time). For
 * variable-length templates, offs holds each planned field's offset and length. */
static void
decode_options_record(DecodeCtx *ctx, const Template *t, const guint8 *p, const guint16 *offs,
		      const guint16 *lens)
{
	Values vals;
	Flow scratch;

	vals.present = 0;
	memset(&scratch, 0, sizeof scratch);
	for (guint i = 0; i < t->nplan; i++) {
		const PlanItem *pi = &t->plan[i];
		if (offs == NULL)
			read_planned(&vals, &scratch, p + pi->off, pi->kind, pi->len);
		else if (lens[i] == pi->len)
			read_planned(&vals, &scratch, p + offs[i], pi->kind, pi->len);
	}
	options_record(ctx, &vals);
}

static gboolean
all_zero(const guint8 *p, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (p[i] != 0)
			return FALSE;
	return TRUE;
}

/* A dual-stack template's record: which family holds the flow. ipVersion (IE 60) when the
 * template has it; else the family whose addresses are not zero. Writes that family's
 * addresses (and NAT addresses) into f; FALSE when it cannot be told (ipVersion neither 4
 * nor 6, or both families zero, or both set): the record is then counted, not guessed. */
static gboolean
dual_family(const Template *t, const guint8 *p, const guint16 *offs, Flow *f)
{
	const guint8 *a[8];
	int fam = 0;

	for (guint i = 0; i < 8; i++) {
		gint8 pi = t->dual_pi[i];
		a[i] = pi < 0 ? NULL : offs == NULL ? p + t->plan[pi].off : p + offs[pi];
	}
	if (t->ipver_pi >= 0) {
		gint8 pi = t->ipver_pi;
		guint8 v = offs == NULL ? p[t->plan[pi].off] : p[offs[pi]];
		fam = v == 4 ? 4 : v == 6 ? 6 : 0;
	} else {
		gboolean v4 = (a[DA_SRC4] != NULL && !all_zero(a[DA_SRC4], 4)) ||
			      (a[DA_DST4] != NULL && !all_zero(a[DA_DST4], 4));
		gboolean v6 = (a[DA_SRC6] != NULL && !all_zero(a[DA_SRC6], 16)) ||
			      (a[DA_DST6] != NULL && !all_zero(a[DA_DST6], 16));
		fam = v4 && !v6 ? 4 : v6 && !v4 ? 6 : 0;
	}
	if (fam == 4) {
		guint8 *dst[4] = {f->src, f->dst, f->nat_src, f->nat_dst};
		static const guint8 from[4] = {DA_SRC4, DA_DST4, DA_NAT_SRC4, DA_NAT_DST4};
		for (guint i = 0; i < 4; i++)
			if (a[from[i]] != NULL)
				flow_addr_set_v4(dst[i], a[from[i]]);
	} else if (fam == 6) {
		guint8 *dst[4] = {f->src, f->dst, f->nat_src, f->nat_dst};
		static const guint8 from[4] = {DA_SRC6, DA_DST6, DA_NAT_SRC6, DA_NAT_DST6};
		for (guint i = 0; i < 4; i++)
			if (a[from[i]] != NULL)
				memcpy(dst[i], a[from[i]], 16);
	}
	return fam != 0;
}

/* The rules only some templates need, after the Ops: the dual-stack family (FALSE: the
 * record is dropped and counted) and the egress counters. Out of line, so the common
 * record pays one test of t->extra. */
static G_GNUC_NO_INLINE gboolean
record_extra(DecodeCtx *ctx, const Template *t, const guint8 *p, const guint16 *offs,
	     const Values *vals, Flow *f)
{
	if ((t->extra & EX_DUAL) && !dual_family(t, p, offs, f)) {
		Domain *d = ctx->dom;
		/* The slot stays free (and zero, as flow_batch_next() expects). */
		memset(f, 0, sizeof *f);
		d->st.ambiguous_addr++;
		CollectorNoticeInfo info = {.addr = ctx->exp->addr,
					    .port = ctx->exp->port,
					    .domain = d->id,
					    .version = ctx->version,
					    .template_id = t->id,
					    .ipversion = -1};
		if (t->ipver_pi >= 0)
			info.ipversion = offs == NULL ? p[t->plan[t->ipver_pi].off]
						      : p[offs[t->ipver_pi]];
		exporter_notice(ctx->exp, NOTICE_AMBIGUOUS_ADDR, &info);
		return FALSE;
	}
	if ((t->extra & EG_PKTS) && f->packets == 0)
		f->packets = vals->v[FK_OUT_PKTS];
	if ((t->extra & EG_BYTES) && f->bytes == 0)
		f->bytes = vals->v[FK_OUT_BYTES];
	return TRUE;
}

/* Data record at p through the compiled plan. offs: NULL for fixed-length templates (each
 * Op carries its offset), else each planned field's offset in this record. extra: a
 * constant at each call, TRUE only for templates with t->extra (record_extra()), so the
 * loops of all other templates carry no test for it. */
static inline __attribute__((always_inline)) void
decode_data_record(DecodeCtx *ctx, const Template *t, const guint8 *p, const guint16 *offs,
		   gboolean extra)
{
	Values vals;
	Flow *f = flow_batch_next(ctx->out);
	guint8 *fb = (guint8 *)f;
	Domain *d = ctx->dom;

	vals.present = t->vmask;
	guint32 m = t->fast;
	if (m != 0) {
		const guint16 *fo = t->fo;
		if (m & FAST_SRC4) {
			f->src[10] = f->src[11] = 0xff; /* the Flow is zeroed */
			memcpy(f->src + 12, p + fo[FS_SRC], 4);
		} else if (m & FAST_SRC6) {
			memcpy(f->src, p + fo[FS_SRC], 16);
		}
		if (m & FAST_DST4) {
			f->dst[10] = f->dst[11] = 0xff;
			memcpy(f->dst + 12, p + fo[FS_DST], 4);
		} else if (m & FAST_DST6) {
			memcpy(f->dst, p + fo[FS_DST], 16);
		}
		if (m & FAST_SPORT)
			f->sport = be_u16(p + fo[FS_SPORT]);
		if (m & FAST_DPORT)
			f->dport = be_u16(p + fo[FS_DPORT]);
		if (m & FAST_PROTO)
			f->proto = p[fo[FS_PROTO]];
		if (m & FAST_FLAGS)
			f->tcp_flags = p[fo[FS_FLAGS]];
		if (m & FAST_PKTS4)
			f->packets = be_u32(p + fo[FS_PKTS]);
		else if (m & FAST_PKTS8)
			f->packets = be_u64(p + fo[FS_PKTS]);
		if (m & FAST_BYTES4)
			f->bytes = be_u32(p + fo[FS_BYTES]);
		else if (m & FAST_BYTES8)
			f->bytes = be_u64(p + fo[FS_BYTES]);
	}
	for (guint i = 0; i < t->nops; i++) {
		const Op *op = &t->ops[i];
		const guint8 *s = offs == NULL ? p + op->off : p + offs[op->pidx] + op->off;
		guint8 *dst = fb + op->dst;
		guint64 v;
		guint16 v16;
		switch ((OpCode)op->code) {
		case OP_ADDR4:
			/* the slot is zeroed: only the ::ffff: marker and the address */
			dst[10] = 0xff;
			dst[11] = 0xff;
			memcpy(dst + 12, s, 4);
			break;
		case OP_ADDR6:
			memcpy(dst, s, 16);
			break;
		case OP_F8:
			*dst = s[0];
			break;
		case OP_F16:
			v16 = be_u16(s);
			memcpy(dst, &v16, 2);
			break;
		case OP_F64_1:
			v = s[0];
			memcpy(dst, &v, 8);
			break;
		case OP_F64_2:
			v = be_u16(s);
			memcpy(dst, &v, 8);
			break;
		case OP_F64_4:
			v = be_u32(s);
			memcpy(dst, &v, 8);
			break;
		case OP_F64_8:
			v = be_u64(s);
			memcpy(dst, &v, 8);
			break;
		case OP_F64_N:
			v = be_uint(s, op->len);
			memcpy(dst, &v, 8);
			break;
		case OP_V_1:
			vals.v[op->dst] = s[0];
			break;
		case OP_V_2:
			vals.v[op->dst] = be_u16(s);
			break;
		case OP_V_4:
			vals.v[op->dst] = be_u32(s);
			break;
		case OP_V_8:
			vals.v[op->dst] = be_u64(s);
			break;
		case OP_V_N:
			vals.v[op->dst] = be_uint(s, op->len);
			break;
		}
	}
	if (extra && !record_extra(ctx, t, p, offs, &vals, f))
		return;
	f->has = t->flow_has;
	if (t->tmode == TM_UPTIME_V9) {
		if (G_LIKELY(ctx->version == 9)) {
			/* as finish_times(): sysUptime ms against the header's (uptime, secs) */
			guint32 up = ctx->uptime;
			set_times(ctx, f, ctx->export_ms - (gint32)(up - be_u32(p + t->fo[FS_T0])),
				  ctx->export_ms - (gint32)(up - be_u32(p + t->fo[FS_T1])));
		} else {
			/* the exporter (address, port) changed version under a v9 template */
			vals.v[FK_FIRST_UPTIME] = be_u32(p + t->fo[FS_T0]);
			vals.v[FK_LAST_UPTIME] = be_u32(p + t->fo[FS_T1]);
			vals.present |= KBIT(FK_FIRST_UPTIME) | KBIT(FK_LAST_UPTIME);
			finish_times(ctx, &vals, f);
		}
	} else if (t->tmode == TM_MS) {
		set_times(ctx, f, (gint64)be_u64(p + t->fo[FS_T0]), (gint64)be_u64(p + t->fo[FS_T1]));
	} else if (t->vmask & TIME_KINDS) {
		finish_times(ctx, &vals, f);
	}
	if (t->vmask & SAMPLING_KINDS)
		f->sampling = sampling_of(d, &vals);
	else
		f->sampling = d->sampling > 0 ? d->sampling : 1; /* domain_sampling() without id */
	d->st.sampling = f->sampling; /* the interval last seen */
	f->recv_ms = ctx->now_ms;
	f->exporter = ctx->exp->index;
	f->domain = d->id;
	f->version = ctx->version;
	flow_batch_commit(ctx->out);
	d->st.records++;
}

static void
decode_record_varlen(DecodeCtx *ctx, const Template *t, const guint8 *p, const guint16 *offs,
		     const guint16 *lens)
{
	if (t->options)
		decode_options_record(ctx, t, p, offs, lens);
	else if (t->extra)
		decode_data_record(ctx, t, p, offs, TRUE);
	else
		decode_data_record(ctx, t, p, offs, FALSE);
}

static gboolean
data_set_varlen(DecodeCtx *ctx, const Template *t, Cursor *set)
{
	SessionStats *st = &ctx->dom->st;
	guint16 offs[MAX_PLAN], lens[MAX_PLAN];
	guint n = 0;

	while (cursor_left(set) >= t->min_len) {
		gsize start = set->off;
		guint pi = 0;
		for (guint i = 0; i < t->nfields; i++) {
			gsize len = t->flen[i];
			if (len == VARLEN) {
				/* RFC 7011 7: 1-byte length, or 255 then a 2-byte length */
				guint8 l8;
				guint16 l16;
				if (!cursor_u8(set, &l8))
					goto bad;
				len = l8;
				if (l8 == 255) {
					if (!cursor_u16(set, &l16))
						goto bad;
					len = l16;
				}
			}
			if (pi < t->nplan && t->plan[pi].idx == i) {
				offs[pi] = (guint16)(set->off - start);
				lens[pi] = (guint16)len;
				pi++;
			}
			if (!cursor_skip(set, len))
				goto bad;
		}
		decode_record_varlen(ctx, t, set->p + start, offs, lens);
		n++;
	}
	if (n == 0) {
		st->malformed[MAL_SHORT_SET]++;
		return FALSE;
	}
	return TRUE;
bad:
	st->malformed[MAL_VARLEN]++;
	return FALSE;
}

gboolean
template_data_set(DecodeCtx *ctx, Cursor *set, guint16 set_id)
{
	Domain *d = ctx->dom;
	Template *t = g_hash_table_lookup(d->templates, GUINT_TO_POINTER(set_id));

	if (t != NULL && ctx->exp->cfg->template_timeout_s > 0 &&
	    ctx->now_ms - t->refreshed_ms > (gint64)ctx->exp->cfg->template_timeout_s * 1000) {
		template_expire(ctx->exp, d, ctx->now_ms);
		t = NULL;
	}
	if (t == NULL) {
		/* Data before its template (exporter restart, lost template datagram): counted
		 * until the template arrives, not malformed. */
		d->st.no_template_sets++;
		d->st.no_template_bytes += cursor_left(set);
		return TRUE;
	}
	if (t->varlen)
		return data_set_varlen(ctx, t, set);

	gsize n = cursor_left(set) / t->min_len;
	if (n == 0) {
		/* RFC 7011 3.3.1: padding is shorter than a record, so a set must hold one */
		d->st.malformed[MAL_SHORT_SET]++;
		return FALSE;
	}
	/* Whole records only; a shorter tail is padding (RFC 7011 3.3.1, RFC 3954 5.3). */
	const guint8 *p = cursor_ptr(set);
	if (t->options) {
		for (gsize i = 0; i < n; i++, p += t->min_len)
			decode_options_record(ctx, t, p, NULL, NULL);
		return TRUE;
	}
	if (G_UNLIKELY(t->extra)) {
		for (gsize i = 0; i < n; i++, p += t->min_len)
			decode_data_record(ctx, t, p, NULL, TRUE);
		return TRUE;
	}
	for (gsize i = 0; i < n; i++, p += t->min_len)
		decode_data_record(ctx, t, p, NULL, FALSE);
	return TRUE;
}
