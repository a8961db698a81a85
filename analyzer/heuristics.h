/* Heuristics: which window (if any) a flow feeds, whether an attempt failed, and how window
 * counts turn into a level and a raise decision per reason code. Pure functions. */
#pragma once

#include <glib.h>

#include "alert.h"
#include "flow.h"
#include "netset.h"
#include "window.h"

/* The kinds of traffic a host is tracked for; one Window per (host, kind). */
typedef enum {
	HEUR_WIN_SMTP_EXT = 0, /* internal -> external, SMTP ports: fanout, blocked, mta-surge */
	HEUR_WIN_SMTP_INT,     /* internal -> internal, SMTP ports: lateral-smtp */
	HEUR_WIN_SUBMIT,       /* internal -> external, submission ports: submission-fanout */
	HEUR_WIN_AUTH,         /* external -> internal mail server, login ports: auth-bruteforce */
	HEUR_WIN_COUNT
} HeurWin;

typedef struct {
	guint8 bits[65536 / 8];
} PortSet;

G_GNUC_WARN_UNUSED_RESULT gboolean portset_parse(PortSet *ps, const char *list, GError **error);
static inline gboolean
portset_has(const PortSet *ps, guint16 port)
{
	return (ps->bits[port >> 3] >> (port & 7)) & 1;
}

/* DNS (RFC 1035 4.2: UDP and TCP port 53). */
#define HEUR_DNS_PORT 53

typedef struct {
	const NetSet *internal;
	const NetSet *mtas;
	const NetSet *resolvers; /* the site's DNS resolvers: their external DNS is not counted */
	PortSet smtp, submit, login;
	/* smtp | submit | login, and HEUR_DNS_PORT (TCP DNS): heuristics_classifier_index()
	 * fills it */
	PortSet any;
	gboolean win_enabled[HEUR_WIN_COUNT];
	guint32 auth_max_packets; /* a "short" login connection: at most this many packets */
	guint64 auth_max_bytes;   /* ... and at most this many bytes (when exported) */
} HeurClassifier;

typedef enum {
	HEUR_IGNORE = 0,
	HEUR_FORWARD, /* initiator-direction record: counts for `host` */
	HEUR_REVERSE, /* the answer direction of a tracked session: marks `peer` as answered */
	HEUR_FLOW_ONLY, /* a record of a counted session that is not a new attempt (fw teardown) */
	/* Side signs: they feed no window and raise nothing, they are noted for a tracked host
	 * (never creating one) and read as evidence (analyzer signs.c). */
	HEUR_INBOUND_SMTP, /* an external host delivered to `host` on an SMTP port */
	HEUR_DNS_EXTERNAL, /* `host` asked `peer`, an external DNS server, not a resolver's */
} HeurDir;

typedef struct {
	HeurDir dir;
	HeurWin win;
	const guint8 *host; /* the tracked host (the initiator; for HEUR_REVERSE the flow's dst) */
	const guint8 *peer; /* the other end */
	gboolean failed;    /* forward: the attempt failed */
	gboolean host_is_mta;
	gboolean answer; /* forward made of a sampled answer (heuristics.c, sampled_answer()):
			    the peer answered */
	gboolean refusal; /* forward made of a sampled refusal (the server's reset): failed */
	/* the host's packets answer a connection it did not open, a reset or a SYN-ACK alone
	 * (heuristics.c, host_role()): read as HEUR_FLOW_ONLY, no attempt; or may (a
	 * sampled record of several packets reading SYN-ACK), dir HEUR_FORWARD: an attempt
	 * only of a host that has a window. Either way no host is made of it. */
	gboolean host_answers;
	/* HEUR_IGNORE: a mail or login port's record with neither end internal nor a listed
	 * mail server (transit, or internal_networks does not cover the site's hosts) */
	gboolean outside;
} HeurClass;

/* Fill hc->any from the three port sets; call after setting them. */
void heuristics_classifier_index(HeurClassifier *hc);

/* FALSE when no rule can read f (TCP with neither port in any set, UDP not to port 53,
 * other protocols): such a record is HEUR_IGNORE and heuristics_classify() need not be
 * called. Most records are; one lookup in one 8 KiB bitmap, inline, instead of a call and
 * five lookups in three (measured in bench/README.md). UDP costs one compare more. */
