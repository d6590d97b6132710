"""Where the ``conf/`` tree lives, Hydra composition of its configs, and a plain YAML reader
for the torch-free edge (which does not depend on Hydra)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import VmafDistillError


def conf_dir() -> Path:
    """The ``conf/`` tree: ``VMAFDISTILL_CONF`` when set (your own config directory), else the
    one inside the package (``vmafdistill/conf``: in a checkout a link to the repository's
    ``conf/``, in a wheel a copy), so every app works from any directory after ``pip install``."""
    override = os.environ.get("VMAFDISTILL_CONF")
    path = Path(override).expanduser() if override else Path(__file__).resolve().parent / "conf"
    if not path.is_dir():
        where = "VMAFDISTILL_CONF" if override else "the installed package"
        raise VmafDistillError(
            f"config directory {path} not found ({where}); reinstall vmafdistill or set "
            "VMAFDISTILL_CONF to a config directory"
        )
    return path


def load_yaml(relative: str) -> dict[str, Any]:
    """Load ``conf/<relative>`` (``.yaml`` added when missing) as a plain dict."""
    import yaml

    name = relative if relative.endswith(".yaml") else f"{relative}.yaml"
    path = conf_dir() / name
    if not path.is_file():
        raise VmafDistillError(f"config {path} not found")
    with open(path) as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise VmafDistillError(f"config {path} is not a mapping")
    return data


def run_label(corpus_dir: Any, corpus_name: Any) -> str:
    """A run directory's corpus part (``${run_label:${corpus_dir},${corpus.name}}``): the
    corpus directory's own name when ``corpus_dir`` is given (runs on it were filed under the
    default corpus's name), else the corpus config's name."""
    if corpus_dir is None or not str(corpus_dir).strip():
        return str(corpus_name)
    return Path(str(corpus_dir)).expanduser().resolve().name or str(corpus_name)


def register_resolvers() -> None:
    """Register the OmegaConf resolvers ``conf/`` uses (``run_label``); idempotent."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_label"):
        OmegaConf.register_new_resolver("run_label", run_label)


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """The Hydra config ``config_name`` (``corpus``, ``train``, ``pilot``, ``export`` ...) with
    ``overrides``, composed exactly as the command line composes it (an OmegaConf DictConfig).

    Inside a running Hydra app (whose global state is initialised) it composes from that
    state; elsewhere it initialises Hydra on :func:`conf_dir` for the call."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    try:
        if GlobalHydra.instance().is_initialized():
            return hydra_compose(config_name=config_name, overrides=list(overrides))
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise VmafDistillError(f"config {config_name!r} with overrides {list(overrides)}: "
                               f"{exc}") from exc


def compose_dict(config_name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`compose`, resolved to plain dicts and lists."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(compose(config_name, overrides), resolve=True)
    assert isinstance(out, dict)
    return out


def checked_number(label: str, value: Any, kind: type, low: float | None = None,
                   inclusive: bool = True, high: float | None = None, *,
                   finite: bool = True) -> Any:
    """``value`` read as ``kind`` (int or float), an error naming ``label`` (``optim.lr``) when
    it is not a number, not whole where an integer is wanted, infinite unless ``finite`` is
    False (``optim.lr=inf`` or ``loss.tau=inf`` trained to NaN and failed only after every
    fold), or outside ``[low, high]`` (``low`` excluded unless ``inclusive``; ``high``
    excluded)."""
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise VmafDistillError(f"{label}={value!r}: not a number") from None
    except OverflowError:  # int(inf)
        raise VmafDistillError(f"{label}={value!r}: not a whole number") from None
    if kind is int and number != float(value):
        raise VmafDistillError(f"{label}={value!r}: not a whole number")
    if number != number:
        raise VmafDistillError(f"{label}={value!r}: not a number")
    if finite and number in (float("inf"), float("-inf")):
        raise VmafDistillError(f"{label}={value!r}: not a finite number")
    if low is not None and not (number >= low if inclusive else number > low):
        raise VmafDistillError(
            f"{label}={value!r}: must be {'at least' if inclusive else 'above'} {low}")
    if high is not None and not number < high:
        raise VmafDistillError(f"{label}={value!r}: must be below {high}")
    return number


def checked_bool(label: str, value: Any) -> bool:
    """``value`` as a bool, or an error naming ``label``: a YAML ``no`` or ``maybe`` is a
    string, which Python's ``bool`` took as true (``student.linear_skip=no`` built the skip)."""
    if isinstance(value, bool):
        return value
    raise VmafDistillError(f"{label}={value!r}: needs true or false")
