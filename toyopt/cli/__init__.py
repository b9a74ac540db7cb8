"""``python -m toyopt``: the headless front end. Each module in this package that defines
``register(subparsers)`` adds one subcommand; its handler returns the exit code.

Every user error exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ._common import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        # argparse quotes the whole bad value ("invalid int value: '...'"): show long ones shortened.
        raise UsageError(" ".join(w if len(w) <= 60 else w[:40] + "..." for w in message.split(" ")))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m toyopt", description="Multi-task gradient aggregation on toy problems.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, OverflowError) as exc:
        print(f"toyopt: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `python -m toyopt methods | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("toyopt: interrupted", file=sys.stderr)
        return 130
