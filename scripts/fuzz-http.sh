#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document (daemon/openapi.json) with schemathesis from PyPI:
# generated valid and invalid requests for every operation, methods the API does not take, and stateful
# sequences (submit, get, cancel), each response checked against the document, for 5xx, for valid requests
# refused and for invalid ones accepted.
# Usage: scripts/fuzz-http.sh [SECONDS (default 120)] [--real]
# The daemon fuzzed is feu-daemon-fake (the real daemon program, protocol, limits and HTTP front around the
# test double backend; built in build/), or with --real feu-daemon on the embedded default (run
# scripts/demo.sh once first: it makes out/demo). Either runs on free loopback ports with a journal of its own.
# schemathesis (pinned) is installed into build-fuzz/http/venv; the report is build-fuzz/http/report.log, the
# daemon's log build-fuzz/http/daemon.log. Two checks are off, as the API means them otherwise:
# `use_after_free` (DELETE cancels a job; a finished edit's results stay) and `ensure_resource_availability`
# (an edit's styles and W+ exist only when asked for and once it is done).
# The exit status is schemathesis' own: 1 when it found failures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
real=0
[ "${2:-}" = "--real" ] && real=1

bash scripts/install-deps.sh --fuzz
out=${FEU_FUZZ_BUILD_DIR:-build-fuzz}/http
mkdir -p "$out"
venv=$out/venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > "$out/configure.log"
state=$(mktemp -d)
url_file=$state/url
if [ "$real" = 1 ]; then
  [ -f out/demo/demo.yaml ] || { echo "fuzz-http: --real needs out/demo (run scripts/demo.sh once)" >&2; exit 2; }
  cmake --build build -j "$(nproc)" --target feu-daemon
  daemon=(build/bin/feu-daemon --config out/demo/demo.yaml)
else
  cmake --build build -j "$(nproc)" --target feu-daemon-fake
  printf 'daemon:\n  journal_dir: %s/journal\n' "$state" > "$state/config.yaml"
  daemon=(build/tests/feu-daemon-fake --config "$state/config.yaml")
fi
"${daemon[@]}" --bind "tcp://127.0.0.1:*" --journal-dir "$state/journal" --http 127.0.0.1:0 \
  --http-url-file "$url_file" > "$out/daemon.log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$state"' EXIT
ready() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "readyz", timeout=2)' "$1" 2>/dev/null; }
for _ in $(seq 1 600); do
  [ -s "$url_file" ] && ready "$(cat "$url_file")" && break
  kill -0 "$pid" 2>/dev/null || { echo "fuzz-http: the daemon did not start:" >&2; cat "$out/daemon.log" >&2; exit 1; }
  sleep 0.1
done
url=$(cat "$url_file")
echo "fuzz-http: ${seconds}s against ${daemon[0]} at $url (report: $out/report.log)"
status=0
# From $out: schemathesis keeps its cache of failing cases in .schemathesis/ of the working directory.
(cd "$out" && venv/bin/schemathesis run "${url}v1/openapi.json" --url "${url%/}" --checks all \
  --exclude-checks use_after_free,ensure_resource_availability --max-time "$seconds" --workers 2 \
  > report.log 2>&1) || status=$?
sed -n '/^=* SUMMARY =*$/,$p' "$out/report.log"
grep -q "Segmentation\|terminate called" "$out/daemon.log" && { echo "fuzz-http: the daemon crashed" >&2; status=1; }
kill -0 "$pid" 2>/dev/null || { echo "fuzz-http: the daemon is gone (its log: $out/daemon.log)" >&2; status=1; }
exit "$status"
