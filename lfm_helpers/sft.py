"""Supervised fine-tuning (SFT) on the two narrow tasks, with TRL's ``SFTTrainer``.

SFT turns a base model, which only continues text, into an assistant for *our* tasks: given the
chat template's system / user turns it must write the JSON object, or the tool call and then the
answer. The data is conversational (``{"messages": [...], "tools": ...}``), rendered by the chat
template from the foundation, and the loss is computed **only on assistant tokens**
(``assistant_only_loss=True``): the template wraps each assistant turn in
``{% generation %}``, so the system prompt, the user's text and the tool results are context the
model reads but is never trained to write. :func:`assistant_token_mask` shows which tokens train.

Two variants share everything but the weights they update:

- **full fine-tuning**: every weight moves (the ``sft`` stage, which later stages start from);
- **LoRA**: the base is frozen and low-rank adapters on LFM2's projections train
  (``lfm_helpers.finetune.LFM2_LORA_TARGETS``); the adapters are merged into the weights before
  saving, so later stages load either result the same way (the ``sft_lora`` stage).

On the ``tiny`` preset each takes about 30 minutes at its full budget, so their results are
shipped (``lfm_helpers.shipped``) and notebook 04 trains the ``sft_live`` stage, the same code on
a short budget, in front of the learner.

Sequences are padded, not packed: packing several conversations into one row needs attention
*and* convolution to reset at every boundary, and LFM2's short convolutions would otherwise
read the end of one conversation into the start of the next. Batches are grouped by length
where the installed transformers can, so little compute goes to padding.

What is simplified: one fixed mixture of the two tasks (no general chat data on the tiny preset),
a short budget, and validation loss on a fixed slice of the validation split.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .presets import Preset, SFTMix, TrainBudget


# --------------------------------------------------------------------------- data
def extraction_example(row: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """One extraction row as a training conversation (no tools offered)."""
    from .data import extraction_messages

    return {"messages": extraction_messages(row, schemas), "tools": None, "task": "extraction"}


def tool_use_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """One tool-use row as a training conversation; the offered tools' schemas travel as JSON
    text (TRL renders a ``tools`` column through the chat template; a string keeps the dataset's
    column type simple, since schemas differ in shape)."""
    from .tools import tool_schemas

    return {"messages": [dict(m) for m in row["messages"]], "tools": json.dumps(tool_schemas(row["tools"])),
            "task": "tool_use"}


def sft_examples(split: str, mix: SFTMix, *, seed: int = 0) -> list[dict[str, Any]]:
    """The training (or validation) conversations a mixture asks for, shuffled with ``seed``.

    ``mix.extraction`` / ``mix.tool_use`` are row counts taken from the start of each split
    (``None``: all rows); the generators shuffled the files, so a prefix covers every family.
    Other splits take ``mix.val_rows`` rows of each task the mixture trains on (a task at 0 rows
    is not read at all, so a data folder may lack it).
    """
    import random

    from .data import load_schemas, load_split

    schemas = load_schemas()
    ext = load_split("extraction", split) if mix.extraction != 0 else []
    tool = load_split("tool_use", split) if mix.tool_use != 0 else []
    if split == "train":
        ext, tool = ext[: mix.extraction], tool[: mix.tool_use]
    else:
        ext, tool = ext[: mix.val_rows], tool[: mix.val_rows]
    examples = [extraction_example(r, schemas) for r in ext] + [tool_use_example(r) for r in tool]
    if not examples:
        raise ValueError(f"the mixture {mix} selects no {split} rows")
    random.Random(seed).shuffle(examples)
    return examples


def _tools_of(example: Mapping[str, Any]):
    tools = example.get("tools")
    return json.loads(tools) if isinstance(tools, str) else tools


def assistant_token_mask(tokenizer, example: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """``(input_ids, mask)`` of one conversation, ``mask[i] = 1`` where token ``i`` is trained on.

    This is the mask TRL builds with ``assistant_only_loss=True``: the chat template's
    ``{% generation %}`` marks assistant content and its ``<|im_end|>``.
    """
    out = tokenizer.apply_chat_template(example["messages"], tools=_tools_of(example), tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def show_mask(tokenizer, example: Mapping[str, Any]) -> str:
    """The rendered conversation with trained spans in ``[[...]]`` and everything else as it is:
    a quick way to see that only the assistant's words (and its end-of-turn) carry loss."""
    ids, mask = assistant_token_mask(tokenizer, example)
    pieces, current, state = [], [], 0
    for tok_id, m in zip(ids, mask, strict=True):
        if m != state and current:
            text = tokenizer.decode(current)
            pieces.append(f"[[{text}]]" if state else text)
            current = []
        current.append(tok_id)
        state = m
    if current:
        text = tokenizer.decode(current)
        pieces.append(f"[[{text}]]" if state else text)
    return "".join(pieces)


