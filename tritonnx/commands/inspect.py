"""`tritonnx inspect MODEL.onnx`: what the compiler makes of a model.

Op counts before and after the passes, each fused group, each declined candidate and why,
and the ops no handler supports; ``--save fused.onnx`` writes the rewritten model.
"""
from __future__ import annotations

import textwrap
from collections import Counter

from tritonnx.commands.common import WIDTH, add_kernels, add_wide, existing_file, output_path, table
from tritonnx.errors import InvalidArgument, NotImplemented


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show op counts before/after the passes, fused groups, declined candidates",
        description="Load an ONNX model, run tritonnx's passes and report what they did.",
    )
    parser.add_argument("model", help="path of the .onnx file")
    parser.add_argument("--save", metavar="FUSED.onnx", help="write the rewritten model (valid ONNX, domain tritonnx)")
    parser.add_argument("--no-fusion", action="store_true", help="apply no fusion rule (tritonnx.fusion=0)")
    add_kernels(parser)
    add_wide(parser)
    parser.set_defaults(func=run)


def _item(text, wide: bool) -> str:
    """One listed item, indented, wrapped within WIDTH (``--wide``: one line)."""
    if wide:
        return f"  {text}"
    return textwrap.fill(str(text), WIDTH, initial_indent="  ", subsequent_indent="    ",
                         break_on_hyphens=False)


def _counts(model) -> Counter:
    from tritonnx.runtime.loader import iter_nodes
    from tritonnx.runtime.registry import is_standard_domain

    return Counter((n.op_type if is_standard_domain(n.domain) else f"{n.domain}::{n.op_type}") for n in iter_nodes(model.graph))


def run(args) -> int:
    existing_file(args.model, "model file")
    if args.save:
        output_path(args.save, "--save")
    from tritonnx.runtime import InferenceSession
    from tritonnx.runtime.loader import load_model, unsupported_nodes

    options = {"fusion": False} if args.no_fusion else {}
    if args.kernels:
        options["kernels"] = args.kernels
    original = load_model(args.model)
    before = _counts(original)
    opsets = ", ".join(f"{e.domain or 'ai.onnx'} {e.version}" for e in original.opset_import)
    print(f"model: {args.model}  (ir_version {original.ir_version}; opsets: {opsets}; "
          f"producer: {original.producer_name or '?'} {original.producer_version})")
    try:
        sess = InferenceSession(args.model, **options)
    except NotImplemented as exc:
        import tritonnx.runtime.ops  # noqa: F401
        from tritonnx.runtime.registry import OPS

        print(table(sorted(before.items()), ["op", "count"], wide=args.wide, shrink=(0,), colalign=("left", "right")))
        print("\nunsupported ops:")
        missing = unsupported_nodes(original, OPS)
        for m in missing or []:
            print(_item(m, args.wide))
        if not missing:
            print(_item(exc, args.wide))
        return 1

    inputs = [[a.name, a.type, a.shape] for a in sess.get_inputs()]
    outputs = [[a.name, a.type, a.shape] for a in sess.get_outputs()]
    print(table(inputs + outputs, ["input/output", "type", "shape"], wide=args.wide, shrink=(0, 2)))
    after = _counts(sess.rewritten_model())
    rows = [[op, before.get(op, 0), after.get(op, 0)] for op in sorted(set(before) | set(after))]
    rows.append(["(total)", sum(before.values()), sum(after.values())])
    print()
    print(table(rows, ["op", "before", "after"], wide=args.wide, shrink=(0,),
                colalign=("left", "right", "right")))
    report = sess.fusion_report()
    print(f"\nfusion: {'on' if report.enabled else 'off'}; kernels: {sess.context.kernels}; "
          f"providers: {', '.join(sess.get_providers())}")
    print(f"\nfused groups ({len(report.fused)}):")
    for group in report.fused:
        print(_item(group, args.wide))
    print(f"\ndeclined candidates ({len(report.declined)}):")
    for d in report.declined:
        print(_item(d, args.wide))
    print("\nunsupported ops: none")
    if args.save:
        try:
            sess.save_rewritten(args.save)
        except OSError as exc:
            raise InvalidArgument(f"--save {args.save}: cannot write: {exc}") from None
        print(f"\nsaved the rewritten model to {args.save}")
    return 0
