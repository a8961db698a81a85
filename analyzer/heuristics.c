/* The spam-bot heuristics as pure functions: flow -> (host, window kind, attempt/failed or
 * answer) classification, and window counts -> level and raise decision per reason. The
 * analyzer owns state; nothing here keeps any. */
#include "heuristics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

gboolean
portset_parse(PortSet *ps, const char *list, GError **error)
{
	g_auto(GStrv) toks = g_strsplit_set(list ? list : "", ", ;\t", -1);
	PortSet tmp;
	memset(&tmp, 0, sizeof tmp);
	for (guint i = 0; toks[i] != NULL; i++) {
		guint64 v;
		char *t = g_strstrip(toks[i]);
		if (*t == '\0')
			continue;
		if (!g_ascii_string_to_unsigned(t, 10, 1, 65535, &v, NULL)) {
			g_set_error(error, NETSET_ERROR, NETSET_ERROR_INVALID, "bad port '%s'", t);
			return FALSE;
		}
		tmp.bits[v >> 3] |= (guint8)(1u << (v & 7));
	}
	*ps = tmp;
	return TRUE;
}

static inline gboolean
attempt_failed(const Flow *f)
{
	if ((f->has & FLOW_HAS_FW_EVENT) && f->fw_event == FW_EVENT_DENIED)
		return TRUE;
	if (!(f->has & FLOW_HAS_TCP_FLAGS))
		return FALSE;
	guint8 fl = f->tcp_flags;
	if ((fl & TCP_SYN) && !(fl & TCP_ACK))
		return TRUE;
	if ((fl & TCP_RST) && !(fl & TCP_PSH))
		return TRUE;
	return FALSE;
}

gboolean
heuristics_attempt_failed(const Flow *f)
{
	return attempt_failed(f);
}

static gboolean
reverse_answered(const Flow *f)
{
	if (!(f->has & FLOW_HAS_TCP_FLAGS))
		return f->packets > 0 || !(f->has & FLOW_HAS_PACKETS);
	guint8 fl = f->tcp_flags;
	if ((fl & TCP_RST) && !(fl & TCP_PSH))
		return FALSE; /* refused */
	return (fl & TCP_ACK) != 0;
}

/* the server refused: a reset without data (flags exported) */
static gboolean
reverse_refused(const Flow *f)
{
	return (f->has & FLOW_HAS_TCP_FLAGS) && (f->tcp_flags & TCP_RST) && !(f->tcp_flags & TCP_PSH);
}

/* The host's packets to the service's port answer a connection it did not open (flags
 * exported, no firewall event): a reset alone (RST without SYN or data), or a SYN-ACK
 * alone (SYN and ACK, no data, no FIN, no reset: the host is the server, the peer's SYN
 * came from the service's port). Neither is a connection attempt of the host's:
 *   - its stack resets a SYN-ACK or a reset that answers a SYN spoofed in its name
 *     somewhere else (a TCP reflection attack using mail servers: backscatter);
 *   - a server of the site under a SYN flood from spoofed sources answers every SYN, and
 *     the few thousandths of them with source port 25, 465 or 587 read as its attempts
 *     to as many "mail servers" (about 1,800 spoofed SYNs a second are 50 of them in ten
 *     minutes);
 *   - or a reset ends a connection whose opening was counted already.
 * Counted as attempts, a live victim of either would be a bot
 * (tests/system/sampled_backscatter.py, unsampled and 1:10). The cost: a client whose
 * record holds its handshake and nothing else (a tarpit that never sends a banner, split
 * by the exporter's active timeout) loses that attempt. A SYN-ACK is told only from a
 * record of every packet or of one; a sampled record of several packets that reads
 * SYN-ACK may be either, and counts as an attempt only for a host that has a window,
 * unless it comes from a privileged source port (below 1024): a service answering (the
 * web server of the flood, on 80 or 443), where a client's connection comes from an
 * ephemeral port (32768-60999 on Linux, 49152-65535 on Windows). Without that, a flooded
 * server that also sends mail of its own counted them as attempts. A client that binds a
 * privileged port (root) loses only records without data: a session's carry PSH. */
