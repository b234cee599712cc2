"""k-fold splits by photograph (issue 30): deterministic, disjoint, covering, each group tested exactly once, several
validation groups; the embedded scenes and image folders split by group; bad input refused by name."""

from __future__ import annotations

import pytest

from dirac.data.embedded import DEFAULT_SPLITS, EmbeddedSource
from dirac.data.folders import FolderSource
from dirac.data.source import KFold

GROUPS = [f"g{index}" for index in range(8)]


def all_folds(folds: int = 4, seed: int = 0, validation_groups: int = 2, groups=GROUPS) -> list[dict]:
    return [KFold(folds, index, seed, validation_groups).assign(groups) for index in range(folds)]


@pytest.mark.parametrize("folds, groups", [(2, 8), (3, 8), (4, 8), (4, 9), (5, 12)])
def test_every_group_is_tested_exactly_once_and_splits_are_disjoint(folds, groups):
    names = [f"g{index}" for index in range(groups)]
    assignments = all_folds(folds, groups=names)
    tested = [group for fold in assignments for group in fold["test"]]
    assert sorted(tested) == sorted(names)  # covering, each once
    for fold in assignments:
        train, val, test = (set(fold[split]) for split in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(names) and len(val) == 2 and train
    assert max(len(fold["test"]) for fold in assignments) - min(len(fold["test"]) for fold in assignments) <= 1


def test_the_assignment_is_deterministic_from_the_seed_and_ignores_input_order():
    assert all_folds(seed=3) == all_folds(seed=3, groups=GROUPS[::-1])
    assert all_folds(seed=3) != all_folds(seed=4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(folds=1), "at least 2 folds"),
    (dict(folds=4, index=4), r"fold index must lie in \[0, 3\]"),
    (dict(validation_groups=1), "several photographs"),
])
def test_bad_fold_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KFold(**kwargs)


def test_more_folds_than_groups_are_refused_naming_the_minimum():
    with pytest.raises(ValueError, match="9-fold .* 2 validation photographs needs at least 9 photographs, got 8"):
        KFold(folds=9).assign(GROUPS, what="photograph")
    assert KFold(folds=4).minimum_groups() == 4  # test 1, validation 2, training 1
    assert KFold(folds=2, validation_groups=3).minimum_groups() == 8  # test 4, validation 3, training 1


def test_embedded_folds_keep_the_stereo_pair_together_and_never_test_a_seen_photograph():
    tested = []
    for index in range(4):
        source = EmbeddedSource(fold=KFold(4, index))
        splits = source.split_groups()
        assert sum(len(groups) for groups in splits.values()) == 8
        halves = [split for split, names in source.photos.items() for name in names if name.startswith("motorcycle")]
        assert len(halves) == 2 and halves[0] == halves[1]
        assert not set(splits["test"]) & (set(splits["train"]) | set(splits["val"]))
        tested += splits["test"]
    assert sorted(tested) == sorted({"astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                                     "immunohistochemistry", "retina", "motorcycle"})


def test_embedded_patch_names_map_to_their_scene():
    source = EmbeddedSource()
    assert source.group_of("motorcycle_right_r03_c11") == "motorcycle"
    assert source.group_of("hubble_deep_field_x1.5_r00_c02") == "hubble_deep_field"
    assert source.group_of("chelsea_r10_c00") == "chelsea"
    with pytest.raises(ValueError, match="not an embedded patch name"):
        source.group_of("chelsea.png")


def test_embedded_fold_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown embedded photo\(s\) \['lena'\]"):
        EmbeddedSource(test=("lena",), fold=KFold(2))
    with pytest.raises(ValueError, match="needs at least 9 photographs, got 8"):
        EmbeddedSource(fold=KFold(9))
    fewer = dict(DEFAULT_SPLITS, train=("astronaut",), val=(), test=("chelsea", "coffee"))
    with pytest.raises(ValueError, match="needs at least 4 photographs, got 3"):
        EmbeddedSource(**fewer, fold=KFold(4))


def test_folder_folds_split_the_image_files(tmp_path, make_image):
    for index in range(7):
        make_image(tmp_path / ("sub" if index % 2 else ".") / f"{index}.png")
    tested = []
    for index in range(3):
        source = FolderSource(tmp_path, image_size=8, fold=KFold(3, index))
        splits = source.split_groups()
        assert [item["name"] for item in source.dataset("test")] == list(splits["test"])
        assert len(source.dataset("val")) == 2
        tested += splits["test"]
    assert sorted(tested) == sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.png"))


def test_folder_with_too_few_images_for_the_folds_is_refused_naming_the_root(tmp_path, make_image):
    for index in range(3):
        make_image(tmp_path / f"{index}.png")
    source = FolderSource(tmp_path, image_size=8, fold=KFold(4))
    with pytest.raises(ValueError, match=f"{tmp_path}.*needs at least 4 images, got 3"):
        source.split_groups()
    with pytest.raises(ValueError, match="drop the split list"):
        FolderSource(tmp_path, image_size=8, fold=KFold(2), test_list="list.txt")


def test_an_embedded_fold_lists_its_photographs_in_one_order_whatever_the_configured_splits():
    regrouped = dict(train=("retina", "motorcycle_right", "motorcycle_left", "hubble_deep_field"),
                     val=("rocket", "astronaut"), test=("coffee", "immunohistochemistry", "chelsea"))
    for index in range(4):
        assert EmbeddedSource(**regrouped, fold=KFold(4, index)).photos == EmbeddedSource(fold=KFold(4, index)).photos
