/* Analyzer: normalized flow records in, alert events out. Owns the network sets, the host
 * table (capped, least-recently-seen eviction), the per-host windows, the offenders and a
 * ring of recent events. Pure: no sockets, no main loop, no globals, no config files. */
#pragma once

#include <glib.h>

#include "alert.h"
#include "flow.h"
#include "heuristics.h"
#include "netset.h"
#include "offender.h"
#include "policy.h"
#include "window.h"

#define ANALYZER_ERROR analyzer_error_quark()
GQuark analyzer_error_quark(void);
typedef enum { ANALYZER_ERROR_INVALID } AnalyzerError;

typedef struct {
	gboolean enabled;
	guint32 threshold[WINDOW_SPANS]; /* raise at metric >= threshold in that window (0 = off) */
} HeuristicConfig;

/* Optional destination lookup (country, ASN) for AlertEvent.n_countries/n_asns and the top
 * destinations; the daemon wires its enricher here, the analyzer stays free of databases.
 * country: ISO code or "" ; *asn: 0 when unknown. */
typedef gboolean (*AnalyzerGeoFunc)(const guint8 dst[16], char country[4], guint32 *asn,
				    gpointer user_data);
/* Optional: each flow the analyzer counts, with its classification (c->host, c->win,
 * c->dir: HEUR_FORWARD and HEUR_FLOW_ONLY records of a tracked host, HEUR_REVERSE answers
 * to a host with a window of that kind), just before the alert it may raise. The daemon
 * keeps the evidence files' flows this way, classified once. */
typedef void (*AnalyzerFlowFunc)(const Flow *f, const HeurClass *c, gpointer user_data);
/* Optional: a slice of the analyzer's clock ended (slice_end_ms, a multiple of slice_ms),
 * told by the first tick at or after it (analyzer_tick(), also run by analyzer_process()),
 * before that tick's clears. The daemon's history reads analyzer_foreach_reading() here. */
typedef void (*AnalyzerSliceFunc)(gint64 slice_end_ms, gpointer user_data);
/* Per host window, distinct countries and ASNs are kept in small sets from the moment the
 * window holds ANALYZER_GEO_MIN_DESTS distinct destinations (fewer: counted at event time
 * from the window itself). The sets saturate: a count equal to the maximum means "at
 * least". Entries leave with the long window (see geo.c). */
#define ANALYZER_GEO_MIN_DESTS 8
#define ANALYZER_GEO_MAX_COUNTRIES 32
#define ANALYZER_GEO_MAX_ASNS 64

/* What the analyzer tells its owner about itself, for the admin: a condition that lasts
 * gives one notice per ANALYZER_NOTICE_INTERVAL_MS of the analyzer's clock (flow time, so
 * capture time on replay), not one per flow. */
typedef enum {
	ANALYZER_NOTICE_EVICTED, /* tracked hosts evicted to hold max_hosts or mem_cap */
	ANALYZER_NOTICE_SUPPRESSION_EXPIRED, /* told at once, one notice per suppression */
	/* a period of ANALYZER_SCOPE_PERIOD_MS with ANALYZER_SCOPE_MIN_OUTSIDE or more records
	 * outside (AnalyzerStats.flows_outside) and not one with an internal end: told at most
	 * once per ANALYZER_SCOPE_REPEAT_MS */
	ANALYZER_NOTICE_OUTSIDE,
	/* an exporter domain's firewall teardowns count as its sessions' attempts from now
	 * (analyzer/fwmode.c): told when it starts, and again after an hour without one */
	ANALYZER_NOTICE_FW_TEARDOWN,
	ANALYZER_NOTICE_N
} AnalyzerNotice;
#define ANALYZER_NOTICE_INTERVAL_MS 60000
#define ANALYZER_SCOPE_PERIOD_MS (10 * 60000)
#define ANALYZER_SCOPE_MIN_OUTSIDE 100
#define ANALYZER_SCOPE_REPEAT_MS (60 * 60000)

