"""Helpers shared by the subcommands: building a Config from flags, safe output files."""

from __future__ import annotations

import argparse
import os
import secrets
import stat
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import budget
from ..compiler import require_cxx
from ..config import MAX_JSON_BYTES, Config, parse_inits, parse_value, short_repr
from ..setups import DEFAULT_SETUP, get_setup

#: The CLI's engine backend unless --backend (or a --config file) says otherwise: "fastest" is the
#: one the estimate finishes sooner (``budget.faster_backend``: compiled for trajectory runs, eager
#: for large basin maps). Where no C++ compiler is found, a compiled default runs eagerly with a
#: one-line notice (``config_from_args``).
DEFAULT_BACKEND = "fastest"


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setup", default=None, help=f"published preset (default {DEFAULT_SETUP})")
    p.add_argument("--config", default=None, help="a JSON config file (from --out or an export)")
    p.add_argument(
        "--method",
        action="extend",
        nargs="+",
        default=None,
        metavar="NAME",
        help="method(s) to run: --method a b c, or --method repeated",
    )
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
    p.add_argument(
        "--backend",
        default=None,
        help="engine backend: compiled (default; each method's step loop compiled once and kept in "
        "toyopt's cache, see `warmup`; eager with a notice where no C++ compiler is found) or eager "
        "(the reference)",
    )


def read_bytes(path: str, what: str, cap: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``cap`` of them. It is opened without
    blocking and checked to be a regular file before anything is read, so a FIFO (which would wait
    for a writer forever), a device or a directory is refused; at most cap + 1 bytes are read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"cannot read {what} {path!r}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise UsageError(f"{what} {path!r} is larger than {cap} bytes")
    return data


def read_text(path: str, what: str, cap: int = MAX_JSON_BYTES) -> str:
    """UTF-8 text of ``path``, at most ``cap`` bytes (see ``read_bytes``)."""
    data = read_bytes(path, what, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read {what} {path!r}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def config_from_args(args: argparse.Namespace, shape: Callable[[Config], Config] | None = None) -> Config:
    """--config or --setup first, then --method/--set/--inits/--steps/... on top, then ``shape``
    (a command's own changes, such as basins' starts) before the default backend is chosen from the
    final run. The compiled backend needs a C++ compiler: asked for (--backend, a --config file)
    without one, it is a usage error before any work; as the default it becomes eager, said in one
    line on stderr."""
    config = _config_from_args(args)
    if shape is not None:
        config = shape(config)
    if args.backend is None and args.config is None:
        default = budget.faster_backend(config) if DEFAULT_BACKEND == "fastest" else DEFAULT_BACKEND
        config = replace(config, backend=default)
        if default == "compiled":
            from ..compiled import compiler_missing

            reason = compiler_missing()
            if reason:
                print(f"toyopt: note: {reason}", file=sys.stderr)
                return replace(config, backend="eager")
    require_cxx(config.backend)
    return config


def _config_from_args(args: argparse.Namespace) -> Config:
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
    for field in ("steps", "seed", "lr", "record_every", "backend"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    if args.config is not None:
        if args.setup is not None:
            raise UsageError("give either --config or --setup, not both")
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
    """A path we may write, checked before any work: right suffix, a name the file system takes,
    existing folder, no silent overwrite, and (with ``force``) only a regular file replaced: a
    directory, a dangling symlink or a device would fail only at the very end."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"--out must end in one of {list(suffixes)}, got {_shown(path)}")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"--out folder does not exist: {_shown(parent)}")
    name_max = os.pathconf(parent, "PC_NAME_MAX")
    if len(os.fsencode(out.name)) > name_max:
        raise UsageError(f"--out file name {_shown(out.name)} is longer than {name_max} bytes")
    if not os.path.lexists(out):
        return out
    if out.is_symlink() and not out.exists():
        raise UsageError(f"{_shown(path)} is a dangling symbolic link; remove it or choose another --out")
    if not force:
        raise UsageError(f"{_shown(path)} exists; pass --force to replace it")
    if not out.is_file():
        raise UsageError(f"{_shown(path)} is not a regular file and is never replaced")
    if not os.access(out, os.W_OK):
        raise UsageError(f"{_shown(path)} is not writable")
    return out


def _shown(path) -> str:
    """A path for a message: quoted, cut only when absurdly long."""
    return short_repr(str(path), 300)


def write_atomic(path: Path, data: bytes | str, force: bool = False) -> None:
    """Write ``path`` whole or not at all (see ``write_outputs``)."""
    write_outputs([(path, data)], force)


def write_outputs(files: list[tuple[Path, bytes | str]], force: bool = False) -> None:
    """Write every (path, data): each goes to a temporary file beside its path first, so a failure
    never leaves half a file. Without ``force`` each path is then created with ``os.link``, which
    fails if the path exists at that moment (one that appeared while the run went on, e.g. from a
    second toyopt writing the same --out, is never replaced); the files of this call linked before
    such a failure are removed again. With ``force`` an existing file is replaced (``os.replace``)."""
    temps: list[tuple[Path, Path]] = []
    done: list[Path] = []
    try:
        for path, data in files:
            tmp = path.with_name(f".{path.name[:120]}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
            temps.append((path, tmp))
            try:
                with open(tmp, "xb") as f:
                    f.write(data.encode("utf-8") if isinstance(data, str) else data)
            except OSError as exc:
                raise UsageError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
        for path, tmp in temps:
            _place(tmp, path, force)
            done.append(path)
    except UsageError:
        if not force:
            for path in done:
                path.unlink(missing_ok=True)
        raise
    finally:
        for _, tmp in temps:
            tmp.unlink(missing_ok=True)


def _place(tmp: Path, path: Path, force: bool) -> None:
    try:
        if force:
            os.replace(tmp, path)
        else:
            _create_from(tmp, path)
    except FileExistsError:
        raise UsageError(
            f"{str(path)!r} appeared while this command ran and was not replaced; pass --force to replace it"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _create_from(tmp: Path, path: Path) -> None:
    """``path`` as a new file holding ``tmp``'s bytes; FileExistsError if it exists at that moment.
    A hard link where the file system has them, else a copy opened with mode "x"."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links here (e.g. some network or FAT file systems)
        pass
    with open(path, "xb") as out:
        try:
            out.write(tmp.read_bytes())
        except OSError:
            out.close()
            path.unlink(missing_ok=True)
            raise
