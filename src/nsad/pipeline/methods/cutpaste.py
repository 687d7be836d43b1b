"""CutPaste as its authors built it, as a method of ``nsad train`` (Li et al., CVPR 2021).

Two stages (Li et al. 2021, Sec. 2):

1. **Representation learning.** :class:`~nsad.models.cutpaste.CutPasteNet` (ResNet-18 from scratch,
   MLP head, linear classifier) learns to tell normal images from CutPaste ones (``cutpaste-binary``,
   eq. 1), from CutPaste-Scar ones (``cutpaste-scar``) or all three apart (``cutpaste-3way``, the
   paper's best: 95.2 image AUROC on MVTec AD from scratch). Every training item is one normal
   image after the paper's random training transform, drawn from ``default_rng([seed, epoch,
   index])``, together with one augmented copy per other class, so each batch is balanced across
   the classes (:class:`CutPasteTrainingSet`). A step takes ``batch_size // classes`` items, so it
   sees about ``batch_size`` examples, and an epoch shows each training image once per class.
   SGD (lr 0.03, momentum 0.9, weight decay 3e-5) with a cosine decay to 0, as the authors train.
2. **Density estimation.** A Gaussian density with Ledoit-Wolf shrinkage (eq. 2,
   :class:`~nsad.models.density.GaussianDensity`) is fitted on the embeddings of the normal
   training images after the *test* transform (no augmentation); held-out normal images are not
   used. The image score is the Mahalanobis distance of an image's embedding (score rule
   ``density``, the default).

**Localisation** (Sec. 2.4). The paper trains a second network on 64x64 crops (eq. 3) and scores
every 64-px patch of a 256-px image with stride 4. Here the *same* network embeds the patches
(a second training would double the cost): the patches, 64 px at the paper's 256-px frame and
scaled with ``--image-size`` (at least 32 px, ResNet-18's smallest input), are taken on a grid with
stride ``stride_px`` (default 16 px at 256, not the paper's 4, which costs 16 times more: choose
``--option stride_px=4`` for the paper's grid), a second Gaussian density is fitted on the patch
embeddings of the training images, and each patch's Mahalanobis distance is spread over the pixels
it covers and smoothed with a Gaussian (``sigma_px``, 4 px at 256)
(:func:`~nsad.postprocess.patch_anomaly_map`). The maximum of that map is the patch model's
image score (Fig. 1, "max-pooled"): ``--score-rule max`` gives it.

Both densities are written to ``density.safetensors`` beside the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch.utils.data import DataLoader, Dataset

from nsad._checks import check_choice
from nsad.data.transforms import (
    TransformConfig,
    apply_geometry,
    sample_train_geometry,
    to_tensor_normalized,
)
from nsad.models.cutpaste import (
    CUTPASTE_CLASSES,
    EMBEDDING_LAYERS,
    CutPasteModule,
    CutPasteNet,
    GaussianDensity,
    embed_patches,
)
from nsad.models.runfile import LoadedRun, RunFormatError, write_atomic
from nsad.pipeline.datasets import TestImages
from nsad.pipeline.methods._base import (
    Method,
    TrainSetup,
    build_options,
    check_number,
    check_positive,
    check_text,
)
from nsad.postprocess import cutpaste_maps_and_scores
from nsad.synth.cutpaste import CutPaste, CutPasteScar
from nsad.synth.dataset import example_rng

DENSITY_NAME = "density.safetensors"
"""The file in the run folder that holds the image and patch densities."""
MIN_PATCH_PX = 32
"""ResNet-18 downsamples by 32: the smallest patch it embeds."""


@dataclass(frozen=True)
class CutPasteOptions:
    """Options of the CutPaste methods (``--option KEY=VALUE``); pixel sizes are at the 256-px frame.

    Attributes:
        lr: initial SGD learning rate (authors: 0.03), decayed to 0 on a cosine.
        momentum: SGD momentum (0.9).
        weight_decay: SGD weight decay (3e-5).
        layer: embedding for the densities, ``encoder`` (512-d pooled ResNet features) or ``head``.
        patch_px: side of the localisation patches (paper: 64), scaled with the image size.
        stride_px: step of the patch grid (paper: 4; default 16 for a 16 times cheaper map).
        sigma_px: Gaussian smoothing of the patch map (paper: unstated; 4 px).
        max_fit_patches: most patch embeddings the patch density is fitted on (a seeded random
            subset, the same number from each training image, when the grid gives more).
    """

    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 3e-5
    layer: str = "encoder"
    patch_px: float = 64.0
    stride_px: float = 16.0
    sigma_px: float = 4.0
    max_fit_patches: int = 100_000

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_number("momentum", self.momentum, 0.0, 1.0)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_text("embedding layer", self.layer, EMBEDDING_LAYERS)
        for name in ("patch_px", "stride_px"):
            check_positive(name, getattr(self, name))
        check_number("sigma_px", self.sigma_px, 0.0, 1e3)
        check_positive("max_fit_patches", self.max_fit_patches, integer=True)


@dataclass(frozen=True)
class CutPasteScoring:
    """What scoring a CutPaste run needs besides weights and densities (``run.json``'s ``model_options``).

    Attributes:
        layer: the embedding the densities were fitted on.
        patch_px: patch side in pixels of the network's input.
        stride_px: patch grid step in pixels of the network's input.
        sigma_px: Gaussian smoothing of the patch map in pixels of the network's input.
    """

    layer: str
    patch_px: int
    stride_px: int
    sigma_px: float

    def __post_init__(self) -> None:
        check_text("embedding layer", self.layer, EMBEDDING_LAYERS)
        check_positive("patch_px", self.patch_px, integer=True)
        check_positive("stride_px", self.stride_px, integer=True)
        check_number("sigma_px", self.sigma_px, 0.0, 1e3)

    @classmethod
    def for_setup(cls, options: CutPasteOptions, transform: TransformConfig) -> CutPasteScoring:
        """Scale the options' 256-px sizes to the run's frame.

        Raises:
            ValueError: if the patch (at least 32 px) does not fit the network's input.
        """
        scale = transform.resize / 256
        patch = max(MIN_PATCH_PX, round(options.patch_px * scale))
        if patch > transform.input_size:
            raise ValueError(
                f"CutPaste patches of {patch} px (patch_px={options.patch_px:g} at 256 px, at least "
                f"{MIN_PATCH_PX}) do not fit the {transform.input_size}-px input; use a larger "
                f"--image-size or a smaller patch_px"
            )
        return cls(
            layer=options.layer,
            patch_px=patch,
            stride_px=max(1, round(options.stride_px * scale)),
            sigma_px=float(options.sigma_px * scale),
        )


class CutPasteTrainingSet(Dataset):
    """Balanced CutPaste items: ``dataset[(epoch, index)] -> {"image": (K, C, h, w), "target": (K,)}``.

    Item ``index`` takes training image ``index mod n`` through the paper's random training
    transform and returns it with one augmented copy per other class (class order of
    :data:`~nsad.models.cutpaste.CUTPASTE_CLASSES`; target ``k`` is class ``k``), all drawn from
    ``default_rng([seed, epoch, index])``.

    Args:
        images: normal images resized by :func:`~nsad.pipeline.datasets.load_training_images`.
        classes: class names, e.g. ``("normal", "cutpaste", "scar")``.
        transform: the paper's transforms.
        normalization: ``imagenet`` or ``unit``.
        channels: the network's input channels.
        seed: the run's seed.
        length: items per epoch; default one per image.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        classes: Sequence[str],
        transform: TransformConfig,
        normalization: str,
        channels: int,
        seed: int,
        length: int | None = None,
    ) -> None:
        if len(images) == 0:
            raise ValueError("no training images")
        augment = {"normal": None, "cutpaste": CutPaste(), "scar": CutPasteScar()}
        for name in classes:
            check_choice("CutPaste class", name, augment)
        self.images, self.classes, self.transform = list(images), tuple(classes), transform
        self.augment = [augment[name] for name in self.classes]
        self.normalization, self.channels, self.seed = normalization, channels, seed
        self.length = len(self.images) if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def example(self, epoch: int, index: int) -> list[np.ndarray]:
        """The item's views as (h, w, C) images, one per class in class order."""
        rng = example_rng(self.seed, epoch, index)
        image = apply_geometry(self.images[index % len(self.images)], sample_train_geometry(rng, self.transform))
        return [image if task is None else task(image, image, rng=rng).image for task in self.augment]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        views = self.example(*key)
        tensors = [to_tensor_normalized(view, self.normalization, self.channels) for view in views]
        return {"image": torch.from_numpy(np.stack(tensors)), "target": torch.arange(len(views))}


