/* Loads spamflowd's INI configuration into a Config value. One table lists every key: its
 * section, type, range, the Config field it fills and a line of help; loading, validation,
 * unknown-key detection and config_to_string() all walk that table, so a new section
 * ([analyzer], [sinks], ...) is new rows, not new code. */
#include "config.h"

#include "httpapi.h"
#include "listener.h"
#include "netset.h"
#include "action.h"
#include "sink_syslog.h"

#include <stddef.h>
#include <string.h>

/* clang-format off */
G_DEFINE_QUARK(config-error-quark, config_error)
/* clang-format on */

typedef enum {
	KEY_UINT,      /* guint */
	KEY_SIZE,      /* guint64 bytes, optional K/M/G suffix (binary) */
	KEY_ADDR_LIST, /* char ** of listen addresses */
	KEY_CHOICE,    /* guint index into choices */
	KEY_BOOL,      /* gboolean: true/false */
	KEY_DOUBLE,    /* double within [min, max] */
	KEY_MS,        /* gint64 milliseconds, given in seconds */
	KEY_PREFIXES,  /* char *: a list of addresses and prefixes */
	KEY_PORTS,     /* char *: a list of ports */
	KEY_FACILITY,  /* char *: a syslog facility name */
	KEY_SYSLOG_URL, /* char *: "" or udp://host[:port] / tcp://host[:port] */
	KEY_TEXT,      /* char *: any text (a path, a user name) */
	KEY_PATHS,     /* char *: "" or a comma-separated list of absolute paths */
	KEY_URLS,      /* char *: "" or a comma-separated list of http:// or https:// URLs */
	KEY_EVENTS,    /* char *: alert event names ("" = all) */
	KEY_REASONS,   /* char *: alert reason names ("" = all) */
	KEY_SEVERITY,  /* char *: a severity name ("" = info) */
	KEY_NFT_SET,   /* char *: "" or "FAMILY TABLE SET" */
	KEY_ENDPOINT,  /* char *: "" or one "a.b.c.d:port" / "[v6]:port" */
} KeyType;

typedef struct {
	const char *group;
	const char *key;
	KeyType type;
	gsize offset; /* into Config */
	guint64 min, max;
	const char *const *choices;
	const char *help;
} ConfigKey;

static const char *const log_targets[] = {"stderr", "syslog", NULL};

static const char *const webhook_formats[] = {"json", "chat", NULL};
/* the order of HistoryFsync */
static const char *const history_fsync_choices[] = {"segment", "interval", "never", NULL};

static const char *const on_clear_choices[] = {"delete", "expire", NULL};

static const char *const log_levels[] = {"error", "critical", "warning", "message",
					 "info",  "debug",    NULL};

#define COLLECTOR(f) (offsetof(Config, collector) + offsetof(CollectorConfig, f))
#define ANALYZER(f) (offsetof(Config, analyzer) + offsetof(AnalyzerConfig, f))
#define HEUR(r, f) (ANALYZER(h) + (r) * sizeof(HeuristicConfig) + offsetof(HeuristicConfig, f))
#define THRESH(r, w) (HEUR(r, threshold) + (w) * sizeof(guint32))
/* The three keys every heuristic has. The defaults and the reasoning behind them are in
 * analyzer_config_defaults(), the one place they are kept. */
#define HEURISTIC_KEYS(name, r, what, why)                                                     \
	{name, "enabled", KEY_BOOL, HEUR(r, enabled), 0, 0, NULL, "raise " name " alerts. " why}, \
	    {name, "short", KEY_UINT, THRESH(r, WINDOW_SHORT), 0, 10000000, NULL,                \
	     what " in the short window to raise (0 = this window off)"},                       \
	    {name, "long", KEY_UINT, THRESH(r, WINDOW_LONG), 0, 10000000, NULL,                  \
	     what " in the long window to raise (0 = this window off)"}

