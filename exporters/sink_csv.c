/* CSV alert sink: RFC 4180 records appended to a file with one write(2) per event (so an
 * event is on disk, whole, when write returns), a header only in a new or empty file, and
 * reopen on SIGHUP for logrotate. A failed or short write is counted and logged at a
 * limited rate; a partial record is cut back off so the file stays parseable. */
#include "sink_csv.h"

#include "alertfields.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	Sink base;
	int fd;
	gboolean is_stdout;
	gboolean header_done; /* for files that are not regular */
	GString *buf;
} SinkCsv;

static char *header;

const char *
sink_csv_header(void)
{
	if (g_once_init_enter(&header)) {
		GString *h = g_string_new(NULL);
		for (guint i = 0; i < ALERT_FIELDS_N; i++) {
			if (i > 0)
				g_string_append_c(h, ',');
			g_string_append(h, alert_field_names[i]);
		}
		g_string_append(h, "\r\n");
		g_once_init_leave(&header, g_string_free(h, FALSE));
	}
	return header;
}

void
sink_csv_field(GString *out, const char *value, gboolean always_quote)
{
	/* RFC 4180 2.6: fields with line breaks, double quotes or commas are enclosed in
	 * double quotes; 2.7: a double quote inside is escaped by another one. */
	if (!always_quote && strpbrk(value, "\",\r\n") == NULL) {
		g_string_append(out, value);
		return;
	}
	g_string_append_c(out, '"');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '"')
			g_string_append_c(out, '"');
		g_string_append_c(out, *p);
	}
	g_string_append_c(out, '"');
}

typedef struct {
	GString *out;
} Row;

static void
add_field(guint index, const char *name, const char *value, gpointer user_data)
{
	Row *r = user_data;
	/* the multi-valued columns are always quoted: one look says "this is a list" */
	gboolean list = strcmp(name, "top") == 0 || strcmp(name, "exporters") == 0;

	if (index > 0)
		g_string_append_c(r->out, ',');
	if (value != NULL) /* null is an empty, unquoted field */
		sink_csv_field(r->out, value, list);
}

void
sink_csv_format(GString *out, const AlertEvent *ev, const SinkCtx *ctx)
{
	Row r = {out};
	alert_fields(ev, ctx->exporter_name, ctx->user_data, add_field, &r);
	g_string_append(out, "\r\n");
}

/* Write all of data; FALSE with errno set on failure. */
static gboolean
write_all(int fd, const char *data, gsize len, gsize *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, data + *done, len - *done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return FALSE;
		if (n == 0) {
			errno = ENOSPC;
			return FALSE;
		}
		*done += (gsize)n;
	}
	return TRUE;
}

/* Write one whole record (header or event). A short write is cut back off when nothing
 * else has appended since, so a reader never sees half a record glued to the next. */
static gboolean
write_record(SinkCsv *c, const char *data, gsize len, int *err)
{
	struct stat st;
	gboolean have_size = fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode);
	gsize done = 0;

	if (write_all(c->fd, data, len, &done))
		return TRUE;
	*err = errno;
	if (done > 0 && have_size) {
		struct stat now;
		if (fstat(c->fd, &now) == 0 && now.st_size == st.st_size + (off_t)done &&
		    ftruncate(c->fd, st.st_size) != 0)
			*err = errno;
	}
	return FALSE;
}

/* The header goes only into an empty regular file (new, or emptied by copytruncate); into
 * stdout, a pipe or a device once, before the first record. */
static gboolean
ensure_header(SinkCsv *c, int *err)
{
	struct stat st;

	if (fstat(c->fd, &st) != 0) {
		*err = errno;
		return FALSE;
	}
	if (S_ISREG(st.st_mode) ? st.st_size > 0 : c->header_done)
		return TRUE;
	const char *h = sink_csv_header();
	if (!write_record(c, h, strlen(h), err))
		return FALSE;
	c->header_done = TRUE;
	return TRUE;
}

static void
csv_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	SinkCsv *c = (SinkCsv *)s;
	int err = 0;

	g_string_truncate(c->buf, 0);
	sink_csv_format(c->buf, ev, ctx);
	if (ensure_header(c, &err) && write_record(c, c->buf->str, c->buf->len, &err)) {
		s->st.events++;
		return;
	}
	s->st.errors++;
	sink_log_error(s, "write failed: %s", g_strerror(err));
}

static int
open_append(const char *path, GError **error)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "csv alerts file '%s': %s", path, g_strerror(errno));
	return fd;
}

/* A file that already has a different first line was written by another schema (or is not
 * ours): say so once, and still append (never rewrite what is there). */
static void
check_existing_header(SinkCsv *c)
{
	const char *h = sink_csv_header();
	gsize hlen = strlen(h);
	g_autofree char *first = g_malloc(hlen + 1);
	int fd = open(c->base.name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, first, hlen);
	close(fd);
	if (n <= 0)
		return;
	first[n] = '\0';
	/* an older schema is a prefix of this header (columns are only ever added at the end) */
	char *eol = strchr(first, '\n');
	if (eol != NULL)
		*eol = '\0';
	gsize flen = strlen(first);
	if (flen > 0 && first[flen - 1] == '\r')
		first[--flen] = '\0';
	if (flen == 0 || strncmp(first, h, flen) != 0 || (eol == NULL && (gsize)n < hlen))
		g_warning("csv sink '%s': the file's first line is not this version's header "
			  "(or a prefix of it); appending anyway",
			  c->base.name);
}

/* A new file gets its header at once; an existing one is checked and appended to. A failed
 * header write is logged and retried before the next event. */
static void
start_file(SinkCsv *c)
{
	struct stat st;
	int err = 0;

	if (fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		check_existing_header(c);
		return;
	}
	if (!ensure_header(c, &err))
		sink_log_error(&c->base, "cannot write the header: %s", g_strerror(err));
}

static gboolean
csv_reopen(Sink *s, GError **error)
{
	SinkCsv *c = (SinkCsv *)s;
	if (c->is_stdout)
		return TRUE;
	int fd = open_append(s->name, error);
	if (fd < 0)
		return FALSE;
	close(c->fd);
	c->fd = fd;
	c->header_done = FALSE;
	start_file(c);
	return TRUE;
}

static void
csv_free(Sink *s)
{
	SinkCsv *c = (SinkCsv *)s;
	if (c->fd >= 0 && !c->is_stdout)
		close(c->fd);
	if (c->buf != NULL)
		g_string_free(c->buf, TRUE);
	g_free(c);
}

static const SinkOps csv_ops = {
    .kind = "csv", .write = csv_write, .reopen = csv_reopen, .free = csv_free};

Sink *
sink_csv_new(const char *path, GError **error)
{
	SinkCsv *c = g_new0(SinkCsv, 1);
	sink_init(&c->base, &csv_ops, path);
	c->buf = g_string_sized_new(2048);
	c->fd = -1;
	if (strcmp(path, "-") == 0) {
		c->fd = STDOUT_FILENO;
		c->is_stdout = TRUE;
	} else if ((c->fd = open_append(path, error)) < 0) {
		sink_free(&c->base);
		return NULL;
	}
	start_file(c);
	return &c->base;
}
