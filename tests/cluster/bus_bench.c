/* bus_bench: bus_publish() throughput to SPAMFLOW_FLOWS (replicas as given) on a real
 * cluster, through the whole path (buffer, sender thread, async publish, acks). Offers
 * COUNT messages of SIZE bytes over the partitions as fast as the buffer takes them (a full
 * buffer: wait 50 us and offer again, so nothing is dropped), then flushes; prints messages
 * and bytes per second, and the CPU time of the process per message.
 *
 *   python3 tests/system/natsutil.py 3 1048576 -- build/tests/cluster/bus_bench {urls} SIZE COUNT
 * [REPLICAS]
 */
#include "bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double
cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int
main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bus_bench URLS SIZE COUNT [REPLICAS]\n");
		return 2;
	}
	gsize size = (gsize)g_ascii_strtoull(argv[2], NULL, 10);
	guint count = (guint)g_ascii_strtoull(argv[3], NULL, 10);
	guint replicas = argc > 4 ? (guint)g_ascii_strtoull(argv[4], NULL, 10) : 3;
	BusConfig c = {
	    .servers = argv[1],
	    .node = "bench",
	    .partitions = 64,
	    .replicas = replicas,
	    .flows_max_age_ms = 10 * 60 * 1000,
	    .flows_max_bytes = 1ull
			       << 30, /* reserved on each replica: within the test servers' 2 GiB */
	    .alerts_max_age_ms = 10 * 60 * 1000,
	    .lease_ttl_ms = 10000,
	    .node_ttl_ms = 10000,
	    .max_snapshot = 1u << 20,
	    .publish_buffer = 64u << 20,
	    .timeout_ms = 15000,
	};
	GError *e = NULL;
	Bus *bus = bus_new(&c, &e);
	if (bus == NULL || !bus_setup(bus, &e)) {
		fprintf(stderr, "bus_bench: %s\n", e->message);
		return 1;
	}
	guint8 *data = g_malloc(size);
	for (gsize i = 0; i < size; i++)
		data[i] = (guint8)(i * 131);
	char subj[64], id[64];
	double cpu0 = cpu_seconds();
	gint64 t0 = g_get_monotonic_time();
	guint64 waits = 0;
	for (guint i = 0; i < count; i++) {
		g_snprintf(subj, sizeof(subj), "%s.%u", BUS_SUBJECT_FLOWS, i % c.partitions);
		g_snprintf(id, sizeof(id), "bench-%" G_GINT64_FORMAT "-%u", t0, i);
		while (!bus_publish(bus, subj, data, size, id)) {
			waits++;
			g_usleep(50);
		}
	}
	if (!bus_flush(bus, 120000)) {
		fprintf(stderr, "bus_bench: flush timed out\n");
		return 1;
	}
	double secs = (g_get_monotonic_time() - t0) / 1e6;
	double cpu = cpu_seconds() - cpu0;
	BusStats st;
	bus_get_stats(bus, &st);
	printf("%u messages of %" G_GSIZE_FORMAT " bytes to a %u-replica stream in %.2f s: "
	       "%.0f msg/s, %.1f MB/s; process CPU %.1f us/msg; published %" G_GUINT64_FORMAT
	       " failed %" G_GUINT64_FORMAT " retried %" G_GUINT64_FORMAT
	       " (buffer full %" G_GUINT64_FORMAT " times, dropped counted %" G_GUINT64_FORMAT
	       ")\n",
	       count, size, replicas, secs, count / secs, count * (double)size / secs / 1e6,
	       cpu / count * 1e6, st.published, st.failed, st.retried, waits, st.dropped);
	g_free(data);
	bus_free(bus);
	bus_shutdown_library();
	return st.published == count && st.failed == 0 ? 0 : 1;
}
