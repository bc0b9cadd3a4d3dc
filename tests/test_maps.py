"""A map of the space: project (PCA against NumPy's SVD, UMAP when umap-learn is installed),
plot (matplotlib) and export_projector (the Embedding Projector's three files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vecstore
from vecstore.maps import OTHER, groups


@pytest.fixture
def coll(db, rng):
    centres = rng.standard_normal((25, 8))
    y = rng.integers(0, 25, 400)
    x = (centres[y] + 0.5 * rng.standard_normal((400, 8))).astype(np.float32)
    c = db.create_collection("c", dim=8)
    for lo in range(0, 400, 150):  # segments and pending rows
        c.add(
            [f"p{i}" for i in range(lo, min(lo + 150, 400))],
            vectors=x[lo : lo + 150],
            documents=[
                f"line {i}\twith a tab\nand a newline" for i in range(lo, min(lo + 150, 400))
            ],
            metadata=[{"g": f"g{v}", "odd": i % 2} for i, v in enumerate(y[lo : lo + 150], lo)],
        )
    c.delete(["p3"])
    return c, x, y


def test_pca_matches_numpy_svd(coll):
    c, x, _ = coll
    keep = [i for i in range(400) if i != 3]
    u = x[keep] / np.linalg.norm(x[keep], axis=1, keepdims=True)  # cosine: unit length
    centred = u - u.mean(axis=0)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    want = centred @ vt[:3].T
    proj = c.project(3)
    assert proj.ids == [f"p{i}" for i in keep] and proj.coords.shape == (399, 3)
    for j in range(3):  # an axis's sign is a convention
        sign = np.sign(np.dot(proj.coords[:, j], want[:, j]))
        np.testing.assert_allclose(proj.coords[:, j], sign * want[:, j], atol=1e-4)
    np.testing.assert_allclose(proj.explained, (s**2 / (s**2).sum())[:3], rtol=1e-4)
    again = c.project(3)
    np.testing.assert_array_equal(again.coords, proj.coords)  # the same map every run
    odd = c.project(where={"odd": 1}, sample=50, seed=1)
    assert len(odd) == 50 and all(int(i[1:]) % 2 for i in odd.ids)
    assert odd.ids == c.project(where={"odd": 1}, sample=50, seed=1).ids


def test_project_rejects_bad_arguments(coll):
    c, _, _ = coll
    with pytest.raises(vecstore.InvalidInput, match="method"):
        c.project(method="tsne")
    with pytest.raises(vecstore.InvalidInput, match="dims"):
        c.project(9)
    with pytest.raises(vecstore.InvalidInput, match=".png or .svg"):
        c.plot("map.jpg")


def test_groups_keep_at_most_twenty_colours():
    values = [f"v{i}" for i in range(30) for _ in range(30 - i)] + [None]
    entries, legend = groups(values)
    assert len(legend) == 20 and legend[-1] == OTHER and legend[0] == "v0"
    assert entries[-1] == OTHER and entries.count(OTHER) == sum(range(1, 12)) + 1
    few, legend = groups(["a", "b", "a"])
    assert legend == ["a", "b"] and few == ["a", "b", "a"]


def test_plot_writes_png_and_svg(coll, tmp_path):
    pytest.importorskip("matplotlib", reason="pip install 'vecstore[plot]'")
    c, _, _ = coll
    png = c.plot(tmp_path / "m.png", color_by="g", label_by="odd", annotate=5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = c.plot(tmp_path / "m.svg", color_by="g", title="a map")
    text = svg.read_text()
    assert "<svg" in text and "other (" in text and "a map" in text


def test_export_projector_files(coll, tmp_path):
    c, x, _ = coll
    config = c.export_projector(tmp_path / "p", fields=["g", "document"], where={"odd": 0})
    emb = config["embeddings"][0]
    assert emb["tensorShape"] == [200, 8] and emb["tensorPath"] == "vectors.tsv"
    assert json.loads((tmp_path / "p" / "projector_config.json").read_text()) == config
    vectors = np.loadtxt(tmp_path / "p" / "vectors.tsv", delimiter="\t", dtype=np.float32)
    np.testing.assert_allclose(vectors, x[0::2], rtol=1e-6)
    lines = (tmp_path / "p" / "metadata.tsv").read_text().split("\n")
    assert lines[0] == "id\tg\tdocument" and lines[-1] == "" and len(lines) == 202
    first = lines[1].split("\t")
    assert first[0] == "p0" and first[2] == "line 0\\twith a tab\\nand a newline"
    default = c.export_projector(tmp_path / "q", sample=10)
    header = (tmp_path / "q" / "metadata.tsv").read_text().split("\n")[0]
    assert header == "id\tg\todd\tdocument" and default["embeddings"][0]["tensorShape"][0] == 10


def test_umap_projection(coll):
    pytest.importorskip("umap", reason="pip install 'vecstore[umap]'")
    c, _, y = coll
    proj = c.project(method="umap", sample=120, seed=0)
    assert proj.coords.shape == (120, 2) and np.isfinite(proj.coords).all()
    assert proj.explained is None and proj.method == "umap"
