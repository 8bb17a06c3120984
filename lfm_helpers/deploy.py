"""On-device deployment: GGUF export, llama.cpp inference, and decode speed against its physical limit.

The path a small model takes to a phone or a laptop:

1. **Export** a checkpoint to GGUF, llama.cpp's single-file format (weights, tokenizer and chat
   template in one file), with llama.cpp's *own* converter, then **quantise** it with llama.cpp's
   quantiser (``f16``, ``q8_0``: 8-bit blocks, ``q4_k_m``: 4/6-bit k-quant mix). Both come from
   the llama-cpp-python package: the converter from its source distribution, unpacked by
   ``make llama-cpp`` into ``build/`` (:func:`llama_cpp_sources`), the quantiser from its library.
2. **Run** the file in llama.cpp (:class:`GGUFModel`): the course's evaluation harness takes it in
   place of a ``transformers`` model, so the task metrics of every format are measured the same
   way; tokenisation, greedy text and top-1 logits are compared with ``transformers``.
3. **Measure** prefill and decode speed, and put decode beside its *roofline*: at batch size 1,
   every new token streams every weight from memory once, so decode cannot beat
   ``bandwidth / bytes per token``; the bandwidth is measured here with a copy benchmark.

Simplified: the roofline counts the weights only (the KV cache and conv state of a short context
are a few MB); the bandwidth is one large copy with PyTorch's threads (a STREAM-style figure, not a
vendor peak); speeds are medians of a few repeats on whatever else the machine is doing.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .paths import REPO_ROOT

#: The llama-cpp-python release whose library runs the models and whose sdist holds the converter.
LLAMA_CPP_PYTHON = "0.3.36"
#: Formats the course exports, and llama.cpp's file type (``llama_ftype``) name for each.
FORMATS: dict[str, str] = {"f32": "LLAMA_FTYPE_ALL_F32", "f16": "LLAMA_FTYPE_MOSTLY_F16",
                           "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
#: What to run when llama.cpp is missing.
INSTALL_HINT = "run `make llama-cpp` (builds llama-cpp-python from source, ~5 minutes once, then cached)"


# --------------------------------------------------------------------------- installation
def llama_cpp_sources() -> Path:
    """The folder holding llama.cpp's converter (``convert_hf_to_gguf.py``, ``conversion/``,
    ``gguf-py/``): ``$LFM_LLAMA_CPP_SRC``, else ``build/llama.cpp-<version>`` (``make llama-cpp``)."""
    path = Path(os.environ.get("LFM_LLAMA_CPP_SRC", REPO_ROOT / "build" / f"llama.cpp-{LLAMA_CPP_PYTHON}"))
    if not (path / "convert_hf_to_gguf.py").is_file():
        raise FileNotFoundError(f"llama.cpp's converter is not in {path}: {INSTALL_HINT}")
    return path


def llama_cpp_status() -> tuple[bool, str]:
    """``(ready, message)``: whether the llama.cpp library *and* its converter are here."""
    try:
        import llama_cpp
    except ImportError:
        return False, f"llama-cpp-python is not installed: {INSTALL_HINT}"
    try:
        sources = llama_cpp_sources()
    except FileNotFoundError as err:
        return False, str(err)
    return True, f"llama-cpp-python {llama_cpp.__version__}, converter in {sources}"


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as err:
        raise RuntimeError(f"llama-cpp-python is not installed: {INSTALL_HINT}") from err
    return llama_cpp


# --------------------------------------------------------------------------- export
def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown GGUF format {fmt!r}; formats: {', '.join(FORMATS)}")


def _replace_into(tmp: Path, out: Path) -> Path:
    os.replace(tmp, out)
    return out


def convert_to_gguf(model_dir: Path | str, out: Path | str, outtype: str = "f32", *,
                    log: Callable[[str], None] = print) -> Path:
    """Convert a ``save_pretrained`` folder (weights, config, tokenizer, chat template) to one GGUF
    file with llama.cpp's converter; the file appears at ``out`` only once complete."""
    if outtype not in ("f32", "f16"):
        raise ValueError(f"the converter writes f32 or f16 here, got {outtype!r}; quantise with quantize_gguf")
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no checkpoint in {model_dir}: config.json is missing")
    sources = llama_cpp_sources()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    cmd = [sys.executable, "-m", "lfm_helpers.gguf_convert", str(sources), str(model_dir), str(tmp), outtype]
    log(f"[export] converting {model_dir.name} -> {out.name} (llama.cpp's convert_hf_to_gguf.py)")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"convert_hf_to_gguf.py failed on {model_dir}:\n{done.stderr[-3000:]}")
    return _replace_into(tmp, out)


