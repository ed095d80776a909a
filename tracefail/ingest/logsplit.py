"""Split a raw multi-agent run log (MAST-Data `trajectory` text) into steps.

MAST-Data keeps each run as the framework's own terminal output, so step boundaries depend on
the framework's log style. Each splitter returns None when the text is not in its style; the
caller tries the framework's own splitter first, then the others, then keeps the text as one
step. The raw text is always kept beside the steps (Trace.raw), so a bad split loses nothing.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import compress, repeat
from operator import add
from typing import Any

from tracefail.ingest.base import parse_time, text_of
from tracefail.ingest.content import mapping
from tracefail.ingest.reader import loads
from tracefail.model import Outcome, Step, StepColumns


@dataclass
class Split:
    """A cut log: its steps as columns (the ingest stores them without a Step object each)."""

    style: str
    columns: StepColumns
    task: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> list[Step]:
        return self.columns.steps()


_Heads = tuple[list[int], list[re.Match[str]]]


class _LineHead:
    """A header pattern that matches at line starts only (what `^` under re.M means).

    The regex engine tries a `^`-led pattern at every position (~25 ns a character: seconds
    on a 50 MB MAST file); led by a literal newline instead it jumps between candidates at
    memchr speed (~6x faster on MAST logs). The first line, with no newline before it, is
    matched on its own. A header must not end in a newline, or a header on the next line would
    be hidden behind it.
    """

    def __init__(self, pattern: str) -> None:
        self.first = re.compile(pattern, re.M)
        self.later = re.compile(f"\\n(?:{pattern})", re.M)

    def starts(self, text: str) -> _Heads:
        """Every header: the offsets of their lines and the matches, in order."""
        first = self.first.match(text)
        matches = [first] if first else []
        matches += self.later.finditer(text, first.end() if first else 0)
        offsets = list(map(add, map(re.Match.start, matches), repeat(1)))  # after the newline
        if first:
            offsets[0] = 0
        return offsets, matches

    def search(self, text: str) -> re.Match[str] | None:
        return self.first.match(text) or self.later.search(text)


_FENCE = _LineHead("```")

# What a header and its body say: the body's bounds in the text (a step's content is the text
# between them without edge newlines), agent, recipient, step name and timestamp text. Makers
# return bounds, not slices: cutting each step's text once is a large part of splitting 50 MB.
_Part = tuple[int, int, str | None, str | None, str | None, str | None]
_Maker = Callable[[str, re.Match[str], int], _Part | None]


def _cut(text: str, heads: _Heads, make: _Maker) -> StepColumns:
    """One step per header, its body running to the next header's line; text before the first
    header becomes a preamble step. `make(text, match, end)` reads a header whose body ends at
    `end`, or returns None to drop it. The parts go straight into columns, no Step each, and
    everything after `make` is done a column at a time (`map` over C functions: cutting and
    trimming the bodies, looking up times), not step by step. A log stamps many lines with the
    same second, so each distinct timestamp text is parsed once."""
    offsets, matches = heads
    columns = StepColumns()
    if text[: offsets[0]].strip():
        columns.append(text[: offsets[0]].strip("\n"), name="preamble")
    ends = offsets[1:]
    ends.append(len(text))
    parts = [part for part in map(make, repeat(text), matches, ends) if part is not None]
    if parts:
        starts, stops, agents, recipients, names, stamps = zip(*parts, strict=True)
        bodies = map(text.__getitem__, map(slice, starts, stops))
        columns.content += map(str.strip, bodies, repeat("\n"))
        columns.agent += agents
        columns.recipient += recipients
        columns.name += names
        times = {stamp: parse_time(stamp) for stamp in set(stamps)}
        columns.start_ts += map(times.__getitem__, stamps)
    columns.role += [None] * (len(columns.content) - len(columns.role))
    return columns


def _outside_code(text: str, heads: _Heads) -> _Heads:
    """The headers not inside ``` fences (where e.g. `# comment` lines are code, not headings)."""
    fences = _FENCE.starts(text)[0]
    kept = [bisect.bisect_left(fences, offset) % 2 == 0 for offset in heads[0]]
    return list(compress(heads[0], kept)), list(compress(heads[1], kept))


