/* The state file: what the daemon knows (the collector's sessions and templates, the
 * analyzer's windows and offenders) kept across a restart. Written atomically (a temporary
 * file, fsync, rename, fsync of the directory), checked on read (magic, version, lengths and
 * a SHA-256 over the whole file) and never trusted beyond that: each section is parsed by
 * its owner's bounds-checked loader. */
#pragma once

#include <glib.h>

#define STATEFILE_TAG_COLLECTOR 0x434f4c4cu /* "COLL" */
#define STATEFILE_TAG_ANALYZER 0x414e4c5au  /* "ANLZ" */
/* the analyzer's suppressions (analyzer_suppressions_save): a section of their own, restored
 * whatever the file's age (the admin's decisions outlive the windows' [state] max_age);
 * files written before it have none */
#define STATEFILE_TAG_SUPPRESSIONS 0x53555050u /* "SUPP" */
#define STATEFILE_MAX_SECTIONS 8

typedef struct {
	guint32 tag;
	const guint8 *data;
	gsize len;
} StateSection;

/* Write the sections to path atomically: path.tmp in the same directory, fsync, rename over
 * path, fsync the directory; *written gets the file's size. On error path is left as it
 * was. */
gboolean statefile_write(const char *path, gint64 now_ms, const StateSection *sections,
			 guint n, gsize *written, GError **error) G_GNUC_WARN_UNUSED_RESULT;

typedef struct {
	GBytes *file; /* the whole file; sections point into it */
	gint64 written_ms;
	StateSection sections[STATEFILE_MAX_SECTIONS];
	guint n;
} StateFile;

/* Read and check path. FALSE with G_FILE_ERROR_NOENT when it does not exist; any other
 * failure (short, bad magic or version, bad lengths, checksum mismatch) is an error that
 * names what was wrong. */
gboolean statefile_read(const char *path, StateFile *out, GError **error)
	G_GNUC_WARN_UNUSED_RESULT;
void statefile_clear(StateFile *sf);
/* The section with this tag, or NULL. */
const StateSection *statefile_section(const StateFile *sf, guint32 tag);

/* Create the directory of path (mode 0750) if it is missing, owned by uid/gid when those are
 * not -1 (the user the daemon will drop to). */
gboolean statefile_prepare_dir(const char *path, gint64 uid, gint64 gid, GError **error)
	G_GNUC_WARN_UNUSED_RESULT;
