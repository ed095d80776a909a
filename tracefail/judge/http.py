"""A judge on any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Async with a request budget shared by all requests (tracefail.judge.budget: at most
`concurrency` open at once, and a 429's Retry-After pauses them all), a timeout per request,
retries with exponential backoff on 429/5xx and network errors, and structured output:
`response_format: json_schema` first; a server that rejects it gets plain JSON instructions from
then on. A reply that does not validate gets one repair request; after that the trace is an
error. The API key is read from the environment at request time and never stored or logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tracefail.judge.backend import JudgeError, JudgeResult, JudgeUnavailable, WindowAnswer, merge_windows
from tracefail.judge.budget import Budget, LocalBudget
from tracefail.judge.output import InvalidOutput, json_schema, parse, root_agent, to_mode_verdicts
from tracefail.judge.prompt import PROMPT_VERSION, TraceInput, new_nonce, split_windows, structured_request
from tracefail.model import Taxonomy

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
ENDPOINT_STATUS = {401, 403, 404}  # wrong key, no access, wrong URL or model: no trace can pass
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# httpcore scans every connection of a pool on each request event, so one pool of 64 connections
# spends most of a core on bookkeeping (measured: 0.09 of ideal at 64, 0.63 with pools of 8)
POOL_CONNECTIONS = 8
_SECRET_PARAM = re.compile(r"key|token|secret|sig|pass|auth|cred", re.IGNORECASE)


MAX_TOKENS = 10**9  # per reply: more is no real count, and would overflow the runs row


def token_count(usage: dict[str, Any], name: str) -> int:
    """A usage count from a reply, checked: a whole number from 0 to MAX_TOKENS (1e999 and 1e25
    came back from a hostile server), else ValueError naming it."""
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"usage.{name} {value!r} is not a token count (0 to {MAX_TOKENS:,})")
    if value != int(value):
        raise ValueError(f"usage.{name} {value!r} is not a whole number")
    return int(value)


def validate_base_url(base_url: str) -> httpx.URL:
    """An absolute http(s) URL, or ValueError with one line."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"--base-url {redact(base_url)!r} is not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"--base-url {redact(base_url)!r} must be an http:// or https:// URL")
    if url.userinfo:  # httpx would send it as Basic auth in place of the API key
        raise ValueError(
            f"--base-url {redact(base_url)!r} holds credentials (user:password@); they are refused: "
            "put the API key in the environment variable named by --api-key-env (OPENAI_API_KEY by "
            "default), which is sent as its header"
        )
    return url


