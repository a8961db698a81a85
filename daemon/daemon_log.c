/* The daemon's own log lines: to standard error (glib's default writer) or, with [daemon]
 * log = syslog, to the local syslog socket through syslog_local.c; filtered by [daemon]
 * log_level. */
#include "daemon_log.h"

#include "syslog_local.h"

#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static GLogLevelFlags log_mask =
    G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE;

static gboolean log_to_syslog;

/* [daemon] log = syslog: the daemon's own lines go to /dev/log on a non-blocking socket, as
 * the local syslog sink's do. glibc's syslog(3) blocks when the syslog daemon stops reading,
 * and that would stall collection. Lines that cannot be sent are counted and the next one
 * that can says how many were lost. */
static struct {
	GMutex lock;
	int fd, type;
	guint64 dropped;
} daemon_log = {.fd = -1};

static void
daemon_log_send(int prio, const char *msg)
{
	g_autoptr(GString) m = g_string_new(NULL);
	int err;

	g_mutex_lock(&daemon_log.lock);
	if (daemon_log.dropped > 0)
		g_string_printf(m, "(%" G_GUINT64_FORMAT " earlier log lines lost: the syslog "
				   "daemon was not reading) %s",
				daemon_log.dropped, msg);
	else
		g_string_assign(m, msg);
	g_autoptr(GString) line = g_string_new(NULL);
	syslog_local_format(line, LOG_DAEMON | prio, "spamflowd", (guint)getpid(), time(NULL),
			    m->str);
	if (syslog_local_send(_PATH_LOG, &daemon_log.fd, &daemon_log.type, line, &err) ==
	    SYSLOG_LOCAL_SENT)
		daemon_log.dropped = 0;
	else
		daemon_log.dropped++; /* never wait: a stalled syslog daemon costs lines, not us */
	g_mutex_unlock(&daemon_log.lock);
}

static struct {
	gint64 (*clock)(gpointer data);
	gpointer data;
	char *status; /* shown at the bottom of standard error, or NULL */
} term;

static const char *
level_name(GLogLevelFlags level)
{
	return (level & G_LOG_LEVEL_ERROR)	? "ERROR"
	       : (level & G_LOG_LEVEL_CRITICAL) ? "CRITICAL"
	       : (level & G_LOG_LEVEL_WARNING)	? "WARNING"
	       : (level & G_LOG_LEVEL_MESSAGE)	? "Message"
	       : (level & G_LOG_LEVEL_INFO)	? "INFO"
						: "DEBUG";
}

static const char *
field_message(const GLogField *fields, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			return fields[i].value;
	return NULL;
}

/* Standard error while a replay clock or a status line is set: the line as glib writes it,
 * with the capture time instead of the time of day, and the status line redrawn below. */
static GLogWriterOutput
term_write(GLogLevelFlags level, const GLogField *fields, gsize n)
{
	const char *msg = field_message(fields, n);
	g_autoptr(GString) line = g_string_new(NULL);

	if (msg == NULL)
		return G_LOG_WRITER_UNHANDLED;
	if (term.status != NULL)
		g_string_append(line, "\r\033[K");
	g_string_append_printf(line, "spamflow-%s: ", level_name(level));
	gint64 ms = term.clock != NULL ? term.clock(term.data) : 0;
	if (ms > 0) {
		g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(ms / 1000);
		g_autofree char *hms = t != NULL ? g_date_time_format(t, "%F %T") : NULL;
		g_string_append_printf(line, "%s.%03d (capture time): ", hms != NULL ? hms : "?",
				       (int)(ms % 1000));
	} else {
		g_autoptr(GDateTime) t = g_date_time_new_now_local();
		g_autofree char *hms = g_date_time_format(t, "%T");
		g_string_append_printf(line, "%s.%03d: ", hms, g_date_time_get_microsecond(t) / 1000);
	}
	g_string_append_printf(line, "%s\n", msg);
	if (term.status != NULL)
		g_string_append(line, term.status);
	fputs(line->str, stderr);
	fflush(stderr);
	return G_LOG_WRITER_HANDLED;
}

void
daemon_log_set_clock(gint64 (*clock)(gpointer data), gpointer data)
{
	term.clock = clock;
	term.data = data;
}

void
daemon_log_status(const char *line)
{
	if (line == NULL && term.status == NULL)
		return;
	fputs("\r\033[K", stderr);
	g_free(term.status);
	term.status = g_strdup(line);
	if (term.status != NULL)
		fputs(term.status, stderr);
	fflush(stderr);
}

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	if ((level & log_mask & G_LOG_LEVEL_MASK) == 0)
		return G_LOG_WRITER_HANDLED;
	if (!log_to_syslog && (term.clock != NULL || term.status != NULL))
		return term_write(level, fields, n);
	if (!log_to_syslog)
		return g_log_writer_default(level, fields, n, user_data);
	int prio = (level & G_LOG_LEVEL_ERROR)	    ? LOG_ERR
		   : (level & G_LOG_LEVEL_CRITICAL) ? LOG_CRIT
		   : (level & G_LOG_LEVEL_WARNING)  ? LOG_WARNING
		   : (level & G_LOG_LEVEL_MESSAGE)  ? LOG_NOTICE
		   : (level & G_LOG_LEVEL_INFO)	    ? LOG_INFO
						    : LOG_DEBUG;
	for (gsize i = 0; i < n; i++) {
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0) {
			daemon_log_send(prio, (const char *)fields[i].value);
			return G_LOG_WRITER_HANDLED;
		}
	}
	return G_LOG_WRITER_UNHANDLED;
}

void
daemon_log_set_level(const Config *cfg)
{
	log_to_syslog = cfg->log_target == 1;
	log_mask = config_log_mask(cfg);
	/* g_log_writer_default() drops info and debug unless told otherwise. */
	g_log_set_debug_enabled((log_mask & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)) != 0);
}

void
daemon_log_install(void)
{
	g_log_set_writer_func(log_writer, NULL, NULL);
	g_log_writer_default_set_use_stderr(TRUE);
}
