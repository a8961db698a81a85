/* libFuzzer harness for the IPFIX decoder (collector/ipfix.c + template*.c): one input is one
 * datagram, its first two bytes forced to version 10, through a fresh collector. Built as a
 * libFuzzer binary with -Dfuzz=true (clang) and always as ipfix_replay for meson test. */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_one_datagram(10, data, size);
}
