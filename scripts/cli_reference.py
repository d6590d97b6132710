"""Write docs/cli.md: every command's options (its own --help) and every environment variable.

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 when docs/cli.md is stale

The argparse commands' sections are their parsers' help, so an option cannot be documented only
in ``--help``; ``tests/test_cli_score.py`` checks every option and variable is in the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cli.md"

#: Environment variables the package reads -> what they do (the test checks the list is whole).
ENVIRONMENT: dict[str, str] = {
    "VMAFDISTILL_FFMPEG": "path of the ffmpeg binary to run (default: imageio-ffmpeg's, then "
    "`ffmpeg` on PATH; a relative path is taken from the working folder); it needs libvmaf "
    "for the oracle and libx264/libx265 for corpora; a file that is not executable, or whose "
    "`-version` is not ffmpeg's, is refused naming the variable",
    "VMAFDISTILL_CONF": "a config directory of your own, used instead of the packaged "
    "`vmafdistill/conf` by `corpus`, `train`, `finetune`, `pilot`, `evaluate`, `export` "
    "(`export.yaml`), `sources` (`sources/`); feature sets are read from its `features/`",
    "VMAFDISTILL_CACHE": "where float-feature copies of Netflix's model files are written "
    "(default `$XDG_CACHE_HOME/vmafdistill` or `~/.cache/vmafdistill`), under `models/`",
    "VMAFDISTILL_MODEL": "the student `predict` runs when no `--model` is given (default: the "
    "shipped `checkpoints/vmafdistill_default.onnx`)",
    "VMAFDISTILL_EXACT_KERNELS": "exact mode's CPU implementation: `auto` (default: compiled "
    "numba kernels on CPU tensors, torch elsewhere), `torch` (the GPU path, also on CPU), "
    "`compiled` (an error when numba is missing)",
    "VMAFDISTILL_PIXEL_KERNEL": "the edge's per-frame pixel sums: `auto` (default: the C kernel "
    "where it was built; also when empty), `c` (an error without it), `numpy` (for "
    "comparisons)",
}

HYDRA_APPS = """\
## Hydra apps: `corpus`, `train`, `finetune`

Everything after the command name is a Hydra override (`key=value`, `group=option`, `-m` for a
sweep, `--cfg job` to print the resolved config, `--help` for Hydra's own help listing the config
groups). Their options are the config files under `vmafdistill/conf` (or `$VMAFDISTILL_CONF`):

- `vmafdistill corpus`: `conf/corpus.yaml` and the groups `corpus/`, `ladder/`, `teacher/`,
  `shots/`, `executor/`; see [corpus.md](corpus.md). Two flags are spellings of overrides:
  `--workers N` (`workers=N`) and `--out DIR` (`out_dir=DIR`, quoted for Hydra: any path);
  giving a flag and its override both is an error.
- `vmafdistill train`: `conf/train.yaml` and the groups `student/`, `loss/`, `features/`, `cv/`,
  `trainer/`, `logger/`, `hparams_search/`, `experiment/`; see [training.md](training.md).
- `vmafdistill finetune`: `conf/finetune.yaml`; see [training.md](training.md).

A misspelt key is one error line naming it (exit 2). Hydra's error then suggests `+key=...`;
an added key close to the name of an existing setting beside it is refused too, naming that
setting (`+nan_polcy=drop`: "did you mean nan_policy?"), since nothing would read it. Other
`+` keys pass: a run label (`+tag=a`), optional keys a reader takes that the defaults lack
(`+corpus.root=DIR`), and keys of the sections whose readers check their own (`student`,
`loss`, `optim`, `cv`, `features`, `conformal`, `trainer`, `edge`, `shots`). The pilot, export
and the Python API compose through the same check. `train` and `finetune` refuse the groups
they do not read, `executor` and `sources` (`+executor=ray` built the corpus locally): the
corpus they build takes its executor from `corpus_build`, `+corpus_build.executor.name=ray`
(with `+corpus_build.executor.address=auto` to join a running cluster). A sweep's settings
(`hparams_search=`, `hydra/sweeper=`, `hydra.sweeper.*`, `hydra.sweep.*`, `hydra/launcher=`,
`hydra.launcher.*`) without `-m` are refused: one run would train and ignore them.
"""


def command_help(name: str, parser: argparse.ArgumentParser) -> str:
    """One argparse command's section: its help text as the command prints it."""
    return f"## `vmafdistill {name}`\n\n```\n{parser.format_help().rstrip()}\n```\n"


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """The argparse commands' parsers by name (the Hydra apps' placeholders left out)."""
    from vmafdistill.cli import _HYDRA_COMMANDS, build_parser

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: p for name, p in action.choices.items() if name not in _HYDRA_COMMANDS}


def render() -> str:
    """The whole of docs/cli.md."""
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: one width everywhere
    env_rows = "\n".join(f"| `{k}` | {v} |" for k, v in ENVIRONMENT.items())
    parts = [
        "# Command-line reference\n\n"
        "Generated by `scripts/cli_reference.py` from the commands' own parsers (rerun it after "
        "changing an option). `vmafdistill <command> --help` prints the same. Errors print one "
        "line naming the file and the problem and exit with status 2; Ctrl-C exits with 130.\n",
        "## Environment variables\n\n| variable | effect |\n|---|---|\n" + env_rows + "\n",
        *(command_help(name, p) for name, p in subparsers().items()),
        HYDRA_APPS,
    ]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    """Write docs/cli.md, or with ``--check`` say whether it is current."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="only say whether docs/cli.md is current (exit 1 if stale)")
    args = parser.parse_args(argv)  # --help, -h or a typo wrote the file before
    text = render()
    if args.check:
        if DOC.read_text() != text:
            print(f"{DOC} is stale: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
