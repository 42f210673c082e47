"""The catalog CSV a collection is uploaded and downloaded as: parse and write. Pure.

UTF-8 text (a leading byte-order mark is ignored), a header row, then one row per image,
comma-separated with RFC 4180 quoting (a cell holding a comma, a quote or a line break is
quoted, quotes doubled). The image column (an http(s) URL or a path) is required; the id
column is optional (without it, a row's id is its number, 1 for the first row); every other
column is a metadata field. A bad row is reported with its line and never stops the rest;
only a bad header refuses the whole file.

Writing is the inverse: ``cell_text`` turns a stored value back into the text that parses
to it again, so a download uploaded unchanged stores the same records.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest
from indexer.feeds import FeedError, FeedItem, RowParser, SeenIds

IMAGE_URL_FIELD = "image_url"  # where a document keeps the image as its feed gave it


@dataclass(frozen=True)
class CsvRow:
    ref: str  # "line <n>": where the row starts in the file, for reports
    cells: dict[str, str]


@dataclass(frozen=True)
class RowProblem:
    ref: str
    id: str | None
    reason: str


@dataclass(frozen=True)
class CsvTable:
    columns: tuple[str, ...]
    rows: tuple[CsvRow, ...]
    problems: tuple[RowProblem, ...]  # rows that are not even well-formed CSV rows


def read_table(text: str, *, image_column: str, id_column: str) -> CsvTable:
    """Parse ``text``; ``InvalidRequest`` for a file without a usable header."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidRequest(f"CSV header: {exc}") from None
    if header is None or not any(cell.strip() for cell in header):
        raise InvalidRequest("the CSV is empty: it needs a header row")
    columns = tuple(cell.strip() for cell in header)
    blank = [i + 1 for i, name in enumerate(columns) if not name]
    if blank:
        raise InvalidRequest(f"CSV header: column {blank[0]} has no name")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise InvalidRequest(f"CSV header: column {repeated[0]!r} appears twice")
    if image_column not in columns:
        raise InvalidRequest(
            f"CSV header: the {image_column!r} column (image URL or path) is missing"
        )
    rows: list[CsvRow] = []
    problems: list[RowProblem] = []
    number = 0
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise InvalidRequest(f"CSV line {line}: {exc}") from None
        if cells is None:
            break
        if not cells:  # a blank line
            continue
        number += 1
        ref = f"line {line}"
        values = dict(zip(columns, cells, strict=False))
        if id_column not in columns:
            values[id_column] = str(number)
        row_id = values.get(id_column) or None
        if len(cells) != len(columns):
            more = "more" if len(cells) > len(columns) else "fewer"
            reason = f"{len(cells)} cells, {more} than the {len(columns)} header columns"
            problems.append(RowProblem(ref, row_id, reason))
            continue
        rows.append(CsvRow(ref, values))
    return CsvTable(columns, tuple(rows), tuple(problems))


def table_items(
    table: CsvTable, config: EngineConfig, seen: SeenIds, base_dir: Path
) -> Iterator[FeedItem]:
    """The table's rows as the indexer's records (types checked, duplicate ids refused)."""
    parser = RowParser(config, base_dir, seen)
    for problem in table.problems:
        if problem.id is not None:
            seen.add(problem.id)
        yield FeedError(problem.ref, problem.id, problem.reason)
    for row in table.rows:
        yield parser.parse(row.ref, dict(row.cells))


def cell_text(value: object) -> str:
    """A stored value as the cell text that parses back to it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)  # lists: kept readable, not split on import


def columns_of(config: EngineConfig) -> list[str]:
    """The header an export writes: id, image, then the declared fields in config order."""
    return [config.id_field, config.image_field, *config.fields]


def row_of(doc_id: str, source: Mapping[str, object], config: EngineConfig) -> dict[str, object]:
    """A stored document's ``_source`` as a CSV row (the image as the feed gave it)."""
    row: dict[str, object] = {name: source[name] for name in config.fields if name in source}
    row[config.id_field] = doc_id
    row[config.image_field] = source.get(IMAGE_URL_FIELD)
    return row


def write_table(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """CSV text with a header of ``columns``; missing values are empty cells."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell_text(row.get(name)) for name in columns])
    return out.getvalue()