def quantize_gguf(src: Path | str, out: Path | str, fmt: str, *, threads: int | None = None,
                  log: Callable[[str], None] = print) -> Path:
    """Quantise a GGUF file with llama.cpp's quantiser (``llama_model_quantize``) to ``fmt``.

    k-quants work on rows of 256 values; a tensor whose rows are not a multiple of 256 (the tiny
    model's 192-wide rows) gets llama.cpp's fallback type for it, which the quantiser chooses.
    """
    _check_format(fmt)
    llama_cpp = _llama_cpp()
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"no GGUF file at {src}")
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FORMATS[fmt])
    params.nthread = threads or torch.get_num_threads()
    log(f"[export] quantising {src.name} -> {out.name}")
    from llama_cpp._utils import suppress_stdout_stderr  # what Llama(verbose=False) uses itself

    with suppress_stdout_stderr(disable=False):  # llama.cpp's per-tensor notes and k-quant fallbacks
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize({src.name} -> {fmt}) returned {code}")
    return _replace_into(tmp, out)


def export_gguf(model_dir: Path | str, out_dir: Path | str, formats: Sequence[str] = tuple(FORMATS), *,
                stem: str = "model", log: Callable[[str], None] = print) -> dict[str, Path]:
    """Export ``model_dir`` in every format of ``formats``: ``out_dir/<stem>-<format>.gguf``.

    The converter writes f32 (or f16 when f32 is not asked for: half the disk for a large model)
    and llama.cpp's quantiser makes the others from that file.
    """
    for fmt in formats:
        _check_format(fmt)
    if not formats:
        raise ValueError("formats is empty")
    out_dir = Path(out_dir)
    source_fmt = "f32" if "f32" in formats else "f16"
    source = convert_to_gguf(model_dir, out_dir / f"{stem}-{source_fmt}.gguf", source_fmt, log=log)
    files = {source_fmt: source}
    for fmt in formats:
        if fmt not in files:
            files[fmt] = quantize_gguf(source, out_dir / f"{stem}-{fmt}.gguf", fmt, log=log)
    if source_fmt not in formats:
        source.unlink()
        del files[source_fmt]
    return {fmt: files[fmt] for fmt in formats}


