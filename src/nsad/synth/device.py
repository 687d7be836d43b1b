"""NSA on the training device: plans drawn per example on the CPU, applied to a whole batch at once.

NSA (Schlüter et al., ECCV 2022, Sec. 3) splits into a random part, :meth:`NSA.plan
<nsad.synth.nsa.NSA.plan>` (placements by eqs. 5-12, patch shapes, the resized source patches and
their blending masks, all drawn from the example's generator ``default_rng([seed, epoch, index])``),
and a deterministic part, :meth:`NSA.apply <nsad.synth.nsa.NSA.apply>` (Poisson blending and the
labels of eqs. 13-14). This module runs the deterministic part for a batch on any torch device:

1. :func:`pack_plan` turns one example's plan into plain arrays (in a loader worker): per patch
   the box it is solved on, its label box, and its source pixels and mask, flattened;
2. :func:`collate_plans` concatenates a batch of them into tensors (``DataLoader(collate_fn=...)``),
   which Lightning moves to the device with the images;
3. :func:`apply_plan` puts the patches in with :func:`~nsad.synth._blend_torch.poisson_blend_batch`,
   the ``n``-th patch of every example in the ``n``-th call (an image takes one patch per call, in
   the plan's order; patches of similar size share a call), and computes the labels with
   :func:`nsa_label_batch`, the definitions of :func:`nsad.synth.labels.nsa_label` on tensors.

The result equals ``NSA.apply`` on the same plan to within one intensity level (both solve
OpenCV's discrete Poisson problem in float32, with different summation orders); the labels follow
exactly from the blended images (binary: exactly; continuous and logistic: to float32 rounding).

Example:
    >>> import numpy as np, torch
    >>> from nsad.synth import NSA, get_preset
    >>> from nsad.synth.device import apply_plan, collate_plans, pack_plan
    >>> image = np.full((80, 80, 3), 120, np.uint8)
    >>> source = np.tile((np.arange(80, dtype=np.uint8) * 3)[:, None, None], (1, 80, 3))
    >>> task = NSA(get_preset("default"))
    >>> plan = task.plan(image, source, rng=np.random.default_rng(0))
    >>> batch = collate_plans([{"image": torch.from_numpy(image).permute(2, 0, 1), "plan": pack_plan(plan)}])
    >>> images, labels = apply_plan(batch["image"], batch["plan"], mode="normal", label="logistic")
    >>> reference = task.apply(image, plan)
    >>> len(plan), int(np.abs(images[0].permute(1, 2, 0).numpy().astype(int) - reference.image).max())
    (2, 0)
    >>> bool(np.allclose(labels[0].numpy(), reference.label, atol=1e-6))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from nsad._checks import check_choice
from nsad.synth._blend import mask_box
from nsad.synth._blend_torch import poisson_blend_batch
from nsad.synth._median import disk_half_widths
from nsad.synth.labels import BINARY_MEDIAN_PX, CONTINUOUS_MEDIAN_RADIUS, LABEL_KINDS
from nsad.synth.nsa import PlannedPatch

PLAN_MODES = ("normal", "mixed", "paste")
PLAN_KEYS = ("boxes", "label_boxes", "pixels", "masks")
"""Arrays of one packed example plan (see :func:`pack_plan`)."""
_MEDIAN_CHUNK = 1 << 18       # pixels whose 81 disk values are gathered at once (85 MB of float32)


def pack_plan(plan: Sequence[PlannedPatch], dtype: np.dtype | type = np.uint8) -> dict[str, np.ndarray]:
    """One example's plan as plain arrays, box-local like the engine's hot path.

    A blended patch is cut to the bounding box of its blending mask (the box OpenCV and
    :func:`~nsad.synth._blend.blend_patch` solve on); a pasted one keeps its destination box.

    Args:
        plan: from :meth:`NSA.plan <nsad.synth.nsa.NSA.plan>`; may be empty.
        dtype: the image's dtype, ``uint8`` or ``uint16``, for the empty ``pixels`` of an empty
            plan (:func:`collate_plans` takes the dtype of the other plans' pixels anyway).

    Returns:
        ``boxes``: (K, 4) int64 ``(x, y, w, h)`` of each solve (or paste) box in the image;
        ``label_boxes``: (K, 4) int64 ``(x0, y0, x1, y1)`` destination boxes (the labelled region);
        ``pixels``: the source pixels, each patch as (C, h, w) in C order, concatenated;
        ``masks``: bool, each patch's (h, w) mask, concatenated.

    Raises:
        ValueError: if a patch's pixels, mask and destination box disagree in size, or patches
            differ in channels or dtype.
    """
    boxes, label_boxes, pixels, masks = [], [], [], []
    for planned in plan:
        dst = planned.record.dst_box
        if planned.patch.shape[:2] != (dst.height, dst.width) or planned.mask.shape != planned.patch.shape[:2]:
            raise ValueError(f"patch {planned.patch.shape} and mask {planned.mask.shape} must both cover the "
                             f"{dst.width}x{dst.height} destination box {dst.as_list()}")
        if pixels and (planned.patch.shape[2] != pixels[0].shape[0] or planned.patch.dtype != pixels[0].dtype):
            raise ValueError(f"patches must share channels and dtype, got {planned.patch.shape[2]} "
                             f"{planned.patch.dtype} after {pixels[0].shape[0]} {pixels[0].dtype}")
        if planned.record.mode == "paste":
            x, y, w, h = 0, 0, dst.width, dst.height
        else:
            x, y, w, h = mask_box(planned.mask)
        boxes.append((dst.x0 + x, dst.y0 + y, w, h))
        label_boxes.append(dst.as_list())
        pixels.append(np.ascontiguousarray(planned.patch[y:y + h, x:x + w].transpose(2, 0, 1)))
        masks.append(planned.mask[y:y + h, x:x + w] != 0)
    if pixels:
        dtype = pixels[0].dtype
    return {"boxes": np.asarray(boxes, np.int64).reshape(-1, 4),
            "label_boxes": np.asarray(label_boxes, np.int64).reshape(-1, 4),
            "pixels": np.concatenate([p.ravel() for p in pixels]) if pixels else np.zeros(0, dtype),
            "masks": np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, bool)}


def _collate_packed(plans: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    counts = np.array([len(p["boxes"]) for p in plans], np.int64)
    batch, slots = len(plans), int(counts.max(initial=0))
    boxes = np.zeros((batch, slots, 4), np.int64)
    label_boxes = np.zeros((batch, slots, 4), np.int64)
    pixel_offsets = np.zeros((batch, slots), np.int64)
    mask_offsets = np.zeros((batch, slots), np.int64)
    pixel_at = mask_at = 0
    for b, p in enumerate(plans):
        missing = [key for key in PLAN_KEYS if key not in p]
        if missing:
            raise ValueError(f"plan {b} lacks {missing}; plans come from pack_plan with keys {list(PLAN_KEYS)}")
        n = counts[b]
        boxes[b, :n], label_boxes[b, :n] = p["boxes"], p["label_boxes"]
        areas = p["boxes"][:, 2] * p["boxes"][:, 3]
        channels = len(p["pixels"]) // max(1, int(areas.sum())) if n else 0
        if n and (channels * areas.sum() != len(p["pixels"]) or areas.sum() != len(p["masks"])):
            raise ValueError(f"plan {b}: {len(p['pixels'])} pixels and {len(p['masks'])} mask values do not "
                             f"match its boxes' {int(areas.sum())} pixels")
        ends = np.cumsum(areas)
        mask_offsets[b, :n] = mask_at + ends - areas
        pixel_offsets[b, :n] = pixel_at + channels * (ends - areas)
        pixel_at += len(p["pixels"])
        mask_at += len(p["masks"])
    dtypes = {p["pixels"].dtype for p in plans if len(p["pixels"])} or {plans[0]["pixels"].dtype}
    if len(dtypes) > 1:
        raise ValueError(f"plans must share one pixel dtype, got {sorted(str(d) for d in dtypes)}")
    pixels = np.concatenate([p["pixels"] for p in plans]).astype(dtypes.pop(), copy=False)
    return {"boxes": torch.from_numpy(boxes), "label_boxes": torch.from_numpy(label_boxes),
            "count": torch.from_numpy(counts), "pixels": torch.from_numpy(pixels),
            "pixel_offsets": torch.from_numpy(pixel_offsets),
            "masks": torch.from_numpy(np.concatenate([p["masks"] for p in plans])),
            "mask_offsets": torch.from_numpy(mask_offsets)}


def collate_plans(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``DataLoader`` ``collate_fn``: the ``plan`` entries concatenated, every other key by ``default_collate``.

    Args:
        items: dicts with a ``plan`` from :func:`pack_plan` and other entries (e.g. the ``image``).

    Returns:
        A dict with the other keys collated as usual and ``plan``: ``boxes`` and ``label_boxes``
        (B, K, 4) int64 with K the most patches of an item (rows past ``count`` are zero),
        ``count`` (B,) int64, ``pixels`` and ``masks`` (the items' flat arrays concatenated), and
        ``pixel_offsets`` and ``mask_offsets`` (B, K) int64, where each patch starts in them.

    Raises:
        ValueError: for an item without a plan, a plan that is not :func:`pack_plan`'s, or plans
            of different pixel dtypes.
    """
    if not items or any("plan" not in item for item in items):
        raise ValueError("collate_plans needs a non-empty list of dicts with a 'plan' key (see pack_plan)")
    rest = default_collate([{k: v for k, v in item.items() if k != "plan"} for item in items])
    return {**rest, "plan": _collate_packed([item["plan"] for item in items])}


def _native(tensor: torch.Tensor) -> torch.Tensor:
    """A view that indexing supports on every device (uint16 as int16, same bits)."""
    return tensor.view(torch.int16) if tensor.dtype == torch.uint16 else tensor


def _unpack(flat: torch.Tensor, offsets: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor,
            channels: int, rows: int, cols: int) -> torch.Tensor:
    """Padded (n, channels, rows, cols) patches from a flat buffer of (channels, h, w) patches at ``offsets``.

    Positions past a patch's (h, w) repeat its first value (finite, ignored by the solver).
    """
    c = torch.arange(channels, device=flat.device)[None, :, None, None]
    i = torch.arange(rows, device=flat.device)[None, None, :, None]
    j = torch.arange(cols, device=flat.device)[None, None, None, :]
    h, w, start = heights[:, None, None, None], widths[:, None, None, None], offsets[:, None, None, None]
    index = torch.where((i < h) & (j < w), start + (c * h + i) * w + j, start)
    native = _native(flat)[index]
    return native.view(flat.dtype) if flat.dtype == torch.uint16 else native


def _size_groups(sides: np.ndarray, ratio: float | None) -> list[np.ndarray]:
    """Split positions into groups of similar ``sides`` (max side within ``ratio`` of the group's smallest)."""
    order = np.argsort(sides, kind="stable")
    if ratio is None or len(order) == 0:
        return [order]
    groups, start = [], 0
    for n in range(1, len(order) + 1):
        if n == len(order) or sides[order[n]] > ratio * sides[order[start]]:
            groups.append(order[start:n])
            start = n
    return groups


def apply_plan(images: torch.Tensor, plan: Mapping[str, torch.Tensor], *, mode: str, label: str = "logistic",
               y0: float = 15.0, k: float = 1 / 6, tol: float = 1.0,
               group_ratio: float | None = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Put a batch's planned patches into its images and label them, on the images' device (deterministic).

    The ``n``-th patch of every example goes in with the ``n``-th call (split into calls of similar
    patch size, which saves the padding's cost), so each image receives its patches in the plan's order, as
    :meth:`NSA.apply <nsad.synth.nsa.NSA.apply>` does. Blended patches are solved by
    :func:`~nsad.synth._blend_torch.poisson_blend_batch` (OpenCV's discrete Poisson problem);
    pasted ones replace the pixels of their mask. Labels: :func:`nsa_label_batch` (eqs. 13-14)
    from the result and ``images``, or 1 on the pasted pixels.

    Args:
        images: (B, C, H, W) uint8 or uint16 destination images, on any device.
        plan: the ``plan`` of :func:`collate_plans` for these images (any device; the boxes are
            read on the CPU).
        mode: ``normal`` or ``mixed`` gradients, or ``paste`` (the task's, e.g. the preset's mode).
        label: ``binary``, ``continuous`` or ``logistic``; ignored for ``paste``.
        y0: the logistic's midpoint in 8-bit levels (the preset's).
        k: the logistic's slope per 8-bit level (the preset's).
        tol: a pixel changed when its channel-mean difference exceeds ``tol`` 8-bit levels.
        group_ratio: patches whose larger sides are within this factor share a call; None puts
            the ``n``-th patches of all examples in one call.

    Returns:
        The new images (B, C, H, W), ``images``' dtype, and (B, H, W) float32 labels (8-bit
        levels for ``continuous``, else in [0, 1]).

    Raises:
        ValueError: for an unknown mode or label kind, a ``group_ratio`` below 1, images that are
            not (B, C, H, W), or a plan for another batch size.
        TypeError: for images that are not uint8 or uint16.
    """
    check_choice("plan mode", mode, PLAN_MODES)
    check_choice("label kind", label, LABEL_KINDS)
    if group_ratio is not None and not group_ratio >= 1:
        raise ValueError(f"group_ratio must be at least 1 or None, got {group_ratio!r}")
    if images.dtype not in (torch.uint8, torch.uint16):
        raise TypeError(f"images must be uint8 or uint16, got {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if plan["boxes"].shape[0] != batch:
        raise ValueError(f"the plan is for {plan['boxes'].shape[0]} images, got {batch}")
    device = images.device
    boxes = plan["boxes"].detach().cpu().numpy()
    counts = plan["count"].detach().cpu().numpy()
    pixel_offsets = plan["pixel_offsets"].to(device)
    mask_offsets = plan["mask_offsets"].to(device)
    pixels, masks = plan["pixels"].to(device), plan["masks"].to(device)
    out = images.clone(memory_format=torch.contiguous_format)
    pasted = torch.zeros((batch, height, width), dtype=torch.bool, device=device) if mode == "paste" else None
    for slot in range(boxes.shape[1]):
        active = np.flatnonzero(counts > slot)
        sides = boxes[active, slot, 2:].max(axis=1)
        for group in _size_groups(sides, group_ratio):
            index = active[group]
            box = boxes[index, slot]
            rows, cols = int(box[:, 3].max()), int(box[:, 2].max())
            at = torch.as_tensor(index, device=device)
            hs = torch.as_tensor(box[:, 3], device=device)
            ws = torch.as_tensor(box[:, 2], device=device)
            src = _unpack(pixels, pixel_offsets[at, slot], hs, ws, channels, rows, cols)
            mask = _unpack(masks, mask_offsets[at, slot], hs, ws, 1, rows, cols)[:, 0]
            if mode == "paste":
                _paste(out, pasted, src, mask, at, torch.as_tensor(box, device=device))
            else:
                poisson_blend_batch(out, src, mask, torch.from_numpy(box), mode, torch.from_numpy(index),
                                    inplace=True)
    if mode == "paste":
        return out, pasted.to(torch.float32)
    return out, nsa_label_batch(out, images, plan["label_boxes"], plan["count"], label, y0, k, tol)


def _paste(out: torch.Tensor, pasted: torch.Tensor, src: torch.Tensor, mask: torch.Tensor, index: torch.Tensor,
           box: torch.Tensor) -> None:
    """Copy ``src`` where ``mask`` holds into contiguous ``out`` at ``box`` (x, y, w, h); mark ``pasted``."""
    _, channels, height, width = out.shape
    n, _, rows, cols = src.shape
    i = torch.arange(rows, device=out.device)[None, :, None]
    j = torch.arange(cols, device=out.device)[None, None, :]
    x, y, w, h = (box[:, c, None, None] for c in range(4))
    keep = (mask != 0) & (i < h) & (j < w)                                          # (n, rows, cols)
    pixel = ((index[:, None, None] * height + y + i) * width + x + j)               # in (B, H, W)
    pasted.view(-1)[pixel[keep]] = True
    plane = (index[:, None, None, None] * channels + torch.arange(channels, device=out.device)[None, :, None, None])
    target = (plane * height + y[:, None] + i[:, None]) * width + x[:, None] + j[:, None]
    keep_c = keep[:, None].expand(n, channels, rows, cols)
    _native(out).view(-1)[target[keep_c]] = _native(src)[keep_c]


def _reflect_index(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices ``-radius..size+radius-1`` mirrored with SciPy's ``reflect`` border (``dcba|abcd``)."""
    i = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(i >= size, 2 * size - 1 - i, i)


def _pad_reflect(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Pad the last two axes of (B, H, W) ``x`` by ``radius`` with the ``reflect`` border."""
    rows = _reflect_index(x.shape[1], radius, x.device)
    cols = _reflect_index(x.shape[2], radius, x.device)
    return x.index_select(1, rows).index_select(2, cols)


def _box_count(x: torch.Tensor, side: int) -> torch.Tensor:
    """Sum of (B, H, W) 0/1 ``x`` (uint8) over a ``side x side`` square, reflect border; exact, uint8."""
    r = side // 2
    height, width = x.shape[1:]
    padded = _pad_reflect(x, r)
    rows = sum(padded[:, d:d + height] for d in range(side))
    return sum(rows[:, :, d:d + width] for d in range(side))


def _disk_count(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of (B, H, W) 0/1 ``x`` over the disk of ``radius`` (reflect border), by row spans; int32."""
    height, width = x.shape[1:]
    padded = _pad_reflect(x, radius)
    cumsum = torch.nn.functional.pad(padded.to(torch.int32).cumsum(2), (1, 0))   # cumsum[..., j] = sum of < j
    spans = {}
    total = torch.zeros(x.shape, dtype=torch.int32, device=x.device)
    for dy, half in zip(range(-radius, radius + 1), disk_half_widths(radius).tolist(), strict=True):
        if half not in spans:
            lo, hi = radius - half, radius + half + 1
            spans[half] = cumsum[:, :, hi:hi + width] - cumsum[:, :, lo:lo + width]
        total += spans[half][:, radius + dy:radius + dy + height]
    return total


def _disk_offsets(radius: int, padded_width: int, device: torch.device) -> torch.Tensor:
    """Flat offsets of the disk's pixels from its top-left corner in a padded (·, padded_width) plane."""
    offsets = [(radius + dy) * padded_width + radius + dx
               for dy, half in zip(range(-radius, radius + 1), disk_half_widths(radius).tolist(), strict=True)
               for dx in range(-half, half + 1)]
    return torch.tensor(offsets, dtype=torch.int64, device=device)


def median_disk_at(values: torch.Tensor, where: torch.Tensor, radius: int = CONTINUOUS_MEDIAN_RADIUS) -> torch.Tensor:
    """Median of (B, H, W) ``values`` over the disk of ``radius`` (reflect border) at the pixels ``where`` holds.

    The footprint is the pixels within Euclidean distance ``radius`` (81 for radius 5), an odd
    count, so the median is the middle value (``kthvalue``): SciPy's ``median_filter`` with that
    footprint and ``mode="reflect"``, at the chosen pixels.

    Args:
        values: (B, H, W) floating-point or integer values.
        where: (B, H, W) bool, the pixels to filter.
        radius: the disk's radius in pixels.

    Returns:
        (B, H, W) tensor of ``values``' dtype: the median where ``where`` holds, 0 elsewhere.
    """
    batch, height, width = values.shape
    padded = _pad_reflect(values, radius)
    padded_width = width + 2 * radius
    offsets = _disk_offsets(radius, padded_width, values.device)
    rank = (len(offsets) + 1) // 2
    b, y, x = where.nonzero(as_tuple=True)
    corner = (b * (height + 2 * radius) + y) * padded_width + x
    flat = padded.reshape(-1)
    medians = [flat[corner[s:s + _MEDIAN_CHUNK, None] + offsets[None]].kthvalue(rank, dim=1).values
               for s in range(0, len(corner), _MEDIAN_CHUNK)]
    out = torch.zeros_like(values)
    if medians:
        out[b, y, x] = torch.cat(medians)
    return out


def boxes_mask(boxes: torch.Tensor, count: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: the union of each image's first ``count`` boxes ``(x0, y0, x1, y1)`` (ends exclusive).

    Args:
        boxes: (B, K, 4) integer boxes.
        count: (B,) how many of each image's boxes count.
        height: the images' height.
        width: the images' width.
    """
    device = boxes.device
    ys = torch.arange(height, device=device)[None, :, None]
    xs = torch.arange(width, device=device)[None, None, :]
    inside = torch.zeros((boxes.shape[0], height, width), dtype=torch.bool, device=device)
    count = count.to(device)
    for slot in range(boxes.shape[1]):
        x0, y0, x1, y1 = (boxes[:, slot, c, None, None] for c in range(4))
        inside |= (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1) & (count > slot)[:, None, None]
    return inside


def nsa_label_batch(images: torch.Tensor, originals: torch.Tensor, boxes: torch.Tensor, count: torch.Tensor,
                    kind: str, y0: float = 15.0, k: float = 1 / 6, tol: float = 1.0) -> torch.Tensor:
    """NSA's labels (eqs. 13-14, median filtered) for a batch: :func:`nsad.synth.labels.nsa_label` on tensors.

    With ``d_i`` the channel-mean absolute difference in 8-bit levels and ``P`` the union of the
    boxes: ``b_i = [d_i > tol and i in P]`` then a 5 x 5 median (at least 13 of the 25 set);
    ``c_i = d_i b_i`` then the median over the radius-5 disk (81 values; computed only where at
    least 41 are non-zero, elsewhere it is 0, and for ``logistic`` only where the binary label
    is 1); ``logistic = b / (1 + exp(-k (c - y0)))``. Borders are SciPy's ``reflect``. For
    uint8 the disk median runs on the integer channel sums and is divided by ``C`` afterwards,
    as ``nsa_label`` does, so binary labels are equal and the others equal to float32 rounding.

    Args:
        images: (B, C, H, W) uint8/uint16 synthetic examples ``x~``.
        originals: (B, C, H, W) the destination images ``x_d``, same dtype.
        boxes: (B, K, 4) destination boxes ``(x0, y0, x1, y1)``; only the first ``count[b]`` count.
        count: (B,) patches per image.
        kind: ``binary``, ``continuous`` (8-bit levels) or ``logistic``.
        y0: the logistic's midpoint in 8-bit levels.
        k: the logistic's slope per 8-bit level.
        tol: change threshold in 8-bit levels.

    Returns:
        (B, H, W) float32 labels.

    Raises:
        ValueError: for an unknown ``kind`` or images and originals of different shapes or dtypes.
    """
    check_choice("label kind", kind, LABEL_KINDS)
    if images.shape != originals.shape or images.dtype != originals.dtype:
        raise ValueError(f"images {tuple(images.shape)} {images.dtype} and originals {tuple(originals.shape)} "
                         f"{originals.dtype} must match")
    batch, channels, height, width = images.shape
    inside = boxes_mask(boxes.to(images.device), count, height, width)
    if images.dtype == torch.uint8:
        values = (images.to(torch.int16) - originals.to(torch.int16)).abs_().sum(1, dtype=torch.int32)
        changed = (values > tol * channels) & inside
    else:
        diff = (images.to(torch.float32) - originals.to(torch.float32)).abs_().sum(1) / channels
        values = diff / np.float32(257.0)
        changed = (values > tol) & inside
    changed_u8 = changed.to(torch.uint8)
    binary = _box_count(changed_u8, BINARY_MEDIAN_PX) > BINARY_MEDIAN_PX**2 // 2
    if kind == "binary":
        return binary.to(torch.float32)
    footprint = int((2 * disk_half_widths(CONTINUOUS_MEDIAN_RADIUS) + 1).sum())       # 81 pixels
    where = _disk_count(changed_u8, CONTINUOUS_MEDIAN_RADIUS) > footprint // 2
    if kind == "logistic":
        where &= binary
    values = torch.where(changed, values, torch.zeros((), dtype=values.dtype, device=values.device))
    continuous = median_disk_at(values.to(torch.float32), where)
    if images.dtype == torch.uint8:
        continuous = continuous / channels
    if kind == "continuous":
        return continuous
    slope, middle = float(np.float32(k)), float(np.float32(y0))
    return binary.to(torch.float32) / (1.0 + torch.exp(-slope * (continuous - middle)))
