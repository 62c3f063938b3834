"""The real retriever of the real-parts RAG example (examples/rag-real/retriever.py).

Quick: the hashing embedder is deterministic and L2-normalised, a document's own text finds
that document first, and the HNSW index (when faiss-cpu is installed) agrees with exact
search on at least 90% of the top 5. Slow: the program as a real process (health, then
searches over one keep-alive connection), and ``faultmesh live`` running it as a user
service behind an emulated gateway, with a latency fault on the edge into it.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "rag-real"
TOPOLOGY = EXAMPLE / "retriever-only.yaml"


def _load():
    spec = importlib.util.spec_from_file_location("rag_real_retriever", EXAMPLE / "retriever.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


r = _load()


def test_embedder_is_deterministic_and_normalised():
    a = r.embed("Kalo mira tesu vone")
    assert a.shape == (r.DIM,) and a.dtype == np.float32
    assert np.array_equal(a, r.embed("kalo  MIRA tesu vone"))  # case and spacing do not count
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert not np.array_equal(a, r.embed("vone tesu mira kalo"))  # pairs: order counts a little
    assert not r.embed("...").any()  # no tokens: the zero vector, not NaNs
    # another process computes the same vector (blake2b, not the salted hash())
    out = subprocess.run([sys.executable, "-c",
                          "import importlib.util,sys;"
                          f"s=importlib.util.spec_from_file_location('m',{str(EXAMPLE / 'retriever.py')!r});"
                          "m=importlib.util.module_from_spec(s);s.loader.exec_module(m);"
                          "print(m.embed('Kalo mira tesu vone').tolist())"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert np.allclose(json.loads(out.stdout), a)


def test_corpus_is_seeded():
    assert r.corpus(50) == r.corpus(50)
    assert r.corpus(50) != r.corpus(50, seed=8)
    assert len(set(r.corpus(500))) > 490


def test_a_documents_own_text_finds_it_first():
    docs = r.corpus(3000)
    index = r.make_index(r.embed_many(docs), "exact")
    for i in range(0, 3000, 97):
        (best, score), *_ = index.search(r.embed(docs[i]), 5)
        assert best == i and score == pytest.approx(1.0, abs=1e-5)
    hits = index.search(r.embed(docs[5]), 5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_hnsw_recall_at_5_against_exact_search():
    pytest.importorskip("faiss", reason="faiss-cpu not installed (the examples extra)")
    docs = r.corpus(5000)
    vectors = r.embed_many(docs)
    hnsw, exact = r.make_index(vectors, "hnsw"), r.make_index(vectors, "exact")
    assert hnsw.kind == "hnsw"
    rng = np.random.default_rng(3)
    recall = []
    for i in rng.choice(len(docs), 200, replace=False):
        q = r.embed(" ".join(docs[i].split()[:8]))  # a partial query, not the document
        got = {d for d, _ in hnsw.search(q, 5)}
        want = {d for d, _ in exact.search(q, 5)}
        recall.append(len(got & want) / 5)
    assert float(np.mean(recall)) >= 0.9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())


@pytest.mark.slow
def test_retriever_serves_health_and_search_over_keep_alive(tmp_path):
    port = _free_port()
    log = open(tmp_path / "retriever.out", "wb")
    p = subprocess.Popen([sys.executable, str(EXAMPLE / "retriever.py")], stdout=log,
                         stderr=subprocess.STDOUT,
                         env={**os.environ, "PORT": str(port), "CORPUS_SIZE": "3000"})
    try:
        deadline = time.monotonic() + 30
        while True:
            assert p.poll() is None, (tmp_path / "retriever.out").read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                health = conn.getresponse()
                body = json.loads(health.read())
                if health.status == 200:
                    break
                assert health.status == 503 and body["status"] == "building"
            except ConnectionRefusedError:
                pass
            assert time.monotonic() < deadline, "retriever not healthy within 30 s"
            time.sleep(0.1)
        assert body["documents"] == 3000
        docs = r.corpus(3000)
        conn.connect = None  # a second TCP connection would fail: the same one is reused
        status, got = _post(conn, "/search", json.dumps({"query": docs[42], "k": 3}).encode())
        assert status == 200 and got["results"][0]["id"] == "doc-000042"
        assert len(got["results"]) == 3
        status, got = _post(conn, "/search", b'{"k": 3}')
        assert status == 400 and "query" in got["error"]
        status, got = _post(conn, "/", b"anything an emulated caller sends")  # faultmesh's calls
        assert status == 200 and len(got["results"]) == 5
        status, got = _post(conn, "/search", json.dumps({"query": docs[7], "k": 0}).encode())
        assert status == 400
    finally:
        p.terminate()
        p.wait(10)
        log.close()


@pytest.mark.slow
def test_faultmesh_live_runs_the_retriever_as_a_user_service(tmp_path):
    bindir = str(Path(sys.executable).parent)  # `python3` in command: the venv's, as activated
    env = {**os.environ, "FAULTMESH_PROGRESS": "off",
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    faultmesh = [sys.executable, "-m", "faultmesh"]
    check = subprocess.run([*faultmesh, "validate", str(TOPOLOGY)], capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=60)
    assert check.returncode == 0, check.stderr
    out = tmp_path / "out"
    run = subprocess.run([*faultmesh, "live", str(TOPOLOGY), "--scenario", "slow-retriever",
                          "--duration", "4", "--no-report", "--out", str(out)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = (out / "requests.csv").read_text().splitlines()
    header = rows[0].split(",")
    status = [row.split(",")[header.index("status")] for row in rows[1:]]
    latency = [float(row.split(",")[header.index("latency")]) for row in rows[1:]]
    assert status.count("200") >= 0.9 * len(status) and len(status) >= 30
    # the latency toxic reached the real program's edge: some requests took >= 150 ms
    assert any(t >= 0.15 for t in latency) and any(t < 0.1 for t in latency)
    retriever_log = (out / "live-logs" / "retriever-0.out").read_text()
    assert "documents indexed" in retriever_log
