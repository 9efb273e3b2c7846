#!/usr/bin/env bash
# Installs every build and run dependency of feu on Debian 12 (bookworm).
# Idempotent and non-interactive: does nothing when everything is present.
# With --list it installs nothing and prints the package names, one per line (scripts/gpu-check.sh
# --fetch-debs downloads its carried packages from this list). With --fuzz it also installs what
# scripts/fuzz.sh builds with (clang, its sanitizer and libFuzzer runtimes, its OpenMP), and the
# virtual environment scripts/fuzz-http.sh installs schemathesis into (python3-venv).
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config git
  libtorch-dev                      # models (CPU libtorch 1.13)
  libopenblas0-openmp               # fast BLAS for libtorch's CPU matmuls (the default netlib BLAS is ~20x slower)
  libdnnl-dev                       # oneDNN's headers: feu's float32 CPU GEMMs (common/tensor/gemm.h)
  libfaiss-dev                      # corpus index
  libhdf5-dev                       # weights, directions, statistics
  libzmq3-dev cppzmq-dev            # daemon transport
  libhiredis-dev redis-server       # fleet job queue (Redis Streams); redis-server also for its tests
  libyaml-cpp-dev                   # configs
  liblinear-dev                     # linear SVM
  nlohmann-json3-dev                # JSON (manifest, protocol)
  libcli11-dev                      # command-line parsing
  libspdlog-dev libfmt-dev          # logging
  libpng-dev libjpeg-dev zlib1g-dev # images
  libfreetype-dev fonts-dejavu-core # grid labels (FreeType, DejaVu Sans)
  libutf8proc-dev libpcre2-dev      # CLIP tokenizer (Unicode NFC, regex)
  libssl-dev                        # sha256
  libzip-dev                        # PyTorch checkpoints (.pt zips)
  libcurl4-openssl-dev              # feu-indexer pull: artifacts over HTTP(S)
  libdlib-dev libdlib-data          # face detection, 68 landmarks (the model: iBUG 300-W, non-commercial)
  libcpp-httplib-dev                # the daemon's HTTP front (API, web page, /metrics)
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium chromium-driver python3-jsonschema  # HTTP tests: the page in headless Chromium, OpenAPI checks
  python3 python3-numpy python3-h5py python3-torch  # weight converter
  python3-pil  # tests/image/modes/make_fixtures.py: the Pillow references
  python3-yaml  # tests/readme: merges the README's fleet section into a config
)

FUZZ_PACKAGES=(clang libclang-rt-dev libomp-dev python3-venv)

if [ "${1:-}" = --list ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

if [ "${1:-}" = --fuzz ]; then PACKAGES+=("${FUZZ_PACKAGES[@]}"); fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
