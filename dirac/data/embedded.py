"""The default dataset: patches of the colour photographs shipped with scikit-image (SPEC §4, §5).

Split by photograph, so that no photo contributes to two splits:
- train: astronaut, hubble_deep_field, immunohistochemistry, retina, motorcycle_left, motorcycle_right
  (the stereo pair shows one scene, so both halves stay in one split);
- val: rocket;
- test: chelsea, coffee.
`skimage.data.cat()` is the same photograph as `chelsea()`, so it is not offered.
Each photo is downscaled by `downscale` (bilinear, antialiased) and cut into non-overlapping
`image_size` patches in row-major order; near-constant patches (std below `min_std`, e.g. the black
border of the retina photo) are dropped. At 32 px with the defaults this gives about 890 train,
60 val and 82 test patches. For training only, `train_scales` cuts the train photos at several downscales
and `train_stride` lets patches overlap (more distinct patches of the same few photographs; the reference
uses neither); val and test stay at `downscale`, non-overlapping.
With `fold` (a `KFold`), the splits are instead fold `fold.index` of a k-fold split of the scenes of every photo
named in train, val and test (the stereo pair is one scene, the photos in one fixed order whatever the configured
splits), for cross-validation (`dirac.cross_validation`). `extra_train` photographs join the training split of every
fold (and of the plain split) and are never validated or tested on: more data for the prior, e.g. the grey photographs
(brick, camera, clock, coins, grass, gravel, moon: scikit-image's, as three equal channels).
`PhotoCrops` is another view of the same photographs: crops at native resolution, e.g. for the compression task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata
from torch import Tensor
from torch.utils.data import Dataset

from dirac.data.source import ImageSource, KFold, TensorImageDataset, check_split
from dirac.data.transforms import to_float

PHOTOS = {
    "astronaut": skdata.astronaut,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "rocket": skdata.rocket,
    "hubble_deep_field": skdata.hubble_deep_field,
    "immunohistochemistry": skdata.immunohistochemistry,
    "retina": skdata.retina,
    "motorcycle_left": lambda: skdata.stereo_motorcycle()[0],
    "motorcycle_right": lambda: skdata.stereo_motorcycle()[1],
}
GREY_PHOTOS = ("brick", "camera", "clock", "coins", "grass", "gravel", "moon")  # grey photographs, as 3 equal channels
PHOTOS.update({name: (lambda load: lambda: np.repeat(load()[..., None], 3, axis=2))(getattr(skdata, name))
               for name in GREY_PHOTOS})
SCENES = {"motorcycle_left": "motorcycle", "motorcycle_right": "motorcycle"}  # photos of one scene share a group
PATCH_NAME = re.compile(r"^(?P<photo>.+?)(?:_x[0-9.]+)?_r\d+_c\d+$")
DEFAULT_SPLITS = {
    "train": ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
              "motorcycle_right"),
    "val": ("rocket",),
    "test": ("chelsea", "coffee"),
}

# The order of a fold's photos (and so of its patches): the default splits' order, whatever the configured splits say.
FOLD_ORDER = (*(name for names in DEFAULT_SPLITS.values() for name in names), *GREY_PHOTOS)


def scene(name: str) -> str:
    """The scene an embedded photo shows (its own name, except the halves of the stereo pair: `motorcycle`)."""
    return SCENES.get(name, name)


@cache
def photo(name: str, downscale: float) -> Tensor:
    """One embedded photograph as a float `(3, H / downscale, W / downscale)` tensor in [0, 1], cached in memory
    (SPEC §4)."""
    image = to_float(torch.from_numpy(PHOTOS[name]().copy()).permute(2, 0, 1))
    if downscale == 1:
        return image
    height, width = (round(side / downscale) for side in image.shape[-2:])
    small = F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return small[0].clamp_(0.0, 1.0)


def patches(image: Tensor, size: int, stride: int | None = None) -> tuple[Tensor, list[tuple[int, int]]]:
    """`size` x `size` patches of a `(C, H, W)` image every `stride` pixels (default `size`: non-overlapping),
    row-major, with their (row, column) grid indices (SPEC §4)."""
    stride = size if stride is None else int(stride)
    channels = image.shape[0]
    grid = image.unfold(1, size, stride).unfold(2, size, stride)
    rows, cols = grid.shape[1:3]
    tiles = grid.permute(1, 2, 0, 3, 4).reshape(rows * cols, channels, size, size)
    return tiles.contiguous(), [(row, col) for row in range(rows) for col in range(cols)]


class EmbeddedSource(ImageSource):
    """Patch dataset of the scikit-image photographs, split by photograph (module docstring lists the splits)
    (SPEC §4)."""

    def __init__(
        self,
        image_size: int = 32,
        root: str | Path | None = None,
        downscale: float = 2.0,
        min_std: float = 0.02,
        train: Sequence[str] = DEFAULT_SPLITS["train"],
        val: Sequence[str] = DEFAULT_SPLITS["val"],
        test: Sequence[str] = DEFAULT_SPLITS["test"],
        train_scales: Sequence[float] | None = None,
        train_stride: int | None = None,
        fold: KFold | None = None,
        extra_train: Sequence[str] = (),
    ) -> None:
        if root is not None:
            raise ValueError(f"the embedded dataset ships with scikit-image and takes no root; got root={root!r} (use "
                             "data=folder for your own images)")
        scales = [float(scale) for scale in (train_scales or [downscale])]
        if min([downscale, *scales]) < 1:
            raise ValueError(f"downscale and train_scales must be >= 1, got {downscale} and {train_scales}")
        if train_stride is not None and not 1 <= train_stride <= image_size:
            raise ValueError(f"train_stride must lie in [1, image_size={image_size}], got {train_stride}")
        self.image_size = int(image_size)
        self.downscale = float(downscale)
        self.train_scales, self.train_stride = scales, train_stride
        self.min_std = float(min_std)
        self.photos = {"train": tuple(train), "val": tuple(val), "test": tuple(test)}
        self._check_photos(tuple(extra_train))
        if fold is not None:
            self.photos = self._fold_photos(fold)
        self.photos["train"] += tuple(extra_train)
        self._datasets: dict[str, TensorImageDataset] = {}

    def _check_photos(self, extra_train: tuple[str, ...]) -> None:
        named = [name for names in self.photos.values() for name in names] + list(extra_train)
        unknown = sorted(set(named) - set(PHOTOS))
        if unknown:
            raise ValueError(f"unknown embedded photo(s) {unknown}; available: {', '.join(PHOTOS)}")
        if len(named) != len(set(named)):
            raise ValueError(f"a photo may belong to one split only, got {self.photos} and extra_train {extra_train}")

    def _fold_photos(self, fold: KFold) -> dict[str, tuple[str, ...]]:
        """The photos of each split of `fold`, dealt by scene over every photo named in the configured splits and
        listed in FOLD_ORDER, so that a fold's data never depend on how an experiment split the photographs."""
        named = sorted((name for names in self.photos.values() for name in names), key=FOLD_ORDER.index)
        scenes = fold.assign([scene(name) for name in named], what="photograph")
        return {split: tuple(name for name in named if scene(name) in groups) for split, groups in scenes.items()}

    def split_groups(self) -> dict[str, tuple[str, ...]]:
        """The scenes (photographs; the stereo pair is one) of each split."""
        return {split: tuple(sorted({scene(name) for name in names})) for split, names in self.photos.items()}

    def group_of(self, name: str) -> str:
        """The scene of a patch called `<photo>[_x<scale>]_r<row>_c<col>`."""
        match = PATCH_NAME.match(name)
        if match is None:
            raise ValueError(f"{name!r} is not an embedded patch name (<photo>_r<row>_c<col>)")
        return scene(match["photo"])

    def dataset(self, split: str) -> TensorImageDataset:
        """The patches of the photos of `split`, built once per source."""
        if check_split(split) not in self._datasets:
            train = split == "train"
            self._datasets[split] = self._build(self.photos[split], self.train_scales if train else [self.downscale],
                                                self.train_stride if train else None)
        return self._datasets[split]

    def _build(self, names: Sequence[str], scales: Sequence[float], stride: int | None) -> TensorImageDataset:
        tiles, labels = [], []
        for name in names:
            for scale in scales:
                cut, places = patches(photo(name, scale), self.image_size, stride)
                keep = cut.flatten(1).std(dim=1) >= self.min_std
                tiles.append(cut[keep])
                prefix = name if scale == self.downscale else f"{name}_x{scale:g}"
                labels += [f"{prefix}_r{row:02d}_c{col:02d}" for (row, col), kept in zip(places, keep.tolist()) if kept]
        if not labels:
            raise ValueError(f"photos {list(names)} give no {self.image_size}px patches at downscale {list(scales)}; "
                             "lower image_size or downscale")
        return TensorImageDataset(torch.cat(tiles), labels, self.image_size)


