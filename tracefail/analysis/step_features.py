"""Cheap per-step features for failure attribution, and the role every framework's speakers map to.

Attribution rules and the step ranker must read AG2 (speaker in `name`, `role` relative to the
receiver), Magentic-One (speaker parsed out of `role`) and span/chat formats alike, so a step's
speaker is first reduced to one of four roles: user, orchestrator, tool, worker. The features are
what the literature found to carry signal (reference/attribution.md): position, normalised role,
speaker share and first turn, error/failure words in the step and in the steps after it, tool
errors, and repetition of earlier text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROLES = ("user", "orchestrator", "tool", "worker")

_TOOL = re.compile(r"terminal|executor|computer|(^|_)tool|code_?exec|interpreter|shell|python_?repl", re.I)
_ORCHESTRATOR = re.compile(r"orchestrat|manager|planner|captain|supervisor|coordinator|router", re.I)
_USER = re.compile(r"^(user|human|user_?proxy|customer|client)$", re.I)

_ERROR = re.compile(r"error|exception|traceback|exitcode: [1-9]|failed|failure|not found|invalid", re.I)
_GIVE_UP = re.compile(
    r"i cannot|i can't|unable to|could not|couldn't|not able to|no (?:data|results?|information)", re.I
)
_END = re.compile(r"terminate|final answer", re.I)
# Guessing instead of finding out: the most common root cause in Who&When's AG2 runs.
_ASSUME = re.compile(
    r"assum|hypothetic|suppose|generally|approximat|estimat|placeholder|simulat|example|mock|dummy|"
    r"sample data|let's say|typical|without (?:access|the)",
    re.I,
)
_TOOL_OK = re.compile(r"exitcode: 0|execution succeeded", re.I)
_NO_CODE = re.compile(r"no code from the last|no code (?:block|to execute)", re.I)
_CODE = re.compile(r"```")
_WORD = re.compile(r"\w+")


def normalise_role(agent: str | None, role: str | None, kind: str | None) -> str:
    """user / orchestrator / tool / worker from whatever the source calls its speaker.

    The source's `role` decides only when it names the speaker itself (no agent name, or tool
    results): AG2's `role` is relative to the receiver and must not make an expert a "user".
    """
    name = (agent or "").strip()
    if (
        kind == "tool"
        or (role or "").lower() in {"tool", "function", "ipython"}
        or (name and _TOOL.search(name))
    ):
        return "tool"
    if name:
        if _USER.match(name):
            return "user"
        if _ORCHESTRATOR.search(name):
            return "orchestrator"
        return "worker"
    if (role or "").lower() in {"user", "human"}:
        return "user"
    if (role or "").lower() == "system":
        return "orchestrator"
    return "worker"


@dataclass(frozen=True)
class StepRow:
    """The columns attribution needs from one stored step."""

    step_idx: int
    agent: str | None
    role: str | None
    kind: str | None
    content: str


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _hits(pattern: re.Pattern[str], text: str) -> float:
    return float(len(pattern.findall(text)))


FEATURES = (
    "rel_pos",
    "abs_pos",
    "dist_end",
    "n_steps",
    "is_first",
    "is_last",
    "is_second",
    *(f"role_{r}" for r in ROLES),
    "first_worker",
    "last_worker",
    "worker_rank",
    "speaker_share",
    "speaker_first_turn",
    "speaker_turn",
    "speaker_is_first",
    "speaker_is_last_worker",
    "log_chars",
    "has_code",
    "err_here",
    "giveup_here",
    "end_here",
    "assume_here",
    "digits",
    "err_next",
    "giveup_next",
    "tool_error_next",
    "tool_ok_next",
    "no_code_next",
    "err_after",
    "end_after",
    "repeat_prev",
    "repeated_later",
    "new_words",
)


def trace_features(steps: Sequence[StepRow]) -> np.ndarray:
    """One row of FEATURES per step, in step order (float64, no NaN)."""
    n = len(steps)
    roles = [normalise_role(s.agent, s.role, s.kind) for s in steps]
    workers = [i for i, r in enumerate(roles) if r == "worker"]
    speakers = Counter(s.agent for s in steps)
    last_worker_agent = steps[workers[-1]].agent if workers else None
    texts = [s.content or "" for s in steps]
    words = [_words(t) for t in texts]
    err = [_hits(_ERROR, t) for t in texts]
    giveup = [_hits(_GIVE_UP, t) for t in texts]
    end = [_hits(_END, t) for t in texts]
    rows = np.zeros((n, len(FEATURES)))
    seen: Counter[str | None] = Counter()
    known: set[str] = set()
    for i, step in enumerate(steps):
        seen[step.agent] += 1
        nxt = i + 1 if i + 1 < n else None
        later = range(i + 1, n)

        def overlap(a: set[str], b: set[str]) -> float:
            return len(a & b) / len(a | b) if a and b else 0.0

        repeat_prev = max((overlap(words[i], words[j]) for j in range(i)), default=0.0)
        repeated_later = max((overlap(words[i], words[j]) for j in later), default=0.0)
        values = [
            i / (n - 1) if n > 1 else 0.0,
            i,
            n - 1 - i,
            n,
            i == 0,
            i == n - 1,
            i == 1,
            *(roles[i] == r for r in ROLES),
            bool(workers) and i == workers[0],
            bool(workers) and i == workers[-1],
            workers.index(i) / max(1, len(workers) - 1) if i in workers else -1.0,
            speakers[step.agent] / n,
            seen[step.agent] == 1,
            seen[step.agent],
            step.agent == steps[0].agent,
            step.agent is not None and step.agent == last_worker_agent,
            math.log1p(len(texts[i])),
            bool(_CODE.search(texts[i])),
            err[i],
            giveup[i],
            end[i],
            _hits(_ASSUME, texts[i]),
            sum(ch.isdigit() for ch in texts[i]) / max(1, len(texts[i])),
            err[nxt] if nxt is not None else 0.0,
            giveup[nxt] if nxt is not None else 0.0,
            float(nxt is not None and roles[nxt] == "tool" and err[nxt] > 0),
            float(nxt is not None and bool(_TOOL_OK.search(texts[nxt]))),
            float(nxt is not None and bool(_NO_CODE.search(texts[nxt]))),
            sum(err[j] for j in later) / max(1, len(later)),
            sum(end[j] for j in later) / max(1, len(later)),
            repeat_prev,
            repeated_later,
            len(words[i] - known) / max(1, len(words[i])),
        ]
        known |= words[i]
        rows[i] = np.asarray(values, dtype=float)
    return rows
