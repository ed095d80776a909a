"""Splitting raw MAST run logs into steps: styles without a shipped sample, and the fallbacks."""

from __future__ import annotations

import json

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
