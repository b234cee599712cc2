"""The data layer (SPEC §4): one image DataModule over pluggable sources, the 2-D toy mixture, batch checks."""

from dirac.data.checks import check_batch
from dirac.data.cifar import Cifar10Source
from dirac.data.augment import Chain, Colour, Dihedral
from dirac.data.datamodule import ImageDataModule, SplitDataModule
from dirac.data.embedded import EmbeddedSource, PhotoCrops
from dirac.data.folders import CelebAHQSource, FFHQSource, FolderSource, ImageNetSource
from dirac.data.source import SPLITS, ImageSource
from dirac.data.toy import ToyDataModule, mixture_means, sample_mixture

__all__ = [
    "SPLITS",
    "CelebAHQSource",
    "Cifar10Source",
    "Chain",
    "Colour",
    "Dihedral",
    "EmbeddedSource",
    "FFHQSource",
    "FolderSource",
    "ImageDataModule",
    "ImageNetSource",
    "ImageSource",
    "PhotoCrops",
    "SplitDataModule",
    "ToyDataModule",
    "check_batch",
    "mixture_means",
    "sample_mixture",
]
