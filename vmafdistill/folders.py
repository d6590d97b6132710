"""Folders and output files: walking a folder of footage (what `corpus`, for a folder corpus,
and `predict`, for a folder argument, both read), making one a command writes into, and
checking an output file before the work that fills it, so a wrong path costs nothing and an
input is never overwritten. Standard library only (the torch-free edge uses it)."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import VmafDistillError

#: Video files by suffix (case-insensitive): what `predict` expands a directory argument to
#: (recursively), and names no headerless raw YUV is given. MPEG program streams and MXF may
#: carry H.264 / H.265; the others are the usual homes of the four codecs.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts", ".m2ts", ".mts", ".avi",
                    ".flv", ".3gp", ".ivf", ".obu", ".h264", ".264", ".h265", ".hevc", ".265",
                    ".mpg", ".mpeg", ".mxf")


def unique_token() -> str:
    """A temporary file's tag, unique across hosts and containers sharing a cache: the pid
    alone clashed between builds in separate PID namespaces (one renamed the other's file
    away, and its job failed with FileNotFoundError)."""
    return f"{os.getpid()}.{secrets.token_hex(6)}"


@contextlib.contextmanager
def partial_file(out: Path, stamp: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``out`` for a tool to write it through
    (``.<stem>.<tag>.partial<suffix>``: the random tag keeps runs side by side apart, the
    suffix tells ffmpeg the container); renamed onto ``out`` when the block ends, removed
    when it raises. Hidden, so a folder corpus never reads a killed run's leftover. A
    ``stamp`` (:func:`recipe_stamp`) is kept beside ``out`` for :func:`already_made`."""
    tmp = out.with_name(f".{out.stem}.{unique_token()}.partial{out.suffix}")
    # A pending mark (this run's own) says a clip is ours while it changes; no stamp at all:
    # the user's video. The old recipe's stamp is gone before its clip changes (a run killed
    # between the two left the new clip under it, and going back to that recipe kept the
    # wrong clip). A first film is marked only just before its clip appears: a mark left by
    # a killed encode, with no clip beside it, made a user's video put there later "ours".
    pending = f"{PENDING_STAMP} {unique_token()}"
    marked = False
    if stamp is not None and os.path.lexists(out):
        _mark(out, pending)
        marked = True
    renamed = False
    try:
        yield tmp
        if not os.path.lexists(tmp):  # the tool exited 0 and wrote nothing: the rename was a
            # FileNotFoundError traceback naming a hidden temporary file
            raise VmafDistillError(f"{out}: the tool that makes it wrote no file")
        # Mark, rename and stamp as one step per folder: two recipes filming one clip at once
        # could interleave them and leave one run's clip under the other's stamp.
        with _folder_lock(out.parent) if stamp is not None else contextlib.nullcontext():
            if stamp is not None:
                if not marked and os.path.lexists(out):  # put there while the tool ran: the
                    already_made(out, stamp)  # user's video is refused (ours is replaced)
                _mark(out, pending)
            content = _content_line(tmp) if stamp is not None else ""
            _fsync(tmp)  # as atomic_write_bytes does: a power cut must not leave an empty clip
            os.replace(tmp, out)
            renamed = True
            if stamp is not None:
                atomic_write_bytes(stamp_path(out), f"{stamp}\n{content}\n".encode())
    finally:
        if os.path.lexists(tmp):  # unlink(missing_ok) raised EROFS on a read-only folder,
            tmp.unlink(missing_ok=True)  # hiding the tool's own error
        if stamp is not None and not renamed and not os.path.lexists(out):
            # a first film that failed leaves no mark; only this run's (another run filming
            # the same clip keeps its own)
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if stamp_path(out).read_text() == pending:
                    stamp_path(out).unlink()


