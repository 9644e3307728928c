"""Small-cell suppression for released count tables, with a check that no blank can be solved back.

A table is released with a total per row and, optionally, a total per column (and the grand total). Each
row and each column is then an equation `cells - total = 0` whose released entries a reader knows; the
blanks are the unknowns. A blank is *determined* when the equations fix its value, i.e. when its unit
vector lies in the row space of the equations' coefficients on the blanks. `determined_cells` computes
that exactly (Gaussian elimination in integers); `suppress` blanks more until it finds none.

Primary: every entry with 0 < count < k is blank; a row whose total is under k is blank as a whole (and
with column totals, a grand total under k blanks the table). Complementary: while some blank is
determined, one more entry of an equation holding it is blanked (the smallest positive count, so as little
as possible is lost), and the check runs again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Cell = tuple[int, int]


@dataclass
class SuppressedTable:
    rows: list[str]
    columns: list[str]
    counts: list[list[int]]  # rows x columns, without totals
    suppressed: list[list[bool]]  # one more column (row totals), and one more row when column totals are released
    column_totals: bool = False

    def cell(self, r: int, c: int) -> str:
        """The released value of an entry, or '' when blank (c == len(columns) is the row total)."""
        if self.suppressed[r][c]:
            return ""
        return str(self.value(r, c))

    def value(self, r: int, c: int) -> int:
        """The true value of an entry, totals included (r == len(rows) is the column-totals row)."""
        n_rows, n_cols = len(self.rows), len(self.columns)
        if r < n_rows and c < n_cols:
            return self.counts[r][c]
        if r < n_rows:
            return sum(self.counts[r])
        if c < n_cols:
            return sum(row[c] for row in self.counts)
        return sum(sum(row) for row in self.counts)

    def equations(self) -> list[tuple[list[Cell], Cell]]:
        """What a reader knows holds: each (parts, total) means sum(parts) == total."""
        n_rows, n_cols = len(self.rows), len(self.columns)
        all_rows = n_rows + 1 if self.column_totals else n_rows
        out = [([(r, c) for c in range(n_cols)], (r, n_cols)) for r in range(all_rows)]
        if self.column_totals:
            out += [([(r, c) for r in range(n_rows)], (n_rows, c)) for c in range(n_cols + 1)]
        return out


def determined_cells(table: SuppressedTable) -> list[Cell]:
    """Blanks whose value follows from the released entries and the sums (exact, no tolerance)."""
    hidden = table.suppressed
    equations: list[list[tuple[Cell, int]]] = []  # per equation: its blanks with their coefficient
    for parts, total in table.equations():
        terms = [(cell, 1) for cell in parts if hidden[cell[0]][cell[1]]]
        if hidden[total[0]][total[1]]:
            terms.append((total, -1))
        if terms:
            equations.append(terms)
    found: list[Cell] = []
    # Equations that share no blank are independent: solve each connected group on its own (a weekly
    # table is one group per row, so the work stays linear in the number of weeks).
    for group in _connected(equations):
        unknowns = sorted({cell for terms in group for cell, _ in terms})
        index = {cell: i for i, cell in enumerate(unknowns)}
        matrix = []
        for terms in group:
            row = [0] * len(unknowns)
            for cell, coefficient in terms:
                row[index[cell]] += coefficient
            matrix.append(row)
        found += [unknowns[j] for j in _unit_rows(matrix, len(unknowns))]
    return sorted(found)


def _connected(equations: list[list[tuple[Cell, int]]]) -> list[list[list[tuple[Cell, int]]]]:
    parent = list(range(len(equations)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[Cell, int] = {}
    for i, terms in enumerate(equations):
        for cell, _ in terms:
            j = first_seen.setdefault(cell, i)
            parent[root(i)] = root(j)
    groups: dict[int, list[list[tuple[Cell, int]]]] = {}
    for i, terms in enumerate(equations):
        groups.setdefault(root(i), []).append(terms)
    return list(groups.values())


def _unit_rows(matrix: list[list[int]], width: int) -> list[int]:
    """Columns j such that e_j lies in the row space: once every pivot column is cleared from the other
    rows (integer elimination, so exact), some row has its only non-zero entry at j."""
    rows = [list(r) for r in matrix]
    pivot_row = 0
    for col in range(width):
        found = next((i for i in range(pivot_row, len(rows)) if rows[i][col] != 0), None)
        if found is None:
            continue
        rows[pivot_row], rows[found] = rows[found], rows[pivot_row]
        pivot = rows[pivot_row]
        for i, row in enumerate(rows):
            if i != pivot_row and row[col] != 0:
                a, b = pivot[col], row[col]
                reduced = [a * x - b * y for x, y in zip(row, pivot, strict=True)]
                divisor = math.gcd(*reduced)
                rows[i] = [x // divisor for x in reduced] if divisor > 1 else reduced
        pivot_row += 1
        if pivot_row == len(rows):
            break
    units = []
    for row in rows[:pivot_row]:
        nonzero = [j for j, v in enumerate(row) if v != 0]
        if len(nonzero) == 1:
            units.append(nonzero[0])
    return sorted(units)


def suppress(
    rows: list[str], columns: list[str], counts: list[list[int]], k: int = 11, *, column_totals: bool = False
) -> SuppressedTable:
    n_rows, n_cols = len(rows), len(columns)
    all_rows = n_rows + 1 if column_totals else n_rows
    table = SuppressedTable(rows, columns, counts, [[False] * (n_cols + 1) for _ in range(all_rows)], column_totals)
    hidden = table.suppressed
    values = [[table.value(r, c) for c in range(n_cols + 1)] for r in range(all_rows)]
    if column_totals and 0 < values[n_rows][n_cols] < k:
        return _blank_all(table)
    for r in range(all_rows):
        if 0 < values[r][n_cols] < k:  # a small row total: the whole row goes, or the rest would give it back
            hidden[r] = [True] * (n_cols + 1)
        for c in range(n_cols + 1):
            if 0 < values[r][c] < k:
                hidden[r][c] = True
    while determined := determined_cells(table):
        cell = _complement_for(table, determined[0], values)
        if cell is None:
            return _blank_all(table)
        hidden[cell[0]][cell[1]] = True
    return table


def _complement_for(table: SuppressedTable, blank: Cell, values: list[list[int]]) -> Cell | None:
    """The released entry to blank next for a determined blank: the smallest count of a line through it."""
    hidden = table.suppressed
    lines = [[*parts, total] for parts, total in table.equations() if blank in parts or blank == total]
    candidates = [cell for line in lines for cell in line if not hidden[cell[0]][cell[1]]]
    if not candidates:
        # Its lines are all blank, yet it is fixed through other lines: widen to any released entry.
        candidates = [(r, c) for r, flags in enumerate(hidden) for c, h in enumerate(flags) if not h]
    if not candidates:
        return None
    # Positive counts first: a released zero is already public, blanking it hides nothing.
    return min(candidates, key=lambda cell: (values[cell[0]][cell[1]] == 0, values[cell[0]][cell[1]], cell))


def _blank_all(table: SuppressedTable) -> SuppressedTable:
    for flags in table.suppressed:
        flags[:] = [True] * len(flags)
    return table


def to_csv_rows(table: SuppressedTable, row_header: str) -> list[list[str]]:
    n_cols = len(table.columns)
    names = [*table.rows, "total"] if table.column_totals else table.rows
    out = [[row_header, *table.columns, "total"]]
    for r, name in enumerate(names):
        out.append([name, *(table.cell(r, c) for c in range(n_cols + 1))])
    return out
