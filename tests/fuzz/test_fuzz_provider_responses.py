"""Provider answers fuzzed: the parsers directly, and whole provider calls through
`httpx.MockTransport`. The outcome is a valid result or one of the typed errors of
`bot/providers/base.py` (never KeyError/TypeError/ValidationError/InvalidURL), with finite
numbers, and no message ever holds the API key even when the answer echoes it.

No request leaves the process: MockTransport answers everything and the URL guard resolves
host names with a stub (no DNS).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from hypothesis import event, example, given
from hypothesis import strategies as st

from bot.jobs.tracker.steps import _merge_provider_report
from bot.negotiation import merge_adjustments
from bot.providers import bytecompute, leonardo
from bot.providers.base import (
    Adjustment,
    InputImage,
    JobState,
    JobStatus,
    Mode,
    NegotiatedRequest,
    ProviderError,
    ProviderJob,
)
from bot.providers.http import (
    URLGuard,
    error_details,
    find_url,
    parse_retry_after,
    raise_for_status,
)
from bot.providers.leonardo.wire import video_url
from bot.store.jobs import JobRecord, Status
from tests.fuzz import strategies as s
from tests.fuzz.budget import fuzz
from tests.fuzz.images import corpus

KEY = "bc_SECRET_fuzz_key_8b1f"
BC_BASE = "https://api.bytecompute.test"
LEO_BASE = "https://cloud.leonardo.test/api/rest"
MAX_BYTES = 64 * 1024

# Host names the stub resolver knows; anything else "does not resolve".
PUBLIC_HOSTS = {"cdn.example": ["93.184.216.34"], "files.example": ["2606:2800:220:1::1"]}
PRIVATE_HOSTS = {"internal.example": ["10.0.0.5"], "meta.example": ["169.254.169.254"]}


async def stub_resolver(host: str, port: int) -> list[str]:
    known = {**PUBLIC_HOSTS, **PRIVATE_HOSTS}
    if host in known:
        return known[host]
    raise OSError(f"stub resolver: {host} does not resolve")


def guard_for(base: str) -> URLGuard:
    return URLGuard.for_base_urls(base, resolver=stub_resolver)


# ----- answers --------------------------------------------------------------------------

retry_afters = st.one_of(
    st.none(),
    st.integers(-10, 10**6).map(str),
    st.sampled_from(
        ["inf", "1e999", "nan", "-inf", "1e12", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", ""]
    ),
    st.sampled_from(["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT"]),
    st.text(max_size=12),
)
urls = st.one_of(
    st.sampled_from(
        [
            f"{BC_BASE}/files/clip.mp4",
            "https://cdn.example/v.mp4",
            "https://files.example/v.mp4",
            "https://internal.example/v.mp4",
            "http://meta.example/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/x.mp4",
            "http://[::1]/x.mp4",
            "https://unknown.invalid/x.mp4",
            "ftp://cdn.example/x.mp4",
            "/relative/path.mp4",
            "https://[::1/x.mp4",
            "https://cdn.example/\x00.mp4",
            "https://cdn.example:99999/x.mp4",
        ]
    ),
    st.text(max_size=30),
)


SHAPES = {
    ("bytecompute", "submit"): ["bc"],
    ("bytecompute", "status"): ["bc"],
    ("bytecompute", "download"): ["bc"],
    ("bytecompute", "check"): ["bc"],
    ("leonardo", "submit"): ["leo-init", "leo-create"],
    ("leonardo", "status"): ["leo-gen"],
    ("leonardo", "download"): ["leo-gen"],
    ("leonardo", "check"): ["leo-me"],
}


@st.composite
def plausible(draw: st.DrawFn, shapes: list[str]) -> Any:
    """An answer shaped like the documented ones, with any value in any field."""
    anything = s.json_values(6)
    words = st.sampled_from([*bytecompute._STATES, "COMPLETE", "FAILED", "PENDING", "Done!"])
    ids = st.one_of(st.text(min_size=1, max_size=12), st.integers(), anything)
    shape = draw(st.sampled_from(shapes))
    if shape == "bc":
        adjustment = st.fixed_dictionaries(
            {"field": st.sampled_from(["fps", "duration", "resolution"]), "to": anything}
        )
        return {
            draw(st.sampled_from(["id", "job_id", "jobId"])): draw(ids),
            "status": draw(st.one_of(words, anything)),
            "progress": draw(st.one_of(st.floats(), st.integers(-10, 200), anything)),
            "eta": draw(st.one_of(st.floats(), st.text(max_size=6), anything)),
            "adjustments": draw(st.one_of(st.lists(adjustment, max_size=3), anything)),
            draw(st.sampled_from(["url", "result", "video_url"])): draw(urls),
            "error": draw(anything),
        }
    if shape == "leo-gen":
        item = st.fixed_dictionaries(
            {draw(st.sampled_from(["motionMP4URL", "url", "videoUrl"])): urls}
        )
        record = {
            "id": draw(ids),
            "status": draw(st.one_of(words, anything)),
            draw(st.sampled_from(["generated_images", "generated_videos"])): draw(
                st.one_of(st.lists(item, max_size=2), anything)
            ),
            "failureReason": draw(anything),
        }
        return {"generations_by_pk": draw(st.one_of(st.just(record), anything))}
    if shape == "leo-create":
        inner = {
            "generationId": draw(ids),
            "cost": {"amount": draw(anything), "unit": draw(st.sampled_from(["DOLLARS", "X"]))},
            "apiCreditCost": draw(anything),
        }
        return draw(st.sampled_from([{"generate": inner}, inner, {"sdGenerationJob": inner}]))
    if shape == "leo-init":
        fields = st.one_of(
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3).map(json.dumps),
            anything,
        )
        return {
            "uploadInitImage": {
                "id": draw(ids),
                "url": draw(urls),
                "fields": draw(fields),
                "key": draw(anything),
            }
        }
    return {"user_details": draw(st.one_of(st.lists(st.dictionaries(
        st.sampled_from(["apiPaidTokens", "apiConcurrencySlots", "paidTokens"]), anything
    ), max_size=2), anything))}  # fmt: skip


@st.composite
def answers(draw: st.DrawFn, shapes: list[str]) -> dict[str, Any]:
    status = draw(
        s.mostly(
            st.sampled_from([200, 201]),
            st.one_of(
                st.sampled_from([204, 302, 400, 401, 402, 403, 404, 409, 429, 500, 502, 503]),
                st.sampled_from([408, 413, 422, 301, 303, 307, 308]),
                st.integers(100, 599),
            ),
            70,
        )
    )
    kind = draw(
        st.sampled_from(["plausible", "plausible", "json", "bytes", "html", "empty", "mp4"])
    )
    if kind == "plausible":
        value = draw(plausible(shapes))
        body = json.dumps(value, allow_nan=True).replace('"KEY"', json.dumps(KEY)).encode()
    elif kind == "json":
        value = draw(s.json_values())
        body = json.dumps(value, allow_nan=True).replace('"KEY"', json.dumps(KEY)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=256))
    elif kind == "html":
        body = f"<html><title>{draw(st.text(max_size=20))} {KEY}</title></html>".encode()
    elif kind == "mp4":
        body = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * draw(st.integers(0, 2 * MAX_BYTES))
    else:
        body = b""
    headers: dict[str, str] = {}
    ctype = draw(
        st.sampled_from(["application/json", "text/html", "video/mp4", "", "application/x+json"])
    )
    if ctype:
        headers["content-type"] = ctype
    retry = draw(retry_afters)
    if retry is not None:
        headers["retry-after"] = retry
    if draw(st.booleans()):
        headers["location"] = draw(urls)
    if draw(st.booleans()):
        headers["content-length-claim"] = draw(
            st.one_of(st.integers(0, 10**12).map(str), s.number_text)
        )
    return {"status": status, "headers": headers, "body": body}


def header_value(text: str) -> str:
    """What httpx lets a test put in a header (ASCII, no line breaks)."""
    return text.encode("ascii", "replace").decode("ascii").replace("\r", "").replace("\n", "")


def scripted(script: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    calls = iter(range(10**6))

    def handler(request: httpx.Request) -> httpx.Response:
        answer = script[min(next(calls), len(script) - 1)]
        headers = {k: header_value(v) for k, v in answer["headers"].items()}
        claim = headers.pop("content-length-claim", None)
        response = httpx.Response(answer["status"], headers=headers, content=answer["body"])
        if claim is not None:
            response.headers["content-length"] = claim  # a lie about the size, possibly
        return response

    return handler


def request_for(mode: Mode, tmp: Path) -> NegotiatedRequest:
    images: dict[str, InputImage] = {}
    if mode is not Mode.TEXT:
        data = corpus()["png-RGB"]
        path = tmp / "image.png"
        path.write_bytes(data)
        image = InputImage(
            path=path, mime="image/png", width=96, height=72, sha256="0" * 64, filename="i.png"
        )
        images = {"image": image} if mode is Mode.IMAGE else {"first_frame": image}
    return NegotiatedRequest(
        prompt="a cat",
        provider="x",
        model="m",
        mode=mode,
        duration=6,
        width=1920,
        height=1080,
        fps=25,
        seed=7,
        **images,
    )


# ----- checks -----------------------------------------------------------------------------


def finite_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def check_status(status: JobStatus) -> None:
    assert status.progress is None or 0.0 <= status.progress <= 1.0, status.progress
    assert finite_or_none(status.eta_seconds), status.eta_seconds
    if status.result_url is not None:
        assert status.result_url.startswith(("http://", "https://"))
    for adj in status.adjustments:
        assert isinstance(adj, Adjustment)


def check_job(job: ProviderJob) -> None:
    assert isinstance(job.job_id, str) and job.job_id
    assert finite_or_none(job.cost_usd) and (job.cost_usd is None or job.cost_usd >= 0)


def check_error(exc: ProviderError) -> None:
    assert KEY not in str(exc) and KEY not in exc.message, exc.message
    retry_after = getattr(exc, "retry_after", None)
    assert retry_after is None or (math.isfinite(retry_after) and retry_after >= 0), retry_after


async def call(provider: Any, op: str, tmp: Path, mode: Mode, job_id: str) -> None:
    job = ProviderJob(
        provider=provider.name,
        job_id=job_id,
        data={"submitted_at": datetime.now(UTC).isoformat()},
    )
    dest = tmp / "clip.mp4"
    try:
        if op == "submit":
            check_job(await provider.submit(request_for(mode, tmp)))
        elif op == "status":
            check_status(await provider.status(job))
        elif op == "download":
            await provider.download(job, dest)
            assert 0 < dest.stat().st_size <= MAX_BYTES or dest.stat().st_size == 0
        elif op == "check":
            result = await provider.check()
            assert KEY not in result.detail
        event(f"{op}: ok")
    except ProviderError as exc:
        event(f"{op}: {type(exc).__name__}")
        check_error(exc)


def run_provider(
    kind: str, op: str, mode: Mode, script: list[dict[str, Any]], job_id: str = "job-1"
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-prov-"))

    async def main() -> None:
        transport = httpx.MockTransport(scripted(script))
        async with httpx.AsyncClient(transport=transport) as client:
            if kind == "bytecompute":
                provider: Any = bytecompute.ByteComputeProvider(
                    client, api_key=KEY, base_url=BC_BASE, max_download_bytes=MAX_BYTES
                )
                provider._guard = guard_for(BC_BASE)
            else:
                provider = leonardo.LeonardoProvider(
                    client,
                    api_key=KEY,
                    base_url=LEO_BASE,
                    max_download_bytes=MAX_BYTES,
                    missing_grace_seconds=0.0,
                    url_grace_seconds=0.0,
                )
                provider._guard = guard_for(LEO_BASE)
            await call(provider, op, tmp, mode, job_id)

    try:
        asyncio.run(main())
        leftovers = [p.name for p in tmp.iterdir() if p.name.endswith(".part")]
        assert not leftovers, "a partial download was left behind"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, str, list[dict[str, Any]]]:
    kind = draw(st.sampled_from(["bytecompute", "leonardo"]))
    op = draw(st.sampled_from(["submit", "status", "download", "check"]))
    script = draw(st.lists(answers(SHAPES[kind, op]), min_size=1, max_size=5))
    return kind, op, script


def ok(body: bytes, **headers: str) -> dict[str, Any]:
    return {"status": 200, "headers": headers, "body": body}


NAN_PROGRESS = ok(b'{"id": "j", "status": "running", "progress": NaN, "eta": 1e999}')
HUGE_LENGTH = ok(b"x", **{"content-length-claim": "9" * 5000})
BAD_URL = ok(
    json.dumps(
        {
            "generations_by_pk": {
                "status": "COMPLETE",
                "generated_images": [{"motionMP4URL": "https://[::1/x.mp4"}],
            }
        }
    ).encode()
)
ENDLESS_429 = {"status": 429, "headers": {"retry-after": "1e999"}, "body": b""}


@fuzz(250)
@given(
    scenario=scenarios(),
    mode=st.sampled_from(list(Mode)),
    job_id=s.mostly(st.just("job-1"), st.text(min_size=1, max_size=20)),
)
@example(scenario=("bytecompute", "status", [NAN_PROGRESS]), mode=Mode.TEXT, job_id="j")
@example(scenario=("bytecompute", "download", [HUGE_LENGTH]), mode=Mode.TEXT, job_id="j")
@example(scenario=("leonardo", "download", [BAD_URL]), mode=Mode.TEXT, job_id="j")
@example(scenario=("bytecompute", "submit", [ENDLESS_429]), mode=Mode.TEXT, job_id="j")
@example(scenario=("bytecompute", "status", [NAN_PROGRESS]), mode=Mode.TEXT, job_id="a/../b?\x00")
def test_provider_calls_end_in_results_or_typed_errors(
    scenario: tuple[str, str, list[dict[str, Any]]], mode: Mode, job_id: str
) -> None:
    kind, op, script = scenario
    run_provider(kind, op, mode, script, job_id)


def test_job_ids_stay_one_path_segment() -> None:
    """A job id from an answer is escaped into one segment of the provider's own URL."""
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"id": "x", "status": "running"})

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            provider = bytecompute.ByteComputeProvider(client, api_key=KEY, base_url=BC_BASE)
            for job_id in ("../../v1/generate", "a?b#c", "\x00\n", "\ud800"):
                job = ProviderJob(provider="bytecompute", job_id=job_id)
                assert (await provider.status(job)).state is JobState.RUNNING

    asyncio.run(main())
    assert [u.host for u in seen] == ["api.bytecompute.test"] * 4
    paths = [u.raw_path for u in seen]  # as sent (httpx's .path is the decoded form)
    assert all(p.startswith(b"/v1/jobs/") and p.count(b"/") == 3 for p in paths), paths
    assert not any(u.query for u in seen)


