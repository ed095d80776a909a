"""Run store work off the UI thread and hand the result back to the UI thread.

Workers never touch widgets: they compute, then `call_from_thread` the screen's callback,
which owns all state changes (harlequin's rule). A cancelled worker's result is dropped, so a
slow old filter can never overwrite a newer one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.dom import DOMNode
from textual.worker import Worker, get_current_worker

from tracefail.services.browse import CorpusBusy, StoreError
from tracefail.services.filter_language import FilterError

T = TypeVar("T")


def background(
    node: DOMNode,
    work: Callable[[], T],
    done: Callable[[T], None],
    *,
    group: str,
    exclusive: bool = True,
    busy: Callable[[str], None] | None = None,
    failed: Callable[[], None] | None = None,
) -> Worker[None]:
    """Run `work` in a thread worker of `node`; `done(result)` or `busy(message)` on the UI thread,
    or after an error is shown, `failed()` (to undo what waited for the result)."""
    app = node.app

    def run() -> None:
        worker = get_current_worker()
        try:
            result = work()
        except CorpusBusy as exc:
            if not worker.is_cancelled:
                app.call_from_thread(busy or _notify_busy(app), str(exc))
            return
        except Exception as exc:  # a bug must not take the browser down; show it and keep going
            if not worker.is_cancelled:
                known = isinstance(exc, StoreError | FilterError | ValueError | FileNotFoundError)
                message = str(exc) if known else f"{type(exc).__name__}: {exc}"
                app.call_from_thread(
                    app.notify,
                    message,
                    title="error" if known else "unexpected error",
                    severity="error",
                    timeout=8 if known else 12,
                )
                if failed is not None:
                    app.call_from_thread(failed)
            return
        if not worker.is_cancelled:
            app.call_from_thread(done, result)

    return node.run_worker(run, thread=True, group=group, exclusive=exclusive, exit_on_error=False)


def _notify_busy(app: object) -> Callable[[str], None]:
    def show(message: str) -> None:
        app.notify(f"corpus busy (another process is writing): {message}", severity="warning")  # type: ignore[attr-defined]

    return show
