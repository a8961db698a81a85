/* The analyzer's configuration: every default with the reason for it, validation, and
 * applying a configuration at start or on reload (analyzer_reconfigure()). */
#include "analyzer_private.h"

G_DEFINE_QUARK(analyzer-error-quark, analyzer_error)

/* ---- defaults: every number in one place, with the reason for it ---- */

void
analyzer_config_defaults(AnalyzerConfig *c)
{
	memset(c, 0, sizeof *c);
	/* RFC 1918, RFC 6598 (carrier-grade NAT space: often used inside large sites) and
	 * RFC 4193 ULA. Sites with public internal space add theirs. */
	c->internal_nets = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7";
	/* No sanctioned MTAs by default: every internal host is a client until told otherwise,
	 * which errs towards alerting on an unlisted MTA (and tells the admin to list it). */
	c->mail_servers = "";
	c->smtp_ports = "25";             /* MTA-to-MTA relay (RFC 5321) */
	c->submission_ports = "465, 587"; /* RFC 8314 implicit TLS, RFC 6409 submission */
	/* POP3, IMAP, IMAPS, POP3S, and the submission ports (AUTH happens there too) */
	c->login_ports = "110, 143, 993, 995, 465, 587";
	/* No resolvers known by default: a host's DNS to external servers is shown, and
	 * corroborates nothing until the site says which resolvers its hosts should use. */
	c->resolvers = "";

	/* One-minute slices: alert time within a minute of the crossing, and a 60-slice long
	 * window costs at most 60 small slice records per active host. A 10-minute window
	 * catches bursts (fast bots send hundreds of MX connections a minute); a 60-minute one
	 * catches slow bots that pace themselves under a burst threshold. */
	c->slice_ms = 60 * 1000;
	c->span_slices[WINDOW_SHORT] = 10;
	c->span_slices[WINDOW_LONG] = 60;

	/* 2048 exact destinations per host window (a table of 4,096 slots: 48 KiB, 96 KiB once
	 * it holds an IPv6 destination) is above every default threshold and mta-surge's floors
	 * (300 and 1,500), so decisions near a threshold are exact; past it a host's fan-out is
	 * estimated, which costs less per flow for the hosts of thousands of destinations
	 * (bench/README.md, "Issue 14, round 8") */
	c->exact_cap = 2048;
	/* 1 GiB for hosts and windows; a host with one window of IPv4 destinations costs 184
	 * bytes with one or two, 216 with four (see HOST_COST), so 4 M such hosts fit before
	 * the byte cap matters (and the smtp-novelty seen set's 5 MB). */
	c->mem_cap = G_GUINT64_CONSTANT(1) << 30;
	c->max_hosts = 4u << 20;
	c->history_len = 1024; /* days of events on a quiet site, hours on a noisy one */

	/* smtp-fanout: a workstation or server that is not an MTA normally sends port 25 to
	 * zero external hosts (ISPs and most sites block it or route through a smarthost);
	 * the odd direct-to-MX application reaches a few domains an hour. Spam bots reach
	 * hundreds to thousands of MXs an hour; the slowest seen pace at a few a minute.
	 * 50 in 10 min is 5 distinct MXs a minute sustained; 150 in 60 min catches 2.5/min. */
	c->h[REASON_SMTP_FANOUT] = (HeuristicConfig){TRUE, {50, 150}};
	/* smtp-blocked: a bot behind an egress block retries fast to many MXs and fails;
	 * lower thresholds because every attempt is SYN-only evidence, not a guess, and the
	 * admin wants to know about the infection even though the firewall holds. */
	c->h[REASON_SMTP_BLOCKED] = (HeuristicConfig){TRUE, {30, 100}};
	c->blocked_share = 0.8;        /* a real MTA sees <10% failures; 80% means blocked */
	c->blocked_min_attempts = 30;  /* no share judgement on a handful of flows */
	/* submission-fanout: a person submits to 1-3 providers; big providers' submission
	 * names rotate over several addresses, so an active user may reach ~10 addresses an
	 * hour. A credential-stuffing bot logs in at dozens of providers. */
	c->h[REASON_SUBMISSION_FANOUT] = (HeuristicConfig){TRUE, {20, 50}};
	/* lateral-smtp: clients talk SMTP to 1-3 internal relays; a worm sweeping for open
	 * relays or the next victim touches dozens to thousands of internal addresses. */
	c->h[REASON_LATERAL_SMTP] = (HeuristicConfig){TRUE, {20, 50}};
	/* mta-surge: thresholds are FLOORS; the live threshold is max(floor, k x median of the
	 * same window over the last day). A small-site MTA reaches 20-100 distinct MXs per 10
	 * minutes; 300/10 min and 1500/h are beyond a mailing list send of a small site.
	 * k = 5: daily peaks are 2-3x the median; a compromised account relaying spam is
	 * 10x and more. */
	c->h[REASON_MTA_SURGE] = (HeuristicConfig){TRUE, {300, 1500}};
	c->surge_k = 5.0;
	c->surge_history = 144;     /* a day of 10-minute samples (one per short window) */
	c->surge_min_samples = 36;  /* 6 hours before the median is trusted */
	c->surge_warmup_factor = 4; /* without a baseline only a very large surge alerts */
	/* auth-bruteforce: short connections from one external address to login ports. A mail
	 * client keeps IMAP sessions open (IDLE) or polls every few minutes; even a NAT of a
	 * few hundred users makes well under 10 a minute. Guessers make one or more a second. */
	c->h[REASON_AUTH_BRUTEFORCE] = (HeuristicConfig){TRUE, {100, 300}};
	c->auth_max_packets = 40; /* connect + banner + AUTH + failure: 10-25 packets */
	c->auth_max_bytes = 20000; /* a login exchange with TLS handshake: a few KB */
	/* smtp-novelty: a bot pacing itself under 50/10 min and 150/h still reaches new MXs all
	 * the time, where a host that legitimately talks to MXs (a monitoring probe, a
	 * smarthost user, an appliance) returns to the same few dozen. 60 MXs not contacted in
	 * the last day, within 3 hours, catches a bot at 20+ new MXs an hour (40/h in 90 min)
	 * and spares a probe of up to ~50 fixed MXs (its first round is all new). The horizon
	 * is a day because the same MXs come back daily; 2 M pairs a day (5 MB) is far above
	 * the port-25 pairs a site's non-MTA hosts make, and a flood beyond it only shortens
	 * the horizon (counted). */
	c->h[REASON_SMTP_NOVELTY] = (HeuristicConfig){TRUE, {60, 0}};
	c->novelty_window_ms = 3 * 3600 * 1000;
	c->novelty_horizon_ms = 24 * 3600 * 1000;
	c->novelty_capacity = 2000000;

	/* Sampling: packets per attempt come from the sample itself (heuristics.h); when the
	 * export gives no packet counts, an SMTP delivery's client side (handshake, EHLO, MAIL,
	 * RCPT, DATA, QUIT: about 10). 2 standard errors: one sampled SYN at 1:100 (an estimate
	 * of 100 +- 99) raises nothing, 20 of them (2000 +- 445) do. */
	c->sample_packets = 10;
	c->sample_confidence = 2.0;

	/* Lifecycle: update when the level doubles, at most every 15 min (a bot ramping up
	 * gives a handful of updates, not one per flow); clear after 30 min below half the
	 * thresholds (a bot that pauses between campaigns does not flap). */
	c->escalate_factor = 2.0;
	c->update_interval_ms = 15 * 60 * 1000;
	c->clear_level = 0.5;
	c->hold_ms = 30 * 60 * 1000;

	/* Policy: no groups. Suppressions are set by hand, one per host or (host, reason): ten
	 * thousand (about 2.5 MB) is far more than an admin follows, and bounds what a script
	 * gone wrong can pile up. */
	c->groups = NULL;
	c->n_groups = 0;
	c->max_suppressions = 10000;
}

