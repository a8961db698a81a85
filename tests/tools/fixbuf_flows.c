/* fixbuf_flows: a second, independent IPFIX decoder for the golden tests. It reads a pcap with
 * libpcap, hands every IPFIX datagram to libfixbuf (buffer mode, one fbSession per exporter
 * address and port) and prints each data record as a --flows CSV line (collector/flowcsv.h),
 * so tests/golden/compare.py can hold spamflowd's IPFIX decoder against it. libfixbuf is not
 * hardened against hostile input: use this only on clean captures such as the fixtures.
 *
 *   fixbuf_flows CAPTURE.pcap > flows.csv
 *
 * It follows flowcsv's column rules (empty cell = IE not in the template; ports and proto 0
 * when absent; one side of start/end copies the other) but reads the wire on its own terms:
 * tcpControlBits prints at its full 16 bits (spamflowd keeps the low 8), IPv4-mapped IPv6
 * addresses print as IPv6, and times come only from IEs 150-153 and 21/22 (+160); records
 * with other time IEs (NTP 154-157, deltas 158/159, 323) print no times.
 */
#include <fixbuf/public.h>
#include <glib.h>
#include <pcap/pcap.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The header flowcsv writes; repeated here so this tool does not link spamflow code. */
#define CSV_HEADER                                                                                 \
	"recv_ms,exporter,domain,version,src,dst,sport,dport,proto,tcp_flags,packets,bytes,"       \
	"start_ms,end_ms,sampling,fw_event,direction,nat_src,nat_dst,nat_sport,nat_dport,"         \
	"rev_packets,rev_bytes"

/* Every information element we ask libfixbuf for, in one internal template used for data
 * and options records alike. Lengths come from libfixbuf's information model. */
typedef enum {
	F_PKTS,
	F_BYTES,
	F_PKTS_TOTAL,
	F_BYTES_TOTAL,
	F_PKTS_INIT,
	F_BYTES_INIT,
	F_REV_PKTS,
	F_REV_BYTES,
	F_REV_PKTS_TOTAL,
	F_REV_BYTES_TOTAL,
	F_RESP_PKTS,
	F_RESP_BYTES,
	F_SELECTOR_ID,
	F_START_MS,
	F_END_MS,
	F_SYSINIT_MS,
	F_SRC6,
	F_DST6,
	F_NAT_SRC6,
	F_NAT_DST6,
	F_SRC4,
	F_DST4,
	F_NAT_SRC4,
	F_NAT_DST4,
	F_START_S,
	F_END_S,
	F_START_UPTIME,
	F_END_UPTIME,
	F_SAMPLING,
	F_SAMPLER_RANDOM,
	F_PKT_INTERVAL,
	F_PKT_SPACE,
	F_SPORT,
	F_DPORT,
	F_NAT_SPORT,
	F_NAT_DPORT,
	F_TCPFLAGS,
	F_PROTO,
	F_DIRECTION,
	F_FW_EVENT,
	F_SAMPLER_ID,
	F_N
} Field;

G_STATIC_ASSERT(F_N <= 64);

