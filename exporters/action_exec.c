/* The exec hook action (action_exec.h): alert events -> an admin's program, off the hot path.
 * write() filters, rate-limits per host and queues a copy (the JSON line made there); an
 * idle source on the default main context spawns, fd sources feed standard input and read
 * the output, a child watch reaps and counts. Nothing here waits for a child except free()
 * at exit, after SIGKILL. */
#include "action_exec.h"

#include "flow.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	AlertKind event;
	AlertReason reason;
	AlertSeverity severity;
	guint8 host[16];
	char *json; /* the JSON sink's line, '\n'-terminated */
	gsize json_len;
} ExecJob;

typedef struct ActionExec ActionExec;

typedef struct {
	ActionExec *x;
	ExecJob *job;
	GPid pid; /* also the process group (child_setup) */
	guint child_id, in_id, out_id, term_id, kill_id;
	int in_fd, out_fd;
	gsize in_off;
	GString *out; /* the first ACTION_EXEC_OUTPUT_MAX bytes of stdout + stderr */
	gboolean timed_out;
} ExecRun;

/* Runs of one host within the rate window: a ring of start times, host_limit long. */
typedef struct {
	guint8 host[16];
	guint n, head;
	gint64 t[];
} HostRate;

struct ActionExec {
	Sink base;
	char *path;
	guint timeout_s, max_running, queue_max, host_limit, output_lines;
	ActionFilter *filter;
	GQueue queue;	    /* ExecJob, oldest first */
	GPtrArray *running; /* ExecRun */
	guint start_id;	    /* idle source: start queued jobs */
	GHashTable *rate;   /* HostRate.host -> HostRate */
	gint64 rate_pruned_us;
	GString *buf;
	guint64 started, succeeded, failed, timed_out, dropped, rate_limited, spawn_errors;
	guint64 output_suppressed;
	gboolean overflow_logged;
	gint64 out_window_us; /* the output log budget's minute */
	guint out_logged, out_suppressed_window;
	gint64 fail_log_us, timeout_log_us, spawn_log_us, drop_log_us, rate_log_us;
};

static void exec_schedule(ActionExec *x);

/* ---- logs ---- */

/* One warning per category per minute: a failing or flapping script must not flood. */
static void G_GNUC_PRINTF(3, 4) exec_warn(ActionExec *x, gint64 *last, const char *fmt, ...)
{
	gint64 now = g_get_monotonic_time();
	va_list ap;

	if (*last != 0 && now - *last < 60 * G_USEC_PER_SEC)
		return;
	*last = now;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_warning("exec action '%s': %s (so far: failed %" G_GUINT64_FORMAT
		  ", timed out %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT
		  ", rate-limited %" G_GUINT64_FORMAT ", spawn errors %" G_GUINT64_FORMAT ")",
		  x->path, msg, x->failed, x->timed_out, x->dropped, x->rate_limited,
		  x->spawn_errors);
}

/* Takes one line of the log budget; FALSE (counted) when this minute's is spent. */
static gboolean
output_budget(ActionExec *x)
{
	gint64 now = g_get_monotonic_time();

	if (x->out_window_us == 0 || now - x->out_window_us >= 60 * G_USEC_PER_SEC) {
		if (x->out_suppressed_window > 0)
			g_message("exec '%s': %u output lines not logged in the last minute "
				  "(at most %u a minute)",
				  x->path, x->out_suppressed_window, ACTION_EXEC_LOG_LINES_PER_MIN);
		x->out_window_us = now;
		x->out_logged = 0;
		x->out_suppressed_window = 0;
	}
	if (x->out_logged < ACTION_EXEC_LOG_LINES_PER_MIN) {
		x->out_logged++;
		return TRUE;
	}
	x->out_suppressed_window++;
	x->output_suppressed++;
	return FALSE;
}

