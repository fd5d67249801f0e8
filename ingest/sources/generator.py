"""Scenario generator for demos and load tests: English and Chinese financial headlines and comments with
tickers, at a configurable rate, around a baseline mood, with injected events (a negative surge on one ticker).
The intended mood travels in meta ('gen_mood', 'gen_event') so a demo can check what the classifier made of it."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ingest.item import Item
from ingest.pipeline import Stopped
from ingest.sources import register
from ingest.sources.base import SourceConfig, SourceContext

US = [
    ("Apple", "AAPL"),
    ("Microsoft", "MSFT"),
    ("Nvidia", "NVDA"),
    ("Tesla", "TSLA"),
    ("Amazon", "AMZN"),
    ("JPMorgan", "JPM"),
    ("Goldman Sachs", "GS"),
    ("Boeing", "BA"),
    ("Intel", "INTC"),
    ("Netflix", "NFLX"),
]
CN = [
    ("贵州茅台", "600519.SH"),
    ("中国平安", "601318.SH"),
    ("招商银行", "600036.SH"),
    ("比亚迪", "002594.SZ"),
    ("宁德时代", "300750.SZ"),
    ("五粮液", "000858.SZ"),
    ("腾讯", "0700.HK"),
    ("阿里巴巴", "BABA"),
]

EN_NEWS = {
    "positive": [
        "{name} shares jump {pct}% after earnings beat estimates",
        "{name} (${t}) raises full-year guidance as demand stays strong",
        "Analysts upgrade ${t} to buy, see {pct}% upside for {name}",
        "{name} wins ${bn} billion contract, stock rallies",
    ],
    "neutral": [
        "{name} to report quarterly results on {day}",
        "${t} trades flat as investors await Fed decision",
        "{name} appoints new chief financial officer",
        "{name} schedules investor day for {day}",
    ],
    "negative": [
        "{name} shares slump {pct}% on weak outlook",
        "Regulators open probe into {name} accounting, ${t} falls",
        "{name} (${t}) cuts {k} jobs amid falling sales",
        "{name} misses revenue estimates, stock drops {pct}%",
    ],
}
EN_COMMENT = {
    "positive": [
        "Loading more ${t} here, {name} is a monster",
        "${t} to the moon, best quarter in years",
        "Bought the dip on ${t}, feeling good about {name}",
    ],
    "neutral": [
        "Anyone holding ${t} into earnings?",
        "What do you think about {name} at these levels?",
        "${t} chart looks sideways for now",
    ],
    "negative": [
        "Sold all my ${t}, {name} management keeps disappointing",
        "${t} is going lower, that guidance was awful",
        "Getting out of {name} before it gets worse",
    ],
}
ZH_NEWS = {
    "positive": [
        "{name}({t})业绩超预期，股价大涨{pct}%",
        "{name}获机构上调评级，目标价上调{pct}%",
        "{name}签下{bn}亿元大单，股价走强",
    ],
    "neutral": ["{name}({t})将于{day}发布季度报告", "{name}召开股东大会，审议年度分红方案", "{name}公告更换董事会秘书"],
    "negative": [
        "{name}({t})股价暴跌{pct}%，业绩不及预期",
        "{name}遭监管问询，股价下挫{pct}%",
        "{name}宣布裁员{k}人，市场担忧加剧",
    ],
}
ZH_COMMENT = {
    "positive": ["{name}这波稳了，继续加仓", "看好{name}长期价值，拿住不动", "{name}今天涨得真舒服"],
    "neutral": ["{name}明天会怎么走？", "有人关注{name}的财报吗", "{name}最近横盘，先观望"],
    "negative": ["{name}又跌了，割肉离场", "{name}管理层太让人失望了，清仓", "{name}利空不断，快跑吧"],
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
USERS = ["trader_joe", "value_hunter", "alpha_seeker", "韭菜小王", "股海老李", "moon_boy", "dividend_dan"]


OUTLETS = {"en": ["Reuters", "Bloomberg", "MarketWatch", "Yahoo Finance"], "zh": ["新浪财经", "财联社", "证券时报"]}


@dataclass(frozen=True)
class Event:
    mood: str
    ticker: str
    start_s: float
    duration_s: float
    share: float  # fraction of all documents during the event that are about it
    every_s: float | None = None  # recurring: the event repeats this often after start_s
    stories: int = 0  # > 0: the event's documents are syndicated copies of this many distinct stories

    def occurrence(self, elapsed_s: float) -> int | None:
        """Which repetition of the event is live at ``elapsed_s`` (0 = the first), or None outside it."""
        if elapsed_s < self.start_s:
            return None
        n = int((elapsed_s - self.start_s) // self.every_s) if self.every_s else 0
        return n if elapsed_s - (self.start_s + n * (self.every_s or 0)) < self.duration_s else None


@dataclass(frozen=True)
class Scenario:
    mood: dict[str, float]  # baseline probabilities of negative / neutral / positive
    events: tuple[Event, ...] = field(default_factory=tuple)
    zh_share: float = 0.4
    comment_share: float = 0.5


SCENARIOS = {
    # Recurring negative news bursts, first at 2 min (the ticker's 5-minute share has ordinary news to rise from),
    # then every 20 min, rotating over tickers: 32 distinct stories each, syndicated by several outlets, so story
    # counting has copies to collapse and still sees a surge. Rules count stories, and the ticker's ordinary news
    # (random figures) is mostly one story per document: a burst of 4 stories stayed under the default share rule's
    # 60% (measured 0.31-0.45); 32 stories give 0.64-0.69, above the background's highest 5-minute share (0.57).
    "default": Scenario(
        {"negative": 0.25, "neutral": 0.45, "positive": 0.30},
        (
            Event("negative", "TSLA", 120.0, 90.0, 0.7, every_s=1_200.0, stories=32),
            Event("negative", "600519.SH", 720.0, 90.0, 0.7, every_s=1_200.0, stories=32),
        ),
    ),
    "calm": Scenario({"negative": 0.10, "neutral": 0.75, "positive": 0.15}),
    "bull": Scenario({"negative": 0.10, "neutral": 0.30, "positive": 0.60}),
    "bear": Scenario({"negative": 0.60, "neutral": 0.30, "positive": 0.10}),
    "negative_surge": Scenario(
        {"negative": 0.20, "neutral": 0.50, "positive": 0.30}, (Event("negative", "TSLA", 30.0, 120.0, 0.5),)
    ),
    "negative_surge_cn": Scenario(
        {"negative": 0.20, "neutral": 0.50, "positive": 0.30},
        (Event("negative", "600519.SH", 30.0, 120.0, 0.5),),
        zh_share=0.7,
    ),
}


class UnknownScenario(ValueError):
    pass


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenario(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None


def generate(sc: Scenario, rng: random.Random, elapsed_s: float) -> tuple[Item, str, str | None]:
    """One document: (item, intended mood, event name or None)."""
    event = next((e for e in sc.events if e.occurrence(elapsed_s) is not None), None)
    if event and rng.random() < event.share:
        if event.stories:
            return _story_copy(event, event.occurrence(elapsed_s) or 0, rng)
        mood, company, tag = (
            event.mood,
            next(c for c in US + CN if c[1] == event.ticker),
            f"{event.mood}:{event.ticker}",
        )
    else:
        mood = rng.choices(list(sc.mood), weights=list(sc.mood.values()))[0]
        company, tag = None, None
    zh = rng.random() < sc.zh_share if company is None else company in CN
    company = company or rng.choice(CN if zh else US)
    comment = rng.random() < sc.comment_share
    table = (ZH_COMMENT if comment else ZH_NEWS) if zh else (EN_COMMENT if comment else EN_NEWS)
    text = rng.choice(table[mood]).format(
        name=company[0],
        t=company[1],
        pct=f"{rng.uniform(0.5, 12):.1f}",
        bn=rng.randint(1, 50),
        k=rng.choice([300, 500, 1200, 4000]),
        day=rng.choice(DAYS),
    )
    if comment and rng.random() < 0.02:  # the odd comment leaks contact details; the shared path masks them
        text += rng.choice([" dm me at trader{n}@example.com", " 加我微信 138{n:08d}"]).format(
            n=rng.randint(0, 99_999_999)
        )
    item = Item(
        title="" if comment else text,
        body=text if comment else "",
        tickers=[company[1]],
        author=rng.choice(USERS) if comment else None,
        kind="comment" if comment else "news",
        meta={"gen_mood": mood, **({"gen_event": tag} if tag else {})},
    )
    return item, mood, tag


STORY_DETAILS = {
    "en": [
        "analysts slash price targets after a tense conference call",
        "the chief financial officer steps down with immediate effect",
        "management withdraws full-year guidance citing weak demand",
        "a key supplier halts shipments over unpaid invoices",
        "a short seller publishes a report alleging inflated revenue",
        "Moody's cuts the credit rating to one notch above junk",
        "a product recall widens to three more countries this week",
        "shareholders file a class action over misleading statements",
    ],
    "zh": [
        "多家券商下调目标价并提示经营风险",
        "公司财务总监突然辞职引发市场猜测",
        "管理层撤回全年业绩指引称需求疲软",
        "主要供应商因货款拖欠暂停供货",
        "做空机构发布报告质疑收入造假",
        "评级机构下调公司信用评级至负面",
        "产品召回范围扩大至更多省份",
        "投资者集体起诉公司信息披露违规",
        "大股东质押比例过高触发平仓预警",
        "海外子公司被当地监管部门立案调查",
        "核心产品销量连续三个月同比下滑",
    ],
}


def _story_copy(event: Event, occurrence: int, rng: random.Random) -> tuple[Item, str, str]:
    """One outlet's copy of one of the event's stories: the story's text is fixed by (event, occurrence, story),
    the outlet varies, so copies are near-duplicates and the stories are distinct."""
    company = next(c for c in US + CN if c[1] == event.ticker)
    zh = company in CN
    story = rng.randrange(event.stories)
    srng = random.Random(f"story:{event.ticker}:{occurrence}:{story}")
    templates = (ZH_NEWS if zh else EN_NEWS)[event.mood]
    # A few templates alone repeat (one has no figures at all), so two "distinct" stories could be word for word the
    # same; each story pairs a template with its own development, long enough that stories sharing a template stay
    # apart (their MinHash similarity stays under the clustering threshold).
    details = STORY_DETAILS["zh" if zh else "en"]  # len(templates) x len(details) >= 32 combinations
    detail = details[(story // len(templates)) % len(details)]
    text = (templates[story % len(templates)] + ("，" if zh else "; ") + detail).format(
        name=company[0],
        t=company[1],
        pct=f"{srng.uniform(3, 15):.1f}",
        bn=srng.randint(1, 50),
        k=srng.choice([300, 500, 1200, 4000]),
        day=srng.choice(DAYS),
    )
    outlet = rng.choice(OUTLETS["zh" if zh else "en"])
    tag = f"{event.mood}:{event.ticker}"
    item = Item(
        title=f"{text} ({outlet})" if not zh else f"{text}（{outlet}）",
        body="",
        tickers=[company[1]],
        kind="news",
        meta={"gen_mood": event.mood, "gen_event": tag, "gen_story": f"{event.ticker}:{occurrence}:{story}"},
    )
    return item, event.mood, tag


@dataclass(frozen=True)
class Config(SourceConfig):
    """One generator: a ``[[generator]]`` table (the default source when no sources file is set)."""

    name: str = "generator"
    rate: float = 5.0
    scenario: str = "default"
    seed: int = 7
    count: int | None = None  # stop after this many documents (load tests)


class Source:
    def __init__(self, cfg: Config, batch_size: int = 500) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.scenario = scenario(cfg.scenario)
        self.batch_size = batch_size
        self.produced = 0

    def items(self, seq: int, n: int, elapsed_s: float) -> Iterator[Item]:
        for k in range(seq, seq + n):
            rng = random.Random(f"{self.cfg.seed}:{k}")  # document k is the same on every run: restarts repeat nothing
            item, _, _ = generate(self.scenario, rng, elapsed_s)
            item.source_id = f"{self.cfg.seed}:{k}"
            yield item

    def run(self, ctx: SourceContext) -> None:
        seq = int((ctx.position(self.name) or {}).get("seq", 0))
        start, t0 = seq, time.monotonic()
        tick = min(1.0, max(0.05, 1.0 / self.cfg.rate))
        while not ctx.stopping.is_set():
            if self.cfg.count is not None and seq >= self.cfg.count:
                return
            elapsed = time.monotonic() - t0
            due = int(elapsed * self.cfg.rate) + 1 - (seq - start)
            n = min(due, self.batch_size)
            if self.cfg.count is not None:
                n = min(n, self.cfg.count - seq)
            if n <= 0:
                if not ctx.sleep(tick):
                    return
                continue
            try:
                ctx.pipeline.process(self.name, "news", list(self.items(seq, n, elapsed)), {"seq": seq + n})
            except Stopped:
                return
            seq += n
            self.produced = seq
            ctx.ok(self.name)


register("generator", Config, Source)
