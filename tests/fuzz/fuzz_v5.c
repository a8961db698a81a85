/* libFuzzer harness for the NetFlow v5 decoder (collector/v5.c): one input is one
 * datagram, its first two bytes forced to version 5, through a fresh collector. Built as a
 * libFuzzer binary with -Dfuzz=true (clang) and always as v5_replay for meson test. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_one_datagram(5, data, size);
}
