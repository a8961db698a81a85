/* spamflowd configuration: one INI file (GKeyFile), every key with an embedded default so no
 * file is needed. Keys are described by one table in config.c; adding a key is one row there
 * plus a field here. Unknown sections and keys are errors: a typo must not go unnoticed. */
#pragma once

#include "analyzer.h"
#include "collector.h"

#include <glib.h>

typedef enum {
	CONFIG_LOG_ERROR,
	CONFIG_LOG_CRITICAL,
	CONFIG_LOG_WARNING,
	CONFIG_LOG_MESSAGE,
	CONFIG_LOG_INFO,
	CONFIG_LOG_DEBUG,
} ConfigLogLevel;

#define CONFIG_HISTORY_DIR "/var/lib/spamflow/history" /* [history] dir's default */

typedef struct {
	/* [collector] */
	char **listen;	/* "addr:port" list, NULL-terminated */
	guint64 rcvbuf; /* socket receive buffer, bytes */
	CollectorConfig collector;
	/* [daemon] */
	guint log_level;	/* ConfigLogLevel: messages above it are not logged */
	guint log_target;	/* 0 stderr, 1 syslog (facility daemon) */
	guint stats_interval_s; /* live counter lines every N seconds; 0 = off */
	char *user;		/* drop privileges to this user after binding; "" = stay */
	/* [control] */
	char *control_socket; /* "" = no control socket */
	char *control_group;  /* the socket's group ("" = the daemon's) */
	guint control_max_clients;
	guint64 control_max_request;
	guint control_idle_timeout_s;
	guint64 control_max_output;
	/* [http]: /metrics and the JSON API (daemon/http.c) */
	char *http_listen;    /* "addr:port" or "[v6]:port"; "" = off */
	char *http_allow;     /* prefixes clients may come from */
	char *http_auth_file; /* "user:crypt-hash" lines; "" = no password */
	char *http_tls_cert;  /* PEM files; both set = HTTPS */
	char *http_tls_key;
	guint http_max_clients;
	guint64 http_max_request;
	guint http_timeout_s;
	/* [analyzer], one section per heuristic, [alerts]. The text lists are owned here;
	 * analyzer's string fields point at them (config_analyzer()). */
	AnalyzerConfig analyzer;
	char *internal_nets;
	char *mail_servers;
	char *smtp_ports;
	char *submission_ports;
	char *login_ports;
	char *resolvers;
	char *allowed_exporters; /* [collector]: prefixes; "" accepts every source */
	/* [sinks]: where alert events go (daemon/sinks.c builds them in this order) */
	char *sink_json;       /* JSON-lines file, "" = none (--alerts adds/overrides it) */
	char *sink_csv;        /* CSV file, "" = none */
	gboolean sink_syslog;  /* local syslog(3) */
	char *syslog_ident;    /* its ident, and the remote messages' APP-NAME */
	char *syslog_facility; /* a facility name: daemon, local0..local7, ... */
	char *sink_remote;     /* "udp://host:port" or "tcp://host:port", "" = none */
	guint remote_queue;    /* TCP events held while the server is away */
	/* [enrich]: country/ASN databases (.mmdb), "" = none (doc/enrichment.md) */
	char *country_db;
	char *asn_db;
	/* [evidence]: IPFIX files of the flows behind each raised/updated alert */
	char *evidence_dir;		/* "" = off */
	guint evidence_max_flows;	/* flows per file (and per host in the flow store) */
	guint evidence_max_age_s;	/* files older are removed; 0 = no age limit */
	guint64 evidence_max_bytes;	/* files beyond this total are removed, oldest first */
	guint64 evidence_memory_cap;	/* bytes for the flow store behind the files */
	/* [history]: per-host readings, events and actions on disk (history/history.h) */
	char *history_dir;		/* "" = off */
	guint history_max_age_s;	/* 0 = no age limit */
	guint64 history_max_bytes;	/* 0 = no size limit */
	guint history_fsync;		/* HistoryFsync: segment, interval, never */
	guint history_queue;		/* records waiting for the writer */
	/* [actions]: exec hooks and webhooks on alert events (daemon/actions.c) */
	char *action_exec;	    /* comma-separated programs, "" = none */
	guint exec_timeout_s;
	guint exec_max_running;
	guint exec_queue;
	guint exec_host_limit;	    /* runs per host per minute, 0 = no limit */
	guint exec_output_lines;
	char *action_webhook;	    /* comma-separated URLs, "" = none */
	char *webhook_header;	    /* "Name: value", "" = none */
	char *webhook_header_file;  /* a file holding that line; wins over webhook_header */
	guint webhook_format;	    /* index into webhook_formats: json, chat */
	char *webhook_ca;	    /* CA file, "" = the system's store */
	guint webhook_timeout_s;
	guint webhook_queue;
	guint webhook_attempts;
	guint webhook_backoff_s;
	char *action_events;	    /* the filter of exec and webhook ("" = all) */
	char *action_reasons;
	char *action_min_severity;
	/* [quarantine]: the nftables set of contained hosts */
	char *quarantine_set;	    /* "FAMILY TABLE SET", "" = off */
	guint quarantine_timeout_s;
	guint quarantine_on_clear;  /* index into on_clear choices: delete, expire */
	char *quarantine_reasons;
	char *quarantine_min_severity;
	char *quarantine_never;	    /* prefixes never quarantined */
	guint quarantine_max_hosts;
	gboolean quarantine_dry_run;
	guint quarantine_queue;
	/* [state]: restart without loss (daemon/statefile.c) */
	/* [group NAME] sections, in file order (strings owned here; analyzer.groups points
	 * at them, config_analyzer()) */
	PolicyGroup *groups;
	guint n_groups;
	char *state_file;	   /* "" = no state kept */
	guint state_interval_s;	   /* snapshot every N seconds besides the one at exit; 0 = exit only */
	guint state_max_age_s;	   /* an older file is not restored */
	/* [cluster]: a spamflow cluster on NATS JetStream (doc/cluster.md); nats "" = one node */
	char *cluster_nats;	    /* comma-separated nats:// URLs */
	char *cluster_node;	    /* this node's name ("" = the host name) */
	char *cluster_roles;	    /* "collector, analyzer" (either or both) */
	char *cluster_alert_group;  /* "" = no sinks here; nodes of one group share the events */
	guint cluster_partitions;
	guint cluster_replicas;
	guint cluster_retention_s;  /* the flow stream's max age */
	guint64 cluster_max_bytes;  /* ... and size */
	guint cluster_snapshot_s;   /* partition snapshots */
	guint cluster_lease_ttl_s;
	guint cluster_batch_ms;	    /* a collector's batch waits at most this long */
	guint64 cluster_batch_bytes;
	guint64 cluster_publish_buffer;
	guint64 cluster_max_snapshot;
	char *cluster_creds;	    /* NATS credentials, as NATS clients take them; "" = none */
	char *cluster_user;
	char *cluster_password_file;
	char *cluster_token_file;
	char *cluster_tls_ca;
	char *cluster_tls_cert;
	char *cluster_tls_key;
} Config;

