"""Fixtures of the Ray tests: one local 2-CPU Ray for all of them (starting one costs seconds;
shut down at the end) and the tiny test model saved to a folder, as workers load it by path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def model_dir(tmp_path_factory):
    from tiny_lm import build_tiny_lm

    model, tokenizer = build_tiny_lm()
    folder = tmp_path_factory.mktemp("models") / "tiny-model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
