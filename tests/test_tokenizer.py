"""The tokenizer: byte-level round trips, atomic special tokens, the chat template and its mask."""

from __future__ import annotations

import ast
import itertools

import jinja2
import pytest

from lfm_helpers.tokenizer import (
    CHAT_TEMPLATE,
    IM_END,
    MIN_VOCAB_SIZE,
    SPECIAL_TOKENS,
    compression,
    describe_tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)

VOCAB_SIZE = 500

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

# How ``tojson`` writes WEATHER_TOOL: keys in insertion order, ", " and ": " separators.
WEATHER_TOOL_JSON = (
    '{"name": "get_weather", "description": "Get the current weather in a city.", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}'
)

TOOL_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>'},
    {"role": "tool", "content": '{"temperature": 21, "sky": "sunny"}'},
    {"role": "assistant", "content": "It is sunny in Paris, 21 degrees."},
]


def _corpus() -> list[str]:
    """A few hundred varied, deterministic sentences: prose, numbers, code, JSON, tool calls."""
    subjects = ["The cat", "A small model", "My neighbour", "The weather in Paris", "Every student"]
    verbs = ["likes", "predicts", "reads", "writes", "remembers", "answers"]
    objects = ["the next token.", "a short story.", "numbers like 42 and 3.14.", "JSON: {\"a\": 1}.",
               "tool calls such as get_weather(city=\"Paris\").", "the café menu."]
    sentences = [f"{s} {v} {o}" for s, v, o in itertools.product(subjects, verbs, objects)]
    sentences += [f"def add_{i}(x, y):\n    return x + y + {i}\n" for i in range(40)]
    sentences += [f'{{"id": {i}, "name": "item {i}", "tags": ["a", "b"]}}' for i in range(40)]
    sentences += ["Über den Wolken, naïve façade, 日本語のテキスト, emoji 🙂🚀."] * 5
    return sentences


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(_corpus(), VOCAB_SIZE)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


# --------------------------------------------------------------------------- vocabulary
@pytest.mark.parametrize("text", [
    "Hello, world! How are you today?",
    "Spaces  and\ttabs\n\nand newlines\r\n at the end   ",
    " leading space , and ' quotes ' .",
    "Unicode: é ü ñ ß, 日本, emoji 🙂👍🏽, math ∑∫.",
    '{"name": "get_weather", "arguments": {"city": "Zürich", "days": [1, 2]}}',
    "bytes the corpus never saw: \x00\x7f ÿ ǅ 𝔘",
])
def test_decode_encode_round_trip(tok, text):
    assert tok.decode(_ids(tok, text)) == text


def test_special_tokens_come_first_in_order(tok):
    assert len(SPECIAL_TOKENS) == 11
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(11))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize("token_id, token", list(enumerate(SPECIAL_TOKENS)))
def test_each_special_token_is_one_id(tok, token_id, token):
    assert _ids(tok, token) == [token_id]
    assert _ids(tok, f"x{token}y")[1:-1] == [token_id]


def test_tool_call_markers_stay_atomic_in_text(tok):
    text = "Calling <|tool_call_start|>[f(x=1)]<|tool_call_end|> now"
    ids = _ids(tok, text)
    assert ids.count(7) == 1 and ids.count(8) == 1
    between = ids[ids.index(7) + 1:ids.index(8)]
    assert tok.decode(between) == "[f(x=1)]"
    assert tok.decode(ids) == text


def test_vocab_size_is_an_upper_bound_and_merges_are_learned(tok):
    assert MIN_VOCAB_SIZE < len(tok) <= VOCAB_SIZE
    assert len(_ids(tok, "The weather in Paris")) < len("The weather in Paris")


def test_no_special_tokens_added_by_default(tok):
    assert _ids(tok, "hello") == tok("hello")["input_ids"]


def test_training_is_deterministic(tok):
    assert train_tokenizer(_corpus(), VOCAB_SIZE).get_vocab() == tok.get_vocab()


