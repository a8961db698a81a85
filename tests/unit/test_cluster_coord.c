/* The cluster coordinator (cluster/coord.c): the rendezvous hash (even spread, minimal
 * movement), the alert fence and deduplication, the event queue (order, byte bound,
 * back-pressure, close); then whole coordinators on an in-memory bus
 * (cluster_fake_bus.c): three nodes share the partitions, a node cut off loses its leases by
 * its own clock and the others take over with snapshot + replay, the node's return moves
 * its partitions back through RELEASE snapshots; alerts, requests and offenders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster_fake_bus.h"
#include "coord.h"
#include "coord_private.h"
#include "wire.h"

#include <json-glib/json-glib.h>
#include <poll.h>
#include <string.h>

/* ---- rendezvous ---- */

static void
count_owners(const char *const *nodes, guint n, guint partitions, guint *counts, gboolean bounded)
{
	g_autofree gint *owner = g_new(gint, partitions);
	if (bounded)
		coord_assign(partitions, nodes, n, owner);
	else
		for (guint p = 0; p < partitions; p++)
			owner[p] = coord_rendezvous(p, nodes, n);
	memset(counts, 0, n * sizeof *counts);
	for (guint p = 0; p < partitions; p++) {
		assert_true(owner[p] >= 0 && (guint)owner[p] < n);
		counts[owner[p]]++;
	}
}

static void
test_rendezvous_spread(void **state)
{
	(void)state;
	static const char *const sets[][3] = {
	    {"n1", "n2", "n3"},
	    {"node1", "node2", "node3"},
	    {"analyzer-a", "analyzer-b", "analyzer-c"},
	    {"spamflow-01.example.net", "spamflow-02.example.net", "spamflow-03.example.net"},
	};
	for (guint s = 0; s < G_N_ELEMENTS(sets); s++) {
		guint plain[3], counts[3];
		count_owners(sets[s], 3, 64, plain, FALSE);
		count_owners(sets[s], 3, 64, counts, TRUE);
		/* 64/3 = 21.3: capped at 22, so 20 to 22 */
		for (guint i = 0; i < 3; i++) {
			print_message("%s: %u (plain rendezvous %u)\n", sets[s][i], counts[i],
				      plain[i]);
			assert_in_range(counts[i], 20, 22);
		}
		/* many partitions: plain rendezvous within 10% of even, capped exact */
		count_owners(sets[s], 3, 3000, plain, FALSE);
		count_owners(sets[s], 3, 3000, counts, TRUE);
		for (guint i = 0; i < 3; i++) {
			assert_in_range(plain[i], 900, 1100);
			assert_int_equal(counts[i], 1000);
		}
	}
	/* ten nodes, 64 partitions: at most 7 each, nobody empty */
	const char *ten[10];
	char names[10][16];
	for (guint i = 0; i < 10; i++) {
		g_snprintf(names[i], sizeof names[i], "node%u", i + 1);
		ten[i] = names[i];
	}
	guint counts[10];
	count_owners(ten, 10, 64, counts, TRUE);
	for (guint i = 0; i < 10; i++) {
		print_message("%s: %u\n", ten[i], counts[i]);
		assert_in_range(counts[i], 1, 7);
	}
	assert_int_equal(coord_rendezvous(0, ten, 0), -1);
	gint none[4];
	coord_assign(4, ten, 0, none);
	assert_int_equal(none[3], -1);
}

static void
test_rendezvous_movement(void **state)
{
	(void)state;
	const char *const all[4] = {"n1", "n2", "n3", "n4"};
	const char *const rest[2] = {"n1", "n3"}; /* n2 left */
	enum { NP = 64 };
	gint before[NP], without[NP], back[NP], four[NP];
	coord_assign(NP, all, 3, before);
	coord_assign(NP, rest, 2, without);
	coord_assign(NP, all, 3, back);
	coord_assign(NP, all, 4, four);
	guint moved = 0, extra = 0, moved4 = 0, extra4 = 0;
	for (guint p = 0; p < NP; p++) {
		gint w = without[p] == 0 ? 0 : 2;
		if (before[p] == 1)
			moved++;
		else if (w != before[p])
			extra++; /* bumped by the cap before, back to its first choice now */
		assert_int_equal(back[p], before[p]); /* all come back */
		if (four[p] != before[p]) {
			moved4++;
			extra4 += four[p] != 3;
		}
	}
	print_message("n2 leaves: its %u move, and %u more; n4 joins: %u move, %u not to it\n",
		      moved, extra, moved4, extra4);
	assert_in_range(moved, 20, 22);
	assert_true(extra <= 6);
	assert_in_range(moved4, 16, 24); /* about a quarter */
	assert_true(extra4 <= 8);
	/* plain rendezvous: only the leaver's partitions move; the order's second is the
	 * owner once the first is gone */
	for (guint p = 0; p < NP; p++) {
		gint o = coord_rendezvous(p, all, 3);
		gint r = coord_rendezvous(p, rest, 2) == 0 ? 0 : 2;
		if (o != 1)
			assert_int_equal(r, o);
		guint order[4];
		coord_rendezvous_order(p, all, 4, order);
		assert_int_equal(order[0], coord_rendezvous(p, all, 4));
		const char *others[3];
		guint n = 0;
		for (guint i = 0; i < 4; i++)
			if (i != order[0])
				others[n++] = all[i];
		assert_string_equal(others[coord_rendezvous(p, others, 3)], all[order[1]]);
	}
}

/* ---- the alert consumer's acknowledgement floor ---- */

static void
test_ack_track(void **state)
{
	(void)state;
	CoordAckTrack t = {0};
	assert_int_equal(coord_ack_track(&t, 0, 0, 1000), 0);
	/* events pending, the floor moving: never stuck */
	assert_int_equal(coord_ack_track(&t, 3, 2, 2000), 0);
	assert_int_equal(coord_ack_track(&t, 5, 1, 3000), 0);
	/* the floor stands still with one pending: the time since it last moved */
	assert_int_equal(coord_ack_track(&t, 5, 1, 13000), 10000);
	assert_int_equal(coord_ack_track(&t, 5, 4, 43000), 40000);
	/* nothing pending: not stuck, and the clock starts again */
	assert_int_equal(coord_ack_track(&t, 5, 0, 44000), 0);
	assert_int_equal(coord_ack_track(&t, 5, 1, 45000), 1000);
	/* the floor moves: from there */
	assert_int_equal(coord_ack_track(&t, 9, 1, 50000), 0);
	assert_int_equal(coord_ack_track(&t, 9, 1, 80000), 30000);
	/* a clock that goes back reads as 0, not negative */
	assert_int_equal(coord_ack_track(&t, 9, 1, 40000), 0);
}

/* ---- fence ---- */

