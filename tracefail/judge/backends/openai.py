"""`--judge openai:MODEL`: any OpenAI-compatible chat endpoint, optionally asked step by step
(`--strategy`), which wraps the HTTP judge in a StrategyJudge."""

from __future__ import annotations

import os

from tracefail.judge.backend import Judge
from tracefail.judge.registry import JudgeConfigError, JudgeSpec, backend


@backend("openai")
def openai(model: str, spec: JudgeSpec) -> Judge:
    if not model:
        raise JudgeConfigError("--judge openai:MODEL needs a model name, e.g. openai:gpt-4o-mini")
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
        raise JudgeConfigError(str(exc)) from None
    host = validate_base_url(settings.base_url).host  # lower-cased by the URL parser
    if host == "api.openai.com" and not os.environ.get(spec.api_key_env):
        # Fail before the run: without a key every request would only be refused. (Local
        # servers such as vLLM or Ollama need none, so only OpenAI's own endpoint is checked.)
        raise JudgeConfigError(
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
        raise JudgeConfigError(str(exc)) from exc