# ----- the parsers directly --------------------------------------------------------------


@fuzz(300)
@given(value=s.json_values(20))
def test_bytecompute_answer_parsers(value: Any) -> None:
    bytecompute.parse_state(value)
    adjustments = bytecompute.parse_adjustments(value)
    assert all(isinstance(a, Adjustment) for a in adjustments)
    if isinstance(value, dict):
        try:
            answer = bytecompute.JobAnswer.model_validate(value)
        except Exception as exc:  # what parse_answer turns into TransientError
            assert type(exc).__name__ == "ValidationError"
            return
        key = answer.job_key()
        assert key is None or (isinstance(key, str) and key)
        fraction = answer.progress_fraction()
        assert fraction is None or 0.0 <= fraction <= 1.0
        assert finite_or_none(answer.eta_value())
        failure = answer.failure()
        assert failure is None or isinstance(failure, str)


@fuzz(300)
@given(value=s.json_values(20))
def test_leonardo_answer_parsers(value: Any) -> None:
    if not isinstance(value, dict):
        return
    gen_id, cost = leonardo.parse_generation(value)
    assert gen_id is None or (isinstance(gen_id, str) and gen_id)
    if cost is not None:
        assert math.isfinite(cost["amount"]) and isinstance(cost["unit"], str)
    try:
        answer = leonardo.GenerationAnswer.model_validate(value)
    except Exception as exc:
        assert type(exc).__name__ == "ValidationError"
        return
    if answer.generations_by_pk is not None:
        url = video_url(answer.generations_by_pk)
        assert url is None or url.startswith(("http://", "https://"))


