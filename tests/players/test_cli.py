"""`ishan players` as a user runs it: CliRunner for options and exit codes, plus a few runs
of the installed command."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from ishan_tools.players import Index, Profile

from .conftest import EXAMPLE_ARGS, EXAMPLE_RATINGS, embedded_rows, write_csv

ISHAN = Path(sys.executable).with_name("ishan")
runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["players", *args], env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def json_of(*args: str) -> list[dict[str, object]]:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    parsed: list[dict[str, object]] = json.loads(out)
    return parsed


def test_example_profile_prints_a_table_of_the_top_three(index: Index) -> None:
    code, out, _ = run(*EXAMPLE_ARGS)
    assert code == 0
    expected = index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=4)
    for match in expected[:3]:
        player = match.player
        line = next(line for line in out.splitlines() if str(player["short_name"]) in line)
        assert str(player["club_name"]) in line and str(player["nationality_name"]) in line
        assert f"{match.score:.4f}" in line and "midfielder" in line
    assert str(expected[3].player["short_name"]) not in out
    assert "PAC" in out and "score" in out


def test_original_field_names_and_position_codes_are_accepted() -> None:
    plain = json_of(*EXAMPLE_ARGS)
    original_named = json_of(
        "--position", "CM", "--speed", "75", "--shooting", "72", "--passing", "85",
        "--dribbling", "80", "--defense", "65", "--physic", "70",
    )  # fmt: skip
    assert original_named == plain


def test_json_has_the_documented_fields_best_first() -> None:
    matches = json_of(*EXAMPLE_ARGS, "--top", "6")
    assert len(matches) == 6
    keys = ("sofifa_id", "short_name", "long_name", "club_name", "role", *EXAMPLE_RATINGS)
    for key in (*keys, "score"):
        assert all(key in match for match in matches)
    scores = [float(str(m["score"])) for m in matches]
    assert scores == sorted(scores, reverse=True)


def test_csv_output_parses_with_ranks() -> None:
    code, out, _ = run(*EXAMPLE_ARGS, "--csv", "--explain")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["short_name"] == json_of(*EXAMPLE_ARGS)[0]["short_name"]
    assert rows[0]["differences"].count(":") == 6


def test_json_and_csv_together_is_a_usage_error() -> None:
    code, _, err = run(*EXAMPLE_ARGS, "--json", "--csv")
    assert code == 2 and "choose one of --json and --csv" in err


def test_explain_shows_largest_differences(index: Index) -> None:
    code, out, _ = run(*EXAMPLE_ARGS, "--explain")
    assert code == 0 and "Differs most from the profile" in out
    for rank, match in enumerate(
        index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=3), start=1
    ):
        (first, gap), (second, gap2) = list(match.differences.items())[:2]
        line = f"{rank}. {match.player['short_name']}: {first} {gap:+g}, {second} {gap2:+g}"
        assert line in out


def test_filters_and_weights_from_the_command_line() -> None:
    matches = json_of(
        *EXAMPLE_ARGS, "--max-age", "21", "--league", "Premier League", "--foot", "LEFT",
        "--max-value", "40M", "--min-overall", "70", "--weight", "pace=3", "-n", "5",
    )  # fmt: skip
    assert len(matches) == 5
    for match in matches:
        assert int(str(match["age"])) <= 21 and int(str(match["overall"])) >= 70
        assert "Premier League" in str(match["league_name"]) and match["preferred_foot"] == "Left"
        assert float(str(match["value_eur"])) <= 40e6
    assert matches != json_of(*EXAMPLE_ARGS, "--max-age", "21", "--league", "Premier League",
        "--foot", "LEFT", "--max-value", "40M", "--min-overall", "70", "-n", "5")  # fmt: skip


def test_plot_writes_a_radar_png(tmp_path: Path) -> None:
    target = tmp_path / "radar.png"
    code, out, err = run(*EXAMPLE_ARGS, "--plot", str(target))
    assert code == 0 and f"wrote {target}" in err and "score" in out
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_into_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    code, _, err = run(*EXAMPLE_ARGS, "--plot", str(tmp_path / "no" / "radar.png"))
    assert code == 1 and err.startswith("error: cannot write the radar chart")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--position", "GK", "--pace", "50"], 2, "goalkeepers are not compared"),
        (["--position", "wingback", "--pace", "50"], 2, "unknown position 'wingback'"),
        (["--pace", "50"], 2, "--position is required"),
        (["--position", "ST", "--pace", "120"], 2, "less than or equal to 99"),
        ([*EXAMPLE_ARGS, "--weight", "height=2"], 2, "unknown attribute 'height'"),
        ([*EXAMPLE_ARGS, "--weight", "pace=nan"], 2, "weight 'pace=nan' should look like"),
        ([*EXAMPLE_ARGS, "--weight", "pace=inf"], 2, "weight 'pace=inf' should look like"),
        ([*EXAMPLE_ARGS, "--max-value", "lots"], 2, "as an amount in euros"),
        ([*EXAMPLE_ARGS, "--club", "Nowhere FC"], 1, "no club"),
        (["--top", "5", "like", "Pedri"], 2, "put options after the command"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(args: list[str], code: int, message: str) -> None:
    got, _, err = run(*args)
    assert got == code and message in err


def test_role_from_majority_changes_the_role_used() -> None:
    code, out, _ = run("show", "206517", "--json", "--role-from", "majority")
    assert code == 0 and json.loads(out)["role"] == "midfielder"
    first = json_of("like", "206517", "--include-self", "-n", "1")
    majority = json_of("like", "206517", "--include-self", "-n", "1", "--role-from", "majority")
    assert first[0]["role"] == "attacker" and majority[0]["role"] == "midfielder"
    code, _, err = run(*EXAMPLE_ARGS, "--role-from", "most")
    assert code == 2 and "most" in err


def test_no_arguments_shows_help() -> None:
    code, out, _ = run()
    assert code == 0 and "like" in out and "--position" in out


def test_like_excludes_the_player_and_include_self_keeps_him() -> None:
    others = json_of("like", "Pedri", "--top", "3")
    assert "Pedri" not in [m["short_name"] for m in others]
    with_self = json_of("like", "pedri", "--top", "3", "--include-self")
    assert [m["short_name"] for m in with_self] == ["Pedri", *[m["short_name"] for m in others][:2]]


def test_like_with_an_ambiguous_name_lists_candidates_and_exits_1() -> None:
    code, _, err = run("like", "Kanté")
    assert code == 1
    assert "N'Golo Kanté" in err and "Ousmane Kanté" in err and "215914" in err
    assert (
        err.strip().splitlines()[-1]
        == "error: 'Kanté' matches 3 players; pass a sofifa id or a fuller name"
    )


def test_like_a_goalkeeper_fails() -> None:
    code, _, err = run("like", "200389")
    assert code == 1 and "not comparable" in err


def test_show_and_search() -> None:
    code, out, _ = run("show", "158023")
    assert code == 0 and "Lionel Andrés Messi Cuccittini" in out and "Paris Saint-Germain" in out
    code, out, _ = run("show", "oblak", "--json")
    player = json.loads(out)
    assert code == 0 and player["sofifa_id"] == 200389 and player["indexed"] is False
    code, out, _ = run("search", "kante")
    assert code == 0 and all(name in out for name in ("N. Kanté", "O. Kanté", "A. Kanté"))
    code, out, _ = run("search", "silva", "--limit", "4")
    assert code == 0 and "first 4 of" in out
    code, _, err = run("search", "qqqqq")
    assert code == 1 and "no player's name contains 'qqqqq'" in err


def test_data_from_env_and_flag_overrides_env(tmp_path: Path) -> None:
    rows = embedded_rows()
    small = write_csv(tmp_path / "top200.csv", rows[:201])
    tail = write_csv(tmp_path / "tail.csv", [rows[0], *rows[-2000:]])
    from_env = json.loads(run(*EXAMPLE_ARGS, "--json", env={"ISHAN_PLAYERS_DATA": str(small)})[1])
    assert all(int(str(m["overall"])) >= int(rows[200][4]) for m in from_env)
    flag = run(*EXAMPLE_ARGS, "--json", "--data", str(tail), env={"ISHAN_PLAYERS_DATA": str(small)})
    assert all(int(str(m["overall"])) <= int(rows[-2000][4]) for m in json.loads(flag[1]))
    code, out, _ = run("--data", str(small), "show", str(rows[200][0]))
    assert code == 0 and rows[200][2] in out


def test_data_problems_are_one_line_errors(tmp_path: Path) -> None:
    code, _, err = run(*EXAMPLE_ARGS, "--data", str(tmp_path / "missing.csv"))
    assert code == 1 and err.count("\n") == 1 and "no such file" in err
    rows = embedded_rows()[:10]
    keep = [i for i, name in enumerate(rows[0]) if name not in ("pace", "nationality_name")]
    bad = write_csv(tmp_path / "bad.csv", [[r[i] for i in keep] for r in rows])
    code, _, err = run(*EXAMPLE_ARGS, "--data", str(bad))
    assert code == 1 and "lacks required column(s) nationality_name, pace" in err


def test_installed_command_answers_the_example_profile(index: Index) -> None:
    done = subprocess.run(
        [str(ISHAN), "players", *EXAMPLE_ARGS, "--json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    expected = [
        m.player["short_name"] for m in index.similar(Profile("midfielder", EXAMPLE_RATINGS))
    ]
    assert [m["short_name"] for m in json.loads(done.stdout)] == expected


def test_installed_command_reports_errors_in_one_red_line() -> None:
    env = {**os.environ, "ISHAN_PLAYERS_DATA": "/nonexistent/players.csv"}
    done = subprocess.run(
        [str(ISHAN), "players", *EXAMPLE_ARGS], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == "error: /nonexistent/players.csv: no such file (pass --data PATH to a players CSV)\n"
    )


def _ask_at_terminal(answer: bytes) -> tuple[int, str, str]:
    """Run `ishan players like kante --json` with stdin and stderr on a pseudo-terminal."""
    import pty
    import select

    main, side = pty.openpty()
    process = subprocess.Popen(
        [str(ISHAN), "players", "like", "kante", "--json"],
        stdin=side,
        stdout=subprocess.PIPE,
        stderr=side,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(side)
    seen = b""
    try:
        while b"player you mean" not in seen:
            ready, _, _ = select.select([main], [], [], 60)
            assert ready, f"no prompt; saw {seen!r}"
            seen += os.read(main, 4096)
        os.write(main, answer + b"\n")
        out, _ = process.communicate(timeout=60)
        while select.select([main], [], [], 0.2)[0]:
            try:
                seen += os.read(main, 4096)
            except OSError:
                break
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out.decode(), seen.decode(errors="replace")


def test_at_a_terminal_an_ambiguous_name_asks_which_one() -> None:
    code, out, screen = _ask_at_terminal(b"243867")
    assert code == 0 and "Ousmane Kanté" in screen
    matches = json.loads(out)
    assert len(matches) == 3 and 243867 not in [m["sofifa_id"] for m in matches]
    assert {m["role"] for m in matches} == {"defender"}  # O. Kanté is a centre back


def test_at_a_terminal_an_empty_answer_keeps_the_error() -> None:
    code, out, screen = _ask_at_terminal(b"")
    assert code == 1 and out == "" and "matches 3 players" in screen


def test_min_age_and_plays_filters() -> None:
    matches = json_of(
        *EXAMPLE_ARGS, "--min-age", "30", "--plays", "cdm", "--plays", "CB", "-n", "8"
    )
    assert len(matches) == 8
    for match in matches:
        assert int(str(match["age"])) >= 30
        assert {"CDM", "CB"} & set(str(match["player_positions"]).split(", "))
    liked = json_of("like", "Pedri", "--min-age", "31", "--max-age", "31", "-n", "4")
    assert [m["age"] for m in liked] == [31] * 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-age", "30", "--max-age", "20"], "min age 30 is above max age 20"),
        (["--plays", "GK"], "goalkeepers are not compared"),
        (["--plays", "winger"], "unknown position code 'winger'"),
        (["--min-age", "-1"], "greater than or equal to 0"),
    ],
)
def test_bad_min_age_and_plays_are_usage_errors(args: list[str], message: str) -> None:
    code, _, err = run(*EXAMPLE_ARGS, *args)
    assert code == 2 and message in err