def _fsync(path: Path) -> None:
    """Flush a file a tool wrote to disk (a filesystem that cannot: nothing; O_NONBLOCK: a
    FIFO's open would wait for a writer)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def lock_fd(fd: int, waiting: str | None = None) -> None:
    """An exclusive ``flock`` on ``fd`` (released when it is closed or its process dies);
    held elsewhere, print ``waiting`` (if given) and wait. Where the platform or filesystem
    has no such lock, nothing (the caller goes on unlocked, as before locks)."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if waiting:
            print(waiting, file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a filesystem without locks (NFS on a directory: ENOLCK)
        pass


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """``folder`` itself locked for the block (no lock file is left among the user's
    footage); a folder that cannot be opened runs the block unlocked."""
    try:
        fd: int | None = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = None
    if fd is None:  # the block outside the except: its errors do not chain to this one
        yield
        return
    try:
        lock_fd(fd)  # held for a rename and a stamp: no word about the wait
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _mark(out: Path, pending: str) -> None:
    """``out``'s stamp set to this run's pending mark, or one error naming the folder."""
    try:
        atomic_write_bytes(stamp_path(out), pending.encode())
    except OSError as exc:
        raise VmafDistillError(f"{out.parent}: cannot write there "
                               f"({exc.strerror or exc})") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a same-directory temp file + fsync + rename: a reader,
    or a run killed mid-write, never leaves a shorter file that still parses (a Ctrl-C left a
    `score --csv` of 228 of 1000 rows, each line whole). A rewritten file keeps its mode and
    group; a link to a file is written through (the link kept). Written in place, as before:
    ``/dev/*`` and ``/proc/*`` paths (``--json /dev/stdout``, into a pipe or a shell's
    ``>>`` file), FIFOs, a file with other hard links, another user's file, and a file this
    user may write where the rename is not allowed (a read-only or sticky folder)."""
    if str(path).startswith(("/dev/", "/proc/")) or (path.exists() and not path.is_file()):
        # appended: reopening /dev/stdout truncated the file a shell's `>>` appends to
        with open(path, "ab") as fh:
            fh.write(data)
        return
    if path.is_symlink():
        path = path.resolve()
    st = path.stat() if path.is_file() else None
    if st is not None and (st.st_nlink > 1 or st.st_uid != os.geteuid()):
        _write_in_place(path, data)  # a rename would leave the twin, or change the owner
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{unique_token()}.partial")
    try:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if st is not None:  # a private results file stays private, a shared one shared
                    os.chmod(fh.fileno(), st.st_mode & 0o7777)
                    if st.st_gid != os.getegid():
                        os.fchown(fh.fileno(), -1, st.st_gid)
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except PermissionError:
            if st is None:
                raise
            _write_in_place(path, data)
    finally:
        tmp.unlink(missing_ok=True)


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(Path(path), text.encode())


def recipe_stamp(*settings: Any, files: Sequence[str | os.PathLike[str]] = ()) -> str:
    """A digest of what a recipe films a clip from: ``settings`` (by repr) and the bytes of
    its input ``files`` (photographs, a clean clip)."""
    digest = hashlib.sha256(repr(settings).encode())
    for path in files:
        with open(path, "rb") as fh:  # hashlib.file_digest is Python 3.11's
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")  # one file's end
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (the one file hash: the corpus cache's, the card's and the
    clip stamps' all read files this way)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:  # hashlib.file_digest is Python 3.11's
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _content_line(path: Path) -> str:
    """A filmed clip's size and sha256, the stamp's second line: a clip truncated, edited or
    swapped for another video under a kept stamp was reported as filmed."""
    return f"content {os.path.getsize(path)} {file_sha256(path)}"


#: What a clip's stamp holds while the clip is being filmed again (matches no recipe).
PENDING_STAMP = "pending"


def stamp_path(out: Path) -> Path:
    """Where :func:`partial_file` keeps a filmed clip's recipe stamp (hidden: no footage)."""
    return out.with_name(f".{out.name}.recipe")


def already_made(out: Path, stamp: str | None = None) -> bool:
    """Whether the file a recipe films is there already, not empty (it is kept) and, given
    ``stamp``, filmed from that recipe (a changed recipe kept the old clip, and ``evaluate
    --kinds`` scored it as the new held-out set); a folder or other non-file in its place is
    one error naming it (``tmp.replace(out)`` failed with a traceback after the whole
    encode)."""
    if os.path.isfile(out):  # os.path: Path raised PermissionError under a closed folder
        # an empty file (a copy or a disk that failed; writes here are atomic) is filmed
        # again: it was kept and printed as filmed, then failed the corpus build
        if os.path.getsize(out) == 0:
            return False
        if stamp is None:
            return True
        try:
            recipe, _, content = stamp_path(out).read_text().strip().partition("\n")
        except (OSError, UnicodeDecodeError):
            # no stamp: not filmed here (sources --out into a folder of the user's own
            # footage replaced a clip of the same name without a word)
            raise _unstamped(out) from None
        if recipe.strip() != stamp:
            return False  # another recipe's clip: filmed again
        # stamps from before the content line hold the recipe alone: nothing more to check
        if content.strip() and content.strip() != _content_line(out):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if stamp_path(out).read_text().strip().partition("\n")[2] != content:
                    return False  # another run re-filmed it while it was hashed: film again
            raise VmafDistillError(
                f"{out}: not the clip this recipe filmed (its bytes changed since: truncated, "
                "edited, or another video put in its place); move it, or delete it to film "
                "the clip again")
        return True
    if os.path.lexists(out):
        raise _not_a_file(out)
    return False


def _unstamped(out: Path) -> VmafDistillError:
    return VmafDistillError(
        f"{out}: a video without a recipe stamp ({stamp_path(out).name}) is where this recipe "
        "films: not filmed here, or by a vmafdistill from before stamps; move it, or delete "
        "it to film the clip")


def _not_a_file(out: Path) -> VmafDistillError:
    kind = "a folder" if os.path.isdir(out) else "a link to nothing" \
        if not os.path.exists(out) else "not a regular file"
    return VmafDistillError(f"{out}: {kind} is in the place of the video to film; move it")


def check_film_targets(outs: Sequence[Path]) -> None:
    """Every clip a recipe will film checked before the first is filmed: a video of the
    user's (no stamp) or a folder in one's place was refused only once the clips before it
    were filmed. The full check (:func:`already_made`) still runs at each clip."""
    for out in outs:
        if os.path.isfile(out) and os.path.getsize(out) and not os.path.lexists(stamp_path(out)):
            raise _unstamped(out)
        if os.path.lexists(out) and not os.path.isfile(out):
            raise _not_a_file(out)


def make_folder(option: str, folder: Path, *, writable: bool = True) -> None:
    """``folder`` made (parents too), or one error naming ``option`` and the problem: an
    existing file, a path through one, a folder that cannot be made or written into (each was
    a traceback, for ``sources --out`` and ``evaluate --cache``; ``writable=False``: an output
    file's folder, whose own check lets a writable file in a read-only folder be rewritten)."""
    # os.path, not Path: Path.exists raised PermissionError under an unsearchable folder
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise VmafDistillError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmafDistillError(f"{option} {folder}: cannot make the folder "
                               f"({exc.strerror or exc})") from None
    if writable and not os.access(folder, os.W_OK | os.X_OK):  # a traceback at its first write
        raise VmafDistillError(f"{option} {folder}: the folder is not writable")


def check_folder_target(option: str, folder: Path, *, writable: bool = True) -> None:
    """One error naming ``option`` where ``folder`` could not be made (it, or the nearest
    path above it that exists, is a file or a link to nothing) or, with ``writable``, written;
    checked without making anything (a read-only cache that is only read: ``writable=False``)."""
    # os.path, not Path: Path.exists raised PermissionError under an unsearchable folder
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.path.lexists(existing) and not os.path.isdir(existing):
        where = "is" if existing == folder else f"lies under {existing}, which is"
        kind = "a link to nothing" if os.path.islink(existing) and not os.path.exists(
            existing) else "a file, not a folder"
        raise VmafDistillError(f"{option} {folder}: {where} {kind}")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise VmafDistillError(f"{option} {folder}: {existing} is not writable")


def _resolved(path: Path) -> Path | None:
    """``path`` resolved, None for a link loop (``Path.resolve`` raised RuntimeError on
    Python 3.11: one ``self.mp4 -> self.mp4`` in a footage folder ended the build in a
    traceback)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def walk_files(root: Path, skip_dirs: Sequence[Path] = (),
               exclude: Sequence[str] = ()) -> tuple[list[Path], list[Path]]:
    """``(files, broken)`` under ``root``, both sorted: the files (through links; FIFOs,
    sockets and devices too, which their reader refuses by name), and the links that point
    nowhere. Links to folders outside ``root`` are followed, each real folder
    once; a folder inside is reached by its own path, so a link to an ancestor does not loop.
    Footage is often linked in from other disks: ``Path.rglob`` on Python 3.11 did not enter
    folder links, and skipped a dangling link without a word.

    Hidden files and folders are left out (editors' and OS metadata, macOS's ``._name.mp4``,
    the ``.<name>.<tag>.partial.mp4`` a killed `vmafdistill sources` leaves), as is anything under
    ``skip_dirs`` or matching an ``exclude`` glob relative to ``root``: anchored at ``root``
    (``rejects/*`` is not ``keep/rejects/*``), ``*`` crossing folders (``*_proxy.mp4`` at
    any depth); a glob that matches a folder leaves out everything in it.
    """
    skip = [d.resolve() for d in skip_dirs]
    # `./rejects/*` and `rejects/` are how people write the folder too (Path.match took them)
    patterns = [p.removeprefix("./").rstrip("/") or p for p in map(str, exclude)]

    def skipped(path: Path) -> bool:
        # anchored at root (Path.match anchors at the right: `rejects/*` also left out
        # keep/rejects/k.mp4); fnmatch's `*` crosses folders, so `*_proxy.mp4` is any depth
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatchcase(rel, p) for p in patterns):
            return True
        real = _resolved(path)
        return bool(skip) and real is not None and any(real.is_relative_to(d) for d in skip)

    files: list[Path] = []
    broken: list[Path] = []
    real_root = root.resolve()
    seen = {real_root}
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        kept = []
        for name in sorted(dirnames):
            real = _resolved(here / name)
            if real is None:  # a link loop: named with the links that point nowhere
                broken.append(here / name)
                continue
            # a link to a folder inside the root: that folder is reached by its own path (a
            # convenience link that sorted first renamed the footage under it)
            inside = (here / name).is_symlink() and real.is_relative_to(real_root)
            if name.startswith(".") or inside or real in seen or skipped(here / name):
                continue
            seen.add(real)
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            path = here / name
            if name.startswith(".") or skipped(path):
                continue
            if path.is_symlink() and not path.exists():
                broken.append(path)
            else:  # a FIFO, socket or device too: the reader names it (it was left out unsaid)
                files.append(path)
    return sorted(files), sorted(broken)


def refuse_empty(option: str, value: str | os.PathLike[str] | None, *, what: str = "path",
                 hint: str = "") -> None:
    """One error naming ``option`` where it was given empty: ``--out "$OUT"`` with ``OUT``
    unset (the results were lost, written into the working folder, or a traceback)."""
    if value is not None and not str(value).strip():
        raise VmafDistillError(f"{option}: an empty {what} (an unset shell variable?)"
                               + (f"; {hint}" if hint else ""))


def check_output_target(option: str, target: str | None, inputs: Sequence[str | os.PathLike],
                        *, starts: bytes | re.Pattern[bytes]) -> str | None:
    """``target`` of ``option`` (None: not asked for; ``-``: stdout) once it is known to be
    writable and neither one of the ``inputs`` nor an existing file that does not start with
    ``starts`` (what this command writes there, as bytes or a pattern matched at the start, so
    a JSON output names its own first key: a video given by mistake, ``--json a.mp4 b.mp4``,
    or another tool's JSON is not replaced). Raises VmafDistillError naming the option and the
    problem."""
    if target is None or target == "-":
        return target
    refuse_empty(option, target, hint="give a file to write, or - for stdout")
    path = Path(target)
    if path.is_dir():
        raise VmafDistillError(f"{option} {target}: is a directory, not a file to write")
    if not path.resolve().parent.is_dir():
        raise VmafDistillError(f"{option} {target}: its directory does not exist")
    if not os.access(path.resolve().parent, os.W_OK) and not (
            path.is_file() and os.access(path, os.W_OK)):  # a writable file is rewritten
        raise VmafDistillError(f"{option} {target}: its directory is not writable")
    if path.is_file():
        for given in inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(path, given):
                    raise VmafDistillError(
                        f"{option} {target}: is an input ({given}), not a file to write the "
                        f"results to ({option} takes the output file)")
        with contextlib.suppress(OSError), path.open("rb") as fh:
            head = fh.read(4096).lstrip()  # a CSV header line is told apart by its end
            ours = (head.startswith(starts) if isinstance(starts, bytes)
                    else starts.match(head) is not None)
            if head and not ours:  # an earlier run's output starts so
                raise VmafDistillError(
                    f"{option} {target}: exists and is not this command's output (a video, "
                    f"another tool's file?); it is not replaced ({option} takes the output file)")
    return target


def is_stdout(target: str | None) -> bool:
    """Whether an output target is this process's stdout: ``-``, or a path to it such as
    ``/dev/stdout`` (whose log got the summary line in its middle)."""
    if not target:
        return False
    if target == "-":
        return True
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(target))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # no stdout (None,
        # closed), or not a real file
        return False


def stdout_to_devnull() -> None:
    """Point this process's stdout at the null device: its reader left (``| head``) or it
    cannot be written (a full disk), and later prints and the interpreter's final flush must
    not raise again."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    finally:
        os.close(null)


def json_starting_with(key: str, value_prefix: str | None = None) -> re.Pattern[bytes]:
    """What :func:`check_output_target` takes for a JSON object whose first key is ``key``
    (and, given ``value_prefix``, whose string value starts so: score's log shares libvmaf's
    first key, ``version``, and a libvmaf log beside it is not replaced)."""
    value = b"" if value_prefix is None else rb'\s*"' + re.escape(value_prefix.encode())
    return re.compile(rb'\{\s*"' + re.escape(key.encode()) + rb'"\s*:' + value)


def _without_surrogates(text: str) -> str:
    """``text``, its lone surrogates written as backslash escapes of the bytes they stand for
    (``os.fsdecode``'s ``\udcff`` -> ``\\xff``; any other one as ``\\udXXX``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON holds: NaN and infinite floats become None (bare
    ``NaN`` is no JSON: strict parsers refuse the file), numpy scalars and arrays Python
    values and lists, tuples lists, and text with lone surrogates (a file name that is not
    UTF-8, as Python reads it: ``x\udcff.mp4``; strict parsers refuse ``"\udcff"``)
    backslash-escaped text (``x\\xff.mp4``)."""
    import math

    if isinstance(obj, str):
        return _without_surrogates(obj)
    if isinstance(obj, Mapping):
        return {_without_surrogates(str(k)): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):  # scalar or array
        plain = obj.tolist()
        # (a longdouble stays one: left to json, which names it, not recursed into)
        return obj if type(plain) is type(obj) else json_safe(plain)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
