"""Leonardo's wire format: the create body, the answer models and the readers of answers.

(shared/reference/PROVIDERS.md, section B)

- frames: `POST /v1/init-image {"extension"}` → `uploadInitImage {id, url, fields, key}` where
  `fields` is a JSON string; then a multipart POST of those fields plus the file to the
  presigned `url`; the id goes into `guidances.start_frame` / `end_frame` as
  `{"image": {"id", "type": "UPLOADED"}}`;
- create: `POST /v2/generations` with `{model, public: false, parameters: {...}}`;
- poll: `GET /v1/generations/{id}` → `generations_by_pk.status` PENDING / COMPLETE / FAILED,
  the clip at `generated_images[0].motionMP4URL`;
- account: `GET /v1/me`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from bot.pricing import leonardo_tier
from bot.providers.http import TolerantModel, finite_number

AUDIO_FIELDS = ("motion_has_audio", "audio")


def resolution_mode(width: int, height: int) -> str:
    return f"RESOLUTION_{leonardo_tier(width, height)}"


@dataclass(frozen=True)
class InitImageUpload:
    id: str
    url: str
    fields: dict[str, str]
    key: str | None = None


# ----- request body (POST /v2/generations) ---------------------------------------------


class ImageRef(BaseModel):
    id: str
    type: Literal["UPLOADED"] = "UPLOADED"


class FrameGuidance(BaseModel):
    image: ImageRef


class Guidances(BaseModel):
    start_frame: list[FrameGuidance] | None = None
    end_frame: list[FrameGuidance] | None = None


class LtxParameters(BaseModel):
    prompt: str
    quantity: int = 1
    width: int
    height: int
    duration: int
    mode: str
    prompt_enhance: Literal["AUTO", "ON", "OFF"] = "OFF"
    seed: int | None = None
    guidances: Guidances | None = None


class GenerationBody(BaseModel):
    model: str
    public: bool = False
    parameters: LtxParameters

    def to_json(self, *, audio_field: str, audio: bool) -> dict[str, Any]:
        """The JSON body; the audio switch goes in under the name being tried."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["parameters"][audio_field] = audio
        return data


# ----- answers (shapes partly unknown: every field optional, extras kept) ---------------


class UploadInitImage(TolerantModel):
    id: Any = None
    url: Any = None
    fields: Any = None
    key: Any = None


class InitImageAnswer(TolerantModel):
    uploadInitImage: UploadInitImage | None = None


class GenerationRecord(TolerantModel):
    id: Any = None
    status: Any = None
    generated_images: list[Any] | None = None
    generated_videos: list[Any] | None = None
    failureReason: Any = None
    error: Any = None


class GenerationAnswer(TolerantModel):
    generations_by_pk: GenerationRecord | None = None


class UserDetails(TolerantModel):
    apiPaidTokens: Any = None
    apiSubscriptionTokens: Any = None
    paidTokens: Any = None
    subscriptionTokens: Any = None
    apiConcurrencySlots: Any = None


class MeAnswer(TolerantModel):
    user_details: list[UserDetails] | None = None


def parse_generation(data: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(generation id, cost) from a create answer, wherever the id sits."""
    candidates: list[Mapping[str, Any]] = [data]
    for key in ("generate", "sdGenerationJob", "motionVideoGenerationJob", "generation"):
        nested = data.get(key)
        if isinstance(nested, Mapping):
            candidates.append(nested)
    candidates.extend(v for v in data.values() if isinstance(v, Mapping) and v not in candidates)
    gen_id: str | None = None
    cost: dict[str, Any] | None = None
    for item in candidates:
        value = item.get("generationId") or item.get("generation_id")
        if gen_id is None and isinstance(value, (str, int)) and str(value):
            gen_id = str(value)
        if cost is None:
            cost = _parse_cost(item)
    return gen_id, cost


def _parse_cost(item: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = item.get("cost")
    if isinstance(raw, Mapping) and raw.get("amount") is not None:
        amount = finite_number(raw.get("amount"))
        if amount is not None:
            return {"amount": amount, "unit": str(raw.get("unit") or "CREDITS").upper()}
    credits = finite_number(item.get("apiCreditCost"))
    if credits is not None:
        return {"amount": credits, "unit": "CREDITS"}
    return None


def video_url(generation: GenerationRecord) -> str | None:
    for list_key in ("generated_images", "generated_videos"):
        items = getattr(generation, list_key)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, Mapping):
                continue
            for key in ("motionMP4URL", "videoUrl", "video_url"):
                value = item.get(key)
                if isinstance(value, str) and value.startswith(("http://", "https://")):
                    return value
            url = item.get("url")
            if (
                isinstance(url, str)
                and url.startswith(("http://", "https://"))
                and (list_key == "generated_videos" or _mp4_path(url))
            ):
                return url
    return None


def flagged_nsfw(generation: GenerationRecord) -> bool:
    """Leonardo's per-generation `nsfw` flag on any output item (PROVIDERS.md B.4)."""
    for list_key in ("generated_images", "generated_videos"):
        items = getattr(generation, list_key)
        if isinstance(items, list) and any(
            isinstance(item, Mapping) and item.get("nsfw") is True for item in items
        ):
            return True
    return False


def _mp4_path(url: str) -> bool:
    try:
        return httpx.URL(url).path.endswith(".mp4")
    except httpx.InvalidURL:
        return False
