"""Plain-text tables for the command line (the demo's and ``compare``'s): no dependency for a few columns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["print_table", "usd"]


def print_table(
    header: Sequence[str], body: Sequence[Sequence[str]], text_columns: int, print_: Callable[[str], None] = print
) -> None:
    """A plain table: the first ``text_columns`` columns left-aligned, the numbers right-aligned."""
    cells = [header, *body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        aligned = (
            cell.ljust(width) if column < text_columns else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        )
        print_("  ".join(aligned).rstrip())
        if index == 0:
            print_("  ".join("-" * width for width in widths))


def usd(cost: float | None) -> str:
    """A cost as the tables show it; ``-`` when unknown (an unpriced model)."""
    return "-" if cost is None else f"${cost:.8f}"
