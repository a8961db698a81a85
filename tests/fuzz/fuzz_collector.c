/* libFuzzer harness for the whole collector core, any version: the input is a sequence of
 * datagrams, each behind a 2-byte big-endian length, fed in order to one collector so that
 * template, sequence and sampling state carries across datagrams. A 0-length datagram also
 * moves the clock 45 s and runs collector_expire(); a 1-byte one switches the exporter port
 * (its byte picks one of 8), so the exporter cap, template and exporter expiry all run. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CollectorConfig cfg;
	FuzzSink sink = {0};
	guint8 addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
	gint64 now = G_GINT64_CONSTANT(1700000000000);
	guint16 port = 2055;
	gboolean expired = FALSE;

	collector_config_defaults(&cfg);
	/* Small caps so the fuzzer reaches the refusal paths. */
	cfg.max_exporters = 4;
	cfg.max_domains = 4;
	cfg.max_templates = 16;
	cfg.template_timeout_s = 30;
	cfg.exporter_timeout_s = 60;
	FlowBatch *b = flow_batch_new(16, fuzz_flush_cb, &sink);
	Collector *c = collector_new(&cfg, b);

	gsize off = 0;
	while (size - off >= 2) {
		gsize len = ((gsize)data[off] << 8) | data[off + 1];
		off += 2;
		len = MIN(len, size - off);
		guint8 *buf = fuzz_copy(data + off, len);
		guint n = collector_input(c, addr, port, buf, len, now);
		flow_batch_flush(b);
		FUZZ_CHECK(n <= len);
		if (len == 0) {
			now += 45000;
			collector_expire(c, now);
			expired = TRUE;
		} else if (len == 1) {
			port = (guint16)(2055 + buf[0] % 8);
		}
		g_free(buf);
		off += len;
		now += 10;
	}
	fuzz_check_totals(c, &sink, &cfg, !expired);
	collector_expire(c, now + G_GINT64_CONSTANT(86400000));
	collector_free(c);
	flow_batch_free(b);
	return 0;
}
