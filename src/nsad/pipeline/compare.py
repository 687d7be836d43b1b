"""``nsad compare``: train several methods over several seeds under one budget and tabulate them.

Every method x seed is trained with the same settings (data, image size, epochs, batch size...)
into ``OUT/<method>/seed<k>``, evaluated with ``nsad evaluate``'s metrics, and summarised in the
papers' form: image AUROC, pixel AUROC and AU-PRO (up to FPR 0.3) as mean ± standard deviation
over the seeds, the standard error beside it (NSA paper, Tables 1-2: the text says standard
error, the authors' evaluation code computes the standard deviation). Outputs:

- ``OUT/comparison.md``: the table in Markdown, with the settings it was made under;
- ``OUT/comparison.csv``: the same numbers as fractions (mean, std and sem per metric), one row per method;
- ``OUT/heatmaps.png``: the same few test images (the first of each defect type and a normal
  one) with the ground truth, then one row of heatmaps per method (its first seed's run).

A run whose folder holds ``compare.json`` (written when its training finished) is not trained
again and its ``metrics.json`` is reused, so an interrupted comparison continues where it stopped;
a run interrupted during training resumes from its last checkpoint. A run trained with other
settings (epochs, image size, options...) is an error, not silently reused.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nsad._checks import check_choice
from nsad.data.folder import Sample, find_dataset, read_sample_mask
from nsad.data.io import read_image, write_image
from nsad.metrics import MeanSem, mean_sem
from nsad.pipeline.evaluate import METRICS_FILE, evaluate_run
from nsad.pipeline.methods import METHODS
from nsad.pipeline.scoring import Scorer
from nsad.pipeline.train import ALL_METHODS, CHECKPOINT, TrainConfig, train
from nsad.variants import DEFAULT_VARIANT
from nsad.viz import TRUTH_COLOUR, colour_bar, draw_outlines, grid, heatmap_overlay, run_scale, to_display

COLUMNS: dict[str, str] = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AU-PRO"}
"""Metric key -> column title, in table order."""
TABLE_MD, TABLE_CSV, FIGURE = "comparison.md", "comparison.csv", "heatmaps.png"
DONE_FILE = "compare.json"
"""Written into a run folder when its training has finished: the run is complete."""
_TRAIN_FILES = {"config.json", "logs", "checkpoints"}
"""What ``nsad train`` writes before the first checkpoint; such a folder is restarted."""
SETTINGS: tuple[str, ...] = (
    "data",
    "method",
    "seed",
    "batch_size",
    "image_size",
    "lr",
    "lr_min",
    "holdout",
    "target_fpr",
    "score_rule",
    "examples_per_epoch",
    "options",
    "variant",
    "protocol",
    "tile",
    "tile_overlap",
    "train_window",
    "intensity_jitter",
    "standardize_input",
)
"""``TrainConfig`` fields that must match for a finished run to be reused."""
MIN_TILE_PX = 192
"""Smallest side of an image in ``heatmaps.png`` (smaller frames are enlarged to stay readable)."""


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        out: the output folder.
        metrics: ``{method: [metrics of each seed]}`` (``evaluate_run``'s ``metrics``, fractions).
        table: ``{method: {metric: MeanSem}}`` over the seeds, metrics as in :data:`COLUMNS`.
        train_seconds: ``{method: [wall seconds of each seed's training]}`` (NaN for a run
            resumed or trained by an earlier call).
        score_rules: ``{method: image score rule of its runs}``.
    """

    out: Path
    metrics: dict[str, list[dict]]
    table: dict[str, dict[str, MeanSem]]
    train_seconds: dict[str, list[float]]
    score_rules: dict[str, str]


def run_folder(out: str | Path, method: str, seed: int) -> Path:
    """Where :func:`compare` puts the run of ``method`` with ``seed``: ``OUT/<method>/seed<k>``."""
    return Path(out) / method / f"seed{seed}"