# --- AG2: the trajectory is JSON, a message list or an object holding one ------------------
_AG2_LIST_KEYS = ("trajectory", "messages", "chat_history", "history", "conversation")


def split_ag2(text: str) -> Split | None:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        data = loads(stripped)
    except ValueError:
        return None
    holder = data if isinstance(data, dict) else {}
    messages = (
        data
        if isinstance(data, list)
        else next((data[k] for k in _AG2_LIST_KEYS if isinstance(data.get(k), list)), None)
    )
    if not messages or not all(isinstance(m, dict) and "content" in m for m in messages):
        return None
    steps = [
        Step(
            step_idx=i,
            agent=m.get("name") or m.get("role"),  # AG2 `role` is receiver-relative: prefer name
            role=m.get("role"),
            content=_lines(m.get("content")),
        )
        for i, m in enumerate(messages)
    ]
    problem = holder.get("problem_statement")
    other = mapping(holder.get("other_data"))
    correct = other.get("correct")
    return Split(
        style="ag2-json",
        columns=StepColumns.of_steps(steps),
        task=_lines(problem) or None,
        outcome=Outcome.UNKNOWN if correct is None else (Outcome.SUCCESS if correct else Outcome.FAILURE),
        metadata={k: holder[k] for k in ("instance_id", "other_data", "note") if k in holder},
    )


