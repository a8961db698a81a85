/* The exec hook action: run an admin's program on alert events, FastNetMon-style
 * (raised = ban, cleared = unban). argv: PATH EVENT HOST REASON SEVERITY; standard input:
 * the alert's JSON object (the JSON sink's line, newline-terminated); environment: only
 * PATH=/usr/sbin:/usr/bin:/sbin:/bin, LANG=C.UTF-8 and SPAMFLOW_EVENT, SPAMFLOW_HOST,
 * SPAMFLOW_REASON, SPAMFLOW_SEVERITY; cwd "/", the daemon's user, its own process group.
 *
 * write() never waits: it copies the event into a bounded FIFO queue and returns; the
 * default main context starts the programs (at most max_running at once; the runs of one
 * host never overlap and start in event order), feeds standard input without blocking,
 * reads standard output and error (the first output_lines lines of each run are logged),
 * and reaps each child. After timeout_s the run's process group gets SIGTERM, SIGKILL 2 s
 * later. Counted: started, succeeded, failed (exit status != 0 or killed by a signal other
 * than ours), timed_out, dropped (queue full), rate_limited (more than host_limit raised or
 * updated runs of one host within 60 s), spawn_errors. */
#pragma once

#include "action.h"
#include "sink.h"

#include <glib.h>

#define ACTION_EXEC_KILL_GRACE_MS 2000	 /* SIGTERM, then SIGKILL this much later */
#define ACTION_EXEC_RATE_WINDOW_S 60	 /* host_limit counts runs within this window */
#define ACTION_EXEC_MAX_TRACKED 65536	 /* (host, reason) pairs the filter remembers */
#define ACTION_EXEC_LOG_LINES_PER_MIN 60 /* output lines logged per minute, all runs */
#define ACTION_EXEC_OUTPUT_MAX 4096	 /* bytes of a run's output kept for the log */

typedef struct {
	const char *path;   /* program to run (absolute path) */
	guint timeout_s;    /* then SIGTERM; SIGKILL 2 s later; counted as timed_out */
	guint max_running;  /* children at once */
	guint queue;	    /* events waiting beyond max_running; beyond: dropped, counted */
	guint host_limit;   /* runs per host per minute; 0 = none; cleared never limited */
	guint output_lines; /* first lines of stdout+stderr logged per run */
	ActionFilterSpec filter;
} ActionExecConfig;

/* kind "exec", name path. Fails (the error names the path) when path is not absolute, not a
 * regular file or not executable, or when timeout_s or max_running is 0. A cleared event
 * may wait in a reserve of as many places again as queue: the unban of a host whose ban
 * ran is not lost to a queue full of raised events. */
Sink *action_exec_new(const ActionExecConfig *c, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* For tests and the daemon's stats: children running, events waiting. */
guint action_exec_running(const Sink *s);
guint action_exec_queued(const Sink *s);
/* spamflowctl forget/release: forget that events of (host, reason) ran the program (every
 * reason when reason < 0), so that its cleared event will not run it. */
void action_exec_forget(Sink *s, const guint8 host[16], int reason);
