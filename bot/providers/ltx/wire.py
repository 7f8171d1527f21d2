"""The LTX API's wire format (`openapi/ltx-api.openapi.json`, PROVIDERS.md section C).

- upload: `POST /v1/upload` (no body) → `{upload_url, storage_uri, expires_at,
  required_headers}`; the file is PUT to `upload_url` with every required header and no
  API key; `storage_uri` then goes into `image_uri` / `last_frame_uri` / `audio_uri` /
  `video_uri`. (Base64 data URIs are documented only for the HDR/reframe inputs, so every
  input is uploaded.)
- submit: `POST /v2/{endpoint}` with one of the bodies below → 202 `{id, created_at}`;
- poll: `GET /v2/{endpoint}/{id}` → `status` pending / processing / completed (`result`
  maps output names to URLs, `video_url` for video) / failed (`error {type, message}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.providers.http import TolerantModel

Endpoint = Literal["text-to-video", "image-to-video", "audio-to-video", "extend", "retake"]


class _Body(BaseModel):
    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TextToVideoBody(_Body):
    prompt: str
    model: str
    duration: int
    resolution: str
    fps: int
    generate_audio: bool


class ImageToVideoBody(TextToVideoBody):
    image_uri: str
    last_frame_uri: str | None = None


class AudioToVideoBody(_Body):
    audio_uri: str
    prompt: str
    image_uri: str | None = None
    resolution: str
    model: str


class ExtendBody(_Body):
    video_uri: str
    duration: float
    prompt: str | None = None
    mode: Literal["end", "start"]
    model: str
    context: float


class RetakeBody(_Body):
    video_uri: str
    start_time: float
    duration: float
    prompt: str
    mode: Literal["replace_audio", "replace_video", "replace_audio_and_video"]
    model: str


RETAKE_MODES = {
    "audio": "replace_audio",
    "video": "replace_video",
    "both": "replace_audio_and_video",
}


# ----- answers (the spec's shapes; extras kept, read tolerantly) -------------------------


class UploadAnswer(TolerantModel):
    upload_url: str
    storage_uri: str
    expires_at: Any = None
    required_headers: dict[str, str] = Field(default_factory=dict)


class CreatedAnswer(TolerantModel):
    id: str
    created_at: Any = None


class JobError(TolerantModel):
    type: Any = None
    message: Any = None


class StatusAnswer(TolerantModel):
    id: Any = None
    status: Any = None
    created_at: Any = None
    completed_at: Any = None
    result: Any = None
    error: JobError | None = None

    def video_url(self) -> str | None:
        """`result.video_url`, else the one URL in `result` (C.11)."""
        result = self.result
        if not isinstance(result, dict):
            return None
        url = result.get("video_url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
        urls = [v for v in result.values() if isinstance(v, str) and v.startswith("http")]
        return urls[0] if len(urls) == 1 else None
