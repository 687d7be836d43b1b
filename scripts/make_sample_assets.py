"""Regenerate nsad's packaged sample (src/nsad/assets/bottle_sample) from MVTec AD's bottle category.

The sample is a small derivative of MVTec AD (CC BY-NC-SA 4.0): the first 16 training images,
the first 3 normal test images and the first 2 images of each defect type with their masks,
resized to 128x128 (images with cv2.INTER_AREA, masks with nearest neighbour and re-binarised to
0/255), in MVTec AD's layout, with the licence text and an attribution README beside them.

Usage:
    python scripts/make_sample_assets.py [--source ../shared/data/mvtec_ad_256/bottle]
                                         [--out src/nsad/assets/bottle_sample] [--size 128]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from nsad.data.folder import find_dataset, read_mask
from nsad.data.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST_GOOD, N_PER_DEFECT = 16, 3, 2

README = """\
# MVTec AD bottle sample

A few images of the *bottle* category of the MVTec Anomaly Detection data set (MVTec AD), for
`nsad demo` and the tests. They are a derivative of MVTec AD, made by `scripts/make_sample_assets.py`,
and are distributed under the same licence as the data set.

## Attribution

MVTec AD, copyright 2019 MVTec Software GmbH, licensed under the Creative Commons
Attribution-NonCommercial-ShareAlike 4.0 International License (CC BY-NC-SA 4.0); the licence text is
in `LICENSE.txt` beside this file and at <http://creativecommons.org/licenses/by-nc-sa/4.0/>.
For uses that fall under the licence's commercial-use clause, contact MVTec Software GmbH.

Papers to cite:

- Paul Bergmann, Michael Fauser, David Sattlegger, Carsten Steger, "MVTec AD: A Comprehensive
  Real-World Dataset for Unsupervised Anomaly Detection", IEEE Conference on Computer Vision and
  Pattern Recognition (CVPR), 2019.
- Paul Bergmann, Kilian Batzner, Michael Fauser, David Sattlegger, Carsten Steger, "The MVTec Anomaly
  Detection Dataset: A Comprehensive Real-World Dataset for Unsupervised Anomaly Detection",
  International Journal of Computer Vision (IJCV) 129, 2021.

## Changes made

The original 900x900 images were resized to {size}x{size} pixels (images with pixel-area averaging,
through a 256x256 copy resized with Lanczos; masks with nearest neighbour, re-binarised to 0/255).
File names are those of the original data set. Nothing else was changed.

## Files

{files}
"""


def _describe(out: Path) -> str:
    lines = []
    for folder in sorted({p.parent for p in out.rglob("*.png")}):
        names = sorted(p.name for p in folder.glob("*.png"))
        lines.append(f"- `{folder.relative_to(out).as_posix()}/`: {', '.join(names)}")
    return "\n".join(lines)


def make_sample(source: Path, out: Path, size: int) -> None:
    """Write the sample category folder ``out`` from the category folder ``source``."""
    layout = find_dataset(source)
    if out.exists():
        shutil.rmtree(out)
    chosen = [(p, out / "train" / "good" / p.name) for p in layout.train[:N_TRAIN]]
    by_type: dict[str, list] = {}
    for sample in layout.test:
        by_type.setdefault(sample.defect_type, []).append(sample)
    for defect_type, samples in sorted(by_type.items()):
        keep = samples[:N_PER_DEFECT] if samples[0].is_anomalous else samples[:N_TEST_GOOD]
        for sample in keep:
            chosen.append((sample.path, out / "test" / defect_type / sample.path.name))
            if sample.mask_path is not None:
                mask = read_mask(sample.mask_path, size, image_path=sample.path)
                target = out / "ground_truth" / defect_type / sample.mask_path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(target, (mask.astype(np.uint8) * 255))
    for src, dst in chosen:
        dst.parent.mkdir(parents=True, exist_ok=True)
        image = read_image(src)
        small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        write_image(dst, small.reshape(size, size, image.shape[2]))
    shutil.copyfile(source / "license.txt", out / "LICENSE.txt")
    (out / "README.md").write_text(README.format(size=size, files=_describe(out)))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(chosen)} images to {out} ({total / 1e6:.2f} MB)")


def main() -> None:
    """Parse the command line and write the sample."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_source = REPO.parent / "shared" / "data" / "mvtec_ad_256" / "bottle"
    parser.add_argument("--source", type=Path, default=default_source)
    parser.add_argument("--out", type=Path, default=REPO / "src" / "nsad" / "assets" / "bottle_sample")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    make_sample(args.source, args.out, args.size)


if __name__ == "__main__":
    main()
