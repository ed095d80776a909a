-- 003 (judge): per-mode calibration maps fitted by `tracefail calibrate`. The newest row per
-- (judge source, taxonomy, mode) is applied to later labels; labels keep raw_probability.
CREATE TABLE calibrations (
    judge_source     VARCHAR NOT NULL,     -- llm-judge:<config hash>
    taxonomy_id      VARCHAR NOT NULL,
    taxonomy_version VARCHAR NOT NULL,
    mode_id          VARCHAR NOT NULL,
    method           VARCHAR NOT NULL,     -- temperature | platt
    params           JSON NOT NULL,        -- {"a": slope, "b": intercept} on the logit
    reference        VARCHAR NOT NULL,     -- human | dataset
    n                INTEGER NOT NULL,
    ece_before       DOUBLE,
    ece_after        DOUBLE,
    run_id           VARCHAR,
    created_at       TIMESTAMP NOT NULL
);