/* The first output_lines lines of the run's output, printable, each at most 200 bytes. */
static void
log_output(ExecRun *r, const char *host)
{
	ActionExec *x = r->x;
	g_autofree char *text = g_utf8_make_valid(r->out->str, (gssize)r->out->len);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	guint n = 0;

	for (guint i = 0; lines[i] != NULL && n < x->output_lines; i++) {
		char *l = lines[i];
		gsize len = strlen(l);
		if (len == 0 && lines[i + 1] == NULL)
			break; /* after the last '\n' */
		for (char *p = l; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		if (len > 200) {
			const char *end = g_utf8_find_prev_char(l, l + 200);
			l[end != NULL ? end - l : 200] = '\0';
		}
		n++;
		if (output_budget(x))
			g_message("exec '%s' %s %s: %s", x->path, alert_kind_name(r->job->event),
				  host, l);
	}
}

/* ---- the per-host rate limit ---- */

static guint
host_hash(gconstpointer p)
{
	const guint8 *h = p;
	guint v = 2166136261u;
	for (guint i = 0; i < 16; i++)
		v = (v ^ h[i]) * 16777619u;
	return v;
}

static gboolean
host_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 16) == 0;
}

static gint64
rate_newest(const ActionExec *x, const HostRate *r)
{
	return r->t[(r->head + x->host_limit - 1) % x->host_limit];
}

/* Hosts without a run in the window are forgotten once a window. */
static void
rate_prune(ActionExec *x, gint64 now)
{
	GHashTableIter it;
	gpointer v;

	x->rate_pruned_us = now;
	g_hash_table_iter_init(&it, x->rate);
	while (g_hash_table_iter_next(&it, NULL, &v))
		if (now - rate_newest(x, v) >= ACTION_EXEC_RATE_WINDOW_S * G_USEC_PER_SEC)
			g_hash_table_iter_remove(&it);
}

/* May this host run now? The oldest of its last host_limit runs is out of the window. */
static gboolean
rate_allow(ActionExec *x, const guint8 host[16], gint64 now)
{
	if (x->host_limit == 0)
		return TRUE;
	if (now - x->rate_pruned_us >= ACTION_EXEC_RATE_WINDOW_S * G_USEC_PER_SEC)
		rate_prune(x, now);
	HostRate *r = g_hash_table_lookup(x->rate, host);
	return r == NULL || r->n < x->host_limit ||
	       now - r->t[r->head] >= ACTION_EXEC_RATE_WINDOW_S * G_USEC_PER_SEC;
}

static void
rate_take(ActionExec *x, const guint8 host[16], gint64 now)
{
	if (x->host_limit == 0)
		return;
	HostRate *r = g_hash_table_lookup(x->rate, host);
	if (r == NULL) {
		/* bounded by the analyzer's hosts; and pruned anyway past this many */
		if (g_hash_table_size(x->rate) >= ACTION_EXEC_MAX_TRACKED)
			rate_prune(x, now);
		r = g_malloc0(sizeof *r + x->host_limit * sizeof r->t[0]);
		memcpy(r->host, host, 16);
		g_hash_table_insert(x->rate, r->host, r);
	}
	r->t[r->head] = now;
	r->head = (r->head + 1) % x->host_limit;
	if (r->n < x->host_limit)
		r->n++;
}

/* ---- one run ---- */

static void
job_free(ExecJob *j)
{
	if (j == NULL)
		return;
	g_free(j->json);
	g_free(j);
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
remove_source(guint *id)
{
	if (*id != 0)
		g_source_remove(*id);
	*id = 0;
}

static void
run_free(ExecRun *r)
{
	remove_source(&r->child_id);
	remove_source(&r->in_id);
	remove_source(&r->out_id);
	remove_source(&r->term_id);
	remove_source(&r->kill_id);
	close_fd(&r->in_fd);
	close_fd(&r->out_fd);
	if (r->out != NULL)
		g_string_free(r->out, TRUE);
	job_free(r->job);
	g_free(r);
}

/* write(2) to the child's stdin pipe without SIGPIPE, whatever the daemon's disposition of
 * it: blocked in this thread around the call, and a SIGPIPE we caused taken off the pending
 * set (a pipe write raises it in the writing thread). */
static gssize
write_nosigpipe(int fd, const char *buf, gsize len, int *err)
{
	sigset_t pipe_set, old, pending;
	struct timespec zero = {0, 0};

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	gboolean was_pending = sigismember(&pending, SIGPIPE);
	gssize n = write(fd, buf, len);
	*err = errno;
	if (n < 0 && *err == EPIPE && !was_pending)
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return n;
}

static gboolean on_stdin(gint fd, GIOCondition cond, gpointer user_data);

/* Feed the JSON line; a child that does not read gets it into the pipe buffer or not at
 * all (EPIPE: it closed stdin or exited), never at our cost. */
static void
feed_stdin(ExecRun *r)
{
	while (r->in_fd >= 0 && r->in_off < r->job->json_len) {
		int e = 0;
		gssize n = write_nosigpipe(r->in_fd, r->job->json + r->in_off,
					   r->job->json_len - r->in_off, &e);
		if (n > 0) {
			r->in_off += (gsize)n;
			continue;
		}
		if (n < 0 && e == EINTR)
			continue;
		if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
			if (r->in_id == 0)
				r->in_id = g_unix_fd_add(r->in_fd, G_IO_OUT | G_IO_ERR | G_IO_HUP,
							 on_stdin, r);
			return;
		}
		break; /* EPIPE or worse: the child does not want it */
	}
	remove_source(&r->in_id);
	close_fd(&r->in_fd); /* end of input */
}

