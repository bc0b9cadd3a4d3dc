"""CLIPEncoder through its real loading path: a tiny CLIPModel with random weights and a
BPE tokenizer built here (no weights can be downloaded), saved to a folder and loaded from
it as a user's model would be. vecstore's vectors must equal the model's own features."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vecstore

pytest.importorskip("transformers")
pytest.importorskip("PIL")
torch = pytest.importorskip("torch")


def bytes_to_unicode() -> dict[int, str]:
    """The byte-to-character table of CLIP's (and GPT-2's) byte-level BPE."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += range(ord("®"), ord("ÿ") + 1)
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_tiny_clip(folder) -> None:
    """A CLIPModel (2 layers, 32 wide, 16-d projection, 32-pixel images) with random
    weights, and its processor: a byte-level BPE vocabulary with a few merges."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor  # no torchvision
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    chars = list(bytes_to_unicode().values())
    merges = ["c a", "ca t</w>", "d o", "do g</w>", "p h", "ph o", "pho t", "phot o</w>"]
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    n = len(vocab)
    text = dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    text |= dict(num_attention_heads=2, max_position_embeddings=77)
    text |= dict(bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    vision |= dict(num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    images = ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip")
    build_tiny_clip(folder)
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Three 48x40 images, as a .png, a .jpg and a .webp file, and their arrays."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    arrays = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    arrays[1][:] = arrays[1].mean(axis=(0, 1)).astype(np.uint8)  # a flat colour survives JPEG
    paths = [folder / name for name in ("a.png", "b.jpg", "c.webp")]
    for arr, path in zip(arrays, paths):
        Image.fromarray(arr).save(path, **({"lossless": True} if path.suffix == ".webp" else {}))
    return paths, arrays


def own_features(folder, texts=(), images=()):
    """The model's own get_text_features / get_image_features, L2-normalised."""
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from vecstore.encoders.clip import features

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(folder, local_files_only=True)
    with torch.inference_mode():
        out = []
        if texts:
            b = proc.tokenizer(list(texts), padding=True, return_tensors="pt")
            out.append(features(model.get_text_features(**b)))
        if images:
            pics = [Image.open(p).convert("RGB") for p in images]
            pixels = proc.image_processor(pics, return_tensors="pt")["pixel_values"]
            out.append(features(model.get_image_features(pixel_values=pixels)))
    return [torch.nn.functional.normalize(x, dim=1).numpy() for x in out]


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_images_and_texts_match_the_models_own_features(tiny_clip, pictures, tmp_path):
    from PIL import Image

    from vecstore.encoders import CLIPEncoder

    paths, arrays = pictures
    texts = ["a photo of a cat", "a dog"]
    want_text, want_images = own_features(tiny_clip, texts=texts, images=paths)
    path = tmp_path / "s"
    with vecstore.open(path, progress=False) as db:
        c = db.create_collection("pictures", encoder=CLIPEncoder(str(tiny_clip)))
        assert c.dim == 16 and c.encoder_spec.kind == "clip"
        # a path, a PIL image and an array: three ways to give an image
        given = [str(paths[0]), Image.open(paths[1]), np.asarray(Image.open(paths[2]))]
        c.add(["a", "b", "c"], images=given, documents=[p.name for p in paths])
        stored = c.get(["a", "b", "c"], include_vectors=True).vectors
        assert cosines(stored, want_images).min() >= 0.9999
        assert c.query(image=paths[2], k=1).ids == ["c"]
        assert c.query(image=arrays[0], k=1).ids == ["a"]
        got_text = c.encoder.encode(texts, kind="query")
        assert cosines(got_text, want_text).min() >= 0.9999
        hits = c.query(texts[0], k=3)  # text finds images: the scores are the model's
        np.testing.assert_allclose(
            sorted(hits.scores, reverse=True),
            sorted(want_images @ want_text[0], reverse=True),
            atol=1e-5,
        )
        c.add(["t"], documents=["a dog"])  # texts embed into the same space
    with vecstore.open(path, progress=False) as db:  # reopened: the encoder is rebuilt
        c = db.get_collection("pictures")
        assert len(c.encoder_spec.revision) == 64  # the weights' SHA-256
        assert c.query(image=paths[1], k=1).ids == ["b"]
        assert c.query("a dog", k=1).ids == ["t"]
        stored = c.get(["a", "b", "c"], include_vectors=True).vectors
        assert cosines(stored, want_images).min() >= 0.9999


def test_image_arguments_are_checked(tiny_clip, pictures, db):
    from vecstore.encoders import CLIPEncoder

    paths, _ = pictures
    c = db.create_collection("pictures", encoder=CLIPEncoder(str(tiny_clip)))
    with pytest.raises(vecstore.InvalidInput, match="2 images for 1 ids"):
        c.add(["a"], images=[paths[0], paths[1]])
    with pytest.raises(vecstore.InvalidInput, match="not both"):
        c.add(["a"], images=[paths[0]], vectors=np.ones((1, 16)))
    with pytest.raises(vecstore.InvalidInput, match="cannot read image"):
        c.add(["a"], images=[paths[0].parent / "missing.png"])
    with pytest.raises(vecstore.InvalidInput, match="height, width"):
        c.add(["a"], images=[np.ones((2, 2, 7), np.uint8)])
    plain = db.create_collection("plain", dim=16)
    with pytest.raises(vecstore.InvalidInput, match="does not embed images"):
        plain.add(["a"], images=[paths[0]])
    assert c.count() == 0


def test_ingest_takes_image_files_from_the_command_line(tiny_clip, pictures, tmp_path, capsys):
    from vecstore import cli

    paths, _ = pictures
    store = tmp_path / "s"
    argv = ["-q", "ingest", str(store), "pics", str(paths[0].parent), "--encoder", str(tiny_clip)]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0  # unchanged files: nothing written again
    with vecstore.open(store, progress=False) as db:
        c = db.get_collection("pics")
        assert c.encoder_spec.kind == "clip" and c.count() == 3
        got = c.get([str(p) for p in paths], include_vectors=True)
        assert got.documents == [str(p) for p in paths]
        (want,) = own_features(tiny_clip, images=paths)
        assert cosines(got.vectors, want).min() >= 0.9999
        assert c.query(image=paths[1], k=1).ids == [str(paths[1])]