static const ConfigKey config_keys[] = {
    {"collector", "listen", KEY_ADDR_LIST, offsetof(Config, listen), 0, 0, NULL,
     "UDP addresses to receive flow export on, ';'-separated, 'a.b.c.d:port' or "
     "'[v6]:port'. Every port takes NetFlow v5/v9, IPFIX and sFlow v5 (told apart per "
     "datagram); the default listens on 2055 (NetFlow/IPFIX) and 6343 (sFlow)"},
    {"collector", "rcvbuf", KEY_SIZE, offsetof(Config, rcvbuf), 4096, G_MAXINT / 2, NULL,
     "socket receive buffer in bytes (K, M, G suffixes); above net.core.rmem_max needs "
     "CAP_NET_ADMIN"},
    {"collector", "max_exporters", KEY_UINT, COLLECTOR(max_exporters), 1, 1000000, NULL,
     "exporters tracked at once; more are refused and counted"},
    {"collector", "max_domains", KEY_UINT, COLLECTOR(max_domains), 1, 100000, NULL,
     "observation domains per exporter"},
    {"collector", "max_templates", KEY_UINT, COLLECTOR(max_templates), 1, 1000000, NULL,
     "templates per exporter, all domains"},
    {"collector", "max_template_fields", KEY_UINT, COLLECTOR(max_template_fields), 1, 65535,
     NULL, "fields in one template; a longer one is refused (counted in templates_refused)"},
    {"collector", "template_memory", KEY_SIZE, COLLECTOR(template_memory), 65536,
     G_GUINT64_CONSTANT(1) << 40, NULL,
     "bytes for the templates of all exporters together (about 1 KiB each); past it new "
     "templates are refused and counted (templates_over_memory)"},
    {"collector", "template_timeout", KEY_UINT, COLLECTOR(template_timeout_s), 1, 31536000, NULL,
     "seconds: templates not refreshed for this long expire"},
    {"collector", "exporter_timeout", KEY_UINT, COLLECTOR(exporter_timeout_s), 1, 31536000, NULL,
     "seconds: silent exporters are forgotten"},
    {"collector", "max_sflow_sources", KEY_UINT, COLLECTOR(max_sflow_sources), 1, 10000000,
     NULL,
     "sFlow data sources (switch ports) followed for sample loss, across all agents (about "
     "50 bytes each); more are counted (sflow_sources_refused) and their loss not measured"},
    {"collector", "allowed_exporters", KEY_PREFIXES, offsetof(Config, allowed_exporters), 0, 0,
     NULL,
     "addresses and prefixes of your routers and firewalls; datagrams from any other source "
     "are counted (exporters_denied) and dropped before decoding. Empty accepts every "
     "source: anyone who can send UDP to the port can then feed spoofed flows that frame a "
     "host, so set it"},
    {"daemon", "log_level", KEY_CHOICE, offsetof(Config, log_level), 0, 0, log_levels,
     "error, critical, warning, message, info or debug"},
    {"daemon", "log", KEY_CHOICE, offsetof(Config, log_target), 0, 0, log_targets,
     "where the daemon's own log goes: stderr (the journal, under systemd) or syslog "
     "(facility daemon)"},
    {"daemon", "stats_interval", KEY_UINT, offsetof(Config, stats_interval_s), 0, 86400, NULL,
     "seconds between counter lines in the log; 0 = off"},
    {"daemon", "user", KEY_TEXT, offsetof(Config, user), 0, 0, NULL,
     "after binding its sockets, switch to this user (and its groups); empty = keep running "
     "as started"},
    {"control", "socket", KEY_TEXT, offsetof(Config, control_socket), 0, 0, NULL,
     "control socket for spamflowctl; its directory is created with mode 0750; empty = none"},
    {"control", "group", KEY_TEXT, offsetof(Config, control_group), 0, 0, NULL,
     "group that may use the read-only commands (socket mode 0660); empty = the daemon's "
     "group"},
    {"control", "max_clients", KEY_UINT, offsetof(Config, control_max_clients), 1, 100000,
     NULL, "clients connected at once; more are told so and closed (counted)"},
    {"control", "max_request", KEY_SIZE, offsetof(Config, control_max_request), 64, 1048576,
     NULL, "bytes in one request line; a longer one is answered with an error and closed"},
    {"control", "idle_timeout", KEY_UINT, offsetof(Config, control_idle_timeout_s), 1, 86400,
     NULL, "seconds a client may stay without reading or sending a byte"},
    {"control", "max_output", KEY_SIZE, offsetof(Config, control_max_output), 65536,
     G_GUINT64_CONSTANT(1) << 30, NULL,
     "reply bytes waiting for one client; lists stop short of it, a client over it is dropped"},
    {"http", "listen", KEY_ENDPOINT, offsetof(Config, http_listen), 0, 0, NULL,
     "TCP address of the HTTP endpoint (/metrics for Prometheus, /api/... JSON; doc/http.md), "
     "'a.b.c.d:port' or '[v6]:port'; empty = off. Loopback by default (when that port is "
     "taken the daemon runs without it, saying so; any other address must bind): expose it "
     "further with allow, auth_file and the TLS keys"},
    {"http", "allow", KEY_PREFIXES, offsetof(Config, http_allow), 0, 0, NULL,
     "addresses and prefixes HTTP clients may connect from; others get 403 (counted)"},
    {"http", "auth_file", KEY_TEXT, offsetof(Config, http_auth_file), 0, 0, NULL,
     "HTTP basic auth: a file of 'user:hash' lines, hashes by mkpasswd -m yescrypt or "
     "openssl passwd -6; read at start; empty = no password"},
    {"http", "tls_cert", KEY_TEXT, offsetof(Config, http_tls_cert), 0, 0, NULL,
     "certificate chain (PEM) for HTTPS; with tls_key the endpoint speaks only HTTPS; read at "
     "start, before privileges are dropped"},
    {"http", "tls_key", KEY_TEXT, offsetof(Config, http_tls_key), 0, 0, NULL,
     "private key (PEM, unencrypted) of tls_cert"},
    {"http", "max_clients", KEY_UINT, offsetof(Config, http_max_clients), 1, 10000, NULL,
     "HTTP connections at once; more are closed at once (counted)"},
    {"http", "max_request", KEY_SIZE, offsetof(Config, http_max_request), 1024, 1048576, NULL,
     "bytes of a request's URL and headers; a bigger one is answered 431 (counted)"},
    {"http", "timeout", KEY_UINT, offsetof(Config, http_timeout_s), 1, 3600, NULL,
     "seconds a request may take from its first byte to its last reply byte, and a "
     "connection may stay idle; slower ones are cut (counted)"},
    {"analyzer", "internal_networks", KEY_PREFIXES, offsetof(Config, internal_nets), 0, 0, NULL,
     "your networks (comma-separated prefixes): RFC 1918, RFC 6598 and ULA by default; add "
     "public space you own"},
    {"analyzer", "mail_servers", KEY_PREFIXES, offsetof(Config, mail_servers), 0, 0, NULL,
     "sanctioned MTAs, relays, smarthosts: watched for mta-surge, exempt from smtp-fanout; "
     "empty by default, so an unlisted MTA alerts and tells you to list it"},
    {"analyzer", "resolvers", KEY_PREFIXES, offsetof(Config, resolvers), 0, 0, NULL,
     "the site's DNS resolvers: a host asking external DNS servers itself (not through them)"
     " raises the severity of its smtp alerts one step; their own DNS is not counted; empty"
     " by default, so external DNS is only shown"},
    {"analyzer", "smtp_ports", KEY_PORTS, offsetof(Config, smtp_ports), 0, 0, NULL,
     "MTA-to-MTA relay ports (RFC 5321)"},
    {"analyzer", "submission_ports", KEY_PORTS, offsetof(Config, submission_ports), 0, 0, NULL,
     "mail submission ports (RFC 8314 implicit TLS 465, RFC 6409 587)"},
    {"analyzer", "login_ports", KEY_PORTS, offsetof(Config, login_ports), 0, 0, NULL,
     "ports where mail logins happen: POP3, IMAP, their TLS ports, submission"},
    {"analyzer", "slice", KEY_MS, ANALYZER(slice_ms), 1, 3600, NULL,
     "seconds per window slice: alerts land within one slice of the crossing"},
    {"analyzer", "short_window", KEY_UINT, ANALYZER(span_slices[WINDOW_SHORT]), 1, 1440, NULL,
     "slices in the short window (bursts)"},
    {"analyzer", "long_window", KEY_UINT, ANALYZER(span_slices[WINDOW_LONG]), 1, 1440, NULL,
     "slices in the long window (slow bots)"},
    {"analyzer", "exact_cap", KEY_UINT, ANALYZER(exact_cap), 16, 1000000, NULL,
     "distinct destinations counted exactly per host window; beyond, a HyperLogLog estimate "
     "(about 3 % standard error): the default thresholds, and mta-surge's floors (1500 an "
     "hour), are decided on exact counts; the estimate costs less per flow for a host of "
     "thousands of destinations"},
    {"analyzer", "max_hosts", KEY_UINT, ANALYZER(max_hosts), 1, 100000000, NULL,
     "tracked hosts; the least recently seen is evicted (counted)"},
    {"analyzer", "memory_cap", KEY_SIZE, ANALYZER(mem_cap), 1048576, G_GUINT64_CONSTANT(1) << 40,
     NULL, "bytes for hosts and windows (K, M, G suffixes); least recently seen evicted"},
    {"analyzer", "history", KEY_UINT, ANALYZER(history_len), 1, 1000000, NULL,
     "recent alert events kept for queries"},
    {"analyzer", "max_suppressions", KEY_UINT, ANALYZER(max_suppressions), 1, 1000000, NULL,
     "suppressions held at once (spamflowctl suppress, about 250 bytes each); past it a new "
     "one is refused until some are removed or expire; in a cluster, the whole cluster's "
     "(counted in its suppressions bucket by the node asked)"},
    HEURISTIC_KEYS("smtp-fanout", REASON_SMTP_FANOUT, "distinct external hosts on SMTP ports",
		   "A host that is not an MTA sends port 25 to almost no one; bots reach "
		   "hundreds of MXs an hour. 50 in 10 min is 5 new MXs a minute; 150 an hour "
		   "catches bots pacing at 2.5 a minute."),
    HEURISTIC_KEYS("smtp-blocked", REASON_SMTP_BLOCKED,
		   "distinct external hosts on SMTP ports, mostly failed",
		   "The same traffic when most attempts fail (egress block holding): lower "
		   "thresholds, since every SYN-only attempt is evidence, not a guess."),
    {"smtp-blocked", "failed_share", KEY_DOUBLE, ANALYZER(blocked_share), 0, 1, NULL,
     "share of failed attempts (SYN-only, reset, firewall deny) that means blocked"},
    {"smtp-blocked", "min_attempts", KEY_UINT, ANALYZER(blocked_min_attempts), 1, 10000000,
     NULL, "attempts before the failed share is judged"},
    HEURISTIC_KEYS("submission-fanout", REASON_SUBMISSION_FANOUT,
		   "distinct external hosts on submission ports",
		   "A person submits to 1-3 providers (~10 addresses an hour with rotating "
		   "names); stolen credentials are tried at dozens."),
    HEURISTIC_KEYS("lateral-smtp", REASON_LATERAL_SMTP, "distinct internal hosts on SMTP ports",
		   "Clients talk SMTP to 1-3 internal relays; a worm sweeps dozens to "
		   "thousands."),
    HEURISTIC_KEYS("mta-surge", REASON_MTA_SURGE,
		   "floor of distinct external hosts from a mail server",
		   "A small site's MTA reaches 20-100 MXs per 10 min and daily peaks are 2-3x "
		   "the median; a compromised account relaying spam is 10x and more."),
    {"mta-surge", "factor", KEY_DOUBLE, ANALYZER(surge_k), 1, 1000, NULL,
     "alert above factor x the median of the same window over the last day"},
    {"mta-surge", "baseline_samples", KEY_UINT, ANALYZER(surge_history), 1, 100000, NULL,
     "baseline samples kept (one per short window)"},
    {"mta-surge", "min_samples", KEY_UINT, ANALYZER(surge_min_samples), 1, 100000, NULL,
     "samples before the baseline is trusted"},
    {"mta-surge", "warmup_factor", KEY_DOUBLE, ANALYZER(surge_warmup_factor), 1, 1000, NULL,
     "until then the threshold is the floor x this"},
    HEURISTIC_KEYS("auth-bruteforce", REASON_AUTH_BRUTEFORCE,
		   "short connections from one external host to login ports",
		   "Mail clients keep IMAP open (IDLE) or poll every few minutes, under 10 a "
		   "minute even behind a NAT of hundreds of users; guessers make one a second."),
    {"auth-bruteforce", "max_packets", KEY_UINT, ANALYZER(auth_max_packets), 1, 1000000, NULL,
     "a connection of at most this many packets counts as short"},
    {"auth-bruteforce", "max_bytes", KEY_SIZE, ANALYZER(auth_max_bytes), 1,
     G_GUINT64_CONSTANT(1) << 30, NULL, "... and at most this many bytes"},
    {"smtp-novelty", "enabled", KEY_BOOL, HEUR(REASON_SMTP_NOVELTY, enabled), 0, 0, NULL,
     "raise smtp-novelty alerts: an internal host (not a mail server) reaching many SMTP "
     "servers it had not contacted within the horizon. The slow bot's reason: a bot pacing "
     "itself under smtp-fanout's windows still reaches new MXs all the time, where a host "
     "that legitimately talks to MXs (a monitoring probe, a smarthost user) returns to the "
     "same few dozen. Not raised for a host already raised for smtp-fanout or smtp-blocked"},
    {"smtp-novelty", "threshold", KEY_UINT, THRESH(REASON_SMTP_NOVELTY, WINDOW_SHORT), 0,
     10000000, NULL,
     "new SMTP destinations within the window to raise (0 = off). 60 in 3 hours catches a "
     "bot at 20+ new MXs an hour (40/h in 90 min) and spares a probe of up to ~50 fixed MXs, "
     "whose first round is all new"},
    {"smtp-novelty", "window", KEY_MS, ANALYZER(novelty_window_ms), 600, 604800, NULL,
     "seconds over which new destinations are counted, in sixths (the count covers the "
     "last 5/6 of it to all of it)"},
    {"smtp-novelty", "horizon", KEY_MS, ANALYZER(novelty_horizon_ms), 3600, 2592000, NULL,
     "seconds a contacted destination is remembered as not new (at least this, at most "
     "twice: a rotating pair of Bloom filters); a day, because the same MXs come back daily"},
    {"smtp-novelty", "capacity", KEY_SIZE, ANALYZER(novelty_capacity), 1000,
     G_GUINT64_CONSTANT(1) << 34, NULL,
     "(host, destination) pairs remembered per horizon (10 bits each, twice: 2 M pairs = "
     "5 MB), within a quarter of memory_cap; more pairs in a horizon start the next "
     "generation early (counted as novelty_early_rotations: the horizon ran short)"},
    {"sampling", "packets", KEY_UINT, ANALYZER(sample_packets), 1, 100000, NULL,
     "sampled exports: at 1 in N a session of k packets (both ways: the server's answers "
     "are sampled too) is seen with probability 1-(1-1/N)^k, and the counts of sampled hosts "
     "are scaled up by it, k told by the sampled packets per destination seen but never "
     "below this (README, \"Sampled exports\"): an SMTP delivery has more, a shorter "
     "session is under-counted, never over-counted; this k is taken when the export gives "
     "no packet counts"},
    {"sampling", "confidence", KEY_DOUBLE, ANALYZER(sample_confidence), 0, 10, NULL,
     "standard errors below the estimate at which thresholds are compared: 2 keeps one "
     "sampled SYN from meaning a hundred destinations"},
    {"alerts", "escalate_factor", KEY_DOUBLE, ANALYZER(escalate_factor), 1, 1000, NULL,
     "an offender is updated when its level grows by this factor"},
    {"alerts", "update_interval", KEY_MS, ANALYZER(update_interval_ms), 0, 86400, NULL,
     "seconds: at most one update per offender this often"},
    {"alerts", "clear_level", KEY_DOUBLE, ANALYZER(clear_level), 0, 1, NULL,
     "fraction of the thresholds below which an offender counts as quiet"},
    {"alerts", "hold", KEY_MS, ANALYZER(hold_ms), 0, 604800, NULL,
     "seconds an offender must stay quiet before it is cleared"},
    {"sinks", "json", KEY_TEXT, offsetof(Config, sink_json), 0, 0, NULL,
     "append every alert event as a JSON line to this file; empty = none (--alerts on the "
     "command line overrides it)"},
    {"sinks", "csv", KEY_TEXT, offsetof(Config, sink_csv), 0, 0, NULL,
     "append every alert event as a CSV record to this file (header when the file is new); "
     "empty = none"},
    {"sinks", "syslog", KEY_BOOL, offsetof(Config, sink_syslog), 0, 0, NULL,
     "send every alert event to the local syslog as one line of key=value pairs"},
    {"sinks", "syslog_ident", KEY_TEXT, offsetof(Config, syslog_ident), 0, 0, NULL,
     "syslog ident (and the APP-NAME of remote messages)"},
    {"sinks", "syslog_facility", KEY_FACILITY, offsetof(Config, syslog_facility), 0, 0, NULL,
     "syslog facility, local and remote: daemon, user, mail, local0..local7, ..."},
    {"sinks", "remote", KEY_SYSLOG_URL, offsetof(Config, sink_remote), 0, 0, NULL,
     "send every alert event as an RFC 5424 message to udp://host:port or tcp://host:port "
     "(IPv6 in brackets, port 514 by default); empty = none"},
    {"sinks", "remote_queue", KEY_UINT, offsetof(Config, remote_queue), 1, 10000000, NULL,
     "tcp: events held while the server is away; more are dropped (counted)"},
    {"actions", "exec", KEY_PATHS, offsetof(Config, action_exec), 0, 0, NULL,
     "programs to run on every alert event that passes the filter below (comma-separated "
     "absolute paths): arguments EVENT HOST REASON SEVERITY, the alert's JSON on standard "
     "input (doc/actions.md); empty = none"},
    {"actions", "exec_timeout", KEY_UINT, offsetof(Config, exec_timeout_s), 1, 3600, NULL,
     "seconds a program may run; then SIGTERM, and SIGKILL 2 s later (counted timed_out)"},
    {"actions", "exec_max_running", KEY_UINT, offsetof(Config, exec_max_running), 1, 1000,
     NULL, "programs running at once, per program; more events wait in the queue"},
    {"actions", "exec_queue", KEY_UINT, offsetof(Config, exec_queue), 1, 1000000, NULL,
     "events waiting for a free slot, per program; more are dropped (counted)"},
    {"actions", "exec_host_limit", KEY_UINT, offsetof(Config, exec_host_limit), 0, 100000,
     NULL,
     "runs per host per minute, per program, so a flapping host cannot fork-bomb the machine "
     "(raised/updated beyond it are dropped and counted; cleared always runs); 0 = no limit"},
    {"actions", "exec_output_lines", KEY_UINT, offsetof(Config, exec_output_lines), 0, 1000,
     NULL, "lines of each run's output (stdout and stderr) copied into the daemon's log"},
    {"actions", "webhook", KEY_URLS, offsetof(Config, action_webhook), 0, 0, NULL,
     "POST every alert event that passes the filter below to these URLs (comma-separated, "
     "http:// or https://; TLS is always verified); empty = none"},
    {"actions", "webhook_header", KEY_TEXT, offsetof(Config, webhook_header), 0, 0, NULL,
     "one extra request header, \"Name: value\" (e.g. Authorization: Bearer ...); prefer "
     "webhook_header_file for secrets"},
    {"actions", "webhook_header_file", KEY_TEXT, offsetof(Config, webhook_header_file), 0, 0,
     NULL,
     "a file holding that one header line, read at start and on reload, so a token stays out "
     "of this file; wins over webhook_header"},
    {"actions", "webhook_format", KEY_CHOICE, offsetof(Config, webhook_format), 0, 0,
     webhook_formats,
     "json: the alert object of the JSON sink; chat: {\"text\": summary line} for Slack or "
     "Mattermost incoming webhooks"},
    {"actions", "webhook_ca", KEY_TEXT, offsetof(Config, webhook_ca), 0, 0, NULL,
     "CA certificates (PEM file) to verify https webhooks with; empty = the system's store"},
    {"actions", "webhook_timeout", KEY_UINT, offsetof(Config, webhook_timeout_s), 1, 3600,
     NULL, "seconds a request may take, connecting included"},
    {"actions", "webhook_queue", KEY_UINT, offsetof(Config, webhook_queue), 1, 1000000, NULL,
     "events held per URL (waiting, in flight or retrying); more are dropped (counted)"},
    {"actions", "webhook_attempts", KEY_UINT, offsetof(Config, webhook_attempts), 1, 1000,
     NULL,
     "attempts per event: connection errors, timeouts, 429 and 5xx are retried with "
     "exponential backoff; other 4xx are not"},
    {"actions", "webhook_backoff", KEY_UINT, offsetof(Config, webhook_backoff_s), 1, 3600,
     NULL, "seconds before the first retry, doubled each time up to 5 minutes"},
    {"actions", "events", KEY_EVENTS, offsetof(Config, action_events), 0, 0, NULL,
     "events exec and webhook act on: raised, updated, cleared (empty = all). A cleared "
     "event is acted on only when the host's raised or updated event was"},
    {"actions", "reasons", KEY_REASONS, offsetof(Config, action_reasons), 0, 0, NULL,
     "reasons exec and webhook act on (empty = all)"},
    {"actions", "min_severity", KEY_SEVERITY, offsetof(Config, action_min_severity), 0, 0,
     NULL, "raised and updated events below this severity are not acted on: info, notice, "
     "warning, critical"},
    {"quarantine", "set", KEY_NFT_SET, offsetof(Config, quarantine_set), 0, 0, NULL,
     "the nftables set that holds quarantined hosts, \"FAMILY TABLE SET\" (e.g. inet filter "
     "spamflow_quarantine; your ruleset drops their mail: doc/actions.md); needs "
     "CAP_NET_ADMIN; empty = off"},
    {"quarantine", "timeout", KEY_UINT, offsetof(Config, quarantine_timeout_s), 1, 31536000,
     NULL,
     "seconds a host stays in the set; each updated event renews it, so a bot that keeps "
     "going stays in, and one the daemon forgets (crash, removal) leaves by itself"},
    {"quarantine", "on_clear", KEY_CHOICE, offsetof(Config, quarantine_on_clear), 0, 0,
     on_clear_choices,
     "when the host's alert clears: delete (release it at once) or expire (let the timeout "
     "run out)"},
    {"quarantine", "reasons", KEY_REASONS, offsetof(Config, quarantine_reasons), 0, 0, NULL,
     "reasons that quarantine a host (mta-surge and auth-bruteforce name mail servers and "
     "external hosts, which are never quarantined)"},
    {"quarantine", "min_severity", KEY_SEVERITY, offsetof(Config, quarantine_min_severity), 0,
     0, NULL, "alerts below this severity do not quarantine"},
    {"quarantine", "never", KEY_PREFIXES, offsetof(Config, quarantine_never), 0, 0, NULL,
     "addresses and prefixes never quarantined (besides [analyzer] mail_servers and "
     "everything outside internal_networks, which never are)"},
    {"quarantine", "max_hosts", KEY_UINT, offsetof(Config, quarantine_max_hosts), 1, 1000000,
     NULL, "hosts in the set at most; more are refused (counted and logged)"},
    {"quarantine", "dry_run", KEY_BOOL, offsetof(Config, quarantine_dry_run), 0, 0, NULL,
     "log and record what would be done, touch nothing: try it first"},
    {"quarantine", "queue", KEY_UINT, offsetof(Config, quarantine_queue), 1, 1000000, NULL,
     "set changes waiting for the nftables worker; more are dropped (counted)"},
    {"enrich", "country_db", KEY_TEXT, offsetof(Config, country_db), 0, 0, NULL,
     "country database (.mmdb: GeoLite2/GeoIP2 Country or City, DB-IP Lite, IPinfo Lite, "
     "ip-location-db); empty = no countries. Reopened on SIGHUP"},
    {"enrich", "asn_db", KEY_TEXT, offsetof(Config, asn_db), 0, 0, NULL,
     "ASN database (.mmdb: GeoLite2-ASN, DB-IP ASN Lite, IPinfo Lite, ip-location-db); may be "
     "the country file when it holds both; empty = no ASNs"},
    {"evidence", "dir", KEY_TEXT, offsetof(Config, evidence_dir), 0, 0, NULL,
     "directory for IPFIX evidence files (the flows behind each raised or updated alert); "
     "empty = off"},
    {"evidence", "max_flows", KEY_UINT, offsetof(Config, evidence_max_flows), 1, 1000000, NULL,
     "flows per evidence file: the newest of the host's relevant flows in the long window"},
    {"evidence", "max_age", KEY_UINT, offsetof(Config, evidence_max_age_s), 0, 315360000, NULL,
     "seconds: older evidence files are removed; 0 = never by age"},
    {"evidence", "max_bytes", KEY_SIZE, offsetof(Config, evidence_max_bytes), 0,
     G_GUINT64_CONSTANT(1) << 50, NULL,
     "total size of the evidence files (K, M, G suffixes); the oldest go first; 0 = no limit"},
    {"evidence", "memory_cap", KEY_SIZE, offsetof(Config, evidence_memory_cap), 1048576,
     G_GUINT64_CONSTANT(1) << 40, NULL,
     "bytes for the recent flows kept for evidence (about 170 bytes a flow); the least "
     "recently active host goes first (counted)"},
    {"history", "dir", KEY_TEXT, offsetof(Config, history_dir), 0, 0, NULL,
     "directory of the history store: per-slice readings of every host at a quarter of a "
     "threshold or more and of every offender, alert events and actions, in hourly segment "
     "files (doc/history.md); made (0750) at start, locked (one daemon per directory); "
     "empty = off. A replay writes history (at capture time) only to another directory than "
     "this default (set in the file or with --history)"},
    {"history", "max_age", KEY_UINT, offsetof(Config, history_max_age_s), 0, 315360000, NULL,
     "seconds of history kept (by record time: capture time on replay); older segments are "
     "removed, oldest first; 0 = no age limit"},
    {"history", "max_bytes", KEY_SIZE, offsetof(Config, history_max_bytes), 0,
     G_GUINT64_CONSTANT(1) << 50, NULL,
     "total size of the history segments (K, M, G suffixes); the oldest go first; 0 = no "
     "limit"},
    {"history", "fsync", KEY_CHOICE, offsetof(Config, history_fsync), 0, 0,
     history_fsync_choices,
     "when segments reach the disk: segment (fsync at each hourly segment's close: a crash "
     "may lose the open segment's last records, which the kernel had not written), interval "
     "(fsync every second while records arrive: a crash loses about a second) or never "
     "(left to the kernel)"},
    {"history", "queue", KEY_UINT, offsetof(Config, history_queue), 1, 10000000, NULL,
     "records waiting for the history writer thread (a slice of 256 hosts is one record); "
     "more are dropped and counted (stats history.records_dropped): the main loop never "
     "waits on the disk"},
    {"state", "file", KEY_TEXT, offsetof(Config, state_file), 0, 0, NULL,
     "where the daemon keeps its state across restarts (exporters' templates and sequence "
     "numbers, hosts' windows, offenders): written at exit and every snapshot_interval, "
     "restored at start; its directory is created (mode 0750, owned by [daemon] user); empty "
     "= start from nothing every time"},
    {"state", "snapshot_interval", KEY_UINT, offsetof(Config, state_interval_s), 0, 86400,
     NULL,
     "seconds between snapshots while running: a crash (SIGKILL, power) loses at most this "
     "much; 0 = only at exit"},
    {"state", "max_age", KEY_UINT, offsetof(Config, state_max_age_s), 1, 315360000, NULL,
     "seconds: a state file older than this is not restored (its windows would have expired "
     "anyway: keep it at least the long window)"},
    {"cluster", "nats", KEY_TEXT, offsetof(Config, cluster_nats), 0, 0, NULL,
     "the NATS servers of a spamflow cluster, comma-separated nats:// (or tls://) URLs, "
     "tried in turn (doc/cluster.md); empty = this daemon works alone and nothing below "
     "applies"},
    {"cluster", "node", KEY_TEXT, offsetof(Config, cluster_node), 0, 0, NULL,
     "this node's name in the cluster, unique (letters, digits, - and _); empty = the host "
     "name"},
    {"cluster", "roles", KEY_TEXT, offsetof(Config, cluster_roles), 0, 0, NULL,
     "what this node does: collector (decode the exports it receives and publish the flows, "
     "each to its internal host's partition), analyzer (own partitions by lease and analyze "
     "them), or both"},
    {"cluster", "alert_group", KEY_TEXT, offsetof(Config, cluster_alert_group), 0, 0, NULL,
     "this node runs the sinks and actions for the cluster's alert events, sharing each event "
     "with the other nodes of the same group (one of them handles it; every group gets every "
     "event); empty = no sinks or actions here"},
    {"cluster", "partitions", KEY_UINT, offsetof(Config, cluster_partitions), 1, 4096, NULL,
     "partitions of the internal hosts, fixed for the life of a cluster (every node must "
     "agree; the bus refuses another count): a few per analyzer node you may ever run"},
    {"cluster", "replicas", KEY_UINT, offsetof(Config, cluster_replicas), 1, 5, NULL,
     "copies of every stream and bucket on the NATS servers (3 survives the loss of one "
     "server; at most the number of servers)"},
    {"cluster", "retention", KEY_UINT, offsetof(Config, cluster_retention_s), 60, 31536000,
     NULL,
     "seconds of flows the bus keeps: at least the long window plus the snapshot interval, "
     "so that a takeover can always rebuild a partition's windows"},
    {"cluster", "max_bytes", KEY_SIZE, offsetof(Config, cluster_max_bytes), 1048576,
     G_GUINT64_CONSTANT(1) << 50, NULL,
     "size limit of the flow stream on each server (K, M, G suffixes); the oldest batches "
     "go first"},
    {"cluster", "snapshot_interval", KEY_UINT, offsetof(Config, cluster_snapshot_s), 1, 3600,
     NULL,
     "seconds between snapshots of each owned partition's state: a takeover replays at most "
     "this much (plus the lease time) of the stream"},
    {"cluster", "lease_ttl", KEY_UINT, offsetof(Config, cluster_lease_ttl_s), 2, 600, NULL,
     "seconds a dead analyzer's partitions stay with it before another node takes them"},
    {"cluster", "batch_ms", KEY_UINT, offsetof(Config, cluster_batch_ms), 1, 1000, NULL,
     "milliseconds a collector holds a partition's flows before publishing them as one batch"},
    {"cluster", "batch_bytes", KEY_SIZE, offsetof(Config, cluster_batch_bytes), 1024, 262144,
     NULL, "bytes of one flow batch (published earlier when full)"},
    {"cluster", "publish_buffer", KEY_SIZE, offsetof(Config, cluster_publish_buffer), 16384,
     G_GUINT64_CONSTANT(1) << 40, NULL,
     "bytes of batches and events held while the bus is slow or away; batches beyond "
     "seven eighths of it are dropped and counted (the collector never waits); alert "
     "events and history readings may fill the rest, then wait in their partition up to a "
     "quarter more; batch_bytes must fit in its seven eighths"},
    {"cluster", "max_snapshot", KEY_SIZE, offsetof(Config, cluster_max_snapshot), 65536,
     G_GUINT64_CONSTANT(1) << 32, NULL,
     "bytes of one partition's snapshot; a larger one is not stored (counted, logged) and a "
     "takeover replays the stream from its start"},
    {"cluster", "creds", KEY_TEXT, offsetof(Config, cluster_creds), 0, 0, NULL,
     "NATS credentials file (JWT and nkey seed); empty = none"},
    {"cluster", "user", KEY_TEXT, offsetof(Config, cluster_user), 0, 0, NULL,
     "NATS user name; empty = none"},
    {"cluster", "password_file", KEY_TEXT, offsetof(Config, cluster_password_file), 0, 0, NULL,
     "file whose first line is the NATS user's password"},
    {"cluster", "token_file", KEY_TEXT, offsetof(Config, cluster_token_file), 0, 0, NULL,
     "file whose first line is a NATS token"},
    {"cluster", "tls_ca", KEY_TEXT, offsetof(Config, cluster_tls_ca), 0, 0, NULL,
     "CA file the NATS servers' certificates are verified with (TLS on when any tls_ key is "
     "set)"},
    {"cluster", "tls_cert", KEY_TEXT, offsetof(Config, cluster_tls_cert), 0, 0, NULL,
     "client certificate for NATS"},
    {"cluster", "tls_key", KEY_TEXT, offsetof(Config, cluster_tls_key), 0, 0, NULL,
     "its private key"},
};

