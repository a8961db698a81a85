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

typedef struct {
	const NetSet *internal;
	const NetSet *mtas;
	PortSet smtp, submit, login;
	PortSet any; /* smtp | submit | login: heuristics_classifier_index() fills it */
	gboolean win_enabled[HEUR_WIN_COUNT];
	guint32 auth_max_packets; /* a "short" login connection: at most this many packets */
	guint64 auth_max_bytes;   /* ... and at most this many bytes (when exported) */
} HeurClassifier;

typedef enum {
	HEUR_IGNORE = 0,
	HEUR_FORWARD, /* initiator-direction record: counts for `host` */
	HEUR_REVERSE, /* the answer direction of a tracked session: marks `peer` as answered */
	HEUR_FLOW_ONLY, /* a record of a counted session that is not a new attempt (fw teardown) */
} HeurDir;

typedef struct {
	HeurDir dir;
	HeurWin win;
	const guint8 *host; /* the tracked host (the initiator; for HEUR_REVERSE the flow's dst) */
	const guint8 *peer; /* the other end */
	gboolean failed;    /* forward: the attempt failed */
	gboolean host_is_mta;
} HeurClass;

/* Fill hc->any from the three port sets; call after setting them. */
void heuristics_classifier_index(HeurClassifier *hc);

/* FALSE when no rule can read f (not TCP, or neither port in any set): such a record is
 * HEUR_IGNORE and heuristics_classify() need not be called. Most records are; one lookup
 * in one 8 KiB bitmap, inline, instead of a call and five lookups in three (measured in
 * bench/README.md). */
static inline gboolean
heuristics_relevant(const HeurClassifier *hc, const Flow *f)
{
	return f->proto == 6 && (portset_has(&hc->any, f->dport) || portset_has(&hc->any, f->sport));
}

/* Classify one flow (see heuristics.c for the rules). */
void heuristics_classify(const HeurClassifier *hc, const Flow *f, HeurClass *out);
/* A forward attempt failed: firewall deny; or TCP flags exported and SYN without ACK, or
 * RST without any PSH (reset before any data). Unknown flags and no firewall event: not
 * failed (no evidence either way; a reverse record may still show the answer). */
gboolean heuristics_attempt_failed(const Flow *f);

/* The window a reason reads. */
HeurWin heuristics_reason_win(AlertReason r);
/* The reason's metric in one window: distinct destinations, or for auth-bruteforce the
 * number of short connections (attempts). smtp-novelty's span 0 holds its count of new
 * destinations as `distinct`. */
guint32 heuristics_metric(AlertReason r, const WindowSpanCounts *c);

/* Sampled exports. At 1 in N packet sampling a flow of k packets is seen with probability
 * p(k) = 1 - (1 - 1/N)^k: a refused SYN with 1/N, a 10-packet session with about 10/N, so
 * what a window counts is far below the traffic. The model takes a failed attempt to have
 * attempt_packets packets and an answered one session_packets, splits the observed metric
 * m by the window's failed share f (of the attempts seen) and weighs each part by its
 * inclusion probability (the Horvitz-Thompson estimator):
 *     estimate = m f / p_f + m (1 - f) / p_s
 *     se^2     = m f (1 - p_f) / p_f^2 + m (1 - f)(1 - p_s) / p_s^2
 * (each counted item is a Bernoulli draw: its variance (1-p)/p^2 estimated unbiasedly from
 * what was seen). The decision is taken on max(0, estimate - confidence x se): with the
 * default 2, a window whose true value is at the threshold is raised only when the sample
 * shows it beyond reasonable doubt, so one sampled SYN never makes 100 destinations. */
typedef struct {
	guint32 sampling;        /* 1 in N; <= 1: unsampled, every function below is exact */
	guint32 attempt_packets; /* packets of a failed attempt (>= 1) */
	guint32 session_packets; /* packets of an answered session (>= 1) */
	double confidence;       /* standard errors below the estimate (>= 0) */
} HeurSampling;

/* Estimate of reason r's metric in window c (unsampled: the metric, se 0). */
void heuristics_estimate(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s,
			 double *estimate, double *se);
/* What thresholds are compared with: the metric, or under sampling the estimate less
 * confidence x se (never below 0). */
double heuristics_decision_value(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s);
/* max over windows of decision value / threshold (a threshold of 0 disables that window);
 * *trigger = the window with the highest ratio. s may be NULL (unsampled). */
double heuristics_level(AlertReason r, const WindowCounts *c, const guint32 thr[WINDOW_SPANS],
			const HeurSampling *s, guint *trigger);
/* Whether a raise condition holds at this level. smtp-fanout and smtp-blocked split the same
 * traffic by the long window's failed share: blocked when share >= blocked_share and at
 * least blocked_min_attempts attempts, fanout otherwise. Under sampling the share and the
 * attempts are those estimated (failed attempts weigh 1/p_f, answered ones 1/p_s). */
gboolean heuristics_crossed(AlertReason r, double level, const WindowCounts *c,
			    double blocked_share, guint32 blocked_min_attempts,
			    const HeurSampling *s);