@fuzz(300)
@given(
    status=st.integers(100, 599),
    body=st.one_of(st.binary(max_size=200), s.json_values().map(lambda v: json.dumps(v).encode())),
    ctype=st.sampled_from(["application/json", "text/html", "", "text/plain"]),
    retry=retry_afters,
)
def test_error_envelopes_and_status_mapping(
    status: int, body: bytes, ctype: str, retry: str | None
) -> None:
    kind, message = error_details(body, ctype)
    assert kind is None or isinstance(kind, str)
    assert message is None or (isinstance(message, str) and len(message) <= 300)
    retry = header_value(retry) if retry else None
    headers = httpx.Headers({"content-type": ctype, **({"retry-after": retry} if retry else {})})
    try:
        raise_for_status(status, headers, body + KEY.encode(), label="P", secrets=[KEY])
    except ProviderError as exc:
        check_error(exc)
        assert exc.status_code == status
    else:
        assert 200 <= status < 300


@fuzz(200)
@given(value=retry_afters)
@example(value="inf")
@example(value="1e999")
@example(value="Fri, 31 Dec 9999 23:59:59 GMT")
def test_retry_after_is_finite_and_bounded(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= 24 * 3600)


@fuzz(200)
@given(value=s.json_values(20))
def test_find_url_only_returns_http_urls(value: Any) -> None:
    found = find_url(value)
    assert found is None or found.startswith(("http://", "https://"))