static void
set_text(char **field, const char *v)
{
	g_free(*field);
	*field = g_strdup(v != NULL ? v : "");
}

const AnalyzerConfig *
config_analyzer(Config *cfg)
{
	cfg->analyzer.internal_nets = cfg->internal_nets;
	cfg->analyzer.mail_servers = cfg->mail_servers;
	cfg->analyzer.smtp_ports = cfg->smtp_ports;
	cfg->analyzer.submission_ports = cfg->submission_ports;
	cfg->analyzer.login_ports = cfg->login_ports;
	cfg->analyzer.resolvers = cfg->resolvers;
	cfg->analyzer.groups = cfg->groups;
	cfg->analyzer.n_groups = cfg->n_groups;
	return &cfg->analyzer;
}

/* "25, 587" -> ok; anything but ports 1-65535 separated by commas or spaces -> why. */
static gboolean
check_ports(const char *v, char **why)
{
	g_auto(GStrv) parts = g_strsplit_set(v, ", \t", -1);
	for (guint i = 0; parts[i] != NULL; i++) {
		guint64 n;
		if (parts[i][0] == '\0')
			continue;
		if (!g_ascii_string_to_unsigned(parts[i], 10, 1, 65535, &n, NULL)) {
			*why = g_strdup_printf("'%s' is not a port (1-65535)", parts[i]);
			return FALSE;
		}
	}
	return TRUE;
}

