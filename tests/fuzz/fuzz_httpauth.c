/* libFuzzer harness for the HTTP endpoint's password file (daemon/httpauth.c): the input is
 * the file's text, loaded with httpauth_new_from_data(). A file that loads has 1 to
 * HTTPAUTH_MAX_USERS users; one that does not says why with the line. A loaded file is then
 * asked about a user it cannot hold (a ':' in the name) and a NULL password, which must fail
 * without hashing anything the input chose the cost of. */
#include "fuzz_daemon.h"

#include "httpauth.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) err = NULL;

	fuzz_quiet_logs();
	g_autofree guint8 *copy = fuzz_copy(data, size);
	g_autoptr(HttpAuth) a =
	    httpauth_new_from_data((const char *)copy, size, "fuzz.passwd", &err);
	if (a == NULL) {
		FUZZ_CHECK(err != NULL && g_str_has_prefix(err->message, "fuzz.passwd"));
		return 0;
	}
	FUZZ_CHECK(err == NULL);
	FUZZ_CHECK(httpauth_n_users(a) >= 1 && httpauth_n_users(a) <= HTTPAUTH_MAX_USERS);
	FUZZ_CHECK(!httpauth_check(a, "a:b", NULL, 0, NULL));
	FUZZ_CHECK(!httpauth_check(a, NULL, "x", 0, NULL));
	return 0;
}
