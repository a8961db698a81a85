/* Shared by the fuzz harnesses (fuzz_*.c) and replay_main.c: the libFuzzer entry point's
 * prototype, and a helper that runs one datagram through a fresh collector and checks the
 * invariants a decoder must keep whatever the bytes say. */
#pragma once

#include "collector.h"

#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A heap copy of exactly n bytes (at least one allocated), so ASan flags a read one byte
 * past the input; the caller frees it. */
static inline guint8 *
fuzz_copy(const uint8_t *data, size_t n)
{
	guint8 *p = g_malloc(n > 0 ? n : 1);
	if (n > 0)
		memcpy(p, data, n);
	return p;
}

/* Crash (so libFuzzer keeps the input) when an invariant breaks. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

typedef struct {
	guint64 flows;
	guint64 sum; /* every field is read and kept, so MSan or valgrind see one left unset */
} FuzzSink;

static inline void
fuzz_flush_cb(const Flow *flows, guint n, gpointer user_data)
{
	FuzzSink *s = user_data;
	for (guint i = 0; i < n; i++) {
		const Flow *f = &flows[i];
		s->sum += (guint64)f->start_ms + (guint64)f->end_ms + f->packets + f->bytes +
			  f->rev_packets + f->rev_bytes + f->src[15] + f->dst[15] + f->nat_src[0] +
			  f->nat_dst[0] + f->sampling + f->exporter + f->domain + f->sport +
			  f->dport + f->nat_sport + f->nat_dport + f->has + f->proto +
			  f->tcp_flags + f->fw_event + f->direction + f->version;
		FUZZ_CHECK(f->version == 5 || f->version == 9 || f->version == 10 ||
			   f->version == FLOW_VERSION_SFLOW5);
		FUZZ_CHECK(f->sampling >= 1);
		FUZZ_CHECK(!(f->has & FLOW_HAS_TIMES) || f->start_ms <= f->end_ms);
	}
	s->flows += n;
}

typedef struct {
	guint64 datagrams;
	guint64 records;
	guint32 templates;
} FuzzSums;

static inline void
fuzz_session_cb(const SessionView *v, gpointer user_data)
{
	FuzzSums *s = user_data;
	s->datagrams += v->stats->datagrams;
	s->records += v->stats->records;
	s->templates += v->stats->templates_active;
}

/* Every datagram lands in one session row, in bad_version, sflow_no_agent or in
 * exporters_refused (exact
 * only while no exporter has expired); records agree everywhere. */
static inline void
fuzz_check_totals(const Collector *c, const FuzzSink *sink, const CollectorConfig *cfg,
		  gboolean exact)
{
	const CollectorTotals *t = collector_totals(c);
	FuzzSums s = {0};
	collector_foreach_session(c, fuzz_session_cb, &s);
	if (exact) {
		FUZZ_CHECK(s.datagrams + t->bad_version + t->sflow_no_agent + t->exporters_refused ==
			   t->datagrams);
		FUZZ_CHECK(s.records == t->records);
	} else {
		FUZZ_CHECK(s.datagrams + t->bad_version + t->sflow_no_agent + t->exporters_refused <=
			   t->datagrams);
		FUZZ_CHECK(s.records <= t->records);
	}
	FUZZ_CHECK(t->records == sink->flows);
	FUZZ_CHECK(s.templates <= (guint64)cfg->max_templates * cfg->max_exporters);
}

/* One datagram from addr:port through a fresh collector; buf must be exactly size bytes. */
static inline int
fuzz_one_datagram_raw(const guint8 addr[16], guint16 port, const guint8 *buf, gsize size)
{
	CollectorConfig cfg;
	FuzzSink sink = {0};
	const gint64 now = G_GINT64_CONSTANT(1700000000000);

	collector_config_defaults(&cfg);
	FlowBatch *b = flow_batch_new(16, fuzz_flush_cb, &sink);
	Collector *c = collector_new(&cfg, b);
	guint n = collector_input(c, addr, port, buf, size, now);
	flow_batch_flush(b);
	FUZZ_CHECK(n == sink.flows);
	FUZZ_CHECK(n <= size);
	fuzz_check_totals(c, &sink, &cfg, TRUE);
	collector_expire(c, now + G_GINT64_CONSTANT(86400000));
	collector_free(c);
	flow_batch_free(b);
	return 0;
}

/* One datagram whose first two bytes are forced to `version`, through a fresh collector. */
static inline int
fuzz_one_datagram(guint16 version, const uint8_t *data, size_t size)
{
	static const guint8 addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};

	if (size > 65535)
		return 0;
	guint8 *buf = fuzz_copy(data, size);
	if (size >= 2) {
		buf[0] = (guint8)(version >> 8);
		buf[1] = (guint8)version;
	}
	(void)fuzz_one_datagram_raw(addr, 2055, buf, size);
	g_free(buf);
	return 0;
}
