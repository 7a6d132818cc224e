#!/usr/bin/env bash
# One lease of a GPU machine, as one prepared script: correctness against the CPU kernels,
# the side-by-side benchmarks, the launch-shape sweep and the CUDA tests; logs under $OUT.
#
# Here first (any machine with torch): the CPU results the GPU is checked against,
#     PYTHONPATH=src python3 benchmarks/check_cuda.py --save .gpu/cases.npz
# then, on the GPU machine (the device tool, carrying .gpu):
#     bash benchmarks/cuda_session.sh .gpu/cases.npz [family] [sweep] [tests]
# Each stage has its own time limit, so one that hangs leaves the others their time. The
# check (all operators, most of it Triton compiling) and the core benchmarks always run;
# "family" adds the RoI family's benchmarks. check + bench + family stay under 8 minutes.
set -u
cases=${1:?the npz written by check_cuda.py --save}
shift
out=${OUT:-/tmp/roiops-cuda}
mkdir -p "$out"
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
stage() {  # name, seconds, command...
  local name=$1 seconds=$2
  shift 2
  local start=$SECONDS
  timeout "$seconds" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $? in $((SECONDS - start)) s"
}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem \
    --format=csv
  python3 -c "import sys, torch, triton, torchvision, numpy, numba; print(sys.version);
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__,
      'torchvision', torchvision.__version__, 'numpy', numpy.__version__, 'numba',
      numba.__version__)"
} > "$out/machine.log" 2>&1
cat "$out/machine.log"
stage check 210 python3 benchmarks/check_cuda.py --check "$cases" --report "$out/check.json"
tail -3 "$out/check.log"
stage bench 120 python3 benchmarks/bench_cuda.py --repeats 15 --only overhead,roi_align,crop
for extra in "$@"; do
  case $extra in
    family) stage family 120 python3 benchmarks/bench_cuda.py --repeats 15 --only family ;;
    sweep) stage sweep 180 python3 benchmarks/bench_cuda.py --sweep ;;
    tests) stage tests 120 python3 -m pytest tests/torch_ops -q -k cuda -p no:cacheprovider \
             -n 8 ;;
  esac
done
grep -h "roiops\|torchvision\|floor\|Peak\|###" "$out"/bench.log "$out"/family.log 2>/dev/null \
  | head -120
