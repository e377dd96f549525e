"""Configuration, run summary and the fixed vocabularies of the clickstream simulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

# Fault kinds written to the manifest (landing/_simulator/faults.jsonl), in a fixed order.
LINE_FAULTS: tuple[str, ...] = (
    "truncated",
    "garbage",
    "invalid_utf8",
    "wrong_type",
    "missing_field",
    "unknown_event_type",
    "duplicate",
    "late",
    "future",
)
FILE_FAULTS: tuple[str, ...] = ("empty_file", "crlf")
FAULT_KINDS: tuple[str, ...] = LINE_FAULTS + FILE_FAULTS


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes one simulated run; the same config gives the same bytes.

    Parameters
    ----------
    seed
        Seed of every random draw (numpy ``SeedSequence``); also the "random_state".
    start, days
        First simulated day (UTC midnight) and number of days.
    visitors
        Human population: customers already registered at ``start`` plus new visitors who
        arrive during the period. Bots come on top (``bot_share`` of ``visitors``).
    n_items, n_segments
        Catalog size and number of planted taste segments.
    existing_customer_share
        Share of ``visitors`` that are registered customers at ``start``.
    conversion_band
        ``(low, high)``: the share of new visitors who become customers with a first
        purchase during the period lands in this band (a rate is drawn inside it).
    fault_rate
        About this share of event lines is broken (0 = clean run, the default).
    late_window_days
        Ingestion's lateness window; ``None`` reads ``TRASOS_LATE_WINDOW_DAYS`` (default 3).
    batch_minutes
        The collector flushes a batch file every this many minutes (1..60).
    chunk_days
        Days generated and written together (memory and pipelining; part of the seed's
        meaning: another value gives other, equally valid, data).
    gzip_level
        igzip (ISA-L) level of the landing files, 0..3 (1 = its fast default; the bytes are
        deterministic either way).
    workers
        Threads that gzip and write files (igzip releases the GIL).
    """

    seed: int = 7
    start: date = date(2026, 10, 1)
    days: int = 30
    visitors: int = 50_000
    n_items: int = 6_000
    n_segments: int = 24
    existing_customer_share: float = 0.35
    conversion_band: tuple[float, float] = (0.04, 0.08)
    two_device_share: float = 0.25
    bot_share: float = 0.001
    cold_item_share: float = 0.12
    outfit_share: float = 0.6
    recommendation_share: float = 0.04
    fault_rate: float = 0.0
    late_window_days: int | None = None
    batch_minutes: int = 30
    chunk_days: int = 3
    gzip_level: int = 1
    workers: int = 2

    def __post_init__(self) -> None:
        lo, hi = self.conversion_band
        checks = {
            "days must be >= 1": self.days >= 1,
            "visitors must be >= 10": self.visitors >= 10,
            "n_items must be >= 50": self.n_items >= 50,
            "n_segments must be >= 2": self.n_segments >= 2,
            "conversion_band must satisfy 0 <= low <= high <= 1": 0.0 <= lo <= hi <= 1.0,
            "existing_customer_share must be in [0, 1)": 0.0 <= self.existing_customer_share < 1,
            "fault_rate must be in [0, 0.5]": 0.0 <= self.fault_rate <= 0.5,
            "batch_minutes must be in 1..60": 1 <= self.batch_minutes <= 60,
            "chunk_days must be >= 1": self.chunk_days >= 1,
            "gzip_level must be in 0..3 (igzip)": 0 <= self.gzip_level <= 3,
            "cold_item_share must be in [0, 0.9]": 0.0 <= self.cold_item_share <= 0.9,
            "bot_share must be in [0, 0.1]": 0.0 <= self.bot_share <= 0.1,
            "workers must be >= 1": self.workers >= 1,
        }
        failed = [msg for msg, ok in checks.items() if not ok]
        if failed:
            raise ValueError("invalid SimulatorConfig: " + "; ".join(failed))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["conversion_band"] = list(self.conversion_band)
        return out


