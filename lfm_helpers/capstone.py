"""The capstone (notebook 10): the course's recipe applied to a learner's own narrow task.

A task is a JSON schema and a handful of examples (a text and the JSON it should give). This
module

1. **checks** them (:func:`check_task`): every target is valid against the schema and every value
   appears verbatim in its text, since a small model learns to *copy* values, not to normalise them;
2. turns each example into a **template** (:func:`templates`) by replacing its values with slots;
   the last ``held_out`` examples become held-out test families, phrasings the model never trains on;
3. **generates** a data folder in the course's extraction format (:func:`write_task_data`): the
   templates filled with values drawn from the examples, from lists the learner gives, from the
   schema's integer and number ranges and enums, and random ISO dates for ``"format": "date"``;
4. derives a **preset** (:func:`capstone_preset`, named ``<preset>-capstone-<task>`` so its
   artifacts never replace the course's) that starts from a checkpoint (on ``tiny`` the course's
   SFT model, the nearest thing to an instruct model; on ``colab`` the hub checkpoint) and runs the
   course's stages on that folder: ``sft -> preference -> rl_extraction -> rl_merge ->
   export_merged`` (:func:`run_capstone`).

Simplified: extraction tasks only (a tool list needs an environment to run the calls in, as in
notebook 06); a string field's values come from the examples and the learner's lists (no
paraphrasing model); the values in the text are the values in the JSON (no "March 5" ->
"2025-03-05" normalisation).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .presets import CapstoneBudget, Preset, SFTMix, Sources

#: The stages the capstone runs, in order (each builds on the one before).
CAPSTONE_STAGES = ("sft", "preference", "rl_extraction", "rl_merge", "export_merged")
#: The field types a template can carry (their values are written into the text as they are).
FIELD_TYPES = ("string", "integer", "number")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TaskSpec:
    """A learner's narrow task: ``schema`` (a JSON Schema object whose properties are all
    required), ``examples`` (``{"text": ..., "target": {...}}``), extra ``values`` per field for
    the generator, and how many of the examples (the last ones) are ``held_out`` as test phrasings."""

    name: str
    description: str
    schema: Mapping[str, Any]
    examples: tuple[Mapping[str, Any], ...]
    values: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    held_out: int = 2


@dataclass(frozen=True)
class Template:
    """One example's text with its values replaced by ``{field}`` slots (other braces doubled)."""

    family: str
    pattern: str
    split: str  # "train" (train and val rows) or "test"

    def fill(self, target: Mapping[str, Any]) -> str:
        return self.pattern.format(**{k: render(v) for k, v in target.items()})


