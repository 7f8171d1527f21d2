"""Discord rendering shared by the cogs (no commands here).

- `text.py`    what members read about a job: summary, status, progress, result, endings
- `modlog.py`  an audit entry as a mod-log embed, and the poster the mod-log worker uses
- `pages.py`   long lists as paged embeds with Prev/Next buttons
- `timefmt.py` Discord time markup (`<t:…:R>`)
- `checks.py`  run-time permission checks (Manage Server)
"""
