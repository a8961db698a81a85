/* Unit tests for the exit watchdog (daemon/exitwatch.c), in forked children: a stop that
 * does not end within the armed time is told on stderr with its step, and the process
 * aborts; a disarmed watchdog leaves the process alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitwatch.h"

/* Runs fn in a child with its stderr into a pipe; returns the wait status, *err what it
 * wrote. */
static int
in_child(void (*fn)(void), char **err)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		fn();
		_exit(0);
	}
	close(fds[1]);
	GString *s = g_string_new(NULL);
	char buf[512];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		g_string_append_len(s, buf, n);
	close(fds[0]);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*err = g_string_free(s, FALSE);
	return status;
}

static void
stuck(void)
{
	exitwatch_arm(1);
	exitwatch_step("the test's stuck step");
	sleep(20); /* SIGALRM ends it after 1 s */
	exitwatch_step("past the sleep");
}

static void
disarmed(void)
{
	exitwatch_arm(1);
	exitwatch_step("a step that ends");
	exitwatch_disarm();
	sleep(2);
}

static void
test_stuck_aborts(void **state)
{
	(void)state;
	g_autofree char *err = NULL;
	gint64 t0 = g_get_monotonic_time();
	int st = in_child(stuck, &err);
	gint64 took = g_get_monotonic_time() - t0;
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	assert_string_equal(err, "spamflowd: still stopping after 1 s, in: the test's stuck step; "
				 "aborting instead of hanging (a bug: please report this line)\n");
	assert_true(took >= G_USEC_PER_SEC && took < 10 * G_USEC_PER_SEC);
}

static void
test_disarmed(void **state)
{
	(void)state;
	g_autofree char *err = NULL;
	int st = in_child(disarmed, &err);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(err, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stuck_aborts),
	    cmocka_unit_test(test_disarmed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
