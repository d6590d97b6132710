"""The ``vmafdistill`` command line: one entry point, one module per subcommand.

Subcommands import their heavy dependencies (torch, hydra) lazily so that the torch-free edge
install can still run the commands that need only numpy and onnxruntime.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import VmafDistillError
from . import pilot, score

_COMMANDS = {"score": score, "pilot": pilot}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="vmafdistill",
        description="Distil VMAF into tiny students: teacher scoring, corpus, training, edge.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user-facing errors print one line to stderr and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VmafDistillError as exc:
        print(f"vmafdistill {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vmafdistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