static inline gboolean
heuristics_relevant(const HeurClassifier *hc, const Flow *f)
{
	if (G_LIKELY(f->proto == 6))
		return portset_has(&hc->any, f->dport) || portset_has(&hc->any, f->sport);
	return f->proto == 17 && f->dport == HEUR_DNS_PORT;
}

/* Classify one flow (see heuristics.c for the rules). */
void heuristics_classify(const HeurClassifier *hc, const Flow *f, HeurClass *out);
/* The same for a record heuristics_relevant() passed (the analyzer asks first). */
void heuristics_classify_relevant(const HeurClassifier *hc, const Flow *f, HeurClass *out);
/* A forward attempt failed: firewall deny; or TCP flags exported and SYN without ACK, or
 * RST without any PSH (reset before any data). Unknown flags and no firewall event: not
 * failed (no evidence either way; a reverse record may still show the answer). */
gboolean heuristics_attempt_failed(const Flow *f);

/* An inbound SMTP record (external -> internal on an SMTP port, forward direction) that
 * shows a delivered session, not a probe: flags exported: ACK seen and not failed
 * (heuristics_attempt_failed()); no flags: more than 2 packets (a SYN and its retry are
 * not a session), or no packet count either. A packet sample counts when it belongs to an
 * established session (ACK, no RST): sampled packets, not sessions. */
gboolean heuristics_inbound_delivered(const Flow *f);

/* The reasons about a host's own mail to the outside, whose severity DNS corroboration
 * raises (smtp-fanout, smtp-blocked). */
gboolean heuristics_reason_smtp(AlertReason r);
/* One step up: notice -> warning -> critical (critical stays). */
AlertSeverity heuristics_severity_step(AlertSeverity s);

/* The unlisted mail server hint's signs besides inbound SMTP, over a host's port-25 window
 * to the outside (c: its counts at now; long_ms: the long window's length): mostly
 * delivered (failed share <= HEUR_MTA_MAX_FAILED of at least HEUR_MTA_MIN_ATTEMPTS
 * attempts), repeat destinations (attempts >= HEUR_MTA_REPEAT x distinct, long window) and
 * a steady fan-out (the window's first record at least the long window ago: no quiet gap
 * of a long window since). All three together: a bot reaches each MX once or a few times,
 * fails often, and runs in campaigns; an MTA sends to the same big providers all day. */
#define HEUR_MTA_MAX_FAILED 0.2
#define HEUR_MTA_MIN_ATTEMPTS 30
#define HEUR_MTA_REPEAT 2.0
gboolean heuristics_mta_signs(const WindowCounts *c, gint64 now, gint64 long_ms);
/* The hint: inbound SMTP delivered to the host in the last hour (at least
 * HEUR_MTA_MIN_INBOUND sessions: strong evidence on its own, bots do not receive mail), or
 * all the signs of heuristics_mta_signs(). */
#define HEUR_MTA_MIN_INBOUND 3
gboolean heuristics_mta_like(guint32 inbound_smtp, const WindowCounts *c, gint64 now,
			     gint64 long_ms);

/* The window a reason reads. */
HeurWin heuristics_reason_win(AlertReason r);
/* The reason's metric in one window: distinct destinations, or for auth-bruteforce the
 * number of short connections (attempts). smtp-novelty's span 0 holds its count of new
 * destinations as `distinct`. */
static inline guint32
heuristics_metric(AlertReason r, const WindowSpanCounts *c)
{
	return r == REASON_AUTH_BRUTEFORCE ? c->attempts : c->distinct;
}