static void
test_fence(void **state)
{
	(void)state;
	g_autoptr(CoordFence) f = coord_fence_new(4, 3);
	/* lease 5 from time 0, lease 9 from time 1000 (its snapshot's clock) */
	assert_int_equal(coord_fence_check(f, 1, 5, 0, 900, "a"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 1, 5, 0, 900, "a"), COORD_FENCE_DUPLICATE);
	/* the new owner replays: same id, newer lease; that alone fences the old owner */
	assert_int_equal(coord_fence_check(f, 1, 9, 1000, 900, "a"), COORD_FENCE_DUPLICATE);
	/* the old owner's event after the new owner's snapshot: told apart, and remembered
	 * (delivered: the stream keeps one copy of an id) */
	assert_int_equal(coord_fence_check(f, 1, 5, 0, 2000, "b"), COORD_FENCE_STALE);
	assert_int_equal(coord_fence_check(f, 1, 9, 1000, 2000, "b"), COORD_FENCE_DUPLICATE);
	/* the old owner's event before it, delivered late (the bus was slow): its own, and the
	 * new owner will not send it (its snapshot has it) */
	assert_int_equal(coord_fence_check(f, 1, 5, 0, 1000, "e"), COORD_FENCE_PASS);
	/* the old owner, still running: told apart, even with a new id */
	assert_int_equal(coord_fence_check(f, 1, 5, 0, 3000, "c"), COORD_FENCE_STALE);
	/* other partitions have their own fence */
	assert_int_equal(coord_fence_check(f, 2, 1, 0, 3000, "c2"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 4, 1, 0, 1, "d"), COORD_FENCE_BAD);
	assert_int_equal(coord_fence_check(f, 0, 1, 0, 1, ""), COORD_FENCE_BAD);
	/* bounded at 3: a, b, e, c, c2 were remembered, the last three kept; d pushes e out, and
	 * b went with c2 */
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "d"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 1, 9, 1000, 2000, "b"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "d"), COORD_FENCE_DUPLICATE);
	/* an event handed back unhandled (its node stopping) is forgotten: fetched again, it
	 * passes, and is not dropped as a duplicate; forgetting an unknown id does nothing */
	coord_fence_forget(f, "d");
	coord_fence_forget(f, "never-seen");
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "d"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "d"), COORD_FENCE_DUPLICATE);
	/* still bounded at 3 (b, d and... the fifo lost its d copy and took a new one) */
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "x1"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "x2"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "x3"), COORD_FENCE_PASS);
	assert_int_equal(coord_fence_check(f, 3, 1, 0, 1, "d"), COORD_FENCE_PASS);
}

/* ---- queue ---- */

static CoordEvent
flows_event(guint p, guint64 seq, gsize len)
{
	g_autofree guint8 *buf = g_malloc0(len);
	return (CoordEvent){
	    .kind = COORD_FLOWS, .partition = p, .seq = seq, .data = g_bytes_new(buf, len)};
}

static gboolean
fd_readable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, 0) == 1;
}

static void
test_queue_order(void **state)
{
	(void)state;
	CoordQueue *q = coord_queue_new(1 << 20);
	assert_false(fd_readable(coord_queue_fd(q)));
	for (guint i = 1; i <= 100; i++) {
		CoordEvent ev = flows_event(i % 3, i, 10);
		assert_true(coord_queue_push(q, &ev, TRUE, NULL));
		g_bytes_unref(ev.data);
	}
	assert_true(
	    coord_queue_push(q, &(CoordEvent){.kind = COORD_REPLY, .error = "x"}, FALSE, NULL));
	assert_true(fd_readable(coord_queue_fd(q)));
	for (guint i = 1; i <= 100; i++) {
		CoordEvent *ev = coord_queue_pop(q);
		assert_non_null(ev);
		assert_int_equal(ev->kind, COORD_FLOWS);
		assert_int_equal(ev->seq, i);
		coord_queue_done(q, ev);
	}
	CoordEvent *ev = coord_queue_pop(q);
	assert_int_equal(ev->kind, COORD_REPLY);
	assert_string_equal(ev->error, "x");
	coord_queue_done(q, ev);
	assert_null(coord_queue_pop(q));
	/* events left at the end are freed with the queue */
	CoordEvent left = flows_event(0, 1, 100);
	coord_queue_push(q, &left, FALSE, NULL);
	g_bytes_unref(left.data);
	coord_queue_free(q);
}

typedef struct {
	CoordQueue *q;
	guint n;
	gsize len;
	gboolean *closed;
	gint pushed, dropped;
} Producer;

static gpointer
producer(gpointer data)
{
	Producer *pr = data;
	for (guint i = 1; i <= pr->n; i++) {
		CoordEvent ev = flows_event(0, i, pr->len);
		if (coord_queue_push(pr->q, &ev, TRUE, pr->closed))
			g_atomic_int_inc(&pr->pushed);
		else
			g_atomic_int_inc(&pr->dropped);
		g_bytes_unref(ev.data);
	}
	return NULL;
}

static void
wait_for(gint *counter, gint value)
{
	for (guint i = 0; i < 2000 && g_atomic_int_get(counter) != value; i++)
		g_usleep(1000);
}

static void
test_queue_bound(void **state)
{
	(void)state;
	/* about four 1000-byte events fit (each costs its data and a small overhead) */
	CoordQueue *q = coord_queue_new(4500);
	Producer pr = {.q = q, .n = 20, .len = 1000};
	GThread *t = g_thread_new("producer", producer, &pr);
	wait_for(&pr.pushed, 4);
	g_usleep(50000);
	assert_int_equal(g_atomic_int_get(&pr.pushed), 4); /* waiting: back-pressure */
	guint64 bytes, events, waits;
	coord_queue_stats(q, &bytes, &events, &waits);
	assert_true(bytes <= 4500);
	assert_int_equal(events, 4);
	/* the small kinds never wait, even over the bound */
	assert_true(
	    coord_queue_push(q, &(CoordEvent){.kind = COORD_LOST, .partition = 9}, FALSE, NULL));
	/* the consumer drains in order; the producer follows */
	guint64 next = 1;
	gboolean lost_seen = FALSE;
	while (next <= 20) {
		CoordEvent *ev = coord_queue_pop(q);
		if (!ev) {
			g_usleep(1000);
			continue;
		}
		if (ev->kind == COORD_LOST) {
			assert_int_equal(next, 5); /* after the four that were in */
			lost_seen = TRUE;
		} else {
			assert_int_equal(ev->seq, next);
			next++;
		}
		coord_queue_done(q, ev);
	}
	g_thread_join(t);
	assert_true(lost_seen);
	assert_int_equal(pr.pushed, 20);
	coord_queue_stats(q, &bytes, &events, &waits);
	assert_true(waits > 0);
	/* one event bigger than the bound passes an empty queue */
	CoordEvent big = flows_event(0, 1, 10000);
	assert_true(coord_queue_push(q, &big, TRUE, NULL));
	g_bytes_unref(big.data);
	coord_queue_done(q, coord_queue_pop(q));
	coord_queue_free(q);
}

