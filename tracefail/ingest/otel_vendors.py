"""Vendor span attributes -> the GenAI semantic-convention keys the span mapper reads.

Google ADK puts the whole model request and response in `gcp.vertex.agent.llm_request` /
`llm_response` (JSON text) and tool calls in `gcp.vertex.agent.tool_call_args` / `tool_response`;
the Vercel AI SDK uses `ai.prompt*`, `ai.response.*`, `ai.toolCall.*` and `ai.usage.*`; mozilla-ai
any-agent (and tinyagent) name model calls `call_llm` and write what a span produced to
`gen_ai.output` (typed by `gen_ai.output.type`: `json` or `text`) and a tool's input to
`gen_ai.tool.args`. Mapping them onto `gen_ai.*` keeps one span mapper for every exporter.
"""

from __future__ import annotations

import json
from typing import Any

from tracefail.ingest.content import parse_json_text, readable


def _parts(text: str, calls: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
    return parts


def _output_messages(value: Any) -> list[dict[str, Any]]:
    text, calls = readable(value)
    return [{"role": "assistant", "parts": _parts(text, calls)}]


def _user_messages(contents: Any) -> list[dict[str, Any]]:
    """User turns of a request (Gemini `contents`, or chat `messages`) as generation-3 messages."""
    messages = []
    for content in contents if isinstance(contents, list) else []:
        if isinstance(content, dict) and content.get("role") == "user":
            text, _ = readable(content.get("parts", content.get("content")))
            if text:
                messages.append({"role": "user", "parts": [{"type": "text", "content": text}]})
    return messages


def _adk(attrs: dict[str, Any]) -> None:
    """ADK also writes `llm_request` / `llm_response` as `{}` on tool spans: those say nothing."""
    response = parse_json_text(attrs.get("gcp.vertex.agent.llm_response"))
    if isinstance(response, dict) and response and "gen_ai.output.messages" not in attrs:
        attrs["gen_ai.output.messages"] = _output_messages(response.get("content"))
        usage = response.get("usage_metadata") or response.get("usageMetadata") or {}
        attrs.setdefault(
            "gen_ai.usage.input_tokens", usage.get("prompt_token_count", usage.get("promptTokenCount"))
        )
        attrs.setdefault(
            "gen_ai.usage.output_tokens",
            usage.get("candidates_token_count", usage.get("candidatesTokenCount")),
        )
        if response.get("error_code") or response.get("error_message"):
            attrs["error.message"] = (
                f"{response.get('error_code') or ''} {response.get('error_message') or ''}"
            )
    request = parse_json_text(attrs.get("gcp.vertex.agent.llm_request"))
    if isinstance(request, dict) and request and "gen_ai.input.messages" not in attrs:
        attrs["gen_ai.input.messages"] = _user_messages(request.get("contents"))
        attrs.setdefault("gen_ai.request.model", request.get("model"))
    if "gcp.vertex.agent.tool_call_args" in attrs:
        attrs.setdefault("gen_ai.tool.call.arguments", attrs["gcp.vertex.agent.tool_call_args"])
    if "gcp.vertex.agent.tool_response" in attrs:
        attrs.setdefault("gen_ai.tool.call.result", readable(attrs["gcp.vertex.agent.tool_response"])[0])


def _vercel(attrs: dict[str, Any]) -> None:
    operation = str(attrs.get("ai.operationId") or "")
    if operation == "ai.toolCall" or "ai.toolCall.name" in attrs:
        attrs.setdefault("gen_ai.operation.name", "execute_tool")
        attrs.setdefault("gen_ai.tool.name", attrs.get("ai.toolCall.name"))
        attrs.setdefault("gen_ai.tool.call.id", attrs.get("ai.toolCall.id"))
        args = attrs.get("ai.toolCall.args", attrs.get("ai.toolCall.input"))
        attrs.setdefault("gen_ai.tool.call.arguments", args)
        result = attrs.get("ai.toolCall.result", attrs.get("ai.toolCall.output"))
        if result is not None:
            attrs.setdefault("gen_ai.tool.call.result", readable(result)[0])
        return
    if operation.endswith((".doGenerate", ".doStream")):  # the model call itself
        attrs.setdefault("gen_ai.operation.name", "chat")
        text = attrs.get("ai.response.text") or ""
        calls = parse_json_text(attrs.get("ai.response.toolCalls")) or []
        _, tool_calls = readable(
            [
                {"name": c.get("toolName"), "input": c.get("args", c.get("input")), "id": c.get("toolCallId")}
                for c in calls
                if isinstance(c, dict)
            ]
        )
        attrs.setdefault(
            "gen_ai.output.messages", [{"role": "assistant", "parts": _parts(str(text), tool_calls)}]
        )
        prompt = parse_json_text(attrs.get("ai.prompt.messages"))
        attrs.setdefault("gen_ai.input.messages", _user_messages(prompt))
    else:  # ai.generateText / ai.streamText: the call as a whole, named by its function id
        prompt = parse_json_text(attrs.get("ai.prompt"))
        if isinstance(prompt, dict):
            user = _user_messages(prompt.get("messages"))
            if isinstance(prompt.get("prompt"), str):
                user.insert(0, {"role": "user", "parts": [{"type": "text", "content": prompt["prompt"]}]})
            attrs.setdefault("gen_ai.input.messages", user)
        if attrs.get("ai.response.text"):  # the call's answer: the only text when no doGenerate child came
            attrs.setdefault(
                "gen_ai.output.messages",
                [{"role": "assistant", "parts": _parts(str(attrs["ai.response.text"]), [])}],
            )
        attrs.setdefault("gen_ai.operation.name", "invoke_agent")
        attrs.setdefault("gen_ai.agent.name", attrs.get("ai.telemetry.functionId") or operation or None)
    attrs.setdefault("gen_ai.request.model", attrs.get("ai.model.id"))
    attrs.setdefault(
        "gen_ai.usage.input_tokens", attrs.get("ai.usage.promptTokens", attrs.get("ai.usage.inputTokens"))
    )
    attrs.setdefault(
        "gen_ai.usage.output_tokens",
        attrs.get("ai.usage.completionTokens", attrs.get("ai.usage.outputTokens")),
    )


def _any_agent(attrs: dict[str, Any]) -> None:
    """A `call_llm` span's `gen_ai.output` is its answer text, a structured answer (JSON text), or
    the tool calls it asked for as `[{"tool.name": ..., "tool.args": ...}]` (args as JSON text or an
    object); an `execute_tool` span's `gen_ai.output` is the tool's result, kept as written."""
    operation = attrs.get("gen_ai.operation.name")
    output = attrs.get("gen_ai.output")
    if operation == "call_llm":
        attrs["gen_ai.operation.name"] = "chat"
        if output is not None and "gen_ai.output.messages" not in attrs:
            value = parse_json_text(output) if attrs.get("gen_ai.output.type") == "json" else output
            if (
                isinstance(value, list)
                and value
                and all(isinstance(c, dict) and "tool.name" in c for c in value)
            ):
                parts: list[dict[str, Any]] = [
                    {"type": "tool_call", "name": c["tool.name"], "arguments": c.get("tool.args")}
                    for c in value
                ]
            else:
                text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
                parts = [{"type": "text", "content": text}] if text else []
            attrs["gen_ai.output.messages"] = [{"role": "assistant", "parts": parts}]
    elif operation == "execute_tool":
        if "gen_ai.tool.args" in attrs:
            attrs.setdefault("gen_ai.tool.call.arguments", attrs["gen_ai.tool.args"])
        if output is not None:
            text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            attrs.setdefault("gen_ai.tool.call.result", text)


def normalise(attrs: dict[str, Any]) -> dict[str, Any]:
    """The span's attributes with vendor keys mapped onto `gen_ai.*` (the input is not changed)."""
    if any(k.startswith("gcp.vertex.agent.") for k in attrs):
        mapped = dict(attrs)
        _adk(mapped)
    elif any(k.startswith("ai.") for k in attrs):
        mapped = dict(attrs)
        _vercel(mapped)
    elif (
        "gen_ai.output" in attrs
        or "gen_ai.tool.args" in attrs
        or attrs.get("gen_ai.operation.name") == "call_llm"
    ):
        mapped = dict(attrs)
        _any_agent(mapped)
    else:
        return attrs
    return {k: v for k, v in mapped.items() if v is not None}
