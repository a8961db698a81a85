/* libFuzzer harness for the pcap replay reader's packet parser (replay_parse_packet() in
 * collector/replay.c): the first input byte picks the link type from the table below, the
 * rest is one captured packet. A yielded datagram must lie inside the packet; it then goes
 * through a fresh collector like a replayed datagram would. */
#include "fuzz.h"

#include "replay.h"

#include <pcap/pcap.h>

/* Every link type the reader supports, plus one it does not (make_corpus.py mirrors this). */
static const int linktypes[] = {
    DLT_NULL, DLT_LOOP, DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2,
    DLT_RAW,  101,	DLT_IPV4,   DLT_IPV6,	   DLT_USER0,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ReplayDatagram d;

	if (size < 1)
		return 0;
	int lt = linktypes[data[0] % G_N_ELEMENTS(linktypes)];
	gsize caplen = size - 1;
	guint8 *pkt = fuzz_copy(data + 1, caplen);
	ReplayResult r = replay_parse_packet(lt, pkt, caplen, &d);
	FUZZ_CHECK((guint)r < REPLAY_RESULT_N);
	FUZZ_CHECK(replay_result_name(r) != NULL);
	if (r == REPLAY_OK) {
		FUZZ_CHECK(d.payload >= pkt && d.len <= caplen &&
			   (gsize)(d.payload - pkt) <= caplen - d.len);
		(void)fuzz_one_datagram_raw(d.addr, d.port, d.payload, d.len);
	}
	g_free(pkt);
	return 0;
}
