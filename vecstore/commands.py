"""The commands of the ``vecstore`` command line (``cli.py`` parses the arguments).

Each command takes the parsed arguments, works through the public API only (``vecstore.open``,
``Database``, ``Collection``, the encoders), prints tables for people or JSON for programs, and
returns the exit code. Raises ``UsageError`` for a command line that cannot work.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import re
import shutil
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import vecstore
from vecstore import encoders
from vecstore.encoders import identity_of

EXIT_OK, EXIT_USAGE, EXIT_DATA = 0, 1, 2
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class UsageError(Exception):
    """The command line is wrong (exit code 1)."""


def _open(args: argparse.Namespace, *, write: bool = False, create: bool = False):
    return vecstore.open(
        args.store,
        read_only=not write,
        create=create,
        lock_timeout=args.lock_timeout,
        progress=not args.quiet,
    )


def resolve_encoder(value: str | None) -> Any:
    """An encoder from ``--encoder``: a model name or path, or ``module:function``."""
    if value is None or not _CALLABLE.fullmatch(value) or Path(value).exists():
        return value
    module, _, name = value.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--encoder {value}: cannot import it ({exc})") from None
    if isinstance(fn, encoders.Encoder):
        return fn
    if not callable(fn):
        raise UsageError(f"--encoder {value}: not a callable")
    declared = identity_of(fn)
    if declared is None:
        raise UsageError(
            f"--encoder {value}: the function has no version; decorate it with "
            "@vecstore.encoders.named('name', version='1'), or point at an Encoder object"
        )
    # the name is what to pass again (--encoder module:function); the version, the function's
    return encoders.CallableEncoder(fn, name=value, version=declared[1])


def _collection(db: vecstore.Database, args: argparse.Namespace, *, embeds: bool = False):
    """The collection named on the command line; ``embeds`` if the command will embed text,
    which a collection made with a callable encoder can only do given --encoder again.
    ``args.encoder`` was resolved by ``resolve_encoder`` before the store was opened."""
    encoder = getattr(args, "encoder", None)
    coll = db.get_collection(args.collection, encoder=encoder)
    if embeds and encoder is None:
        spec = coll.info().encoder
        if spec is not None and spec["kind"] == "callable":
            raise UsageError(
                f"collection {coll.name!r} embeds with the Python callable {spec['model']!r}, "
                f"which is not stored: pass it again with --encoder {spec['model']}"
            )
    return coll


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(printable(message))


def _emit(data: Any) -> None:
    """Print ``data`` as JSON: exact, with what is not printable as ``\\u`` escapes."""
    text = json.dumps(data, ensure_ascii=False, indent=None)
    if not text.isprintable():  # such characters occur only inside JSON strings
        text = "".join(ch if _shown(ch) else _json_escape(ch) for ch in text)
    print(text)


def _json_escape(ch: str) -> str:
    cp = ord(ch)
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    cp -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _shown(ch: str) -> bool:
    """Whether a character may reach the terminal as it is: what Python prints, spaces,
    and the joiners that emoji and several scripts need; not controls (escape sequences),
    bidirectional overrides, other format characters or unassigned code points."""
    return ch.isprintable() or ch in "\u200c\u200d" or unicodedata.category(ch) == "Zs"


def printable(text: str) -> str:
    """``text`` with every character not ``_shown`` written as a Python escape (``\\x1b``,
    ``\\u202e``), so stored text can neither drive the terminal nor disguise what surrounds
    it. (A backslash stays as it is.)"""
    if text.isprintable():
        return text
    return "".join(ch if _shown(ch) else repr(ch)[1:-1] for ch in text)


def _one_line(value: Any) -> str:
    """A table cell: whitespace runs become one space, and the rest is ``printable``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return printable(" ".join(text.split()))


