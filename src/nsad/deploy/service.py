"""``nsad serve``: an exported model behind HTTP (FastAPI, run by uvicorn), torch-free.

Endpoints:

- ``POST /v1/predict``: one image, as a multipart upload (any file field) or as the raw body
  (``Content-Type: image/png``, ``image/jpeg``, ``image/bmp``, ``image/tiff``, ``image/webp`` or
  ``application/octet-stream``). Query options: ``map=true`` adds the anomaly map as a base64
  16-bit PNG (``map_png``, value 65535 = ``map_png_scale``), ``threshold=T`` and ``min_area=N``
  override the decision threshold and the regions' minimum area. Answers JSON: ``score``,
  ``threshold``, ``decision``, ``regions`` (bounding box, area, peak, mean at the image's
  resolution), ``image`` (height, width, channels), ``timing_ms``.
- ``GET /v1/health``: ``{"status": "ok"}`` and the pool's load.
- ``GET /v1/model``: what ``deploy.json`` says.

Bad requests get a 4xx with a one-line ``detail``, never a 500: a corrupt or truncated image
(400), a type that is not an image nsad reads (415), a body over ``max_upload_bytes`` or an image
whose header declares more than ``max_pixels`` pixels (413, checked before decoding: the guard
against decompression bombs). Inference runs in a bounded pool of ``workers`` threads with
``queue`` waiting places; when all are taken the service answers 503 at once (with
``Retry-After``) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from nsad.data.io import read_image_bytes
from nsad.deploy._upload import FORMATS, header_size, sniff_format
from nsad.deploy.inferencer import Inferencer

RAW_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/bmp", "image/tiff", "image/webp",
             "application/octet-stream", "")
"""Content types of a raw-body upload ("" for none given)."""
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_PIXELS = 64_000_000
MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart framing around a file of ``max_upload_bytes``."""


class Busy(Exception):
    """Every worker and waiting place of the pool is taken."""


