"""``nsad train --variant authors``: the authors' network and per-epoch schedule, recorded in the run."""

from __future__ import annotations

import json

import pytest
import torch

from nsad.cli import main
from nsad.models import load_run
from nsad.pipeline import TrainConfig, train
from nsad.pipeline.train import CHECKPOINT

TINY = dict(image_size=80, batch_size=16, workers=0, progress=False, epochs=2, examples_per_epoch=32, holdout=0.0)


@pytest.mark.slow
def test_authors_variant_trains_their_network_with_a_per_epoch_schedule(bottle_dir, tmp_path):
    out = train(TrainConfig(data=bottle_dir, out=tmp_path / "authors", variant="authors", **TINY))
    run = load_run(out)
    assert run.metadata.training["variant"] == "authors" and run.metadata.net.decoder == "authors"
    assert json.loads((out / "config.json").read_text())["variant"] == "authors"
    checkpoint = torch.load(out / "checkpoints" / CHECKPOINT, map_location="cpu", weights_only=False)
    scheduler = checkpoint["lr_schedulers"][0]
    assert checkpoint["global_step"] == 4                         # 2 steps in each of 2 epochs
    assert scheduler["last_epoch"] == 2 and scheduler["T_max"] == 2   # stepped per epoch over the epochs (paper: 4)
    assert run.net.config.decoder == "authors"                     # the run loads for scoring


def test_authors_variant_is_refused_where_it_does_not_exist(bottle_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="method 'fpi' has only variant 'paper'"):
        TrainConfig(data=bottle_dir, out=tmp_path, method="fpi", variant="authors")
    with pytest.raises(ValueError, match="drop --synth-on-device or use variant 'paper'"):
        TrainConfig(data=bottle_dir, out=tmp_path, variant="authors", synth_device="batch")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(bottle_dir), "--out", str(tmp_path / "x"), "--variant", "code"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'code'" in capsys.readouterr().err


def test_resume_refuses_another_variant(tmp_path):
    from nsad.pipeline._runfolder import check_resume

    (tmp_path / "config.json").write_text(json.dumps({"method": "nsa-logistic", "variant": "paper"}))
    check_resume(tmp_path, {"method": "nsa-logistic", "variant": "paper"})
    with pytest.raises(ValueError, match="--variant was 'paper', now 'authors'"):
        check_resume(tmp_path, {"method": "nsa-logistic", "variant": "authors"})
    (tmp_path / "config.json").write_text(json.dumps({"method": "nsa-logistic"}))   # from before --variant
    check_resume(tmp_path, {"method": "nsa-logistic", "variant": "paper"})
    with pytest.raises(ValueError, match="--variant was 'paper', now 'authors'"):
        check_resume(tmp_path, {"method": "nsa-logistic", "variant": "authors"})


def test_compare_does_not_reuse_a_run_of_the_other_variant(bottle_dir, tmp_path):
    from nsad.pipeline.compare import check_same_settings

    paper = TrainConfig(data=bottle_dir, out=tmp_path, epochs=1)
    saved = {k: str(v) if hasattr(v, "is_dir") else v for k, v in paper.__dict__.items()}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_same_settings(tmp_path, paper)
    with pytest.raises(ValueError, match="variant: 'paper' there, 'authors' now"):
        check_same_settings(tmp_path, TrainConfig(data=bottle_dir, out=tmp_path, epochs=1, variant="authors"))
    del saved["variant"]                                          # a run from before the option: the paper's
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_same_settings(tmp_path, paper)
    with pytest.raises(ValueError, match="variant: 'paper' there, 'authors' now"):
        check_same_settings(tmp_path, TrainConfig(data=bottle_dir, out=tmp_path, epochs=1, variant="authors"))
