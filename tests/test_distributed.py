"""Scale-out: the SFT and pretraining stages on two CPU processes through ``accelerate launch``
(DDP over gloo), against one process with the same effective batch; the shipped Accelerate configs;
the preset overrides the command line uses; memory per device."""

from __future__ import annotations

import json

import pytest
import yaml

from lfm_helpers import distributed
from lfm_helpers.paths import REPO_ROOT
from lfm_helpers.presets import PRESETS, override

#: Largest relative difference allowed between the per-step training losses of the 2-process and
#: the 1-process run: both see the same examples in each step and DDP averages the gradients, so
#: only the order of floating-point additions differs (measured: about 1e-7).
LOSS_TOLERANCE = 1e-4


# --------------------------------------------------------------------------- without launching
def test_batch_splits_evenly_or_is_refused(monkeypatch):
    assert distributed.per_device_batch(16, 2) == 8 and distributed.per_device_batch(16, 1) == 16
    with pytest.raises(ValueError, match="divisible by 3"):
        distributed.per_device_batch(16, 3)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    assert distributed.world() == (1, 4) and distributed.launched() and not distributed.is_main_process()
    assert distributed.per_device_batch(16) == 4


def test_launch_command_and_shipped_configs():
    cmd = distributed.launch_command(["run", "sft", "--preset", "tiny"], processes=2)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[-6:] == ["-m", "lfm_helpers", "run", "sft",
                                                                            "--preset", "tiny"]
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    with pytest.raises(FileNotFoundError, match="cpu_ddp"):
        distributed.config_file("nope")
    kinds = {}
    for name in ("cpu_ddp", "ddp", "fsdp", "deepspeed_zero2"):
        from accelerate.commands.config.config_args import load_config_from_file

        config = load_config_from_file(str(distributed.config_file(name)))
        kinds[name] = str(config.distributed_type).split(".")[-1]
        assert config.num_processes == 2 and config.num_machines == 1
    assert kinds == {"cpu_ddp": "MULTI_GPU", "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED"}
    fsdp = yaml.safe_load(distributed.config_file("fsdp").read_text())["fsdp_config"]
    import transformers.models.lfm2.modeling_lfm2 as lfm2

    assert hasattr(lfm2, fsdp["fsdp_transformer_layer_cls_to_wrap"])  # the class FSDP wraps exists
    zero = yaml.safe_load(distributed.config_file("deepspeed_zero2").read_text())["deepspeed_config"]
    assert zero["zero_stage"] == 2


def test_config_table_describes_every_shipped_config():
    table = distributed.config_table()
    assert list(table.index) == ["cpu_ddp", "ddp", "deepspeed_zero2", "fsdp"]
    assert table.loc["fsdp", "distributed_type"] == "FSDP" and "sharded" in table.loc["fsdp", "what it changes"]
    assert (table["processes"] == 2).all() and table["what it changes"].str.len().min() > 80


def test_batch_plan_keeps_the_effective_batch():
    assert distributed.batch_plan(64, 1, 8) == {"devices": 1, "per_device": 8, "accumulation": 8, "effective": 64}
    assert distributed.batch_plan(64, 4, 8) == {"devices": 4, "per_device": 8, "accumulation": 2, "effective": 64}
    assert distributed.batch_plan(64, 8, 16)["accumulation"] == 1
    assert distributed.batch_plan(48, 2, 5) == {"devices": 2, "per_device": 4, "accumulation": 6, "effective": 48}
    with pytest.raises(ValueError, match="split evenly over 3"):
        distributed.batch_plan(64, 3, 8)
    with pytest.raises(ValueError, match=">= 1"):
        distributed.batch_plan(64, 0, 8)


def test_preset_overrides_parse_by_field_type_and_refuse_nonsense():
    tiny = PRESETS["tiny"]
    p = override(tiny, ["sft_live.max_steps=4", "shipped_sft=false", "sft_live.learning_rate=1e-3",
                        "deploy.formats=f16,q8_0", "preference=none", "sft_mix.tool_use=64"])
    assert p.sft_live.max_steps == 4 and p.sft_live.learning_rate == 1e-3 and p.shipped_sft is False
    assert p.deploy.formats == ("f16", "q8_0") and p.preference is None and p.name == "tiny"
    assert p.sft_mix.tool_use == 64  # an empty optional field takes a number
    assert tiny.sft_live.max_steps == 40  # the registry's preset is untouched
    for bad, message in (("sft.max_step=4", "no field 'max_step'"), ("sft.max_steps", "FIELD=VALUE"),
                         ("sft.max_steps=four", "invalid literal"), ("shipped_sft=yes", "true or false"),
                         ("deploy.formats=q3_k", "formats must be")):
        with pytest.raises(ValueError, match=message):
            override(tiny, [bad])


