"""Judge backends registered by name, imported only when chosen (like inspect_ai's `@modelapi`).

Each module in `tracefail.judge.backends` registers one factory with `@backend("name")`; the
factory imports its heavy code inside, so listing the names stays cheap. Adding a backend means
adding one module there."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from tracefail.judge.backend import Judge


class JudgeConfigError(ValueError):
    """The judge options cannot build a backend; the message is one line for the user."""


@dataclass
class JudgeSpec:
    """`NAME` or `NAME:ARG` (e.g. `local`, `openai:MODEL`, `ranker:PATH`), plus backend options."""

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


Factory = Callable[[str, JudgeSpec], Judge]
_FACTORIES: dict[str, Factory] = {}


def backend(name: str) -> Callable[[Factory], Factory]:
    """Register `factory(arg, spec)` under `name` (the part of `--judge` before the colon)."""

    def register(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory

    return register


def backend_names() -> list[str]:
    """Every registered backend, loading the (light) registration modules once."""
    if not _FACTORIES:
        from tracefail.judge import backends

        for info in pkgutil.iter_modules(backends.__path__):
            importlib.import_module(f"{backends.__name__}.{info.name}")
    return sorted(_FACTORIES)


def create(spec: JudgeSpec) -> Judge:
    """The backend `spec.spec` names; JudgeConfigError for an unknown name or bad options."""
    name, _, arg = spec.spec.partition(":")
    names = backend_names()
    if name not in _FACTORIES:
        raise JudgeConfigError(f"--judge {spec.spec!r}: unknown backend; registered: {', '.join(names)}")
    if spec.strategy != "all-at-once" and name != "openai":
        raise JudgeConfigError(f"--strategy {spec.strategy} needs --judge openai:MODEL")
    return _FACTORIES[name](arg, spec)