Config *
config_new(void)
{
	static const char *const listen[] = {LISTENER_DEFAULT_ADDRS, NULL};
	Config *cfg = g_new0(Config, 1);

	cfg->listen = g_strdupv((char **)listen);
	cfg->rcvbuf = LISTENER_DEFAULT_RCVBUF;
	collector_config_defaults(&cfg->collector);
	cfg->log_level = CONFIG_LOG_MESSAGE;
	cfg->stats_interval_s = 60;
	cfg->user = g_strdup("");
	cfg->control_socket = g_strdup("/run/spamflow/control.sock");
	cfg->control_group = g_strdup("");
	cfg->control_max_clients = 64;
	cfg->control_max_request = 4096;
	cfg->control_idle_timeout_s = 60;
	cfg->control_max_output = 4 * 1024 * 1024;
	cfg->http_listen = g_strdup(HTTPAPI_DEFAULT_LISTEN);
	cfg->http_allow = g_strdup("127.0.0.0/8, ::1");
	cfg->http_auth_file = g_strdup("");
	cfg->http_tls_cert = g_strdup("");
	cfg->http_tls_key = g_strdup("");
	cfg->http_max_clients = 32;   /* a Prometheus or two and some admins */
	cfg->http_max_request = 8192; /* a browser's headers are 1-2 KiB */
	cfg->http_timeout_s = 10;     /* Prometheus' default scrape timeout */
	analyzer_config_defaults(&cfg->analyzer);
	set_text(&cfg->internal_nets, cfg->analyzer.internal_nets);
	set_text(&cfg->mail_servers, cfg->analyzer.mail_servers);
	set_text(&cfg->smtp_ports, cfg->analyzer.smtp_ports);
	set_text(&cfg->submission_ports, cfg->analyzer.submission_ports);
	set_text(&cfg->login_ports, cfg->analyzer.login_ports);
	set_text(&cfg->resolvers, cfg->analyzer.resolvers);
	set_text(&cfg->allowed_exporters, "");
	cfg->sink_json = g_strdup("");
	cfg->sink_csv = g_strdup("");
	cfg->syslog_ident = g_strdup("spamflowd");
	cfg->syslog_facility = g_strdup("daemon");
	cfg->sink_remote = g_strdup("");
	cfg->remote_queue = SINK_SYSLOG_QUEUE_DEFAULT;
	cfg->action_exec = g_strdup("");
	cfg->exec_timeout_s = 10;   /* a ban script calls a router or an API: seconds, not minutes */
	cfg->exec_max_running = 4;  /* one per core of a small box; the queue takes bursts */
	cfg->exec_queue = 256;
	cfg->exec_host_limit = 6;   /* an update every 10 s is already a flapping host */
	cfg->exec_output_lines = 5;
	cfg->action_webhook = g_strdup("");
	cfg->webhook_header = g_strdup("");
	cfg->webhook_header_file = g_strdup("");
	cfg->webhook_ca = g_strdup("");
	cfg->webhook_timeout_s = 10;
	cfg->webhook_queue = 1000;
	cfg->webhook_attempts = 8;  /* 1+2+...+128 s: a chat server restarting is waited for */
	cfg->webhook_backoff_s = 1;
	cfg->action_events = g_strdup("");
	cfg->action_reasons = g_strdup("");
	cfg->action_min_severity = g_strdup("");
	cfg->quarantine_set = g_strdup("");
	cfg->quarantine_timeout_s = 3600; /* the long window: it outlives a daemon that forgets */
	cfg->quarantine_reasons =
	    g_strdup("smtp-fanout, smtp-blocked, submission-fanout, lateral-smtp, smtp-novelty");
	cfg->quarantine_min_severity = g_strdup("warning"); /* smtp-blocked (notice): the
							      firewall holds it already */
	cfg->quarantine_never = g_strdup("");
	cfg->quarantine_max_hosts = 1024;
	cfg->quarantine_queue = 1024;
	cfg->country_db = g_strdup("");
	cfg->asn_db = g_strdup("");
	cfg->evidence_dir = g_strdup("");
	cfg->evidence_max_flows = 10000;        /* a bot's hour of attempts, ~1.7 MB a file */
	cfg->evidence_max_age_s = 30 * 86400;   /* a month: time for an abuse report */
	cfg->evidence_max_bytes = 1ull << 30;   /* 1 GiB */
	cfg->evidence_memory_cap = 64ull << 20; /* ~390k flows in rings */
	cfg->state_file = g_strdup("/var/lib/spamflow/state");
	cfg->history_dir = g_strdup(CONFIG_HISTORY_DIR);
	cfg->history_max_age_s = 30 * 86400;    /* a month, as the evidence */
	cfg->history_max_bytes = 1ull << 30;    /* 1 GiB */
	cfg->history_fsync = 0;                 /* segment */
	cfg->history_queue = 65536;             /* ~16 M host readings */
	cfg->state_interval_s = 60; /* a crash costs a minute of counting, not the hour */
	cfg->state_max_age_s = 3600; /* the default long window */
	cfg->cluster_nats = g_strdup("");
	cfg->cluster_node = g_strdup("");
	cfg->cluster_roles = g_strdup("collector, analyzer");
	cfg->cluster_alert_group = g_strdup("sinks");
	cfg->cluster_partitions = 64;	 /* 21 or 22 a node over 3, still 2 over 32 */
	cfg->cluster_replicas = 3;	 /* survives one server */
	cfg->cluster_retention_s = 5400; /* the hour's window, snapshots and a margin */
	cfg->cluster_max_bytes = 1ull << 30;
	cfg->cluster_snapshot_s = 30;
	cfg->cluster_lease_ttl_s = 5;	 /* a takeover within 10 s */
	cfg->cluster_batch_ms = 5;
	cfg->cluster_batch_bytes = 64 << 10;
	cfg->cluster_publish_buffer = 64ull << 20;
	cfg->cluster_max_snapshot = 64ull << 20;
	cfg->cluster_creds = g_strdup("");
	cfg->cluster_user = g_strdup("");
	cfg->cluster_password_file = g_strdup("");
	cfg->cluster_token_file = g_strdup("");
	cfg->cluster_tls_ca = g_strdup("");
	cfg->cluster_tls_cert = g_strdup("");
	cfg->cluster_tls_key = g_strdup("");
	config_analyzer(cfg);
	return cfg;
}

