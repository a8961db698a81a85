/* The nftables quarantine (quarantine.h): raised offenders go into the admin's nftables set
 * with a timeout, refreshed while they offend, deleted when they clear (or left to expire).
 * The safety rules and the bookkeeping run on the main thread in write(); the nft calls
 * (libnftables, never the nft program) run on one worker thread behind a bounded queue, and
 * their results come back to the main thread through a GSource, where they are recorded. */
#include "quarantine.h"

#include "flow.h"
#include "json.h"
#include "netset.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* clang-format off */
G_DEFINE_QUARK(quarantine-error-quark, quarantine_error)
/* clang-format on */

/* A latency beyond this is not a live event (a replay's capture time): not counted. */
#define LATENCY_MAX_MS (3600 * 1000)

typedef enum { OP_ADD, OP_REFRESH, OP_DELETE } OpKind;

/* One nft call: made on the main thread, run by the worker, recorded on the main thread. */
typedef struct {
	OpKind kind;
	guint8 host[16];
	gint reason;
	const char *action; /* what the record says on success */
	char why[64];	    /* "raised", "updated", "cleared", "reconcile" */
	gint64 event_ms;    /* AlertEvent.time_ms; 0: no event (reconcile) */
	char *cmd;
	/* filled by the worker */
	gboolean ok;
	char *error;
	gint64 done_ms; /* wall clock */
	gint64 nft_us;	/* the call alone */
} Op;

/* A host in the set as far as spamflow knows. */
typedef struct {
	guint8 host[16];
	guint32 reasons; /* 1 << AlertReason of the offences that hold it here; 0: not ours */
	gint reason;	 /* the first of them, for people; -1: not ours */
	AlertSeverity severity;
	gint64 since_ms;   /* wall clock of the add; 0: unknown */
	gint64 expires_ms; /* wall clock; 0: never */
	gboolean pending;  /* the add is queued, not yet done */
} Member;

typedef struct {
	Sink base;
	char *family, *table, *set4, *set6;
	gboolean has_set6;
	guint timeout_s, max_hosts, queue_max;
	gboolean delete_on_clear, dry_run;
	NetSet *internal, *mail, *never;
	ActionFilter *filter;
	ActionLog *log;

	/* libnftables: one context, one thread in it at a time */
	GMutex nft_lock;
	struct nft_ctx *nft;

	/* the worker */
	GThread *thread;
	GMutex qlock;
	GCond qcond;
	GQueue queue; /* Op *, main -> worker */
	gboolean in_flight, quit;
	GAsyncQueue *results; /* Op *, worker -> main */
	GMainContext *ctx;
	GSource *result_src;
	GSource *start_src; /* starts the worker when the main loop first runs */

	GHashTable *members; /* host -> Member */
	GHashTable *held;    /* host -> GUINT_TO_POINTER(reasons): released, kept out */

	guint64 added, refreshed, deleted, released, expiring, held_skipped, renewed, unrenewed;
	guint64 refused_mail_server, refused_mta_like, refused_external, refused_never, refused_cap,
	    refused_ipv6;
	guint64 dry_run_n, queued, nft_calls;
	gint64 last_latency_ms, max_latency_ms, max_nft_us;
	guint64 latencies;
} Quarantine;

static NetSet *prefixes(const char *list, const char *what, GError **error);

static void
op_free(Op *op)
{
	g_free(op->cmd);
	g_free(op->error);
	g_free(op);
}

static gint64
wall_ms(void)
{
	return g_get_real_time() / 1000;
}

static const char *
addr_text(const guint8 host[16], char *buf, gsize len)
{
	return flow_addr_str(host, buf, len);
}

static const char *
set_of(const Quarantine *q, const guint8 host[16])
{
	return flow_addr_is_v4(host) ? q->set4 : q->set6;
}

/* ---- libnftables ---- */

/* First line of nft's error text, trimmed, for a record's detail. */
static char *
first_line(const char *text)
{
	if (text == NULL || *text == '\0')
		return g_strdup("nft failed without a message");
	const char *nl = strchr(text, '\n');
	g_autofree char *l = nl != NULL ? g_strndup(text, (gsize)(nl - text)) : g_strdup(text);
	return g_strstrip(g_steal_pointer(&l));
}

/* Run one command buffer with nft_lock held; *output gets the output (JSON when json). */
static gboolean
nft_run_locked(Quarantine *q, const char *cmd, gboolean json, char **output, char **error)
{
	nft_ctx_output_set_flags(q->nft, json ? NFT_CTX_OUTPUT_JSON : 0);
	int rc = nft_run_cmd_from_buffer(q->nft, cmd);
	/* the getters rewind the buffers: take both after every call */
	const char *out = nft_ctx_get_output_buffer(q->nft);
	const char *err = nft_ctx_get_error_buffer(q->nft);
	q->nft_calls++;
	if (output != NULL)
		*output = g_strdup(out != NULL ? out : "");
	if (rc != 0) {
		if (error != NULL)
			*error = g_strdup(err != NULL && *err != '\0' ? err : "nft failed");
		return FALSE;
	}
	return TRUE;
}

static gboolean
nft_run(Quarantine *q, const char *cmd, gboolean json, char **output, char **error)
{
	g_mutex_lock(&q->nft_lock);
	gboolean ok = nft_run_locked(q, cmd, json, output, error);
	g_mutex_unlock(&q->nft_lock);
	return ok;
}

/* One member of a set as the kernel lists it. */
typedef struct {
	guint8 host[16];
	gint64 timeout_s; /* -1: none */
	gint64 expires_s; /* -1: none */
} KernelElem;

