"""`--judge local[:MODEL]`: a causal LM on this machine scores each mode (no API, no cost)."""

from __future__ import annotations

from tracefail.judge.backend import Judge
from tracefail.judge.registry import JudgeSpec, backend


@backend("local")
def local(model: str, spec: JudgeSpec) -> Judge:
    from tracefail.judge.local import LocalJudge

    return LocalJudge(
        model or None, device=spec.device, window_tokens=spec.window_tokens, threads=spec.threads
    )
