/* The cluster's messages on the bus (wire.h; doc/cluster.md, "Wire format"): flow batches
 * from a collector to a partition's analyzer, alert events from that analyzer to every node.
 * Compact: a flow carries only the fields it has (a presence bitmap), IPv4 addresses in 4
 * bytes, times and counters as varints, times as deltas. Decoders read the untrusted bytes
 * through a Cursor and check each count against the bytes left before allocating for it.
 *
 * Flow batch ("SFCB"), fixed-width fields big-endian, varints LEB128 (7 bits a byte, least
 * significant group first, as protobuf; at most 10 bytes), sN = zigzag-encoded signed delta:
 *   "SFCB", u8 version (1), u8 node length (<= 63), node (no NUL),
 *   u32 partition, u64 batch_seq, i64 clock_ms, u16 n_exporters (<= 256),
 *   n_exporters x addr, u32 n_flows (<= 65535), n_flows x flow
 * addr: u8 length 4 (IPv4, stored IPv4-mapped) or 16, and that many bytes
 * flow: varint presence bits (P_* below), varint s(recv_ms - previous flow's recv_ms, the
 *   first flow's from clock_ms), u8 proto, u8 version, varint has, u16 sport, u16 dport,
 *   src and dst (4 bytes, or 16 with P_SRC6 / P_DST6), then each field whose bit is set, in
 *   bit order (absent: 0; sampling absent: 1):
 *   start_ms s(- recv_ms), end_ms s(- start_ms), packets, bytes, u8 tcp_flags, exporter
 *   (index into the batch's exporters), domain, sampling, rev_packets, rev_bytes,
 *   u8 fw_event, u8 direction, nat_src, nat_dst (4 or 16 bytes), u16 nat_sport, nat_dport
 * Alert ("SFCA"): "SFCA", u8 version (1), u8 node length, node, u32 partition, u64 lease_rev,
 *   u64 lease_from_ms, u32 length + the event (alert_codec.h, the analyzer state file's form, exporter indexes
 *   0..n-1), then ev.n_exporters x addr.
 * History ("SFCH"): "SFCH", u8 version (1), u8 node length, node, u32 partition, u64
 *   lease_rev, u16 piece, u32 length + the slice payload (history_seg.h's, opaque here).
 * Control record ("SFCC"): "SFCC", u8 version (1), u8 node length, node, u64 boot_ms, u64 id,
 *   u32 partition, u8 op (1 suppress, 2 unsuppress, 3 forget), addr (the host), u8 flags
 *   (bit 0: every reason; no other bit), u8 reason (< REASON_COUNT, 0 with bit 0),
 *   u64 until_ms, u64 set_ms, u32 uid, u32 pid, u8 note length (<= 200), note (no NUL).
 * Times are Unix ms in [0, 2^50) (statebuf.h's collector range): the encoder clamps into
 * it, the decoder refuses anything outside, so no delta or timeout arithmetic overflows. */
#include "wire.h"

#include <arpa/inet.h>

#include "alert_codec.h"
#include "fnv1a.h"
#include "statebuf.h"

G_DEFINE_QUARK(cluster-wire-error-quark, cluster_wire_error)

#define WIRE_BATCH_MAGIC "SFCB"
#define WIRE_ALERT_MAGIC "SFCA"
#define WIRE_HISTORY_MAGIC "SFCH"
#define WIRE_CTL_MAGIC "SFCC"
#define WIRE_VERSION 1
#define WIRE_NODE_MAX 63
G_STATIC_ASSERT(sizeof(((ClusterBatch *)0)->node) == WIRE_NODE_MAX + 1);
G_STATIC_ASSERT(sizeof(((ClusterAlert *)0)->node) == WIRE_NODE_MAX + 1);
G_STATIC_ASSERT(sizeof(((ClusterHistory *)0)->node) == WIRE_NODE_MAX + 1);
G_STATIC_ASSERT(sizeof(((ClusterCtl *)0)->node) == WIRE_NODE_MAX + 1);
G_STATIC_ASSERT(CLUSTER_CTL_NOTE_MAX <= G_MAXUINT8);
G_STATIC_ASSERT(REASON_COUNT <= G_MAXUINT8);
/* "c-" + node 63 + two "-<u64>" 21 each and the NUL */
G_STATIC_ASSERT(CLUSTER_WIRE_ID_MAX >= 2 + WIRE_NODE_MAX + 2 * 21 + 1);
G_STATIC_ASSERT(CLUSTER_WIRE_MAX_EXPORTERS <= G_MAXUINT16);
G_STATIC_ASSERT(CLUSTER_WIRE_MAX_FLOWS <= G_MAXUINT32);

/* A flow's presence bits: the ones a typical TCP flow of one exporter uses fit the varint's
 * first byte. */
