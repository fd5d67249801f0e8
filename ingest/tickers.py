"""Tickers and entities in text: cashtags ($AAPL, $BRK.B), exchange codes (600519.SH, SZ000001, 0700.HK,
NASDAQ: AAPL) and a company-name dictionary (English and Chinese names, configurable)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Built-in dictionary; settings.ingest_companies_file adds to it. Keys are names as they appear in text.
DEFAULT_COMPANIES: dict[str, str] = {
    "Apple": "AAPL",
    "Microsoft": "MSFT",
    "Alphabet": "GOOGL",
    "Google": "GOOGL",
    "Amazon": "AMZN",
    "Meta Platforms": "META",
    "Nvidia": "NVDA",
    "NVIDIA": "NVDA",
    "Tesla": "TSLA",
    "JPMorgan": "JPM",
    "Goldman Sachs": "GS",
    "Morgan Stanley": "MS",
    "Bank of America": "BAC",
    "Wells Fargo": "WFC",
    "Citigroup": "C",
    "Berkshire Hathaway": "BRK.B",
    "Exxon Mobil": "XOM",
    "Boeing": "BA",
    "Intel": "INTC",
    "Netflix": "NFLX",
    "Alibaba": "BABA",
    "Tencent": "0700.HK",
    "Baidu": "BIDU",
    "JD.com": "JD",
    "Kweichow Moutai": "600519.SH",
    "Ping An": "601318.SH",
    "BYD": "002594.SZ",
    "CATL": "300750.SZ",
    "苹果公司": "AAPL",
    "微软": "MSFT",
    "谷歌": "GOOGL",
    "亚马逊": "AMZN",
    "英伟达": "NVDA",
    "特斯拉": "TSLA",
    "阿里巴巴": "BABA",
    "腾讯": "0700.HK",
    "百度": "BIDU",
    "京东": "JD",
    "贵州茅台": "600519.SH",
    "茅台": "600519.SH",
    "中国平安": "601318.SH",
    "平安银行": "000001.SZ",
    "招商银行": "600036.SH",
    "工商银行": "601398.SH",
    "比亚迪": "002594.SZ",
    "宁德时代": "300750.SZ",
    "五粮液": "000858.SZ",
    "中国石油": "601857.SH",
    "恒大": "3333.HK",
}

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_CN_CODE = re.compile(r"(?<![\w.])(\d{6})\.(SH|SZ|BJ|SS)(?![\w])", re.IGNORECASE)
_CN_PREFIX = re.compile(r"(?<![A-Za-z0-9])(SH|SZ|BJ)(\d{6})(?![\w])", re.IGNORECASE)
_HK_CODE = re.compile(r"(?<![\w.])(\d{1,5})\.HK(?![\w])", re.IGNORECASE)
_EXCHANGE = re.compile(r"\b(?:NASDAQ|NYSE|NYSEAMERICAN|AMEX)\s*:\s*([A-Z]{1,6}(?:\.[A-Z])?)\b")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Found:
    tickers: list[str]
    entities: list[str]


class TickerExtractor:
    def __init__(self, companies: dict[str, str]) -> None:
        self.companies = companies
        latin = sorted((n for n in companies if not _CJK.search(n)), key=len, reverse=True)
        cjk = sorted((n for n in companies if _CJK.search(n)), key=len, reverse=True)
        parts = []
        if latin:
            parts.append(r"(?<![\w])(?:" + "|".join(re.escape(n) for n in latin) + r")(?![\w])")
        if cjk:  # Chinese has no word boundaries; longest name first so 贵州茅台 wins over 茅台
            parts.append("(?:" + "|".join(re.escape(n) for n in cjk) + ")")
        self._names = re.compile("|".join(parts)) if parts else None
        self._name_of: dict[str, str] = {}
        for name, ticker in companies.items():
            self._name_of.setdefault(ticker, name)

    def _hits(self, text: str) -> list[tuple[int, str, str | None]]:
        hits: list[tuple[int, str, str | None]] = []
        for m in _CASHTAG.finditer(text):
            hits.append((m.start(), m.group(1).upper(), None))
        for m in _CN_CODE.finditer(text):
            exch = m.group(2).upper().replace("SS", "SH")
            hits.append((m.start(), f"{m.group(1)}.{exch}", None))
        for m in _CN_PREFIX.finditer(text):
            hits.append((m.start(), f"{m.group(2)}.{m.group(1).upper()}", None))
        for m in _HK_CODE.finditer(text):
            hits.append((m.start(), f"{int(m.group(1)):04d}.HK", None))
        for m in _EXCHANGE.finditer(text):
            hits.append((m.start(), m.group(1), None))
        if self._names is not None:
            for m in self._names.finditer(text):
                hits.append((m.start(), self.companies[m.group(0)], m.group(0)))
        hits.sort(key=lambda h: h[0])
        return hits

    def extract(self, title: str, body: str, given: list[str] | None = None) -> Found:
        """Tickers in order of importance: given by the source, then as they appear in title, then body."""
        tickers: list[str] = [t.strip().upper() for t in given or [] if t and t.strip()]
        entities: list[str] = []
        for text in (title, body):
            for _, ticker, name in self._hits(text):
                if ticker not in tickers:
                    tickers.append(ticker)
                if name and name not in entities:
                    entities.append(name)
        for ticker in tickers:  # a company found only by its ticker is still an entity
            name = self._name_of.get(ticker)
            if name and name not in entities:
                entities.append(name)
        return Found([t for t in tickers if len(t) <= 20][:64], entities[:256])
