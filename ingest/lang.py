"""Language detection: a cheap script count decides Chinese (and Japanese/Korean); langdetect decides the rest,
with a stop-word fast path because most Latin-script financial text is English and langdetect is slow on it."""

from __future__ import annotations

import re
import threading

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z']+")
_EN_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "has",
        "have",
        "had",
        "with",
        "by",
        "at",
        "from",
        "as",
        "after",
        "before",
        "over",
        "its",
        "it",
        "this",
        "that",
        "than",
        "but",
        "not",
        "will",
        "into",
        "up",
        "down",
        "amid",
        "about",
        "new",
        "says",
        "said",
        "shares",
        "stock",
        "stocks",
        # Frequent in English financial headlines; without them langdetect calls some of those French.
        "revenue",
        "earnings",
        "estimates",
        "sales",
        "profit",
        "quarter",
        "guidance",
        "outlook",
    ]
)

# Placeholders, cashtags and exchange codes say nothing about the language and confuse langdetect.
_NOISE = re.compile(r"\[(?:EMAIL|PHONE|ID|CARD)\]|\$[A-Za-z.]+|\b\d{4,6}\.[A-Za-z]{2}\b|https?://\S+")
# ASCII text that langdetect places outside these is short English more often than anything else.
_ASCII_LANGS = frozenset({"en", "de", "fr", "es", "it", "nl", "pt", "sv", "da", "no"})

_lock = threading.Lock()
_detector_ready = False


def _langdetect(text: str) -> tuple[str, float]:
    global _detector_ready
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    with _lock:
        if not _detector_ready:
            DetectorFactory.seed = 0  # deterministic: the same text always gets the same language
            _detector_ready = True
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "und", 0.0
    return best.lang.split("-")[0], best.prob


def detect_language(text: str) -> str:
    """ISO 639-1 code, or 'und' when the text gives too little to tell."""
    text = _NOISE.sub(" ", text)
    han = len(_HAN.findall(text))
    kana = len(_KANA.findall(text))
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    letters = han + kana + hangul + latin
    if letters == 0:
        return "und"
    if kana and kana + han >= 0.3 * letters:
        return "ja"
    if hangul >= 0.3 * letters:
        return "ko"
    if han >= 0.2 * letters:  # Chinese text often carries tickers and English names
        return "zh"
    words = _WORD.findall(text.lower())
    if words and text.isascii():
        stop = sum(1 for w in words if w in _EN_STOP)
        if stop >= 2 and stop >= 0.15 * len(words):
            return "en"
    lang, prob = _langdetect(text)
    if text.isascii():
        if latin < 3:
            return "und"
        return lang if prob >= 0.9 and lang in _ASCII_LANGS else "en"
    return lang if prob >= 0.8 else "und"