enum {
	P_START = 1u << 0,
	P_END = 1u << 1,
	P_PACKETS = 1u << 2,
	P_BYTES = 1u << 3,
	P_TCP_FLAGS = 1u << 4,
	P_SRC6 = 1u << 5,
	P_DST6 = 1u << 6,
	P_EXPORTER = 1u << 7,
	P_DOMAIN = 1u << 8,
	P_SAMPLING = 1u << 9,
	P_REV_PACKETS = 1u << 10,
	P_REV_BYTES = 1u << 11,
	P_FW_EVENT = 1u << 12,
	P_DIRECTION = 1u << 13,
	P_NAT_SRC = 1u << 14,
	P_NAT_SRC6 = 1u << 15,
	P_NAT_DST = 1u << 16,
	P_NAT_DST6 = 1u << 17,
	P_NAT_SPORT = 1u << 18,
	P_NAT_DPORT = 1u << 19,
	P_ALL = (1u << 20) - 1,
};

/* The smallest flow: presence, recv delta, proto, version and has of one byte each, the
 * ports, two IPv4 addresses. Bounds a declared flow count by the bytes left. */
#define WIRE_FLOW_MIN (5 + 4 + 8)
/* The largest: the varints at their longest (presence 3, has 3, u32 5, u64 10 bytes). */
#define WIRE_FLOW_MAX (3 + 10 + 2 + 3 + 4 + 32 + 4 * 10 + 1 + 5 + 5 + 5 + 2 * 10 + 2 + 32 + 4)
#define WIRE_ADDR_MIN 5
#define WIRE_VARINT_MAX 10

/* ---- writing ---- */

static inline guint8 *
put_varint(guint8 *p, guint64 v)
{
	while (v >= 0x80) {
		*p++ = (guint8)(v | 0x80);
		v >>= 7;
	}
	*p++ = (guint8)v;
	return p;
}

/* a - b as a signed delta, zigzag-mapped so that small negative deltas stay short; unsigned
 * arithmetic wraps, so any two values round-trip */
static inline guint64
zigzag_delta(guint64 a, guint64 b)
{
	guint64 d = a - b;
	return (d << 1) ^ (0 - (d >> 63));
}

static inline guint64
unzigzag(guint64 z)
{
	return (z >> 1) ^ (0 - (z & 1));
}

static inline guint8 *
put_u16(guint8 *p, guint16 v)
{
	p[0] = (guint8)(v >> 8);
	p[1] = (guint8)v;
	return p + 2;
}

static inline guint8 *
put_addr_bytes(guint8 *p, const guint8 a[16], gboolean v6)
{
	memcpy(p, v6 ? a : a + 12, v6 ? 16 : 4);
	return p + (v6 ? 16 : 4);
}

static void
put_addr(GByteArray *out, const guint8 a[16])
{
	gboolean v4 = flow_addr_is_v4(a);
	statebuf_put_u8(out, v4 ? 4 : 16);
	statebuf_put_bytes(out, v4 ? a + 12 : a, v4 ? 4 : 16);
}

static inline guint64
clamp_ms(gint64 t)
{
	return (guint64)CLAMP(t, 0, STATEBUF_UNIX_MS_END - 1);
}

static void
put_node(GByteArray *out, const char node[WIRE_NODE_MAX + 1])
{
	gsize n = strnlen(node, WIRE_NODE_MAX);
	statebuf_put_u8(out, (guint8)n);
	statebuf_put_bytes(out, node, n);
}

