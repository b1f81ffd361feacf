"""`tritonnx export`: not built yet (its issue fills this module in)."""
from __future__ import annotations

from tritonnx.errors import NotImplemented


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="(not available yet)")
    parser.set_defaults(func=run)


def run(args) -> int:
    raise NotImplemented("'tritonnx export' is not available in this version yet")
