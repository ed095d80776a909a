"""Provider message shapes -> readable text and tool calls.

Exports wrap what a model said in many envelopes: OpenAI chat completions (`choices[].message`),
the OpenAI Responses API (`output[]` items), Anthropic content blocks (`text`, `tool_use`,
`tool_result`, `thinking`), Gemini `parts` (`text`, `functionCall`, `functionResponse`), GenAI
semconv parts (`tool_call`), Vercel AI SDK tool calls (`toolCallId`, `toolName`), LangChain
serialised messages (`{"lc": 1, "type": "constructor", "id": [..., "AIMessage"], "kwargs": {...}}`,
LangGraph `{"messages": [...]}` states and `Send` packets), CrewAI task outputs (`raw`), Google
ADK runner arguments (`new_message`), ChatML
strings and plain `{role, content}` messages. A judge and a person need the words and the
calls, not the envelope, so every adapter that meets these goes through `readable`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tracefail.ingest.reader import loads
from tracefail.model import ToolCall

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?:<\|im_end\|>|$)", re.S)
_TEXT_KEYS = (
    "text",
    "content",
    "thinking",
    "output_text",
    "value",
    "response",
    "result",
    "output",
    "error",
    "error_message",  # Google ADK tools' {"status": "error", "error_message": ...}
    "answer",
    "message",
    "messages",  # a LangGraph state
    "raw",  # a CrewAI TaskOutput / CrewOutput
    "new_message",  # Google ADK's Runner.run_async arguments
)


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _call(name: Any, arguments: Any, call_id: Any = None) -> ToolCall:
    """A call whose id is kept as the tool's span keeps it: JSON text where it is not a string
    (Microsoft Agent Framework's [run id, call id] pair), so the two sides pair."""
    return ToolCall(
        id=_arguments(call_id) if call_id else None,
        name=str(name or "?"),
        arguments=_arguments(arguments or {}),
    )


def mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: optional nested objects read safely."""
    return value if isinstance(value, dict) else {}


def parse_json_text(value: Any) -> Any:
    """A string that holds a JSON object or array, decoded; anything else unchanged."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def chatml(text: str) -> str:
    """ChatML (`<|im_start|>role ... <|im_end|>`) as `role: text` lines; other text unchanged."""
    turns = _CHATML.findall(text)
    return "\n".join(f"{role}: {body.strip()}" for role, body in turns) if turns else text


def _spelled(kind: Any) -> str | None:
    """A part type however it is spelled: `tool_call`, `toolCall` and `tool-call` are one type."""
    return kind.replace("_", "").replace("-", "").lower() if isinstance(kind, str) else None


def _part(part: Any, texts: list[str], calls: list[ToolCall]) -> None:
    """One content part/block/item of any provider, appended to texts and calls."""
    if isinstance(part, str):
        if part:
            texts.append(chatml(part))
        return
    if isinstance(part, list):
        for item in part:
            _part(item, texts, calls)
        return
    if not isinstance(part, dict):
        if part is not None:
            texts.append(str(part))
        return
    kind = part.get("type")
    if kind in ("tool_use", "server_tool_use") or ("name" in part and "input" in part and kind is None):
        calls.append(_call(part.get("name"), part.get("input"), part.get("id")))
    elif "toolName" in part:  # Vercel AI SDK tool call (`tool-call` part, `ai.response.toolCalls`)
        calls.append(_call(part["toolName"], part.get("input", part.get("args")), part.get("toolCallId")))
    elif _spelled(kind) in ("functioncall", "customtoolcall", "toolcall") or (  # GenAI, Pi: toolCall
        kind is None and "arguments" in part and "name" in part
    ):
        calls.append(
            _call(
                part.get("name"),
                part.get("arguments", part.get("input")),
                part.get("call_id") or part.get("id"),
            )
        )
    elif kind == "function" and isinstance(part.get("function"), dict):  # an OpenAI tool call as a part
        calls.append(_call(part["function"].get("name"), part["function"].get("arguments"), part.get("id")))
    elif call := mapping(part.get("functionCall", part.get("function_call"))):  # Gemini, camel or snake
        calls.append(_call(call.get("name"), call.get("args", call.get("arguments")), call.get("id")))
        _part(part.get("content"), texts, calls)  # an OpenAI legacy message may carry text too
    elif response := mapping(part.get("functionResponse", part.get("function_response"))):
        _part(response.get("response"), texts, calls)
    elif kind in ("reasoning",) and part.get("summary"):
        _part(part.get("summary"), texts, calls)
    elif kind in ("image", "image_url", "input_image", "inlineData") or "inlineData" in part:
        texts.append("[image]")
    elif isinstance(part.get("choices"), list):  # chat completion
        for choice in part["choices"]:
            if isinstance(choice, dict):
                _part(choice.get("message", choice.get("delta", choice.get("text"))), texts, calls)
    elif isinstance(part.get("candidates"), list):  # Gemini response
        for candidate in part["candidates"]:
            if isinstance(candidate, dict):
                _part(candidate.get("content"), texts, calls)
    elif kind == "response" or (isinstance(part.get("output"), list) and "id" in part):  # Responses API
        _part(part.get("output"), texts, calls)
    elif part.get("lc") == 1 and isinstance(part.get("kwargs"), dict):  # LangChain dumpd() object
        _part(part["kwargs"], texts, calls)
    elif part.get("lg_name") == "Send":  # a LangGraph Send packet: the node's input
        _part(part.get("args"), texts, calls)
    elif "parts" in part:
        _part(part.get("parts"), texts, calls)
    else:
        before = len(texts) + len(calls)
        for key in _TEXT_KEYS:
            if key in part and part[key] not in (None, "", []):
                _part(parse_json_text(part[key]) if key != "text" else part[key], texts, calls)
                break
        extra = mapping(part.get("additional_kwargs"))  # LangChain keeps OpenAI's raw calls here
        if part.get("tool_calls") or extra.get("tool_calls"):
            from tracefail.ingest.chat import tool_calls_of

            calls.extend(tool_calls_of(part if part.get("tool_calls") else extra))
        if isinstance(part.get("function_call"), dict):
            calls.append(_call(part["function_call"].get("name"), part["function_call"].get("arguments")))
        if len(texts) + len(calls) == before and part:
            texts.append(json.dumps(part, ensure_ascii=False))  # no text anywhere: keep it whole


def readable(value: Any) -> tuple[str, list[ToolCall]]:
    """(text, tool calls) of a message, content, generation output or any nesting of them."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    _part(parse_json_text(value), texts, calls)
    return "\n".join(t for t in texts if t), calls
