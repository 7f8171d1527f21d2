"""Media: input images, the simulator's clips, probing and fit-to-size.

- `images`: check an uploaded image (Pillow) and save it as an `InputImage`;
- `render`: draw the simulator's MP4 (PyAV);
- `video`: `probe` a clip, `fit_to_size` for an upload limit, `save_source_clip` (PyAV);
- `audio`: check a soundtrack by decoding it and save it as an `InputAudio` (PyAV);
- `video`: `probe` a clip, `fit_to_size` for an upload limit, `sample_frames` (PyAV);
- `poster`: a clip's poster frame as a small JPEG (PyAV + Pillow), for the mod-log;
- `output`: temporary files, encoder threads and audio rate shared by `render` and `video`;
- `errors`: `MediaError`, whose `message` says what the member can change.

Every function is synchronous and CPU/disk bound; async callers run them with
`asyncio.to_thread`.
"""

from bot.media.audio import MAX_AUDIO_BYTES, save_input_audio
from bot.media.errors import MediaError
from bot.media.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MIN_IMAGE_EDGE,
    MAX_IMAGE_BYTES,
    check_image_bytes,
    save_input_image,
)
from bot.media.poster import poster_jpeg
from bot.media.render import render_clip
from bot.media.video import (
    VideoInfo,
    fit_to_size,
    probe,
    sample_frames,
    save_source_clip,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MIN_IMAGE_EDGE",
    "MAX_AUDIO_BYTES",
    "MAX_IMAGE_BYTES",
    "MediaError",
    "VideoInfo",
    "check_image_bytes",
    "fit_to_size",
    "poster_jpeg",
    "probe",
    "render_clip",
    "sample_frames",
    "save_input_audio",
    "save_input_image",
    "save_source_clip",
]
