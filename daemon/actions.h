/* The daemon's actions from its configuration: [actions] exec hooks and webhooks, and
 * [quarantine] (the nftables set). doc/actions.md says what each does. */
#pragma once

#include "action.h"
#include "config.h"
#include "sink.h"

typedef struct {
	SinkSet *set;	  /* every action, in a fixed order: exec, webhook, quarantine */
	Sink *quarantine; /* in set, or NULL when [quarantine] set is empty */
} Actions;

/* Build the actions; fails naming the key when one cannot be made (a program that is not
 * executable, a bad URL, an unreadable header file, a missing nftables set). log records
 * what the quarantine does (not owned). dry_quarantine: force [quarantine] dry_run (a
 * replay acts on a capture's past). An empty configuration gives an empty set. */
gboolean actions_from_config(Actions *out, const Config *cfg, ActionLog *log,
			     gboolean dry_quarantine, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void actions_clear(Actions *a);