def _embedder(net: CutPasteNet, layer: str) -> partial:
    return partial(net.embed, layer=layer)


def fit_densities(
    net: CutPasteNet,
    paths: Sequence[Path],
    transform: TransformConfig,
    normalization: str,
    scoring: CutPasteScoring,
    max_fit_patches: int,
    seed: int,
    batch_size: int = 16,
) -> tuple[GaussianDensity, GaussianDensity]:
    """Fit the image and patch densities on the normal images at ``paths`` (CutPaste, eq. 2).

    Images get the test transform (no augmentation). The patch density sees every patch of the
    grid, or ``ceil(max_fit_patches / len(paths))`` of each image's, drawn with
    ``default_rng([seed, 104729])`` when the grid gives more.

    Returns:
        ``(image_density, patch_density)``.

    Raises:
        ValueError: with fewer than 2 images.
    """
    if len(paths) < 2:
        raise ValueError(f"CutPaste's density estimator needs at least 2 normal training images, got {len(paths)}")
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    embed = _embedder(net, scoring.layer)
    loader = DataLoader(TestImages(paths, transform, normalization, net.config.in_channels), batch_size=batch_size)
    per_image = math.ceil(max_fit_patches / len(paths))
    rng = np.random.default_rng([seed, 104729])
    image_rows, patch_rows = [], []
    try:
        with torch.inference_mode():
            for batch in loader:
                images = batch["image"].to(device)
                image_rows.append(embed(images).double().cpu())
                patches = embed_patches(embed, images, scoring.patch_px, scoring.stride_px).flatten(1, 2)
                if patches.shape[1] > per_image:
                    keep = np.stack([rng.choice(patches.shape[1], per_image, replace=False) for _ in patches])
                    patches = torch.gather(
                        patches,
                        1,
                        torch.as_tensor(keep, device=patches.device)[..., None].expand(-1, -1, patches.shape[2]),
                    )
                patch_rows.append(patches.reshape(-1, patches.shape[2]).double().cpu())
    finally:
        net.train(was_training)
    return _fit_one_thread(torch.cat(image_rows)), _fit_one_thread(torch.cat(patch_rows))


