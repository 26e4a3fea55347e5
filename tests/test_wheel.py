"""The wheel ships every file of the package: modules and package data (the pages' static
files, the players table, the shared crawl's and the shared tenant limits' Lua), so an installed
toolkit runs as a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_package_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "src/ishan_tools"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    wanted = {name.removeprefix("src/") for name in tracked}
    assert not wanted - shipped, f"missing from the wheel: {sorted(wanted - shipped)}"
    lua = {name for name in wanted if name.endswith(".lua")}
    for folder in ("ishan_tools/crawl/shared/lua/", "ishan_tools/infer/tenants/lua/"):
        assert any(name.startswith(folder) for name in lua), f"no Lua found under src/{folder}"