def split_options(options: Mapping[str, Any], methods: Sequence[str]) -> dict[str, dict]:
    """Give each method the ``options`` it accepts.

    Raises:
        ValueError: for an option no method in ``methods`` accepts.
    """
    accepted = {method: set(METHODS[method].option_names()) if method in METHODS else set() for method in methods}
    unused = sorted(set(options) - set().union(*accepted.values()))
    if unused:
        takers = {m: sorted(accepted[m]) for m in methods if accepted[m]}
        raise ValueError(
            f"option {unused[0]!r} is accepted by none of the methods {list(methods)}; "
            f"options by method: {takers or 'none take options'}"
        )
    return {method: {k: v for k, v in options.items() if k in accepted[method]} for method in methods}


def _check_lists(methods: Sequence[str], seeds: Sequence[int]) -> None:
    if len(methods) == 0 or len(seeds) == 0:
        raise ValueError(
            f"compare needs at least one method and one seed, got methods={list(methods)}, seeds={list(seeds)}"
        )
    for name, values in (("methods", methods), ("seeds", seeds)):
        repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
        if repeated:
            raise ValueError(f"{name} are repeated: {repeated}")
    for method in methods:
        check_choice("method", method, ALL_METHODS)


def check_same_settings(folder: Path, config: TrainConfig) -> None:
    """Refuse to reuse or resume a run in ``folder`` that was trained with other settings than ``config``.

    The settings that change a model (:data:`SETTINGS`) are compared with the run's ``config.json``;
    ``category``, ``epochs`` and ``preset`` only when ``config`` names them (the file holds the
    resolved values).

    Raises:
        ValueError: listing each setting that differs, with both values.
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        return
    saved = {"variant": DEFAULT_VARIANT, **json.loads(path.read_text())}  # runs from before --variant: paper
    wanted = json.loads(
        json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()})
    )
    names = [*SETTINGS, *(name for name in ("category", "epochs", "preset") if wanted[name] is not None)]
    differ = [
        f"{name}: {saved.get(name)!r} there, {wanted[name]!r} now" for name in names if saved.get(name) != wanted[name]
    ]
    if differ:
        raise ValueError(
            f"{folder} holds a run trained with other settings ({'; '.join(differ)}); choose another "
            "--out or remove that folder"
        )


def ensure_trained(config: TrainConfig) -> float:
    """Train ``config``'s run unless it is complete; resume it when it has a checkpoint.

    Returns:
        The training's wall seconds, NaN when nothing was trained or a run was resumed.

    Raises:
        FileExistsError: if the folder holds other files than an unfinished run's.
        ValueError: if the folder holds a run trained with other settings (:func:`check_same_settings`).
    """
    folder = Path(config.out)
    finished = (folder / DONE_FILE).is_file()
    resume = not finished and (folder / "checkpoints" / CHECKPOINT).is_file()
    if finished or resume:
        check_same_settings(folder, config)
    if finished:
        return float("nan")
    if not resume and folder.is_dir() and any(folder.iterdir()):
        names = {path.name for path in folder.iterdir()}
        if not names <= _TRAIN_FILES:
            raise FileExistsError(
                f"{folder} holds {sorted(names - _TRAIN_FILES)}, which nsad compare did not "
                "write; move them or choose another --out"
            )
        for name in names:  # an unfinished run without a checkpoint: start it again
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    start = time.perf_counter()
    train(dataclasses.replace(config, resume=resume))
    seconds = time.perf_counter() - start
    (folder / DONE_FILE).write_text(
        json.dumps(
            {
                "method": config.method,
                "seed": config.seed,
                "train_seconds": None if resume else seconds,
                "resumed": resume,
            }
        )
    )
    return float("nan") if resume else seconds


def _read_metrics(folder: Path, device: str | None) -> dict:
    path = folder / METRICS_FILE
    if path.is_file():
        report = json.loads(path.read_text())
    else:
        report = evaluate_run(folder, device=device)
    return {key: float("nan") if value is None else float(value) for key, value in report["metrics"].items()}


def _train_seconds(folder: Path) -> float:
    value = json.loads((folder / DONE_FILE).read_text()).get("train_seconds")
    return float("nan") if value is None else float(value)


def compare(
    base: TrainConfig,
    methods: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    options: Mapping[str, Any] | None = None,
    heatmap_images: int = 4,
    device: str | None = None,
) -> Comparison:
    """Train and evaluate every method x seed with ``base``'s settings; write the table and figure.

    Args:
        base: the shared settings (its ``method``, ``seed``, ``out``, ``resume`` and ``options``
            are replaced per run).
        methods: method names (see :data:`~nsad.pipeline.train.ALL_METHODS`).
        seeds: seeds; each method is trained once per seed.
        out: the output folder.
        options: method options; each method gets those it accepts (default: ``base.options``).
        heatmap_images: test images in ``heatmaps.png`` (0 for no figure).
        device: torch device for evaluation and heatmaps (default: CUDA if available).

    Returns:
        The :class:`Comparison`; the files are written to ``out``.

    Raises:
        ValueError: for unknown or repeated methods or seeds, an option no method accepts, or
            ``heatmap_images < 0``; and as ``nsad train`` and ``nsad evaluate`` do.
    """
    _check_lists(methods, seeds)
    if heatmap_images < 0:
        raise ValueError(f"heatmap_images must be >= 0, got {heatmap_images}")
    out = Path(out)
    options = split_options(base.options if options is None else options, methods)
    metrics: dict[str, list[dict]] = {}
    seconds: dict[str, list[float]] = {}
    total, done = len(methods) * len(seeds), 0
    for method in methods:
        metrics[method], seconds[method] = [], []
        for seed in seeds:
            done += 1
            folder = run_folder(out, method, seed)
            print(f"nsad compare: [{done}/{total}] {method}, seed {seed} -> {folder}")
            ensure_trained(
                dataclasses.replace(base, method=method, seed=seed, out=folder, options=options[method], resume=False)
            )
            metrics[method].append(_read_metrics(folder, device))
            seconds[method].append(_train_seconds(folder))
    table = {
        method: {key: mean_sem([run.get(key, float("nan")) for run in metrics[method]]) for key in COLUMNS}
        for method in methods
    }
    rules = {
        method: json.loads((run_folder(out, method, seeds[0]) / "run.json").read_text())["score_rule"]
        for method in methods
    }
    result = Comparison(out, metrics, table, seconds, rules)
    write_tables(result, base, seeds)
    if heatmap_images:
        write_heatmaps(
            out / FIGURE,
            [run_folder(out, method, seeds[0]) for method in methods],
            list(methods),
            base.data,
            base.category,
            heatmap_images,
            device,
        )
    print(
        f"nsad compare: wrote {out / TABLE_MD}, {out / TABLE_CSV}" + (f" and {out / FIGURE}" if heatmap_images else "")
    )
    return result


def _minutes(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) / 60 if finite else float("nan")


def markdown_table(result: Comparison) -> str:
    """The comparison as a Markdown table, one row per method: mean ± standard deviation (se: standard error), in %."""
    lines = [
        "| method | " + " | ".join(COLUMNS.values()) + " | training (min/run) | image score |",
        "|---|" + "---|" * (len(COLUMNS) + 2),
    ]
    for method, row in result.table.items():
        minutes = _minutes(result.train_seconds[method])
        cells = [row[key].format(spread="std+sem") for key in COLUMNS]
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {'n/a' if math.isnan(minutes) else f'{minutes:.1f}'}"
            f" | {result.score_rules[method]} |"
        )
    return "\n".join(lines)


def write_tables(result: Comparison, base: TrainConfig, seeds: Sequence[int]) -> None:
    """Write ``comparison.md`` (with the settings) and ``comparison.csv`` (fractions) into ``result.out``."""
    settings = json.loads((run_folder(result.out, next(iter(result.table)), seeds[0]) / "config.json").read_text())
    header = (
        f"# nsad compare: {settings['category']}\n\n"
        f"Data `{settings['data']}`; {settings['train_images']} training and {settings['holdout_images']} "
        f"held-out normal images; image size {base.image_size}, {settings['epochs']} epochs, batch "
        f"{base.batch_size}; variant {base.variant}; seeds {', '.join(map(str, seeds))}. Mean ± standard deviation "
        f"over the seeds (ddof 1), the standard error in brackets (se), in %; AU-PRO up to FPR 0.3. Training time "
        f"is wall time per run on this machine.\n\n"
    )
    (result.out / TABLE_MD).write_text(header + markdown_table(result) + "\n")
    with open(result.out / TABLE_CSV, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "method",
                "seeds",
                *(f"{key}_{part}" for key in COLUMNS for part in ("mean", "std", "sem")),
                "train_minutes",
                "score_rule",
            ]
        )
        for method, row in result.table.items():
            values = [f"{getattr(row[key], part):.6f}" for key in COLUMNS for part in ("mean", "std", "sem")]
            writer.writerow(
                [
                    method,
                    len(seeds),
                    *values,
                    f"{_minutes(result.train_seconds[method]):.3f}",
                    result.score_rules[method],
                ]
            )


def pick_heatmap_samples(samples: Sequence[Sample], count: int) -> list[Sample]:
    """The first image of each defect type (sorted by name) and the first normal one, ``count`` in all.

    With fewer defect types than ``count - 1``, more anomalous images fill the rest, in order.
    """
    anomalous = [s for s in samples if s.is_anomalous]
    normal = [s for s in samples if not s.is_anomalous]
    firsts = {s.defect_type: s for s in reversed(anomalous)}
    chosen = [firsts[name] for name in sorted(firsts)][: max(0, count - (1 if normal else 0))]
    chosen += [s for s in anomalous if s not in chosen][: max(0, count - len(chosen) - (1 if normal else 0))]
    return (chosen + normal[:1])[:count]


def _label_tile(text: str, side: int) -> np.ndarray:
    tile = np.full((side, side, 3), 255, np.uint8)
    scale = min(0.5, 0.9 * side / max(1, 9 * len(text)))
    for row, line in enumerate(text.split("\n")):
        cv2.putText(
            tile,
            line,
            (4, side // 2 + int(row * 28 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return tile


def write_heatmaps(
    path: Path,
    runs: Sequence[Path],
    labels: Sequence[str],
    data: str | Path,
    category: str | None,
    count: int,
    device: str | None = None,
) -> np.ndarray:
    """Write :func:`heatmap_rows`'s figure to ``path`` and return it."""
    figure = heatmap_rows(runs, labels, data, category, count, device)
    write_image(path, figure)
    return figure


