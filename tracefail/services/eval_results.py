"""The typed results of `tracefail eval` and `tracefail calibrate`: the CLI renders these, and
`to_json()` gives the `--json` document (keys a result never had stay absent, NaN becomes null)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Interval = dict[str, float]  # {value, low, high}; beside a baseline also {diff, diff_low, diff_high}


def _json_safe(value: Any) -> Any:
    """NaN (an undefined score, e.g. precision with no positive prediction) becomes null in JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        safe: dict[str, Any] = _json_safe(self.model_dump(by_alias=True, exclude_unset=True))
        return safe


class ModeAgreement(_Result):
    """One mode: judge vs reference verdicts over the (trace, mode) pairs both have."""

    mode_id: str
    n: int
    reference_positives: int
    single_class: bool  # one class on both sides: kappa is 1 by convention and says nothing
    kappa: Interval
    precision: Interval
    recall: Interval
    f1: Interval
    accuracy: Interval


class ReferenceRemap(_Result):
    mapped: int
    dropped: dict[str, int]
    ties: int


class ModeBlock(_Result):
    n_traces: int
    n_pairs: int
    reference_remap: ReferenceRemap
    per_mode: list[ModeAgreement]
    pooled: dict[str, Interval] | None = None
    merged_3_2_3_3: dict[str, Interval] | None = Field(default=None, alias="merged_3.2_3.3")
    ece: float | None = None
    ece_raw: float | None = None
    note: str | None = None  # why there are no mode metrics


class AttributionScores(_Result):
    """Exact-match accuracies of the judge or one baseline, each with its interval."""

    agent: Interval
    step: Interval
    within1: Interval
    within3: Interval
    top3: Interval | None = None
    judge_minus: dict[str, Interval] | None = None  # judge minus this baseline, paired bootstrap


class AttributionBlock(_Result):
    n_traces: int
    speaker_corrected: int | None = (
        None  # replies whose agent was not the step's speaker (stored: the speaker)
    )
    judge: AttributionScores | None = None
    baselines: dict[str, AttributionScores] | None = None
    notes: str | None = None


class Bootstrap(_Result):
    reps: int
    level: float
    unit: str


class EvalResult(_Result):
    judge_source: str | None  # the source whose mode labels were compared
    attribution_source: str | None  # the source whose attributions were compared
    judge_picked: str
    other_judge_sources: list[str]
    reference: str
    taxonomy: str
    bootstrap: Bootstrap
    modes: ModeBlock
    attribution: AttributionBlock


class CalibratedMode(_Result):
    mode_id: str
    n: int
    positives: int
    skipped: str | None = None
    params: dict[str, float] | None = None
    ece_before: float | None = None
    ece_after: float | None = None


class CalibrationResult(_Result):
    judge_source: str
    judge_picked: str
    other_judge_sources: list[str]
    reference: str
    method: str
    run_id: str
    fitted_modes: int
    modes: list[CalibratedMode]
    ece_before: float | None
    ece_after: float | None
    note: str
