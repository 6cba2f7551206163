"""One typed configuration object, read from ``RECORDER_*`` environment variables.

Every field has a documented default; ``RecorderConfig.from_env()`` overrides a field
when ``RECORDER_<FIELD NAME IN CAPITALS>`` is set. The README lists them all.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

ENV_PREFIX = "RECORDER_"
PARTICIPANT_KINDS = ("standard", "ingress", "egress", "sip", "agent", "connector", "bridge")
# libx264's presets, fastest first.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")  # fmt: skip
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


_NOT_BLANK = ("agent_name",)  # set but empty is a mistake, not "use the default"


def _valid_name(name: str) -> bool:
    return name == name.strip() and name.isprintable() and len(name) <= 128


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class ConfigError(ValueError):
    """A setting is missing its meaning: wrong type, out of range, or inconsistent."""


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class RecorderConfig:
    """Settings of the recording core. Sizes are pixels, times seconds, rates bits/s."""

    output_dir: Path = _doc("Root folder; files go to <output_dir>/<room>/.", Path("recordings"))  # noqa: RUF009
    output_format: str = _doc(
        "'ts': one growing .ts file per recording; 'hls': TS segments + a live playlist.", "ts"
    )
    segment_seconds: float = _doc(
        "HLS segment length; keyframes are forced on this cadence (output_format=hls).", 4.0
    )

    # Video encoding (libx264).
    x264_preset: str = _doc("libx264 preset; 'veryfast' keeps up in real time.", "veryfast")
    adaptive_quality: bool = _doc(
        "When a recording falls behind real time, step x264's preset down to ultrafast, then "
        "the frame rate, before any frame is lost; back up when it catches up (manifest "
        "events 'quality').",
        True,
    )
    min_fps: int = _doc("Lowest frame rate adaptive_quality steps down to.", 10)
    x264_tune: str = _doc("libx264 tune; 'zerolatency' avoids frame buffering.", "zerolatency")
    video_crf: int = _doc("Constant rate factor (quality) when video_bitrate is 0.", 23)
    video_bitrate: int = _doc("Target video bitrate in bit/s; 0 means CRF mode.", 0)
    gop_seconds: float = _doc("Keyframe interval in seconds.", 2.0)
    nominal_fps: int = _doc(
        "Frame rate the stream declares and carries at most; sizes the GOP and rate control.",
        30,
    )
    x264_threads: int = _doc("libx264 threads per recording; 0 lets libx264 choose.", 2)
    encoder_nice: int = _doc(
        "Niceness of a video recording's threads (Linux); above 0 keeps WebRTC's audio pump"
        " on time. Audio-only files stay at 0: their AAC is cheap, and at 10 they starved.",
        10,
    )

    # Canvas.
    canvas_max_long: int = _doc("Longest canvas edge; larger first frames are scaled down.", 1920)
    canvas_max_short: int = _doc("Shortest canvas edge cap.", 1080)
    canvas_width: int = _doc("Fixed canvas width; 0 takes the first frame's size.", 0)
    canvas_height: int = _doc("Fixed canvas height; 0 takes the first frame's size.", 0)
    fallback_width: int = _doc("Canvas width when no video arrives before layout_wait.", 1280)
    fallback_height: int = _doc("Canvas height when no video arrives before layout_wait.", 720)
    layout_wait: float = _doc(
        "How long audio may wait for a first video frame (which follows a keyframe).", 3.0
    )
    max_input_dimension: int = _doc("Frames wider or taller than this are dropped.", 8192)

    # Audio encoding (AAC-LC).
    audio_sample_rate: int = _doc("Output sample rate.", 48000)
    audio_channels: int = _doc("Output channels (1 or 2).", 1)
    audio_bitrate: int = _doc("AAC bitrate in bit/s.", 64000)
    aac_coder: str = _doc(
        "FFmpeg AAC coder: 'fast' (0.007 cores per speech stream) or 'twoloop', FFmpeg's "
        "default (0.023 cores), bench/e2e_voice.py.",
        "fast",
    )

    # Timeline.
    gap_fill_delay: float = _doc("Media lag before silence or a repeated frame fills a gap.", 0.5)
    video_fill_interval: float = _doc("Interval of the repeated frame while video stops.", 1.0)

    # Queues, durability, bookkeeping.
    video_queue_frames: int = _doc("Video frames that may wait for the encoder.", 30)
    audio_queue_seconds: float = _doc(
        "Seconds of audio that may wait (30 s of 48 kHz stereo: about 6 MB): a voice job process"
        " starting beside a CPU hog took 0.8 s of audio in its first 5 s.",
        30.0,
    )
    fsync_interval: float = _doc("Seconds between fsync calls on the recording.", 1.0)
    manifest_interval: float = _doc("Seconds between manifest rewrites (also at each event).", 5.0)
    max_manifest_events: int = _doc("Events kept in the manifest; later ones are counted.", 1000)

    # The LiveKit worker.
    participant_kinds: str = _doc(
        "Participant kinds to record (standard, sip, ingress, agent, egress, connector, "
        "bridge). Recorders never record themselves or each other.",
        "standard,sip,ingress,agent",
    )
    screen_share: str = _doc(
        "'separate': screen share (+ its audio) to its own file; 'off'.", "separate"
    )
    agent_name: str = _doc(
        "Empty: dispatched into every new room. A name: explicit dispatch only, started with "
        "LiveKit's dispatch API (`lk dispatch create --agent-name NAME --room R`).",
        "",
    )
    consent: str = _doc(
        "'opt-out': everyone is recorded unless their attribute says opt_out_value; "
        "'opt-in': only participants whose attribute says opt_in_value.",
        "opt-out",
    )
    opt_out_attribute: str = _doc("Participant attribute that carries consent.", "recording")
    opt_out_value: str = _doc("Value of that attribute that means: do not record me.", "off")
    opt_in_value: str = _doc("Value that means: record me (consent=opt-in).", "on")
    track_end_grace: float = _doc(
        "A recording whose tracks all ended waits this long for a republish.", 5.0
    )
    progress_interval: float = _doc("Seconds between progress log lines per recording.", 5.0)
    shutdown_timeout: float = _doc("Seconds a job may take to finalize before it is killed.", 30.0)
    drain_timeout: int = _doc("On SIGTERM in start mode, seconds to let rooms finish.", 1800)
    reconcile_interval: float = _doc(
        "Seconds between the worker's checks that every room has a recorder (LiveKit "
        "dispatches a room once, at creation); 0: off.",
        3.0,
    )
    load_threshold: float = _doc(
        "Load (0..1, see capacity_cores) above which no new room is taken; above 1: never.", 0.7
    )
    idle_processes: int = _doc(
        "Job processes kept started, waiting for a room (each holds about 39 MB); more are"
        " started on demand.",
        1,
    )
    http_port: int = _doc(
        "Port of the worker's health-check HTTP server; 0 picks a free one.", 8081
    )
    metrics_port: int = _doc("Port of the Prometheus /metrics endpoint; 0: off.", 0)
    capacity_cores: float = _doc(
        "CPU cores the worker may use for recording; its load is the CPU use of its "
        "recording job processes over this (0: what the process can have: its cgroup's CPU "
        "limit, such as a container's --cpus, or the CPUs it may run on).",
        0.0,
    )
    room_cost_cores: float = _doc(
        "What a room is taken to cost (cores) until its recording is measured: a burst is "
        "accepted at this rate. A room of two voices measured 0.036-0.062 in steady state; "
        "set the real cost where a fleet must never pass its threshold in a burst.",
        0.02,
    )

    # Object storage upload (obstore); off when upload_url is empty.
    upload_url: str = _doc(
        "s3://bucket/prefix, gs://bucket/prefix or az://container/prefix; credentials "
        "from the provider's usual environment (AWS_*, GOOGLE_*, AZURE_*).",
        "",
    )
    upload_delete_local: bool = _doc(
        "Delete segments and finished files locally once the store confirmed them.", False
    )
    upload_spool_budget_mb: float = _doc(
        "Local MB awaiting upload above which the worker takes no new rooms.", 10240.0
    )
    upload_retry_max: float = _doc("Longest wait between upload retries (backoff).", 30.0)

    # Webhooks; off when webhook_url is empty.
    webhook_url: str = _doc(
        "http(s) URL(s), comma-separated, that get signed JSON events of each recording "
        "(recording_started, _finished, _failed, _uploaded), at least once.",
        "",
    )
    webhook_timeout: float = _doc("Seconds a webhook receiver may take to answer.", 10.0)
    webhook_retry_max: float = _doc("Longest wait between webhook retries (backoff).", 60.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))  # a str is fine too
        checks = [
            (self.video_crf in range(0, 52), "video_crf must be 0..51"),
            (self.video_bitrate >= 0, "video_bitrate must be >= 0"),
            (self.gop_seconds > 0, "gop_seconds must be > 0"),
            (self.nominal_fps > 0, "nominal_fps must be > 0"),
            (self.x264_preset in X264_PRESETS, f"x264_preset must be one of {X264_PRESETS}"),
            (0 < self.min_fps <= self.nominal_fps, "min_fps must be 1..nominal_fps"),
            (
                not self.adaptive_quality or self.x264_tune == "zerolatency",
                "adaptive_quality switches encoders mid-stream, which needs x264_tune "
                "zerolatency (no B-frames); set adaptive_quality false for another tune",
            ),
            (self.x264_threads >= 0, "x264_threads must be >= 0"),
            (0 <= self.encoder_nice <= 19, "encoder_nice must be 0..19"),
            (self.canvas_max_long >= self.canvas_max_short >= 2, "canvas caps must be >= 2"),
            ((self.canvas_width == 0) == (self.canvas_height == 0), "set both canvas sizes"),
            (self.canvas_width >= 0 and self.canvas_height >= 0, "canvas size must be >= 0"),
            (self.fallback_width >= 2 and self.fallback_height >= 2, "fallback canvas >= 2"),
            (self.audio_channels in (1, 2), "audio_channels must be 1 or 2"),
            (self.audio_sample_rate in _AAC_RATES, f"audio_sample_rate must be in {_AAC_RATES}"),
            (self.audio_bitrate > 0, "audio_bitrate must be > 0"),
            (self.aac_coder in ("fast", "twoloop"), "aac_coder must be fast or twoloop"),
            (self.video_queue_frames > 0 and self.audio_queue_seconds > 0, "queues must be > 0"),
            (self.fsync_interval >= 0, "fsync_interval must be >= 0"),
            (self.gap_fill_delay >= 0 and self.video_fill_interval > 0, "bad fill timing"),
            (self.layout_wait >= 0 and self.manifest_interval > 0, "bad wait timing"),
            (self.screen_share in ("separate", "off"), "screen_share must be separate or off"),
            (set(self.kinds) <= set(PARTICIPANT_KINDS), f"participant_kinds: {PARTICIPANT_KINDS}"),
            (self.track_end_grace >= 0 and self.progress_interval > 0, "bad worker timing"),
            (self.shutdown_timeout > 0 and self.drain_timeout >= 0, "bad shutdown timing"),
            (self.load_threshold > 0, "load_threshold must be > 0"),
            (self.idle_processes >= 0, "idle_processes must be >= 0"),
            (self.reconcile_interval >= 0, "reconcile_interval must be >= 0"),
            (self.output_format in ("ts", "hls"), "output_format must be ts or hls"),
            (self.segment_seconds >= 1, "segment_seconds must be >= 1"),
            (self.metrics_port >= 0 and self.capacity_cores >= 0, "bad metrics settings"),
            (self.room_cost_cores >= 0, "room_cost_cores must be >= 0"),
            (self.upload_spool_budget_mb > 0 and self.upload_retry_max > 0, "bad upload timing"),
            (
                not self.upload_url or "://" in self.upload_url,
                "upload_url must be a URL such as s3://bucket/prefix",
            ),
            (self.consent in ("opt-out", "opt-in"), "consent must be opt-out or opt-in"),
            (
                self.agent_name == "" or _valid_name(self.agent_name),
                "agent_name must be printable, without spaces at either end",
            ),
            (self.webhook_timeout > 0 and self.webhook_retry_max > 0, "bad webhook timing"),
            *[
                (_http_url(u), f"webhook_url #{i}: not an http(s) URL with a host")  # no echo:
                for i, u in enumerate(self.webhooks, 1)  # a URL may carry credentials
            ],
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def webhooks(self) -> tuple[str, ...]:
        """``webhook_url`` as a tuple of URLs."""
        return tuple(u.strip() for u in self.webhook_url.split(",") if u.strip())

    @property
    def kinds(self) -> tuple[str, ...]:
        """``participant_kinds`` as a tuple of names."""
        return tuple(k.strip().lower() for k in self.participant_kinds.split(",") if k.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RecorderConfig:
        """Build a config from ``RECORDER_*`` variables; keyword overrides win."""
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and not raw.strip() and f.name in _NOT_BLANK:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()} is set but empty")
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse_bool(raw) if hints[f.name] is bool else hints[f.name](raw)
            except ValueError as e:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: {e}") from None
        values.update(overrides)
        return cls(**values)

    @classmethod
    def documented_fields(cls) -> list[tuple[str, Any, str]]:
        """(environment variable, default, meaning) for each field, for the README."""
        return [
            (ENV_PREFIX + f.name.upper(), f.default, f.metadata["doc"])
            for f in dataclasses.fields(cls)
        ]
