"""Command-line entry: ``python -m lfm_helpers <command>``.

- ``data [--check]``: regenerate the shipped ``data/`` (or check it is byte-identical);
- ``presets``: list the presets and what they are for;
- ``stages``: list the pipeline stages;
- ``run STAGE [--preset NAME] [--force]``: build a stage (and what it needs) into ``runs/``;
- ``course [NOTEBOOK ...]``: execute the notebooks in order and print a summary.
"""

from __future__ import annotations

import argparse
import json
import sys

from .presets import PRESETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfm_helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    # `data` passes its own options (--check, --out, --seed) on to lfm_helpers.data.generate.main.
    sub.add_parser("data", help="regenerate (or --check) the shipped data", add_help=False)
    sub.add_parser("presets", help="list presets")
    sub.add_parser("stages", help="list pipeline stages")
    p_run = sub.add_parser("run", help="build a pipeline stage")
    p_run.add_argument("stage")
    p_run.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: $LFM_PRESET or tiny)")
    p_run.add_argument("--force", action="store_true", help="rebuild even if a valid artifact exists")
    p_course = sub.add_parser("course", help="execute the notebooks and print a summary")
    p_course.add_argument("notebooks", nargs="*", help="notebook paths (default: all, in order)")
    p_course.add_argument("--preset", default=None)
    args, rest = parser.parse_known_args(argv)
    if args.command == "data":
        from .data.generate import main as data_main

        return data_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "presets":
        for p in PRESETS.values():
            print(f"{p.name:<6} {'GPU' if p.requires_gpu else 'CPU'}  {p.description}")
        return 0
    if args.command == "stages":
        from .pipeline import STAGES

        for s in STAGES.values():
            deps = f" (needs {', '.join(s.deps)})" if s.deps else ""
            print(f"{s.name:<10} {s.description}{deps}")
        return 0
    if args.command == "run":
        from .pipeline import run_stage

        try:
            art = run_stage(args.stage, args.preset, force=args.force)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"path": str(art.path), "reused": art.reused, "metrics": art.metrics}, indent=2))
        return 0
    if args.command == "course":
        from pathlib import Path

        from .course import run_course
        from .presets import load_preset

        try:
            preset = load_preset(args.preset).name
        except (ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        runs = run_course([Path(n) for n in args.notebooks] or None, preset=preset)
        return 0 if all(r.ok for r in runs) else 1
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
