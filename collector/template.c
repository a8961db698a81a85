/* Template engine for NetFlow v9 and IPFIX. A template is parsed once into a plan: for each
 * field spamflow uses, its kind, length and (for fixed-length templates) its offset in the
 * record. Decoding a record then reads only planned fields, without walking the field list;
 * templates with variable-length fields (RFC 7011 7) walk the lengths once per record. */
#include "template.h"

#include <string.h>

/* What a planned field means. Several kinds can feed one flow field; finish_flow() applies
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

struct Template {
	guint16 id;
	guint16 nfields;
	gboolean options;
	gboolean varlen;
	guint32 min_len; /* fixed-length record size, or the minimum with 1 byte per varlen */
	guint16 *flen;   /* field lengths, only kept for variable-length templates */
	guint nplan;
	PlanItem plan[MAX_PLAN];
	gint64 refreshed_ms;
};

void
template_free(Template *t)
{
	if (t == NULL)
		return;
	g_free(t->flen);
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
		/* RFC 7011 7: 65535 means variable length in IPFIX; v9 has no such thing */
		if (len == VARLEN && ctx->version == 10) {
			t->varlen = TRUE;
			t->min_len += 1;
		} else {
			t->min_len += len;
		}
		if (t->min_len > 65535)
			return FALSE;
		/* v9 scope types (system, interface, ...) are not information elements */
		gboolean v9_scope = ctx->version == 9 && i < scope;
		int k = (len == VARLEN && ctx->version == 10) || v9_scope
			    ? -1
			    : field_kind(ctx->version, pen, ie, len);
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

static void
finish_flow(DecodeCtx *ctx, const Values *vals, Flow *f)
{
	if (HAS(vals, FK_SPORT))
		f->sport = (guint16)VAL(vals, FK_SPORT);
	if (HAS(vals, FK_DPORT))
		f->dport = (guint16)VAL(vals, FK_DPORT);
	f->proto = (guint8)VAL(vals, FK_PROTO);
	if (HAS(vals, FK_TCPFLAGS)) {
		f->tcp_flags = (guint8)VAL(vals, FK_TCPFLAGS);
		f->has |= FLOW_HAS_TCP_FLAGS;
	}
	if (HAS(vals, FK_PKTS) || HAS(vals, FK_PKTS_TOTAL) || HAS(vals, FK_PKTS_INIT)) {
		f->packets = HAS(vals, FK_PKTS)		? VAL(vals, FK_PKTS)
			     : HAS(vals, FK_PKTS_TOTAL) ? VAL(vals, FK_PKTS_TOTAL)
							: VAL(vals, FK_PKTS_INIT);
		f->has |= FLOW_HAS_PACKETS;
	}
	if (HAS(vals, FK_BYTES) || HAS(vals, FK_BYTES_TOTAL) || HAS(vals, FK_BYTES_INIT)) {
		f->bytes = HAS(vals, FK_BYTES)		 ? VAL(vals, FK_BYTES)
			   : HAS(vals, FK_BYTES_TOTAL) ? VAL(vals, FK_BYTES_TOTAL)
						       : VAL(vals, FK_BYTES_INIT);
		f->has |= FLOW_HAS_BYTES;
	}
	if (HAS(vals, FK_REV_PKTS) || HAS(vals, FK_REV_BYTES)) {
		f->rev_packets = VAL(vals, FK_REV_PKTS);
		f->rev_bytes = VAL(vals, FK_REV_BYTES);
		f->has |= FLOW_HAS_REVERSE;
	}
	if (HAS(vals, FK_FW_EVENT)) {
		f->fw_event = (guint8)VAL(vals, FK_FW_EVENT);
		f->has |= FLOW_HAS_FW_EVENT;
	}
	if (HAS(vals, FK_DIRECTION)) {
		f->direction = (guint8)VAL(vals, FK_DIRECTION);
		f->has |= FLOW_HAS_DIRECTION;
	}
	if (HAS(vals, FK_NAT_SRC4) || HAS(vals, FK_NAT_DST4) || HAS(vals, FK_NAT_SRC6) ||
	    HAS(vals, FK_NAT_DST6)) {
		f->nat_sport = (guint16)VAL(vals, FK_NAT_SPORT);
		f->nat_dport = (guint16)VAL(vals, FK_NAT_DPORT);
		f->has |= FLOW_HAS_NAT;
	}
	finish_times(ctx, vals, f);
	f->sampling = sampling_of(ctx->dom, vals);
	ctx->dom->st.sampling = f->sampling; /* the interval last seen */
	f->recv_ms = ctx->now_ms;
	f->exporter = ctx->exp->index;
	f->domain = ctx->dom->id;
	f->version = ctx->version;
}

/* Decode one record at p (all its min/declared bytes present). For variable-length
 * templates, offs holds each planned field's offset and length. */
static void
decode_record(DecodeCtx *ctx, const Template *t, const guint8 *p, const guint16 *offs,
	      const guint16 *lens)
{
	Values vals;
	Flow scratch;
	Flow *f;

	vals.present = 0;
	if (t->options) {
		f = &scratch;
		memset(f, 0, sizeof *f);
	} else {
		f = flow_batch_next(ctx->out);
	}
	for (guint i = 0; i < t->nplan; i++) {
		const PlanItem *pi = &t->plan[i];
		if (offs == NULL)
			read_planned(&vals, f, p + pi->off, pi->kind, pi->len);
		else if (lens[i] == pi->len)
			read_planned(&vals, f, p + offs[i], pi->kind, pi->len);
	}
	if (t->options) {
		options_record(ctx, &vals);
		return;
	}
	finish_flow(ctx, &vals, f);
	flow_batch_commit(ctx->out);
	ctx->dom->st.records++;
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
		decode_record(ctx, t, set->p + start, offs, lens);
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
	for (gsize i = 0; i < n; i++, p += t->min_len)
		decode_record(ctx, t, p, NULL, NULL);
	return TRUE;
}