static void
test_queue_close(void **state)
{
	(void)state;
	CoordQueue *q = coord_queue_new(2500);
	gboolean closed = FALSE;
	Producer pr = {.q = q, .n = 10, .len = 1000, .closed = &closed};
	GThread *t = g_thread_new("producer", producer, &pr);
	wait_for(&pr.pushed, 2);
	g_usleep(20000);
	/* RELEASE closes the subscription: the waiting producer's flows are dropped, none comes
	 * after RELEASE */
	coord_queue_close_push(q, &closed, &(CoordEvent){.kind = COORD_RELEASE, .partition = 0});
	g_thread_join(t);
	assert_int_equal(pr.pushed, 2);
	assert_int_equal(pr.dropped, 8);
	for (guint i = 1; i <= 2; i++) {
		CoordEvent *ev = coord_queue_pop(q);
		assert_int_equal(ev->seq, i);
		coord_queue_done(q, ev);
	}
	CoordEvent *ev = coord_queue_pop(q);
	assert_int_equal(ev->kind, COORD_RELEASE);
	coord_queue_done(q, ev);
	assert_null(coord_queue_pop(q));
	/* stop: a waiting producer returns */
	closed = FALSE;
	CoordEvent fill = flows_event(0, 1, 3000);
	coord_queue_push(q, &fill, TRUE, NULL);
	g_bytes_unref(fill.data);
	pr = (Producer){.q = q, .n = 3, .len = 1000};
	t = g_thread_new("producer", producer, &pr);
	g_usleep(20000);
	coord_queue_stop(q);
	g_thread_join(t);
	assert_int_equal(pr.dropped, 3);
	coord_queue_free(q);
}

/* ---- whole coordinators on the fake bus ---- */

#define P 12
#define TTL 600
#define ROUND 150

typedef struct {
	CoordEventKind kind;
	guint p;
	guint64 rev, seq;
	char *data;
	gint64 t_ms;
} Seen;

typedef struct {
	char name[16];
	Bus *bus;
	Coord *coord;
	GMainContext *ctx;
	GArray *seen; /* Seen */
	gboolean owned[P];
	GString *state[P];
	guint64 applied[P];
	gboolean answer;    /* reply to requests */
	CoordRequest *kept; /* a request not answered yet */
	GString *reply;	    /* the last COORD_REPLY */
	gint replies;
	guint alerts;
	gint64 next_snap;
	guint published;      /* COORD_PUBLISHED events */
	guint64 pub_seq;      /* the last one's sequence (0: failed) */
	char pub_error[256];  /* and its error */
	gpointer pub_tag;
	gboolean keep_stored[P]; /* no snapshot of p; a release keeps the one stored */
} Node;

static gint64
ms(void)
{
	return g_get_monotonic_time() / 1000;
}

static void
on_event(const CoordEvent *ev, gpointer user_data)
{
	Node *n = user_data;
	gsize len = 0;
	const char *text = ev->data ? g_bytes_get_data(ev->data, &len) : NULL;
	Seen s = {ev->kind, ev->partition, ev->lease_rev, ev->seq, NULL, ms()};
	if (ev->kind != COORD_ALERT)
		s.data = g_strndup(text ? text : "", len);
	g_array_append_val(n->seen, s);
	guint p = ev->partition;
	switch (ev->kind) {
	case COORD_ACQUIRED:
		assert_false(n->owned[p]);
		n->owned[p] = TRUE;
		g_string_truncate(n->state[p], 0);
		g_string_append_len(n->state[p], text, (gssize)len); /* bytes: no NUL promised */
		n->applied[p] = ev->seq;
		break;
	case COORD_FLOWS:
		assert_true(n->owned[p]);
		assert_true(ev->seq > n->applied[p]); /* stream order, nothing twice */
		g_string_append_len(n->state[p], text, (gssize)len);
		g_string_append_c(n->state[p], ',');
		n->applied[p] = ev->seq;
		coord_applied(n->coord, p, ev->seq, ev->time_ms);
		break;
	case COORD_RELEASE: {
		assert_true(n->owned[p]);
		if (n->keep_stored[p]) { /* cluster_node.c after a dropped event */
			coord_snapshot(n->coord, p, 0, NULL, TRUE);
			n->owned[p] = FALSE;
			break;
		}
		g_autoptr(GBytes) st = g_bytes_new(n->state[p]->str, n->state[p]->len);
		coord_snapshot(n->coord, p, n->applied[p], st, TRUE);
		n->owned[p] = FALSE;
		/* what was handed over, for the test to compare */
		g_free(g_array_index(n->seen, Seen, n->seen->len - 1).data);
		g_array_index(n->seen, Seen, n->seen->len - 1).data = g_strdup(n->state[p]->str);
		g_array_index(n->seen, Seen, n->seen->len - 1).seq = n->applied[p];
		break;
	}
	case COORD_LOST:
		n->owned[p] = FALSE;
		g_string_truncate(n->state[p], 0);
		break;
	case COORD_ALERT:
		n->alerts++;
		break;
	case COORD_REQUEST:
		if (n->answer) {
			g_autofree char *r =
			    g_strdup_printf("{\"ok\":true,\"echo\":\"%.*s\"}", (int)len, text);
			coord_reply(ev->request, r, strlen(r));
		} else {
			assert_null(n->kept);
			n->kept = ev->request; /* answered late by the test */
		}
		break;
	case COORD_REPLY:
		g_string_assign(n->reply, text ? text : ev->error);
		n->replies++;
		break;
	case COORD_HISTORY: /* only with CoordConfig.history, which no node here sets */
		fail_msg("a history event without CoordConfig.history");
		break;
	case COORD_PUBLISHED:
		n->published++;
		n->pub_seq = ev->error ? 0 : ev->seq;
		g_strlcpy(n->pub_error, ev->error ? ev->error : "", sizeof n->pub_error);
		n->pub_tag = ev->tag;
		break;
	}
}

static CoordConfig
node_config(const char *name, const char *group)
{
	return (CoordConfig){
	    .node = name,
	    .roles = COORD_ROLE_ANALYZER | COORD_ROLE_COLLECTOR,
	    .partitions = P,
	    .alert_group = group,
	    .lease_ttl_ms = TTL,
	    /* longer than the lease: a cut-off node stays registered for a while, and the
	     * others must see it dead by its entry no longer changing */
	    .node_ttl_ms = 5 * TTL,
	    .rebalance_ms = ROUND,
	    .request_timeout_ms = 300,
	    .offenders_refresh_ms = 100,
	    .queue_bytes = 1 << 20,
	    .dedup_ids = 1000,
	};
}

/* The nodes running, stopped by the teardown when a test fails halfway. */
static Node *running[4];

