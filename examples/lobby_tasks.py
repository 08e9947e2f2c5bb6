"""Celery tasks for the lobby, run by a worker with our pool:

    LOBBY_REDIS_URL=redis://127.0.0.1:6379/0 \\
    CELERY_CUSTOM_WORKER_POOL=stackless_compat.celery:TaskPool \\
        celery -A lobby_tasks worker --pool=custom -c 200 --workdir examples

``announce`` posts a line into a lobby room from a worker (any machine that
reaches the broker).  ``room_census`` uses tasklets and a channel inside
one task: one tasklet per room reads that room's line count from Redis and
sends it down a channel; the task gathers the answers.
"""
import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

import stackless_compat as stackless

import lobby_wsgi

URL = os.environ["LOBBY_REDIS_URL"]
app = Celery("lobby_tasks", broker=URL, backend=URL)
app.conf.update(broker_connection_retry_on_startup=True,
                redis_max_connections=1000,
                broker_transport_options={"max_connections": 1000})


@app.task  # type: ignore[untyped-decorator]
def announce(room: str, text: str) -> int:
    return lobby_wsgi.publish(room, "bot", text)


@app.task  # type: ignore[untyped-decorator]
def room_census(room_names: list[str]) -> dict[str, int]:
    client = lobby_wsgi._redis(subscribe=False)
    answers: "stackless.channel[tuple[str, int]]" = stackless.channel()

    def count(name: str) -> None:
        value = client.get("lobby-seq:" + name)     # parks on the socket
        answers.send((name, int(value or 0)))

    for name in room_names:
        stackless.tasklet(count)(name)
    return dict(answers.receive() for _ in room_names)