class WorkerPool:
    """A thread pool that refuses work beyond ``workers + queue`` jobs instead of queueing it.

    Args:
        workers: threads running inference at once.
        queue: jobs that may wait for a thread.
    """

    def __init__(self, workers: int = 2, queue: int = 8) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"need workers >= 1 and queue >= 0, got workers={workers}, queue={queue}")
        self.workers, self.capacity = workers, workers + queue
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nsad-infer")
        self._lock = threading.Lock()
        self.active = 0

    def try_acquire(self) -> bool:
        """Take a place if one is free."""
        with self._lock:
            if self.active >= self.capacity:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        """Give a place back."""
        with self._lock:
            self.active -= 1

    async def run(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` on a worker thread.

        Raises:
            Busy: if no place is free.
        """
        if not self.try_acquire():
            raise Busy
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
        finally:
            self.release()

    def shutdown(self) -> None:
        """Stop the threads after the running jobs."""
        self.executor.shutdown(wait=True)


def _map_png(anomaly_map: np.ndarray) -> tuple[str, float]:
    scale = float(anomaly_map.max()) if float(anomaly_map.max()) > 0 else 1.0
    levels = np.clip(np.rint(anomaly_map / scale * 65535.0), 0, 65535).astype(np.uint16)
    ok, encoded = cv2.imencode(".png", levels)
    if not ok:  # pragma: no cover - OpenCV encodes every uint16 image
        raise RuntimeError("cannot encode the map as PNG")
    return base64.b64encode(encoded.tobytes()).decode("ascii"), scale


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, max_upload_bytes: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        body = await _read_body(request, max_upload_bytes + MULTIPART_OVERHEAD)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
        uploads = [value for value in form.values() if isinstance(value, UploadFile)]
        if not uploads:
            raise HTTPException(400, "the multipart upload holds no file; send the image as a file field "
                                     "(curl -F image=@part.png)")
        data = await uploads[0].read()
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"upload of {len(data)} bytes is over the limit of {max_upload_bytes} bytes")
        return data
    if content_type not in RAW_TYPES:
        raise HTTPException(415, f"unsupported content type {content_type!r}; send an image as the raw body "
                                 f"(image/png, image/jpeg, image/bmp, image/tiff, image/webp or "
                                 f"application/octet-stream) or as multipart/form-data")
    return await _read_body(request, max_upload_bytes)


def create_app(inferencer: Inferencer, *, workers: int = 2, queue: int = 8, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS) -> FastAPI:
    """The FastAPI application serving ``inferencer`` (see the module docstring).

    Args:
        inferencer: the loaded model.
        workers: inference threads.
        queue: requests that may wait for a thread; beyond that the answer is 503.
        max_upload_bytes: largest accepted image file.
        max_pixels: largest accepted image, width x height from its header.
    """
    pool = WorkerPool(workers, queue)
    app = FastAPI(title="nsad", summary=f"anomaly detection with an exported {inferencer.spec.method} model")
    app.state.pool = pool
    app.state.inferencer = inferencer
    app.router.add_event_handler("shutdown", pool.shutdown)

    def infer(data: bytes, threshold: float | None, min_area: int | None, want_map: bool) -> dict[str, Any]:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image_bytes(data, "upload")
        decoded = time.perf_counter()
        prediction = inferencer.predict([image], threshold=threshold, min_area=min_area)[0]
        done = time.perf_counter()
        answer: dict[str, Any] = {
            "score": prediction.score, "threshold": prediction.threshold, "decision": prediction.decision,
            "regions": [region.to_dict() for region in prediction.regions],
            "image": {"height": image.shape[0], "width": image.shape[1], "channels": image.shape[2],
                      "bit_depth": 16 if image.dtype == np.uint16 else 8},
            "warnings": [str(w.message) for w in caught],
            "timing_ms": {"decode": 1e3 * (decoded - start), "inference": 1e3 * (done - decoded)}}
        if want_map:
            answer["map_png"], answer["map_png_scale"] = _map_png(prediction.anomaly_map)
        return answer

    @app.post("/v1/predict")
    async def predict(request: Request, map: bool = False, threshold: float | None = None,
                      min_area: int | None = None) -> JSONResponse:
        start = time.perf_counter()
        if min_area is not None and min_area < 1:
            raise HTTPException(400, f"min_area must be a whole number of pixels >= 1, got {min_area}")
        if threshold is not None and not np.isfinite(threshold):
            raise HTTPException(400, f"threshold must be a finite number, got {threshold}")
        data = await _image_bytes(request, max_upload_bytes)
        if not data:
            raise HTTPException(400, "the upload is empty; send an image")
        fmt = sniff_format(data)
        if fmt is None:
            raise HTTPException(415, f"the upload is not an image nsad reads; accepted: {', '.join(FORMATS)}")
        size = header_size(data, fmt)
        if size is None:
            raise HTTPException(400, f"cannot read the {fmt} header: the upload is corrupt or truncated")
        if size[0] * size[1] > max_pixels:
            raise HTTPException(413, f"a {size[0]} x {size[1]} image is over the limit of {max_pixels} pixels")
        if min(size) < 1:
            raise HTTPException(400, f"the {fmt} header declares a {size[0]} x {size[1]} image")
        try:
            answer = await pool.run(infer, data, threshold, min_area, map)
        except Busy:
            raise HTTPException(503, f"all {pool.capacity} inference places are taken; retry shortly",
                                headers={"Retry-After": "1"}) from None
        except (ValueError, cv2.error) as error:  # undecodable or truncated image data, wrong layout
            raise HTTPException(400, str(error).replace("\n", " ")) from error
        answer["timing_ms"]["total"] = 1e3 * (time.perf_counter() - start)
        return JSONResponse(answer)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "busy": pool.active, "capacity": pool.capacity}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return inferencer.spec.to_dict()

    return app


def serve(inferencer: Inferencer, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve ``inferencer`` with uvicorn until interrupted (``options`` go to :func:`create_app`)."""
    import uvicorn

    uvicorn.run(create_app(inferencer, **options), host=host, port=port, log_level="info")