void
config_free(Config *cfg)
{
	if (cfg == NULL)
		return;
	g_strfreev(cfg->listen);
	g_free(cfg->internal_nets);
	g_free(cfg->mail_servers);
	g_free(cfg->smtp_ports);
	g_free(cfg->submission_ports);
	g_free(cfg->login_ports);
	g_free(cfg->resolvers);
	g_free(cfg->allowed_exporters);
	g_free(cfg->sink_json);
	g_free(cfg->sink_csv);
	g_free(cfg->syslog_ident);
	g_free(cfg->syslog_facility);
	g_free(cfg->sink_remote);
	g_free(cfg->user);
	g_free(cfg->control_socket);
	g_free(cfg->control_group);
	g_free(cfg->http_listen);
	g_free(cfg->http_allow);
	g_free(cfg->http_auth_file);
	g_free(cfg->http_tls_cert);
	g_free(cfg->http_tls_key);
	g_free(cfg->action_exec);
	g_free(cfg->action_webhook);
	g_free(cfg->webhook_header);
	g_free(cfg->webhook_header_file);
	g_free(cfg->webhook_ca);
	g_free(cfg->action_events);
	g_free(cfg->action_reasons);
	g_free(cfg->action_min_severity);
	g_free(cfg->quarantine_set);
	g_free(cfg->quarantine_reasons);
	g_free(cfg->quarantine_min_severity);
	g_free(cfg->quarantine_never);
	g_free(cfg->country_db);
	g_free(cfg->asn_db);
	g_free(cfg->evidence_dir);
	g_free(cfg->state_file);
	g_free(cfg->history_dir);
	g_free(cfg->cluster_nats);
	g_free(cfg->cluster_node);
	g_free(cfg->cluster_roles);
	g_free(cfg->cluster_alert_group);
	g_free(cfg->cluster_creds);
	g_free(cfg->cluster_user);
	g_free(cfg->cluster_password_file);
	g_free(cfg->cluster_token_file);
	g_free(cfg->cluster_tls_ca);
	g_free(cfg->cluster_tls_cert);
	g_free(cfg->cluster_tls_key);
	for (guint i = 0; i < cfg->n_groups; i++) {
		g_free((char *)cfg->groups[i].name);
		g_free((char *)cfg->groups[i].prefixes);
	}
	g_free(cfg->groups);
	g_free(cfg);
}

static const ConfigKey *
find_key(const char *group, const char *key)
{
	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++)
		if (strcmp(config_keys[i].group, group) == 0 &&
		    (key == NULL || strcmp(config_keys[i].key, key) == 0))
			return &config_keys[i];
	return NULL;
}

/* GKeyFile keeps no line numbers: find the line of "[group]" (key NULL) or of "key =" in
 * that group by scanning the text. 0 when not found. */
static guint
find_line(const char *text, const char *group, const char *key)
{
	g_auto(GStrv) lines = g_strsplit(text != NULL ? text : "", "\n", -1);
	gboolean in_group = FALSE;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *l = g_strstrip(lines[i]);
		if (l[0] == '[') {
			char *end = strchr(l, ']');
			in_group = end != NULL && (gsize)(end - l - 1) == strlen(group) &&
				   strncmp(l + 1, group, (gsize)(end - l - 1)) == 0;
			if (in_group && key == NULL)
				return i + 1;
			continue;
		}
		if (!in_group || key == NULL || l[0] == '#')
			continue;
		char *eq = strchr(l, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(g_strchomp(l), key) == 0)
			return i + 1;
	}
	return 0;
}

/* "name:line: " or "name: " */
static char *
where(const char *name, const char *text, const char *group, const char *key)
{
	guint line = find_line(text, group, key);
	if (line == 0)
		return g_strdup_printf("%s: ", name);
	return g_strdup_printf("%s:%u: ", name, line);
}

