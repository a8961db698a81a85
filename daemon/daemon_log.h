/* The daemon's log: glib's log calls go to standard error or to local syslog, at the
 * [daemon] log_level. */
#pragma once

#include "config.h"

/* Once, before anything logs: every g_message(), g_warning() ... goes through here. Until
 * daemon_log_set_level(), messages and above go to standard error. */
void daemon_log_install(void);
/* [daemon] log and log_level, at start and on reload. */
void daemon_log_set_level(const Config *cfg);
