"""`medyate` command line. Each subcommand lives in `medyate.commands.<name>`
and exposes `register(subparsers)`; its handler returns an exit code."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import MedyateError

# Order shown in --help: the pipeline's order.
COMMANDS = ("convert", "profile", "infer", "plan", "build", "train", "demo", "boards")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="medyate",
        description="Fine-tune a CNN on a microcontroller within a RAM budget (MeDyate).")
    parser.add_argument("--version", action="version", version=f"medyate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"medyate.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"medyate.commands.{name}":
                continue  # command not available in this build
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MedyateError as exc:
        print(f"medyate {args.command}: error: {exc}", file=sys.stderr)
        # an interrupted session (session.run.Interrupted) keeps Ctrl-C's 130
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print(f"medyate {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
