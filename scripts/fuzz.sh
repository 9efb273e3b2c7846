#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (tests/fuzz: PyTorch files, photos and their EXIF, wire messages, .npy
# latents, instructions) with libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Builds into build-fuzz/ with clang (scripts/install-deps.sh --fuzz installs it), seeds each
# target's corpus (scripts/fuzz_seeds.py and the image test fixtures), runs the targets one after
# another on every core, and keeps what they grow in build-fuzz/corpus/<target> for the next run.
# An input that crashes is saved as build-fuzz/findings/<target>/crash-*; replay it with
#   build-fuzz/fuzz/<target> build-fuzz/findings/<target>/crash-...
# and, once fixed, keep it in tests/fuzz/regressions/<target>/ (replayed first on every run) and
# as a GoogleTest case of the parser's own suite.
# The exit status is 1 when any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_torch_file fuzz_image fuzz_photo fuzz_protocol fuzz_npy fuzz_tokenizer)

bash scripts/install-deps.sh --fuzz
build=${FEU_FUZZ_BUILD_DIR:-build-fuzz}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEU_FUZZ=ON \
  -DFEU_BUILD_TESTS=OFF -DFEU_BUILD_BENCHMARKS=OFF > "$build/configure.log" 2>&1 ||
  { tail -30 "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

seeds=$build/seeds
rm -rf "$seeds"
/usr/bin/python3 scripts/fuzz_seeds.py "$seeds"
find tests/image/modes tests/face/data -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' \) -size -64k \
  -exec cp {} "$seeds/fuzz_image/" \;
cp "$seeds"/fuzz_image/* "$seeds/fuzz_photo/"
vocab=${FEU_FUZZ_VOCAB:-../shared/clip/bpe_simple_vocab_16e6.txt.gz}
[ -f "$vocab" ] && export FEU_FUZZ_VOCAB=$(cd "$(dirname "$vocab")" && pwd)/$(basename "$vocab")

# Leaks are reported at exit by LeakSanitizer; a decoder that throws mid-image must not leak.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
found=0
for target in "${targets[@]}"; do
  corpus=$build/corpus/$target findings=$build/findings/$target
  mkdir -p "$corpus" "$findings"
  echo "fuzz: $target for ${seconds}s"
  status=0
  # Inputs that once crashed a target (tests/fuzz/regressions) are replayed first, as seeds.
  regressions=tests/fuzz/regressions/$target
  [ -d "$regressions" ] || regressions=
  "$build/fuzz/$target" "$corpus" "$seeds/$target" $regressions -max_total_time="$seconds" -fork="$(nproc)" \
    -rss_limit_mb=4096 -max_len=65536 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$findings/" > "$build/$target.log" 2>&1 || status=$?
  grep -E "^#[0-9]+: cov: " "$build/$target.log" | tail -1 || true
  if ls "$findings" | grep -q .; then
    echo "fuzz: $target FOUND $(ls "$findings" | wc -l) input(s) in $findings (the log: $build/$target.log)"
    found=1
  elif [ "$status" != 0 ]; then
    echo "fuzz: $target exited $status (the log: $build/$target.log)"
    found=1
  fi
done
exit "$found"