static const char *const field_names[F_N] = {
    [F_PKTS] = "packetDeltaCount",
    [F_BYTES] = "octetDeltaCount",
    [F_PKTS_TOTAL] = "packetTotalCount",
    [F_BYTES_TOTAL] = "octetTotalCount",
    [F_PKTS_INIT] = "initiatorPackets",
    [F_BYTES_INIT] = "initiatorOctets",
    [F_REV_PKTS] = "reversePacketDeltaCount",
    [F_REV_BYTES] = "reverseOctetDeltaCount",
    [F_REV_PKTS_TOTAL] = "reversePacketTotalCount",
    [F_REV_BYTES_TOTAL] = "reverseOctetTotalCount",
    [F_RESP_PKTS] = "responderPackets",
    [F_RESP_BYTES] = "responderOctets",
    [F_SELECTOR_ID] = "selectorId",
    [F_START_MS] = "flowStartMilliseconds",
    [F_END_MS] = "flowEndMilliseconds",
    [F_SYSINIT_MS] = "systemInitTimeMilliseconds",
    [F_SRC6] = "sourceIPv6Address",
    [F_DST6] = "destinationIPv6Address",
    [F_NAT_SRC6] = "postNATSourceIPv6Address",
    [F_NAT_DST6] = "postNATDestinationIPv6Address",
    [F_SRC4] = "sourceIPv4Address",
    [F_DST4] = "destinationIPv4Address",
    [F_NAT_SRC4] = "postNATSourceIPv4Address",
    [F_NAT_DST4] = "postNATDestinationIPv4Address",
    [F_START_S] = "flowStartSeconds",
    [F_END_S] = "flowEndSeconds",
    [F_START_UPTIME] = "flowStartSysUpTime",
    [F_END_UPTIME] = "flowEndSysUpTime",
    [F_SAMPLING] = "samplingInterval",
    [F_SAMPLER_RANDOM] = "samplerRandomInterval",
    [F_PKT_INTERVAL] = "samplingPacketInterval",
    [F_PKT_SPACE] = "samplingPacketSpace",
    [F_SPORT] = "sourceTransportPort",
    [F_DPORT] = "destinationTransportPort",
    [F_NAT_SPORT] = "postNAPTSourceTransportPort",
    [F_NAT_DPORT] = "postNAPTDestinationTransportPort",
    [F_TCPFLAGS] = "tcpControlBits",
    [F_PROTO] = "protocolIdentifier",
    [F_DIRECTION] = "flowDirection",
    [F_FW_EVENT] = "firewallEvent",
    [F_SAMPLER_ID] = "samplerId",
};

#define BIT(f) (G_GUINT64_CONSTANT(1) << (f))

/* The internal template's layout: where libfixbuf transcodes each field to. */
typedef struct {
	fbInfoModel_t *model;
	fbInfoElementSpec_t spec[F_N + 1];
	guint16 off[F_N];
	guint16 len[F_N];
	gsize rec_len;
} Layout;

/* What one external template carries, computed once when the template arrives. */
typedef struct {
	guint64 present; /* BIT(Field) for each field in the template */
	gboolean options;
} TemplateInfo;

/* Options state per observation domain. */
typedef struct {
	guint32 sampling;     /* the last interval signalled; 1 = unsampled or unknown */
	GHashTable *samplers; /* samplerId/selectorId -> interval, from options records */
	guint64 sys_init_ms;
} DomainState;

/* One transport session: an exporter's address and port. */
typedef struct {
	char addr[INET6_ADDRSTRLEN];
	fBuf_t *fbuf;
	GHashTable *domains; /* guint32 -> DomainState* */
} Exporter;

typedef struct {
	guint64 datagrams;
	guint64 records;
	guint64 options_records;
	guint64 errors;
	guint64 skipped;      /* packets that are not IPFIX over UDP */
	guint64 seq_warnings; /* libfixbuf's "out of sequence" warnings */
} Totals;

static Layout layout;
static Totals totals;

static gboolean
layout_init(Layout *l, GError **error)
{
	guint16 off = 0;

	l->model = fbInfoModelAlloc();
	for (guint i = 0; i < F_N; i++) {
		const fbInfoElement_t *ie = fbInfoModelGetElementByName(l->model, field_names[i]);
		if (ie == NULL) {
			g_set_error(error, FB_ERROR_DOMAIN, FB_ERROR_NOELEMENT,
				    "libfixbuf has no information element '%s'", field_names[i]);
			return FALSE;
		}
		l->spec[i] = (fbInfoElementSpec_t){(char *)field_names[i], ie->len, 0};
		l->off[i] = off;
		l->len[i] = ie->len;
		off += ie->len;
	}
	l->spec[F_N] = (fbInfoElementSpec_t)FB_IESPEC_NULL;
	l->rec_len = off;
	return TRUE;
}

