/* coord_check: one cluster node's coordinator (cluster/coord.c) on the real bus
 * (cluster/bus_nats.c), with a stand-in for the analyzer: a partition's state is the list of
 * flow payloads applied ("m1,m2,"), snapshotted every SNAPSHOT_MS and handed over on
 * COORD_RELEASE. tests/system/cluster_coord.py runs three of them against a real NATS cluster.
 *
 *   coord_check URLS NODE ALERT_GROUP
 *
 * Every event is a JSON line on standard output, with "t" the wall clock in ms (the driver
 * compares processes): acquired, flows, release, lost, alert, request, reply, status. Commands
 * on standard input, one per line:
 *   pub P FROM TO               publish payloads mFROM..mTO to partition P (then flush)
 *   alert P REV HOST TIME MSGID publish an alert event (host 10.0.0.HOST) with that msg id
 *   req NODE LINE               a request to NODE; its reply comes as {"ev":"reply"}
 *   status                      coord_status_json()
 *   quit                        release snapshots of what is owned, coord_free(), exit */
#include "bus.h"
#include "coord.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTITIONS 64
#define LEASE_TTL_MS 5000
#define NODE_TTL_MS 15000 /* outlives a killed node's leases: the others must not wait */
#define REBALANCE_MS 1000
#define SNAPSHOT_MS 500

static Bus *bus;
static Coord *coord;
static GMainLoop *loop;
static const char *node;
static gboolean owned[PARTITIONS];
static GString *state[PARTITIONS];
static guint64 applied[PARTITIONS];

static gint64
wall_ms(void)
{
	return g_get_real_time() / 1000;
}

static void
json_str(GString *out, const char *s, gsize len)
{
	g_string_append_c(out, '"');
	for (gsize i = 0; i < len; i++) {
		guchar ch = (guchar)s[i];
		if (ch == '"' || ch == '\\')
			g_string_append_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			g_string_append_printf(out, "\\u%04x", ch);
		else
			g_string_append_c(out, (char)ch);
	}
	g_string_append_c(out, '"');
}

static void
emit(GString *line)
{
	g_string_append_printf(line, ",\"node\":\"%s\",\"t\":%" G_GINT64_FORMAT "}\n", node,
			       wall_ms());
	fputs(line->str, stdout);
	fflush(stdout);
	g_string_free(line, TRUE);
}

static void
on_event(const CoordEvent *ev, gpointer user_data)
{
	(void)user_data;
	gsize len = 0;
	const char *data = ev->data ? g_bytes_get_data(ev->data, &len) : NULL;
	guint p = ev->partition;
	GString *line = g_string_new(NULL);
	switch (ev->kind) {
	case COORD_ACQUIRED:
		owned[p] = TRUE;
		g_string_truncate(state[p], 0);
		g_string_append_len(state[p], data, (gssize)len);
		applied[p] = ev->seq;
		g_string_append_printf(line,
				       "{\"ev\":\"acquired\",\"p\":%u,\"rev\":%" G_GUINT64_FORMAT
				       ",\"seq\":%" G_GUINT64_FORMAT ",\"data\":",
				       p, ev->lease_rev, ev->seq);
		json_str(line, state[p]->str, state[p]->len);
		break;
	case COORD_FLOWS:
		if (!owned[p] || ev->seq <= applied[p]) {
			g_string_append_printf(
			    line,
			    "{\"ev\":\"error\",\"what\":\"flows of p%u seq %" G_GUINT64_FORMAT
			    " (owned %d, applied %" G_GUINT64_FORMAT ")\"",
			    p, ev->seq, owned[p], applied[p]);
			break;
		}
		g_string_append_len(state[p], data, (gssize)len);
		g_string_append_c(state[p], ',');
		applied[p] = ev->seq;
		coord_applied(coord, p, ev->seq, ev->time_ms);
		/* age_ms: how long ago the stream stored it, by its own clock (lag in time) */
		g_string_append_printf(
		    line,
		    "{\"ev\":\"flows\",\"p\":%u,\"seq\":%" G_GUINT64_FORMAT
		    ",\"age_ms\":%" G_GINT64_FORMAT ",\"payload\":",
		    p, ev->seq, ev->time_ms > 0 ? g_get_real_time() / 1000 - ev->time_ms : -1);
		json_str(line, data, len);
		break;
	case COORD_RELEASE: {
		g_autoptr(GBytes) st = g_bytes_new(state[p]->str, state[p]->len);
		coord_snapshot(coord, p, applied[p], st, TRUE);
		owned[p] = FALSE;
		g_string_append_printf(
		    line, "{\"ev\":\"release\",\"p\":%u,\"seq\":%" G_GUINT64_FORMAT ",\"data\":", p,
		    applied[p]);
		json_str(line, state[p]->str, state[p]->len);
		break;
	}
	case COORD_LOST:
		owned[p] = FALSE;
		g_string_truncate(state[p], 0);
		g_string_append_printf(line, "{\"ev\":\"lost\",\"p\":%u", p);
		break;
	case COORD_ALERT: {
		ClusterAlert a;
		char id[CLUSTER_WIRE_ID_MAX] = "?";
		if (cluster_wire_alert_decode((const guint8 *)data, len, &a, NULL))
			cluster_wire_alert_id(a.partition, &a.ev, id, sizeof id);
		g_string_append_printf(
		    line, "{\"ev\":\"alert\",\"p\":%u,\"rev\":%" G_GUINT64_FORMAT ",\"id\":", p,
		    ev->lease_rev);
		json_str(line, id, strlen(id));
		break;
	}
	case COORD_REQUEST: {
		g_autoptr(GString) r = g_string_new("{\"ok\":true,\"node\":");
		json_str(r, node, strlen(node));
		g_string_append(r, ",\"echo\":");
		json_str(r, data, len);
		g_string_append_c(r, '}');
		coord_reply(ev->request, r->str, r->len);
		g_string_append(line, "{\"ev\":\"request\",\"line\":");
		json_str(line, data, len);
		break;
	}
	case COORD_HISTORY: /* coord_check sets no CoordConfig.history */
		g_string_append(line, "{\"ev\":\"history\"");
		break;
	case COORD_REPLY:
		g_string_append(line, "{\"ev\":\"reply\",\"data\":");
		if (data)
			json_str(line, data, len);
		else
			g_string_append(line, "null");
		g_string_append(line, ",\"error\":");
		if (ev->error)
			json_str(line, ev->error, strlen(ev->error));
		else
			g_string_append(line, "null");
		break;
	case COORD_PUBLISHED: /* coord_publish() is not driven by this tool */
		g_string_append_printf(line, "{\"ev\":\"published\",\"seq\":%" G_GUINT64_FORMAT,
				       ev->seq);
		break;
	}
	emit(line);
}