def render(value: Any) -> str:
    """How a value is written in a text (and looked for in the examples)."""
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------- loading and checking
def load_task(path: Path | str) -> TaskSpec:
    """A task from a JSON file with ``name``, ``description``, ``schema``, ``examples`` and,
    optionally, ``values`` and ``held_out``; checked by :func:`check_task`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no task file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    allowed = {f.name for f in dataclasses.fields(TaskSpec)}
    unknown, missing = set(data) - allowed, {"name", "description", "schema", "examples"} - set(data)
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                         f"a task has {', '.join(sorted(allowed))}")
    task = TaskSpec(**{**data, "examples": tuple(data["examples"]),
                       "values": {k: tuple(v) for k, v in data.get("values", {}).items()}})
    check_task(task)
    return task


def _validator(schema: Mapping[str, Any]):
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_task(task: TaskSpec) -> None:
    """Raise ``ValueError`` naming the first problem: a bad name or schema, too few examples, a
    target the schema rejects, a value that is not in its text, or a listed value of the wrong type."""
    import jsonschema

    if not _NAME.match(task.name):
        raise ValueError(f"task name {task.name!r}: use lower-case letters, digits and underscores (it names files)")
    schema = task.schema
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(schema, Mapping) or schema.get("type") != "object" or not props:
        raise ValueError("the schema must be a JSON Schema object with properties")
    try:
        validator = _validator(schema)
    except jsonschema.SchemaError as err:
        raise ValueError(f"the schema is not a valid JSON Schema: {err.message}") from None
    for name, spec in props.items():
        if spec.get("type") not in FIELD_TYPES:
            raise ValueError(f"field {name!r} has type {spec.get('type')!r}; the capstone's templates carry "
                             f"{', '.join(FIELD_TYPES)} values (written into the text as they are)")
    if sorted(schema.get("required", [])) != sorted(props):
        raise ValueError("every field must be required (list all properties in 'required')")
    if not 1 <= task.held_out <= len(task.examples) - 2:
        raise ValueError(f"{len(task.examples)} examples and held_out={task.held_out}: hold out at least one and "
                         "keep at least two for training")
    for i, ex in enumerate(task.examples):
        if set(ex) != {"text", "target"} or not isinstance(ex["text"], str) or not isinstance(ex["target"], dict):
            raise ValueError(f"example {i}: expected {{'text': str, 'target': {{...}}}}, got keys {sorted(ex)}")
        errors = sorted(validator.iter_errors(ex["target"]), key=lambda e: list(e.path))
        if errors:
            raise ValueError(f"example {i}: the target does not match the schema: {errors[0].message}")
        _slots(ex["text"], ex["target"], where=f"example {i}")
    for name, values in task.values.items():
        if name not in props:
            raise ValueError(f"values given for {name!r}, which is not a field of the schema")
        field_validator = _validator({**props[name]})
        for v in values:
            if not field_validator.is_valid(v):
                raise ValueError(f"listed value {v!r} of {name!r} does not match the field's schema {props[name]}")


def _slots(text: str, target: Mapping[str, Any], *, where: str) -> list[tuple[int, int, str]]:
    """``(start, end, field)`` of each value in ``text``: longest values first, each at its first
    occurrence that stands alone (not inside a longer number, word or date) and overlaps none found before."""
    taken: list[tuple[int, int, str]] = []
    for name, value in sorted(target.items(), key=lambda kv: -len(render(kv[1]))):
        pattern = re.compile(r"(?<![\w.\-:/])" + re.escape(render(value)) + r"(?![\w\-/]|[.:]\w)")
        span = next((m.span() for m in pattern.finditer(text)
                     if not any(m.start() < e and s < m.end() for s, e, _ in taken)), None)
        if span is None:
            raise ValueError(f"{where}: the value {render(value)!r} of {name!r} is not in the text on its own; "
                             "write each value in the text exactly as in the JSON")
        taken.append((*span, name))
    return sorted(taken)


# --------------------------------------------------------------------------- templates and values
def templates(task: TaskSpec) -> list[Template]:
    """One template per example; the last ``held_out`` examples' are the test families."""
    out = []
    n_train = len(task.examples) - task.held_out
    for i, ex in enumerate(task.examples):
        text, pieces, pos = ex["text"], [], 0
        for start, end, name in _slots(text, ex["target"], where=f"example {i}"):
            pieces += [text[pos:start].replace("{", "{{").replace("}", "}}"), "{" + name + "}"]
            pos = end
        pieces.append(text[pos:].replace("{", "{{").replace("}", "}}"))
        out.append(Template(f"{task.name}.example_{i}", "".join(pieces), "train" if i < n_train else "test"))
    return out


def value_sampler(task: TaskSpec, name: str) -> Callable[[random.Random], Any]:
    """How the generator draws a value of field ``name``: from the schema's enum, a random integer
    or number in the schema's range, a random ISO date for ``"format": "date"``, else one of the
    examples' values and the learner's listed ones."""
    spec = task.schema["properties"][name]
    pool = sorted({json.dumps(ex["target"][name]) for ex in task.examples}
                  | {json.dumps(v) for v in task.values.get(name, ())})
    pool_values = [json.loads(v) for v in pool]
    if "enum" in spec:
        return lambda rng: rng.choice(spec["enum"])
    low, high = spec.get("minimum"), spec.get("maximum")
    if spec["type"] == "integer" and low is not None and high is not None:
        return lambda rng: rng.randint(int(low), int(high))
    if spec["type"] == "number" and low is not None and high is not None:
        return lambda rng: round(rng.uniform(low, high), 2)
    if spec["type"] == "string" and spec.get("format") == "date":
        first = dt.date(2023, 1, 1)
        return lambda rng: (first + dt.timedelta(days=rng.randrange(5 * 365))).isoformat()
    return lambda rng: rng.choice(pool_values)


