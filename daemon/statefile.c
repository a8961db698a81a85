/* The state file's framing: magic, version, write time, tagged sections and a SHA-256 over
 * everything before it. Big-endian throughout.
 *
 *   0   8  "SPFSTATE"
 *   8   4  format version (1)
 *   12  8  written at, Unix ms
 *   20  4  section count (at most STATEFILE_MAX_SECTIONS)
 *   24     per section: tag (4), length (8), bytes
 *   end 32 SHA-256 of every byte before it
 */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "SPFSTATE"
#define FORMAT_VERSION 1
#define HEADER_LEN 24
#define DIGEST_LEN 32

static void
put_be(guint8 *p, guint64 v, guint n)
{
	for (guint i = 0; i < n; i++)
		p[i] = (guint8)(v >> (8 * (n - 1 - i)));
}

static guint64
get_be(const guint8 *p, guint n)
{
	guint64 v = 0;
	for (guint i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static gboolean
write_all(int fd, const guint8 *p, gsize n, const char *path, GError **error)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
				    "state file %s: write: %s", path, g_strerror(e));
			return FALSE;
		}
		p += w;
		n -= (gsize)w;
	}
	return TRUE;
}

gboolean
statefile_write(const char *path, gint64 now_ms, const StateSection *sections, guint n,
		gsize *written, GError **error)
{
	g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
	g_autofree char *dir = g_path_get_dirname(path);
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 head[HEADER_LEN], digest[DIGEST_LEN];
	gsize dlen = sizeof digest;
	gboolean ok = FALSE;
	int fd, e;

	g_return_val_if_fail(n <= STATEFILE_MAX_SECTIONS, FALSE);
	*written = HEADER_LEN + DIGEST_LEN;
	for (guint i = 0; i < n; i++)
		*written += 12 + sections[i].len;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state file %s: %s", tmp, g_strerror(e));
		return FALSE;
	}
	memcpy(head, MAGIC, 8);
	put_be(head + 8, FORMAT_VERSION, 4);
	put_be(head + 12, (guint64)now_ms, 8);
	put_be(head + 20, n, 4);
	g_checksum_update(sum, head, sizeof head);
	if (!write_all(fd, head, sizeof head, tmp, error))
		goto out;
	for (guint i = 0; i < n; i++) {
		guint8 sh[12];
		put_be(sh, sections[i].tag, 4);
		put_be(sh + 4, sections[i].len, 8);
		g_checksum_update(sum, sh, sizeof sh);
		g_checksum_update(sum, sections[i].data, (gssize)sections[i].len);
		if (!write_all(fd, sh, sizeof sh, tmp, error) ||
		    !write_all(fd, sections[i].data, sections[i].len, tmp, error))
			goto out;
	}
	g_checksum_get_digest(sum, digest, &dlen);
	if (!write_all(fd, digest, sizeof digest, tmp, error))
		goto out;
	/* The data is on disk before the name points at it: a crash leaves the old file or
	 * the new one, never a torn one. */
	if (fsync(fd) != 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state file %s: fsync: %s", tmp, g_strerror(e));
		goto out;
	}
	ok = TRUE;
out:
	if (close(fd) != 0 && ok) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state file %s: close: %s", tmp, g_strerror(e));
		ok = FALSE;
	}
	if (ok && rename(tmp, path) != 0) {
		e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state file: rename %s to %s: %s", tmp, path, g_strerror(e));
		ok = FALSE;
	}
	if (!ok) {
		(void)g_unlink(tmp);
		return FALSE;
	}
	/* And the rename itself is durable. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return TRUE;
}

#define BAD(...)                                                                              \
	do {                                                                                  \
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, __VA_ARGS__);            \
		statefile_clear(out);                                                         \
		return FALSE;                                                                 \
	} while (0)

gboolean
statefile_read(const char *path, StateFile *out, GError **error)
{
	g_autoptr(GMappedFile) mf = NULL;
	g_autoptr(GError) err = NULL;
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[DIGEST_LEN];
	gsize dlen = sizeof digest;

	memset(out, 0, sizeof *out);
	mf = g_mapped_file_new(path, FALSE, &err);
	if (mf == NULL) {
		g_set_error(error, G_FILE_ERROR, err->code, "state file %s: %s", path,
			    err->message);
		return FALSE;
	}
	out->file = g_mapped_file_get_bytes(mf);
	gsize len;
	const guint8 *p = g_bytes_get_data(out->file, &len);

	if (len < HEADER_LEN + DIGEST_LEN)
		BAD("state file %s: %zu bytes, shorter than any state file (truncated?)", path,
		    len);
	if (memcmp(p, MAGIC, 8) != 0)
		BAD("state file %s: not a spamflow state file", path);
	if (get_be(p + 8, 4) != FORMAT_VERSION)
		BAD("state file %s: format version %u, this build reads %u", path,
		    (guint)get_be(p + 8, 4), FORMAT_VERSION);
	/* The checksum first: nothing below reads a length that was not written by us. */
	g_checksum_update(sum, p, (gssize)(len - DIGEST_LEN));
	g_checksum_get_digest(sum, digest, &dlen);
	if (memcmp(digest, p + len - DIGEST_LEN, DIGEST_LEN) != 0)
		BAD("state file %s: checksum mismatch (truncated or corrupted)", path);
	out->written_ms = (gint64)get_be(p + 12, 8);
	guint32 n = (guint32)get_be(p + 20, 4);
	if (n > STATEFILE_MAX_SECTIONS)
		BAD("state file %s: %u sections", path, n);
	gsize off = HEADER_LEN, end = len - DIGEST_LEN;
	for (guint32 i = 0; i < n; i++) {
		if (12 > end - off)
			BAD("state file %s: section %u header past the end", path, i);
		guint32 tag = (guint32)get_be(p + off, 4);
		guint64 slen = get_be(p + off + 4, 8);
		off += 12;
		if (slen > end - off)
			BAD("state file %s: section %u length %" G_GUINT64_FORMAT " past the end",
			    path, i, slen);
		out->sections[out->n++] = (StateSection){.tag = tag, .data = p + off, .len = slen};
		off += slen;
	}
	if (off != end)
		BAD("state file %s: %zu bytes after the last section", path, end - off);
	return TRUE;
}

void
statefile_clear(StateFile *sf)
{
	g_clear_pointer(&sf->file, g_bytes_unref);
	sf->n = 0;
}

const StateSection *
statefile_section(const StateFile *sf, guint32 tag)
{
	for (guint i = 0; i < sf->n; i++)
		if (sf->sections[i].tag == tag)
			return &sf->sections[i];
	return NULL;
}

gboolean
statefile_prepare_dir(const char *path, gint64 uid, gint64 gid, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);

	if (g_file_test(dir, G_FILE_TEST_IS_DIR))
		return TRUE;
	if (g_mkdir_with_parents(dir, 0750) != 0) {
		int e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state directory %s: %s", dir, g_strerror(e));
		return FALSE;
	}
	if ((uid >= 0 || gid >= 0) && chown(dir, (uid_t)uid, (gid_t)gid) != 0) {
		int e = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "state directory %s: chown: %s", dir, g_strerror(e));
		return FALSE;
	}
	return TRUE;
}
