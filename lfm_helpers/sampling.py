"""Text generation for the notebooks: greedy and sampled continuations, reproducibly.

A thin layer over ``model.generate`` that fixes the things a learner should not have to think
about each time: the seed (so a sampled continuation is the same on every run), stopping at
the end-of-text or end-of-turn token, and returning only the new text.

:func:`complete` continues plain-text prompts one at a time (notebook 03's base model);
:func:`generate_batch` answers many chat prompts at once, left-padded, for evaluation and for
sampling completions to score in preference optimisation and RL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. ``temperature=0`` means greedy.

    ``repetition_penalty`` must be >= 1: values below 1 *reward* repetition (the
    ``repetition_penalty=0.1`` mistake found in public notebooks), so they are refused unless
    ``allow_rewarding_repetition=True`` (notebook 07 measures the mistake on purpose).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    allow_rewarding_repetition: bool = False

    def __post_init__(self) -> None:
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.repetition_penalty < 1.0 and not self.allow_rewarding_repetition:
            raise ValueError(f"repetition_penalty={self.repetition_penalty} < 1 rewards repetition; use >= 1 "
                             f"(LFM2.5's cards recommend 1.05)")
        if self.temperature < 0 or self.max_new_tokens < 1:
            raise ValueError("temperature must be >= 0 and max_new_tokens >= 1")


GREEDY = Sampling()


def stop_token_ids(tokenizer) -> list[int]:
    """Tokens that end a generation: end-of-text, and end-of-turn in chats (``<|im_end|>``)."""
    ids = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(i for i in ids if i is not None)


def _generate_kwargs(sampling: Sampling, stops: list[int], pad_id: int | None, *, seed: int) -> dict:
    """``model.generate`` arguments for ``sampling``; seeds torch's generator when it samples."""
    kwargs = dict(max_new_tokens=sampling.max_new_tokens, eos_token_id=stops, pad_token_id=pad_id,
                  repetition_penalty=sampling.repetition_penalty)
    if sampling.temperature <= 0:
        return {**kwargs, "do_sample": False}
    torch.manual_seed(seed)
    return {**kwargs, "do_sample": True, "temperature": sampling.temperature, "top_k": sampling.top_k or None,
            "top_p": sampling.top_p}


@torch.no_grad()
def complete(model, tokenizer, prompts: list[str], sampling: Sampling = GREEDY, *,
             add_bos: bool = True, skip_special_tokens: bool = True) -> list[str]:
    """Continue each prompt; return only the generated text (one prompt at a time, no padding)."""
    model.eval()
    outputs = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if add_bos and tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id] + ids
        x = torch.tensor([ids], device=model.device)
        kwargs = _generate_kwargs(sampling, stop_token_ids(tokenizer), tokenizer.pad_token_id, seed=sampling.seed + i)
        out = model.generate(x, attention_mask=torch.ones_like(x), **kwargs)
        outputs.append(tokenizer.decode(out[0, x.shape[1]:], skip_special_tokens=skip_special_tokens))
    return outputs


def chat_prompt_ids(tokenizer, messages: Sequence[dict], tools: Sequence[dict] | None = None) -> list[int]:
    """Token ids of ``messages`` rendered by the chat template, ending in the assistant header
    (``<|im_start|>assistant\n``) the model continues from."""
    out = tokenizer.apply_chat_template(list(messages), tools=list(tools) if tools else None,
                                        add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])


def _cut_at_stop(ids: list[int], stops: set[int]) -> list[int]:
    """``ids`` up to the first stop token (``generate`` pads a finished row after its stop)."""
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


@torch.no_grad()
def generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], sampling: Sampling = GREEDY, *,
                   batch_size: int = 16, desc: str | None = "generating") -> list[str]:
    """Continue each tokenised prompt; return the new text up to (not including) the stop token.

    Prompts are sorted by length and left-padded in batches of ``batch_size`` (LFM2's attention
    *and* convolution layers mask the padding, so a padded prompt gives the same greedy text as
    an unpadded one; a test checks it). Special tokens the model writes are kept, so a tool call
    reads ``<|tool_call_start|>[...]<|tool_call_end|>``; the end-of-turn token is cut off. With
    sampling, batch ``b`` (in sorted order) uses seed ``sampling.seed + b``, so a run repeats
    exactly for the same prompts and batch size. ``desc=None`` hides the progress bar. A model
    object with a ``generate_texts(tokenizer, prompts, sampling, desc=...)`` method (a GGUF file
    in llama.cpp, :class:`~lfm_helpers.deploy.GGUFModel`) generates by itself, one prompt at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if hasattr(model, "generate_texts"):  # another runtime (deploy.GGUFModel: llama.cpp) decodes itself
        return model.generate_texts(tokenizer, prompts, sampling, desc=desc)
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = set(stop_token_ids(tokenizer))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str | None] = [None] * len(prompts)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for b, batch in enumerate(tqdm(batches, desc=desc, disable=desc is None or not batches, leave=False)):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            p = list(prompts[i])
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        kwargs = _generate_kwargs(sampling, sorted(stops), pad, seed=sampling.seed + b)
        out = model.generate(ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
        for row, i in enumerate(batch):
            new = _cut_at_stop(out[row, width:].tolist(), stops)
            texts[i] = tokenizer.decode(new, skip_special_tokens=False)
    return [t for t in texts if t is not None]


def held_out_prompts(rows: list[dict], kinds: tuple[str, ...], n_chars: int = 40) -> list[str]:
    """The opening words (about ``n_chars`` characters, cut at a space) of the first document of
    each kind: prompts the model never trained on, from every genre of the corpus."""
    prompts = []
    for kind in kinds:
        text = next((r["text"] for r in rows if r["kind"] == kind), None)
        if text is None:
            raise ValueError(f"no document of kind {kind!r}")
        cut = text.rfind(" ", 0, n_chars)
        prompts.append(text[: cut if cut > 0 else n_chars])
    return prompts
