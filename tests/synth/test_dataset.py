import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nsad.synth import SynthDataset, get_task
from nsad.synth.dataset import draw_source_index


def images(count: int = 5, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


class AsArrays(torch.utils.data.Dataset):
    """Wrap SynthDataset for a DataLoader: arrays out, so they cross process boundaries."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        synth = self.dataset[index]
        return synth.image, synth.label


def test_examples_do_not_depend_on_worker_count_or_order():
    dataset = SynthDataset(images(), get_task("cutpaste-nsa"), seed=7, length=12)
    serial = [dataset[i] for i in range(12)]
    backwards = [dataset[i] for i in reversed(range(12))][::-1]
    loader = DataLoader(AsArrays(dataset), batch_size=3, num_workers=2, shuffle=False)
    parallel = [item for batch in loader for item in zip(*[t.numpy() for t in batch], strict=True)]
    for a, b, (image, label) in zip(serial, backwards, parallel, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.image, image)
        np.testing.assert_array_equal(a.label, label)


def test_epoch_and_seed_change_the_examples():
    dataset = SynthDataset(images(), get_task("cutpaste-nsa"), seed=7, length=4)
    first = dataset[0]
    dataset.set_epoch(1)
    assert dataset[0].patches != first.patches
    dataset.set_epoch(0)
    assert dataset[0].patches == first.patches
    assert SynthDataset(images(), get_task("cutpaste-nsa"), seed=8)[0].patches != first.patches


def test_source_is_another_image_drawn_uniformly():
    counts = np.zeros((4, 4), int)
    for i in range(2000):
        counts[i % 4, draw_source_index(np.random.default_rng([0, 0, i]), i % 4, 4)] += 1
    assert np.all(np.diag(counts) == 0)
    off_diagonal = counts[~np.eye(4, dtype=bool)]
    assert off_diagonal.min() > 120  # 500 draws per row over 3 sources: about 167 each


def test_dataset_errors():
    with pytest.raises(ValueError, match="at least one image"):
        SynthDataset([], get_task("fpi"))
    with pytest.raises(ValueError, match=r"image 0 is \(96, 96, 3\) uint8, image 1 is \(80, 96, 3\) uint8"):
        SynthDataset([images(1)[0], images(1)[0][:80]], get_task("fpi"))
    with pytest.raises(IndexError, match="example index 5 out of range for 5 examples"):
        SynthDataset(images(), get_task("fpi")).example(5)


def test_object_masks_are_cached_once_per_image(bottle_images):
    dataset = SynthDataset(bottle_images[:3], get_task("cutpaste-nsa", "mvtec/bottle"), seed=0, length=9)
    for i in range(9):
        dataset[i]
    assert sorted(dataset._objects) == [0, 1, 2]
