"""Where the ``conf/`` tree lives, Hydra composition of its configs, and a plain YAML reader
for the torch-free edge (which does not depend on Hydra)."""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import VmafDistillError


def conf_dir() -> Path:
    """The ``conf/`` tree: ``VMAFDISTILL_CONF`` when set (your own config directory), else the
    one inside the package (``vmafdistill/conf``: in a checkout a link to the repository's
    ``conf/``, in a wheel a copy), so every app works from any directory after ``pip install``."""
    override = os.environ.get("VMAFDISTILL_CONF")
    # absolute: Hydra's initialize_config_dir refuses a relative one
    path = (Path(override).expanduser().absolute() if override
            else Path(__file__).resolve().parent / "conf")
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
        try:
            data = yaml.load(fh, Loader=_unique_keys_loader())  # a SafeLoader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            at = f"line {mark.line + 1}: " if mark is not None else ""
            raise VmafDistillError(f"config {path}: {at}{exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise VmafDistillError(f"config {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise VmafDistillError(f"config {path} is not a mapping")
    return data


def _unique_keys_loader() -> type:
    """yaml's SafeLoader refusing a key given twice in one mapping (the last one won, without
    a word: a recipe's second ``clip:`` replaced the first)."""
    import yaml

    class UniqueKeysLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                # a merge key (<<: *base) is no key of its own; a non-scalar key is left to
                # the SafeLoader, which names it
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                        key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice",
                        key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # YAML 1.2's floats, as OmegaConf (conf/*.yaml through Hydra) reads them: PyYAML's 1.1
    # rules read 1e-3 and 2.5e1 as text, so a recipe said fps: 2.5e1 and got a string
    UniqueKeysLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                       |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                       |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                       |[-+]?\.(?:inf|Inf|INF)
                       |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return UniqueKeysLoader


def run_label(corpus_dir: Any, corpus_name: Any) -> str:
    """A run directory's corpus part (``${run_label:${corpus_dir},${corpus.name}}``): the
    corpus directory's own name when ``corpus_dir`` is given (runs on it were filed under the
    default corpus's name), else the corpus config's name."""
    if corpus_dir is None or not str(corpus_dir).strip():
        return str(corpus_name)
    return Path(str(corpus_dir)).expanduser().resolve().name or str(corpus_name)


def register_resolvers() -> None:
    """Register the OmegaConf resolvers ``conf/`` uses (``run_label``, ``expanduser``: Hydra
    made a run folder under a literal ``./~`` for ``paths.cache_dir='~/vd'``); idempotent."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_label"):
        OmegaConf.register_new_resolver("run_label", run_label)
    if not OmegaConf.has_resolver("expanduser"):
        OmegaConf.register_new_resolver("expanduser", lambda p: os.path.expanduser(str(p)))


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """The Hydra config ``config_name`` (``corpus``, ``train``, ``pilot``, ``export`` ...) with
    ``overrides``, composed exactly as the command line composes it (an OmegaConf DictConfig).

    Inside a running Hydra app (whose global state is initialised) it composes from that
    state; elsewhere it initialises Hydra on :func:`conf_dir` for the call. A ``+key`` that
    nothing reads is refused (:func:`refuse_unread_additions`)."""
    refuse_unread_groups(config_name, overrides)
    cfg = _compose(config_name, overrides)
    refuse_unread_additions(config_name, overrides)
    return cfg


#: Config groups of ``conf/`` that a command does not read (they are other commands'), and
#: what to give instead. ``+executor=ray`` composed into train's config, which nothing reads
#: there: the corpus was built locally, exit 0; Hydra's error for ``executor=ray`` suggests
#: that very ``+``.
_CORPUS_EXECUTOR = ("the corpus {command} builds takes its executor from corpus_build: "
                    "+corpus_build.executor.name=ray (with +corpus_build.executor.address=auto "
                    "to join a running cluster)")
_SOURCES = ("sources/ holds the recipes of `vmafdistill sources`: film them with it, then "
            "{command} on a corpus of them (corpus=..., or corpus_dir=...)")
UNREAD_GROUPS: dict[str, dict[str, str]] = {
    command: {"executor": _CORPUS_EXECUTOR, "sources": _SOURCES}
    for command in ("train", "finetune")}


def refuse_unread_groups(config_name: str, overrides: Sequence[str]) -> None:
    """An override of a config group that ``config_name`` does not read (:data:`UNREAD_GROUPS`;
    ``executor=ray``, ``+executor=ray``, ``+sources=kinds``, ``+executor.address=auto``) is an
    error saying what to give instead. A group placed under another key (``+executor@
    corpus_build.executor=ray``) is read there and passes."""
    unread = UNREAD_GROUPS.get(config_name, {})
    for override in overrides:
        if "=" not in override or "@" in override.partition("=")[0]:
            continue
        group = override_key(override).split(".")[0].split("/")[0]
        if group in unread:
            raise VmafDistillError(
                f"{override}: {config_name} does not read the {group} group (a config group "
                f"of other commands); {unread[group].format(command=config_name)}")


#: Sections whose readers check their own keys (a ``+student.monotone=...`` is read), or
#: hand them to a library that does (Lightning's Trainer, Hydra itself).
SELF_CHECKED_SECTIONS = ("hydra", "trainer", "student", "optim", "conformal", "cv", "features",
                         "loss", "edge", "shots")


def refuse_unread_additions(config_name: str, overrides: Sequence[str]) -> None:
    """A ``+key=value`` override adds a key; Hydra's error for a misspelt one suggests the
    ``+``, and the added key was then read by nothing: ``+tokens.bands.gren=70`` kept green
    at 80, ``+frezze=[body.0]`` froze nothing, ``+teacher.chnk=4`` rebuilt a corpus, each
    exit 0. Refused where the added key is close to the name of a setting beside it (that
    setting is named; ``corpus_build.*`` keys are compared with the corpus config's). Other
    additions pass: a run label (``+tag=a``) and optional keys readers take that the default
    config lacks (``+corpus.root=DIR``, ``+corpus_build.executor.address=auto``); so do
    ``++`` (add or override), group additions (``+experiment=x``, ``+a@b=c``) and the
    sections whose readers check their own keys."""
    added = [(o, override_key(o)) for o in overrides
             if o.startswith("+") and not o.startswith("++") and "=" in o
             and "@" not in o.partition("=")[0]]  # +ladder@corpus_build.ladder=wide: a group
    added = [(o, key) for o, key in added if key.split(".")[0] not in SELF_CHECKED_SECTIONS
             and not (conf_dir() / key.replace(".", "/")).is_dir()]
    if not added:
        return
    # an added key a later override sets inside (+foo={a: 1} foo.a=2) stays in the base
    later = [override_key(o) for o in overrides if not o.startswith("+")]
    added = [(o, key) for o, key in added
             if not any(k == key or k.startswith(f"{key}.") for k in later)]
    base = _compose(config_name, [o for o in overrides if o not in {a for a, _ in added}])
    corpus_base = None
    for override, key in added:
        node, path = base, key
        if key.startswith("corpus_build.") and config_name != "corpus":
            # corpus_build's keys are the corpus config's (train merges them onto it)
            path = key.removeprefix("corpus_build.")
            if path.split(".")[0] in SELF_CHECKED_SECTIONS:
                continue
            corpus_base = _compose("corpus") if corpus_base is None else corpus_base
            node = corpus_base
        near = _near_miss(node, path)
        if near is None:
            # nothing suggests a typo: a run label (+tag=a), or a key a reader takes that the
            # composed default lacks (+corpus.root=DIR: the folder recipe's optional keys)
            continue
        where = "the corpus config (corpus_build's keys)" if node is corpus_base \
            else f"config {config_name!r}"
        raise VmafDistillError(f"{override}: {where} has no setting {path!r} (did you mean "
                               f"{near}?); a '+' key is read by nothing here")


def _near_miss(cfg: Any, path: str) -> str | None:
    """Where dotted ``path`` leaves ``cfg``: the name of an existing key close to the first
    missing part (``teachr.chunk`` -> ``teacher``, ``tokens.bands.gren`` ->
    ``tokens.bands.green``), None where the path exists or nothing is close."""
    node, done = cfg, []
    for part in path.split("."):
        names = [str(k) for k in node] if hasattr(node, "keys") else []
        if part in names:
            node = _select(node, part)
            done.append(part)
            continue
        close = difflib.get_close_matches(part, names, n=1, cutoff=0.75)
        return ".".join([*done, close[0]]) if close else None
    return None


def _select(cfg: Any, key: str) -> Any:
    """The node at dotted ``key`` of ``cfg`` (None where there is none), unresolved."""
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False,
                            throw_on_resolution_failure=False)


def _compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """:func:`compose` without its check of ``+`` keys."""
    import yaml
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    gh = GlobalHydra.instance()
    try:
        if gh.is_initialized() and _searches_conf_dir(gh):  # inside a vmafdistill app
            return hydra_compose(config_name=config_name, overrides=list(overrides))
        # a caller's own Hydra (a notebook's initialize(), its @hydra.main app) is set aside
        # for the call and put back: composing from it found no 'train', or the caller's own
        saved, gh.hydra = gh.hydra, None
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                return hydra_compose(config_name=config_name, overrides=list(overrides))
        finally:  # initialize_config_dir restores the singleton it found (the cleared one)
            GlobalHydra.instance().hydra = saved
    except (HydraException, OmegaConfBaseException) as exc:
        raise config_error(config_name, overrides, one_line(exc) + _quote_hint(overrides)
                           ) from exc
    except yaml.YAMLError as exc:  # a broken file in the config folder: it was a traceback
        raise VmafDistillError(f"config {config_name!r}: a YAML file in {conf_dir()} does not "
                               f"parse: {one_line(exc)}") from None
    except ValueError as exc:  # Hydra's own, e.g. `shots=null` for a config group
        raise config_error(config_name, overrides, str(exc)) from None


def _quote_hint(overrides: Sequence[str]) -> str:
    """For the first override Hydra's grammar refuses (``corpus.root=dir/a=b``: "mismatched
    input '='", no word of what to do), the same value quoted, as Hydra reads it back; ""
    when every override parses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except Exception:  # Hydra's OverrideParseException, or any grammar error
            key, sep, value = override.partition("=")
            # only a plain literal: an interpolation, an escape or outer blanks mean something
            # unquoted that quoting changes, and a bracket may be a list with a typo
            # a sweep or cast with a typo (range(1,5) is no string either, nor a group option
            if (not sep or not value or value != value.strip() or "${" in value
                    or "\\" in value or value.startswith(("'", '"', "[", "{"))
                    or re.match(r"\w+\(", value)
                    or not re.fullmatch(r"[+~]{0,2}[\w.@/-]+", key)
                    or (conf_dir() / key.lstrip("+~").split("@")[0]).is_dir()):
                return ""
            quoted = f"{key}={hydra_quoted(value)}"
            try:
                parser.parse_override(quoted)
            except Exception:
                return ""
            # the shell takes one level of quotes: what a command line needs to pass it on
            shell = f'"{quoted}"' if not re.search(r'["$`\\!]', quoted) else shlex.quote(quoted)
            return (f" (a value with = , ( ) [ ] {{ }} or quotes in it is quoted for Hydra: "
                    f"{quoted}; on a command line: {shell})")
    return ""


def config_error(config_name: str, overrides: Sequence[str], why: str) -> VmafDistillError:
    """The one error of a config that does not compose or resolve, naming it and the
    overrides given."""
    return VmafDistillError(f"config {config_name!r} with overrides {list(overrides)}: {why}")


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line: their lines joined by "; ",
    less the pointer to HYDRA_FULL_ERROR and OmegaConf's key/type dump."""
    skip = ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=",
            "reference_type=", "Config search path", "provider=")
    parts: list[str] = []
    listing = False  # after "Available options in 'student':" the options follow, one a line
    for raw in str(exc).splitlines():
        line = raw.strip()
        if not line or line.startswith(skip):
            continue
        if listing and raw[:1].isspace():
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            continue
        listing = line.endswith(":")
        parts.append(line.rstrip("."))
    return "; ".join(parts) or type(exc).__name__


def hydra_quoted(text: str) -> str:
    """``text`` as a quoted Hydra override value, read back as exactly ``text``: pasted as
    is, ``run(1)``, ``bob's``, ``x,y`` or ``a [1]`` were grammar errors."""
    # Hydra unescapes a backslash only before a quote, before ${ or at the end; ${ would be
    # an interpolation (a doubled backslash elsewhere named another directory)
    text = re.sub(r"\\+(?='|\$\{|$)", lambda m: m.group(0) * 2, text)
    return "'" + text.replace("'", "\\'").replace("${", "\\${") + "'"


def override_key(override: str) -> str:
    """The key a Hydra override sets, appends (``+``) or deletes (``~``): ``+a.b=1`` -> ``a.b``."""
    return override.partition("=")[0].lstrip("+~")


def check_overrides(config_name: str, argv: Sequence[str]) -> Any:
    """Compose ``config_name`` with a single run's overrides before Hydra runs it: a misspelt
    key or group option is then one line naming it (exit 2), where Hydra printed several and
    exited 1. The command line is read by Hydra's own parser; anything that changes what is
    composed or run otherwise (a sweep, ``-cn``/``-cd``/``-cp``, ``hydra.searchpath``,
    ``hydra.mode``, shell completion, ``--info``, a rerun) is left to Hydra. Returns the
    composed config, None where it was left to Hydra."""
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # an argument Hydra's parser refuses: Hydra says so itself
        return None
    other = next((flag for flag, given in (("--cfg", args.cfg), ("--info", args.info),
                                           ("--shell-completion", args.shell_completion))
                  if given), None)
    if args.multirun and other:  # Hydra's ValueError in a traceback
        raise VmafDistillError(
            f"-m and {other} cannot be combined (Hydra runs a sweep or prints, not both); "
            f"drop -m to use {other} on one job (a sweep's values then read as one value)")
    if (args.shell_completion or args.config_dir or args.config_path
            or args.config_name or args.experimental_rerun or args.info or args.help
            or args.hydra_help):
        return None
    overrides = list(args.overrides or [])
    keys = [override_key(o) for o in overrides]
    if any(k in ("hydra.mode", "hydra.searchpath") for k in keys):
        return None
    if args.multirun:
        _check_sweep(config_name, overrides)
        return None
    return compose(config_name, [o for o, k in zip(overrides, keys, strict=True)
                                 if not k.startswith("hydra")])


def _check_sweep(config_name: str, overrides: Sequence[str]) -> None:
    """A sweep's overrides composed value by value before any job runs (each listed value of
    a ``a=x,y`` or ``range()`` sweep with the other sweeps at their first value): a misspelt
    group option (``student=mpl,logistic``) was Hydra's 20 lines and exit 1, with no job run.
    Interval and glob sweeps (Optuna's search spaces) are left to the sweeper; so is what
    Hydra's parser refuses. ``hydra.sweeper.n_trials`` below 1 was an Optuna traceback."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return  # Hydra says what is wrong with it
    for o in parsed:
        if (o.key_or_group == "hydra.sweeper.n_trials" and not o.is_sweep_override()
                and "${" not in str(o.value())):  # an interpolation: the sweeper resolves it
            checked_number("hydra.sweeper.n_trials", o.value(), int, 1)
    fixed, sweeps, globbed = [], [], False
    for o in parsed:
        if o.key_or_group.startswith("hydra"):
            continue
        kind = o.value_type.name if o.value_type is not None else ""
        if not o.is_sweep_override():
            fixed.append(o.input_line)
        elif o.is_choice_sweep() and kind == "SIMPLE_CHOICE_SWEEP":
            # Hydra's own text of each value (quoted where it needs it), as its sweeper runs it
            sweeps.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        elif o.is_range_sweep() or kind == "CHOICE_SWEEP":  # the first value says whether
            # the key exists (range(3,0) is empty; a long Optuna choice() tries a few)
            first = next(iter(o.sweep_string_iterator()), None)
            if first is not None:
                sweeps.append([f"{o.get_key_element()}={first}"])
        else:  # a glob picks group options: the fixed overrides may need one of them
            globbed = globbed or kind == "GLOB_CHOICE_SWEEP"
    firsts = [values[0] for values in sweeps if values]
    if not sweeps and not globbed:
        # a search with no list or range (Optuna's intervals) was never composed here, so a
        # '+' key nothing reads ran the search
        compose(config_name, fixed)
    for k, values in enumerate(sweeps):
        for value in values:
            others = [f for j, f in enumerate(firsts) if j != k]
            compose(config_name, [*fixed, *others, value])


def _searches_conf_dir(gh: Any) -> bool:
    """Whether the initialised Hydra ``gh`` reads this package's config tree."""
    ours = conf_dir().resolve()
    try:
        paths = [str(e.path) for e in gh.config_loader().get_search_path().get_path()]
    except Exception:  # another Hydra version's internals: take it as ours, as before
        return True
    # both sides resolved: a checkout's vmafdistill/conf is a link to conf/
    return any(Path(p.removeprefix("file://")).resolve() == ours for p in paths
               if "://" not in p or p.startswith("file://"))


def compose_dict(config_name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`compose`, resolved to plain dicts and lists."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = compose(config_name, overrides)
    try:
        out = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve
        raise config_error(config_name, overrides, one_line(exc)) from None
    assert isinstance(out, dict)
    return out


def checked_number(label: str, value: Any, kind: type, low: float | None = None,
                   inclusive: bool = True, high: float | None = None, *,
                   finite: bool = True) -> Any:
    """``value`` read as ``kind`` (int or float), an error naming ``label`` (``optim.lr``) when
    it is not a number, not whole where an integer is wanted, infinite unless ``finite`` is
    False (``optim.lr=inf`` or ``loss.tau=inf`` trained to NaN and failed only after every
    fold), or outside ``[low, high]`` (``low`` excluded unless ``inclusive``; ``high``
    excluded). A bool or text is refused, not read: YAML's ``true`` or a quoted ``"0.3"``
    read as 1 or 0.3 here and then failed, or went on, where the setting was used."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's bool_ too
        raise VmafDistillError(f"{label}={value!r}: not a number{_kind_of(value)}")
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


def checked_size(label: str, value: Any) -> tuple[int, int]:
    """A frame size, ``(width, height)`` or ``"WxH"`` text (the command line's spelling), as two
    whole numbers >= 1, or an error naming ``label``: ``"1280x720"`` given where a pair was
    expected was read as its first two characters, a 1x2 reference."""
    if isinstance(value, str):
        parts: Any = value.strip().lower().split("x")
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        parts = list(value)
    elif getattr(value, "ndim", None) == 1 and hasattr(value, "tolist"):  # numpy, torch
        parts = value.tolist()
    else:
        parts = None
    if parts is None or len(parts) != 2:
        raise VmafDistillError(f"{label}={value!r}: needs WxH such as 1280x720, or a "
                               "(width, height) pair")
    if isinstance(value, str):
        if not all(p.strip().isascii() and p.strip().isdecimal() and int(p) >= 1
                   for p in parts):  # isdigit took "²", which int() refused
            raise VmafDistillError(f"{label}={value!r}: needs WxH such as 1280x720, both "
                                   "at least 1")
        return int(parts[0]), int(parts[1])
    width, height = (checked_number(f"{label}[{i}]", p, int, 1) for i, p in enumerate(parts))
    return width, height


def _kind_of(value: Any) -> str:
    """Why a value that should have been a number is not one, in a config writer's words."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):  # numpy 2, 1
        return " (true/false)"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return ""
        # inf or nan as text: refused as they are, not fixed by dropping the quotes
        return f" but text (write {value.strip()} without quotes)" if math.isfinite(number) \
            else ""
    return ""


def launch_dir() -> Path | None:
    """The directory the command was started in, inside a Hydra job (whose own directory may
    be another: ``hydra.job.chdir``, a Ray worker's); None outside one (the Python API)."""
    try:
        from hydra.utils import get_original_cwd

        return Path(get_original_cwd())
    except (ImportError, ValueError):
        return None


def from_launch_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute from :func:`launch_dir` (outside a Hydra job: from the working
    directory); ``~`` expanded."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (launch_dir() or Path.cwd()) / p


def refuse_unknown_keys(section: str, settings: Mapping[str, Any], known: Iterable[str],
                        error: type[Exception] = VmafDistillError) -> None:
    """``error`` naming the keys of ``settings`` that nothing reads: ``+optim.lrr=1`` (the
    ``+`` Hydra asks for when a key is not in the config) composed and was ignored."""
    allowed = set(known)
    if unknown := sorted(str(k) for k in settings if k not in allowed):
        raise error(f"{section}: unknown key(s) {unknown}; known: {sorted(allowed)}")


def checked_bool(label: str, value: Any) -> bool:
    """``value`` as a bool, or an error naming ``label``: a YAML ``no`` or ``maybe`` is a
    string, which Python's ``bool`` took as true (``student.linear_skip=no`` built the skip)."""
    if isinstance(value, bool):
        return value
    raise VmafDistillError(f"{label}={value!r}: needs true or false")


def checked_list(label: str, value: Any) -> list[Any]:
    """``value`` as a list (null: empty), or an error naming ``label``: a bare string was read
    a character at a time (``corpus.exclude=life.mp4`` excluded nothing, unsaid;
    ``corpus.extensions=abc`` looked for .a, .b and .c)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    from omegaconf import ListConfig

    if isinstance(value, ListConfig):
        return list(value)
    raise VmafDistillError(f"{label}={value!r}: needs a list, e.g. [{value}]")