/* [quarantine] set's "FAMILY TABLE SET" into its words (each NULL to skip); *why says what is
 * wrong. */
gboolean config_parse_nft_set(const char *v, char **family, char **table, char **set,
			      char **why) G_GNUC_WARN_UNUSED_RESULT;

#define CONFIG_ERROR (config_error_quark())
GQuark config_error_quark(void);
typedef enum {
	CONFIG_ERROR_FILE,	/* cannot read the file */
	CONFIG_ERROR_SYNTAX,	/* not INI */
	CONFIG_ERROR_UNKNOWN,	/* unknown section or key */
	CONFIG_ERROR_VALUE,	/* a value that does not parse or is out of range */
	CONFIG_ERROR_DUPLICATE, /* a key set twice in its section */
} ConfigError;

/* Every key at its default. */
Config *config_new(void);
/* Defaults, overridden by the keys in the file. Errors name the file, line, section and
 * key: "/etc/spamflow.conf:12: [collector] rcvbuf: 'abc' is not a number".
 * Besides the sections of the key table, any number of [group NAME] sections (host groups,
 * analyzer policy.h): prefixes = LIST (required); REASON = SHORT/LONG (a reason's
 * thresholds for the group's hosts; one number for a reason with a single threshold);
 * exempt = REASON, ... or all. */
Config *config_new_from_file(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The same from text in memory; name stands for the file name in errors. */
Config *config_new_from_data(const char *data, gssize len, const char *name,
			     GError **error) G_GNUC_WARN_UNUSED_RESULT;
void config_free(Config *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Config, config_free)

/* Every key with its current value, as an INI file that loads back to the same Config. */
char *config_to_string(const Config *cfg);

/* The analyzer's configuration, its lists pointing into cfg (valid while cfg lives). */
const AnalyzerConfig *config_analyzer(Config *cfg);

const char *config_log_level_name(guint level);
/* The GLogLevelFlags at or above the configured level (errors always pass). */
GLogLevelFlags config_log_mask(const Config *cfg);
