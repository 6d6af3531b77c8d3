"""The dead-letter queue triage store: browse, group, inspect, re-queue, discard and fix
`[dlq] table` on `supabase.database_url`.

Scale (the same at 100 rows and at 1,000,000):

* Lists use keyset pagination on (received_at, id) (the demo's `*_received_idx`/`*_waiting_idx`
  indexes); no OFFSET, nothing but one page ever reaches Python. A page also says exactly
  whether rows exist above and below it (one statement).
* Counts run EXPLAIN first: below `EXACT_COUNT_MAX_ESTIMATE` estimated rows an exact count
  runs with a short statement timeout, otherwise (or when that times out) the planner's
  estimate is returned and labelled as one.
* Filters are SQL. The text filter is an ILIKE over the payload text, the raw body and the
  error message; nothing indexes that in the demo (a trigram GIN index on `payload::text`
  made each insert ~8x slower and every status change rewrite hundreds of index entries), so
  it is a scan bounded by `TEXT_SEARCH_TIMEOUT_MS` (a no-match scan of 1M rows took 0.9-1.5 s
  here); a table that has `gin ((payload::text) gin_trgm_ops)` gets it used automatically.
* Payload validity in lists is computed in SQL per row; the size rule comes first, so a 5 MB
  payload is judged from `payload_bytes` without being unpacked.
* "Everything matching the filter" is resolved in SQL chunk by chunk (ascending id after the
  last chunk), never as a list of ids in Python.

Actions (one transaction per chunk, one statement per chunk):

    cand   the chunk's ids (explicit ids, or the next N waiting ids matching the filter)
    locked SELECT … FOR UPDATE in id order: concurrent consoles queue behind each other instead
           of deadlocking; READ COMMITTED re-reads a row changed meanwhile, so a message another
           console already re-queued is seen as `requeued` and skipped (not luck: row locks)
    ins    INSERT into the target table (or `pgmq.send` per message) for the eligible rows
    upd    UPDATE status = 'requeued' (requeued_at/by, requeue_ref = 'campaign_queue:<id>')
    COMMIT

so a message is in the queue if and only if it is marked re-queued, and a killed connection
rolls back the whole chunk. The store checks that the counts of the three steps agree before
committing. When the connection dies *during* COMMIT, the outcome is looked up after
reconnecting (status + requeued_at = that transaction's timestamp), so the result still
reports exactly how many went where. A unique index on the queue's link column (the demo's
`campaign_queue_dlq_message_key`) makes a second insertion impossible even for a buggy caller.

Refused, never touched: messages not waiting (already handled), codes in
`[dlq] never_requeue_error_codes`, and payloads that are not valid (`domain.dlq.payload_problem`;
the same rules are compiled to SQL here).

Every expected failure is returned as a `DlqError` (kind + a message safe to show); no DSN or
password ever reaches one.

The package, one module per concern:

    sql.py      SQL for one mapped table: columns, payload rules and filters as expressions
    schema.py   the table's shape from the catalogue, the `[dlq] columns` mapping, the re-queue target
    session.py  DlqSession: the connection, timeouts, error mapping, the cached shape
    pages.py    DlqReader: pages, counts, groups, one message, its payload, its Twilio alert
    batch.py    DlqStore: previews, chunked re-queue / discard / undo, the payload fix

The names below are re-exported so `from opsconsole.adapters.dlq import DlqStore` keeps working. Each
constant is read in the module that uses it, so a test that changes one patches that module
(e.g. `pages.EXACT_COUNT_MAX_ESTIMATE`), not this package.
"""

from opsconsole.adapters.dlq.batch import (
    CHUNK_TIMEOUT_MS,
    DEFAULT_CHUNK,
    MAX_CHUNK,
    PLAN_TIMEOUT_MS,
    REQUEUE_SOURCE,
    SAMPLE_IDS,
    CancelFlag,
    DlqStore,
    ProgressCallback,
)
from opsconsole.adapters.dlq.pages import (
    COUNT_EXACT_TIMEOUT_MS,
    DEFAULT_PAGE,
    DETAIL_ERROR_CHARS,
    EXACT_COUNT_MAX_ESTIMATE,
    MAX_GROUPS,
    MAX_PAGE,
    PAYLOAD_LIMIT,
    DlqReader,
)
from opsconsole.adapters.dlq.schema import AsyncConn
from opsconsole.adapters.dlq.session import (
    ALERT_TIMEOUT_S,
    CLIENT_GRACE_S,
    CONNECT_TIMEOUT_S,
    IDLE_IN_TRANSACTION_MS,
    LOCK_TIMEOUT_MS,
    READ_TIMEOUT_MS,
    TEXT_SEARCH_TIMEOUT_MS,
    AlertLookup,
    DlqSession,
)
from opsconsole.adapters.dlq.sql import LIST_ERROR_CHARS

__all__ = [
    "ALERT_TIMEOUT_S",
    "CHUNK_TIMEOUT_MS",
    "CLIENT_GRACE_S",
    "CONNECT_TIMEOUT_S",
    "COUNT_EXACT_TIMEOUT_MS",
    "DEFAULT_CHUNK",
    "DEFAULT_PAGE",
    "DETAIL_ERROR_CHARS",
    "EXACT_COUNT_MAX_ESTIMATE",
    "IDLE_IN_TRANSACTION_MS",
    "LIST_ERROR_CHARS",
    "LOCK_TIMEOUT_MS",
    "MAX_CHUNK",
    "MAX_GROUPS",
    "MAX_PAGE",
    "PAYLOAD_LIMIT",
    "PLAN_TIMEOUT_MS",
    "READ_TIMEOUT_MS",
    "REQUEUE_SOURCE",
    "SAMPLE_IDS",
    "TEXT_SEARCH_TIMEOUT_MS",
    "AlertLookup",
    "AsyncConn",
    "CancelFlag",
    "DlqReader",
    "DlqSession",
    "DlqStore",
    "ProgressCallback",
]
