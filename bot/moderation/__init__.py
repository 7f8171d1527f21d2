"""Moderation: the audit log, prompt rules, member blocks, retention, export, the mod-log.

Layout (each module has one job; callers use the names re-exported here):

- `audit`        the only writer of audit entries; wakes the mod-log after each commit
- `prompt_rules` blocked terms and regexes, and the /video prompt check
- `blocks`       blocked members, and the /video member check
- `retention`    how long the audit log is kept, and pruning
- `export`       CSV export of the audit log
- `modlog`       the worker posting queued entries to each guild's log channel
- `errors`       `ModerationError`, bad admin input with a message to show

Note: `bot.moderation.audit` is the function here; import the module's other names with
`from bot.moderation.audit import ...`.
"""

from __future__ import annotations

from bot.moderation.audit import (
    KIND_ADMIN,
    KIND_CANCEL,
    KIND_DELETE,
    KIND_GENERATION,
    KIND_PROVIDER_ACCOUNT,
    KIND_PRUNE,
    KIND_REFUSAL,
    KIND_SUBMISSION_UNKNOWN,
    MAX_SUMMARY_CHARS,
    Change,
    admin_change,
    audit,
    audit_generation,
    audit_job_action,
    audit_provider_account,
    audit_refusal,
    audit_submission_unknown,
    jump_url,
    recent_entries,
)
from bot.moderation.blocks import (
    BLOCKED_MEMBER_MESSAGE,
    MAX_BLOCK_DAYS,
    MAX_REASON_CHARS,
    active_block,
    block_member,
    check_member,
    describe_duration,
    list_blocked_members,
    parse_duration,
    unblock_member,
)
from bot.moderation.errors import ModerationError
from bot.moderation.export import (
    CSV_COLUMNS,
    ExportTooLarge,
    export_csv,
    export_range,
    parse_day,
    read_csv_export,
    record_export,
)
from bot.moderation.modlog import ModLog, Poster, set_log_channel
from bot.moderation.prompt_rules import (
    MAX_REGEXES_PER_GUILD,
    MAX_TERMS_PER_GUILD,
    PROMPT_CHECK_FAILED_MESSAGE,
    PROMPT_CHECK_TIMEOUT_MESSAGE,
    PromptVerdict,
    add_blocked_term,
    check_prompt,
    find_blocked_term,
    guild_ruleset,
    list_blocked_terms,
    remove_blocked_term,
    resolve_term,
)
from bot.moderation.retention import (
    MAX_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    prune,
    prune_all,
    retention_days,
    set_retention,
)
from bot.store.audit import AuditEntry
from bot.store.blocks import BlockedMember, BlockedTerm

__all__ = [
    "BLOCKED_MEMBER_MESSAGE",
    "CSV_COLUMNS",
    "KIND_ADMIN",
    "KIND_CANCEL",
    "KIND_DELETE",
    "KIND_GENERATION",
    "KIND_PROVIDER_ACCOUNT",
    "KIND_PRUNE",
    "KIND_REFUSAL",
    "KIND_SUBMISSION_UNKNOWN",
    "MAX_BLOCK_DAYS",
    "MAX_REASON_CHARS",
    "MAX_REGEXES_PER_GUILD",
    "MAX_RETENTION_DAYS",
    "MAX_SUMMARY_CHARS",
    "MAX_TERMS_PER_GUILD",
    "MIN_RETENTION_DAYS",
    "PROMPT_CHECK_FAILED_MESSAGE",
    "PROMPT_CHECK_TIMEOUT_MESSAGE",
    "AuditEntry",
    "BlockedMember",
    "BlockedTerm",
    "Change",
    "ExportTooLarge",
    "ModLog",
    "ModerationError",
    "Poster",
    "PromptVerdict",
    "active_block",
    "add_blocked_term",
    "admin_change",
    "audit",
    "audit_generation",
    "audit_job_action",
    "audit_provider_account",
    "audit_refusal",
    "audit_submission_unknown",
    "block_member",
    "check_member",
    "check_prompt",
    "describe_duration",
    "export_csv",
    "export_range",
    "find_blocked_term",
    "guild_ruleset",
    "jump_url",
    "list_blocked_members",
    "list_blocked_terms",
    "parse_day",
    "parse_duration",
    "prune",
    "prune_all",
    "read_csv_export",
    "recent_entries",
    "record_export",
    "remove_blocked_term",
    "resolve_term",
    "retention_days",
    "set_log_channel",
    "set_retention",
    "unblock_member",
]
