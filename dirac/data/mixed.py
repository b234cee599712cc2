"""A source that trains on one dataset and tests on another (SPEC §1.4: train CelebA-HQ, test the first N FFHQ)."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import Dataset

from dirac.data.source import ImageSource, check_split

SourceFactory = Callable[..., ImageSource]


class TrainTestSource(ImageSource):
    """train/val splits from `fit_source` at `root`, the test split from `test_source` at `test_root`."""

    def __init__(self, root: str | None, image_size: int, fit_source: SourceFactory, test_source: SourceFactory,
                 test_root: str | None) -> None:
        self.fit = fit_source(root=root, image_size=image_size)
        self.test = test_source(root=test_root, image_size=image_size)

    def dataset(self, split: str) -> Dataset:
        """The fit source's train/val split, or the test source's test split."""
        return (self.test if check_split(split) == "test" else self.fit).dataset(split)