static gboolean
snapshot_tick(gpointer user_data)
{
	(void)user_data;
	for (guint p = 0; p < PARTITIONS; p++) {
		if (!owned[p])
			continue;
		g_autoptr(GBytes) st = g_bytes_new(state[p]->str, state[p]->len);
		coord_snapshot(coord, p, applied[p], st, FALSE);
	}
	return G_SOURCE_CONTINUE;
}

static void
command(char **w, guint n)
{
	GString *line = g_string_new(NULL);
	if (n == 4 && strcmp(w[0], "pub") == 0) {
		guint p = (guint)atoi(w[1]), from = (guint)atoi(w[2]), to = (guint)atoi(w[3]);
		guint taken = 0;
		for (guint m = from; m <= to; m++) {
			char subject[64], payload[32], id[96];
			g_snprintf(subject, sizeof subject, "%s.%u", BUS_SUBJECT_FLOWS, p);
			g_snprintf(payload, sizeof payload, "m%u", m);
			g_snprintf(id, sizeof id, "%s-%u-%u", node, p, m);
			taken += bus_publish(bus, subject, payload, strlen(payload), id);
		}
		gboolean flushed = bus_flush(bus, 10000);
		g_string_append_printf(line,
				       "{\"ev\":\"published\",\"p\":%u,\"taken\":%u,"
				       "\"flushed\":%s",
				       p, taken, flushed ? "true" : "false");
	} else if (n == 6 && strcmp(w[0], "alert") == 0) {
		ClusterAlert a;
		memset(&a, 0, sizeof a);
		g_strlcpy(a.node, node, sizeof a.node);
		a.partition = (guint32)atoi(w[1]);
		a.lease_rev = g_ascii_strtoull(w[2], NULL, 10);
		a.ev.event = ALERT_RAISED;
		a.ev.reason = REASON_SMTP_FANOUT;
		a.ev.host[10] = a.ev.host[11] = 0xff;
		a.ev.host[12] = 10;
		a.ev.host[15] = (guint8)atoi(w[3]);
		a.ev.time_ms = a.ev.raised_ms = g_ascii_strtoll(w[4], NULL, 10);
		a.ev.sampling = 1;
		g_autoptr(GByteArray) msg = g_byte_array_new();
		cluster_wire_alert_encode(&a, msg);
		gboolean taken = bus_publish(bus, BUS_SUBJECT_ALERTS, msg->data, msg->len, w[5]);
		gboolean flushed = bus_flush(bus, 10000);
		g_string_append_printf(line, "{\"ev\":\"alerted\",\"taken\":%s,\"flushed\":%s",
				       taken ? "true" : "false", flushed ? "true" : "false");
	} else if (n >= 3 && strcmp(w[0], "req") == 0) {
		g_autofree char *rest = g_strjoinv(" ", w + 2);
		coord_request(coord, w[1], rest, NULL);
		g_string_free(line, TRUE);
		return;
	} else if (n == 1 && strcmp(w[0], "status") == 0) {
		g_string_append(line, "{\"ev\":\"status\",\"status\":");
		coord_status_json(coord, line);
	} else if (n == 1 && strcmp(w[0], "quit") == 0) {
		for (guint p = 0; p < PARTITIONS; p++) {
			if (!owned[p])
				continue;
			g_autoptr(GBytes) st = g_bytes_new(state[p]->str, state[p]->len);
			coord_snapshot(coord, p, applied[p], st, TRUE);
		}
		g_main_loop_quit(loop);
		g_string_free(line, TRUE);
		return;
	} else {
		g_string_append(line, "{\"ev\":\"error\",\"what\":\"bad command\"");
	}
	emit(line);
}