# --------------------------------------------------------------------------- trainer config
def _accepted(cls, **kwargs: Any) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def trainer_device_args(config_cls, on_gpu: bool | None = None) -> dict[str, Any]:
    """Precision and checkpointing arguments for a TRL config class, by device.

    On a GPU: bf16 where supported, else fp16. On a CPU the TRL defaults are switched off
    explicitly (``bf16=True`` would train in a CPU autocast about 17x slower). Gradient (since
    transformers 5.24: activation) checkpointing, which TRL turns on, is switched off: it trades
    speed for memory these small runs have.
    """
    on_gpu = torch.cuda.is_available() if on_gpu is None else on_gpu
    args = (dict(bf16=torch.cuda.is_bf16_supported(), fp16=not torch.cuda.is_bf16_supported())
            if on_gpu else dict(use_cpu=True, bf16=False, fp16=False))
    return args | (_accepted(config_cls, activation_checkpointing=False) or {"gradient_checkpointing": False})


def sft_config(budget: TrainBudget, output_dir: Path | str, *, seed: int = 0, eval_steps: int | None = None,
               on_gpu: bool | None = None, group_by_length: bool = True):
    """The ``trl.SFTConfig`` of a budget: conversational data, loss on assistant tokens only.

    On a CPU the TRL defaults are switched off explicitly (``bf16=True`` would train in a CPU
    autocast about 17x slower; gradient checkpointing only trades speed for memory we have).
    ``group_by_length`` batches conversations of similar length together, so little compute goes
    to padding (a tool-use conversation with its tool list is 2-4x longer than an extraction). It
    sorts each block of 50 batches longest-first, though, so a run shorter than a block would see
    only the longest conversations: short runs (``sft_live``, the cold-start runs) sample at random.
    It is passed only where the installed transformers knows it (the Unsloth environment's older
    release does not), and likewise the new name of gradient checkpointing. Launched on several
    processes (``accelerate launch``), each takes an equal share of the batch, so the effective
    batch stays ``budget.batch_size``.
    """
    from trl import SFTConfig

    from .distributed import per_device_batch

    optional = _accepted(SFTConfig, train_sampling_strategy="group_by_length") if group_by_length else {}
    batch = per_device_batch(budget.batch_size)  # launched on N processes: each takes 1/N of the batch
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=budget.max_steps,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        learning_rate=budget.learning_rate,
        warmup_steps=budget.warmup_steps,
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=budget.seq_len,
        assistant_only_loss=True,
        packing=False,
        logging_steps=max(1, budget.max_steps // 50),
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        **trainer_device_args(SFTConfig, on_gpu),
        **optional,
    )


@dataclass
class SFTHistory:
    """What the run logged: training loss and token accuracy per logging step, validation loss."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    token_accuracy: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _history_callback(history: SFTHistory, plot=None):
    from transformers import TrainerCallback

    class Record(TrainerCallback):
        """Copies the trainer's logs into ``history`` (and redraws a live plot)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                history.step.append(state.global_step)
                history.loss.append(float(logs["loss"]))
                history.token_accuracy.append(float(logs.get("mean_token_accuracy", float("nan"))))
            if "eval_loss" in logs:
                history.val_step.append(state.global_step)
                history.val_loss.append(float(logs["eval_loss"]))
            if plot is not None:
                plot.update({"train": (history.step, history.loss), "validation": (history.val_step, history.val_loss)})

    return Record()


