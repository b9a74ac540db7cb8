"""``python -m toyopt``: the headless front end. Each module in this package that defines
``register(subparsers)`` adds one subcommand; its handler returns the exit code.

Every user error exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

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


class Terminated(Exception):
    """SIGTERM arrived: raised in the main thread so every ``finally`` (temporary files) runs."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signals go
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        args = build_parser().parse_args(argv)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a full stdout (/dev/full) fails here, inside the handlers below
        return code
    except (UsageError, ValueError, OverflowError) as exc:
        print(f"toyopt: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `python -m toyopt methods | head`
        _drop_stdout()
        sys.stderr.close()
        return 0
    except OSError as exc:  # e.g. stdout on a full device; files have their own messages
        _drop_stdout()
        print(f"toyopt: error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toyopt: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("toyopt: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still buffered
    cannot fail a second time (with a traceback) on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured in tests)
        pass