typedef struct {
	/* ANALYZER_NOTICE_EVICTED. The first eviction is told at once, later ones at most once
	 * an interval (at the eviction or the tick that finds the interval over), counted since
	 * the last notice: */
	guint64 evicted;          /* hosts evicted, least recently seen first */
	guint64 by_max_hosts;     /* ... of them with max_hosts exceeded */
	guint64 by_mem_cap;       /* ... of them with only mem_cap exceeded */
	gint64 first_ms, last_ms; /* analyzer time of the first and the last of them */
	guint64 evicted_total;    /* since the start: AnalyzerStats.hosts_evicted */
	guint max_hosts;          /* the caps in force */
	guint64 mem_cap;
	guint64 hosts;            /* tracked now */
	guint64 mem_bytes;        /* the memory estimate now (AnalyzerStats.mem_bytes) */
	/* ANALYZER_NOTICE_SUPPRESSION_EXPIRED: the suppression, just before it goes */
	const PolicySuppression *suppression;
	/* ANALYZER_NOTICE_OUTSIDE: the records outside in the period, and its length */
	guint64 outside;
	gint64 outside_ms;
	/* ANALYZER_NOTICE_FW_TEARDOWN: the exporter (Flow.exporter) and its domain */
	guint32 exporter, domain;
} AnalyzerNoticeInfo;
typedef void (*AnalyzerNoticeFunc)(AnalyzerNotice what, const AnalyzerNoticeInfo *info,
				   gpointer user_data);

/* ANALYZER_NOTICE_OUTSIDE's rule, for whoever counts: the analyzer itself, and a cluster's
 * collector, which routes flows instead of analyzing them. Periods of
 * ANALYZER_SCOPE_PERIOD_MS on the caller's clock; a period with ANALYZER_SCOPE_MIN_OUTSIDE or
 * more records outside and none inside is told, at most once per ANALYZER_SCOPE_REPEAT_MS. */
typedef struct {
	gint64 since_ms, told_ms; /* the period's start, the last told (G_MININT64: none) */
	guint64 outside0, inside0; /* the running counts at the period's start */
} AnalyzerScopeWatch;
void analyzer_scope_watch_init(AnalyzerScopeWatch *w);
/* outside and inside: running counts. TRUE when the period ending at now_ms is to be told:
 * *told the records outside in it, *period_ms its length. */
gboolean analyzer_scope_watch(AnalyzerScopeWatch *w, gint64 now_ms, guint64 outside,
			      guint64 inside, guint64 *told, gint64 *period_ms);

/* Every knob; analyzer_config_defaults() gives each its default and the reason for it.
 * Strings are borrowed: the analyzer copies what it needs. */