static Node *
node_start(const char *name, const char *group)
{
	Node *n = g_new0(Node, 1);
	for (guint i = 0; i < G_N_ELEMENTS(running); i++)
		if (!running[i]) {
			running[i] = n;
			break;
		}
	g_strlcpy(n->name, name, sizeof n->name);
	BusConfig bc = {.node = name,
			.partitions = P,
			.replicas = 1,
			.lease_ttl_ms = TTL,
			.node_ttl_ms = 5 * TTL,
			.max_snapshot = 1 << 20,
			.timeout_ms = 1000};
	g_autoptr(GError) err = NULL;
	n->bus = bus_new(&bc, &err);
	assert_non_null(n->bus);
	CoordConfig cc = node_config(name, group);
	n->coord = coord_new(n->bus, &cc, &err);
	assert_non_null(n->coord);
	n->ctx = g_main_context_new();
	n->seen = g_array_new(FALSE, TRUE, sizeof(Seen));
	for (guint p = 0; p < P; p++)
		n->state[p] = g_string_new(NULL);
	n->reply = g_string_new(NULL);
	n->answer = TRUE;
	coord_set_node_info(n->coord, "{\"version\":\"test\",\"node\":\"overridden\"}");
	coord_attach(n->coord, n->ctx, on_event, n);
	return n;
}

static void
node_stop(Node *n)
{
	for (guint i = 0; i < G_N_ELEMENTS(running); i++)
		if (running[i] == n)
			running[i] = NULL;
	coord_free(n->coord);
	bus_free(n->bus);
	while (g_main_context_iteration(n->ctx, FALSE))
		;
	g_main_context_unref(n->ctx);
	for (guint i = 0; i < n->seen->len; i++)
		g_free(g_array_index(n->seen, Seen, i).data);
	g_array_unref(n->seen);
	for (guint p = 0; p < P; p++)
		g_string_free(n->state[p], TRUE);
	g_string_free(n->reply, TRUE);
	g_free(n);
}

/* Run every node's loop for a while; periodic snapshots every 100 ms. */
static void
pump(Node **nodes, guint k, gint64 for_ms)
{
	gint64 end = ms() + for_ms;
	do {
		for (guint i = 0; i < k; i++) {
			if (!nodes[i])
				continue;
			while (g_main_context_iteration(nodes[i]->ctx, FALSE))
				;
			if (ms() >= nodes[i]->next_snap) {
				nodes[i]->next_snap = ms() + 100;
				for (guint p = 0; p < P; p++) {
					if (!nodes[i]->owned[p] || nodes[i]->keep_stored[p])
						continue;
					g_autoptr(GBytes) st = g_bytes_new(nodes[i]->state[p]->str,
									   nodes[i]->state[p]->len);
					coord_snapshot(nodes[i]->coord, p, nodes[i]->applied[p], st,
						       FALSE);
				}
			}
		}
		g_usleep(2000);
	} while (ms() < end);
}

/* Each partition owned by exactly one node (by what the main loops were told). */
static gboolean
settled(Node **nodes, guint k, gint owner[P])
{
	for (guint p = 0; p < P; p++) {
		owner[p] = -1;
		for (guint i = 0; i < k; i++) {
			if (!nodes[i] || !nodes[i]->owned[p])
				continue;
			if (owner[p] >= 0)
				return FALSE;
			owner[p] = (gint)i;
		}
		if (owner[p] < 0)
			return FALSE;
	}
	return TRUE;
}

static gint64
pump_until_settled(Node **nodes, guint k, gint owner[P], gint64 max_ms)
{
	gint64 start = ms();
	while (ms() - start < max_ms) {
		pump(nodes, k, 20);
		if (settled(nodes, k, owner))
			return ms() - start;
	}
	fail_msg("partitions did not settle in %" G_GINT64_FORMAT " ms", max_ms);
	return -1;
}

static gint
expected_owner(guint p, Node **nodes, guint k)
{
	const char *names[3];
	guint idx[3] = {0}, n = 0;
	for (guint i = 0; i < k; i++)
		if (nodes[i]) {
			names[n] = nodes[i]->name;
			idx[n++] = i;
		}
	gint owner[P];
	coord_assign(P, names, n, owner);
	return (gint)idx[owner[p]];
}

static void
publish(Bus *bus, guint p, guint from, guint to)
{
	for (guint m = from; m <= to; m++) {
		char subject[32], payload[32], id[32];
		g_snprintf(subject, sizeof subject, "%s.%u", BUS_SUBJECT_FLOWS, p);
		g_snprintf(payload, sizeof payload, "m%u", m);
		g_snprintf(id, sizeof id, "t-%u-%u", p, m);
		assert_true(bus_publish(bus, subject, payload, strlen(payload), id));
	}
}

static void
expect_state(const GString *s, guint to)
{
	g_autoptr(GString) want = g_string_new(NULL);
	for (guint m = 1; m <= to; m++)
		g_string_append_printf(want, "m%u,", m);
	assert_string_equal(s->str, want->str);
}

/* Pump until node n has applied partition p up to seq (3 s at most): the sequence reached. */
static guint64
pump_until_applied(Node **nodes, guint k, Node *n, guint p, guint64 seq)
{
	gint64 start = ms();
	while (ms() - start < 3000 && n->applied[p] < seq)
		pump(nodes, k, 20);
	return n->applied[p];
}

/* The furthest-behind owned partition's lag in ms (coord_lag()). */
static gint64
lag_ms_of(Node *n)
{
	gint64 lag_ms = -1;
	(void)coord_lag(n->coord, &lag_ms);
	return lag_ms;
}

