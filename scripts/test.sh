#!/usr/bin/env bash
# Installs missing dependencies, configures, builds and runs the whole test
# suite. Usage: scripts/test.sh [ctest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

# ctest counts skipped tests but does not say why: print each skip's reason
# (GoogleTest writes "<file>:<line>: Skipped" and the message on the next line).
print_skips() {
  if grep -q ": Skipped$" Testing/Temporary/LastTest.log 2>/dev/null; then
    echo "Skipped tests and why:"
    awk '/^\[ RUN      \]/ {test = $4} /: Skipped$/ {getline reason; print "  " test ": " reason}' \
      Testing/Temporary/LastTest.log | sort -u
  fi
}

bash scripts/install-deps.sh
BUILD_DIR=${FEU_BUILD_DIR:-build}
# Let ccache reuse objects compiled in another checkout of the same tree.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"
# In CI the shared parity fixtures exist: a test that would skip for lack of them fails instead.
if [ "${CI:-}" = "true" ]; then export FEU_REQUIRE_SHARED=1; fi
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)" "$@") || status=$?
(cd "$BUILD_DIR" && print_skips)

# The CUDA build (a CUDA libtorch from PyPI, scripts/build-cuda.sh) wherever the CUDA toolkit is
# installed, so that every change compiles and links the GPU path. Only its CUDA tests run (the
# rest would be the suite above again); without a GPU they skip and say why.
# FEU_SKIP_CUDA_BUILD=1 leaves it out (quick local runs).
if [ "${FEU_SKIP_CUDA_BUILD:-0}" != 1 ] && { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }; then
  echo "test: the CUDA build (scripts/build-cuda.sh)"
  CUDA_BUILD_DIR=${FEU_CUDA_BUILD_DIR:-build-cuda}
  if bash scripts/build-cuda.sh; then
    (cd "$CUDA_BUILD_DIR" && ctest --output-on-failure -L '^test_cuda$') || status=$?
    (cd "$CUDA_BUILD_DIR" && print_skips)
  else
    echo "test: the CUDA build failed"
    status=1
  fi
fi
exit "$status"
