"""Transforms and batch checks of the data layer."""

import pytest
import torch

from dirac.data import check_batch
from dirac.data.transforms import center_square, check_channels, read_rgb, square_resize, to_channels


def test_center_square_keeps_the_middle():
    image = torch.zeros(3, 4, 12)
    image[:, :, 4:8] = 1.0  # the middle third of a 3:1 image
    assert torch.equal(center_square(image), torch.ones(3, 4, 4))
    assert center_square(torch.zeros(1, 9, 5)).shape == (1, 5, 5)


def test_square_resize_uint8_range_constant_and_downscale_mean():
    constant = torch.full((3, 30, 50), 51, dtype=torch.uint8)
    out = square_resize(constant, 8)
    assert out.dtype == torch.float32 and out.shape == (3, 8, 8)
    torch.testing.assert_close(out, torch.full((3, 8, 8), 0.2))
    # antialiased 2x bilinear downscale of a checkerboard is its mean (no aliasing)
    board = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2).float().expand(3, 16, 16)
    torch.testing.assert_close(square_resize(board, 8), torch.full((3, 8, 8), 0.5), atol=0.02, rtol=0)


def test_square_resize_returns_a_copy():
    image = torch.rand(3, 8, 8)
    out = square_resize(image, 8)
    out.zero_()
    assert image.abs().sum() > 0


def test_to_channels_luma_and_repeat():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
    torch.testing.assert_close(to_channels(rgb, 1), torch.full((1, 2, 2), 0.299))
    gray = torch.rand(2, 1, 4, 4)
    assert torch.equal(to_channels(gray, 3), gray.expand(2, 3, 4, 4))
    torch.testing.assert_close(to_channels(to_channels(gray, 3), 1), gray)


def test_check_channels_rejects_other_counts():
    with pytest.raises(ValueError, match="channels must be 1"):
        check_channels(4)


def test_read_rgb_names_undecodable_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.png"):
        read_rgb(bad)


def test_check_batch_accepts_good_and_names_bad_samples():
    images = torch.rand(4, 3, 8, 8)
    assert check_batch(images, 3, 8) is images
    with pytest.raises(ValueError, match=r"shape \(B, 3, 8, 8\), got \(4, 3, 8, 7\)"):
        check_batch(images[..., :7], 3, 8)
    with pytest.raises(ValueError, match="got"):
        check_batch(images[0], 3, 8)
    with pytest.raises(ValueError, match="shape"):
        check_batch(images, 1, 8)
    nan = images.clone()
    nan[2, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="sample 2 contains NaN or Inf"):
        check_batch(nan, 3, 8)
    inf = images.clone()
    inf[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sample 1 contains NaN or Inf"):
        check_batch(inf, 3, 8)
    high = images.clone()
    high[3, 0, 0, 0] = 1.5
    with pytest.raises(ValueError, match=r"sample 3 has values in .*1\.5"):
        check_batch(high, 3, 8)
    slight = images.clone()
    slight[0, 0, 0, 0] = -5e-4  # within tolerance
    check_batch(slight, 3, 8)