static guint64
rec_uint(const guint8 *rec, Field f)
{
	/* libfixbuf transcodes integers to host order at their full model length */
	switch (layout.len[f]) {
	case 1:
		return rec[layout.off[f]];
	case 2: {
		guint16 v;
		memcpy(&v, rec + layout.off[f], 2);
		return v;
	}
	case 4: {
		guint32 v;
		memcpy(&v, rec + layout.off[f], 4);
		return v;
	}
	case 8: {
		guint64 v;
		memcpy(&v, rec + layout.off[f], 8);
		return v;
	}
	default:
		g_assert_not_reached();
	}
}

static const char *
rec_addr4(const guint8 *rec, Field f, char *buf, gsize len)
{
	guint32 h = (guint32)rec_uint(rec, f), n = g_htonl(h);
	return inet_ntop(AF_INET, &n, buf, (socklen_t)len);
}

static const char *
rec_addr6(const guint8 *rec, Field f, char *buf, gsize len)
{
	return inet_ntop(AF_INET6, rec + layout.off[f], buf, (socklen_t)len);
}

/* src/dst columns: flowcsv always prints an address; all-zero IPv6 when the record has none. */
static const char *
rec_addr(const guint8 *rec, guint64 present, Field f4, Field f6, char *buf, gsize len)
{
	if (present & BIT(f4))
		return rec_addr4(rec, f4, buf, len);
	if (present & BIT(f6))
		return rec_addr6(rec, f6, buf, len);
	return "::";
}

static void
template_info_free(void *tmpl_ctx, void *app_ctx)
{
	(void)app_ctx;
	g_free(tmpl_ctx);
}

static TemplateInfo *
template_info_new(fbTemplate_t *tmpl)
{
	TemplateInfo *ti = g_new0(TemplateInfo, 1);

	for (guint i = 0; i < F_N; i++)
		if (fbTemplateContainsElementByName(tmpl, &layout.spec[i]))
			ti->present |= BIT(i);
	ti->options = fbTemplateGetOptionsScope(tmpl) > 0;
	return ti;
}

/* libfixbuf calls this for each new external template: remember which of our fields it
 * carries, so absent fields print empty exactly as flowcsv leaves them. */
static void
new_template(fbSession_t *session, uint16_t tid, fbTemplate_t *tmpl, void *app_ctx, void **tmpl_ctx,
	     fbTemplateCtxFree_fn *tmpl_ctx_free_fn)
{
	(void)session;
	(void)tid;
	(void)app_ctx;
	*tmpl_ctx = template_info_new(tmpl);
	*tmpl_ctx_free_fn = template_info_free;
}

static void
domain_free(gpointer p)
{
	DomainState *d = p;
	g_hash_table_destroy(d->samplers);
	g_free(d);
}

static void
exporter_free(gpointer p)
{
	Exporter *e = p;
	fBufFree(e->fbuf); /* frees the session too */
	g_hash_table_destroy(e->domains);
	g_free(e);
}

static Exporter *
exporter_new(const char *addr, GError **error)
{
	Exporter *e = g_new0(Exporter, 1);
	fbSession_t *s = fbSessionAlloc(layout.model);
	fbTemplate_t *t = fbTemplateAlloc(layout.model);
	guint16 tid;

	g_strlcpy(e->addr, addr, sizeof e->addr);
	e->domains = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, domain_free);
	fbSessionAddNewTemplateCallback(s, new_template, NULL);
	if (!fbTemplateAppendSpecArray(t, layout.spec, 0, error) ||
	    (tid = fbSessionAddTemplate(s, TRUE, FB_TID_AUTO, t, error)) == 0) {
		fbSessionFree(s);
		g_hash_table_destroy(e->domains);
		g_free(e);
		return NULL;
	}
	e->fbuf = fBufAllocForCollection(s, NULL);
	fBufSetAutomaticMode(e->fbuf, FALSE);
	if (!fBufSetInternalTemplate(e->fbuf, tid, error)) {
		exporter_free(e);
		return NULL;
	}
	return e;
}

static DomainState *
exporter_domain(Exporter *e, guint32 id)
{
	DomainState *d = g_hash_table_lookup(e->domains, GUINT_TO_POINTER(id));
	if (d == NULL) {
		d = g_new0(DomainState, 1);
		d->sampling = 1;
		d->samplers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
		g_hash_table_insert(e->domains, GUINT_TO_POINTER(id), d);
	}
	return d;
}

