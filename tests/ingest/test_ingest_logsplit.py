"""Splitting raw MAST run logs into steps: styles without a shipped sample, and the fallbacks."""

from __future__ import annotations

import json
from datetime import datetime

from tracefail.ingest.logsplit import split_trajectory


def test_magentic_console_style_names_speakers() -> None:
    log = (
        "---------- user ----------\nHow many albums?\n"
        "---------- MagenticOneOrchestrator ----------\nPlease search Wikipedia.\n"
        "---------- WebSurfer ----------\nI typed 'albums' into the search bar.\n"
    )
    split = split_trajectory(log, "Magentic")
    assert split.style == "magentic-console"
    assert [(s.agent, s.content) for s in split.steps] == [
        ("user", "How many albums?"),
        ("MagenticOneOrchestrator", "Please search Wikipedia."),
        ("WebSurfer", "I typed 'albums' into the search bar."),
    ]


def test_unknown_framework_falls_back_to_a_fitting_style() -> None:
    log = "[2025-01-02 10:00:00] NEW MESSAGES:\n\nCoder: print(1)\n" + "-" * 40 + "\n"
    split = split_trajectory(log, "SomethingNew")
    assert split.style == "metagpt-log" and split.steps[0].agent == "Coder"
    assert split.steps[0].content == "print(1)"


def test_unsplittable_text_is_one_step_with_all_the_text() -> None:
    text = "free text without any log structure\nsecond line"
    split = split_trajectory(text, "ChatDev")
    assert split.style == "unsplit"
    assert [s.content for s in split.steps] == [text]


def test_markdown_headings_inside_code_fences_do_not_cut() -> None:
    log = "### Supervisor -> app\ndo it\n\n### app\n```python\n# not a heading\nx = 1\n```\n"
    split = split_trajectory(log, "AppWorld")
    assert [s.agent for s in split.steps] == ["Supervisor", "app"]
    assert "# not a heading" in split.steps[1].content


def test_ag2_json_uses_name_not_role() -> None:
    log = json.dumps(
        [
            {"content": "hi", "role": "user", "name": "Planner"},
            {"content": ["a", "b"], "role": "user", "name": "Coder"},
        ]
    )
    split = split_trajectory(log, "AG2")
    assert [(s.agent, s.content) for s in split.steps] == [("Planner", "hi"), ("Coder", "a\nb")]


def test_headings_all_inside_code_fences_fall_through_to_another_style() -> None:
    log = "```\n# one\n# two\n```\n"
    split = split_trajectory(log, "AppWorld")
    assert split.style == "unsplit" and split.steps[0].content == log


def test_metagpt_closing_rule_is_cut_only_as_the_last_line() -> None:
    rule = "-" * 30
    log = (
        f"[2025-01-02 10:00:00] NEW MESSAGES:\n\nCoder: a\n{rule}\n\n"
        f"[2025-01-02 10:00:01] NEW MESSAGES:\n\nCoder: b\n{rule}\nmore text\n"
        f"[2025-01-02 10:00:02] NEW MESSAGES:\n\nCoder: c\nx{rule}\n"
        f"[2025-01-02 10:00:03] NEW MESSAGES:\n\nCoder: d\n{'-' * 19}\n"
        f"[2025-01-02 10:00:04] NEW MESSAGES:\n\nCoder: e\n{rule}\n{rule}" + " \n" * 200
    )
    split = split_trajectory(log, "MetaGPT")
    assert [s.content for s in split.steps] == [
        "a",
        f"b\n{rule}\nmore text",
        f"c\nx{rule}",
        f"d\n{'-' * 19}",
        f"e\n{rule}",
    ]
    assert split.steps[0].start_ts == datetime(2025, 1, 2, 10, 0, 0)


def test_chatdev_drops_the_flask_line_even_with_spaces_around_it() -> None:
    log = (
        "[2025-31-03 20:04:30 INFO] Programmer: **Programmer<->Reviewer on : Coding, turn 0**\n\ncode\n\n"
        "[2025-31-03 20:04:30 INFO]  flask app.py did not start for online log \n\n"
        "[2025-31-03 20:04:31 INFO] flask app.py did not start for online log, retrying\n"
    )
    split = split_trajectory(log, "ChatDev")
    assert [(s.agent, s.recipient, s.content) for s in split.steps] == [
        ("Programmer", "Reviewer", "**Programmer<->Reviewer on : Coding, turn 0**\n\ncode"),
        (None, None, "flask app.py did not start for online log, retrying"),
    ]


def test_magentic_jsonl_is_recognised_after_blank_lines_and_a_long_first_line() -> None:
    lines = [
        {"source": "human", "message": "x" * 10_000, "timestamp": "2024-11-05T10:00:00"},
        {"source": "Orchestrator (-> WebSurfer)", "message": "search", "timestamp": "2024-11-05T10:00:05Z"},
        {"source": "WebSurfer", "message": "done", "timestamp": 1730800810},
    ]
    log = "\n\n" + "\n\n".join(json.dumps(line) for line in lines) + "\n"
    split = split_trajectory(log, "Magentic")
    assert split.style == "magentic-jsonl" and split.task == "x" * 10_000
    assert [(s.agent, s.recipient, s.start_ts) for s in split.steps] == [
        ("human", None, datetime(2024, 11, 5, 10, 0, 0)),
        ("Orchestrator", "WebSurfer", datetime(2024, 11, 5, 10, 0, 5)),
        ("WebSurfer", None, datetime(2024, 11, 5, 10, 0, 10)),
    ]