def redact(base_url: str) -> str:
    """The URL without credentials: user:password and secret-looking query values become ***."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return re.sub(r"//[^/@]*@", "//***@", base_url.split("?")[0])
    if url.userinfo:
        url = url.copy_with(username="***", password=None)
    if url.query:
        params = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in url.params.multi_items()]
        url = url.copy_with(params=params)
    return str(url)


def endpoint(base_url: str) -> httpx.URL:
    """base_url + /chat/completions, keeping its query string (`?api-version=...`)."""
    url = httpx.URL(base_url)
    return url.copy_with(path=url.path.rstrip("/") + "/chat/completions")


@dataclass
class HttpSettings:
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    api_key_header: str = "Authorization"  # "Authorization: Bearer KEY", or e.g. Azure's "api-key: KEY"
    concurrency: int = 8
    timeout_s: float = 120.0  # the whole request, connect to last byte
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    window_chars: int = 60_000
    temperature: float = 0.0
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0

    def __post_init__(self) -> None:
        validate_base_url(self.base_url)
        if not self.timeout_s > 0:
            raise ValueError(f"--timeout must be more than 0 seconds, not {self.timeout_s:g}")
        if self.max_response_bytes <= 0:
            raise ValueError("the maximum response size must be more than 0 bytes")


class OpenAIJudge:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.budget: Budget = LocalBudget(settings.concurrency)  # a Ray worker swaps in a shared one
        self._clients: list[httpx.AsyncClient] = []  # small pools, together `concurrency` connections
        self._open: list[int] = []  # requests open on each
        self._schema_supported = True

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": "openai",
            "model": s.model,
            "base_url": redact(s.base_url.rstrip("/")),
            "window_chars": s.window_chars,
            "temperature": s.temperature,
            "prompt": PROMPT_VERSION,
        }

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        s = self.settings
        return (tokens_in * s.price_in_per_mtok + tokens_out * s.price_out_per_mtok) / 1e6

    async def aclose(self) -> None:
        clients, self._clients, self._open = self._clients, [], []
        for client in clients:
            await client.aclose()

    def _least_busy(self) -> int:
        """The index of the pool with the fewest open requests: the budget never opens more than
        `concurrency` at once, so it always has a free connection."""
        if not self._clients:
            size = min(POOL_CONNECTIONS, max(1, self.settings.concurrency))
            limits = httpx.Limits(max_connections=size)
            count = math.ceil(max(1, self.settings.concurrency) / size)
            tls = httpx.create_ssl_context()  # loading the CA bundle costs ~70 ms: once, not per pool
            self._clients = [
                httpx.AsyncClient(timeout=self.settings.timeout_s, limits=limits, verify=tls)
                for _ in range(count)
            ]
            self._open = [0] * count
        return min(range(len(self._open)), key=self._open.__getitem__)

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        used = [0, 0]  # tokens of every reply, judged or not: a failed trace was still paid for
        try:
            return await self._judge(trace, taxonomy, tasks, used)
        except JudgeError as exc:
            exc.tokens_in, exc.tokens_out = used
            raise

    async def _judge(
        self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str], used: list[int]
    ) -> JudgeResult:
        windows = split_windows(trace.steps, self.settings.window_chars)
        speakers = frozenset(s.agent for s in trace.steps if s.agent)
        step_speakers = {s.step_idx: s.agent for s in trace.steps}
        answers = []
        for window in windows:
            nonce = new_nonce()
            system, user = structured_request(trace, window, taxonomy, nonce, tasks)
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            reply = await self._chat(messages, tasks, used)
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
                reply = await self._chat(repair, tasks, used)
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
        return JudgeResult(verdict, used[0], used[1], {"windows": len(windows)})

    def _body(self, messages: list[dict], schema: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
        }
        if self._schema_supported:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tracefail_verdict", "strict": True, "schema": schema},
            }
        return body

    async def _chat(
        self,
        messages: list[dict],
        tasks: frozenset[str],
        used: list[int],
        schema: dict[str, Any] | None = None,
    ) -> str:
        """One chat completion with retries; adds each reply's token usage to `used`. The reply
        follows `schema`, by default the verdict schema for `tasks`."""
        url = endpoint(self.settings.base_url)
        shown = redact(str(url))
        attempt = 0
        while True:
            headers: httpx.Headers | dict[str, str] = {}
            async with self.budget.slot():
                try:
                    async with asyncio.timeout(self.settings.timeout_s):
                        body_in = self._body(messages, schema or json_schema(tasks))
                        status, headers, body = await self._post(url, body_in)
                except (TimeoutError, httpx.TimeoutException):
                    status, failure = None, f"Timeout: no complete reply within {self.settings.timeout_s:g} s"
                except httpx.TransportError as exc:
                    status, failure = None, f"{type(exc).__name__}"
                if status is not None:
                    text = body.decode("utf-8", "replace")
                    if status == 400 and self._schema_supported and "response_format" in text:
                        self._schema_supported = False  # this server has no json_schema; ask in words
                        continue
                    if status < 300:
                        return self._content(text, used)
                    failure = f"HTTP {status}"
                    if status in ENDPOINT_STATUS:
                        raise JudgeUnavailable(f"{failure} from {shown}: {text[:200]}")
                    if status not in RETRY_STATUS:
                        raise JudgeError(f"{failure} from {shown}: {text[:200]}")
                attempt += 1
                if attempt > self.settings.max_retries:
                    message = f"{failure} from {shown} after {self.settings.max_retries} retries"
                    raise (JudgeUnavailable if status is None else JudgeError)(message)
                delay = self._delay(attempt, headers)
                if status == 429 or headers.get("retry-after"):
                    # the server asked the client, not this request, to wait; paused before this
                    # request's slot goes back, so no other request takes it before the pause is known
                    self.budget.pause(delay)
            await asyncio.sleep(delay)

    async def _post(self, url: httpx.URL, body: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        """POST and read the reply, refusing one larger than max_response_bytes."""
        limit = self.settings.max_response_bytes
        index = self._least_busy()
        opened = self._open  # aclose() may replace it meanwhile
        opened[index] += 1
        try:
            async with self._clients[index].stream("POST", url, json=body, headers=self._auth()) as response:
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise JudgeError(f"reply from {redact(str(url))} is larger than {limit:,} bytes")
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)
        finally:
            opened[index] -= 1

    def _auth(self) -> dict[str, str]:
        key = os.environ.get(self.settings.api_key_env)
        if not key:
            return {}
        header = self.settings.api_key_header
        return {header: f"Bearer {key}" if header.lower() == "authorization" else key}

    def _delay(self, attempt: int, headers: httpx.Headers | dict[str, str]) -> float:
        retry_after = headers.get("retry-after")
        if retry_after:
            try:
                return min(float(retry_after), self.settings.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        base = min(self.settings.backoff_s * 2 ** (attempt - 1), self.settings.max_backoff_s)
        return base * (0.5 + random.random() / 2)

    @staticmethod
    def _content(text: str, used: list[int]) -> str:
        try:
            data = json.loads(text)
            usage = data.get("usage") or {}
            used[0] += token_count(usage, "prompt_tokens")
            used[1] += token_count(usage, "completion_tokens")
            return data["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise JudgeError(f"not a chat completion response: {text[:200]!r}") from None
        except ValueError as exc:  # a usage count out of range
            raise JudgeError(f"invalid chat completion response: {exc}") from None