/* `list set` JSON -> the set's type, whether it has the timeout flag, its elements. */
static gboolean
parse_set_json(const char *text, char **type, gboolean *has_timeout, GArray *elems, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(GError) err = NULL;

	if (!json_parser_load_from_data(parser, text, -1, &err)) {
		g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NFT,
			    "nft's JSON output does not parse: %s", err->message);
		return FALSE;
	}
	JsonNode *root = json_parser_get_root(parser);
	JsonObject *ro =
	    root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
	JsonArray *items = ro != NULL && json_object_has_member(ro, "nftables")
			       ? json_object_get_array_member(ro, "nftables")
			       : NULL;
	for (guint i = 0; items != NULL && i < json_array_get_length(items); i++) {
		JsonNode *n = json_array_get_element(items, i);
		if (!JSON_NODE_HOLDS_OBJECT(n) ||
		    !json_object_has_member(json_node_get_object(n), "set"))
			continue;
		JsonObject *set = json_object_get_object_member(json_node_get_object(n), "set");
		if (set == NULL)
			continue;
		JsonNode *t = json_object_get_member(set, "type");
		*type = g_strdup(t != NULL && JSON_NODE_HOLDS_VALUE(t) &&
					 json_node_get_value_type(t) == G_TYPE_STRING
				     ? json_node_get_string(t)
				     : "(a concatenation)");
		*has_timeout = FALSE;
		JsonNode *fl = json_object_get_member(set, "flags");
		if (fl != NULL && JSON_NODE_HOLDS_ARRAY(fl)) {
			JsonArray *fa = json_node_get_array(fl);
			for (guint k = 0; k < json_array_get_length(fa); k++) {
				JsonNode *f = json_array_get_element(fa, k);
				if (JSON_NODE_HOLDS_VALUE(f) &&
				    json_node_get_value_type(f) == G_TYPE_STRING &&
				    strcmp(json_node_get_string(f), "timeout") == 0)
					*has_timeout = TRUE;
			}
		}
		JsonNode *el = json_object_get_member(set, "elem");
		if (el == NULL || !JSON_NODE_HOLDS_ARRAY(el))
			return TRUE;
		JsonArray *ea = json_node_get_array(el);
		for (guint k = 0; k < json_array_get_length(ea); k++) {
			JsonNode *e = json_array_get_element(ea, k);
			KernelElem ke = {.timeout_s = -1, .expires_s = -1};
			JsonNode *val = e;
			/* {"elem": {"val": "10.0.0.1", "timeout": 100, "expires": 99}} or the
			 * address alone */
			if (JSON_NODE_HOLDS_OBJECT(e) &&
			    json_object_has_member(json_node_get_object(e), "elem")) {
				JsonObject *eo =
				    json_object_get_object_member(json_node_get_object(e), "elem");
				if (eo == NULL)
					continue;
				val = json_object_get_member(eo, "val");
				if (json_object_has_member(eo, "timeout"))
					ke.timeout_s = json_object_get_int_member(eo, "timeout");
				if (json_object_has_member(eo, "expires"))
					ke.expires_s = json_object_get_int_member(eo, "expires");
			}
			if (val == NULL || !JSON_NODE_HOLDS_VALUE(val) ||
			    json_node_get_value_type(val) != G_TYPE_STRING)
				continue; /* a prefix or range: not ours to manage */
			guint8 a[16];
			g_autoptr(GError) perr = NULL;
			guint plen;
			if (!netset_parse_prefix(json_node_get_string(val), a, &plen, &perr) ||
			    plen != 128)
				continue;
			memcpy(ke.host, a, 16);
			g_array_append_val(elems, ke);
		}
		return TRUE;
	}
	g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NFT,
		    "nft listed no set in its JSON output");
	return FALSE;
}

static char *
create_hint(const Quarantine *q)
{
	return g_strdup_printf("create it with:\n"
			       "  nft add table %s %s\n"
			       "  nft add set %s %s %s '{ type ipv4_addr; flags timeout; }'\n"
			       "and, to quarantine IPv6 hosts too:\n"
			       "  nft add set %s %s %s '{ type ipv6_addr; flags timeout; }'\n"
			       "(doc/actions.md has a ruleset that drops TCP 25/465/587 from it)",
			       q->family, q->table, q->family, q->table, q->set4, q->family,
			       q->table, q->set6);
}

/* List one set: FALSE with error (NO_SET when nft says it is missing). */
static gboolean
list_set(Quarantine *q, const char *set, const char *want_type, GArray *elems, GError **error)
{
	g_autofree char *cmd = g_strdup_printf("list set %s %s %s", q->family, q->table, set);
	g_autofree char *out = NULL, *err = NULL, *type = NULL;
	gboolean has_timeout = FALSE;

	if (!nft_run(q, cmd, TRUE, &out, &err)) {
		g_autofree char *l = first_line(err);
		g_set_error(error, QUARANTINE_ERROR,
			    strstr(err, "No such file or directory") != NULL
				? QUARANTINE_ERROR_NO_SET
				: QUARANTINE_ERROR_NFT,
			    "quarantine set %s %s %s: %s", q->family, q->table, set, l);
		return FALSE;
	}
	if (!parse_set_json(out, &type, &has_timeout, elems, error)) {
		g_prefix_error(error, "quarantine set %s %s %s: ", q->family, q->table, set);
		return FALSE;
	}
	if (strcmp(type, want_type) != 0 || !has_timeout) {
		g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NO_SET,
			    "quarantine set %s %s %s: type %s%s, but the quarantine needs "
			    "'type %s; flags timeout;'",
			    q->family, q->table, set, type,
			    has_timeout ? "" : " without the timeout flag", want_type);
		return FALSE;
	}
	return TRUE;
}

/* Both sets' members (the IPv6 one when it exists). */
static gboolean
list_members(Quarantine *q, GArray *elems, GError **error)
{
	if (!list_set(q, q->set4, "ipv4_addr", elems, error))
		return FALSE;
	if (q->has_set6 && !list_set(q, q->set6, "ipv6_addr", elems, error))
		return FALSE;
	return TRUE;
}

/* ---- the worker ---- */

static gpointer
worker(gpointer data)
{
	Quarantine *q = data;

	for (;;) {
		g_mutex_lock(&q->qlock);
		while (g_queue_is_empty(&q->queue) && !q->quit)
			g_cond_wait(&q->qcond, &q->qlock);
		if (g_queue_is_empty(&q->queue)) { /* quit, and nothing left */
			g_mutex_unlock(&q->qlock);
			return NULL;
		}
		Op *op = g_queue_pop_head(&q->queue);
		q->in_flight = TRUE;
		g_mutex_unlock(&q->qlock);

		gint64 t0 = g_get_monotonic_time();
		op->ok = nft_run(q, op->cmd, FALSE, NULL, &op->error);
		op->nft_us = g_get_monotonic_time() - t0;
		op->done_ms = wall_ms();
		/* in_flight drops only once the result is where flush() looks for it */
		g_async_queue_push(q->results, op);
		g_mutex_lock(&q->qlock);
		q->in_flight = FALSE;
		g_mutex_unlock(&q->qlock);
		g_main_context_wakeup(q->ctx);
	}
}

static gboolean
start_worker(gpointer data)
{
	Quarantine *q = data;
	if (q->thread == NULL)
		q->thread = g_thread_new("quarantine", worker, q);
	g_source_unref(q->start_src);
	q->start_src = NULL;
	return G_SOURCE_REMOVE;
}

