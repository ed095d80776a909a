"""The JSON a chat judge must return, its JSON Schema, and the checks that pydantic cannot do alone.

A reply that fails these checks is never patched up or guessed: the caller asks once for a
repair, then records the trace as an error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracefail.judge.prompt import UNKNOWN_AGENT, Window
from tracefail.model import ModeVerdict, Taxonomy


class ModeAnswer(ModeVerdict):
    """A verdict as the judge wrote it: no extra fields allowed."""

    model_config = ConfigDict(extra="forbid")


class RootCause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = None
    step: int | None = None
    probability: float = Field(ge=0.0, le=1.0)
    reason: str = ""


class JudgeOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modes: list[ModeAnswer] = Field(default_factory=list)
    root_cause: RootCause | None = None


class InvalidOutput(ValueError):
    """The judge's reply is not the JSON we asked for; the message says what is wrong."""


def json_schema(tasks: frozenset[str]) -> dict[str, Any]:
    """Strict schema for `response_format: json_schema` (every property required, no extras)."""
    mode = {
        "type": "object",
        "additionalProperties": False,
        "required": ["mode_id", "present", "probability", "evidence_steps", "agent", "rationale"],
        "properties": {
            "mode_id": {"type": "string"},
            "present": {"type": "boolean"},
            "probability": {"type": "number"},
            "evidence_steps": {"type": "array", "items": {"type": "integer"}},
            "agent": {"type": ["string", "null"]},
            "rationale": {"type": "string"},
        },
    }
    root = {
        "type": "object",
        "additionalProperties": False,
        "required": ["agent", "step", "probability", "reason"],
        "properties": {
            "agent": {"type": ["string", "null"]},
            "step": {"type": ["integer", "null"]},
            "probability": {"type": "number"},
            "reason": {"type": "string"},
        },
    }
    properties: dict[str, Any] = {}
    if "modes" in tasks:
        properties["modes"] = {"type": "array", "items": mode}
    if "attribution" in tasks:
        properties["root_cause"] = root
    return {
        "type": "object",
        "additionalProperties": False,
        "required": sorted(properties),
        "properties": properties,
    }


def parse(
    text: str,
    taxonomy: Taxonomy,
    window: Window,
    tasks: frozenset[str],
    speakers: frozenset[str] = frozenset(),
) -> JudgeOutput:
    """Parse and check one reply against the taxonomy, the steps the judge was shown and the
    trace's speakers (an agent named in the reply must be one of them, when the trace has any)."""
    body = text.strip()
    if body.startswith("```"):  # a fenced block around otherwise valid JSON is not a guess
        body = body.strip("`").removeprefix("json").strip()
    try:
        output = JudgeOutput.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise InvalidOutput(f"{where}: {first['msg']}") from None
    shown = set(window.steps)
    if "modes" in tasks:
        expected = [m.id for m in taxonomy.modes]
        got = [m.mode_id for m in output.modes]
        if sorted(got) != sorted(expected):
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            dup = sorted({g for g in got if got.count(g) > 1})
            raise InvalidOutput(f"modes: missing {missing}, unknown {extra}, repeated {dup}")
        for answer in output.modes:
            bad = [s for s in answer.evidence_steps if s not in shown]
            if bad:
                raise InvalidOutput(f"modes.{answer.mode_id}.evidence_steps: {bad} not in the trace shown")
            if answer.present != (answer.probability >= 0.5) and answer.probability != 0.5:
                raise InvalidOutput(
                    f"modes.{answer.mode_id}: present {str(answer.present).lower()} contradicts "
                    f"probability {answer.probability}"
                )
            answer.agent = _check_agent(f"modes.{answer.mode_id}.agent", answer.agent, speakers)
    if "attribution" in tasks:
        if output.root_cause is None:
            raise InvalidOutput("root_cause: missing")
        step = output.root_cause.step
        if step is not None and step not in shown:
            raise InvalidOutput(f"root_cause.step: {step} is not a step of the trace shown")
        output.root_cause.agent = _check_agent("root_cause.agent", output.root_cause.agent, speakers)
    return output


def _check_agent(where: str, agent: str | None, speakers: frozenset[str]) -> str | None:
    """The agent a reply names, checked against the trace's speakers; the prompt's placeholder for
    an unnamed speaker means no agent."""
    if agent == UNKNOWN_AGENT and agent not in speakers:
        return None
    if agent is not None and speakers and agent not in speakers:
        raise InvalidOutput(
            f"{where}: {agent!r} is not an agent of this trace ({', '.join(sorted(speakers))})"
        )
    return agent


def root_agent(agent: str | None, step: int | None, step_speakers: dict[int, str | None]) -> str | None:
    """The attributed agent: the one the reply names (already checked to take part in the trace),
    else the speaker of the chosen step."""
    if agent is not None:
        return agent
    return step_speakers.get(step) if step is not None else None


def to_mode_verdicts(output: JudgeOutput) -> list[ModeVerdict]:
    return [
        ModeVerdict(**a.model_dump(exclude={"evidence_steps"}), evidence_steps=sorted(set(a.evidence_steps)))
        for a in output.modes
    ]
