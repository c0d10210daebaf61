"""Rebuild the demo corpus (scheduler/demo_corpus/) from the shared data, by hand (not in pytest).

    uv run python tests/data/build_demo_corpus.py [/work/shared/data]

Reads the contest-format documents of news_2019-11-18 and the Caravan.kz seed, and writes
``articles.jsonl.gz`` and ``stories.json``. The selection below is the curation: every story
group was checked by reading the texts (the machine-found candidate pairs were only a lead).
Portals come from ``portals.yaml`` (hosts are matched against its domains).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import lxml.html

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scheduler.demo import (  # noqa: E402
    ARTICLES_FILE,
    CORPUS_DIR,
    STORIES_FILE,
    DemoPortal,
    load_portals,
)

DEFAULT_DATA = Path("/work/shared/data")
DAY = "news_2019-11-18"
SEED = "seed/caravan_2019-07-09_baikonur.txt"

# story id -> (what the members share, contest document ids "<hour>_<doc>")
STORIES: dict[str, tuple[str, list[str]]] = {
    "smagulov-kpm": (
        "Olzhas Smagulov appointed deputy head of the PM's Office; all cite the PM press "
        "service (nur, tengrinews, zakon, total; zakon-kaz in Kazakh)",
        [
            "10_1774429403354797231",
            "10_3440873159538935534",
            "16_6314206742819748999",
            "16_4683986230895375560",
            "17_7897126139952242688",
        ],
    ),
    "nazarbayev-tuimebayev": (
        "Nazarbayev receives Zhanseit Tuimebayev (Assembly of People); copies cite Elbasy.kz "
        "or the First President's press service",
        [
            "11_1774429403176963569",
            "17_6314206743741996837",
            "12_7416372398426445206",
            "12_3440873159575226740",
        ],
    ),
    "karaganda-lifts": (
        "Karaganda region starts replacing 361 idle lifts in December",
        ["12_7822123886075314461", "17_6314206743941498867", "14_3440873159163099620"],
    ),
    "akmola-trip-results": (
        "Akmola akimat meeting on the results of Tokayev's trip to the region",
        ["12_7822123885713606028", "18_6314206743989213780"],
    ),
    "cairo-anthology": (
        "Anthologies of modern Kazakh literature in Arabic presented in Cairo",
        ["15_7822123885672520756", "18_6314206743286710427"],
    ),
    "aktobe-literary-forum": (
        "Republican literary forum in Aktobe for the Writers' Union's 85th anniversary",
        ["10_7822123885645436747", "12_6314206743605379033"],
    ),
    "jana-beles": (
        "'Jana Beles 2019' student initiation in Nur-Sultan, after the akimat's site",
        ["14_7822123886378377701", "16_3440873158020969717", "16_6314206743007270138"],
    ),
    "kazhydromet-cold": (
        "Kazhydromet forecast: Arctic anticyclone, down to -33 in the north and east",
        ["12_6314206744349654096", "12_5382480496256717100", "18_4683986232843937405"],
    ),
    "vice-ministers-prices": (
        "PM Mamin orders vice-ministers and deputy akims punished for food price rises "
        "(zakon ru/kk twins, total, yk)",
        [
            "11_6314206743471892456",
            "11_7897126139855799054",
            "12_4683986230927543856",
            "10_5382480496387154079",
        ],
    ),
    "tokayev-germany": (
        "MFA: Tokayev to pay an official visit to Germany",
        ["17_6314206744445944986", "11_3440873159501767558", "12_1774429403167396518"],
    ),
    "tekeli-horse-cafe": (
        "A rider on a horse enters a cafe in Tekeli; police detain him",
        ["18_6314206742515262532", "13_3440873158051129150", "13_7822123886207009834"],
    ),
    "hong-kong-students": (
        "MFA advises Kazakh students in Hong Kong to come home (zakon ru/kk, tengrinews, nur)",
        [
            "17_6314206742994708575",
            "17_7897126140698953644",
            "11_3440873159150632774",
            "11_7822123887387258113",
        ],
    ),
    "transport-tax-deadline": (
        "Transport tax deadline to move from 31 December to 1 April (zakon ru/kk, tengrinews, yk)",
        [
            "16_6314206742918026119",
            "17_7897126139302961821",
            "11_3440873157720076387",
            "16_5382480496178042902",
        ],
    ),
    "karaganda-police-deputies": (
        "Two deputy heads of the Karaganda police department appointed (zakon ru/kk, tengrinews)",
        ["16_6314206743852286330", "16_7897126139862696672", "10_3440873158959828605"],
    ),
    "taraz-bribe": (
        "Taraz akimat specialist suspected of a bribe for social assistance (zakon ru/kk, nur)",
        ["13_6314206744303988252", "13_7897126139390370555", "13_7822123886673130650"],
    ),
    "mamin-nurly-zher": (
        "Government approves the 'Nurly Zher' 2020-2025 housing programme; Mamin's remarks "
        "(zakon ru/kk twins)",
        ["10_6314206744551150260", "10_7897126141060943038"],
    ),
    "pankration-champion": (
        "Kazakh army athlete becomes pankration world champion (zakon ru/kk twins)",
        ["13_6314206742922658915", "13_7897126139331275943"],
    ),
    "kozhakhmetov-kazcontent": (
        "Duman Kozhakhmetov leaves the chair of Kazcontent (zakon ru/kk twins)",
        ["15_6314206742737000723", "15_7897126140762138131"],
    ),
    "worldskills-turkestan": (
        "Turkestan region students win WorldSkills Kazakhstan 2019 (zakon ru/kk twins)",
        ["17_6314206744533477292", "17_7897126140665684290"],
    ),
    "kerch-ships": (
        "Russia hands back the three Ukrainian ships held since the Kerch incident; "
        "tengrinews cites RIA",
        [
            "10_6639103543599807711",
            "11_7651245240321644329",
            "10_6438675575053352087",
            "16_3440873158884971250",
        ],
    ),
    "gazprom-naftogaz-offer": (
        "Gazprom sends Naftogaz an official gas transit offer (Interfax family, RIA)",
        [
            "12_6639103542160617454",
            "12_7651245241097776005",
            "14_2857286274471172575",
            "12_6438675573647510190",
        ],
    ),
    "normandy-summit-date": (
        "Peskov: Normandy-format summit set for 9 December in Paris",
        ["10_6639103542405279222", "12_2857286274060158962"],
    ),
    "gorelkin-bill": (
        "MP Gorelkin withdraws his bill on significant internet resources for rework",
        ["11_6639103542232826850", "11_6438675575060812144", "12_7651245241105790332"],
    ),
    "kreed-experts": (
        "Roskomnadzor suspends the accreditation of the experts who examined Egor Kreed's songs",
        ["11_6438675574092329823", "11_6639103542910309579"],
    ),
    "sakhnovsky-death": (
        "Writer Igor Sakhnovsky dies in Yekaterinburg (Interfax, Interfax-Russia)",
        ["12_6639103542754454489", "12_7651245240923354440"],
    ),
    "plane-litter-video": (
        "Video of a plane cabin littered by tourists; tengrinews retells RIA's text",
        ["21_6438675574631663654", "22_3440873159593702676"],
    ),
}
# Articles that share a story with nothing else in the corpus.
SINGLES = [
    "10_3440873157866402513",  # tengrinews weekly digest that names "Байтерек" (the tower)
    "10_7822123887577920002",  # nur: Venice flood
    "10_6639103542962481222",  # interfax: Russian tourist drowns in India
    "11_2857286274626157095",  # interfax-ua: Pakistan tests a ballistic missile
    "14_7416372398377601887",  # kazpravda: a doctor on heated tobacco devices
    "12_6438675574142451869",  # ria: why the belly grows with age
]

# --- the Prime Minister's release of 9 July 2019 and its copies ---------------------------
PM_SLUG = "pervyy-vitse-premer-provel-peregovory-s-gendirektorom-roskosmosa"
PM_URL = f"https://primeminister.kz/ru/news/{PM_SLUG}-1907091"
# the seed has a no-break space inside the phrase, as the page had
CARAVAN_ATTRIBUTION = re.compile(
    r", сообщает Caravan\.kz со ссылкой на пресс-службу\s+премьер-министра РК"
)
SEED_FURNITURE = re.compile(r"^(Опубликовано: \d+|Оставить комментарий|Оставлять комментарии .*)$")
STEPPE_LEAD = (
    "Казахстан и «Роскосмос» договорились актуализировать проект космического ракетного "
    "комплекса «Байтерек» на Байконуре, передает Steppe Times со ссылкой на пресс-службу "
    "Премьер-министра РК."
)
KAZAKH_LETTERS = re.compile(r"[әғқңөұүһі]", re.IGNORECASE)


def text_of(element: Any) -> str:
    return re.sub(r"\s+", " ", element.text_content()).strip()


def blocks(element: Any) -> list[str]:
    """The paragraphs of one body element; ``<br>`` inside it separates paragraphs too."""
    for br in element.iter("br"):
        br.tail = "\n" + (br.tail or "")
    return [
        p
        for p in (
            re.sub(r"[ \t\r\f\v]+", " ", s).strip() for s in element.text_content().split("\n")
        )
        if p
    ]


def parse_contest_doc(html: bytes) -> dict[str, Any]:
    """Title, lead, paragraphs, time, authors, body links and URL of one contest document."""
    root = lxml.html.fromstring(html)
    article = root.find(".//article")
    meta = {m.get("property"): m.get("content") for m in root.iter("meta") if m.get("property")}
    lead = ""
    paragraphs: list[str] = []
    links: list[str] = []
    for child in article.iterchildren():
        if child.tag == "h2" and not paragraphs and not lead:
            lead = text_of(child)
        elif child.tag in ("p", "blockquote", "h3", "h4", "ul", "ol"):
            found = blocks(child)
            # Interfax repeats the headline as the first h3 of the body
            if child.tag == "h3" and found == [text_of(article.find("h1"))]:
                continue
            paragraphs.extend(found)
            links.extend(a.get("href") for a in child.iter("a") if a.get("href"))
    authors = [text_of(a) for a in article.xpath(".//address//a[@rel='author']")]
    return {
        "url": meta["og:url"],
        "title": text_of(article.find("h1")),
        "lead": lead,
        "paragraphs": paragraphs,
        "published_at": meta["article:published_time"],
        "authors": [a for a in authors if a],
        "links": list(dict.fromkeys(u for u in links if u.startswith("http"))),
    }


def slug_and_section(url: str) -> tuple[str, str]:
    """A replay slug (``[\\w-]+``) and section from the original URL's path."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    query_id = parse_qs(parts.query).get("id")
    last = query_id[0] if query_id else re.sub(r"\.(html?|asp)$", "", segments[-1])
    slug = re.sub(r"[^\w-]+", "-", last).strip("-").lower()
    folders = [s.lower() for s in segments[:-1] if s.lower() not in ("ru", "kz", "news", "show")]
    section = folders[0] if folders and re.fullmatch(r"[a-z_]+", folders[0]) else "news"
    return slug, section


