"""The tenants file and `ishan infer tenants`: keys stored as hashes, one-line refusals."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from ishan_tools.infer.errors import UnknownModel
from ishan_tools.infer.tenants.book import (
    Tenant,
    TenantBook,
    TenantsError,
    dump,
    hash_key,
    load,
    parse,
    save,
)
from ishan_tools.infer.tenants.gate import Gate
from ishan_tools.infer.tenants.quotas import TokenWindow

from .conftest import ishan

DIGEST = "sha256:" + "ab" * 32


def test_a_key_pasted_into_the_file_is_refused_with_one_line() -> None:
    with pytest.raises(TenantsError) as refused:
        parse('[tenants.team-a]\nkeys = ["ishan-s3cr3t"]\n', "t.toml")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("t.toml: tenants.team-a.keys[0] is not a SHA-256 hash")
    assert "a key itself never goes in the file" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f'[tenants.a]\nkeys = ["{DIGEST}"]\nmax_session = 2\n', "unknown field 'max_session'"),
        (f'[tenants.a]\nkeys = ["{DIGEST}"]\n[tenants.b]\nkeys = ["{DIGEST}"]\n', "also listed"),
        (f'[tenants.a]\nkeys = ["{DIGEST}"]\nmax_sessions = 0\n', "at least 1"),
        (f'[tenants.a]\nkeys = ["{DIGEST}"]\nweight = -1\n', "between 0.01 and 10000"),
        ("[tenants.a]\nkeys = []\n", "at least one key hash"),
        ("[tenants.a\n", "not valid TOML"),
        (f'[tenant.a]\nkeys = ["{DIGEST}"]\n', "unknown table or field 'tenant'"),
    ],
)
def test_a_file_with_a_mistake_is_refused_whole(text: str, says: str) -> None:
    with pytest.raises(TenantsError, match=says):
        parse(text)


def test_a_tenant_without_limits_has_none_and_every_model() -> None:
    (tenant,) = parse(f'[tenants.open]\nkeys = ["{DIGEST}"]\n')
    assert tenant == Tenant(name="open", keys=(DIGEST,))
    assert tenant.max_sessions is None and tenant.tokens_per_minute is None
    assert tenant.weight == 1.0 and tenant.may_use("anything")


def test_the_file_round_trips_and_keys_are_known_by_their_hash() -> None:
    tenants = [
        Tenant("a", (hash_key("key-a"),), max_sessions=2, weight=3, models=("m1",), admin=True),
        Tenant(
            "b", (hash_key("key-b1"), hash_key("key-b2")), tokens_per_minute=100, cache_group="lab"
        ),
    ]
    assert parse(dump(tenants)) == tenants
    book = TenantBook(tenants)
    assert book.identify("Bearer key-a") is tenants[0]
    assert book.identify("Bearer key-b2") is tenants[1]
    assert book.identify("Bearer key-c") is None
    assert book.identify("key-a") is None  # not a bearer header
    assert book.identify(None) is None


def test_the_token_window_forgets_after_a_minute_and_says_when() -> None:
    window = TokenWindow()
    window.add(60, now=1000.2)
    window.add(50, now=1030.5)
    assert window.used(1030.9) == 110
    # at a limit of 100 the first charge must leave: its second ends at 1060
    assert window.wait(100, 1031.0) == pytest.approx(29.0)
    assert window.wait(200, 1031.0) == 0.0
    assert window.used(1060.0) == 50
    assert window.used(1091.0) == 0


def test_tenants_add_prints_the_key_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    made = ishan(
        "infer",
        "tenants",
        "add",
        "team-a",
        "--file",
        str(path),
        "--max-sessions",
        "2",
        "--tokens-per-minute",
        "5000",
        "--max-tokens",
        "256",
        "--weight",
        "2",
        "--models",
        "smollm2,tiny",
        "--admin",
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n" and key.startswith("ishan-")
    text = path.read_text()
    assert key not in text
    assert "sha256:" + hashlib.sha256(key.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tenant,) = load(path)
    assert (tenant.max_sessions, tenant.tokens_per_minute, tenant.max_tokens) == (2, 5000, 256)
    assert tenant.weight == 2 and tenant.models == ("smollm2", "tiny") and tenant.admin

    second = ishan("infer", "tenants", "add", "team-b", "--file", str(path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() != key
    listed = ishan("infer", "tenants", "list", "--file", str(path))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "KEYS",
        "SESSIONS",
        "TOKENS/MIN",
        "MAX_TOKENS",
        "WEIGHT",
        "MODELS",
        "CACHE",
    ]
    assert lines[1].split() == [
        "team-a",
        "(admin)",
        "1",
        "2",
        "5000",
        "256",
        "2",
        "smollm2,tiny",
        "own",
    ]
    assert lines[2].split() == ["team-b", "1", "-", "-", "-", "1", "all", "own"]
    assert key not in listed.stdout and "sha256" not in listed.stdout

    again = ishan("infer", "tenants", "add", "team-a", "--file", str(path))
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [
        f"error: tenant 'team-a' is in {path} already: remove it first"
    ]
    removed = ishan("infer", "tenants", "remove", "team-a", "--file", str(path))
    assert removed.returncode == 0, removed.stderr
    assert [t.name for t in load(path)] == ["team-b"]
    missing = ishan("infer", "tenants", "remove", "team-a", "--file", str(path))
    assert missing.returncode != 0 and "no tenant 'team-a'" in missing.stderr


def test_a_coordinator_refuses_a_broken_tenants_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text('[tenants.a]\nkeys = ["plain-key"]\n')
    started = ishan("infer", "coordinator", "--port", "0", "--api-key", "c", "--tenants", str(path))
    assert started.returncode != 0
    assert (
        started.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {path}: tenants.a.keys[0] is not a SHA-256 hash")
    )
    keyless = ishan("infer", "coordinator", "--port", "0", "--tenants", str(path))
    assert keyless.returncode != 0 and "--tenants needs --api-key" in keyless.stderr


def test_a_tenant_may_use_only_the_model_that_would_answer(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    save(path, [Tenant("a", (DIGEST,), models=("beta",))])
    gate = Gate(path)
    (tenant,) = gate.book.tenants
    gate.check_model(tenant, "beta", "beta")
    gate.check_model(tenant, "beta", None)  # no worker has reported yet: the name asked
    # while only "alpha" is served, any name means it, "beta" too: still not this tenant's
    with pytest.raises(UnknownModel):
        gate.check_model(tenant, "beta", "alpha")
    with pytest.raises(UnknownModel):
        gate.check_model(tenant, "gamma", None)
    assert gate.usage_of(tenant).refusals == {"model": 2}
