"""``mcdepth-train config``: show the resolved config, or every default with its meaning."""
from __future__ import annotations

import argparse

import yaml

from ..config import config_to_dict, describe_defaults
from .common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--defaults", action="store_true", help="print every key, its default and its meaning")


def run(args: argparse.Namespace) -> int:
    if args.defaults:
        print(describe_defaults(), end="")
        return 0
    print(yaml.safe_dump(config_to_dict(config_from_args(args)), sort_keys=False), end="")
    return 0
