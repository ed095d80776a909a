"""Split a raw multi-agent run log (MAST-Data `trajectory` text) into steps.

MAST-Data keeps each run as the framework's own terminal output, so step boundaries depend on
the framework's log style. Each splitter returns None when the text is not in its style; the
caller tries the framework's own splitter first, then the others, then keeps the text as one
step. The raw text is always kept beside the steps (Trace.raw), so a bad split loses nothing.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracefail.ingest.base import parse_time, text_of
from tracefail.ingest.content import mapping
from tracefail.model import Outcome, Step, StepKind


@dataclass
class Split:
    style: str
    steps: list[Step]
    task: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Chunk:
    agent: str | None
    content: str
    recipient: str | None = None
    name: str | None = None
    ts: str | None = None


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

    def starts(self, text: str) -> list[tuple[int, re.Match[str]]]:
        """Every header as (offset of its line, match), in order."""
        first = self.first.match(text)
        found = [(0, first)] if first else []
        found += [(m.start() + 1, m) for m in self.later.finditer(text, first.end() if first else 0)]
        return found

    def search(self, text: str) -> re.Match[str] | None:
        return self.first.match(text) or self.later.search(text)


_FENCE = _LineHead("```")


def _steps(chunks: list[_Chunk]) -> list[Step]:
    """Chunks hold text this module cut out of the log, so the steps skip validation."""
    return [
        Step.split_from_log(
            i,
            c.content.strip("\n"),
            agent=c.agent,
            recipient=c.recipient,
            name=c.name,
            start_ts=parse_time(c.ts),
        )
        for i, c in enumerate(chunks)
    ]


def _cut(
    text: str,
    header: _LineHead,
    make: Callable[[re.Match[str], str], _Chunk | None],
    outside_code: bool = False,
) -> list[_Chunk]:
    """Cut `text` at every `header` match; text before the first header becomes a preamble step.
    With `outside_code`, matches inside ``` fences (e.g. `# comment` lines) are not headers."""
    chunks = []
    heads = header.starts(text)
    if outside_code:
        fences = [start for start, _ in _FENCE.starts(text)]
        heads = [head for head in heads if bisect.bisect_left(fences, head[0]) % 2 == 0]
    if not heads:  # every heading sat inside a code fence: not this style
        return []
    if text[: heads[0][0]].strip():
        chunks.append(_Chunk(None, text[: heads[0][0]], name="preamble"))
    ends = [start for start, _ in heads[1:]] + [len(text)]
    for (_, match), end in zip(heads, ends, strict=True):
        chunk = make(match, text[match.end() : end])
        if chunk is not None:
            chunks.append(chunk)
    return chunks


# --- AG2: the trajectory is JSON, a message list or an object holding one ------------------
_AG2_LIST_KEYS = ("trajectory", "messages", "chat_history", "history", "conversation")


def split_ag2(text: str) -> Split | None:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        data = json.loads(stripped)
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
        steps=steps,
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
_MGPT_BLOCK = _LineHead(
    r"\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] (?P<kind>NEW MESSAGES:|FROM: .*)$"
)
_MGPT_FROM = re.compile(r"FROM: (?P<agent>.+?) TO: (?P<to>.*)$")
_MGPT_SPEAKER = re.compile(r"^\s*(?P<agent>[A-Za-z_][\w .-]{0,60}?):[ \t]*\n?", re.S)
_RULE = re.compile(r"\n-{20,}\s*$")


def split_metagpt(text: str) -> Split | None:
    if _MGPT_BLOCK.search(text):

        def make(match: re.Match[str], body: str) -> _Chunk:
            body = _RULE.sub("", body)
            frm = _MGPT_FROM.match(match.group("kind"))
            if frm:
                action, _, content = body.partition("CONTENT:\n")
                action = action.replace("ACTION:", "").strip()
                return _Chunk(
                    frm.group("agent"),
                    content or body,
                    recipient=frm.group("to").strip() or None,
                    name=action or None,
                    ts=match.group("ts"),
                )
            speaker = _MGPT_SPEAKER.match(body.lstrip("\n"))
            if speaker:
                return _Chunk(
                    speaker.group("agent").strip(), body.lstrip("\n")[speaker.end() :], ts=match.group("ts")
                )
            return _Chunk(None, body, ts=match.group("ts"))

        chunks = _cut(text, _MGPT_BLOCK, make)
        task = next((c.content.strip() for c in chunks if c.agent == "Human"), None)
        return Split("metagpt-log", _steps(chunks), task=task)
    return _split_loguru(text, "metagpt-loguru")


# Style 2 (loguru, also OpenManus):
# "2025-01-17 11:40:27.872 | INFO     | module:func:391 - Alice(SimpleCoder): ..."
_LOGURU = _LineHead(
    r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) \| (?P<level>[A-Z]+)\s*\| (?P<where>\S+) - "
)
_PERSONA = re.compile(r"^\w[\w-]*\(([\w ]+)\)$")
_LOGURU_AGENT = re.compile(r"^(?:\W+\s*)?(?P<agent>[A-Z][\w-]*(?:\([\w ]+\))?)(?::|'s )")


def _split_loguru(text: str, style: str) -> Split | None:
    task = None
    stripped = text.lstrip()
    if stripped.startswith("{"):  # MAST MetaGPT runs: {"run_id", "prompt", "content": "<loguru lines>"}
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("content"), str):
            task = data.get("prompt") if isinstance(data.get("prompt"), str) else None
            text = data["content"]
    if not _LOGURU.search(text):
        return None

    def make(match: re.Match[str], body: str) -> _Chunk:
        agent = _LOGURU_AGENT.match(body)
        speaker = agent.group("agent") if agent else match.group("where").split(":")[0]
        persona = _PERSONA.match(speaker)  # "Alice(SimpleCoder)": the role names the agent
        return _Chunk(
            persona.group(1) if persona else speaker,
            body,
            name=match.group("level"),
            ts=match.group("ts"),
        )

    return Split(style, _steps(_cut(text, _LOGURU, make)), task=task)


