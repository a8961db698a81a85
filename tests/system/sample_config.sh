#!/bin/sh
# The shipped spamflow.conf must be exactly what `spamflowd --print-config` prints (after its
# 4-line preamble), and must load back to the same configuration: the sample never drifts
# from the defaults and reasons kept in the code.
set -eu
spamflowd=$1
sample=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$spamflowd" --print-config >"$tmp/printed"
sed 1,4d "$sample" >"$tmp/sample"
diff -u "$tmp/sample" "$tmp/printed" || {
	echo "spamflow.conf differs from spamflowd --print-config: regenerate it" >&2
	exit 1
}
"$spamflowd" -c "$sample" --print-config >"$tmp/reloaded"
diff -u "$tmp/printed" "$tmp/reloaded"
echo "spamflow.conf: $(grep -c '^[a-z_]* =' "$sample") keys, same as the built-in defaults"