# --------------------------------------------------------------------------- running a GGUF file
class GGUFModel:
    """A GGUF file loaded in llama.cpp, usable wherever the evaluation harness takes a model.

    ``generate_texts`` is what :func:`~lfm_helpers.sampling.generate_batch` calls for it: each
    prompt (token ids, from the ``transformers`` tokenizer, which :func:`tokenization_check`
    shows llama.cpp reproduces) is decoded one at a time, batch size 1 as on a device, from a
    cleared state, and the new tokens are turned back into text by llama.cpp's detokeniser.
    ``logits_all=True`` keeps every position's logits (for :func:`logit_agreement`).
    """

    def __init__(self, path: Path | str, *, n_ctx: int = 2048, threads: int | None = None,
                 logits_all: bool = False, n_batch: int = 512) -> None:
        llama_cpp = _llama_cpp()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no GGUF file at {self.path}")
        from llama_cpp._utils import suppress_stdout_stderr  # what Llama(verbose=False) uses itself

        threads = threads or torch.get_num_threads()
        with suppress_stdout_stderr(disable=False):  # llama.cpp's start-up notes, not the learner's business
            self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_batch=min(n_batch, n_ctx),
                                       n_threads=threads, n_threads_batch=threads, logits_all=logits_all,
                                       verbose=False)

    def __enter__(self) -> "GGUFModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free llama.cpp's model and context now (else a noisy message at interpreter exit)."""
        self.llm.close()

    @property
    def metadata(self) -> dict[str, str]:
        """The GGUF file's key-value metadata (architecture, tokenizer, ``tokenizer.chat_template``...)."""
        return dict(self.llm.metadata)

    @property
    def n_params(self) -> int:
        return int(self.llm._model.n_params())

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all weights in the file: what one decode step reads from memory."""
        return int(self.llm._model.size())

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's tokenisation of ``text`` (special tokens like ``<|im_start|>`` parsed, no BOS added)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids), special=True).decode("utf-8", errors="replace")

    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """Logits at every position of ``ids`` ([len, vocab], float32); needs ``logits_all=True``."""
        if not self.llm._logits_all:
            raise ValueError("load the model with GGUFModel(..., logits_all=True) to read every position's logits")
        self.llm.reset()
        self.llm.eval(list(ids))
        return torch.from_numpy(self.llm.scores[: len(ids)].copy())

    def generate_ids(self, prompt: Sequence[int], sampling, stops: set[int]) -> list[int]:
        """New token ids after ``prompt`` up to (not including) a stop token or ``max_new_tokens``."""
        self.llm.reset()  # a cleared state: no prefix reuse across unrelated prompts
        if sampling.temperature > 0:
            self.llm.set_seed(sampling.seed)
        kwargs = dict(temp=sampling.temperature, top_k=sampling.top_k if sampling.temperature > 0 else 1,
                      top_p=sampling.top_p, min_p=0.0, repeat_penalty=sampling.repetition_penalty)
        out: list[int] = []
        for token in self.llm.generate(list(prompt), reset=False, **kwargs):
            if token in stops or len(out) == sampling.max_new_tokens:
                break
            out.append(token)
        return out

    def generate_texts(self, tokenizer, prompts: Sequence[Sequence[int]], sampling, *,
                       desc: str | None = "generating") -> list[str]:
        """The harness's entry point (see :func:`~lfm_helpers.sampling.generate_batch`)."""
        from tqdm.auto import tqdm

        from .sampling import stop_token_ids

        stops = set(stop_token_ids(tokenizer))
        return [self.detokenize(self.generate_ids(p, sampling, stops))
                for p in tqdm(prompts, desc=desc, disable=desc is None or not prompts, leave=False)]