def train_sft(model, tokenizer, train: Sequence[Mapping[str, Any]], val: Sequence[Mapping[str, Any]],
              budget: TrainBudget, output_dir: Path | str, *, seed: int = 0, live_plot: bool = False,
              title: str = "SFT", group_by_length: bool = True) -> dict[str, Any]:
    """Run ``SFTTrainer`` on conversational examples; return the history and speed.

    The model is trained in place (a ``PeftModel`` trains its adapters only). Validation loss
    (on assistant tokens, like the training loss) is computed five times during the run.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    if not train:
        raise ValueError("no training examples")
    bad = [i for i, ex in enumerate(train[:50]) if not ex.get("messages") or "role" not in ex["messages"][0]]
    if bad:
        raise ValueError(f"training examples {bad} are not conversations ({{'messages': [{{'role', 'content'}}]}})")
    columns = ("messages", "tools")
    train_ds = Dataset.from_list([{k: ex.get(k) for k in columns} for ex in train])
    val_ds = Dataset.from_list([{k: ex.get(k) for k in columns} for ex in val]) if val else None
    args = sft_config(budget, output_dir, seed=seed, eval_steps=max(1, budget.max_steps // 5) if val else None,
                      group_by_length=group_by_length)
    history = SFTHistory()
    plot = None
    if live_plot:
        from .liveplot import LivePlot

        plot = LivePlot(title, "step", "loss (assistant tokens)")
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                         processing_class=tokenizer, callbacks=[_history_callback(history, plot)])
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"history": dataclasses.asdict(history), "wall_time_s": round(wall, 1),
            "train_loss": round(float(result.training_loss), 4),
            "final_val_loss": history.val_loss[-1] if history.val_loss else None,
            "trainable_params": trainable, "steps": int(result.global_step), "processes": args.world_size,
            "effective_batch": args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps}


# --------------------------------------------------------------------------- stages
def sft_training_config(preset: Preset, *, lora: bool) -> dict[str, Any]:
    """What an SFT run depends on: budget, mixture, method, the data files and the seed."""
    from .pipeline import data_fingerprint

    budget = preset.sft_lora if lora else preset.sft
    return {"train": dataclasses.asdict(budget), "mix": dataclasses.asdict(preset.sft_mix),
            "method": {"lora_rank": preset.lora_rank} if lora else "full",
            "data": {t: data_fingerprint(f"{t}/train.jsonl") for t in ("extraction", "tool_use")},
            "seed": preset.seed}


def _sft_stage_config(preset: Preset, *, lora: bool) -> dict[str, Any]:
    if preset.shipped_sft:
        from .shipped import read_shipped

        return {"source": "shipped", "manifest": read_shipped(preset, _stage_name(lora))}
    return sft_training_config(preset, lora=lora)


def _stage_name(lora: bool) -> str:
    return "sft_lora" if lora else "sft"


def lora_spec(preset: Preset):
    """The LoRA adapter a preset trains (``alpha = 2 r`` on LFM2's projections)."""
    from .finetune import LoraSpec

    return LoraSpec(r=preset.lora_rank, alpha=2 * preset.lora_rank)


def finetune_from(source: Path | str, preset: Preset, out: Path, scratch: Path, *, budget: TrainBudget,
                  mix: SFTMix, lora: bool = False, title: str = "SFT", group_by_length: bool = True,
                  live_plot: bool = True) -> dict[str, Any]:
    """Fine-tune the checkpoint at ``source`` on ``mix`` and save the result (LoRA merged) to ``out``.

    ``mix.val_rows == 0`` trains without validation; ``live_plot=False`` draws no loss curve in
    a notebook (for runs made in a loop, where a progress bar over the runs says more).

    Returns the stage metrics: losses, trainable parameters, backend and wall time. Task metrics
    come from :func:`lfm_helpers.evaluate.evaluate_stage`, which caches them per artifact.
    """
    from .finetune import backend_for, load_for_finetuning
    from .liveplot import in_notebook
    from .tokenizer import save_tokenizer

    model, tokenizer, backend = load_for_finetuning(source, lora=lora_spec(preset) if lora else None,
                                                    max_seq_length=budget.seq_len, backend=backend_for(preset))
    total = sum(p.numel() for p in model.parameters())
    train = sft_examples("train", mix, seed=preset.seed)
    val = sft_examples("val", mix, seed=preset.seed) if mix.val_rows else []
    result = train_sft(model, tokenizer, train, val, budget, scratch / "trainer", seed=preset.seed,
                       live_plot=live_plot and in_notebook(), title=title, group_by_length=group_by_length)
    if lora:
        model.save_pretrained(out / "adapter")  # the adapters alone (what ship-sft ships)
        model = model.merge_and_unload()  # plain weights: later stages load it like any checkpoint
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / "history.json").write_text(json.dumps(result.pop("history")))
    by_task = {t: sum(ex["task"] == t for ex in train) for t in ("extraction", "tool_use")}
    return {**result, "backend": backend, "total_params": total, "train_examples": len(train),
            "train_by_task": by_task, "trainable_share": round(result["trainable_params"] / total, 4)}


def _build_sft(ctx, *, lora: bool) -> dict[str, Any]:
    p = ctx.preset
    if p.shipped_sft:
        from .shipped import install_shipped

        return install_shipped(p, _stage_name(lora), ctx.deps["base"], ctx.out)
    return finetune_from(ctx.deps["base"].path, p, ctx.out, ctx.scratch, budget=p.sft_lora if lora else p.sft,
                         mix=p.sft_mix, lora=lora, title="SFT (LoRA)" if lora else "SFT (full fine-tuning)")


