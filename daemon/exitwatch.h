/* The exit watchdog: once the live daemon's main loop has returned, a stop that has not
 * ended within the armed time is reported on stderr with the step it is in, and the process
 * aborts (a core for the bug report) instead of hanging until the service manager kills it.
 * Async-signal-safe on the reporting side: SIGALRM, write(2), abort(). */
#pragma once

/* Seconds a live daemon's stop may take: below systemd's default TimeoutStopSec (90 s), far
 * above the stops the tests measure (a cluster analyzer whose NATS servers are gone: 2.4-2.6
 * s in cluster-outage). */
#define EXITWATCH_TIMEOUT_S 60

/* Start counting (SIGALRM after `seconds`). */
void exitwatch_arm(unsigned seconds);
/* The step under way, for the report: a string that lives as long as the process. */
void exitwatch_step(const char *step);
/* Stop counting. */
void exitwatch_disarm(void);
