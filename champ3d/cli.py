"""The ``champ3d`` command line.

Every command exits 0 on success, 2 with a one-line ``champ3d: error: WHERE: PROBLEM``
message on bad input (:class:`champ3d.errors.Champ3dInputError`), and leaves no
half-written output behind. Each subcommand lives in its own module of
:mod:`champ3d.commands`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from champ3d.errors import Champ3dInputError

COMMANDS = ("guidance", "fit", "animate", "orbit", "demo", "train", "eval", "report", "batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="champ3d", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"champ3d.commands.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="champ3d: %(message)s")
    warnings.formatwarning = lambda message, category, *rest: f"champ3d: warning: {message}\n"
    try:
        return args.run(args)
    except Champ3dInputError as error:
        print(f"champ3d: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("champ3d: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
