/* libFuzzer harness for the cluster's wire format (cluster/wire.c): the bytes are a message
 * as the bus delivers it, a flow batch, an alert, a control record or history readings; every
 * decoder gets every input (the one whose magic it is not stops at once). Whatever the bytes: a decoder that accepts them
 * gives values inside the format's bounds (what the analyzer and the sinks rely on), and
 * their encoding decodes to the same values and encodes to the same bytes again. Seeds in
 * corpus/cluster/ (make_corpus.py: valid batches and alerts, and broken ones). */
#include "fuzz.h"

#include "wire.h"

static void
check_batch(const guint8 *p, size_t size)
{
	ClusterBatch d = {0}, d2 = {0};
	char node[64];
	guint64 seq = 0;
	/* the head alone (a batch read again): whatever a full decode accepts, it reads alike */
	gboolean head = cluster_wire_batch_peek(p, size, node, &seq);
	FUZZ_CHECK(!head || strlen(node) < sizeof node);
	if (!cluster_wire_batch_decode(p, size, &d, NULL)) {
		FUZZ_CHECK(d.storage == NULL && d.n_flows == 0);
		return;
	}
	FUZZ_CHECK(head && strcmp(node, d.node) == 0 && seq == d.batch_seq);
	FUZZ_CHECK(strlen(d.node) < sizeof d.node);
	FUZZ_CHECK(d.n_exporters <= CLUSTER_WIRE_MAX_EXPORTERS);
	FUZZ_CHECK(d.n_flows <= CLUSTER_WIRE_MAX_FLOWS && d.n_flows <= size);
	FUZZ_CHECK(d.clock_ms >= 0);
	for (guint i = 0; i < d.n_flows; i++) {
		const Flow *f = &d.flows[i];
		FUZZ_CHECK(f->exporter < d.n_exporters);
		FUZZ_CHECK(f->sampling >= 1);
		FUZZ_CHECK(f->version == 5 || f->version == 9 || f->version == 10 ||
			   f->version == FLOW_VERSION_SFLOW5);
		FUZZ_CHECK(f->recv_ms >= 0 && f->start_ms >= 0 && f->end_ms >= 0);
		FUZZ_CHECK(!(f->has & FLOW_HAS_TIMES) || f->start_ms <= f->end_ms);
		FUZZ_CHECK(f->pad_ == 0);
	}
	g_autoptr(GByteArray) e1 = g_byte_array_new();
	g_autoptr(GByteArray) e2 = g_byte_array_new();
	cluster_wire_batch_encode(&d, e1);
	FUZZ_CHECK(e1->len <= size); /* the encoder's form is never longer */
	FUZZ_CHECK(cluster_wire_batch_decode(e1->data, e1->len, &d2, NULL));
	FUZZ_CHECK(strcmp(d.node, d2.node) == 0 && d.partition == d2.partition &&
		   d.batch_seq == d2.batch_seq && d.clock_ms == d2.clock_ms &&
		   d.n_exporters == d2.n_exporters && d.n_flows == d2.n_flows);
	FUZZ_CHECK(memcmp(d.exporters, d2.exporters, sizeof d.exporters) == 0);
	FUZZ_CHECK(d.n_flows == 0 || memcmp(d.flows, d2.flows, d.n_flows * sizeof(Flow)) == 0);
	cluster_wire_batch_encode(&d2, e2);
	FUZZ_CHECK(e1->len == e2->len && memcmp(e1->data, e2->data, e1->len) == 0);
	cluster_batch_clear(&d);
	cluster_batch_clear(&d2);
}