typedef enum {
	HOST_ATTEMPTS, /* the host's own connection */
	HOST_ANSWERS,  /* an answer to a connection it did not open */
	HOST_MAYBE,    /* either: counted only for a host that made attempts of its own */
} HostRole;

static HostRole
host_role(const Flow *f)
{
	if (!(f->has & FLOW_HAS_TCP_FLAGS) ||
	    ((f->has & FLOW_HAS_FW_EVENT) && f->fw_event != FW_EVENT_NONE))
		return HOST_ATTEMPTS;
	guint8 fl = f->tcp_flags;
	if ((fl & TCP_RST) && !(fl & (TCP_SYN | TCP_PSH)))
		return HOST_ANSWERS;
	if ((fl & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK) || (fl & (TCP_PSH | TCP_FIN | TCP_RST)))
		return HOST_ATTEMPTS;
	/* a sampled record of several packets ORs the flags of those sampled: a client's SYN
	 * and its handshake's ACK read SYN-ACK too (at 1:10 the scenario's moderate bot lost
	 * a pair when these were answers); one packet, or every packet (unsampled), cannot */
	if (f->sampling > 1 && !(f->has & FLOW_PACKET_SAMPLE) &&
	    !((f->has & FLOW_HAS_PACKETS) && f->packets == 1) && f->sport >= 1024)
		return HOST_MAYBE;
	return HOST_ANSWERS;
}

/* A sampled answer (dst internal, answered: reverse_answered(); or refused:
 * reverse_refused()) as the forward record of its attempt: the forward rules read the
 * record turned around, and what they count is counted with host = the answer's dst, peer =
 * its src, failed when refused. Unsampled, an attempt's forward record says all of it and
 * the answer only marks the peer answered (a reset, nothing); sampled, the forward record
 * is missing whenever none of the client's packets was sampled, and the server's packets
 * are as much a sample of the attempt: with them a session of k packets each way is seen
 * with p(2k), not p(k), and a refused SYN with p(2), not p(1) (heuristics.h, "Sampled
 * exports"). FALSE: no forward rule counts it (the caller's reverse rule applies). */
static gboolean
sampled_answer(const HeurClassifier *hc, const Flow *f, gboolean refused, HeurClass *out)
{
	Flow fw = *f;
	memcpy(fw.src, f->dst, sizeof fw.src);
	memcpy(fw.dst, f->src, sizeof fw.dst);
	fw.sport = f->dport;
	fw.dport = f->sport;
	fw.sampling = 1; /* read once: turned around, it is no sampled answer again */
	/* its flags are the server's (what they say is `refused`): a reset or SYN-ACK
	 * turned around is no answer of the host's own (host_role()) */
	fw.has &= (guint16)~FLOW_HAS_TCP_FLAGS;
	HeurClass c;
	heuristics_classify_relevant(hc, &fw, &c);
	if (c.dir != HEUR_FORWARD)
		return FALSE;
	*out = c;
	out->host = f->dst; /* fw is gone when this returns */
	out->peer = f->src;
	out->failed = refused;
	out->answer = !refused;
	out->refusal = refused;
	return TRUE;
}

void
heuristics_classifier_index(HeurClassifier *hc)
{
	for (gsize i = 0; i < sizeof hc->any.bits; i++)
		hc->any.bits[i] = hc->smtp.bits[i] | hc->submit.bits[i] | hc->login.bits[i];
	hc->any.bits[HEUR_DNS_PORT >> 3] |= (guint8)(1u << (HEUR_DNS_PORT & 7));
}

gboolean
heuristics_inbound_delivered(const Flow *f)
{
	if (f->has & FLOW_HAS_TCP_FLAGS) {
		if (f->has & FLOW_PACKET_SAMPLE)
			return (f->tcp_flags & (TCP_ACK | TCP_RST)) == TCP_ACK;
		return (f->tcp_flags & TCP_ACK) && !attempt_failed(f);
	}
	if ((f->has & FLOW_HAS_FW_EVENT) && f->fw_event == FW_EVENT_DENIED)
		return FALSE;
	return !(f->has & FLOW_HAS_PACKETS) || f->packets > 2;
}

