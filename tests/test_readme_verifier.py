"""The README's stand-alone verifier runs, as printed, on real exports:
today's (journal-export/2, chain v2), a first-round one (journal-export/1),
a signed one, and a tampered one (refused)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import journal
from journal.export import export_lines
from journal.keys import Keyring, SigningKey, generate_key
from journal.urls import open_store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def readme_verifier() -> str:
    """The python block after "A stand-alone verifier" in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("A stand-alone verifier", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def run_verifier(tmp_path: Path, export: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify_export.py"
    script.write_text(readme_verifier(), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(export)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "name", ["child_execution.jsonl", "clean_current.jsonl", "legacy_step_ended.jsonl"]
)
def test_the_readme_verifier_accepts_exports_of_both_formats(
    tmp_path: Path, name: str
) -> None:
    result = run_verifier(tmp_path, FIXTURES / name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_the_readme_verifier_checks_a_signed_export_without_the_key(
    tmp_path: Path,
) -> None:
    store = open_store("memory://", keyring=Keyring(SigningKey.parse(generate_key())))
    with journal.Journal(store, "tenant_readme") as signed:
        handle = signed.create(flow="readme", input={"n": 1})
        handle.start()
        handle.complete(2)
        export = tmp_path / "signed.jsonl"
        export.write_bytes(b"".join(export_lines(signed, handle.id)))
    assert b'"key_id":null' not in export.read_bytes()
    result = run_verifier(tmp_path, export)
    assert result.returncode == 0, result.stderr


def test_the_readme_verifier_refuses_a_tampered_export(tmp_path: Path) -> None:
    result = run_verifier(tmp_path, FIXTURES / "tampered.jsonl")
    assert result.returncode != 0
    assert "bad seq 6" in result.stderr
