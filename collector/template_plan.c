/* A template is parsed once into a plan: for each field spamflow uses, its kind, length and
 * (for fixed-length templates) its offset in the record. A data template's plan is then
 * compiled into Ops and fast fields, so that decoding a record (template_data.c) reads only
 * the planned fields without walking the field list. */
#include "template_plan.h"

#include <stddef.h>
#include <string.h>

#define PEN_REVERSE 29305 /* RFC 5103 reverse information elements */

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
gboolean
template_plan_fields(Template *t, Cursor *c, guint8 version, guint n, guint scope)
{
	g_autofree guint16 *flen = g_new(guint16, n);
	guint64 seen = 0;
	guint32 off = 0;

	for (guint i = 0; i < n; i++) {
		guint16 ie, len;
		guint32 pen = 0;
		if (!cursor_u16(c, &ie) || !cursor_u16(c, &len))
			return FALSE;
		if (version == 10 && (ie & 0x8000)) {
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
		gboolean v9_scope = version == 9 && i < scope;
		int k = len == VARLEN || v9_scope ? -1 : field_kind(version, pen, ie, len);
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

#define NAT_ADDR_KINDS \
	(KBIT(FK_NAT_SRC4) | KBIT(FK_NAT_DST4) | KBIT(FK_NAT_SRC6) | KBIT(FK_NAT_DST6))
#define ADDR_KINDS                                                                            \
	(KBIT(FK_SRC4) | KBIT(FK_DST4) | KBIT(FK_SRC6) | KBIT(FK_DST6) | NAT_ADDR_KINDS)
#define PKTS_KINDS (KBIT(FK_PKTS) | KBIT(FK_PKTS_TOTAL) | KBIT(FK_PKTS_INIT))
#define BYTES_KINDS (KBIT(FK_BYTES) | KBIT(FK_BYTES_TOTAL) | KBIT(FK_BYTES_INIT))

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
void
template_plan_compile(Template *t, guint8 version)
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
