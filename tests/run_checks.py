"""Checks shared by test modules, in a module of its own (not ``conftest``, whose name several folders use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOTTLE_256 = SHARED_DATA / "mvtec_ad_256" / "bottle"
BOTTLE_FULLRES = SHARED_DATA / "mvtec_ad_fullres_xs" / "bottle"


def assert_metrics_match_sklearn(report: dict, run: Path, data: Path | None = None, category: str | None = None):
    """``evaluate_run``'s report equals scikit-learn's ROC AUC of the run's own scores and maps.

    The run is scored again with :class:`~nsad.pipeline.Scorer`; image AUROC (overall and per
    defect type: that type against the normal images) and pixel AUROC are recomputed with
    ``sklearn.metrics.roc_auc_score`` from the test folder's labels and masks.
    """
    from sklearn.metrics import roc_auc_score

    from nsad.data.folder import find_dataset, read_sample_mask
    from nsad.pipeline import Scorer

    scorer = Scorer(run, device="cpu")
    if data is None:
        data, category = scorer.metadata.training["data"], scorer.metadata.training.get("category_arg")
    samples = find_dataset(data, category).test
    result = scorer.score([sample.path for sample in samples])
    types = np.array([sample.defect_type if sample.is_anomalous else "good" for sample in samples])
    anomalous = types != "good"
    assert report["images"] == len(samples)
    assert report["metrics"]["image_auroc"] == pytest.approx(roc_auc_score(anomalous, result.scores), abs=1e-12)
    for name in sorted(set(types[anomalous])):
        keep = anomalous == (types == name)
        expected = roc_auc_score(anomalous[keep], result.scores[keep])
        assert report["by_defect_type"][name]["image_auroc"] == pytest.approx(expected, abs=1e-12), name
    if report["pixel_metrics"]:
        masks = np.stack([read_sample_mask(sample, result.maps.shape[-1]) for sample in samples])
        expected = roc_auc_score(masks.ravel(), result.maps.ravel())
        assert report["metrics"]["pixel_auroc"] == pytest.approx(expected, abs=1e-9)
    else:
        assert "pixel_auroc" not in report["metrics"]


def quiet_trainer(tmp_path: Path, **options):
    """A Lightning Trainer on the CPU without logger, checkpoints, progress bar or summary (``options`` override)."""
    import lightning as L

    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=tmp_path)
    return L.Trainer(**{**defaults, **options})


def lr_recorder():
    """A Lightning callback whose ``lrs`` lists the first optimiser's learning rate at every training step."""
    import lightning as L

    class LrRecorder(L.Callback):
        def __init__(self):
            self.lrs = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    return LrRecorder()