def chat(model: GGUFModel, messages: Sequence[dict], tools: Sequence[dict] | None = None, *,
         max_new_tokens: int = 96) -> str:
    """One assistant reply from the GGUF file alone: its *embedded* chat template renders the
    conversation (with llama-cpp-python's Jinja formatter), llama.cpp tokenises and decodes.
    This is the path a device app takes: no ``transformers``, no tokenizer files beside it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = model.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        raise ValueError(f"{model.path.name} has no embedded chat template")
    vocab = model.llm
    eos = vocab.detokenize([vocab.token_eos()], special=True).decode()
    bos = vocab.detokenize([vocab.token_bos()], special=True).decode()
    prompt = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(
        messages=list(messages), tools=list(tools) if tools else None).prompt
    stops = {vocab.token_eos(), *model.tokenize("<|im_end|>")}
    from .sampling import Sampling

    ids = model.generate_ids(model.tokenize(prompt), Sampling(max_new_tokens=max_new_tokens), stops)
    return model.detokenize(ids)


# --------------------------------------------------------------------------- checks against transformers
def tokenization_check(tokenizer, model: GGUFModel, texts: Sequence[str]) -> dict[str, Any]:
    """How many ``texts`` llama.cpp tokenises exactly as ``transformers`` (special tokens included)."""
    same, first_mismatch = 0, None
    for text in texts:
        hf = tokenizer(text, add_special_tokens=False)["input_ids"]
        if hf == model.tokenize(text):
            same += 1
        elif first_mismatch is None:
            first_mismatch = text[:80]
    return {"texts": len(texts), "identical": same, "share": same / len(texts) if texts else 0.0,
            "first_mismatch": first_mismatch}


@torch.no_grad()
def logit_agreement(hf_model, model: GGUFModel, sequences: Sequence[Sequence[int]]) -> dict[str, float]:
    """Top-1 agreement of next-token predictions (every position of every sequence) and the largest
    absolute logit difference, GGUF vs the ``transformers`` model in float32."""
    agree = total = 0
    max_diff = 0.0
    hf_model.eval()
    for ids in sequences:
        ref = hf_model(torch.tensor([list(ids)])).logits[0].float()
        got = model.logits(ids)
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
        max_diff = max(max_diff, float((ref - got).abs().max()))
    return {"positions": total, "top1_agreement": agree / total if total else 0.0, "max_abs_logit_diff": max_diff}


def same_outputs(a, b) -> float:
    """Share of examples on which two harness reports (same split, same rows) produced the same text."""
    def texts(report):
        return [json.dumps(e.get("output", e.get("messages")), sort_keys=True) for e in report.examples]

    ta, tb = texts(a), texts(b)
    if len(ta) != len(tb):
        raise ValueError(f"reports cover different numbers of examples: {len(ta)} vs {len(tb)}")
    return sum(x == y for x, y in zip(ta, tb)) / len(ta) if ta else 0.0


def first_divergence(hf_model, tokenizer, gguf_path: Path | str, gguf_report, hf_report) -> dict[str, Any] | None:
    """Where the first example whose greedy text differs between two reports of the same split
    parts ways: the shared text, and the two highest next-token logits of each runtime there.
    ``None`` when every example is identical. (Two float32 runtimes differ in the order of their
    additions; greedy decoding amplifies that only where the top two logits nearly tie.)"""
    from .data import extraction_messages, load_schemas, load_split
    from .sampling import chat_prompt_ids
    from .tools import tool_schemas

    rows = load_split(gguf_report.task, gguf_report.split)
    for i, (ours, ref) in enumerate(zip(gguf_report.examples, hf_report.examples)):
        if gguf_report.task == "extraction" and ours["output"] != ref["output"]:
            prefix, tools = extraction_messages(rows[i], load_schemas(), with_answer=False), None
            a, b = ours["output"], ref["output"]
            break
        if gguf_report.task == "tool_use" and ours["messages"] != ref["messages"]:
            k = next(j for j, (x, y) in enumerate(zip(ours["messages"], ref["messages"])) if x != y)
            system = [m for m in rows[i]["messages"] if m["role"] == "system"][:1]
            prefix, tools = system + ours["messages"][:k], tool_schemas(rows[i]["tools"])
            a, b = ours["messages"][k]["content"], ref["messages"][k]["content"]
            break
    else:
        return None
    shared = os.path.commonprefix([a, b])
    ids = chat_prompt_ids(tokenizer, prefix, tools) + tokenizer(shared, add_special_tokens=False)["input_ids"]

    def top2(logits: torch.Tensor) -> list[tuple[str, float]]:
        values, indices = torch.topk(logits, 2)
        return [(tokenizer.decode([t]), round(v, 4)) for v, t in zip(values.tolist(), indices.tolist())]

    with torch.no_grad():
        hf_top = top2(hf_model(torch.tensor([ids])).logits[0, -1].float())
    with GGUFModel(gguf_path, logits_all=True, n_ctx=len(ids) + 8) as model:
        gguf_top = top2(model.logits(ids)[-1])
    return {"example": i, "shared_text": shared,
            "gguf_continues": a[len(shared):], "transformers_continues": b[len(shared):],
            "transformers_top2": hf_top, "gguf_top2": gguf_top}


def test_conversations(tokenizer, n: int) -> list[list[int]]:
    """Token ids of ``n`` whole test conversations (answers included), alternating the two tasks:
    the inputs of the tokenisation and logit checks."""
    from .data import load_schemas, load_split
    from .sft import extraction_example, tool_use_example

    schemas = load_schemas()
    ext, tool = load_split("extraction", "test"), load_split("tool_use", "test")
    examples = [extraction_example(ext[i // 2], schemas) if i % 2 == 0 else tool_use_example(tool[i // 2])
                for i in range(n)]
    return [list(tokenizer.apply_chat_template(e["messages"], tools=json.loads(e["tools"]) if e["tools"] else None,
                                               tokenize=True, return_dict=True)["input_ids"]) for e in examples]


def agreement_table(hf_model, tokenizer, files: dict[str, Path], sequences: Sequence[Sequence[int]]):
    """For each GGUF file: does llama.cpp tokenise the conversations' text exactly as ``transformers``,
    and how often does its next-token choice agree with the float32 ``transformers`` model."""
    import pandas as pd

    texts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in sequences]
    rows = []
    for fmt, path in files.items():
        with GGUFModel(path, logits_all=True, n_ctx=max(len(s) for s in sequences) + 8) as model:
            tokens = tokenization_check(tokenizer, model, texts)
            rows.append({"format": fmt, "file_MB": Path(path).stat().st_size / 1e6,
                         "identical_tokenisation": tokens["share"], **logit_agreement(hf_model, model, sequences)})
    return pd.DataFrame(rows).set_index("format").round(4)


def evaluate_export(artifact, fmt: str, task: str, preset, *, n: int, log: Callable[[str], None] = print):
    """The harness on one GGUF file of an ``export`` artifact, stored beside the other evaluations
    (``runs/<preset>/evals/``) and reused while the artifact and settings are the same."""
    from .evaluate import cached_report, evaluate
    from .tokenizer import load_tokenizer

    def compute():
        with GGUFModel(export_files(artifact)[fmt]) as model:
            return evaluate(model, task, "test", preset, n=n, tokenizer=load_tokenizer(artifact.path))

    return cached_report(f"export-{fmt}-{task}-test", {"artifact": artifact.config_hash, "format": fmt, "task": task,
                                                       "n": n}, preset, compute, log=log)


#: The rates notebook 09 compares across runtimes (task, harness name, column).
TASK_COLUMNS = (("extraction", "valid_json", "valid JSON"), ("extraction", "field_exact_match", "field EM"),
                ("tool_use", "call_accuracy", "tool-call acc"), ("tool_use", "final_answer_accuracy", "answer acc"))


def task_table(reports: dict[str, dict[str, Any]], reference: str):
    """One row per runtime/format: the headline rates (with n) and the share of examples whose
    generated text is identical to the ``reference`` row's."""
    import pandas as pd

    rows = []
    for name, by_task in reports.items():
        row: dict[str, Any] = {"model": name}
        for task, metric, column in TASK_COLUMNS:
            row[column] = round(by_task[task].rates[metric].value, 3)
        for task in ("extraction", "tool_use"):
            row[f"same text ({task})"] = round(same_outputs(by_task[task], reports[reference][task]), 3)
        row["n per task"] = by_task["extraction"].n_examples
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------- speed and its limit
def memory_bandwidth(size_mb: int = 256, repeats: int = 5, *, threads: int | None = None) -> float:
    """Measured memory bandwidth in GB/s: the best of ``repeats`` copies of a ``size_mb`` buffer
    (bytes read + bytes written, as STREAM's copy counts them), far larger than the CPU caches."""
    if size_mb < 64:
        raise ValueError("use at least 64 MB, else the copy runs from the CPU caches")
    old = torch.get_num_threads()
    torch.set_num_threads(threads or old)
    try:
        src = torch.ones(size_mb * 2**20 // 4, dtype=torch.float32)
        dst = torch.empty_like(src)
        dst.copy_(src)  # first touch: page faults are not bandwidth
        best = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
    finally:
        torch.set_num_threads(old)
    return 2 * src.numel() * 4 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _speed_tokens(n: int, vocab: int) -> list[int]:
    """A fixed, spread-out token sequence (speed does not depend on which tokens)."""
    return [(17 + 7919 * i) % (vocab - 16) + 16 for i in range(n)]


@dataclass(frozen=True)
class Speed:
    """Median prefill and decode speed of one model in one runtime and format."""

    model: str
    runtime: str
    format: str
    weight_mb: float
    prefill_tok_s: float
    decode_tok_s: float


def llama_cpp_speed(path: Path | str, *, model: str, fmt: str, prompt_tokens: int = 128, decode_tokens: int = 32,
                    repeats: int = 3, threads: int | None = None) -> Speed:
    """Prefill ``prompt_tokens`` in one batch, then decode ``decode_tokens`` one at a time; after one
    untimed warm-up, the medians of ``repeats`` runs. Decode is timed per token with no sampling."""
    with GGUFModel(path, n_ctx=prompt_tokens + decode_tokens + 8, threads=threads, n_batch=prompt_tokens) as m:
        llm = m.llm
        prompt = _speed_tokens(prompt_tokens + decode_tokens, llm.n_vocab())
        prefill, decode = [], []
        for r in range(repeats + 1):
            llm.reset()
            t_prefill = _timed(lambda: llm.eval(prompt[:prompt_tokens]))
            steps = [_timed(lambda t=t: llm.eval([t])) for t in prompt[prompt_tokens:]]
            if r:  # the first run warms caches and allocations
                prefill.append(prompt_tokens / t_prefill)
                decode.append(1 / statistics.median(steps))
        return Speed(model, "llama.cpp", fmt, m.tensor_bytes / 1e6, statistics.median(prefill),
                     statistics.median(decode))


@torch.no_grad()
def transformers_speed(hf_model, *, model: str, prompt_tokens: int = 128, decode_tokens: int = 32,
                       repeats: int = 3) -> Speed:
    """The same measurement for a ``transformers`` model in eager PyTorch (float32, KV cache on)."""
    from .profiling import cache_argument, returned_cache

    hf_model.eval()
    cache_arg = cache_argument(hf_model)
    ids = torch.tensor([_speed_tokens(prompt_tokens + decode_tokens, hf_model.config.vocab_size)])
    prefill, decode = [], []
    for r in range(repeats + 1):
        start = time.perf_counter()
        out = hf_model(input_ids=ids[:, :prompt_tokens], use_cache=True, logits_to_keep=1)
        t_prefill = time.perf_counter() - start
        cache, steps = returned_cache(out), []
        for t in range(prompt_tokens, prompt_tokens + decode_tokens):
            start = time.perf_counter()
            out = hf_model(input_ids=ids[:, t:t + 1], use_cache=True, **{cache_arg: cache})
            steps.append(time.perf_counter() - start)
            cache = returned_cache(out)
        if r:
            prefill.append(prompt_tokens / t_prefill)
            decode.append(1 / statistics.median(steps))
    weight_mb = sum(p.numel() * p.element_size() for p in hf_model.parameters()) / 1e6
    return Speed(model, "transformers (eager)", str(next(hf_model.parameters()).dtype).removeprefix("torch."),
                 weight_mb, statistics.median(prefill), statistics.median(decode))


def roofline_table(speeds: Sequence[Speed], bandwidth_gb_s: float):
    """Each measured speed beside its bandwidth bound (``bandwidth / weight bytes``) and the ratio.

    A ratio above 1 means the weights did not come from main memory at all: they fit in the CPU's
    caches (the tiny model), and the step is bound by compute and overheads instead.
    """
    import pandas as pd

    from .memory import decode_speed_bound

    rows = []
    for s in speeds:
        bound = decode_speed_bound(s.weight_mb * 1e6, bandwidth_gb_s)
        rows.append({**asdict(s), "roofline_tok_s": bound, "share_of_roofline": s.decode_tok_s / bound})
    return pd.DataFrame(rows).round({"weight_mb": 1, "prefill_tok_s": 0, "decode_tok_s": 1, "roofline_tok_s": 1,
                                     "share_of_roofline": 2})


def speedups(table, model: str, baseline: str = "f16"):
    """For ``model``'s llama.cpp rows of a :func:`roofline_table`: how many times fewer weight
    bytes each format reads than ``baseline``, beside how many times faster it decodes. On a
    memory-bound model the second follows the first (a little below it: unpacking costs compute)."""
    rows = table[(table["model"] == model) & (table["runtime"] == "llama.cpp")].set_index("format")
    if baseline not in rows.index:
        raise ValueError(f"no llama.cpp {baseline!r} row for {model!r}; formats: {', '.join(rows.index)}")
    base = rows.loc[baseline]
    return (rows.assign(**{f"fewer bytes than {baseline}": base["weight_mb"] / rows["weight_mb"],
                           f"decode speed-up over {baseline}": rows["decode_tok_s"] / base["decode_tok_s"]})
            [[f"fewer bytes than {baseline}", f"decode speed-up over {baseline}"]].round(2))


def speed_benchmark(preset, *, log: Callable[[str], None] = print):
    """Notebook 09's speed table (``python -m lfm_helpers deploy-bench``): the memory bandwidth,
    then every exported format of the course model and of the random full-size ``reference``
    model in llama.cpp, and both models in eager ``transformers``, each beside its roofline.
    Returns ``(bandwidth GB/s, table)``; builds the ``export`` stages if needed."""
    from .models import load_model
    from .pipeline import run_stage

    budget = _budget(preset)
    kw = dict(prompt_tokens=budget.prompt_tokens, decode_tokens=budget.decode_tokens, repeats=budget.repeats)
    course = f"course {preset.name}"
    exports = {course: export_files(run_stage("export", preset, log=log)),
               budget.reference: export_files(run_stage("export_reference", preset, log=log))}
    bandwidth = memory_bandwidth()
    log(f"[deploy] memory bandwidth (copy, {torch.get_num_threads()} threads): {bandwidth:.1f} GB/s")
    speeds = []
    for name, files in exports.items():
        for fmt, path in files.items():
            speeds.append(llama_cpp_speed(path, model=name, fmt=fmt, **kw))
            log(f"[deploy] {name} {fmt}: decode {speeds[-1].decode_tok_s:.1f} tok/s")
        if name == course:
            hf = load_model(run_stage("sft", preset, log=log).path)
        else:
            hf = random_model(name, seed=preset.seed)
        speeds.append(transformers_speed(hf, model=name, **kw))
        log(f"[deploy] {name} transformers: decode {speeds[-1].decode_tok_s:.1f} tok/s")
        del hf
    return bandwidth, roofline_table(speeds, bandwidth)


# --------------------------------------------------------------------------- the 1 GB budget at scale
#: The accounting's precision for each GGUF format (q4_k_m is *nominally* 4.5 bits: Q4_K's blocks).
FORMAT_PRECISION = {"f16": "bf16", "q8_0": "q8_0", "q4_k_m": "q4_0"}


def budget_table(names: Sequence[str] = ("LFM2-350M", "LFM2-1.2B", "Gemma-3-270M", "Qwen3-0.6B"),
                 precisions: Sequence[str] = ("bf16", "q8_0", "q4_0"), contexts: Sequence[int] = (4096, 32768),
                 budget_gb: float = 1.0):
    """Weights at each precision plus the decode state at each context (bf16 caches, one
    sequence), from the shipped configs (:mod:`lfm_helpers.memory`), and whether it fits."""
    import pandas as pd

    from .memory import memory_table

    rows = []
    for context in contexts:
        for r in memory_table(list(names), list(precisions), context=context, budget_gb=budget_gb):
            rows.append({"model": r.model, "params_M": r.params / 1e6, "precision": r.precision, "context": context,
                         "weights_GB": r.weights_gb, "state_GB": r.kv_cache_gb + r.conv_state_gb,
                         "total_GB": r.total_gb, f"fits_{budget_gb:g}GB": r.fits})
    return pd.DataFrame(rows).round(3)


def gguf_size_check(config_name: str, files: dict[str, Path]):
    """The accounting's weight bytes for ``config_name`` at each exported format beside the real
    GGUF file's size (tensors + metadata), and their ratio."""
    import pandas as pd

    from .memory import count_parameters_meta, load_public_config, weight_bytes

    params = count_parameters_meta(load_public_config(config_name))
    rows = []
    for fmt, path in files.items():
        predicted = weight_bytes(params, FORMAT_PRECISION[fmt])
        real = Path(path).stat().st_size
        rows.append({"format": fmt, "params_M": params / 1e6, "predicted_MB": predicted / 1e6, "file_MB": real / 1e6,
                     "file_bits_per_weight": 8 * real / params, "file/predicted": real / predicted})
    return pd.DataFrame(rows).round(3)


def tensor_types(path: Path | str):
    """How many tensors of each kind (the name without its block number) a GGUF file stores in
    each type: what a quantisation recipe such as Q4_K_M actually did. Read with llama.cpp's
    own ``gguf`` reader (from the converter's sources)."""
    import re
    from collections import Counter

    import pandas as pd

    reader_path = str(llama_cpp_sources() / "gguf-py")
    sys.path.insert(0, reader_path)
    try:
        from gguf import GGUFReader
    finally:
        sys.path.remove(reader_path)
    counts = Counter((re.sub(r"^blk\.\d+\.", "", t.name), t.tensor_type.name) for t in GGUFReader(str(path)).tensors)
    table = pd.DataFrame([{"tensor": k, "type": t, "count": n} for (k, t), n in counts.items()])
    return table.pivot_table(index="tensor", columns="type", values="count", fill_value=0).astype(int)


# --------------------------------------------------------------------------- pipeline stages
def _budget(preset):
    if preset.deploy is None:
        raise ValueError(f"preset {preset.name!r} has no deploy budget")
    return preset.deploy


def export_files(artifact) -> dict[str, Path]:
    """``{format: path}`` of the GGUF files an ``export`` / ``export_reference`` artifact holds."""
    files = json.loads((Path(artifact.path) / "files.json").read_text())
    return {fmt: Path(artifact.path) / name for fmt, name in files.items()}


def _write_files(out: Path, files: dict[str, Path]) -> dict[str, Any]:
    (out / "files.json").write_text(json.dumps({f: p.name for f, p in files.items()}, indent=1))
    return {"files": {f: p.name for f, p in files.items()},
            "file_mb": {f: round(p.stat().st_size / 1e6, 2) for f, p in files.items()},
            "llama_cpp_python": LLAMA_CPP_PYTHON}


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)


