/* Local syslog framing, shared by the local syslog sink and the daemon's own log: messages
 * in the form glibc's syslog(3) writes to /dev/log, sent on a non-blocking socket of our own
 * so that a syslog daemon that stops reading costs messages, never a wait. */
#include "syslog_local.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Connect a non-blocking socket to the syslog daemon the way syslog(3) reaches it: a
 * datagram socket, or a stream one when connect() says EPROTOTYPE. Fails with ENOENT when
 * there is no socket and ECONNREFUSED when the socket is left over from a daemon that is
 * gone (access(2) sees a writable file there); -1 with *err set then. */
int
syslog_local_connect(const char *path, int *type, int *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};

	if (strlen(path) >= sizeof addr.sun_path) {
		*err = ENAMETOOLONG;
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	for (gsize i = 0; i < G_N_ELEMENTS(types); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			*err = errno;
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
			*type = types[i];
			*err = 0;
			return fd;
		}
		*err = errno;
		close(fd);
		if (*err != EPROTOTYPE)
			break;
	}
	return -1;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void
syslog_local_format(GString *out, int pri, const char *ident, guint pid, time_t t,
			 const char *msg)
{
	struct tm tm;

	/* As glibc's syslog(3) writes to the local socket (RFC 3164 4.1 without HOSTNAME):
	 * <PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG, local time, C-locale month, day padded with
	 * a space. */
	g_string_append_printf(out, "<%d>", pri);
	if (localtime_r(&t, &tm) != NULL && tm.tm_mon >= 0 && tm.tm_mon < 12)
		g_string_append_printf(out, "%s %2d %02d:%02d:%02d ", months[tm.tm_mon], tm.tm_mday,
				       tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		g_string_append(out, "Jan  1 00:00:00 ");
	g_string_append_printf(out, "%s[%u]: %s", ident, pid, msg);
}

SyslogLocalSend
syslog_local_send(const char *path, int *fd, int *type, const GString *msg, int *detail)
{
	for (int attempt = 0;; attempt++) {
		if (*fd < 0 && (*fd = syslog_local_connect(path, type, detail)) < 0)
			return SYSLOG_LOCAL_NO_DAEMON;
		/* on a stream socket the terminating NUL separates messages, as glibc's */
		gsize len = msg->len + (*type == SOCK_STREAM ? 1 : 0);
		ssize_t n = send(*fd, msg->str, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0 && (gsize)n == len)
			return SYSLOG_LOCAL_SENT;
		if (n >= 0) {
			/* stream only: the rest of a cut message would be read as the start of
			 * the next one */
			close(*fd);
			*fd = -1;
			*detail = (int)n;
			return SYSLOG_LOCAL_SHORT;
		}
		*detail = errno;
		if (*detail == EAGAIN || *detail == EWOULDBLOCK || *detail == ENOBUFS)
			return SYSLOG_LOCAL_NOT_READING;
		if (*detail == EMSGSIZE)
			return SYSLOG_LOCAL_TOO_LONG;
		/* the daemon went away (ECONNREFUSED, ENOTCONN ...) or was restarted on a new
		 * socket: connect again and send once more, as syslog(3) does */
		close(*fd);
		*fd = -1;
		if (attempt > 0)
			return SYSLOG_LOCAL_FAILED;
	}
}