/* DNS from an internal host to an external server (neither internal nor a mail server),
 * neither end a listed resolver: the resolver forwards for everyone, and a query to it is
 * the site's own path even when it is outside (an ISP's resolver). A firewall's teardown
 * record is not a new query. */
static void
classify_dns(const HeurClassifier *hc, const Flow *f, HeurClass *out)
{
	if ((f->has & FLOW_HAS_FW_EVENT) && f->fw_event != FW_EVENT_NONE &&
	    f->fw_event != FW_EVENT_CREATED && f->fw_event != FW_EVENT_DENIED)
		return;
	if (!netset_contains(hc->internal, f->src) || netset_contains(hc->internal, f->dst) ||
	    netset_contains(hc->mtas, f->dst) || netset_contains(hc->resolvers, f->src) ||
	    netset_contains(hc->resolvers, f->dst))
		return;
	out->dir = HEUR_DNS_EXTERNAL;
	out->host = f->src;
	out->peer = f->dst;
}

/* Rules, with "external" = neither internal nor a sanctioned MTA:
 *   dport SMTP, src internal, dst external          -> SMTP_EXT for src (MTA: surge only)
 *   dport SMTP, src internal non-MTA, dst internal non-MTA -> SMTP_INT (lateral) for src
 *   dport submission, src internal non-MTA, dst external    -> SUBMIT for src
 *   dport login, src external, dst internal or MTA, short   -> AUTH for src
 *   dport SMTP, src external, dst internal non-MTA, delivered -> INBOUND_SMTP for dst
 *   dport 53 (UDP, TCP), src internal, dst external, no resolver -> DNS_EXTERNAL for src
 *   sport in any of those sets towards an internal dst      -> REVERSE for dst
 * Only the initiator direction counts (dport in the set); a record whose sport is also in
 * the set is ambiguous and read as forward. Firewall DELETED/UPDATE/ALERT events describe
 * an already counted session and are not new attempts. */
void
heuristics_classify(const HeurClassifier *hc, const Flow *f, HeurClass *out)
{
	if (!heuristics_relevant(hc, f)) {
		out->dir = HEUR_IGNORE;
		return;
	}
	heuristics_classify_relevant(hc, f, out);
}