@dataclass(frozen=True)
class SimulationSummary:
    """What one run wrote. ``elapsed_s`` is the only field that differs between equal runs."""

    landing_dir: Path
    start: date
    days: int
    events: int  # distinct simulated events (before faults)
    lines: int  # lines written to landing/events (duplicates and garbage included)
    files: int  # event files written (empty files included)
    sessions: int
    visitors: int  # humans with at least one session
    bots: int
    customers: int  # registered customers at the end of the period
    new_customers: int  # new visitors converted during the period
    new_visitors: int
    conversion_rate: float  # new_customers / new_visitors
    cold_items: int  # items launched after start
    faults: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)  # wall time per stage

    def to_dict(self, *, with_timing: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["landing_dir"] = str(self.landing_dir)
        out["start"] = self.start.isoformat()
        if not with_timing:
            out.pop("elapsed_s")
            out.pop("stage_s")
            out.pop("landing_dir")
        return out


# --- vocabularies (ASCII only, no quotes or backslashes: lines are built without escaping) ---
DEPARTMENTS: tuple[str, ...] = ("women", "men", "kids")
DEPARTMENT_WEIGHTS: tuple[float, ...] = (0.55, 0.35, 0.10)

# (department, category, base price EUR, weight within department, product types)
CATEGORY_TREE: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    ("women", "dresses", 59.0, 1.5, ("maxi dress", "midi dress", "mini dress", "shirt dress")),
    ("women", "tops", 25.0, 1.6, ("t-shirt", "blouse", "tank top", "bodysuit")),
    ("women", "knitwear", 45.0, 1.0, ("cardigan", "jumper", "knitted vest")),
    ("women", "trousers", 49.0, 1.0, ("wide-leg trousers", "cigarette trousers", "joggers")),
    ("women", "jeans", 55.0, 1.0, ("straight jeans", "skinny jeans", "mom jeans")),
    ("women", "skirts", 39.0, 0.7, ("midi skirt", "mini skirt", "pleated skirt")),
    ("women", "jackets", 95.0, 0.9, ("blazer", "trench coat", "puffer jacket", "wool coat")),
    ("women", "shoes", 69.0, 1.0, ("sneakers", "ankle boots", "loafers", "heeled sandals")),
    ("women", "bags", 49.0, 0.6, ("tote bag", "crossbody bag", "clutch")),
    ("women", "accessories", 19.0, 0.7, ("scarf", "belt", "sunglasses", "earrings")),
    ("men", "shirts", 45.0, 1.2, ("oxford shirt", "linen shirt", "overshirt")),
    ("men", "t-shirts", 22.0, 1.5, ("crew t-shirt", "polo shirt", "long-sleeve t-shirt")),
    ("men", "knitwear", 49.0, 0.9, ("jumper", "hoodie", "cardigan")),
    ("men", "trousers", 55.0, 1.0, ("chinos", "cargo trousers", "suit trousers", "joggers")),
    ("men", "jeans", 59.0, 1.0, ("slim jeans", "regular jeans", "relaxed jeans")),
    ("men", "jackets", 110.0, 0.8, ("bomber jacket", "parka", "blazer", "denim jacket")),
    ("men", "shoes", 79.0, 0.9, ("sneakers", "chelsea boots", "derby shoes")),
    ("men", "accessories", 25.0, 0.6, ("cap", "belt", "wallet", "watch")),
    ("kids", "tops", 15.0, 1.2, ("t-shirt", "sweatshirt")),
    ("kids", "bottoms", 19.0, 1.0, ("leggings", "jeans", "shorts")),
    ("kids", "dresses", 25.0, 0.6, ("dress",)),
    ("kids", "outerwear", 45.0, 0.8, ("rain jacket", "puffer jacket")),
    ("kids", "shoes", 35.0, 0.8, ("sneakers", "boots")),
)
COLOURS: tuple[str, ...] = (
    "black", "white", "navy", "grey", "beige", "brown", "red",
    "green", "blue", "pink", "yellow", "khaki", "cream", "burgundy",
)  # fmt: skip
COLOUR_WEIGHTS: tuple[float, ...] = (
    3.0, 2.2, 1.6, 1.5, 1.3, 1.0, 0.8, 0.8, 1.1, 0.7, 0.4, 0.6, 0.7, 0.5,
)  # fmt: skip
BRANDS: tuple[str, ...] = (
    "Trasos Essentials", "Nordvik", "Maison Lune", "Calder", "Urban Fjord", "Solenne",
    "Kestrel", "Atelier Noma", "Brisa", "Hollis", "Verdant", "Oak and Ivy", "Ravel",
    "Saltmarsh", "Tova", "Quill", "Marlo", "Fennick", "Lumen", "Stride Lab", "Parc",
    "Wilde", "Osei", "Halden",
)  # fmt: skip
STYLES: tuple[str, ...] = (
    "classic", "minimal", "street", "sport", "boho", "party", "business", "outdoor",
)  # fmt: skip
PRICE_BANDS: tuple[str, ...] = ("budget", "mid", "premium")
PRICE_BAND_LOG_LEVEL: tuple[float, ...] = (-0.45, 0.0, 0.5)

