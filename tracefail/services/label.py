"""Label a corpus with an LLM judge, and calibrate its probabilities: the facade for CLI and TUI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracefail.judge.backend import TASKS
from tracefail.judge.runner import LabelReport, Progress, label_corpus
from tracefail.services.selection import UnknownTraceError, select_traces
from tracefail.store import Database
from tracefail.taxonomy import DEFAULT_TAXONOMY, find


class LabelUsageError(ValueError):
    """A bad option combination; the message is one line for the user."""


@dataclass
class JudgeSpec:
    """`local`, `local:MODEL` or `openai:MODEL`, plus the HTTP options."""

    spec: str = "local"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    api_key_header: str = "Authorization"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_response_mb: float = 8.0
    device: str = "auto"
    window_tokens: int = 2048
    threads: int | None = None  # torch threads for the local judge (None: one per core)
    window_chars: int = 60_000
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0


def parse_tasks(text: str) -> frozenset[str]:
    tasks = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = tasks - TASKS
    if not tasks or unknown:
        raise LabelUsageError(f"--task: unknown {sorted(unknown) or 'empty'}; use modes, attribution or both")
    return tasks


def build_judge(spec: JudgeSpec) -> Any:
    kind, _, model = spec.spec.partition(":")
    if kind == "local":
        from tracefail.judge.local import LocalJudge

        return LocalJudge(
            model or None, device=spec.device, window_tokens=spec.window_tokens, threads=spec.threads
        )
    if kind == "openai":
        if not model:
            raise LabelUsageError("--judge openai:MODEL needs a model name, e.g. openai:gpt-4o-mini")
        from tracefail.judge.http import HttpSettings, OpenAIJudge, validate_base_url

        try:
            settings = HttpSettings(
                model=model,
                base_url=spec.base_url,
                api_key_env=spec.api_key_env,
                api_key_header=spec.api_key_header,
                concurrency=max(1, spec.concurrency),
                timeout_s=spec.timeout_s,
                max_response_bytes=int(spec.max_response_mb * 1024 * 1024),
                window_chars=spec.window_chars,
                price_in_per_mtok=spec.price_in_per_mtok,
                price_out_per_mtok=spec.price_out_per_mtok,
            )
        except ValueError as exc:
            raise LabelUsageError(str(exc)) from None
        host = validate_base_url(settings.base_url).host  # lower-cased by the URL parser
        if host == "api.openai.com" and not os.environ.get(spec.api_key_env):
            # Fail before the run: without a key every request would only be refused. (Local
            # servers such as vLLM or Ollama need none, so only OpenAI's own endpoint is checked.)
            raise LabelUsageError(
                f"--judge {spec.spec}: ${spec.api_key_env} is not set (the API key is read from the "
                "environment); set it, or point --base-url at a server that needs no key"
            )
        return OpenAIJudge(settings)
    raise LabelUsageError(f"--judge {spec.spec!r}: use local, local:MODEL or openai:MODEL")


def label(
    db: Database,
    *,
    judge: JudgeSpec | Any,
    taxonomy: str = DEFAULT_TAXONOMY,
    tasks: str = "modes,attribution",
    traces: Sequence[str] | None = None,
    limit: int | None = None,
    on_progress: Progress | None = None,
) -> LabelReport:
    """Judge the chosen traces; traces already judged by the same config are skipped."""
    task_set = parse_tasks(tasks)
    loaded = find(taxonomy)
    backend = build_judge(judge) if isinstance(judge, JudgeSpec) else judge
    concurrency = judge.concurrency if isinstance(judge, JudgeSpec) and judge.spec.startswith("openai") else 1
    try:
        chosen = select_traces(db, traces, limit)
    except UnknownTraceError as exc:
        raise LabelUsageError(str(exc)) from None
    return label_corpus(
        db, backend, loaded, task_set, chosen, concurrency=concurrency, on_progress=on_progress
    )
