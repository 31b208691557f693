"""The paper's own numbers, read from data: ``paper_figures.json`` beside this module, a copy of
``figures.json`` from the paper's folder (``../shared/paper/``), where every number the text of
"Real-Time User-guided Adaptive Colorization with Vision Transformer" (AdaColViT, WACV 2024)
gives is typed once: Tables 1-4 and the settings. Fig. 4 and Figs. 6-8 are plots: no numbers.

    >>> paper_value("table2", "AdaColViT-T", "latency_ms")
    34
    >>> paper_value("table1", {"dataset": "CUB-200", "method": "iColoriT-T"}, "psnr10")
    29.6
    >>> paper_value("table2", "SwinIR-T", "psnr10") is None      # the paper gives no such number
    True

A number the paper does not give is None, never a guess. Where the text and a table differ,
the data holds the table's number and says so (``text_differs``); the report uses the table.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Mapping, Optional, Union

__all__ = ["FIGURES_FILE", "TABLES", "CITATION", "load_figures", "table_rows", "paper_value", "table_title", "source",
           "text_differs"]

FIGURES_FILE = "paper_figures.json"
TABLES = ("table1", "table2", "table3", "table4")
CITATION = "AdaColViT (Real-Time User-guided Adaptive Colorization with Vision Transformer), WACV 2024"

Row = Union[str, Mapping[str, Any]]


@functools.lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("adacolor").joinpath(FIGURES_FILE).read_text(encoding="utf-8")


def load_figures() -> dict[str, Any]:
    """The paper's figures as typed (a fresh dict on each call: changing it changes nothing else)."""
    return json.loads(_text())


def table_rows(table: str, figures: Optional[Mapping[str, Any]] = None) -> list[dict[str, Any]]:
    """The rows of one of the paper's tables (``table1`` .. ``table4``) as ``{column: value}``;
    a value the paper does not give is None. KeyError for a table the data does not have."""
    figures = load_figures() if figures is None else figures
    data = figures[table]
    columns = data["columns"]
    return [dict(zip(columns, row)) for row in data["rows"]]


def paper_value(table: str, row: Row, column: str,
                figures: Optional[Mapping[str, Any]] = None) -> Optional[float]:
    """One number of the paper's tables, or None where the paper gives none.

    Args:
        table: ``table1`` .. ``table4``.
        row: the row's method name (the ``method`` column, as the paper spells it), or
            ``{column: value}`` naming it by its key columns (Table 1: dataset and method;
            Table 4: groups).
        column: one of the table's columns (e.g. ``psnr10``, ``gflops``, ``latency_ms``).
        figures: the data (default: ``paper_figures.json``).

    Returns:
        The number; None for a row the table does not have or a cell it leaves empty.

    Raises:
        KeyError: an unknown table or column (a typo, not a missing number).
        ValueError: ``row`` matches more than one row.
    """
    figures = load_figures() if figures is None else figures
    if column not in figures[table]["columns"]:
        raise KeyError(f"{table} has no column {column!r}; columns: {', '.join(figures[table]['columns'])}")
    key = {"method": row} if isinstance(row, str) else dict(row)
    unknown = [name for name in key if name not in figures[table]["columns"]]
    if unknown:
        raise KeyError(f"{table} has no column {', '.join(map(repr, unknown))} to find a row by")
    found = [r for r in table_rows(table, figures) if all(r[name] == value for name, value in key.items())]
    if len(found) > 1:
        raise ValueError(f"{table}: {key} matches {len(found)} rows; name the row by more columns")
    return found[0][column] if found else None


def table_title(table: str) -> str:
    """``table2`` -> ``Table 2``."""
    return f"Table {table.removeprefix('table')}"


def source(table: str, figures: Optional[Mapping[str, Any]] = None) -> str:
    """Where a table's numbers come from: ``"Table 2 (its caption, as typed)"``."""
    figures = load_figures() if figures is None else figures
    return f"{table_title(table)} ({figures[table]['caption']})"


def text_differs(figures: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """``{table: note}`` for each table whose numbers the paper's text gives otherwise; the data
    (and so the report) holds the table's numbers."""
    figures = load_figures() if figures is None else figures
    return {table: figures[table]["text_differs"] for table in TABLES
            if table in figures and figures[table].get("text_differs")}
