"""Trace text made safe to show: literal, with no markup, ANSI or control character effects.

Trace content is untrusted. It only ever reaches the screen as a rich `Text` built here (never
parsed as markup), after ANSI escapes and control characters are replaced by visible symbols.
"""

from __future__ import annotations

from rich.text import Text

from tracefail.services.terminal import terminal_safe

PREVIEW_CHARS = 20_000  # a step's text shown before "show more"


def clean(text: str) -> str:
    """Control and bidi characters made visible (`terminal_safe`: ESC -> ␛); tabs expand."""
    return terminal_safe(text.replace("\r\n", "\n").expandtabs(4))


def literal(text: str | None, style: str = "", limit: int | None = None) -> Text:
    """A rich Text that shows `text` exactly; `limit` cuts long text with a visible note."""
    text = text or ""
    cut = 0
    if limit is not None and len(text) > limit:
        cut = len(text) - limit
        text = text[:limit]
    result = Text(clean(text), style=style, no_wrap=False)
    if cut:
        result.append(f"\n… {cut:,} more characters (o: show more)", style="italic dim")
    return result


def one_line(text: str | None, width: int) -> str:
    """First line-ish preview: whitespace collapsed, cleaned, cut to `width`."""
    flat = " ".join((text or "")[: width * 4].split())
    flat = clean(flat)
    return flat if len(flat) <= width else flat[: width - 1] + "…"
