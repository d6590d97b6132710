"""Every cache, schema and file-format version in one place.

Bump a constant here when what it names changes meaning; the modules that use each one
re-export it under its old name (``corpus.jobs.SHOTS_VERSION`` etc.), so callers do not change.
The values are part of cache keys (:func:`vmafdistill.corpus.build.build_key`): changing one
invalidates the caches it names. This module imports nothing (the torch-free edge reads it).
"""

from __future__ import annotations

__all__ = [
    "BUNDLE_READABLE_VERSIONS",
    "BUNDLE_VERSION",
    "CARD_VERSION",
    "ENCODE_VERSION",
    "FEATURE_SET_VERSION",
    "SCHEMA_VERSION",
    "SHOTS_VERSION",
    "V1016_TEACHER_VERSION",
]

#: Corpus table columns: bump when a column is added, renamed, removed or changes meaning.
#: 2: scene-level rate columns; 3: quantizer (qp) columns; 4: macroblock quantizer (mb_qp,
#: scene_mb_qp).
SCHEMA_VERSION = 4

#: Bump whenever any feature's definition or default parameter changes (cache invalidation).
FEATURE_SET_VERSION = 1

#: Bump when the torch teacher's v1.0.16 numbers change (invalidates its cached labels; the
#: v0.6.1 labels keep their keys). 2: SpEED's float32 ``1 + variance``, as libvmaf rounds it;
#: 3: 9- and 14-bit video scored at the 10 and 16 bits ffmpeg hands libvmaf.
V1016_TEACHER_VERSION = 3

#: Bump when the shot-cut algorithm changes (invalidates cached shot lists). 2: sources cut
#: at :func:`vmafdistill.io.packets.read_rate` (the rate predict reads), not the declared one;
#: 3: that rate's constant-rate test also takes jittered timestamps, probed as predict probes;
#: 4: its one-frame tolerance stays under half a frame (an AVI's tick is a whole frame);
#: 5: a cut candidate too close to the clip's end no longer replaces a valid cut before it;
#: 6: that rate reads the timestamps of a source whose leading packets have none (their
#: overflowed times made it fall back to the declared rate); 7: a raw elementary stream
#: (Annex B H.264/H.265, MPEG-2 video) is read at its own headers' rate, not the raw
#: demuxer's default 25 fps; 8: a declared rate is read as jittered timestamps' centre only
#: where their median step is one of its frames (a frame-dropping MP4's frames-over-duration
#: rate was read where its TS copy reads the timestamps' mean); 9: the steps' 40th and 60th
#: percentiles, not their median, are that centre, and timestamps repeated at joins (``cat
#: a.ts b.ts``; up to a quarter of the steps) no longer make a constant-rate source read at its
#: mean rate.
SHOTS_VERSION = 9

#: Bump when encode settings in :mod:`vmafdistill.encode` change (invalidates cached encodes).
#: 3: -noautorotate (sources with a rotation matrix).
ENCODE_VERSION = 3

#: Student bundle format. Version 2 added `interactions`. A bundle without any is still written
#: as version 1, so readers from before interactions keep loading it; one with interactions is
#: version 2, which those readers refuse with a version message instead of a tensor-shape error.
BUNDLE_VERSION = 2
#: Bundle versions this code reads.
BUNDLE_READABLE_VERSIONS = (1, 2)

#: Model card (``card.json``): bump when a card key is renamed or changes meaning.
CARD_VERSION = 1
