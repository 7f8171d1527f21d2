# Slim, non-root image; the database and job files live on the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/bot.db

RUN useradd --create-home --uid 10001 bot && mkdir /data && chown bot:bot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY migrations ./migrations
# The same install the README uses (without the test extra), with the offline classifier
# of the output safety check (its model ships inside the package; nothing is downloaded).
RUN pip install -e '.[safety]'

USER bot
VOLUME ["/data"]
# On SIGTERM the bot gives submissions and clip uploads in flight up to
# SHUTDOWN_GRACE_SECONDS (default 20 s) to finish, so a billed provider job is not lost.
# Docker's default stop timeout is 10 s: stop with `docker stop -t 30 <container>`, or set
# `stop_grace_period: 30s` in compose. (No Dockerfile instruction sets the stop timeout.)
STOPSIGNAL SIGTERM
ENTRYPOINT ["ltx-discord-bot"]
CMD ["run"]