# --- ChatDev: "[2023-25-08 10:20:56 INFO] Chief Product Officer: **Chief Product Officer<->..." -----
_CHATDEV = _LineHead(r"\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?P<level>[A-Z]+)\] ?")
_CHATDEV_AGENT = re.compile(r"^(?P<agent>[A-Z][\w .-]{0,60}?): ")
_CHATDEV_PAIR = re.compile(r"\*\*(?P<a>[^*<]+?)<->(?P<b>[^*]+?) on : ")
_CHATDEV_TASK = _LineHead(r"\*\*task_prompt\*\*: (.+)$")
_CHATDEV_NOISE = "flask app.py did not start for online log"


def split_chatdev(text: str) -> Split | None:
    if not _CHATDEV.search(text):
        return None

    def make(match: re.Match[str], body: str) -> _Chunk | None:
        if body.strip() == _CHATDEV_NOISE:  # ChatDev prints this after every message
            return None
        agent = _CHATDEV_AGENT.match(body)
        pair = _CHATDEV_PAIR.search(body[:300])
        recipient = None
        if agent and pair:
            a, b = pair.group("a").strip(), pair.group("b").strip()
            recipient = b if agent.group("agent") == a else a
        # ChatDev dates are year-day-month; keep the text, the timestamp is not reliable
        return _Chunk(
            agent.group("agent") if agent else None,
            body[agent.end() :] if agent else body,
            recipient=recipient,
            name=match.group("level"),
        )

    prompt = _CHATDEV_TASK.search(text)
    return Split(
        "chatdev-log", _steps(_cut(text, _CHATDEV, make)), task=prompt.group(1).strip() if prompt else None
    )


# --- HyperAgent: "HyperAgent_<instance> - INFO - Planner's Response: ..." / "Navigator->Planner: ..." --
_HYPER = _LineHead(r"(?P<logger>HyperAgent\S*) - (?P<level>[A-Z]+) - ")
_HYPER_RESPONSE = re.compile(r"^(?P<agent>[\w -]+?)'s Response:\s*")
_HYPER_HANDOFF = re.compile(r"^(?P<agent>[\w-]+)->(?P<to>[\w-]+):\s*")


def split_hyperagent(text: str) -> Split | None:
    if not _HYPER.search(text):
        return None

    def make(match: re.Match[str], body: str) -> _Chunk:
        resp = _HYPER_RESPONSE.match(body)
        if resp:
            return _Chunk(resp.group("agent"), body[resp.end() :], name=match.group("level"))
        hand = _HYPER_HANDOFF.match(body)
        if hand:
            return _Chunk(
                hand.group("agent"), body[hand.end() :], recipient=hand.group("to"), name=match.group("level")
            )
        return _Chunk("HyperAgent", body, name=match.group("level"))

    return Split("hyperagent-log", _steps(_cut(text, _HYPER, make)))


# --- Magentic-One ------------------------------------------------------------------------------
# AgentChat console: "---------- MagenticOneOrchestrator ----------"; the original magentic-one
# log: JSON lines {"source": "Orchestrator (-> WebSurfer)", "message": ..., "timestamp": ...}.
_CONSOLE = _LineHead(r"-{5,} (?P<agent>[^\n]+?)(?: \((?P<note>[^)]*)\))? -{5,}$")


def split_magentic(text: str) -> Split | None:
    from tracefail.ingest.whowhen import parse_magentic_role

    lines = [ln for ln in text.splitlines() if ln.strip()]
    records = []
    for line in lines[:3]:
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    if records and all(isinstance(r, dict) and "source" in r and "message" in r for r in records):
        chunks = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                chunks.append(_Chunk(None, line, name="unparsed"))
                continue
            agent, recipient, note = parse_magentic_role(str(rec.get("source", "")))
            chunks.append(_Chunk(agent, text_of(rec.get("message")), recipient, note, rec.get("timestamp")))
        task = next((c.content for c in chunks if (c.agent or "").lower() in ("human", "user")), None)
        return Split("magentic-jsonl", _steps(chunks), task=task)
    if not _CONSOLE.search(text):
        return None

    def make(match: re.Match[str], body: str) -> _Chunk:
        return _Chunk(match.group("agent").strip(), body, name=match.group("note"))

    return Split("magentic-console", _steps(_cut(text, _CONSOLE, make)))


# --- AppWorld: markdown sections, one per agent turn ("### Supervisor -> spotify_agent") --------
_MD_HEADING = _LineHead(r"#{1,4} (?P<title>[^\n]+)$")
_ARROW = re.compile(r"\s*(?:->|→|to)\s*")


def split_appworld(text: str) -> Split | None:
    if len(_MD_HEADING.starts(text)) < 2:
        return None

    def make(match: re.Match[str], body: str) -> _Chunk:
        title = match.group("title").strip().strip("*").strip()
        parts = _ARROW.split(title, maxsplit=1)
        if len(parts) == 2 and all(parts):
            return _Chunk(parts[0], body, recipient=parts[1])
        return _Chunk(title, body)

    chunks = _cut(text, _MD_HEADING, make, outside_code=True)
    return Split("appworld-markdown", _steps(chunks)) if len(chunks) > 1 else None


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
        if split is not None and split.steps:
            return split
    return Split("unsplit", [Step(step_idx=0, kind=StepKind.MESSAGE, content=text)])
