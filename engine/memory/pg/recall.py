"""Recall on PostgreSQL: the statement that finds and ranks a channel's earlier turns.

Recall keeps the meaning it has on SQLite (`engine.memory.recall`, whose docstring derives the
formula): the same words of the query (`fts_terms`), the same candidates (for each term, the
PER_TERM newest turns of the channel that contain it and count as evidence, outside the
excluded thread), the same score (bm25 with the channel's own idf and average length, times a
recency factor whose bonus halves every 30 days). So a query ranks the same turns the same way on
both backends, and one shared test suite proves both.

What PostgreSQL does differently is only how the candidates are found: a turn's words are its
generated `tsv` column (`to_tsvector('simple', text)`, GIN-indexed; why `simple`: see
`engine.memory.pg.schema_core`), and a channel's turns are the contiguous `doc` range of its
`channels` row (the unique btree on `turns.doc`, newest first). For each term the statement asks
for the first PER_TERM rows of that range whose `tsv` matches:

- a common term: an ordered scan of the `doc` btree from the newest turn, stopping after
  PER_TERM matches;
- a rare term: the GIN index gives the few turns that hold it, intersected with the range.

The planner picks per term, from the tsvector statistics, so the cost does not grow with the
channel either way. The statement is built per number of terms (one branch each, as on SQLite)
and runs as a one-off (unnamed) statement, so each run is planned with its own words rather than
a cached generic plan.

`ts_rank` is not used for the ranking: it has no idf (a word in every turn would weigh as much as
a rare one) and it would have to score every match of a common word, which is the cost recall
avoids; the bm25 above is what SQLite ranks by, and it needs only the candidates.
"""

from __future__ import annotations

from engine.memory.recall import BM25_B, BM25_K1, EVIDENCE, HALF_LIFE_DAYS

_BRANCH = """
    (SELECT {i} AS term, t.doc FROM turns AS t
     WHERE t.doc BETWEEN $1 AND $1 + 4294967295
       AND t.tsv @@ plainto_tsquery('simple', ${p})
       AND t.thread_id IS DISTINCT FROM $4
       AND {evidence}
     ORDER BY t.doc LIMIT $5)"""

_RECALL = """
WITH
ch AS (SELECT $1::bigint AS lo, $2::bigint AS n, $3::float8 AS avgdl),
hits AS ({branches}),
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

#: The channel's doc range and statistics (one row, or none for a channel without threads).
CHANNEL = """
SELECT id << 32 AS lo, docs AS n, greatest(1.0, tokens::float8 / greatest(docs, 1)) AS avgdl
FROM channels WHERE platform = $1 AND workspace = $2 AND channel = $3
"""


def recall_sql(n_terms: int) -> str:
    """The recall statement for n_terms terms. Parameters: $1 lo, $2 n, $3 avgdl (the channel's
    row: CHANNEL), $4 the excluded thread, $5 PER_TERM, $6 limit, $7... the terms."""
    branches = " UNION ALL ".join(_BRANCH.format(i=i, p=7 + i, evidence=EVIDENCE) for i in range(n_terms))
    return _RECALL.format(branches=branches, k1=BM25_K1, k1p1=BM25_K1 + 1, b=BM25_B, half=HALF_LIFE_DAYS)
