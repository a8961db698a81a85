#!/bin/sh
# The installed configuration: HEADER, then the sample configuration (spamflow.conf at the
# top of the tree: `spamflowd --print-config` after a 4-line preamble, kept so by the test
# sample-config) with each `key = value` commented out. Comments and section headers stay.
# usage: make-conf.sh HEADER SAMPLE OUT
set -eu
{
	cat "$1"
	echo
	sed -e '1,4d' -e 's/^\([a-z][a-z_0-9]* =\)/#\1/' "$2"
} >"$3"