def job_record(seconds: float = 6.0, cost: float = 0.36) -> JobRecord:
    request = request_for(Mode.TEXT, Path("/nonexistent"))
    now = datetime.now(UTC)
    return JobRecord(
        id=1,
        guild_id=1,
        channel_id=1,
        user_id=1,
        provider="x",
        model="m",
        mode=Mode.TEXT,
        prompt="a cat",
        status=Status.SUBMITTED,
        params_json=request.model_dump_json(),
        seconds=seconds,
        cost_usd=cost,
        created_at=now,
        updated_at=now,
    )


@fuzz(300)
@given(value=s.json_values(20), cost=st.one_of(st.none(), st.floats()))
@example(value=[{"field": "duration", "to": "1e999"}], cost=None)
@example(value={"duration": {"from": 6, "to": "inf"}}, cost=float("inf"))
def test_reported_adjustments_keep_the_job_finite(value: Any, cost: float | None) -> None:
    """What a provider reports after submit, folded into the job row (tracker) and into the
    request (negotiation): seconds and cost stay finite and non-negative."""
    adjustments = bytecompute.parse_adjustments(value)
    record = job_record()
    fields = _merge_provider_report(record, adjustments, cost)
    for name in ("seconds", "cost_usd"):
        if name in fields:
            assert math.isfinite(fields[name]) and fields[name] >= 0, (name, fields[name])
    merged = merge_adjustments(record.request, adjustments)
    assert merged.width > 0 and merged.height > 0 and merged.fps > 0 and merged.duration > 0
