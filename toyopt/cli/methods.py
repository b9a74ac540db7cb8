"""``python -m toyopt methods``: list the method registry."""

from __future__ import annotations

import json

from ..methods import METHODS


def register(sub) -> None:
    p = sub.add_parser("methods", help="list the registered methods and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    if args.json:
        print(json.dumps([spec.to_json() for spec in METHODS.values()], indent=1))
        return 0
    name_width = max(len(spec.name) for spec in METHODS.values())
    label_width = max(len(spec.label) for spec in METHODS.values())
    for spec in METHODS.values():
        params = ", ".join(f"{p.name}={p.default}{' [U]' if p.unverified else ''}" for p in spec.params)
        print(f"{spec.name:{name_width}s}  {spec.label:{label_width}s}  {params}")
    return 0
