#!/usr/bin/env bash
# The prepared GPU check: builds feu's CUDA tests and GPU benchmark against the GPU machine's own
# CUDA PyTorch, runs them, and writes gpu-check.json and gpu-check.txt (a short table) to a folder.
# The benchmark covers 1024² synthesis eager vs CUDA graph, fp32 vs fp16 and non-fused vs grouped
# modulation (batch 1, 16, 64), CLIP, retrieval and Δi (bench_cuda), then the daemon on the GPU
# at real sizes with random weights (bench_daemon: one edit end to end p50/p95 with a new and a
# repeated instruction, edits/s with 8 clients).
#
# Here (with a package registry), once:   scripts/gpu-check.sh --fetch-debs
#   downloads into .devdeps/ the Debian packages of feu's dependencies (and the libraries they
#   load) with an install.sh that unpacks, on the GPU machine, those it does not have.
# There (no registry; carry .devdeps):    scripts/gpu-check.sh [OUT_DIR]   (default $OUT, else
#   build-gpu/gpu-check). Variables: LIBTORCH (a libtorch folder to build against instead of python3's
#   torch), FEU_BUILD_JOBS (default nproc), FEU_GPU_CHECK_BUILD_DIR (default build-gpu).
# Progress lines start with "gpu-check [seconds]". Made to fit 8 minutes on a 16-core H100
# (FEU_GPU_CHECK_BUDGET_S; the benchmarks' time limits shrink to what the build left of it).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
log() { echo "gpu-check [$(($(date +%s) - start))s] $*"; }
# The whole check's time (FEU_GPU_CHECK_BUDGET_S, default 8 minutes): a step's time limit is its own
# cap or what is left of the budget less what the steps after it need, whichever is smaller (never
# under a floor that lets it report), so that a slow build shortens the benchmarks, not the check.
budget=${FEU_GPU_CHECK_BUDGET_S:-480}
step_limit() {  # cap, seconds kept for the later steps, floor
  local left=$((budget - ($(date +%s) - start) - $2))
  local limit=$(( left < $1 ? left : $1 ))
  echo $(( limit > $3 ? limit : $3 ))
}

if [ "${1:-}" = --fetch-debs ]; then
  dest=.devdeps
  mkdir -p "$dest"
  grep -qxF "/$dest/" .git/info/exclude 2>/dev/null || echo "/$dest/" >> .git/info/exclude
  # The packages feu builds with (scripts/install-deps.sh's list less the toolchain, Debian's CPU
  # libtorch and oneDNN, the servers, the browser, Python and dlib's 60 MB model, which nothing
  # the check runs needs), and the packages of every shared library that the CUDA build's programs
  # the check runs load (ldd follows the chain; the wheel's torch and CUDA libraries belong to no
  # package and drop out), less the C/C++ runtime the GPU machine has, newer.
  dev=$(bash scripts/install-deps.sh --list | grep -vxE 'build-essential|cmake|ccache|pkg-config|git|libtorch-dev|libdnnl-dev|redis-server|chromium.*|python3.*|libdlib-data')
  # The packages owning each path read (one per line) and the file it resolves to. With merged
  # /usr a package may have registered the /lib path of a file under /usr/lib.
  owners() {
    sort -u | while read -r path; do
      [ -e "$path" ] || [ -L "$path" ] || continue
      for p in "$path" "$(readlink -f "$path")"; do
        dpkg -S "$p" 2>/dev/null || dpkg -S "${p#/usr}" 2>/dev/null || true
      done
    done | cut -d: -f1 | sort -u
  }
  # The libraries behind those packages' link-time .so links (a -dev package without its library
  # leaves the linker a dangling link), and the packages of libraries their CMake configs name by
  # full path (dlib's libsqlite3.so, libpng.so ...; libblas.so and liblapack.so are
  # update-alternatives links, which install.sh makes) with the libraries behind them.
  named=$( (dpkg -L $dev | grep -E '\.so$'
            grep -ho '/usr/lib/x86_64-linux-gnu/[^;" ]*\.so' $(dpkg -L $dev | grep -E '\.cmake$')) | owners)
  cuda_build=${FEU_CUDA_BUILD_DIR:-build-cuda}
  bash scripts/build-cuda.sh --target test_cuda bench_cuda bench_daemon feu-indexer
  runtime=$(ldd "$cuda_build/tests/test_cuda" "$cuda_build/bin/bench_cuda" "$cuda_build/bin/bench_daemon" \
    "$cuda_build/bin/feu-indexer" | awk '$3 ~ /^\// {print $3}' | owners | grep -vxE 'libc6|libstdc\+\+6|libgcc-s1' || true)
  pkgs=$(echo $dev $named $runtime ${EXTRA_DEBS:-} | tr ' ' '\n' | sort -u)
  (cd "$dest" && apt-get download $pkgs)
  cat > "$dest/install.sh" <<'EOS'