void
heuristics_classify_relevant(const HeurClassifier *hc, const Flow *f, HeurClass *out)
{
	memset(out, 0, sizeof *out);
	out->dir = HEUR_IGNORE;
	if (f->dport == HEUR_DNS_PORT) {
		classify_dns(hc, f, out);
		return;
	}
	/* the submission and login sets are read where a rule asks, not up front: a port-25
	 * flow to the outside (most of what is classified) asks neither */
	const gboolean smtp = portset_has(&hc->smtp, f->dport);
	if (smtp || portset_has(&hc->submit, f->dport) || portset_has(&hc->login, f->dport)) {
		gboolean src_int = netset_contains(hc->internal, f->src);
		gboolean src_mta = netset_contains(hc->mtas, f->src);
		gboolean dst_int = netset_contains(hc->internal, f->dst);
		gboolean dst_mta = netset_contains(hc->mtas, f->dst);
		gboolean dst_ext = !dst_int && !dst_mta;
		HeurDir dir = HEUR_FORWARD;
		out->outside = dst_ext && !src_int && !src_mta;
		if ((f->has & FLOW_HAS_FW_EVENT) && f->fw_event != FW_EVENT_NONE &&
		    f->fw_event != FW_EVENT_CREATED && f->fw_event != FW_EVENT_DENIED)
			dir = HEUR_FLOW_ONLY;
		out->host = f->src;
		out->peer = f->dst;
		out->host_is_mta = src_mta;
		if (smtp && src_int && dst_ext && hc->win_enabled[HEUR_WIN_SMTP_EXT]) {
			out->win = HEUR_WIN_SMTP_EXT;
		} else if (smtp && src_int && !src_mta && dst_int && !dst_mta &&
			   hc->win_enabled[HEUR_WIN_SMTP_INT]) {
			out->win = HEUR_WIN_SMTP_INT;
		} else if (portset_has(&hc->submit, f->dport) && src_int && !src_mta && dst_ext &&
			   hc->win_enabled[HEUR_WIN_SUBMIT]) {
			out->win = HEUR_WIN_SUBMIT;
		} else if (portset_has(&hc->login, f->dport) && !src_int && !src_mta &&
			   (dst_int || dst_mta) && hc->win_enabled[HEUR_WIN_AUTH]) {
			if ((f->has & FLOW_HAS_PACKETS) && hc->auth_max_packets > 0 &&
			    f->packets > hc->auth_max_packets)
				return; /* a long session: a real client, not a guess */
			if ((f->has & FLOW_HAS_BYTES) && hc->auth_max_bytes > 0 &&
			    f->bytes > hc->auth_max_bytes)
				return;
			out->win = HEUR_WIN_AUTH;
			/* auth-bruteforce counts connections: from packet samples (sFlow), the one
			 * that opens a connection (SYN without ACK); the session's other packets
			 * only mark the server as reached. How long a connection was cannot be told
			 * from a packet, so every sampled opening counts. */
			if ((f->has & FLOW_PACKET_SAMPLE) && dir == HEUR_FORWARD &&
			    !((f->has & FLOW_HAS_TCP_FLAGS) &&
			      (f->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN))
				dir = HEUR_FLOW_ONLY;
		} else if (smtp && !src_int && !src_mta && dst_int && !dst_mta) {
			/* mail delivered to an internal host: the unlisted mail server's sign */
			if (dir == HEUR_FORWARD && heuristics_inbound_delivered(f)) {
				out->dir = HEUR_INBOUND_SMTP;
				out->host = f->dst;
				out->peer = f->src;
			}
			return;
		} else {
			goto reverse;
		}
		if (dir == HEUR_FORWARD) {
			HostRole role = host_role(f);
			if (role == HOST_ANSWERS) {
				dir = HEUR_FLOW_ONLY;
				out->host_answers = TRUE;
			} else if (role == HOST_MAYBE) {
				out->host_answers = TRUE; /* an attempt if the host has a window */
			}
		}
		out->dir = dir;
		out->failed = dir == HEUR_FORWARD && attempt_failed(f);
		return;
	}
reverse:
	/* the answer of a session whose initiator is internal (or, for login ports, external) */
	if (portset_has(&hc->smtp, f->sport) || portset_has(&hc->submit, f->sport)) {
		if (!netset_contains(hc->internal, f->dst))
			return;
		gboolean answered = reverse_answered(f);
		if (f->sampling > 1 && !(f->has & FLOW_HAS_FW_EVENT) &&
		    (answered || reverse_refused(f)) && sampled_answer(hc, f, !answered, out))
			return;
		if (!answered)
			return;
		gboolean src_int = netset_contains(hc->internal, f->src) ||
				   netset_contains(hc->mtas, f->src);
		out->dir = HEUR_REVERSE;
		out->host = f->dst;
		out->peer = f->src;
		if (portset_has(&hc->smtp, f->sport))
			out->win = src_int ? HEUR_WIN_SMTP_INT : HEUR_WIN_SMTP_EXT;
		else
			out->win = HEUR_WIN_SUBMIT;
	}
}

gboolean
heuristics_reason_smtp(AlertReason r)
{
	return r == REASON_SMTP_FANOUT || r == REASON_SMTP_BLOCKED || r == REASON_SMTP_NOVELTY;
}

AlertSeverity
heuristics_severity_step(AlertSeverity s)
{
	switch (s) {
	case ALERT_SEV_NOTICE:
		return ALERT_SEV_WARNING;
	case ALERT_SEV_WARNING:
	case ALERT_SEV_CRITICAL:
		return ALERT_SEV_CRITICAL;
	case ALERT_SEV_INFO:
	default:
		return s; /* a cleared event stays information */
	}
}

gboolean
heuristics_mta_signs(const WindowCounts *c, gint64 now, gint64 long_ms)
{
	const WindowSpanCounts *l = &c->span[WINDOW_LONG];
	if (l->attempts < HEUR_MTA_MIN_ATTEMPTS || l->distinct == 0)
		return FALSE;
	gboolean delivered = (double)l->failed <= HEUR_MTA_MAX_FAILED * l->attempts;
	gboolean repeats = (double)l->attempts >= HEUR_MTA_REPEAT * l->distinct;
	gboolean steady = now - c->first_ms >= long_ms;
	return delivered && repeats && steady;
}

gboolean
heuristics_mta_like(guint32 inbound_smtp, const WindowCounts *c, gint64 now, gint64 long_ms)
{
	return inbound_smtp >= HEUR_MTA_MIN_INBOUND || heuristics_mta_signs(c, now, long_ms);
}

HeurWin
heuristics_reason_win(AlertReason r)
{
	switch (r) {
	case REASON_SMTP_FANOUT:
	case REASON_SMTP_BLOCKED:
	case REASON_MTA_SURGE:
	case REASON_SMTP_NOVELTY:
		return HEUR_WIN_SMTP_EXT;
	case REASON_SUBMISSION_FANOUT:
		return HEUR_WIN_SUBMIT;
	case REASON_LATERAL_SMTP:
		return HEUR_WIN_SMTP_INT;
	case REASON_AUTH_BRUTEFORCE:
	default:
		return HEUR_WIN_AUTH;
	}
}

static inline gboolean
sampled(const HeurSampling *s)
{
	return s != NULL && s->sampling > 1;
}

/* p(k) = 1 - (1 - 1/N)^k, k real >= 1 */
static double
inclusion(guint32 n, double k)
{
	return -expm1(MAX(k, 1.0) * log1p(-1.0 / n));
}

/* The k >= 1 at which k / (N p(k)), the sampled packets expected per item seen, is r (>= 1;
 * it grows with k from 1 at k = 1): bisection, to 0.1 % of k. */
static double
packets_per_item(guint32 n, double r)
{
	double lo = 1, hi = 2;
	if (r <= 1)
		return 1;
	while (hi / (n * inclusion(n, hi)) < r && hi < 1e9)
		hi *= 2;
	while (hi - lo > lo * 1e-3) {
		double mid = (lo + hi) / 2;
		if (mid / (n * inclusion(n, mid)) < r)
			lo = mid;
		else
			hi = mid;
	}
	return (lo + hi) / 2;
}

void
heuristics_estimate(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s,
		    double *estimate, double *se)
{
	HeurEstimate b;
	heuristics_estimate_basis(r, c, s, &b);
	*estimate = b.estimate;
	*se = b.se;
}

void
heuristics_estimate_basis(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s,
			  HeurEstimate *out)
{
	double m = heuristics_metric(r, c);
	memset(out, 0, sizeof *out);
	out->seen = m;
	out->estimate = m;
	if (!sampled(s) || m == 0)
		return;
	guint32 n = s->sampling;
	/* packets of a session: told by the sampled packets per item seen, shrunk towards the
	 * configured packets with the weight of HEUR_SAMPLE_PRIOR_ITEMS items (a handful of
	 * items seen once each do not make k = 1); without packet counts, the configured ones */
	double k0 = s->packets, r0 = k0 / (n * inclusion(n, k0));
	double ks = k0;
	if (c->packets >= m)
		ks = packets_per_item(n, (c->packets + HEUR_SAMPLE_PRIOR_ITEMS * r0) /
					     (m + HEUR_SAMPLE_PRIOR_ITEMS));
	/* a destination's sessions are taken to have at least the configured packets: the
	 * sample may only lengthen them (repeat contacts); see heuristics.h */
	if (r != REASON_AUTH_BRUTEFORCE)
		ks = MAX(ks, k0);
	double rho = CLAMP(s->refused[heuristics_reason_win(r)], 0.0, 1.0);
	double ps = inclusion(n, ks), pf = rho * inclusion(n, 2) + (1 - rho) * inclusion(n, 1);
	/* the share of the items seen that were failed attempts: the attempts seen with their
	 * SYN alone beyond the share a session shows that way (its SYN the only packet of it
	 * sampled: (1/N)(1-1/N)^(ks-1) / p(ks), about 1/ks) */
	double syn = c->attempts ? (double)MIN(c->failed, c->attempts) / c->attempts : 0.0;
	double sess_syn = (1.0 / n) * exp((ks - 1) * log1p(-1.0 / n)) / ps;
	double phi = sess_syn < 1 && syn >= HEUR_SAMPLE_MIN_SYN_SHARE
			 ? CLAMP((syn - sess_syn) / (1 - sess_syn), 0.0, 1.0)
			 : 0.0;
	if (r == REASON_SMTP_NOVELTY)
		phi = 0; /* new destinations: blocked bots are smtp-blocked's */
	double mf = m * phi, ms = m - mf;
	out->estimate = mf / pf + ms / ps;
	out->session_packets = ks;
	out->p_session = ps;
	out->failed_share = phi;
	out->refused_share = rho;
	out->p_failed = pf;
	/* the variance of the items seen of each kind, and of the SYN-only share they were
	 * told apart by (binomial over the attempts), by its slope in the estimate */
	double var_phi = phi > 0 && phi < 1 && c->attempts > 0
			     ? syn * (1 - syn) / c->attempts / ((1 - sess_syn) * (1 - sess_syn))
			     : 0.0;
	double slope = m * (1 / pf - 1 / ps);
	out->se = sqrt(mf * (1 - pf) / (pf * pf) + ms * (1 - ps) / (ps * ps) + slope * slope * var_phi);
}

double
heuristics_decision_value(AlertReason r, const WindowSpanCounts *c, const HeurSampling *s)
{
	if (!sampled(s))
		return heuristics_metric(r, c);
	double e, se;
	heuristics_estimate(r, c, s, &e, &se);
	return MAX(0.0, e - s->confidence * se);
}

/* heuristics_level() of a sampled host: out of line, so that the unsampled path (most
 * flows, inline in heuristics.h) stays a few instructions */
double
heuristics_level_sampled(AlertReason r, const WindowCounts *c, const guint32 thr[WINDOW_SPANS],
			 const HeurSampling *s, guint *trigger)
{
	double best = 0;
	guint bi = 0;
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (thr[k] == 0)
			continue;
		double l = heuristics_decision_value(r, &c->span[k], s) / thr[k];
		if (l > best) {
			best = l;
			bi = k;
		}
	}
	if (trigger != NULL)
		*trigger = bi;
	return best;
}

