/* Local syslog framing: messages as glibc's syslog(3) writes them to /dev/log, sent on a
 * non-blocking socket of our own (syslog(3) blocks when the syslog daemon stops reading, and
 * that would stall collection). Used by the local syslog sink and by the daemon's own log
 * ([daemon] log = syslog). */
#pragma once

#include <glib.h>
#include <syslog.h>
#include <time.h>

#ifndef _PATH_LOG
#define _PATH_LOG "/dev/log"
#endif

/* <PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG (t in local time), as glibc's syslog(3) writes to
 * /dev/log: RFC 3164 4.1 without the HOSTNAME. */
void syslog_local_format(GString *out, int pri, const char *ident, guint pid, time_t t,
			 const char *msg);

/* A non-blocking socket connected to the local syslog socket at path (datagram, or stream
 * when that is what listens there), its type in *type; -1 with *err set when none. */
int syslog_local_connect(const char *path, int *type, int *err);

typedef enum {
	SYSLOG_LOCAL_SENT,
	SYSLOG_LOCAL_NO_DAEMON,   /* nothing listens at path; *detail = errno */
	SYSLOG_LOCAL_NOT_READING, /* its queue is full (EAGAIN, ENOBUFS); *detail = errno */
	SYSLOG_LOCAL_TOO_LONG,    /* EMSGSIZE */
	SYSLOG_LOCAL_SHORT,       /* stream socket took part of it (closed); *detail = bytes */
	SYSLOG_LOCAL_FAILED,      /* failed again after reconnecting; *detail = errno */
} SyslogLocalSend;

/* Send one formatted message (syslog_local_format()) on *fd without ever waiting,
 * connecting first when *fd < 0; when the daemon went away, connect again and send once
 * more, as syslog(3) does. */
SyslogLocalSend syslog_local_send(const char *path, int *fd, int *type, const GString *msg,
				  int *detail);
