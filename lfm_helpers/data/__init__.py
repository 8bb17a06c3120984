"""The course's data: one seeded world, and the three data sets written about it.

- :mod:`~lfm_helpers.data.world`: the world (cities, people, products, venues) and factories
  for orders, events and meetings that stay consistent with it;
- :mod:`~lfm_helpers.data.corpus`: pretraining text (``data/corpus``);
- :mod:`~lfm_helpers.data.extraction`: text -> JSON extraction (``data/extraction``);
- :mod:`~lfm_helpers.data.tool_use`: multi-turn tool-calling conversations (``data/tool_use``);
- :mod:`~lfm_helpers.data.generate`: byte-identical regeneration, checking and loading.

Notebooks normally only need ``load_split`` and the chat builders::

    from lfm_helpers.data import load_split, load_schemas, extraction_messages
    rows = load_split("extraction", "train")
    chat = extraction_messages(rows[0], load_schemas())
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lfm_helpers.data.extraction import (
    FAMILIES,
    RECORD_TYPES,
    SCHEMAS,
    canonical_json,
    extraction_messages,
    schema_prompt,
)
from lfm_helpers.data.generate import SPLITS, check_data, generate_all, load_jsonl, load_split, main
from lfm_helpers.data.tool_use import SYSTEM_PROMPT as TOOL_SYSTEM_PROMPT
from lfm_helpers.data.tool_use import Turn, conversation_turns
from lfm_helpers.data.world import World, build_world


def load_schemas(data_dir: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """``data/extraction/schemas.json``: ``{record_type: JSON Schema}``."""
    from lfm_helpers.paths import data_dir as default_data_dir

    path = Path(default_data_dir() if data_dir is None else data_dir) / "extraction" / "schemas.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `python -m lfm_helpers data` to generate it")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "FAMILIES",
    "RECORD_TYPES",
    "SCHEMAS",
    "SPLITS",
    "TOOL_SYSTEM_PROMPT",
    "Turn",
    "World",
    "build_world",
    "canonical_json",
    "check_data",
    "conversation_turns",
    "extraction_messages",
    "generate_all",
    "load_jsonl",
    "load_schemas",
    "load_split",
    "main",
    "schema_prompt",
]
