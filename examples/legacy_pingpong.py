# A legacy Stackless Python program, written the way Stackless code was
# written for years: `import stackless`, tasklets created with
# stackless.tasklet(f)(args), channels, and stackless.run() driving it all.
# It contains nothing specific to stackless_compat: run it with
#
#     python3 -m stackless_compat examples/legacy_pingpong.py [rounds]
#
# and `import stackless` resolves to stackless_compat.

from __future__ import annotations

import sys

import stackless

Ball = tuple[str, int]


# --- ping-pong: two tasklets bouncing a ball over a pair of channels -------

def ping(to_pong: stackless.channel[Ball | None],
         from_pong: stackless.channel[Ball], rounds: int,
         log: list[int]) -> None:
    for i in range(rounds):
        to_pong.send(("ping", i))
        kind, n = from_pong.receive()
        log.append(n)
        print("ping %d -> %s %d" % (i, kind, n))
    to_pong.send(None)              # tell the partner to stop


def pong(from_ping: stackless.channel[Ball | None],
         to_ping: stackless.channel[Ball]) -> None:
    hits = 0
    while True:
        msg = from_ping.receive()
        if msg is None:
            break
        kind, n = msg
        hits += 1
        to_ping.send(("pong", n))
    print("pong: returned %d balls" % hits)


# --- a producer/consumer pipeline: numbers -> squares -> sum ---------------

def producer(out: stackless.channel[int], count: int) -> None:
    for n in range(1, count + 1):
        out.send(n)
    # The classic way to end a `for x in channel` loop on the other side.
    out.send_exception(StopIteration)


def squarer(inp: stackless.channel[int], out: stackless.channel[int]) -> None:
    for n in inp:                   # channels are iterable
        out.send(n * n)
    out.send_exception(StopIteration)


def consumer(inp: stackless.channel[int], result: list[int]) -> None:
    total = 0
    for sq in inp:
        total += sq
        print("consumer got %d (running total %d)" % (sq, total))
    result.append(total)


# --- a server tasklet that is shut down with kill() ------------------------

def server(requests: stackless.channel[str], stats: dict[str, int]) -> None:
    try:
        while True:
            req = requests.receive()
            stats["served"] += 1
            print("server: handled %r" % (req,))
    # TaskletExit is a builtin under Stackless: no import (type checkers
    # do not know that builtin, hence the comment).
    except TaskletExit:  # type: ignore[name-defined]
        stats["killed"] = True
        print("server: got TaskletExit, shutting down")
        raise
    finally:
        stats["cleaned_up"] = True


def client(requests: stackless.channel[str], names: list[str]) -> None:
    for name in names:
        requests.send(name)
        stackless.schedule()        # be polite: let others run


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5

    # ping-pong
    a, b = stackless.channel(), stackless.channel()
    log: list[int] = []
    stackless.tasklet(ping)(a, b, rounds, log)
    stackless.tasklet(pong)(a, b)
    stackless.run()

    # pipeline
    numbers, squares = stackless.channel(), stackless.channel()
    result: list[int] = []
    stackless.tasklet(consumer)(squares, result)
    stackless.tasklet(squarer)(numbers, squares)
    stackless.tasklet(producer)(numbers, rounds)
    stackless.run()

    # server + clients; the server is left blocked on its channel when run()
    # returns, and then killed
    requests = stackless.channel()
    stats = {"served": 0, "killed": False, "cleaned_up": False}
    srv = stackless.tasklet(server)(requests, stats)
    stackless.tasklet(client)(requests, ["alpha", "beta"])
    stackless.tasklet(client)(requests, ["gamma"])
    stackless.run()
    print("server blocked after run(): %s (channel balance %d)"
          % (srv.blocked, requests.balance))
    srv.kill()

    print("summary: ping-pong %d/%d rounds, pipeline sum of squares %d, "
          "server served %d, killed %s, cleaned up %s, server alive %s, runcount %d"
          % (len(log), rounds, result[0], stats["served"], stats["killed"],
             stats["cleaned_up"], srv.alive, stackless.getruncount()))
    expected = sum(n * n for n in range(1, rounds + 1))
    ok = (log == list(range(rounds)) and result == [expected]
          and stats == {"served": 3, "killed": True, "cleaned_up": True}
          and not srv.alive and stackless.getruncount() == 1)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
