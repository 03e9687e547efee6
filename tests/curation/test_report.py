"""`vidrd-data report OUT`: one self-contained HTML file; rendered by headless Chromium, every section shows."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.curation.out_helpers import POSTER_RGB, make_output, poster_present
from vidrd_data.cli import main
from vidrd_data.report import SECTIONS


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = make_output(tmp_path_factory.mktemp("report_out"))
    assert main(["report", str(out)]) == 0
    return out / "report.html"


def test_report_is_self_contained_and_has_every_section(report):
    html = report.read_text(encoding="utf-8")
    for sid, title, _ in SECTIONS:
        assert f'id="{sid}"' in html and title in html
    # nothing fetched from anywhere: no scripts, no external src/href/url(), images are data URIs
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#|data:)""", html)
    assert "url(" not in html and "@import" not in html
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) == 12  # 6 samples x 2 sources (n=24 max)
    # the numbers it shows are the output's: 6 successes per source, 2 filtered, 1 failed; reason classes
    assert ">6</text>" in html and "duplicate_of" in html and "near_static" in html
    assert "motion_mean" in html and "clip_text_sim" in html and "curation-test" in html


def test_report_on_a_folder_that_is_not_an_output_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no committed shards" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_report_renders_every_section_in_headless_chromium(report, tmp_path):
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--force-color-profile=srgb", "--hide-scrollbars",
           "--window-size=1300,3600", f"--screenshot={png}", report.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    shot = np.asarray(Image.open(png).convert("RGB"))
    for sid, _, colour in SECTIONS:  # each section's marker colour is on screen: the section rendered
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert poster_present(shot, rgb, tol=6) > 200, f"section {sid} ({colour}) not visible in the screenshot"
    assert poster_present(shot, POSTER_RGB) > 1000  # the sample grid's first poster (an inline image) was drawn
    # the outcome bars (success green) were drawn by the inline SVG
    assert poster_present(shot, (0x2C, 0xA0, 0x2C), tol=6) > 1000
