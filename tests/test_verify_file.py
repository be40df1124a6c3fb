"""``journal verify --file``: an export checked with no store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import journal
from journal.export import export_lines
from journal.keys import Keyring, SigningKey, generate_key
from journal.urls import open_store
from tests.cli_support import Invoke

pytest_plugins = ["tests.cli_fixtures"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEY = generate_key()


@pytest.fixture
def signed_export(tmp_path: Path) -> Path:
    store = open_store("memory://", keyring=Keyring(SigningKey.parse(KEY)))
    with journal.Journal(store, "tenant_files") as signed:
        handle = signed.create(flow="files", input={"n": 1})
        handle.start()
        handle.complete(2)
        path = tmp_path / "signed.jsonl"
        path.write_bytes(b"".join(export_lines(signed, handle.id)))
    return path


def edit_header(path: Path, **fields: object) -> Path:
    header, *rest = path.read_text().splitlines(keepends=True)
    data = json.loads(header)
    data.update(fields)
    edited = path.with_name(f"edited-{path.name}")
    edited.write_text(json.dumps(data) + "\n" + "".join(rest))
    return edited


@pytest.mark.parametrize(
    ("name", "binding"),
    [("child_execution.jsonl", "v2 binding"), ("legacy_step_ended.jsonl", "v1")],
)
def test_verify_file_checks_an_export_of_either_format_without_a_store(
    invoke: Invoke, workdir: Path, name: str, binding: str
) -> None:
    result = invoke("verify", "--file", str(FIXTURES / name))
    assert result.exit_code == 0, result.output
    assert binding in result.output
    assert list(workdir.iterdir()) == []  # no store was created


def test_verify_file_names_the_line_of_a_tampered_export(invoke: Invoke) -> None:
    result = invoke("verify", "--file", str(FIXTURES / "tampered.jsonl"))
    assert result.exit_code == 6
    assert "tampered.jsonl:7" in result.output
    assert "chain broken at seq 6" in result.output


def test_verify_file_checks_the_mac_only_with_the_key(
    invoke: Invoke, signed_export: Path
) -> None:
    key_id = SigningKey.parse(KEY).key_id
    keyless = invoke("verify", "--file", str(signed_export))
    assert keyless.exit_code == 0, keyless.output
    assert f"MAC not checked (key {key_id})" in keyless.output
    keyed = invoke(
        "verify", "--file", str(signed_export), env={"JOURNAL_SIGNING_KEY": KEY}
    )
    assert keyed.exit_code == 0, keyed.output
    assert f"MAC checked (key {key_id})" in keyed.output


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"tenant_id": "tenant_other"}, "tenant_id"),
        ({"flow": "other"}, "flow"),
        ({"state": "Cancelled"}, "state"),
        ({"head_mac": "00" * 32}, "head MAC"),
    ],
)
def test_verify_file_refuses_an_edited_header(
    invoke: Invoke, signed_export: Path, fields: dict[str, object], names: str
) -> None:
    edited = edit_header(signed_export, **fields)
    result = invoke("verify", "--file", str(edited), env={"JOURNAL_SIGNING_KEY": KEY})
    assert result.exit_code == 6, result.output
    assert names in result.output