def build_export(ctx, source: str = "sft") -> dict[str, Any]:
    """An export stage's build: the model of the stage ``source`` (one of the stage's
    dependencies) in the preset's formats, with its tokenizer beside the files."""
    budget = _budget(ctx.preset)
    model_dir = ctx.deps[source].path
    files = export_gguf(model_dir, ctx.out, budget.formats, stem=ctx.preset.name)
    _copy_tokenizer(model_dir, ctx.out)  # the harness renders prompts with it (the GGUF embeds it too)
    return _write_files(ctx.out, files)


def random_model(config_name: str, *, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A randomly initialised ``transformers`` model of a shipped public config (``data/configs``)."""
    from transformers import AutoModelForCausalLM

    from .memory import load_public_config

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(load_public_config(config_name), dtype=dtype).eval()


def reference_model(config_name: str, tokenizer_dir: Path, out: Path, *, seed: int = 0) -> Path:
    """A randomly initialised model of a shipped public config (``data/configs``), saved with the
    course tokenizer (its speed and size do not depend on the weights' values or the vocabulary's
    strings; the converter pads the vocabulary to the config's size)."""
    random_model(config_name, seed=seed, dtype=torch.bfloat16).save_pretrained(out)
    _copy_tokenizer(tokenizer_dir, out)
    return Path(out)


def _build_reference(ctx) -> dict[str, Any]:
    budget = _budget(ctx.preset)
    model_dir = reference_model(budget.reference, ctx.deps["tokenizer"].path, ctx.scratch / "model",
                                seed=ctx.preset.seed)
    files = export_gguf(model_dir, ctx.out, budget.reference_formats, stem=budget.reference)
    shutil.rmtree(model_dir, ignore_errors=True)
    return _write_files(ctx.out, files)


def _register() -> None:
    from .pipeline import Stage, register

    register(Stage(name="export", description="GGUF files of the SFT model (f32, f16, q8_0, Q4_K_M) for llama.cpp.",
                   deps=("sft",),
                   config=lambda p: {"formats": list(_budget(p).formats), "llama_cpp_python": LLAMA_CPP_PYTHON},
                   build=build_export))
    register(Stage(name="export_reference",
                   description="GGUF files of a randomly initialised full-size model (LFM2-350M) for speed and size.",
                   deps=("tokenizer",),
                   config=lambda p: {"reference": _budget(p).reference, "formats": list(_budget(p).reference_formats),
                                     "seed": p.seed, "llama_cpp_python": LLAMA_CPP_PYTHON},
                   build=_build_reference))


_register()