class PhotoCrops(Dataset):
    """An image set of `size` px crops of embedded photographs at `downscale` (1: their native resolution, never
    resized): `per_photo` of each photograph's non-overlapping crops, spread evenly over its grid in row-major order
    (all of them when it has fewer), as `{"image", "name"}` items named `<photo>_<size>px_r<row>_c<col>`."""

    def __init__(self, photos: Sequence[str], size: int, per_photo: int, downscale: float = 1.0) -> None:
        unknown = sorted(set(photos) - set(PHOTOS))
        if unknown or not photos:
            raise ValueError(f"photos must name embedded photographs ({', '.join(PHOTOS)}), got {list(photos)}")
        if size < 1 or per_photo < 1 or downscale < 1:
            raise ValueError(f"size and per_photo must be >= 1 and downscale >= 1, got {size}, {per_photo}, "
                             f"{downscale}")
        images, self.names = [], []
        for name in photos:
            full = photo(name, float(downscale))
            if size > min(full.shape[1:]):
                raise ValueError(f"the photograph {name} is {full.shape[2]}x{full.shape[1]} px at downscale "
                                 f"{downscale:g}: no {size} px crop fits")
            tiles, places = patches(full, size)
            for index in np.linspace(0, len(places) - 1, min(per_photo, len(places))).round().astype(int):
                images.append(tiles[index])
                self.names.append(f"{name}_{size}px_r{places[index][0]:02d}_c{places[index][1]:02d}")
        self.images = torch.stack(images)
        self.name = f"{size}px"

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "name": self.names[index]}
