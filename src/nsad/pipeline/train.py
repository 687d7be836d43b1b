"""``nsad train``: the paper's model and protocol (NSA paper, Sec. 4.1) on a folder of normal images.

Adam, batch 64, cosine annealing from 1e-3 to 1e-6 over the preset's epochs; synthetic examples
made on the fly by the method's task; Lightning runs the loop, the devices, mixed precision,
strategies such as ``ddp``, the progress bar, CSV logs and checkpoints (written atomically, at an
interval, at the end and on an interruption; ``resume=True`` continues from the last one). A
fraction of the normal images is held out to calibrate the decision threshold at a target false
positive rate and the heatmaps' colour scale (:func:`nsad.viz.fit_scale`); the test set is never
looked at.

Each method is one entry of :data:`nsad.pipeline.methods.METHODS` (the paper's encoder-decoder
on each synthetic task, CutPaste's classifier with its density estimators, Bauer's autoencoder):
it supplies its data, module and scoring options, and every method shares the rest: the loop,
checkpoints, the held-out threshold and the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from nsad.config import TrainConfig
from nsad.data.folder import find_dataset, image_size
from nsad.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameConfig,
    TransformConfig,
    describe_geometry,
)
from nsad.metrics import threshold_at_fpr
from nsad.models import RunMetadata, count_parameters, save_run
from nsad.pipeline._budget import BudgetPlan
from nsad.pipeline._checkpoint import AtomicCheckpointIO
from nsad.pipeline._runfolder import (
    check_out_folder,
    check_resume,
    create_run_folder,
    is_rank_zero,
    wait_for_run_folder,
    write_config,
)
from nsad.pipeline._sampling import EpochSampler, one_thread_for_loading
from nsad.pipeline.datasets import load_training_images
from nsad.pipeline.device_synth import collate_plans
from nsad.pipeline.methods import METHODS, Method, TrainSetup
from nsad.pipeline.scoring import Scorer
from nsad.synth.presets import Preset, resolve_preset
from nsad.viz.scale import fit_scale

SEGMENTATION_METHODS: dict[str, str] = {name: m.task for name, m in METHODS.items() if m.model == "anomaly-net"}
"""Methods that train the paper's encoder-decoder, with the synthetic task each one learns."""
VARIANT_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if "authors" in m.variants)
"""Methods with an ``authors`` variant: those whose synthetic task is NSA's."""

ALL_METHODS: tuple[str, ...] = tuple(METHODS)
"""Every method of ``nsad train``: the segmentation methods, CutPaste (two-stage) and Bauer's ``ssae``."""

CHECKPOINT = "last.ckpt"


class HoldoutWarning(UserWarning):
    """The held-out set is too small for the target false-positive rate."""


class CheckpointOnInterrupt(Callback):
    """Save the checkpoint when training stops on an exception or Ctrl-C, so ``--resume`` loses nothing.

    Nothing is saved before this start's first optimiser step (there is nothing new to keep; the
    caller removes what the start made). ``interrupted`` records a Ctrl-C, which Lightning turns
    into ``SystemExit(1)``; ``saved`` whether a checkpoint was written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.interrupted = False
        self.saved = False
        self.first_step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Note the step this start begins at (after a resume's restore)."""
        self.first_step = trainer.global_step

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Close the progress bar and save the checkpoint (after at least one step)."""
        self.interrupted = isinstance(exception, KeyboardInterrupt)
        bar = getattr(trainer.progress_bar_callback, "_train_progress_bar", None)
        if bar is not None:
            bar.close()  # end the bar's line, so the message below is not glued to it
        if self.first_step is None or trainer.global_step <= self.first_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole loop state, for --resume
        self.saved = True
        if trainer.is_global_zero:
            say(f"stopped ({type(exception).__name__}) after {trainer.global_step} steps; saved {self.path}; "
                "continue with --resume")


class StderrProgressBar(TQDMProgressBar):
    """Lightning's progress bar on stderr, with nsad's other messages (stdout is for results)."""

    def init_train_tqdm(self) -> Tqdm:
        """The training bar, drawn on stderr."""
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_train_tqdm()


def say(message: str) -> None:
    """Print one of ``nsad train``'s messages on stderr (results go to stdout)."""
    print(f"nsad train: {message}", file=sys.stderr, flush=True)


