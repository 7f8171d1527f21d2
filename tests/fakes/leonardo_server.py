"""A fake Leonardo.AI REST API on 127.0.0.1 (wire format: PROVIDERS.md section B).

    async with FakeLeonardo(job_seconds=0.2) as fake:
        provider = LeonardoProvider(client, api_key=fake.api_key, base_url=fake.base_url)

`base_url` is the `…/api/rest` root. Run it by hand (prints the settings to use):

    python -m tests.fakes.leonardo_server [--port 8802] [--job-seconds 3]

Endpoints: `POST /api/rest/v1/init-image`, `POST /s3-upload` (the presigned S3-style POST:
refuses an Authorization header, checks every issued field and the file part),
`POST /api/rest/v2/generations` (strict about the LTX-2.3 body), `GET|DELETE
/api/rest/v1/generations/{id}` (PENDING / COMPLETE / FAILED), `GET /api/rest/v1/me`, and
`GET /cdn/{id}.mp4` (the motionMP4URL, no credentials needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.provider_fake import RECORDED, FakeJob, FakeServer, run_forever

REST = "/api/rest"
PRO, FAST = "ltxv-2.3-pro", "ltxv-2.3-fast"
DURATIONS = {PRO: {6, 8, 10}, FAST: set(range(6, 21, 2))}
SIZES = {
    (1920, 1080): "RESOLUTION_1080",
    (1080, 1920): "RESOLUTION_1080",
    (2560, 1440): "RESOLUTION_1440",
    (1440, 2560): "RESOLUTION_1440",
    (3840, 2160): "RESOLUTION_2160",
    (2160, 3840): "RESOLUTION_2160",
}
EXTENSIONS = {"png", "jpg", "jpeg", "webp"}
MAGIC = {"png": (b"\x89PNG",), "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",)}
BASE_PARAMETERS = {
    "prompt",
    "quantity",
    "width",
    "height",
    "duration",
    "mode",
    "prompt_enhance",
    "guidances",
}
UPLOAD_WINDOW = 120.0  # seconds a presigned POST stays valid


@dataclass
class InitImage:
    id: str
    extension: str
    key: str
    fields: dict[str, str]
    issued_at: float
    uploaded: bool = False
    size: int = 0


class FakeLeonardo(FakeServer):
    label = "Leonardo"

    def __init__(
        self,
        *,
        api_key: str = "leo-test-key",
        job_seconds: float | Callable[[], float] = 0.2,
        clip_bytes: bytes | None = None,
        record: bool = True,
    ) -> None:
        super().__init__(
            api_key=api_key, job_seconds=job_seconds, clip_bytes=clip_bytes, record=record
        )
        self.init_images: dict[str, InitImage] = {}
        self.audio_field = "motion_has_audio"  # the one the server accepts
        self.accept_seed = True
        self.submit_shape = "generate"  # "generate": {"generate": {...}}; "top": top level
        self.null_seconds = 0.0  # generations_by_pk is null this long after submit
        self.url_lag_seconds = 0.0  # COMPLETE without a motionMP4URL this long
        self.nsfw = False  # the per-generation `nsfw` flag on finished outputs
        self.motion_url_override: str | None = None
        self.deleted: set[str] = set()
        self.me: dict[str, Any] = {
            "user": {"id": str(uuid.uuid4()), "username": "fake-user"},
            "tokenRenewalDate": None,
            "paidTokens": 0,
            "subscriptionTokens": 150,
            "subscriptionGptTokens": 0,
            "subscriptionModelTokens": 0,
            "apiConcurrencySlots": 5,
            "apiPaidTokens": 12.4567,
            "apiSubscriptionTokens": 0,
            "apiPlanTokenRenewalDate": None,
        }

    @property
    def rest_url(self) -> str:
        return self.base_url + REST

    async def start(self) -> str:
        """Returns the `…/api/rest` base URL the provider is configured with."""
        await super().start()
        return self.rest_url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{REST}/v1/init-image", self._init_image)
        app.router.add_post("/s3-upload", self._s3_upload)
        app.router.add_post(f"{REST}/v2/generations", self._generate)
        app.router.add_get(f"{REST}/v1/generations/{{id}}", self._generation)
        app.router.add_delete(f"{REST}/v1/generations/{{id}}", self._delete)
        app.router.add_get(f"{REST}/v1/me", self._me)
        app.router.add_get("/cdn/{id}.mp4", self._cdn)
        app.router.add_get("/loop/{n}", self._loop)

    def error_response(self, status: int, message: str, kind: str = "error") -> web.Response:
        codes = {400: "bad-request", 401: "access-denied", 403: "access-denied", 404: "not-found"}
        return web.json_response(
            {"error": message, "path": "$", "code": codes.get(status, "unexpected")},
            status=status,
        )

    def _unauthorized(self) -> web.Response:
        return web.json_response(
            {
                "error": "Invalid response from authorization hook",
                "path": "$",
                "code": "unexpected",
            },
            status=401,
        )

    # ----- init images ---------------------------------------------------------------

    async def _init_image(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        body = request[RECORDED].json
        if not isinstance(body, dict) or not isinstance(body.get("extension"), str):
            return self.error_response(400, "expected {extension}")
        extension = body["extension"]
        if extension not in EXTENSIONS or set(body) != {"extension"}:
            return self.error_response(400, "invalid file extension")
        image_id = str(uuid.uuid4())
        key = f"fake-user/initImages/{image_id}.{extension}"
        fields = {
            "Content-Type": f"image/{'jpeg' if extension == 'jpg' else extension}",
            "bucket": "fake-leonardo-bucket",
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": "FAKE/20260101/us-east-1/s3/aws4_request",
            "X-Amz-Date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "key": key,
            "Policy": uuid.uuid4().hex,
            "X-Amz-Signature": uuid.uuid4().hex,
        }
        self.init_images[image_id] = InitImage(image_id, extension, key, fields, time.monotonic())
        return web.json_response(
            {
                "uploadInitImage": {
                    "id": image_id,
                    "url": f"{self.base_url}/s3-upload",
                    "fields": json.dumps(fields),
                    "key": key,
                    "__typename": "InitImageUploadOutput",
                }
            }
        )

    @staticmethod
    def _s3_error(status: int, code: str, message: str) -> web.Response:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )
        return web.Response(status=status, text=xml, content_type="application/xml")

    async def _s3_upload(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            return self._s3_error(
                400, "InvalidArgument", "Only one auth mechanism allowed; Bearer is not"
            )
        recorded = request[RECORDED]
        if request.content_type != "multipart/form-data":
            return self._s3_error(412, "PreconditionFailed", "multipart/form-data expected")
        image = next(
            (i for i in self.init_images.values() if i.key == recorded.form.get("key")), None
        )
        if image is None:
            return self._s3_error(403, "AccessDenied", "Invalid according to Policy: key")
        if time.monotonic() - image.issued_at > UPLOAD_WINDOW:
            return self._s3_error(403, "AccessDenied", "Invalid according to Policy: expired")
        for name, value in image.fields.items():
            if recorded.form.get(name) != value:
                return self._s3_error(403, "AccessDenied", f"Invalid according to Policy: {name}")
        extra = set(recorded.form) - set(image.fields)
        if extra:
            return self._s3_error(
                403, "AccessDenied", f"Extra input fields: {', '.join(sorted(extra))}"
            )
        part = recorded.files.get("file")
        if part is None or not part.size:
            return self._s3_error(400, "InvalidArgument", "POST requires exactly one file")
        if recorded.part_order[-1] != "file":
            return self._s3_error(400, "InvalidArgument", "the file must be the last field")
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        head = upload.file.read(16)
        magic = MAGIC.get(image.extension)
        if magic and not head.startswith(magic):
            return self._s3_error(400, "InvalidArgument", "content does not match extension")
        image.uploaded, image.size = True, part.size
        return web.Response(status=204)

    # ----- generations ---------------------------------------------------------------

    def _validate(self, body: Any) -> str | None:
        """None when the create body is acceptable, else the error message."""
        if not isinstance(body, dict):
            return "expected a JSON object"
        extra = sorted(set(body) - {"model", "public", "parameters"})
        if extra:
            return f"unexpected top-level field(s): {', '.join(extra)}"
        model = body.get("model")
        if model not in DURATIONS:
            return f"unknown model {model!r}"
        if "public" in body and not isinstance(body["public"], bool):
            return "Expected a boolean for public but found a string"
        params = body.get("parameters")
        if not isinstance(params, dict):
            return "parameters must be an object"
        allowed = BASE_PARAMETERS | {self.audio_field} | ({"seed"} if self.accept_seed else set())
        unknown = sorted(set(params) - allowed)
        if unknown:
            return f'unexpected variable "{unknown[0]}" in parameters'
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 5000:
            return "prompt must be 1-5000 characters"
        if params.get("quantity") != 1:
            return "quantity must be 1"
        duration = params.get("duration")
        if isinstance(duration, bool) or duration not in DURATIONS[model]:
            return f"duration {duration!r} is not allowed for {model}"
        width, height = params.get("width"), params.get("height")
        guidances = params.get("guidances") or {}
        size_ok = (width, height) in SIZES or (width == height == 0 and "start_frame" in guidances)
        if not size_ok:
            return f"width/height {width}x{height} is not allowed"
        mode = params.get("mode")
        if mode is not None and SIZES.get((width, height)) != mode:
            return f"mode {mode} does not match {width}x{height}"
        if params.get("prompt_enhance", "AUTO") not in ("AUTO", "ON", "OFF"):
            return "prompt_enhance must be AUTO, ON or OFF"
        audio = params.get(self.audio_field, True)
        if not isinstance(audio, bool):
            return f"Expected a boolean for {self.audio_field} but found a {type(audio).__name__}"
        seed = params.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            return "seed must be an integer"
        return self._validate_guidances(guidances)

    def _validate_guidances(self, guidances: Any) -> str | None:
        if not isinstance(guidances, dict) or set(guidances) - {"start_frame", "end_frame"}:
            return "guidances may hold start_frame and end_frame only"
        if "end_frame" in guidances and "start_frame" not in guidances:
            return "end_frame requires start_frame"
        for name, items in guidances.items():
            if not isinstance(items, list) or len(items) != 1:
                return f"{name} takes exactly one item"
            image = items[0].get("image") if isinstance(items[0], dict) else None
            if not isinstance(image, dict) or image.get("type") != "UPLOADED":
                return f"{name}: expected an UPLOADED image"
            init = self.init_images.get(str(image.get("id")))
            if init is None or not init.uploaded:
                return f"{name}: init image {image.get('id')} was not uploaded"
        return None

    async def _generate(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        body = request[RECORDED].json
        problem = self._validate(body)
        if problem is not None:
            return self.error_response(400, problem)
        job = self.new_job(dict(body))
        dollars = f"{body['parameters']['duration'] * 0.06:.2f}"
        if self.submit_shape == "top":
            return web.json_response({"generationId": job.id, "apiCreditCost": 25})
        return web.json_response(
            {
                "generate": {
                    "generationId": job.id,
                    "cost": {"amount": dollars, "unit": "DOLLARS"},
                    "__typename": "GenerationOutput",
                }
            }
        )

    def _generation_body(self, job: FakeJob) -> dict[str, Any] | None:
        now = time.monotonic()
        if now - job.created_at < self.null_seconds:
            return None
        status = job.status
        word = {"completed": "COMPLETE", "failed": "FAILED"}.get(status, "PENDING")
        params = job.params["parameters"]
        images: list[dict[str, Any]] = []
        if word == "COMPLETE" and now - job.finish_at >= self.url_lag_seconds:
            url = self.motion_url_override or f"{self.base_url}/cdn/{job.id}.mp4"
            images.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)),
                    "url": f"{self.base_url}/cdn/{job.id}.jpg",
                    "motionMP4URL": url,
                    "motion": True,
                    "motionModel": job.params["model"],
                    "nsfw": self.nsfw,
                    "likeCount": 0,
                    "generated_image_variation_generics": [],
                }
            )
        return {
            "id": job.id,
            "status": word,
            "prompt": params["prompt"],
            "imageWidth": params["width"],
            "imageHeight": params["height"],
            "public": job.params.get("public", False),
            "createdAt": datetime.now(UTC).isoformat(),
            "generated_images": images,
            "generation_elements": [],
        }

    async def _generation(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.id in self.deleted:
            return web.json_response({"generations_by_pk": None})
        return web.json_response({"generations_by_pk": self._generation_body(job)})

    async def _delete(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            return web.json_response({"delete_generations_by_pk": None})
        self.deleted.add(job_id)
        return web.json_response({"delete_generations_by_pk": {"id": job_id}})

    async def _me(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._unauthorized()
        return web.json_response({"user_details": [self.me]})

    async def _loop(self, request: web.Request) -> web.Response:
        """A redirect loop (point `motion_url_override` at `/loop/0`)."""
        n = int(request.match_info["n"])
        return web.Response(status=302, headers={"Location": f"/loop/{n + 1}"})

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.status != "completed":
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return await self.serve_clip(request)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake Leonardo.AI REST API")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="leo-test-key")
    parser.add_argument("--job-seconds", type=float, default=3.0)
    args = parser.parse_args()

    async def run() -> None:
        fake = FakeLeonardo(api_key=args.key, job_seconds=args.job_seconds, record=False)
        fake.port = args.port
        await run_forever(fake, "LEONARDO")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
