#!/usr/bin/env bash
# GPU checks the CPU test suite cannot make, in one run on a CUDA machine (about 8 minutes on one
# H100/H200 with a warm pip cache):
#   0. the pretraining throughput benchmark on the GPU: `python -m lfm_helpers benchmark --device cuda`
#      (course loop vs transformers.Trainer; OUT_DIR/benchmark.json, shipped as
#      data/benchmarks/pretrain_throughput_h200.json);
#   1. the colab preset's fine-tuning path: `unsloth_smoke --backend auto` must pick Unsloth's
#      FastLanguageModel on CUDA, add LoRA and train (it falls back to transformers + peft, and
#      says so, when Unsloth is not importable); UNSLOTH=0 skips it;
#   2. notebook 04's preset search: `python -m lfm_helpers sft-search` trains the variants side by
#      side and writes OUT_DIR/sft_search.json (shipped as data/sft/tiny/search.json); VARIANTS
#      names some of them, and then the shipped file's other rows are kept (--merge);
#   3. the SFT and base checkpoints of the cheapest variant that meets the targets, in bfloat16,
#      as OUT_DIR/passing_checkpoints.tgz.
# Usage: bash scripts/gpu_check.sh OUT_DIR   (SEARCH_TIMEOUT or DEADLINE, BENCH_TIMEOUT, JOBS, EXAMPLES,
#        VARIANTS, UNSLOTH, BENCH override the defaults; UNSLOTH=0 / BENCH=0 skip steps 1 / 0)
# A machine without the course's dependencies: make .whl/ first with scripts/device_wheels.sh and
# carry it; the wheels there are installed before anything runs.
set -u
out=${1:?usage: bash scripts/gpu_check.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=${PY:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 1
fi
if ! "$PY" -c "import trl, datasets, jsonschema, peft, lfm_helpers" 2>"$out/import_error.txt"; then
    tail -n 1 "$out/import_error.txt"
    echo "missing dependencies: on a machine that cannot pip install, run scripts/device_wheels.sh where pip works and carry .whl/"
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

# 0. on a quiet GPU, before anything else runs on it
if [ "${BENCH:-1}" != 0 ]; then
timeout "${BENCH_TIMEOUT:-200}" "$PY" -m lfm_helpers benchmark --device cuda --out "$out/benchmark.json" 2>&1 | grep -v -E "it/s\]|s/it\]" \
    | tee "$out/benchmark.log" | grep -E "measured|x "
fi

# 1. in its own process: Unsloth patches transformers and TRL when it is imported
if [ "${UNSLOTH:-1}" != 0 ]; then
( timeout 300 "$PY" -m lfm_helpers.unsloth_smoke /tmp/unsloth_smoke --backend auto --steps 30 >"$out/unsloth.log" 2>&1
  echo "exit status $?" >>"$out/unsloth.log"; cp /tmp/unsloth_smoke/result.json "$out/unsloth_result.json" 2>/dev/null ) &
fi

# 2. the search (progress bars filtered out of the log)
if [ -n "${VARIANTS:-}" ]; then
    cp data/sft/tiny/search.json "$out/sft_search.json"
    which=(--variants $VARIANTS --merge)
else
    which=()
fi
# DEADLINE (seconds from the script's start) leaves 20 s for step 3 after the search
search_timeout=${SEARCH_TIMEOUT:-460}
[ -n "${DEADLINE:-}" ] && search_timeout=$((DEADLINE - SECONDS - 20))
echo "search: up to ${search_timeout} s"
timeout "$search_timeout" "$PY" -m lfm_helpers sft-search --preset tiny --jobs "${JOBS:-6}" "${which[@]}" \
    --examples "${EXAMPLES:-128}" --out "$out/sft_search.json" 2>&1 | grep -v -E "it/s\]|s/it\]" >"$out/search.log"
echo "search exit status ${PIPESTATUS[0]}" >>"$out/search.log"
tail -n 15 "$out/search.log"
wait
[ "${UNSLOTH:-1}" != 0 ] && tail -n 3 "$out/unsloth.log"

# 3. the cheapest passing variant's checkpoints
"$PY" - "$out" <<'PY'
import sys, tarfile, tempfile
from pathlib import Path
from lfm_helpers.base import copy_checkpoint
from lfm_helpers.presets import PRESETS
from lfm_helpers.sft_search import base_preset, load_results, smallest_passing, variant_named, variant_preset
from lfm_helpers.artifacts import artifact_dir
out = Path(sys.argv[1])
try:
    best = smallest_passing(load_results(out / "sft_search.json"))
except FileNotFoundError as e:
    sys.exit(str(e))
if best is None:
    sys.exit("no variant met the targets; nothing exported")
tiny, v = PRESETS["tiny"], variant_named(best["variant"])
if not artifact_dir(variant_preset(tiny, v).name, "sft").is_dir():
    sys.exit(f"{v.name} meets the targets but was not trained in this run; nothing exported")
tmp = Path(tempfile.mkdtemp())
copy_checkpoint(artifact_dir(variant_preset(tiny, v).name, "sft"), tmp / "sft", skip=())
if v.own_base:
    copy_checkpoint(artifact_dir(base_preset(tiny, v).name, "pretrain"), tmp / "base", skip=())
with tarfile.open(out / "passing_checkpoints.tgz", "w:gz") as tar:
    tar.add(tmp, arcname=v.name)
print("exported", v.name, "to", out / "passing_checkpoints.tgz")
PY
