#!/usr/bin/env bash
# Installs missing dependencies, configures, builds and runs the whole test
# suite. Usage: scripts/test.sh [ctest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
BUILD_DIR=${FEU_BUILD_DIR:-build}
# Let ccache reuse objects compiled in another checkout of the same tree.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"
# In CI the shared parity fixtures exist: a test that would skip for lack of them fails instead.
if [ "${CI:-}" = "true" ]; then export FEU_REQUIRE_SHARED=1; fi
cd "$BUILD_DIR"
status=0
ctest --output-on-failure -j "$(nproc)" "$@" || status=$?
# ctest counts skipped tests but does not say why: print each skip's reason
# (GoogleTest writes "<file>:<line>: Skipped" and the message on the next line).
if grep -q ": Skipped$" Testing/Temporary/LastTest.log 2>/dev/null; then
  echo "Skipped tests and why:"
  awk '/^\[ RUN      \]/ {test = $4} /: Skipped$/ {getline reason; print "  " test ": " reason}' \
    Testing/Temporary/LastTest.log | sort -u
fi
exit "$status"
