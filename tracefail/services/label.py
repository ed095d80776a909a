"""Label a corpus with an LLM judge, and calibrate its probabilities: the facade for CLI and TUI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracefail.judge.backend import TASKS
from tracefail.judge.runner import LabelReport, Progress, label_corpus
from tracefail.services.distributed import RayOptions
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
    strategy: str = "all-at-once"  # for openai:MODEL, see tracefail.judge.strategies
    ranker: str | None = None  # the step ranker a shortlist strategy narrows with


def parse_tasks(text: str) -> frozenset[str]:
    tasks = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = tasks - TASKS
    if not tasks or unknown:
        raise LabelUsageError(f"--task: unknown {sorted(unknown) or 'empty'}; use modes, attribution or both")
    return tasks


def build_judge(spec: JudgeSpec) -> Any:
    kind, _, model = spec.spec.partition(":")
    if spec.strategy != "all-at-once" and kind != "openai":
        raise LabelUsageError(f"--strategy {spec.strategy} needs --judge openai:MODEL")
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
        http = OpenAIJudge(settings)
        if spec.strategy == "all-at-once":
            return http
        from tracefail.judge.ranker import RankerJudge
        from tracefail.judge.strategies import StrategyJudge

        try:
            return StrategyJudge(http, spec.strategy, RankerJudge(spec.ranker) if spec.ranker else None)
        except ValueError as exc:
            raise LabelUsageError(str(exc)) from exc
    if kind == "ranker":  # a step ranker saved by `tracefail train` (attribution only)
        from tracefail.judge.ranker import RankerJudge

        try:
            return RankerJudge(model)
        except ValueError as exc:
            raise LabelUsageError(str(exc)) from exc
    raise LabelUsageError(f"--judge {spec.spec!r}: use local, local:MODEL, openai:MODEL or ranker:PATH")


def label(
    db: Database,
    *,
    judge: JudgeSpec | Any,
    taxonomy: str = DEFAULT_TAXONOMY,
    tasks: str = "modes,attribution",
    traces: Sequence[str] | None = None,
    limit: int | None = None,
    on_progress: Progress | None = None,
    ray: RayOptions | None = None,
) -> LabelReport:
    """Judge the chosen traces; traces already judged by the same config are skipped. With `ray`
    the judging fans out over Ray workers (each builds its own judge from the spec, so `judge`
    must be a JudgeSpec) and this process stores every verdict."""
    task_set = parse_tasks(tasks)
    loaded = find(taxonomy)
    backend = build_judge(judge) if isinstance(judge, JudgeSpec) else judge
    answers = getattr(backend, "tasks", TASKS)
    if not task_set <= answers:
        raise LabelUsageError(
            f"--judge {backend.config()['backend']} answers only --task {','.join(sorted(answers))}"
        )
    http = isinstance(judge, JudgeSpec) and judge.spec.startswith("openai")
    concurrency = judge.concurrency if http else 1
    try:
        chosen = select_traces(db, traces, limit)
    except UnknownTraceError as exc:
        raise LabelUsageError(str(exc)) from None
    if ray is None:
        return label_corpus(
            db, backend, loaded, task_set, chosen, concurrency=concurrency, on_progress=on_progress
        )
    if not isinstance(judge, JudgeSpec):
        raise LabelUsageError("a Ray run builds its judges from a JudgeSpec, not a judge object")
    from tracefail.services.distributed import judge_pool

    with judge_pool(ray, judge, loaded.taxonomy, task_set, concurrency if http else None) as pool:
        return label_corpus(
            db,
            backend,
            loaded,
            task_set,
            chosen,
            concurrency=concurrency,
            on_progress=on_progress,
            execute=pool.run,
        )