typedef struct {
	/* networks and ports, as text lists (comma/space separated; see netset_add_list) */
	const char *internal_nets;
	const char *mail_servers; /* sanctioned MTAs, relays, smarthosts */
	const char *smtp_ports;
	const char *submission_ports;
	const char *login_ports;
	/* the site's DNS resolvers: DNS to or from them is not "external DNS"; empty = none
	 * known, external DNS is only noted and corroborates nothing */
	const char *resolvers;

	/* windows: one slice width, a short and a long window (in slices) */
	gint64 slice_ms;
	guint span_slices[WINDOW_SPANS];

	/* caps */
	guint exact_cap;   /* distinct destinations counted exactly per host window */
	guint max_hosts;   /* tracked hosts */
	guint64 mem_cap;   /* bytes for hosts and windows (estimated, see analyzer_mem) */
	guint history_len; /* recent alert events kept for queries */

	HeuristicConfig h[REASON_COUNT];
	double blocked_share;          /* smtp-blocked: failed share of attempts */
	guint32 blocked_min_attempts;  /* ... over at least this many attempts */
	double surge_k;                /* mta-surge: k x median of the baseline */
	guint surge_history;           /* baseline samples kept (one per short window) */
	guint surge_min_samples;       /* samples before the baseline is trusted */
	double surge_warmup_factor;    /* before that: threshold = floor x this */
	guint32 auth_max_packets;      /* auth-bruteforce: a short connection, in packets */
	guint64 auth_max_bytes;        /* ... and in bytes */
	/* smtp-novelty: h[REASON_SMTP_NOVELTY].threshold[WINDOW_SHORT] new destinations within
	 * novelty_window_ms ([WINDOW_LONG] is unused, 0); "new" = not contacted within the
	 * horizon (novelty.h) */
	gint64 novelty_window_ms;
	gint64 novelty_horizon_ms;
	guint64 novelty_capacity; /* (host, destination) pairs per horizon; at most a quarter of
				     mem_cap is given to them (AnalyzerStats.novelty_capacity) */

	/* sampled exports (heuristics_estimate()): packets per item when the window has no
	 * packet counts, and how many standard errors below the estimate the decision is taken */
	guint32 sample_packets;
	double sample_confidence;

	/* alert lifecycle */
	double escalate_factor;
	gint64 update_interval_ms;
	double clear_level; /* fraction of the thresholds below which a host counts as quiet */
	gint64 hold_ms;

	/* policy (policy.h): host groups, longest prefix wins (the array is borrowed, the
	 * analyzer copies it), and the cap on suppressions */
	const PolicyGroup *groups;
	guint n_groups;
	guint max_suppressions;

	/* events, emitted synchronously from analyzer_process()/analyzer_tick() */
	AlertFunc alert_fn;
	gpointer alert_data;
	/* counted flows (see AnalyzerFlowFunc); NULL = off. Kept by analyzer_reconfigure(). */
	AnalyzerFlowFunc flow_fn;
	gpointer flow_data;
	/* slice ends (see AnalyzerSliceFunc); NULL = off. Kept by analyzer_reconfigure(). */
	AnalyzerSliceFunc slice_fn;
	gpointer slice_data;
	/* destination lookups; NULL = off. Like the alert callback, set by analyzer_new() and
	 * kept by analyzer_reconfigure(). */
	AnalyzerGeoFunc geo_fn;
	gpointer geo_data;
	/* notices (AnalyzerNotice); NULL = none. Set by analyzer_new(), kept by
	 * analyzer_reconfigure(), not called by analyzer_state_load(). */
	AnalyzerNoticeFunc notice_fn;
	gpointer notice_data;
} AnalyzerConfig;

