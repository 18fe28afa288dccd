#!/usr/bin/env bash
# Steps of the GPU check (issue 8) on an offline NVIDIA host (CUDA 13, CuPy, numba,
# pandas, pyarrow, scikit-learn in its image) with RAPIDS 26.10 wheels carried in parts
# to /var/tmp/rw: a tar of the wheel closure that `rapids-wheels plan` resolves, less
# what the image has (pyarrow, scipy, scikit-learn, pillow, ...), plus numpy 2.4.6
# (numba 0.64 refuses the image's 2.5) and nvidia-nvjitlink 13.5 (cuVS needs >= 13.3;
# the image has 13.0).  Each step writes its log and results under $OUT (or ./gpu-out).
#
#   bash benchmarks/gpu_device.sh quick       # no carry: every `cupy` test + CuPy micro-benchmarks at 6.4M rows (<= 5 min)
#   bash benchmarks/gpu_device.sh install     # assemble the wheels, install to /var/tmp/site, import check
#   bash benchmarks/gpu_device.sh test        # the gpu-marked tests, then the GPU smoke job
#   bash benchmarks/gpu_device.sh study ROWS [--skip-cpu|--skip-gpu]   # benchmarks/study_gpu_cpu.py
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=/var/tmp/site:$PWD PYTHONUNBUFFERED=1
# pip --target skips the wheels' load-time fix-ups: name the RAPIDS C++ libraries' folders
libdirs() { find /var/tmp/site -maxdepth 5 -name 'lib*.so*' -path '*/lib*/*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':'; }
libenv() {
  export LD_LIBRARY_PATH=$(libdirs)${LD_LIBRARY_PATH:-}
  # cuVS needs nvJitLink >= 13.3; the image's CUDA 13.0 copy would be found first by cuda-pathfinder
  local jl
  jl=$(ls /var/tmp/site/nvidia/cu13/lib/libnvJitLink.so.13 2>/dev/null) && export LD_PRELOAD=$jl
}
[ -d /var/tmp/site ] && libenv
step=${1:?step}
shift
case $step in
quick)
  # Needs only what the device image has (CuPy, numba, pandas, pyarrow, scipy, scikit-learn, pytest):
  # ``import rapidseval.shift`` loads no job layer (pydantic) and no Dask.  Results go to $OUT, which
  # the session copies to benchmarks/results/<date>-<device>-quick/.
  t0=$(date +%s)
  rows=${1:-6400000}
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1
  python3 -c "import cupy, numba, numpy, pandas, pyarrow, scipy, sklearn, sys; print(sys.version.split()[0], *(f'{m.__name__} {m.__version__}' for m in (cupy, numba, numpy, pandas, pyarrow, scipy, sklearn)), sep='\n')" > "$OUT/versions.txt" 2>&1
  cat "$OUT/nvidia-smi.txt" "$OUT/versions.txt"
  # only the modules that hold cupy tests: the others import the job layer (pydantic, Dask, moto),
  # which the bare image may lack; pytest-timeout only where the image has it
  cupy_files=$(grep -l "pytest.mark.cupy" tests/test_*.py)
  timeout_opt=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout 300")
  python3 -c "import hypothesis" 2>/dev/null || echo "hypothesis missing: pip install hypothesis (the property tests import it)" | tee -a "$OUT/versions.txt"
  python3 -m pytest $cupy_files -m cupy -v -p no:cacheprovider $timeout_opt -o addopts="-ra --strict-markers" 2>&1 | tee "$OUT/cupy-tests.txt" | tail -40
  tests_rc=${PIPESTATUS[0]}
  # on the device a skipped cupy test is a failure of the check (CuPy or the GPU was not seen)
  grep -Eq '[0-9]+ skipped' "$OUT/cupy-tests.txt" && { echo "cupy tests skipped on the device"; tests_rc=1; }
  echo "cupy tests: rc $tests_rc, $(( $(date +%s) - t0 )) s"
  python3 benchmarks/gpu_micro.py --xp cupy --rows "$rows" --out "$OUT" 2>&1 | tee "$OUT/micro-log.txt" | tail -20
  micro_rc=${PIPESTATUS[0]}
  echo "quick: tests rc $tests_rc, micro rc $micro_rc, $(( $(date +%s) - t0 )) s"
  [ "$tests_rc" = 0 ] && [ "$micro_rc" = 0 ]
  exit
  ;;
install)
  t0=$(date +%s)
  # one pip call: a later --target install replaces shared top-level folders (nvidia/)
  if [ ! -d /var/tmp/site/cudf ]; then
    cat /var/tmp/rw/part.* | tar -x -C /var/tmp || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --target /var/tmp/site /var/tmp/rapids-sel/*.whl 2>&1 | tail -5
  fi
  echo "install: $(( $(date +%s) - t0 )) s"
  libenv
  python3 - <<'PY' 2>&1 | tee "$OUT/install.txt"
import importlib.metadata as md
import cudf, cuml, dask_cudf, dask_cuda, cupy, dask, distributed, pandas, numpy, sklearn, rapidseval
for p in ("cudf-cu13", "cuml-cu13", "dask-cudf-cu13", "dask-cuda", "cupy-cuda13x", "rmm-cu13", "dask", "distributed",
          "pandas", "numpy", "pyarrow", "scikit-learn", "scipy", "numba", "numba-cuda", "pydantic"):
    try:
        print(p, md.version(p))
    except md.PackageNotFoundError:
        print(p, "absent")
print("rapidseval from", rapidseval.__file__)
from rapidseval.backend import gpu_available, get_backend
print("gpu_available:", gpu_available())
be = get_backend("gpu")
print(be, be.device_description())
PY
  ;;
test)
  python3 -m pytest tests -m gpu -v -p no:cacheprovider --timeout 900 -o addopts="-ra --strict-markers" 2>&1 | tee "$OUT/gpu-tests.txt" | tail -60
  echo "== smoke job on the GPU backend (LocalCUDACluster)"
  (time python3 -m rapidseval.cli run jobs/smoke.yaml --set backend=gpu --set cluster.kind=local-cuda --out /var/tmp/run-smoke) 2>&1 | tee "$OUT/smoke-gpu.txt" | tail -40
  ;;
study)
  rows=${1:?rows}
  shift
  python3 benchmarks/study_gpu_cpu.py --rows "$rows" --data /var/tmp/data-"$rows" --out /var/tmp/study-"$rows" "$@" 2>&1 | tee "$OUT/study-$rows$*.txt" | grep -v '^    ' | tail -80
  cp /var/tmp/study-"$rows"/results.json "$OUT/results-$rows$(echo "$*" | tr -d ' -').json" 2>/dev/null
  ;;
*)
  echo "unknown step $step" >&2; exit 2 ;;
esac
