"""The job tracker: drives every admitted job from its row to a posted clip, across restarts.

`engine.JobTracker` coordinates; `budget` spends each provider's request budget fairly,
`timing` decides when to poll (what it learns is kept in `bot/store/timing.py`), `idle`
spends spare budget on early polls, `steps` makes the provider calls, `delivery` posts the clip
exactly once as far as possible, `outcomes` ends jobs otherwise (with a refund), and
`recovery` rebuilds the schedule from the table at start. With several processes on one
database, `leases` says which process drives which job and `shares` splits each provider's
budget between them. Knobs: `settings`.
"""

from bot.jobs.tracker.delivery import DeliveryReceipt, DeliverySink
from bot.jobs.tracker.engine import JobTracker
from bot.jobs.tracker.outcomes import (
    MSG_DISK,
    MSG_DOWNLOAD,
    MSG_GONE,
    MSG_INTERNAL,
    MSG_MISCONFIGURED,
    MSG_OUT_OF_CREDIT,
    MSG_POST,
    MSG_PROVIDER_FAILED,
)
from bot.jobs.tracker.settings import TrackerSettings, tracker_settings_from

__all__ = [
    "MSG_DISK",
    "MSG_DOWNLOAD",
    "MSG_GONE",
    "MSG_INTERNAL",
    "MSG_MISCONFIGURED",
    "MSG_OUT_OF_CREDIT",
    "MSG_POST",
    "MSG_PROVIDER_FAILED",
    "DeliveryReceipt",
    "DeliverySink",
    "JobTracker",
    "TrackerSettings",
    "tracker_settings_from",
]
