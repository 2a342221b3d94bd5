"""Coverage-guided fuzzing of the client-bytes parsers (tests/fuzz/protocol_target.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent / "fuzz"
RUNS = 30_000


def _fuzz(tmp: Path, *extra: str) -> tuple[int, str]:
    """Run the target; returns its exit code and everything it printed."""
    done = subprocess.run(
        [sys.executable, str(FUZZ / "protocol_target.py"), f"-dict={FUZZ / 'protocol.dict'}",
         "-max_len=4096", "-seed=1", f"-artifact_prefix={tmp}/", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, cwd=tmp)
    return done.returncode, done.stdout


def test_parsers_survive_coverage_guided_fuzzing(tmp_path: Path) -> None:
    code, out = _fuzz(tmp_path, f"-runs={RUNS}")
    assert code == 0, out[-4000:]
    assert f"Done {RUNS} runs" in out
    coverage = re.findall(r"cov: (\d+)", out)
    assert coverage and int(coverage[-1]) > 100  # the first, empty input covers ~50 edges
    print(f"atheris: {RUNS} inputs, {coverage[-1]} edges covered")


def test_harness_reports_an_unexpected_exception(tmp_path: Path) -> None:
    # With --self-test a ConfigError counts as a crash: libFuzzer must stop, say so
    # and keep the input that did it.
    code, out = _fuzz(tmp_path, "-runs=100000", "--self-test")
    assert code != 0
    assert "Uncaught Python exception" in out and "ConfigError" in out
    assert list(tmp_path.glob("crash-*"))
