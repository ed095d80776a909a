-- 001: the base tables from DESIGN.md. Later changes go in new numbered files.
CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,          -- ingest | features | label | calibrate | ...
    config       JSON,
    config_hash  VARCHAR,
    status       VARCHAR NOT NULL,          -- running | done | failed | interrupted
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    counts       JSON,
    n_errors     INTEGER DEFAULT 0,
    tokens_in    BIGINT DEFAULT 0,
    tokens_out   BIGINT DEFAULT 0,
    cost_usd     DOUBLE DEFAULT 0,
    elapsed_s    DOUBLE
);

CREATE TABLE traces (
    trace_id      VARCHAR PRIMARY KEY,
    source        VARCHAR NOT NULL,
    native_id     VARCHAR,
    framework     VARCHAR,
    llm           VARCHAR,
    benchmark     VARCHAR,
    task          VARCHAR,
    ground_truth  VARCHAR,
    outcome       VARCHAR NOT NULL,
    n_steps       INTEGER NOT NULL,
    content_hash  VARCHAR NOT NULL,
    source_file   VARCHAR,
    raw           VARCHAR,
    metadata      JSON,
    ingest_run_id VARCHAR,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE steps (
    trace_id       VARCHAR NOT NULL,
    step_idx       INTEGER NOT NULL,
    span_id        VARCHAR,
    parent_span_id VARCHAR,
    agent          VARCHAR,
    recipient      VARCHAR,
    role           VARCHAR,
    kind           VARCHAR NOT NULL,
    name           VARCHAR,
    content        VARCHAR NOT NULL,
    tool_calls     JSON,
    tool_call_id   VARCHAR,
    model          VARCHAR,
    tokens_in      INTEGER,
    tokens_out     INTEGER,
    start_ts       TIMESTAMP,
    end_ts         TIMESTAMP,
    status         VARCHAR,
    metadata       JSON,
    PRIMARY KEY (trace_id, step_idx)
);

CREATE SEQUENCE label_id_seq START 1;
CREATE TABLE labels (
    label_id         BIGINT PRIMARY KEY DEFAULT nextval('label_id_seq'),
    trace_id         VARCHAR NOT NULL,
    taxonomy_id      VARCHAR NOT NULL,
    taxonomy_version VARCHAR NOT NULL,
    mode_id          VARCHAR NOT NULL,
    present          BOOLEAN,
    probability      DOUBLE,
    raw_probability  DOUBLE,
    evidence_steps   INTEGER[],
    agent            VARCHAR,
    rationale        VARCHAR,
    source           VARCHAR NOT NULL,
    run_id           VARCHAR,
    metadata         JSON,
    created_at       TIMESTAMP NOT NULL
);
CREATE INDEX labels_trace ON labels (trace_id);

CREATE SEQUENCE attribution_id_seq START 1;
CREATE TABLE attributions (
    attribution_id BIGINT PRIMARY KEY DEFAULT nextval('attribution_id_seq'),
    trace_id       VARCHAR NOT NULL,
    agent          VARCHAR,
    step_idx       INTEGER,
    reason         VARCHAR,
    probability    DOUBLE,
    source         VARCHAR NOT NULL,
    run_id         VARCHAR,
    metadata       JSON,
    created_at     TIMESTAMP NOT NULL
);
CREATE INDEX attributions_trace ON attributions (trace_id);

-- Long format so new features need no migration. step_idx = -1 holds trace-level aggregates.
CREATE TABLE features (
    trace_id          VARCHAR NOT NULL,
    step_idx          INTEGER NOT NULL,
    model             VARCHAR NOT NULL,
    extractor_version VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,
    value             DOUBLE,
    run_id            VARCHAR
);
CREATE INDEX features_trace ON features (trace_id);

CREATE SEQUENCE quarantine_id_seq START 1;
CREATE TABLE quarantine (
    quarantine_id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_id_seq'),
    file          VARCHAR NOT NULL,
    record        VARCHAR,          -- locator inside the file: index, line, key
    reason        VARCHAR NOT NULL,
    excerpt       VARCHAR,          -- the first bytes of the record, for a human to look at
    run_id        VARCHAR,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE taxonomies (
    taxonomy_id VARCHAR NOT NULL,
    version     VARCHAR NOT NULL,
    name        VARCHAR,
    definition  JSON NOT NULL,
    loaded_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (taxonomy_id, version)
);