def _lines(value: Any) -> str:
    """AG2 exports store content as a list of lines."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return text_of(value)


# --- MetaGPT --------------------------------------------------------------------------------
# Style 1 (communication log): "[2025-03-27 01:21:11] NEW MESSAGES:\n\nSimpleCoder: ..." and
# "[ts] FROM: Human TO: {...}\nACTION: ...\nCONTENT:\n...", blocks ended by a dashed rule.
# Body patterns run as pattern.match(text, start, end), where `^` would not match: none has one.
# A name run that cannot hold its terminator (":" after [\w .-], "'" after [\w -], "<" after
# [^*<]) is greedy: it ends where a lazy one would, without retrying the rest at every character
# (2-3x faster per match).
_MGPT_BLOCK = _LineHead(r"\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] (?P<kind>NEW MESSAGES:|FROM: .*)$")
_MGPT_FROM = re.compile(r"FROM: (?P<agent>.+?) TO: (?P<to>.*)$")
_MGPT_SPEAKER = re.compile(r"\s*(?P<agent>[A-Za-z_][\w .-]{0,60}):[ \t]*\n?", re.S)
_RULE = re.compile(r"\n-{20,}\s*$")
_CONTENT = "CONTENT:\n"


@lru_cache(maxsize=1024)
def _mgpt_sender(kind: str) -> tuple[str, str | None] | None:
    """Agent and recipient of a "FROM: a TO: b" header (a run repeats a few of them)."""
    frm = _MGPT_FROM.match(kind)
    return (frm.group("agent"), frm.group("to").strip() or None) if frm else None


def _before_rule(text: str, start: int, end: int) -> int:
    """Where text[start:end] ends once a closing dashed rule (`_RULE`) is cut off. The rule can
    only be the body's last non-blank line, so it is looked for there, not by scanning the whole
    body (MetaGPT bodies are half of a MAST file); a body ending in 256+ blank characters is
    left to the regex."""
    window = max(start, end - 256)
    tail = text[window:end].rstrip()
    if not tail and window > start:
        rule = _RULE.search(text, start, end)
        return rule.start() if rule else end
    stop = window + len(tail)
    newline = text.rfind("\n", start, stop)
    dashes = stop - newline - 1
    if newline >= 0 and dashes >= 20 and text.count("-", newline + 1, stop) == dashes:
        return newline
    return end


def _mgpt_part(text: str, match: re.Match[str], end: int) -> _Part:
    start, ts = match.end(), match.group("ts")
    stop = _before_rule(text, start, end)
    sender = _mgpt_sender(match.group("kind"))
    if sender:
        marker = text.find(_CONTENT, start, stop)
        action = text[start : stop if marker < 0 else marker].replace("ACTION:", "").strip()
        body = start if marker < 0 or marker + len(_CONTENT) == stop else marker + len(_CONTENT)
        return body, stop, sender[0], sender[1], action or None, ts
    speaker = _MGPT_SPEAKER.match(text, start, stop)
    if speaker:
        return speaker.end(), stop, speaker.group("agent").strip(), None, None, ts
    return start, stop, None, None, None, ts


def split_metagpt(text: str) -> Split | None:
    heads = _MGPT_BLOCK.starts(text)
    if not heads[0]:
        return _split_loguru(text, "metagpt-loguru")
    columns = _cut(text, heads, _mgpt_part)
    human = next((i for i, agent in enumerate(columns.agent) if agent == "Human"), None)
    task = None if human is None else columns.content[human].strip()
    return Split("metagpt-log", columns, task=task)


# Style 2 (loguru, also OpenManus):
# "2025-01-17 11:40:27.872 | INFO     | module:func:391 - Alice(SimpleCoder): ..."
_LOGURU_HEAD = (
    r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) \| (?P<level>[A-Z]+)\s*\| (?P<where>\S+) - "
)
_LOGURU = _LineHead(_LOGURU_HEAD)
_PERSONA = re.compile(r"^\w[\w-]*\(([\w ]+)\)$")
# The speaker after the header, read in the header's own match (one regex call a step, not
# two). It cannot run past the body: the next header's line starts with a digit, which none of
# its parts match.
_LOGURU_STEP = _LineHead(_LOGURU_HEAD + r"(?:(?:\W+\s*)?(?P<agent>[A-Z][\w-]*(?:\([\w ]+\))?)(?::|'s ))?")
_LOGURU_BODY = len(" - ")  # what the header has after `where`


@lru_cache(maxsize=1024)
def _persona(speaker: str) -> str:
    """The agent a speaker names: "Alice(SimpleCoder)" is the SimpleCoder (runs repeat speakers)."""
    persona = _PERSONA.match(speaker)
    return persona.group(1) if persona else speaker


def _loguru_part(text: str, match: re.Match[str], end: int) -> _Part:
    speaker = match.group("agent") or match.group("where").split(":")[0]
    start = match.end("where") + _LOGURU_BODY
    return start, end, _persona(speaker), None, match.group("level"), match.group("ts")


def _split_loguru(text: str, style: str) -> Split | None:
    task = None
    stripped = text.lstrip()
    if stripped.startswith("{"):  # MAST MetaGPT runs: {"run_id", "prompt", "content": "<loguru lines>"}
        try:
            data = loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("content"), str):
            task = data.get("prompt") if isinstance(data.get("prompt"), str) else None
            text = data["content"]
    heads = _LOGURU_STEP.starts(text)
    return Split(style, _cut(text, heads, _loguru_part), task=task) if heads[0] else None


# --- ChatDev: "[2023-25-08 10:20:56 INFO] Chief Product Officer: **Chief Product Officer<->..." -----
_CHATDEV_HEAD = r"\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?P<level>[A-Z]+)\] ?"
_CHATDEV = _LineHead(_CHATDEV_HEAD)
# The speaker after the header, in the header's own match: it cannot hold a newline, so it
# cannot run past the body.
_CHATDEV_STEP = _LineHead(_CHATDEV_HEAD + r"(?:(?P<agent>[A-Z][\w .-]{0,60}): )?")
_CHATDEV_AGENT = re.compile(r"(?P<agent>[A-Z][\w .-]{0,60}): ")
_CHATDEV_PAIR = re.compile(r"\*\*(?P<a>[^*<]+)<->(?P<b>[^*]+?) on : ")
_CHATDEV_TASK = _LineHead(r"\*\*task_prompt\*\*: (.+)$")
# ChatDev prints this after every message: a body that is only this (`\s` is what str.strip drops)
_CHATDEV_NOISE = re.compile(r"\s*flask app\.py did not start for online log\s*\Z")


CHATDEV_NOISE = "flask app.py did not start for online log"  # a line the ChatDev split drops


def _chatdev_part(text: str, match: re.Match[str], end: int) -> _Part | None:
    agent = match.group("agent")
    if agent is None:  # a body that starts with a speaker is never the noise line
        start = match.end()
        if _CHATDEV_NOISE.match(text, start, end):
            return None
        return start, end, None, None, match.group("level"), None
    head_end = match.start("agent")
    pair = _CHATDEV_PAIR.search(text, head_end, min(head_end + 300, end))
    recipient = None
    if pair:
        a, b = pair.group("a").strip(), pair.group("b").strip()
        recipient = b if agent == a else a
    # ChatDev dates are year-day-month; keep the text, the timestamp is not reliable
    return match.end(), end, agent, recipient, match.group("level"), None


def split_chatdev(text: str) -> Split | None:
    heads = _CHATDEV_STEP.starts(text)
    if not heads[0]:
        return None
    prompt = _CHATDEV_TASK.search(text)
    task = prompt.group(1).strip() if prompt else None
    return Split("chatdev-log", _cut(text, heads, _chatdev_part), task=task)


# --- HyperAgent: "HyperAgent_<instance> - INFO - Planner's Response: ..." / "Navigator->Planner: ..." --
_HYPER = _LineHead(r"(?P<logger>HyperAgent\S*) - (?P<level>[A-Z]+) - ")
_HYPER_RESPONSE = re.compile(r"(?P<agent>[\w -]+)'s Response:\s*")
_HYPER_HANDOFF = re.compile(r"(?P<agent>[\w-]+)->(?P<to>[\w-]+):\s*")


def _hyper_part(text: str, match: re.Match[str], end: int) -> _Part:
    start, level = match.end(), match.group("level")
    resp = _HYPER_RESPONSE.match(text, start, end)
    if resp:
        return resp.end(), end, resp.group("agent"), None, level, None
    hand = _HYPER_HANDOFF.match(text, start, end)
    if hand:
        return hand.end(), end, hand.group("agent"), hand.group("to"), level, None
    return start, end, "HyperAgent", None, level, None


def split_hyperagent(text: str) -> Split | None:
    heads = _HYPER.starts(text)
    return Split("hyperagent-log", _cut(text, heads, _hyper_part)) if heads[0] else None


# --- Magentic-One ------------------------------------------------------------------------------
# AgentChat console: "---------- MagenticOneOrchestrator ----------"; the original magentic-one
# log: JSON lines {"source": "Orchestrator (-> WebSurfer)", "message": ..., "timestamp": ...}.
_CONSOLE = _LineHead(r"-{5,} (?P<agent>[^\n]+?)(?: \((?P<note>[^)]*)\))? -{5,}$")


def _console_part(text: str, match: re.Match[str], end: int) -> _Part:
    return match.end(), end, match.group("agent").strip(), None, match.group("note"), None


def _first_lines(text: str, n: int) -> list[str]:
    """The first n non-blank lines of text.splitlines(), splitting only the text's head when it
    holds them: most logs tried here are not JSON lines and are turned away by their first."""
    head = text[:8192]
    lines = head.splitlines()
    if len(head) < len(text) and lines:
        lines.pop()  # may be cut short by the head's end
    found = [ln for ln in lines if ln.strip()][:n]
    if len(found) < n and len(head) < len(text):
        found = [ln for ln in text.splitlines() if ln.strip()][:n]
    return found


def split_magentic(text: str) -> Split | None:
    from tracefail.ingest.whowhen import parse_magentic_role

    records = []
    for line in _first_lines(text, 3):
        try:
            records.append(loads(line))
        except ValueError:
            break
    if records and all(isinstance(r, dict) and "source" in r and "message" in r for r in records):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        columns = StepColumns()
        task = None
        for line in lines:
            agent: str | None
            note: str | None
            try:
                rec = loads(line)
            except ValueError:
                agent, content, recipient, note, ts = None, line, None, "unparsed", None
            else:
                agent, recipient, note = parse_magentic_role(str(rec.get("source", "")))
                content, ts = text_of(rec.get("message")), rec.get("timestamp")
            if task is None and (agent or "").lower() in ("human", "user"):
                task = content
            columns.append(content.strip("\n"), agent, recipient, name=note, start_ts=parse_time(ts))
        return Split("magentic-jsonl", columns, task=task)
    heads = _CONSOLE.starts(text)
    return Split("magentic-console", _cut(text, heads, _console_part)) if heads[0] else None


# --- AppWorld: markdown sections, one per agent turn ("### Supervisor -> spotify_agent") --------
_MD_HEADING = _LineHead(r"#{1,4} (?P<title>[^\n]+)$")
_ARROW = re.compile(r"\s*(?:->|→|to)\s*")


@lru_cache(maxsize=1024)
def _turn(title: str) -> tuple[str, str | None]:
    """Agent and recipient of a "### Supervisor -> spotify_agent" title (a run repeats a few)."""
    title = title.strip().strip("*").strip()
    parts = _ARROW.split(title, maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else (title, None)


def _appworld_part(text: str, match: re.Match[str], end: int) -> _Part:
    agent, recipient = _turn(match.group("title"))
    return match.end(), end, agent, recipient, None, None


def split_appworld(text: str) -> Split | None:
    heads = _MD_HEADING.starts(text)
    if len(heads[0]) < 2:
        return None
    heads = _outside_code(text, heads)
    if not heads[0]:  # every heading sat inside a code fence: not this style
        return None
    columns = _cut(text, heads, _appworld_part)
    return Split("appworld-markdown", columns) if len(columns) > 1 else None


SPLITTERS: dict[str, Callable[[str], Split | None]] = {
    "ag2": split_ag2,
    "metagpt": split_metagpt,
    "openmanus": lambda text: _split_loguru(text, "openmanus-loguru"),
    "chatdev": split_chatdev,
    "hyperagent": split_hyperagent,
    "magentic": split_magentic,
    "appworld": split_appworld,
}


def split_trajectory(text: str, framework: str | None) -> Split:
    """Steps of a raw run log: the framework's splitter, then any that fits, then one step."""
    key = str(framework or "").lower().replace("-", "").replace(" ", "")
    order = [fn for name, fn in SPLITTERS.items() if name in key]
    order += [fn for fn in SPLITTERS.values() if fn not in order]
    for splitter in order:
        split = splitter(text)
        if split is not None and len(split.columns):
            return split
    columns = StepColumns()
    columns.append(text)
    return Split("unsplit", columns)


