"""``nsad report``: one self-contained HTML page that shows where a run's numbers come from.

For a run folder: the run's settings, threshold and colour scale; the metrics overall and per
defect type with the paper's figures beside them (MVTec AD categories); image ROC, PRO curve to
FPR 0.3, score histogram with the threshold, confusion matrix and training loss (matplotlib); and
every test image, worst first (missed defects, false alarms, then by score), with its heatmap on
the run's fixed scale, the predicted regions outlined in white and the ground truth in magenta.

For a ``nsad compare`` folder: the comparison table and one row of heatmaps per method.

Everything is inline (data URIs); the page loads no script, font or network resource.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nsad.data.folder import Sample, read_sample_mask
from nsad.data.io import read_image
from nsad.data.transforms import FrameConfig, describe_geometry
from nsad.metrics import pro_curve, roc_curve
from nsad.metrics.published import published_result
from nsad.models.runfile import read_metadata
from nsad.pipeline.evaluate import REPORT_FILE, TestSetScores, metrics_of, score_test_set
from nsad.pipeline.scoring import Scorer
from nsad.viz import HeatmapScale, heatmap_figure, run_scale, to_display
from nsad.viz.html import escape, image_uri, img, page, table
from nsad.viz.plots import Plot, confusion_plot, loss_plot, pro_plot, roc_plot, score_histogram

FPR_LIMIT = 0.3
GALLERY_PX = 300
"""Longest side of each image panel in the gallery (the heatmap PNGs of ``nsad predict`` keep the original size)."""
GALLERY_JPEG_QUALITY = 85
METRIC_COLUMNS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AU-PRO@0.3",
                  "image_f1_max": "image F1-max", "pixel_f1_max": "pixel F1-max"}
PAPER = "Schlüter et al. 2022"
COMPARISON_CSV, COMPARISON_FIGURE = "comparison.csv", "heatmaps.png"


@dataclass(frozen=True)
class GalleryEntry:
    """One test image in the gallery.

    Attributes:
        sample: the test sample.
        score: its image score.
        outcome: ``fn`` (missed defect), ``fp`` (false alarm), ``tp``, ``tn``, or ``""`` without a threshold.
    """

    sample: Sample
    score: float
    outcome: str


OUTCOME_WORDS = {"fn": "missed defect", "fp": "false alarm", "tp": "defect found", "tn": "normal, passed", "": ""}


def gallery_order(samples: Sequence[Sample], scores: np.ndarray, threshold: float | None) -> list[GalleryEntry]:
    """Test images worst first: missed defects (lowest score first), false alarms (highest first), the rest.

    The rest follow by decreasing score; without a threshold all images are ordered by decreasing score.
    """
    entries = []
    for sample, score in zip(samples, scores, strict=True):
        outcome = ""
        if threshold is not None:
            flagged = score >= threshold
            outcome = ("tp" if flagged else "fn") if sample.is_anomalous else ("fp" if flagged else "tn")
        entries.append(GalleryEntry(sample, float(score), outcome))
    rank = {"fn": 0, "fp": 1}
    return sorted(entries, key=lambda e: (rank.get(e.outcome, 2), e.score if e.outcome == "fn" else -e.score))


def training_losses(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Loss per epoch from the run's CSV logs (``logs/version_N/metrics.csv``, later versions win).

    Returns:
        ``{"train_loss": [(epoch, loss), ...], "val_loss": [...]}`` for the columns present
        (Lightning's ``train_loss_epoch`` and ``val_loss``), sorted by epoch.
    """
    columns = {"train_loss_epoch": "train_loss", "val_loss": "val_loss"}
    curves: dict[str, dict[int, float]] = {}
    versions = sorted((run / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in versions:
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                for column, name in columns.items():
                    if row.get(column) and row.get("epoch"):
                        curves.setdefault(name, {})[int(float(row["epoch"]))] = float(row[column])
    return {name: sorted(points.items()) for name, points in curves.items() if points}


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded (run trained before nsad recorded it)"
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def run_section(scorer: Scorer, scale: HeatmapScale) -> str:
    """The run's settings as a table: method, preset and values, geometry, training, threshold, scale."""
    meta = scorer.metadata
    training = meta.training
    transform = scorer.transform
    if isinstance(transform, FrameConfig):
        height, width = transform.frame_hw
        geometry = (f"{describe_geometry(transform)}; {meta.in_channels} channel(s), {scorer.normalization} "
                    f"normalisation; metrics in the {width} x {height} frame")
    else:
        crop = "" if transform.kind == "texture" else f", centre crop {transform.input_size} px seen by the network"
        geometry = (f"{transform.kind}: resized to {transform.resize} px{crop}"
                    f"; {meta.in_channels} channel(s), {scorer.normalization} normalisation; metrics in the "
                    f"{transform.resize}-px frame")
    if meta.threshold is None:
        threshold = "none calibrated (no held-out images): decisions are not shown"
    else:
        held = training.get("holdout_images", "?")
        threshold = (f"{meta.threshold:.6g}: image score ≥ threshold is anomalous; set on {held} held-out normal "
                     f"training images to flag at most {training.get('target_fpr', float('nan')):.1%} of them")
    epochs = f"{training.get('epochs_run', training.get('epochs', '?'))} of {training.get('epochs', '?')}"
    rows = [
        ("method", f"{meta.method} ({meta.model}; synthetic task {training.get('task', '?')})"),
        ("preset", meta.preset),
        ("geometry", geometry),
        ("image score", meta.score_rule if scorer.score_rule == meta.score_rule
         else f"{scorer.score_rule} (run's own: {meta.score_rule})"),
        ("epochs", epochs),
        ("training", f"{_duration(training.get('train_seconds'))}; {training.get('train_images', '?')} images, "
                     f"batch {training.get('batch_size', '?')}, {training.get('precision', '?')}, "
                     f"seed {training.get('seed', '?')}, {training.get('steps', '?')} steps"),
        ("threshold", threshold),
        ("heatmap scale", f"{scale.low:.4g} (blue) to {scale.high:.4g} (red); regions above "
                          f"{'–' if scale.region_threshold is None else f'{scale.region_threshold:.4g}'}"
                          f" (≥ {scale.region_min_area} px at {scale.frame_side} px); {scale.basis}"),
        ("data", training.get("data", "?")),
        ("versions", f"nsad {meta.nsad_version}, torch {meta.torch_version}"),
    ]
    preset_rows = [(key, json.dumps(value)) for key, value in meta.preset_values.items()]
    return ("<h2>Run</h2>" + table(None, rows, numeric_from=99, class_="run") +
            f"<details><summary>preset {escape(meta.preset)}: its values</summary>"
            f"{table(['setting', 'value'], preset_rows, numeric_from=99)}</details>")


def metrics_section(test: TestSetScores, by_type: Mapping[str, Mapping[str, float]], method: str,
                    threshold: float | None) -> str:
    """Metrics overall and per defect type, images found at the threshold, and the paper's row."""
    columns = [key for key in METRIC_COLUMNS if key in by_type["all"]]
    types = np.array(test.defect_types)
    flagged = None if threshold is None else test.scores >= threshold
    normal = types == "good"

    def found(rows: np.ndarray) -> str:
        if flagged is None:
            return "–"
        return f"{int(flagged[rows].sum())} / {int(rows.sum())}"

    header = ["defect type", "images", *(METRIC_COLUMNS[c] for c in columns), "flagged at threshold"]
    rows, classes = [], []
    for name, values in by_type.items():
        rows_of = (~normal) if name == "all" else (types == name)
        rows.append([name if name != "all" else "all defects", int(rows_of.sum()),
                     *(_percent(values.get(c)) for c in columns), found(rows_of)])
        classes.append("all" if name == "all" else "type")
    rows.append(["good (normal)", int(normal.sum()), *("" for _ in columns), found(normal)])
    classes.append("normal")
    paper = published_result(method, test.layout.category)
    note = ""
    if paper:
        rows.insert(len(rows) - 1, [f"paper: {method} on {test.layout.category}", "", *(
            _percent(paper.get(c)) for c in columns), ""])
        classes.insert(len(classes) - 1, "paper")
        note = (f"<p class='note'>Paper: {PAPER} (ECCV), Tables 1–2 (image and pixel AUROC), and its arXiv version, "
                "Table 5 (AU-PRO); mean of 5 seeds after the full training. Per defect type: that type's images "
                "against all normal ones.</p>")
    return ("<h2>Metrics (%)</h2>" +
            table(header, rows, row_classes=classes, id="metrics") + note)


def plots_of(test: TestSetScores, by_type: Mapping[str, Mapping[str, float]], threshold: float | None,
             losses: Mapping[str, list[tuple[int, float]]]) -> list[Plot]:
    """The report's plots from the scored test set, its metrics and the training logs."""
    anomalous = test.anomalous
    overall = by_type["all"]
    plots = []
    if anomalous.any() and (~anomalous).any():
        plots.append(roc_plot(roc_curve(test.scores, anomalous), overall["image_auroc"]))
    if test.masks is not None and test.masks.any():
        plots.append(pro_plot(pro_curve(test.maps, test.masks, max_fpr=FPR_LIMIT), FPR_LIMIT, overall["aupro"]))
    plots.append(score_histogram(test.scores, anomalous, threshold))
    if threshold is not None:
        plots.append(confusion_plot(anomalous, test.scores >= threshold, threshold))
    if losses:
        plots.append(loss_plot(losses))
    return plots


def _display_shape(shape: Sequence[int]) -> tuple[int, int]:
    factor = min(1.0, GALLERY_PX / max(shape[:2]))
    return max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))


