"""`LtxProvider`: Lightricks' LTX API through its async v2 endpoints (PROVIDERS.md C).

- every input (image, first/last frame, soundtrack, the clip to edit) is uploaded through
  `POST /v1/upload` and a PUT to the signed URL (with the `required_headers`, without the
  API key); its `storage_uri` goes into the body;
- the submit endpoint is remembered in the job's data: polling must use the same one;
- 402 (`insufficient_funds_error`) is `InsufficientCreditsError`: the job ends unbilled and
  the admins see it in the mod log; a failed job of that type is treated alike;
- `x-request-id` of every failed call is logged (`bot.providers.http.request`), and that of
  a job the service reports as failed here; never the key;
- no cancel endpoint: `cancel()` returns False; no account endpoint: `check()` polls a job
  that cannot exist (404: the key was accepted).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bot.negotiation import negotiate
from bot.pricing import DEFAULT_LTX_RATES, LTX_FAST, LtxRates, ltx_price_per_second
from bot.providers.base import (
    AuthenticationError,
    CheckResult,
    ContentRefusedError,
    InsufficientCreditsError,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    JobStatus,
    NegotiatedRequest,
    Operation,
    ProviderError,
    ProviderJob,
    TransientError,
    VideoRequest,
)
from bot.providers.http import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    HostedApi,
    json_object,
    parse_answer,
    path_segment,
)
from bot.providers.ltx.edits import fit_long_clip, negotiate_edit, negotiate_soundtrack
from bot.providers.ltx.limits import MODELS, limits_for
from bot.providers.ltx.wire import (
    RETAKE_MODES,
    AudioToVideoBody,
    CreatedAnswer,
    Endpoint,
    ExtendBody,
    ImageToVideoBody,
    RetakeBody,
    StatusAnswer,
    TextToVideoBody,
    UploadAnswer,
)

log = logging.getLogger(__name__)

LABEL = "LTX"
DEFAULT_BASE_URL = "https://api.ltx.video"
MSG_OUT_OF_CREDIT = "the LTX account is out of credit (HTTP 402)"
_STATES = {
    "pending": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
}
_ENDPOINTS: dict[Operation, Endpoint] = {
    Operation.AUDIO: "audio-to-video",
    Operation.EXTEND: "extend",
    Operation.RETAKE: "retake",
}


def endpoint_for(request: NegotiatedRequest) -> Endpoint:
    if request.operation is not Operation.GENERATE:
        return _ENDPOINTS[request.operation]
    if request.image is not None or request.first_frame is not None:
        return "image-to-video"
    return "text-to-video"


class LtxProvider(HostedApi):
    """The LTX API (`name = "ltx"`)."""

    name = "ltx"
    label = LABEL
    model: str

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = LTX_FAST,
        rates: LtxRates = DEFAULT_LTX_RATES,
        trusted_hosts: tuple[str, ...] = (),
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        super().__init__(
            client,
            api_key=api_key,
            base_url=base_url,
            trusted_hosts=trusted_hosts,
            max_download_bytes=max_download_bytes,
        )
        self.limits = limits_for(model)
        self.model = model
        self._rates = rates

    # ----- negotiation ----------------------------------------------------------------

    def price_per_second(self, width: int, height: int) -> float:
        return ltx_price_per_second(width, height, model=self.model, rates=self._rates)

    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        if request.edit is not None:
            return negotiate_edit(request)
        if request.soundtrack is not None:
            return negotiate_soundtrack(request)
        negotiated = negotiate(
            request, self.limits, provider=self.name, price_per_second=self.price_per_second
        )
        return fit_long_clip(negotiated)

    # ----- uploads --------------------------------------------------------------------

    async def request_upload(self) -> UploadAnswer:
        """Step 1 of an upload: a signed URL to PUT one file to."""
        response = await self._call("POST", "/v1/upload")
        return parse_answer(UploadAnswer, json_object(response, label=LABEL), label=LABEL)

    async def upload(self, path: Path, mime: str) -> str:
        """Upload a file; returns the `storage_uri` to reference it (valid 24 h)."""
        ticket = await self.request_upload()
        target = await self._guard.check(ticket.upload_url)
        content = await asyncio.to_thread(path.read_bytes)
        headers = {"Content-Type": mime, **ticket.required_headers}
        try:
            # No Authorization: the signed URL carries its own; storage refuses a second one.
            put = self._client.build_request("PUT", target, content=content, headers=headers)
            put.headers.pop("Authorization", None)
            response = await self._client.send(put, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise TransientError(f"{LABEL}: upload failed ({type(exc).__name__})") from None
        if 200 <= response.status_code < 300:
            return ticket.storage_uri
        if response.status_code in (400, 403, 413):
            raise InvalidRequestError(
                f"{LABEL}'s storage refused the file (HTTP {response.status_code}); "
                "try a smaller file.",
                status_code=response.status_code,
            )
        raise TransientError(
            f"{LABEL}: upload refused (HTTP {response.status_code})",
            status_code=response.status_code,
        )

    # ----- submit ---------------------------------------------------------------------

    async def build_body(self, request: NegotiatedRequest) -> dict[str, Any]:
        """The JSON body for `endpoint_for(request)`, uploading the inputs first."""
        model = request.model if request.model in MODELS else self.model
        op = request.operation
        if op is Operation.AUDIO:
            assert request.soundtrack is not None
            audio_uri = await self.upload(request.soundtrack.path, request.soundtrack.mime)
            image_uri = None
            if request.image is not None:
                image_uri = await self.upload(request.image.path, request.image.mime)
            return AudioToVideoBody(
                audio_uri=audio_uri,
                prompt=request.prompt,
                image_uri=image_uri,
                resolution=request.resolution,
                model=model,
            ).to_json()
        if op in (Operation.EXTEND, Operation.RETAKE):
            edit = request.edit
            assert edit is not None
            video_uri = await self.upload(edit.source.path, edit.source.mime)
            if op is Operation.EXTEND:
                return ExtendBody(
                    video_uri=video_uri,
                    duration=edit.seconds,
                    prompt=request.prompt,
                    mode=edit.where,
                    model=model,
                    context=float(request.extra.get("context_seconds", 0.0)) or 1.0,
                ).to_json()
            return RetakeBody(
                video_uri=video_uri,
                start_time=edit.start,
                duration=edit.seconds,
                prompt=request.prompt,
                mode=RETAKE_MODES[edit.redo],
                model=model,
            ).to_json()
        common = {
            "prompt": request.prompt,
            "model": model,
            "duration": request.duration,
            "resolution": request.resolution,
            "fps": request.fps,
            "generate_audio": request.audio,
        }
        first = request.image or request.first_frame
        if first is None:
            return TextToVideoBody(**common).to_json()
        image_uri = await self.upload(first.path, first.mime)
        last_uri = None
        if request.last_frame is not None:
            last_uri = await self.upload(request.last_frame.path, request.last_frame.mime)
        return ImageToVideoBody(**common, image_uri=image_uri, last_frame_uri=last_uri).to_json()

    async def submit(self, request: NegotiatedRequest) -> ProviderJob:
        endpoint = endpoint_for(request)
        body = await self.build_body(request)
        response = await self._call("POST", f"/v2/{endpoint}", json_body=body, submit=True)
        answer = parse_answer(CreatedAnswer, json_object(response, label=LABEL), label=LABEL)
        if not answer.id:
            raise TransientError(f"{LABEL} accepted the job but sent no id")
        return ProviderJob(
            provider=self.name,
            job_id=answer.id,
            cost_usd=None,  # the answer has no price; the quote stands
            data={
                "endpoint": endpoint,
                "model": body.get("model"),
                "submitted_at": datetime.now(UTC).isoformat(),
                "request_id": response.headers.get("x-request-id"),
            },
        )

    # ----- status / download ----------------------------------------------------------

    @staticmethod
    def _endpoint_of(job: ProviderJob) -> str:
        endpoint = job.data.get("endpoint")
        return endpoint if isinstance(endpoint, str) and endpoint else "text-to-video"

    async def status(self, job: ProviderJob) -> JobStatus:
        path = f"/v2/{path_segment(self._endpoint_of(job))}/{path_segment(job.job_id)}"
        response = await self._call("GET", path)
        answer = parse_answer(StatusAnswer, json_object(response, label=LABEL), label=LABEL)
        state = _STATES.get(str(answer.status or "").lower(), JobState.RUNNING)
        if state is JobState.FAILED:
            self._result_urls.pop(job.job_id, None)
            kind = str(answer.error.type or "") if answer.error else ""
            message = str(answer.error.message or "") if answer.error else ""
            log.warning(
                "LTX job %s failed: %s (x-request-id %s)",
                job.job_id,
                kind or "no error type",
                response.headers.get("x-request-id", "none")[:200],
            )
            if kind == "insufficient_funds_error":
                raise InsufficientCreditsError(MSG_OUT_OF_CREDIT, status_code=402)
            if kind == "content_filtered_error":
                raise ContentRefusedError(status_code=422)
            reason = message or "the video service could not make this video"
            return JobStatus(state=JobState.FAILED, failure_reason=reason)
        if state is JobState.COMPLETED:
            url = answer.video_url()
            if url is None:
                return JobStatus(
                    state=JobState.FAILED,
                    failure_reason=f"{LABEL} finished the job but gave no video URL",
                )
            self._result_urls[job.job_id] = url
            return JobStatus(state=state, progress=1.0, result_url=url)
        return JobStatus(state=state)

    async def download(self, job: ProviderJob, dest: Path) -> None:
        await self._download_result(job, dest, noun="job")  # a signed storage URL

    # ----- account --------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """No account endpoint: poll a job that cannot exist (404: the key is accepted)."""
        try:
            await self._call("GET", "/v2/text-to-video/00000000-0000-0000-0000-000000000000")
        except JobNotFoundError:
            return CheckResult(provider=self.name, ok=True, detail=f"key accepted by {self._base}")
        except (AuthenticationError, ProviderError) as exc:
            return CheckResult(provider=self.name, ok=False, detail=exc.message)
        return CheckResult(provider=self.name, ok=True, detail=f"key accepted by {self._base}")

    async def cancel(self, job: ProviderJob) -> bool:
        return False  # the LTX API has no cancel endpoint
