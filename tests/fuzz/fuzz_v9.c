/* libFuzzer harness for the NetFlow v9 decoder (collector/v9.c + template*.c): one input is one
 * datagram, its first two bytes forced to version 9, through a fresh collector. Built as a
 * libFuzzer binary with -Dfuzz=true (clang) and always as v9_replay for meson test. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_one_datagram(9, data, size);
}