def heatmap_rows(
    runs: Sequence[Path],
    labels: Sequence[str],
    data: str | Path,
    category: str | None,
    count: int,
    device: str | None = None,
) -> np.ndarray:
    """One figure: the chosen test images with the ground truth outlined, then one row of heatmaps per run.

    Each row is coloured on its run's own scale (:mod:`nsad.viz.scale`, fixed at training from the
    held-out normal maps), with the predicted regions outlined and the colour bar at its end, so
    methods whose scores have different units can be compared by eye.

    Returns:
        The figure, (H, W, 3) uint8.

    Raises:
        ValueError: if the data has no test images.
    """
    samples = pick_heatmap_samples(find_dataset(data, category).test, count)
    if not samples:
        raise ValueError(f"no test images in {data} to draw heatmaps on")
    scorers = [Scorer(run, device=device) for run in runs]
    side = max(MIN_TILE_PX, scorers[0].transform.resize)

    def shown(array: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.resize(array, (side, side), interpolation=interpolation)

    images = [shown(to_display(read_image(s.path)), cv2.INTER_AREA) for s in samples]
    masks = [read_sample_mask(sample, side) for sample in samples]
    top_row = [_label_tile("image,\nground truth", side)]
    top_row += [draw_outlines(image, mask, TRUTH_COLOUR) for image, mask in zip(images, masks, strict=True)]
    rows = [top_row]
    for label, scorer in zip(labels, scorers, strict=True):
        maps = scorer.score([s.path for s in samples]).maps
        scale = run_scale(scorer.metadata.heatmap_scale, scorer.metadata.label_kind, scorer.input_window(maps),
                          scorer.transform.resize)
        heat = [heatmap_overlay(image, shown(m, cv2.INTER_LINEAR), scale, mask)
                for image, m, mask in zip(images, maps, masks, strict=True)]
        bar_tile = np.full((side, side, 3), 255, np.uint8)
        bar = colour_bar(side, scale)[:, :side]
        bar_tile[:, : bar.shape[1]] = bar
        rows.append([_label_tile(label, side), *heat, bar_tile])
    return grid(rows, titles=["", *(s.defect_type for s in samples), "scale"])

