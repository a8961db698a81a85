/* The normalized flow record: the only thing that crosses from the collector to the
 * analyzer. A plain value struct; decoders fill what the wire record carries and say, in
 * `has`, which fields are real. Addresses are 16 bytes; IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so one comparison serves both families. */
#pragma once

#include <glib.h>
#include <string.h>

typedef enum {
	FW_EVENT_NONE = 0,
	FW_EVENT_CREATED = 1, /* IPFIX firewallEvent / NSEL values 1..5 */
	FW_EVENT_DELETED = 2,
	FW_EVENT_DENIED = 3,
	FW_EVENT_ALERT = 4,
	FW_EVENT_UPDATE = 5,
} FwEvent;

enum {
	FLOW_HAS_TCP_FLAGS = 1u << 0,
	FLOW_HAS_TIMES = 1u << 1,     /* start_ms/end_ms came from the record */
	FLOW_HAS_NAT = 1u << 2,       /* nat_* came from 225-228 (or IPv6 281/282) */
	FLOW_HAS_FW_EVENT = 1u << 3,
	FLOW_HAS_DIRECTION = 1u << 4, /* direction is 0 ingress / 1 egress (IE 61) */
	FLOW_HAS_REVERSE = 1u << 5,   /* RFC 5103 reverse counters present */
	FLOW_TIMES_INVALID = 1u << 6, /* exported times present but implausible; kept zero */
	FLOW_HAS_PACKETS = 1u << 7,
	FLOW_HAS_BYTES = 1u << 8,
	/* One sampled packet (sFlow), not a flow: its TCP flags are that packet's alone, and a
	 * connection shows as several records (the analyzer counts a connection once, by the
	 * packet that opens it). */
	FLOW_PACKET_SAMPLE = 1u << 9,
};

typedef struct {
	gint64 recv_ms;  /* datagram receive time (capture time on replay): the analyzer's clock */
	gint64 start_ms; /* flow start/end as exported, Unix ms; 0 when unknown */
	gint64 end_ms;
	guint64 packets;
	guint64 bytes;
	guint64 rev_packets;
	guint64 rev_bytes;
	guint8 src[16]; /* the inside (pre-NAT) addresses */
	guint8 dst[16];
	guint8 nat_src[16]; /* post-NAT, when FLOW_HAS_NAT */
	guint8 nat_dst[16];
	guint32 sampling; /* 1 = unsampled; counts are as exported, not scaled */
	guint32 exporter; /* index into the collector's exporter table */
	guint32 domain;   /* observation domain / source id */
	guint16 sport;
	guint16 dport;
	guint16 nat_sport;
	guint16 nat_dport;
	guint16 has; /* FLOW_HAS_* */
	guint8 proto;
	guint8 tcp_flags; /* OR of all packets' flags */
	guint8 fw_event;  /* FwEvent */
	guint8 direction;
	guint8 version; /* 5, 9, 10 (NetFlow, IPFIX) or FLOW_VERSION_SFLOW5 */
	guint8 pad_;
} Flow;

/* Flow.version of a record from sFlow v5 (NetFlow's 5 is taken). */
#define FLOW_VERSION_SFLOW5 205

/* "5", "9", "10" or "sflow5": how outputs name a version. */
const char *flow_version_name(guint8 version);

static inline gboolean
flow_addr_is_v4(const guint8 a[16])
{
	static const guint8 pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, pfx, 12) == 0;
}

static inline void
flow_addr_set_v4(guint8 a[16], const guint8 v4[4])
{
	memset(a, 0, 10);
	a[10] = 0xff;
	a[11] = 0xff;
	memcpy(a + 12, v4, 4);
}

/* Format an address for output: dotted quad for IPv4-mapped, RFC 5952 text otherwise. */
const char *flow_addr_str(const guint8 a[16], char *buf, gsize len);
const char *fw_event_name(guint8 ev);

/* A bounded batch of records handed to the consumer as it fills. Decoders push records;
 * nothing on this path allocates per record. */
typedef struct FlowBatch FlowBatch;
typedef void (*FlowBatchFlush)(const Flow *flows, guint n, gpointer user_data);

struct FlowBatch {
	Flow *v;
	guint n;
	guint cap;
	FlowBatchFlush flush;
	gpointer user_data;
};

FlowBatch *flow_batch_new(guint cap, FlowBatchFlush flush, gpointer user_data);
void flow_batch_free(FlowBatch *b);
void flow_batch_flush(FlowBatch *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowBatch, flow_batch_free)

/* The next free slot, zeroed; flushes first when the batch is full. Every slot from n on
 * is kept zero (the batch is allocated zeroed and flow_batch_flush() clears what it
 * handed out in one memset), so taking a slot costs no per-record clear: a per-record
 * memset would be most of the v5 decoder's time (bench/README.md). A slot taken must be
 * committed before the next one is taken. */
static inline Flow *
flow_batch_next(FlowBatch *b)
{
	if (b->n == b->cap)
		flow_batch_flush(b);
	return &b->v[b->n];
}

/* Commit the slot returned by flow_batch_next(). */
static inline void
flow_batch_commit(FlowBatch *b)
{
	b->n++;
}
