/* The exit watchdog (exitwatch.h). */
#include "exitwatch.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *volatile current_step = "stopping";
static volatile unsigned armed_s;

static void
put(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));
	(void)r;
}

/* seconds as decimal text, without stdio */
static void
put_uint(unsigned v)
{
	char buf[12];
	char *p = buf + sizeof buf;
	*--p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	put(p);
}

static void
on_alarm(int sig)
{
	(void)sig;
	put("spamflowd: still stopping after ");
	put_uint(armed_s);
	put(" s, in: ");
	put(current_step);
	put("; aborting instead of hanging (a bug: please report this line)\n");
	signal(SIGABRT, SIG_DFL);
	abort();
}

void
exitwatch_arm(unsigned seconds)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	armed_s = seconds;
	alarm(seconds);
}

void
exitwatch_step(const char *step)
{
	current_step = step;
}

void
exitwatch_disarm(void)
{
	alarm(0);
}