static Member *
member_get(Quarantine *q, const guint8 host[16])
{
	return g_hash_table_lookup(q->members, host);
}

static Member *
member_add(Quarantine *q, const guint8 host[16])
{
	Member *m = g_new0(Member, 1);
	memcpy(m->host, host, 16);
	m->reason = -1;
	g_hash_table_replace(q->members, m->host, m);
	return m;
}

/* The main thread's side of a finished call. */
static void
op_done(Quarantine *q, Op *op)
{
	char a[64];
	Member *m = member_get(q, op->host);

	q->max_nft_us = MAX(q->max_nft_us, op->nft_us);
	if (!op->ok) {
		g_autofree char *l = first_line(op->error);
		q->base.st.errors++;
		action_log_add(q->log, "quarantine-failed", op->host, op->reason, -1, "%s (%s): %s",
			       op->kind == OP_DELETE ? "delete"
			       : op->kind == OP_ADD  ? "add"
						     : "refresh",
			       op->why, l);
		sink_log_error(&q->base, "nft failed for %s: %s", addr_text(op->host, a, sizeof a),
			       l);
		/* an add that did not happen holds no place in the set */
		if (op->kind == OP_ADD && m != NULL && m->pending)
			g_hash_table_remove(q->members, op->host);
		return;
	}
	gint64 lat = -1;
	if (op->event_ms > 0 && op->done_ms >= op->event_ms &&
	    op->done_ms - op->event_ms <= LATENCY_MAX_MS) {
		lat = op->done_ms - op->event_ms;
		q->last_latency_ms = lat;
		q->max_latency_ms = MAX(q->max_latency_ms, lat);
		q->latencies++;
	}
	g_autofree char *when =
	    lat >= 0 ? g_strdup_printf(", %" G_GINT64_FORMAT " ms after the crossing flow", lat)
		     : g_strdup("");
	if (op->kind == OP_REFRESH && strcmp(op->action, "quarantine-renew") == 0) {
		q->renewed++; /* routine: counted, not recorded (failures are) */
		if (m != NULL)
			m->pending = FALSE;
		return;
	}
	switch (op->kind) {
	case OP_ADD:
	case OP_REFRESH:
		if (op->kind == OP_ADD)
			q->added++;
		else
			q->refreshed++;
		if (m != NULL)
			m->pending = FALSE;
		action_log_add(q->log, op->action, op->host, op->reason, -1,
			       "%s: in %s %s %s, timeout %us%s", op->why, q->family, q->table,
			       set_of(q, op->host), q->timeout_s, when);
		break;
	case OP_DELETE:
		q->deleted++;
		action_log_add(q->log, op->action, op->host, op->reason, -1,
			       "%s: removed from %s %s %s", op->why, q->family, q->table,
			       set_of(q, op->host));
		break;
	}
}

typedef struct {
	GSource src;
	Quarantine *q;
} ResultSource;

static gboolean
results_ready(GSource *src, gint *timeout)
{
	*timeout = -1;
	return g_async_queue_length(((ResultSource *)src)->q->results) > 0;
}

static gboolean
results_check(GSource *src)
{
	return g_async_queue_length(((ResultSource *)src)->q->results) > 0;
}

static gboolean
results_dispatch(GSource *src, GSourceFunc cb, gpointer user_data)
{
	Quarantine *q = ((ResultSource *)src)->q;
	Op *op;
	(void)cb;
	(void)user_data;
	while ((op = g_async_queue_try_pop(q->results)) != NULL) {
		op_done(q, op);
		op_free(op);
	}
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs result_funcs = {
    .prepare = results_ready, .check = results_check, .dispatch = results_dispatch};

/* ---- queueing ---- */

static char *
cmd_for(const Quarantine *q, OpKind kind, const guint8 host[16])
{
	char a[64];
	const char *set = set_of(q, host);
	addr_text(host, a, sizeof a);
	if (kind == OP_DELETE)
		/* the add makes the delete succeed when the element already expired */
		return g_strdup_printf("add element %s %s %s { %s }\n"
				       "delete element %s %s %s { %s }\n",
				       q->family, q->table, set, a, q->family, q->table, set, a);
	/* nft 1.0.6 `add element` leaves an existing element's timeout alone: add, delete
	 * and add it again in one transaction, which restarts the timeout atomically (the
	 * element is never missing to the packet path) whether or not it was there */
	return g_strdup_printf("add element %s %s %s { %s }\n"
			       "delete element %s %s %s { %s }\n"
			       "add element %s %s %s { %s timeout %us }\n",
			       q->family, q->table, set, a, q->family, q->table, set, a, q->family,
			       q->table, set, a, q->timeout_s);
}

/* Queue one call; FALSE when the queue is full (counted, rate-limited log). */
static gboolean
enqueue(Quarantine *q, OpKind kind, const guint8 host[16], gint reason, const char *action,
	const char *why, gint64 event_ms)
{
	g_mutex_lock(&q->qlock);
	if (q->queue.length >= q->queue_max) {
		g_mutex_unlock(&q->qlock);
		q->base.st.dropped++;
		sink_log_error(&q->base, "queue full (%u calls waiting for nft): event dropped",
			       q->queue_max);
		return FALSE;
	}
	Op *op = g_new0(Op, 1);
	op->kind = kind;
	memcpy(op->host, host, 16);
	op->reason = reason;
	op->action = action;
	g_strlcpy(op->why, why, sizeof op->why);
	op->event_ms = event_ms;
	op->cmd = cmd_for(q, kind, host);
	g_queue_push_tail(&q->queue, op);
	g_cond_signal(&q->qcond);
	g_mutex_unlock(&q->qlock);
	q->queued++;
	return TRUE;
}

/* Members whose timeout ran out leave the table. */
static void
prune(Quarantine *q)
{
	GHashTableIter it;
	gpointer v;
	gint64 now = wall_ms();

	g_hash_table_iter_init(&it, q->members);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const Member *m = v;
		if (!m->pending && m->expires_ms > 0 && m->expires_ms <= now)
			g_hash_table_iter_remove(&it);
	}
}

/* The safety rules: NULL when host may be quarantined, else the refusal's detail (and
 * its counter counted). A member already in the set is not refused for the cap. */
