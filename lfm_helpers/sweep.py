"""The scaling sweep: train every model size at every token budget and record the final loss.

These runs are the data a scaling law is fitted to (``lfm_helpers.scaling``). Each run is its
own artifact (``runs/<preset>/sweep/h<hidden>-t<tokens>/``) holding its metrics and loss
history, so a rerun of the notebook costs nothing and a larger sweep reuses the smaller one's
runs. ``N`` is counted without the embedding: with a 2,048-token vocabulary the embedding of
these tiny models is as large as their blocks, and it does not grow with depth the way the
blocks' compute does (Kaplan et al. 2020 made the same choice).

Simplified compared with real scaling studies: one seed per point, a few hundred thousand tokens
per run, and a learning rate that is not re-tuned per size.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .artifacts import artifact_dir, ensure_artifact
from .models import build_model, count_parameters, tiny_lfm2_config
from .presets import ModelSpec, Preset, SweepBudget
from .pretrain import PretrainConfig, evaluate_loss, train_lm


@dataclass(frozen=True)
class SweepPoint:
    """One finished run: its size, its data, and its loss on the shared validation windows."""

    hidden_size: int
    params: int  # non-embedding
    total_params: int
    tokens: int
    val_loss: float
    tokens_per_second: float

    @property
    def flops(self) -> float:
        """Training compute, ``6 N D``."""
        return 6.0 * self.params * self.tokens


def sweep_model_spec(budget: SweepBudget, hidden: int) -> ModelSpec:
    """The LFM2-layout model of width ``hidden`` used in the sweep."""
    heads = hidden // budget.head_dim
    return ModelSpec(hidden_size=hidden, num_layers=budget.num_layers, attention_layers=budget.attention_layers,
                     num_heads=heads, num_kv_heads=max(1, heads // 2) if heads % 2 == 0 else heads,
                     intermediate_size=int(budget.ffn_ratio * hidden), max_position_embeddings=budget.seq_len)


def run_config(budget: SweepBudget, tokens: int, seed: int) -> PretrainConfig:
    """The pretraining config of one run: as many steps as the token budget buys."""
    steps = math.ceil(tokens / (budget.batch_size * budget.seq_len))
    return PretrainConfig(max_steps=steps, batch_size=budget.batch_size, seq_len=budget.seq_len,
                          learning_rate=budget.learning_rate, warmup_steps=max(1, steps // 10),
                          eval_every=steps, eval_batches=8, checkpoint_every=steps, seed=seed)


def run_sweep(preset: Preset, budget: SweepBudget | None = None, *,
              log=print) -> list[SweepPoint]:
    """Train (or reuse) every ``hidden x tokens`` run of ``budget`` and return the points.

    Runs share the preset's tokenizer (built or reused through the ``tokenizer`` stage) and the
    corpus' packed windows, so only size and data differ between them.
    """
    from .pipeline import data_fingerprint, packed_corpus, run_stage
    from .tokenizer import load_tokenizer

    budget = budget or preset.sweep
    tok_art = run_stage("tokenizer", preset, log=log)
    tokenizer = load_tokenizer(tok_art.path)
    windows = None
    points = []
    grid = [(h, t) for h in budget.hidden_sizes for t in budget.token_budgets]
    for hidden, tokens in tqdm(grid, desc="scaling sweep", unit="run"):
        spec = sweep_model_spec(budget, hidden)
        cfg = run_config(budget, tokens, preset.seed)
        config = {"model": dataclasses.asdict(spec), "train": dataclasses.asdict(cfg),
                  "tokenizer": tok_art.config_hash, "corpus_sha256": data_fingerprint("corpus/train.jsonl")}

        def build(out, spec=spec, cfg=cfg):
            nonlocal windows
            if windows is None:
                windows = packed_corpus(preset, budget.seq_len, log=log)
            train, val = windows
            model = build_model(tiny_lfm2_config(dataclasses.replace(preset, model=spec),
                                                 vocab_size=len(tokenizer)), seed=preset.seed)
            parts = count_parameters(model)
            result = train_lm(model, train, val, cfg, progress=False)
            (out / "history.json").write_text(json.dumps(dataclasses.asdict(result.history)))
            return {"params": parts["total"] - parts["embedding"], "total_params": parts["total"],
                    "tokens": result.tokens_seen, "val_loss": evaluate_loss(model, val, cfg.batch_size),
                    "tokens_per_second": round(result.tokens_per_second, 1)}

        art = ensure_artifact(artifact_dir(preset.name, f"sweep/h{hidden}-t{tokens}"), build,
                              stage="sweep", preset=preset.name, config=config, log=lambda _: None)
        m = art.metrics
        points.append(SweepPoint(hidden, m["params"], m["total_params"], m["tokens"], m["val_loss"],
                                 m["tokens_per_second"]))
    return points


def points_table(points: list[SweepPoint]):
    """The sweep as a pandas DataFrame (one row per run)."""
    import pandas as pd

    rows = [{**dataclasses.asdict(p), "flops": p.flops, "tokens_per_param": p.tokens / p.params} for p in points]
    return pd.DataFrame(rows)


def sweep_arrays(points: list[SweepPoint]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, D, L)`` as float arrays, the input of ``scaling.fit_scaling_law``."""
    return (np.array([p.params for p in points], dtype=float), np.array([p.tokens for p in points], dtype=float),
            np.array([p.val_loss for p in points], dtype=float))