static void
test_coord_takeover(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[3] = {node_start("n1", ""), node_start("n2", ""), node_start("n3", "")};
	gint owner[P];
	gint64 t = pump_until_settled(nodes, 3, owner, 5000);
	print_message("settled in %" G_GINT64_FORMAT " ms\n", t);
	for (guint p = 0; p < P; p++)
		assert_int_equal(owner[p], expected_owner(p, nodes, 3));
	/* the first acquisitions waited a round, so nothing was handed back and forth */
	for (guint i = 0; i < 3; i++)
		for (guint j = 0; j < nodes[i]->seen->len; j++)
			assert_int_equal(g_array_index(nodes[i]->seen, Seen, j).kind,
					 COORD_ACQUIRED);

	/* n3's partitions carry flows */
	Node *n3 = nodes[2];
	guint mine[P], n_mine = 0;
	for (guint p = 0; p < P; p++)
		if (owner[p] == 2)
			mine[n_mine++] = p;
	assert_true(n_mine > 0);
	for (guint i = 0; i < n_mine; i++)
		publish(nodes[0]->bus, mine[i], 1, 20);
	gint64 start = ms();
	while (ms() - start < 3000 && n3->applied[mine[n_mine - 1]] < 20)
		pump(nodes, 3, 20);
	for (guint i = 0; i < n_mine; i++)
		expect_state(n3->state[mine[i]], 20);
	pump(nodes, 3, 250); /* a snapshot of m1..m20 is stored */

	/* n3 is cut off; flows go on */
	cluster_fake_bus_set_down(n3->bus, TRUE);
	gint64 cut = ms();
	for (guint i = 0; i < n_mine; i++)
		publish(nodes[0]->bus, mine[i], 21, 30);
	gint64 lost_ms = -1, taken_ms = -1;
	while (ms() - cut < 5000 && (lost_ms < 0 || taken_ms < 0)) {
		pump(nodes, 3, 10);
		gboolean all_lost = TRUE, all_taken = TRUE;
		for (guint i = 0; i < n_mine; i++) {
			all_lost = all_lost && !n3->owned[mine[i]];
			all_taken =
			    all_taken && (nodes[0]->owned[mine[i]] || nodes[1]->owned[mine[i]]);
		}
		if (all_lost && lost_ms < 0)
			lost_ms = ms() - cut;
		if (all_taken && taken_ms < 0)
			taken_ms = ms() - cut;
	}
	print_message("cut off: lost after %" G_GINT64_FORMAT
		      " ms, taken over after %" G_GINT64_FORMAT " ms (lease TTL %d ms)\n",
		      lost_ms, taken_ms, TTL);
	/* the cut-off node stops believing it owns them within the TTL (and a round) */
	assert_in_range(lost_ms, TTL - ROUND, TTL + 2 * ROUND);
	/* the others take over within about two TTLs, though n3 is still registered */
	assert_in_range(taken_ms, TTL, 2 * TTL + 3 * ROUND);
	/* and replay from the snapshot: the windows are whole, nothing twice */
	start = ms();
	gboolean done = FALSE;
	while (ms() - start < 3000 && !done) {
		pump(nodes, 3, 20);
		done = TRUE;
		for (guint i = 0; i < n_mine; i++) {
			Node *o = nodes[0]->owned[mine[i]] ? nodes[0] : nodes[1];
			done = done && o->owned[mine[i]] && o->applied[mine[i]] > 0 &&
			       strstr(o->state[mine[i]]->str, "m30,");
		}
	}
	for (guint i = 0; i < n_mine; i++) {
		Node *o = nodes[0]->owned[mine[i]] ? nodes[0] : nodes[1];
		expect_state(o->state[mine[i]], 30);
	}
	pump(nodes, 3, 250); /* snapshots of m1..m30 */

	/* n3 comes back: its partitions return through RELEASE snapshots */
	guint seen_before[3];
	for (guint i = 0; i < 3; i++)
		seen_before[i] = nodes[i]->seen->len;
	cluster_fake_bus_set_down(n3->bus, FALSE);
	gint64 back = ms();
	pump(nodes, 3, 100);
	for (guint i = 0; i < n_mine; i++)
		publish(nodes[0]->bus, mine[i], 31, 35);
	gboolean home = FALSE;
	while (ms() - back < 5000 && !home) {
		pump(nodes, 3, 20);
		home = settled(nodes, 3, owner);
		for (guint p = 0; p < P && home; p++)
			home = owner[p] == expected_owner(p, nodes, 3);
		for (guint i = 0; i < n_mine && home; i++)
			home = n3->applied[mine[i]] > 0 && strstr(n3->state[mine[i]]->str, "m35,");
	}
	print_message("back home after %" G_GINT64_FORMAT " ms\n", ms() - back);
	assert_true(home);
	for (guint i = 0; i < n_mine; i++) {
		guint p = mine[i];
		expect_state(n3->state[p], 35);
		/* the release snapshot is what n3 acquired, and its flows follow from seq + 1 */
		const Seen *rel = NULL, *acq = NULL, *first = NULL;
		for (guint k = 0; k < 2; k++)
			for (guint j = seen_before[k]; j < nodes[k]->seen->len; j++) {
				const Seen *s = &g_array_index(nodes[k]->seen, Seen, j);
				if (s->p == p && s->kind == COORD_RELEASE)
					rel = s;
			}
		for (guint j = seen_before[2]; j < n3->seen->len; j++) {
			const Seen *s = &g_array_index(n3->seen, Seen, j);
			if (s->p == p && s->kind == COORD_ACQUIRED && !acq)
				acq = s;
			else if (s->p == p && s->kind == COORD_FLOWS && acq && !first)
				first = s;
		}
		if (!rel || !acq)
			for (guint k = 0; k < 3; k++)
				for (guint j = 0; j < nodes[k]->seen->len; j++) {
					const Seen *x = &g_array_index(nodes[k]->seen, Seen, j);
					if (x->p == p && x->kind != COORD_FLOWS)
						print_message(
						    "%s%s p%u kind %d rev %" G_GUINT64_FORMAT
						    " seq %" G_GUINT64_FORMAT " t %" G_GINT64_FORMAT
						    "\n",
						    j >= seen_before[k] ? "after " : "",
						    nodes[k]->name, p, x->kind, x->rev, x->seq,
						    x->t_ms - back);
				}
		assert_non_null(rel);
		assert_non_null(acq);
		assert_string_equal(acq->data, rel->data);
		assert_int_equal(acq->seq, rel->seq);
		/* the stream's sequence is shared by the partitions: the next of this subject */
		if (first) {
			assert_true(first->seq > acq->seq);
			guint covered = 0;
			for (const char *x = acq->data; *x; x++)
				covered += *x == ',';
			g_autofree char *want = g_strdup_printf("m%u", covered + 1);
			assert_string_equal(first->data, want);
		}
		assert_true(acq->t_ms >= rel->t_ms);
	}
	pump(nodes, 3, 2 * ROUND + 50); /* every node has listed the leases since */
	for (guint i = 0; i < 3; i++) {
		g_autoptr(GString) st = g_string_new(NULL);
		coord_status_json(nodes[i]->coord, st);
		g_autoptr(JsonParser) parser = json_parser_new();
		assert_true(json_parser_load_from_data(parser, st->str, -1, NULL));
		JsonObject *o = json_node_get_object(json_parser_get_root(parser));
		assert_int_equal(
		    json_array_get_length(json_object_get_array_member(o, "partitions")), P);
		assert_int_equal(json_array_get_length(json_object_get_array_member(o, "nodes")),
				 3);
		char who[64];
		guint64 rev;
		assert_true(coord_owner(nodes[i]->coord, mine[0], who, &rev));
		assert_string_equal(who, "n3");
		assert_true(rev > 0);
		if (i == 2) {
			JsonObject *c = json_object_get_object_member(o, "coord");
			assert_true(json_object_get_int_member(c, "lost_expired") >= n_mine);
		}
	}
	for (guint i = 0; i < 3; i++)
		node_stop(nodes[i]);
}

static GByteArray *
alert_msg(guint p, guint64 rev, guint8 host, gint64 time_ms)
{
	ClusterAlert a;
	memset(&a, 0, sizeof a);
	g_strlcpy(a.node, "n9", sizeof a.node);
	a.partition = p;
	a.lease_rev = rev;
	a.ev.time_ms = time_ms;
	a.ev.raised_ms = time_ms;
	a.ev.event = ALERT_RAISED;
	a.ev.reason = REASON_SMTP_FANOUT;
	a.ev.host[10] = a.ev.host[11] = 0xff;
	a.ev.host[12] = 10;
	a.ev.host[15] = host;
	a.ev.sampling = 1;
	GByteArray *out = g_byte_array_new();
	cluster_wire_alert_encode(&a, out);
	return out;
}

