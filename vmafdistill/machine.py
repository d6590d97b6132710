"""What machine this is: CPU model and the SIMD level libvmaf dispatches to.

libvmaf picks its kernels at run time from the CPU's flags (C, AVX2 or AVX-512), and its kernels do
not all agree bit for bit: its float kernels accumulate in an order that depends on the vector
width, and some integer ADM kernels differ from each other on frame sizes whose bands are not a
whole number of vectors. Golden numbers therefore record where they were made
(:func:`cpu_record`) and tests pick their tolerance from it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_flags", "cpu_model", "cpu_record", "pid_alive", "simd_level"]

#: The flags libvmaf's x86 dispatch requires for its AVX-512 kernels (``libvmaf/src/x86/cpu.c``:
#: ``VMAF_X86_CPU_FLAG_AVX512``, cpuid 7 ebx ``0xd0030000``, which every ``*_avx512`` kernel
#: dispatches on; its stricter ``AVX512ICL`` level selects no kernel), set only on top of its
#: AVX2 level (BMI1, AVX2, BMI2, with AVX enabled).
_AVX512_FLAGS = frozenset({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"})
_AVX2_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2"})


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where that file does not exist)."""
    flags = _cpuinfo_field("flags")
    return frozenset(flags.split()) if flags else frozenset()


def simd_level() -> str:
    """``"avx512"``, ``"avx2"`` or ``"c"``: the x86 kernels libvmaf runs on this CPU.

    Other architectures report ``platform.machine()`` (e.g. ``"aarch64"``): their kernels are
    neither, so golden values recorded on x86 are compared there with cross-machine tolerances.
    """
    machine = platform.machine().lower()
    if machine not in {"x86_64", "amd64", "i386", "i686"}:
        return machine or "unknown"
    flags = cpu_flags()
    if not _AVX2_FLAGS.issubset(flags):
        return "c"
    return "avx512" if _AVX512_FLAGS.issubset(flags) else "avx2"


def cpu_record() -> dict[str, str]:
    """``{"cpu": model name, "simd": simd_level()}``: where a golden number was made."""
    return {"cpu": cpu_model(), "simd": simd_level()}


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs here (this host and pid namespace; another user's
    counts). 0 and negative pids name process groups, not a process: False."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True