/* ---- validating and applying ---- */

static gboolean
validate(const AnalyzerConfig *c, GError **error)
{
	const char *bad = NULL;
	if (c->slice_ms < 1000)
		bad = "slice length must be at least 1 s";
	else if (c->span_slices[WINDOW_SHORT] < 1 ||
		 c->span_slices[WINDOW_SHORT] > c->span_slices[WINDOW_LONG] ||
		 c->span_slices[WINDOW_LONG] > WINDOW_MAX_SLICES)
		bad = "windows must satisfy 1 <= short <= long <= 1440 slices";
	else if (c->exact_cap < 1 || c->exact_cap > (1u << 24))
		bad = "exact destination cap must be 1..16777216";
	else if (c->max_hosts < 1 || c->mem_cap < (1u << 20))
		bad = "host cap must be >= 1 and memory cap >= 1 MiB";
	else if (c->history_len < 1 || c->history_len > (1u << 20))
		bad = "history length must be 1..1048576";
	else if (!(c->escalate_factor > 1.0))
		bad = "escalate factor must be > 1";
	else if (!(c->clear_level > 0.0 && c->clear_level <= 1.0))
		bad = "clear level must be in (0, 1]";
	else if (c->hold_ms < 0 || c->update_interval_ms < 0)
		bad = "hold and update interval must not be negative";
	else if (!(c->blocked_share > 0.0 && c->blocked_share <= 1.0))
		bad = "blocked share must be in (0, 1]";
	else if (!(c->surge_k > 0.0) || c->surge_history < 1 || c->surge_history > 100000 ||
		 !(c->surge_warmup_factor >= 1.0))
		bad = "bad mta-surge baseline settings";
	else if (c->novelty_window_ms < 600 * 1000 || c->novelty_window_ms > 7 * 86400 * 1000ll)
		bad = "smtp-novelty window must be 10 min .. 7 days";
	else if (c->novelty_horizon_ms < 3600 * 1000 || c->novelty_horizon_ms > 30 * 86400 * 1000ll)
		bad = "smtp-novelty horizon must be 1 hour .. 30 days";
	else if (c->novelty_capacity < 1000 || c->novelty_capacity > (G_GUINT64_CONSTANT(1) << 34))
		bad = "smtp-novelty capacity must be 1000 .. 17179869184 pairs";
	else if (c->sample_packets < 1 || c->sample_packets > 100000)
		bad = "sampling packets must be 1..100000";
	else if (!(c->sample_confidence >= 0.0 && c->sample_confidence <= 10.0))
		bad = "sampling confidence must be 0..10 standard errors";
	else if (c->max_suppressions < 1 || c->max_suppressions > 1000000)
		bad = "suppression cap must be 1..1000000";
	else if (c->n_groups > 0 && c->groups == NULL)
		bad = "groups missing";
	if (bad != NULL) {
		g_set_error(error, ANALYZER_ERROR, ANALYZER_ERROR_INVALID, "%s", bad);
		return FALSE;
	}
	return TRUE;
}

