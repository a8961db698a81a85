/* The one-line summary of an alert event that a person reads: the daemon's log line ("alert "
 * + this), and the text of chat webhooks. */
#pragma once

#include "alert.h"

#include <glib.h>

/* "raised smtp-fanout host=A severity=warning short=60/50 long=... attempts=N failed=N% ...
 * evidence=FILE (sampled ...)": every part the event has something to say for. */
char *alert_summary(const AlertEvent *ev);
