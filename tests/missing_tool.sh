#!/bin/sh
# Registered by meson in place of a test whose tool or library was not found when the build
# directory was configured (tests/meson.build): it fails, saying what is missing, so the test
# shows as a failure instead of not being there.
for why in "$@"; do
	echo "FAIL: $why" >&2
done
echo "Install what is missing (scripts/setup.sh test installs every package the tests need)," \
	"then reconfigure: meson setup --reconfigure BUILDDIR" >&2
exit 1
