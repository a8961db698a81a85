/* Unit tests for the HTTP routes' checks (daemon/httpapi.c): which evidence file names
 * /evidence/ serves (only the shapes the daemon writes: no slash, no dot first, no "..",
 * nothing else), and how /api/ paths and queries become control request lines (times and
 * addresses pass as one token, nothing can split the line, changing commands are 404). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "control.h"
#include "httpapi.h"

#include <string.h>

static void
test_evidence_names(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "20260115T100225.001Z-smtp-blocked-192.168.1.66.ipfix",
	    "20260115T100225.001Z-smtp-fanout-192.168.1.66-2.ipfix",
	    "20261206T144516.021Z-smtp-fanout-fd00_5a_10__66.ipfix",
	    "20261206T144516.021Z-auth-bruteforce-198.51.100.66-17.ipfix",
	};
	static const char *const bad[] = {
	    "",
	    ".ipfix",
	    "spamflow.conf",
	    ".evidence-20260115T100225.001Z-x",
	    "../20260115T100225.001Z-smtp-fanout-10.0.0.1.ipfix",
	    "20260115T100225.001Z-smtp-fanout-10.0.0.1.ipfix/x",
	    "20260115T100225.001Z-smtp-fanout-/etc/passwd.ipfix",
	    "20260115T100225.001Z-smtp-fanout-..-x.ipfix",
	    "20260115T100225.001Z-smtp-fanout-10.0.0.1.ipfix.tmp",
	    "20260115T100225.001Z-.ipfix",
	    "2026011XT100225.001Z-smtp-fanout-10.0.0.1.ipfix",
	    "20260115T100225.001Z-SMTP-fanout-10.0.0.1.ipfix",
	    "20260115T100225.001Z-smtp fanout-10.0.0.1.ipfix",
	    "20260115T100225.001Z-smtp-fanout-10.0.0.1\n.ipfix",
	    "20260115T100225.001Z-smtp-fanout-"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.ipfix",
	};
	for (guint i = 0; i < G_N_ELEMENTS(good); i++)
		assert_true(httpapi_evidence_name_ok(good[i]));
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (httpapi_evidence_name_ok(bad[i]))
			fail_msg("accepted: '%s'", bad[i]);
	}
}

/* path and query -> the line, or the status */
static guint
line_of(const char *path, const char *const *args, char *out, gsize size)
{
	g_autoptr(GString) line = g_string_new(NULL);
	g_autoptr(GError) err = NULL;
	guint status = 0;

	if (!httpapi_control_line(path, args, line, &status, &err)) {
		assert_non_null(err);
		return status;
	}
	g_strlcpy(out, line->str, size);
	/* and the daemon's parser takes what came through */
	ControlRequest req;
	if (!control_parse(line->str, &req, &err))
		return 400;
	return 200;
}

static void
test_control_lines(void **state)
{
	char out[256];
	(void)state;

	const char *const since[] = {"since", "24h", NULL};
	assert_int_equal(line_of("host/10.0.1.27", since, out, sizeof out), 200);
	assert_string_equal(out, "host 10.0.1.27 since=24h");
	const char *const iso[] = {"since", "2026-12-06T10:00:00+01:00", "host", "fd00::66", NULL};
	assert_int_equal(line_of("history", iso, out, sizeof out), 200);
	assert_string_equal(out, "history since=2026-12-06T10:00:00+01:00 host=fd00::66");
	const char *const limit[] = {"limit", "10", NULL};
	assert_int_equal(line_of("offenders", limit, out, sizeof out), 200);
	assert_string_equal(out, "offenders limit=10");

	/* nothing splits the line, nothing changes the daemon */
	const char *const split[] = {"since", "24h note=x", NULL};
	assert_int_equal(line_of("host/10.0.1.27", split, out, sizeof out), 400);
	const char *const eq[] = {"since", "a=b", NULL};
	assert_int_equal(line_of("history", eq, out, sizeof out), 400);
	const char *const word[] = {"limit", "1:2", NULL};
	assert_int_equal(line_of("history", word, out, sizeof out), 400);
	const char *const unknown[] = {"note", "x", NULL};
	assert_int_equal(line_of("history", unknown, out, sizeof out), 400);
	const char *const badtime[] = {"since", "yesterday", NULL};
	assert_int_equal(line_of("host/10.0.1.27", badtime, out, sizeof out), 400);
	assert_int_equal(line_of("reload", NULL, out, sizeof out), 404);
	assert_int_equal(line_of("forget/10.0.0.1", NULL, out, sizeof out), 404);
	/* not an address: no such host page of the API */
	assert_int_equal(line_of("host/10.0.0.1 x", NULL, out, sizeof out), 404);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_evidence_names),
	    cmocka_unit_test(test_control_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
