"""Helpers shared by the subcommands: building a Config from flags, safe output files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import Config, parse_inits, parse_value
from ..setups import DEFAULT_SETUP, get_setup


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setup", default=None, help=f"published preset (default {DEFAULT_SETUP})")
    p.add_argument("--config", default=None, help="a JSON config file (from --out or an export)")
    p.add_argument("--method", action="append", default=None, help="method to run (repeat for several)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.PARAM=VALUE",
        help="parameter value; 'a|b|c' gives a grid of float values",
    )
    p.add_argument("--inits", default=None, help="'x,y;x,y' or standard5 / cagrad3")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--record-every", type=int, default=None)


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {what} {path!r}: {exc.strerror if isinstance(exc, OSError) else exc}"
        ) from None


def config_from_args(args: argparse.Namespace) -> Config:
    """--config or --setup first, then --method/--set/--inits/--steps/... on top."""
    params: dict[str, dict] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise UsageError(f"--set takes METHOD.PARAM=VALUE, got {item!r}")
        params.setdefault(method, {})[name] = parse_value(value)
    overrides = {}
    if args.inits is not None:
        overrides["inits"] = parse_inits(args.inits, "--inits")
    for flag, field in (("steps", "steps"), ("seed", "seed"), ("lr", "lr"), ("record_every", "record_every")):
        if getattr(args, flag) is not None:
            overrides[field] = getattr(args, flag)
    if args.config is not None:
        if args.setup is not None:
            raise UsageError("give either --config or --setup, not both")
        from dataclasses import replace

        cfg = Config.from_json(read_text(args.config, "config"))
        if args.method or params:
            setup = get_setup(cfg.setup) if cfg.setup else None
            names = args.method or [m.name for m in cfg.methods]
            existing = {m.name: m for m in cfg.methods}
            entries = []
            for name in names:
                base = existing.get(name) or (setup.entry(name) if setup else None)
                if base is None:
                    from ..config import MethodEntry

                    base = MethodEntry(name)
                entries.append(replace(base, params={**base.params, **params.get(name, {})}))
            unknown = sorted(set(params) - set(names))
            if unknown:
                raise UsageError(f"--set names method(s) not in the run: {unknown}")
            cfg = replace(cfg, methods=tuple(entries))
        return replace(cfg, **overrides).validated()
    setup = get_setup(args.setup or DEFAULT_SETUP)
    return setup.config(args.method, params, **overrides)


def output_path(path: str, force: bool, suffixes: tuple[str, ...]) -> Path:
    """A path we may write: right suffix, existing folder, no silent overwrite."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"--out must end in one of {list(suffixes)}, got {path!r}")
    if not out.parent.exists() or not out.parent.is_dir():
        raise UsageError(f"--out folder does not exist: {str(out.parent)!r}")
    if out.exists() and not force:
        raise UsageError(f"{path!r} exists; pass --force to replace it")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"{path!r} is not writable")
    return out


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename, so a failure never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {str(path)!r}: {exc.strerror}") from None