COUNTRIES: tuple[str, ...] = ("DE", "NL", "FR", "GB", "SE", "DK", "ES", "IT", "PL", "AT", "BE")
COUNTRY_WEIGHTS: tuple[float, ...] = (
    0.3,
    0.1,
    0.12,
    0.12,
    0.06,
    0.04,
    0.08,
    0.07,
    0.05,
    0.03,
    0.03,
)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_BAND_WEIGHTS: tuple[float, ...] = (0.2, 0.33, 0.24, 0.14, 0.09)

PLATFORM_WEIGHTS: tuple[float, ...] = (0.45, 0.33, 0.22)  # web, ios, android (contracts)
USER_AGENTS: dict[str, tuple[str, ...]] = {
    "web": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.0 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Mobile Safari/537.36",
    ),
    "ios": (
        "Trasos/5.3.1 (iPhone15,2; iOS 18.0; Scale/3.00)",
        "Trasos/5.2.0 (iPhone13,1; iOS 17.6; Scale/3.00)",
    ),
    "android": (
        "Trasos/5.3.0 (Android 14; Pixel 8; okhttp/4.12.0)",
        "Trasos/5.2.4 (Android 13; SM-A546B; okhttp/4.12.0)",
    ),
}
BOT_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Scrapy/2.11.2 (+https://scrapy.org)",
)
LOGIN_METHODS: tuple[str, ...] = ("password", "google", "apple", "signup")

# Share of sessions by hour of day (UTC) and by weekday (Monday first).
HOUR_WEIGHTS: tuple[float, ...] = (
    0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.75, 0.85, 0.90, 0.95,
    1.00, 1.00, 0.95, 0.90, 0.95, 1.05, 1.25, 1.45, 1.55, 1.40, 1.00, 0.55,
)  # fmt: skip
WEEKDAY_WEIGHTS: tuple[float, ...] = (1.05, 1.0, 0.97, 0.96, 0.88, 0.85, 1.15)

# Lines used for garbage faults (a random hex tag is appended, so no two are equal).
GARBAGE_TEMPLATES: tuple[str, ...] = (
    "<html><body><h1>502 Bad Gateway</h1></body></html> req=",
    "GET /collect?v=2&t=pageview HTTP/1.1 cid=",
    "ERROR upstream timed out while reading response header id=",
    "event_id=&event_type=page_view&sid=",
    "#### collector restart ####",
)
UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("hover", "video_play", "share", "impression")
# Invalid UTF-8 sequences: lone continuation, overlong, surrogate, invalid start byte.
INVALID_UTF8_BYTES: tuple[bytes, ...] = (b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe")