static G_GNUC_NO_INLINE double
attempts_scale(const WindowSpanCounts *l, const HeurSampling *s)
{
	double e, se;
	heuristics_estimate(REASON_SMTP_BLOCKED, l, s, &e, &se);
	return e / l->distinct;
}

/* heuristics_crossed() of a sampled host (the unsampled one is inline in heuristics.h) */
gboolean
heuristics_crossed_sampled(AlertReason r, double level, const WindowCounts *c,
			   double blocked_share, guint32 blocked_min_attempts,
			   const HeurSampling *s)
{
	if (level < 1.0)
		return FALSE;
	if (r == REASON_SMTP_NOVELTY)
		return !sampled(s) || c->span[WINDOW_SHORT].distinct >= HEUR_NOVELTY_MIN_SAMPLED;
	if (r != REASON_SMTP_FANOUT && r != REASON_SMTP_BLOCKED)
		return TRUE;
	const WindowSpanCounts *l = &c->span[WINDOW_LONG];
	double failed = MIN(l->failed, l->attempts), attempts = l->attempts;
	if (sampled(s) && l->distinct > 0) {
		/* the share as sampled (see heuristics.h), the attempts as many as they stand
		 * for: a blocked bot's sampled attempts are a tenth of its attempts at 1:10 */
		double scale = attempts_scale(l, s);
		failed *= scale;
		attempts *= scale;
	}
	gboolean blocked = attempts >= blocked_min_attempts && attempts > 0 &&
			   failed >= blocked_share * attempts;
	return r == REASON_SMTP_BLOCKED ? blocked : !blocked;
}