static const char *
refusal(Quarantine *q, const guint8 host[16], gboolean mta_like)
{
	static char buf[128];

	if (netset_contains(q->never, host)) {
		q->refused_never++;
		return "listed in [quarantine] never";
	}
	if (netset_contains(q->mail, host)) {
		q->refused_mail_server++;
		return "a listed mail server ([analyzer] mail_servers)";
	}
	/* it receives mail: more likely an MTA nobody listed than a bot; the alert says so */
	if (mta_like) {
		q->refused_mta_like++;
		return "looks like a mail server (it receives mail): list it in [analyzer] "
		       "mail_servers, or quarantine it by hand";
	}
	if (!netset_contains(q->internal, host)) {
		q->refused_external++;
		return "outside [analyzer] internal_networks";
	}
	if (!flow_addr_is_v4(host) && !q->has_set6 && !q->dry_run) {
		q->refused_ipv6++;
		g_snprintf(buf, sizeof buf, "IPv6, and there is no set %s %s %s (type ipv6_addr)",
			   q->family, q->table, q->set6);
		return buf;
	}
	prune(q);
	if (member_get(q, host) == NULL && g_hash_table_size(q->members) >= q->max_hosts) {
		q->refused_cap++;
		g_snprintf(buf, sizeof buf, "the set holds %u hosts ([quarantine] max_hosts = %u)",
			   g_hash_table_size(q->members), q->max_hosts);
		return buf;
	}
	return NULL;
}

/* Add or refresh host for an offence of reason: the rules, then the queue (or, in
 * dry_run, the record of what would be done). */
static void
hold(Quarantine *q, const guint8 host[16], AlertReason reason, AlertSeverity severity,
     gboolean mta_like, const char *why, gint64 event_ms, gboolean reconcile)
{
	const char *no = refusal(q, host, mta_like);
	if (no != NULL) {
		action_log_add(q->log, "quarantine-refused", host, (gint)reason, -1, "%s: %s", why,
			       no);
		return;
	}
	Member *m = member_get(q, host);
	gboolean known = m != NULL;
	OpKind kind = known ? OP_REFRESH : OP_ADD;
	if (q->dry_run) {
		q->dry_run_n++;
		action_log_add(q->log, "quarantine-dry-run", host, (gint)reason, -1,
			       "%s: would %s it in %s %s %s, timeout %us (dry_run: nothing done)",
			       why, known ? "refresh" : "add", q->family, q->table, set_of(q, host),
			       q->timeout_s);
	} else {
		const char *action =
		    reconcile ? (known ? "quarantine-sync-refresh" : "quarantine-sync-add")
			      : (known ? "quarantine-refresh" : "quarantine-add");
		if (!enqueue(q, kind, host, (gint)reason, action, why, event_ms))
			return;
	}
	if (m == NULL) {
		m = member_add(q, host);
		m->since_ms = wall_ms();
		m->pending = !q->dry_run;
	}
	if (m->reason < 0)
		m->reason = (gint)reason;
	m->reasons |= 1u << reason;
	m->severity = MAX(m->severity, severity);
	m->expires_ms = wall_ms() + (gint64)q->timeout_s * 1000;
}

/* Out of the set: on_clear = delete, or reconcile. */
static void
unhold(Quarantine *q, const guint8 host[16], gint reason, const char *action, const char *why)
{
	if (q->dry_run) {
		q->dry_run_n++;
		action_log_add(q->log, "quarantine-dry-run", host, reason, -1,
			       "%s: would delete it from %s %s %s (dry_run: nothing done)", why,
			       q->family, q->table, set_of(q, host));
		g_hash_table_remove(q->members, host);
		return;
	}
	if (enqueue(q, OP_DELETE, host, reason, action, why, 0))
		g_hash_table_remove(q->members, host);
}

static void
quarantine_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	Quarantine *q = (Quarantine *)s;
	guint32 bit = 1u << ev->reason;
	gpointer held = NULL;
	gboolean is_held = g_hash_table_lookup_extended(q->held, ev->host, NULL, &held);
	(void)ctx;

	if (!action_filter_pass(q->filter, ev))
		return;
	s->st.events++;
	switch (ev->event) {
	case ALERT_RAISED:
		/* a new offence: a release held it out only until the last one cleared */
		if (is_held) {
			guint32 left = GPOINTER_TO_UINT(held) & ~bit;
			if (left == 0)
				g_hash_table_remove(q->held, ev->host);
			else
				g_hash_table_replace(q->held, g_memdup2(ev->host, 16),
						     GUINT_TO_POINTER(left));
		}
		hold(q, ev->host, ev->reason, ev->severity, ev->mta_like, "raised", ev->time_ms,
		     FALSE);
		break;
	case ALERT_UPDATED:
		if (is_held && (GPOINTER_TO_UINT(held) & bit)) {
			q->held_skipped++; /* released by an admin: stays out until it clears */
			return;
		}
		hold(q, ev->host, ev->reason, ev->severity, ev->mta_like, "updated", ev->time_ms,
		     FALSE);
		break;
	case ALERT_CLEARED: {
		if (is_held) {
			guint32 left = GPOINTER_TO_UINT(held) & ~bit;
			if (left == 0)
				g_hash_table_remove(q->held, ev->host);
			else
				g_hash_table_replace(q->held, g_memdup2(ev->host, 16),
						     GUINT_TO_POINTER(left));
		}
		Member *m = member_get(q, ev->host);
		if (m == NULL)
			return;
		m->reasons &= ~bit;
		if (m->reasons != 0)
			return; /* another offence still holds it */
		if (q->delete_on_clear) {
			unhold(q, ev->host, (gint)ev->reason, "quarantine-delete", "cleared");
		} else {
			q->expiring++;
			gint64 left_s = MAX(m->expires_ms - wall_ms(), 0) / 1000;
			action_log_add(
			    q->log, "quarantine-expire", ev->host, (gint)ev->reason, -1,
			    "cleared: left in the set until its timeout, %" G_GINT64_FORMAT
			    " s from now (on_clear = expire)",
			    left_s);
		}
		break;
	}
	case ALERT_KIND_COUNT:
		break;
	}
}

/* ---- control and start-up ---- */

gboolean
sink_is_quarantine(const Sink *s)
{
	return s != NULL && s->ops != NULL && strcmp(s->ops->kind, "quarantine") == 0;
}

