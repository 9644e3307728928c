"""`edgescreen codes resolve`: the screening follow-up list with students' names, offline at the school."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    codes = groups.group("codes")
    p = codes.add_parser(
        "resolve",
        help="add the roster's names to a follow-up list (followup.csv from the dashboard), offline",
        description="Recompute each roster student's code with the site secret, exactly as the booth does, and "
        "write the follow-up list with the roster's columns (name, class, …) for each code that matches. "
        "Run it at the school; the collector never holds the secret.",
    )
    p.add_argument("followup", type=Path, help="the follow-up list exported from the dashboard (followup.csv)")
    p.add_argument("--roster", type=Path, required=True, help="CSV with a 'code' column and any others (name, …)")
    p.add_argument("--secret-file", type=Path, required=True, help="the site secret (secrets.site_hmac_key)")
    p.add_argument("--code-column", default="code", help="the roster's code column (default: code)")
    p.add_argument("--out", type=Path, help="where to write the list with names (default: FOLLOWUP-names.csv)")
    p.set_defaults(func=_resolve)


def _resolve(args: argparse.Namespace) -> int:
    from edgescreen.codes import resolve

    out = args.out or args.followup.with_name(args.followup.stem + "-names.csv")
    done = resolve(args.followup, args.roster, args.secret_file, out, args.code_column)
    print(
        f"{out}: {done.rows} row(s), {done.matched} matched a roster student, {done.unmatched} code(s) not on the "
        f"roster, {done.anonymous} without a code"
    )
    return 0