/* Validate c and parse its lists into p (nothing in the analyzer changes). */
gboolean
analyzer_config_parse(const AnalyzerConfig *c, AnalyzerParsed *p, GError **error)
{
	GError *e = NULL;
	memset(p, 0, sizeof *p);
	if (!validate(c, error))
		return FALSE;
	p->internal = netset_new();
	p->mtas = netset_new();
	p->resolvers = netset_new();
	if (!netset_add_list(p->internal, c->internal_nets, 1, &e)) {
		g_propagate_prefixed_error(error, e, "internal networks: ");
		goto fail;
	}
	if (!netset_add_list(p->mtas, c->mail_servers, 1, &e)) {
		g_propagate_prefixed_error(error, e, "mail servers: ");
		goto fail;
	}
	if (!netset_add_list(p->resolvers, c->resolvers, 1, &e)) {
		g_propagate_prefixed_error(error, e, "resolvers: ");
		goto fail;
	}
	if (!portset_parse(&p->smtp, c->smtp_ports, &e)) {
		g_propagate_prefixed_error(error, e, "smtp ports: ");
		goto fail;
	}
	if (!portset_parse(&p->submit, c->submission_ports, &e)) {
		g_propagate_prefixed_error(error, e, "submission ports: ");
		goto fail;
	}
	if (!portset_parse(&p->login, c->login_ports, &e)) {
		g_propagate_prefixed_error(error, e, "login ports: ");
		goto fail;
	}
	p->group_set = policy_groups_new(c->groups, c->n_groups, NULL, error);
	if (p->group_set == NULL)
		goto fail;
	return TRUE;
fail:
	netset_free(p->internal);
	netset_free(p->mtas);
	netset_free(p->resolvers);
	return FALSE;
}

/* What the configuration's strings and sets hold. */
void
analyzer_config_clear(Analyzer *a)
{
	g_free(a->s_internal);
	g_free(a->s_mtas);
	g_free(a->s_smtp);
	g_free(a->s_submit);
	g_free(a->s_login);
	g_free(a->s_resolvers);
	netset_free(a->internal);
	netset_free(a->mtas);
	netset_free(a->resolvers);
}

/* Make c (parsed into p, whose sets the analyzer takes) the configuration in force: the
 * copy of c, the classifier, the window geometry and the offender policy. */
