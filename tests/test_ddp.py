"""2-process CPU DDP (gloo) through the training app: completes, and matches one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from test_train_app import run_train, synthetic_corpus

from vmafdistill.students.bundle import load_bundle

torch.set_num_threads(1)


def test_ddp_matches_single_process(tmp_path: Path) -> None:
    # 2 x 8 shots x 8 variants = 128 rows: full-batch halves of 64 per rank, so the averaged
    # DDP gradient equals the single-process full-batch gradient
    corpus = synthetic_corpus(tmp_path / "corpus")
    common = ["cv=hash", "baselines=[]", "optim.max_epochs=3", "loss=mse"]
    assert run_train(corpus, tmp_path / "ddp", "trainer=ddp_cpu", *common) == 0
    assert run_train(corpus, tmp_path / "one", *common) == 0
    ddp, meta = load_bundle(tmp_path / "ddp" / "student.pt")
    one, _ = load_bundle(tmp_path / "one" / "student.pt")
    assert meta["config"]["trainer"]["devices"] == 2
    assert meta["config"]["trainer"]["strategy"]["process_group_backend"] == "gloo"
    ref = dict(one.named_parameters())
    for name, p in ddp.named_parameters():
        torch.testing.assert_close(p, ref[name], rtol=1e-4, atol=1e-5)
    # rank 0 logged every epoch of the final fit, and the loss went down
    log = pd.read_csv(tmp_path / "ddp" / "logs" / "final" / "metrics.csv")
    loss = log["train_loss"].dropna().to_numpy()
    assert len(loss) == 3 and loss[-1] < loss[0]
    m = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert m["n_folds"] == 1
