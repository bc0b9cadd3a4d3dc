"""The documentation's code runs and matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import vecstore

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (block,) = python_blocks(ROOT / "README.md")
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("doc-") for line in lines)


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == [
        "pip install torch==2.13.0 && pip install -e '.[embed,demo]' && python -m vecstore.demo",
        "pip install torch==2.13.0 && pip install -e '.[embed,test]' && python -m pytest",
    ]
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_api_doc_names_every_public_error():
    text = (ROOT / "docs" / "api.md").read_text()
    errors = [
        n
        for n in vecstore.__all__
        if n.endswith(
            (
                "Error",
                "Found",
                "Exists",
                "Timeout",
                "Mismatch",
                "Input",
                "Filter",
                "Closed",
                "Dependency",
            )
        )
    ]
    for name in errors:
        if name != "VecstoreError":
            assert f"`{name}`" in text, name