/* One flow into p (WIRE_FLOW_MAX bytes); *prev_recv: the previous flow's recv_ms. */
static guint8 *
put_flow(guint8 *p, const Flow *f, guint64 *prev_recv)
{
	guint64 recv = clamp_ms(f->recv_ms);
	guint64 start = f->start_ms != 0 ? clamp_ms(f->start_ms) : 0;
	guint64 end = f->end_ms != 0 ? clamp_ms(f->end_ms) : 0;
	gboolean src6 = !flow_addr_is_v4(f->src), dst6 = !flow_addr_is_v4(f->dst);
	static const guint8 zero[16];
	gboolean nat_src = memcmp(f->nat_src, zero, 16) != 0;
	gboolean nat_dst = memcmp(f->nat_dst, zero, 16) != 0;
	guint32 present =
	    (start ? P_START : 0) | (end ? P_END : 0) | (f->packets ? P_PACKETS : 0) |
	    (f->bytes ? P_BYTES : 0) | (f->tcp_flags ? P_TCP_FLAGS : 0) | (src6 ? P_SRC6 : 0) |
	    (dst6 ? P_DST6 : 0) | (f->exporter ? P_EXPORTER : 0) | (f->domain ? P_DOMAIN : 0) |
	    (f->sampling != 1 ? P_SAMPLING : 0) | (f->rev_packets ? P_REV_PACKETS : 0) |
	    (f->rev_bytes ? P_REV_BYTES : 0) | (f->fw_event ? P_FW_EVENT : 0) |
	    (f->direction ? P_DIRECTION : 0) | (nat_src ? P_NAT_SRC : 0) |
	    (nat_src && !flow_addr_is_v4(f->nat_src) ? P_NAT_SRC6 : 0) | (nat_dst ? P_NAT_DST : 0) |
	    (nat_dst && !flow_addr_is_v4(f->nat_dst) ? P_NAT_DST6 : 0) |
	    (f->nat_sport ? P_NAT_SPORT : 0) | (f->nat_dport ? P_NAT_DPORT : 0);

	p = put_varint(p, present);
	p = put_varint(p, zigzag_delta(recv, *prev_recv));
	*prev_recv = recv;
	*p++ = f->proto;
	*p++ = f->version;
	p = put_varint(p, f->has);
	p = put_u16(p, f->sport);
	p = put_u16(p, f->dport);
	p = put_addr_bytes(p, f->src, src6);
	p = put_addr_bytes(p, f->dst, dst6);
	if (present & P_START)
		p = put_varint(p, zigzag_delta(start, recv));
	if (present & P_END)
		p = put_varint(p, zigzag_delta(end, start));
	if (present & P_PACKETS)
		p = put_varint(p, f->packets);
	if (present & P_BYTES)
		p = put_varint(p, f->bytes);
	if (present & P_TCP_FLAGS)
		*p++ = f->tcp_flags;
	if (present & P_EXPORTER)
		p = put_varint(p, f->exporter);
	if (present & P_DOMAIN)
		p = put_varint(p, f->domain);
	if (present & P_SAMPLING)
		p = put_varint(p, f->sampling);
	if (present & P_REV_PACKETS)
		p = put_varint(p, f->rev_packets);
	if (present & P_REV_BYTES)
		p = put_varint(p, f->rev_bytes);
	if (present & P_FW_EVENT)
		*p++ = f->fw_event;
	if (present & P_DIRECTION)
		*p++ = f->direction;
	if (present & P_NAT_SRC)
		p = put_addr_bytes(p, f->nat_src, (present & P_NAT_SRC6) != 0);
	if (present & P_NAT_DST)
		p = put_addr_bytes(p, f->nat_dst, (present & P_NAT_DST6) != 0);
	if (present & P_NAT_SPORT)
		p = put_u16(p, f->nat_sport);
	if (present & P_NAT_DPORT)
		p = put_u16(p, f->nat_dport);
	return p;
}

void
cluster_wire_batch_encode(const ClusterBatch *b, GByteArray *out)
{
	guint start_len = out->len;

	g_return_if_fail(b->n_exporters <= CLUSTER_WIRE_MAX_EXPORTERS);
	g_return_if_fail(b->n_flows <= CLUSTER_WIRE_MAX_FLOWS);
	g_return_if_fail(b->n_flows == 0 || b->flows != NULL);

	statebuf_put_bytes(out, WIRE_BATCH_MAGIC, 4);
	statebuf_put_u8(out, WIRE_VERSION);
	put_node(out, b->node);
	statebuf_put_u32(out, b->partition);
	statebuf_put_u64(out, b->batch_seq);
	guint64 prev_recv = clamp_ms(b->clock_ms);
	statebuf_put_u64(out, prev_recv);
	statebuf_put_u16(out, (guint16)b->n_exporters);
	for (guint i = 0; i < b->n_exporters; i++)
		put_addr(out, b->exporters[i]);
	statebuf_put_u32(out, b->n_flows);
	for (guint i = 0; i < b->n_flows; i++) {
		guint8 buf[WIRE_FLOW_MAX];
		const Flow *f = &b->flows[i];
		/* the decoder would refuse the whole batch: refuse it here, where the bug is */
		if (f->exporter >= b->n_exporters) {
			g_critical("cluster batch: flow %u: exporter index %u, but %u exporters", i,
				   f->exporter, b->n_exporters);
			g_byte_array_set_size(out, start_len);
			return;
		}
		guint8 *end = put_flow(buf, f, &prev_recv);
		g_byte_array_append(out, buf, (guint)(end - buf));
	}
}

/* ---- reading ---- */

/* A Cursor and, once a read has failed, what failed: the error's code, the field, why. */
typedef struct {
	Cursor c;
	ClusterWireError code;
	const char *field;
	const char *why;
} Rd;

static gboolean
rd_fail(Rd *r, ClusterWireError code, const char *field, const char *why)
{
	r->code = code;
	r->field = field;
	r->why = why;
	return FALSE;
}

