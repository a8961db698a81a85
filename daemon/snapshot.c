/* The state file's snapshots: at exit and every [state] interval, the daemon's state goes
 * to its file (daemon/statefile.c) through a write function the daemon gives. A periodic
 * snapshot is written by a forked child so that collection does not stop for it; this
 * module forks, collects the child's result, counts and logs. */
#include "snapshot.h"

#include "json.h"

#include <glib-unix.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct Snapshot {
	char *path; /* [state] file as started (a reload cannot move it) */
	SnapshotWriteFunc write;
	gpointer data;
	guint64 snapshots, errors;
	guint64 skipped; /* periodic snapshots not taken: the last one was still writing */
	gint64 last_ms, last_us, last_err_log_us;
	gint64 last_pause_us; /* the main loop's share of the last snapshot (the fork) */
	gsize last_bytes;
	GPid writer;	    /* the forked snapshot writer, or 0 */
	int writer_fd;	    /* its result pipe */
	guint writer_watch; /* its child watch */
	gint64 writer_ms;   /* when it was forked (the snapshot's time) */
	char *restored;	    /* JSON object: what the start restored, or why not */
};

Snapshot *
snapshot_new(const char *path, SnapshotWriteFunc write, gpointer data)
{
	Snapshot *s = g_new0(Snapshot, 1);
	s->path = g_strdup(path);
	s->write = write;
	s->data = data;
	s->writer_fd = -1;
	return s;
}

void
snapshot_free(Snapshot *s)
{
	if (s == NULL)
		return;
	if (s->writer_watch != 0)
		g_source_remove(s->writer_watch);
	if (s->writer_fd >= 0)
		close(s->writer_fd);
	g_free(s->restored);
	g_free(s->path);
	g_free(s);
}

const char *
snapshot_path(const Snapshot *s)
{
	return s->path;
}

void
snapshot_set_restored(Snapshot *s, char *json)
{
	g_free(s->restored);
	s->restored = json;
}

void
snapshot_stats_json(const Snapshot *s, GString *out)
{
	g_string_append(out, ",\"state\":{\"file\":");
	json_quote(out, s->path);
	g_string_append_printf(out,
			       ",\"snapshots\":%" G_GUINT64_FORMAT ",\"errors\":%" G_GUINT64_FORMAT
			       ",\"skipped\":%" G_GUINT64_FORMAT ",\"last_ms\":%" G_GINT64_FORMAT
			       ",\"last_bytes\":%" G_GSIZE_FORMAT
			       ",\"last_write_ms\":%.1f,\"last_pause_ms\":%.1f,\"restored\":%s}",
			       s->snapshots, s->errors, s->skipped, s->last_ms, s->last_bytes,
			       s->last_us / 1000.0, s->last_pause_us / 1000.0,
			       s->restored != NULL ? s->restored : "null");
}

/* A failed snapshot: counted; logged at most every 10 min (always at exit). */
static void
snapshot_failed(Snapshot *s, const char *msg, gboolean at_exit)
{
	gint64 now = g_get_monotonic_time();
	s->errors++;
	if (at_exit || s->last_err_log_us == 0 ||
	    now - s->last_err_log_us >= 600 * G_USEC_PER_SEC) {
		s->last_err_log_us = now;
		g_warning("%s (%" G_GUINT64_FORMAT " failed snapshots so far)", msg,
			  s->errors);
	}
}

static void
snapshot_written(Snapshot *s, gint64 now_ms, gsize bytes, gint64 write_us)
{
	s->snapshots++;
	s->last_ms = now_ms;
	s->last_us = write_us;
	s->last_bytes = bytes;
}

/* Write the state now, on the main loop (at exit, or when a writer cannot be forked). */
void
snapshot_save(Snapshot *s, gboolean at_exit)
{
	g_autoptr(GError) err = NULL;
	gint64 t0 = g_get_monotonic_time();
	gint64 now_ms = g_get_real_time() / 1000;
	gsize bytes = 0;

	if (!s->write(s->path, now_ms, &bytes, s->data, &err)) {
		snapshot_failed(s, err->message, at_exit);
		return;
	}
	snapshot_written(s, now_ms, bytes, g_get_monotonic_time() - t0);
	s->last_pause_us = s->last_us;
	if (at_exit)
		g_message("state saved to %s (%" G_GSIZE_FORMAT " bytes in %.1f ms)",
			  s->path, s->last_bytes, s->last_us / 1000.0);
}

