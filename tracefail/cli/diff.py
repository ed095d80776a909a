"""`tracefail diff`: two runs side by side, from the first step where they diverge."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from tracefail.cli import app
from tracefail.cli.common import DEFAULT_DB_PATH, EXIT_USAGE, DbOption, fail, open_db, out, print_json

CONTEXT = 1  # identical rows shown around each difference; longer identical stretches fold


@app.command()
def diff(
    trace_a: Annotated[str, typer.Argument(help="First run (e.g. the failed one).")],
    trace_b: Annotated[str, typer.Argument(help="Second run (e.g. the successful one).")],
    db: DbOption = DEFAULT_DB_PATH,
    json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Align two runs' steps (by agent, action/tool and text) and show where they diverge:
    the first divergent step, steps only in one run, changed steps and tool results, and each
    run's labels relative to the divergence. Marks: ~ changed, ≠ tool result, - only A, + only B."""
    from rich.table import Table
    from rich.text import Text

    from tracefail.services import diff as service

    store = open_db(db, read_only=True)
    try:
        result = service.diff_runs(store, trace_a, trace_b)
    except service.DiffError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        store.close()
    if json:
        print_json(asdict(result))
        return
    marks = service.MARKS
    for name, side in (("A", result.a), ("B", result.b)):
        out.print(
            Text(f"{name}: {side.trace_id}  {side.framework or '-'}  {side.outcome}  {side.n_steps} steps")
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    out.print(Text(f"aligned rows: {counts}"))
    if result.first_divergence is None:
        out.print(Text("the runs are identical step by step"))
    table = Table(show_edge=False, header_style="bold", box=None)
    for column in ("", "A", "B", "agent", "action", "sim"):
        table.add_column(column)
    rows = result.rows
    shown = {
        i
        for i, row in enumerate(rows)
        if row.status != "same"
        for i in range(max(0, i - CONTEXT), min(len(rows), i + CONTEXT + 1))
    }
    folded = 0
    for i, row in enumerate(rows):
        if i not in shown:
            folded += 1
            continue
        if folded:
            table.add_row("", "", "", Text(f"… {folded} same steps", style="dim"), "", "")
            folded = 0
        style = "bold red" if i == result.first_divergence else None
        table.add_row(
            marks[row.status],
            "" if row.a is None else str(row.a),
            "" if row.b is None else str(row.b),
            Text(row.agent or "-"),
            Text(row.action),
            f"{row.similarity:.2f}",
            style=style,
        )
    if folded:
        table.add_row("", "", "", Text(f"… {folded} same steps", style="dim"), "", "")
    if result.first_divergence is not None:
        out.print(table)
        at = rows[result.first_divergence]
        where = [
            f"{n} step {step}" if step is not None else f"{n} has no such step"
            for n, step in (("A", at.a), ("B", at.b))
        ]
        out.print(Text(f"first divergence: {', '.join(where)} ({at.status})", style="bold"))
    for name, side in (("A", result.a), ("B", result.b)):
        if side.divergent_text is not None:
            out.print(Text(f"  {name} step {side.divergent_step}: {side.divergent_text}"))
    for name, side in (("A", result.a), ("B", result.b)):
        if not side.labels:
            out.print(Text(f"{name} labels: none"))
            continue
        out.print(Text(f"{name} labels:"))
        for label in side.labels:
            steps = ",".join(map(str, label.steps))
            place = f"  ({label.where} the divergence)" if label.where else ""
            detail = f" step {steps}" if steps else ""
            out.print(Text(f"  {label.source}: {label.what}{detail}{place}"))
