#!/bin/sh
# spamflow's two set-up commands (README quick start), for a fresh Debian 12 as root:
#   scripts/setup.sh run    install what is missing, build, run spamflowd in the foreground
#   scripts/setup.sh test   install what is missing, build twice (plain, ASan+UBSan), run
#                           the whole suite in both builds
#   scripts/setup.sh bench-deps   install what bench/run.sh needs (it calls this itself)
# Extra arguments after `run` go to spamflowd (e.g. `scripts/setup.sh run -l 127.0.0.1:9995`).
set -eu
cd "$(dirname "$0")/.."

# Build and run: compiler, meson, and the libraries spamflow links.
BUILD_PKGS="gcc meson ninja-build pkg-config libglib2.0-dev libpcap-dev libmaxminddb-dev
  libfixbuf-dev"
# Tests: cmocka, the real exporters and independent decoders the tests run, and clang for
# the libFuzzer builds.
TEST_PKGS="libcmocka-dev python3 softflowd tshark nfdump rsyslog clang libclang-rt-14-dev
  libfuzzer-14-dev"
# Benchmark: the collectors it compares against (nfdump's nfcapd, pmacct's nfacctd) and
# taskset (util-linux) to pin generator and collector to separate cores.
BENCH_PKGS="nfdump pmacct util-linux python3"

install_missing() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends $missing
}

build() { # build DIR [meson options...]
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	else
		meson setup --reconfigure "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir"
}

# run_suite DIR LOGBASE [meson test options...]: the results go to DIR/meson-logs/LOGBASE.*
run_suite() {
	dir=$1
	base=$2
	shift 2
	meson test -C "$dir" --print-errorlogs --num-processes 2 --logbase "$base" "$@"
}

# The plain "NAME: N passed, N failed, N skipped" line over DIR's test logs.
summary() { # summary DIR NAME LOGBASE...
	dir=$1
	name=$2
	shift 2
	/usr/bin/python3 - "$dir" "$name" "$@" <<'PY'
import json, os, sys
ok = bad = skip = 0
for base in sys.argv[3:]:
    path = os.path.join(sys.argv[1], "meson-logs", base + ".json")
    if not os.path.exists(path):
        bad += 1
        print(f"{sys.argv[2]}: no results in {path}")
        continue
    for line in open(path):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: bad += 1
print(f"{sys.argv[2]}: {ok} passed, {bad} failed, {skip} skipped")
sys.exit(1 if bad else 0)
PY
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
	install_missing $BUILD_PKGS
	build build
	exec build/daemon/spamflowd "$@"
	;;
test)
	install_missing $BUILD_PKGS $TEST_PKGS
	build build
	build build-asan -Db_sanitize=address,undefined -Db_lundef=false
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	rc=0
	# Most tests wait on timers, sockets and peers rather than on the CPU, so the two
	# builds' suites run side by side (each log is printed when its run ends); then the
	# tests that need the machine to themselves (suite "serial": the floods), one build
	# after the other.
	run_suite build main --no-suite serial >build/meson-logs/ci-main.out 2>&1 &
	plain=$!
	run_suite build-asan main --no-suite serial >build-asan/meson-logs/ci-main.out 2>&1 &
	asan=$!
	wait $plain || rc=1
	cat build/meson-logs/ci-main.out
	wait $asan || rc=1
	cat build-asan/meson-logs/ci-main.out
	run_suite build serial --suite serial || rc=1
	run_suite build-asan serial --suite serial || rc=1
	summary build plain main serial || rc=1
	summary build-asan asan main serial || rc=1
	exit $rc
	;;
bench-deps)
	install_missing $BUILD_PKGS $BENCH_PKGS
	;;
*)
	echo "usage: $0 run [spamflowd options] | test | bench-deps" >&2
	exit 2
	;;
esac
