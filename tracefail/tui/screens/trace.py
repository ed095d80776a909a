"""Trace screen: lays out the trace widgets (timeline, span tree, step view, labels panel, feature
chart), moves between flagged steps and search hits, and turns keys into human labels."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, Tree

from tracefail.model import HEADLINE_FEATURES
from tracefail.services.filter_language import CorpusFilter
from tracefail.services.markdown import trace_markdown
from tracefail.services.tool_links import is_result, tool_links
from tracefail.services.views import Receipt, TraceView
from tracefail.tui.layout import ResolvedLayout, TraceLayout
from tracefail.tui.screens.feature_picker import FeaturePicker
from tracefail.tui.screens.label_edit import LabelDraft, LabelEditor
from tracefail.tui.text import one_line
from tracefail.tui.widgets.feature_chart import FeatureChart, Series
from tracefail.tui.widgets.labels_panel import LabelsPanel
from tracefail.tui.widgets.span_tree import SpanTree
from tracefail.tui.widgets.step_view import StepView
from tracefail.tui.widgets.timeline import Timeline
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

AGENT_COLOURS = [
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "red",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
    "bright_blue",
    "orange1",
]
PREVIEW_CHARS_PER_STEP = 240


class TraceScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Trace"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "back", "Back", tooltip="Back to the corpus (or close the search).", id="trace.back"
        ),
        Binding("n", "next_flag", "Next flag", tooltip="Next flagged step (or search hit).", id="trace.next"),
        Binding(
            "p", "prev_flag", "Prev flag", tooltip="Previous flagged step (or search hit).", id="trace.prev"
        ),
        Binding("slash", "search", "Search", tooltip="Search the steps' text.", id="trace.search"),
        Binding(
            "f",
            "next_feature",
            "Feature",
            tooltip="Chart the next headline per-step feature.",
            id="trace.feature",
        ),
        Binding(
            "F",
            "pick_feature",
            "Pick feature",
            show=False,
            tooltip="Pick any per-step feature to chart.",
            id="trace.pick_feature",
        ),
        Binding(
            "t",
            "toggle_spans",
            "Spans",
            show=False,
            tooltip="Show the span tree instead of the timeline.",
            id="trace.spans",
        ),
        Binding("g", "graph", "Graph", tooltip="Agent hand-off graph of this trace.", id="trace.graph"),
        Binding(
            "o",
            "show_more",
            "More",
            show=False,
            tooltip="Show the whole text of a long step.",
            id="trace.more",
        ),
        Binding(
            "a",
            "accept",
            "Accept",
            tooltip="Accept the highlighted label: store the same verdict as yours.",
            id="trace.accept",
        ),
        Binding(
            "minus",
            "reject",
            "Reject",
            tooltip="Reject the highlighted label: store the opposite verdict as yours.",
            id="trace.reject",
        ),
        Binding("x", "export", "Export", show=False, tooltip="Write this trace as JSONL.", id="trace.export"),
        Binding(
            "w",
            "conversation",
            "Chat",
            tooltip="Conversation view: the messages from this step on (w again: one step).",
            id="trace.conversation",
        ),
        Binding(
            "l",
            "linked",
            "Call⇄result",
            tooltip="Jump from a tool call to its result, or from a result to its call.",
            id="trace.linked",
        ),
        Binding(
            "right_square_bracket",
            "next_tool",
            "Next tool",
            show=False,
            tooltip="Next step with a tool call or a tool result.",
            id="trace.next_tool",
        ),
        Binding(
            "left_square_bracket",
            "prev_tool",
            "Prev tool",
            show=False,
            tooltip="Previous step with a tool call or a tool result.",
            id="trace.prev_tool",
        ),
        Binding(
            "1",
            "toggle_panel('timeline')",
            "Timeline",
            show=False,
            tooltip="Show or hide the timeline.",
            id="trace.panel1",
        ),
        Binding(
            "2",
            "toggle_panel('labels')",
            "Labels",
            show=False,
            tooltip="Show or hide the labels.",
            id="trace.panel2",
        ),
        Binding(
            "3",
            "toggle_panel('chart')",
            "Chart",
            show=False,
            tooltip="Show or hide the feature chart.",
            id="trace.panel3",
        ),
        Binding(
            "less_than_sign",
            "resize(False)",
            "Narrower",
            show=False,
            tooltip="Narrow the timeline.",
            id="trace.narrow",
        ),
        Binding(
            "greater_than_sign",
            "resize(True)",
            "Wider",
            show=False,
            tooltip="Widen the timeline.",
            id="trace.widen",
        ),
        Binding("e", "edit", "Edit", tooltip="Edit the highlighted label as a human label.", id="trace.edit"),
        Binding(
            "plus", "add_mode", "Add mode", tooltip="Add a failure mode the sources missed.", id="trace.add"
        ),
        Binding(
            "m",
            "mistake",
            "Mistake",
            tooltip="Mark the current step and its agent as the mistake.",
            id="trace.mistake",
        ),
        Binding(
            "c", "copy_markdown", "Copy", tooltip="Copy the trace as Markdown (and save it).", id="trace.copy"
        ),
    ]

    def __init__(self, trace_id: str) -> None:
        super().__init__()
        self.trace_id = trace_id
        self.view: TraceView | None = None
        self.step = 0
        self.expanded: set[int] = set()
        self.feature: str | None = None
        self.hits: list[int] = []
        self.colours: dict[str, str] = {}
        self.flagged: set[int] = set()
        self.mistakes: set[int] = set()
        self.links = tool_links([])

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(self.trace_id), id="trace-head")
        with Horizontal(id="trace-body"):
            with Vertical(id="trace-left"):
                yield Timeline(id="timeline")
                yield SpanTree(id="spans")
            with Vertical(id="trace-right"):
                yield StepView(id="step-scroll")
                yield LabelsPanel()
                yield FeatureChart(id="chart")
        yield Input(placeholder="search this trace's steps (enter: find, esc: close)", id="search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#spans").display = False
        self.query_one("#search").display = False
        self.apply_layout()
        self.reload()

    # --- layout ----------------------------------------------------------------------------------
    @property
    def layout_state(self) -> TraceLayout:
        return self.tf.trace_layout

    def on_resize(self) -> None:
        self.apply_layout()

    def apply_layout(self) -> None:
        """Show, hide and size the panels for this terminal and the user's choices (1/2/3, </>)."""
        layout = self._resolved()
        left = self.query_one("#trace-left")
        left.display = layout.timeline
        left.styles.width = f"{layout.left_width}%"
        self.query_one(LabelsPanel).display = layout.labels
        self.query_one("#labels").styles.max_height = layout.labels_height + 3  # header and border
        self.query_one("#label-detail").styles.max_height = 1 if layout.labels_height < 7 else 4
        self.query_one("#chart").display = layout.chart
        self.query_one("#trace-head").styles.max_height = layout.head_lines

    def _resolved(self) -> ResolvedLayout:
        size, view = self.app.size, self.view
        return self.layout_state.resolved(
            size.width,
            size.height,
            has_labels=view is None or bool(view.labels),
            has_features=view is None or bool(view.features),
        )

    def _remember_layout(self) -> None:
        self.layout_state.save(self.tf.layout_file)
        self.apply_layout()

    def action_toggle_panel(self, panel: str) -> None:
        shown = getattr(self._resolved(), panel)
        setattr(self.layout_state, panel, not shown)
        self._remember_layout()
        if panel == "timeline" and shown:
            self.query_one(StepView).focus()
        elif panel == "timeline":
            self.query_one("#timeline").focus()

    def action_resize(self, wider: bool) -> None:
        size = self.app.size
        self.layout_state.resize(size.width, size.height, wider)
        self._remember_layout()

    def action_conversation(self) -> None:
        self.layout_state.conversation = not self.layout_state.conversation
        self.layout_state.save(self.tf.layout_file)
        self._step()

    def reload(self) -> None:
        background(
            self, lambda: self.tf.service.trace(self.trace_id), self._show, group="trace", busy=self._busy
        )

    def _busy(self, message: str) -> None:
        """Another process is writing: keep what is shown, say so, and try again shortly."""
        if self.view is None:
            text = Text(
                "corpus busy: another process is writing to it; retrying every 2 s\n\n", style="bold yellow"
            )
            text.append(message, style="yellow")
            self.query_one(StepView).message(text)
        else:
            self.notify(f"corpus busy, showing what was read before; retrying: {message}", severity="warning")
        self.set_timer(2.0, self.reload)

    # --- drawing ---------------------------------------------------------------------------------
    def _show(self, view: TraceView | None) -> None:
        if view is None:
            self.notify(f"{self.trace_id}: no such trace", severity="error")
            self.app.pop_screen()
            return
        first = self.view is None
        self.view = view
        for step in view.steps:
            agent = step["agent"] or step["role"] or "?"
            self.colours.setdefault(agent, AGENT_COLOURS[len(self.colours) % len(AGENT_COLOURS)])
        if self.feature is None or self.feature not in view.features:
            self.feature = next((f for f in HEADLINE_FEATURES if f in view.features), None) or next(
                iter(sorted(view.features)), None
            )
        self.flagged = set(view.flagged)
        self.mistakes = {a["step_idx"] for a in view.attributions}
        self.links = tool_links(view.steps)
        self._head()
        self.apply_layout()
        self._timeline(keep=not first)
        self.query_one(LabelsPanel).show(view.labels)
        if view.has_spans:
            self.query_one(SpanTree).show(view.steps, self._agent, self.colours, view.spans)
        self._step()

    def _agent(self, step: dict[str, Any]) -> str:
        return step["agent"] or step["role"] or "?"

    def _speaker(self, step: dict[str, Any]) -> tuple[str, str]:
        agent = self._agent(step)
        return agent, self.colours.get(agent, "white")

    def _head(self) -> None:
        assert self.view is not None
        h = self.view.head
        text = Text()
        text.append(one_line(self.trace_id, 80), style="bold")
        facts = [h.get("framework") or "?", h.get("llm") or "llm ?", h.get("benchmark")]
        text.append("  " + " · ".join(f for f in facts if f) + " · ")  # no empty field between dots
        text.append(h["outcome"], style="red" if h["outcome"] == "failure" else "green")
        text.append(f" · {len(self.view.steps)} steps")
        for n, a in enumerate(self.view.attributions):  # the most trusted source first
            where = f"{one_line(a['agent'] or '?', 30)} at step {a['step_idx']}"
            text.append(
                f"\n✗ mistake: {where} " if n == 0 else f"\n  also: {where} ",
                style="bold red" if n == 0 else "dim",
            )
            text.append(f"({a['source']}, {a['validation']})", style="dim")
        if h.get("task"):
            text.append("\ntask: ", style="bold")
            text.append(one_line(h["task"], 140), style="italic")
        self.query_one("#trace-head", Static).update(text)

    def _timeline(self, keep: bool) -> None:
        assert self.view is not None
        timeline = self.query_one("#timeline", Timeline)
        timeline.set_steps(len(self.view.steps), self._step_lines, cursor=self.step if keep else 0)
        if not keep:
            timeline.focus()

    def _step_lines(self, i: int) -> tuple[Text, Text]:
        """Header (agent, hand-off, flags) and a one-line preview; built only when on screen."""
        assert self.view is not None
        steps = self.view.steps
        step = steps[i]
        agent = self._agent(step)
        colour = self.colours[agent]
        target = step["recipient"]
        # a hand-off is inferred only between two agents' turns: a tool result is nobody's turn
        following = steps[i + 1] if i + 1 < len(steps) else None
        if (
            not target
            and following is not None
            and step["agent"]
            and following["agent"]
            and not is_result(step)
            and not is_result(following)
            and following["agent"] != step["agent"]
        ):
            target = following["agent"]
        head = Text()
        head.append(f"{i:>4} ", style="dim")
        head.append("▌", style=colour)
        head.append(one_line(agent, 28), style=f"bold {colour}")
        if target:
            head.append(" ⟶ ", style="dim")
            head.append(one_line(target, 24), style=self.colours.get(target, "white"))
        if i in self.mistakes:
            head.append("  ✗ mistake", style="bold red")
        elif i in self.flagged:
            head.append("  ⚑", style="bold yellow")
        if step["status"] and step["status"].lower() == "error":
            head.append("  error", style="red")
        for call in self.links.calls.get(i, [])[:2]:
            head.append(f"  ▶ {one_line(call.name, 20)}", style="yellow")
        if i in self.links.results:
            link = self.links.by_result.get(i)
            head.append(f"  ◀ {one_line(link.tool, 20) if link else 'result'}", style="green")
        preview = Text("      ")
        preview.append(one_line(step["content"], PREVIEW_CHARS_PER_STEP))
        return head, preview

    def _step(self) -> None:
        if self.view is None or not self.view.steps:
            return
        view, index = self.view, self.step
        values = view.features.get(self.feature or "", [])
        here = values[index] if index < len(values) else None
        step_view = self.query_one(StepView)
        step_view.border_title = (
            "conversation (w: one step)" if self.layout_state.conversation else "step (w: conversation)"
        )
        step_view.show(
            view.steps,
            index,
            self.links,
            self._speaker,
            (self.feature, here) if self.feature is not None and here is not None else None,
            index in self.expanded,
            self.layout_state.conversation,
        )
        self.query_one(FeatureChart).show(
            Series(
                self.feature,
                values,
                view.changes.get(self.feature, []),
                frozenset(self.mistakes),
                index,
            )
            if self.feature is not None
            else None
        )

    # --- navigation ------------------------------------------------------------------------------
    def go(self, step: int) -> None:
        if self.view is None or not self.view.steps:
            return
        self.step = max(0, min(step, len(self.view.steps) - 1))
        timeline = self.query_one("#timeline", Timeline)
        if timeline.cursor != self.step:
            timeline.cursor = self.step  # announces Highlighted, which draws the step
        else:
            self._step()

    @on(Timeline.Highlighted, "#timeline")
    def _highlighted(self, event: Timeline.Highlighted) -> None:
        self.step = event.index
        self._step()

    @on(Tree.NodeSelected, "#spans")
    def _span_selected(self, event: Tree.NodeSelected[int]) -> None:
        if event.node.data is not None:
            self.go(event.node.data)

    @on(LabelsPanel.Chosen)
    def _label_chosen(self, event: LabelsPanel.Chosen) -> None:
        label = event.label
        if label["evidence_steps"]:
            self.go(label["evidence_steps"][0])
        else:
            self.notify(f"{label['mode_id']} from {label['source']} cites no evidence step")

    def _targets(self) -> list[int]:
        assert self.view is not None
        return self.hits or self.view.flagged

    def action_next_flag(self) -> None:
        if self.view is None:
            return
        later = [i for i in self._targets() if i > self.step]
        if later:
            self.go(later[0])
        else:
            self.notify("no flagged step after this one" if not self.hits else "no more hits")

    def action_prev_flag(self) -> None:
        if self.view is None:
            return
        earlier = [i for i in self._targets() if i < self.step]
        if earlier:
            self.go(earlier[-1])
        else:
            self.notify("no flagged step before this one" if not self.hits else "no earlier hits")

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        needle = event.value.strip()
        if not needle or self.view is None:
            self.hits = []
            return
        pattern = re.compile(re.escape(needle), re.IGNORECASE)
        self.hits = [  # what the step detail shows: content and the text kept in metadata
            s["step_idx"]
            for s in self.view.steps
            if any(pattern.search(s.get(key) or "") for key in ("content", "kept", "kept_with_trace"))
        ]
        if not self.hits:
            self.notify(f"no step contains {needle!r}")
            return
        self.notify(f"{len(self.hits)} steps contain {needle!r}; n/p move between them, esc clears")
        self.query_one("#timeline").focus()
        self.go(next((i for i in self.hits if i >= self.step), self.hits[0]))

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.display or self.hits:
            box.display = False
            self.hits = []
            self.query_one("#timeline").focus()
            return
        self.app.pop_screen()

    def action_next_feature(self) -> None:
        if self.view is None or not self.view.features:
            self.notify("no per-step features stored for this trace")
            return
        # the headline features first; the other ~250 are one `F` (picker) away
        names = [f for f in HEADLINE_FEATURES if f in self.view.features] or sorted(self.view.features)
        self.feature = (
            names[(names.index(self.feature) + 1) % len(names)] if self.feature in names else names[0]
        )
        self._step()

    def action_pick_feature(self) -> None:
        if self.view is None or not self.view.features:
            self.notify("no per-step features stored for this trace")
            return
        headline = [f for f in HEADLINE_FEATURES if f in self.view.features]
        rest = sorted(set(self.view.features) - set(headline))

        def picked(name: str | None) -> None:
            if name is not None:
                self.set_feature(name)

        self.app.push_screen(FeaturePicker(headline + rest, self.feature), picked)

    def set_feature(self, name: str) -> None:
        if self.view is not None and name in self.view.features:
            self.feature = name
            self._step()

    def action_toggle_spans(self) -> None:
        if self.view is None or not self.view.has_spans:
            self.notify("this trace has no span tree (no parent_span_id); the timeline is its structure")
            return
        tree, timeline = self.query_one("#spans"), self.query_one("#timeline")
        tree.display, timeline.display = not tree.display, tree.display
        (tree if tree.display else timeline).focus()

    def action_linked(self) -> None:
        partner = self.links.partner(self.step)
        if partner is None:
            self.notify("this step has no linked tool call or result")
            return
        self.go(partner)

    def _tool_steps(self) -> list[int]:
        return sorted({*self.links.calls, *self.links.results})

    def action_next_tool(self) -> None:
        later = [i for i in self._tool_steps() if i > self.step]
        if later:
            self.go(later[0])
        else:
            self.notify("no tool call or result after this step")

    def action_prev_tool(self) -> None:
        earlier = [i for i in self._tool_steps() if i < self.step]
        if earlier:
            self.go(earlier[-1])
        else:
            self.notify("no tool call or result before this step")

    def action_export(self) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.trace_id)[:80]
        target = self.tf.export_dir / f"tracefail-trace-{slug}.jsonl"
        only = CorpusFilter(trace_ids=(self.trace_id,))

        def done(count: int) -> None:
            self.notify(f"{count:,} trace written to {target}", title="export")

        background(self, lambda: self.tf.service.export_jsonl(only, target), done, group="export")

    def action_show_more(self) -> None:
        self.expanded.add(self.step)
        self._step()

    def action_graph(self) -> None:
        from tracefail.tui.screens.graph import GraphScreen

        if self.view is not None:
            self.app.push_screen(GraphScreen(self.trace_id))

    def action_copy_markdown(self) -> None:
        if self.view is None:
            return
        markdown = trace_markdown(self.view)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.trace_id)[:80]
        target = self.tf.export_dir / f"tracefail-trace-{slug}.md"

        def saved(_: None) -> None:
            self.app.copy_to_clipboard(markdown)
            self.notify(f"copied to the clipboard and saved to {target}", title="copy for an LLM")

        def save() -> None:
            target.write_text(markdown, encoding="utf-8")

        background(self, save, saved, group="export")

    # --- human labels ------------------------------------------------------------------------------
    def _label(self) -> dict[str, Any] | None:
        return self.query_one(LabelsPanel).current() if self.view is not None else None

    def _saved(self, receipt: Receipt) -> None:
        self.tf.remember(receipt)
        self.reload()

    def _review(self, accept: bool) -> None:
        label = self._label()
        if label is None:
            self.notify("no label to review here; + adds one", severity="warning")
            return
        background(
            self,
            lambda: self.tf.service.review(self.trace_id, label, accept),
            self._saved,
            group="write",
            exclusive=False,
        )

    def action_accept(self) -> None:
        self._review(accept=True)

    def action_reject(self) -> None:
        self._review(accept=False)

    def action_edit(self) -> None:
        label = self._label()
        if label is None:
            self.notify("no label to edit here; + adds one", severity="warning")
            return
        draft = LabelDraft(
            label["mode_id"],
            bool(label["present"]),
            label["probability"],
            list(label["evidence_steps"] or []),
            label["agent"],
            None,  # the rationale is yours to write; the edited one is shown as a hint
        )
        self._open_editor(
            f"edit {label['mode_id']} from {label['source']} (saved as {self.tf.service.source})",
            draft,
            based_on=label,
        )

    def action_add_mode(self) -> None:
        if self.view is None:
            return
        agent = self._agent(self.view.steps[self.step]) if self.view.steps else None
        draft = LabelDraft("", True, None, [self.step] if self.view.steps else [], agent, None)
        self._open_editor(f"add a failure mode (saved as {self.tf.service.source})", draft, based_on=None)

    def _open_editor(self, title: str, draft: LabelDraft, based_on: dict[str, Any] | None) -> None:
        assert self.view is not None
        view = self.view

        def with_modes(modes: list[tuple[str, str, str, str]]) -> None:
            known = {m[2]: (m[0], m[1]) for m in modes}
            known.update(
                {lbl["mode_id"]: (lbl["taxonomy_id"], lbl["taxonomy_version"]) for lbl in view.labels}
            )

            def save(result: LabelDraft | None) -> None:
                if result is None:
                    return
                taxonomy = known.get(result.mode_id) or ("custom", "1")
                background(
                    self,
                    lambda: self.tf.service.label(
                        self.trace_id,
                        result.mode_id,
                        result.present,
                        taxonomy=taxonomy,
                        probability=result.probability,
                        evidence_steps=result.evidence_steps,
                        agent=result.agent,
                        rationale=result.rationale,
                        based_on=based_on["label_id"] if based_on else None,
                    ),
                    self._saved,
                    group="write",
                    exclusive=False,
                )

            names = {m[2]: m[3] for m in modes}
            agents = sorted({s["agent"] for s in view.steps if s["agent"]})
            earlier = based_on["rationale"] if based_on else None
            self.app.push_screen(
                LabelEditor(title, draft, sorted(known), len(view.steps), names, agents, earlier), save
            )

        background(self, self.tf.service.taxonomy_modes, with_modes, group="modes")

    def action_mistake(self) -> None:
        if self.view is None or not self.view.steps:
            return
        step = self.view.steps[self.step]
        agent = step["agent"]
        background(
            self,
            lambda: self.tf.service.mistake(self.trace_id, agent, self.step),
            self._saved,
            group="write",
            exclusive=False,
        )
