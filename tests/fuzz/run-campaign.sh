#!/usr/bin/env bash
# A libFuzzer campaign: builds the fuzz_<name> binaries (clang, libFuzzer, ASan, UBSan) in
# their own build dir, runs each harness for SECONDS (default 600) with -max_len=65535, JOBS
# at a time (default 2), merges inputs that add coverage into tests/fuzz/corpus/<name>/
# (-merge=1), keeps crashing inputs in tests/fuzz/crashes/ and prints per harness:
# executions, exec/s, corpus size before/after, crashes.
#
# Usage: tests/fuzz/run-campaign.sh [SECONDS] [HARNESS...]
#   (default: v5 v9 ipfix sflow collector replay control config)
# Env: BUILD_DIR (default build-fuzz), JOBS (default 2), OUT (default fuzz-out)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${1:-600}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(v5 v9 ipfix sflow collector replay control config)
build=${BUILD_DIR:-build-fuzz}
jobs=${JOBS:-2}
out=${OUT:-fuzz-out}
crashes=tests/fuzz/crashes

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=none -Dbuildtype=debugoptimized >/dev/null
else
	meson configure "$build" -Dfuzz=true >/dev/null
fi
targets=()
for h in "${harnesses[@]}"; do targets+=("tests/fuzz/fuzz_$h"); done
ninja -C "$build" "${targets[@]}" >/dev/null

mkdir -p "$out" "$crashes"

# One harness: fuzz into a new dir seeded by the corpus, rerun after a crash (5 times at
# most); no slow units (busy host). Writes $out/<name>.stats.
run_one() {
	local h=$1 bin=$build/tests/fuzz/fuzz_$1 corpus=tests/fuzz/corpus/$1
	local new=$out/$h.new log=$out/$h.log stats=$out/$h.stats
	local start end left execs=0 runs=0 rc crashes_before
	crashes_before=$(find "$crashes" -maxdepth 1 -type f -name "$h-*" | wc -l)
	rm -rf "$new"
	mkdir -p "$new" "$corpus"
	: >"$log"
	start=$(date +%s)
	end=$((start + secs))
	while :; do
		left=$((end - $(date +%s)))
		[ "$left" -gt 0 ] || break
		runs=$((runs + 1))
		rc=0
		"$bin" -max_len=65535 -max_total_time="$left" -timeout=25 -report_slow_units=60 \
			-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/$h-" \
			"$new" "$corpus" >>"$log" 2>&1 || rc=$?
		[ "$rc" -ne 0 ] && [ "$runs" -lt 6 ] || break
	done
	execs=$(awk '/stat::number_of_executed_units/ {s += $NF} END {print s + 0}' "$log")
	local elapsed=$(($(date +%s) - start))
	[ "$elapsed" -gt 0 ] || elapsed=1
	local before after found
	before=$(find "$corpus" -maxdepth 1 -type f | wc -l)
	"$bin" -merge=1 -max_len=65535 -timeout=25 -rss_limit_mb=2048 "$corpus" "$new" \
		>>"$out/$h.merge.log" 2>&1 || true
	after=$(find "$corpus" -maxdepth 1 -type f | wc -l)
	found=$(($(find "$crashes" -maxdepth 1 -type f -name "$h-*" | wc -l) - crashes_before))
	printf '%s %s %s %s %s %s %s\n' "$h" "$execs" "$((execs / elapsed))" "$before" "$after" \
		"$found" "$runs" >"$stats"
}

pids=()
for h in "${harnesses[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	echo "fuzzing $h for ${secs}s" >&2
	run_one "$h" &
	pids+=($!)
done
wait

status=0
printf '%-10s %12s %8s %14s %8s %6s\n' harness executions exec/s corpus crashes runs
for h in "${harnesses[@]}"; do
	read -r name execs rate before after found runs <"$out/$h.stats"
	printf '%-10s %12s %8s %6s -> %-6s %8s %6s\n' "$name" "$execs" "$rate" "$before" \
		"$after" "$found" "$runs"
	[ "$found" -eq 0 ] || status=1
done
if [ "$status" -ne 0 ]; then
	echo "new crashing inputs kept in $crashes/ (logs in $out/<harness>.log)" >&2
fi
exit "$status"