gboolean
quarantine_set_networks(Sink *s, const char *internal_networks, const char *mail_servers,
			GError **error)
{
	if (!sink_is_quarantine(s)) {
		g_set_error_literal(error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
				    "not a quarantine");
		return FALSE;
	}
	Quarantine *q = (Quarantine *)s;
	g_autoptr(NetSet) internal =
	    prefixes(internal_networks, "[analyzer] internal_networks", error);
	if (internal == NULL)
		return FALSE;
	if (netset_size(internal) == 0) {
		g_set_error_literal(
		    error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
		    "quarantine: [analyzer] internal_networks is empty: there would "
		    "be no host it may quarantine");
		return FALSE;
	}
	g_autoptr(NetSet) mail = prefixes(mail_servers, "[analyzer] mail_servers", error);
	if (mail == NULL)
		return FALSE;
	netset_free(q->internal);
	q->internal = g_steal_pointer(&internal);
	netset_free(q->mail);
	q->mail = g_steal_pointer(&mail);
	return TRUE;
}

gboolean
quarantine_needs_net_admin(const Sink *s)
{
	return sink_is_quarantine(s) && !((const Quarantine *)s)->dry_run;
}

static void
member_json(GString *out, const Quarantine *q, const guint8 host[16], gint64 timeout_s,
	    gint64 expires_s)
{
	const Member *m = g_hash_table_lookup(q->members, host);
	g_string_append(out, "{\"host\":");
	json_addr(out, host);
	g_string_append(out, ",\"timeout_s\":");
	if (timeout_s >= 0)
		g_string_append_printf(out, "%" G_GINT64_FORMAT, timeout_s);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"expires_s\":");
	if (expires_s >= 0)
		g_string_append_printf(out, "%" G_GINT64_FORMAT, expires_s);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"reason\":");
	if (m != NULL && m->reason >= 0)
		json_quote(out, alert_reason_name((AlertReason)m->reason));
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"severity\":");
	if (m != NULL && m->reason >= 0)
		json_quote(out, alert_severity_name(m->severity));
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"since_ms\":");
	if (m != NULL && m->since_ms > 0)
		g_string_append_printf(out, "%" G_GINT64_FORMAT, m->since_ms);
	else
		g_string_append(out, "null");
	g_string_append_c(out, '}');
}

/* What the kernel holds replaces what the table believed: members that expired or were
 * deleted by someone else go, members someone else added come in (not ours). */
static void
sync_members(Quarantine *q, const GArray *elems)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_bytes_hash, g_bytes_equal);
	g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	GHashTableIter it;
	gpointer v;
	gint64 now = wall_ms();

	for (guint i = 0; i < elems->len; i++) {
		const KernelElem *e = &g_array_index(elems, KernelElem, i);
		GBytes *b = g_bytes_new(e->host, 16);
		g_ptr_array_add(keep, b);
		g_hash_table_add(seen, b);
		Member *m = member_get(q, e->host);
		if (m == NULL)
			m = member_add(q, e->host);
		m->expires_ms = e->expires_s >= 0 ? now + e->expires_s * 1000 : 0;
	}
	g_hash_table_iter_init(&it, q->members);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const Member *m = v;
		g_autoptr(GBytes) b = g_bytes_new_static(m->host, 16);
		if (!m->pending && !g_hash_table_contains(seen, b))
			g_hash_table_iter_remove(&it);
	}
}

static void
append_names(GString *out, const Quarantine *q)
{
	g_autofree char *name = g_strdup_printf("%s %s %s", q->family, q->table, q->set4);
	g_string_append(out, ",\"set\":");
	json_quote(out, name);
	g_string_append(out, ",\"set6\":");
	if (q->has_set6) {
		g_autofree char *n6 = g_strdup_printf("%s %s %s", q->family, q->table, q->set6);
		json_quote(out, n6);
	} else {
		g_string_append(out, "null");
	}
	g_string_append_printf(out, ",\"dry_run\":%s,\"timeout_s\":%u,\"max_hosts\":%u",
			       q->dry_run ? "true" : "false", q->timeout_s, q->max_hosts);
}

gboolean
quarantine_list(Sink *s, GString *out, GError **error)
{
	if (!sink_is_quarantine(s)) {
		g_set_error_literal(error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
				    "not a quarantine");
		return FALSE;
	}
	Quarantine *q = (Quarantine *)s;
	gint64 now = wall_ms();
	guint n = 0;

	if (q->dry_run) {
		/* the would-be members: nothing is in the kernel */
		prune(q);
		append_names(out, q);
		g_string_append(out, ",\"members\":[");
		GHashTableIter it;
		gpointer v;
		g_hash_table_iter_init(&it, q->members);
		while (g_hash_table_iter_next(&it, NULL, &v)) {
			const Member *m = v;
			if (n++ > 0)
				g_string_append_c(out, ',');
			member_json(out, q, m->host, q->timeout_s,
				    m->expires_ms > 0 ? MAX(m->expires_ms - now, 0) / 1000 : -1);
		}
		g_string_append(out, "]");
		return TRUE;
	}
	g_autoptr(GArray) elems = g_array_new(FALSE, FALSE, sizeof(KernelElem));
	if (!list_members(q, elems, error))
		return FALSE;
	sync_members(q, elems);
	append_names(out, q);
	g_string_append(out, ",\"members\":[");
	for (guint i = 0; i < elems->len; i++) {
		const KernelElem *e = &g_array_index(elems, KernelElem, i);
		if (i > 0)
			g_string_append_c(out, ',');
		member_json(out, q, e->host, e->timeout_s, e->expires_s);
	}
	g_string_append(out, "]");
	return TRUE;
}

