"""Provider envelopes flatten to the words and calls a judge reads (ingest/content.readable)."""

from __future__ import annotations

import json

from tracefail.ingest.content import readable


def test_openai_chat_completion_and_responses_api() -> None:
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
                }
            }
        ],
    }
    text, calls = readable(completion)
    assert text == "Checking." and [(c.id, c.name, c.arguments) for c in calls] == [
        ("c1", "lookup", '{"q": 1}')
    ]
    response = {
        "id": "resp_1",
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
            {"type": "function_call", "call_id": "c2", "name": "save", "arguments": "{}"},
        ],
    }
    text, calls = readable(json.dumps(response))  # JSON text is decoded first
    assert text == "Done." and calls[0].name == "save" and calls[0].id == "c2"


def test_anthropic_blocks_gemini_parts_and_chatml() -> None:
    blocks = [
        {"type": "thinking", "thinking": "The user wants a file."},
        {"type": "text", "text": "Reading it."},
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}},
    ]
    text, calls = readable({"role": "assistant", "content": blocks})
    assert text == "The user wants a file.\nReading it." and calls[0].arguments == '{"path": "a.py"}'
    gemini = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"x": 1}}}],
                }
            }
        ]
    }
    text, calls = readable(gemini)
    assert text == "Hi" and calls[0].name == "f" and calls[0].arguments == '{"x": 1}'
    chatml = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>"
    assert readable(chatml)[0] == "user: What is 2+2?\nassistant: 4"


def test_data_without_text_stays_whole() -> None:
    assert json.loads(readable({"rain_mm": 0, "city": "Lisbon"})[0]) == {"rain_mm": 0, "city": "Lisbon"}
    assert readable(None) == ("", [])


def test_langchain_serialised_messages_and_langgraph_states() -> None:
    """LangChain's dumpd() form (`lc`/`constructor`/`kwargs`), LangGraph `{"messages": [...]}` states
    and `Send` packets, and OpenAI calls kept in `additional_kwargs`, all read as words and calls."""
    human = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "HumanMessage"],
        "kwargs": {"content": "Weather in Paris?", "additional_kwargs": {}, "response_metadata": {}},
    }
    ai = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "AIMessage"],
        "kwargs": {
            "content": "",
            "tool_calls": [
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
            ],
        },
    }
    text, calls = readable(json.dumps({"messages": [human, ai]}))
    assert text == "Weather in Paris?"
    assert [(c.id, c.name, c.arguments) for c in calls] == [("call_1", "get_weather", '{"city": "Paris"}')]
    assert (
        readable({"lg_name": "Send", "node": "tools", "args": {"messages": [human]}})[0]
        == "Weather in Paris?"
    )
    python_form = {
        "role": "assistant",
        "content": "",
        "additional_kwargs": {
            "tool_calls": [{"id": "c2", "function": {"name": "search", "arguments": "{}"}}]
        },
    }
    assert [c.name for c in readable(python_form)[1]] == ["search"]
    assert readable({"raw": "<html></html>", "agent": "dev", "pydantic": None})[0] == "<html></html>"
