"""Command palette: "verb: object" commands built from the screen the user is on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tracefail.services.filter_language import SORT_COLUMNS

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

Command = tuple[str, Callable[[], object], str]
FACET_LIMIT = 30  # values per facet offered as filter commands


class BrowseCommands(Provider):
    def _commands(self) -> list[Command]:
        from tracefail.tui.screens.corpus import CorpusScreen
        from tracefail.tui.screens.trace import TraceScreen

        app: TracefailApp = self.app  # type: ignore[assignment]
        screen = self.screen
        commands: list[Command] = [
            ("open: help", app.action_help, "Every key binding."),
            ("label: undo last", app.action_undo, "Delete the last human label you wrote."),
        ]
        if isinstance(screen, CorpusScreen):
            commands += [
                ("open: stats", screen.action_stats, "Failure statistics of the current selection."),
                ("open: failure clusters", screen.action_clusters, "Enter on one filters the corpus to it."),
                ("diff: marked traces", screen.action_diff, "Two marked runs (space marks), step by step."),
                ("mark: trace for diff", screen.action_mark, "Toggle the mark of the highlighted trace."),
                ("open: review queue", screen.action_review, "Failed traces worth labelling next."),
                ("export: selection as JSONL", screen.action_export, "Traces with steps and labels."),
                ("filter: clear", screen.action_clear_filter, "Show every trace."),
                (
                    "filter: sources disagree",
                    partial(_narrow, screen, agreement="disagree"),
                    "Traces where two label sources disagree on a mode.",
                ),
                (
                    "filter: sources agree",
                    partial(_narrow, screen, agreement="agree"),
                    "Traces labelled by several sources that agree.",
                ),
                ("filter: failures only", partial(_narrow, screen, outcome="failure"), "Outcome is failure."),
                ("filter: human-labelled", partial(_narrow, screen, source="human"), "Has a human label."),
            ]
            commands += [
                (f"sort: by {c}", partial(_sort, screen, c), "Again to reverse.") for c in SORT_COLUMNS
            ]
            facets = app.service.facets_cache
            if facets:
                for key, values in (
                    ("framework", facets.frameworks),
                    ("llm", facets.llms),
                    ("mode", facets.modes),
                    ("source", facets.sources),
                ):
                    commands += [
                        (
                            f"filter: {key} {v}",
                            partial(_narrow, screen, **{key: v}),
                            f"Only traces with {key} {v}.",
                        )
                        for v in values[:FACET_LIMIT]
                    ]
                commands += [
                    (
                        f"filter: category {c}",
                        partial(_narrow, screen, category=c, category_modes=tuple(m)),
                        f"A present label of a mode in {c}.",
                    )
                    for c, m in facets.categories.items()
                ]
        if isinstance(screen, TraceScreen):
            commands += [
                (
                    "export: trace as Markdown for an LLM",
                    screen.action_copy_markdown,
                    "Clipboard and a .md file.",
                ),
                ("label: accept highlighted", screen.action_accept, "Agree with the highlighted label."),
                ("label: reject highlighted", screen.action_reject, "Disagree with the highlighted label."),
                ("label: edit highlighted", screen.action_edit, "Correct it as a human label."),
                ("label: add a mode", screen.action_add_mode, "A failure mode the sources missed."),
                (
                    "label: mark step as mistake",
                    screen.action_mistake,
                    "This step and agent caused the failure.",
                ),
                ("view: agent graph", screen.action_graph, "Who hands off to whom."),
                ("view: span tree", screen.action_toggle_spans, "Toggle the span tree."),
                ("jump: next flagged step", screen.action_next_flag, "Evidence, mistakes, errors."),
                ("jump: previous flagged step", screen.action_prev_flag, "Evidence, mistakes, errors."),
            ]
            if screen.view is not None:
                commands += [
                    (f"feature: chart {name}", partial(screen.set_feature, name), "Per-step chart.")
                    for name in sorted(screen.view.features)
                ]
        return commands

    async def discover(self) -> Hits:
        for name, run, help_text in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)


def _narrow(screen: object, **changes: Any) -> None:
    app: TracefailApp = screen.app  # type: ignore[attr-defined]
    screen.set_filter(replace(app.corpus_filter, **changes))  # type: ignore[attr-defined]


def _sort(screen: object, column: str) -> None:
    from tracefail.services.filter_language import with_sort

    app: TracefailApp = screen.app  # type: ignore[attr-defined]
    screen.set_filter(with_sort(app.corpus_filter, column))  # type: ignore[attr-defined]
