-- Each process's share of a provider's request budget (see ../0010_provider_shares.sql).
CREATE TABLE provider_shares (
    provider   TEXT NOT NULL,
    owner      TEXT NOT NULL,
    share      DOUBLE PRECISION NOT NULL CHECK (share >= 0 AND share <= 1),
    demand     INTEGER NOT NULL CHECK (demand >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, owner)
);
