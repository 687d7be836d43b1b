"""nsad export and nsad predict --model: the ONNX model gives what the torch run gives.

Bars (issue 10): maps within 1e-4 (max absolute difference), image scores within 1e-5 relative,
identical decisions and defect regions. CutPaste's image score is a Mahalanobis distance of
embeddings that, in these one-epoch runs, are of the order of 1e7, so float32 rounding of the
embedding alone moves it by up to 4e-4 relative (torch's own float32 against float64); its
scores are held to 1e-4 relative here.
"""

import csv
import json

import numpy as np
import onnx
import pytest

from nsad.cli import main
from nsad.data.folder import sample_data_path
from nsad.data.io import read_image
from nsad.deploy import Inferencer, read_spec
from nsad.deploy.spec import DeployFormatError
from nsad.models import load_run
from nsad.pipeline import predict
from nsad.pipeline.scoring import transform_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample():
    return sample_data_path()

RUNS = ("nsa-logistic", "cutpaste-3way", "ssae", "nsa-whole", "nsa-tiles")
"""The deployment test runs (tests/conftest.py's DEPLOY_RUNS): every model kind, the whole frame and tiles."""
MAP_ABS = 1e-4
SCORE_REL = {"nsa-logistic": 1e-5, "cutpaste-3way": 1e-4, "ssae": 1e-5, "nsa-whole": 1e-5, "nsa-tiles": 1e-5}


def _rows(folder):
    return {row["file"]: row for row in csv.DictReader(open(folder / "scores.csv"))}


def _level_between(values, margin):
    """The lowest level above the values' median with no value within ``margin`` of it (else the highest below)."""
    ordered = np.unique(values)
    gaps = np.diff(ordered)
    wide = np.flatnonzero(gaps > 2 * margin)
    assert wide.size, f"no gap of {2 * margin:g} between the values"
    above = wide[ordered[wide] >= np.median(values)]
    chosen = above[0] if above.size else wide[-1]
    return float(ordered[chosen] + gaps[chosen] / 2)


def check_parity(method, run, model, inputs, out):
    """predict --run and predict --model on ``inputs``: the bars of the module docstring."""
    torch_rows = predict(run, inputs, out / "torch")
    onnx_rows = predict(None, inputs, out / "onnx", model=model)
    assert [r["file"] for r in torch_rows] == [r["file"] for r in onnx_rows]
    names = [sorted(p.name for p in (out / side).iterdir()) for side in ("torch", "onnx")]
    assert names[0] == names[1]
    for a in torch_rows:  # the same heatmaps: the run's colour scale travels in deploy.json
        torch_heat, onnx_heat = (read_image(out / side / a["heatmap"]).astype(int) for side in ("torch", "onnx"))
        assert (np.abs(torch_heat - onnx_heat) > 1).mean() < 1e-3  # up to rounding at colour and outline edges
    maps, differences = [], []
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        map_a, map_b = np.load(out / "torch" / a["map"]), np.load(out / "onnx" / b["map"])
        assert map_a.shape == map_b.shape and map_b.dtype == np.float32
        differences.append(float(np.abs(map_a - map_b).max()))
        assert differences[-1] <= MAP_ABS
        assert b["score"] == pytest.approx(a["score"], rel=SCORE_REL[method], abs=1e-12)
        threshold = a["threshold"]
        if abs(a["score"] - threshold) > 2 * SCORE_REL[method] * abs(threshold):  # not a tie at float32 precision
            assert a["decision"] == b["decision"]
        maps.append(map_a)

    # Decisions at a threshold no score lies near (all anomalous when the scores are all equal) and
    # the regions of the anomalous images at a level no pixel of theirs lies near (10 times the
    # largest map difference): identical.
    scores = np.array([r["score"] for r in torch_rows])
    spread = np.ptp(scores) > 0
    threshold = (_level_between(scores, 2 * SCORE_REL[method] * float(np.abs(scores).max())) if spread
                 else float(scores.min()) - 1.0)
    flagged = [m for m, score in zip(maps, scores, strict=True) if score >= threshold]
    level = _level_between(np.concatenate([m.ravel() for m in flagged]), 10 * max(max(differences), 1e-7))
    rows, regions = [], []
    for name, source in (("torch", run), ("onnx", None)):
        rows.append([r["decision"] for r in predict(source, inputs, out / f"cut-{name}", threshold=threshold,
                                                    region_threshold=level, model=None if source else model)])
        regions.append(json.loads((out / f"cut-{name}" / "regions.json").read_text()))
    assert rows[0] == rows[1] and rows[0].count("anomalous") == len(flagged) >= 1
    assert not spread or "normal" in rows[0]
    assert regions[0].keys() == regions[1].keys()
    assert sum(len(v["regions"]) for v in regions[0].values()) >= 2
    for stem, entry in regions[0].items():
        got = regions[1][stem]["regions"]
        assert [(r["bbox"], r["area"]) for r in entry["regions"]] == [(r["bbox"], r["area"]) for r in got]
        for r, s in zip(entry["regions"], got, strict=True):
            assert s["peak"] == pytest.approx(r["peak"], abs=MAP_ABS)
            assert s["mean"] == pytest.approx(r["mean"], abs=MAP_ABS)
            assert r["peak"] >= level
    return max(differences)