def test_accepts_a_generator():
    streamed = train_tokenizer((text for text in _corpus()), VOCAB_SIZE)
    assert len(streamed) > MIN_VOCAB_SIZE


def test_smallest_vocab_has_no_merges():
    tok = train_tokenizer(_corpus(), MIN_VOCAB_SIZE)
    assert len(tok) == MIN_VOCAB_SIZE
    assert tok.decode(_ids(tok, "héllo")) == "héllo"


def test_vocab_size_too_small_is_rejected():
    with pytest.raises(ValueError, match=rf"vocab_size=100 is too small.*at least {MIN_VOCAB_SIZE}"):
        train_tokenizer(_corpus(), 100)


@pytest.mark.parametrize("texts", [[], ["", ""], iter([])])
def test_empty_corpus_is_rejected(texts):
    with pytest.raises(ValueError, match="empty corpus"):
        train_tokenizer(texts, VOCAB_SIZE)


def test_single_string_is_rejected():
    with pytest.raises(TypeError, match="not one string"):
        train_tokenizer("just one text", VOCAB_SIZE)


# --------------------------------------------------------------------------- chat template
EXPECTED_TOOL_CHAT = (
    "<|startoftext|><|im_start|>system\n"
    "You are a helpful assistant.\n"
    f"List of tools: <|tool_list_start|>[{WEATHER_TOOL_JSON}]<|tool_list_end|><|im_end|>\n"
    "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
    '<|im_start|>assistant\n<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|><|im_end|>\n'
    '<|im_start|>tool\n<|tool_response_start|>{"temperature": 21, "sky": "sunny"}'
    "<|tool_response_end|><|im_end|>\n"
    "<|im_start|>assistant\nIt is sunny in Paris, 21 degrees.<|im_end|>\n"
)


def test_tokenizer_carries_the_chat_template(tok):
    assert tok.chat_template == CHAT_TEMPLATE


def test_tool_conversation_renders_exactly(tok):
    rendered = tok.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL], tokenize=False)
    assert rendered == EXPECTED_TOOL_CHAT


def test_plain_chat_without_system_or_tools(tok):
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello!"}], tokenize=False)
    assert rendered == ("<|startoftext|><|im_start|>user\nHi!<|im_end|>\n"
                        "<|im_start|>assistant\nHello!<|im_end|>\n")


OPENAI_CALLS = [
    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}},
    {"name": "get_weather", "arguments": {"city": "Rome"}},
]


def test_openai_tool_calls_field_renders_pythonic_calls(tok):
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": OPENAI_CALLS},
    ]
    rendered = tok.apply_chat_template(messages, tools=[WEATHER_TOOL], tokenize=False)
    # No system message was given: the tool list creates one.
    assert rendered == (
        "<|startoftext|><|im_start|>system\n"
        f"List of tools: <|tool_list_start|>[{WEATHER_TOOL_JSON}]<|tool_list_end|><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n"
        '<|im_start|>assistant\n<|tool_call_start|>[get_weather(city="Paris", days=2), '
        'get_weather(city="Rome")]<|tool_call_end|><|im_end|>\n'
    )


def test_tool_calls_field_goes_after_the_content(tok):
    messages = [{"role": "assistant", "content": "Let me check.", "tool_calls": OPENAI_CALLS[1:]}]
    assert tok.apply_chat_template(messages, tokenize=False) == (
        "<|startoftext|><|im_start|>assistant\n"
        'Let me check.<|tool_call_start|>[get_weather(city="Rome")]<|tool_call_end|><|im_end|>\n'
    )


