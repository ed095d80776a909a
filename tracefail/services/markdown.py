"""A trace as Markdown, for pasting into an LLM."""

from __future__ import annotations

from tracefail.services.views import TraceView


def trace_markdown(view: TraceView, max_chars: int = 4000) -> str:
    """The trace as Markdown for pasting into an LLM, labels and mistake attached."""
    head = view.head
    lines = [
        f"# Trace {view.trace_id}",
        f"framework: {head.get('framework')} · llm: {head.get('llm')} · benchmark: "
        f"{head.get('benchmark')} · outcome: {head.get('outcome')}",
    ]
    if head.get("task"):
        lines += ["", "## Task", "", str(head["task"])]
    if view.labels:
        lines += [
            "",
            "## Labels",
            "",
            "| mode | present | p | source | evidence | rationale |",
            "|---|---|---|---|---|---|",
        ]
        for label in view.labels:
            rationale = (label["rationale"] or "").replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {label['mode_id']} | {label['present']} | {label['probability']} | {label['source']} "
                f"| {label['evidence_steps'] or ''} | {rationale} |"
            )
    if view.attributions:
        lines += ["", "## Mistake attributions", ""]
        lines += [
            f"- {a['source']}: agent {a['agent']} at step {a['step_idx']}: {a['reason'] or ''}"
            for a in view.attributions
        ]
    lines += ["", "## Steps"]
    for step in view.steps:
        content = step["content"]
        cut = f"\n… ({len(content) - max_chars:,} more characters)" if len(content) > max_chars else ""
        lines += [
            "",
            f"### Step {step['step_idx']} · {step['agent'] or step['role'] or '?'}",
            "",
            "```text",
            content[:max_chars].replace("```", "ˋˋˋ") + cut,
            "```",
        ]
    return "\n".join(lines) + "\n"
