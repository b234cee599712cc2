"""Rate curves of a compression run (issue 31): one panel per image set, in the order the sets come, rows by bpp."""

from PIL import Image

from dirac.reporting.files import read_csv
from dirac.reporting.rate import panels, write_rate_curves


def point(images, series, codec, bpp, psnr, swd):
    return {"method": f"{series}@{images}", "codec": codec, "rd_series": series, "dp_series": series, "bpp": bpp,
            "psnr": psnr, "swd": swd, "images": images}


def test_one_panel_per_image_set_in_their_order_rows_by_bpp(tmp_path):
    rows = [point("64px", "RCC MMSE", "rcc", 0.9, 30.0, 0.02), point("64px", "WebP", "webp", 0.2, 28.0, 0.03),
            point("256px", "RCC MMSE", "rcc", 0.1, 20.0, 0.05), point("256px", "JPEG", "jpeg", 0.5, 27.0, 0.01)]
    assert list(panels(rows)) == ["64px", "256px"]
    paths = write_rate_curves(rows, tmp_path)
    written = read_csv(paths["rd_curve.csv"])
    assert [(row["images"], float(row["bpp"])) for row in written] == [("64px", 0.2), ("64px", 0.9), ("256px", 0.1),
                                                                       ("256px", 0.5)]
    single = write_rate_curves(rows[:2], tmp_path / "one")
    with Image.open(paths["rd_curve.png"]) as two, Image.open(single["rd_curve.png"]) as one:
        assert two.size[0] > 1.8 * one.size[0] and two.size[1] == one.size[1]
    with Image.open(paths["dp_curve.png"]) as image:
        assert image.format == "PNG"
