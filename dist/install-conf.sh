#!/bin/sh
# meson install: the configuration goes to SYSCONFDIR/spamflow/spamflow.conf unless a
# different file is already there: an admin's edits are kept and the new file is put beside
# it as spamflow.conf.new (a Debian package gets this from dpkg's conffile handling).
# usage: install-conf.sh BUILT_CONF SYSCONFDIR/spamflow (DESTDIR from meson install)
set -eu
dir=${DESTDIR:-}$2
mkdir -p "$dir"
if [ -e "$dir/spamflow.conf" ] && ! cmp -s "$1" "$dir/spamflow.conf"; then
	install -m 0644 "$1" "$dir/spamflow.conf.new"
	echo "$dir/spamflow.conf differs from this version's: kept; the new one is spamflow.conf.new"
else
	install -m 0644 "$1" "$dir/spamflow.conf"
fi
