-- Quota ledger: at most one reservation and one closing entry (settle or refund) per job,
-- indexes for the per-member checks, and each guild's monthly spend kept from the ledger.

-- (job_id, is reserve): one reserve entry and one settle-or-refund entry per job at most.
CREATE UNIQUE INDEX quota_ledger_job_entries
    ON quota_ledger (job_id, kind = 'reserve') WHERE job_id IS NOT NULL;
CREATE INDEX quota_ledger_member_kind ON quota_ledger (guild_id, user_id, kind, at);
-- Superseded by the two above and quota_guild_spend; fewer indexes, cheaper inserts.
DROP INDEX quota_ledger_member;
DROP INDEX quota_ledger_guild_at;

-- USD per guild and calendar month (UTC, 'YYYY-MM'); a job counts in the month of its
-- reservation, so a refund in July of a June job gives the money back to June. Derived
-- data: the trigger below keeps it equal to the ledger's sums, in the same transaction.
CREATE TABLE quota_guild_spend (
    guild_id    INTEGER NOT NULL,
    month       TEXT NOT NULL,
    cost_usd    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, month)
);

CREATE TRIGGER quota_ledger_guild_spend AFTER INSERT ON quota_ledger
WHEN NEW.job_id IS NOT NULL AND NEW.cost_usd != 0
BEGIN
    INSERT INTO quota_guild_spend (guild_id, month, cost_usd)
    VALUES (
        NEW.guild_id,
        substr((SELECT at FROM quota_ledger WHERE job_id = NEW.job_id AND kind = 'reserve'), 1, 7),
        NEW.cost_usd
    )
    ON CONFLICT (guild_id, month) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd;
END;

CREATE TRIGGER quota_ledger_no_update BEFORE UPDATE ON quota_ledger
BEGIN
    SELECT RAISE(ABORT, 'quota_ledger is append-only');
END;

INSERT INTO quota_guild_spend (guild_id, month, cost_usd)
SELECT r.guild_id, substr(r.at, 1, 7), SUM(l.cost_usd)
FROM quota_ledger r JOIN quota_ledger l ON l.job_id = r.job_id
WHERE r.kind = 'reserve'
GROUP BY r.guild_id, substr(r.at, 1, 7);
