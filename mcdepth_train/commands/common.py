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
