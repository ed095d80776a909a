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
# What a step can introduce that later steps rely on: numbers, quoted strings, capitalised names.
_FACT = re.compile(r"\d[\d,.]*\d|\d{2,}|\"[^\"\n]{3,60}\"|\b[A-Z][a-z]+(?: [A-Z][a-z]+)+")
_CORRECT = re.compile(
    r"incorrect|mistake|wrong|discrepan|inconsisten|miscalculat|improbable|not (?:correct|accurate|right)|"
    r"re-?examine|re-?evaluate|instead|actually|however",
    re.I,
)
_ACK = re.compile(r"error|fail|fix|issue|problem|retry|again|correct|empty|no (?:output|result)", re.I)
_EMPTY_OUTPUT = re.compile(r"code output:\s*(?:\[\]|\{\}|none|)\s*$", re.I)
_PLAN = re.compile(r"\bplan\b|step \d|first,|next,|then we|let's|we need to|we will|approach", re.I)
_VERIFY = re.compile(r"verif|confirm|double-?check|validat|review|looks (?:good|correct)|agree", re.I)
_TOOL_OUTPUT = re.compile(r"exitcode:|code output:|execution (?:succeeded|failed)|traceback", re.I)


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


FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    # Where the step sits, normalised per run (comparable across run lengths).
    "position": ("rel_pos", "is_first", "is_last", "is_second", "first_worker", "last_worker", "worker_rank"),
    # Raw counts of steps: a habit of the training system's run lengths.
    "position_abs": ("abs_pos", "dist_end", "n_steps"),
    # Role from the speaker's name, and who speaks how often.
    "speaker": (
        *(f"role_{r}" for r in ROLES),
        "speaker_share",
        "speaker_first_turn",
        "speaker_turn",
        "speaker_is_first",
        "speaker_is_last_worker",
    ),
    # Words in the step and the steps after it.
    "words": (
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
    ),
    # What the step introduced (numbers, names, quoted strings) that later steps repeat.
    "relied_on": ("new_facts", "new_facts_reused", "new_numbers_reused"),
    # A later step corrects something this step introduced.
    "contradicted": ("contradicted_later", "corrected_next"),
    # A tool error or empty result just before this step that the step does not acknowledge.
    "ignored_error": ("after_tool_error", "ignored_tool_error", "empty_output_next"),
    # The first step where the run leaves the task: guesses, breaks a tool, drifts off its words.
    "departure": ("task_overlap", "first_low_overlap", "first_assume", "first_err_next"),
    # The speaker's role read from what it writes (code, plans, checks, tool output), not its name.
    "role_text": ("agent_code_share", "agent_plan_share", "agent_verify_share", "agent_tool_output_share"),
}
FEATURES = tuple(name for group in FEATURE_GROUPS.values() for name in group)
# What `train` fits by default: the groups that raised accuracy on a held-out benchmark
# (docs/attribution.md). relied_on and contradicted raised only in-domain CV; departure lowered
# held-out accuracy. They stay computable for `benchmarks/transfer.py` to re-measure.
RANKER_GROUPS = ("position", "position_abs", "speaker", "words", "ignored_error", "role_text")
RANKER_FEATURES = tuple(name for group in RANKER_GROUPS for name in FEATURE_GROUPS[group])


def columns(names: Sequence[str]) -> list[int]:
    """Column indices of `names` in a trace_features() row."""
    index = {name: i for i, name in enumerate(FEATURES)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"unknown step features {unknown}")
    return [index[n] for n in names]


def _facts(text: str) -> set[str]:
    return {m.group(0).strip('"').lower() for m in _FACT.finditer(text)}


def _numbers(facts: set[str]) -> set[str]:
    return {f for f in facts if f[:1].isdigit()}


def _causal(steps: Sequence[StepRow], roles: list[str], texts: list[str], task: str | None) -> np.ndarray:
    """The relied_on, contradicted, ignored_error, departure and role_text columns."""
    n = len(steps)
    facts = [_facts(t) for t in texts]
    seen: set[str] = _facts(task or "")
    new = []
    for f in facts:
        new.append(f - seen)
        seen |= f
    later_facts = [set().union(*facts[i + 1 :]) if i + 1 < n else set() for i in range(n)]
    correcting = [bool(_CORRECT.search(t)) for t in texts]
    is_tool = [r == "tool" for r in roles]
    broke = [bool(_ERROR.search(x) or _NO_CODE.search(x)) for x in texts]
    tool_err = [t and b for t, b in zip(is_tool, broke, strict=True)]
    empty = [t and bool(_EMPTY_OUTPUT.search(x.strip())) for t, x in zip(is_tool, texts, strict=True)]
    task_words = _words(task or (texts[0] if texts else ""))
    overlap = [len(_words(t) & task_words) / max(1, len(_words(t))) for t in texts]
    speaking = [i for i in range(1, n) if roles[i] != "tool"]
    low = float(np.median([overlap[i] for i in speaking])) if speaking else 0.0
    first_low = next((i for i in speaking if overlap[i] < low), None)
    first_assume = next((i for i in range(n) if _ASSUME.search(texts[i]) and roles[i] != "tool"), None)
    first_err = next((i for i in range(n - 1) if tool_err[i + 1] or empty[i + 1]), None)
    by_agent: dict[str | None, list[int]] = {}
    for i, s in enumerate(steps):
        by_agent.setdefault(s.agent, []).append(i)

    def share(pattern: re.Pattern[str], agent: str | None) -> float:
        mine = by_agent[agent]
        return sum(bool(pattern.search(texts[j])) for j in mine) / len(mine)

    rows = np.zeros((n, 16))
    for i, step in enumerate(steps):
        reused = new[i] & later_facts[i]
        prev_tool = next((j for j in range(i - 1, -1, -1) if roles[j] == "tool"), None)
        after_error = prev_tool == i - 1 and (tool_err[i - 1] or empty[i - 1])
        nxt_speaker = next((j for j in range(i + 1, n) if roles[j] != "tool"), None)
        rows[i] = [
            math.log1p(len(new[i])),
            math.log1p(len(reused)),
            math.log1p(len(_numbers(reused))),
            float(any(correcting[j] and new[i] & facts[j] for j in range(i + 1, n))),
            float(nxt_speaker is not None and correcting[nxt_speaker]),
            float(after_error),
            float(after_error and roles[i] != "tool" and not _ACK.search(texts[i])),
            float(i + 1 < n and empty[i + 1]),
            overlap[i],
            float(i == first_low),
            float(i == first_assume),
            float(i == first_err),
            share(_CODE, step.agent),
            share(_PLAN, step.agent),
            share(_VERIFY, step.agent),
            share(_TOOL_OUTPUT, step.agent),
        ]
    return rows


def trace_features(steps: Sequence[StepRow], task: str | None = None) -> np.ndarray:
    """One row of FEATURES per step, in step order (float64, no NaN). `task`: the run's task
    text where the corpus has it (else the first step stands for it)."""
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
    base = len(FEATURES) - 16
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
            i == 0,
            i == n - 1,
            i == 1,
            bool(workers) and i == workers[0],
            bool(workers) and i == workers[-1],
            workers.index(i) / max(1, len(workers) - 1) if i in workers else -1.0,
            i,
            n - 1 - i,
            n,
            *(roles[i] == r for r in ROLES),
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
        rows[i, :base] = np.asarray(values, dtype=float)
    if n:
        rows[:, base:] = _causal(steps, roles, texts, task)
    return rows