/* Sampled exports. At 1 in N packet sampling an item (a destination, a connection) whose
 * attempts carry k packets is seen with probability p(k) = 1 - (1 - 1/N)^k: a refused SYN
 * with 1/N, a 10-packet session with about 10/N, so what a window counts is far below the
 * traffic. A session's packets both ways are its sample: a sampled answer (the server's
 * packets; heuristics.c, sampled_answer()) counts as a record of the session like the
 * client's, so a session of k packets each way is seen with p(2k). Each item seen stands
 * for 1/p(k) of them (the Horvitz-Thompson estimator), with k told apart for two kinds of
 * item:
 *   - failed attempts: a dropped SYN, k = 1 (its retransmissions are not counted on), or a
 *     refused one, k = 2 (the SYN and the server's reset, which a sampled record shows as
 *     much as the SYN: sampled_answer() counts it as the attempt's record, failed). With
 *     rho the share refused (`refused`, from the host's sampled failed records: a refused
 *     attempt leaves a reset for each SYN, a dropped one none, so rho = resets / SYNs),
 *     p_f = rho p(2) + (1 - rho) p(1). A sampled record shows only a SYN also when a
 *     session's SYN alone was sampled, which happens to about 1/k of the sessions seen
 *     (more for short ones), so failed attempts are told only when at least
 *     HEUR_SAMPLE_MIN_SYN_SHARE of the records show a SYN alone (a blocked bot: all of
 *     them), and then only the share beyond the sessions'. A SYN alone to a server that
 *     answered the host within the long window is not counted failed at all (analyzer.c:
 *     an exporter taking every Nth packet of a sparse stream keeps taking the same packet
 *     of a steady probe's sessions). A server's packets count only for a host with sampled
 *     records of its own in that window: backscatter to a spoofed address makes no host;
 *   - sessions, k told by the sample: an item seen has k / (N p(k)) sampled packets on
 *     average (the method of moments), so a destination contacted again and again (a
 *     monitoring probe) shows a large k and counts about once. The mean is shrunk towards
 *     the configured `packets` with the weight of HEUR_SAMPLE_PRIOR_ITEMS items, and k is
 *     never taken below `packets` (10; an SMTP delivery has more both ways): the sample
 *     may lengthen sessions, never shorten them. A short k makes each item stand for up to
 *     N, and an exporter that samples every Nth packet (softflowd -s) seldom takes two
 *     packets of one short session, which reads as k near 1 whatever k is: at 1:10 that
 *     raised a probe of 48 MXs (under 50) in 5 seeds of 5. Sessions shorter than
 *     `packets` are under-estimated (the safe side). auth-bruteforce, whose items are
 *     connections of any length, takes the sample's k either way;
 *     estimate = m_f / p_f + m_s / p(k)
 *     se^2     = m_f (1 - p_f) / p_f^2 + m_s (1 - p(k)) / p(k)^2
 *                + (m (1/p_f - 1/p(k)))^2 Var(share of failed)
 * with m_f + m_s = m, the metric counted (smtp-novelty: all sessions, m_f = 0). The
 * decision is taken on max(0, estimate - confidence x se): with the default 2, one sampled
 * SYN at 1:100 (100 +- 99.5) raises nothing. */
#define HEUR_SAMPLE_PRIOR_ITEMS 10.0
#define HEUR_SAMPLE_MIN_SYN_SHARE 0.5
typedef struct {
	guint32 sampling;  /* 1 in N; <= 1: unsampled, every function below is exact */
	guint32 packets;   /* the least packets of a session, both ways, and the packets per
			      item when the window has no packet counts (>= 1) */
	double confidence; /* standard errors below the estimate (>= 0) */
	double refused[HEUR_WIN_COUNT]; /* per kind of traffic, the share of failed attempts
					   that were refused, not dropped (0..1) */
} HeurSampling;

/* Estimate of reason r's metric in window c (unsampled: the metric, se 0). */
void heuristics_estimate(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s,
			 double *estimate, double *se);
/* How that estimate is made, for the admin (spamflowctl host): of the `seen` items, seen x
 * failed_share were taken as failed attempts, each standing for 1 / p_failed of them
 * (p_failed = refused_share p(2) + (1 - refused_share) p(1)), and the rest as sessions of
 * session_packets packets both ways, each standing for 1 / p_session: estimate = seen
 * failed_share / p_failed + seen (1 - failed_share) / p_session. Unsampled (or nothing
 * seen): estimate = seen, se 0, the rest 0. */
typedef struct {
	double seen, estimate, se;
	double session_packets, p_session;
	double failed_share, refused_share, p_failed;
} HeurEstimate;
void heuristics_estimate_basis(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s,
			       HeurEstimate *out);
/* What thresholds are compared with: the metric, or under sampling the estimate less
 * confidence x se (never below 0). */
double heuristics_decision_value(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s);
/* max over windows of decision value / threshold (a threshold of 0 disables that window);
 * *trigger = the window with the highest ratio. s may be NULL (unsampled). */
double heuristics_level_sampled(AlertReason r, const WindowCounts *c,
				const guint32 thr[WINDOW_SPANS], const HeurSampling *s,
				guint *trigger);
