"""The ``forward:`` section of the hub config: the county platform's sinks and the retry policy.

Secrets come from files (or inline ``password``/``secret`` for tests) and are
never logged. This module is a leaf: hub.config validates the section with
it, and hub.forward builds the running sinks from what it validated
(hub/forward/plugin.py), taking its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator

from protocol.ids import is_device_id
from xlconfig import Bool, Expect, Float, Int, NonEmptyPath, Str, problem


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("an http(s) URL")
    return url


def _gateway_id(text: str) -> str:
    if not is_device_id(text):
        raise ValueError("a 20-digit GA/T 1400 ID")
    return text


def _verify_tls(value: Any) -> bool | str:
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise ValueError("true, false or a CA bundle path")


_URL = (AfterValidator(_http_url), Expect("an http(s) URL"))
_VERIFY = Annotated[
    bool | str,
    PlainValidator(_verify_tls),
    Expect("true, false or a CA bundle path"),
    Field(description="Check the platform's certificate: true, false or a CA bundle path (a county-internal CA)."),
]
EventKind = Literal["motion", "person", "panic", "tamper"]


@dataclass(frozen=True)
class ViidSection:
    base_url: Annotated[Str, *_URL, Field(description="The 视图库, without the trailing /VIID.")]
    gateway_id: Annotated[
        Str,
        AfterValidator(_gateway_id),
        Expect("a 20-digit GA/T 1400 ID, quoted"),
        Field(description="The hub's registered 20-digit ID; also the Digest username."),
    ]
    password_file: Annotated[NonEmptyPath | None, Field(description="A file holding the Digest password.")] = None
    password: Annotated[Str | None, Field(description="The password inline (tests; prefer password_file).")] = None
    keepalive_s: Annotated[Float, Field(gt=0, description="The platform expects 30-60 s.")] = 45.0
    timeout_s: Annotated[Float, Field(gt=0)] = 10.0
    event_sort: Annotated[
        Int,
        Field(
            gt=0,
            description="EventSort of the scene image: the code list differs "
            "between platform vendors; confirm it at integration.",
        ),
    ] = 4
    verify_tls: _VERIFY = True
    clips: Annotated[Bool, Field(description="Send the clips stored at the hub as VideoSlices (docs/clips.md).")] = True
    video_source: Annotated[
        Str,
        Field(
            pattern=r"^\d{1,2}$",
            description="视频来源 code of the VideoSlices (GA/T 1400.3; 99 other): confirm it at integration.",
        ),
    ] = "99"


@dataclass(frozen=True)
class WebhookSection:
    url: Annotated[Str, *_URL, Field(description="Where the signed JSON events are POSTed.")]
    secret_file: Annotated[NonEmptyPath | None, Field(description="A file holding the HMAC secret.")] = None
    secret: Annotated[Str | None, Field(description="The secret inline (tests; prefer secret_file).")] = None
    include_snapshot: Annotated[Bool, Field(description="Send the picture with a person event.")] = True
    # Motion-only events are noise for the governance platform; alerts always go.
    event_kinds: Annotated[
        tuple[EventKind, ...],
        Expect("a list of event kinds: motion, person, panic, tamper"),
        Field(description="Events sent; alerts always go."),
    ] = ("person", "panic", "tamper")
    timeout_s: Annotated[Float, Field(gt=0)] = 10.0
    verify_tls: _VERIFY = True
    # A clip is 1-3 MB: on a receiver that only files a link, bytes would be waste.
    clips: Annotated[
        Literal["link", "bytes", "off"],
        Expect("link, bytes or off"),
        Field(description="Clips stored at the hub: a link to the console's copy, the MP4 itself (base64), or none."),
    ] = "off"
    clip_base_url: Annotated[
        Str | None,
        *_URL,
        Field(
            description="The console as the receiver reaches it, for clips: link (e.g. https://hub.minqin.example:8080)."
        ),
    ] = None
    clip_link_secret_file: Annotated[
        NonEmptyPath | None,
        Field(
            description="For clips: link, a file holding the key (16 bytes or more) that signs the links, "
            "so the console serves that one clip without a login until the link expires. Not the webhook's "
            "secret: the receiver holds that one. Rotating it ends every link sent."
        ),
    ] = None
    clip_link_secret: Annotated[
        Str | None, Field(description="The link key inline (tests; prefer clip_link_secret_file).")
    ] = None
    # An SMS read on Monday about a Friday night still opens; a link forwarded on stops within the week.
    clip_link_days: Annotated[
        Float,
        Field(
            gt=0,
            le=30,
            description="How long a clip link works after it is sent: a week covers a weekend or a holiday "
            "before someone opens it, and bounds a link that was passed on.",
        ),
    ] = 7.0


@dataclass(frozen=True)
class ForwardConfig:
    dead_after_h: Annotated[
        Float,
        Field(
            gt=0,
            description="An item undeliverable this long becomes a dead "
            "letter: a long weekend of outage loses nothing.",
        ),
    ] = 72.0
    retry_base_s: Annotated[Float, Field(gt=0, description="First retry after half to all of this.")] = 5.0
    retry_cap_s: Annotated[
        Float, Field(gt=0, description="Never wait longer: a recovered platform is noticed quickly.")
    ] = 600.0
    viid: Annotated[ViidSection | None, Field(description="GA/T 1400 视图库 (optional).")] = None
    webhook: Annotated[WebhookSection | None, Field(description="Signed JSON webhook (optional).")] = None


def forward_problems(section: ForwardConfig | None, where: str) -> list[str]:
    """Rules between keys: at least one sink, and each sink's secret from somewhere readable."""
    if section is None:
        return []
    if section.viid is None and section.webhook is None:
        return [problem(where, {}, "at least one of viid or webhook (or remove the forward section)")]
    out = []
    for name, sink, file_key, inline in (
        ("viid", section.viid, "password_file", "password"),
        ("webhook", section.webhook, "secret_file", "secret"),
    ):
        if sink is None:
            continue
        path: Path | None = getattr(sink, file_key)
        if path is not None and not path.is_file():
            out.append(problem(f"{where}.{name}.{file_key}", str(path), "a readable file"))
        elif path is None and not getattr(sink, inline):
            out.append(problem(f"{where}.{name}.{file_key}", None, f"a file holding it (or {inline} inline)"))
    hook = section.webhook
    if hook is not None and hook.clips == "link":
        if not hook.clip_base_url:
            out.append(
                problem(f"{where}.webhook.clip_base_url", None, "the console's URL (clips: link sends links to it)")
            )
        key = f"{where}.webhook.clip_link_secret_file"
        if hook.clip_link_secret_file is not None and not hook.clip_link_secret_file.is_file():
            out.append(problem(key, str(hook.clip_link_secret_file), "a readable file"))
        elif hook.clip_link_secret_file is None and not hook.clip_link_secret:
            out.append(problem(key, None, "a file holding the key that signs clip links (or clip_link_secret inline)"))
        elif hook.clip_link_secret is not None and len(hook.clip_link_secret.encode()) < 16:
            out.append(problem(f"{where}.webhook.clip_link_secret", "(hidden)", "at least 16 bytes"))
    return out