typedef struct {
	guint64 flows_seen;
	guint64 flows_relevant;  /* fed a window (forward, reverse or teardown records) */
	guint64 flows_late;      /* receive time older than the host window's newest slice */
	guint64 window_resets;   /* clock stepped back by more than a long window */
	guint64 hosts_tracked;   /* now */
	guint64 hosts_created;
	guint64 hosts_evicted;   /* by the host or memory cap (least recently seen first; told
				    through AnalyzerConfig.notice_fn) */
	guint64 hosts_expired;   /* idle for longer than the long window */
	guint64 hosts_estimated; /* now: hosts with a window in estimated mode */
	guint64 estimate_switches;
	/* side signs (evidence, never alerts): records noted for a tracked host, and records
	 * whose host was not tracked (not noted: they create no host) */
	guint64 signs_inbound_smtp; /* inbound SMTP sessions delivered to an internal host */
	guint64 signs_dns_external; /* DNS queries to external servers, no listed resolver */
	guint64 signs_untracked;
	/* sampled server packets (answers, resets) to an internal host with no sampled record
	 * of its own in that kind's window, and a host's answers to connections it did not
	 * open (HeurClass.host_answers: a reset or SYN-ACK alone) when it has no window of that
	 * kind: not counted, no host made (backscatter of SYNs spoofed in its name and its
	 * stack's resets of it; a server's SYN-ACKs to a flood of spoofed SYNs) */
	guint64 answers_untracked;
	/* a mail, submission or login port's record with neither end in internal_networks or
	 * mail_servers: transit, or internal_networks does not cover the site's hosts (told
	 * through AnalyzerConfig.notice_fn when nothing else is seen: ANALYZER_NOTICE_OUTSIDE) */
	guint64 flows_outside;
	/* firewall events (fwmode.c): exporter domains whose teardowns started to count (again),
	 * teardowns read as their session's attempt (of them failed: the responder sent at most
	 * one bare packet), creates not counted as their teardown will be, domains over
	 * FWMODE_MAX */
	guint64 fw_domains_teardown;
	guint64 fw_teardowns;
	guint64 fw_teardowns_failed;
	guint64 fw_creates_skipped;
	guint64 fw_domains_refused;
	guint64 offenders_active;
	guint64 events[ALERT_KIND_COUNT];
	guint64 events_by_reason[REASON_COUNT]; /* raised events */
	guint64 mem_bytes;       /* estimate of bytes held by hosts and windows */
	guint64 mem_cap;
	/* analyzer_state_load(): what the saved state gave, and what of it did not fit */
	guint64 state_hosts_restored;     /* hosts held right after loading */
	guint64 state_offenders_restored;
	guint64 state_hosts_dropped;      /* no window (nor baseline) fitted the configuration */
	guint64 state_windows_dropped;    /* slice width changed, or the host no longer fits the
					     window's traffic (internal networks, mail servers) */
	guint64 state_baselines_dropped;  /* the host is no longer a mail server */
	guint64 state_hosts_evicted;      /* by max_hosts or mem_cap, least recently seen first */
	guint64 state_novelty_dropped;    /* the seen set, saved at another capacity */
	/* smtp-novelty's seen set (novelty.h); zero until a port-25 flow needs it */
	guint64 novelty_bytes;     /* part of mem_bytes */
	guint64 novelty_capacity;  /* pairs per generation in force */
	guint64 novelty_pairs;     /* in the current generation */
	guint64 novelty_lookups;   /* destinations looked up (new in the host's window) */
	guint64 novelty_new;       /* ... of them not seen within the horizon */
	guint64 novelty_rotations;
	guint64 novelty_early_rotations; /* forced by capacity: the horizon ran short */
	gint64 novelty_generation_ms;    /* when the current generation began; 0: none */
	/* policy (analyzer_policy.c) */
	guint64 suppressions;          /* now */
	guint64 suppressions_set;      /* analyzer_suppress() that took (replacements too) */
	guint64 suppressions_refused;  /* at max_suppressions */
	guint64 suppressions_expired;  /* dropped at their time by a tick */
} AnalyzerStats;

/* What the analyzer holds about one host (control socket `host ADDR`). */
typedef struct {
	guint8 addr[16];
	gboolean is_mta;
	gboolean is_internal;
	gint64 last_seen_ms;
	guint32 sampling;
	guint n_exporters;
	guint32 exporters[ALERT_EXPORTERS_MAX];
	struct {
		gboolean tracked;
		WindowCounts counts;
		guint n_top;
		WindowTop top[WINDOW_TOP_MAX];
	} win[HEUR_WIN_COUNT];
	/* Per reason, as the analyzer judges it now (whether or not the host's traffic is the
	 * kind the reason watches): the counts it reads (reason_counts()), the thresholds in
	 * force, the estimate under sampling (AlertWindow.estimate; value and 0 unsampled), the
	 * level and whether the raise condition holds. */
	struct {
		WindowCounts counts;
		guint32 value[WINDOW_SPANS];
		guint32 threshold[WINDOW_SPANS];
		guint32 estimate[WINDOW_SPANS], estimate_se[WINDOW_SPANS];
		HeurEstimate basis[WINDOW_SPANS]; /* how each estimate was made */
		double level;
		gboolean crossed; /* it would be raised now (unless active already) */
		guint8 held;	  /* AnalyzerHeld: why a level past a threshold is not crossed */
	} reason[REASON_COUNT];
	guint32 novelty; /* smtp-novelty: new destinations in the novelty window */
	gint64 novelty_window_ms;
	guint32 baseline_median[WINDOW_SPANS]; /* mta-surge baseline (MTAs) */
	guint baseline_samples;
	/* side signs over the last hour (AlertEvent has the same) */
	guint32 inbound_smtp;
	gboolean mta_like; /* the hint of an smtp-fanout alert, from the signs now */
	guint32 dns_external;
	guint8 dns_server[16];
	gboolean has_dns_server;
	gint64 dns_last_ms;
	gboolean is_resolver;          /* listed in resolvers */
	gboolean resolvers_configured; /* resolvers is not empty */
	gboolean dns_corroborated;     /* an smtp alert of the host would be raised a step */
	guint32 offender_mask; /* 1 << AlertReason for each active offender */
} AnalyzerHostInfo;

