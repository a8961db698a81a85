/* The daemon's log: glib's log calls go to standard error or to local syslog, at the
 * [daemon] log_level. */
#pragma once

#include "config.h"

/* Once, before anything logs: every g_message(), g_warning() ... goes through here. Until
 * daemon_log_set_level(), messages and above go to standard error. */
void daemon_log_install(void);
/* [daemon] log and log_level, at start and on reload. */
void daemon_log_set_level(const Config *cfg);

/* Replay: each log line carries the capture time clock() returns (Unix ms; 0 = no datagram
 * yet), so a line says when in the capture it happened. NULL: the wall clock again. */
void daemon_log_set_clock(gint64 (*clock)(gpointer data), gpointer data);
/* A status line kept at the bottom of standard error (a terminal's), redrawn below each log
 * line; NULL removes it. */
void daemon_log_status(const char *line);