static void
publish_alert(Bus *bus, GByteArray *msg, const char *msg_id)
{
	assert_true(bus_publish(bus, BUS_SUBJECT_ALERTS, msg->data, msg->len, msg_id));
	g_byte_array_unref(msg);
}

static void
test_coord_alerts_requests(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[2] = {node_start("a", "ops"), node_start("b", "")};
	Node *a = nodes[0], *b = nodes[1];
	gint owner[P];
	pump_until_settled(nodes, 2, owner, 5000);

	/* the same event from the old owner (rev 5) and the new one (rev 9): once; the old
	 * owner's next event, after the new lease began: delivered (its copy is the only one
	 * the stream would keep) and counted; garbage: counted bad */
	publish_alert(b->bus, alert_msg(3, 5, 1, 1000), "x1");
	publish_alert(b->bus, alert_msg(3, 9, 1, 1000), "x2");
	publish_alert(b->bus, alert_msg(3, 5, 2, 2000), "x3");
	publish_alert(b->bus, alert_msg(3, 9, 2, 2000), "x4");
	assert_true(bus_publish(b->bus, BUS_SUBJECT_ALERTS, "junk", 4, "x5"));
	gint64 start = ms();
	while (ms() - start < 2000 && a->alerts < 2)
		pump(nodes, 2, 20);
	pump(nodes, 2, 100);
	assert_int_equal(a->alerts, 2);
	assert_int_equal(b->alerts, 0);
	g_autoptr(GString) st = g_string_new(NULL);
	coord_status_json(a->coord, st);
	assert_non_null(strstr(st->str,
			       "\"alerts\":{\"group\":\"ops\",\"received\":5,"
			       "\"delivered\":2,\"old_lease_late\":1,\"duplicates\":2,\"bad\":1,"
			       "\"ack_unhandled\":0}"));
	guint delivered = 0;
	for (guint i = 0; i < a->seen->len; i++) {
		const Seen *s = &g_array_index(a->seen, Seen, i);
		if (s->kind == COORD_ALERT) {
			assert_int_equal(s->p, 3);
			assert_int_equal(s->rev, 5);
			delivered++;
		}
	}
	assert_int_equal(delivered, 2);

	/* requests: answered, answered too late (busy; the late answer is harmless), to
	 * nobody */
	coord_request(a->coord, "b", "stats", GINT_TO_POINTER(7));
	start = ms();
	while (ms() - start < 2000 && a->replies < 1)
		pump(nodes, 2, 10);
	assert_string_equal(a->reply->str, "{\"ok\":true,\"echo\":\"stats\"}");
	b->answer = FALSE;
	coord_request(a->coord, "b", "host 10.0.0.1", NULL);
	while (ms() - start < 4000 && a->replies < 2)
		pump(nodes, 2, 10);
	assert_string_equal(a->reply->str, "{\"ok\":false,\"error\":\"node busy\"}");
	assert_non_null(b->kept);
	coord_reply(b->kept, "{}", 2);
	b->kept = NULL;
	coord_request(a->coord, "nobody", "stats", NULL);
	while (ms() - start < 6000 && a->replies < 3)
		pump(nodes, 2, 10);
	assert_non_null(strstr(a->reply->str, "nobody"));

	/* offenders: put, replace, delete; read back by the other node */
	coord_offender(a->coord, "10.0.0.1.smtp-fanout", "{\"host\":\"10.0.0.1\",\"v\":1}");
	coord_offender(a->coord, "10.0.0.2.smtp-fanout", "{\"host\":\"10.0.0.2\"}");
	coord_offender(a->coord, "10.0.0.1.smtp-fanout", "{\"host\":\"10.0.0.1\",\"v\":2}");
	coord_offender(a->coord, "10.0.0.2.smtp-fanout", NULL);
	coord_offender(a->coord, "10.0.0.3.smtp-fanout", "{\"host\":\"10.0.0.3\"}");
	start = ms();
	g_autoptr(GString) off = g_string_new(NULL);
	while (ms() - start < 2000) {
		pump(nodes, 2, 20);
		g_string_truncate(off, 0);
		gint64 age;
		coord_offenders_json(b->coord, off, &age);
		if (strstr(off->str, "10.0.0.3") && strstr(off->str, "\"v\":2"))
			break;
	}
	assert_non_null(strstr(off->str, "{\"host\":\"10.0.0.1\",\"v\":2}"));
	assert_null(strstr(off->str, "10.0.0.2"));
	assert_non_null(strstr(off->str, "10.0.0.3"));

	/* a control record: stored, then its partition's owner gets it in the stream, at the
	 * sequence COORD_PUBLISHED said */
	ClusterCtl ctl = {.op = CLUSTER_CTL_FORGET, .partition = 3, .boot_ms = 5, .id = 1};
	g_strlcpy(ctl.node, "a", sizeof ctl.node);
	ctl.host[10] = ctl.host[11] = 0xff;
	ctl.host[12] = 10;
	ctl.host[15] = 7;
	g_autoptr(GByteArray) rec = g_byte_array_new();
	cluster_wire_ctl_encode(&ctl, rec);
	coord_publish(a->coord, BUS_SUBJECT_FLOWS ".3", rec->data, rec->len, "c-a-5-1",
		      GINT_TO_POINTER(42));
	start = ms();
	while (ms() - start < 2000 && a->published < 1)
		pump(nodes, 2, 10);
	assert_int_equal(a->published, 1);
	assert_ptr_equal(a->pub_tag, GINT_TO_POINTER(42));
	assert_string_equal(a->pub_error, "");
	assert_true(a->pub_seq > 0);
	Node *own = nodes[owner[3]];
	gboolean got = FALSE;
	start = ms();
	while (ms() - start < 2000 && !got) {
		pump(nodes, 2, 10);
		for (guint i = 0; i < own->seen->len; i++) {
			const Seen *s = &g_array_index(own->seen, Seen, i);
			if (s->kind == COORD_FLOWS && s->p == 3 && s->seq == a->pub_seq &&
			    memcmp(s->data, rec->data, 4) == 0)
				got = TRUE;
		}
	}
	assert_true(got);
	/* the bus away: the record is not stored, and the error says so */
	cluster_fake_bus_set_down(a->bus, TRUE);
	coord_publish(a->coord, BUS_SUBJECT_FLOWS ".3", rec->data, rec->len, "c-a-5-2", NULL);
	start = ms();
	while (ms() - start < 3000 && a->published < 2)
		pump(nodes, 2, 10);
	assert_int_equal(a->published, 2);
	assert_int_equal(a->pub_seq, 0);
	assert_non_null(strstr(a->pub_error, "no answer"));
	cluster_fake_bus_set_down(a->bus, FALSE);

	/* the forget on the alerts stream (sent twice, as a takeover's replay does): the
	 * alert group gets it once; a control record that is not a forget is bad there */
	guint alerts_before = a->alerts;
	assert_true(bus_publish(b->bus, BUS_SUBJECT_ALERTS, rec->data, rec->len, "f1"));
	assert_true(bus_publish(b->bus, BUS_SUBJECT_ALERTS, rec->data, rec->len, "f2"));
	ClusterCtl sup = ctl;
	sup.op = CLUSTER_CTL_SUPPRESS;
	sup.id = 2;
	g_autoptr(GByteArray) rec2 = g_byte_array_new();
	cluster_wire_ctl_encode(&sup, rec2);
	assert_true(bus_publish(b->bus, BUS_SUBJECT_ALERTS, rec2->data, rec2->len, "f3"));
	start = ms();
	while (ms() - start < 2000 && a->alerts < alerts_before + 1)
		pump(nodes, 2, 10);
	pump(nodes, 2, 100);
	assert_int_equal(a->alerts, alerts_before + 1);
	g_string_truncate(st, 0);
	coord_status_json(a->coord, st);
	assert_non_null(strstr(st->str, "\"ctl_forgets_received\":1,"));
	assert_non_null(strstr(st->str, "\"duplicates\":3,\"bad\":2,"));

	/* suppressions: read back by the other node; one over by the wall clock is left out
	 * and deleted from the bucket */
	gint64 wall = g_get_real_time() / 1000;
	g_autofree char *live = g_strdup_printf(
	    "{\"host\":\"10.0.0.1\",\"until_ms\":%" G_GINT64_FORMAT "}", wall + 3600000);
	coord_suppression(a->coord, "10.0.0.1.all", live);
	coord_suppression(a->coord, "10.0.0.2.all", "{\"host\":\"10.0.0.2\",\"until_ms\":1000}");
	coord_suppression(a->coord, "10.0.0.4.all", "{\"host\":\"10.0.0.4\",\"until_ms\":\"x\"}");
	g_autoptr(GString) sups = g_string_new(NULL);
	start = ms();
	while (ms() - start < 2000) {
		pump(nodes, 2, 20);
		g_string_truncate(sups, 0);
		gint64 age;
		coord_suppressions_json(b->coord, sups, &age);
		if (strstr(sups->str, "10.0.0.1"))
			break;
	}
	assert_non_null(strstr(sups->str, live));
	assert_null(strstr(sups->str, "10.0.0.2"));
	assert_null(strstr(sups->str, "10.0.0.4"));
	g_autoptr(GError) kerr = NULL;
	GBytes *gone = NULL;
	assert_false(bus_kv_get(b->bus, BUS_KV_SUPPRESSIONS, "10.0.0.2.all", &gone, NULL, &kerr));
	assert_null(gone);

	for (guint i = 0; i < 2; i++)
		node_stop(nodes[i]);
}