static gboolean
parse_uint(const char *v, const ConfigKey *k, guint64 *out, char **why)
{
	guint64 n, mult = 1;
	g_autofree char *num = g_strdup(v);
	gsize len = strlen(num);

	if (k->type == KEY_SIZE && len > 0) {
		switch (g_ascii_toupper(num[len - 1])) {
		case 'K':
			mult = 1024;
			break;
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		}
		if (mult != 1)
			num[len - 1] = '\0';
	}
	/* g_ascii_string_to_unsigned() refuses signs, spaces, empty text and overflow. */
	if (!g_ascii_string_to_unsigned(num, 10, 0, G_MAXUINT64, &n, NULL)) {
		*why = g_strdup_printf("'%s' is not a number", v);
		return FALSE;
	}
	if (n > G_MAXUINT64 / mult || n * mult < k->min || n * mult > k->max) {
		*why = g_strdup_printf("'%s' is out of range %" G_GUINT64_FORMAT
				       "..%" G_GUINT64_FORMAT,
				       v, k->min, k->max);
		return FALSE;
	}
	*out = n * mult;
	return TRUE;
}

/* Read one key from kf into cfg. On failure *why says what is wrong with the value. */
/* One rule for every key: from a '#' at the start of the value or after a blank to the end
 * of the line is a comment (GKeyFile itself only knows comment lines, so without this
 * `json = /x.jsonl   # note` would name a file "/x.jsonl   # note"). */