/* Why a reason whose count is past a threshold does not raise, for a reason that is enabled,
 * neither exempt nor suppressed (AnalyzerHostInfo.reason[].held; the host reply's note). */
typedef enum {
	ANALYZER_HELD_NONE = 0,
	/* smtp-fanout/smtp-blocked: the long window's failed share puts the host on the other
	 * side of the split */
	ANALYZER_HELD_SPLIT,
	/* sampled: an estimate is past its threshold, but not the estimate less [sampling]
	 * confidence standard errors, which is what thresholds are compared with */
	ANALYZER_HELD_CONFIDENCE,
	/* smtp-novelty sampled: fewer new destinations seen than HEUR_NOVELTY_MIN_SAMPLED */
	ANALYZER_HELD_FEW_SAMPLED,
	/* smtp-novelty gives way: the host is raised for smtp-fanout or smtp-blocked (told
	 * under the threshold too: its new destinations are not counted meanwhile) ... */
	ANALYZER_HELD_GIVES_WAY_RAISED,
	/* ... or it receives mail (inbound SMTP: an unlisted mail server) */
	ANALYZER_HELD_GIVES_WAY_MAIL,
} AnalyzerHeld;

/* What the heuristics read of one host now, per reason (analyzer_host_reading(),
 * analyzer_foreach_reading()): the history's per-slice record. reason_mask has the
 * reasons `host` lists with values: those whose window the host has, mta-surge for mail
 * servers only and smtp-fanout/smtp-blocked for the others (unless active). value and
 * threshold are AnalyzerHostInfo.reason[].value/threshold; estimate is set when sampled.
 * flows, attempts and failed: the short window's, summed over the host's windows. */
typedef struct {
	guint8 addr[16];
	guint32 flows, attempts, failed;
	gboolean sampled;
	guint32 reason_mask;
	guint32 offender_mask;
	guint32 value[REASON_COUNT][WINDOW_SPANS];
	guint32 threshold[REASON_COUNT][WINDOW_SPANS];
	guint32 estimate[REASON_COUNT][WINDOW_SPANS];
} AnalyzerReading;
typedef void (*AnalyzerReadingFunc)(const AnalyzerReading *r, gpointer user_data);

/* An active offender (control socket `offenders`). */
typedef struct {
	guint8 host[16];
	AlertReason reason;
	Offender state;
	const AlertEvent *last; /* the last event emitted for it; valid during the callback */
} AnalyzerOffender;
typedef void (*AnalyzerOffenderFunc)(const AnalyzerOffender *o, gpointer user_data);

typedef struct Analyzer Analyzer;

void analyzer_config_defaults(AnalyzerConfig *cfg);
Analyzer *analyzer_new(const AnalyzerConfig *cfg, GError **error);
void analyzer_free(Analyzer *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Analyzer, analyzer_free)

/* Process a batch. Events for thresholds crossed by a flow are emitted before the next flow
 * is looked at. Also runs analyzer_tick() whenever the clock has moved on by a slice. */
