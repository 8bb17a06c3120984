"""Command-line entry: ``python -m lfm_helpers <command>``.

- ``data [--check]``: regenerate the shipped ``data/`` (or check it is byte-identical);
- ``presets``: list the presets and what they are for;
- ``stages``: list the pipeline stages;
- ``run STAGE [--preset NAME] [--force]``: build a stage (and what it needs) into ``runs/``;
- ``course [NOTEBOOK ...]``: execute the notebooks in order and print a summary;
- ``profile [--size realistic] [--contexts N ...]``: profile LFM2 against sliding-window attention,
  gated DeltaNet and full attention on this CPU (notebook 01) and print the table;
- ``sweep [--size large]``: train the scaling sweep and fit a scaling law (notebook 03);
- ``book``: build the Jupyter Book from the executed notebooks (``build/book``) and check its links;
- ``benchmark``: pretraining tokens/s of the course loop against ``transformers.Trainer``;
- ``ship-base``: run the long base pretraining and ship it in ``data/base/<preset>/``.
- ``ship-sft``: run SFT (full and LoRA) at the preset's full budget and ship it in ``data/sft/<preset>/``.
- ``capstone TASK.json [--preset NAME]``: the recipe on your own task (notebook 10): data, SFT,
  preference, RL, merge and export under the preset ``<preset>-capstone-<task>``; prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys

from .presets import PRESETS, PROFILE_SIZES


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
    p_run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="change a preset field for this run, e.g. --set sft_live.max_steps=4 (repeatable)")
    p_course = sub.add_parser("course", help="execute the notebooks and print a summary")
    p_course.add_argument("notebooks", nargs="*", help="notebook paths (default: all, in order)")
    p_course.add_argument("--preset", default=None)
    p_prof = sub.add_parser("profile", help="profile the four architectures on this CPU (notebook 01)")
    p_prof.add_argument("--preset", default=None, help="whose profile budget and runs/ folder (default: $LFM_PRESET or tiny)")
    p_prof.add_argument("--size", default=None, choices=sorted(PROFILE_SIZES),
                        help="a named budget instead of the preset's (realistic: LFM2-350M layout, up to 16k tokens)")
    p_prof.add_argument("--contexts", type=int, nargs="+", default=None, help="context lengths to profile")
    p_prof.add_argument("--architectures", nargs="+", default=None, help="a subset of lfm2 gemma3 qwen3_5 gqa")
    p_prof.add_argument("--force", action="store_true", help="profile again even if a stored table matches")
    p_sweep = sub.add_parser("sweep", help="train the scaling sweep (notebook 03) and fit a scaling law")
    p_sweep.add_argument("--preset", default=None)
    p_sweep.add_argument("--size", choices=("preset", "large"), default="preset",
                         help="the preset's sweep, or the larger one (about an hour on two cores)")
    sub.add_parser("book", help="build the book from the executed notebooks into build/book and check its links")
    p_bench = sub.add_parser("benchmark", help="pretraining tokens/s: the course loop against transformers.Trainer")
    p_bench.add_argument("--preset", default=None)
    p_bench.add_argument("--steps", type=int, default=None,
                         help="timed steps per configuration (default: 20 on a CPU, 300 on a GPU)")
    p_bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                         help="where both loops train (default: cpu, where the tiny preset trains)")
    p_bench.add_argument("--out", default=None, help="also save the table as JSON (with device and versions)")
    p_deploy = sub.add_parser("deploy-bench", help="decode and prefill tokens/s of the GGUF exports in llama.cpp "
                                                   "against the memory-bandwidth roofline (notebook 09)")
    p_deploy.add_argument("--preset", default=None)
    p_ship = sub.add_parser("ship-base", help="run the long base pretraining and ship it in data/base/<preset>/")
    p_ship.add_argument("--preset", default=None)
    p_ship_sft = sub.add_parser("ship-sft", help="run SFT (full and LoRA) at the preset's full budget and ship "
                                                 "the results in data/sft/<preset>/")
    p_ship_sft.add_argument("--preset", default=None)
    p_search = sub.add_parser("sft-search", help="try changes to the preset (SFT steps, base, model size) until "
                                                 "SFT reaches notebook 04's targets; writes a JSON table")
    p_search.add_argument("--preset", default=None)
    p_search.add_argument("--variants", nargs="*", help="variant names (default: all, cheapest first)")
    p_search.add_argument("--examples", type=int, default=None, help="test rows per task (default: the preset's)")
    p_search.add_argument("--jobs", type=int, default=1, help="variants trained side by side (on a GPU)")
    p_search.add_argument("--out", default=None, help="results file (default: runs/<preset>/sft_search.json)")
    p_search.add_argument("--merge", action="store_true", help="keep the other variants' results already in --out")
    p_cap = sub.add_parser("capstone", help="run the course's recipe on your own task (a JSON file: schema and "
                                            "examples; see data/capstone/) and print each stage's metrics")
    p_cap.add_argument("task", help="the task file, e.g. data/capstone/flight_booking.json")
    p_cap.add_argument("--preset", default=None, help="tiny (from the course's SFT model) or colab (from LFM2.5)")
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
        from .presets import load_preset, override

        try:
            preset = override(load_preset(args.preset, check_device=False), args.set)
            art = run_stage(args.stage, preset, force=args.force)
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
    if args.command == "profile":
        import time

        from .profiling import format_profile_table, run_profile

        start = time.perf_counter()
        try:
            run = run_profile(args.preset, size=args.size, contexts=tuple(args.contexts or ()) or None,
                              architectures=tuple(args.architectures or ()) or None, force=args.force)
        except (ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(format_profile_table(run.table))
        print(f"threads: {run.metrics['threads']}  memory: {run.metrics['memory_method']}")
        print("kernels:", ", ".join(f"{k}: {v}" for k, v in run.metrics["kernels"].items()))
        print(f"table: {run.path / 'profile.csv'} ({'reused' if run.reused else 'measured'}; "
              f"{time.perf_counter() - start:.0f} s)")
        return 0
    if args.command == "sweep":
        from .presets import LARGE_SWEEP, load_preset
        from .scaling import fit_scaling_law
        from .sweep import points_table, run_sweep, sweep_arrays

        preset = load_preset(args.preset)
        points = run_sweep(preset, LARGE_SWEEP if args.size == "large" else None)
        print(points_table(points).to_string(index=False))
        print(fit_scaling_law(*sweep_arrays(points)))
        return 0
    if args.command == "book":
        from .book import broken_links, build_book

        site = build_book()
        broken = broken_links(site)
        for link in broken:
            print(f"broken link: {link}")
        print(f"book: {site / 'index.html'} ({len(broken)} broken internal links)")
        return 1 if broken else 0
    if args.command == "benchmark":
        from .presets import load_preset
        from .throughput import benchmark_pretraining, format_benchmark, save_benchmark

        steps = args.steps or (300 if args.device == "cuda" else 20)
        results = benchmark_pretraining(load_preset(args.preset), steps=steps,
                                        warmup=3 if args.device == "cpu" else 20, device=args.device,
                                        log=lambda r: print(f"measured: {r.name}: {r.tokens_per_second:.0f} tokens/s"))
        print(format_benchmark(results))
        if args.out:
            from .device import device_name
            from .versions import library_versions

            save_benchmark(results, args.out, device=device_name(), versions=library_versions(),
                           command="python -m lfm_helpers " + " ".join(sys.argv[1:] if argv is None else argv))
            print(f"saved {args.out}")
        return 0
    if args.command == "deploy-bench":
        from .deploy import speed_benchmark
        from .presets import load_preset

        bandwidth, table = speed_benchmark(load_preset(args.preset, check_device=False))
        print(f"memory bandwidth: {bandwidth:.1f} GB/s (copy)")
        print(table.to_string(index=False))
        return 0
    if args.command == "ship-base":
        from .base import ship_base
        from .presets import load_preset

        preset = load_preset(args.preset)
        print(f"shipped: {ship_base(preset, command=f'python -m lfm_helpers ship-base --preset {preset.name}')}")
        return 0
    if args.command == "sft-search":
        from .artifacts import artifact_dir
        from .presets import load_preset
        from .sft_search import VARIANTS, save_results, search, search_table, smallest_passing, variant_named
        from .versions import library_versions

        preset = load_preset(args.preset, check_device=False)
        try:
            variants = tuple(variant_named(v) for v in args.variants) if args.variants else VARIANTS
        except ValueError as e:
            parser.error(str(e))
        out = args.out or artifact_dir(preset.name, "sft_search.json")
        command = "python -m lfm_helpers " + " ".join(sys.argv[1:] if argv is None else argv)
        results = search(preset, variants, n=args.examples, jobs=args.jobs,
                         on_result=lambda rs: save_results(rs, out, command=command, versions=library_versions(),
                                                           merge=args.merge))
        print(search_table(results).to_string())
        best = smallest_passing(results)
        print(f"smallest change that meets the targets: {best['change'] if best else 'none of these'}; saved {out}")
        return 0
    if args.command == "ship-sft":
        from .presets import load_preset
        from .shipped import ship

        preset = load_preset(args.preset)
        for path in ship(preset, command=f"python -m lfm_helpers ship-sft --preset {preset.name}"):
            print(f"shipped: {path}")
        return 0
    if args.command == "capstone":
        from .capstone import field_table, load_task, report_table, run_capstone, stage_reports
        from .data import load_split
        from .presets import load_preset

        try:
            task = load_task(args.task)
            run = run_capstone(task, load_preset(args.preset))
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        reports = stage_reports(run)
        print(report_table(reports).to_string())
        with run.using_data():
            print(field_table(reports, load_split("extraction", "test")).to_string())
        print(f"GGUF files: {run.artifacts['export_merged'].path}")
        return 0
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
