"""Tables (Parquet, CSV) as partitions of row ranges: scanned once on the driver, rows read in the workers.

Parquet: the footer gives the row count and columns (no data read); a worker reads only the row groups that
overlap its range. CSV: the driver reads the file once before Ray starts (encoding errors and missing columns are
reported then, naming the file and line) and remembers the byte offset of each partition's first record, so a
worker seeks straight to its rows. Quoted fields with newlines are handled (records, not lines, are counted).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

from vidrd_data.sources.base import Partition
from vidrd_data.sources.inputs import detect_encoding, open_input, text_lines


@dataclass
class TableScan:
    path: str
    kind: str  # "parquet" | "csv"
    columns: list[str]
    rows: int
    encoding: str = "utf-8"
    starts: list[tuple[int, int, int]] = field(default_factory=list)  # csv: (row, byte offset, line number)


def _records(lines: Iterator[tuple[int, int, str]]) -> Iterator[tuple[list[str], int, int]]:
    """csv records with (line number of the record's end, byte offset after it)."""
    last = [0, 0]

    def feed():
        for lineno, end, text in lines:
            last[0], last[1] = lineno, end
            yield text
    for rec in csv.reader(feed()):
        yield rec, last[0], last[1]


def scan_table(path: str, encoding: str, rows_per_partition: int, needed: list[str], name: str) -> TableScan:
    """Columns and row count (and CSV partition offsets); ValueError naming the file for anything unreadable."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_input(path) as f:
            meta = pq.ParquetFile(f)
            cols, rows = list(meta.schema_arrow.names), meta.metadata.num_rows
        scan = TableScan(path, "parquet", cols, rows)
    else:
        with open_input(path) as f:
            enc = detect_encoding(f.read(3), encoding)
        scan = TableScan(path, "csv", [], 0, enc)
        records = _records(text_lines(path, enc, name=name))
        try:
            header, line, offset = next(records)
        except StopIteration:
            raise ValueError(f"{name}: empty table (no header line)") from None
        scan.columns = [c.strip() for c in header]
        for n, (rec, end_line, end_offset) in enumerate(records):
            if n % rows_per_partition == 0:
                scan.starts.append((n, offset, line + 1))
            offset, line = end_offset, end_line
            scan.rows = n + 1
    missing = [c for c in needed if c and c not in scan.columns]
    if missing:
        raise ValueError(f"{name}: no column(s) {missing}; columns: {scan.columns}")
    return scan


def table_partitions(scan: TableScan, rows_per_partition: int) -> Iterator[dict[str, Any]]:
    if scan.kind == "csv":
        for i, (row, offset, line) in enumerate(scan.starts):
            stop = scan.starts[i + 1][0] if i + 1 < len(scan.starts) else scan.rows
            # Seeking past the BOM: decode the rest as plain utf-8.
            enc = "utf-8" if scan.encoding == "utf-8-sig" else scan.encoding
            yield {"start": row, "stop": stop, "byte": offset, "line": line, "encoding": enc,
                   "columns": scan.columns, "rows": scan.rows}
    else:
        for start in range(0, scan.rows, rows_per_partition):
            yield {"start": start, "stop": min(scan.rows, start + rows_per_partition), "columns": scan.columns,
                   "rows": scan.rows}


def read_rows(path: str, part: dict[str, Any], name: str) -> Iterator[tuple[int, int, dict]]:
    """(row number, line number or -1, {column: value}) for the partition's rows; null/NaN cells become None."""
    start, stop, columns = part["start"], part["stop"], part["columns"]
    if "byte" in part:
        records = _records(text_lines(path, part["encoding"], start_byte=part["byte"], start_line=part["line"],
                                      name=name))
        line = part["line"]
        for row in range(start, stop):
            rec, end_line, _ = next(records)
            cells = {c: (rec[i] if i < len(rec) and rec[i] != "" else None) for i, c in enumerate(columns)}
            yield row, line, cells
            line = end_line + 1
        return
    import pyarrow.parquet as pq

    with open_input(path) as f:
        pf = pq.ParquetFile(f)
        first = 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            lo, hi = max(start, first), min(stop, first + n)
            if lo < hi:
                table = pf.read_row_group(g).slice(lo - first, hi - lo)
                for k, rec in enumerate(table.to_pylist()):
                    yield lo + k, -1, {c: _cell(rec.get(c)) for c in columns}
            first += n
            if first >= stop:
                break


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


class TablePartitions:
    """Reader mixin for scanned tables: `plan()` sets `self._scan`; one partition (one output shard) per row range."""

    def partitions(self) -> Iterator[Partition]:
        if getattr(self, "_scan", None) is None:
            self.plan()
        for i, part in enumerate(table_partitions(self._scan, self.inputs_per_partition)):
            yield Partition(self.source_name, i, part, part["stop"] - part["start"],
                            f"rows {part['start']}-{part['stop'] - 1}")