static gboolean
rd_short(Rd *r, const char *field)
{
	return rd_fail(r, CLUSTER_WIRE_ERROR_TRUNCATED, field, "the message ends early");
}

static gboolean
rd_bad(Rd *r, const char *field, const char *why)
{
	return rd_fail(r, CLUSTER_WIRE_ERROR_INVALID, field, why);
}

/* "flow batch: flow 3: src: the message ends early (byte 120)" */
static gboolean
rd_report(const Rd *r, const char *what, gint64 flow, GError **error)
{
	if (flow >= 0)
		g_set_error(error, CLUSTER_WIRE_ERROR, r->code,
			    "%s: flow %" G_GINT64_FORMAT ": %s: %s (byte %" G_GSIZE_FORMAT ")",
			    what, flow, r->field, r->why, r->c.off);
	else
		g_set_error(error, CLUSTER_WIRE_ERROR, r->code,
			    "%s: %s: %s (byte %" G_GSIZE_FORMAT ")", what, r->field, r->why,
			    r->c.off);
	return FALSE;
}

static inline gboolean
rd_u8(Rd *r, guint8 *v, const char *field)
{
	return cursor_u8(&r->c, v) || rd_short(r, field);
}

static inline gboolean
rd_u16(Rd *r, guint16 *v, const char *field)
{
	return cursor_u16(&r->c, v) || rd_short(r, field);
}

static inline gboolean
rd_u32(Rd *r, guint32 *v, const char *field)
{
	return cursor_u32(&r->c, v) || rd_short(r, field);
}

static inline gboolean
rd_u64(Rd *r, guint64 *v, const char *field)
{
	return statebuf_get_u64(&r->c, v) || rd_short(r, field);
}

