"""The README's async example runs as printed (a user copies it verbatim)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Async flows, concurrent steps and threads"


def test_the_readme_async_example_prints_what_its_comment_says(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    code = found.group(1)
    promised = re.search(r"# (\d+ ok)\n", code)
    assert promised is not None

    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == promised.group(1)
