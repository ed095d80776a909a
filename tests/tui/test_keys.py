"""One meaning per key: every class in tracefail.tui that declares BINDINGS (found by walking the
package, so a new screen is checked without being listed here), every key, one meaning. Actions
that differ by name but mean the same thing to a user (leave the screen; next/previous item of
interest; find text) are named in MEANING, so a new pair has to be argued for here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path

from pilot_wait import settle
from textual.binding import Binding

import tracefail.tui
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.help import HelpScreen, binding_groups

MEANING = {
    "back": "leave",  # pop the screen
    "cancel": "leave",  # close a form without saving
    "close": "leave",  # close the help
    "clear_filter": "leave",  # the corpus list has nothing to go back to: escape drops the filter
    "next_flag": "next",
    "next_change": "next",
    "prev_flag": "previous",
    "prev_change": "previous",
    "focus_filter": "find",
    "search": "find",
}


def bound_classes() -> list[type]:
    found = set()
    for module in pkgutil.walk_packages(tracefail.tui.__path__, "tracefail.tui."):
        loaded = importlib.import_module(module.name)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ == loaded.__name__ and "BINDINGS" in vars(cls):
                found.add(cls)
    return sorted(found, key=lambda c: c.__name__)


def test_every_key_has_one_meaning() -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    classes = bound_classes()
    assert {"TracefailApp", "CorpusScreen", "TraceScreen", "OpsScreen", "HelpScreen"} <= {
        c.__name__ for c in classes
    }
    for cls in classes:
        for binding in vars(cls)["BINDINGS"]:
            assert isinstance(binding, Binding), (cls, binding)  # tuples would hide their action
            for key in binding.key.split(","):
                action = binding.action.removeprefix("app.")  # the app's action, bound in a modal
                meanings[key.strip()].add(MEANING.get(action, action))
                where[key.strip()].append(f"{cls.__name__}.{binding.action}")
    clashes = {key: where[key] for key, found in meanings.items() if len(found) > 1}
    assert not clashes


def test_help_lists_every_screen_with_keys() -> None:
    listed = {b.id for _, bindings in binding_groups() for b in bindings}
    for cls in bound_classes():
        if cls is HelpScreen:
            continue
        for binding in vars(cls)["BINDINGS"]:
            assert isinstance(binding, Binding) and binding.id in listed, (cls.__name__, binding.key)


async def test_question_mark_opens_and_closes_help(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, CorpusScreen)
