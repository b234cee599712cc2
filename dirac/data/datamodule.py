"""The image DataModule shared by every method (SPEC §4): one source object, three splits, seeded loaders."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from dirac.data.augment import Chain, SeededAugment
from dirac.data.source import ImageSource, check_split
from dirac.data.transforms import check_channels, to_channels

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",),
                None: ("train", "val", "test")}


def positive(name: str, value: int) -> int:
    """`value` as an int if it is a positive integer, else a ValueError naming `name` (SPEC §4)."""
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ChannelDataset(Dataset):
    """An RGB image dataset seen with `channels` channels (luma for grayscale) (SPEC §4)."""

    def __init__(self, dataset: Dataset, channels: int) -> None:
        self.dataset = dataset
        self.channels = check_channels(channels)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        return {**item, "image": to_channels(item["image"], self.channels)}


class SplitDataModule(L.LightningDataModule, ABC):
    """Base of the DataModules: per-split datasets built once on demand, a seeded shuffled train loader,
    ordered eval loaders (SPEC §4)."""

    def __init__(self, batch_size: int, eval_batch_size: int | None, num_workers: int, seed: int,
                 pin_memory: bool = False) -> None:
        super().__init__()
        self.pin_memory = bool(pin_memory)
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = positive("batch_size", batch_size)
        self.eval_batch_size = positive("eval_batch_size", batch_size if eval_batch_size is None else eval_batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self._datasets: dict[str, Dataset] = {}
        self._train_generator = torch.Generator().manual_seed(self.seed)

    @abstractmethod
    def build(self, split: str) -> Dataset:
        """Create the dataset of `split`."""

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets that `stage` (fit, validate, test, predict, or None for all) needs."""
        if stage not in STAGE_SPLITS:
            raise ValueError(f"unknown stage {stage!r}; expected one of {[key for key in STAGE_SPLITS if key]}")
        for split in STAGE_SPLITS[stage]:
            self.dataset(split)

    def dataset(self, split: str) -> Dataset:
        """The dataset of `split` (train, val or test), built once."""
        if check_split(split) not in self._datasets:
            self._datasets[split] = self.build(split)
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        """Shuffled train batches (generator seeded by `seed`)."""
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Val batches in dataset order."""
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in dataset order."""
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self._train_generator if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )


class ImageDataModule(SplitDataModule):
    """Serves `{"image": (channels, image_size, image_size) float in [0, 1], "name": str}` batches of one image source
    (SPEC §4).

    `source` is a factory (Hydra `_partial_: true`) called as `source(root=root, image_size=image_size)`;
    it is built on first use, so constructing the module touches no files. The train loader shuffles with
    a generator seeded by `seed`; val/test loaders keep the source order. Under DDP, Lightning's default
    distributed samplers shard the loaders. `augment` (e.g. `Dihedral`, `Colour` or a `Chain` of them) transforms
    training batches only, on the device after the transfer.
    """

    def __init__(
        self,
        source: Callable[..., ImageSource],
        image_size: int,
        channels: int = 3,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        root: str | Path | None = None,
        pin_memory: bool = False,
        augment: SeededAugment | Chain | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, pin_memory)
        self.augment = augment
        self.source_factory = source
        self.image_size = positive("image_size", image_size)
        self.channels = check_channels(channels)
        self.root = root
        self._source: ImageSource | None = None

    @property
    def source(self) -> ImageSource:
        """The image source, built from the factory on first access."""
        if self._source is None:
            source = self.source_factory(root=self.root, image_size=self.image_size)
            if not isinstance(source, ImageSource):
                raise TypeError(f"the data source factory must return an ImageSource, got {type(source).__name__}")
            self._source = source
        return self._source

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Training batches augmented (when `augment` is set); evaluation batches untouched."""
        if self.augment is None or self.trainer is None or not self.trainer.training:
            return batch
        return {**batch, "image": self.augment(batch["image"])}

    def state_dict(self) -> dict:
        """The augmentation's random state, saved in training checkpoints."""
        return {} if self.augment is None else {"augment": self.augment.random_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the augmentation's random state of a resumed run."""
        if self.augment is not None and "augment" in state:
            self.augment.set_random_state(state["augment"])

    def build(self, split: str) -> Dataset:
        """The source's dataset of `split`, with images converted to `channels`."""
        dataset = self.source.dataset(split)
        return dataset if self.channels == 3 else ChannelDataset(dataset, self.channels)