def _fit_one_thread(embeddings: torch.Tensor) -> GaussianDensity:
    """``GaussianDensity.fit`` on one thread.

    Its pseudo-inverse is an eigendecomposition of the (D, D) covariance; measured on the 2-core
    development machine while other jobs ran, torch's ``eigh`` of a 512 x 512 matrix took 7 s on
    2 threads and 0.03 s on one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return GaussianDensity.fit(embeddings)
    finally:
        torch.set_num_threads(threads)


def save_densities(folder: Path, image: GaussianDensity, patch: GaussianDensity) -> Path:
    """Write both densities to ``folder/density.safetensors`` atomically (keys ``image.*``, ``patch.*``)."""
    tensors = {
        f"{prefix}.{key}": value
        for prefix, density in (("image", image), ("patch", patch))
        for key, value in density.state_dict().items()
    }
    return write_atomic(Path(folder) / DENSITY_NAME, save_safetensors(tensors, metadata={"format": "nsad-density"}))


def load_densities(folder: Path) -> tuple[GaussianDensity, GaussianDensity]:
    """Read :func:`save_densities`'s file.

    Raises:
        FileNotFoundError: if the file is missing.
        RunFormatError: if it is not a readable density file.
    """
    path = Path(folder) / DENSITY_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"CutPaste run {str(folder)!r} has no density file {str(path)!r} (written by nsad train after training)"
        )
    try:
        tensors = load_safetensors(path.read_bytes())
        return tuple(
            GaussianDensity.from_state_dict(  # type: ignore[return-value]
                {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith(f"{prefix}.")}
            )
            for prefix in ("image", "patch")
        )
    except (SafetensorError, ValueError, TypeError, RuntimeError) as error:
        raise RunFormatError(f"{str(path)!r} is not a readable CutPaste density file: {error}") from error


class CutPasteMethod(Method):
    """``cutpaste-3way``, ``cutpaste-binary`` and ``cutpaste-scar`` (see the module docstring)."""

    model: ClassVar[str] = "cutpaste"
    options_type: ClassVar[type] = CutPasteOptions
    task = "cutpaste"
    family: ClassVar[str] = "CutPaste's classifier and Gaussian density (Li et al., CVPR 2021)"

    def __init__(self, name: str) -> None:
        check_choice("CutPaste method", name, CUTPASTE_CLASSES)
        super().__init__(name)
        self.classes = CUTPASTE_CLASSES[name]

    def scorer(self, run: LoadedRun, device: torch.device) -> CutPasteScorer:
        """The run's scorer (:class:`CutPasteScorer`)."""
        return CutPasteScorer(run, device)

    def default_score_rule(self, setup: TrainSetup) -> str:
        """``density``: the Mahalanobis distance of the whole image's embedding (the paper's image score)."""
        return "density"

    def training_set(self, setup: TrainSetup) -> CutPasteTrainingSet:
        """Balanced items of normal / CutPaste / scar views (see :class:`CutPasteTrainingSet`)."""
        CutPasteScoring.for_setup(self.options(setup.options), setup.transform)  # fail before training
        return CutPasteTrainingSet(
            setup.images,
            self.classes,
            setup.transform,
            self.normalization(setup.preset),
            setup.preset.channels,
            setup.seed,
            setup.examples_per_epoch,
        )

    def loader_batch_size(self, setup: TrainSetup) -> int:
        """``batch_size // classes`` items, about ``batch_size`` examples per step."""
        return max(1, setup.batch_size // len(self.classes))

    def module(self, setup: TrainSetup) -> CutPasteModule:
        """CutPaste's classifier and its SGD settings (it flattens the balanced items into examples)."""
        options = self.options(setup.options)
        return CutPasteModule(
            num_classes=len(self.classes),
            in_channels=setup.preset.channels,
            lr=options.lr,
            momentum=options.momentum,
            weight_decay=options.weight_decay,
            embedding_layer=options.layer,
        )

    def finish(self, module: CutPasteModule, setup: TrainSetup, out: Path) -> dict[str, Any]:
        """Fit and save the densities; return the scoring options."""
        options = self.options(setup.options)
        scoring = CutPasteScoring.for_setup(options, setup.transform)
        image, patch = fit_densities(
            module.net,
            setup.train_paths,
            setup.transform,
            self.normalization(setup.preset),
            scoring,
            options.max_fit_patches,
            setup.seed,
        )
        save_densities(out, image, patch)
        print(
            f"nsad train: Gaussian densities on the embeddings of {len(setup.train_paths)} training images "
            f"and of their {scoring.patch_px}-px patches (Ledoit-Wolf shrinkage {image.shrinkage:.3f} and "
            f"{patch.shrinkage:.3f}) -> {out / DENSITY_NAME}"
        )
        return {**asdict(scoring), "density_file": DENSITY_NAME}


class CutPasteScorer:
    """A CutPaste run as a scorer: patch maps, and the image density's Mahalanobis distance as image score.

    The network gives the embeddings; the distances and the patch map are the deployment
    runtime's code (:func:`~nsad.postprocess.cutpaste_maps_and_scores`), so both agree.
    """

    image_level = True

    def __init__(self, run: LoadedRun, device: torch.device) -> None:
        values = dict(run.metadata.model_options)
        values.pop("density_file", None)
        try:
            self.scoring = build_options(CutPasteScoring, values, run.metadata.method)
        except (TypeError, ValueError) as error:
            raise RunFormatError(f"{str(run.folder / 'run.json')!r}: model_options: {error}") from error
        self.net = run.net.eval()
        image, patch = load_densities(run.folder)
        self.densities = {name: (density.mean.cpu().numpy(), density.precision.cpu().numpy())
                          for name, density in (("image", image), ("patch", patch))}
        self.normalization = run.normalization

    def embeddings(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) image embeddings and (B, nh, nw, D) patch-grid embeddings of normalised images."""
        embed = _embedder(self.net, self.scoring.layer)
        return embed(images), embed_patches(embed, images, self.scoring.patch_px, self.scoring.stride_px)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, h, w) patch maps and (B,) image Mahalanobis distances of normalised images."""
        image_embeddings, patch_embeddings = (e.double().cpu().numpy() for e in self.embeddings(images))
        maps, scores = cutpaste_maps_and_scores(image_embeddings, patch_embeddings, self.densities,
                                                tuple(images.shape[-2:]), self.scoring.patch_px,
                                                self.scoring.stride_px, self.scoring.sigma_px)
        return torch.from_numpy(maps), torch.from_numpy(scores)
