#!/bin/sh
# The collector benchmark in one command (issues 6 and 12): installs what is missing, builds
# spamflowd and the bench tools, then runs bench/harness.py (spamflowd vs nfcapd/sfcapd vs
# nfacctd/sfacctd vs a bare recvmmsg receiver, for v5, v9, IPFIX and sFlow v5; see
# bench/README.md).
#   bench/run.sh                                  full run: 5 M records, 3 repetitions
#   bench/run.sh --records 1000000 --reps 1 --quick   a few minutes
#   bench/run.sh --mix bot-heavy --versions 9 --collectors spamflowd,nfcapd --no-search
#                                                 issue 14: CPU under an outbreak
# BUILD=dir picks the meson build directory (default build-bench, created when missing).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${BUILD:-$src/build-bench}
# nfdump, nfdump-sflow (sfcapd), pmacct (nfacctd, sfacctd) and the build packages, when
# missing (apt-get, as root)
"$src/scripts/setup.sh" bench-deps
for tool in nfcapd sfcapd nfdump nfacctd sfacctd taskset python3; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 1; }
done
[ -f "$build/build.ninja" ] || meson setup "$build" "$src" >/dev/null
ninja -C "$build" daemon/spamflowd bench/flowgen bench/bare_recv bench/decode_bench >/dev/null
exec /usr/bin/python3 "$here/harness.py" --build "$build" "$@"
