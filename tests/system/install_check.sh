#!/bin/sh
# `meson install --destdir` into a temp dir must put each file in its place: both
# executables, the three man pages, the systemd unit and the sample configuration; and
# spamflow.conf(5) must still list exactly the keys `spamflowd --print-config` prints.
# usage: install_check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1 || {
	cat "$dest.log" >&2
	rm -f "$dest.log"
	exit 1
}
rm -f "$dest.log"
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["prefix"])')
fail=0
for pattern in "sbin/spamflowd" "bin/spamflowctl" "man8/spamflowd.8" "man8/spamflowctl.8" \
	"man5/spamflow.conf.5" "system/spamflowd.service" "spamflow/spamflow.conf.example"; do
	found=$(find "$dest" -path "*/$pattern" | head -1)
	if [ -z "$found" ]; then
		echo "missing: $pattern" >&2
		fail=1
	else
		echo "installed: ${found#$dest}"
	fi
done
unit=$(find "$dest" -name spamflowd.service | head -1)
if [ -n "$unit" ] && ! grep -q "ExecStart=.*$prefix/sbin/spamflowd" "$unit"; then
	echo "the unit does not start $prefix/sbin/spamflowd" >&2
	fail=1
fi
spamflowd=$(find "$dest" -path "*/sbin/spamflowd" | head -1)
python3 "$src/doc/gen-conf-man.py" "$spamflowd" >"$dest/spamflow.conf.5"
if ! diff -u "$src/doc/spamflow.conf.5" "$dest/spamflow.conf.5" >&2; then
	echo "doc/spamflow.conf.5 differs from the keys spamflowd knows: regenerate it with" \
		"doc/gen-conf-man.py" >&2
	fail=1
fi
exit $fail
