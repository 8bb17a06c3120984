"""The tokenizer: a byte-level BPE vocabulary and an LFM2-style chat template.

What LFM2 does
--------------
LFM2 (and LFM2.5) use a 65,536-token byte-level BPE vocabulary. "Byte-level" means the base
alphabet is the 256 possible bytes, so any UTF-8 text (accents, CJK, emoji, code) can be encoded
without an unknown token; BPE merges then learn frequent byte sequences as single tokens. A
handful of special tokens sit at the start of the vocabulary (``<|pad|>`` = 0,
``<|startoftext|>`` = 1, ``<|endoftext|>`` = 2, the chat and tool markers after them).

Conversations use a ChatML-like template::

    <|startoftext|><|im_start|>system
    You are helpful.<|im_end|>
    <|im_start|>user
    Hi!<|im_end|>
    <|im_start|>assistant
    Hello!<|im_end|>

Tools are listed as JSON in the system prompt between ``<|tool_list_start|>`` and
``<|tool_list_end|>``; the model calls them with *Pythonic* calls,
``<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>``, and tool results come back
in a ``tool`` turn wrapped in ``<|tool_response_start|>...<|tool_response_end|>``.

What this module simplifies
---------------------------
The course trains its own *tiny* vocabulary (a few thousand tokens) on the shipped corpus, on a
CPU in seconds, instead of LFM2's 65,536 tokens trained on trillions of tokens. A small vocabulary
keeps the embedding matrix (vocab x hidden) from dominating a ~3M-parameter model. LFM2's
fill-in-the-middle tokens are left out; the special tokens we keep are the ones the course uses,
in LFM2's order. The chat template follows LFM2's public one; like LFM2's later revisions it
also renders an OpenAI-style ``tool_calls`` field in the Pythonic format, and it marks assistant
turns with ``{% generation %}`` so training can compute the loss on assistant tokens only.

``tok(text)`` adds no special tokens: a pretraining packer adds ``bos_token_id`` /
``eos_token_id`` itself, and ``apply_chat_template`` writes ``<|startoftext|>`` through the
template. ``eos_token`` is ``<|endoftext|>`` (the end of a plain document); a chat model stops a
turn at ``<|im_end|>`` (``IM_END``), so generation should stop on either.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .paths import resolve_pretrained

PAD = "<|pad|>"
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOL_LIST_START = "<|tool_list_start|>"
TOOL_LIST_END = "<|tool_list_end|>"
TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"
TOOL_RESPONSE_START = "<|tool_response_start|>"
TOOL_RESPONSE_END = "<|tool_response_end|>"

#: The special tokens, in vocabulary order: the token at index ``i`` has id ``i``.
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD, BOS, EOS, IM_START, IM_END,
    TOOL_LIST_START, TOOL_LIST_END,
    TOOL_CALL_START, TOOL_CALL_END,
    TOOL_RESPONSE_START, TOOL_RESPONSE_END,
)

#: The smallest vocabulary that can hold every byte plus the special tokens (no merges at all).
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

#: LFM2-style chat template (Jinja, rendered by ``tok.apply_chat_template``).
#:
#: - ``<|startoftext|>`` first, then one ``<|im_start|>{role}\n{content}<|im_end|>\n`` per message;
#:   roles are system / user / assistant / tool. Non-string content is rendered with ``tojson``.
#: - ``tools=[schema, ...]``: the system prompt gets
#:   ``List of tools: <|tool_list_start|>[{json}, {json}]<|tool_list_end|>`` appended (on a new
#:   line after an existing system prompt), and a system turn is created if there was none.
#: - tool turns: content wrapped in ``<|tool_response_start|>...<|tool_response_end|>``.
#: - assistant turns: tool calls are usually already in the content as
#:   ``<|tool_call_start|>[name(arg=value)]<|tool_call_end|>`` text (how the course's data stores
#:   them). An OpenAI-style ``tool_calls`` field (``[{"function": {"name", "arguments"}}]`` or
#:   ``[{"name", "arguments"}]``, ``arguments`` a dict) is rendered in that same Pythonic form
#:   after the content, as LFM2's later template revisions do. Argument values are written as
#:   Python literals, the way ``lfm_helpers.tools.format_tool_calls`` writes them: strings in
#:   double quotes with JSON escapes (which Python reads too), numbers as they are,
#:   ``True``/``False``/``None``, lists and dicts recursively. (LFM2's own template single-quotes
#:   strings; both are valid Python, the course picks one and keeps to it.) ``arguments`` given
#:   as a JSON *string* (as the OpenAI API returns them) is rejected: parse it into a dict first.
#: - the assistant content and its ``<|im_end|>`` are wrapped in ``{% generation %}`` so that
#:   ``apply_chat_template(..., return_dict=True, return_assistant_tokens_mask=True)`` and TRL's
#:   ``assistant_only_loss=True`` know which tokens the model must learn to produce. The role
#:   header before it and the newline after it are not part of the mask.
#: - ``add_generation_prompt=True`` appends ``<|im_start|>assistant\n``.
#:
#: Whitespace control (``{%-``/``-%}``) strips the template's own layout, so only the quoted
#: strings reach the output.
CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- macro py_literal(value) -%}
    {%- if value is sameas true -%}
        {{- "True" -}}
    {%- elif value is sameas false -%}
        {{- "False" -}}
    {%- elif value is none -%}
        {{- "None" -}}
    {%- elif value is mapping -%}
        {{- "{" -}}
        {%- for key, item in value.items() -%}
            {{- (key | string | tojson) + ": " + py_literal(item) -}}
            {%- if not loop.last -%}{{- ", " -}}{%- endif -%}
        {%- endfor -%}
        {{- "}" -}}
    {%- elif value is iterable and value is not string -%}
        {{- "[" -}}
        {%- for item in value -%}
            {{- py_literal(item) -}}
            {%- if not loop.last -%}{{- ", " -}}{%- endif -%}
        {%- endfor -%}
        {{- "]" -}}
    {%- else -%}
        {{- value | tojson -}}
    {%- endif -%}
{%- endmacro -%}
{%- set ns = namespace(system_prompt="") -%}
{%- if messages and messages[0]["role"] == "system" -%}
    {%- set ns.system_prompt = messages[0]["content"] -%}
    {%- set messages = messages[1:] -%}
{%- endif -%}
{%- if tools -%}
    {%- set ns.system_prompt = ns.system_prompt + ("\\n" if ns.system_prompt else "") -%}
    {%- set ns.system_prompt = ns.system_prompt + "List of tools: <|tool_list_start|>[" -%}
    {%- for tool in tools -%}
        {%- set ns.system_prompt = ns.system_prompt + (tool if tool is string else tool | tojson) -%}
        {%- if not loop.last -%}
            {%- set ns.system_prompt = ns.system_prompt + ", " -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set ns.system_prompt = ns.system_prompt + "]<|tool_list_end|>" -%}
{%- endif -%}
{%- if ns.system_prompt -%}
    {{- "<|im_start|>system\\n" + ns.system_prompt + "<|im_end|>\\n" -}}
{%- endif -%}
{%- for message in messages -%}
    {%- set content = message["content"] if message["content"] is defined else "" -%}
    {%- if content is not string -%}
        {%- set content = content | tojson -%}
    {%- endif -%}
    {{- "<|im_start|>" + message["role"] + "\\n" -}}
    {%- if message["role"] == "assistant" -%}
        {%- generation -%}
        {{- content -}}
        {%- if message["tool_calls"] is defined and message["tool_calls"] -%}
            {{- "<|tool_call_start|>[" -}}
            {%- for tool_call in message["tool_calls"] -%}
                {%- set call = tool_call["function"] if tool_call["function"] is defined else tool_call -%}
                {%- if call["arguments"] is string -%}
                    {{- raise_exception("tool_calls arguments must be a dict, not a JSON string") -}}
                {%- endif -%}
                {{- call["name"] + "(" -}}
                {%- for arg_name, arg_value in (call["arguments"] or {}).items() -%}
                    {{- arg_name + "=" + py_literal(arg_value) -}}
                    {%- if not loop.last -%}{{- ", " -}}{%- endif -%}
                {%- endfor -%}
                {{- ")" -}}
                {%- if not loop.last -%}{{- ", " -}}{%- endif -%}
            {%- endfor -%}
            {{- "]<|tool_call_end|>" -}}
        {%- endif -%}
        {{- "<|im_end|>" -}}
        {%- endgeneration -%}
    {%- elif message["role"] == "tool" -%}
        {{- "<|tool_response_start|>" + content + "<|tool_response_end|><|im_end|>" -}}
    {%- else -%}
        {{- content + "<|im_end|>" -}}
    {%- endif -%}
    {{- "\\n" -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- "<|im_start|>assistant\\n" -}}
{%- endif -%}
"""


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``, locally, and wrap it for transformers.

    - ``vocab_size`` is an upper bound: the 11 special tokens (ids 0..10) plus the 256 byte
      tokens plus as many merges as fit. A small corpus may run out of pairs that occur
      ``min_frequency`` times before reaching it; ``len(tok)`` is the real size.
    - ``min_frequency`` is how often a pair must occur to be merged; 2 keeps one-off strings in
      the corpus from taking vocabulary slots.
    - ``model_max_length`` is the longest sequence the model is meant to see (the tokenizer only
      uses it for ``truncation=True`` and length warnings); match the model's context length.

    The pre-tokenizer is GPT-2's byte-level regex (``use_regex=True``): text is first split into
    words, numbers, punctuation runs and whitespace runs, and merges never cross those
    boundaries, so a token never glues a word to the punctuation after it.
    ``add_prefix_space=False`` keeps the encoding exact, so ``decode(encode(text)) == text``.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not one string (wrap it in a list)")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level vocabulary needs 256 byte tokens plus "
            f"{len(SPECIAL_TOKENS)} special tokens, so at least {MIN_VOCAB_SIZE}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be at least 1, got {min_frequency}")
    # Peek at the first non-empty text, so an empty corpus fails here with a clear message
    # (the trainer would happily return a merge-less vocabulary), without materialising a
    # generator the caller streams the corpus through.
    remaining = iter(texts)
    first = next((text for text in remaining if text), None)
    if first is None:
        raise ValueError("cannot train a tokenizer on an empty corpus: texts has no non-empty string")

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        # Listed first, so they take ids 0..10 in this order; the trainer also registers them as
        # added tokens, which the encoder matches before pre-tokenizing: never split, one id each.
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 bytes are in the base vocabulary even if the corpus never uses them, so any
        # UTF-8 text round-trips.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(itertools.chain([first], remaining), trainer=trainer)

    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, BOS, EOS)],
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,  # decoding must give back the exact text
        model_max_length=model_max_length,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_tokenizer(tok: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Save ``tok`` (vocabulary, merges, special tokens, chat template) into the folder ``path``.

    This is ``save_pretrained``, so the folder loads with ``AutoTokenizer.from_pretrained`` too,
    and can sit beside a model's weights.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    return path


def load_tokenizer(path_or_id: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer from a folder written by ``save_tokenizer``, or from a hub id.

    A hub id (``"LiquidAI/LFM2.5-350M"``) is how the GPU presets get the real LFM2 vocabulary.
    A local folder without ``tokenizer.json``, a file, or a path that does not exist raises
    ``FileNotFoundError`` here, instead of transformers mistaking it for a hub id and failing on
    the network with a confusing message.
    """
    text = resolve_pretrained(path_or_id, "tokenizer.json", "tokenizer")
    return AutoTokenizer.from_pretrained(text)


def compression(tok: PreTrainedTokenizerFast, texts: Iterable[str]) -> float:
    """Average characters per token over ``texts`` (special tokens not added).

    Higher is better compression: more text fits in the same context and costs fewer forward
    passes. English with GPT-style vocabularies lands around 4; a tiny vocabulary gets less.
    """
    texts = list(texts)
    n_tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]) if texts else 0
    if n_tokens == 0:
        raise ValueError("cannot measure compression on an empty text collection")
    return sum(len(text) for text in texts) / n_tokens


def describe_tokenizer(tok: PreTrainedTokenizerFast, texts: Iterable[str] | None = None) -> dict[str, Any]:
    """A small summary for notebooks: sizes, special token ids and, given texts, compression."""
    summary: dict[str, Any] = {
        "vocab_size": len(tok),
        "model_max_length": tok.model_max_length,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "special_tokens": dict(sorted(
            ((token, tok.convert_tokens_to_ids(token)) for token in tok.all_special_tokens),
            key=lambda item: item[1],
        )),
        "has_chat_template": tok.chat_template is not None,
    }
    if texts is not None:
        summary["chars_per_token"] = compression(tok, texts)
    return summary
