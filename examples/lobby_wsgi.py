"""The lobby over HTTP, as a WSGI app for gunicorn with our worker class.

    gunicorn -k stackless_compat.gunicorn.TaskletWorker -w 4 \\
        --chdir examples lobby_wsgi:app

    GET /say?room=R&name=N&text=T   post a line to room R
    GET /listen?room=R&after=K      long poll: the room's lines after
                                    number K, waiting up to 20 s for one
    GET /stats                      this worker's pid, rooms, waiters

Every waiting /listen request is a tasklet blocked on its room's channel,
as in examples/lobby_server.py.  With ``LOBBY_REDIS_URL`` set, the rooms
span every worker process and machine: /say publishes the line to Redis,
and one subscriber tasklet per worker process receives every room's lines
and wakes that worker's listeners.  Without it a room lives in one process
(run one worker).
"""
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, cast
from urllib.parse import parse_qs

import stackless_compat as stackless
from stackless_compat.hub import Timeout

REDIS_URL = os.environ.get("LOBBY_REDIS_URL")


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[tuple[int, str, str]] = []   # (number, name, text)
        self.numbers: set[int] = set()
        self.changed: "stackless.channel[None]" = stackless.channel()
        self.changed.preference = 0

    def add(self, number: int | None, who: str, text: str) -> None:
        if number is None:
            number = len(self.lines) + 1
        if number in self.numbers:
            return                       # seen already
        self.numbers.add(number)
        self.lines.append((number, who, text))
        self.lines.sort()
        while self.changed.balance < 0:  # wake every waiting listener
            self.changed.send(None)

    def after(self, k: int) -> list[tuple[int, str, str]]:
        return [line for line in self.lines if line[0] > k]


rooms: dict[str, Room] = {}
_bus: dict[str, Any] = {}


def room(name: str) -> Room:
    r = rooms.get(name)
    if r is None:
        r = rooms[name] = Room(name)
        if REDIS_URL:
            # the lines posted before this process saw the room (the
            # subscriber is running by now: a line is either in the log or
            # arrives through it, or both -- numbers drop the repeats)
            for raw in _redis().lrange("lobby-log:" + name, 0, -1):
                r.add(*json.loads(raw))
    return r


def _redis(subscribe: bool = True) -> Any:
    if "client" not in _bus:
        import redis
        _bus["client"] = redis.Redis.from_url(cast(str, REDIS_URL),
                                              max_connections=1000)
    if subscribe and "subscriber" not in _bus:
        _bus["subscribed"] = stackless.channel()
        _bus["subscriber"] = stackless.tasklet(_subscriber)()
    while subscribe and not _bus.get("ready"):
        _bus["subscribed"].receive()     # until psubscribe is done
    return _bus["client"]


def _subscriber() -> None:
    """One per worker process: every room's lines, from every worker."""
    pubsub = _bus["client"].pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("lobby:*")
    _bus["ready"] = True
    while _bus["subscribed"].balance < 0:
        _bus["subscribed"].send(None)
    for msg in pubsub.listen():
        if msg["type"] == "pmessage":
            number, who, text = json.loads(msg["data"])
            room(msg["channel"].decode()[len("lobby:"):]).add(number, who, text)


def publish(room_name: str, who: str, text: str) -> int:
    """Post a line (also used by the Celery tasks in lobby_tasks.py)."""
    if REDIS_URL:
        client = _redis(subscribe=False)
        number: int = client.incr("lobby-seq:" + room_name)
        line = json.dumps([number, who, text])
        client.rpush("lobby-log:" + room_name, line)
        client.publish("lobby:" + room_name, line)
        return number
    r = room(room_name)
    r.add(None, who, text)
    return r.lines[-1][0]


def _reply(start_response: Callable[..., Any], obj: Any,
           status: str = "200 OK") -> list[bytes]:
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any],
        start_response: Callable[..., Any]) -> Iterable[bytes]:
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    if REDIS_URL:
        _redis()                        # the subscriber runs from the start
    if path == "/say":
        number = publish(q["room"], q.get("name", "?"), q.get("text", ""))
        return _reply(start_response, {"number": number})
    if path == "/listen":
        r = room(q["room"])
        after = int(q.get("after", "0"))
        deadline = time.monotonic() + float(q.get("wait", "20"))
        while not r.after(after):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with Timeout(left, False):
                r.changed.receive()
        return _reply(start_response, {"pid": os.getpid(), "lines": r.after(after)})
    if path == "/stats":
        return _reply(start_response, {
            "pid": os.getpid(),
            "rooms": {n: len(r.lines) for n, r in rooms.items()},
            "waiting": sum(-r.changed.balance for r in rooms.values())})
    return _reply(start_response, {"error": "not found"}, "404 Not Found")
