"""A fake ByteCompute LTX-2.3 API on 127.0.0.1 (wire format: PROVIDERS.md section A).

    async with FakeByteCompute(job_seconds=0.2) as fake:
        provider = ByteComputeProvider(client, api_key=fake.api_key, base_url=fake.base_url)

Run it by hand (prints the settings to use):

    python -m tests.fakes.bytecompute_server [--port 8801] [--job-seconds 3]

Endpoints: `POST /v1/generate` (multipart; strict about field names, like a validator),
`POST /v1/jobs/{id}`, `POST /v1/jobs/{id}/download`, plus `GET /files/{id}.mp4` (redirect
and JSON download targets), `GET /hop/{n}/{id}` (redirect chains) and `GET /loop/{n}`.
`response_variant` chooses each tolerated answer shape.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.provider_fake import RECORDED, FakeJob, FakeServer, run_forever

MODEL = "Lightricks/LTX-2.3"
FIELDS = {
    "model",
    "prompt",
    "image",
    "image_uri",
    "first_frame",
    "first_frame_uri",
    "last_frame",
    "last_frame_uri",
    "duration",
    "resolution",
    "aspect_ratio",
    "fps",
}
FILE_FIELDS = {"image", "first_frame", "last_frame"}
ASPECTS = {"16:9", "4:3", "1:1", "3:4", "4:5", "9:16"}
IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp"}
# The fake's own model of the GPU limit (same figure as the client's, stated independently).
BUDGET = 1920 * 1080 * 25 * 10

STATUS_WORDS = {
    "plain": {
        "queued": "queued",
        "running": "processing",
        "completed": "completed",
        "failed": "failed",
        "expired": "expired",
    },
    "alt": {
        "queued": "pending",
        "running": "running",
        "completed": "succeeded",
        "failed": "error",
        "expired": "expired",
    },
    "upper": {
        "queued": "QUEUED",
        "running": "IN_PROGRESS",
        "completed": "SUCCESS",
        "failed": "FAILED",
        "expired": "EXPIRED",
    },
}


@dataclass
class ByteComputeVariant:
    id_key: str = "id"  # "id" | "job_id" | "jobId"
    status_family: str = "plain"  # "plain" | "alt" | "upper" (see STATUS_WORDS)
    adjustments: str = "null"  # "null" | "list" | "object" | "absent"
    download: str = "bytes"  # "bytes" | "redirect" | "json"
    redirect_hops: int = 1  # redirects before the file ("redirect" mode)
    redirect_code: int = 302
    redirect_host: str | None = None  # e.g. "localhost" to redirect to another origin
    download_url: str | None = None  # "json"/"redirect": point at this URL instead
    expired_as_status: bool = False  # expired jobs: 404 (documented) or status "expired"


class FakeByteCompute(FakeServer):
    label = "ByteCompute"

    def __init__(
        self,
        *,
        api_key: str = "bc-test-key",
        job_seconds: float | Callable[[], float] = 0.2,
        clip_bytes: bytes | None = None,
        record: bool = True,
    ) -> None:
        super().__init__(
            api_key=api_key, job_seconds=job_seconds, clip_bytes=clip_bytes, record=record
        )
        self.response_variant = ByteComputeVariant()
        # Adjustments reported for every new job, besides the fake's own negotiation:
        # dicts with field / from / to / reason.
        self.extra_adjustments: list[dict[str, Any]] = []
        self.expire_after: float | None = None  # seconds after creation

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/generate", self._generate)
        app.router.add_post("/v1/jobs/{id}", self._status)
        app.router.add_post("/v1/jobs/{id}/download", self._download)
        app.router.add_get("/files/{id}.mp4", self._file)
        app.router.add_get("/hop/{n}/{id}", self._hop)
        app.router.add_get("/loop/{n}", self._loop)

    def error_response(self, status: int, message: str, kind: str = "error") -> web.Response:
        kinds = {
            400: "invalid_request",
            401: "authentication_error",
            402: "insufficient_funds",
            404: "not_found",
            409: "conflict",
            429: "rate_limit_error",
        }
        return web.json_response(
            {
                "type": "error",
                "error": {"type": kinds.get(status, "api_error"), "message": message},
            },
            status=status,
        )

    # ----- rendering -----------------------------------------------------------------

    def _word(self, job: FakeJob) -> str:
        return STATUS_WORDS[self.response_variant.status_family][job.status]

    def _adjustments(self, job: FakeJob) -> tuple[bool, Any]:
        shape = self.response_variant.adjustments
        if shape == "absent":
            return False, None
        if not job.adjustments:
            return True, None
        if shape == "list":
            return True, [
                {
                    "parameter": a["field"],
                    "original": a["from"],
                    "adjusted": a["to"],
                    "reason": a["reason"],
                }
                for a in job.adjustments
            ]
        if shape == "object":
            return True, {
                a["field"]: {"from": a["from"], "to": a["to"], "reason": a["reason"]}
                for a in job.adjustments
            }
        return True, None

    def _job_body(self, job: FakeJob) -> dict[str, Any]:
        body: dict[str, Any] = {self.response_variant.id_key: job.id, "status": self._word(job)}
        present, adjustments = self._adjustments(job)
        if present:
            body["adjustments"] = adjustments
        if job.status == "running":
            body["progress"] = round(job.progress * 100, 1)
        if job.status == "failed":
            body["error"] = {"type": "generation_failed", "message": job.failed_reason}
        body["model"] = MODEL  # an extra field the client does not model
        return body

    def _lookup(self, request: web.Request) -> FakeJob | web.Response:
        if not self.authorized(request):
            return self.error_response(401, "Invalid or missing API key")
        job_id = request.match_info["id"]
        job = self.jobs.get(job_id)
        expire_after = self.expire_after
        if job is not None and expire_after is not None:
            job.expired = job.expired or time.monotonic() - job.created_at > expire_after
        if job is None or (job.expired and not self.response_variant.expired_as_status):
            return self.error_response(404, f"Job '{job_id}' not found")
        return job

    # ----- handlers ------------------------------------------------------------------

    async def _generate(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.error_response(401, "Invalid or missing API key")
        if request.content_type != "multipart/form-data":
            return self.error_response(400, "expected multipart/form-data")
        recorded = request[RECORDED]
        names = set(recorded.form) | set(recorded.files)
        unknown = names - FIELDS
        if unknown:
            return self.error_response(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        for name in FILE_FIELDS:
            if name in recorded.form:
                return self.error_response(400, f"`{name}` must be a file part")
        for name, part in recorded.files.items():
            if name not in FILE_FIELDS:
                return self.error_response(400, f"`{name}` must be a text field")
            if part.content_type not in IMAGE_TYPES or not part.filename or part.size == 0:
                return self.error_response(400, f"unsupported image format for `{name}`")
        form = recorded.form
        if form.get("model") != MODEL:
            return self.error_response(400, f"model must be {MODEL}")
        if not form.get("prompt", "").strip():
            return self.error_response(400, "missing prompt")
        has_image = "image" in names or "image_uri" in names
        has_first = "first_frame" in names or "first_frame_uri" in names
        has_last = "last_frame" in names or "last_frame_uri" in names
        if has_image and (has_first or has_last):
            return self.error_response(400, "use image or first_frame/last_frame, not both")
        if has_last and not has_first:
            return self.error_response(400, "last_frame needs first_frame")
        try:
            params = self._parse_numbers(form)
        except ValueError as exc:
            return self.error_response(400, str(exc))
        params["mode"] = "image" if has_image else "frames" if has_first else "text"
        params["prompt"] = form["prompt"]
        job = self.new_job(params)
        job.adjustments = self._negotiate(params) + [dict(a) for a in self.extra_adjustments]
        return web.json_response(self._job_body(job))

    @staticmethod
    def _parse_numbers(form: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        duration = form.get("duration", "5")
        if not re.fullmatch(r"\d+", duration):
            raise ValueError("duration must be an integer number of seconds")
        out["duration"] = int(duration)
        fps = form.get("fps", "25")
        if fps not in ("25", "50"):
            raise ValueError("fps must be 25 or 50")
        out["fps"] = int(fps)
        aspect = form.get("aspect_ratio", "16:9")
        if aspect not in ASPECTS:
            raise ValueError(f"aspect_ratio must be one of {', '.join(sorted(ASPECTS))}")
        resolution = form.get("resolution")
        if resolution is not None:
            match = re.fullmatch(r"(\d+)x(\d+)", resolution)
            if match is None:
                raise ValueError("resolution must look like 1280x720")
            out["width"], out["height"] = int(match[1]), int(match[2])
        else:
            w, h = (int(x) for x in aspect.split(":"))
            scale = 720 / min(w, h)
            out["width"], out["height"] = round(w * scale) // 32 * 32, round(h * scale) // 32 * 32
        return out

    @staticmethod
    def _negotiate(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Server-side negotiation: never reject, adjust (fps, then duration, then size)."""
        changes: list[dict[str, Any]] = []
        w, h, fps, dur = params["width"], params["height"], params["fps"], params["duration"]
        if not 4 <= dur <= 10:
            new = min(max(dur, 4), 10)
            changes.append({"field": "duration", "from": dur, "to": new, "reason": "4-10 s"})
            dur = new
        long_max, short_max = 1920, 1080
        if max(w, h) > long_max or min(w, h) > short_max or min(w, h) < 512:
            scale = min(long_max / max(w, h), short_max / min(w, h))
            nw, nh = max(512, int(w * scale)), max(512, int(h * scale))
            changes.append(
                {"field": "resolution", "from": f"{w}x{h}", "to": f"{nw}x{nh}", "reason": "size"}
            )
            w, h = nw, nh
        if w * h * fps * dur > BUDGET and fps == 50:
            changes.append({"field": "fps", "from": 50, "to": 25, "reason": "GPU time"})
            fps = 25
        if w * h * fps * dur > BUDGET:
            new = max(4, BUDGET // (w * h * fps))
            changes.append({"field": "duration", "from": dur, "to": new, "reason": "GPU time"})
            dur = new
        params.update(width=w, height=h, fps=fps, duration=dur)
        return changes

    async def _status(self, request: web.Request) -> web.Response:
        job = self._lookup(request)
        if isinstance(job, web.Response):
            return job
        return web.json_response(self._job_body(job))

    async def _download(self, request: web.Request) -> web.StreamResponse:
        job = self._lookup(request)
        if isinstance(job, web.Response):
            return job
        if job.status != "completed":
            return self.error_response(409, f"Job '{job.id}' is not complete ({job.status})")
        variant = self.response_variant
        target = variant.download_url or self._file_url(job.id, variant.redirect_hops - 1)
        if variant.download == "redirect":
            return web.Response(status=variant.redirect_code, headers={"Location": target})
        if variant.download == "json":
            return web.json_response({"url": target, "expires_in": 3600})
        return await self.serve_clip(request)

    def _file_url(self, job_id: str, hops: int) -> str:
        host = self.response_variant.redirect_host
        base = self.base_url if host is None else self.base_url.replace("127.0.0.1", host)
        if hops > 0:
            return f"{base}/hop/{hops}/{job_id}"
        return f"{base}/files/{job_id}.mp4"

    async def _hop(self, request: web.Request) -> web.Response:
        remaining = int(request.match_info["n"]) - 1
        target = self._file_url(request.match_info["id"], remaining)
        return web.Response(status=302, headers={"Location": target})

    async def _loop(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(status=302, headers={"Location": f"/loop/{n + 1}"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.status != "completed":
            return web.Response(status=404, text="NoSuchKey")
        return await self.serve_clip(request)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake ByteCompute LTX-2.3 API")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="bc-test-key")
    parser.add_argument("--job-seconds", type=float, default=3.0)
    args = parser.parse_args()

    async def run() -> None:
        fake = FakeByteCompute(api_key=args.key, job_seconds=args.job_seconds, record=False)
        fake.port = args.port
        await run_forever(fake, "BYTECOMPUTE")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