gboolean
quarantine_release(Sink *s, const guint8 host[16], gint64 uid, GError **error)
{
	char a[64];

	if (!sink_is_quarantine(s)) {
		g_set_error_literal(error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
				    "not a quarantine");
		return FALSE;
	}
	Quarantine *q = (Quarantine *)s;
	addr_text(host, a, sizeof a);
	Member *m = member_get(q, host);
	if (!flow_addr_is_v4(host) && !q->has_set6 && !q->dry_run) {
		g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NOT_MEMBER,
			    "%s is not in the quarantine: there is no IPv6 set %s %s %s", a,
			    q->family, q->table, q->set6);
		return FALSE;
	}
	if (q->dry_run) {
		if (m == NULL) {
			g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NOT_MEMBER,
				    "%s is not in the quarantine (dry_run: of the hosts it would "
				    "hold)",
				    a);
			return FALSE;
		}
	} else {
		g_autofree char *cmd = g_strdup_printf("delete element %s %s %s { %s }", q->family,
						       q->table, set_of(q, host), a);
		g_autofree char *err = NULL;
		/* under nft_lock: an add of the worker's in flight is done before this runs;
		 * one still queued is taken out below (the hold stops new ones) */
		if (!nft_run(q, cmd, FALSE, NULL, &err)) {
			g_autofree char *l = first_line(err);
			if (strstr(err, "No such file or directory") != NULL) {
				g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NOT_MEMBER,
					    "%s is not in %s %s %s", a, q->family, q->table,
					    set_of(q, host));
			} else {
				q->base.st.errors++;
				g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NFT,
					    "cannot delete %s from %s %s %s: %s", a, q->family,
					    q->table, set_of(q, host), l);
			}
			return FALSE;
		}
	}
	/* adds and refreshes of the host still queued would undo the release */
	g_mutex_lock(&q->qlock);
	for (GList *l = q->queue.head; l != NULL;) {
		GList *next = l->next;
		Op *op = l->data;
		if (op->kind != OP_DELETE && memcmp(op->host, host, 16) == 0) {
			g_queue_delete_link(&q->queue, l);
			op_free(op);
		}
		l = next;
	}
	g_mutex_unlock(&q->qlock);
	guint32 reasons = m != NULL && m->reasons != 0 ? m->reasons : ACTION_REASONS_ALL;
	gint reason = m != NULL ? m->reason : -1;
	g_hash_table_replace(q->held, g_memdup2(host, 16), GUINT_TO_POINTER(reasons));
	g_hash_table_remove(q->members, host);
	q->released++;
	action_log_add(q->log, "quarantine-release", host, reason, uid,
		       "released%s: kept out until its offence clears; a new raise quarantines "
		       "it again",
		       q->dry_run ? " (dry_run: nothing was in the set)" : "");
	return TRUE;
}

void
quarantine_reconcile(Sink *s, const QuarantineWant *want, guint n)
{
	if (!sink_is_quarantine(s))
		return;
	Quarantine *q = (Quarantine *)s;
	g_autoptr(GArray) elems = g_array_new(FALSE, FALSE, sizeof(KernelElem));
	g_autoptr(GError) err = NULL;
	guint8 zero[16] = {0};

	if (!q->dry_run) {
		if (!list_members(q, elems, &err)) {
			q->base.st.errors++;
			action_log_add(q->log, "quarantine-failed", zero, -1, -1, "reconcile: %s",
				       err->message);
			return;
		}
		sync_members(q, elems);
	}
	/* the offenders the quarantine acts on; the filter learns them, so that their
	 * cleared events pass it */
	g_autoptr(GHashTable) wanted = g_hash_table_new(g_bytes_hash, g_bytes_equal);
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_autoptr(GArray) pass = g_array_new(FALSE, FALSE, sizeof(guint));
	AlertEvent *ev = g_new0(AlertEvent, 1);
	for (guint i = 0; i < n; i++) {
		ev->event = ALERT_RAISED;
		ev->reason = want[i].reason;
		ev->severity = want[i].severity;
		memcpy(ev->host, want[i].host, 16);
		if (!action_filter_pass(q->filter, ev))
			continue;
		GBytes *b = g_bytes_new(want[i].host, 16);
		g_ptr_array_add(keys, b);
		g_hash_table_add(wanted, b);
		g_array_append_val(pass, i);
	}
	g_free(ev);
	/* first the members no offender wants any more: they free their places (cap) */
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, q->members);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const Member *m = v;
		g_autoptr(GBytes) b = g_bytes_new_static(m->host, 16);
		if (!g_hash_table_contains(wanted, b))
			g_ptr_array_add(gone, g_memdup2(m->host, 16));
	}
	for (guint i = 0; i < gone->len; i++) {
		const guint8 *h = gone->pdata[i];
		if (q->delete_on_clear) {
			unhold(q, h, -1, "quarantine-sync-delete",
			       "reconcile at start: not an offender any more");
		} else {
			Member *m = member_get(q, h);
			gint64 left_s = m != NULL && m->expires_ms > 0
					    ? MAX(m->expires_ms - wall_ms(), 0) / 1000
					    : -1;
			q->expiring++;
			action_log_add(q->log, "quarantine-sync-keep", h, -1, -1,
				       "reconcile at start: not an offender any more; left to "
				       "expire in %" G_GINT64_FORMAT " s (on_clear = expire)",
				       left_s);
		}
	}
	/* then the offenders: refreshed when in the set, added when not */
	for (guint k = 0; k < pass->len; k++) {
		const QuarantineWant *w = &want[g_array_index(pass, guint, k)];
		hold(q, w->host, w->reason, w->severity, w->mta_like, "reconcile at start", 0,
		     TRUE);
	}
}

void
quarantine_renew(Sink *s, const QuarantineWant *want, guint n, guint interval_s)
{
	if (!sink_is_quarantine(s))
		return;
	Quarantine *q = (Quarantine *)s;
	gint64 now = wall_ms();
	/* renewed when less than half the timeout and two intervals are left */
	gint64 margin = (gint64)q->timeout_s * 500 + (gint64)interval_s * 2000;
	g_autoptr(GHashTable) active = g_hash_table_new(g_bytes_hash, g_bytes_equal);
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; i < n; i++) {
		GBytes *b = g_bytes_new(want[i].host, 16);
		g_ptr_array_add(keys, b);
		g_hash_table_insert(active, b,
				    GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(active, b)) |
						     (1u << want[i].reason)));
	}
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, q->members);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		Member *m = v;
		if (m->reasons == 0 || m->pending || m->expires_ms == 0 ||
		    m->expires_ms - now > margin)
			continue;
		g_autoptr(GBytes) b = g_bytes_new_static(m->host, 16);
		guint32 still = GPOINTER_TO_UINT(g_hash_table_lookup(active, b)) & m->reasons;
		if (still == 0) {
			/* the analyzer dropped the offence without a cleared event (forget,
			 * eviction): not renewed, the timeout lets the host go */
			m->reasons = 0;
			q->unrenewed++;
			continue;
		}
		if (q->dry_run) {
			m->expires_ms = now + (gint64)q->timeout_s * 1000;
			continue;
		}
		if (enqueue(q, OP_REFRESH, m->host, m->reason, "quarantine-renew",
			    "still offending", 0))
			m->expires_ms = now + (gint64)q->timeout_s * 1000;
	}
}

/* ---- the sink ---- */

