/* Internal to the template engine for NetFlow v9 and IPFIX: what a template compiles to,
 * shared by template.c (keeps each domain's templates), template_plan.c (turns a template
 * record into a plan) and template_data.c (decodes data records through the plan). */
#pragma once

#include "template.h"

/* What a planned field means. Several kinds can feed one flow field; template_plan_compile()
 * applies the precedence (e.g. packetDeltaCount over packetTotalCount over
 * initiatorPackets). */
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

typedef struct {
	guint16 off; /* offset in the record (fixed-length templates) */
	guint16 len;
	guint16 idx; /* field index (variable-length templates) */
	guint8 kind;
} PlanItem;

/* A data template's plan compiled into length-specialised steps (template_plan_compile()):
 * each one reads one field with a fixed-size load and stores it straight into the Flow
 * (addresses, ports, protocol, flags, counters) or, for the kinds that need the whole record
 * (times, sampling), into the Values array (template_data.c). Which kinds are present is a
 * property of the template, so the precedence between kinds (packetDeltaCount over
 * packetTotalCount, ...) and the record's `has` bits are settled once, at compile time, not
 * per record. */
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
 * these two); anything else goes through Values and finish_times() (template_data.c). */
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

#define KBIT(k) (G_GUINT64_CONSTANT(1) << (k))
#define TIME_KINDS                                                                            \
	(KBIT(FK_FIRST_UPTIME) | KBIT(FK_LAST_UPTIME) | KBIT(FK_START_S) | KBIT(FK_END_S) |     \
	 KBIT(FK_START_MS) | KBIT(FK_END_MS) | KBIT(FK_START_NTP) | KBIT(FK_END_NTP) |           \
	 KBIT(FK_START_DELTA_US) | KBIT(FK_END_DELTA_US) | KBIT(FK_SYSINIT_MS) | KBIT(FK_EVENT_MS))
#define SAMPLING_KINDS                                                                        \
	(KBIT(FK_SAMPLING) | KBIT(FK_SAMPLER_ID) | KBIT(FK_SAMPLER_RANDOM) |                    \
	 KBIT(FK_PKT_INTERVAL) | KBIT(FK_PKT_SPACE))

/* dual_pi[] slots, in FieldKind order of the address kinds */
enum { DA_SRC4, DA_DST4, DA_SRC6, DA_DST6, DA_NAT_SRC4, DA_NAT_DST4, DA_NAT_SRC6, DA_NAT_DST6 };
enum { EG_PKTS = 1, EG_BYTES = 2, EX_DUAL = 4 };

/* Parse one template record's n field specifiers (the first `scope` of them scope fields)
 * into t's plan; FALSE when the record is truncated or cannot describe a record. */
gboolean template_plan_fields(Template *t, Cursor *c, guint8 version, guint n, guint scope);

/* Compile a data template's plan into Ops and fast fields (see Op). */
void template_plan_compile(Template *t, guint8 version);
