"""Video jobs, from a member's request to a posted clip.

- `service`: the one request pipeline (validate, moderate, negotiate, admit, cancel).
- `files`: every file a job owns under the data directory (inputs, clips, kept inputs).
- `animate`: the Animate message menu's decisions (which images, whose messages).
- `tracker`: drives admitted jobs through the provider and delivery, across restarts.
- `health`: whether each provider is failing (breaker, rejected key, 402, no answer), its
  budget use and latency; `failover`: which provider makes a new clip when one is failing.

Job rows and their SQL live in `bot/store/jobs.py`; the row model is re-exported here for
the Discord side, which does not import the store.
"""

from bot.store.jobs import JobRecord, SourceMessage, Status

__all__ = ["JobRecord", "SourceMessage", "Status"]