def generate_rows(task: TaskSpec, split: str, n: int, *, seed: int = 0,
                  exclude: set[str] | None = None) -> list[dict[str, Any]]:
    """``n`` rows of ``split`` in the course's extraction format (``id``, ``record_type``,
    ``family``, ``text``, ``target``), distinct texts (none of ``exclude``); two fields of one
    row never share a value, so each value in a text belongs to one field."""
    part = "test" if split == "test" else "train"
    chosen = [t for t in templates(task) if t.split == part]
    samplers = {name: value_sampler(task, name) for name in task.schema["properties"]}
    validator = _validator(task.schema)
    rng = random.Random(f"{task.name}/{split}/{seed}")
    rows: list[dict[str, Any]] = []
    seen = set(exclude or ())
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could only make {len(rows)} distinct {split} rows of {n}: give more values per field "
                             "(TaskSpec.values) or ask for fewer rows")
        template = rng.choice(chosen)
        target = {name: draw(rng) for name, draw in samplers.items()}
        rendered = [render(v) for v in target.values()]
        if len(set(rendered)) < len(rendered):
            continue
        text = template.fill(target)
        if text in seen:
            continue
        validator.validate(target)
        seen.add(text)
        rows.append({"id": f"{task.name}-{split}-{len(rows):05d}", "record_type": task.name,
                     "family": template.family, "text": text, "target": target})
    return rows


def write_task_data(task: TaskSpec, out: Path, budget: CapstoneBudget, *, seed: int = 0,
                    shipped: Path | None = None) -> dict[str, str]:
    """A data folder for the task: ``extraction/`` holds the task's splits and schema; the other
    tasks' files (corpus, tool use, world) are linked from ``shipped`` (default: the current data
    folder), so every stage reads this folder like the shipped one (``paths.using_data_dir``).
    Returns ``{relative path: sha256}`` of its files."""
    import hashlib

    from .data.generate import MANIFEST, _json_bytes, _jsonl_bytes
    from .paths import data_dir

    shipped = Path(shipped or data_dir())
    out = Path(out)
    train = generate_rows(task, "train", budget.train_rows, seed=seed)
    val = generate_rows(task, "val", budget.val_rows, seed=seed, exclude={r["text"] for r in train})
    test = generate_rows(task, "test", budget.test_rows, seed=seed)
    files = {"extraction/train.jsonl": _jsonl_bytes(train), "extraction/val.jsonl": _jsonl_bytes(val),
             "extraction/test.jsonl": _jsonl_bytes(test),
             "extraction/schemas.json": _json_bytes({task.name: dict(task.schema)})}
    manifest = {k: v for k, v in json.loads((shipped / MANIFEST).read_text())["files"].items()
                if not k.startswith("extraction/")}
    for relative in manifest:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        try:
            (out / relative).hardlink_to(shipped / relative)
        except OSError:
            shutil.copy2(shipped / relative, out / relative)
    for relative, content in files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(content)
        manifest[relative] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest = dict(sorted(manifest.items()))
    (out / MANIFEST).write_bytes(_json_bytes({"files": manifest}))
    return {k: v["sha256"] for k, v in manifest.items()}


# --------------------------------------------------------------------------- the preset and the run
def capstone_preset(task: TaskSpec, preset: Preset, start: str | Path) -> Preset:
    """``preset`` turned to the task: its own name, the checkpoint at ``start`` as the base (and
    its tokenizer), the extraction task alone in every stage, and the preset's capstone budget."""
    budget = preset.capstone
    if budget is None:
        raise ValueError(f"preset {preset.name!r} has no capstone budget")
    if preset.deploy is None:
        raise ValueError(f"preset {preset.name!r} has no deploy budget (the capstone exports its model)")
    return dataclasses.replace(
        preset, name=f"{preset.name}-capstone-{task.name}",
        description=f"{preset.name}, turned to the capstone task {task.name!r}: {task.description}",
        sources=Sources(base_model=str(start), tokenizer=str(start)), base_pretrain=None, shipped_sft=False,
        sft=budget.sft, sft_live=None, sft_mix=SFTMix(extraction=None, tool_use=0, val_rows=budget.val_rows),
        preference=budget.preference, rl=budget.rl, eval=budget.eval,
        deploy=dataclasses.replace(preset.deploy, formats=budget.formats, eval_examples=budget.eval.num_examples),
        loops=None, merging=None)


