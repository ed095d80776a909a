"""Modal list of every per-step feature (headline ones first), filtered as you type: `f` cycles
only the headline features, so the other ~250 are reached from here."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static


class FeaturePicker(ModalScreen[str | None]):
    BINDING_GROUP_TITLE = "Feature picker"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "cancel", "Cancel", tooltip="Close without changing the chart.", id="picker.cancel"
        ),
    ]

    def __init__(self, names: list[str], current: str | None) -> None:
        super().__init__()
        self.names = names
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="feature-picker"):
            yield Static(
                f"chart a per-step feature ({len(self.names)}; type to narrow)", classes="form-title"
            )
            yield Input(placeholder="tok. attn. …", id="feature-filter")
            yield OptionList(*self.names, id="feature-list")

    def on_mount(self) -> None:
        if self.current in self.names:
            self.query_one(OptionList).highlighted = self.names.index(self.current)
        self.query_one("#feature-filter", Input).focus()

    @on(Input.Changed, "#feature-filter")
    def _narrow(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([n for n in self.names if event.value.lower() in n.lower()])
        if options.option_count:
            options.highlighted = 0

    @on(Input.Submitted, "#feature-filter")
    def _take_highlighted(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(str(options.get_option_at_index(options.highlighted).prompt))

    @on(OptionList.OptionSelected, "#feature-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.prompt))

    def action_cancel(self) -> None:
        self.dismiss(None)