/* The sampler a record names (samplerId, else selectorId); FALSE when it names none. */
static gboolean
rec_sampler_id(const guint8 *rec, guint64 present, gint64 *id)
{
	if (present & BIT(F_SAMPLER_ID))
		*id = (gint64)rec_uint(rec, F_SAMPLER_ID);
	else if (present & BIT(F_SELECTOR_ID))
		*id = (gint64)rec_uint(rec, F_SELECTOR_ID);
	else
		return FALSE;
	return TRUE;
}

/* A sampling interval carried by this record, or 0. RFC 5477: samplingPacketInterval packets
 * are taken, then samplingPacketSpace skipped. */
static guint32
rec_sampling(const guint8 *rec, guint64 present)
{
	guint64 v;

	if ((present & BIT(F_SAMPLING)) && (v = rec_uint(rec, F_SAMPLING)) > 0)
		return (guint32)v;
	if ((present & BIT(F_PKT_INTERVAL)) && (v = rec_uint(rec, F_PKT_INTERVAL)) > 0) {
		guint64 space = present & BIT(F_PKT_SPACE) ? rec_uint(rec, F_PKT_SPACE) : 0;
		return (guint32)MIN((v + space) / v, G_MAXUINT32);
	}
	if ((present & BIT(F_SAMPLER_RANDOM)) && (v = rec_uint(rec, F_SAMPLER_RANDOM)) > 0)
		return (guint32)v;
	return 0;
}

/* Options data: the domain's systemInitTimeMilliseconds and sampling. An interval scoped by
 * a sampler id applies to records naming that sampler; the last interval seen also applies
 * to records that name none (or one never described). */
static void
options_record(DomainState *d, const guint8 *rec, guint64 present)
{
	guint32 s = rec_sampling(rec, present);
	gint64 id;

	if (present & BIT(F_SYSINIT_MS))
		d->sys_init_ms = rec_uint(rec, F_SYSINIT_MS);
	if (s > 0) {
		d->sampling = s;
		if (rec_sampler_id(rec, present, &id))
			g_hash_table_insert(d->samplers, g_memdup2(&id, sizeof id),
					    GUINT_TO_POINTER(s));
	}
	totals.options_records++;
}

static guint32
domain_sampling(const DomainState *d, const guint8 *rec, guint64 present)
{
	gint64 id;
	gpointer v;

	if (rec_sampler_id(rec, present, &id) &&
	    g_hash_table_lookup_extended(d->samplers, &id, NULL, &v))
		return GPOINTER_TO_UINT(v);
	return d->sampling;
}

/* The first of several alternative fields the template carries, or -1. */
static int
first_present(guint64 present, const Field *alts, guint n)
{
	for (guint i = 0; i < n; i++)
		if (present & BIT(alts[i]))
			return (int)alts[i];
	return -1;
}

