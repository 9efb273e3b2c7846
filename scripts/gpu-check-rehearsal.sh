#!/usr/bin/env bash
# Rehearses scripts/gpu-check.sh, without a GPU, on a machine like the GPU machine: a newer system
# than Debian 12 (Debian 13 in a chroot: GCC 14, HDF5 1.14, libraries renamed by the 64-bit time_t
# transition, as on Ubuntu 24.04), CMake 4 and the CUDA PyTorch 2.11 wheel found by `python3`,
# with only the packages the GPU machine has (../shared/device/fetch-debs.sh's header) and the
# carried .devdeps for the rest, no package registry used by the check itself. The CUDA tests
# skip, the benchmarks report the missing GPU; what this finds is what would fail there before
# any GPU work: the carried packages, configuration, compilation, linking, loading.
#
#   sudo scripts/gpu-check-rehearsal.sh [--full]
#
# Needs root (debootstrap, chroot, bind mounts), Debian's and PyPI's registries to set up (once;
# about 8 GB with the check's build under FEU_REHEARSAL_ROOT, default /var/tmp/feu-rehearsal, 13 GB
# after --full), the CUDA toolkit here (/usr/local/cuda, bound into the chroot) and .devdeps
# (scripts/gpu-check.sh --fetch-debs).
# The tree goes in as the device tool sends it (tracked and untracked, not ignored, files, and
# .devdeps); ../shared is bound read-only beside it. With --full the chroot also builds every
# target and runs the whole CPU test suite against torch 2.11 and GCC 14.
# Writes the check's output to $FEU_REHEARSAL_ROOT/work/gpu-out and prints its table.
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
[ "${1:-}" = --full ] && full=1
root=${FEU_REHEARSAL_ROOT:-/var/tmp/feu-rehearsal}
torch_spec=${FEU_REHEARSAL_TORCH:-torch==2.11.0}
[ "$(id -u)" = 0 ] || { echo "gpu-check-rehearsal: needs root (chroot, mounts)" >&2; exit 1; }
[ -x .devdeps/install.sh ] || { echo "gpu-check-rehearsal: no .devdeps: run scripts/gpu-check.sh --fetch-debs" >&2; exit 1; }
cuda=$(readlink -f /usr/local/cuda)
[ -x "$cuda/bin/nvcc" ] || { echo "gpu-check-rehearsal: no CUDA toolkit at /usr/local/cuda" >&2; exit 1; }

if [ ! -x "$root/usr/bin/g++" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
  echo "gpu-check-rehearsal: creating a Debian 13 chroot in $root"
  debootstrap --variant=minbase --include=g++,make,ccache,python3,python3-venv,ca-certificates \
    trixie "$root" http://deb.debian.org/debian
fi

mounts=()
bind() {  # source, target inside the chroot, extra mount options
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  [ -z "${3:-}" ] || mount -o "remount,bind,$3" "$root$2"
  mounts=("$root$2" "${mounts[@]}")
}
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
bind /proc /proc
bind /dev /dev
bind /sys /sys

if [ ! -x "$root/opt/torch/bin/python3" ]; then
  # This machine's registry certificates (a proxy's CA) for pip inside.
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/resolv.conf "$root/etc/"
  chroot "$root" update-ca-certificates > /dev/null
  # What the GPU machine has besides the toolchain and PyTorch (fetch-debs.sh's header).
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    libhdf5-dev libyaml-cpp-dev libgtest-dev libopenblas0
  chroot "$root" python3 -m venv /opt/torch
  chroot "$root" env -u PIP_FIND_LINKS /opt/torch/bin/pip install -q --timeout 180 "$torch_spec" "cmake>=4"
fi
bind "$cuda" "$cuda"
ln -sfn "$cuda" "$root/usr/local/cuda"
[ -d ../shared ] && bind "$(cd ../shared && pwd)" /work/shared ro

# The tree as the device tool copies it, over the previous copy (its build-gpu stays for ccache).
mkdir -p "$root/work/feu"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -x -C "$root/work/feu"
rm -rf "$root/work/feu/.devdeps" && cp -a .devdeps "$root/work/feu/"

# A command in the chroot with a clean environment, the wheel's python3 and cmake first on PATH.
in_chroot() { chroot "$root" env -i HOME=/root TERM=dumb PATH=/opt/torch/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
status=0
# Ubuntu's GCC links --as-needed by default; Debian's does not.
in_chroot FEU_CUDA_CMAKE_ARGS=-DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed \
  bash -c 'cd /work/feu && g++ --version | head -1 && cmake --version | head -1 &&
           OUT=/work/gpu-out bash scripts/gpu-check.sh' || status=$?
if [ "$full" = 1 ] && [ "$status" = 0 ]; then
  echo "gpu-check-rehearsal: every target and the CPU test suite against this libtorch"
  # What the suite needs beyond the check: dlib's landmark model and a Redis server. The tests that
  # run Python reference tools want the system Python's torch, and readme_commands runs the README's
  # commands, install-deps.sh among them, which would make the chroot plain Debian 13: left out.
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    libdlib-data redis-server > /dev/null
  in_chroot bash -c 'cd /work/feu && cmake --build build-gpu -j "$(nproc)" && cd build-gpu &&
               ctest -j "$(nproc)" --output-on-failure -E "^(convert_stylegan2|e4e_reference_winograd|readme_commands)$"' ||
    status=$?
fi
echo "gpu-check-rehearsal: exit status $status (output in $root/work/gpu-out)"
exit "$status"
