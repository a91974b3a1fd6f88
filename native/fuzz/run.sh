#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 300), keeping corpora under
# native/build/fuzz/corpus-*. A finding stops that target and leaves crash-* files in
# native/build/fuzz; the script then exits non-zero.
#   bash native/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-300}
command -v clang >/dev/null || { echo "fuzz: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
make -s fuzz
status=0
for target in fuzz_guest_abi fuzz_json; do
  corpus=build/fuzz/corpus-$target
  mkdir -p "$corpus"
  echo "fuzz: $target for ${seconds}s"
  (cd build/fuzz && ./$target -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "corpus-$target" 2>&1 |
    grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units)" ) || status=1
done
exit $status
