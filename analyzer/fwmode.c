/* Firewall session events (NSEL, IPFIX firewallEvent): which record of a session is its
 * attempt. A firewall that exports every event sends a create when the session opens and a
 * teardown when it closes; the create has been the attempt, the teardown a flow only. But
 * many are set to send less: a Cisco ASA with `flow-export delay flow-create N` sends no
 * create for a session shorter than N s (a bot's SMTP session, a timed-out SYN), only its
 * teardown, and some firewalls mark every record a teardown. Read the old way, those
 * sessions counted nothing, and only denies were left.
 *
 * So per exporter and observation domain: once it has sent a teardown, every session it
 * exports ends in one, and the teardown is the attempt; its creates are flows only (a
 * session is counted once either way). Until then (and an hour after its last teardown) its
 * creates count, as before: an exporter of creates alone stays read. A teardown whose
 * responder sent at most one bare packet (responder octets <= FWMODE_BARE_OCTETS, when the
 * record has them: nothing, or a reset or a SYN-ACK with no dialog after it, IPv4 or IPv6)
 * held no session: a failed attempt, as a deny is (records of a firewall carry no TCP
 * flags to tell it by), if the session lasted less than a minute (below). Only the sessions open when the first teardown arrives are counted
 * twice (their create, then their teardown). */
#include "analyzer_private.h"

typedef struct {
	guint64 key;	    /* exporter << 32 | domain */
	gint64 teardown_ms; /* analyzer time of its last teardown */
} FwMode;

static guint64
fw_key(const Flow *f)
{
	return (guint64)f->exporter << 32 | f->domain;
}

void
fwmode_init(Analyzer *a)
{
	a->fw_modes = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
}

void
fwmode_free(Analyzer *a)
{
	g_clear_pointer(&a->fw_modes, g_hash_table_unref);
}

/* The exporter domain's teardowns count, as of now. */
static gboolean
teardowns_count(const Analyzer *a, const Flow *f, gint64 now)
{
	guint64 key = fw_key(f);
	const FwMode *m = g_hash_table_lookup(a->fw_modes, &key);
	return m != NULL && now >= m->teardown_ms && now - m->teardown_ms < FWMODE_HOLD_MS;
}

/* A teardown from f's exporter domain at now: its teardowns count from now (FALSE: the
 * domain is not followed, over FWMODE_MAX). Tells the owner when they start to count
 * (first, or again after an hour without one). */
static gboolean
note_teardown(Analyzer *a, const Flow *f, gint64 now)
{
	guint64 key = fw_key(f);
	FwMode *m = g_hash_table_lookup(a->fw_modes, &key);
	gboolean starts =
	    m == NULL || now < m->teardown_ms || now - m->teardown_ms >= FWMODE_HOLD_MS;

	if (m == NULL) {
		if (g_hash_table_size(a->fw_modes) >= FWMODE_MAX) {
			a->st.fw_domains_refused++;
			return FALSE; /* its creates keep counting: not blind, at most twice */
		}
		m = g_new(FwMode, 1);
		m->key = key;
		g_hash_table_insert(a->fw_modes, &m->key, m);
	}
	m->teardown_ms = now; /* not starting: now is at or past the last one */
	if (starts) {
		a->st.fw_domains_teardown++;
		if (a->notice_fn != NULL && !a->loading) {
			AnalyzerNoticeInfo info = {.exporter = f->exporter, .domain = f->domain};
			a->notice_fn(ANALYZER_NOTICE_FW_TEARDOWN, &info, a->notice_data);
		}
	}
	return TRUE;
}

const Flow *
fwmode_view(Analyzer *a, const Flow *f, Flow *view, gint64 now)
{
	if (f->fw_event == FW_EVENT_DELETED) {
		if (!note_teardown(a, f, now))
			return f; /* refused a slot: read as before */
		*view = *f;
		/* what the classifier reads as a session's attempt: a create; with no dialog, a
		 * deny (failed). An ASA's counters count since the session's last flow-update,
		 * sent once it outlives `flow-export active refresh-interval` (a minute at the
		 * least): a longer session's teardown may hold only its closing packets, so only
		 * a shorter one (or one whose times are not known) is judged by them. */
		gboolean brief = !(f->has & FLOW_HAS_TIMES) ||
				 f->end_ms - f->start_ms < FWMODE_UPDATE_MIN_MS;
		gboolean failed = brief && (f->has & FLOW_HAS_REVERSE) &&
				  f->rev_bytes <= FWMODE_BARE_OCTETS && f->rev_packets <= 1;
		view->fw_event = failed ? FW_EVENT_DENIED : FW_EVENT_CREATED;
		a->st.fw_teardowns++;
		a->st.fw_teardowns_failed += failed;
		return view;
	}
	if (f->fw_event == FW_EVENT_CREATED && teardowns_count(a, f, now)) {
		*view = *f;
		view->fw_event = FW_EVENT_UPDATE; /* a flow of a session its teardown will count */
		a->st.fw_creates_skipped++;
		return view;
	}
	return f;
}
