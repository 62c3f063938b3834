"""A small real vector search service: the retriever of the real-parts RAG example.

It models the retrieval step of a RAG path with real work, not an emulator's sleep: a
corpus of ``CORPUS_SIZE`` documents (generated from a seed, so every run and every replica
holds the same one) is embedded with a hashing embedder (tokens and token pairs hashed into
``DIM`` signed buckets, L2-normalised: no model to download) and indexed; a query is
embedded the same way and answered with the ids and cosine scores of its top-k documents.

Index: faiss's HNSW graph (``pip install faiss-cpu``, the ``examples`` extra) when it
imports, else an exact search (one numpy matrix-vector product). ``INDEX=exact|hnsw``
forces one.

HTTP/1.1 with keep-alive (stdlib ``ThreadingHTTPServer``) on ``$PORT`` (default 8080):

* ``GET /healthz``: 200 once the index is built, 503 while it is being built.
* ``POST /search`` with ``{"query": "...", "k": 5}``: ``{"results": [{"id", "score"}],
  "index": "hnsw"|"exact"}``; 400 on a body that is not such an object.
* ``POST /`` (what faultmesh's emulated callers send): the same search, with the JSON query
  if the body is one, else a query made from the body or the request id header.

Run it alone: ``CORPUS_SIZE=2000 PORT=8080 python retriever.py`` (needs numpy).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import re
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["DIM", "Index", "corpus", "embed", "embed_many", "main", "make_index"]

try:
    import numpy as np
except ImportError:  # the process runtime runs `python3` from PATH: say what is missing
    np = None  # type: ignore[assignment]

DIM = 256
_TOKEN = re.compile(r"[a-z0-9]+")
_SYLLABLES = ("ka", "lo", "mi", "ra", "te", "su", "vo", "ne", "di", "pa", "zu", "he",
              "bo", "ri", "ga", "shi", "fe", "nu", "ya", "to")
_TOPICS = 64
_HEADER = "X-Faultmesh-Request"


def _bucket(feature: str) -> tuple[int, float]:
    """The bucket and sign of a feature: blake2b, not hash(), so every process agrees."""
    h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return h % DIM, (1.0 if (h >> 63) & 1 else -1.0)


def embed(text: str) -> Any:
    """The L2-normalised hashing embedding of ``text`` (float32, ``DIM`` values): unigrams
    weigh 1, adjacent pairs 0.5 (word order counts a little). All zeros for no tokens."""
    v = np.zeros(DIM, dtype=np.float32)
    tokens = _TOKEN.findall(text.lower())
    for t in tokens:
        b, s = _bucket(t)
        v[b] += s
    for a, c in zip(tokens, tokens[1:], strict=False):
        b, s = _bucket(a + " " + c)
        v[b] += 0.5 * s
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def embed_many(texts: Sequence[str]) -> Any:
    """The embeddings of ``texts`` as one (len, DIM) float32 matrix."""
    m = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        m[i] = embed(t)
    return m


def corpus(n: int, seed: int = 7) -> list[str]:
    """``n`` documents from a seeded generator: each draws most words from one of
    ``_TOPICS`` topics' small vocabularies and a few from a shared one, as real
    collections cluster by subject."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
                    for _ in range(6000)})
    topics = [rng.sample(words, 40) for _ in range(_TOPICS)]
    docs = []
    for _ in range(n):
        topic = topics[rng.randrange(_TOPICS)]
        length = rng.randint(12, 30)
        docs.append(" ".join(rng.choice(topic) if rng.random() < 0.8 else rng.choice(words)
                             for _ in range(length)))
    return docs


class Index:
    """Top-k inner-product search over normalised vectors (cosine similarity)."""

    def __init__(self, vectors: Any, kind: str) -> None:
        self.kind = kind
        self.vectors = vectors
        self.hnsw = None
        if kind == "hnsw":
            import faiss  # only here: the exact index needs numpy alone

            self.hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
            self.hnsw.hnsw.efConstruction = 80
            self.hnsw.hnsw.efSearch = 64
            self.hnsw.add(vectors)

    def search(self, query: Any, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (document number, score) pairs, best first."""
        k = max(1, min(k, len(self.vectors)))
        if self.hnsw is not None:
            scores, ids = self.hnsw.search(query.reshape(1, -1), k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True)
                    if i >= 0]
        scores = self.vectors @ query
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]


def make_index(vectors: Any, kind: str = "auto") -> Index:
    """An index of ``vectors``: ``hnsw`` (faiss), ``exact``, or ``auto`` (hnsw when faiss
    imports)."""
    if kind == "auto":
        try:
            import faiss  # noqa: F401
            kind = "hnsw"
        except ImportError:
            kind = "exact"
    if kind not in ("hnsw", "exact"):
        raise ValueError(f"INDEX must be auto, hnsw or exact, not {kind!r}")
    return Index(vectors, kind)


class _State:
    """What the handlers share: the index once built (None before)."""

    index: Index | None = None
    docs: list[str] = []


def _doc_id(i: int) -> str:
    return f"doc-{i:06d}"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Health and search over HTTP/1.1 keep-alive (every answer has Content-Length)."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/healthz":
            self._answer(404, {"error": "not found"})
        elif _State.index is None:
            self._answer(503, {"status": "building"})
        else:
            self._answer(200, {"status": "ok", "documents": len(_State.docs),
                               "index": _State.index.kind})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path not in ("/", "/search"):
            self._answer(404, {"error": "not found"})
            return
        index = _State.index
        if index is None:
            self._answer(503, {"error": "index not built yet"})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("query"), str):
            query, k = body["query"], body.get("k", 5)
        elif path == "/search":
            self._answer(400, {"error": 'the body must be {"query": "...", "k": 5}'})
            return
        else:  # an emulated caller's call: some document's words, chosen by its bytes
            seed = raw or self.headers.get(_HEADER, "").encode()
            n = int.from_bytes(hashlib.blake2b(seed, digest_size=4).digest(), "little")
            query, k = " ".join(_State.docs[n % len(_State.docs)].split()[:8]), 5
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
            self._answer(400, {"error": "k must be an integer from 1 to 100"})
            return
        hits = index.search(embed(query), k)
        self._answer(200, {"index": index.kind,
                           "results": [{"id": _doc_id(i), "score": round(s, 6)}
                                       for i, s in hits]})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per request would swamp live-logs under load


def _build(n: int, kind: str) -> None:
    docs = corpus(n)
    index = make_index(embed_many(docs), kind)
    _State.docs = docs
    _State.index = index
    print(f"retriever: {n} documents indexed ({index.kind})", flush=True)


def main() -> int:
    """Serve on $PORT; the index is built in the background (health says when it is)."""
    if np is None:
        print("retriever: numpy is not installed for this python "
              f"({sys.executable}): run it with faultmesh's venv active", file=sys.stderr)
        return 3
    try:
        n = int(os.environ.get("CORPUS_SIZE", "20000"))
        port = int(os.environ.get("PORT", "8080"))
        if n < 1:
            raise ValueError
    except ValueError:
        print("retriever: CORPUS_SIZE and PORT must be positive integers", file=sys.stderr)
        return 2
    kind = os.environ.get("INDEX", "auto")
    if kind not in ("auto", "hnsw", "exact"):
        print(f"retriever: INDEX must be auto, hnsw or exact, not {kind!r}", file=sys.stderr)
        return 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=_build, args=(n, kind), daemon=True).start()
    print(f"retriever: listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
