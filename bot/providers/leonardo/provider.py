"""`LeonardoProvider`: the client calls (upload init images, create, poll, download, account).

Choices where the docs disagree or are silent (PROVIDERS.md B.2, B.13):
- the audio switch is sent as `motion_has_audio` (the v2 schema); if a 400 names that field
  we retry once with `audio` (the LTX 2.3 guide) and remember what worked;
- `seed` is sent when the member gave one (the guide lists it, the schema does not); if a 400
  names it we retry without it and report a provider adjustment "seed → none";
- `prompt_enhance: "OFF"` so the member's prompt reaches the model verbatim; `duration`,
  `width`, `height`, `quantity: 1` and a matching (deprecated) `mode` are always sent;
- the presigned image upload goes *without* our Authorization header;
- `generations_by_pk: null` right after submit, and COMPLETE without a URL yet, count as
  "still running" for a grace period;
- cancel: Leonardo has no cancel. `DELETE /v1/generations/{id}` exists, but deleting neither
  stops billing nor is documented to stop the job, and it would destroy a result the member
  paid for, so `cancel()` does nothing and returns False.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bot.negotiation import negotiate
from bot.pricing import (
    DEFAULT_LEONARDO_RATES,
    LEONARDO_FAST,
    LeonardoRates,
    leonardo_price_per_second,
)
from bot.providers.base import (
    Adjustment,
    CheckResult,
    InputImage,
    InvalidRequestError,
    JobNotFoundError,
    JobState,
    JobStatus,
    NegotiatedRequest,
    ProviderError,
    ProviderJob,
    TransientError,
    VideoRequest,
)
from bot.providers.http import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    HostedApi,
    finite_number,
    json_object,
    parse_answer,
    path_segment,
)
from bot.providers.leonardo.limits import MODELS, limits_for
from bot.providers.leonardo.wire import (
    AUDIO_FIELDS,
    FrameGuidance,
    GenerationAnswer,
    GenerationBody,
    Guidances,
    ImageRef,
    InitImageAnswer,
    InitImageUpload,
    LtxParameters,
    MeAnswer,
    flagged_nsfw,
    parse_generation,
    resolution_mode,
    video_url,
)

log = logging.getLogger(__name__)

LABEL = "Leonardo"
_SEED = re.compile(r"\bseed\b")


class LeonardoProvider(HostedApi):
    """Leonardo.AI's hosted LTX-2.3 (`name = "leonardo"`; base URL `…/api/rest`)."""

    name = "leonardo"
    label = LABEL
    model: str

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        model: str = LEONARDO_FAST,
        rates: LeonardoRates = DEFAULT_LEONARDO_RATES,
        trusted_hosts: tuple[str, ...] = (),
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        missing_grace_seconds: float = 300.0,
        url_grace_seconds: float = 120.0,
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
        self._missing_grace = missing_grace_seconds
        self._url_grace = url_grace_seconds
        self._audio_field = AUDIO_FIELDS[0]
        self._first_seen: dict[str, float] = {}  # job id -> monotonic time (no persisted time)
        self._complete_without_url: dict[str, float] = {}

    @property
    def audio_field(self) -> str:
        return self._audio_field

    def price_per_second(self, width: int, height: int, model: str | None = None) -> float:
        return leonardo_price_per_second(
            width, height, model=model or self.model, rates=self._rates
        )

    def negotiate(self, request: VideoRequest) -> NegotiatedRequest:
        return negotiate(
            request, self.limits, provider=self.name, price_per_second=self.price_per_second
        )

    # ----- init images ----------------------------------------------------------------

    async def request_init_image(self, extension: str) -> InitImageUpload:
        """Step 1 of an upload: ask for a presigned POST for a file of this extension."""
        response = await self._call("POST", "/v1/init-image", json_body={"extension": extension})
        answer = parse_answer(InitImageAnswer, json_object(response, label=LABEL), label=LABEL)
        upload = answer.uploadInitImage
        if upload is None:
            raise TransientError(f"{LABEL} sent no upload details for the image")
        fields: Any = upload.fields
        if isinstance(fields, str):
            try:
                fields = json.loads(fields) if fields.strip() else {}
            except ValueError:
                raise TransientError(f"{LABEL} sent unreadable upload fields") from None
        if not isinstance(fields, Mapping):
            raise TransientError(f"{LABEL} sent unreadable upload fields")
        if not isinstance(upload.id, str) or not isinstance(upload.url, str):
            raise TransientError(f"{LABEL} sent incomplete upload details for the image")
        if not upload.id or not upload.url:
            raise TransientError(f"{LABEL} sent incomplete upload details for the image")
        return InitImageUpload(
            id=upload.id,
            url=upload.url,
            fields={str(k): str(v) for k, v in fields.items()},
            key=upload.key if isinstance(upload.key, str) else None,
        )

    async def upload_init_image(self, image: InputImage) -> str:
        """Upload an image for guidances; returns its init-image id."""
        upload = await self.request_init_image(image.extension)
        target = await self._guard.check(upload.url)
        content = await asyncio.to_thread(image.path.read_bytes)
        parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in upload.fields.items()]
        parts.append(("file", (image.filename or f"image.{image.extension}", content, image.mime)))
        try:
            # Deliberately no Authorization header: the presigned POST carries its own policy,
            # and S3 refuses requests that also carry a bearer token.
            upload_request = self._client.build_request("POST", target, files=parts)
            upload_request.headers.pop("Authorization", None)
            response = await self._client.send(upload_request, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise TransientError(f"{LABEL}: image upload failed ({type(exc).__name__})") from None
        if 200 <= response.status_code < 300:
            return upload.id
        if response.status_code == 400:
            raise InvalidRequestError(
                f"{LABEL}'s image storage refused the image (HTTP 400). "
                "Try a PNG or JPEG under 10 MB.",
                status_code=400,
            )
        raise TransientError(
            f"{LABEL}: image upload refused (HTTP {response.status_code})",
            status_code=response.status_code,
        )

    # ----- submit ---------------------------------------------------------------------

    def build_body(
        self,
        request: NegotiatedRequest,
        *,
        start_frame: str | None = None,
        end_frame: str | None = None,
        audio_field: str | None = None,
        include_seed: bool = True,
    ) -> dict[str, Any]:
        model = request.model if request.model in MODELS else self.model
        guidances = None
        if start_frame is not None:
            guidances = Guidances(
                start_frame=[FrameGuidance(image=ImageRef(id=start_frame))],
                end_frame=[FrameGuidance(image=ImageRef(id=end_frame))] if end_frame else None,
            )
        body = GenerationBody(
            model=model,
            public=False,
            parameters=LtxParameters(
                prompt=request.prompt,
                width=request.width,
                height=request.height,
                duration=request.duration,
                mode=resolution_mode(request.width, request.height),
                prompt_enhance="OFF",
                seed=request.seed if include_seed else None,
                guidances=guidances,
            ),
        )
        return body.to_json(audio_field=audio_field or self._audio_field, audio=request.audio)

    async def submit(self, request: NegotiatedRequest) -> ProviderJob:
        start_id: str | None = None
        end_id: str | None = None
        if request.image is not None:
            start_id = await self.upload_init_image(request.image)
        elif request.first_frame is not None:
            start_id = await self.upload_init_image(request.first_frame)
            if request.last_frame is not None:
                end_id = await self.upload_init_image(request.last_frame)

        audio_field = self._audio_field
        include_seed = True
        tried_audio = False
        adjustments: list[Adjustment] = []
        while True:
            body = self.build_body(
                request,
                start_frame=start_id,
                end_frame=end_id,
                audio_field=audio_field,
                include_seed=include_seed,
            )
            try:
                response = await self._call("POST", "/v2/generations", json_body=body, submit=True)
                break
            except InvalidRequestError as exc:
                text = exc.message.lower()
                if not tried_audio and audio_field == AUDIO_FIELDS[0] and audio_field in text:
                    log.info("Leonardo refused %s; retrying with `audio`", audio_field)
                    audio_field, tried_audio = AUDIO_FIELDS[1], True
                    continue
                if include_seed and "seed" in body["parameters"] and _SEED.search(text):
                    log.info("Leonardo refused `seed`; retrying without it")
                    include_seed = False
                    adjustments.append(
                        Adjustment(
                            field="seed",
                            requested=request.seed,
                            actual=None,
                            reason="Leonardo did not accept a seed for this model",
                            source="provider",
                        )
                    )
                    continue
                raise
        self._audio_field = audio_field

        data = json_object(response, label=LABEL)
        gen_id, cost = parse_generation(data)
        if gen_id is None:
            raise TransientError(f"{LABEL} accepted the generation but sent no id")
        cost_usd = cost["amount"] if cost and cost["unit"] == "DOLLARS" else None
        self._first_seen[gen_id] = time.monotonic()
        return ProviderJob(
            provider=self.name,
            job_id=gen_id,
            adjustments=adjustments,
            cost_usd=cost_usd,
            data={
                "model": body["model"],
                "submitted_at": datetime.now(UTC).isoformat(),
                "init_image_ids": [i for i in (start_id, end_id) if i],
                "cost": cost,
                "audio_field": audio_field,
            },
        )

    # ----- status / download ----------------------------------------------------------

    def _seconds_since_submit(self, job: ProviderJob) -> float:
        submitted = job.data.get("submitted_at")
        if isinstance(submitted, str):
            try:
                when = datetime.fromisoformat(submitted)
            except ValueError:
                when = None
            if when is not None and when.tzinfo is not None:
                return (datetime.now(UTC) - when).total_seconds()
        first = self._first_seen.setdefault(job.job_id, time.monotonic())
        return time.monotonic() - first

    async def status(self, job: ProviderJob) -> JobStatus:
        response = await self._call("GET", f"/v1/generations/{path_segment(job.job_id)}")
        answer = parse_answer(GenerationAnswer, json_object(response, label=LABEL), label=LABEL)
        generation = answer.generations_by_pk
        if generation is None:
            if self._seconds_since_submit(job) < self._missing_grace:
                return JobStatus(state=JobState.QUEUED)
            raise JobNotFoundError(f"{LABEL} does not know generation {job.job_id}")
        word = str(generation.status or "").upper()
        if word == "FAILED":
            self._forget(job.job_id)
            reason = generation.failureReason or generation.error
            return JobStatus(
                state=JobState.FAILED,
                failure_reason=str(reason) if reason else f"{LABEL} reported the generation failed",
            )
        if word != "COMPLETE":
            return JobStatus(state=JobState.RUNNING)
        url = video_url(generation)
        if url is not None:
            self._result_urls[job.job_id] = url
            self._complete_without_url.pop(job.job_id, None)
            return JobStatus(
                state=JobState.COMPLETED,
                progress=1.0,
                result_url=url,
                nsfw=flagged_nsfw(generation),
            )
        since = self._complete_without_url.setdefault(job.job_id, time.monotonic())
        if time.monotonic() - since < self._url_grace:
            return JobStatus(state=JobState.RUNNING, progress=0.99)
        self._forget(job.job_id)
        return JobStatus(
            state=JobState.FAILED,
            failure_reason=f"{LABEL} finished the generation but gave no video URL",
        )

    def _forget(self, job_id: str) -> None:
        self._first_seen.pop(job_id, None)
        self._complete_without_url.pop(job_id, None)
        self._result_urls.pop(job_id, None)

    async def download(self, job: ProviderJob, dest: Path) -> None:
        await self._download_result(job, dest, noun="generation")  # from the CDN
        self._forget(job.job_id)

    # ----- account --------------------------------------------------------------------

    async def check(self) -> CheckResult:
        try:
            response = await self._call("GET", "/v1/me")
            answer = parse_answer(MeAnswer, json_object(response, label=LABEL), label=LABEL)
        except ProviderError as exc:
            return CheckResult(provider=self.name, ok=False, detail=exc.message)
        if not answer.user_details:
            return CheckResult(provider=self.name, ok=True, detail="key accepted (no details)")
        first = answer.user_details[0]
        parts = ["key accepted"]
        balances = []
        for key, label in (
            ("apiPaidTokens", "API paid"),
            ("apiSubscriptionTokens", "API subscription"),
            ("paidTokens", "paid"),
            ("subscriptionTokens", "subscription"),
        ):
            value = finite_number(getattr(first, key))
            if value is not None:
                balances.append(f"{label} {value:g}")
        if balances:
            parts.append("credits: " + ", ".join(balances))
        slots = finite_number(first.apiConcurrencySlots)
        if slots is not None:
            parts.append(f"concurrency slots: {slots:g}")
        return CheckResult(provider=self.name, ok=True, detail="; ".join(parts))

    async def cancel(self, job: ProviderJob) -> bool:
        return False  # no cancel endpoint; see the module docstring
