"""Results tables: paper metric order, n/a cells, the notes line, CSV round trip, atomic writes."""

import pytest

from dirac.reporting import read_results, results_table, write_results

RESULTS = {"measurement": {"psnr": 22.123, "ssim": 0.61234, "swd": 0.2, "mse": 0.0061},
           "dirac_po": {"psnr": 26.67, "ssim": 0.7418, "lpips": 0.2716, "fid": 53.36, "swd": 0.05,
                        "data_consistency": 0.51, "mse": 0.0021}}
NOTES = {"clipping": "outputs and targets clipped to [0, 1]", "lpips_net": "vgg", "DO stop_t": "0.700"}


def test_table_orders_metrics_marks_missing_and_states_the_notes():
    lines = results_table(RESULTS, NOTES).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["method", "PSNR (dB)", "SSIM", "LPIPS", "FID", "patch SWD",
                      "data consistency ‖A₁(x̂₀) − y‖", "MSE"]
    measurement = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert measurement[:7] == ["measurement", "22.12", "0.6123", "n/a", "n/a", "0.2000", "n/a"]
    assert "| dirac_po | 26.67 | 0.7418 | 0.2716 | 53.36 |" in lines[3]
    assert lines[-1] == "Notes: clipping: outputs and targets clipped to [0, 1]; LPIPS net: vgg; DO stop_t: 0.700"


def test_table_requires_clipping_and_lpips_net_notes():
    with pytest.raises(ValueError, match="lpips_net"):
        results_table(RESULTS, {"clipping": "[0, 1]"})


def test_results_are_written_atomically_and_read_back(tmp_path):
    paths = write_results(RESULTS, tmp_path / "run", notes=NOTES)
    assert set(paths) == {"results.md", "results.csv"}
    assert paths["results.md"].read_text().startswith("| method |")
    assert read_results(paths["results.csv"]) == RESULTS
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["results.csv", "results.md"]


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    """A report written through a temporary file is readable like any new file (0666 less the umask), not 0600."""
    from dirac.reporting.files import UMASK, write_text

    path = write_text(tmp_path / "results.md", "| a |\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert UMASK & 0o044 or path.stat().st_mode & 0o044