static gboolean
on_stdin(GIOChannel *ch, GIOCondition cond, gpointer user_data)
{
	(void)cond;
	(void)user_data;
	g_autofree char *text = NULL;
	gsize len = 0;
	GIOStatus st = g_io_channel_read_line(ch, &text, &len, NULL, NULL);
	if (st == G_IO_STATUS_EOF || st == G_IO_STATUS_ERROR) {
		g_main_loop_quit(loop);
		return G_SOURCE_REMOVE;
	}
	if (st != G_IO_STATUS_NORMAL)
		return G_SOURCE_CONTINUE;
	g_strstrip(text);
	g_auto(GStrv) w = g_strsplit_set(text, " ", -1);
	guint n = g_strv_length(w);
	if (n > 0 && *w[0])
		command(w, n);
	return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: coord_check URLS NODE ALERT_GROUP\n");
		return 2;
	}
	node = argv[2];
	BusConfig bc = {
	    .servers = argv[1],
	    .node = node,
	    .partitions = PARTITIONS,
	    .replicas = 3,
	    .flows_max_age_ms = 10 * 60 * 1000,
	    .flows_max_bytes = 256u << 20,
	    .alerts_max_age_ms = 10 * 60 * 1000,
	    .dedup_window_ms = 5 * 60 * 1000,
	    .lease_ttl_ms = LEASE_TTL_MS,
	    .node_ttl_ms = NODE_TTL_MS,
	    .max_snapshot = 8u << 20,
	    .publish_buffer = 8u << 20,
	    .timeout_ms = 2000,
	};
	g_autoptr(GError) err = NULL;
	bus = bus_new(&bc, &err);
	if (!bus) {
		fprintf(stderr, "bus_new: %s\n", err->message);
		return 1;
	}
	CoordConfig cc = {
	    .node = node,
	    .roles = COORD_ROLE_ANALYZER | COORD_ROLE_COLLECTOR,
	    .partitions = PARTITIONS,
	    .alert_group = argv[3],
	    .lease_ttl_ms = LEASE_TTL_MS,
	    .node_ttl_ms = NODE_TTL_MS,
	    .rebalance_ms = REBALANCE_MS,
	    .request_timeout_ms = 2000,
	    .offenders_refresh_ms = 2000,
	    .queue_bytes = 4u << 20,
	    .dedup_ids = 10000,
	};
	coord = coord_new(bus, &cc, &err);
	if (!coord) {
		fprintf(stderr, "coord_new: %s\n", err->message);
		return 1;
	}
	for (guint p = 0; p < PARTITIONS; p++)
		state[p] = g_string_new(NULL);
	loop = g_main_loop_new(NULL, FALSE);
	coord_set_node_info(coord, "{\"version\":\"coord_check\"}");
	coord_attach(coord, NULL, on_event, NULL);
	GIOChannel *in = g_io_channel_unix_new(0);
	g_io_add_watch(in, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, NULL);
	g_timeout_add(SNAPSHOT_MS, snapshot_tick, NULL);
	g_main_loop_run(loop);

	coord_free(coord);
	GString *line = g_string_new("{\"ev\":\"bye\"");
	emit(line);
	bus_free(bus);
	bus_shutdown_library();
	g_io_channel_unref(in);
	g_main_loop_unref(loop);
	for (guint p = 0; p < PARTITIONS; p++)
		g_string_free(state[p], TRUE);
	return 0;
}