def portal_for(host: str, portals: tuple[DemoPortal, ...]) -> DemoPortal:
    owners = [p for p in portals if p.owns(host)]
    if not owners:
        msg = f"no demo portal owns {host}; add it to portals.yaml"
        raise SystemExit(msg)
    return max(owners, key=lambda p: max(len(d) for d in p.domains if p.owns(host)))


def language(portal: DemoPortal, text: str) -> str:
    """The portal's language, checked: Kazakh text has its own letters, Russian has none."""
    lang = "kk" if portal.languages == ["kk"] else "ru"
    share = len(KAZAKH_LETTERS.findall(text)) / max(1, len(text))
    if (lang == "kk") != (share > 0.01):
        msg = f"{portal.name}: text does not look like {lang}: {text[:80]!r}"
        raise SystemExit(msg)
    return lang


def corpus_article(doc_id: str, data: Path, portals: tuple[DemoPortal, ...]) -> dict[str, Any]:
    path = data / DAY / "docs" / f"20191118_{doc_id}.html"
    parsed = parse_contest_doc(path.read_bytes())
    portal = portal_for(urlsplit(parsed["url"]).hostname or "", portals)
    slug, section = slug_and_section(parsed["url"])
    local = datetime.fromisoformat(parsed["published_at"]).astimezone(ZoneInfo(portal.timezone))
    return {
        "id": f"{portal.name}/{slug}",
        "portal": portal.name,
        "slug": slug,
        "section": section,
        **parsed,
        "published_at": local.isoformat(),
        "lang": language(portal, " ".join(parsed["paragraphs"])),
        "origin": f"{DAY}/docs/{path.name}",
        "constructed": False,
    }