def start_checkpoint(preset: Preset, *, log: Callable[[str], None] = print) -> str:
    """Where the capstone starts: the hub checkpoint of a preset that has one (``colab``), else the
    course's own SFT model (``tiny``), which already writes JSON for four record types."""
    if preset.sources.base_model is not None:
        return preset.sources.base_model
    from .pipeline import run_stage

    return str(run_stage("sft", preset, log=log).path)


def task_data(task: TaskSpec, preset: Preset, *, log: Callable[[str], None] = print) -> Path:
    """The task's data folder, built once per task and budget (an artifact of the capstone preset)."""
    from .artifacts import artifact_dir, ensure_artifact

    budget = preset.capstone
    config = {"task": dataclasses.asdict(task) | {"examples": list(task.examples)}, "budget": dataclasses.asdict(budget),
              "seed": preset.seed}
    # in a subfolder: the data's MANIFEST.json and the artifact's manifest.json are one file where case is ignored
    art = ensure_artifact(artifact_dir(preset.name, "data"),
                          lambda out: {"files": len(write_task_data(task, out / "data", budget, seed=preset.seed))},
                          stage="data", preset=preset.name, config=json.loads(json.dumps(config)), log=log)
    return art.path / "data"


@dataclass
class CapstoneRun:
    """What :func:`run_capstone` made: the derived preset (which carries the task's data folder)
    and each stage's artifact."""

    task: TaskSpec
    preset: Preset
    artifacts: dict[str, Any]

    @property
    def data(self) -> Path:
        """The task's data folder."""
        return Path(self.preset.data_dir)

    def using_data(self):
        """``with run.using_data():`` reads this task's data (``load_split`` and the like; the
        stages and evaluations of ``run.preset`` read it on their own)."""
        from .paths import preset_data

        return preset_data(self.preset)


