"""The ``vmafdistill`` command line: one entry point, one module per subcommand.

Two kinds of subcommand:

* argparse commands (``score``, ``pilot``, ``predict``, ``export``, ``sweep-report``,
  ``sources``, ``evaluate``): a module in
  this package with ``add_parser(sub)`` registering a parser whose ``func(args)`` runs it;
* Hydra apps (``corpus``, ``train``, ``finetune``): everything after the command name is handed
  to Hydra as overrides (``vmafdistill train -m student=mlp,soft_tree``), so config groups,
  multirun and launchers work as in any Hydra app. Their module exposes ``main(argv)``.

Modules are imported lazily, only for the command that runs, so the torch-free edge install can
run ``predict`` without torch, Hydra or Lightning.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import os
import re
import sys
import warnings
from typing import Any

from ..errors import VmafDistillError

#: argparse subcommands -> module (relative to this package).
_ARGPARSE_COMMANDS: dict[str, str] = {
    "score": ".score",
    "pilot": ".pilot",
    "predict": ".predict",
    "export": ".export",
    "sweep-report": ".sweep_report",
    "sources": ".sources",
    "evaluate": ".evaluate",
}

#: Hydra apps -> (module with ``main(argv)``, one-line help).
_HYDRA_COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("vmafdistill.corpus.app", "build a corpus: shots, ladders, labels, features"),
    "train": ("vmafdistill.students.app", "train students (Hydra; -m for sweeps)"),
    "finetune": ("vmafdistill.students.finetune", "fine-tune a trained student on a corpus"),
}


def _available(module: str) -> bool:
    """Whether a command module exists (commands land milestone by milestone)."""
    try:
        return importlib.util.find_spec(module, __package__) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per argparse command (Hydra apps listed)."""
    parser = argparse.ArgumentParser(
        prog="vmafdistill",
        description="Distil VMAF into tiny students: teacher scoring, corpus, training, edge.",
        epilog="Hydra apps (overrides follow the name): "
        + "; ".join(f"{name}: {text}" for name, (_, text) in _HYDRA_COMMANDS.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _ARGPARSE_COMMANDS.values():
        if _available(module):
            importlib.import_module(module, __package__).add_parser(sub)
    for name, (_, text) in _HYDRA_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _python_shows_warnings() -> bool:
    """Whether warnings go to Python's own printer: not to a caller's ``showwarning`` nor to a
    ``catch_warnings(record=True)`` list (which the one-line printer would bypass)."""
    original = getattr(warnings, "_showwarning_orig", None)
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    return (original is not None and warnings.showwarning is original
            and getattr(impl, "__name__", "") == "_showwarnmsg_impl")


def one_line_warning(command: str, *, every_warning: bool = False) -> Any:
    """A ``warnings.showwarning`` that prints this package's warnings (``every_warning``: all
    of them) as one line, ``vmafdistill <command>: warning: ...`` (Python's format added the
    file, line number and source line of the code that warned: a damaged file read as a crash
    report); other warnings keep Python's format."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if every_warning or os.path.abspath(filename).startswith(package + os.sep):
            print(f"vmafdistill {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _run_hydra(name: str, argv: list[str]) -> int:
    module = importlib.import_module(_HYDRA_COMMANDS[name][0])
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user-facing errors print one line to stderr and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    try:
        if command in _HYDRA_COMMANDS:
            return _run_hydra(command, argv[1:])
        parser = build_parser()
        for token in argv:
            # argparse drops a value of exactly "--" (its end-of-options mark): the option got
            # [] unconverted, a traceback deep inside the command
            if token == "--":  # what follows are arguments, not options
                break
            if re.fullmatch(r"-[^=]+=--", token):
                parser.error(f"{token}: '--' is not a value for {token.split('=')[0]}")
        args = parser.parse_args(argv)
        shown = warnings.showwarning  # restored by hand: Python 3.14's context-aware
        try:  # catch_warnings no longer restores it
            if _python_shows_warnings():  # not a caller's recorder (catch_warnings, pytest)
                warnings.showwarning = one_line_warning(command)
            status = int(args.func(args) or 0)
        finally:
            warnings.showwarning = shown
        if sys.stdout is not None:  # None: started with stdout closed (>&-)
            sys.stdout.flush()  # here, so a reader that left is handled below, not at exit
        return status
    except VmafDistillError as exc:
        print(f"vmafdistill {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vmafdistill {command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        extra = _EXTRA_OF_MODULE.get(top)
        if extra is None or importlib.util.find_spec(top) is not None:
            raise  # not a missing optional dependency (a typo, a moved submodule): a bug
        # the command's own extra when it needs more than the first module that failed says
        extra = max(extra, _EXTRA_OF_COMMAND.get(command, extra), key=_EXTRA_ORDER.index)
        print(f"vmafdistill {command}: error: this command needs {exc.name}, which this "
              f"install lacks (the [edge] install runs `predict` only): pip install "
              f"'vmafdistill[{extra}]'" + (" (torch==2.13.0 first: see README)"
                                          if extra in ("teacher", "train") else ""),
              file=sys.stderr)
        return 2
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # a pipe to a child process (ffmpeg) broke: its own error, not ours to hide
        # the reader of stdout left (``| head``): no traceback; stdout goes to devnull so the
        # interpreter's final flush does not raise again
        from ..folders import stdout_to_devnull

        stdout_to_devnull()
        return 141  # as a shell reports a process killed by SIGPIPE
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO) or exc.filename:
            raise
        # stdout on a full disk (``> /dev/full``): the results could not be written; one
        # line, and stdout to devnull so the interpreter's final flush does not raise again
        print(f"vmafdistill {command}: error: cannot write the output ({exc.strerror})",
              file=sys.stderr)
        from ..folders import stdout_to_devnull

        stdout_to_devnull()
        return 2


#: Top-level modules of the optional extras (pyproject.toml) -> the extra that brings them.
_EXTRA_OF_MODULE = {
    **dict.fromkeys(("torch", "numba", "yaml", "ffmpeg_quality_metrics"), "teacher"),
    **dict.fromkeys(("lightning", "hydra", "omegaconf", "sklearn", "pandas", "pyarrow", "onnx",
                     "matplotlib", "skvideo", "skimage", "optuna", "wandb"), "train"),
    **dict.fromkeys(("onnxruntime", "av"), "edge"),
    "ray": "ray",
}
#: Extras by how much they install (a larger one brings the smaller ones).
_EXTRA_ORDER = ("ray", "edge", "teacher", "train")
#: What each command needs at least.
_EXTRA_OF_COMMAND = {
    "score": "teacher",
    **dict.fromkeys(("train", "finetune", "corpus", "pilot", "export", "evaluate",
                     "sweep-report"), "train"),
}


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll here, or stdout is no file
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