static void
print_times(FILE *out, const DomainState *d, const guint8 *rec, guint64 present)
{
	gint64 s = 0, e = 0;
	gboolean hs = FALSE, he = FALSE;

	/* Precedence as IANA lists the time IEs: absolute ms, absolute s, then sysUpTime
	 * relative to systemInitTimeMilliseconds (record, else the options record). */
	if (present & (BIT(F_START_MS) | BIT(F_END_MS))) {
		hs = (present & BIT(F_START_MS)) != 0, he = (present & BIT(F_END_MS)) != 0;
		s = (gint64)rec_uint(rec, F_START_MS), e = (gint64)rec_uint(rec, F_END_MS);
	} else if (present & (BIT(F_START_S) | BIT(F_END_S))) {
		hs = (present & BIT(F_START_S)) != 0, he = (present & BIT(F_END_S)) != 0;
		s = (gint64)rec_uint(rec, F_START_S) * 1000;
		e = (gint64)rec_uint(rec, F_END_S) * 1000;
	} else if (present & (BIT(F_START_UPTIME) | BIT(F_END_UPTIME))) {
		gint64 init = present & BIT(F_SYSINIT_MS) ? (gint64)rec_uint(rec, F_SYSINIT_MS)
							  : (gint64)d->sys_init_ms;
		if (init > 0) {
			hs = (present & BIT(F_START_UPTIME)) != 0;
			he = (present & BIT(F_END_UPTIME)) != 0;
			s = init + (gint64)rec_uint(rec, F_START_UPTIME);
			e = init + (gint64)rec_uint(rec, F_END_UPTIME);
		}
	}
	if (!hs && !he) {
		fputs(",,", out);
		return;
	}
	if (!hs)
		s = e;
	if (!he)
		e = s;
	fprintf(out, "%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",", s, e);
}

static const char *
fw_event_name(guint64 ev)
{
	static const char *const names[] = {"none",   "created", "deleted",
					    "denied", "alert",	 "update"};
	return ev < G_N_ELEMENTS(names) ? names[ev] : "unknown";
}

static void
print_record(FILE *out, gint64 recv_ms, const Exporter *ex, guint32 domain, const DomainState *d,
	     const guint8 *rec, guint64 present)
{
	static const Field pkts[] = {F_PKTS, F_PKTS_TOTAL, F_PKTS_INIT};
	static const Field bytes[] = {F_BYTES, F_BYTES_TOTAL, F_BYTES_INIT};
	static const Field rpkts[] = {F_REV_PKTS, F_REV_PKTS_TOTAL, F_RESP_PKTS};
	static const Field rbytes[] = {F_REV_BYTES, F_REV_BYTES_TOTAL, F_RESP_BYTES};
	char s[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN];
	guint32 sampling = rec_sampling(rec, present);
	int f;

	fprintf(out,
		"%" G_GINT64_FORMAT ",%s,%" PRIu32 ",10,%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",",
		recv_ms, ex->addr, domain, rec_addr(rec, present, F_SRC4, F_SRC6, s, sizeof s),
		rec_addr(rec, present, F_DST4, F_DST6, t, sizeof t), rec_uint(rec, F_SPORT),
		rec_uint(rec, F_DPORT), rec_uint(rec, F_PROTO));
	if (present & BIT(F_TCPFLAGS))
		fprintf(out, "%" PRIu64, rec_uint(rec, F_TCPFLAGS));
	fputc(',', out);
	if ((f = first_present(present, pkts, G_N_ELEMENTS(pkts))) >= 0)
		fprintf(out, "%" PRIu64, rec_uint(rec, (Field)f));
	fputc(',', out);
	if ((f = first_present(present, bytes, G_N_ELEMENTS(bytes))) >= 0)
		fprintf(out, "%" PRIu64, rec_uint(rec, (Field)f));
	fputc(',', out);
	print_times(out, d, rec, present);
	fprintf(out, "%" PRIu32 ",", sampling > 0 ? sampling : domain_sampling(d, rec, present));
	if (present & BIT(F_FW_EVENT))
		fputs(fw_event_name(rec_uint(rec, F_FW_EVENT)), out);
	fputc(',', out);
	if (present & BIT(F_DIRECTION))
		fputs(rec_uint(rec, F_DIRECTION) == 0 ? "in" : "out", out);
	fputc(',', out);
	if (present & (BIT(F_NAT_SRC4) | BIT(F_NAT_DST4) | BIT(F_NAT_SRC6) | BIT(F_NAT_DST6)))
		fprintf(out, "%s,%s,%" PRIu64 ",%" PRIu64,
			rec_addr(rec, present, F_NAT_SRC4, F_NAT_SRC6, s, sizeof s),
			rec_addr(rec, present, F_NAT_DST4, F_NAT_DST6, t, sizeof t),
			rec_uint(rec, F_NAT_SPORT), rec_uint(rec, F_NAT_DPORT));
	else
		fputs(",,,", out);
	fputc(',', out);
	int rp = first_present(present, rpkts, G_N_ELEMENTS(rpkts));
	int rb = first_present(present, rbytes, G_N_ELEMENTS(rbytes));
	if (rp >= 0 || rb >= 0)
		fprintf(out, "%" PRIu64 ",%" PRIu64, rp >= 0 ? rec_uint(rec, (Field)rp) : 0,
			rb >= 0 ? rec_uint(rec, (Field)rb) : 0);
	else
		fputc(',', out);
	fputc('\n', out);
}

/* libfixbuf warns on every message whose sequence number is not RFC 7011's; softflowd counts
 * its own records (fixtures/README.md), so count those warnings instead of printing them. */
static void
log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
	(void)user_data;
	if (strstr(message, "out of sequence") != NULL) {
		totals.seq_warnings++;
		return;
	}
	g_log_default_handler(domain, level, message, NULL);
}

