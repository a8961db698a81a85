/* Data sets of NetFlow v9 and IPFIX decoded through a template's compiled plan: the
 * per-record hot path. Fixed-length templates read each field at its planned offset;
 * templates with variable-length fields (RFC 7011 7) walk the lengths once per record.
 * Options data teaches the domain its sampling intervals and system init time. */
#include "template_plan.h"

#include <string.h>

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
