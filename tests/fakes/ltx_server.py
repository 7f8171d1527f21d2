"""A fake LTX API on 127.0.0.1, strict about what `openapi/ltx-api.openapi.json` accepts.

    async with FakeLtx(job_seconds=0.2) as fake:
        provider = LtxProvider(client, api_key=fake.api_key, base_url=fake.base_url)

Run it by hand (prints the settings to use):  python -m tests.fakes.ltx_server [--port 8803]

Endpoints (PROVIDERS.md section C): `POST /v1/upload` → a signed `PUT /storage/in/{token}`
(refuses an Authorization header, needs every `required_headers` entry), `POST /v2/{endpoint}`
for text-, image-, audio-to-video, extend and retake (required fields, types, enums, the model
matrix resellers report, uploaded `storage_uri`s, inputs checked by decoding them: images by
their magic bytes, audio 2–20 s and videos of at least 73 frames with PyAV), `GET
/v2/{endpoint}/{id}` (pending / processing / completed / failed; 404 under another endpoint
or after `expire_job`) and `GET /storage/out/{id}.mp4` (the `result.video_url`: a real MP4 of
the job's length, drawn small). Every answer carries `x-request-id`; errors use the envelope
`{"type": "error", "error": {"type", "message"}}`. `out_of_credit = True` makes submits 402.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
from aiohttp import web

from tests.fakes.provider_fake import RECORDED, FakeJob, FakeServer, run_forever

FAST, PRO = "ltx-2-3-fast", "ltx-2-3-pro"
MODELS = {FAST, PRO, "ltx-2-fast", "ltx-2-pro"}
DURATIONS = {PRO: set(range(6, 11, 2)), FAST: set(range(6, 21, 2))}
SIZES = {
    "1920x1080",
    "1080x1920",
    "1280x720",
    "720x1280",
    "2560x1440",
    "1440x2560",
    "3840x2160",
    "2160x3840",
}
FPS = {24, 25, 48, 50}
CAMERA = {"dolly_in", "dolly_out", "dolly_left", "dolly_right", "jib_up", "jib_down", "static",
          "focus_shift"}  # fmt: skip
ENDPOINTS = {"text-to-video", "image-to-video", "audio-to-video", "retake", "extend",
             "video-to-video-hdr", "video-to-video-reframe"}  # fmt: skip
KINDS = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_funds_error",
         404: "not_found_error", 422: "content_filtered_error", 429: "rate_limit_error",
         500: "api_error", 503: "service_unavailable", 529: "overloaded_error"}  # fmt: skip
LENGTH_RANGE = "1,104857600"
PORTRAIT = {"1080x1920", "720x1280", "1440x2560", "2160x3840"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF")

# field -> (python types, required) for each body (the spec's schemas)
_STR, _INT, _NUM, _BOOL = (str,), (int,), (int, float), (bool,)
SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "text-to-video": {"prompt": (_STR, True), "model": (_STR, True), "duration": (_INT, True),
                      "resolution": (_STR, True), "fps": (_INT, False),
                      "generate_audio": (_BOOL, False), "camera_motion": (_STR, False)},
    "audio-to-video": {"audio_uri": (_STR, True), "image_uri": (_STR, False),
                       "prompt": (_STR, False), "resolution": (_STR, False),
                       "guidance_scale": (_NUM, False), "model": (_STR, False)},
    "retake": {"video_uri": (_STR, True), "prompt": (_STR, False), "start_time": (_NUM, True),
               "duration": (_NUM, True), "mode": (_STR, False), "resolution": (_STR, False),
               "model": (_STR, False)},
    "extend": {"video_uri": (_STR, True), "prompt": (_STR, False), "duration": (_NUM, True),
               "mode": (_STR, False), "model": (_STR, False), "context": (_NUM, False)},
}  # fmt: skip
SCHEMAS["image-to-video"] = {
    **SCHEMAS["text-to-video"],
    "image_uri": (_STR, True),
    "prompt": (_STR, True),
    "last_frame_uri": (_STR, False),
}


class Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Upload:
    token: str
    storage_uri: str
    issued_at: float
    data: bytes | None = None


class FakeLtx(FakeServer):
    label = "LTX"

    def __init__(
        self,
        *,
        api_key: str = "ltx-test-key",
        job_seconds: float = 0.2,
        clip_bytes: bytes | None = None,
        record: bool = True,
    ) -> None:
        super().__init__(
            api_key=api_key, job_seconds=job_seconds, clip_bytes=clip_bytes, record=record
        )
        self.uploads: dict[str, Upload] = {}
        self.out_of_credit = False
        self.fail_with: tuple[str, str] | None = None  # (error type, message) for new jobs
        self.filtered_words: tuple[str, ...] = ()  # prompts with one: 422 at submit
        self.request_ids: list[str] = []
        self._clips: dict[str, bytes] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-ltx-")

    async def stop(self) -> None:
        await super().stop()
        self._tmp.cleanup()

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._request_id)
        app.router.add_post("/v1/upload", self._upload)
        app.router.add_put("/storage/in/{token}", self._put)
        app.router.add_post("/v2/{endpoint}", self._submit)
        app.router.add_get("/v2/{endpoint}/{id}", self._status)
        app.router.add_get("/storage/out/{id}.mp4", self._output)

    @web.middleware
    async def _request_id(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rid = f"req_{uuid.uuid4().hex}"
        self.request_ids.append(rid)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = self.error_response(exc.status, exc.reason or "error")
        response.headers["x-request-id"] = rid
        return response

    def error_response(self, status: int, message: str, kind: str = "error") -> web.Response:
        kind = KINDS.get(status, "api_error") if kind == "error" else kind
        response = web.json_response(
            {"type": "error", "error": {"type": kind, "message": message}}, status=status
        )
        response.headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        return response

    def _unauthorized(self) -> web.Response:
        return self.error_response(401, "Invalid API key")

    # ----- uploads -------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        token = secrets.token_urlsafe(16)
        upload = Upload(token, f"gs://ltx-fake-uploads/{token}", time.monotonic())
        self.uploads[upload.storage_uri] = upload
        expires = datetime.now(UTC) + timedelta(hours=1)
        return web.json_response(
            {
                "upload_url": f"{self.base_url}/storage/in/{token}?X-Goog-Signature={token}",
                "storage_uri": upload.storage_uri,
                "expires_at": expires.isoformat().replace("+00:00", "Z"),
                "required_headers": {"x-goog-content-length-range": LENGTH_RANGE},
            }
        )

    async def _put(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            return web.Response(status=400, text="<Error><Code>InvalidArgument</Code></Error>")
        token = request.match_info["token"]
        upload = next((u for u in self.uploads.values() if u.token == token), None)
        if upload is None or request.query.get("X-Goog-Signature") != token:
            return web.Response(
                status=403, text="<Error><Code>SignatureDoesNotMatch</Code></Error>"
            )
        if request.headers.get("x-goog-content-length-range") != LENGTH_RANGE:
            return web.Response(status=400, text="<Error><Code>MissingHeader</Code></Error>")
        data = await request.read()
        if not data:
            return web.Response(status=400, text="<Error><Code>EmptyBody</Code></Error>")
        upload.data = data
        return web.Response(status=200)

    def _input(self, uri: Any, name: str) -> bytes:
        if not isinstance(uri, str):
            raise Refused(f"{name} must be a string")
        upload = self.uploads.get(uri)
        if upload is None or upload.data is None:
            raise Refused(f"{name}: {uri!r} is not an uploaded file")
        return upload.data

    def _image(self, uri: Any, name: str) -> None:
        if not self._input(uri, name).startswith(IMAGE_MAGIC):
            raise Refused(f"{name}: unsupported image format")

    def _media_seconds(self, data: bytes, kind: str) -> tuple[float, int]:
        """(seconds, video frames) of an uploaded file, by decoding it."""
        path = Path(self._tmp.name) / uuid.uuid4().hex
        path.write_bytes(data)
        try:
            with av.open(str(path)) as container:
                if kind == "audio":
                    if not container.streams.audio:
                        raise Refused("audio_uri: no audio stream")
                    stream = container.streams.audio[0]
                    samples = sum(f.samples for f in container.decode(stream))
                    return samples / (stream.codec_context.sample_rate or 1), 0
                if not container.streams.video:
                    raise Refused("video_uri: no video stream")
                vstream = container.streams.video[0]
                frames = sum(1 for _ in container.decode(vstream))
                rate = float(vstream.average_rate or 24)
                return frames / rate, frames
        except av.FFmpegError:
            raise Refused(f"{kind} input could not be decoded") from None
        finally:
            path.unlink(missing_ok=True)

    # ----- submit --------------------------------------------------------------------

    def _check_shape(self, endpoint: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refused("request body must be a JSON object")
        schema = SCHEMAS[endpoint]
        unknown = sorted(set(body) - set(schema))
        if unknown:
            raise Refused(f"unknown field(s): {', '.join(unknown)}")
        for field, (types, required) in schema.items():
            if field not in body:
                if required:
                    raise Refused(f"{field} is required")
                continue
            value = body[field]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise Refused(f"{field} has the wrong type")
        if "model" in body and body["model"] not in MODELS:
            raise Refused(f"model {body['model']!r} is not supported")
        return body

    def _validate(self, endpoint: str, body: dict[str, Any]) -> float:
        """Checks beyond the shape; returns the output's seconds."""
        if endpoint in ("text-to-video", "image-to-video"):
            model = body["model"]
            if model not in DURATIONS:
                raise Refused(f"model {model} is deprecated")
            if body["resolution"] not in SIZES:
                raise Refused(f"resolution {body['resolution']} is not supported for {model}")
            fps = body.get("fps", 24)
            if fps not in FPS:
                raise Refused(f"fps {fps} is not supported")
            duration = body["duration"]
            if duration not in DURATIONS[model]:
                raise Refused(f"duration {duration} is not supported for {model}")
            if duration > 10 and (body["resolution"] not in ("1920x1080", "1080x1920") or fps > 25):
                raise Refused("durations over 10 s need 1080p at 24 or 25 fps")
            if "camera_motion" in body and body["camera_motion"] not in CAMERA:
                raise Refused("camera_motion is invalid")
            if not body["prompt"].strip():
                raise Refused("prompt must not be empty")
            if endpoint == "image-to-video":
                self._image(body["image_uri"], "image_uri")
                if "last_frame_uri" in body:
                    self._image(body["last_frame_uri"], "last_frame_uri")
            return float(duration)
        if body.get("model", PRO) not in ("ltx-2-pro", PRO):
            raise Refused(f"{endpoint} supports ltx-2-3-pro only")
        if endpoint == "audio-to-video":
            if "prompt" not in body and "image_uri" not in body:
                raise Refused("prompt or image_uri is required")
            if body.get("resolution", "1920x1080") not in ("1920x1080", "1080x1920"):
                raise Refused("resolution must be 1920x1080 or 1080x1920")
            if "image_uri" in body:
                self._image(body["image_uri"], "image_uri")
            seconds, _ = self._media_seconds(self._input(body["audio_uri"], "audio_uri"), "audio")
            if not 2.0 <= seconds <= 20.0:
                raise Refused(f"audio must be 2-20 seconds long, got {seconds:.2f}")
            return seconds
        seconds, frames = self._media_seconds(self._input(body["video_uri"], "video_uri"), "video")
        if frames < 73:
            raise Refused(f"video_uri must have at least 73 frames, got {frames}")
        fps = frames / seconds if seconds else 24.0
        if endpoint == "extend":
            duration = body["duration"]
            if not 2 <= duration <= 20:
                raise Refused("duration must be 2-20 seconds")
            if body.get("mode", "end") not in ("end", "start"):
                raise Refused("mode must be end or start")
            context = body.get("context", min(20.0, seconds))
            if context > 20 or (context + duration) * fps > 505 + 1e-6:
                raise Refused("context + duration must not exceed 505 frames")
            return seconds + duration
        duration, start = body["duration"], body["start_time"]
        if duration < 2 or start < 0:
            raise Refused("duration must be at least 2 seconds and start_time not negative")
        if body.get("mode", "replace_audio_and_video") not in (
            "replace_audio", "replace_video", "replace_audio_and_video"
        ):  # fmt: skip
            raise Refused("mode is invalid")
        if "prompt" not in body:
            raise Refused("prompt is required")
        return seconds

    async def _submit(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        endpoint = request.match_info["endpoint"]
        if endpoint not in SCHEMAS:
            return self.error_response(404, f"no endpoint {endpoint}")
        if request.content_type != "application/json":
            return self.error_response(400, "Content-Type must be application/json")
        try:
            body = self._check_shape(endpoint, request[RECORDED].json)
            seconds = await asyncio.to_thread(self._validate, endpoint, body)
        except Refused as exc:
            return self.error_response(exc.status, exc.message)
        if any(word in str(body.get("prompt", "")).lower() for word in self.filtered_words):
            return self.error_response(422, "Prompt rejected by safety filter")
        if self.out_of_credit:
            return self.error_response(402, "Insufficient credits. Top up at console.ltx.io")
        job = self.new_job({"endpoint": endpoint, "body": body, "seconds": seconds})
        if self.fail_with is not None:
            job.extra["error"] = self.fail_with
            self.fail_job(job.id, self.fail_with[1])
        return web.json_response(
            {"id": job.id, "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")},
            status=202,
        )

    # ----- status and output ---------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        endpoint = request.match_info["endpoint"]
        job = self.jobs.get(request.match_info["id"])
        if endpoint not in ENDPOINTS:
            return self.error_response(400, f"unknown endpoint {endpoint}")
        if job is None or job.expired or job.params["endpoint"] != endpoint:
            return self.error_response(404, "Job not found")
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        answer: dict[str, Any] = {"id": job.id, "created_at": created}
        status = job.status
        if status == "failed":
            kind, message = job.extra.get("error", ("api_error", job.failed_reason))
            answer.update(status="failed", completed_at=created,
                          error={"type": kind, "message": message})  # fmt: skip
        elif status == "completed":
            url = f"{self.base_url}/storage/out/{job.id}.mp4?X-Goog-Expires=86400"
            answer.update(status="completed", completed_at=created, result={"video_url": url})
        else:
            answer["status"] = "pending" if status == "queued" else "processing"
        return web.json_response(answer)

    def _clip_for(self, job: FakeJob) -> bytes:
        if self.clip_bytes is not None:
            return self.clip_bytes
        if job.id not in self._clips:
            from bot.media import render_clip

            body = job.params["body"]
            portrait = str(body.get("resolution", "")) in PORTRAIT
            fps = 25 if job.params["endpoint"] == "audio-to-video" else int(body.get("fps", 24))
            dest = Path(self._tmp.name) / f"{job.id}.mp4"
            render_clip(
                dest,
                prompt=str(body.get("prompt", "")),
                width=108 if portrait else 192,
                height=192 if portrait else 108,
                fps=fps,
                duration=max(1, math.ceil(job.params["seconds"] - 1e-6)),
                audio=bool(body.get("generate_audio", True)),
                seed=1,
            )
            self._clips[job.id] = dest.read_bytes()
        return self._clips[job.id]

    async def _output(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.status != "completed" or job.expired:
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        data = await asyncio.to_thread(self._clip_for, job)
        return web.Response(body=data, content_type="video/mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake LTX API")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="ltx-test-key")
    parser.add_argument("--job-seconds", type=float, default=3.0)
    args = parser.parse_args()

    async def run() -> None:
        fake = FakeLtx(api_key=args.key, job_seconds=args.job_seconds, record=False)
        fake.port = args.port
        await run_forever(fake, "LTX")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
