"""The documentation's code runs and matches the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

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
        "apt-get install -y wordnet-base && pip install torch==2.13.0 && "
        "pip install -e '.[embed,demo]' && python -m vecstore.demo",
        "pip install torch==2.13.0 && pip install -e '.[embed,test]' && python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci
    assert ci.index("apt-get install -y -q wordnet-base") < ci.index("pip install")
    # the main job's command runs a module that exists, with the defaults the README describes
    from vecstore import demo

    assert demo.DEFAULT_SIZE == 2500 and "2,500 WordNet glosses" in text


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'\[project\.scripts\]\nvecstore = "vecstore\.cli:main"', text)


def test_cli_examples_in_the_docs_parse():
    """Every ``vecstore ...`` line of the README and docs/cli.md is a valid command line."""
    from vecstore import cli

    parser = cli.build_parser()
    lines = []
    for path in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.splitlines():
                for command in line.split("&&"):
                    if command.strip().startswith("vecstore "):
                        lines.append(command.strip())
    assert len(lines) >= 8
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.command and callable(args.run), line


def test_cli_reference_is_generated_from_help():
    """docs/cli.md's reference is every command's --help; regenerate it with
    ``python -m vecstore.cli --markdown docs/cli.md``."""
    from vecstore import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    assert cli.DOCS_MARKER in text
    generated = text.split(cli.DOCS_MARKER, 1)[1].lstrip("\n")
    made_with = re.search(r"<!-- (Python \d+\.\d+) -->", generated).group(1)
    if made_with != cli.python_version():
        pytest.skip(f"docs/cli.md was generated under {made_with}; argparse's layout differs")
    assert generated == cli.markdown(), (
        "docs/cli.md is out of date: run python -m vecstore.cli --markdown docs/cli.md"
    )
    for command in ("ingest", "query", "get", "delete", "collections list", "collections create",
                    "collections drop", "collections info", "compact", "verify", "export",
                    "import", "backup"):  # fmt: skip
        assert f"### `vecstore {command}`" in generated


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
