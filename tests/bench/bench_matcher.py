"""Matcher speed: MB/s of 50 rules over a day of real news, normalisation included (JSON lines).

Run: ``uv run python -m tests.bench.bench_matcher``. Reads /work/shared/data (not part of the
test suite). The baseline, measured in the same run over the same documents, is one plain
`re` alternation of the same literal prefixes over lower-cased text: what a matcher without
normalisation, inflection checks or spans would cost. MB are UTF-8 bytes of the input;
times are CPU seconds of this process, best of three.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scheduler.matcher import compile_rules, normalize
from scheduler.rules import Rule, load_rules

NEWS_DAY = Path("/work/shared/data/news_2019-11-18/docs")
PASSES = 3
# Things a Kazakh press desk watches, written as a person would: ru, kk and en forms.
WATCHED = (
    ("minfin", ["Минфин", "Министерство финансов", "Қаржы министрлігі", "Ministry of Finance"]),
    ("natsbank", ["Нацбанк", "Национальный банк", "Ұлттық банк", "National Bank"]),
    ("tokayev", ["Токаев", "Тоқаев", "Tokayev", "Tokaev"]),
    ("nazarbayev", ["Назарбаев", "Nazarbayev", "Елбасы"]),
    ("mamin", ["Мамин", "Mamin", "премьер-министр"]),
    ("astana", ["Нур-Султан", "Астана", "Nur-Sultan", "Astana", "Нұр-Сұлтан"]),
    ("almaty", ["Алматы", "Almaty", "Алма-Ата"]),
    ("roscosmos", ["Роскосмос", "Roscosmos", "Рогозин"]),
    ("kazatomprom", ["Казатомпром", "Қазатомөнеркәсіп", "Kazatomprom"]),
    ("samruk", ["Самрук-Казына", "Самұрық-Қазына", "Samruk-Kazyna"]),
    ("kmg", ["КазМунайГаз", "ҚазМұнайГаз", "KazMunayGas"]),
    ("tengiz", ["Тенгиз", "Теңіз", "Tengiz", "Тенгизшевройл"]),
    ("kashagan", ["Кашаган", "Қашаған", "Kashagan"]),
    ("akorda", ["Акорда", "Ақорда", "Akorda"]),
    ("mazhilis", ["Мажилис", "Мәжіліс", "Mazhilis"]),
    ("senate", ["Сенат", "Senate"]),
    ("eaeu", ["ЕАЭС", "Евразийский экономический союз", "ЕАЭО", "EAEU"]),
    ("sco", ["ШОС", "Шанхайская организация сотрудничества", "SCO"]),
    ("opec", ["ОПЕК", "OPEC"]),
    ("oil", ["нефть", "мұнай", "баррель", "Brent"]),
    ("gas", ["газ", "Газпром", "газопровод"]),
    ("tenge", ["тенге", "теңге", "tenge"]),
    ("ruble", ["рубль", "рубля", "ruble"]),
    ("inflation", ["инфляция", "инфляция деңгейі", "inflation"]),
    ("budget", ["бюджет", "budget"]),
    ("pension", ["пенсия", "ЕНПФ", "зейнетақы"]),
    ("court", ["суд", "сот", "court"]),
    ("corruption", ["коррупция", "сыбайлас жемқорлық", "взятка", "corruption"]),
    ("kyzylorda", ["Кызылорда", "Қызылорда", "Kyzylorda"]),
    ("karaganda", ["Караганда", "Қарағанды", "Karaganda"]),
    ("shymkent", ["Шымкент", "Shymkent"]),
    ("aktobe", ["Актобе", "Ақтөбе", "Aktobe"]),
    ("atyrau", ["Атырау", "Atyrau"]),
    ("pavlodar", ["Павлодар", "Pavlodar"]),
    ("semey", ["Семей", "Семипалатинск", "Semey"]),
    ("uralsk", ["Уральск", "Орал", "Uralsk"]),
    ("ekibastuz", ["Экибастуз", "Екібастұз"]),
    ("turkestan", ["Туркестан", "Түркістан", "Turkestan"]),
    ("mangystau", ["Мангистау", "Маңғыстау", "Mangystau"]),
    ("china", ["Китай", "Қытай", "China", "КНР"]),
    ("russia", ["Россия", "Ресей", "Russia"]),
    ("uzbekistan", ["Узбекистан", "Өзбекстан", "Uzbekistan"]),
    ("kyrgyzstan", ["Кыргызстан", "Қырғызстан", "Киргизия", "Kyrgyzstan"]),
    ("covid", ["эпидемия", "вакцина", "карантин"]),
    ("housing", ["жилье", "тұрғын үй", "ипотека"]),
    ("expo", ["ЭКСПО", "EXPO"]),
    ("alash", ["Алаш", "Alash"]),
    ("space", ["космодром", "ракета", "ғарыш", "МКС"]),
)


def news_texts() -> list[str]:
    texts = []
    for path in sorted(NEWS_DAY.glob("*.html")):
        page = path.read_text(encoding="utf-8")
        texts.append(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return texts


def bench_rules() -> list[Rule]:
    rules = list(load_rules(resolve_secrets=False).rules)
    for name, terms in WATCHED[: 50 - len(rules)]:
        rules.append(Rule(name=name, terms=terms, channels=["console"]))
    return rules


def timed(run: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` runs in CPU seconds of this process: the 2 cores are shared, and
    other people's load would otherwise count against the matcher."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main() -> None:
    texts = news_texts() * PASSES
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    rules = bench_rules()
    compiled = compile_rules(rules)
    prefixes = sorted(compiled.literals, key=len, reverse=True)
    baseline = re.compile("|".join(map(re.escape, prefixes)))
    normalize("warm up: build the character tables once")

    found = sum(len(compiled.match(t)) for t in texts)
    matcher_s = timed(lambda: [compiled.match(t) for t in texts])
    normalize_s = timed(lambda: [normalize(t) for t in texts])
    baseline_s = timed(lambda: [baseline.findall(t.lower()) for t in texts])
    common = {"documents": len(texts), "mb": round(megabytes, 2)}
    emit(
        {
            "bench": "matcher",
            "what": "50 rules, normalisation + scan + verification + spans",
            "rules": len(rules),
            "literals": len(prefixes),
            "matches": found,
            **common,
            "mb_per_s": round(megabytes / matcher_s, 1),
            "baseline": "re alternation of the same prefixes over text.lower()",
            "baseline_mb_per_s": round(megabytes / baseline_s, 1),
            "ratio": round(baseline_s / matcher_s, 2),
            "target_mb_per_s": 30,
        }
    )
    emit(
        {
            "bench": "normalize",
            **common,
            "mb_per_s": round(megabytes / normalize_s, 1),
            "baseline": "same re baseline",
            "ratio": round(baseline_s / normalize_s, 2),
        }
    )


if __name__ == "__main__":
    main()
