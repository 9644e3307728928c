"""Small-cell suppression for released count tables (k-anonymity style).

Primary: any cell with 0 < count < k is suppressed. Complementary: the table is released with its
row and column totals, so every row, every column and the totals row are equations `cells = total`;
a line with exactly one suppressed entry would let a reader subtract it back, so one more entry of
that line (the smallest count, never a zero that is already public) is suppressed, until no line has
exactly one. A grand total below k suppresses the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SuppressedTable:
    rows: list[str]
    columns: list[str]
    counts: list[list[int]]  # rows x columns, without totals
    suppressed: list[list[bool]]  # (rows + 1) x (columns + 1): the last row/column are the totals

    def cell(self, r: int, c: int) -> str:
        """The released value of a cell, or '' when suppressed (r/c == len means the total)."""
        if self.suppressed[r][c]:
            return ""
        return str(self._value(r, c))

    def _value(self, r: int, c: int) -> int:
        n_rows, n_cols = len(self.rows), len(self.columns)
        if r < n_rows and c < n_cols:
            return self.counts[r][c]
        if r < n_rows:
            return sum(self.counts[r])
        if c < n_cols:
            return sum(row[c] for row in self.counts)
        return sum(sum(row) for row in self.counts)


def suppress(rows: list[str], columns: list[str], counts: list[list[int]], k: int = 11) -> SuppressedTable:
    n_rows, n_cols = len(rows), len(columns)
    table = SuppressedTable(rows, columns, counts, [[False] * (n_cols + 1) for _ in range(n_rows + 1)])
    values = [[table._value(r, c) for c in range(n_cols + 1)] for r in range(n_rows + 1)]
    hidden = table.suppressed
    if values[n_rows][n_cols] < k:
        for flags in hidden:
            flags[:] = [True] * (n_cols + 1)
        return table
    for r in range(n_rows + 1):
        for c in range(n_cols + 1):
            if 0 < values[r][c] < k:
                hidden[r][c] = True
    # Lines: each row with its total, each column with its total.
    lines: list[list[tuple[int, int]]] = [[(r, c) for c in range(n_cols + 1)] for r in range(n_rows + 1)]
    lines += [[(r, c) for r in range(n_rows + 1)] for c in range(n_cols + 1)]
    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden_here = [cell for cell in line if hidden[cell[0]][cell[1]]]
            if len(hidden_here) != 1:
                continue
            candidates = [cell for cell in line if not hidden[cell[0]][cell[1]] and values[cell[0]][cell[1]] > 0]
            if not candidates:
                # Only public zeros left: the hidden entry equals the rest, so the total goes too.
                candidates = [cell for cell in line if not hidden[cell[0]][cell[1]]]
            if not candidates:
                continue
            r, c = min(candidates, key=lambda cell: (values[cell[0]][cell[1]], cell))
            hidden[r][c] = True
            changed = True
    return table


def to_csv_rows(table: SuppressedTable, row_header: str) -> list[list[str]]:
    n_rows, n_cols = len(table.rows), len(table.columns)
    out = [[row_header, *table.columns, "total"]]
    for r, name in enumerate([*table.rows, "total"]):
        out.append([name, *(table.cell(r, c) for c in range(n_cols + 1))])
    assert len(out) == n_rows + 2
    return out
