"""Signing keys: parsing, rotation, a wrong or missing key, unsigned writes
into a signed store, and key bytes never shown."""

from __future__ import annotations

import base64
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import journal
from journal.errors import SigningKeyError
from journal.keys import Keyring, SigningKey, generate_key
from journal.urls import open_store
from tests.cli_support import Invoke
from tests.conftest import isolated_url, new_tenant

pytest_plugins = ["tests.cli_fixtures"]

KEYS = [generate_key() for _ in range(3)]


def keyring(current: str | None, *older: str, allow: bool = False) -> Keyring:
    return Keyring(
        SigningKey.parse(current) if current else None,
        tuple(SigningKey.parse(k) for k in older),
        allow,
    )


def key_id(key: str) -> str:
    return SigningKey.parse(key).key_id


def open_at(url: str, tenant: str, ring: Keyring) -> journal.Journal:
    return journal.Journal(open_store(url, keyring=ring), tenant)


@pytest.fixture
def url(sql_backend: str, tmp_path: Path) -> str:
    return isolated_url(sql_backend, tmp_path)


def test_keys_rotate_across_three_keys(url: str) -> None:
    tenant = new_tenant()
    with open_at(url, tenant, keyring(KEYS[0])) as first:
        a = first.create(flow="rotating", input=None)
        a.start()
    with open_at(url, tenant, keyring(KEYS[1], KEYS[0])) as second:
        assert second.summary(a.id).key_id == key_id(KEYS[0])
        second.verify(a.id)  # the older key still verifies
        second.handle(a.id).complete(1)  # appending re-signs with the new key
        assert second.summary(a.id).key_id == key_id(KEYS[1])
        b = second.create(flow="rotating", input=None)
    with open_at(url, tenant, keyring(KEYS[2], KEYS[1], KEYS[0])) as third:
        assert third.verify(a.id)[0] == 3
        assert third.verify(b.id)[0] == 1
        c = third.create(flow="rotating", input=None)
        assert third.summary(c.id).key_id == key_id(KEYS[2])
    with open_at(url, tenant, keyring(KEYS[2])) as retired:
        retired.verify(c.id)
        with pytest.raises(SigningKeyError, match=key_id(KEYS[1])):
            retired.verify(a.id)


def test_a_wrong_key_is_reported_as_a_missing_key_not_as_tampering(
    invoke: Invoke, url: str
) -> None:
    tenant = new_tenant()
    with open_at(url, tenant, keyring(KEYS[0])) as signed:
        execution_id = str(signed.create(flow="signed", input=None).id)
    with (
        open_at(url, tenant, keyring(KEYS[1])) as wrong,
        pytest.raises(SigningKeyError) as caught,
    ):
        wrong.verify(execution_id)
    assert f"signed with key {key_id(KEYS[0])}, which is not in the keyring" in str(
        caught.value
    )
    for env in ({"JOURNAL_SIGNING_KEY": KEYS[1]}, {}):  # a wrong key; no key
        result = invoke(
            "verify", execution_id, "--db", url, "--tenant", tenant, env=env
        )
        assert result.exit_code == 10, result.output
        assert "not in the keyring" in result.output
        assert "broken" not in result.output


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("ab" * 16, "at least 32 random bytes"),
        (base64.b64encode(b"k" * 31).decode(), "at least 32 random bytes"),
        ("not a key!", "neither hex nor base64"),
    ],
)
def test_an_empty_short_or_malformed_key_is_refused(
    invoke: Invoke, db: str, text: str, why: str
) -> None:
    with pytest.raises(SigningKeyError, match=why):
        Keyring.from_env({"JOURNAL_SIGNING_KEY": text})
    if text:  # an empty item of the older keys' list is a stray comma
        with pytest.raises(SigningKeyError, match=why):
            Keyring.from_env({"JOURNAL_SIGNING_KEYS": f"{KEYS[0]},{text}"})
    result = invoke("demo", "--db", db, env={"JOURNAL_SIGNING_KEY": text})
    assert result.exit_code == 10, result.output
    assert why in result.output


def test_hex_and_base64_keys_of_32_bytes_are_accepted() -> None:
    raw = bytes(range(32))
    by_hex = SigningKey.parse(raw.hex())
    assert SigningKey.parse(base64.b64encode(raw).decode()).key_id == by_hex.key_id
    assert SigningKey.parse(base64.urlsafe_b64encode(raw).decode()).key_id == (
        by_hex.key_id
    )
    assert len(by_hex.key_id) == 16


