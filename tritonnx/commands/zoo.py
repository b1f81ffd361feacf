"""`tritonnx zoo`: the table of zoo models (or one model's details with `tritonnx zoo NAME`)."""
from __future__ import annotations

import re
import textwrap

from tritonnx.commands.common import WIDTH, add_wide, table
from tritonnx.errors import InvalidArgument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "zoo", help="list the model zoo (name, family, paper, parameters, inputs)",
        description="List the zoo's models, or show one model's configs, inputs and outputs.",
    )
    parser.add_argument("name", nargs="?", help="show this model's details")
    parser.add_argument("--config", default=None,
                        help="paper|tiny: the config whose inputs the table shows (default paper), or the only "
                        "config NAME's details show (default both)")
    add_wide(parser)
    parser.set_defaults(func=run)


def short_paper(paper: str) -> str:
    """"Szegedy, Liu, ..., 2015, CVPR" -> "Szegedy et al. 2015, CVPR" (the first reference)."""
    first = paper.split(";")[0].strip()
    parts = [p.strip() for p in first.split(",")]
    year = next((i for i, p in enumerate(parts) if re.fullmatch(r"\d{4}", p)), None)
    if year is None or year == 0:
        return first
    if year == 1 or "et al." in parts[0]:
        authors = parts[0]
    elif year == 2:
        authors = f"{parts[0]} & {parts[1]}"
    else:
        authors = f"{parts[0]} et al."
    return f"{authors} {parts[year]}, {', '.join(parts[year + 1:])}".rstrip(", ")


def human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _scalar_or_flat(value) -> bool:
    if isinstance(value, dict):
        return False
    return not isinstance(value, tuple) or all(isinstance(v, int) for v in value)


def run(args) -> int:
    from tabulate import tabulate

    from tritonnx import zoo

    if args.name:
        entry = zoo.get(args.name)
        configs = list(entry.configs)
        if args.config:
            entry.config(args.config)  # an unknown config is an error naming the model's
            configs = [args.config]
        rows = [
            ("name", entry.name), ("family", entry.family), ("paper", entry.paper),
            ("description", entry.description), ("sequence model", "yes" if entry.is_sequence else "no"),
            ("dynamic axes", ", ".join(f"{t}: {dict(a)}" for t, a in entry.dynamic_axes.items())),
        ]
        for config in configs:
            rows.append((f"{config}: params", f"{entry.param_count(config):,}"))
            rows.append((f"{config}: inputs", entry.describe_inputs(config)))
            rows.append((f"{config}: sizes", ", ".join(f"{k}={v}" for k, v in entry.config(config).items() if _scalar_or_flat(v))))
        rows.append(("outputs", ", ".join(entry.output_names)))
        key_width = max(len(k) for k, _ in rows)
        if not args.wide:  # long values wrap within WIDTH
            rows = [(k, textwrap.fill(str(v), WIDTH - key_width - 2, break_on_hyphens=False)) for k, v in rows]
        print(tabulate(rows, tablefmt="plain", disable_numparse=True))
        return 0
    config = args.config or "paper"
    common = [c for c in zoo.get(zoo.names()[0]).configs if all(c in zoo.get(n).configs for n in zoo.names())]
    if config not in common:  # not "zoo model 'mlp' has no config": no model was named
        raise InvalidArgument(f"--config {config}: expected one of {', '.join(common)}")
    rows = []
    for name in zoo.names():
        entry = zoo.get(name)
        paper = short_paper(entry.paper)
        rows.append((name, entry.family, paper if args.wide else paper.split(",")[0], human(entry.param_count("paper")),
                     human(entry.param_count("tiny")),
                     entry.describe_inputs(config) if args.wide else entry.describe_inputs(config).replace(", ", "\n")))
    print(table(rows, ("model", "family", "paper", "params", "tiny", f"inputs ({config})"),
                wide=args.wide, shrink=(2, 5), wrap=True, colalign=("left", "left", "left", "right", "right", "left")))
    print(textwrap.fill("params: of the paper config; tiny: of the tiny config (tests, CPU benchmarks). "
                        "tritonnx zoo NAME: a model's papers, configs and sizes" +
                        ("" if args.wide else "; --wide: venues too"), WIDTH))
    return 0
