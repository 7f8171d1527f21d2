-- Quota ledger (PostgreSQL; see ../0002_quota.sql): at most one reservation and one closing
-- entry per job, indexes for the per-member checks, each guild's monthly spend kept from the
-- ledger by a trigger, and the ledger append-only.

CREATE UNIQUE INDEX quota_ledger_job_entries
    ON quota_ledger (job_id, (kind = 'reserve')) WHERE job_id IS NOT NULL;
CREATE INDEX quota_ledger_member_kind ON quota_ledger (guild_id, user_id, kind, at);
DROP INDEX quota_ledger_member;
DROP INDEX quota_ledger_guild_at;

-- USD per guild and calendar month (UTC, 'YYYY-MM') of the job's reservation.
CREATE TABLE quota_guild_spend (
    guild_id    BIGINT NOT NULL,
    month       TEXT NOT NULL,
    cost_usd    NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, month)
);

CREATE FUNCTION quota_ledger_guild_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quota_guild_spend AS s (guild_id, month, cost_usd)
    VALUES (
        NEW.guild_id,
        (SELECT to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM') FROM quota_ledger r
         WHERE r.job_id = NEW.job_id AND r.kind = 'reserve'),
        NEW.cost_usd
    )
    ON CONFLICT (guild_id, month) DO UPDATE SET cost_usd = s.cost_usd + EXCLUDED.cost_usd;
    RETURN NULL;
END;
$$;
CREATE TRIGGER quota_ledger_guild_spend AFTER INSERT ON quota_ledger
    FOR EACH ROW WHEN (NEW.job_id IS NOT NULL AND NEW.cost_usd <> 0)
    EXECUTE FUNCTION quota_ledger_guild_spend();

CREATE FUNCTION quota_ledger_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'quota_ledger is append-only' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER quota_ledger_no_update BEFORE UPDATE ON quota_ledger
    FOR EACH ROW EXECUTE FUNCTION quota_ledger_no_update();

INSERT INTO quota_guild_spend (guild_id, month, cost_usd)
SELECT r.guild_id, to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM'), SUM(l.cost_usd)
FROM quota_ledger r JOIN quota_ledger l ON l.job_id = r.job_id
WHERE r.kind = 'reserve'
GROUP BY r.guild_id, to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM');