/* A node registered as an analyzer, its entry renewed, that never takes a partition: what
 * it should own goes to its successors after a lease TTL, and stays there (no handing back
 * and forth every TTL). */
static void
test_coord_zombie(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[2] = {node_start("a", ""), node_start("b", "")};
	Bus *zbus = bus_new(&(BusConfig){.node = "z"}, NULL);
	static const char zv[] = "{\"node\":\"z\",\"roles\":[\"analyzer\"]}";
	gint64 start = ms(), settled_ms = -1;
	gint owner[P];
	pump(nodes, 2, 20); /* the buckets are there */
	while (ms() - start < 8 * TTL) {
		assert_true(bus_kv_put(zbus, BUS_KV_NODES, "z", zv, strlen(zv), NULL, NULL));
		pump(nodes, 2, 100);
		if (settled_ms < 0 && settled(nodes, 2, owner)) {
			settled_ms = ms() - start;
			break;
		}
	}
	print_message("with a zombie: settled after %" G_GINT64_FORMAT " ms\n", settled_ms);
	assert_true(settled_ms > 0 && settled_ms < 2 * TTL + 4 * ROUND);
	guint before[2] = {nodes[0]->seen->len, nodes[1]->seen->len};
	start = ms();
	while (ms() - start < 4 * TTL) {
		assert_true(bus_kv_put(zbus, BUS_KV_NODES, "z", zv, strlen(zv), NULL, NULL));
		pump(nodes, 2, 100);
	}
	for (guint i = 0; i < 2; i++)
		for (guint j = before[i]; j < nodes[i]->seen->len; j++)
			assert_int_equal(g_array_index(nodes[i]->seen, Seen, j).kind, COORD_FLOWS);
	assert_true(settled(nodes, 2, owner));
	bus_free(zbus);
	for (guint i = 0; i < 2; i++)
		node_stop(nodes[i]);
}

/* coord_free() stores release snapshots sent just before it, and gives their leases up. */
static void
test_coord_shutdown(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[1] = {node_start("solo", "")};
	gint owner[P];
	pump_until_settled(nodes, 1, owner, 5000);
	publish(nodes[0]->bus, 4, 1, 3);
	gint64 start = ms();
	while (ms() - start < 2000 && nodes[0]->applied[4] < 3)
		pump(nodes, 1, 10);
	for (guint p = 0; p < P; p++) {
		g_autoptr(GBytes) st =
		    g_bytes_new(nodes[0]->state[p]->str, nodes[0]->state[p]->len);
		coord_snapshot(nodes[0]->coord, p, nodes[0]->applied[p], st, TRUE);
	}
	Bus *probe_bus = bus_new(&(BusConfig){.node = "probe"}, NULL);
	node_stop(nodes[0]);
	g_autoptr(GError) err = NULL;
	GArray *leases = bus_kv_list(probe_bus, BUS_KV_LEASES, &err);
	assert_non_null(leases);
	assert_int_equal(leases->len, 0);
	bus_kv_entries_free(leases);
	GArray *reg = bus_kv_list(probe_bus, BUS_KV_NODES, &err);
	assert_int_equal(reg->len, 0);
	bus_kv_entries_free(reg);
	guint64 covers;
	g_autoptr(GBytes) snap = NULL;
	assert_true(bus_snapshot_get(probe_bus, 4, &covers, &snap, &err));
	assert_int_equal(covers, 3);
	assert_int_equal(g_bytes_get_size(snap), strlen("m1,m2,m3,"));
	bus_free(probe_bus);
}

static int
stop_running(void **state)
{
	(void)state;
	for (guint i = 0; i < G_N_ELEMENTS(running); i++)
		if (running[i])
			node_stop(running[i]);
	return 0;
}

/* A lease write whose answer was lost may have been applied: the key holds our name at a
 * revision we never heard of. The next renewal is refused (conflict): the lease is ours all
 * the same, taken back, not lost. Another node's name there: lost. */
