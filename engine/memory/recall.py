"""Recall: the words of a query, the one SQL statement that finds and ranks earlier turns, excerpts.

`SQLiteMemory.recall` runs it. Recall must cost the same with 100,000 turns in a channel as with
none, so it never lets FTS5 rank every matching row (bm25 over 100k matches takes ~150 ms). Each
channel owns a contiguous range of FTS rowids (`channel id << 32`, its turns numbered downwards
from the top so that the newest comes first in FTS5's natural order; see `engine.memory.schema`),
which gives isolation for free and lets every search seek straight into its channel.

Candidates: for each query term (see `fts_terms`), the PER_TERM newest turns of the channel that
contain it, outside the excluded thread, that count as evidence (`EVIDENCE`: people's words and
real findings; never the offline rehearsal's canned turns or unusable replies). A channel's turns are numbered downwards inside its own
FTS rowid range, so "newest first" is FTS5's natural order: it seeks into the channel, reads
PER_TERM entries and stops. The cost does not grow with the channel. A rare term brings all its
turns, however old; a common one its newest.

Score of a candidate d, with N turns in the channel and avgdl their mean length in words:

    idf(t)       = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (FTS5's bm25 idf)
    relevance(d) = sum over query terms t found in d of
                   idf(t) * (k1 + 1) / (1 + k1 * (1 - b + b * len(d) / avgdl))
    score(d)     = relevance(d) * (0.5 + 0.5 * 2 ** (-age_days(d) / 30))

That is bm25 (k1 = 1.2, b = 0.75) with each found term counted once, times a recency factor whose
bonus halves every 30 days: a fresh turn counts up to twice an ancient one of the same relevance,
so relevance leads and recency breaks near-ties (and exact ties go to the newer turn). df(t) is
exact when fewer than PER_TERM turns contain t; otherwise it is extrapolated from how far back its
PER_TERM newest reach. A term counts as found in d when d is among that term's candidates: exact
except for common terms, whose idf is small anyway. FTS5's own bm25() is not used because it
ranks every match and computes its idf over the whole table: ~150 ms for a common word among 100k
turns.
"""

from __future__ import annotations

import re
import unicodedata

# -- recall tuning ---------------------------------------------------------------------------
MAX_QUERY_CHARS = 4_000  # only the start of a huge query is read for terms
MAX_TERMS = 8
PER_TERM = 24  # newest matches per term: bounds what recall reads, whatever the channel size
BM25_K1, BM25_B = 1.2, 0.75
HALF_LIFE_DAYS = 30.0
EXCERPT_CHARS = 300

_WORD = re.compile(r"[^\W_]+")
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself near no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    let lets please hi hey hello thanks thank ok okay yes also get got one don
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def fts_terms(query: str) -> list[str]:
    """The words of free user text worth searching for: normalised, no stopwords, no FTS syntax.

    Only runs of letters and digits survive, so quotes, `*`, `^`, `:`, parentheses and emoji
    are gone; operators (NEAR, AND, OR, NOT) are stopwords. At most MAX_TERMS, the longest first
    when there are more (long words tend to be the specific ones).
    """
    if not isinstance(query, str):
        return []
    text = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS]).casefold()
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        if word in _STOPWORDS or len(word) > 40 or (len(word) < 2 and word.isascii()):
            continue
        seen.setdefault(word, None)
    terms = list(seen)
    if len(terms) > MAX_TERMS:
        keep = set(sorted(terms, key=len, reverse=True)[:MAX_TERMS])
        terms = [t for t in terms if t in keep][:MAX_TERMS]
    return terms


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def excerpt(text: str, terms: list[str], size: int = EXCERPT_CHARS) -> str:
    """About `size` characters of `text` around the first place a term (or its stem) appears."""
    text = " ".join(text.split())
    if len(text) <= size:
        return text
    folded = text.casefold()  # same length as text for all but a few exotic characters
    hits = [folded.find(t[: max(4, len(t) - 3)]) for t in terms]
    hits = [h for h in hits if h >= 0]
    start = min(hits) if hits and len(folded) == len(text) else 0
    start = max(0, start - size // 4)
    if start:
        space = text.find(" ", start, start + 40)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + size - 2)
    if end < len(text):
        space = text.rfind(" ", end - 40, end)
        end = space if space > start else end
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


#: What counts as evidence: what people said, and findings a model really made. Not the offline
#: rehearsal's canned turns (model 'offline': they only echo the people's words back, padded with
#: filler) and not replies that could not be used (unstructured: failed validation, or empty).
EVIDENCE = "(t.role = 'human' OR (t.structured = 1 AND coalesce(t.model, '') <> 'offline'))"

_RECALL_BRANCH = """
    SELECT * FROM (
        SELECT {i} AS term, turns_fts.rowid AS doc FROM turns_fts CROSS JOIN turns AS t ON t.doc = turns_fts.rowid
        WHERE turns_fts MATCH :q{i}
          AND turns_fts.rowid BETWEEN (SELECT lo FROM ch) AND (SELECT lo FROM ch) + 4294967295
          AND turns_fts.rowid NOT IN (SELECT doc FROM ex)
          AND {evidence}
        ORDER BY turns_fts.rowid LIMIT :k)"""

_RECALL = """
WITH
ch AS (SELECT id << 32 AS lo, docs AS n, max(1.0, tokens * 1.0 / max(docs, 1)) AS avgdl
       FROM channels WHERE platform = :p AND workspace = :w AND channel = :c),
ex AS (SELECT doc FROM turns WHERE thread_id = :ex),
hits (term, doc) AS ({branches}),
idf AS (
    SELECT term, max(1e-6, ln(1 + (n - df + 0.5) / (df + 0.5))) AS w
    FROM (SELECT term,
                 CASE WHEN got < :k THEN got
                      ELSE min(n, got * n * 1.0 / max(1, last - (lo + 4294967295 - n) + 1))
                 END AS df,
                 n
          FROM (SELECT term, count(*) AS got, max(doc) AS last FROM hits GROUP BY term), ch)),
cand AS (SELECT h.doc, sum(i.w) AS rel FROM hits AS h JOIN idf AS i USING (term) GROUP BY h.doc),
best AS (
    SELECT c.doc,
           c.rel * {k1p1} / (1 + {k1} * (1 - {b} + {b} * t.ntok / (SELECT avgdl FROM ch)))
             * (0.5 + 0.5 * pow(2, -max(0, julianday('now') - julianday(t.created_at)) / {half}))
             AS score
    FROM cand AS c JOIN turns AS t ON t.doc = c.doc
    ORDER BY score DESC, c.doc LIMIT :limit)
SELECT b.score, t.thread_id, th.title, t.author, t.mode, t.created_at, t.text
FROM best AS b JOIN turns AS t ON t.doc = b.doc JOIN threads AS th ON th.id = t.thread_id
ORDER BY b.score DESC, b.doc
"""


def _recall_sql(n_terms: int) -> str:
    """The recall statement for n_terms terms (see the module docstring)."""
    branches = " UNION ALL ".join(_RECALL_BRANCH.format(i=i, evidence=EVIDENCE) for i in range(n_terms))
    return _RECALL.format(
        branches=branches, k1=BM25_K1, k1p1=BM25_K1 + 1, b=BM25_B, half=HALF_LIFE_DAYS
    )