def test_tool_call_arguments_are_python_literals(tok):
    arguments = {"text": 'say "hi"\\ é\n', "n": -3, "x": 0.5, "flag": True, "off": False, "none": None,
                 "items": [1, "a", [None]], "opts": {"deep": False}}
    messages = [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": arguments}]}]
    rendered = tok.apply_chat_template(messages, tokenize=False)
    call = rendered[rendered.index("[") + 1:rendered.rindex("]")]
    assert call == ('f(text="say \\"hi\\"\\\\ é\\n", n=-3, x=0.5, flag=True, off=False, none=None, '
                    'items=[1, "a", [None]], opts={"deep": False})')
    parsed = ast.parse(call, mode="eval").body
    assert {kw.arg: ast.literal_eval(kw.value) for kw in parsed.keywords} == arguments


def test_tool_calls_with_json_string_arguments_are_rejected(tok):
    messages = [{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}]
    with pytest.raises(jinja2.TemplateError, match="must be a dict"):
        tok.apply_chat_template(messages, tokenize=False)


def test_add_generation_prompt(tok):
    rendered = tok.apply_chat_template([{"role": "user", "content": "Hi!"}], add_generation_prompt=True,
                                       tokenize=False)
    assert rendered == "<|startoftext|><|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"


def test_rendered_markers_are_single_ids(tok):
    ids = tok.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL], return_dict=True)["input_ids"]
    assert ids[:2] == [1, 3]  # <|startoftext|><|im_start|>
    assert tok.decode(ids) == EXPECTED_TOOL_CHAT
    for token_id in range(3, 11):
        assert token_id in ids


def test_assistant_mask_covers_exactly_the_assistant_turns(tok):
    out = tok.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL], return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(mask) == len(ids)
    spans = [[token_id for token_id, _ in group]
             for masked, group in itertools.groupby(zip(ids, mask), key=lambda pair: pair[1]) if masked]
    expected = [m["content"] + IM_END for m in TOOL_CONVERSATION if m["role"] == "assistant"]
    assert [tok.decode(span) for span in spans] == expected


def test_assistant_mask_covers_rendered_tool_calls(tok):
    messages = [{"role": "user", "content": "Rome?"}, {"role": "assistant", "tool_calls": OPENAI_CALLS[1:]}]
    out = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    masked = [token_id for token_id, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == '<|tool_call_start|>[get_weather(city="Rome")]<|tool_call_end|><|im_end|>'


def test_trl_accepts_the_template_for_assistant_only_loss(tok):
    """TRL's own checks: generation markers, <|im_end|> inside the mask, prefix-preserving, tool calls."""
    from trl.chat_template_utils import (  # imported here: importing TRL takes a few seconds
        has_generation_markers,
        is_chat_template_prefix_preserving,
        is_chat_template_stop_token_trained,
        supports_tool_calling,
    )

    assert has_generation_markers(tok.chat_template)
    assert is_chat_template_stop_token_trained(tok)
    assert is_chat_template_prefix_preserving(tok)
    assert supports_tool_calling(tok)


# --------------------------------------------------------------------------- save / load / describe
def test_save_load_round_trip(tok, tmp_path):
    folder = save_tokenizer(tok, tmp_path / "tok")
    loaded = load_tokenizer(folder)
    text = "Calling <|tool_call_start|>[f(x=1)]<|tool_call_end|> in Zürich 🙂"
    assert _ids(loaded, text) == _ids(tok, text)
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.get_vocab() == tok.get_vocab()
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert loaded("hello")["input_ids"] == _ids(loaded, "hello")  # still no automatic <|startoftext|>
    rendered = loaded.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL], tokenize=False)
    assert rendered == EXPECTED_TOOL_CHAT


def test_load_folder_without_tokenizer_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        load_tokenizer(tmp_path)


def test_load_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")


def test_load_a_file_fails_clearly(tok, tmp_path):
    folder = save_tokenizer(tok, tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="is a file"):
        load_tokenizer(folder / "tokenizer.json")


def test_compression_and_description(tok):
    corpus = _corpus()
    chars_per_token = compression(tok, corpus)
    assert 1.5 < chars_per_token < 10
    summary = describe_tokenizer(tok, corpus)
    assert summary["vocab_size"] == len(tok)
    assert summary["chars_per_token"] == chars_per_token
    assert summary["special_tokens"] == {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    assert "chars_per_token" not in describe_tokenizer(tok)


def test_compression_of_nothing_is_an_error(tok):
    with pytest.raises(ValueError, match="empty"):
        compression(tok, [])