void
analyzer_config_apply(Analyzer *a, const AnalyzerConfig *c, AnalyzerParsed *p)
{
	analyzer_config_clear(a);
	a->cfg = *c;
	a->cfg.internal_nets = a->s_internal = g_strdup(c->internal_nets ? c->internal_nets : "");
	a->cfg.mail_servers = a->s_mtas = g_strdup(c->mail_servers ? c->mail_servers : "");
	a->cfg.smtp_ports = a->s_smtp = g_strdup(c->smtp_ports ? c->smtp_ports : "");
	a->cfg.submission_ports = a->s_submit =
		g_strdup(c->submission_ports ? c->submission_ports : "");
	a->cfg.login_ports = a->s_login = g_strdup(c->login_ports ? c->login_ports : "");
	a->cfg.resolvers = a->s_resolvers = g_strdup(c->resolvers ? c->resolvers : "");
	a->internal = p->internal;
	a->mtas = p->mtas;
	a->resolvers = p->resolvers;
	memset(&a->hc, 0, sizeof a->hc);
	a->hc.internal = a->internal;
	a->hc.mtas = a->mtas;
	a->hc.resolvers = a->resolvers;
	a->hc.smtp = p->smtp;
	a->hc.submit = p->submit;
	a->hc.login = p->login;
	heuristics_classifier_index(&a->hc);
	for (guint r = 0; r < REASON_COUNT; r++) {
		if (c->h[r].enabled)
			a->hc.win_enabled[heuristics_reason_win(r)] = TRUE;
	}
	a->hc.auth_max_packets = c->auth_max_packets;
	a->hc.auth_max_bytes = c->auth_max_bytes;
	a->geom.slice_ms = c->slice_ms;
	for (guint k = 0; k < WINDOW_SPANS; k++)
		a->geom.span[k] = c->span_slices[k];
	a->geom.exact_cap = c->exact_cap;
	/* the seen set gets at most a quarter of mem_cap: 2 generations x bits per pair */
	a->nov_capacity = MIN(c->novelty_capacity,
			      c->mem_cap / 4 * 8 / (2 * NOVELTY_BITS_PER_PAIR));
	a->policy.escalate_factor = c->escalate_factor;
	a->policy.update_interval_ms = c->update_interval_ms;
	a->policy.clear_level = c->clear_level;
	a->policy.hold_ms = c->hold_ms;
	analyzer_policy_apply(a, c, p->group_set);
}

gboolean
analyzer_reconfigure(Analyzer *a, const AnalyzerConfig *cfg, GError **error)
{
	AnalyzerParsed p;
	if (!analyzer_config_parse(cfg, &p, error))
		return FALSE;
	WindowGeom old = a->geom;
	a->hist_full = TRUE; /* thresholds may have moved: the next slice walks every host */
	a->quick_epoch++; /* and the levels the quick judge found */
	events_history_resize(a, cfg->history_len);
	AlertFunc fn = a->alert_fn;
	gpointer data = a->alert_data;
	AnalyzerFlowFunc flow_fn = a->cfg.flow_fn;
	gpointer flow_data = a->cfg.flow_data;
	AnalyzerSliceFunc slice_fn = a->cfg.slice_fn;
	gpointer slice_data = a->cfg.slice_data;
	analyzer_config_apply(a, cfg, &p);
	if (a->nov != NULL && novelty_capacity(a->nov) != a->nov_capacity) {
		/* another size: the bits would mean other positions; the novelty memory
		 * starts afresh (made again at the next need) */
		a->mem -= MIN(a->mem, novelty_mem(a->nov));
		g_clear_pointer(&a->nov, novelty_free);
	} else if (a->nov != NULL) {
		novelty_set_horizon(a->nov, cfg->novelty_horizon_ms);
	}
	a->alert_fn = fn;
	a->alert_data = data;
	a->cfg.flow_fn = flow_fn;
	a->cfg.flow_data = flow_data;
	a->cfg.slice_fn = slice_fn;
	a->cfg.slice_data = slice_data;
	a->cfg.geo_fn = a->geo_fn;
	a->cfg.geo_data = a->geo_data;
	a->cfg.notice_fn = a->notice_fn;
	a->cfg.notice_data = a->notice_data;
	/* the networks may have changed: a new period, told again if they are still wrong */
	analyzer_scope_watch_init(&a->scope);
	hosts_reconfigure(a, &old);
	return TRUE;
}
