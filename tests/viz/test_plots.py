"""The report's plots draw exactly the numbers that are reported (checked on the data handed to matplotlib)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from nsad.metrics import aupro, image_auroc, pro_curve, roc_curve
from nsad.viz.plots import confusion_plot, loss_plot, pro_plot, roc_plot, score_histogram

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_roc_curve_is_scikit_learns_and_its_area_the_auroc():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # rounded: many ties
    labels = (rng.random(200) < 0.4).astype(int)
    scores[labels == 1] += 0.7
    curve = roc_curve(scores, labels)
    fpr, tpr, _ = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(curve.fpr, fpr) and np.allclose(curve.tpr, tpr)
    assert curve.area() == pytest.approx(image_auroc(scores, labels), abs=1e-12)
    assert curve.area() == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    plot = roc_plot(curve, image_auroc(scores, labels))
    assert plot.png.startswith(PNG_SIGNATURE)
    assert np.trapezoid(plot.data["tpr"], plot.data["fpr"]) == pytest.approx(plot.data["auroc"], abs=1e-12)
    with pytest.raises(ValueError, match="needs normal and anomalous images"):
        roc_curve([0.1, 0.2], [0, 0])


def test_pro_plot_area_is_the_aupro():
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[0, 4:12, 4:12] = 1
    masks[1, 20:30, 2:6] = 1
    maps = rng.random((4, 32, 32)) + 0.8 * masks
    reported = aupro(maps, masks)
    plot = pro_plot(pro_curve(maps, masks, max_fpr=0.3), 0.3, reported)
    assert plot.data["fpr"][-1] == pytest.approx(0.3)
    assert np.trapezoid(plot.data["pro"], plot.data["fpr"]) / 0.3 == pytest.approx(reported, abs=1e-9)


def test_histogram_counts_are_the_test_sets():
    rng = np.random.default_rng(2)
    scores = rng.random(50)
    anomalous = rng.random(50) < 0.5
    plot = score_histogram(scores, anomalous, threshold=1.5)
    edges = plot.data["edges"]
    assert edges[-1] >= 1.5  # the threshold line lies on the plotted range
    assert plot.data["normal"].sum() == (~anomalous).sum() and plot.data["anomalous"].sum() == anomalous.sum()
    assert np.array_equal(plot.data["normal"], np.histogram(scores[~anomalous], edges)[0])
    assert np.array_equal(plot.data["anomalous"], np.histogram(scores[anomalous], edges)[0])


def test_confusion_matrix_counts_each_decision_once():
    anomalous = np.array([0, 0, 0, 1, 1, 1, 1], bool)
    flagged = np.array([0, 1, 0, 1, 1, 0, 1], bool)
    matrix = confusion_plot(anomalous, flagged, 0.5).data["matrix"]
    assert matrix.tolist() == [[2, 1], [1, 3]]


def test_loss_plot_draws_each_logged_curve():
    plot = loss_plot({"train_loss": [(0, 0.7), (1, 0.5)], "val_loss": [(0, 0.8)]})
    assert plot.png.startswith(PNG_SIGNATURE) and plot.data["curves"]["train_loss"] == [(0, 0.7), (1, 0.5)]
