"""The schema on PostgreSQL: the same migrations as kpi_core/migrations.py, under the same
numbers, in PostgreSQL's text (kpi_core/pg_warehouse.py applies them). Append a text here with
every migration added there: tests/test_pg_warehouse.py fails while a number is missing.

What differs from the DuckDB file: `DOUBLE PRECISION` for DOUBLE; keys where the file relies on
row-group pruning and on the code (docs/scale.md): `actual` (unit_id, kpi_id, period),
`actual_year` (unit_id, kpi_id, year) and `target` (unit_id, kpi_id, grain, period_start,
version), the last of which refuses a second save of the same target version from another
server; room on each page for in-place updates of the two tables uploads rewrite.
"""

PG_MIGRATIONS: dict[int, str] = {
    1: """
        CREATE SEQUENCE org_unit_id START 1;
        CREATE SEQUENCE kpi_id START 1;
        CREATE SEQUENCE batch_id START 1;
        CREATE SEQUENCE comment_id START 1;

        CREATE TABLE org_unit (
            id INTEGER PRIMARY KEY,
            code VARCHAR NOT NULL UNIQUE,
            name_zh VARCHAR NOT NULL,
            name_en VARCHAR NOT NULL,
            parent_id INTEGER,
            kind VARCHAR NOT NULL,
            sort_order INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE kpi (
            id INTEGER PRIMARY KEY,
            code VARCHAR NOT NULL UNIQUE,
            name_zh VARCHAR NOT NULL,
            name_en VARCHAR NOT NULL,
            unit VARCHAR NOT NULL DEFAULT '',
            direction VARCHAR NOT NULL,
            aggregation VARCHAR NOT NULL,
            numerator VARCHAR,
            denominator VARCHAR,
            formula VARCHAR,
            perspective VARCHAR,
            kind VARCHAR,
            veto BOOLEAN NOT NULL DEFAULT false,
            decimals INTEGER,
            caliber VARCHAR,
            source VARCHAR,
            owner VARCHAR,
            period_grain VARCHAR NOT NULL DEFAULT 'M',
            min_value DOUBLE PRECISION,
            max_value DOUBLE PRECISION,
            active BOOLEAN NOT NULL DEFAULT true,
            sort_order INTEGER NOT NULL DEFAULT 0
        );

        -- One row per edge and version. The children of a parent valid for a month are the rows
        -- of that parent with the latest valid_from on or before the month.
        CREATE TABLE tree_edge (
            parent_unit INTEGER NOT NULL,
            parent_kpi INTEGER NOT NULL,
            child_unit INTEGER NOT NULL,
            child_kpi INTEGER NOT NULL,
            weight DOUBLE PRECISION NOT NULL,
            valid_from DATE NOT NULL,
            sort_order INTEGER NOT NULL DEFAULT 0,
            changed_by VARCHAR,
            changed_at TIMESTAMP,
            reason VARCHAR
        );

        CREATE TABLE phasing_profile (
            name VARCHAR PRIMARY KEY,
            shares DOUBLE PRECISION[] NOT NULL
        );

        -- Effective-dated: a change adds a version; a month is judged by the latest version
        -- valid on or before it, so past months keep the targets they were judged by.
        CREATE TABLE target (
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            grain VARCHAR NOT NULL,
            period_start DATE NOT NULL,
            baseline DOUBLE PRECISION,
            target DOUBLE PRECISION,
            challenge DOUBLE PRECISION,
            low DOUBLE PRECISION,
            high DOUBLE PRECISION,
            tolerance DOUBLE PRECISION,
            phasing VARCHAR,
            valid_from DATE NOT NULL,
            version INTEGER NOT NULL,
            changed_by VARCHAR,
            changed_at TIMESTAMP,
            reason VARCHAR,
            -- Two servers saving the same target version: the second is refused (ConflictError).
            UNIQUE (unit_id, kpi_id, grain, period_start, version)
        );
        CREATE INDEX target_find ON target (unit_id, kpi_id, period_start);

        CREATE TABLE batch (
            id INTEGER PRIMARY KEY,
            kind VARCHAR NOT NULL,
            source_name VARCHAR,
            sha256 VARCHAR,
            created_by VARCHAR,
            created_at TIMESTAMP NOT NULL,
            rows INTEGER NOT NULL DEFAULT 0,
            status VARCHAR NOT NULL
        );

        CREATE TABLE actual (
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            period DATE NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            batch_id INTEGER,
            PRIMARY KEY (unit_id, kpi_id, period)
        ) WITH (fillfactor = 90);

        -- The values a batch overwrote, so rolling it back can restore them.
        CREATE TABLE actual_replaced (
            batch_id INTEGER NOT NULL,
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            period DATE NOT NULL,
            old_value DOUBLE PRECISION NOT NULL,
            old_batch_id INTEGER
        );

        CREATE TABLE audit (
            changed_at TIMESTAMP NOT NULL,
            changed_by VARCHAR,
            entity VARCHAR NOT NULL,
            key VARCHAR,
            field VARCHAR,
            old VARCHAR,
            new VARCHAR,
            reason VARCHAR
        );

        CREATE TABLE comment (
            id INTEGER PRIMARY KEY,
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            period DATE NOT NULL,
            created_by VARCHAR,
            created_at TIMESTAMP NOT NULL,
            text VARCHAR NOT NULL,
            action VARCHAR,
            due DATE
        );

        CREATE TABLE app_user (
            name VARCHAR PRIMARY KEY,
            display_name VARCHAR,
            role VARCHAR NOT NULL,
            scope VARCHAR[] NOT NULL,
            password_hash VARCHAR
        );
        """,
    2: """
        -- Maintained with `actual` in the same transaction (actuals.refresh_summary): a year's
        -- roll-up reads one row per KPI, unit and year instead of twelve.
        CREATE TABLE actual_year (
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            year INTEGER NOT NULL,
            total DOUBLE PRECISION NOT NULL,
            mean DOUBLE PRECISION NOT NULL,
            last DOUBLE PRECISION NOT NULL,
            n INTEGER NOT NULL,
            last_period DATE NOT NULL,
            PRIMARY KEY (unit_id, kpi_id, year)
        ) WITH (fillfactor = 90);
        INSERT INTO actual_year
        SELECT kpi_id, unit_id, extract(year FROM period)::int, sum(value), avg(value),
               (array_agg(value ORDER BY period DESC))[1], count(*), max(period)
        FROM actual GROUP BY 1, 2, 3;
        """,
    3: """
        CREATE TABLE import_profile (
            name VARCHAR PRIMARY KEY,
            mapping VARCHAR NOT NULL,  -- JSON, see kpi_core.ingest.profile
            updated_by VARCHAR,
            updated_at TIMESTAMP NOT NULL
        );

        -- A closed month takes no more actuals until an admin reopens it.
        CREATE TABLE period_lock (
            period DATE PRIMARY KEY,
            locked_by VARCHAR,
            locked_at TIMESTAMP NOT NULL
        );

        ALTER TABLE batch ADD COLUMN files VARCHAR;  -- file names, one per line
        ALTER TABLE batch ADD COLUMN months VARCHAR;  -- months the batch covers, e.g. 2026-09
        ALTER TABLE batch ADD COLUMN summary VARCHAR;  -- JSON: new / changed / removed counts
        """,
    4: """
        -- A source's URL never holds a password: it references ${ENV_VAR} or
        -- ${secrets.section.key} (kpi_core.ingest.sources).
        CREATE TABLE source (
            name VARCHAR PRIMARY KEY,
            url VARCHAR NOT NULL,
            query VARCHAR NOT NULL,
            mapping VARCHAR NOT NULL,  -- JSON, a mapping profile (kpi_core.ingest.profile)
            row_limit INTEGER NOT NULL,
            timeout_s INTEGER NOT NULL,
            updated_by VARCHAR,
            updated_at TIMESTAMP NOT NULL
        );
        """,
    5: """
        -- Each change of a parent's children writes a whole new edge set with the next version.
        -- A month takes the highest version valid on or before it, so a change saved later with
        -- an earlier date also replaces a set that was to start after that date.
        ALTER TABLE tree_edge ADD COLUMN version INTEGER DEFAULT 1;
        UPDATE tree_edge SET version = v.version
        FROM (SELECT DISTINCT parent_unit AS pu, parent_kpi AS pk, valid_from AS vf,
                     dense_rank() OVER (PARTITION BY parent_unit, parent_kpi
                                        ORDER BY valid_from) AS version
              FROM tree_edge) v
        WHERE tree_edge.parent_unit = v.pu AND tree_edge.parent_kpi = v.pk
          AND tree_edge.valid_from = v.vf;
        """,
    6: """
        CREATE SEQUENCE alert_id START 1;

        -- One row per alert: a (KPI, unit, period, kind) whose condition holds. `state_key` is
        -- the condition's state when it was raised (e.g. 'red'); the same KPI, unit, period and
        -- kind is raised again only when that state changes (kpi_core.alerts).
        CREATE TABLE alert_event (
            id INTEGER PRIMARY KEY,
            kpi_id INTEGER,  -- NULL for an alert about a unit (stale data)
            unit_id INTEGER NOT NULL,
            period DATE NOT NULL,
            kind VARCHAR NOT NULL,  -- status / at_risk / anomaly / stale / overdue
            severity VARCHAR NOT NULL,  -- high / medium / low
            state_key VARCHAR NOT NULL,
            owner VARCHAR,
            message_zh VARCHAR NOT NULL,
            message_en VARCHAR NOT NULL,
            details VARCHAR,  -- JSON: the numbers behind the message
            state VARCHAR NOT NULL DEFAULT 'open',  -- open / acknowledged / closed
            raised_at TIMESTAMP NOT NULL,
            acknowledged_by VARCHAR,
            acknowledged_at TIMESTAMP,
            closed_by VARCHAR,
            closed_at TIMESTAMP,
            resolution VARCHAR
        );

        -- Rule settings that differ from the defaults (kpi_core.alerts): JSON per rule kind.
        CREATE TABLE alert_rule (
            kind VARCHAR PRIMARY KEY,
            enabled BOOLEAN NOT NULL DEFAULT true,
            params VARCHAR NOT NULL DEFAULT '{}',
            updated_by VARCHAR,
            updated_at TIMESTAMP
        );

        -- Where alerts are pushed. `url` and `options` never hold a secret: they reference
        -- ${ENV_VAR} or ${secrets.section.key}, resolved when sending (kpi_core.push).
        CREATE TABLE push_channel (
            name VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,  -- webhook / dingtalk / wecom / slack / email
            url VARCHAR NOT NULL,
            options VARCHAR NOT NULL DEFAULT '{}',
            min_severity VARCHAR NOT NULL DEFAULT 'medium',
            enabled BOOLEAN NOT NULL DEFAULT true,
            updated_by VARCHAR,
            updated_at TIMESTAMP
        );

        -- Every delivery attempt, so failures are visible on the page and never lost.
        CREATE TABLE push_log (
            sent_at TIMESTAMP NOT NULL,
            channel VARCHAR NOT NULL,
            alert_id INTEGER,  -- NULL for a test message
            attempt INTEGER NOT NULL,
            ok BOOLEAN NOT NULL,
            status VARCHAR,
            error VARCHAR
        );

        -- Review comments and actions (复盘): a comment may carry an action with an owner and a
        -- due date, followed until it is closed with a resolution; it may answer an alert.
        ALTER TABLE comment ADD COLUMN owner VARCHAR;
        ALTER TABLE comment ADD COLUMN state VARCHAR;  -- NULL for a plain comment; open / closed
        ALTER TABLE comment ADD COLUMN closed_by VARCHAR;
        ALTER TABLE comment ADD COLUMN closed_at TIMESTAMP;
        ALTER TABLE comment ADD COLUMN resolution VARCHAR;
        ALTER TABLE comment ADD COLUMN alert_id INTEGER;
        """,
    7: """
        -- `email` maps a single sign-on identity to its user; failures count towards lock-out
        -- and are kept in the warehouse so a lock holds across sessions and server restarts.
        ALTER TABLE app_user ADD COLUMN email VARCHAR;
        ALTER TABLE app_user ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE app_user ADD COLUMN locked_until TIMESTAMP;
        ALTER TABLE app_user ADD COLUMN last_sign_in TIMESTAMP;
        """,
    8: """
        -- Each write of actuals (a batch, a roll-back) is one change set saying when, who and
        -- why, with a row per value it changed, old and new as numbers. The change log spells
        -- them out as it reads them (audit.LOG): a row of text per value cost more than the
        -- rest of committing a 100,000-value upload. Rows written before stay in `audit`.
        CREATE SEQUENCE value_change_set_id START 1;
        CREATE TABLE value_change_set (
            id INTEGER PRIMARY KEY,
            changed_at TIMESTAMP NOT NULL,
            changed_by VARCHAR,
            reason VARCHAR
        );
        CREATE TABLE value_change (
            set_id INTEGER NOT NULL,
            kpi_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            period DATE NOT NULL,
            old DOUBLE PRECISION,
            new DOUBLE PRECISION
        );
        """,
    9: """
        -- One row per sign-in (kpi_core.sessions). The browser holds a random id in an HttpOnly
        -- cookie; only its SHA-256 is stored, so a copy of the warehouse (a backup) cannot be
        -- turned back into a cookie. A session ends at `expires_at`, after idle time-out (from
        -- `last_seen`), or when revoked: sign-out, sign-out everywhere, an admin.
        CREATE TABLE app_session (
            id_hash VARCHAR PRIMARY KEY,
            user_name VARCHAR NOT NULL,
            via VARCHAR NOT NULL,  -- password / sso
            created_at TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP,
            revoked_by VARCHAR,
            revoked_why VARCHAR  -- signed_out / everywhere / admin / timed_out / password / deleted
        );

        -- Keys the server generates once (the session cookie's signing key, unless
        -- [sign_in] cookie_secret is set in secrets.toml).
        CREATE TABLE app_secret (
            name VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    10: """
        -- A wall screen signs in with a random token shown once when an admin creates it; only
        -- its SHA-256 is kept (kpi_core.kiosk). Revoking sets revoked_at; the open screen
        -- checks its token at every tick and stops. Number 10 leaves 9 to the sign-in
        -- sessions: the runner applies every number not yet applied, so either may land first.
        CREATE SEQUENCE kiosk_screen_id START 1;
        CREATE TABLE kiosk_screen (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            units VARCHAR[] NOT NULL,  -- unit codes, each with its subtree
            slides VARCHAR[] NOT NULL,
            rotate_s INTEGER NOT NULL,
            refresh_s INTEGER NOT NULL,
            lang VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL UNIQUE,  -- hex SHA-256 of the token
            created_by VARCHAR,
            created_at TIMESTAMP NOT NULL,
            revoked_by VARCHAR,
            revoked_at TIMESTAMP,
            last_seen_at TIMESTAMP,
            last_seen_from VARCHAR
        );
        """,
    11: """
        -- Numbers 9 and 10 are other changes' (sessions, kiosk screens); `Warehouse.migrate`
        -- applies every migration a file has not seen, whatever its number.
        -- A published month is final for the unit and everything below it: the boards may
        -- default to it even where values are missing (kpi_core.completeness).
        CREATE TABLE month_publish (
            period DATE NOT NULL,
            unit_id INTEGER NOT NULL,
            published_by VARCHAR,
            published_at TIMESTAMP NOT NULL,
            PRIMARY KEY (period, unit_id)
        );
        """,
    12: """
        -- One row. `Warehouse.transaction` sets a new random token in the same transaction as
        -- the data it commits; a random token rather than a counter, so that a restored backup
        -- can never bring back a number that meant other data (kpi_core.warehouse).
        CREATE TABLE data_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token BIGINT NOT NULL
        );
        INSERT INTO data_version VALUES (1, floor(random() * 9.0e18)::bigint);
        """,
    13: """
        -- An alert's text is the key of its message and JSON parameters (kpi_core.alerts.messages),
        -- rendered when read with the names and wording of then; alerts raised before keep the
        -- finished texts they were stored with (message_key NULL).
        ALTER TABLE alert_event ADD COLUMN message_key VARCHAR;
        ALTER TABLE alert_event ADD COLUMN message_params VARCHAR;
        ALTER TABLE alert_event ALTER COLUMN message_zh DROP NOT NULL;
        ALTER TABLE alert_event ALTER COLUMN message_en DROP NOT NULL;
        """,
    14: """
        -- A failed delivery's message as its key and JSON values (kpi_core.messages.dump_values),
        -- rendered on the Alerts page in its reader's language. `error` keeps the English text
        -- (logs, the command line); rows written before have only that (error_key NULL).
        ALTER TABLE push_log ADD COLUMN error_key VARCHAR;
        ALTER TABLE push_log ADD COLUMN error_values VARCHAR;
        """,
}