/* The unsampled level from each window's metric alone (heuristics_level()'s arithmetic). */
static inline double
heuristics_level_of(const guint32 metric[WINDOW_SPANS], const guint32 thr[WINDOW_SPANS],
		    guint *trigger)
{
	double best = 0;
	guint bi = 0;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (thr[k] == 0)
			continue;
		double l = (double)metric[k] / thr[k];
		if (l > best) {
			best = l;
			bi = k;
		}
	}
	if (trigger != NULL)
		*trigger = bi;
	return best;
}
/* inline: judged on every flow, and unsampled (most hosts) it is a few instructions */
static inline double
heuristics_level(AlertReason r, const WindowCounts *c, const guint32 thr[WINDOW_SPANS],
		 const HeurSampling *s, guint *trigger)
{
	if (s != NULL && s->sampling > 1)
		return heuristics_level_sampled(r, c, thr, s, trigger);
	guint32 metric[WINDOW_SPANS];
	for (guint k = 0; k < WINDOW_SPANS; k++)
		metric[k] = heuristics_metric(r, &c->span[k]);
	return heuristics_level_of(metric, thr, trigger);
}
/* Whether a raise condition holds at this level. smtp-fanout and smtp-blocked split the same
 * traffic by the long window's failed share: blocked when share >= blocked_share and at
 * least blocked_min_attempts attempts, fanout otherwise. Under sampling the share is the
 * sampled one (a sampled session shows as failed only when its SYN alone was sampled, so a
 * bot whose sessions complete stays well under 0.8, and a blocked one at 1); the attempts
 * are scaled up like the distinct destinations (heuristics_estimate()), so that a blocked
 * bot whose sampled attempts are still under blocked_min_attempts is not taken for a
 * fan-out that completes. smtp-novelty under sampling also needs HEUR_NOVELTY_MIN_SAMPLED
 * new destinations seen: whether a destination was contacted before is known only from
 * what was sampled of the host's day, which its window's packets tell only in part (a
 * probe returning to the same MXs looks new at each first sample), so its estimate is
 * trusted only on a sample of some size (at 1:100 that is 2,000 new MXs or so). */
#define HEUR_NOVELTY_MIN_SAMPLED 20
gboolean heuristics_crossed_sampled(AlertReason r, double level, const WindowCounts *c,
				    double blocked_share, guint32 blocked_min_attempts,
				    const HeurSampling *s);
/* Unsampled, reason r (smtp-fanout or smtp-blocked) is on the side of the split that can
 * cross: for smtp-blocked the long window's failed share is blocked_share or more over at
 * least blocked_min_attempts attempts, for smtp-fanout it is not; from the long window's
 * attempts and failed alone (the analyzer's quick judge has no other counts). */
static inline gboolean
heuristics_split_side_of(AlertReason r, guint32 long_attempts, guint32 long_failed,
			 double blocked_share, guint32 blocked_min_attempts)
{
	double failed = MIN(long_failed, long_attempts), attempts = long_attempts;
	gboolean blocked = attempts >= blocked_min_attempts && attempts > 0 &&
			   failed >= blocked_share * attempts;
	return r == REASON_SMTP_BLOCKED ? blocked : !blocked;
}
/* the same from window counts c */
static inline gboolean
heuristics_split_side(AlertReason r, const WindowCounts *c, double blocked_share,
		      guint32 blocked_min_attempts)
{
	const WindowSpanCounts *l = &c->span[WINDOW_LONG];
	return heuristics_split_side_of(r, l->attempts, l->failed, blocked_share,
					blocked_min_attempts);
}

/* inline like heuristics_level() */
static inline gboolean
heuristics_crossed(AlertReason r, double level, const WindowCounts *c, double blocked_share,
		   guint32 blocked_min_attempts, const HeurSampling *s)
{
	if (level < 1.0)
		return FALSE;
	if (s != NULL && s->sampling > 1)
		return heuristics_crossed_sampled(r, level, c, blocked_share, blocked_min_attempts,
						  s);
	if (r != REASON_SMTP_FANOUT && r != REASON_SMTP_BLOCKED)
		return TRUE; /* smtp-novelty unsampled too */
	return heuristics_split_side(r, c, blocked_share, blocked_min_attempts);
}