static gboolean
end_of_message(const GError *err)
{
	return g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_EOM) ||
	       g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_BUFSZ);
}

/* One IPFIX message: every record libfixbuf reads from it. */
static void
decode_message(FILE *out, Exporter *ex, guint8 *msg, gsize len, gint64 recv_ms)
{
	g_autofree guint8 *rec = g_malloc0(layout.rec_len);

	totals.datagrams++;
	fBufSetBuffer(ex->fbuf, msg, len);
	for (;;) {
		g_autoptr(GError) err = NULL;
		guint16 tid;
		fbTemplate_t *tmpl = fBufNextCollectionTemplate(ex->fbuf, &tid, &err);
		size_t rlen = layout.rec_len;

		if (tmpl == NULL || !fBufNext(ex->fbuf, rec, &rlen, &err)) {
			if (!end_of_message(err)) {
				totals.errors++;
				g_printerr("fixbuf_flows: %s: %s\n", ex->addr,
					   err != NULL ? err->message : "no template");
			}
			return;
		}
		TemplateInfo *ti = fbTemplateGetContext(tmpl);
		g_autofree TemplateInfo *own = NULL;
		if (ti == NULL)
			ti = own = template_info_new(tmpl);
		guint32 domain = fbSessionGetDomain(fBufGetSession(ex->fbuf));
		DomainState *d = exporter_domain(ex, domain);
		if (ti->options) {
			options_record(d, rec, ti->present);
			continue;
		}
		print_record(out, recv_ms, ex, domain, d, rec, ti->present);
		totals.records++;
	}
}

/* Minimal link/IP/UDP walk for our own clean captures: no fragments, no IPv6 extension
 * headers. Returns the UDP payload, or NULL. */
static const guint8 *
udp_payload(int dlt, const guint8 *p, gsize caplen, char *src, gsize srclen, guint16 *sport,
	    gsize *plen)
{
	gsize off = 0;
	guint16 ethertype = 0;
	guint8 ipv = 0;

	switch (dlt) {
	case DLT_EN10MB:
		if (caplen < 14)
			return NULL;
		ethertype = (guint16)(p[12] << 8 | p[13]);
		off = 14;
		while ((ethertype == 0x8100 || ethertype == 0x88a8) && caplen >= off + 4) {
			ethertype = (guint16)(p[off + 2] << 8 | p[off + 3]);
			off += 4;
		}
		break;
	case DLT_LINUX_SLL:
		if (caplen < 16)
			return NULL;
		ethertype = (guint16)(p[14] << 8 | p[15]);
		off = 16;
		break;
#ifdef DLT_LINUX_SLL2
	case DLT_LINUX_SLL2:
		if (caplen < 20)
			return NULL;
		ethertype = (guint16)(p[0] << 8 | p[1]);
		off = 20;
		break;
#endif
	case DLT_NULL:
	case DLT_LOOP:
		if (caplen < 4)
			return NULL;
		off = 4;
		break;
	case DLT_RAW:
#ifdef DLT_IPV4
	case DLT_IPV4:
	case DLT_IPV6:
#endif
		break;
	default:
		return NULL;
	}
	if (caplen <= off)
		return NULL;
	if (ethertype == 0x0800)
		ipv = 4;
	else if (ethertype == 0x86dd)
		ipv = 6;
	else
		ipv = p[off] >> 4; /* raw and loopback link types: the IP version nibble */

	if (ipv == 4) {
		if (caplen < off + 20)
			return NULL;
		gsize ihl = (gsize)(p[off] & 0x0f) * 4;
		guint16 frag = (guint16)((p[off + 6] & 0x3f) << 8 | p[off + 7]);
		if (p[off + 9] != 17 || frag != 0 || ihl < 20)
			return NULL;
		inet_ntop(AF_INET, p + off + 12, src, (socklen_t)srclen);
		off += ihl;
	} else if (ipv == 6) {
		if (caplen < off + 40 || p[off + 6] != 17)
			return NULL;
		struct in6_addr a;
		memcpy(&a, p + off + 8, 16);
		/* spamflowd prints IPv4-mapped exporters as dotted quads */
		if (IN6_IS_ADDR_V4MAPPED(&a))
			inet_ntop(AF_INET, p + off + 20, src, (socklen_t)srclen);
		else
			inet_ntop(AF_INET6, &a, src, (socklen_t)srclen);
		off += 40;
	} else {
		return NULL;
	}
	if (caplen < off + 8)
		return NULL;
	gsize ulen = (gsize)(p[off + 4] << 8 | p[off + 5]);
	*sport = (guint16)(p[off] << 8 | p[off + 1]);
	if (ulen < 8 || ulen - 8 > caplen - off - 8)
		return NULL;
	*plen = ulen - 8;
	return p + off + 8;
}