/* A LEB128 varint of at most WIRE_VARINT_MAX bytes and value at most max. */
static gboolean
rd_varint(Rd *r, guint64 max, guint64 *v, const char *field)
{
	guint64 x = 0;
	for (guint shift = 0;; shift += 7) {
		guint8 b;
		if (!cursor_u8(&r->c, &b))
			return rd_short(r, field);
		if (shift == 7 * (WIRE_VARINT_MAX - 1) && b > 1)
			return rd_bad(r, field, "varint longer than 64 bits");
		x |= (guint64)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	if (x > max)
		return rd_bad(r, field, "out of range");
	*v = x;
	return TRUE;
}

static inline gboolean
rd_varint32(Rd *r, guint32 *v, const char *field)
{
	guint64 x;
	if (!rd_varint(r, G_MAXUINT32, &x, field))
		return FALSE;
	*v = (guint32)x;
	return TRUE;
}

/* A Unix time in ms, base + a zigzag delta: in [0, 2^50) */
static gboolean
rd_time(Rd *r, guint64 base, gint64 *v, const char *field)
{
	guint64 z, t;
	if (!rd_varint(r, G_MAXUINT64, &z, field))
		return FALSE;
	t = base + unzigzag(z);
	if (t >= (guint64)STATEBUF_UNIX_MS_END)
		return rd_bad(r, field, "time out of range");
	*v = (gint64)t;
	return TRUE;
}

static inline gboolean
rd_addr_bytes(Rd *r, gboolean v6, guint8 a[16], const char *field)
{
	guint8 v4[4];
	if (v6)
		return cursor_bytes(&r->c, a, 16) || rd_short(r, field);
	if (!cursor_bytes(&r->c, v4, 4))
		return rd_short(r, field);
	flow_addr_set_v4(a, v4);
	return TRUE;
}

/* addr: u8 length 4 or 16, the address */
static gboolean
rd_addr(Rd *r, guint8 a[16], const char *field)
{
	guint8 n;
	if (!rd_u8(r, &n, field))
		return FALSE;
	if (n != 4 && n != 16)
		return rd_bad(r, field, "address length not 4 or 16");
	return rd_addr_bytes(r, n == 16, a, field);
}

static gboolean
rd_node(Rd *r, char node[WIRE_NODE_MAX + 1])
{
	guint8 n;
	memset(node, 0, WIRE_NODE_MAX + 1);
	if (!rd_u8(r, &n, "node"))
		return FALSE;
	if (n > WIRE_NODE_MAX)
		return rd_bad(r, "node", "name longer than 63 bytes");
	if (!cursor_bytes(&r->c, node, n))
		return rd_short(r, "node");
	if (memchr(node, '\0', n) != NULL)
		return rd_bad(r, "node", "NUL in the name");
	return TRUE;
}

/* magic and version */
static gboolean
rd_head(Rd *r, const char magic[4])
{
	guint8 m[4], v;
	if (!cursor_bytes(&r->c, m, 4))
		return rd_short(r, "magic");
	if (memcmp(m, magic, 4) != 0)
		return rd_fail(r, CLUSTER_WIRE_ERROR_MAGIC, "magic", "not this kind of message");
	if (!rd_u8(r, &v, "version"))
		return FALSE;
	if (v != WIRE_VERSION)
		return rd_fail(r, CLUSTER_WIRE_ERROR_VERSION, "version",
			       "a version this build does not read (it reads 1)");
	return TRUE;
}

static gboolean
rd_flow(Rd *r, guint n_exporters, guint64 *prev_recv, Flow *f)
{
	guint64 present, v;

	if (!rd_varint(r, P_ALL, &present, "presence bits"))
		return FALSE;
	if (((present & P_NAT_SRC6) && !(present & P_NAT_SRC)) ||
	    ((present & P_NAT_DST6) && !(present & P_NAT_DST)))
		return rd_bad(r, "presence bits", "an IPv6 NAT address that is not there");
	if (!rd_time(r, *prev_recv, &f->recv_ms, "recv_ms"))
		return FALSE;
	*prev_recv = (guint64)f->recv_ms;
	if (!rd_u8(r, &f->proto, "proto") || !rd_u8(r, &f->version, "version") ||
	    !rd_varint(r, G_MAXUINT16, &v, "has"))
		return FALSE;
	f->has = (guint16)v;
	if (!rd_u16(r, &f->sport, "sport") || !rd_u16(r, &f->dport, "dport") ||
	    !rd_addr_bytes(r, (present & P_SRC6) != 0, f->src, "src") ||
	    !rd_addr_bytes(r, (present & P_DST6) != 0, f->dst, "dst"))
		return FALSE;
	if ((present & P_START) && !rd_time(r, (guint64)f->recv_ms, &f->start_ms, "start_ms"))
		return FALSE;
	if ((present & P_END) && !rd_time(r, (guint64)f->start_ms, &f->end_ms, "end_ms"))
		return FALSE;
	if (((present & P_PACKETS) && !rd_varint(r, G_MAXUINT64, &f->packets, "packets")) ||
	    ((present & P_BYTES) && !rd_varint(r, G_MAXUINT64, &f->bytes, "bytes")) ||
	    ((present & P_TCP_FLAGS) && !rd_u8(r, &f->tcp_flags, "tcp_flags")) ||
	    ((present & P_EXPORTER) && !rd_varint32(r, &f->exporter, "exporter")) ||
	    ((present & P_DOMAIN) && !rd_varint32(r, &f->domain, "domain")))
		return FALSE;
	f->sampling = 1;
	if (((present & P_SAMPLING) && !rd_varint32(r, &f->sampling, "sampling")) ||
	    ((present & P_REV_PACKETS) &&
	     !rd_varint(r, G_MAXUINT64, &f->rev_packets, "rev_packets")) ||
	    ((present & P_REV_BYTES) && !rd_varint(r, G_MAXUINT64, &f->rev_bytes, "rev_bytes")) ||
	    ((present & P_FW_EVENT) && !rd_u8(r, &f->fw_event, "fw_event")) ||
	    ((present & P_DIRECTION) && !rd_u8(r, &f->direction, "direction")) ||
	    ((present & P_NAT_SRC) &&
	     !rd_addr_bytes(r, (present & P_NAT_SRC6) != 0, f->nat_src, "nat_src")) ||
	    ((present & P_NAT_DST) &&
	     !rd_addr_bytes(r, (present & P_NAT_DST6) != 0, f->nat_dst, "nat_dst")) ||
	    ((present & P_NAT_SPORT) && !rd_u16(r, &f->nat_sport, "nat_sport")) ||
	    ((present & P_NAT_DPORT) && !rd_u16(r, &f->nat_dport, "nat_dport")))
		return FALSE;
	/* what the collector guarantees the analyzer (tests/fuzz/fuzz.h checks its decoders for
	 * the same), so a flow from the bus is as safe to count as a local one */
	if (f->exporter >= n_exporters)
		return rd_bad(r, "exporter", "index past the batch's exporters");
	if (f->sampling == 0)
		return rd_bad(r, "sampling", "0 (1 is unsampled)");
	if (f->version != 5 && f->version != 9 && f->version != 10 &&
	    f->version != FLOW_VERSION_SFLOW5)
		return rd_bad(r, "version", "not 5, 9, 10 or sflow5");
	if ((f->has & FLOW_HAS_TIMES) && f->start_ms > f->end_ms)
		return rd_bad(r, "end_ms", "before start_ms");
	return TRUE;
}

gboolean
cluster_wire_batch_peek(const guint8 *data, gsize len, char node[64], guint64 *batch_seq)
{
	Rd r = {0};
	guint32 partition;
	cursor_init(&r.c, data, len);
	return rd_head(&r, WIRE_BATCH_MAGIC) && rd_node(&r, node) &&
	       rd_u32(&r, &partition, "partition") && rd_u64(&r, batch_seq, "batch_seq");
}

gboolean
cluster_wire_batch_decode(const guint8 *data, gsize len, ClusterBatch *b, GError **error)
{
	Rd r = {0};
	guint64 clock;
	guint16 n_exp;
	guint32 n_flows;

	cluster_batch_clear(b);
	cursor_init(&r.c, data, len);
	if (!rd_head(&r, WIRE_BATCH_MAGIC) || !rd_node(&r, b->node) ||
	    !rd_u32(&r, &b->partition, "partition") || !rd_u64(&r, &b->batch_seq, "batch_seq") ||
	    !rd_u64(&r, &clock, "clock_ms"))
		goto fail;
	if (clock >= (guint64)STATEBUF_UNIX_MS_END) {
		rd_bad(&r, "clock_ms", "time out of range");
		goto fail;
	}
	b->clock_ms = (gint64)clock;
	if (!rd_u16(&r, &n_exp, "exporters"))
		goto fail;
	if (n_exp > CLUSTER_WIRE_MAX_EXPORTERS) {
		rd_bad(&r, "exporters", "more than 256");
		goto fail;
	}
	if (n_exp > cursor_left(&r.c) / WIRE_ADDR_MIN) {
		rd_short(&r, "exporters");
		goto fail;
	}
	for (b->n_exporters = 0; b->n_exporters < n_exp; b->n_exporters++) {
		if (!rd_addr(&r, b->exporters[b->n_exporters], "exporter address"))
			goto fail;
	}
	if (!rd_u32(&r, &n_flows, "flows"))
		goto fail;
	if (n_flows > CLUSTER_WIRE_MAX_FLOWS) {
		rd_bad(&r, "flows", "more than 65535");
		goto fail;
	}
	/* nothing is allocated for flows the bytes cannot hold */
	if (n_flows > cursor_left(&r.c) / WIRE_FLOW_MIN) {
		rd_short(&r, "flows");
		goto fail;
	}
	b->storage = g_array_sized_new(FALSE, TRUE, sizeof(Flow), n_flows);
	g_array_set_size(b->storage, n_flows);
	Flow *flows = (Flow *)(void *)b->storage->data;
	for (guint i = 0; i < n_flows; i++) {
		if (!rd_flow(&r, n_exp, &clock, &flows[i])) {
			rd_report(&r, "flow batch", i, error);
			cluster_batch_clear(b);
			return FALSE;
		}
	}
	if (cursor_left(&r.c) != 0) {
		rd_bad(&r, "end", "trailing bytes after the batch");
		goto fail;
	}
	b->flows = flows;
	b->n_flows = n_flows;
	return TRUE;
fail:
	rd_report(&r, "flow batch", -1, error);
	cluster_batch_clear(b);
	return FALSE;
}

void
cluster_batch_clear(ClusterBatch *b)
{
	if (b->storage != NULL)
		g_array_unref(b->storage);
	memset(b, 0, sizeof *b);
}

/* ---- alerts ---- */

void
cluster_wire_alert_encode(const ClusterAlert *a, GByteArray *out)
{
	AlertEvent ev = a->ev;
	gsize mark;

	ev.n_exporters = MIN(ev.n_exporters, ALERT_EXPORTERS_MAX);
	/* the indexes are the sender's; the addresses that follow say who they were */
	for (guint i = 0; i < ev.n_exporters; i++)
		ev.exporters[i] = i;
	statebuf_put_bytes(out, WIRE_ALERT_MAGIC, 4);
	statebuf_put_u8(out, WIRE_VERSION);
	put_node(out, a->node);
	statebuf_put_u32(out, a->partition);
	statebuf_put_u64(out, a->lease_rev);
	statebuf_put_u64(out, (guint64)clamp_ms(a->lease_from_ms));
	mark = statebuf_begin(out);
	alert_codec_put(out, &ev);
	statebuf_end(out, mark);
	for (guint i = 0; i < ev.n_exporters; i++)
		put_addr(out, a->exporters[i]);
}

gboolean
cluster_wire_alert_decode(const guint8 *data, gsize len, ClusterAlert *a, GError **error)
{
	Rd r = {0};
	guint32 n;
	guint64 from;
	Cursor ec;

	memset(a, 0, sizeof *a);
	cursor_init(&r.c, data, len);
	if (!rd_head(&r, WIRE_ALERT_MAGIC) || !rd_node(&r, a->node) ||
	    !rd_u32(&r, &a->partition, "partition") || !rd_u64(&r, &a->lease_rev, "lease_rev") ||
	    !rd_u64(&r, &from, "lease_from_ms"))
		goto fail;
	if (from >= (guint64)STATEBUF_UNIX_MS_END) {
		rd_bad(&r, "lease_from_ms", "time out of range");
		goto fail;
	}
	a->lease_from_ms = (gint64)from;
	if (!rd_u32(&r, &n, "event length"))
		goto fail;
	/* inside its length, the event's own reader: running out there is a bad event */
	if (!cursor_sub(&r.c, n, &ec)) {
		rd_short(&r, "event");
		goto fail;
	}
	if (!alert_codec_get(&ec, ALERT_CODEC_VERSION, &a->ev) || cursor_left(&ec) != 0) {
		r.c.off = (gsize)(ec.p - r.c.p) + ec.off; /* where the event's reader stopped */
		rd_bad(&r, "event", "not a valid alert event");
		goto fail;
	}
	for (guint i = 0; i < a->ev.n_exporters; i++) {
		a->ev.exporters[i] = i;
		if (!rd_addr(&r, a->exporters[i], "exporter address"))
			goto fail;
	}
	if (cursor_left(&r.c) != 0) {
		rd_bad(&r, "end", "trailing bytes after the alert");
		goto fail;
	}
	return TRUE;
fail:
	rd_report(&r, "alert", -1, error);
	memset(a, 0, sizeof *a);
	return FALSE;
}

void
cluster_wire_history_encode(const ClusterHistory *h, GByteArray *out)
{
	g_return_if_fail(h->slice_len <= CLUSTER_WIRE_MAX_HISTORY);
	statebuf_put_bytes(out, WIRE_HISTORY_MAGIC, 4);
	statebuf_put_u8(out, WIRE_VERSION);
	put_node(out, h->node);
	statebuf_put_u32(out, h->partition);
	statebuf_put_u64(out, h->lease_rev);
	statebuf_put_u16(out, h->piece);
	statebuf_put_u32(out, (guint32)h->slice_len);
	statebuf_put_bytes(out, h->slice, h->slice_len);
}

gboolean
cluster_wire_history_decode(const guint8 *data, gsize len, ClusterHistory *h, GError **error)
{
	Rd r = {0};
	guint32 n;

	memset(h, 0, sizeof *h);
	cursor_init(&r.c, data, len);
	if (!rd_head(&r, WIRE_HISTORY_MAGIC) || !rd_node(&r, h->node) ||
	    !rd_u32(&r, &h->partition, "partition") || !rd_u64(&r, &h->lease_rev, "lease_rev") ||
	    !rd_u16(&r, &h->piece, "piece") || !rd_u32(&r, &n, "slice length"))
		goto fail;
	if (n > CLUSTER_WIRE_MAX_HISTORY) {
		rd_bad(&r, "slice length", "over CLUSTER_WIRE_MAX_HISTORY");
		goto fail;
	}
	if (cursor_left(&r.c) < n) {
		rd_short(&r, "slice");
		goto fail;
	}
	if (cursor_left(&r.c) > n) {
		r.c.off += n;
		rd_bad(&r, "end", "trailing bytes after the slice");
		goto fail;
	}
	h->slice = data + r.c.off;
	h->slice_len = n;
	return TRUE;
fail:
	rd_report(&r, "history", -1, error);
	memset(h, 0, sizeof *h);
	return FALSE;
}

/* ---- control records ---- */

void
cluster_wire_ctl_encode(const ClusterCtl *c, GByteArray *out)
{
	gsize note = strnlen(c->note, CLUSTER_CTL_NOTE_MAX);

	statebuf_put_bytes(out, WIRE_CTL_MAGIC, 4);
	statebuf_put_u8(out, WIRE_VERSION);
	put_node(out, c->node);
	statebuf_put_u64(out, clamp_ms(c->boot_ms));
	statebuf_put_u64(out, c->id);
	statebuf_put_u32(out, c->partition);
	statebuf_put_u8(out, (guint8)c->op);
	put_addr(out, c->host);
	statebuf_put_u8(out, c->all ? 1 : 0);
	statebuf_put_u8(out, c->all ? 0 : (guint8)c->reason);
	statebuf_put_u64(out, clamp_ms(c->until_ms));
	statebuf_put_u64(out, clamp_ms(c->set_ms));
	statebuf_put_u32(out, c->uid);
	statebuf_put_u32(out, (guint32)c->pid);
	statebuf_put_u8(out, (guint8)note);
	statebuf_put_bytes(out, c->note, note);
}

gboolean
cluster_wire_is_ctl(const guint8 *data, gsize len)
{
	return len >= 4 && memcmp(data, WIRE_CTL_MAGIC, 4) == 0;
}

static gboolean
rd_ms(Rd *r, gint64 *v, const char *field)
{
	guint64 t;
	if (!rd_u64(r, &t, field))
		return FALSE;
	if (t >= (guint64)STATEBUF_UNIX_MS_END)
		return rd_bad(r, field, "time out of range");
	*v = (gint64)t;
	return TRUE;
}

gboolean
cluster_wire_ctl_decode(const guint8 *data, gsize len, ClusterCtl *c, GError **error)
{
	Rd r = {0};
	guint8 op, flags, reason, note;
	guint32 pid;

	memset(c, 0, sizeof *c);
	cursor_init(&r.c, data, len);
	if (!rd_head(&r, WIRE_CTL_MAGIC) || !rd_node(&r, c->node) ||
	    !rd_ms(&r, &c->boot_ms, "boot_ms") || !rd_u64(&r, &c->id, "id") ||
	    !rd_u32(&r, &c->partition, "partition") || !rd_u8(&r, &op, "op"))
		goto fail;
	if (op < CLUSTER_CTL_SUPPRESS || op > CLUSTER_CTL_FORGET) {
		rd_bad(&r, "op", "not suppress, unsuppress or forget");
		goto fail;
	}
	c->op = (ClusterCtlOp)op;
	if (!rd_addr(&r, c->host, "host") || !rd_u8(&r, &flags, "flags") ||
	    !rd_u8(&r, &reason, "reason"))
		goto fail;
	if (flags & ~1u) {
		rd_bad(&r, "flags", "unknown bits");
		goto fail;
	}
	c->all = (flags & 1u) != 0;
	if (reason >= REASON_COUNT || (c->all && reason != 0)) {
		rd_bad(&r, "reason", "out of range");
		goto fail;
	}
	c->reason = (AlertReason)reason;
	if (!rd_ms(&r, &c->until_ms, "until_ms") || !rd_ms(&r, &c->set_ms, "set_ms") ||
	    !rd_u32(&r, &c->uid, "uid") || !rd_u32(&r, &pid, "pid") ||
	    !rd_u8(&r, &note, "note length"))
		goto fail;
	c->pid = (gint32)pid;
	if (note > CLUSTER_CTL_NOTE_MAX) {
		rd_bad(&r, "note", "longer than 200 bytes");
		goto fail;
	}
	if (!cursor_bytes(&r.c, c->note, note)) {
		rd_short(&r, "note");
		goto fail;
	}
	if (memchr(c->note, '\0', note) != NULL) {
		rd_bad(&r, "note", "NUL in the text");
		goto fail;
	}
	if (cursor_left(&r.c) != 0) {
		rd_bad(&r, "end", "trailing bytes after the record");
		goto fail;
	}
	return TRUE;
fail:
	rd_report(&r, "control record", -1, error);
	memset(c, 0, sizeof *c);
	return FALSE;
}

void
cluster_wire_ctl_id(const ClusterCtl *c, char *buf, gsize buf_len)
{
	g_snprintf(buf, buf_len, "c-%s-%" G_GINT64_FORMAT "-%" G_GUINT64_FORMAT, c->node,
		   c->boot_ms, c->id);
}

/* At most "p4294967295-" 12 + host 45 (INET6_ADDRSTRLEN - 1) + "-submission-fanout" 18 +
 * "-updated" 8 + two "-<i64>" 21 each = 125 bytes and the NUL. */
G_STATIC_ASSERT(CLUSTER_WIRE_ID_MAX >= 12 + INET6_ADDRSTRLEN - 1 + 18 + 8 + 2 * 21 + 1);

void
cluster_wire_alert_id(guint partition, const AlertEvent *ev, char *buf, gsize buf_len)
{
	char host[INET6_ADDRSTRLEN];

	if (flow_addr_is_v4(ev->host))
		inet_ntop(AF_INET, ev->host + 12, host, sizeof host);
	else
		inet_ntop(AF_INET6, ev->host, host, sizeof host);
	g_snprintf(buf, buf_len, "p%u-%s-%s-%s-%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, partition,
		   host, alert_reason_name(ev->reason), alert_kind_name(ev->event), ev->time_ms,
		   ev->raised_ms);
}

guint
cluster_partition(const guint8 host[16], guint partitions)
{
	g_return_val_if_fail(partitions > 0, 0);
	/* FNV-1a alone, modulo a power of two, reads only the low bits of each byte: 10.0.0.1,
	 * .65, .129 and .193 would share a partition. The finalizer of MurmurHash3 (fmix32)
	 * mixes every bit of the hash into the low ones. */
	guint32 h = fnv1a(host, 16);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h % partitions;
}
