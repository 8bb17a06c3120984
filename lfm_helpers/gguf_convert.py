"""Run llama.cpp's own Hugging Face -> GGUF converter on a course checkpoint.

``python -m lfm_helpers.gguf_convert SOURCES MODEL_DIR OUTFILE OUTTYPE`` runs
``convert_hf_to_gguf.py`` from the llama.cpp sources that ``make llama-cpp`` unpacks from the
llama-cpp-python sdist (``SOURCES``; nothing of llama.cpp is committed here). It runs in its own
process because the converter puts its ``conversion`` and ``gguf`` packages on ``sys.path``.

One adjustment, made from outside the converter: llama.cpp names a BPE tokenizer's
pre-tokenizer by hashing how it splits a test string, and only knows published tokenizers. A
tokenizer trained by the course (byte-level BPE, GPT-2's split regex) is unknown to that table,
so for such a tokenizer *only* the pre-tokenizer is declared as ``"gpt-2"``, which is the split
it uses; notebook 09 then checks that llama.cpp tokenises every test prompt exactly as
``transformers`` does. Published tokenizers (LFM2.5's) go through the converter's own table.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def is_gpt2_byte_level(model_dir: Path) -> bool:
    """Whether ``tokenizer.json`` splits like GPT-2: a single ``ByteLevel`` pre-tokenizer with its regex."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return False
    pre = json.loads(path.read_text()).get("pre_tokenizer") or {}
    return pre.get("type") == "ByteLevel" and bool(pre.get("use_regex", True))


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit("usage: python -m lfm_helpers.gguf_convert SOURCES MODEL_DIR OUTFILE OUTTYPE")
    sources, model_dir, outfile, outtype = argv
    sys.path[:0] = [sources, str(Path(sources) / "gguf-py")]
    import conversion.base as base  # noqa: E402  (llama.cpp's converter package, from SOURCES)

    known = base.TextModel.get_vocab_base_pre
    course_tokenizer = is_gpt2_byte_level(Path(model_dir))

    def get_vocab_base_pre(self, tokenizer) -> str:
        if not course_tokenizer:
            return known(self, tokenizer)
        quiet = logging.getLogger("hf-to-gguf")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # the "not recognized" banner is expected here
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            return "gpt-2"
        finally:
            quiet.setLevel(level)

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", outfile, "--outtype", outtype]
    import convert_hf_to_gguf  # noqa: E402

    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main(sys.argv[1:])
