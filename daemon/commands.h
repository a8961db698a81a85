/* The daemon's control commands: renders offenders, history, host, exporters, stats,
 * config and suppressions from the libraries as control reply members, and runs reload,
 * forget, suppress and unsuppress through hooks the daemon provides and the analyzer. All
 * the daemon has to do is fill a CommandsDeps. */
#pragma once

#include "action.h"
#include "analyzer.h"
#include "cluster_node.h"
#include "collector.h"
#include "config.h"
#include "history.h"
#include "control_server.h"
#include "listener.h"
#include "sink.h"

#include <glib.h>

typedef struct {
	Collector *collector;
	Analyzer *analyzer;
	SinkSet *sinks;
	SinkSet *actions;     /* exec, webhook, quarantine (stats); may be NULL */
	ActionLog *action_log; /* what the actions did (history); may be NULL */
	History *history;      /* the store on disk (host since=, history since=); may be NULL */
	Sink *quarantine;     /* in actions, or NULL when [quarantine] is off */
	Listener *listener; /* may be NULL */
	Config *const *cfg; /* the configuration in force; reload replaces *cfg */
	const char *config_path; /* NULL: started without -c */
	AlertExporterName exporter_name;
	gpointer exporter_data;
	/* Reload: load the file, apply it, and on success append the reply members (see
	 * commands_reload_members). Runs the daemon's own reload, the one SIGHUP runs too. */
	gboolean (*reload)(gpointer data, GString *members, GError **error);
	gpointer reload_data;
	const guint64 *reload_counts; /* [0] reloads done, [1] refused; may be NULL */
	/* Country and ASN of a destination for `host` (the enricher); NULL = from the host's
	 * alert events only. FALSE when unknown. */
	gboolean (*geo)(const guint8 dst[16], char country[4], guint32 *asn, gpointer data);
	gpointer geo_data;
	gint64 started_ms;
	/* Counters of optional modules (enrichment, flow store, evidence) as JSON members
	 * ,"name":{...}; NULL = none. */
	void (*module_stats)(gpointer data, GString *out);
	gpointer module_data;
	/* After a suppression changed: the daemon writes its state file at once (a crash must
	 * not forget what an admin decided); NULL = nothing. */
	void (*state_changed)(gpointer data);
	gpointer state_data;
	/* [cluster]: this node's part of a cluster (offenders from the cluster's bucket, host
	 * answered by the partition's owner, cluster); NULL = a daemon on its own */
	ClusterNode *cluster;
} CommandsDeps;

/* The object `offenders` lists for (host, r), from analyzer a (a cluster node's partition
 * analyzer puts it in the cluster's bucket); FALSE when a holds no such offender. */
gboolean commands_offender_json(const CommandsDeps *d, Analyzer *a, const guint8 host[16],
				AlertReason r, GString *out);

/* ControlOps.run over deps (a CommandsDeps that outlives the control server). The HTTP
 * API (httpapi.c) runs the read-only commands through it too, with ctl NULL when the daemon
 * has no control socket (stats then says "control":null). */
gboolean commands_run(ControlServer *ctl, const ControlRequest *req, const ControlPeer *peer,
		      GString *out, gpointer deps, GError **error);

/* `host ADDR [since=]` as a line for the node that owns ADDR (since= relative, so that the
 * other node's clock does not matter). */
void commands_host_line(const ControlRequest *req, GString *line);

/* A cluster node's suppress, unsuppress or forget (ClusterNodeDeps.stored): the control
 * record is stored (seq) or not (error); the deferred reply goes out. */
void commands_cluster_stored(gpointer tag, guint64 seq, const char *error);

/* What changed between two configurations, by "section.key": the keys that took effect on
 * reload and those that need a restart ([collector], [control], [http], [daemon] user and
 * stats_interval). Appends ,"applied":[...],"restart_needed":[...] to out and logs them. */
void commands_reload_members(GString *out, const Config *old_cfg, const Config *new_cfg);
/* TRUE when a key takes effect on reload (section and key as in the file). */
gboolean commands_key_reloadable(const char *section, const char *key);

/* ---- daemon setup around the control socket ---- */

/* The control server as [control] says, answering through commands_run(deps), owned by
 * [daemon] user and [control] group. NULL with no error when socket is empty, or when the
 * built-in default path cannot be used (logged: the daemon runs without control); any
 * failure with a configured path, and an unsafe directory always, is an error. */
ControlServer *commands_control_new(const Config *cfg, CommandsDeps *deps,
			      GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Switch to [daemon] user and its groups (setgid, initgroups, setuid); nothing when empty.
 * Then a process that is not root gives up any capabilities it was started with, all of
 * them, or all but CAP_NET_ADMIN when keep_net_admin (the nftables quarantine: libnftables
 * needs it for every call): kept in the permitted and effective sets only, never inherited
 * (the ambient and inheritable sets are cleared, so exec hooks run without it). Root
 * switching to [daemon] user keeps it across setuid() with PR_SET_KEEPCAPS. */
gboolean commands_drop_privileges(const Config *cfg, gboolean keep_net_admin,
				  GError **error) G_GNUC_WARN_UNUSED_RESULT;
