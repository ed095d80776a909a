"""An Inspect `.eval` zip is read within limits (issue 24, case 2: a 1 MB hostile zip took
5.5 GB and stopped the whole ingest, losing the 97 good traces beside it)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tracefail.ingest import archive
from tracefail.services.ingest import ingest

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "inspect"
MIB = 1024 * 1024


def _hostile(path: Path, bombs: int, bomb_mib: int) -> Path:
    """The shipped ctf.eval with its good sample, plus `bombs` members of `bomb_mib` MiB of
    blanks each (about 1,000x smaller compressed) and one sample nested too deep."""
    shipped = zipfile.ZipFile(SAMPLES / "ctf.eval")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name in shipped.namelist():
            out.writestr(name, shipped.read(name))
        for n in range(bombs):
            with out.open(f"samples/bomb-{n}.json", "w") as member:
                for _ in range(bomb_mib):
                    member.write(b" " * MIB)
        out.writestr("samples/deep.json", "[" * 5000 + "]" * 5000)
    return path


def test_bombs_cost_their_members_and_the_good_sample_is_stored(db, tmp_path: Path) -> None:
    report = ingest(db, [_hostile(tmp_path / "bomb.eval", bombs=2, bomb_mib=32)])
    assert report.traces == 1
    reasons = db.rows("SELECT record, reason FROM quarantine ORDER BY record")
    assert [r for r, _ in reasons] == ["samples/bomb-0.json", "samples/bomb-1.json", "samples/deep.json"]
    assert "expands past" in reasons[0][1] and "200x its compressed size" in reasons[0][1]


def test_an_archive_over_its_expanded_budget_stops_alone(db, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(archive, "MAX_EXPANDED", 2 * MIB)
    monkeypatch.setattr(archive, "MAX_RATIO", 10_000)
    folder = tmp_path / "logs"
    folder.mkdir()
    _hostile(folder / "a-bomb.eval", bombs=3, bomb_mib=1)
    (folder / "b-good.json").write_bytes((SAMPLES / "arc_easy_log.json").read_bytes())
    report = ingest(db, [folder])
    stored = db.rows("SELECT count(*) FROM traces WHERE source_file LIKE '%b-good.json'")[0][0]
    assert stored > 0 and report.traces == stored  # the bombs sort first and spend the budget
    assert any("the rest is skipped" in m for m in report.messages), report.messages


def test_a_folder_with_a_bomb_stores_the_rest_within_bounded_memory(tmp_path: Path) -> None:
    """A real `tracefail ingest` process: peak RSS stays far below what the bombs expand to."""
    folder = tmp_path / "logs"
    folder.mkdir()
    _hostile(folder / "bomb.eval", bombs=6, bomb_mib=64)  # 384 MiB expanded, ~400 KB on disk
    (folder / "good.json").write_bytes((SAMPLES / "arc_easy_log.json").read_bytes())
    assert (folder / "bomb.eval").stat().st_size < 2 * MIB
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    tracefail = Path(sys.executable).with_name("tracefail")
    done = subprocess.run(  # a fresh parent, so the peak is the ingest's, not an earlier test's child
        [sys.executable, "-c", _MEASURED, tracefail, "ingest", folder, "--db", tmp_path / "c.duckdb"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    peak_mib = int(done.stdout.split()[-1]) // 1024
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert "bomb-5.json" in done.stderr
    assert peak_mib < 600, peak_mib


_MEASURED = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""
