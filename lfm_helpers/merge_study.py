"""Notebook 08's experiments: specialists, interference, merges, and curriculum with merging.

Everything starts from notebook 04's short live SFT run (``sft_live``), which does both tasks a
little. (From the shipped 800-step ``sft`` model, a CPU-sized run on one task measured no gain:
24 steps at lr 2e-4 changed neither task loss, at 1e-3 both got worse.) The
``specialist_extraction`` and ``specialist_tool_use`` stages each train on one task only;
``multitask`` trains on both with the steps of the two together. Each model is measured on both
tasks, cheaply by :func:`task_losses` (loss per answer token on each task's validation
conversations, one forward pass each: what the merge sweep uses) and fully by the evaluation
harness (generation on the test split, for the models worth it).

:func:`merge_sweep` merges the two specialists with each method across its main parameter
(:mod:`lfm_helpers.merge`, mergekit underneath); the ``merge`` stage saves the best merge of the
sweep (lowest mean task loss). The ``merge_curriculum`` stage compares two ways to teach both
tasks over rounds with the same steps: sequential (extraction, then tool use, every round) and
iterative merging (both specialists trained from the current model, then merged, every round).

Simplified: one seed, short runs, and task loss as the sweep's yardstick (a generation
evaluation of every merge would cost about a minute each on a CPU).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from .merge import MergeSpec, merge_models
from .presets import MergeBudget, Preset, SFTMix, TrainBudget

TASKS = ("extraction", "tool_use")
#: Validation rows per task behind each run's live loss curve (the tables use ``val_rows``).
LIVE_VAL_ROWS = 8
SPECIALISTS = ("specialist_extraction", "specialist_tool_use")


def _budget(preset: Preset) -> MergeBudget:
    if preset.merging is None:
        raise ValueError(f"preset {preset.name!r} has no merge budget (notebook 08)")
    return preset.merging


def _mix(budget: MergeBudget, task: str | None, train: TrainBudget | None = None) -> SFTMix:
    """The first ``steps x batch`` rows of one task (or of each task: the multitask run has twice
    the steps), so a run sees each row once; every curriculum round revisits the same rows, as
    an epoch would."""
    train = train or budget.specialist
    rows = train.max_steps * train.batch_size
    if task == "extraction":
        return SFTMix(extraction=rows, tool_use=0, val_rows=LIVE_VAL_ROWS)
    if task == "tool_use":
        return SFTMix(extraction=0, tool_use=rows, val_rows=LIVE_VAL_ROWS)
    return SFTMix(extraction=rows, tool_use=rows, val_rows=LIVE_VAL_ROWS)


@torch.no_grad()
def task_losses(model, tokenizer, *, rows: int, split: str = "val") -> dict[str, float]:
    """Mean loss per assistant token on the first ``rows`` conversations of each task's
    ``split``: how well the model predicts the reference answers, one forward pass each."""
    from .data import load_schemas, load_split
    from .sft import assistant_token_mask, extraction_example, tool_use_example

    schemas = load_schemas()
    device = next(model.parameters()).device
    model.eval()
    out = {}
    for task in TASKS:
        total, count = 0.0, 0
        for row in load_split(task, split)[:rows]:
            example = extraction_example(row, schemas) if task == "extraction" else tool_use_example(row)
            ids, mask = assistant_token_mask(tokenizer, example)
            x = torch.tensor([ids], device=device)
            logits = model(x).logits[0, :-1].float()
            target = torch.tensor(ids[1:], device=device)
            keep = torch.tensor(mask[1:], device=device).bool()
            loss = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")
            total, count = total + float(loss), count + int(keep.sum())
        out[task] = round(total / count, 4)
    return out


def folder_losses(folder: Path | str, *, rows: int) -> dict[str, float]:
    """:func:`task_losses` of the checkpoint in ``folder``."""
    from .models import load_model
    from .tokenizer import load_tokenizer

    return task_losses(load_model(folder), load_tokenizer(folder), rows=rows)


def sweep_specs(budget: MergeBudget, a: str, b: str, base: str) -> list[tuple[str, float, MergeSpec]]:
    """(method, parameter value, spec) for every merge of the sweep: ``linear`` across the
    weight of ``b``, ``slerp`` across ``t`` (from ``a`` to ``b``), ``task_arithmetic`` across the
    scale of both task vectors (their differences from ``base``, the start of both runs),
    ``ties`` and ``dare_ties`` across density (equal weights, normalised: mergekit normalises
    TIES by default but not DARE, which would make DARE a sum of the two and TIES an average)."""
    specs = [("linear", w, MergeSpec("linear", (a, b), weights=(1 - w, w))) for w in budget.weights]
    specs += [("slerp", t, MergeSpec("slerp", (b,), base=a, t=t)) for t in budget.weights]
    specs += [("task_arithmetic", s, MergeSpec("task_arithmetic", (a, b), weights=(s, s), base=base))
              for s in budget.scales]
    for method in ("ties", "dare_ties"):
        specs += [(method, d, MergeSpec(method, (a, b), weights=(1.0, 1.0), base=base, density=d, normalize=True,
                                        seed=budget.seed)) for d in budget.densities]
    return specs


def merge_sweep(preset: Preset, *, log=print) -> list[dict[str, Any]]:
    """Merge the two specialists with every spec of :func:`sweep_specs` and measure each merge's
    task losses; one row per merge."""
    from .pipeline import run_stage
    from tqdm.auto import tqdm

    budget = _budget(preset)
    a, b = (str(run_stage(s, preset, log=log).path) for s in SPECIALISTS)
    base = str(run_stage("sft_live", preset, log=log).path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (method, value, spec) in enumerate(tqdm(sweep_specs(budget, a, b, base), desc="merges")):
            out = Path(tmp) / f"m{i}"
            merge_models(spec, out)
            rows.append({"method": method, "value": value, **folder_losses(out, rows=budget.val_rows)})
    return rows


def best_spec(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sweep row with the lowest mean task loss."""
    if not rows:
        raise ValueError("no merges to choose from")
    return min(rows, key=lambda r: statistics.fmean(r[t] for t in TASKS))


