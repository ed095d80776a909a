"""The one sanitiser for trace data on a terminal, shared by every CLI command and TUI widget.

Trace content is untrusted: an agent name with ESC ] 52 (OSC 52) set tmux's clipboard, and a
bidi override (U+202E) reversed what `show` printed. Every C0/C1 control character but newline
and tab becomes its visible Unicode picture (ESC -> ␛), so CSI, OSC and DCS sequences lose their
introducer, and bidi controls become a visible mark.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi
# embedding, override, isolate and mark characters
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    if code <= 0x9F:
        return "�"
    return f"<U+{code:04X}>"


def terminal_safe(text: str) -> str:
    """`text` with nothing a terminal would act on: control and bidi characters made visible."""
    return UNSAFE.sub(_picture, text)


def json_escaped(text: str) -> str:
    """JSON text with every character `terminal_safe` replaces written as a \\u escape: the
    same data for a parser, nothing for a terminal to act on."""
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
