"""Model loading: cache location and one-line errors for missing or broken models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracefail.features.errors import ModelLoadError
from tracefail.features.loading import cache_dir, embedded_gguf, load_causal_lm


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TRACEFAIL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tracefail"
    monkeypatch.setenv("TRACEFAIL_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_the_embedded_model_is_found_without_a_path():
    path = embedded_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.gguf", "no such GGUF file"),
        (lambda d: _write(d / "broken.gguf", b"not a gguf file at all"), "cannot read as a GGUF model"),
        (lambda d: _mkdir(d / "empty-model"), "cannot load the model"),
        (lambda d: str(d / "no-such-dir"), "no such local model directory"),
    ],
)
def test_missing_or_broken_models_give_one_line(monkeypatch, tmp_path, make, message):
    monkeypatch.setenv("TRACEFAIL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_causal_lm(str(make(tmp_path)), device="cpu")
    assert "\n" not in str(caught.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path
