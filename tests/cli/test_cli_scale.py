"""The Ray flags: without --ray the cluster options are a usage error, before any work."""

from __future__ import annotations

from typer.testing import CliRunner

from tracefail.cli import app


def test_ray_only_flags_need_ray(whowhen_db):
    path = whowhen_db.path
    whowhen_db.close()
    for command in ("features", "label"):
        result = CliRunner().invoke(app, [command, "--db", path, "--ray-address", "127.0.0.1:6379"])
        assert result.exit_code == 2, result.output
        assert "need --ray" in result.stderr and len(result.stderr.strip().splitlines()) == 1
