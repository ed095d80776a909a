"""Modal form for a human label: edit a judged label or add a mode the judge missed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static, Switch

from tracefail.tui.text import one_line


@dataclass(frozen=True)
class LabelDraft:
    """What the form returns; the trace screen turns it into a human label."""

    mode_id: str
    present: bool
    probability: float | None
    evidence_steps: list[int]
    agent: str | None
    rationale: str | None


class LabelEditor(ModalScreen[LabelDraft | None]):
    BINDING_GROUP_TITLE = "Label form"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without saving.", id="label.cancel"),
        Binding("ctrl+s", "save", "Save", tooltip="Save as a human label.", id="label.save"),
    ]

    def __init__(
        self,
        title: str,
        draft: LabelDraft,
        known_modes: list[str],
        n_steps: int,
        names: dict[str, str] | None = None,
        agents: list[str] | None = None,
        earlier_rationale: str | None = None,
    ) -> None:
        super().__init__()
        self.agents = agents or []  # the trace's speakers: the only agents a label may name
        self.earlier_rationale = earlier_rationale  # the edited label's, shown as a hint, not kept
        self.names = names or {}  # mode id -> name, shown under the mode box as it is typed
        self.title_text = title
        self.draft = draft
        self.known_modes = known_modes
        self.n_steps = n_steps

    def compose(self) -> ComposeResult:
        d = self.draft
        with Vertical(id="label-form"):
            yield Static(self.title_text, classes="form-title")
            yield Label("mode")
            yield Input(
                d.mode_id,
                id="mode",
                suggester=SuggestFromList(self.known_modes, case_sensitive=False),
                placeholder=" ".join(self.known_modes[:8]),
            )
            yield Static(self._name_of(d.mode_id), id="mode-name")
            with Horizontal(classes="form-row"):
                yield Label("present ")
                yield Switch(d.present, id="present")
            yield Label("probability (0..1)")
            yield Input("" if d.probability is None else f"{d.probability:g}", id="probability")
            yield Label("evidence steps (e.g. 3 7)")
            yield Input(" ".join(map(str, d.evidence_steps)), id="evidence")
            yield Label("agent")
            yield Input(
                d.agent or "",
                id="agent",
                suggester=SuggestFromList(self.agents, case_sensitive=False) if self.agents else None,
                placeholder=" ".join(self.agents[:6]),
            )
            yield Label("rationale (yours)")
            yield Input(
                d.rationale or "",
                id="rationale",
                placeholder=f"was: {one_line(self.earlier_rationale, 60)}" if self.earlier_rationale else "",
            )
            yield Static("", id="form-error")
            with Horizontal(classes="form-row"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#mode", Input).focus()

    def _name_of(self, mode_id: str) -> str:
        mode_id = mode_id.strip()
        if not mode_id:
            return "type a mode id (tab completes)"
        return self.names.get(mode_id) or ("not a known mode" if self.known_modes else "")

    @on(Input.Changed, "#mode")
    def _mode_typed(self, event: Input.Changed) -> None:
        self.query_one("#mode-name", Static).update(self._name_of(event.value))

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        try:
            draft = self._read()
        except ValueError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(draft)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _read(self) -> LabelDraft:
        mode = self.query_one("#mode", Input).value.strip()
        if not mode:
            raise ValueError("a mode is required")
        if self.known_modes and mode not in self.known_modes:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(self.known_modes)}")
        raw_p = self.query_one("#probability", Input).value.strip()
        probability = float(raw_p) if raw_p else None
        if probability is not None and not 0 <= probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        words = self.query_one("#evidence", Input).value.replace(",", " ").split()
        if not all(w.isdigit() for w in words):
            raise ValueError("evidence steps are step numbers separated by spaces")
        evidence = [int(w) for w in words]
        if any(step >= self.n_steps for step in evidence):
            raise ValueError(f"this trace has steps 0..{self.n_steps - 1}")
        agent = self.query_one("#agent", Input).value.strip() or None
        if agent is not None and self.agents and agent not in self.agents:
            raise ValueError(
                f"agent {agent!r} does not speak in this trace; agents: {', '.join(self.agents)}"
            )
        return LabelDraft(
            mode_id=mode,
            present=self.query_one("#present", Switch).value,
            probability=probability,
            evidence_steps=evidence,
            agent=agent,
            rationale=self.query_one("#rationale", Input).value.strip() or None,
        )
