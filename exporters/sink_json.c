/* JSON-lines alert sink: append, flush per event, reopen for log rotation. A write error
 * (disk full, file system gone read-only) is counted and logged at most once a minute; it
 * never stops collection or the other sinks. */
#include "sink_json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct SinkJson {
	char *path;
	FILE *fp;
	gboolean is_stdout;
	SinkStats st;
	gint64 last_error_log_us;
	GString *buf;
};

static FILE *
open_append(const char *path, GError **error)
{
	FILE *fp = fopen(path, "a");
	if (fp == NULL)
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "alerts file '%s': %s", path, g_strerror(errno));
	return fp;
}

SinkJson *
sink_json_new(const char *path, GError **error)
{
	g_autoptr(SinkJson) s = g_new0(SinkJson, 1);
	s->path = g_strdup(path);
	s->buf = g_string_sized_new(2048);
	if (strcmp(path, "-") == 0) {
		s->fp = stdout;
		s->is_stdout = TRUE;
	} else if ((s->fp = open_append(path, error)) == NULL) {
		return NULL;
	}
	return g_steal_pointer(&s);
}

void
sink_json_free(SinkJson *s)
{
	if (s == NULL)
		return;
	if (s->fp != NULL && !s->is_stdout)
		fclose(s->fp);
	else if (s->fp != NULL)
		fflush(s->fp);
	if (s->buf != NULL)
		g_string_free(s->buf, TRUE);
	g_free(s->path);
	g_free(s);
}

void
sink_json_write(SinkJson *s, const AlertEvent *ev, AlertExporterName name, gpointer user_data)
{
	g_string_truncate(s->buf, 0);
	alert_json(s->buf, ev, name, user_data);
	g_string_append_c(s->buf, '\n');
	if (fwrite(s->buf->str, 1, s->buf->len, s->fp) == s->buf->len && fflush(s->fp) == 0) {
		s->st.events++;
		return;
	}
	s->st.errors++;
	clearerr(s->fp);
	gint64 now = g_get_monotonic_time();
	if (now - s->last_error_log_us > 60 * G_USEC_PER_SEC) {
		s->last_error_log_us = now;
		g_warning("alerts file '%s': write failed: %s (%" G_GUINT64_FORMAT
			  " events lost so far)",
			  s->path, g_strerror(errno), s->st.errors);
	}
}

gboolean
sink_json_reopen(SinkJson *s, GError **error)
{
	if (s->is_stdout)
		return TRUE;
	FILE *fp = open_append(s->path, error);
	if (fp == NULL)
		return FALSE;
	fclose(s->fp);
	s->fp = fp;
	s->st.reopens++;
	return TRUE;
}

const SinkStats *
sink_json_stats(const SinkJson *s)
{
	return &s->st;
}
