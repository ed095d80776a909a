"""`--judge ranker:PATH`: a step ranker saved by `tracefail train` (attribution only)."""

from __future__ import annotations

from tracefail.judge.backend import Judge
from tracefail.judge.registry import JudgeConfigError, JudgeSpec, backend


@backend("ranker")
def ranker(path: str, spec: JudgeSpec) -> Judge:
    from tracefail.judge.ranker import RankerJudge

    try:
        return RankerJudge(path)
    except ValueError as exc:
        raise JudgeConfigError(str(exc)) from exc
