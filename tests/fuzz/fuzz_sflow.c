/* libFuzzer harness for the sFlow v5 decoder (collector/sflow.c): one input is one datagram,
 * its first four bytes forced to version 5 (00 00 00 05), through a fresh collector, then
 * the same datagram again, so the per-agent and per-source sequence paths run on state the
 * first pass left. Built as a libFuzzer binary with -Dfuzz=true (clang) and always as
 * sflow_replay for meson test. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const guint8 addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
	CollectorConfig cfg;
	FuzzSink sink = {0};
	const gint64 now = G_GINT64_CONSTANT(1700000000000);

	if (size > 65535)
		return 0;
	guint8 *buf = fuzz_copy(data, size);
	if (size >= 4) {
		buf[0] = buf[1] = buf[2] = 0;
		buf[3] = 5;
	}
	collector_config_defaults(&cfg);
	cfg.max_sflow_sources = 8; /* small, so the refusal path runs */
	FlowBatch *b = flow_batch_new(16, fuzz_flush_cb, &sink);
	Collector *c = collector_new(&cfg, b);
	for (guint pass = 0; pass < 2; pass++) {
		guint n = collector_input(c, addr, 6343, buf, size, now + pass);
		flow_batch_flush(b);
		/* a flow takes a sample header and a flow sample's fixed fields at least */
		FUZZ_CHECK(n <= size / 40);
	}
	FUZZ_CHECK(collector_totals(c)->sflow_sources <= cfg.max_sflow_sources);
	fuzz_check_totals(c, &sink, &cfg, TRUE);
	collector_expire(c, now + G_GINT64_CONSTANT(86400000));
	FUZZ_CHECK(collector_totals(c)->sflow_sources == 0);
	collector_free(c);
	flow_batch_free(b);
	g_free(buf);
	return 0;
}