class _HideTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_HideTips())


def wanted_protocol(config: TrainConfig, preset: Preset) -> str:
    """The protocol a run asks for: ``--protocol`` when given, else ``paper`` for the ``mvtec/`` presets, ``whole``."""
    return config.protocol or ("paper" if preset.name.startswith("mvtec/") else "whole")


def choose_transform(config: TrainConfig, preset: Preset, train_paths: list[Path],
                     method: Method) -> TransformConfig | FrameConfig:
    """The run's geometry: the paper's square protocol, or the whole image at the data's aspect ratio.

    The whole-image frame follows the median (height, width) of the training images (read from
    their headers), see :meth:`FrameConfig.for_images`; ``train_window`` gives square training
    windows instead of 7/8 of each side.

    Raises:
        ValueError: for a tile or window that does not fit the images, or the whole protocol (a tile,
            a training window) asked of a method or preset that has only the paper's.
    """
    protocol = wanted_protocol(config, preset)
    if "whole" not in method.protocols:
        if config.protocol == "whole" or config.tile is not None or config.train_window is not None:
            raise ValueError(f"method {config.method!r} has the paper's protocol only (no whole frame, no tiles, "
                             "no training window)")
        protocol = "paper"
    if protocol == "paper":
        if config.train_window is not None:
            raise ValueError(f"--train-window is the whole protocol's; preset {preset.name} uses the paper's "
                             "protocol, whose crops are its own (--protocol whole for windows)")
        return TransformConfig.from_preset(preset, config.image_size, config.variant)
    sizes = np.array([image_size(path) for path in train_paths])
    typical = (int(np.median(sizes[:, 0])), int(np.median(sizes[:, 1])))
    return FrameConfig.for_images(typical, config.image_size, tile=config.tile, tile_overlap=config.tile_overlap,
                                  window=config.train_window, rotation_deg=preset.rotation_deg,
                                  grayscale=preset.channels == 1)


def holdout_warning(held_out: int, target_fpr: float) -> str | None:
    """Why a threshold from ``held_out`` normal images cannot give ``target_fpr``, or None when it can.

    With ``n`` images the calibrated false-positive rate moves in steps of ``1 / n``; a target below
    ``1 / n`` puts the threshold above every held-out score, and how far above normal images the
    next one falls is then unknown.
    """
    if held_out == 0 or target_fpr * held_out >= 1:
        return None
    needed = math.ceil(1 / target_fpr) if target_fpr > 0 else None
    return (f"only {held_out} held-out normal images: a false-positive rate below 1/{held_out} = "
            f"{1 / held_out:.1%} cannot be calibrated, so the threshold for {target_fpr:.1%} is set above all of "
            f"them and its real rate is unknown (it can be {1 / held_out:.1%} or more); "
            + (f"hold out at least {needed} images (--holdout) or " if needed else "")
            + f"target {1 / held_out:.2g} or more (--target-fpr)")