static void
check_alert(const guint8 *p, size_t size)
{
	ClusterAlert a, a2;
	char id[CLUSTER_WIRE_ID_MAX];
	if (!cluster_wire_alert_decode(p, size, &a, NULL))
		return;
	FUZZ_CHECK(strlen(a.node) < sizeof a.node);
	FUZZ_CHECK((guint)a.ev.event < ALERT_KIND_COUNT && (guint)a.ev.reason < REASON_COUNT &&
		   (guint)a.ev.severity <= ALERT_SEV_CRITICAL);
	FUZZ_CHECK(a.ev.n_top <= ALERT_TOP_MAX && a.ev.n_exporters <= ALERT_EXPORTERS_MAX);
	for (guint i = 0; i < a.ev.n_exporters; i++)
		FUZZ_CHECK(a.ev.exporters[i] == i);
	FUZZ_CHECK(strlen(a.ev.evidence) < sizeof a.ev.evidence);
	FUZZ_CHECK(strlen(a.ev.group) < sizeof a.ev.group);
	FUZZ_CHECK(a.ev.sampling >= 1);
	cluster_wire_alert_id(a.partition, &a.ev, id, sizeof id);
	FUZZ_CHECK(strlen(id) < sizeof id - 1); /* never cut */
	FUZZ_CHECK(cluster_partition(a.ev.host, 64) < 64);
	g_autoptr(GByteArray) e1 = g_byte_array_new();
	g_autoptr(GByteArray) e2 = g_byte_array_new();
	cluster_wire_alert_encode(&a, e1);
	FUZZ_CHECK(e1->len <= size);
	FUZZ_CHECK(cluster_wire_alert_decode(e1->data, e1->len, &a2, NULL));
	FUZZ_CHECK(memcmp(&a, &a2, sizeof a) == 0);
	cluster_wire_alert_encode(&a2, e2);
	FUZZ_CHECK(e1->len == e2->len && memcmp(e1->data, e2->data, e1->len) == 0);
}

/* The history message frames an opaque slice payload (history_seg.c reads it, fuzzed by the
 * history harness): an accepted frame points inside the input, and encodes back to it. */
static void
check_history(const guint8 *p, size_t size)
{
	ClusterHistory h;
	if (!cluster_wire_history_decode(p, size, &h, NULL))
		return;
	FUZZ_CHECK(strlen(h.node) < sizeof h.node);
	FUZZ_CHECK(h.slice_len <= CLUSTER_WIRE_MAX_HISTORY);
	FUZZ_CHECK(h.slice >= p && h.slice + h.slice_len == p + size);
	g_autoptr(GByteArray) e = g_byte_array_new();
	cluster_wire_history_encode(&h, e);
	FUZZ_CHECK(e->len == size && memcmp(e->data, p, size) == 0);
}

static void
check_ctl(const guint8 *p, size_t size)
{
	ClusterCtl c, c2;
	char id[CLUSTER_WIRE_ID_MAX];
	if (!cluster_wire_ctl_decode(p, size, &c, NULL))
		return;
	FUZZ_CHECK(cluster_wire_is_ctl(p, size));
	FUZZ_CHECK(strlen(c.node) < sizeof c.node && strlen(c.note) < sizeof c.note);
	FUZZ_CHECK(c.op >= CLUSTER_CTL_SUPPRESS && c.op <= CLUSTER_CTL_FORGET);
	FUZZ_CHECK((guint)c.reason < REASON_COUNT && (!c.all || c.reason == 0));
	FUZZ_CHECK(c.until_ms >= 0 && c.set_ms >= 0 && c.boot_ms >= 0);
	cluster_wire_ctl_id(&c, id, sizeof id);
	FUZZ_CHECK(strlen(id) < sizeof id - 1);
	g_autoptr(GByteArray) e1 = g_byte_array_new();
	g_autoptr(GByteArray) e2 = g_byte_array_new();
	cluster_wire_ctl_encode(&c, e1);
	FUZZ_CHECK(e1->len <= size); /* an IPv4 host sent in 16 bytes shrinks */
	FUZZ_CHECK(cluster_wire_ctl_decode(e1->data, e1->len, &c2, NULL));
	FUZZ_CHECK(memcmp(&c, &c2, sizeof c) == 0);
	cluster_wire_ctl_encode(&c2, e2);
	FUZZ_CHECK(e1->len == e2->len && memcmp(e1->data, e2->data, e1->len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree guint8 *p = fuzz_copy(data, size);
	check_batch(p, size);
	check_alert(p, size);
	check_history(p, size);
	check_ctl(p, size);
	return 0;
}
