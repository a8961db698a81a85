/* Unit tests for the v9 decoder through collector_input() (being written: see test_v5.c for
 * the shape). */
#include "dgram.h"

static void
test_v9_random(void **state)
{
	(void)state;
	random_datagrams(9, 0x5eed0000, 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v9_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
