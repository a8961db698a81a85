/* Unit tests for the HTTP endpoint's password file (daemon/httpauth.c): what loads and what is
 * refused with its line (weak or plain hashes, a user twice, no colon, no user at all), and
 * the check against real crypt(3) hashes (sha512-crypt as `openssl passwd -6` writes it,
 * yescrypt as `mkpasswd -m yescrypt` does): right, wrong, unknown user, remembered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "httpauth.h"

#include <string.h>

/* openssl passwd -6 -salt abc x */
#define SHA512_X                                                                                   \
	"$6$abc$K4v3HcZ8yAmpRfxML6S46NCcqy9r4/"                                                    \
	"KdbQpFvqSWsBf4dgySOEOo1DHJTrmn2BsJK2aNmPN8Tfb826D2o9.z51"
/* echo x | mkpasswd -m yescrypt -s */
#define YESCRYPT_X "$y$j9T$hpdM8Dn6q7ITstsuiGMLL/$6YC4GcYLredSWEFFwUcnEnE/B7DIFM.yMxnFzjiQM.C"

static HttpAuth *
load(const char *text, GError **err)
{
	return httpauth_new_from_data(text, strlen(text), "test.passwd", err);
}

static void
test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
	    {"", "no user:hash"},
	    {"# just this\n", "no user:hash"},
	    {"admin:$1$abc$0123456789abcdef\n", "test.passwd:1: the hash is not"},
	    {"admin:secret\n", "test.passwd:1: the hash is not"},
	    {"# x\nadmin " SHA512_X "\n", "test.passwd:2: not user:hash"},
	    {"a:" SHA512_X "\na:" SHA512_X "\n", "test.passwd:2: user 'a' is named twice"},
	    {":" SHA512_X "\n", "test.passwd:1: the user name"},
	    {"a b:" SHA512_X "\n", "test.passwd:1: the user name"},
	    {"a:$6$abc$K4v3<script>\n", "test.passwd:1: the hash has a character"},
	};

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		g_autoptr(HttpAuth) a = load(bad[i].text, &err);
		assert_null(a);
		assert_non_null(err);
		if (strstr(err->message, bad[i].why) == NULL)
			fail_msg("%s: got '%s', want '%s'", bad[i].text, err->message, bad[i].why);
	}
}

static void
test_check(void **state)
{
	(void)state;
	g_autoptr(GError) err = NULL;
	g_autoptr(HttpAuth) a =
	    load("# scrapers\r\nprom:" SHA512_X "\r\n\n  admin:" YESCRYPT_X "  \n", &err);
	gboolean cached = TRUE;

	assert_non_null(a);
	assert_int_equal(httpauth_n_users(a), 2);
	assert_true(httpauth_check(a, "prom", "x", 0, &cached));
	assert_false(cached);
	assert_true(httpauth_check(a, "prom", "x", 1000, &cached));
	assert_true(cached); /* remembered */
	assert_false(httpauth_check(a, "prom", "y", 1000, &cached));
	assert_false(cached);
	assert_false(httpauth_check(a, "prom", "", 0, NULL));
	assert_false(httpauth_check(a, "nobody", "x", 0, NULL));
	assert_false(httpauth_check(a, "admin", "xx", 0, NULL));
	assert_true(httpauth_check(a, "admin", "x", 0, NULL));
	assert_false(httpauth_check(a, NULL, "x", 0, NULL));
	assert_false(httpauth_check(a, "prom", NULL, 0, NULL));
	/* forgotten after HTTPAUTH_CACHE_S: hashed again, still right */
	gint64 later = 1000 + (gint64)(HTTPAUTH_CACHE_S + 1) * G_USEC_PER_SEC;
	assert_true(httpauth_check(a, "prom", "x", later, &cached));
	assert_false(cached);
	/* one user's remembered password is not another's */
	assert_false(httpauth_check(a, "admin", "x\0", later, &cached) && cached);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