static void
strip_comment(char *v)
{
	for (char *p = v; *p != '\0'; p++) {
		if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	g_strstrip(v);
}

/* KEY_PATHS and KEY_URLS: each comma-separated item an absolute path, or an http(s) URL */
static gboolean
check_list(const char *v, gboolean urls, char **why)
{
	g_auto(GStrv) items = g_strsplit(v, ",", -1);

	for (guint i = 0; items[i] != NULL; i++) {
		const char *it = g_strstrip(items[i]);
		if (*it == '\0')
			continue;
		if (urls && !g_str_has_prefix(it, "http://") && !g_str_has_prefix(it, "https://")) {
			*why = g_strdup_printf("'%s' is not an http:// or https:// URL", it);
			return FALSE;
		}
		if (!urls && !g_path_is_absolute(it)) {
			*why = g_strdup_printf("'%s' is not an absolute path", it);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
config_parse_nft_set(const char *v, char **family, char **table, char **set, char **why)
{
	static const char *const families[] = {"ip", "ip6", "inet", "bridge", "netdev", NULL};
	g_auto(GStrv) w = g_strsplit_set(v, " \t", -1);
	const char *word[3];
	guint n = 0;

	for (guint i = 0; w[i] != NULL; i++) {
		if (w[i][0] == '\0')
			continue;
		if (n == 3) {
			n++;
			break;
		}
		word[n++] = w[i];
	}
	if (n != 3) {
		*why = g_strdup_printf("'%s' is not \"FAMILY TABLE SET\" (e.g. inet filter "
				       "spamflow_quarantine)", v);
		return FALSE;
	}
	if (!g_strv_contains(families, word[0])) {
		*why = g_strdup_printf("'%s' is not an nftables family (ip, ip6, inet, bridge, "
				       "netdev)", word[0]);
		return FALSE;
	}
	for (guint i = 1; i < 3; i++) {
		gsize len = strlen(word[i]);
		if (len > 64 || !g_ascii_isalpha(word[i][0]) ||
		    strspn(word[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_-.") != len) {
			*why = g_strdup_printf("'%s' is not an nftables %s name (a letter, then "
					       "letters, digits, '_', '-' or '.')",
					       word[i], i == 1 ? "table" : "set");
			return FALSE;
		}
	}
	if (family != NULL)
		*family = g_strdup(word[0]);
	if (table != NULL)
		*table = g_strdup(word[1]);
	if (set != NULL)
		*set = g_strdup(word[2]);
	return TRUE;
}

static gboolean
load_key(GKeyFile *kf, const ConfigKey *k, Config *cfg, char **why)
{
	guint8 *field = (guint8 *)cfg + k->offset;
	g_autoptr(GError) err = NULL;

	g_autofree char *raw = g_key_file_get_string(kf, k->group, k->key, &err);
	if (raw == NULL) {
		*why = g_strdup(err->message);
		return FALSE;
	}
	strip_comment(raw);
	const char *v = raw;

	if (k->type == KEY_ADDR_LIST) {
		/* commas, semicolons or blanks, like every other list */
		g_auto(GStrv) list = g_strsplit_set(v, ",; \t", -1);
		g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
		for (guint i = 0; list[i] != NULL; i++) {
			struct sockaddr_storage ss;
			socklen_t sslen;
			char *a = g_strstrip(list[i]);
			if (*a == '\0')
				continue;
			if (!listener_parse_address(a, &ss, &sslen, &err)) {
				*why = g_strdup(err->message);
				return FALSE;
			}
			g_ptr_array_add(out, g_strdup(a));
		}
		if (out->len == 0) {
			*why = g_strdup("needs at least one address");
			return FALSE;
		}
		g_ptr_array_add(out, NULL);
		g_strfreev(*(char ***)field);
		*(char ***)field = (char **)g_ptr_array_free(g_steal_pointer(&out), FALSE);
		return TRUE;
	}

	guint64 n;
	switch (k->type) {
	case KEY_UINT:
		if (!parse_uint(v, k, &n, why))
			return FALSE;
		*(guint *)field = (guint)n;
		return TRUE;
	case KEY_SIZE:
		if (!parse_uint(v, k, &n, why))
			return FALSE;
		*(guint64 *)field = n;
		return TRUE;
	case KEY_CHOICE: {
		for (guint i = 0; k->choices[i] != NULL; i++) {
			if (g_ascii_strcasecmp(v, k->choices[i]) == 0) {
				*(guint *)field = i;
				return TRUE;
			}
		}
		g_autofree char *all = g_strjoinv(", ", (char **)k->choices);
		*why = g_strdup_printf("'%s' is not one of %s", v, all);
		return FALSE;
	}
	case KEY_BOOL:
		if (g_ascii_strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
		    g_ascii_strcasecmp(v, "yes") == 0) {
			*(gboolean *)field = TRUE;
			return TRUE;
		}
		if (g_ascii_strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
		    g_ascii_strcasecmp(v, "no") == 0) {
			*(gboolean *)field = FALSE;
			return TRUE;
		}
		*why = g_strdup_printf("'%s' is not true or false", v);
		return FALSE;
	case KEY_DOUBLE: {
		char *end = NULL;
		double d = g_ascii_strtod(v, &end);
		if (*v == '\0' || end == NULL || *end != '\0' || d != d) {
			*why = g_strdup_printf("'%s' is not a number", v);
			return FALSE;
		}
		if (d < (double)k->min || d > (double)k->max) {
			*why = g_strdup_printf("'%s' is out of range %" G_GUINT64_FORMAT
					       "..%" G_GUINT64_FORMAT,
					       v, k->min, k->max);
			return FALSE;
		}
		*(double *)field = d;
		return TRUE;
	}
	case KEY_MS:
		if (!parse_uint(v, k, &n, why))
			return FALSE;
		*(gint64 *)field = (gint64)n * 1000;
		return TRUE;
	case KEY_PREFIXES: {
		g_autoptr(GError) perr = NULL;
		g_autoptr(NetSet) set = netset_new_from_list(v, &perr);
		if (set == NULL) {
			*why = g_strdup(perr->message);
			return FALSE;
		}
		set_text((char **)field, v);
		return TRUE;
	}
	case KEY_PORTS:
		if (!check_ports(v, why))
			return FALSE;
		set_text((char **)field, v);
		return TRUE;
	case KEY_TEXT:
		set_text((char **)field, v);
		return TRUE;
	case KEY_FACILITY: {
		g_autoptr(GError) ferr = NULL;
		int facility;
		if (!sink_syslog_facility_from_name(v, &facility, &ferr)) {
			*why = g_strdup(ferr->message);
			return FALSE;
		}
		set_text((char **)field, v);
		return TRUE;
	}
	case KEY_SYSLOG_URL: {
		g_autoptr(GError) uerr = NULL;
		g_autofree char *host = NULL;
		SinkSyslogTransport transport;
		guint16 port;
		if (*v != '\0' &&
		    !sink_syslog_parse_url(v, &transport, &host, &port, &uerr)) {
			*why = g_strdup(uerr->message);
			return FALSE;
		}
		set_text((char **)field, v);
		return TRUE;
	}
	case KEY_PATHS:
	case KEY_URLS:
		if (!check_list(v, k->type == KEY_URLS, why))
			return FALSE;
		set_text((char **)field, v);
		return TRUE;
	case KEY_EVENTS:
	case KEY_REASONS:
	case KEY_SEVERITY: {
		g_autoptr(GError) aerr = NULL;
		ActionFilterSpec spec;
		if (!action_filter_spec_parse(&spec, k->type == KEY_EVENTS ? v : "",
					      k->type == KEY_REASONS ? v : "",
					      k->type == KEY_SEVERITY ? v : "", &aerr)) {
			*why = g_strdup(aerr->message);
			return FALSE;
		}
		set_text((char **)field, v);
		return TRUE;
	}
	case KEY_NFT_SET:
		if (*v != '\0' && !config_parse_nft_set(v, NULL, NULL, NULL, why))
			return FALSE;
		set_text((char **)field, v);
		return TRUE;
	case KEY_ENDPOINT: {
		g_autoptr(GError) lerr = NULL;
		struct sockaddr_storage ss;
		socklen_t sslen;
		if (*v != '\0' && !listener_parse_address(v, &ss, &sslen, &lerr)) {
			*why = g_strdup(lerr->message);
			return FALSE;
		}
		set_text((char **)field, v);
		return TRUE;
	}
	case KEY_ADDR_LIST:
		break;
	}
	g_assert_not_reached();
}

/* ---- [group NAME] sections: host groups (analyzer policy.h) ---- */

static void append_escaped(GString *s, const char *v);

#define GROUP_PREFIX "group "
#define GROUP_PREFIX_LEN (sizeof GROUP_PREFIX - 1)

/* "[group NAME]", and "[group]" (which has no name: an error) */
static gboolean
is_group_section(const char *section)
{
	return strncmp(section, GROUP_PREFIX, GROUP_PREFIX_LEN) == 0 ||
	       strcmp(section, "group") == 0;
}

static gboolean
group_section_named(const char *section)
{
	return strncmp(section, GROUP_PREFIX, GROUP_PREFIX_LEN) == 0 &&
	       policy_group_name_valid(section + GROUP_PREFIX_LEN);
}

static gboolean
group_key_ok(const char *key)
{
	AlertReason r;
	return strcmp(key, "prefixes") == 0 || strcmp(key, "exempt") == 0 ||
	       alert_reason_from_name(key, &r);
}

static char *
reason_names(void)
{
	GString *s = g_string_new(NULL);
	for (guint r = 0; r < REASON_COUNT; r++)
		g_string_append_printf(s, "%s%s", r > 0 ? ", " : "", alert_reason_name(r));
	return g_string_free(s, FALSE);
}

/* "200/600" (or "60" for a reason with one threshold) -> thr; else *why. */
static gboolean
parse_group_thresholds(const char *v, AlertReason r, guint32 thr[WINDOW_SPANS], char **why)
{
	guint want = policy_reason_thresholds(r);
	g_auto(GStrv) parts = g_strsplit(v, "/", -1);
	guint n = g_strv_length(parts);

	memset(thr, 0, WINDOW_SPANS * sizeof(guint32));
	if (n != want) {
		*why = want == 1 ? g_strdup_printf("'%s' is not one threshold (e.g. 100)", v)
				 : g_strdup_printf("'%s' is not short/long thresholds (e.g. 200/600; "
						   "0 turns that window off)",
						   v);
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		guint64 x;
		char *t = g_strstrip(parts[i]);
		if (!g_ascii_string_to_unsigned(t, 10, 0, 10000000, &x, NULL)) {
			*why = g_strdup_printf("'%s' is not a threshold 0..10000000", t);
			return FALSE;
		}
		thr[i] = (guint32)x;
	}
	return TRUE;
}

/* "smtp-fanout, lateral-smtp" or "all" -> mask; "" -> 0. */
static gboolean
parse_exempt(const char *v, guint32 *mask, char **why)
{
	g_auto(GStrv) parts = g_strsplit_set(v, ", ;\t", -1);
	*mask = 0;
	for (guint i = 0; parts[i] != NULL; i++) {
		AlertReason r;
		if (parts[i][0] == '\0')
			continue;
		if (g_ascii_strcasecmp(parts[i], "all") == 0) {
			*mask |= (1u << REASON_COUNT) - 1;
		} else if (alert_reason_from_name(parts[i], &r)) {
			*mask |= 1u << r;
		} else {
			g_autofree char *all = reason_names();
			*why = g_strdup_printf("'%s' is not a reason (%s) nor all", parts[i], all);
			return FALSE;
		}
	}
	return TRUE;
}

/* The [group NAME] sections of kf into cfg->groups, in file order, checked together
 * (policy_groups_new: a prefix in two groups) so that errors name the line. */
static gboolean
load_groups(GKeyFile *kf, Config *cfg, const char *name, const char *text, GError **error)
{
	g_auto(GStrv) sections = g_key_file_get_groups(kf, NULL);
	g_autoptr(GArray) groups = g_array_new(FALSE, TRUE, sizeof(PolicyGroup));

	g_array_set_clear_func(groups, NULL);
	for (guint i = 0; sections[i] != NULL; i++) {
		const char *sec = sections[i];
		PolicyGroup g = {0};
		g_autofree char *why = NULL;
		const char *bad_key = NULL;

		if (!is_group_section(sec))
			continue;
		g_auto(GStrv) keys = g_key_file_get_keys(kf, sec, NULL, NULL);
		gboolean has_prefixes = FALSE;
		g.name = sec + GROUP_PREFIX_LEN;
		for (guint k = 0; keys != NULL && keys[k] != NULL && why == NULL; k++) {
			g_autofree char *raw = g_key_file_get_string(kf, sec, keys[k], NULL);
			AlertReason r;
			if (raw == NULL)
				continue;
			strip_comment(raw);
			bad_key = keys[k];
			if (strcmp(keys[k], "prefixes") == 0) {
				g_autoptr(GError) perr = NULL;
				g_autoptr(NetSet) set = netset_new_from_list(raw, &perr);
				if (set == NULL)
					why = g_strdup(perr->message);
				else if (netset_size(set) == 0)
					why = g_strdup("at least one prefix is needed");
				g.prefixes = g_strdup(raw); /* freed below when why */
				has_prefixes = TRUE;
			} else if (strcmp(keys[k], "exempt") == 0) {
				(void)parse_exempt(raw, &g.exempt, &why);
			} else if (alert_reason_from_name(keys[k], &r)) {
				if (parse_group_thresholds(raw, r, g.threshold[r], &why))
					g.override |= 1u << r;
			}
		}
		if (why == NULL && !has_prefixes) {
			bad_key = NULL;
			why = g_strdup("prefixes is missing: a group is the hosts of its prefixes");
		}
		if (why != NULL) {
			g_autofree char *at = where(name, text, sec, bad_key);
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, "%s[%s]%s%s: %s", at, sec,
				    bad_key != NULL ? " " : "", bad_key != NULL ? bad_key : "", why);
			g_free((char *)g.prefixes);
			for (guint j = 0; j < groups->len; j++) {
				/* the groups before this one: their names were copied too */
				g_free((char *)g_array_index(groups, PolicyGroup, j).name);
				g_free((char *)g_array_index(groups, PolicyGroup, j).prefixes);
			}
			return FALSE;
		}
		g.name = g_strdup(g.name);
		g_array_append_val(groups, g);
	}
	/* names were checked by check_keys(); a prefix in two groups is checked here */
	guint bad = 0;
	g_autoptr(GError) err = NULL;
	g_autoptr(PolicyGroups) pg = policy_groups_new((PolicyGroup *)(void *)groups->data,
						       groups->len, &bad, &err);
	if (pg == NULL) {
		const PolicyGroup *g = &g_array_index(groups, PolicyGroup, bad);
		g_autofree char *sec = g_strconcat(GROUP_PREFIX, g->name, NULL);
		g_autofree char *at = where(name, text, sec, "prefixes");
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, "%s%s", at, err->message);
		for (guint j = 0; j < groups->len; j++) {
			g_free((char *)g_array_index(groups, PolicyGroup, j).name);
			g_free((char *)g_array_index(groups, PolicyGroup, j).prefixes);
		}
		return FALSE;
	}
	cfg->n_groups = groups->len;
	cfg->groups = (PolicyGroup *)(void *)g_array_free(g_steal_pointer(&groups), FALSE);
	return TRUE;
}

/* The groups as sections that load back, after a commented example. */
static void
groups_to_string(GString *s, const Config *cfg)
{
	g_string_append(
	    s, "\n# ---- host groups ----\n"
	       "# [group NAME] sections give hosts policy of their own (none by default). A host "
	       "takes the\n"
	       "# group of the longest prefix that covers it, over all groups (a /24 group inside "
	       "a /16 one\n"
	       "# wins for its hosts); one prefix in two groups is an error. In a group, "
	       "'REASON = SHORT/LONG'\n"
	       "# replaces that reason's thresholds for its hosts (0 = that window off; one "
	       "number for a\n"
	       "# reason with a single threshold), and 'exempt = REASON, ...' (or 'all') keeps "
	       "those reasons\n"
	       "# from ever raising for its hosts. Alerts carry the group's name ('group'), and "
	       "'spamflowctl\n"
	       "# host' shows it. Reloaded with the rest of the file. NAME: 1 to 31 letters, "
	       "digits, '-', '_'\n"
	       "# or '.'. For example:\n"
	       "#\n"
	       "# [group lab]\n"
	       "# prefixes = 10.20.0.0/16, fd00:20::/48\n"
	       "# smtp-fanout = 200/600\n"
	       "# exempt = submission-fanout\n"
	       "#\n"
	       "# [group newsletter]\n"
	       "# prefixes = 10.20.5.0/24\n"
	       "# exempt = smtp-fanout, smtp-blocked\n");
	for (guint i = 0; i < cfg->n_groups; i++) {
		const PolicyGroup *g = &cfg->groups[i];
		g_string_append_printf(s, "\n[group %s]\nprefixes = ", g->name);
		append_escaped(s, g->prefixes);
		g_string_append_c(s, '\n');
		for (guint r = 0; r < REASON_COUNT; r++) {
			if (!(g->override & (1u << r)))
				continue;
			g_string_append_printf(s, "%s = %u", alert_reason_name(r), g->threshold[r][0]);
			for (guint k = 1; k < policy_reason_thresholds(r); k++)
				g_string_append_printf(s, "/%u", g->threshold[r][k]);
			g_string_append_c(s, '\n');
		}
		if (g->exempt == (1u << REASON_COUNT) - 1) {
			g_string_append(s, "exempt = all\n");
		} else if (g->exempt != 0) {
			g_string_append(s, "exempt =");
			for (guint r = 0, n = 0; r < REASON_COUNT; r++) {
				if (g->exempt & (1u << r))
					g_string_append_printf(s, "%s %s", n++ > 0 ? "," : "",
							       alert_reason_name(r));
			}
			g_string_append_c(s, '\n');
		}
	}
}

/* Every section and key in the text is in the table, and no key is set twice. The text
 * already parsed as a GKeyFile, so each line is blank, a comment, "[group]" or "key=value". */
static gboolean
check_keys(const char *name, const char *text, GError **error)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autofree char *group = NULL;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *l = g_strstrip(lines[i]);
		char *end;

		if (l[0] == '\0' || l[0] == '#')
			continue;
		if (l[0] == '[' && (end = strrchr(l, ']')) != NULL) {
			g_free(group);
			group = g_strndup(l + 1, (gsize)(end - l - 1));
			if (is_group_section(group)) {
				if (!group_section_named(group)) {
					g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE,
						    "%s:%u: [%s]: a group name is 1 to %d letters, "
						    "digits, '-', '_' or '.'",
						    name, i + 1, group, POLICY_GROUP_NAME_MAX);
					return FALSE;
				}
				continue;
			}
			if (find_key(group, NULL) == NULL) {
				g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_UNKNOWN,
					    "%s:%u: unknown section [%s]", name, i + 1, group);
				return FALSE;
			}
			continue;
		}
		end = strchr(l, '=');
		if (end == NULL || group == NULL)
			continue;
		*end = '\0';
		g_strchomp(l);
		if (is_group_section(group) ? !group_key_ok(l) : find_key(group, l) == NULL) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_UNKNOWN,
				    "%s:%u: [%s] unknown key '%s'", name, i + 1, group, l);
			return FALSE;
		}
		char *id = g_strconcat(group, "\n", l, NULL);
		guint first = GPOINTER_TO_UINT(g_hash_table_lookup(seen, id));
		if (first != 0) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_DUPLICATE,
				    "%s:%u: [%s] %s: set twice (first on line %u)", name, i + 1,
				    group, l, first);
			g_free(id);
			return FALSE;
		}
		g_hash_table_insert(seen, id, GUINT_TO_POINTER(i + 1));
	}
	return TRUE;
}

