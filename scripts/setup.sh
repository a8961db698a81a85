#!/bin/sh
# spamflow's two set-up commands (README quick start), for a fresh Debian 12 as root:
#   scripts/setup.sh run    install what is missing, build, run spamflowd in the foreground
#   scripts/setup.sh test   install what is missing, build twice (plain, ASan+UBSan) and the
#                           Debian package, run the whole suite in both builds
#   scripts/setup.sh bench-deps   install what bench/run.sh needs (it calls this itself)
#   scripts/setup.sh deb    build the Debian package (debian/) into build-deb/ and check it
#                           with lintian; `apt install ./build-deb/spamflow_*.deb` installs it
# Extra arguments after `run` go to spamflowd (e.g. `scripts/setup.sh run -l 127.0.0.1:9995`).
set -eu
cd "$(dirname "$0")/.."

# Build and run: compiler, meson, and the libraries spamflow links (libmaxminddb for
# enrichment, libfixbuf for the evidence files and the golden tests' IPFIX decoder).
# libjson-glib-dev: spamflowctl reads the daemon's JSON replies with json-glib (client/).
# zlib1g-dev: --replay reads gzip-compressed captures (collector/replay.c).
# libnftables-dev: the nftables quarantine keeps its set through libnftables (and reads the
# set's JSON listing with json-glib: libjson-glib-dev again) (exporters/quarantine.c).
# libcurl4-openssl-dev: the webhook action's HTTP(S) client (exporters/action_webhook.c).
# libmicrohttpd-dev, libcrypt-dev: the HTTP endpoint ([http], daemon/http.c) and its
# basic-auth hashes (crypt_rn).
# libnats-dev: the cluster's bus, NATS JetStream through the C client (cluster/bus_nats.c).
BUILD_PKGS="gcc meson ninja-build pkg-config libglib2.0-dev libpcap-dev libmaxminddb-dev
  libfixbuf-dev libjson-glib-dev zlib1g-dev libnftables-dev libcurl4-openssl-dev
  libmicrohttpd-dev libcrypt-dev libnats-dev"
# Tests, and the scripts the READMEs document. Every test is registered whatever is
# installed, and one whose tool is missing fails saying which package below has it
# (tests/meson.build), so a package left out here shows as a red suite, not a shorter one.
#   libcmocka-dev     unit tests (tests/unit)
#   python3           every test script (/usr/bin/python3), scripts/*.py
#   python3-scapy     scripts/gen_traffic.py, scripts/gen_scenario.py, fixtures/make.sh;
#                     test gen-traffic (suite scripts)
#   softflowd         live-* (a real exporter), fixtures/make.sh
#   tshark            golden softflowd-*, enrich-evidence-*, all-sinks-* (evidence files),
#                     scripts/count_records.py; dumpcap (wireshark-common) for fixtures/make.sh
#   nfdump            nfdump-* (a real nfcapd and nfdump)
#   rsyslog           rsyslog-remote, all-sinks-*, sink-faults (a private rsyslogd)
#   mmdb-bin          mmdblookup: enrich-evidence-*, all-sinks-*
#   libmaxmind-db-writer-perl  (and perl) tests/tools/make_mmdb.pl, the test databases of
#                     enrich, enrich-evidence-*, all-sinks-*
#   util-linux mount  unshare, findmnt, mount: all-sinks-*, sink-faults, daemon-log-stall
#   e2fsprogs         mkfs.ext4: sink-faults (csv on an ext4 that turns read-only)
#   nftables iproute2 nft and ip: quarantine-daemon, quarantine-netns (a real nft set in
#                     network namespaces; softflowd too for the second)
#   pmacct            pmacctd's sfprobe plugin, the real sFlow v5 exporter of the sFlow tests
#                     (live-pmacctd-*) and of fixtures/make.sh sflow; nfacctd for bench/
#                     and verdicts-nfdump (scripts/compare_verdicts.py --pmacct)
#   faketime          fixtures/make.sh sflow: pmacctd's clock held still while it reads a
#                     capture, so its datagrams are cut the same way every run
#   clang libclang-rt-14-dev libfuzzer-14-dev  libFuzzer builds (-Dfuzz=true,
#                     tests/fuzz/run-campaign.sh)
#   openssl           actions-webhook: the test's own CA and server certificate (HTTPS);
#                     http-endpoint: a self-signed certificate; cluster-tls: a CA, the NATS
#                     server's and the nodes' certificates
#   prometheus whois  http-endpoint: promtool check metrics, mkpasswd (the basic-auth file's
#                     yescrypt hash). The prometheus package also installs a Prometheus
#                     server unit (enabled; it listens on :9090 once started)
#   chromium          web-browser: the real browser the web page is tested in (headless,
#                     /usr/bin/chromium; playwright never downloads one)
#   nodejs npm        web-browser: node runs tests/web/browse.mjs; npm ci installs its one
#                     npm package, playwright-core (tests/web/package-lock.json), below.
#                     Installed only when node or npm is missing: a machine with another
#                     node (NodeSource's nodejs carries its own npm and conflicts with
#                     Debian's npm package) keeps it (install_node below)
#   nats-server       cluster-bus: three real servers clustered on loopback with JetStream
#                     (tests/system/natsutil.py)
TEST_PKGS="libcmocka-dev python3 python3-scapy softflowd tshark nfdump rsyslog mmdb-bin
  perl libmaxmind-db-writer-perl util-linux mount e2fsprogs pmacct faketime clang
  libclang-rt-14-dev libfuzzer-14-dev nftables iproute2 openssl prometheus whois chromium
  nats-server"
