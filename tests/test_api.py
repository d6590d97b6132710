"""The Python API's docstring examples run as tests (the loop on a tiny synthetic corpus, the
shipped student loaded), plus fine-tuning the shipped student through the API."""

from __future__ import annotations

import doctest
from pathlib import Path

import torch

import vmafdistill.api as api
from vmafdistill.testing.synthetic import synthetic_corpus

torch.set_num_threads(1)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 8
    assert result.failed == 0


def test_compose_applies_overrides_like_the_cli() -> None:
    cfg = api.compose("train", ["student=quant", "optim.lr=0.5"])
    assert cfg.student.name == "logistic" and cfg.optim.lr == 0.5


def test_finetune_result_is_typed(tmp_path: Path) -> None:
    corpus = synthetic_corpus(tmp_path / "c", n_sources=2, n_shots=6)
    fit = api.train(corpus, tmp_path / "run", "optim.max_epochs=40", "baselines=[]",
                    "trainer.enable_progress_bar=false", "summary=false")
    ft = api.finetune(fit.bundle, corpus, tmp_path / "ft", "optim.max_epochs=20",
                      "trainer.enable_progress_bar=false", "summary=false")
    assert ft.bundle.is_file() and ft.mae_before >= 0 and ft.mae_after >= 0
    assert ft.metrics["after"]["heldout"]["mae"] == ft.mae_after