def release_articles(data: Path) -> list[dict[str, Any]]:
    """The PM release (the seed minus Caravan's furniture and attribution), Caravan's copy as
    published, and two copies invented for the demo: a trimmed one with a new lead that cites
    the PM, and one that cites no one."""
    lines = [line.strip() for line in (data / SEED).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not SEED_FURNITURE.match(line)]
    title, body = lines[0], [line for line in lines[1:] if line != lines[0]]
    release = [CARAVAN_ATTRIBUTION.sub("", p) for p in body]
    if release == body:
        raise SystemExit("the seed's attribution phrase was not found")
    common = {"section": "news", "lang": "ru", "lead": "", "authors": [], "links": []}

    def article(portal: str, slug: str, when: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": f"{portal}/{slug}",
            "portal": portal,
            "slug": slug,
            **common,
            "published_at": f"2019-07-09T{when}:00+06:00",
            **fields,
        }

    return [
        article(
            "primeminister",
            f"{PM_SLUG}-1907091",
            "16:40",
            url=PM_URL,
            title=title,
            paragraphs=release,
            origin=f"{SEED} (attribution and furniture removed)",
            constructed=False,
        ),
        article(
            "caravan",
            "pervyy-vitse-premer-rk-provel-peregovory-s-rogozinym",
            "17:55",
            url="https://www.caravan.kz/news/pervyy-vitse-premer-rk-provel-peregovory-s-rogozinym/",
            title=title,
            paragraphs=body,
            origin=SEED,
            constructed=False,
        ),
        article(
            "steppe",
            "baiterek-na-baikonure",
            "19:10",
            url="https://steppe-times.example/news/baiterek-na-baikonure.html",
            title="На Байконуре договорились вернуться к проекту «Байтерек»",
            lead="Правительство и «Роскосмос» создают рабочую группу",
            paragraphs=[STEPPE_LEAD, release[0], *release[2:5]],
            links=[PM_URL],
            origin=f"constructed from {SEED}",
            constructed=True,
        ),
        article(
            "aqsu",
            "mamin-rogozin-baikonur",
            "21:30",
            url="https://aqsu-daily.example/news/mamin-rogozin-baikonur.html",
            title="Мамин и Рогозин обсудили «Байтерек» и развитие Байконыра",
            paragraphs=[release[0], *release[2:7]],
            origin=f"constructed from {SEED}",
            constructed=True,
        ),
    ]


