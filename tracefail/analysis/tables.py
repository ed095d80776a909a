"""Statistics tables as CSV, Markdown, JSON or Parquet: one way to write every section."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import polars as pl

FORMATS = ("table", "csv", "json", "parquet", "md")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(frame: pl.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; pipes and newlines in cells are escaped."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in frame.columns) + " |", "|" + "---|" * frame.width]
    for row in frame.iter_rows():
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


# OWASP's CSV injection rule: a text cell starting with one of these is a formula to a
# spreadsheet (`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`); a leading quote makes it text.
FORMULA_START = r"^[=+\-@\t\r]"


def csv(frame: pl.DataFrame) -> str:
    """CSV with text cells that a spreadsheet would run as formulas neutralised."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    safe = frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in texts
    )
    return safe.write_csv()


def json_text(value: object) -> str:
    """Indented JSON, dates and other values as their str(); orjson because the standard library's
    indenting encoder is pure Python (6.8 of 18 s for the ops section on 100k traces)."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
    return orjson.dumps(value, default=str, option=options).decode("utf-8") + "\n"


def write_sections(sections: dict[str, pl.DataFrame], fmt: str, directory: Path) -> list[Path]:
    """One file per section (`modes.csv`, `cooccurrence.parquet`, ...) under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in sections.items():
        path = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        elif fmt == "csv":
            path.write_text(csv(frame), encoding="utf-8")
        elif fmt == "md":
            path.write_text(markdown(frame), encoding="utf-8")
        else:
            raise ValueError(f"cannot write {fmt} files per section")
        written.append(path)
    return written
