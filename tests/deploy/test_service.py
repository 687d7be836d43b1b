"""nsad serve's HTTP service, started for real on 127.0.0.1 at a free port and called over HTTP with httpx."""

import asyncio
import base64
import socket
import threading
import time
import zlib

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from nsad.data.folder import sample_data_path
from nsad.data.io import read_image
from nsad.deploy import Inferencer
from nsad.deploy.service import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample():
    return sample_data_path()

MAX_UPLOAD = 2_000_000
MAX_PIXELS = 4_000_000


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(exported):
    inferencer = Inferencer(exported("nsa-logistic"), threads=1)
    app = create_app(inferencer, workers=2, queue=6, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/v1/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url, app, inferencer
    instance.should_exit = True
    thread.join(timeout=10)


def _png(image):
    ok, data = cv2.imencode(".png", image[..., ::-1] if image.shape[-1] == 3 else image)
    return data.tobytes()


def test_predict_answers_what_the_inferencer_gives(server, sample):
    url, _, inferencer = server
    path = sample / "test" / "broken_large" / "000.png"
    expected = inferencer.predict([read_image(path)], threshold=0.0)[0]
    with open(path, "rb") as file:
        multipart = httpx.post(f"{url}/v1/predict", params={"threshold": 0.0}, files={"image": ("a.png", file)})
    raw = httpx.post(f"{url}/v1/predict?map=true&threshold=0", content=path.read_bytes(),
                     headers={"Content-Type": "image/png"})
    for answer in (multipart, raw):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["score"] == pytest.approx(expected.score, rel=1e-6)
        assert body["decision"] == expected.decision == "anomalous" and body["threshold"] == 0.0
        assert body["regions"] == [r.to_dict() for r in expected.regions] and len(body["regions"]) >= 1
        assert body["image"] == {"height": 128, "width": 128, "channels": 3, "bit_depth": 8}
        assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0
    body = raw.json()
    levels = cv2.imdecode(np.frombuffer(base64.b64decode(body["map_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert levels.dtype == np.uint16 and levels.shape == (128, 128)
    np.testing.assert_allclose(levels / 65535 * body["map_png_scale"], expected.anomaly_map, atol=1e-4)
    # gray and 16-bit images are read as predict reads them
    gray16 = (np.random.default_rng(0).random((70, 90, 1)) * 65535).astype(np.uint16)
    answer = httpx.post(f"{url}/v1/predict", content=_png(gray16), headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 200 and answer.json()["image"] == {"height": 70, "width": 90, "channels": 1,
                                                                    "bit_depth": 16}


def test_health_and_model(server, exported):
    url, _, inferencer = server
    assert httpx.get(f"{url}/v1/health").json()["status"] == "ok"
    assert httpx.get(f"{url}/v1/model").json() == inferencer.spec.to_dict()


def _bomb_png(width, height):
    """A valid PNG header declaring width x height, with a tiny compressed body."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_every_bad_request_gets_its_4xx(server, sample):
    url, _, _ = server
    good = (sample / "test" / "good" / "000.png").read_bytes()
    cases = [
        (dict(content=good[: len(good) // 2], headers={"Content-Type": "image/png"}), 400, "corrupt"),  # truncated
        (dict(content=good[:20], headers={"Content-Type": "image/png"}), 400, "header"),
        (dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty"),
        (dict(content=b"GIF89a" + good[6:], headers={"Content-Type": "image/png"}), 415, "not an image"),
        (dict(content=b"hello", headers={"Content-Type": "text/plain"}), 415, "content type"),
        (dict(content=b"\0" * (MAX_UPLOAD + 1), headers={"Content-Type": "image/png"}), 413, "limit"),
        (dict(content=_bomb_png(50_000, 50_000), headers={"Content-Type": "image/png"}), 413, "pixels"),
        (dict(files={"note": (None, "no file")}), 400, "no file"),
        (dict(content=good, headers={"Content-Type": "image/png"}, params={"min_area": 0}), 400, "min_area"),
    ]
    for request, status, words in cases:
        answer = httpx.post(f"{url}/v1/predict", **request)
        assert answer.status_code == status, (request.get("headers"), answer.text)
        assert words in answer.json()["detail"]
    files = {"image": ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD + 10), "image/png")}
    assert httpx.post(f"{url}/v1/predict", files=files).status_code == 413
    assert httpx.get(f"{url}/v1/health").json()["status"] == "ok"  # still alive


def test_concurrent_requests_all_succeed_and_agree(server, sample):
    url, _, _ = server
    paths = sorted((sample / "test").rglob("*.png"))[:8]

    async def send():
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/predict", content=p.read_bytes(),
                                                      headers={"Content-Type": "image/png"}) for p in paths))

    answers = asyncio.run(send())
    assert [a.status_code for a in answers] == [200] * len(paths)
    singles = [httpx.post(f"{url}/v1/predict", content=p.read_bytes(), headers={"Content-Type": "image/png"})
               for p in paths]
    assert [a.json()["score"] for a in answers] == pytest.approx([s.json()["score"] for s in singles], rel=1e-6)


def test_a_full_pool_answers_503_at_once(server, sample):
    url, app, _ = server
    pool = app.state.pool
    taken = 0
    while pool.try_acquire():  # what running and queued requests do
        taken += 1
    try:
        assert taken == pool.capacity == 8
        answer = httpx.post(f"{url}/v1/predict", content=(sample / "test" / "good" / "000.png").read_bytes(),
                            headers={"Content-Type": "image/png"})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert "retry" in answer.json()["detail"]
    finally:
        for _ in range(taken):
            pool.release()
    assert httpx.post(f"{url}/v1/predict", content=(sample / "test" / "good" / "000.png").read_bytes(),
                      headers={"Content-Type": "image/png"}).status_code == 200
