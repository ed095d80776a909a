"""A judge on any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Async with a concurrency bound shared by all requests, a timeout per request, retries with
exponential backoff on 429/5xx and network errors (honouring Retry-After), and structured output:
`response_format: json_schema` first; a server that rejects it gets plain JSON instructions from
then on. A reply that does not validate gets one repair request; after that the trace is an
error. The API key is read from the environment at request time and never stored or logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx

from tracefail.judge.backend import JudgeError, JudgeResult, JudgeUnavailable, WindowAnswer, merge_windows
from tracefail.judge.output import InvalidOutput, json_schema, parse, root_agent, to_mode_verdicts
from tracefail.judge.prompt import PROMPT_VERSION, TraceInput, new_nonce, split_windows, structured_request
from tracefail.model import Taxonomy

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
ENDPOINT_STATUS = {401, 403, 404}  # wrong key, no access, wrong URL or model: no trace can pass


@dataclass
class HttpSettings:
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    window_chars: int = 60_000
    temperature: float = 0.0
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0


class OpenAIJudge:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._client: httpx.AsyncClient | None = None
        self._schema_supported = True

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": "openai",
            "model": s.model,
            "base_url": s.base_url.rstrip("/"),
            "window_chars": s.window_chars,
            "temperature": s.temperature,
            "prompt": PROMPT_VERSION,
        }

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        s = self.settings
        return (tokens_in * s.price_in_per_mtok + tokens_out * s.price_out_per_mtok) / 1e6

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.settings.concurrency)
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s, limits=limits)
        return self._client

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        windows = split_windows(trace.steps, self.settings.window_chars)
        speakers = frozenset(s.agent for s in trace.steps if s.agent)
        step_speakers = {s.step_idx: s.agent for s in trace.steps}
        answers, tokens_in, tokens_out = [], 0, 0
        for window in windows:
            nonce = new_nonce()
            system, user = structured_request(trace, window, taxonomy, nonce, tasks)
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            reply, t_in, t_out = await self._chat(messages, tasks)
            tokens_in, tokens_out = tokens_in + t_in, tokens_out + t_out
            try:
                output = parse(reply, taxonomy, window, tasks, speakers)
            except InvalidOutput as first:
                repair = [
                    *messages,
                    {"role": "assistant", "content": reply[:4000]},
                    {
                        "role": "user",
                        "content": f"That reply is invalid ({first}). Reply again with only "
                        "the corrected JSON object, following the required format exactly.",
                    },
                ]
                reply, t_in, t_out = await self._chat(repair, tasks)
                tokens_in, tokens_out = tokens_in + t_in, tokens_out + t_out
                try:
                    output = parse(reply, taxonomy, window, tasks, speakers)
                except InvalidOutput as second:
                    raise JudgeError(f"invalid judge output after one repair: {second}") from None
            root = output.root_cause
            answers.append(
                WindowAnswer(
                    steps=window.steps,
                    modes=to_mode_verdicts(output),
                    root_step=root.step if root else None,
                    root_agent=root_agent(root.agent, root.step, step_speakers) if root else None,
                    root_probability=root.probability if root and root.step is not None else 0.0,
                    root_reason=root.reason if root else "",
                )
            )
        verdict = merge_windows(trace.trace_id, answers, len(trace.steps))
        return JudgeResult(verdict, tokens_in, tokens_out, {"windows": len(windows)})

    def _body(self, messages: list[dict], tasks: frozenset[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
        }
        if self._schema_supported:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tracefail_verdict", "strict": True, "schema": json_schema(tasks)},
            }
        return body

    async def _chat(self, messages: list[dict], tasks: frozenset[str]) -> tuple[str, int, int]:
        """One chat completion with retries; returns (content, prompt tokens, completion tokens)."""
        url = self.settings.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(self.settings.api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        attempt = 0
        while True:
            async with self._semaphore:
                try:
                    response = await self._http().post(url, json=self._body(messages, tasks), headers=headers)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    response, failure = None, f"{type(exc).__name__}"
            if response is not None:
                if (
                    response.status_code == 400
                    and self._schema_supported
                    and "response_format" in response.text
                ):
                    self._schema_supported = False  # this server has no json_schema; ask in words
                    continue
                if response.status_code < 300:
                    return self._content(response)
                failure = f"HTTP {response.status_code}"
                if response.status_code in ENDPOINT_STATUS:
                    raise JudgeUnavailable(f"{failure} from {url}: {response.text[:200]}")
                if response.status_code not in RETRY_STATUS:
                    raise JudgeError(f"{failure} from {url}: {response.text[:200]}")
            attempt += 1
            if attempt > self.settings.max_retries:
                message = f"{failure} from {url} after {self.settings.max_retries} retries"
                raise (JudgeUnavailable if response is None else JudgeError)(message)
            await asyncio.sleep(self._delay(attempt, response))

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.settings.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        base = min(self.settings.backoff_s * 2 ** (attempt - 1), self.settings.max_backoff_s)
        return base * (0.5 + random.random() / 2)

    @staticmethod
    def _content(response: httpx.Response) -> tuple[str, int, int]:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise JudgeError(f"not a chat completion response: {response.text[:200]!r}") from None
        usage = data.get("usage") or {}
        return content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
