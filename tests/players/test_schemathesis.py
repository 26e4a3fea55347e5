"""schemathesis against the players API under a real uvicorn: cases generated from its OpenAPI
document (valid and invalid, every phase that applies), every check on. Bounded: 40 cases per
operation and phase, a fixed seed, well under a minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ishan_tools.players import Index
from ishan_tools.players.api import create_app

from .conftest import uvicorn_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 40


def test_players_api_passes_schemathesis_with_every_check(index: Index, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    with uvicorn_server(create_app(index)) as url:
        command = [
            str(st),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{url}/openapi.json",
        ]
        command += ["--checks", "all", "--max-examples", str(EXAMPLES), "--seed", "1"]
        command += ["--report-dir", str(tmp_path)]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "8 selected / 8 total" in output and "Fuzzing" in output
