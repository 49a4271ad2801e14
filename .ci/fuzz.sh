#!/usr/bin/env bash
# Runs each fuzz target ("pkg:FuzzName" arguments) for FUZZTIME. A failure
# prints the fuzzer's own report. A target that fails is run once more:
# a real crasher is saved under testdata/fuzz and fails again (it is then
# part of the seed corpus), while the fuzzer's rare time-out flake on a
# loaded machine does not.
set -uo pipefail
fuzztime=${FUZZTIME:-10s}
status=0
for t in "$@"; do
	pkg=${t%%:*} name=${t#*:}
	echo "fuzz $name ($pkg) for $fuzztime"
	for attempt in 1 2; do
		if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$pkg/" 2>&1); then
			echo "$out" | tail -1
			break
		fi
		echo "$out" | grep -v '^fuzz: elapsed' | tail -40
		if [ "$attempt" = 2 ]; then
			status=1
		else
			echo "retrying $name once"
		fi
	done
done
exit $status
