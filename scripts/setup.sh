#!/bin/sh
# spamflow's two set-up commands (README quick start), for a fresh Debian 12 as root:
#   scripts/setup.sh run    install what is missing, build, run spamflowd in the foreground
#   scripts/setup.sh test   install what is missing, build twice (plain, ASan+UBSan), run
#                           the whole suite in both builds
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

# meson prints its own summary; also print the plain "N passed, N failed" line.
run_suite() { # run_suite DIR NAME
	rc=0
	meson test -C "$1" --print-errorlogs --num-processes 2 || rc=$?
	/usr/bin/python3 - "$1/meson-logs/testlog.json" "$2" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"{sys.argv[2]}: {ok} passed, {bad} failed, {skip} skipped")
PY
	return $rc
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
	rc=0
	run_suite build plain || rc=1
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_suite build-asan asan || rc=1
	exit $rc
	;;
*)
	echo "usage: $0 run [spamflowd options] | test" >&2
	exit 2
	;;
esac