# The headers above, read as fields (agent, recipient, level, time) rather than kept as text: a
# header is matched at a line's start, then the speaker prefix that follows it, if any.
_HEADERS = (_MGPT_BLOCK.first, _LOGURU.first, _CHATDEV.first, _HYPER.first, _CONSOLE.first, _MD_HEADING.first)
_SPEAKERS = (_CHATDEV_AGENT, _HYPER_RESPONSE, _HYPER_HANDOFF, _MGPT_SPEAKER)
# Without a header before it: a MetaGPT `ACTION:` / `CONTENT:` line, a one-word speaker prefix,
# or a bracketed speaker mark (`[assistant]`, `[tool:Bash]`, as AdaMAST's splitter reads them).
_FIELD_LINE = re.compile(
    r"(?:ACTION|CONTENT):\s*|[A-Za-z_][\w.-]{0,40}(?:\([\w ]+\))?:\s+|\[[^\]\n]{1,40}\]:?\s*"
)


def header_rest(line: str) -> str | None:
    """What is left of a log line once a header the splitters parse into fields is cut off its
    start (the ingest fidelity measure counts only the rest as text), or None if it has none."""
    for pattern in _HEADERS:
        head = pattern.match(line)
        if head:
            rest = line[head.end() :]
            for speaker in _SPEAKERS:
                found = speaker.match(rest)
                if found:
                    return rest[found.end() :].strip()
            return rest.strip()
    found = _FIELD_LINE.match(line)
    return line[found.end() :].strip() if found else None
