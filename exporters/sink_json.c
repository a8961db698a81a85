/* JSON-lines alert sink: append, flush per event, reopen for log rotation. A write error
 * (disk full, file system gone read-only) is counted and logged at a limited rate; it never
 * stops collection or the other sinks. A partial line is cut back off, as in the csv sink. */
#include "sink_json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

typedef struct {
	Sink base;
	FILE *fp;
	gboolean is_stdout;
	GString *buf;
} SinkJson;

/* Mode 0640 like every file the daemon creates that names internal hosts (the CSV sink,
 * evidence files): fopen() would leave 0644 under the usual umask. */
static FILE *
open_append(const char *path, GError **error)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	FILE *fp = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (fp == NULL) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "alerts file '%s': %s", path, g_strerror(e));
	}
	return fp;
}

static void
json_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	SinkJson *j = (SinkJson *)s;
	struct stat before, after;

	g_string_truncate(j->buf, 0);
	alert_json(j->buf, ev, ctx->exporter_name, ctx->user_data);
	g_string_append_c(j->buf, '\n');
	/* flushed per event, so the buffer is empty: the file size is where this line starts */
	gboolean regular = fstat(fileno(j->fp), &before) == 0 && S_ISREG(before.st_mode);
	errno = 0;
	if (fwrite(j->buf->str, 1, j->buf->len, j->fp) == j->buf->len && fflush(j->fp) == 0) {
		s->st.events++;
		return;
	}
	int e = errno;
	s->st.errors++;
	clearerr(j->fp);
	/* A short write (disk full) left the start of the line: cut it back off, so that the
	 * next line written does not glue onto it and spoil both. */
	if (regular && fstat(fileno(j->fp), &after) == 0 && after.st_size > before.st_size &&
	    after.st_size < before.st_size + (off_t)j->buf->len &&
	    ftruncate(fileno(j->fp), before.st_size) != 0)
		e = errno;
	sink_log_error(s, "write failed: %s", e != 0 ? g_strerror(e) : "short write");
}

static gboolean
json_reopen(Sink *s, GError **error)
{
	SinkJson *j = (SinkJson *)s;
	if (j->is_stdout)
		return TRUE;
	FILE *fp = open_append(s->name, error);
	if (fp == NULL)
		return FALSE;
	fclose(j->fp);
	j->fp = fp;
	return TRUE;
}

static void
json_free(Sink *s)
{
	SinkJson *j = (SinkJson *)s;
	if (j->fp != NULL && !j->is_stdout)
		fclose(j->fp);
	else if (j->fp != NULL)
		fflush(j->fp);
	if (j->buf != NULL)
		g_string_free(j->buf, TRUE);
	g_free(j);
}

static const SinkOps json_ops = {
    .kind = "json", .write = json_write, .reopen = json_reopen, .free = json_free};

Sink *
sink_json_new(const char *path, GError **error)
{
	SinkJson *j = g_new0(SinkJson, 1);
	sink_init(&j->base, &json_ops, path);
	j->buf = g_string_sized_new(2048);
	if (strcmp(path, "-") == 0) {
		j->fp = stdout;
		j->is_stdout = TRUE;
	} else if ((j->fp = open_append(path, error)) == NULL) {
		sink_free(&j->base);
		return NULL;
	}
	return &j->base;
}