# Benchmark: the collectors it compares against (nfdump's nfcapd, nfdump-sflow's sfcapd,
# pmacct's nfacctd and sfacctd), tshark for bench/sflow_check.py, and taskset (util-linux)
# to pin generator and collector to separate cores. FastNetMon for
# scripts/compare_fastnetmon.py (install_fastnetmon below: its own service stays off).
BENCH_PKGS="nfdump nfdump-sflow pmacct tshark util-linux python3"

# The Debian package: dpkg-buildpackage and debhelper, lintian to check the result; its
# Build-Depends come from debian/control (apt-get build-dep). logrotate and systemd
# (systemd-analyze, systemd-sysusers, systemd-tmpfiles) for the suite deb's checks.
DEB_PKGS="dpkg-dev debhelper lintian logrotate systemd"

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

# FastNetMon's package enables and starts a service (it reads /etc/fastnetmon.conf, opens
# a gRPC API and a metrics port on loopback and reports its usage home once an hour).
# compare_fastnetmon.py runs its own instance, so when the package is new here it is
# installed with service starts refused (policy-rc.d, restored after) and its unit left
# disabled; an installation that was already here is not touched.
restore_policy() {
	[ -n "$policy_held" ] || return 0
	policy_held=""
	if [ -n "$saved" ]; then
		mv "$saved" $policy
	else
		rm -f $policy
	fi
}
install_fastnetmon() {
	dpkg-query -W -f='${Status}' fastnetmon 2>/dev/null | grep -q "ok installed" && return 0
	policy=/usr/sbin/policy-rc.d
	saved=""
	policy_held=""
	if [ -e $policy ]; then
		saved=$(mktemp)
		cp -p $policy "$saved"
	fi
	# an interrupted install must not leave every later service start refused
	policy_held=1
	trap restore_policy EXIT
	trap 'exit 130' INT TERM
	printf '#!/bin/sh\nexit 101\n' >$policy
	chmod 755 $policy
	rc=0
	install_missing fastnetmon || rc=$?
	restore_policy
	trap - EXIT INT TERM
	systemctl disable fastnetmon.service >/dev/null 2>&1 ||
		rm -f /etc/systemd/system/multi-user.target.wants/fastnetmon.service
	return $rc
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
	meson test -C "$dir" --print-errorlogs --num-processes "${JOBS:-2}" --logbase "$base" "$@"
}

# summary LOGBASES -- NAME=DIR...: for each build, its results in DIR/meson-logs/LOGBASE.json
# against the tests meson registered there (meson introspect): a table of tests per suite
# and build, then the plain "NAME: N passed, N failed, N skipped" line per build. Exits 1 if
# a test failed, skipped or did not run, or a log is missing. A skip is a failure here: CI
# runs as root with every package installed, so nothing has a reason to skip.
summary() {
	/usr/bin/python3 - "$@" <<'PY'
import collections, json, os, subprocess, sys
args = sys.argv[1:]
bases, builds = args[:args.index("--")], [a.split("=", 1) for a in args[args.index("--") + 1:]]

def suite_label(suites):  # ['spamflow:system', 'spamflow:serial'] -> 'system+serial'
    return "+".join(s.split(":", 1)[-1] for s in suites)

bad = False
table = collections.defaultdict(dict)  # suite -> build -> Counter(tests, pass, fail, skip)
lines, problems = [], []
for name, d in builds:
    reg = json.loads(subprocess.run(["meson", "introspect", d, "--tests"], check=True,
                                    capture_output=True, text=True).stdout)
    # (suite, name): a name can repeat across suites (unit and system both have "control")
    registered = {(suite_label(t["suite"]), t["name"]) for t in reg}
    count = collections.defaultdict(collections.Counter)
    for label, _ in registered:
        count[label]["tests"] += 1
    seen = set()
    for base in bases:
        path = os.path.join(d, "meson-logs", base + ".json")
        if not os.path.exists(path):
            problems.append(f"{name}: no results in {path}")
            continue
        for line in open(path):
            r = json.loads(line)
            label, _, test = r["name"].partition(" / ")
            label = label.split(":", 1)[-1]
            seen.add((label, test))
            if r["result"] in ("OK", "EXPECTEDFAIL"):
                count[label]["pass"] += 1
            elif r["result"] == "SKIP":
                count[label]["skip"] += 1
                out = [x for x in (r.get("stdout") or "").splitlines() if x.strip()]
                why = next((x for x in reversed(out) if "SKIP" in x.upper()),
                           out[-1] if out else "no reason printed")
                problems.append(f"{name}: {test} skipped ({why.strip()}): a skip is a failure "
                                "in CI, which runs as root with every package installed")
            else:
                count[label]["fail"] += 1
                problems.append(f"{name}: {test} {r['result']}")
    not_run = sorted(registered - seen)
    for label, test in not_run:
        problems.append(f"{name}: {test} (suite {label}) is registered but did not run")
    for label, c in count.items():
        table[label][name] = c
    tot = sum(count.values(), collections.Counter())
    lines.append(f"{name}: {tot['pass']} passed, {tot['fail']} failed, {tot['skip']} skipped"
                 + (f", {len(not_run)} not run" if not_run else ""))

cols = ("tests", "pass", "fail", "skip")
names = [n for n, _ in builds]
cell = lambda c: "   " + " ".join(f"{c[k]:>5}" for k in cols)  # noqa: E731
width = len(cell(collections.Counter()))
print("\ntests per suite" + "".join(f"{n:>{width}}" for n in names))
print(f"{'suite':<15}" + "".join(cell({k: k for k in cols}) for _ in names))
total = {n: collections.Counter() for n in names}
for label in sorted(table):
    for n in names:
        total[n] += table[label].get(n, collections.Counter())
    print(f"{label:<15}" + "".join(cell(table[label].get(n, collections.Counter()))
                                   for n in names))
print(f"{'total':<15}" + "".join(cell(total[n]) for n in names))
for n in names[1:]:
    if {s: table[s].get(n, {}).get("tests", 0) for s in table} != \
            {s: table[s].get(names[0], {}).get("tests", 0) for s in table}:
        problems.append(f"{n} registers other tests per suite than {names[0]}")
print()
for p in problems:
    print("FAIL:", p)
for l in lines:
    print(l)
sys.exit(1 if problems else 0)
PY
}

