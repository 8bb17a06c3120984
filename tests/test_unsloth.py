"""The Unsloth path really runs: LoRA SFT steps on a tiny LFM2 through FastLanguageModel.

Unsloth lives in its own environment, ``.venv-unsloth`` (``make unsloth-env``, which ``make test``
runs first): it pins older transformers / TRL than the main one. So the smoke run,
``python -m lfm_helpers.unsloth_smoke``, runs there in a subprocess on the CPU (Unsloth's CPU
fallback trains text LoRA with TRL's SFTTrainer), and this test reads its JSON result.
The same module runs in-process here with the transformers backend, so the script itself is
checked against the main environment's versions too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from importlib import metadata

import pytest

from lfm_helpers import unsloth_smoke
from lfm_helpers.paths import REPO_ROOT

UNSLOTH_PYTHON = REPO_ROOT / ".venv-unsloth" / "bin" / "python"
EXPECTED_LORA_MODULES = 2 * 5 + 2 * 7  # the smoke model: 2 conv + 2 attention layers


def _check_training(result: dict) -> None:
    assert result["model_class"] == "PeftModelForCausalLM" and result["base_model_class"] == "Lfm2ForCausalLM"
    assert result["lora_modules"] == EXPECTED_LORA_MODULES
    assert result["steps"] == len(result["losses"]) == 5
    assert result["losses_finite"] and all(math.isfinite(x) for x in result["losses"])
    assert result["losses"][-1] < result["losses"][0]  # 5 steps at lr 5e-3 on 6 examples: it learns
    assert result["lora_max_abs_change"] > 0  # the adapters moved (B starts at zero)
    assert 0 < result["parameters"]["fraction"] < 1


def test_smoke_script_runs_with_transformers_in_the_main_environment(tmp_path, capsys):
    result = unsloth_smoke.run(tmp_path, backend="transformers")
    assert result["backend"] == "transformers"
    _check_training(result)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["versions"]["transformers"] == metadata.version("transformers")


@pytest.mark.slow
@pytest.mark.skipif(not UNSLOTH_PYTHON.exists(),
                    reason=".venv-unsloth does not exist: build it with `make unsloth-env` (make test does)")
def test_unsloth_trains_lora_on_the_tiny_lfm2_in_its_own_environment(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ)
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "UNSLOTH_DISABLE_CPU_FALLBACK", "UNSLOTH_FORCE_CPU"):
        env.pop(name, None)  # nothing of the main environment leaks in; the CPU fallback stays allowed
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
        HF_HOME=str(tmp_path / "hf_home"),  # no writes into the user's cache
        PYTHONWARNINGS="ignore::FutureWarning",
    )
    proc = subprocess.run([str(UNSLOTH_PYTHON), "-m", "lfm_helpers.unsloth_smoke", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, log
    result = json.loads((out / "result.json").read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result

    assert result["backend"] == "unsloth", result
    assert result["package_dir"] == str(REPO_ROOT / "lfm_helpers")  # this checkout's code, not a stale one
    assert "no GPU found, training on CPU" in proc.stdout + proc.stderr  # Unsloth's CPU fallback ran
    _check_training(result)
    assert result["device"] == "cpu" and result["dtype"] == "torch.float32"

    # Its own environment: Unsloth is there, and transformers / TRL are not the main environment's.
    versions = result["versions"]
    assert versions["unsloth"] != "not installed" and versions["unsloth_zoo"] != "not installed"
    assert versions["transformers"] != metadata.version("transformers")
    assert versions["trl"] != metadata.version("trl")
    assert versions["torch"].startswith("2.13.0")
    # Nothing was written where it ran except the output folder (no compiled-kernel caches).
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf_home") == ["out"]
