"""Arguments and config loading shared by subcommands."""
from __future__ import annotations

import argparse
import sys

from ..config import Config, ConfigError, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config (repeatable; later files win).")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.encoder=resnet50")


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config or exit with the error that names the bad key and file."""
    try:
        return load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


RUN_CONFIG = "config.yaml"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--run", metavar="RUN", help="run folder (default: run.out_dir of the config, or RUN/config.yaml's)")


def run_config(args: argparse.Namespace):
    """The config of a run: --config files if given, else ``RUN/config.yaml``; then overrides; out_dir = --run."""
    from pathlib import Path

    files = list(args.config)
    if not files and args.run and (Path(args.run) / RUN_CONFIG).is_file():
        files = [str(Path(args.run) / RUN_CONFIG)]
    try:
        cfg = load_config(files, args.overrides + ([f"run.out_dir={args.run}"] if args.run else []))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return cfg


def stage_command(name: str, help_text: str = ""):
    """(add_arguments, run) of a command that runs one pipeline stage of a run."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--force", action="store_true", help="run the stage even if its outputs are complete")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from ..config import save_config
        from ..stages.workflow import method_pipeline

        cfg = run_config(args)
        run_dir = Path(cfg.run.out_dir)
        save_config(cfg, run_dir / RUN_CONFIG)
        from ..data.errors import DataError

        try:
            method_pipeline().run_one(cfg, run_dir, name, force=args.force)
        except DataError:
            raise  # bad input: the command line prints it as one 'error:' line and exits 2
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            print(f"mcdepth-train {name}: {exc}", file=sys.stderr)
            return 1
        return 0

    return add_arguments, run
