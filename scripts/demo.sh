#!/usr/bin/env bash
# The quickstart, end to end on a fresh Debian 12:
#   installs dependencies, builds feu, creates the embedded default (small
#   random models, a synthetic corpus, published artifacts), starts
#   feu-daemon, runs one edit of a generated face and one of a real photo
#   through the `feu` client, writes the images, prints where, and stops the
#   daemon. The daemon also serves the web page and the HTTP API; the script
#   prints the page's URL, and with --serve keeps the daemon up until Ctrl-C.
# Usage: scripts/demo.sh [--serve] ["instruction"]     (default "blond hair")
# Environment: FEU_BUILD_DIR (default build), FEU_DEMO_DIR (default out/demo),
#   FEU_HTTP (the page's address, default 127.0.0.1:9464).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVE=0
if [ "${1:-}" = "--serve" ]; then SERVE=1; shift; fi
INSTRUCTION=${1:-"blond hair"}
HTTP=${FEU_HTTP:-127.0.0.1:9464}
BUILD_DIR=${FEU_BUILD_DIR:-build}
DEMO_DIR=${FEU_DEMO_DIR:-out/demo}
JOBS=$(nproc)
start=$(date +%s)
step() { echo "== demo [$(( $(date +%s) - start ))s]: $*"; }

step "dependencies"
bash scripts/install-deps.sh

step "configure and build (${BUILD_DIR}, ${JOBS} jobs)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" --target feu-indexer feu-daemon feu-client -j "$JOBS"

# configs/demo.yaml reads the embedded default from out/demo (relative to configs/).
if [ ! -e "$DEMO_DIR/artifacts/current" ] || [ ! -e "$DEMO_DIR/models/e4e.h5" ]; then
  step "embedded default: random models, synthetic corpus, published artifacts in $DEMO_DIR"
  "$BUILD_DIR/bin/feu-indexer" demo-assets --out "$DEMO_DIR"
else
  step "embedded default already in $DEMO_DIR (delete it to rebuild)"
fi

# configs/demo.yaml names out/demo; point a copy at $DEMO_DIR so FEU_DEMO_DIR is honoured.
DEMO_DIR=$(realpath "$DEMO_DIR")
CONFIG="$DEMO_DIR/demo.yaml"
sed "s|\.\./out/demo|$DEMO_DIR|g" configs/demo.yaml > "$CONFIG"

step "starting feu-daemon"
ENDPOINT_FILE="$DEMO_DIR/daemon.endpoint"
URL_FILE="$DEMO_DIR/daemon.url"
LOG="$DEMO_DIR/daemon.log"
rm -f "$ENDPOINT_FILE" "$URL_FILE"
# Any free loopback port, so the demo never collides with a running daemon.
"$BUILD_DIR/bin/feu-daemon" --config "$CONFIG" --bind "tcp://127.0.0.1:*" \
  --endpoint-file "$ENDPOINT_FILE" --http "$HTTP" --http-url-file "$URL_FILE" >"$LOG" 2>&1 &
DAEMON_PID=$!
stop_daemon() {
  if kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
  fi
}
trap stop_daemon EXIT
for _ in $(seq 1 600); do
  [ -s "$ENDPOINT_FILE" ] && break
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "feu-daemon failed to start:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.1
done
ENDPOINT=$(cat "$ENDPOINT_FILE")
"$BUILD_DIR/bin/feu" --server "$ENDPOINT" ping

OUT="$DEMO_DIR/$(echo "$INSTRUCTION" | tr -c 'A-Za-z0-9\n' '_').png"
step "edit \"$INSTRUCTION\" (seed 42) through the client"
"$BUILD_DIR/bin/feu" --server "$ENDPOINT" --timeout 120 edit "$INSTRUCTION" --seed 42 --alphas=-4,0,4 --grid -o "$OUT"

# A real photo (NASA's public-domain astronaut portrait, as scikit-image ships
# it): its face is found and aligned by dlib, inverted by the (random) e4e,
# edited, and pasted back into the photo at its own size.
PHOTO=scripts/demo-data/astronaut.jpg
PHOTO_OUT="$DEMO_DIR/astronaut_$(echo "$INSTRUCTION" | tr -c 'A-Za-z0-9\n' '_').png"
step "edit \"$INSTRUCTION\" on a photo ($PHOTO) through the client, pasted back"
"$BUILD_DIR/bin/feu" --server "$ENDPOINT" --timeout 120 edit "$INSTRUCTION" --image "$PHOTO" --alphas=4 --paste \
  -o "$PHOTO_OUT"

PAGE_URL=$(cat "$URL_FILE")
echo
echo "Web page: $PAGE_URL   (API: ${PAGE_URL}v1/openapi.json, metrics: ${PAGE_URL}metrics)"
if [ "$SERVE" = 1 ]; then
  step "serving until Ctrl-C (daemon log: $LOG)"
  trap 'echo; stop_daemon; exit 0' INT TERM
  wait "$DAEMON_PID"
  exit 0
fi

step "stopping feu-daemon"
trap - EXIT
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
echo
echo "Edited image (original | alpha -4 | 0 | +4): $OUT"
echo "Edited photo (alpha 4, pasted into the photo): $PHOTO_OUT (its reconstruction: ${PHOTO_OUT%.png}_reconstruction.png)"
echo "Daemon log: $LOG"
step "done"