static void
test_coord_lease_adopted(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[1] = {node_start("solo", "")};
	gint owner[P];
	pump_until_settled(nodes, 1, owner, 5000);
	Node *n = nodes[0];
	assert_true(n->owned[5]);
	guint64 rev = 0;
	assert_true(bus_kv_put(n->bus, BUS_KV_LEASES, "p5", "solo", 4, &rev, NULL));
	pump(nodes, 1, 1500); /* a few rounds: renewals at the old revision */
	assert_true(n->owned[5]);
	g_autoptr(GString) st = g_string_new(NULL);
	coord_status_json(n->coord, st);
	assert_non_null(strstr(st->str, "\"leases_adopted\":1"));
	assert_non_null(strstr(st->str, "\"lost\":0"));
	/* hostile values on the bus (any client may write the buckets): a node entry and an
	 * offender nested a million levels deep are skipped, not parsed (json-glib would
	 * overflow the stack), and a good offender beside them is listed */
	g_autoptr(GString) deep = g_string_new(NULL);
	for (guint i = 0; i < 1000000; i++)
		g_string_append_c(deep, '[');
	assert_true(bus_kv_put(n->bus, BUS_KV_NODES, "evil", deep->str, deep->len, &rev, NULL));
	assert_true(bus_kv_put(n->bus, BUS_KV_OFFENDERS, "evil", deep->str, deep->len, &rev, NULL));
	assert_true(bus_kv_put(n->bus, BUS_KV_OFFENDERS, "10.0.0.9.smtp-fanout",
			       "{\"host\":\"10.0.0.9\"}", 19, &rev, NULL));
	pump(nodes, 1, 600);
	g_autoptr(GString) offs = g_string_new(NULL);
	gint64 age = -1;
	coord_offenders_json(n->coord, offs, &age);
	assert_string_equal(offs->str, "[{\"host\":\"10.0.0.9\"}]");
	assert_true(n->owned[5]); /* and the node goes on */
	/* another node's write: lost */
	assert_true(bus_kv_put(n->bus, BUS_KV_LEASES, "p6", "other", 5, &rev, NULL));
	gint64 start = ms();
	while (ms() - start < 3000 && n->owned[6])
		pump(nodes, 1, 20);
	assert_false(n->owned[6]);
}

/* coord_restart(): the partition is given up on the snapshot stored before and taken again
 * by the same node, which gets that snapshot and the flows after it again (what makes the
 * replay send a dropped alert event once more). */
static void
test_coord_restart(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[1] = {node_start("solo", "")};
	gint owner[P];
	pump_until_settled(nodes, 1, owner, 5000);
	Node *n = nodes[0];
	publish(n->bus, 2, 1, 5);
	assert_int_equal(pump_until_applied(nodes, 1, n, 2, 5), 5);
	pump(nodes, 1, 300); /* a snapshot covering m1..m5 stored */
	n->keep_stored[2] = TRUE;
	publish(n->bus, 2, 6, 8);
	assert_int_equal(pump_until_applied(nodes, 1, n, 2, 8), 8);
	expect_state(n->state[2], 8);
	guint mark = n->seen->len;
	coord_restart(n->coord, 2);
	coord_restart(n->coord, P); /* no such partition: nothing */
	gint64 start = ms();
	while (ms() - start < 5000 && n->owned[2]) /* given up */
		pump(nodes, 1, 5);
	assert_false(n->owned[2]);
	n->keep_stored[2] = FALSE; /* taken again: snapshots as usual */
	while (ms() - start < 5000 && !(n->owned[2] && n->applied[2] == 8))
		pump(nodes, 1, 20);
	gint release = -1, acquired = -1;
	for (guint i = mark; i < n->seen->len; i++) {
		const Seen *s = &g_array_index(n->seen, Seen, i);
		if (s->p != 2)
			continue;
		if (s->kind == COORD_RELEASE && release < 0)
			release = (gint)i;
		if (s->kind == COORD_ACQUIRED && acquired < 0) {
			acquired = (gint)i;
			assert_int_equal(s->seq, 5); /* the stored snapshot, not a newer one */
			assert_string_equal(s->data, "m1,m2,m3,m4,m5,");
		}
	}
	assert_true(release >= 0);
	assert_true(acquired > release);
	expect_state(n->state[2], 8); /* m6..m8 replayed */
	for (guint p = 0; p < P; p++)
		assert_true(n->owned[p]); /* the others stayed */
	g_autoptr(GString) st = g_string_new(NULL);
	coord_status_json(n->coord, st);
	assert_non_null(strstr(st->str, "\"restarts\":1,"));
}

/* Lag in time: a partition with batches it has not applied is as far behind as the stored
 * time of the batch it is at (the fake stores a batch when it delivers it); 0 once caught
 * up, and while nothing is known of the stream's end. */
static void
test_coord_lag_ms(void **state)
{
	(void)state;
	cluster_fake_bus_reset();
	Node *nodes[1] = {node_start("solo", "")};
	gint owner[P];
	pump_until_settled(nodes, 1, owner, 5000);
	Node *n = nodes[0];
	publish(n->bus, 4, 1, 1);
	assert_int_equal(pump_until_applied(nodes, 1, n, 4, 1), 1);
	gint64 at = ms();
	assert_int_equal(lag_ms_of(n), 0);
	/* two more, not applied: the main loop does not run */
	publish(n->bus, 4, 2, 3);
	g_usleep(3500 * 1000); /* the coordinator reads the stream's end every 3 s */
	gint64 lag = lag_ms_of(n), held = ms() - at;
	assert_true(lag >= held - 100 && lag <= held + 2000);
	g_autoptr(GString) st = g_string_new(NULL);
	coord_status_json(n->coord, st);
	const char *p4 = strstr(st->str, "\"p\":4,\"owner\":\"solo\"");
	assert_non_null(p4);
	const char *lm = strstr(p4, "\"lag_ms\":");
	assert_non_null(lm);
	assert_true(g_ascii_strtoll(lm + 9, NULL, 10) >= 3000);
	assert_int_equal(pump_until_applied(nodes, 1, n, 4, 3), 3);
	assert_int_equal(lag_ms_of(n), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rendezvous_spread),
	    cmocka_unit_test(test_rendezvous_movement),
	    cmocka_unit_test(test_ack_track),
	    cmocka_unit_test(test_fence),
	    cmocka_unit_test(test_queue_order),
	    cmocka_unit_test(test_queue_bound),
	    cmocka_unit_test(test_queue_close),
	    cmocka_unit_test_teardown(test_coord_takeover, stop_running),
	    cmocka_unit_test_teardown(test_coord_alerts_requests, stop_running),
	    cmocka_unit_test_teardown(test_coord_zombie, stop_running),
	    cmocka_unit_test_teardown(test_coord_shutdown, stop_running),
	    cmocka_unit_test_teardown(test_coord_lease_adopted, stop_running),
	    cmocka_unit_test_teardown(test_coord_restart, stop_running),
	    cmocka_unit_test_teardown(test_coord_lag_ms, stop_running),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