static void
quarantine_stats_json(const Sink *s, GString *out)
{
	const Quarantine *q = (const Quarantine *)s;
	guint queue_len;
	gint64 now = wall_ms();
	guint members = 0;
	GHashTableIter it;
	gpointer v;

	g_mutex_lock((GMutex *)&q->qlock);
	queue_len = q->queue.length + (q->in_flight ? 1 : 0);
	g_mutex_unlock((GMutex *)&q->qlock);
	g_hash_table_iter_init(&it, q->members);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const Member *m = v;
		if (m->pending || m->expires_ms == 0 || m->expires_ms > now)
			members++;
	}
	g_string_append_printf(
	    out,
	    "\"dry_run\":%s,\"added\":%" G_GUINT64_FORMAT ",\"refreshed\":%" G_GUINT64_FORMAT
	    ",\"deleted\":%" G_GUINT64_FORMAT ",\"released\":%" G_GUINT64_FORMAT
	    ",\"expiring\":%" G_GUINT64_FORMAT ",\"held_released\":%" G_GUINT64_FORMAT
	    ",\"renewed\":%" G_GUINT64_FORMAT ",\"not_renewed\":%" G_GUINT64_FORMAT
	    ",\"refused_mail_server\":%" G_GUINT64_FORMAT ",\"refused_mta_like\":%" G_GUINT64_FORMAT
	    ",\"refused_external\":%" G_GUINT64_FORMAT ",\"refused_never\":%" G_GUINT64_FORMAT
	    ",\"refused_cap\":%" G_GUINT64_FORMAT ",\"refused_ipv6\":%" G_GUINT64_FORMAT
	    ",\"dry_run_actions\":%" G_GUINT64_FORMAT ",\"queued\":%" G_GUINT64_FORMAT
	    ",\"queue\":%u,\"queue_max\":%u"
	    ",\"nft_calls\":%" G_GUINT64_FORMAT ",\"members\":%u,\"max_hosts\":%u"
	    ",\"latencies\":%" G_GUINT64_FORMAT ",\"last_latency_ms\":%" G_GINT64_FORMAT
	    ",\"max_latency_ms\":%" G_GINT64_FORMAT ",\"max_nft_ms\":%.3f,",
	    q->dry_run ? "true" : "false", q->added, q->refreshed, q->deleted, q->released,
	    q->expiring, q->held_skipped, q->renewed, q->unrenewed, q->refused_mail_server, q->refused_mta_like,
	    q->refused_external, q->refused_never, q->refused_cap, q->refused_ipv6, q->dry_run_n,
	    q->queued, queue_len, q->queue_max, q->nft_calls, members, q->max_hosts, q->latencies,
	    q->last_latency_ms, q->max_latency_ms, (double)q->max_nft_us / 1000.0);
	action_filter_stats_json(q->filter, out);
}

static gboolean
wake(gpointer user_data)
{
	(void)user_data;
	return G_SOURCE_REMOVE;
}

static guint
pending(Quarantine *q)
{
	g_mutex_lock(&q->qlock);
	guint n = q->queue.length + (q->in_flight ? 1 : 0);
	g_mutex_unlock(&q->qlock);
	return n + (guint)MAX(g_async_queue_length(q->results), 0);
}

/* At exit: let the worker finish what is queued (each result recorded), for at most
 * timeout_ms; the calls left are returned (and dropped by free()). */
static guint
quarantine_flush(Sink *s, guint timeout_ms)
{
	Quarantine *q = (Quarantine *)s;
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (pending(q) > 0) {
		gint64 left = deadline - g_get_monotonic_time();
		if (left <= 0)
			break;
		GSource *t = g_timeout_source_new((guint)MIN(left / 1000 + 1, 20));
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, q->ctx);
		g_main_context_iteration(q->ctx, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
	}
	return pending(q);
}

static void
quarantine_free(Sink *s)
{
	Quarantine *q = (Quarantine *)s;
	Op *op;

	g_mutex_lock(&q->qlock);
	/* what is still queued is dropped: flush() had its chance */
	while ((op = g_queue_pop_head(&q->queue)) != NULL)
		op_free(op);
	q->quit = TRUE;
	g_cond_signal(&q->qcond);
	g_mutex_unlock(&q->qlock);
	if (q->thread != NULL)
		g_thread_join(q->thread);
	if (q->start_src != NULL) {
		g_source_destroy(q->start_src);
		g_source_unref(q->start_src);
	}
	if (q->result_src != NULL) {
		g_source_destroy(q->result_src);
		g_source_unref(q->result_src);
	}
	if (q->results != NULL) {
		while ((op = g_async_queue_try_pop(q->results)) != NULL)
			op_free(op);
		g_async_queue_unref(q->results);
	}
	if (q->ctx != NULL)
		g_main_context_unref(q->ctx);
	if (q->nft != NULL)
		nft_ctx_free(q->nft);
	g_mutex_clear(&q->nft_lock);
	g_mutex_clear(&q->qlock);
	g_cond_clear(&q->qcond);
	if (q->members != NULL)
		g_hash_table_unref(q->members);
	if (q->held != NULL)
		g_hash_table_unref(q->held);
	action_filter_free(q->filter);
	netset_free(q->internal);
	netset_free(q->mail);
	netset_free(q->never);
	g_free(q->family);
	g_free(q->table);
	g_free(q->set4);
	g_free(q->set6);
	g_free(q);
}

static const SinkOps quarantine_ops = {.kind = "quarantine",
				       .write = quarantine_write,
				       .stats_json = quarantine_stats_json,
				       .flush = quarantine_flush,
				       .free = quarantine_free};

/* nft identifiers ([A-Za-z_][A-Za-z0-9_.-]*): a name goes into a command buffer, so
 * nothing else may be in it */
static gboolean
valid_name(const char *s, gsize max)
{
	if (s == NULL || !(g_ascii_isalpha(s[0]) || s[0] == '_') || strlen(s) > max)
		return FALSE;
	for (const char *p = s; *p != '\0'; p++)
		if (!g_ascii_isalnum(*p) && *p != '_' && *p != '.' && *p != '-')
			return FALSE;
	return TRUE;
}

static guint
addr_hash(gconstpointer p)
{
	const guint8 *a = p;
	guint h = 2166136261u;
	for (guint i = 0; i < 16; i++)
		h = (h ^ a[i]) * 16777619u;
	return h;
}

static gboolean
addr_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 16) == 0;
}

static NetSet *
prefixes(const char *list, const char *what, GError **error)
{
	NetSet *n = netset_new_from_list(list != NULL ? list : "", error);
	if (n == NULL)
		g_prefix_error(error, "quarantine: %s: ", what);
	return n;
}