@pytest.mark.parametrize("name", RUNS)
def test_predict_with_the_exported_model_matches_the_run(name, trained, exported, deploy_data, tmp_path):
    check_parity(name, trained(name), exported(name), [deploy_data(name) / "test"], tmp_path)


@pytest.mark.parametrize("name", RUNS)
def test_the_model_folder_says_what_the_runtime_needs(name, trained, exported):
    run, model = load_run(trained(name)).metadata, exported(name)
    spec = read_spec(model)
    assert spec.method == run.method and spec.model == run.model and spec.channels == 3
    whole = dict(run.geometry) or None
    assert spec.geometry == {"kind": run.preset_values["kind"], "resize_hw": list(run.resize_hw),
                             "crop_hw": run.crop_hw and list(run.crop_hw), "frame": whole}
    assert spec.transform == transform_of(run)  # the torch scorer's transform, from deploy.json's keys
    assert spec.score_rule == run.score_rule and spec.threshold == run.threshold
    assert spec.label_kind == run.label_kind and spec.heatmap_scale == run.heatmap_scale
    assert spec.threshold_calibration["holdout_images"] == run.training["holdout_images"] == 2
    assert spec.versions["opset"] >= 18 and spec.versions["export_check_max_rel_diff"] < 1e-3
    graph = onnx.load(model / "model.onnx")
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    input_hw = {"nsa-whole": [96, 160], "nsa-tiles": [96, 96]}[name] if whole else [run.crop_hw[0]] * 2
    assert whole is None or whole["frame_hw"] == ([96, 160] if name == "nsa-whole" else [96, 128])
    assert not dims[0].HasField("dim_value") and [d.dim_value for d in dims[1:]] == [3, *input_hw]  # dynamic batch
    weights = [t for t in graph.graph.initializer if int(np.prod(t.dims)) > 1]  # scalars: float64 statistics' eps
    assert weights and {t.data_type for t in weights} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    assert [o.name for o in graph.graph.output] == list(spec.outputs)
    if name == "cutpaste-3way":
        assert (model / "density.npz").is_file() and spec.cutpaste["patch_px"] == run.model_options["patch_px"]


def test_batches_give_what_single_images_give(exported, sample):
    inferencer = Inferencer(exported("nsa-logistic"))
    rng = np.random.default_rng(0)
    inputs = rng.random((3, *inferencer.input_shape), dtype=np.float32)
    batch, _ = inferencer.run_network(inputs)
    single = np.concatenate([inferencer.run_network(inputs[i:i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_export_and_predict_errors(trained, exported, tmp_path, capsys):
    assert main(["export", "--run", str(trained("nsa-logistic")), "--out", str(exported("nsa-logistic"))]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "deploy.json").write_text("{}")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"")
    with pytest.raises(DeployFormatError, match="deploy.json"):
        read_spec(tmp_path / "broken")
    with pytest.raises(ValueError, match="either a run folder"):
        predict(None, [tmp_path], tmp_path / "o")


def test_predict_command_with_the_model(exported, sample, tmp_path, capsys):
    out = tmp_path / "pred"
    argv = ["predict", "--model", str(exported("nsa-logistic")), str(sample / "test" / "good"), "--out", str(out),
            "--min-area", "3"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "3 images" in captured.out + captured.err
    assert set(_rows(out)) == {str(p) for p in sorted((sample / "test" / "good").glob("*.png"))}
    regions = json.loads((out / "regions.json").read_text())
    assert all(r["area"] >= 3 for entry in regions.values() for r in entry["regions"])