def gallery_figure(sample: Sample, framed_map: np.ndarray, scale: HeatmapScale) -> np.ndarray:
    """One gallery picture: the image with the ground truth, its heatmap with regions and truth, the colour bar."""
    image = to_display(read_image(sample.path))
    height, width = _display_shape(image.shape)
    shown = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    anomaly_map = cv2.resize(framed_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    truth = read_sample_mask(sample, (height, width)) if sample.mask_path is not None else None
    return heatmap_figure(shown, anomaly_map, scale, truth)


def gallery_section(test: TestSetScores, scale: HeatmapScale, threshold: float | None) -> str:
    """Every test image, worst first, as a figure with its score and decision."""
    index = {id(sample): i for i, sample in enumerate(test.layout.test)}
    entries = gallery_order(test.layout.test, test.scores, threshold)
    items = []
    for entry in entries:
        sample = entry.sample
        figure = gallery_figure(sample, test.maps[index[id(sample)]], scale)
        name = f"{sample.path.parent.name}/{sample.path.name}"
        decision = "" if threshold is None else ("anomalous" if entry.score >= threshold else "normal")
        caption = (f"<b>{escape(name)}</b> · score {entry.score:.5g}" +
                   (f" · decision <b>{decision}</b> · {OUTCOME_WORDS[entry.outcome]}" if decision else ""))
        items.append(f'<figure class="entry {entry.outcome}" data-file="{escape(name)}" data-outcome="{entry.outcome}">'
                     f"{img(image_uri(figure, GALLERY_JPEG_QUALITY), name)}<figcaption>{caption}</figcaption></figure>")
    counts = {key: sum(e.outcome == key for e in entries) for key in ("fn", "fp")}
    legend = ("<p class='legend'>Each entry: the image with the ground truth outlined in <span style='color:#c0c'>"
              "magenta</span>; the heatmap on the run's fixed scale with the predicted regions outlined in "
              "<b>white</b> (pixels above the region threshold) and the ground truth in magenta; the colour bar with "
              "the region threshold marked. Frames: <span style='border:3px solid #d62728'>missed defect</span>"
              "<span style='border:3px solid #ff7f0e'>false alarm</span><span style='border:3px solid #9c9'>"
              "right</span></p>")
    summary = "" if threshold is None else (
        f"<p>{counts['fn']} missed defect(s) and {counts['fp']} false alarm(s) at the threshold come first.</p>")
    return (f"<h2>Test images ({len(entries)}), worst first</h2>{summary}{legend}"
            f"<div class='gallery' id='gallery'>{''.join(items)}</div>")


def render_run_report(scorer: Scorer, test: TestSetScores, run: Path) -> str:
    """The HTML page of one run from its scorer and scored test set."""
    meta = scorer.metadata
    threshold = meta.threshold
    by_type = metrics_of(test)
    by_type = {**{k: v for k, v in by_type.items() if k != "all"}, "all": by_type["all"]}
    scale = run_scale(meta.heatmap_scale, meta.label_kind, scorer.input_window(test.maps), scorer.transform.resize)
    plots = plots_of(test, by_type, threshold, training_losses(run))
    plot_html = "".join(f"<figure>{img(image_uri(_decode_png(p.png)), p.title)}</figure>" for p in plots)
    title = f"nsad report: {meta.method} on {test.layout.category}"
    body = (f"<h1>{escape(title)}</h1><p class='note'>Run <code>{escape(run)}</code>; {len(test.layout.test)} test "
            f"images from <code>{escape(test.layout.root)}</code>; written {time.strftime('%Y-%m-%d %H:%M')}.</p>" +
            run_section(scorer, scale) + metrics_section(test, by_type, meta.method, threshold) +
            f"<h2>Plots</h2><div class='plots'>{plot_html}</div>" + gallery_section(test, scale, threshold))
    return page(title, body)


def _decode_png(png: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def is_comparison(folder: Path) -> bool:
    """Whether ``folder`` is a ``nsad compare`` output (it holds ``comparison.csv``)."""
    return (Path(folder) / COMPARISON_CSV).is_file()


def render_comparison_report(folder: Path, device: str | None = None) -> str:
    """The HTML page of a ``nsad compare`` folder: its table and one row of heatmaps per method."""
    from nsad.pipeline.compare import heatmap_rows  # compare builds on train; a report needs no training code

    with open(folder / COMPARISON_CSV, newline="") as file:
        rows = list(csv.DictReader(file))
    header = ["method", "seeds", "image AUROC", "pixel AUROC", "AU-PRO@0.3", "training (min/run)", "image score"]
    cells = []
    for row in rows:
        cells.append([row["method"], row["seeds"], *(
            f"{100 * float(row[f'{key}_mean']):.1f} ± {_sem(row[f'{key}_sem'])}" for key in
            ("image_auroc", "pixel_auroc", "aupro")), row["train_minutes"], row["score_rule"]])
    methods = [row["method"] for row in rows]
    runs = [next(p for p in sorted((folder / m).glob("seed*")) if (p / "run.json").is_file()) for m in methods]
    config = json.loads((runs[0] / "config.json").read_text())
    figure = heatmap_rows(runs, methods, config["data"], config.get("category"), 5, device)
    title = f"nsad compare: {config['category']}"
    body = (f"<h1>{escape(title)}</h1><p class='note'>Folder <code>{escape(folder)}</code>; mean ± standard error "
            f"over the seeds, in %; data <code>{escape(config['data'])}</code>, {config['epochs']} epochs, image size "
            f"{config['image_size']}.</p>" + table(header, cells, id="comparison") +
            "<h2>Heatmaps: one row per method (its first seed), each on its run's own scale</h2>"
            f"<p class='legend'>Top row: the images with the ground truth in magenta; below, each method's heatmap "
            f"with its predicted regions in white and its colour bar.</p>"
            f"<figure>{img(image_uri(figure), 'heatmaps per method')}</figure>")
    return page(title, body)


def _sem(text: str) -> str:
    value = float(text)
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def default_report_path(run: Path, data: str | Path | None) -> Path:
    """``run/report.html`` for the run's own test data; else the first of ``report-2.html``, ... that is free."""
    trained_on = None if is_comparison(run) or data is None else read_metadata(run).training.get("data")
    if trained_on is None or Path(data).resolve() == Path(trained_on).resolve():
        return run / REPORT_FILE
    stem, suffix = Path(REPORT_FILE).stem, Path(REPORT_FILE).suffix
    return next(path for n in range(2, 1_000_000) if not (path := run / f"{stem}-{n}{suffix}").exists())


def write_report(run: str | Path, data: str | Path | None = None, category: str | None = None,
                 out: str | Path | None = None, device: str | None = None, scorer: Scorer | None = None,
                 test: TestSetScores | None = None) -> Path:
    """Write the report of a run folder or a ``nsad compare`` folder; return its path.

    Args:
        run: a run folder (``nsad train``) or a comparison folder (``nsad compare``).
        data: test data (default: the data the run was trained on); run folders only.
        category: category folder inside ``data``.
        out: the HTML file (default :func:`default_report_path`: ``RUN/report.html``, or for other
            data than the run's the first free ``RUN/report-N.html``, so the run's own report stays).
        device: torch device for scoring.
        scorer: an already loaded scorer of ``run`` (``nsad evaluate`` passes it and ``test``, so the
            images are scored once).
        test: ``scorer``'s scored test set.

    Raises:
        FileNotFoundError, ValueError: for a folder that is neither a run nor a comparison, or
            unreadable data (the message names the file).
    """
    run = Path(run)
    out = default_report_path(run, data) if out is None else Path(out)
    if is_comparison(run):
        text = render_comparison_report(run, device)
    else:
        scorer = scorer or Scorer(run, device=device)
        test = test or score_test_set(scorer, data, category)
        text = render_run_report(scorer, test, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(out)
    return out
