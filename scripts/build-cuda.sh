#!/usr/bin/env bash
# Builds feu against a CUDA libtorch: PyPI's `torch` wheel (its default Linux build is the CUDA 13
# one, matching the toolkit here) in a virtual environment under the build folder, configured with
# the wheel's share/cmake. Needs nvcc (the CUDA toolkit) but no GPU: CI compiles and links the
# CUDA path on every change; the CUDA tests skip where no GPU is present.
# Usage: scripts/build-cuda.sh [cmake --build arguments, e.g. --target test_cuda]
# Variables: FEU_CUDA_BUILD_DIR (default build-cuda), FEU_TORCH_SPEC (pip requirement, default
# pinned below so that ccache keeps hitting), FEU_TORCH_PREFIX (a CMake prefix of a libtorch to use
# instead of installing one, e.g. the GPU machine's own PyTorch; see scripts/gpu-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${FEU_CUDA_BUILD_DIR:-build-cuda}
TORCH_SPEC=${FEU_TORCH_SPEC:-torch==2.15.0}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
mkdir -p "$BUILD_DIR"

if [ -d /usr/local/cuda/bin ]; then export PATH=$PATH:/usr/local/cuda/bin; fi
command -v nvcc >/dev/null || { echo "build-cuda: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }

if [ -z "${FEU_TORCH_PREFIX:-}" ]; then
  venv=$BUILD_DIR/venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  # The wheel brings the CUDA runtime libraries it was linked with (nvidia-* wheels, found through
  # its RPATH): the toolkit here lacks cuSPARSELt, NVSHMEM and cuFile, so --no-deps would not link.
  if ! "$venv/bin/python" - "$TORCH_SPEC" <<'EOF' 2>/dev/null; then
import sys, torch
want = sys.argv[1].partition("==")[2]
sys.exit(0 if not want or torch.__version__.split("+")[0] == want else 1)
EOF
    echo "build-cuda: installing $TORCH_SPEC into $venv (pip cache reused)"
    "$venv/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC"
  fi
  FEU_TORCH_PREFIX=$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  abi=$("$venv/bin/python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  # Debian's FAISS, HDF5, dlib, yaml-cpp... use the C++11 ABI: a pre-C++11-ABI libtorch cannot be
  # linked with them (std::string in the signatures).
  [ "$abi" = 1 ] || { echo "build-cuda: $TORCH_SPEC was built without the C++11 ABI" >&2; exit 1; }
fi
echo "build-cuda: libtorch from $FEU_TORCH_PREFIX"

# TorchConfig looks for libtorch.so in the default paths before its own lib/, where Debian's
# libtorch 1.13 would be found: its root on the prefix path puts its lib/ first.
torch_root=$(cd "$FEU_TORCH_PREFIX/../.." && pwd)
cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
# CUDA_ARCH_LIST: the CUDA build compiles no kernels of its own, but torch's CMake config asks
# which architectures to name; 9.0 is the H100's/H200's.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$FEU_TORCH_PREFIX;$torch_root" \
  -DCUDAToolkit_ROOT="$cuda_root" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
  -DFEU_REQUIRE_CUDA_TORCH=ON ${FEU_CUDA_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "${FEU_BUILD_JOBS:-$(nproc)}" "$@"
