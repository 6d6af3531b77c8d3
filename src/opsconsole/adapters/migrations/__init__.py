"""Database migrations: the history in `supabase_migrations.schema_migrations`, each statement
classified by PostgreSQL's own parser (pglast), the `db.migrations` check, and the revert engine
(a dry run in a rolled-back transaction that counts the data it would lose; the real run in one
transaction). Textual-free; expected failures are data."""