void analyzer_process(Analyzer *a, const Flow *flows, guint n);
/* The host whose windows or signs flow f feeds (the one analyzer_process() would count it
 * for: the initiator of an internal connection, the internal end of an answer, the
 * external attacker of a login): TRUE with it in host, FALSE when the analyzer ignores f.
 * A cluster's collectors route each flow to the partition of this host, so that every
 * flow of one host reaches the one analyzer that owns it. Reads only the configuration.
 * outside (may be NULL), when FALSE is returned: f is on a mail or login port and has
 * neither end internal nor a listed mail server (AnalyzerStats.flows_outside's records),
 * for a collector that routes instead of analyzing. */
gboolean analyzer_flow_host(const Analyzer *a, const Flow *f, guint8 host[16],
			    gboolean *outside);
/* Clear offenders that stayed quiet for the hold time, emit rate-limited updates that are
 * due, drop idle hosts, give notices that are due. Call it when no flows arrive (e.g. once
 * a slice from a timer). */
void analyzer_tick(Analyzer *a, gint64 now_ms);
/* Give the notices still held back by their interval now (at the end of a replay, before
 * exit), so that the last counts are told. */
void analyzer_flush_notices(Analyzer *a);
/* New networks/thresholds/caps; window state, offenders and baselines are kept (a changed
 * slice width restarts the windows). The alert, flow, geo and notice callbacks are not
 * changed.
 * On error nothing changes. */
G_GNUC_WARN_UNUSED_RESULT gboolean analyzer_reconfigure(Analyzer *a, const AnalyzerConfig *cfg,
							  GError **error);

void analyzer_get_stats(const Analyzer *a, AnalyzerStats *out);
/* Hosts with a window in estimated mode, counted by walking every host (O(hosts)): what
 * the maintained AnalyzerStats.hosts_estimated must equal. For tests. */
guint64 analyzer_count_estimating(const Analyzer *a);
/* Active offenders in the order they were raised (the order analyzer_tick() visits them). */
void analyzer_foreach_offender(Analyzer *a, AnalyzerOffenderFunc fn, gpointer user_data);
/* Recent events, newest first: index 0 .. analyzer_history_len()-1; NULL past the end. */
guint analyzer_history_len(const Analyzer *a);
const AlertEvent *analyzer_history_get(const Analyzer *a, guint i);
/* Everything held about a host; FALSE if neither tracked nor an offender. */
gboolean analyzer_host_info(Analyzer *a, const guint8 addr[16], AnalyzerHostInfo *out);
/* The readings of one tracked host now; FALSE when it is not tracked. */
gboolean analyzer_host_reading(Analyzer *a, const guint8 addr[16], AnalyzerReading *out);
/* The readings of every tracked host that is an active offender or has an enabled reason at
 * min_share of one of its thresholds or more (value, or the estimate when sampled, >=
 * min_share x threshold, threshold > 0, value > 0). With min_share >= ANALYZER_READING_SHARE
 * it visits only the candidates the flows marked (hosts judged at that share or more since
 * the last walk found them below it, and every sampled host judged): O(candidates), not
 * O(hosts); the first walk, and the first after a reload or a restore, visits every host. */
#define ANALYZER_READING_SHARE 0.25
void analyzer_foreach_reading(Analyzer *a, double min_share, AnalyzerReadingFunc fn,
			      gpointer user_data);
/* Drop the host's windows, baseline and offenders (no cleared event is emitted: the admin
 * asked for it). FALSE when nothing was held. */
gboolean analyzer_forget(Analyzer *a, const guint8 addr[16]);
/* Bytes the memory estimate counts for a tracked host with one window, without its
 * destinations but with their table's malloc header (16): the table adds 12 bytes per slot,
 * 24 once an IPv6 destination came, rounded as malloc does (analyzer_private.h, HOST_COST);
 * up to 8 destinations the table is an array of the power of two >= d, beyond a table at
 * load 3/8..3/4. */
gsize analyzer_host_overhead(void);
gint64 analyzer_now(const Analyzer *a);
gint64 analyzer_slice_ms(const Analyzer *a);

