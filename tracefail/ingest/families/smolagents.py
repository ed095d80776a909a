"""smolagents run logs: the JSONL its benchmark runner writes, one run per line (`model_id`,
`agent_action_type`, `question`, `answer`, `true_answer`, `source`, `intermediate_steps`,
`token_counts`), `intermediate_steps` being the agent's memory as chat messages. The generic
reader takes them as message lists (the question is the task). The fixes shape cannot make:
smolagents' own roles `tool-call` (an assistant turn whose text is `Calling tools:\\n[...]`, a
Python list of OpenAI-style calls) and `tool-response` (the tool's result; `Error:` when it
failed, naming the tool when no call was logged) become an assistant step with those calls and
a tool step with its error status."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from tracefail.ingest.base import first_json
from tracefail.ingest.content import readable
from tracefail.ingest.families.family import Family

_CALLING = "Calling tools:"
_FAILED_TOOL = re.compile(r"Error executing tool '([^']+)'")


def _calls(text: str) -> list[dict[str, Any]]:
    """The calls a `tool-call` message lists (a Python literal, so `ast`, never `eval`)."""
    _, _, listing = text.partition(_CALLING)
    try:
        calls = ast.literal_eval(listing.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []
    out = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            out.append(
                {
                    "id": call.get("id"),
                    "function": {
                        "name": function.get("name"),
                        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    },
                }
            )
    return out


def _message(message: Any) -> Any:
    if not isinstance(message, dict) or message.get("role") not in ("tool-call", "tool-response"):
        return message
    text = readable(message.get("content"))[0]
    if message["role"] == "tool-call":
        return {**message, "role": "assistant", "tool_calls": _calls(text)}
    failed = text.startswith("Error:")
    named = _FAILED_TOOL.search(text) if failed else None  # a failed call is logged only here
    return {**message, "role": "tool", "error": "tool error" if failed else None} | (
        {"name": named.group(1)} if named else {}
    )


def _steps(run: dict[str, Any]) -> list[Any]:
    """A run's messages. The runner writes the agent's memory; for a `vanilla` run (the bare
    model) the answer itself; after an exception an empty list, the answer being the error. Runs
    without memory become the question and the answer, the answer an error where the run failed."""
    steps = run.get("intermediate_steps")
    if isinstance(steps, list) and steps:
        return [_message(m) for m in steps]
    failed = isinstance(steps, list) and run.get("agent_action_type") != "vanilla"
    answer = {"role": "assistant", "content": run.get("answer")} | ({"error": "run failed"} if failed else {})
    return [{"role": "user", "content": run.get("question")}, answer]


def smolagents_roles(document: Any) -> Any:
    """Each run's `intermediate_steps` as chat messages, smolagents' tool roles made chat roles."""
    if not isinstance(document, list):
        return document
    return [
        {**run, "intermediate_steps": _steps(run)}
        if isinstance(run, dict) and "intermediate_steps" in run
        else run
        for run in document
    ]


def _detect(path: Path, head: str) -> bool:
    first = first_json(head)
    return (
        isinstance(first, dict)
        and "intermediate_steps" in first
        and ("agent_action_type" in first or "model_id" in first)
    )


SMOLAGENTS = Family(
    name="smolagents",
    description="smolagents benchmark run logs (JSONL: question, answer, intermediate_steps)",
    suffixes=(".jsonl",),
    detect=_detect,
    prepare=smolagents_roles,
)