# build_deb: the package from a copy of the tree (tracked and untracked files, not the build
# directories), so dpkg-buildpackage leaves nothing in the tree and writes the .deb where
# the suite deb looks: build-deb/spamflow_VERSION-REV_ARCH.deb. Then lintian: its tags are
# printed, and an error fails the command.
build_deb() {
	install_missing $DEB_PKGS
	if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
		echo "setup: installing the Build-Depends of debian/control"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get build-dep -y -q --no-install-recommends ./
	fi
	rm -rf build-deb
	mkdir -p build-deb/src
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			tar --null -T - --ignore-failed-read -cf - 2>/dev/null
	else
		tar --exclude='./build*' --exclude=./.git -cf - .
	fi | tar -xf - -C build-deb/src
	(cd build-deb/src && dpkg-buildpackage -us -uc -b -jauto) >build-deb/build.log 2>&1 || {
		tail -n 40 build-deb/build.log >&2
		echo "setup: dpkg-buildpackage failed: build-deb/build.log" >&2
		return 1
	}
	rm -rf build-deb/src
	echo "setup: lintian build-deb/*.changes"
	lintian build-deb/*.changes || return 1
	ls build-deb/*.deb
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
	# DEB_PKGS too, before meson looks for the tools: the suite deb's checks need logrotate
	# and systemd's tools, and a build configured before they were installed registers
	# that test as failing for want of them (build_deb installs them, but later)
	install_missing $BUILD_PKGS $TEST_PKGS $DEB_PKGS
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
		install_missing nodejs npm
	# the browser test's driver, exactly as locked; chromium is Debian's, never downloaded
	(cd tests/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
	# warnings are errors here (CI), not in a user's build (meson.build: werror=false)
	build build -Dwerror=true
	build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	rc=0
	# the Debian package for the suite deb (15-20 s: the tree without its tests); if it does
	# not build, the suite deb fails for want of it
	build_deb || rc=1
	# results of an earlier run must not stand in for a run that did not happen
	rm -f build/meson-logs/main.json build/meson-logs/serial.json \
		build-asan/meson-logs/main.json build-asan/meson-logs/serial.json
	# Most tests wait on timers, sockets and peers rather than on the CPU, so the two
	# builds' suites run side by side (each log is printed when its run ends); then the
	# tests that need the machine to themselves (suite "serial": the floods), one build
	# after the other.
	# Three at a time in each (six on two cores): the tests use about a third of the CPU
	# they are given, the rest is waiting on peers and timers (measured: 4.5 CPU-minutes in
	# 6 minutes of two cores at two each).
	JOBS=3 run_suite build main --no-suite serial >build/meson-logs/ci-main.out 2>&1 &
	plain=$!
	JOBS=3 run_suite build-asan main --no-suite serial >build-asan/meson-logs/ci-main.out 2>&1 &
	asan=$!
	wait $plain || rc=1
	cat build/meson-logs/ci-main.out
	wait $asan || rc=1
	cat build-asan/meson-logs/ci-main.out
	run_suite build serial --suite serial || rc=1
	run_suite build-asan serial --suite serial || rc=1
	summary main serial -- plain=build asan=build-asan || rc=1
	exit $rc
	;;
bench-deps)
	install_missing $BUILD_PKGS $BENCH_PKGS
	install_fastnetmon
	;;
deb)
	build_deb
	;;
*)
	echo "usage: $0 run [spamflowd options] | test | bench-deps | deb" >&2
	exit 2
	;;
esac