def split_holdout(paths: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Split normal images into training and held-out ones, reproducibly from ``seed``."""
    count = int(round(fraction * len(paths)))
    if fraction > 0 and len(paths) >= 4:
        count = max(1, count)
    if len(paths) - count < 1:
        count = 0
    order = np.random.default_rng([seed, 7919]).permutation(len(paths))
    held = sorted(order[:count].tolist())
    return [p for i, p in enumerate(paths) if i not in set(held)], [paths[i] for i in held]


def default_workers() -> int:
    """Loader processes: one per spare CPU core, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def default_precision(accelerator: str) -> str:
    """``bf16-mixed`` where a CUDA device will be used, else full precision."""
    uses_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if uses_cuda else "32-true"


def slow_precision_warning(precision: str, device_type: str, cpu_capability: str) -> str | None:
    """Why ``precision`` will be slow here, or None: bf16 on a CPU without AVX-512 has no native kernels.

    On such a CPU (``torch.backends.cpu.get_cpu_capability()`` ``AVX2`` or ``DEFAULT``) a
    bf16-mixed training step of the NSA network took 12.4x as long as a 32-true one on the quiet
    machine and 3.9x beside another training (``scripts/bench_model.py --size 224 --batch 8``,
    2-core AMD EPYC with AVX2: 18.1 s against 1.46 s per step quiet).

    Example:
        >>> slow_precision_warning("bf16-mixed", "cpu", "AVX512") is None
        True
    """
    if device_type != "cpu" or "bf16" not in precision or cpu_capability.startswith("AVX512"):
        return None
    return (f"precision {precision} on this CPU ({cpu_capability}: no AVX-512, so bf16 is emulated) trains 4x or more "
            "slower than 32-true, 12x on a quiet machine; use --precision 32-true (the CPU default)")


def train(config: TrainConfig) -> Path:
    """Train a model as ``config`` says and write the run folder; return its path.

    The run folder holds ``model.safetensors`` and ``run.json`` (see :mod:`nsad.models.runfile`),
    ``checkpoints/last.ckpt``, ``logs/version_N/metrics.csv`` (one version per start, so a resume
    keeps the earlier log) and ``config.json``.

    Raises:
        FileExistsError: if ``out`` already holds a run and ``resume`` is not set.
        FileNotFoundError: if ``resume`` is set and there is no checkpoint to resume from.
        ValueError: for bad data or settings (the message names the file or value).
    """
    out = Path(config.out)
    checkpoint = out / "checkpoints" / CHECKPOINT
    rank_zero = is_rank_zero()
    if rank_zero:
        check_out_folder(out, config.resume, checkpoint)
    layout = find_dataset(config.data, config.category, require_test=False)
    choice = resolve_preset(config.preset, layout.category, list(layout.train))
    overrides = {name: getattr(config, name) for name in ("intensity_jitter", "standardize_input")
                 if getattr(config, name) is not None}
    preset = choice.preset.replace(**overrides)
    if preset.intensity_jitter and config.synth_device == "batch":
        raise ValueError(f"preset {preset.name} jitters intensities in the loader's synthesis (intensity_jitter "
                         f"{preset.intensity_jitter:g}); drop --synth-on-device or set --intensity-jitter 0")
    epochs = config.epochs or preset.epochs
    train_paths, holdout_paths = split_holdout(list(layout.train), config.holdout, config.seed)
    workers = default_workers() if config.workers is None else config.workers
    settings = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()},
                "epochs": epochs, "preset": preset.name, "preset_values": _preset_values(preset),
                "category": layout.category,
                "data_folder": str(layout.root.resolve()),
                "train_images": len(train_paths), "holdout_images": len(holdout_paths), "workers": workers}
    if config.resume:
        check_resume(out, settings)
    method = METHODS[config.method]
    train_paths, holdout_paths = split_holdout(list(layout.train), config.holdout, config.seed)
    transform = choose_transform(config, preset, train_paths, method)
    images = load_training_images(train_paths, transform)
    setup = TrainSetup(config.method, config.options, preset, transform, images, train_paths, config.seed,
                       config.batch_size, config.lr, config.lr_min, config.examples_per_epoch, config.variant,
                       config.synth_device, epochs)
    dataset = method.training_set(setup)
    items_per_step = method.loader_batch_size(setup)
    score_rule = config.score_rule or method.default_score_rule(setup)
    normalization = method.normalization(preset)
    try:
        dataset.example(0, 0)  # bad settings (e.g. images too small for the preset) fail here, before training
    except ValueError as error:
        if "too small" not in str(error):
            raise
        crop_h, crop_w = transform.crop_hw if isinstance(transform, FrameConfig) else (transform.crop,) * 2
        flag = "--train-window" if config.train_window else "--image-size"
        value = config.train_window or config.image_size
        raise ValueError(f"{flag} {value} gives {crop_w} x {crop_h}-px training crops, too small "
                         f"for this method and preset: {error}; choose a larger {flag}") from None
    interrupt = CheckpointOnInterrupt(checkpoint)
    budget = None if config.max_minutes is None else BudgetPlan(config.max_minutes, epochs)
    trainer = make_trainer(config, epochs, out, interrupt, budget)
    processes = trainer.world_size
    per_process = -(-items_per_step // processes)  # the step's examples shared out: the same protocol on N processes
    loader = DataLoader(dataset, batch_size=per_process, sampler=EpochSampler(len(dataset), config.seed),
                        num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                        drop_last=False, collate_fn=collate_plans if config.synth_device == "batch" else None)
    torch.manual_seed(config.seed)
    module = method.module(setup)
    if rank_zero:
        shared = f", {processes} processes of {per_process} examples per step" if processes > 1 else ""
        for line in choice.lines("train"):
            print(line, file=sys.stderr)
        for name, value in overrides.items():
            shown = ("yes" if value else "no") if isinstance(value, bool) else f"{value:g}"
            say(f"{name.replace('_', ' ')} {shown} (given with --{name.replace('_', '-')})")
        paper_only = "whole" not in method.protocols and wanted_protocol(config, preset) == "whole"
        say(describe_geometry(transform) + (f" ({config.method} has the paper's protocol only)" if paper_only else ""))
        warning = holdout_warning(len(holdout_paths), config.target_fpr)
        if warning:  # after every check, so that a refused run prints its one error line only
            warnings.warn(warning, HoldoutWarning, stacklevel=2)
        say(f"{config.method} ({config.variant} variant) on {layout.category} ({len(train_paths)} training images, "
            f"{len(holdout_paths)} held out), {epochs} epochs of {len(dataset)} examples, "
            f"{count_parameters(module.net):,} parameters{shared}")
    created, logs_before = None, set((out / "logs").glob("version_*"))
    try:
        if not rank_zero:
            wait_for_run_folder(out)
        elif not config.resume:
            created = create_run_folder(out, settings)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            fit_start = time.perf_counter()
            with one_thread_for_loading():
                trainer.fit(module, train_dataloaders=loader, ckpt_path=checkpoint if config.resume else None)
    except BaseException as error:
        if created is not None and not checkpoint.is_file():
            created.discard()  # stopped before its first step: leave nothing behind
        elif rank_zero and config.resume and not interrupt.saved:
            for log in set((out / "logs").glob("version_*")) - logs_before:
                shutil.rmtree(log, ignore_errors=True)  # a resume that trained nothing leaves the run as it was
        if isinstance(error, SystemExit) and interrupt.interrupted:
            raise KeyboardInterrupt from None  # Lightning exits with 1 on Ctrl-C; the CLI's convention is 130
        raise
    train_seconds = time.perf_counter() - fit_start
    trainer.save_checkpoint(checkpoint, weights_only=False)
    if not trainer.is_global_zero:
        return out
    if config.resume:
        write_config(out, settings)  # the same run; how it was carried out (devices, epochs...) may have changed
    model_options = method.finish(module, setup, out)
    imagenet = normalization == "imagenet"
    mean = tuple(IMAGENET_MEAN.tolist()) if imagenet else (0.0,) * preset.channels
    std = tuple(IMAGENET_STD.tolist()) if imagenet else (1.0,) * preset.channels
    if isinstance(transform, FrameConfig):
        frame = {"resize_hw": transform.frame_hw, "crop_hw": None, "geometry": transform.to_dict(),
                 "format_version": 3}
    else:
        frame = {"resize_hw": (transform.resize, transform.resize),
                 "crop_hw": None if transform.kind == "texture" else (transform.crop, transform.crop)}
    training = {"epochs": epochs, "epochs_run": trainer.current_epoch, "seed": config.seed,
                "batch_size": config.batch_size, "precision": str(trainer.precision),
                "train_images": len(train_paths), "examples_per_epoch": len(dataset),
                "holdout_images": len(holdout_paths), "target_fpr": config.target_fpr,
                "steps": trainer.global_step, "variant": config.variant, "preset_source": choice.source,
                "preset_notes": list(choice.notes), "train_seconds": round(train_seconds, 1),
                "task": method.task,
                "data": str(Path(config.data).resolve()), "category_arg": config.category}
    if budget is not None:
        training["budget"] = budget.plan
    metadata = RunMetadata(
        method=config.method, net=module.net.config, preset=preset.name, preset_values=_preset_values(preset),
        mean=mean, std=std, score_rule=score_rule, model=method.model,
        model_options=model_options, training=training, **frame)
    module.net.to("cpu").float()
    save_run(out, module.net, metadata)
    if holdout_paths:
        scorer = Scorer(out, device="cpu")
        held_out = scorer.score(holdout_paths)
        target_fpr = method.threshold_fpr(config.target_fpr)
        threshold = threshold_at_fpr(held_out.scores, target_fpr)
        achieved = float(np.mean(held_out.scores >= threshold))
        scale = fit_scale(scorer.input_window(held_out.maps), score_rule, threshold, transform.resize)
        save_run(out, module.net, metadata.replace(threshold=float(threshold), heatmap_scale=scale.to_dict(),
                                                   training={**training, "holdout_fpr": achieved}))
        say(f"threshold {threshold:.6g} flags {achieved:.1%} of the {len(holdout_paths)} held-out normal images "
            f"(target {target_fpr:.1%})")
    else:
        say("no images held out (--holdout 0): the run has no decision threshold")
    print(f"nsad train: wrote {out / 'model.safetensors'} and {out / 'run.json'}")
    return out


def make_trainer(config: TrainConfig, epochs: int, out: Path, interrupt: CheckpointOnInterrupt,
                 budget: BudgetPlan | None = None) -> L.Trainer:
    """Lightning's Trainer for ``config``; settings Lightning refuses become one-line errors naming the option.

    Several processes each take their share of every step's examples (see :class:`EpochSampler`);
    on GPUs their batch-norm statistics are synchronised, so the run follows the one-process protocol.

    Raises:
        ValueError: for an accelerator, device count, strategy or precision that cannot be used here.
    """
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"--accelerator {config.accelerator}: torch finds no CUDA GPU on this machine; "
                         "use --accelerator cpu or auto")
    try:
        trainer = L.Trainer(
            max_epochs=epochs, accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
            num_nodes=config.num_nodes, precision=config.precision or default_precision(config.accelerator),
            logger=CSVLogger(out, name="logs"), use_distributed_sampler=False,
            sync_batchnorm=torch.cuda.is_available() and config.accelerator != "cpu",
            callbacks=[ModelCheckpoint(dirpath=out / "checkpoints", filename="last",
                                       every_n_epochs=config.checkpoint_every, save_top_k=1,
                                       enable_version_counter=False), interrupt, *([budget] if budget else []),
                       *([StderrProgressBar()] if config.progress else [])],
            plugins=[AtomicCheckpointIO()], enable_progress_bar=config.progress, enable_model_summary=False,
            log_every_n_steps=1, num_sanity_val_steps=0)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as error:
        message = " ".join(str(error).split())
        given = {"accelerator": config.accelerator, "devices": config.devices, "strategy": config.strategy,
                 "precision": config.precision, "num_nodes": config.num_nodes}
        named = [name for name in given if name in message or name.replace("_", "-") in message] or list(given)
        options = " ".join(f"--{name.replace('_', '-')} {given[name]}" for name in named if given[name] is not None)
        raise ValueError(f"{options}: {message}") from None
    slow = slow_precision_warning(str(trainer.precision), trainer.strategy.root_device.type,
                                  torch.backends.cpu.get_cpu_capability())
    if slow is not None:
        warnings.warn(slow, stacklevel=2)
    return trainer


def _preset_values(preset: Preset) -> dict:
    values = dataclasses.asdict(preset)
    return {key: (list(value) if isinstance(value, tuple) else value) for key, value in values.items()}
