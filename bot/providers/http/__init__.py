"""HTTP plumbing shared by the hosted providers.

- `request`: `send()` one request, `json_object()` its body;
- `errors`: non-2xx answers and transport failures → the typed errors of `base.py`
  (error envelopes, `Retry-After`, `scrub()` of secrets), `DownloadError`, `UnsafeURLError`;
- `answers`: `TolerantModel` and lenient readers of answer bodies;
- `urlguard`: `URLGuard` and the URLs built from what a provider sends;
- `download`: `stream_to_file()`, the capped, guarded download;
- `hosted`: `HostedApi`, the base of the hosted providers' clients (key, base URL, guard).
"""

from bot.providers.http.answers import TolerantModel, find_url, finite_number, parse_answer
from bot.providers.http.download import DEFAULT_MAX_DOWNLOAD_BYTES, stream_to_file
from bot.providers.http.errors import (
    DownloadError,
    UnsafeURLError,
    error_details,
    parse_retry_after,
    raise_for_status,
)
from bot.providers.http.hosted import HostedApi
from bot.providers.http.request import json_object, send
from bot.providers.http.urlguard import URLGuard, host_of, path_segment

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DownloadError",
    "HostedApi",
    "TolerantModel",
    "URLGuard",
    "UnsafeURLError",
    "error_details",
    "find_url",
    "finite_number",
    "host_of",
    "json_object",
    "parse_answer",
    "parse_retry_after",
    "path_segment",
    "raise_for_status",
    "send",
    "stream_to_file",
]
