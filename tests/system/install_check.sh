#!/bin/sh
# `meson install --destdir` into a temp dir must put each file in its place: both
# executables, the three man pages (their .TH naming meson's version), the systemd unit
# (running spamflowd -c on the installed configuration as the user spamflow), the sysusers.d,
# tmpfiles.d and logrotate.d files, and /etc/spamflow/spamflow.conf: every key commented out
# at its default, loading to the built-in configuration as it is and with every key
# uncommented. A second install keeps an edited configuration and puts the new one beside it.
# spamflow.conf(5) must still list exactly the keys `spamflowd --print-config` prints.
# usage: install_check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest" "$dest.log"' EXIT
do_install() {
	meson install -C "$build" --destdir "$dest" --no-rebuild >"$dest.log" 2>&1 || {
		cat "$dest.log" >&2
		exit 1
	}
}
do_install
info() { # the value of a project or build option from meson introspect
	meson introspect "$build" "$1" | python3 -c "import json,sys; d=json.load(sys.stdin)
print(d['$2'] if isinstance(d, dict) else {o['name']: o['value'] for o in d}['$2'])"
}
prefix=$(info --buildoptions prefix)
version=$(info --projectinfo version)
fail=0
for pattern in "sbin/spamflowd" "bin/spamflowctl" "man8/spamflowd.8" "man8/spamflowctl.8" \
	"man5/spamflow.conf.5" "system/spamflowd.service" "sysusers.d/spamflow.conf" \
	"tmpfiles.d/spamflow.conf" "logrotate.d/spamflow" "spamflow/spamflow.conf"; do
	found=$(find "$dest" -path "*/$pattern" | head -1)
	if [ -z "$found" ]; then
		echo "missing: $pattern" >&2
		fail=1
	else
		echo "installed: ${found#$dest}"
	fi
done
conf=$(find "$dest" -path "*/spamflow/spamflow.conf" | head -1)
find "${conf%/*}" -name 'spamflow.conf.*' | grep . >&2 && {
	echo "a first install left more than spamflow.conf in the configuration directory" >&2
	fail=1
}
for page in $(find "$dest" -name 'spamflow*.[58]'); do
	grep -q "^\.TH .* \"spamflow $version\"" "$page" || {
		echo "${page#$dest}: .TH does not name spamflow $version (meson.build's version)" >&2
		fail=1
	}
done
spamflowd=$(find "$dest" -path "*/sbin/spamflowd" | head -1)
unit=$(find "$dest" -name spamflowd.service | head -1)
for line in "ExecStart=$prefix/sbin/spamflowd -c ${conf#$dest}" "User=spamflow" "Group=spamflow"; do
	grep -qx "$line" "$unit" || {
		echo "the unit has no line '$line'" >&2
		fail=1
	}
done
grep -q '^u spamflow ' "$(find "$dest" -path '*/sysusers.d/spamflow.conf')" || {
	echo "sysusers.d/spamflow.conf does not make the user spamflow" >&2
	fail=1
}

# The installed configuration: the built-in one as it is, and with every key uncommented.
"$spamflowd" --print-config >"$dest/defaults"
"$spamflowd" -c "$conf" --print-config | diff -u "$dest/defaults" - >&2 || {
	echo "${conf#$dest} does not load to the built-in configuration" >&2
	fail=1
}
sed 's/^#\([a-z][a-z_0-9]* =\)/\1/' "$conf" >"$dest/uncommented.conf"
keys=$(grep -c '^[a-z][a-z_0-9]* =' "$dest/uncommented.conf" || true)
printed=$(grep -c '^[a-z][a-z_0-9]* =' "$dest/defaults" || true)
if [ "$keys" != "$printed" ]; then
	echo "${conf#$dest} lists $keys keys, spamflowd --print-config $printed" >&2
	fail=1
fi
"$spamflowd" -c "$dest/uncommented.conf" --print-config | diff -u "$dest/defaults" - >&2 || {
	echo "${conf#$dest} with its keys uncommented is not the built-in configuration" >&2
	fail=1
}
echo "${conf#$dest}: $keys keys commented out at their defaults"

# Install again over an edited configuration: it stays, the new one goes beside it.
echo "[daemon]" >>"$conf"
echo "log_level = info" >>"$conf"
cp "$conf" "$dest/edited"
do_install
if ! cmp -s "$conf" "$dest/edited" || [ ! -f "$conf.new" ]; then
	echo "a second install did not keep the edited ${conf#$dest} and add spamflow.conf.new" >&2
	fail=1
fi

python3 "$src/doc/gen-conf-man.py" "$spamflowd" >"$dest/spamflow.conf.5"
if ! diff -u "$src/doc/spamflow.conf.5" "$dest/spamflow.conf.5" >&2; then
	echo "doc/spamflow.conf.5 differs from the keys spamflowd knows: regenerate it with" \
		"doc/gen-conf-man.py" >&2
	fail=1
fi
exit $fail
