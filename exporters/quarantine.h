/* The nftables quarantine action: keeps raised offenders in an nftables set (with a timeout)
 * that the admin's own ruleset drops SMTP from. spamflow only maintains the set, through
 * libnftables, from a worker thread; the safety rules (internal networks only, never a
 * listed mail server or a host that looks like one, never a `never` address, at most
 * max_hosts) are checked on the main thread first, and everything done or refused is
 * recorded in the ActionLog. doc/actions.md has the ruleset. */
#pragma once

#include "action.h"
#include "sink.h"

#include <glib.h>

typedef struct {
	const char *family, *table, *set; /* IPv4 hosts go to set; IPv6 hosts to set + "6"
					     (type ipv6_addr) when it exists, else refused */
	guint timeout_s;
	gboolean delete_on_clear; /* on_clear = delete (TRUE) | expire */
	const char *internal_networks, *mail_servers, *never; /* prefix lists */
	guint max_hosts, queue;
	gboolean dry_run;
	ActionFilterSpec filter;
	ActionLog *log; /* not owned; every add/refresh/delete/refusal recorded */
} QuarantineConfig;

#define QUARANTINE_ERROR quarantine_error_quark()
GQuark quarantine_error_quark(void);
typedef enum {
	QUARANTINE_ERROR_CONFIG,     /* a bad name or prefix list */
	QUARANTINE_ERROR_NO_SET,     /* the set is missing or of the wrong type */
	QUARANTINE_ERROR_NFT,	     /* libnftables refused a command */
	QUARANTINE_ERROR_NOT_MEMBER, /* release: the host is not in the set */
} QuarantineError;

/* Checks the set(s) in the kernel unless dry_run (the error prints the nft commands that
 * create them), starts the worker thread. Kind "quarantine", name "FAMILY TABLE SET". */
Sink *quarantine_new(const QuarantineConfig *c, GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean sink_is_quarantine(const Sink *s);
/* The safety lists from [analyzer] after a reload (the analyzer took them: they parse);
 * [quarantine] never needs a restart, as the rest of [quarantine]. FALSE, nothing changed,
 * when a list does not parse or internal_networks is empty. */
gboolean quarantine_set_networks(Sink *s, const char *internal_networks, const char *mail_servers,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* TRUE when s is a quarantine that changes the kernel (not dry_run): the daemon keeps
 * CAP_NET_ADMIN for it (commands_drop_privileges). NULL-safe. */
gboolean quarantine_needs_net_admin(const Sink *s);

/* Appends control reply members ,"set":"...","dry_run":B,"members":[{"host","timeout_s",
 * "expires_s","reason","severity","since_ms"},...] : the set's members read from the kernel
 * (libnftables JSON output), with what spamflow knows of each (reason and since_ms null for
 * a member someone else added). In dry_run, the hosts it would hold. Main thread; one nft
 * call (it waits for the worker's call in progress, if any). */
gboolean quarantine_list(Sink *s, GString *out, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Deletes host from the set now (spamflowctl release; uid: the client's), records
 * "quarantine-release", and keeps it out until its current offence clears: an `updated`
 * of the reasons it was held for does not re-add it, a new `raised` does (a `cleared` of
 * every such reason ends the hold). FALSE with QUARANTINE_ERROR_NOT_MEMBER when the host is
 * not in the set (nothing changes), QUARANTINE_ERROR_NFT when nft refused. In dry_run: the
 * host leaves the would-be members. Main thread; one nft call. */
gboolean quarantine_release(Sink *s, const guint8 host[16], gint64 uid,
			    GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* The offenders in force after the state file was restored. */
typedef struct {
	guint8 host[16];
	AlertReason reason;
	AlertSeverity severity;
	gboolean mta_like; /* the offender's last event said so: refused, as in write() */
} QuarantineWant;

/* At start: make the set agree with the offenders (want, n; one entry per (host, reason)
 * that passes the filter and the safety rules decide): members not wanted are deleted
 * (on_clear = delete) or left to expire, wanted ones missing are added, present ones
 * refreshed. Every change recorded ("quarantine-sync-add", "-refresh", "-delete",
 * "-keep"). Queued to the worker like events. Main thread. */
void quarantine_reconcile(Sink *s, const QuarantineWant *want, guint n);
/* Every interval_s while running, with the offenders now: a member whose offence is still
 * active gets its timeout restarted before it runs out (a bot that keeps going without
 * escalating gets no updated event), quietly (counted in renewed; a failure is recorded).
 * A member whose offence the analyzer dropped without a cleared event (forget, eviction)
 * is not renewed and leaves at its timeout (not_renewed). */
void quarantine_renew(Sink *s, const QuarantineWant *want, guint n, guint interval_s);
