"""ClickHouse: the warehouse the sink writes and `o2o report` and the dashboards read.

- `tables`: every table's columns, defined once (DDL, insert order, columnar rows derive from them)
- `migrations/NNNN_*.sql` + `migrate.apply_migrations`: the schema, versioned and recorded
- `writer`: batched inserts and person merges (identity re-pointing)
- `kpis/*.sql` + `kpis`: one documented query per KPI, filled and run
- `chdb_client`: the same code on current ClickHouse in-process (tests)
"""