def builds_only(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` without the "reusing" lines (each stage reuses its dependencies, so a rerun would
    print dozens of them); what is built, and how long it took, still shows."""
    return lambda message: None if "] reusing " in message else log(message)


def run_capstone(task: TaskSpec, preset: Preset, *, stages: Sequence[str] = CAPSTONE_STAGES,
                 log: Callable[[str], None] = print) -> CapstoneRun:
    """Build (or reuse) the task's data and every stage of the recipe on it; logs what it builds,
    then one line per stage."""
    from .pipeline import run_stage

    check_task(task)
    unknown = [s for s in stages if s not in CAPSTONE_STAGES]
    if unknown:
        raise ValueError(f"unknown capstone stages {unknown}; stages: {', '.join(CAPSTONE_STAGES)}")
    quiet = builds_only(log)
    cap = capstone_preset(task, preset, start_checkpoint(preset, log=quiet))
    # the preset carries its data folder: every stage and evaluation of it reads the task's data,
    # wherever it is called from (run_stage("sft", run.preset) in a later cell, too)
    cap = dataclasses.replace(cap, data_dir=str(task_data(task, cap, log=quiet)))
    run = CapstoneRun(task, cap, {})
    for stage in stages:
        run.artifacts[stage] = run_stage(stage, cap, log=quiet)
    for stage, art in run.artifacts.items():
        log(f"{stage:>14}: {'reused' if art.reused else 'built'}, {art.path}")
    return run


def stage_reports(run: CapstoneRun, *, split: str = "test", log: Callable[[str], None] = print) -> dict[str, Any]:
    """The harness's extraction report of the start checkpoint and of every model stage of a run
    (cached per artifact, like every evaluation of the course)."""
    from .evaluate import evaluate_stage

    quiet = builds_only(log)
    return {stage: evaluate_stage(stage, "extraction", split, run.preset, log=quiet)
            for stage in ("base", *[s for s in run.artifacts if not s.startswith("export")])}


def report_table(reports: Mapping[str, Any]):
    """One row per stage: valid JSON, schema-valid, exact match and field exact match, with the
    field rate's 95% interval and its number of trials."""
    import pandas as pd

    rows = []
    for stage, report in reports.items():
        rates = report.rates
        lo, hi = rates["field_exact_match"].interval
        rows.append({"stage": "start" if stage == "base" else stage, "examples": report.n_examples,
                     **{k: round(rates[k].value, 3) for k in ("valid_json", "schema_valid", "exact_match",
                                                              "field_exact_match")},
                     "field EM 95%": f"[{lo:.2f}, {hi:.2f}]"})
    return pd.DataFrame(rows).set_index("stage")


def field_table(reports: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]):
    """The share of test rows whose answer has each field right (rows: fields; columns: stages):
    which values the model copies and which it does not. An answer that is not a JSON object
    counts as wrong on every field. ``rows`` are the split the reports were made on, in order."""
    import pandas as pd

    columns = {}
    for stage, report in reports.items():
        right: dict[str, int] = {}
        for example, row in zip(report.examples, rows, strict=False):
            if example["id"] != row["id"]:
                raise ValueError(f"report {stage!r} is not on these rows ({example['id']} vs {row['id']})")
            try:
                answer = json.loads(example["output"])
            except json.JSONDecodeError:
                answer = None
            for name, value in row["target"].items():
                right[name] = right.get(name, 0) + (isinstance(answer, dict) and answer.get(name) == value)
        columns["start" if stage == "base" else stage] = {k: round(v / report.n_examples, 3) for k, v in right.items()}
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- the merge and export stages
def _merge_config(preset: Preset) -> dict[str, Any]:
    budget = preset.capstone
    if budget is None:
        raise ValueError(f"preset {preset.name!r} has no capstone budget")
    return {"t": list(budget.merge_t), "val_rows": budget.val_rows, "eval": dataclasses.asdict(preset.eval)}


def _build_rl_merge(ctx) -> dict[str, Any]:
    """SLERP from the SFT model towards the RL policy at each ``merge_t``; the position with the
    best field exact match on the validation split is kept (ties: the one nearer the SFT model)."""
    from .evaluate import evaluate
    from .merge import MergeSpec, merge_models

    budget = ctx.preset.capstone
    sft, rl = str(ctx.deps["sft"].path), str(ctx.deps["rl_extraction"].path)
    scores = {}
    for t in budget.merge_t:
        folder = ctx.scratch / f"t{t}"
        if not folder.is_dir():
            merge_models(MergeSpec("slerp", (rl,), base=sft, t=t), folder)
        report = evaluate(folder, "extraction", "val", ctx.preset, n=budget.val_rows)
        scores[t] = report.rates["field_exact_match"].value
    best = max(budget.merge_t, key=lambda t: (scores[t], -t))
    for f in (ctx.scratch / f"t{best}").iterdir():
        shutil.copy2(f, ctx.out / f.name)
    return {"t": best, "val_field_exact_match": {str(t): round(s, 4) for t, s in scores.items()}}


def _register() -> None:
    from .deploy import LLAMA_CPP_PYTHON, build_export
    from .pipeline import Stage, register

    register(Stage(name="rl_merge", description="SLERP from the SFT model towards the RL policy, the position "
                                                "chosen on the validation split (the capstone's merge).",
                   deps=("sft", "rl_extraction"), config=_merge_config, build=_build_rl_merge))
    register(Stage(name="export_merged", description="GGUF files of the capstone's merged model for llama.cpp.",
                   deps=("rl_merge",),
                   config=lambda p: {"formats": list(p.deploy.formats), "llama_cpp_python": LLAMA_CPP_PYTHON},
                   build=lambda ctx: build_export(ctx, "rl_merge")))


_register()
