#!/bin/sh
# The Debian package (scripts/setup.sh deb, which scripts/setup.sh test runs) installed into
# a throwaway root with dpkg --root: its own maintainer scripts run against that root
# (--force-script-chrootless: they honour DPKG_ROOT), so postinst makes the user spamflow
# there with systemd-sysusers, the directories with systemd-tmpfiles and enables the unit,
# and nothing on this machine changes. Then, from that root: spamflowd --version and
# --print-config (the binaries run with this machine's libraries: the throwaway root holds
# only the package), the installed configuration loads to the defaults,
# `systemd-analyze verify` on the installed unit, logrotate.d/spamflow rotating as the
# dropped user, a reinstall keeping an edited conffile, and purge removing it all.
# usage: deb_install.sh DEB_DIR VERSION SOURCE_DIR
set -eu
debdir=$1
version=$2
src=$3
[ "$(id -u)" = 0 ] || {
	echo "SKIP: needs root (dpkg --root runs the maintainer scripts, chown to spamflow)"
	exit 77
}
# postinst starts the unit when systemd runs this machine ([ -d /run/systemd/system ]): hide
# that directory in a private mount namespace so only the throwaway root is touched.
if [ -d /run/systemd/system ] && [ -z "${DEB_INSTALL_NS:-}" ]; then
	exec env DEB_INSTALL_NS=1 unshare --mount --propagation private \
		sh -c 'mount -t tmpfs none /run/systemd && exec sh "$0" "$@"' "$0" "$@"
fi

fail=0
bad() {
	echo "FAIL: $*" >&2
	fail=1
}

changelog=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
[ "${changelog%-*}" = "$version" ] ||
	bad "debian/changelog is at $changelog, meson.build at $version: add a changelog entry"
deb=$(ls "$debdir"/spamflow_"$version"-*_"$(dpkg --print-architecture)".deb 2>/dev/null |
	head -1) || true
if [ -z "$deb" ]; then
	echo "no spamflow_$version-*.deb in $debdir: scripts/setup.sh deb builds it" \
		"(scripts/setup.sh test does)" >&2
	exit 1
fi
echo "package: $deb"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp" # logrotate reaches $tmp/log as nobody
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkg_root() { # dependencies are this machine's (the root has only the package)
	dpkg --root="$root" --force-depends --force-script-chrootless "$@" >"$tmp/dpkg.log" 2>&1 || {
		cat "$tmp/dpkg.log" >&2
		return 1
	}
}
dpkg_root -i "$deb" || {
	echo "dpkg -i into the throwaway root failed" >&2
	exit 1
}
status=$(dpkg-query --root="$root" -W -f='${Status} ${Version}' spamflow)
echo "dpkg: $status"
case "$status" in "install ok installed $version-"*) ;; *) bad "package state: $status" ;; esac
conffiles=$(dpkg-query --root="$root" -W -f='${Conffiles}' spamflow)
for f in /etc/spamflow/spamflow.conf /etc/logrotate.d/spamflow; do
	echo "$conffiles" | grep -q "^ $f " || bad "$f is not a conffile"
done
for f in /usr/sbin/spamflowd /usr/bin/spamflowctl /lib/systemd/system/spamflowd.service \
	/usr/lib/sysusers.d/spamflow.conf /usr/lib/tmpfiles.d/spamflow.conf \
	/usr/share/man/man8/spamflowd.8.gz /usr/share/man/man8/spamflowctl.8.gz \
	/usr/share/man/man5/spamflow.conf.5.gz /usr/share/doc/spamflow/copyright; do
	[ -e "$root$f" ] || bad "the package has no $f"
done

# What postinst did: the user, its directories, the unit enabled.
uid=$(awk -F: '$1 == "spamflow" { print $3 }' "$root/etc/passwd" 2>/dev/null)
[ -n "$uid" ] && echo "user spamflow: uid $uid" || bad "postinst made no user spamflow"
for d in /var/lib/spamflow /var/log/spamflow; do
	got=$(stat -c '%u %a' "$root$d" 2>/dev/null) || got=missing
	[ "$got" = "$uid 750" ] || bad "$d: owner and mode '$got', not '$uid 750'"
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/spamflowd.service" ] ||
	bad "postinst did not enable spamflowd.service"