/* The prefix lists, and (unless dry_run) the libnftables context, the sets and the worker. */
static gboolean
setup(Quarantine *q, const QuarantineConfig *c, GError **error)
{
	q->internal = prefixes(c->internal_networks, "[analyzer] internal_networks", error);
	if (q->internal == NULL)
		return FALSE;
	if (netset_size(q->internal) == 0) {
		g_set_error_literal(
		    error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
		    "quarantine: [analyzer] internal_networks is empty: there would "
		    "be no host it may quarantine");
		return FALSE;
	}
	if ((q->mail = prefixes(c->mail_servers, "[analyzer] mail_servers", error)) == NULL ||
	    (q->never = prefixes(c->never, "[quarantine] never", error)) == NULL)
		return FALSE;

	if (!q->dry_run) {
		/* libnftables exit()s the process when it cannot open its netlink socket
		 * (nft_mnl_socket_open(): "Unable to initialize Netlink socket"): try first */
		int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
		if (fd < 0) {
			g_set_error(
			    error, QUARANTINE_ERROR, QUARANTINE_ERROR_NFT,
			    "quarantine: cannot open a netfilter netlink socket: %s (under "
			    "systemd: install /usr/share/spamflow/spamflowd-quarantine.conf "
			    "as a drop-in of spamflowd.service, it allows AF_NETLINK)",
			    g_strerror(errno));
			return FALSE;
		}
		close(fd);
		q->nft = nft_ctx_new(NFT_CTX_DEFAULT);
		if (q->nft == NULL || nft_ctx_buffer_output(q->nft) != 0 ||
		    nft_ctx_buffer_error(q->nft) != 0) {
			g_set_error_literal(error, QUARANTINE_ERROR, QUARANTINE_ERROR_NFT,
					    "quarantine: cannot make a libnftables context");
			return FALSE;
		}
		g_autoptr(GArray) elems = g_array_new(FALSE, FALSE, sizeof(KernelElem));
		g_autoptr(GError) err = NULL;
		if (!list_set(q, q->set4, "ipv4_addr", elems, &err)) {
			g_autofree char *hint = create_hint(q);
			g_set_error(error, QUARANTINE_ERROR, err->code, "%s; %s", err->message,
				    hint);
			return FALSE;
		}
		if (list_set(q, q->set6, "ipv6_addr", elems, &err)) {
			q->has_set6 = TRUE;
		} else if (g_error_matches(err, QUARANTINE_ERROR, QUARANTINE_ERROR_NO_SET) &&
			   strstr(err->message, "type ") == NULL) {
			g_message("quarantine: no set %s %s %s (type ipv6_addr): IPv6 hosts are "
				  "refused (counted in refused_ipv6)",
				  q->family, q->table, q->set6);
		} else {
			g_propagate_error(error, g_steal_pointer(&err));
			return FALSE;
		}
		sync_members(q, elems);
		q->results = g_async_queue_new();
		q->ctx = g_main_context_ref(g_main_context_default());
		q->result_src = g_source_new(&result_funcs, sizeof(ResultSource));
		((ResultSource *)q->result_src)->q = q;
		g_source_set_name(q->result_src, "quarantine results");
		g_source_attach(q->result_src, q->ctx);
		/* Capabilities belong to threads: a worker made now, before the daemon drops
		 * its privileges, would lose CAP_NET_ADMIN in the setuid() that glibc applies to
		 * every thread (PR_SET_KEEPCAPS is the calling thread's only), and keep whatever
		 * else it had without one. Made from the main loop's first iteration (after the
		 * drop) it inherits exactly what the main thread kept. Calls queued until then
		 * (the reconcile at start) wait in the queue. */
		q->start_src = g_idle_source_new();
		g_source_set_callback(q->start_src, start_worker, q, NULL);
		g_source_set_name(q->start_src, "quarantine worker start");
		g_source_attach(q->start_src, q->ctx);
	}
	return TRUE;
}

Sink *
quarantine_new(const QuarantineConfig *c, GError **error)
{
	static const char *const families[] = {"ip", "ip6", "inet", "arp", "bridge", "netdev"};
	gboolean family_ok = FALSE;

	for (gsize i = 0; i < G_N_ELEMENTS(families) && c->family != NULL; i++)
		family_ok |= strcmp(c->family, families[i]) == 0;
	if (!family_ok || !valid_name(c->table, 200) || !valid_name(c->set, 200)) {
		g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
			    "[quarantine] set '%s %s %s': not FAMILY TABLE SET (family ip, ip6, "
			    "inet, arp, bridge or netdev; names of letters, digits, _ . -)",
			    c->family != NULL ? c->family : "", c->table != NULL ? c->table : "",
			    c->set != NULL ? c->set : "");
		return NULL;
	}
	if (c->timeout_s == 0 || c->max_hosts == 0) {
		g_set_error(error, QUARANTINE_ERROR, QUARANTINE_ERROR_CONFIG,
			    "[quarantine] timeout and max_hosts must be above 0");
		return NULL;
	}
	Quarantine *q = g_new0(Quarantine, 1);
	g_autofree char *name = g_strdup_printf("%s %s %s", c->family, c->table, c->set);
	sink_init(&q->base, &quarantine_ops, name);
	g_mutex_init(&q->nft_lock);
	g_mutex_init(&q->qlock);
	g_cond_init(&q->qcond);
	g_queue_init(&q->queue);
	q->family = g_strdup(c->family);
	q->table = g_strdup(c->table);
	q->set4 = g_strdup(c->set);
	q->set6 = g_strdup_printf("%s6", c->set);
	q->timeout_s = c->timeout_s;
	q->max_hosts = c->max_hosts;
	q->queue_max = c->queue > 0 ? c->queue : 1024;
	q->delete_on_clear = c->delete_on_clear;
	q->dry_run = c->dry_run;
	q->log = c->log;
	/* the filter remembers what it let through so that cleared events follow: as many
	 * pairs as hosts the set may hold, a few reasons each */
	q->filter = action_filter_new(&c->filter, MAX(q->max_hosts, 64) * 4);
	q->members = g_hash_table_new_full(addr_hash, addr_equal, NULL, g_free);
	q->held = g_hash_table_new_full(addr_hash, addr_equal, g_free, NULL);
	if (!setup(q, c, error)) {
		sink_free(&q->base);
		return NULL;
	}
	g_autofree char *f = action_filter_spec_text(&c->filter);
	g_message("quarantine %s%s: timeout %us, on_clear=%s, max_hosts %u, %u members now, %s",
		  name, q->dry_run ? " (dry_run: nothing is changed)" : "", q->timeout_s,
		  q->delete_on_clear ? "delete" : "expire", q->max_hosts,
		  g_hash_table_size(q->members), f);
	return &q->base;
}
