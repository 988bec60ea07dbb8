"""The code passes the project's lint (ruff, pinned in requirements.txt, configured in pyproject.toml)."""
import subprocess
import sys

from conftest import ROOT


def test_ruff_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
