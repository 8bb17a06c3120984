"""A few LoRA SFT steps on a tiny LFM2 through a chosen backend: is fine-tuning wired up here?

    python -m lfm_helpers.unsloth_smoke OUT_DIR [--backend unsloth|transformers|auto] [--steps 5]

It builds a ~40k-parameter LFM2 and a byte-level BPE tokenizer (with the course's chat template)
from a few conversations, saves both to ``OUT_DIR/base``, loads them with
``finetune.load_for_finetuning(..., lora=LoraSpec(r=8), backend=...)``, runs a few TRL
``SFTTrainer`` steps through the SFT stage's own ``sft.train_sft`` (loss on assistant tokens
only), and prints one JSON object (also
written to ``OUT_DIR/result.json``): the backend used, the model class, the number of LoRA
modules, the losses, whether the LoRA weights moved, and the library versions.

Why a module of the package rather than a test file: the test suite runs it with
``.venv-unsloth/bin/python`` (Unsloth needs its own environment, whose transformers and TRL are
older than the main one's), and a learner on Colab can run the same command to check that their
Unsloth install trains the course's model, before spending GPU time on a notebook. With
``--backend transformers`` it runs in the main environment too, which the fast tests use.

Unsloth is imported first when it is asked for, before transformers and TRL, because it patches
them on import (on a machine without a GPU it also switches TRL's trainers to CPU defaults).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

#: The conversations the smoke run trains on: short, in the course's two task styles.
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Extract: Anna ordered 3 lamps in Porto."},
     {"role": "assistant", "content": '{"name": "Anna", "item": "lamp", "quantity": 3, "city": "Porto"}'}],
    [{"role": "user", "content": "Extract: Ben ordered 2 chairs in Lyon."},
     {"role": "assistant", "content": '{"name": "Ben", "item": "chair", "quantity": 2, "city": "Lyon"}'}],
    [{"role": "user", "content": "Extract: Cleo ordered 5 mugs in Oslo."},
     {"role": "assistant", "content": '{"name": "Cleo", "item": "mug", "quantity": 5, "city": "Oslo"}'}],
    [{"role": "system", "content": "You convert units."},
     {"role": "user", "content": "How many miles is 12 km?"},
     {"role": "assistant",
      "content": '<|tool_call_start|>[convert_units(value=12, from_unit="km", to_unit="mi")]<|tool_call_end|>'},
     {"role": "tool", "content": "7.46"},
     {"role": "assistant", "content": "12 km is 7.46 miles."}],
    [{"role": "user", "content": "What is 7 times 6?"},
     {"role": "assistant", "content": '<|tool_call_start|>[calculator(expression="7*6")]<|tool_call_end|>'},
     {"role": "tool", "content": "42"},
     {"role": "assistant", "content": "7 times 6 is 42."}],
    [{"role": "user", "content": "Extract: Dana ordered 1 desk in Rome."},
     {"role": "assistant", "content": '{"name": "Dana", "item": "desk", "quantity": 1, "city": "Rome"}'}],
]

VERSIONED = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth", "unsloth_zoo")


def versions() -> dict[str, str]:
    """The versions that tell the two environments apart (``versions.library_versions``)."""
    from .versions import library_versions

    return library_versions(VERSIONED)


def build_base(folder: Path, *, max_seq_length: int) -> Path:
    """Save a tiny LFM2 and a tokenizer trained on ``CONVERSATIONS`` into ``folder``."""
    import dataclasses

    from .models import build_model, tiny_lfm2_config
    from .presets import PRESETS, ModelSpec
    from .tokenizer import save_tokenizer, train_tokenizer

    texts = [m["content"] for conv in CONVERSATIONS for m in conv] * 4
    tok = train_tokenizer(texts, vocab_size=400, min_frequency=2, model_max_length=max_seq_length)
    preset = dataclasses.replace(
        PRESETS["tiny"],
        model=ModelSpec(hidden_size=32, num_layers=4, attention_layers=(1, 3), num_heads=4, num_kv_heads=2,
                        intermediate_size=48, max_position_embeddings=max_seq_length),
    )
    config = tiny_lfm2_config(preset, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    build_model(config, seed=0).save_pretrained(folder)
    save_tokenizer(tok, folder)
    return folder


def run(out_dir: str | Path, *, backend: str = "unsloth", steps: int = 5, max_seq_length: int = 128) -> dict[str, Any]:
    """Build, load, train; return (and write to ``out_dir/result.json``) what happened."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if backend == "unsloth" and importlib.util.find_spec("unsloth") is not None:
        import unsloth  # noqa: F401  (first, so it can patch transformers / TRL before they load)

    import math

    import torch

    from .finetune import LoraSpec, load_for_finetuning, lora_modules, trainable_parameters
    from .presets import TrainBudget
    from .sft import train_sft

    torch.manual_seed(0)
    base = build_base(out_dir / "base", max_seq_length=max_seq_length)
    started = time.perf_counter()
    model, tokenizer, used = load_for_finetuning(base, lora=LoraSpec(r=8, alpha=16),
                                                 max_seq_length=max_seq_length, backend=backend)
    load_seconds = time.perf_counter() - started
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    # The SFT stage's own training function: the same code path as notebook 04, under this
    # environment's transformers / TRL.
    budget = TrainBudget(max_steps=steps, batch_size=2, learning_rate=5e-3, seq_len=max_seq_length)
    started = time.perf_counter()
    trained = train_sft(model, tokenizer, [{"messages": conv} for conv in CONVERSATIONS], [], budget,
                        out_dir / "trainer", seed=0)
    train_seconds = time.perf_counter() - started

    after = dict(model.named_parameters())
    changed = max((float((after[n].detach() - p).abs().max()) for n, p in before.items() if n in after), default=0.0)
    losses = trained["history"]["loss"]
    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    result = {
        "backend": used,
        "model_class": type(model).__name__,
        "base_model_class": type(base_model).__name__,
        "lora_modules": len(lora_modules(model)),
        "parameters": trainable_parameters(model),
        "losses": losses,
        "losses_finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "lora_max_abs_change": changed,
        "steps": trained["steps"],
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype),
        "load_seconds": round(load_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "versions": versions(),
        "package_dir": str(Path(__file__).resolve().parent),  # which lfm_helpers checkout ran
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfm_helpers.unsloth_smoke", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the tiny model, the trainer output and result.json")
    parser.add_argument("--backend", default="unsloth", choices=("unsloth", "transformers", "auto"))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(args.out_dir, backend=args.backend, steps=args.steps)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