def test_a_second_process_builds_but_does_not_write(tmp_path, monkeypatch):
    from lfm_helpers.artifacts import write_artifact

    def build(out):
        (out / "weights.bin").write_text("w")
        return {"loss": 1.0}

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    art = write_artifact(tmp_path / "sft", build, stage="sft", preset="tiny", config={"a": 1})
    assert art.metrics == {"loss": 1.0} and not (tmp_path / "sft").exists() and not list(tmp_path.iterdir())
    monkeypatch.setenv("RANK", "0")
    art = write_artifact(tmp_path / "sft", build, stage="sft", preset="tiny", config={"a": 1})
    assert (tmp_path / "sft" / "weights.bin").is_file()


def test_training_memory_per_device():
    one = distributed.training_memory(1_000_000_000, 1, "ddp")
    assert one == {"weights": 2.0, "gradients": 2.0, "optimizer": 12.0, "total": 16.0}
    assert distributed.training_memory(1_000_000_000, 8, "ddp")["total"] == 16.0  # DDP replicates
    assert distributed.training_memory(1_000_000_000, 4, "zero2")["total"] == 2.0 + 14.0 / 4
    assert distributed.training_memory(1_000_000_000, 4, "fsdp")["total"] == 4.0
    with pytest.raises(ValueError, match="strategies"):
        distributed.training_memory(1, 1, "zero4")
    table = distributed.training_memory_table(devices=(1, 4))
    row = table.set_index(["model", "strategy", "devices"])["GB per device"]
    assert row[("LFM2-350M", "ddp", 1)] == row[("LFM2-350M", "ddp", 4)] == round(354_483_968 * 16 / 1e9, 2)
    assert row[("LFM2-1.2B", "fsdp", 4)] < row[("LFM2-1.2B", "zero2", 4)] < row[("LFM2-1.2B", "ddp", 4)]


# --------------------------------------------------------------------------- two processes
def _stage(runs, stage):
    folder = runs / "tiny" / stage
    return json.loads((folder / "manifest.json").read_text())["metrics"], json.loads((folder / "history.json").read_text())


def _same_trajectory(one, two):
    assert one["step"] == two["step"] and len(one["loss"]) == len(two["loss"]) > 0
    worst = max(abs(a - b) / abs(a) for a, b in zip(one["loss"], two["loss"]))
    assert worst < LOSS_TOLERANCE, f"losses differ by up to {worst:.2e}: {one['loss']} vs {two['loss']}"


@pytest.mark.slow
def test_sft_and_pretraining_stages_on_two_processes_follow_one_process(tmp_path):
    """The README's scale-out command: `accelerate launch --config_file configs/accelerate/cpu_ddp.yaml
    -m lfm_helpers run STAGE`, on the tiny preset with a few steps."""
    import os

    runs = tmp_path / "runs"
    env = {**os.environ, "LFM_RUNS_DIR": str(runs), "LFM_PRESET": "tiny"}
    short = ["sft_live.max_steps=3", "sft_live.batch_size=8", "sft_mix.val_rows=0", "sft_mix.tool_use=64"]
    runs_ = distributed.one_and_two_processes("sft_live", short, runs_dir=runs)
    metrics1, metrics2 = runs_["one"]["metrics"], runs_["launched"]["metrics"]
    assert (metrics1["processes"], metrics2["processes"]) == (1, 2)
    assert metrics1["effective_batch"] == metrics2["effective_batch"] == 8
    _same_trajectory(runs_["one"]["history"], runs_["launched"]["history"])
    table = distributed.loss_comparison(runs_["one"]["history"], runs_["launched"]["history"])
    assert len(table) == 3 and (table["relative difference"] < LOSS_TOLERANCE).all()
    with pytest.raises(ValueError, match="different steps"):
        distributed.loss_comparison({"step": [1], "loss": [1.0]}, {"step": [2], "loss": [1.0]})
    with pytest.raises(RuntimeError, match="failed"):
        distributed.run_module(["run", "no_such_stage"], env=env)

    pretrain = ["run", "pretrain", "--preset", "tiny", "--set", "pretrain.max_steps=3",
                "--set", "pretrain.warmup_steps=1"]
    distributed.run_module(pretrain, env=env)
    _, one = _stage(runs, "pretrain")
    distributed.launch([*pretrain, "--force"], env=env)
    _, two = _stage(runs, "pretrain")
    _same_trajectory(one, two)
    assert not list((runs / "tiny").glob(".*tmp-*"))  # the second process left nothing behind