static gboolean
on_stdin(gint fd, GIOCondition cond, gpointer user_data)
{
	ExecRun *r = user_data;
	(void)fd;
	(void)cond;
	r->in_id = 0; /* feed_stdin() adds it again when the pipe is still full */
	feed_stdin(r);
	return G_SOURCE_REMOVE;
}

/* Read what the output pipe holds, at most 64 KiB a call (a child writing without pause
 * must not hold the main loop); keep the first bytes, drop the rest (a chatty child must
 * not stall on a full pipe). FALSE at end of file or error: the pipe is closed. */
static gboolean
drain_output(ExecRun *r)
{
	char buf[4096];

	for (guint reads = 0; r->out_fd >= 0 && reads < 16; reads++) {
		gssize n = read(r->out_fd, buf, sizeof buf);
		if (n > 0) {
			gsize room =
			    ACTION_EXEC_OUTPUT_MAX - MIN(r->out->len, ACTION_EXEC_OUTPUT_MAX);
			g_string_append_len(r->out, buf, (gssize)MIN((gsize)n, room));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TRUE;
		close_fd(&r->out_fd);
	}
	return r->out_fd >= 0;
}

static gboolean
on_output(gint fd, GIOCondition cond, gpointer user_data)
{
	ExecRun *r = user_data;
	(void)fd;
	(void)cond;
	if (drain_output(r))
		return G_SOURCE_CONTINUE;
	r->out_id = 0;
	return G_SOURCE_REMOVE;
}

static gboolean
on_kill(gpointer user_data)
{
	ExecRun *r = user_data;
	r->kill_id = 0;
	kill(-r->pid, SIGKILL);
	return G_SOURCE_REMOVE;
}

static gboolean
on_timeout(gpointer user_data)
{
	ExecRun *r = user_data;
	r->term_id = 0;
	r->timed_out = TRUE;
	kill(-r->pid, SIGTERM);
	r->kill_id = g_timeout_add(ACTION_EXEC_KILL_GRACE_MS, on_kill, r);
	return G_SOURCE_REMOVE;
}

/* The child is gone (the watch reaped it): count, log, and make room for the next. */
static void
on_child_exit(GPid pid, gint status, gpointer user_data)
{
	ExecRun *r = user_data;
	ActionExec *x = r->x;
	const ExecJob *j = r->job;
	char host[64];

	r->child_id = 0;
	flow_addr_str(j->host, host, sizeof host);
	/* what it wrote before it exited is in the pipe (up to 64 KiB: the log keeps 4) */
	drain_output(r);
	if (r->timed_out) {
		/* the group may still hold children that ignored SIGTERM: the group's id stays
		 * taken while any of them lives, so this reaches only them */
		kill(-pid, SIGKILL);
		x->timed_out++;
		exec_warn(x, &x->timeout_log_us,
			  "%s %s %s: no exit within %u s, killed (SIGTERM, then SIGKILL after "
			  "%u ms)",
			  alert_kind_name(j->event), host, alert_reason_name(j->reason),
			  x->timeout_s, ACTION_EXEC_KILL_GRACE_MS);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		x->succeeded++;
	} else {
		x->failed++;
		if (WIFEXITED(status))
			exec_warn(x, &x->fail_log_us, "%s %s %s: exited with status %d",
				  alert_kind_name(j->event), host, alert_reason_name(j->reason),
				  WEXITSTATUS(status));
		else
			exec_warn(x, &x->fail_log_us, "%s %s %s: killed by signal %d (%s)",
				  alert_kind_name(j->event), host, alert_reason_name(j->reason),
				  WTERMSIG(status), g_strsignal(WTERMSIG(status)));
	}
	x->base.st.errors = x->failed + x->timed_out + x->spawn_errors;
	if (x->output_lines > 0 && r->out->len > 0)
		log_output(r, host);
	g_spawn_close_pid(pid);
	g_ptr_array_remove_fast(x->running, r);
	run_free(r);
	exec_schedule(x);
}

/* In the child, before exec: its own process group (the timeout signals the whole script,
 * not only its shell), default SIGPIPE (the daemon's gio ignores it, and an ignored signal
 * would stay ignored across exec), no blocked signals. Async-signal-safe calls only. */
static void
child_setup(gpointer user_data)
{
	struct sigaction dfl;
	sigset_t none;

	(void)user_data;
	setpgid(0, 0);
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void
run_start(ActionExec *x, ExecJob *j)
{
	char host[64];
	int out[2];
	g_autoptr(GError) err = NULL;

	flow_addr_str(j->host, host, sizeof host);
	const char *argv[] = {x->path,
			      alert_kind_name(j->event),
			      host,
			      alert_reason_name(j->reason),
			      alert_severity_name(j->severity),
			      NULL};
	g_autofree char *e_event = g_strconcat("SPAMFLOW_EVENT=", argv[1], NULL);
	g_autofree char *e_host = g_strconcat("SPAMFLOW_HOST=", argv[2], NULL);
	g_autofree char *e_reason = g_strconcat("SPAMFLOW_REASON=", argv[3], NULL);
	g_autofree char *e_severity = g_strconcat("SPAMFLOW_SEVERITY=", argv[4], NULL);
	const char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
			      "LANG=C.UTF-8",
			      e_event,
			      e_host,
			      e_reason,
			      e_severity,
			      NULL};

	/* stdout and stderr into one pipe: their lines stay in the order written */
	if (pipe2(out, O_CLOEXEC) != 0) {
		int e = errno;
		x->spawn_errors++;
		x->base.st.errors++;
		exec_warn(x, &x->spawn_log_us, "%s %s: cannot make a pipe: %s", argv[1], host,
			  g_strerror(e));
		job_free(j);
		return;
	}
	ExecRun *r = g_new0(ExecRun, 1);
	r->x = x;
	r->job = j;
	r->in_fd = -1;
	r->out_fd = out[0];
	r->out = g_string_new(NULL);
	gboolean ok = g_spawn_async_with_pipes_and_fds(
	    "/", argv, envp, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_CLOEXEC_PIPES, child_setup, NULL,
	    -1, out[1], out[1], NULL, NULL, 0, &r->pid, &r->in_fd, NULL, NULL, &err);
	close(out[1]);
	if (!ok) {
		x->spawn_errors++;
		x->base.st.errors++;
		exec_warn(x, &x->spawn_log_us, "%s %s: cannot run: %s", argv[1], host,
			  err->message);
		r->in_fd = -1;
		run_free(r);
		return;
	}
	x->started++;
	g_ptr_array_add(x->running, r);
	g_unix_set_fd_nonblocking(r->in_fd, TRUE, NULL);
	g_unix_set_fd_nonblocking(r->out_fd, TRUE, NULL);
	r->child_id = g_child_watch_add(r->pid, on_child_exit, r);
	r->out_id = g_unix_fd_add(r->out_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_output, r);
	r->term_id =
	    g_timeout_add_full(G_PRIORITY_DEFAULT, x->timeout_s * 1000, on_timeout, r, NULL);
	feed_stdin(r);
}

static gboolean
host_running(const ActionExec *x, const guint8 host[16])
{
	for (guint i = 0; i < x->running->len; i++) {
		const ExecRun *r = g_ptr_array_index(x->running, i);
		if (memcmp(r->job->host, host, 16) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Start the oldest waiting jobs whose host has no run going, while there is room. */
static gboolean
on_start(gpointer user_data)
{
	ActionExec *x = user_data;

	x->start_id = 0;
	GList *l = x->queue.head;
	while (l != NULL && x->running->len < x->max_running) {
		GList *next = l->next;
		ExecJob *j = l->data;
		if (!host_running(x, j->host)) {
			g_queue_delete_link(&x->queue, l);
			run_start(x, j);
		}
		l = next;
	}
	return G_SOURCE_REMOVE;
}

static void
exec_schedule(ActionExec *x)
{
	if (x->start_id != 0 || g_queue_is_empty(&x->queue) || x->running->len >= x->max_running)
		return;
	/* default priority, not idle: under a steady packet load an idle source would wait */
	x->start_id = g_idle_add_full(G_PRIORITY_DEFAULT, on_start, x, NULL);
}

/* ---- the sink ---- */

/* The hot path: filter, limit, copy, queue; the main loop does the rest. */
static void
exec_write(Sink *s, const AlertEvent *ev, const SinkCtx *ctx)
{
	ActionExec *x = (ActionExec *)s;
	gint64 now = g_get_monotonic_time();
	gboolean cleared = ev->event == ALERT_CLEARED;
	char host[64];

	if (!action_filter_pass(x->filter, ev))
		return;
	if (!cleared && !rate_allow(x, ev->host, now)) {
		x->rate_limited++;
		exec_warn(x, &x->rate_log_us,
			  "%s %s %s: more than %u runs for the host within %d s, not run",
			  alert_kind_name(ev->event), flow_addr_str(ev->host, host, sizeof host),
			  alert_reason_name(ev->reason), x->host_limit, ACTION_EXEC_RATE_WINDOW_S);
		return;
	}
	/* queue_max waiting beyond the free places; cleared events have a reserve as big */
	guint room = x->queue_max + (x->max_running - MIN(x->running->len, x->max_running));
	if (cleared)
		room += x->queue_max;
	if (x->queue.length >= room) {
		x->dropped++;
		s->st.dropped++;
		flow_addr_str(ev->host, host, sizeof host);
		if (!x->overflow_logged) {
			x->overflow_logged = TRUE;
			x->drop_log_us = now;
			g_warning("exec action '%s': queue full (%u running, %u waiting): %s %s "
				  "dropped; further drops are counted in stats and logged at most "
				  "once a minute",
				  x->path, x->running->len, x->queue.length,
				  alert_kind_name(ev->event), host);
		} else {
			exec_warn(x, &x->drop_log_us, "queue full (%u waiting): %s %s dropped",
				  x->queue.length, alert_kind_name(ev->event), host);
		}
		return;
	}
	if (!cleared)
		rate_take(x, ev->host, now);
	g_string_truncate(x->buf, 0);
	alert_json(x->buf, ev, ctx->exporter_name, ctx->user_data);
	g_string_append_c(x->buf, '\n');
	ExecJob *j = g_new0(ExecJob, 1);
	j->event = ev->event;
	j->reason = ev->reason;
	j->severity = ev->severity;
	memcpy(j->host, ev->host, 16);
	j->json = g_memdup2(x->buf->str, x->buf->len);
	j->json_len = x->buf->len;
	g_queue_push_tail(&x->queue, j);
	s->st.events++;
	exec_schedule(x);
}

/* (dropped is the sink's common counter: not repeated here, one JSON key once) */
static void
exec_stats_json(const Sink *s, GString *out)
{
	const ActionExec *x = (const ActionExec *)s;
	g_string_append_printf(
	    out,
	    "\"started\":%" G_GUINT64_FORMAT ",\"succeeded\":%" G_GUINT64_FORMAT
	    ",\"failed\":%" G_GUINT64_FORMAT ",\"timed_out\":%" G_GUINT64_FORMAT
	    ",\"rate_limited\":%" G_GUINT64_FORMAT
	    ",\"spawn_errors\":%" G_GUINT64_FORMAT ",\"running\":%u,\"queued\":%u"
	    ",\"output_lines_not_logged\":%" G_GUINT64_FORMAT ",",
	    x->started, x->succeeded, x->failed, x->timed_out, x->rate_limited, x->spawn_errors, x->running->len, x->queue.length, x->output_suppressed);
	action_filter_stats_json(x->filter, out);
}

/* SIGKILL every run's process group and reap it (exit, or free): a SIGKILLed process
 * is gone at once, so the wait is short. */
static guint
kill_all(ActionExec *x)
{
	guint n = x->running->len + x->queue.length;

	remove_source(&x->start_id);
	while (x->running->len > 0) {
		ExecRun *r = g_ptr_array_steal_index_fast(x->running, x->running->len - 1);
		remove_source(&r->child_id);
		kill(-r->pid, SIGKILL);
		while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
			;
		g_spawn_close_pid(r->pid);
		run_free(r);
	}
	g_queue_clear_full(&x->queue, (GDestroyNotify)job_free);
	return n;
}

static gboolean
wake(gpointer user_data)
{
	(void)user_data;
	return G_SOURCE_REMOVE;
}

/* At exit: let the runs finish and the queue drain within timeout_ms; then kill what is
 * left. Returns the events not run to the end. */
static guint
exec_flush(Sink *s, guint timeout_ms)
{
	ActionExec *x = (ActionExec *)s;
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (!g_queue_is_empty(&x->queue) || x->running->len > 0) {
		gint64 left = deadline - g_get_monotonic_time();
		if (left <= 0)
			break;
		/* wake up at least every 50 ms to look at the clock */
		GSource *t = g_timeout_source_new((guint)MIN(left / 1000 + 1, 50));
		g_source_set_callback(t, wake, NULL, NULL);
		g_source_attach(t, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(t);
		g_source_unref(t);
	}
	guint left = kill_all(x);
	if (left > 0)
		g_warning("exec action '%s': %u runs killed or not started at exit", x->path, left);
	return left;
}

static void
exec_free(Sink *s)
{
	ActionExec *x = (ActionExec *)s;
	kill_all(x);
	g_ptr_array_unref(x->running);
	g_hash_table_unref(x->rate);
	action_filter_free(x->filter);
	g_string_free(x->buf, TRUE);
	g_free(x->path);
	g_free(x);
}

static void
exec_forget_host(Sink *s, const guint8 host[16])
{
	action_filter_forget(((ActionExec *)s)->filter, host, -1);
}

static const SinkOps exec_ops = {.kind = "exec",
				 .write = exec_write,
				 .stats_json = exec_stats_json,
				 .flush = exec_flush,
				 .free = exec_free,
				 .forget = exec_forget_host};

Sink *
action_exec_new(const ActionExecConfig *c, GError **error)
{
	const char *path = c->path != NULL ? c->path : "";

	if (!g_path_is_absolute(path)) {
		g_set_error(error, ACTION_ERROR, 0,
			    "exec '%s': not an absolute path (write /usr/local/bin/...)", path);
		return NULL;
	}
	if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_set_error(error, ACTION_ERROR, 0, "exec '%s': no such file", path);
		return NULL;
	}
	if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
		g_set_error(error, ACTION_ERROR, 0, "exec '%s': not a regular file", path);
		return NULL;
	}
	if (access(path, X_OK) != 0) {
		int e = errno;
		g_set_error(error, ACTION_ERROR, 0, "exec '%s': not executable by this user: %s",
			    path, g_strerror(e));
		return NULL;
	}
	if (c->timeout_s == 0 || c->timeout_s > 24 * 3600) {
		g_set_error(error, ACTION_ERROR, 0,
			    "exec '%s': timeout %u s out of range (1-86400 s)", path, c->timeout_s);
		return NULL;
	}
	if (c->max_running == 0) {
		g_set_error(error, ACTION_ERROR, 0,
			    "exec '%s': max_running is 0: nothing could ever run", path);
		return NULL;
	}
	ActionExec *x = g_new0(ActionExec, 1);
	sink_init(&x->base, &exec_ops, path);
	x->path = g_strdup(path);
	x->timeout_s = c->timeout_s;
	x->max_running = c->max_running;
	x->queue_max = c->queue;
	x->host_limit = c->host_limit;
	x->output_lines = c->output_lines;
	x->filter = action_filter_new(&c->filter, ACTION_EXEC_MAX_TRACKED);
	g_queue_init(&x->queue);
	x->running = g_ptr_array_new();
	x->rate = g_hash_table_new_full(host_hash, host_equal, NULL, g_free);
	x->rate_pruned_us = g_get_monotonic_time();
	x->buf = g_string_sized_new(2048);
	return &x->base;
}

guint
action_exec_running(const Sink *s)
{
	return s != NULL && s->ops == &exec_ops ? ((const ActionExec *)s)->running->len : 0;
}

guint
action_exec_queued(const Sink *s)
{
	return s != NULL && s->ops == &exec_ops ? ((const ActionExec *)s)->queue.length : 0;
}

void
action_exec_forget(Sink *s, const guint8 host[16], int reason)
{
	if (s != NULL && s->ops == &exec_ops)
		action_filter_forget(((ActionExec *)s)->filter, host, reason);
}
