"""Recall on PostgreSQL: the statement that finds and ranks a channel's earlier turns.

Recall keeps the meaning it has on SQLite (`engine.memory.recall`, whose docstring derives the
formula): the same words of the query (`fts_terms`), the same candidates (for each term, the
PER_TERM newest turns of the channel that contain it and count as evidence, outside the excluded
thread), the same score (bm25 with the channel's own idf and average length, times a recency
factor whose bonus halves every 30 days). So a query ranks the same turns the same way on both
backends, and one shared test suite proves both.

`ts_rank` is not what ranks: it has no idf (a word in every turn would weigh as much as a rare
one, and recall would stop meaning what it means on SQLite), and it would have to score every
match of a common word, which is the cost recall avoids; the bm25 above needs only the candidates.

Finding the candidates without reading the whole channel (measured with EXPLAIN ANALYZE on a
100,000-turn channel beside another of 100,000: benchmarks/bench_recall_postgres.py):

- A channel's turns are the contiguous `doc` range of its `channels` row, newest first (the
  unique btree on `turns.doc`). The WINDOW newest evidence turns are read once, in that order,
  and every term looks for its PER_TERM newest matches there: a word used in more than one turn
  in ~40 is done with after reading WINDOW turns (~2-3 ms).
- A term with fewer matches in the window (a rarer word, however old its turns) asks the GIN
  index on `tsv` for the turns older than the window that hold the word *and* the channel's mark
  (`#<channel id>`, see `engine.memory.pg.schema_core`): GIN intersects the two inside the
  index, and only this channel's matches are read from the table (a rare word: ~1-2 ms). Its
  query is a value of the statement's own rows, so the planner never guesses from a word's
  statistics across all channels: a word common in another channel and absent here would make
  it scan the whole channel (~60 ms); the intersection costs ~10-20 ms in that worst case.
- What this does not bound: a word absent from the newest WINDOW turns but in many older ones
  (50,000 of the 100,000) has all those read to find its newest PER_TERM (~50-60 ms). SQLite's
  FTS5 reads a word's matches in rowid order and stops; GIN has no order.

One statement, one round trip, a prepared statement like any other: its plan does not hinge on
the words' or the channel's statistics (checked with the generic plan too), so a cached plan is
as good as a fresh one.
"""

from __future__ import annotations

from engine.memory.recall import BM25_B, BM25_K1, EVIDENCE, HALF_LIFE_DAYS

#: Newest turns of the channel every term is first looked for in (see the module docstring).
WINDOW = 1000

_RECALL = """
WITH
ch AS MATERIALIZED (
    SELECT id << 32 AS lo, docs AS n, greatest(1.0, tokens::float8 / greatest(docs, 1)) AS avgdl,
           ('''#' || id || '''')::tsquery AS mark
    FROM channels WHERE platform = $1 AND workspace = $2 AND channel = $3),
terms AS (SELECT i, plainto_tsquery('simple', w) AS q FROM unnest($7::text[]) WITH ORDINALITY AS u (w, i)),
win AS MATERIALIZED (
    SELECT t.doc, t.tsv FROM turns AS t
    WHERE t.doc BETWEEN (SELECT lo FROM ch) AND (SELECT lo FROM ch) + 4294967295
      AND t.thread_id IS DISTINCT FROM $4 AND {evidence}
    ORDER BY t.doc LIMIT $8),
edge AS (SELECT count(*) AS c, max(doc) AS last FROM win),
recent AS MATERIALIZED (
    SELECT terms.i AS term, x.doc
    FROM terms CROSS JOIN LATERAL (
        SELECT win.doc FROM win WHERE win.tsv @@ terms.q ORDER BY win.doc LIMIT $5) AS x),
short AS (
    SELECT terms.i, terms.q, $5 - (SELECT count(*) FROM recent AS r WHERE r.term = terms.i) AS wanted
    FROM terms, edge
    WHERE edge.c = $8 AND numnode(terms.q) > 0),
older AS (
    SELECT short.i AS term, x.doc
    FROM short, ch CROSS JOIN LATERAL (
        SELECT t.doc FROM turns AS t
        WHERE t.tsv @@ (short.q && ch.mark)
          AND t.doc + 0 > (SELECT last FROM edge)
          AND t.thread_id IS DISTINCT FROM $4 AND {evidence}
        ORDER BY t.doc + 0 LIMIT short.wanted) AS x
    WHERE short.wanted > 0),
hits AS (SELECT term, doc FROM recent UNION ALL SELECT term, doc FROM older),
idf AS (
    SELECT term, greatest(1e-6, ln(1 + (n - df + 0.5) / (df + 0.5))) AS w
    FROM (SELECT term,
                 CASE WHEN got < $5 THEN got::float8
                      ELSE least(n, got * n::float8 / greatest(1, last - (lo + 4294967295 - n) + 1))
                 END AS df,
                 n
          FROM (SELECT term, count(*) AS got, max(doc) AS last FROM hits GROUP BY term) AS s, ch) AS d),
cand AS (SELECT h.doc, sum(i.w) AS rel FROM hits AS h JOIN idf AS i USING (term) GROUP BY h.doc),
best AS (
    SELECT c.doc,
           c.rel * {k1p1} / (1 + {k1} * (1 - {b} + {b} * t.ntok / (SELECT avgdl FROM ch)))
             * (0.5 + 0.5 * power(2, -greatest(0, extract(epoch FROM now() - t.created_at::timestamptz) / 86400)
                                     / {half}))
             AS score
    FROM cand AS c JOIN turns AS t ON t.doc = c.doc
    ORDER BY score DESC, c.doc LIMIT $6)
SELECT b.score::float8, t.thread_id, th.title, t.author, t.mode, t.created_at, t.text
FROM best AS b JOIN turns AS t ON t.doc = b.doc JOIN threads AS th ON th.id = t.thread_id
ORDER BY b.score DESC, b.doc
"""

#: The recall statement. Parameters: $1 platform, $2 workspace, $3 channel, $4 the excluded
#: thread, $5 PER_TERM, $6 limit, $7 the terms (text[]), $8 WINDOW.
RECALL = _RECALL.format(
    evidence=EVIDENCE, k1=BM25_K1, k1p1=BM25_K1 + 1, b=BM25_B, half=HALF_LIFE_DAYS
)