/* ---- policy: host groups and suppressions (analyzer_policy.c) ----
 * A host's group (the longest prefix of all groups' that covers it) replaces the thresholds
 * of the reasons it overrides, and an exempt reason never crosses for it. A suppression
 * keeps a host (all reasons or one) from crossing until its time, by the analyzer's clock
 * (flow receive time; analyzer_tick() drops it then, with a notice). Neither touches what is
 * counted: windows go on, `host` shows them. An offender raised before gets no update while
 * it is quiet, and clears as usual (the cleared event is sent). */
typedef struct {
	guint index;    /* POLICY_NO_GROUP: in no group (the rest is zero) */
	char name[POLICY_GROUP_NAME_MAX + 1];
	guint plen;     /* the matching prefix's length, in key space (IPv4 /24: 120) */
	guint32 override, exempt; /* 1 << reason, as in PolicyGroup */
	guint32 threshold[REASON_COUNT][WINDOW_SPANS]; /* in force for the host: the group's
							   or the global ones (mta-surge floors) */
} AnalyzerHostPolicy;
void analyzer_host_policy(const Analyzer *a, const guint8 addr[16], AnalyzerHostPolicy *out);
/* Suppress (or replace the suppression of the same host and reason); refused past
 * max_suppressions (POLICY_ERROR_FULL), or with s->until_ms not after the analyzer's
 * clock. */
G_GNUC_WARN_UNUSED_RESULT gboolean analyzer_suppress(Analyzer *a, const PolicySuppression *s,
						   gboolean *replaced, GError **error);
/* Drop the host's suppression of reason r (has_reason) or all of them; how many went. */
guint analyzer_unsuppress(Analyzer *a, const guint8 addr[16], gboolean has_reason, AlertReason r);
/* The suppression keeping (addr, r) quiet now, or NULL. */
const PolicySuppression *analyzer_suppressed(const Analyzer *a, const guint8 addr[16],
					     AlertReason r);
/* Every suppression, by host then reason (all reasons first). */
void analyzer_foreach_suppression(const Analyzer *a, PolicySuppFunc fn, gpointer user_data);
guint analyzer_suppression_count(const Analyzer *a);
/* The suppressions as bytes (a state file section of their own: they outlive the windows'
 * max_age), and back into a fresh or running analyzer. now_ms: those already over by then
 * are dropped, as are those past max_suppressions (*dropped counts both). Untrusted bytes:
 * FALSE with an error and nothing changed. */
void analyzer_suppressions_save(const Analyzer *a, GByteArray *out);
G_GNUC_WARN_UNUSED_RESULT gboolean analyzer_suppressions_load(Analyzer *a, const guint8 *data,
							    gsize len, gint64 now_ms,
							    guint *dropped, GError **error);

/* Restart without loss. Append the analyzer's state to out: tracked hosts in recency order
 * with their windows, MTA baselines and country/ASN sets, the offenders with their state
 * machines and last events, the event history and the clock. A versioned, big-endian,
 * field-by-field form (format in analyzer_state.c); statistics are not saved. */
void analyzer_state_save(Analyzer *a, GByteArray *out);
/* Restore what analyzer_state_save() wrote into a fresh analyzer (no flows processed, no
 * state loaded). The bytes are untrusted: every length, count, index and value is checked
 * and nothing is allocated beyond what they hold; FALSE with an error naming what was wrong.
 * On FALSE the analyzer may hold part of the state: free it and make a new one. State that
 * does not fit the current configuration is dropped and counted in the state_* statistics
 * (windows of a changed slice width, windows of traffic the host no longer makes under the
 * current networks, baselines of hosts no longer mail servers); max_hosts and mem_cap hold,
 * evicting the least recently seen hosts. The alert, geo and notice callbacks are not
 * called. */
G_GNUC_WARN_UNUSED_RESULT gboolean analyzer_state_load(Analyzer *a, const guint8 *data, gsize len,
						       GError **error);