def test_unsigned_writes_into_a_signed_store_are_refused_unless_allowed(
    url: str,
) -> None:
    tenant = new_tenant()
    with open_at(url, tenant, keyring(KEYS[0])) as signed:
        a = signed.create(flow="signed", input=None)
    with open_at(url, tenant, Keyring()) as unsigned:
        with pytest.raises(SigningKeyError, match="store holds signed chains"):
            unsigned.create(flow="unsigned", input=None)
        with pytest.raises(SigningKeyError, match=f"signed with key {key_id(KEYS[0])}"):
            unsigned.handle(a.id).start()
    with open_at(url, tenant, keyring(None, allow=True)) as allowed:
        b = allowed.create(flow="unsigned", input=None)
        assert allowed.summary(b.id).key_id is None
    with (
        open_at(url, tenant, keyring(KEYS[0])) as keyed,
        pytest.raises(journal.ChainIntegrityError, match="unsigned"),
    ):
        keyed.verify(b.id)
    with open_at(url, tenant, keyring(KEYS[0], allow=True)) as accepting:
        assert accepting.verify(b.id)[0] == 1


def test_the_cli_refuses_an_unsigned_import_into_a_signed_store(
    invoke: Invoke, db: str, tmp_path: Path
) -> None:
    demo = invoke("demo", "--db", db, "--json")
    assert demo.exit_code == 0, demo.output
    listed = invoke("list", "--db", db, "--json")
    first = listed.stdout.split('"execution_id": "')[1].split('"')[0]
    export = tmp_path / "one.jsonl"
    assert invoke("export", first, "--db", db, "-o", str(export)).exit_code == 0
    signed_db = f"sqlite:///{tmp_path / 'signed.db'}"
    env = {"JOURNAL_SIGNING_KEY": KEYS[0]}
    assert invoke("demo", "--db", signed_db, env=env).exit_code == 0
    refused = invoke("import", str(export), "--db", signed_db)
    assert refused.exit_code == 10, refused.output
    assert "--allow-unsigned" in refused.output
    allowed = invoke("import", str(export), "--db", signed_db, "--allow-unsigned")
    assert allowed.exit_code == 0, allowed.output


def test_key_bytes_never_appear_in_reprs_messages_or_output(
    invoke: Invoke, db: str
) -> None:
    secret_hex = KEYS[0]
    secret = bytes.fromhex(secret_hex)
    key = SigningKey.parse(secret_hex)
    texts = [repr(key), str(key), repr(keyring(KEYS[0], KEYS[1]))]
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(key)
    texts.append(str(pickled.value))
    env = {"JOURNAL_SIGNING_KEY": secret_hex}
    for args in (
        ("demo", "--db", db),
        ("list", "--db", db),
        ("verify", "--all", "--db", db),
        ("list", "--db", db, "--json", "--verify"),
    ):
        result = invoke(*args, env=env)
        assert result.exit_code == 0, result.output
        texts.append(result.output)
    for bad in (secret_hex[:40], f"{secret_hex[:40]}!"):  # refused, even --debug
        result = invoke("list", "--db", db, "--debug", env={"JOURNAL_SIGNING_KEY": bad})
        assert result.exit_code == 10
        assert secret_hex[:20] not in result.output
    wrong = invoke("verify", "--all", "--db", db, env={"JOURNAL_SIGNING_KEY": KEYS[1]})
    assert wrong.exit_code == 10
    texts.append(wrong.output)
    joined = "\n".join(texts)
    assert key.key_id in joined  # the id is shown; the key never
    for form in (secret_hex, secret.hex().upper(), base64.b64encode(secret).decode()):
        assert form not in joined
        assert form[:16] not in joined


def test_a_generated_key_signs_and_verifies_through_the_console_script(
    run_script: Callable[..., subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    generated = run_script("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.strip()
    assert len(bytes.fromhex(key)) == 32
    assert f"key id {key_id(key)}" in generated.stderr
    assert run_script("init", "--db", "signed.db").returncode == 0
    demo = run_script("demo", "--db", "signed.db", JOURNAL_SIGNING_KEY=key)
    assert demo.returncode == 0, demo.stderr
    verified = run_script("verify", "--all", "--db", "signed.db",
                          JOURNAL_SIGNING_KEY=key)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    keyless = run_script("verify", "--all", "--db", "signed.db")
    assert keyless.returncode == 10
    assert key not in keyless.stdout + keyless.stderr + verified.stdout
    assert sorted(p.name for p in workdir.iterdir()) == ["signed.db"]


def test_a_key_id_of_any_text_is_looked_up_without_error() -> None:
    ring = keyring(KEYS[0])
    assert ring.find("é" * 16) is None
    assert ring.find(key_id(KEYS[0])) is ring.current