int
main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	g_autoptr(GError) error = NULL;
	struct pcap_pkthdr *h;
	const u_char *pkt;
	int rc;

	if (argc != 2) {
		g_printerr("usage: fixbuf_flows CAPTURE.pcap\n");
		return 2;
	}
	g_log_set_default_handler(log_handler, NULL);
	if (!layout_init(&layout, &error)) {
		g_printerr("fixbuf_flows: %s\n", error->message);
		return 1;
	}
	pcap_t *pc = pcap_open_offline(argv[1], errbuf);
	if (pc == NULL) {
		g_printerr("fixbuf_flows: %s: %s\n", argv[1], errbuf);
		return 1;
	}
	int dlt = pcap_datalink(pc);
	g_autoptr(GHashTable) exporters =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, exporter_free);

	puts(CSV_HEADER);
	while ((rc = pcap_next_ex(pc, &h, &pkt)) == 1) {
		char src[INET6_ADDRSTRLEN];
		guint16 sport;
		gsize len;
		const guint8 *payload =
		    udp_payload(dlt, pkt, h->caplen, src, sizeof src, &sport, &len);
		/* RFC 7011 3.1: version 10, and the header length covers the message */
		if (payload == NULL || len < 16 || payload[0] != 0 || payload[1] != 10) {
			totals.skipped++;
			continue;
		}
		g_autofree char *key = g_strdup_printf("%s|%u", src, sport);
		Exporter *ex = g_hash_table_lookup(exporters, key);
		if (ex == NULL) {
			ex = exporter_new(src, &error);
			if (ex == NULL) {
				g_printerr("fixbuf_flows: %s\n", error->message);
				return 1;
			}
			g_hash_table_insert(exporters, g_steal_pointer(&key), ex);
		}
		/* libfixbuf wants a writable buffer; it must stay valid while we read it */
		g_autofree guint8 *msg = g_memdup2(payload, len);
		gint64 recv_ms = (gint64)h->ts.tv_sec * 1000 + h->ts.tv_usec / 1000;
		decode_message(stdout, ex, msg, len, recv_ms);
	}
	if (rc == -1) {
		g_printerr("fixbuf_flows: %s: %s\n", argv[1], pcap_geterr(pc));
		pcap_close(pc);
		return 1;
	}
	pcap_close(pc);
	g_printerr("fixbuf_flows: %" G_GUINT64_FORMAT " IPFIX datagrams, %" G_GUINT64_FORMAT
		   " data records, %" G_GUINT64_FORMAT " options records, %" G_GUINT64_FORMAT
		   " other packets, %" G_GUINT64_FORMAT " sequence warnings, %" G_GUINT64_FORMAT
		   " errors\n",
		   totals.datagrams, totals.records, totals.options_records, totals.skipped,
		   totals.seq_warnings, totals.errors);
	return totals.errors > 0 ? 1 : 0;
}