#!/bin/bash
# Unpacks the carried packages that this machine lacks. Nothing it has is replaced: an installed
# package is skipped, and of the others only files the machine does not have are written (a
# Debian 12 package may carry a library that a newer system has under another package name, e.g.
# libssl3 against Ubuntu 24.04's libssl3t64; the system's own copy stays). Merged /usr's directory
# links are kept.
set -e
here=$(cd "$(dirname "$0")" && pwd)
n=0
for f in "$here"/*.deb; do
  pkg=$(dpkg-deb -f "$f" Package)
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then continue; fi
  dpkg-deb --fsys-tarfile "$f" | tar -x -C / --skip-old-files --keep-directory-symlink
  n=$((n + 1))
done
# Debian reaches BLAS and LAPACK through update-alternatives links, which unpacking does not make:
# FAISS and dlib link libblas.so.3/liblapack.so.3 and their CMake configs name libblas.so and
# liblapack.so. Where the machine has none, they point to OpenBLAS's.
lib=/usr/lib/x86_64-linux-gnu
for name in libblas liblapack; do
  for link in "$lib/$name.so.3" "$lib/$name.so"; do
    [ -e "$link" ] && continue
    for dir in openblas-pthread openblas-openmp openblas-serial; do
      if [ -e "$lib/$dir/$name.so.3" ]; then ln -sfn "$lib/$dir/$name.so.3" "$link"; break; fi
    done
  done
done
ldconfig
echo "device deps: $n of $(ls "$here"/*.deb | wc -l) packages unpacked (the rest were installed)"
EOS
  chmod +x "$dest/install.sh"
  echo "gpu-check: $(ls "$dest"/*.deb | wc -l) packages in $dest ($(du -sh "$dest" | cut -f1))"
  exit 0
fi

build=${FEU_GPU_CHECK_BUILD_DIR:-build-gpu}
out=${1:-${OUT:-$build/gpu-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -x .devdeps/install.sh ]; then
  log "installing the carried Debian packages"
  bash .devdeps/install.sh
fi

if [ -n "${LIBTORCH:-}" ]; then
  export FEU_TORCH_PREFIX=$LIBTORCH/share/cmake
else
  export FEU_TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
fi
log "libtorch: $FEU_TORCH_PREFIX"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1 ||
  echo "no nvidia-smi on this machine" > "$out/gpu.txt"
log "GPU: $(cat "$out/gpu.txt")"

log "building test_cuda, bench_cuda, bench_daemon and feu-indexer into $build"
build_start=$(date +%s)
FEU_CUDA_BUILD_DIR=$build FEU_CUDA_CMAKE_ARGS="${FEU_CUDA_CMAKE_ARGS:-}" \
  bash scripts/build-cuda.sh --target test_cuda bench_cuda bench_daemon feu-indexer > "$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; log "build failed (the log: $out/build.log)"; exit 1; }
build_s=$(($(date +%s) - build_start))
log "built in ${build_s}s"

# Every step has a time limit: a hung CUDA call (a graph capture, a kernel) costs that step, not the
# benchmarks after it.
test_limit=$(step_limit 150 270 30)
log "CUDA tests (at most ${test_limit}s)"
test_status=0
timeout "$test_limit" "$build/tests/test_cuda" --gtest_output="json:$out/test_cuda.json" > "$out/test_cuda.log" 2>&1 ||
  test_status=$?
[ "$test_status" = 124 ] && log "test_cuda ran out of time (the log names the test it was in: $out/test_cuda.log)"
grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/test_cuda.log" || true
grep -A3 -E 'Failure|Skipped$' "$out/test_cuda.log" | head -40 || true

# bench_cuda's synthesis, CLIP, retrieval and Δi first; about 3 minutes stay for the assets and the daemon.
bench_limit=$(step_limit 300 180 60)
log "GPU benchmark (bench_cuda, at most ${bench_limit}s)"
timeout "$bench_limit" "$build/bin/bench_cuda" --device cuda --out "$out/bench_cuda.json" > "$out/bench_cuda.log" 2>&1 ||
  log "bench_cuda failed or ran out of time (the log: $out/bench_cuda.log)"

assets_limit=$(step_limit 120 60 30)
log "real-size assets with random weights (feu-indexer demo-assets --real-size, at most ${assets_limit}s)"
assets=$build/bench-real
if timeout "$assets_limit" "$build/bin/feu-indexer" demo-assets --out "$assets" --real-size > "$out/assets.log" 2>&1; then
  # configs/bench-real-size.yaml names the assets relative to configs/: here they are in $assets.
  sed -e "s#\.\./out/bench-real#$(cd "$assets" && pwd)#g" configs/bench-real-size.yaml > "$build/bench-real-size.yaml"
  daemon_limit=$(step_limit 150 10 45)
  # Three benchmarks after the engine's load (~30 s): each stops starting edits after its share.
  per_run=$(( (daemon_limit - 30) / 3 ))
  per_run=$(( per_run < 30 ? (per_run > 5 ? per_run : 5) : 30 ))
  log "daemon on the GPU (bench_daemon DaemonEngine*, at most ${daemon_limit}s, ${per_run}s a run)"
  FEU_BENCH_CONFIG=$build/bench-real-size.yaml FEU_BENCH_DEVICE=cuda FEU_BENCH_MAX_SECONDS=$per_run \
    timeout "$daemon_limit" "$build/bin/bench_daemon" --benchmark_filter=DaemonEngine \
    --benchmark_out="$out/bench_daemon.json" --benchmark_out_format=json > "$out/bench_daemon.log" 2>&1 ||
    log "bench_daemon failed or ran out of time (the log: $out/bench_daemon.log)"
else
  log "feu-indexer demo-assets --real-size failed (the log: $out/assets.log)"
fi

python3 - "$out" "$build_s" "$test_status" <<'EOF'
import json, os, sys
out, build_s, test_status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:
        return {"error": f"{name}: {e}"}
tests = load("test_cuda.json")
cases = [c for s in tests.get("testsuites", []) for c in s.get("testsuite", [])]
summary = {
    "gpu": open(os.path.join(out, "gpu.txt")).read().strip(),
    "build_seconds": build_s,
    "tests": {"status": test_status,
              "cases": {c["classname"] + "." + c["name"]:
                        ("failed" if c.get("failures") else c.get("result", "COMPLETED").lower())
                        for c in cases}},
    "bench": load("bench_cuda.json"),
    "daemon": {b["name"]: {k: b[k] for k in ("edits_per_s", "p50_ms", "p95_ms", "edits", "error_message") if k in b}
               for b in load("bench_daemon.json").get("benchmarks", [])},
}
with open(os.path.join(out, "gpu-check.json"), "w") as f:
    json.dump(summary, f, indent=2)
rows = [("GPU", summary["gpu"]), ("build (s)", str(build_s))]
# The issue's synthesis figures first: 1024² batch 1 (target <= 3 ms) and batched (>= 1,000 img/s).
sg = summary["bench"].get("synthesis_graph_fp16", {}) if isinstance(summary["bench"], dict) else {}
for prec in ("fp32", "fp16"):
    e = sg.get(prec, {}) if isinstance(sg, dict) else {}
    for key in ("eager_batch_1_ms", "graph_batch_1_ms", "graph_batch_16_img_per_s", "eager_batch_16_img_per_s",
                "eager_batch_64_img_per_s", "channels_last_graph_batch_1_ms", "channels_last_graph_batch_16_img_per_s",
                "channels_last_eager_batch_64_img_per_s", "psnr_db_vs_fp32"):
        if isinstance(e, dict) and key in e:
            rows.append((f"synthesis {prec} {key}", f"{e[key]:.3g}" if isinstance(e[key], float) else str(e[key])))
for name, item in summary["daemon"].items():
    rows.append((name.split("/iterations")[0], json.dumps(item)))
rows += [("test " + k, v) for k, v in summary["tests"]["cases"].items()]
b = summary["bench"]
for name, item in b.items():
    if isinstance(item, dict):
        for k, v in item.items():
            rows.append((f"{name} {k}", json.dumps(v)))
with open(os.path.join(out, "gpu-check.txt"), "w") as f:
    for k, v in rows:
        f.write(f"{k:<40} {v}\n")
print(open(os.path.join(out, "gpu-check.txt")).read())
EOF
log "done: $out/gpu-check.json, $out/gpu-check.txt"
exit "$test_status"