# --------------------------------------------------------------------------- curriculum
SCHEDULES = ("sequential", "merged")


def _curriculum(ctx) -> dict[str, Any]:
    """``rounds`` rounds of each schedule, ``curriculum_steps`` steps per task per round, both
    from ``sft_live``: sequential (extraction, then tool use, continuing from where it is) and
    merged (both specialists trained from the current model, then merged linearly at equal
    weights). Task losses after every round; the final model of each schedule is saved in the
    artifact's ``sequential/`` and ``merged/`` folders for the evaluation harness."""
    from .sft import finetune_from

    from tqdm.auto import tqdm

    budget = _budget(ctx.preset)
    train = dataclasses.replace(budget.specialist, max_steps=budget.curriculum_steps)
    bar = tqdm(total=budget.rounds * 2 * len(TASKS), desc="curriculum runs")

    def steps(source: str, task: str, out: Path) -> str:
        # no validation and no live curve: each round's task losses are measured below
        out.mkdir(parents=True, exist_ok=True)
        mix = dataclasses.replace(_mix(budget, task, train), val_rows=0)
        finetune_from(source, ctx.preset, out, ctx.scratch / "trainer", budget=train, mix=mix,
                      group_by_length=False, live_plot=False)
        bar.update()
        return str(out)

    work = ctx.scratch / "rounds"
    current = {name: str(ctx.deps["sft_live"].path) for name in SCHEDULES}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEDULES}
    for r in range(1, budget.rounds + 1):
        for task in TASKS:
            current["sequential"] = steps(current["sequential"], task, work / f"seq-{r}-{task}")
        parts = tuple(steps(current["merged"], task, work / f"mrg-{r}-{task}") for task in TASKS)
        current["merged"] = str(work / f"mrg-{r}")
        merge_models(MergeSpec("linear", parts, weights=(0.5, 0.5)), current["merged"], overwrite=True)
        for name in SCHEDULES:
            rounds[name].append({"round": r, **folder_losses(current[name], rows=budget.val_rows)})
    bar.close()
    for name in SCHEDULES:
        shutil.copytree(current[name], ctx.out / name)
    return {"rounds": rounds, "steps_per_schedule": budget.rounds * len(TASKS) * budget.curriculum_steps}


def curriculum_folders(artifact) -> dict[str, Path]:
    """The final model of each schedule of a ``merge_curriculum`` artifact."""
    return {name: Path(artifact.path) / name for name in SCHEDULES}


# --------------------------------------------------------------------------- stages
#: The budget fields each stage's result depends on (so a change to the sweep retrains nothing).
_FIELDS = {"specialist": ("specialist", "val_rows"),
           "merge": ("specialist", "val_rows", "weights", "scales", "densities", "seed"),
           "merge_curriculum": ("specialist", "val_rows", "rounds", "curriculum_steps")}


def _config(preset: Preset, part: str) -> dict[str, Any]:
    from .pipeline import data_fingerprint

    budget = dataclasses.asdict(_budget(preset))
    fields = _FIELDS["specialist" if part in (*SPECIALISTS, "multitask") else part]
    config = {"part": part, "merging": {f: budget[f] for f in fields}, "live_val_rows": LIVE_VAL_ROWS,
              "seed": preset.seed, "data": {t: data_fingerprint(f"{t}/train.jsonl") for t in TASKS}}
    if part == "merge":  # how the sweep's merges are made, not just their parameters
        config["specs"] = [spec.config() for _, _, spec in sweep_specs(_budget(preset), "a", "b", "base")]
    return config