# The binaries from the root.
got=$("$root/usr/sbin/spamflowd" --version) || got="exit $?"
echo "spamflowd --version: $got"
[ "$got" = "spamflowd $version" ] || bad "spamflowd --version says '$got'"
got=$("$root/usr/bin/spamflowctl" --version) || got="exit $?"
case "$got" in "spamflowctl $version "*) ;; *) bad "spamflowctl --version says '$got'" ;; esac
"$root/usr/sbin/spamflowd" --print-config >"$tmp/defaults" || bad "spamflowd --print-config failed"
echo "spamflowd --print-config: $(grep -c '^[a-z][a-z_0-9]* =' "$tmp/defaults") keys"
"$root/usr/sbin/spamflowd" -c "$root/etc/spamflow/spamflow.conf" --print-config |
	cmp -s - "$tmp/defaults" ||
	bad "/etc/spamflow/spamflow.conf does not load to the built-in configuration"

# systemd-analyze verify on the installed unit, with --root: the root gets the units and
# /bin/kill the unit refers to from this machine, and man finds the package's pages.
for f in /lib/systemd/system/*; do
	[ -e "$root/lib/systemd/system/${f##*/}" ] || cp -a "$f" "$root/lib/systemd/system/"
done
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/kill"
if MANPATH=$root/usr/share/man systemd-analyze verify --root="$root" spamflowd.service \
	>"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	echo "systemd-analyze verify spamflowd.service: clean"
else
	cat "$tmp/verify" >&2
	bad "systemd-analyze verify found problems in the installed unit"
fi

# logrotate.d/spamflow as installed, with the paths moved to a temp dir and `su` naming
# nobody for spamflow (not a user on this machine): the files rotate as that user, no new
# one is made (the daemon makes it on SIGHUP), and the postrotate script runs.
mkdir -m 0750 "$tmp/log"
sed -e "s|/var/log/spamflow/|$tmp/log/|g" -e 's/^\([[:space:]]*su\) spamflow spamflow$/\1 nobody nogroup/' \
	-e 's|^\([[:space:]]*postrotate\)$|\1\n\t\ttouch '"$tmp"'/postrotate-ran|' \
	"$root/etc/logrotate.d/spamflow" >"$tmp/logrotate.conf"
grep -q 'su nobody nogroup' "$tmp/logrotate.conf" || bad "logrotate.d/spamflow has no 'su spamflow spamflow'"
echo '{"event":"raised"}' >"$tmp/log/alerts.jsonl"
echo 'time,event' >"$tmp/log/alerts.csv"
chown -R nobody:nogroup "$tmp/log"
if logrotate -f -s "$tmp/logrotate.state" "$tmp/logrotate.conf" >"$tmp/logrotate.log" 2>&1; then
	for f in alerts.jsonl alerts.csv; do
		[ "$(stat -c %U "$tmp/log/$f.1" 2>/dev/null)" = nobody ] ||
			bad "logrotate did not rotate $f to $f.1 as its owner"
		[ ! -e "$tmp/log/$f" ] || bad "logrotate made a new $f (nocreate: the daemon makes it)"
	done
	[ -e "$tmp/postrotate-ran" ] || bad "logrotate did not run the postrotate script"
	echo "logrotate.d/spamflow: alerts.jsonl and alerts.csv rotated as the dropped user"
else
	cat "$tmp/logrotate.log" >&2
	bad "logrotate refused logrotate.d/spamflow"
fi

# A reinstall keeps an edited conffile; purge removes the package's files and directories.
echo "# edited by the admin" >>"$root/etc/spamflow/spamflow.conf"
dpkg_root -i "$deb" || bad "reinstalling the package failed"
tail -n 1 "$root/etc/spamflow/spamflow.conf" | grep -q "edited by the admin" ||
	bad "a reinstall replaced the edited /etc/spamflow/spamflow.conf"
dpkg_root --purge spamflow || bad "purging the package failed"
for f in /etc/spamflow /var/lib/spamflow /var/log/spamflow /usr/sbin/spamflowd \
	/etc/systemd/system/multi-user.target.wants/spamflowd.service; do
	[ ! -e "$root$f" ] || bad "$f is still there after purge"
done
[ $fail = 0 ] && echo "installed, ran, verified, purged"
exit $fail