/* What GKeyFile would refuse, said with the line: its own messages name no line, and
 * without a locale they show quote marks as '?'. */
static gboolean
check_syntax(const char *name, const char *text, GError **error)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	gboolean in_group = FALSE;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *l = g_strstrip(lines[i]);
		if (!g_utf8_validate(l, -1, NULL)) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
				    "%s:%u: not UTF-8 text", name, i + 1);
			return FALSE;
		}
		if (l[0] == '\0' || l[0] == '#')
			continue;
		if (l[0] == '[') {
			gsize n = strlen(l);
			if (n < 3 || l[n - 1] != ']' || strpbrk(l + 1, "[") != NULL ||
			    strchr(l + 1, ']') != l + n - 1) {
				g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
					    "%s:%u: '%s' is not a [section] line", name, i + 1, l);
				return FALSE;
			}
			in_group = TRUE;
			continue;
		}
		const char *eq = strchr(l, '=');
		if (eq == NULL || eq == l) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
				    "%s:%u: '%s' is not 'key = value', a [section] or a # comment",
				    name, i + 1, l);
			return FALSE;
		}
		if (!in_group) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
				    "%s:%u: '%s' comes before any [section]", name, i + 1, l);
			return FALSE;
		}
	}
	return TRUE;
}

Config *
config_new_from_data(const char *data, gssize len, const char *name, GError **error)
{
	g_autoptr(Config) cfg = config_new();
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) err = NULL;
	g_autofree char *text = len < 0 ? g_strdup(data) : g_strndup(data, (gsize)len);

	if (!check_syntax(name, text, error))
		return NULL;
	if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &err)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX, "%s: %s", name, err->message);
		return NULL;
	}

	/* Refuse what the table does not know before reading anything. GKeyFile cannot do
	 * this: it lists a repeated key several times and localized keys ("key[de]") not at
	 * all, so the text itself is checked. */
	if (!check_keys(name, text, error))
		return NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++) {
		const ConfigKey *k = &config_keys[i];
		g_autofree char *why = NULL;

		if (!g_key_file_has_key(kf, k->group, k->key, NULL))
			continue;
		if (!load_key(kf, k, cfg, &why)) {
			g_autofree char *at = where(name, text, k->group, k->key);
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, "%s[%s] %s: %s", at,
				    k->group, k->key, why);
			return NULL;
		}
	}
	if (!load_groups(kf, cfg, name, text, error))
		return NULL;
	config_analyzer(cfg);
	/* Cross-key checks (e.g. the short window longer than the long one) are the
	 * analyzer's: try the result once so a bad combination fails here, named. */
	g_autoptr(Analyzer) probe = analyzer_new(&cfg->analyzer, &err);
	if (probe == NULL) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, "%s: %s", name, err->message);
		return NULL;
	}
	return g_steal_pointer(&cfg);
}

Config *
config_new_from_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	g_autoptr(GError) err = NULL;

	if (!g_file_get_contents(path, &text, &len, &err)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_FILE, "%s", err->message);
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
			    "%s: contains a NUL byte: not a text file", path);
		return NULL;
	}
	return config_new_from_data(text, (gssize)len, path, error);
}

/* "# help" wrapped at word boundaries to lines a terminal shows whole. */
static void
append_comment(GString *s, const char *text)
{
	g_auto(GStrv) words = g_strsplit(text, " ", -1);
	gsize col = 0;

	for (guint i = 0; words[i] != NULL; i++) {
		gsize w = strlen(words[i]);
		if (col > 0 && col + 1 + w > 92) {
			g_string_append_c(s, '\n');
			col = 0;
		}
		if (col == 0) {
			g_string_append(s, "#");
			col = 1;
		}
		g_string_append_printf(s, " %s", words[i]);
		col += 1 + w;
	}
	g_string_append_c(s, '\n');
}

/* A string value escaped as GKeyFile unescapes it: "\n" in the file is a newline in the
 * value, and written back raw it would end the line (--print-config must load back). */
static void
append_escaped(GString *s, const char *v)
{
	for (; *v != '\0'; v++) {
		switch (*v) {
		case '\\':
			g_string_append(s, "\\\\");
			break;
		case '\n':
			g_string_append(s, "\\n");
			break;
		case '\r':
			g_string_append(s, "\\r");
			break;
		case '\t':
			g_string_append(s, "\\t");
			break;
		default:
			g_string_append_c(s, *v);
		}
	}
}

char *
config_to_string(const Config *cfg)
{
	GString *s = g_string_new(NULL);
	const char *group = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++) {
		const ConfigKey *k = &config_keys[i];
		const guint8 *field = (const guint8 *)cfg + k->offset;

		if (g_strcmp0(group, k->group) != 0) {
			g_string_append_printf(s, "%s[%s]\n", group != NULL ? "\n" : "", k->group);
			group = k->group;
		}
		append_comment(s, k->help);
		g_string_append_printf(s, "%s = ", k->key);
		switch (k->type) {
		case KEY_UINT:
			g_string_append_printf(s, "%u\n", *(const guint *)field);
			break;
		case KEY_SIZE:
			g_string_append_printf(s, "%" G_GUINT64_FORMAT "\n",
					       *(const guint64 *)field);
			break;
		case KEY_ADDR_LIST: {
			char *const *v = *(char **const *)field;
			for (guint j = 0; v != NULL && v[j] != NULL; j++)
				g_string_append_printf(s, "%s%s", j > 0 ? ", " : "", v[j]);
			g_string_append_c(s, '\n');
			break;
		}
		case KEY_CHOICE:
			g_string_append_printf(s, "%s\n", k->choices[*(const guint *)field]);
			break;
		case KEY_BOOL:
			g_string_append(s, *(const gboolean *)field ? "true\n" : "false\n");
			break;
		case KEY_DOUBLE: {
			/* the shortest text that reads back as the same double: 0.8, not
			 * 0.80000000000000004 */
			char buf[G_ASCII_DTOSTR_BUF_SIZE];
			double d = *(const double *)field;
			for (int prec = 1; prec <= 17; prec++) {
				char fmt[8];
				g_snprintf(fmt, sizeof fmt, "%%.%dg", prec);
				g_ascii_formatd(buf, sizeof buf, fmt, d);
				if (g_ascii_strtod(buf, NULL) == d)
					break;
			}
			g_string_append_printf(s, "%s\n", buf);
			break;
		}
		case KEY_MS:
			g_string_append_printf(s, "%" G_GINT64_FORMAT "\n",
					       *(const gint64 *)field / 1000);
			break;
		case KEY_PREFIXES:
		case KEY_PORTS:
		case KEY_TEXT:
		case KEY_FACILITY:
		case KEY_SYSLOG_URL:
		case KEY_PATHS:
		case KEY_URLS:
		case KEY_EVENTS:
		case KEY_REASONS:
		case KEY_SEVERITY:
		case KEY_NFT_SET:
		case KEY_ENDPOINT:
			append_escaped(s, *(char *const *)field);
			g_string_append_c(s, '\n');
			break;
		}
	}
	groups_to_string(s, cfg);
	return g_string_free(s, FALSE);
}

const char *
config_log_level_name(guint level)
{
	return level < G_N_ELEMENTS(log_levels) - 1 ? log_levels[level] : "unknown";
}

GLogLevelFlags
config_log_mask(const Config *cfg)
{
	static const GLogLevelFlags levels[] = {G_LOG_LEVEL_ERROR,   G_LOG_LEVEL_CRITICAL,
						G_LOG_LEVEL_WARNING, G_LOG_LEVEL_MESSAGE,
						G_LOG_LEVEL_INFO,    G_LOG_LEVEL_DEBUG};
	GLogLevelFlags mask = G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION;

	for (guint i = 0; i <= cfg->log_level && i < G_N_ELEMENTS(levels); i++)
		mask |= levels[i];
	return mask;
}