def _build_specialist(ctx, task: str | None) -> dict[str, Any]:
    from .sft import finetune_from

    budget = _budget(ctx.preset)
    train = budget.specialist if task else dataclasses.replace(budget.specialist,
                                                               max_steps=2 * budget.specialist.max_steps)
    metrics = finetune_from(ctx.deps["sft_live"].path, ctx.preset, ctx.out, ctx.scratch, budget=train,
                            mix=_mix(budget, task), title=f"{task or 'multitask'} SFT",
                            group_by_length=False)
    return {**metrics, "task_losses": folder_losses(ctx.out, rows=budget.val_rows)}


def _build_merge(ctx) -> dict[str, Any]:
    budget = _budget(ctx.preset)
    rows = merge_sweep(ctx.preset)
    best = best_spec(rows)
    a, b = (str(ctx.deps[s].path) for s in SPECIALISTS)
    spec = next(s for m, v, s in sweep_specs(budget, a, b, str(ctx.deps["sft_live"].path))
                if m == best["method"] and v == best["value"])
    merge_models(spec, ctx.out, overwrite=True)
    (ctx.out / "sweep.json").write_text(json.dumps(rows, indent=1))
    return {"best": best, "merges": len(rows)}


def load_sweep(artifact) -> list[dict[str, Any]]:
    """The sweep a ``merge`` artifact measured (``sweep.json``)."""
    return json.loads((Path(artifact.path) / "sweep.json").read_text())


def _register() -> None:
    from .pipeline import Stage, register

    for name, task in (("specialist_extraction", "extraction"), ("specialist_tool_use", "tool_use"),
                       ("multitask", None)):
        what = f"{task} only" if task else "both tasks, with the steps of the two specialists together"
        register(Stage(name=name, description=f"SFT from sft_live on {what} (notebook 08).",
                       deps=("sft_live",), config=lambda p, n=name: _config(p, n),
                       build=lambda ctx, t=task: _build_specialist(ctx, t)))
    register(Stage(name="merge", description="The best merge of the two specialists over a sweep of methods.",
                   deps=("sft_live", "specialist_extraction", "specialist_tool_use"), config=lambda p: _config(p, "merge"),
                   build=_build_merge))
    register(Stage(name="merge_curriculum", description="Two curricula over rounds: sequential, and iterative merging.",
                   deps=("sft_live",), config=lambda p: _config(p, "merge_curriculum"), build=_curriculum))


_register()


# --------------------------------------------------------------------------- task metrics
#: The headline rate of each task (the evaluation harness's names).
HEADLINE = {"field exact match": ("extraction", "field_exact_match"), "valid JSON": ("extraction", "valid_json"),
            "right tool": ("tool_use", "call_name"), "tool-call accuracy": ("tool_use", "call_accuracy")}


def task_metrics(folder: Path | str, preset: Preset) -> dict[str, Any]:
    """Both tasks' evaluation reports of the checkpoint in ``folder`` on the test split, on the
    budget's ``eval_examples`` examples each (fewer than notebook 04's, to keep the sweep fast)."""
    from .evaluate import evaluate

    n = _budget(preset).eval_examples
    return {task: evaluate(str(folder), task, "test", preset, n=n) for task in TASKS}


def metrics_table(reports: dict[str, dict[str, Any]]):
    """One row per model: each headline rate, with its 95% interval."""
    import pandas as pd

    rows = {}
    for name, by_task in reports.items():
        row = {}
        for label, (task, rate) in HEADLINE.items():
            r = by_task[task].rates[rate]
            lo, hi = r.interval
            row[label] = round(r.value, 3)
            row[f"{label} 95%"] = f"[{lo:.2f}, {hi:.2f}]"
        rows[name] = row
    return pd.DataFrame(rows).T


def headline(reports: dict[str, Any]) -> dict[str, float]:
    """The headline rates of one model's reports (for ``report_metrics``)."""
    return {label: round(reports[task].rates[rate].value, 4) for label, (task, rate) in HEADLINE.items()}


def difference_table(before: dict[str, Any], after: dict[str, Any]):
    """Per headline rate: ``after - before`` and its 95% interval (Newcombe)."""
    import pandas as pd

    from .evaluate import difference_interval

    rows = {}
    for label, (task, rate) in HEADLINE.items():
        diff, lo, hi = difference_interval(after[task].rates[rate], before[task].rates[rate])
        rows[label] = {"difference": round(diff, 3), "95% interval": f"[{lo:+.3f}, {hi:+.3f}]", "clear": lo > 0 or hi < 0}
    return pd.DataFrame(rows).T