def _table(headers: list[str], rows: list[list[str]], *, wide: int | None = None) -> None:
    """Print left-aligned columns; column ``wide`` takes the room the terminal has left."""
    rows = [[_one_line(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if wide is not None:
        room = shutil.get_terminal_size((100, 24)).columns - sum(
            w + 2 for i, w in enumerate(widths) if i != wide
        )
        widths[wide] = max(20, min(widths[wide], room))
    for r in [headers, *rows]:
        cells = [(c if len(c) <= w else c[: w - 1] + "\u2026").ljust(w) for c, w in zip(r, widths)]
        print("  ".join(cells).rstrip())


def _meta_columns(keys: list[str] | None, metadata: list[dict]) -> list[list[str]]:
    return [[_one_line(m.get(k, "")) for k in keys or ()] for m in metadata]


# -- commands --------------------------------------------------------------------------------


def ingest(args: argparse.Namespace) -> int:
    if args.chunk_overlap >= args.chunk_size:
        raise UsageError(
            f"--chunk-overlap ({args.chunk_overlap}) must be smaller than --chunk-size "
            f"({args.chunk_size})"
        )
    t = time.perf_counter()
    with _open(args, write=True, create=True) as db:
        try:
            coll = _collection(db, args, embeds=True)
        except vecstore.CollectionNotFound:
            encoder = args.encoder or DEFAULT_ENCODER
            coll = db.create_collection(
                args.collection, metric=args.metric, encoder=encoder, language=args.language
            )
        result = coll.ingest(
            args.paths,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
            chunk_unit=args.chunk_unit,
            text_field=args.text_field,
            id_field=args.id_field,
            metadata_fields=args.metadata_fields,
            encoding=args.encoding,
            batch_size=args.batch_size,
        )
        total = coll.count()
    seconds = time.perf_counter() - t
    if args.json:
        _emit({**result.to_dict(), "count": total, "seconds": round(seconds, 3)})
    else:
        _say(
            args,
            f"{args.collection}: {_n(result.files, 'file')} ({result.new} new, "
            f"{result.changed} changed, {result.unchanged} unchanged): "
            f"{_n(result.rows_written, 'row')} written, {_n(result.rows_deleted, 'stale row')} "
            f"deleted, {_n(total, 'row')} in all ({seconds:.1f} s)",
        )
    return EXIT_OK


def _vector_or(text: str) -> Any:
    """A JSON array of numbers as a list, else the text itself."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        except RecursionError:
            raise UsageError(
                "QUERY nests too deeply: a vector is a flat JSON array of numbers"
            ) from None
        if isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return value
    return text


def _query_input(args: argparse.Namespace) -> Any:
    return _vector_or(sys.stdin.read().strip() if args.query == "-" else args.query)


def query(args: argparse.Namespace) -> int:
    q = _query_input(args)
    with _open(args) as db:
        coll = _collection(db, args, embeds=isinstance(q, str) and args.mode != "text")
        run = coll.explain if args.explain else coll.query
        res = run(
            q,
            k=args.k,
            where=args.where,
            where_document=args.where_document,
            mode=args.mode,
            text=args.text,
            fusion=args.fusion,
            rrf_k=args.rrf_k,
            weight=args.weight,
            nprobe=args.nprobe,
            refine=args.refine,
            exact=args.exact,
            exclude_ids=args.exclude,
            ef=args.ef,
        )
    plan = None
    if args.explain:
        plan, res = res, res.result
    if args.json:
        _emit(res.to_list() if plan is None else {**plan.to_dict(), "result": res.to_list()})
        return EXIT_OK
    _hits(args, res)
    if plan is not None:
        print()
        for line in str(plan).splitlines():
            print(printable(line))
    return EXIT_OK


def _hits(args: argparse.Namespace, res: Any) -> None:
    rows = [
        [str(i + 1), f"{h.score:.4f}", h.id, h.document or "", *extra]
        for i, (h, extra) in enumerate(zip(res, _meta_columns(args.show, res.metadata)))
    ]
    _table(["#", "score", "id", "document", *(args.show or [])], rows, wide=3)


def cluster(args: argparse.Namespace) -> int:
    with _open(args, write=args.write_to is not None) as db:
        coll = _collection(db, args)
        res = coll.cluster(
            args.k, where=args.where, seed=args.seed, max_iter=args.max_iter,
            write_to=args.write_to,
        )  # fmt: skip
        firsts = [res.members(j)[:3] for j in range(args.k)]
    if args.json:
        data = res.to_dict()
        del data["centroids"]
        _emit({**data, "sizes": res.sizes.tolist()})
        return EXIT_OK
    rows = [[str(j), str(n), ", ".join(f)] for j, (n, f) in enumerate(zip(res.sizes, firsts))]
    _table(["cluster", "size", "first rows"], rows, wide=2)
    stored = f"; labels stored under {args.write_to!r}" if args.write_to else ""
    _say(
        args,
        f"{_n(len(res), 'row')} in {args.k} clusters after {_n(res.iterations, 'iteration')}, "
        f"inertia {res.inertia:.6g}{stored}",
    )
    return EXIT_OK


def classify(args: argparse.Namespace) -> int:
    if args.evaluate == bool(args.queries):
        raise UsageError("classify needs queries, or --evaluate (not both)")
    if args.holdout is not None and not args.evaluate:
        raise UsageError("--holdout goes with --evaluate")
    opts = {"label": args.label, "k": args.k, "weights": args.weights, "where": args.where}
    if args.evaluate:
        with _open(args) as db:
            report = _collection(db, args).evaluate_classifier(**opts, holdout=args.holdout)
        if args.json:
            _emit(report.to_dict())
        else:
            print(
                f"{report.method}: accuracy {report.accuracy:.4f} over {_n(report.rows, 'row')}"
                f", macro F1 {report.macro_f1:.4f}, {_n(len(report.classes), 'label')}"
            )
        return EXIT_OK
    queries = [_vector_or(q) for q in args.queries]
    vectors = [q for q in queries if not isinstance(q, str)]
    if args.ids and vectors:
        raise UsageError("with --ids every query is an id, not a vector")
    if vectors and len(vectors) != len(queries):
        raise UsageError("give texts or vectors, not both")
    with _open(args) as db:
        coll = _collection(db, args, embeds=not args.ids and not vectors)
        if args.ids:
            res = coll.classify(ids=queries, **opts)
        else:
            res = coll.classify(vectors or queries, **opts)
    if args.json:
        _emit(res.to_list())
        return EXIT_OK
    rows = []
    for q, p in zip(args.queries, res):
        share = p.shares.get(p.label, 0.0)
        rows.append([_one_line(q), _one_line(p.label), f"{share:.2f}"])
    _table(["query", args.label, "share"], rows, wide=0)
    return EXIT_OK


def recommend(args: argparse.Namespace) -> int:
    positive = [_vector_or(e) for e in args.positive]
    negative = [_vector_or(e) for e in args.negative]
    with _open(args) as db:
        res = _collection(db, args).recommend(
            positive or None, negative or None, k=args.k, where=args.where,
            strategy=args.strategy,
        )  # fmt: skip
    if args.json:
        _emit(res.to_list())
        return EXIT_OK
    _hits(args, res)
    return EXIT_OK


def duplicates(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix not in (".jsonl", ".csv"):
        raise UsageError(f"--output {args.output}: expected a .jsonl or .csv file name")
    with _open(args) as db:
        res = _collection(db, args).duplicates(args.threshold, where=args.where, k=args.k)
    if out is not None:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            if out.suffix == ".csv":
                writer = csv.writer(fh)
                writer.writerow(["id_a", "id_b", "score"])
                writer.writerows(res)
            else:
                for row in res.to_list():
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        _say(args, f"wrote {_n(len(res), 'pair')} to {out}")
    elif args.json:
        _emit(res.to_list())
    else:
        _table(["id_a", "id_b", "score"], [[a, b, f"{s:.4f}"] for a, b, s in res])
        _say(args, f"{_n(len(res), 'pair')} at or above {args.threshold}")
    return EXIT_OK


def analogy(args: argparse.Namespace) -> int:
    if (args.evaluate is None) == (len(args.words) != 3):
        raise UsageError("analogy takes three words A B C, or --evaluate (not both)")
    with _open(args) as db:
        coll = _collection(db, args)
        if args.evaluate is not None:
            path = None if args.evaluate == "google" else args.evaluate
            report = coll.evaluate_analogies(path, method=args.method, where=args.where)
        else:
            res = coll.analogy(*args.words, k=args.k, method=args.method, where=args.where)
    if args.evaluate is None:
        if args.json:
            _emit(res.to_list())
        else:
            _table(
                ["#", "score", "id"],
                [[str(i + 1), f"{h.score:.4f}", h.id] for i, h in enumerate(res)],
            )
        return EXIT_OK
    if args.json:
        _emit(report.to_dict())
        return EXIT_OK
    rows = [[s.name, str(s.total), str(s.skipped), f"{s.accuracy:.4f}"] for s in report.sections]
    rows.append(["overall", str(report.total), str(report.skipped), f"{report.accuracy:.4f}"])
    _table(["section", "answered", "skipped", "accuracy"], rows)
    return EXIT_OK


def most_similar(args: argparse.Namespace) -> int:
    positive = [_vector_or(e) for e in args.positive]
    negative = [_vector_or(e) for e in args.negative]
    with _open(args) as db:
        res = _collection(db, args).most_similar(
            positive or None, negative or None, k=args.k, where=args.where
        )
    if args.json:
        _emit(res.to_list())
        return EXIT_OK
    _hits(args, res)
    return EXIT_OK


def map_(args: argparse.Namespace) -> int:
    with _open(args) as db:
        path = _collection(db, args).plot(
            args.output, color_by=args.color_by, method=args.method, where=args.where,
            sample=args.sample, seed=args.seed, annotate=args.annotate,
            label_by=args.label_by, title=args.title,
        )  # fmt: skip
    _say(args, f"wrote {path}")
    return EXIT_OK


def projector(args: argparse.Namespace) -> int:
    with _open(args) as db:
        config = _collection(db, args).export_projector(
            args.folder, fields=args.fields, where=args.where, sample=args.sample,
            seed=args.seed,
        )  # fmt: skip
    if args.json:
        _emit(config)
        return EXIT_OK
    rows, dim = config["embeddings"][0]["tensorShape"]
    _say(args, f"wrote {_n(rows, 'row')} of dim {dim} to {args.folder}: open "
         "projector.tensorflow.org, Load, and choose vectors.tsv and metadata.tsv")  # fmt: skip
    return EXIT_OK


def get(args: argparse.Namespace) -> int:
    if args.vectors and not args.json:
        raise UsageError("--vectors needs --json")
    with _open(args) as db:
        coll = _collection(db, args)
        got = coll.get(
            args.ids or None,
            where=args.where,
            where_document=args.where_document,
            limit=args.limit,
            offset=args.offset,
            include_vectors=args.vectors,
        )
    if args.json:
        _emit(got.to_list())
        return EXIT_OK
    rows = [
        [i, d or "", *extra]
        for i, d, extra in zip(got.ids, got.documents, _meta_columns(args.show, got.metadata))
    ]
    _table(["id", "document", *(args.show or [])], rows, wide=1)
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    if not args.ids and args.where is None:
        raise UsageError("delete needs ids, --where, or both ('{}' matches every row)")
    with _open(args, write=True) as db:
        n = _collection(db, args).delete(args.ids or None, where=args.where)
    _say(args, f"{args.collection}: deleted {_n(n, 'row')}")
    return EXIT_OK


def _info_row(info: Any) -> list[str]:
    enc = info.encoder["model"] if info.encoder else "-"
    return [
        info.name,
        str(info.count),
        str(info.dim),
        info.metric,
        enc,
        info.index,
        _size(info.disk_bytes),
    ]


INFO_HEADERS = ["name", "count", "dim", "metric", "encoder", "index", "disk"]


def collections_list(args: argparse.Namespace) -> int:
    with _open(args) as db:
        infos = [db.get_collection(name).info() for name in db.list_collections()]
    if args.json:
        _emit([i.to_dict() for i in infos])
    elif infos:
        _table(INFO_HEADERS, [_info_row(i) for i in infos])
    else:
        _say(args, f"no collections in {args.store}")
    return EXIT_OK


def collections_create(args: argparse.Namespace) -> int:
    if (args.dim is None) == (args.encoder is None):
        raise UsageError("collections create needs exactly one of --dim and --encoder")
    encoder = args.encoder
    if args.backend != "torch" or args.quantize is not None:
        if not isinstance(encoder, str):
            raise UsageError("--backend and --quantize need --encoder naming a model")
        if args.quantize is not None and (args.backend, args.quantize) not in (
            ("onnx", "int8"), ("openvino", "int8"), ("openvino", "bf16"),
        ):  # fmt: skip
            raise UsageError(f"--quantize {args.quantize} does not apply to --backend "
                             f"{args.backend}")  # fmt: skip
        encoder = encoders.SentenceTransformerEncoder(
            encoder, backend=args.backend, quantize=args.quantize
        )
    with _open(args, write=True, create=True) as db:
        coll = db.create_collection(
            args.name,
            dim=args.dim,
            metric=args.metric,
            encoder=encoder,
            index=args.index,
            language=args.language,
            vectors=args.vectors,
        )
        _say(args, f"created {coll!r}")
    return EXIT_OK


def collections_index(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        coll = db.get_collection(args.name)
        coll.create_index(args.spec)
        info = coll.index_info()
    if info["trained"] and info["kind"] == "hnsw":
        state = f"graphs built, M={info['M']}, ef_search={info['ef_search']}"
    elif info["trained"]:
        state = f"trained, nlist={info['nlist']}, nprobe={info['nprobe']}"
    else:
        state = "exact search" if info["kind"] == "flat" else "to be trained when large enough"
    _say(args, f"collection {args.name!r} index {info['kind']} ({state})")
    return EXIT_OK


def collections_drop(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        db.delete_collection(args.name)
    _say(args, f"dropped collection {args.name!r}")
    return EXIT_OK


def collections_info(args: argparse.Namespace) -> int:
    with _open(args) as db:
        info = db.get_collection(args.name).info()
    if args.json:
        _emit(info.to_dict())
        return EXIT_OK
    data = info.to_dict()
    data["disk_bytes"] = f"{info.disk_bytes} ({_size(info.disk_bytes)})"
    data["encoder"] = "-" if info.encoder is None else _one_line(info.encoder)
    width = max(map(len, data))
    for key, value in data.items():
        print(printable(f"{key.ljust(width)}  {value}"))
    return EXIT_OK


def compact(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        for name in args.collections or db.list_collections():
            coll = db.get_collection(name)
            before = coll.info()
            coll.compact()
            after = coll.info()
            _say(
                args,
                f"{name}: {_n(before.segments, 'segment')} + {before.pending} pending, "
                f"{_size(before.disk_bytes)} -> {_n(after.segments, 'segment')}, "
                f"{_size(after.disk_bytes)} ({_n(before.deleted, 'deleted vector')} dropped)",
            )
    return EXIT_OK


def verify(args: argparse.Namespace) -> int:
    restore = args.restore_quarantine
    with _open(args, write=restore) as db:
        restored = db.restore_quarantine() if restore else None
        report = db.verify()
    if args.json:
        _emit(report.to_dict() | ({"quarantine": restored.to_dict()} if restored else {}))
    else:
        if restored is not None:
            _say(
                args,
                f"restored {_n(len(restored.restored), 'file')} from quarantine; "
                f"{_n(len(restored.remaining), 'file')} no catalog row names stayed there",
            )
        for line in report.problems:
            print(printable(f"vecstore verify: {line}"), file=sys.stderr)
        for line in report.warnings:
            _say(args, f"warning: {line}")
        state = "ok" if report.ok else f"{_n(len(report.problems), 'problem')} found"
        _say(
            args,
            f"{state}: {_n(report.collections, 'collection')}, "
            f"{_n(report.segments, 'segment')} ({_size(report.bytes)} checksummed), "
            f"{_n(report.rows, 'row')} checked",
        )
    return EXIT_OK if report.ok else EXIT_DATA


def clear_cache(args: argparse.Namespace) -> int:
    with _open(args, write=True) as db:
        removed = db.clear_embedding_cache()
    _say(args, f"deleted {_n(removed, 'cached embedding')}")
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    if args.output == "-" and args.format == "parquet":
        raise UsageError("Parquet needs a file name, not stdout")
    with _open(args) as db:
        coll = db.get_collection(args.collection)
        dest = sys.stdout.buffer if args.output == "-" else args.output
        info = coll.export(dest, format=args.format)
    if args.output != "-":
        _say(
            args,
            f"exported {_n(info.rows, 'row')} of {info.collection!r} to {args.output} "
            f"({info.format})",
        )
    return EXIT_OK


def import_(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.from_chroma is None):
        raise vecstore.InvalidInput(
            "import takes an export file or --from-chroma PATH (one of them)"
        )
    if args.from_chroma is not None:
        from vecstore.compat.chroma import migrate

        with _open(args, write=True, create=True) as db:
            moved = migrate(args.from_chroma, db, upsert=args.upsert)
        for name, rows in moved.items():
            _say(args, f"imported {_n(rows, 'row')} into {name!r} (chroma)")
        return EXIT_OK
    with _open(args, write=True, create=True) as db:
        source = sys.stdin.buffer if args.input == "-" else args.input
        info = db.import_collection(
            source,
            name=args.name,
            format=args.format,
            if_exists="upsert" if args.upsert else "error",
        )
    _say(args, f"imported {_n(info.rows, 'row')} into {info.collection!r} ({info.format})")
    return EXIT_OK


def backup(args: argparse.Namespace) -> int:
    t = time.perf_counter()
    with _open(args) as db:
        info = db.backup(args.dest)
    _say(
        args,
        f"backed up {_n(info.collections, 'collection')}, {_n(info.segments, 'segment')} "
        f"({_size(info.bytes)}) to {info.path} in {time.perf_counter() - t:.1f} s",
    )
    if not args.no_verify:
        with vecstore.open(args.dest, read_only=True) as copy:
            report = copy.verify()
        for line in report.problems:
            print(
                printable(f"vecstore backup: the copy fails verification: {line}"),
                file=sys.stderr,
            )
        if not report.ok:
            return EXIT_DATA
        _say(
            args,
            f"verified the copy: {_n(report.rows, 'row')}, {_n(report.segments, 'segment')}",
        )
    return EXIT_OK
