"""The `--ray` options shared by `features` and `label`: they only pick the executor."""

from __future__ import annotations

from typing import Annotated

import typer

from tracefail.cli.common import EXIT_USAGE, fail
from tracefail.services.distributed import RayOptions

RayFlag = Annotated[
    bool, typer.Option("--ray", help="Fan the work out over Ray workers (pip install 'tracefail[ray]').")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address", envvar="RAY_ADDRESS", help="Join this Ray cluster (host:port); default: a local Ray."
    ),
]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, help="Ray actors, one model load each.")]
GpusOption = Annotated[
    float, typer.Option("--gpus-per-worker", min=0.0, help="GPUs each Ray actor reserves.")
]


def ray_options(use_ray: bool, address: str | None, workers: int, gpus: float) -> RayOptions | None:
    """None runs in this process; the Ray-only flags without --ray are a usage error."""
    if not use_ray:
        if address or gpus:
            fail("--ray-address and --gpus-per-worker need --ray", EXIT_USAGE)
        return None
    return RayOptions(address=address, workers=workers, gpus_per_worker=gpus)