def build(data: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    portals = load_portals()
    by_doc = {}
    for doc_id in [d for _, members in STORIES.values() for d in members] + SINGLES:
        if doc_id in by_doc:
            msg = f"{doc_id} is listed twice"
            raise SystemExit(msg)
        by_doc[doc_id] = corpus_article(doc_id, data, portals)
    articles = [*by_doc.values(), *release_articles(data)]
    ids = [a["id"] for a in articles]
    if len(ids) != len(set(ids)):
        raise SystemExit("two articles share a portal and slug")
    stories = {
        name: {"note": note, "members": [by_doc[d]["id"] for d in members]}
        for name, (note, members) in STORIES.items()
    }
    stories["baikonur-baiterek-release"] = {
        "note": "PM press release of 9 July 2019 (Mamin meets Rogozin at Baikonur; Baiterek): "
        "the official original, Caravan.kz's attributed copy, a constructed trimmed copy "
        "citing the PM (steppe) and a constructed unattributed copy (aqsu)",
        "original": articles[-4]["id"],
        "members": [a["id"] for a in articles[-4:]],
    }
    return articles, {"stories": stories}


README = CORPUS_DIR / "README.md"
GENERATED_MARK = "<!-- generated by tests/data/build_demo_corpus.py"


def provenance_table(articles: list[dict[str, Any]], stories: dict[str, Any]) -> str:
    """The README's per-document table: id, story, where it was published, where it was read."""
    story_of = {m: name for name, s in stories["stories"].items() for m in s["members"]}
    rows = ["| id | story | published at | taken from |", "| --- | --- | --- | --- |"]
    for a in articles:
        rows.append(f"| `{a['id']}` | {story_of.get(a['id'], '')} | {a['url']} | {a['origin']} |")
    return "\n".join(rows) + "\n"


def write_readme_table(articles: list[dict[str, Any]], stories: dict[str, Any]) -> None:
    text = README.read_text(encoding="utf-8")
    head, mark, _ = text.partition(GENERATED_MARK)
    if not mark:
        msg = f"{README}: the line starting {GENERATED_MARK!r} is missing"
        raise SystemExit(msg)
    mark_line = mark + text[len(head) + len(mark) :].split("\n", 1)[0]
    table = provenance_table(articles, stories)
    README.write_text(f"{head}{mark_line}\n\n{table}", encoding="utf-8")


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    articles, stories = build(data)
    articles.sort(key=lambda a: (a["portal"], a["published_at"]))
    with gzip.GzipFile(ARTICLES_FILE, "wb", mtime=0) as out:
        for article in articles:
            out.write((json.dumps(article, ensure_ascii=False) + "\n").encode("utf-8"))
    STORIES_FILE.write_text(json.dumps(stories, ensure_ascii=False, indent=1) + "\n", "utf-8")
    write_readme_table(articles, stories)
    grouped = sum(len(s["members"]) for s in stories["stories"].values())
    print(
        f"{len(articles)} articles ({grouped} in {len(stories['stories'])} stories), "
        f"{ARTICLES_FILE.stat().st_size} bytes -> {ARTICLES_FILE.parent}"
    )


if __name__ == "__main__":
    main()