/* What a snapshot writer sends back before it exits: one write, under PIPE_BUF. */
typedef struct {
	gboolean ok;
	guint64 bytes;
	gint64 write_us;
	char msg[512];
} WriterResult;
G_STATIC_ASSERT(sizeof(WriterResult) <= PIPE_BUF);

/* The writer's result, once it has exited (status: its wait status). */
static void
writer_collect(Snapshot *s, int status)
{
	WriterResult r;
	ssize_t n;

	memset(&r, 0, sizeof r);
	do
		n = read(s->writer_fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	close(s->writer_fd);
	s->writer_fd = -1;
	s->writer = 0;
	if (n == (ssize_t)sizeof r && r.ok) {
		snapshot_written(s, s->writer_ms, (gsize)r.bytes, r.write_us);
		return;
	}
	if (n == (ssize_t)sizeof r) {
		r.msg[sizeof r.msg - 1] = '\0';
		snapshot_failed(s, r.msg, FALSE);
		return;
	}
	g_autofree char *msg = g_strdup_printf(
	    "state file %s: the snapshot writer %s %d without a result", s->path,
	    WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	snapshot_failed(s, msg, FALSE);
}

static void
on_writer_exit(GPid pid, gint status, gpointer user_data)
{
	Snapshot *s = user_data;
	(void)pid;
	s->writer_watch = 0;
	writer_collect(s, status);
}

/* Before the exit save: wait for a snapshot writer still at work (one writer at a time). */
void
snapshot_wait(Snapshot *s)
{
	int status = 0;
	if (s->writer == 0)
		return;
	if (s->writer_watch != 0) {
		g_source_remove(s->writer_watch);
		s->writer_watch = 0;
	}
	while (waitpid(s->writer, &status, 0) < 0 && errno == EINTR)
		;
	writer_collect(s, status);
}

/* A periodic snapshot without stopping collection: a forked child writes the state as it
 * was at the fork (copy-on-write) while this process goes on reading datagrams. The main
 * loop pays for the fork only (last_pause_ms), not for building and writing the file (about
 * 1 s per million hosts); and the file's image is built in the child's memory, not in this
 * process's heap. The writer dies with the daemon (PR_SET_PDEATHSIG), so a new daemon never
 * shares the temporary file with an orphan. If it cannot fork, the snapshot is written
 * here. */
void
snapshot_take(Snapshot *s)
{
	int fds[2];
	gint64 t0 = g_get_monotonic_time();
	gint64 now_ms = g_get_real_time() / 1000;
	pid_t parent = getpid();

	if (s->writer != 0) {
		s->skipped++;
		return;
	}
	if (!g_unix_open_pipe(fds, FD_CLOEXEC, NULL)) {
		snapshot_save(s, FALSE);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		snapshot_save(s, FALSE);
		return;
	}
	if (pid == 0) {
		WriterResult r;
		GError *err = NULL;
		gsize bytes = 0;
		gint64 c0 = g_get_monotonic_time();

		close(fds[0]);
		/* the daemon's signal handlers are not this process's business */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(2);
		memset(&r, 0, sizeof r);
		r.ok = s->write(s->path, now_ms, &bytes, s->data, &err);
		r.bytes = bytes;
		r.write_us = g_get_monotonic_time() - c0;
		if (!r.ok)
			g_strlcpy(r.msg, err->message, sizeof r.msg);
		(void)!write(fds[1], &r, sizeof r);
		_exit(r.ok ? 0 : 1);
	}
	close(fds[1]);
	s->writer = pid;
	s->writer_fd = fds[0];
	s->writer_ms = now_ms;
	s->writer_watch = g_child_watch_add(pid, on_writer_exit, s);
	s->last_pause_us = g_get_monotonic_time() - t0;
}
