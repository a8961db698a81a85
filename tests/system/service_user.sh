#!/bin/sh
# spamflowd as spamflowd.service starts it: a user other than root (here nobody) holding only
# CAP_NET_ADMIN as an ambient capability (the unit's User= and AmbientCapabilities=), with
# [daemon] user empty and its control socket in a directory that user owns (the unit's
# RuntimeDirectory=). The daemon must get the receive buffer it asks for even above
# net.core.rmem_max (SO_RCVBUFFORCE), then hold no capability at all while it runs, and
# answer root on its control socket (the version meson.build gives), and its own version.
# Needs root (to start a process as another user): exits 77 (skip) otherwise.
# usage: service_user.sh SPAMFLOWD SPAMFLOWCTL VERSION
set -eu
spamflowd=$1
spamflowctl=$2
version=$3
[ "$(id -u)" = 0 ] || {
	echo "SKIP: needs root to start the daemon as another user"
	exit 77
}
command -v setpriv >/dev/null || {
	echo "setpriv not found: scripts/setup.sh test installs it (Debian package util-linux)" >&2
	exit 1
}
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir -m 0750 "$tmp/run"
chown nobody:nogroup "$tmp/run"
# a buffer the kernel would clamp without CAP_NET_ADMIN: twice net.core.rmem_max, at least
# the default 32 MiB
rmem_max=$(cat /proc/sys/net/core/rmem_max)
want=$((rmem_max * 2 > 33554432 ? rmem_max * 2 : 33554432))
cat >"$tmp/spamflow.conf" <<END
[collector]
listen = 127.0.0.1:0
rcvbuf = $want
[control]
socket = $tmp/run/control.sock
[state]
file =
END
chmod 0644 "$tmp/spamflow.conf"

setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=+net_admin \
	--ambient-caps=+net_admin "$spamflowd" -c "$tmp/spamflow.conf" --stats-interval 0 \
	>"$tmp/log" 2>&1 &
pid=$!
i=0
until [ -S "$tmp/run/control.sock" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		cat "$tmp/log" >&2
		echo "the daemon did not make its control socket" >&2
		exit 1
	fi
	sleep 0.1
done
fail=0
grep -q "receive buffer $want bytes" "$tmp/log" || {
	echo "the daemon did not get the $want-byte receive buffer (CAP_NET_ADMIN):" >&2
	grep "receive buffer" "$tmp/log" >&2
	fail=1
}
for set in CapInh CapPrm CapEff CapBnd CapAmb; do
	have=$(sed -n "s/^$set:[[:space:]]*//p" "/proc/$pid/status")
	echo "$set: $have"
	# the bounding set is the limit, not a capability held: setpriv leaves it full
	[ "$set" = CapBnd ] && continue
	[ "$have" = 0000000000000000 ] || {
		echo "the running daemon still holds capabilities ($set $have)" >&2
		fail=1
	}
done
uid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status")
[ "$uid" = "$(id -u nobody)" ] || {
	echo "the daemon runs as uid $uid, not nobody" >&2
	fail=1
}
reply=$("$spamflowctl" -s "$tmp/run/control.sock" version)
echo "spamflowctl version: $reply"
echo "$reply" | grep -q "spamflowd $version" || {
	echo "the daemon's version command does not say spamflowd $version" >&2
	fail=1
}
"$spamflowctl" --version | grep -q "^spamflowctl $version " || {
	echo "spamflowctl --version does not say $version" >&2
	fail=1
}
"$spamflowd" --version | grep -qx "spamflowd $version" || {
	echo "spamflowd --version does not say $version" >&2
	fail=1
}
kill "$pid"
wait "$pid" || true
pid=
[ $fail = 0 ] || cat "$tmp/log" >&2
exit $fail