def _live(preset: Preset) -> Preset:
    """The preset with its live budget as the SFT budget."""
    return dataclasses.replace(preset, sft=preset.sft_live or preset.sft)


def _register() -> None:
    from .pipeline import Stage, register

    register(Stage(
        name="sft",
        description="Full supervised fine-tuning of the base on both narrow tasks (TRL SFTTrainer).",
        deps=("base",),
        config=lambda p: _sft_stage_config(p, lora=False),
        build=lambda ctx: _build_sft(ctx, lora=False),
    ))
    register(Stage(
        name="sft_live",
        description="A short full SFT run from the base (notebook 04 trains it live; the budget is sft_live).",
        deps=("base",),
        config=lambda p: {**sft_training_config(_live(p), lora=False), "sampler": "random"},
        build=lambda ctx: finetune_from(ctx.deps["base"].path, ctx.preset, ctx.out, ctx.scratch,
                                        budget=_live(ctx.preset).sft, mix=ctx.preset.sft_mix, group_by_length=False,
                                        title=f"SFT, live ({_live(ctx.preset).sft.max_steps} steps)"),
    ))
    register(Stage(
        name="sft_lora",
        description="The same SFT with LoRA adapters on LFM2's projections, merged into the weights.",
        deps=("base",),
        config=lambda p: _sft_stage_config(p, lora=True),
        build=lambda ctx: _build_sft(ctx, lora=True),
    ))


_register()
from . import preference as _preference  # noqa: E402,F401  (its stages build on "sft"; see pipeline.py)
from . import merge_study as _merge_study  # noqa: E402,F401  (its stages build on "sft_live")
from . import deploy as _deploy  # noqa: E402,F401  (its export stage builds on "sft")


# --------------------------------------------------------------------------- cold start
def cold_start_experiment(preset: Preset, *, log=print) -> list[dict[str, Any]]:
    """SFT runs that differ only in how many tool-use rows they see, and the reward signal each
    leaves for RL on the tool-use task (``evaluate.reward_signal`` on validation prompts).

    Each run is an artifact (``runs/<preset>/cold_start/tool_use-<rows>``), so the experiment is
    trained once and re-read afterwards. All runs start from the same base with the same steps
    and the full extraction data; only the tool-use rows change.
    """
    from .artifacts import artifact_dir, atomic_write_text, config_hash, ensure_artifact
    from .data import load_split
    from .evaluate import reward_signal
    from .models import load_model
    from .pipeline import run_stage
    from .tokenizer import load_tokenizer

    cs = preset.cold_start
    base = run_stage("base", preset, log=log)
    budget = dataclasses.replace(preset.sft, max_steps=cs.steps, batch_size=cs.batch_size)
    val_rows = load_split("tool_use", "val")
    results = []
    for rows in cs.tool_use_rows:
        mix = dataclasses.replace(preset.sft_mix, tool_use=rows)
        config = {"base": base.config_hash, "train": dataclasses.asdict(budget), "mix": dataclasses.asdict(mix),
                  "seed": preset.seed, "sampler": "random"}
        path = artifact_dir(preset.name, f"cold_start/tool_use-{rows}")
        scratch = path.parent / ".scratch" / f"{path.name}-{config_hash(config)}"

        def build(out, mix=mix):
            return finetune_from(base.path, preset, out, scratch, budget=budget, mix=mix, group_by_length=False,
                                 title=f"SFT with {mix.tool_use} tool-use rows")

        art = ensure_artifact(path, build, stage=f"cold_start/tool_use-{rows}", preset=preset.name,
                              config=config, log=log)
        signal_path = art.path.parent / f"{art.path.name}.signal-{config_hash({'a': art.config_hash, 'cs': dataclasses.asdict(cs)})}.json"
        if signal_path.is_file():
            signal = json.loads(signal_path.read_text())
        else:
            model, tok = load_model(art.path), load_tokenizer(art.path)
            signal = reward_signal(model, tok, val_rows, prompts=cs.prompts, samples=cs.samples,
                                   temperature=cs.temperature, max_new_tokens=preset.eval.max_new_tokens,
                                   seed=preset.seed, batch_size=preset.eval.batch_size)
            atomic_write_text(signal_path, json.dumps(signal))
        used = art.metrics["train_by_task"]["tool_use"]
        results.append({"tool_use_rows": used, "tool_use_share": round(used / art.metrics["train_examples"], 4),
                        **signal})
    return results
