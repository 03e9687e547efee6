"""`vidrd-data report OUT`: one self-contained HTML page about a built output (no network, no JavaScript).

`collect` (data.py) reads the committed status rows, dataset_info.json and a few samples; `svg.py` draws bar
charts and histograms as inline SVG; `page.py` lays out the sections. Images are inline data URIs.
"""

from vidrd_data.report.page import SECTIONS, write_report

__all__ = ["SECTIONS", "write_report"]
