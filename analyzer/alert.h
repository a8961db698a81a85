/* AlertEvent: what the analyzer hands to sinks. A plain value struct, no heap pointers
 * (copy it, keep it in a ring, send it to another thread); sinks format the text. */
#pragma once

#include <glib.h>

#include "window.h"

typedef enum {
	ALERT_RAISED = 0,  /* a threshold was crossed: a new offender */
	ALERT_UPDATED = 1, /* the offender escalated (level doubled; rate limited) */
	ALERT_CLEARED = 2, /* stayed below the clear level for the hold time */
	ALERT_KIND_COUNT
} AlertKind;

typedef enum {
	REASON_SMTP_FANOUT = 0,   /* non-MTA internal host -> many external hosts on SMTP ports */
	REASON_SMTP_BLOCKED,      /* the same, but most attempts failed (egress block holding) */
	REASON_SUBMISSION_FANOUT, /* internal host -> many external hosts on 465/587 */
	REASON_LATERAL_SMTP,      /* internal host -> many internal hosts on SMTP ports */
	REASON_MTA_SURGE,         /* sanctioned MTA far above its own baseline */
	REASON_AUTH_BRUTEFORCE,   /* external host -> many short connections to login ports */
	REASON_SMTP_NOVELTY,      /* non-MTA internal host -> many SMTP destinations it had not
				     contacted within the novelty horizon (low-and-slow bots) */
	REASON_COUNT
} AlertReason;

typedef enum {
	ALERT_SEV_INFO = 0,     /* cleared events */
	ALERT_SEV_NOTICE = 1,   /* smtp-blocked: the firewall is holding */
	ALERT_SEV_WARNING = 2,  /* a threshold crossed */
	ALERT_SEV_CRITICAL = 3, /* at least ALERT_CRITICAL_LEVEL times a threshold */
} AlertSeverity;
#define ALERT_CRITICAL_LEVEL 4.0

#define ALERT_TOP_MAX WINDOW_TOP_MAX
#define ALERT_EXPORTERS_MAX 4

/* One top destination. country and asn come from the analyzer's geo hook
 * (AnalyzerConfig.geo_fn, which the daemon wires to its country/ASN databases); without
 * one they stay empty. */
typedef struct {
	guint8 addr[16];
	guint32 count; /* attempts in the long window (an upper bound when the window estimates) */
	guint32 asn;   /* 0 = unknown */
	char country[4]; /* ISO 3166 alpha-2, "" = unknown */
} AlertDest;

typedef struct {
	gint64 span_ms;     /* length of this window */
	guint32 value;      /* the heuristic's metric: distinct destinations, or for
			       auth-bruteforce short connections */
	guint32 threshold;  /* the raise threshold in force (for mta-surge: from the baseline;
			       0: this window is context, not compared) */
	guint32 distinct;   /* distinct destinations */
	gboolean estimated; /* distinct is a HyperLogLog estimate (+-WINDOW_HLL_BOUND) */
	guint32 flows;
	guint32 attempts;
	guint32 failed;
	/* Sampled exports (AlertEvent.sampling > 1): value estimated for the unsampled traffic
	 * and one standard error of it (heuristics_estimate()); the decision compared
	 * estimate - confidence x estimate_se with the threshold. Unsampled: value and 0. */
	guint32 estimate;
	guint32 estimate_se;
} AlertWindow;

typedef struct {
	gint64 time_ms; /* analyzer clock (flow receive time) when the transition happened */
	AlertKind event;
	AlertReason reason;
	AlertSeverity severity;
	guint8 host[16];    /* the offender (the attacker for auth-bruteforce) */
	guint8 peer[16];    /* auth-bruteforce: the most targeted server; else zero */
	gboolean has_peer;
	AlertWindow window[WINDOW_SPANS]; /* [WINDOW_SHORT], [WINDOW_LONG] */
	guint trigger;      /* index of the window whose level is highest */
	double level;       /* max over windows of value / threshold */
	/* evidence over the long window */
	guint32 flows;
	guint32 attempts;
	guint32 failed;
	guint32 succeeded;  /* attempts - failed */
	guint32 answered;   /* distinct destinations seen answering (reverse records) */
	double failed_share; /* failed / attempts, 0..1 */
	gint64 first_seen_ms;
	gint64 last_seen_ms;
	guint n_top;
	AlertDest top[ALERT_TOP_MAX];
	guint n_exporters;
	guint32 exporters[ALERT_EXPORTERS_MAX]; /* collector exporter indexes */
	gboolean exporters_truncated;
	guint32 sampling;     /* highest sampling interval seen for the host (1 = unsampled) */
	gboolean lower_bound; /* sampling > 1: the counts are what was sampled, lower bounds of
				 the traffic; the windows' estimate fields scale them up */
	gint64 raised_ms;     /* when this offender was raised */
	/* Counted by the analyzer through its geo hook (see top); 0 without one. */
	guint32 n_countries; /* distinct countries of the host's destinations in the window */
	guint32 n_asns;      /* distinct ASNs */
	char evidence[256];  /* IPFIX evidence file written for this event; "" = none */
	/* Side signs over the last hour (the analyzer's signs.c), for the smtp reasons
	 * (smtp-fanout, smtp-blocked); zero for the others. */
	gboolean mta_like;     /* looks like a mail server: "if it is one, list it in
				  [analyzer] mail_servers" (heuristics_mta_like()) */
	guint32 inbound_smtp;  /* inbound SMTP sessions delivered to the host */
	guint32 dns_external;  /* its DNS queries to external servers (no listed resolver) */
	guint8 dns_server[16]; /* the server of the newest of them */
	gboolean has_dns_server;
	gboolean dns_corroborated; /* resolvers configured, the host not one of them, and
				      dns_external > 0: severity raised one step */
	char group[32];      /* the host's [group NAME] (analyzer policy.h); "" = none */
} AlertEvent;

/* What the log line and `spamflowctl host` say when AlertEvent.mta_like is set. */
#define ALERT_MTA_HINT "looks like a mail server: if it is one, list it in [analyzer] mail_servers"

typedef void (*AlertFunc)(const AlertEvent *ev, gpointer user_data);

const char *alert_kind_name(AlertKind k);     /* "raised", "updated", "cleared" */
const char *alert_reason_name(AlertReason r); /* "smtp-fanout", ... */
gboolean alert_reason_from_name(const char *name, AlertReason *out);
const char *alert_severity_name(AlertSeverity s);
