"""A game-lobby / chat server on tasklets, channels and the patched socket.

Run it with its built-in load (server and clients in this one process, over
loopback), which checks that every chat line reaches every other member of
its room exactly once and in order, prints a report and exits (status 1 on
any lost, duplicated, reordered or misrouted message):

    python3 examples/lobby_server.py [--clients 200] [--messages 20]
    python3 -m stackless_compat --patch examples/lobby_server.py

or serve real clients (``nc localhost 7070``) until Ctrl-C:

    python3 examples/lobby_server.py --serve --port 7070

How it is built -- plain Stackless style, nothing but tasklets and channels
once the socket module is patched:

* the *acceptor* tasklet accepts connections and starts two tasklets per
  client: a *reader* that parses the client's lines and a *writer* that
  drains the client's outgoing queue (it sleeps on a channel when the
  queue is empty);
* the *lobby* tasklet owns the names and the rooms: readers send it
  requests (hello, join, tell, who, bye) through the lobby channel and get
  replies on their own reply channel;
* every *room* is a tasklet with its own channel; a reader sends the
  room ``say`` / ``enter`` / ``leave`` and the room fans the line out to
  the writers of its other members.

The protocol is one command per line::

    HELLO <name>            -> WELCOME <name>      (or ERR name-taken)
    JOIN <room>             -> JOINED <room> <members>
    SAY <text>              -> every other member: FROM <name> <room> <text>
    TELL <name> <text>      -> <name> gets: PRIVATE <from> <text>
    WHO                     -> ROOMS <room>=<members> ...
    QUIT                    -> BYE, and the server closes the connection
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

try:
    import stackless            # under `python -m stackless_compat`
except ImportError:
    import stackless_compat as stackless  # type: ignore[no-redef]

from stackless_compat.hub import Timeout, sleep
from stackless_compat.patches import patch_all

patch_all()                     # idempotent: harmless under --patch too

import socket                   # noqa: E402  (patched from here on)

# What the lobby and the rooms receive: (what, client, argument).
Request = tuple[str, Any, Any]


# --------------------------------------------------------------------------
# the server

class Client:
    """One connection on the server side."""

    def __init__(self, server: LobbyServer, sock: socket.socket,
                 addr: Any) -> None:
        self.server = server
        self.sock = sock
        self.addr = addr
        self.name: bytes | None = None
        self.room: Room | None = None
        self.outbox: list[bytes] = []       # lines waiting for the writer
        self.wake: stackless.channel[None] = stackless.channel()  # the writer sleeps here
        self.wake.preference = 0            # waking it does not switch now
        self.reply = stackless.channel()    # the lobby answers here
        self.closing = False

    def push(self, line: bytes) -> None:
        """Queue a line for this client; never blocks the caller."""
        if self.closing:
            return
        self.outbox.append(line)
        if self.wake.balance < 0:
            self.wake.send(None)

    def close_soon(self) -> None:
        self.closing = True
        if self.wake.balance < 0:
            self.wake.send(None)

    # -- the two tasklets of a connection ----------------------------------

    def writer(self) -> None:
        sock = self.sock
        try:
            while True:
                if self.outbox:
                    data = b"".join(self.outbox)
                    del self.outbox[:]
                    sock.sendall(data)
                elif self.closing:
                    break
                else:
                    self.wake.receive()
        except OSError:
            pass
        finally:
            self.closing = True
            sock.close()        # wakes the reader with EBADF if it waits

    def reader(self) -> None:
        sock = self.sock
        buf = b""
        try:
            while not self.closing:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                if b"\n" not in buf:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not self.command(line.rstrip(b"\r")):
                        return
        except OSError:
            pass
        finally:
            self.leave()
            if self.name is not None:
                self.server.lobby.send(("bye", self, None))
            self.close_soon()

    # -- commands --------------------------------------------------------

    def command(self, line: bytes) -> bool:
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"SAY":
            if self.room is None:
                self.push(b"ERR not-in-a-room\n")
            else:
                self.room.channel.send(("say", self, rest))
        elif verb == b"HELLO":
            self.server.lobby.send(("hello", self, rest.strip()))
            self.push(self.reply.receive())
        elif verb == b"JOIN":
            if self.name is None:
                self.push(b"ERR say-hello-first\n")
                return True
            self.leave()
            self.server.lobby.send(("join", self, rest.strip()))
            self.room = self.reply.receive()
            self.room.channel.send(("enter", self, None))
        elif verb == b"TELL":
            target, _, text = rest.partition(b" ")
            self.server.lobby.send(("tell", self, (target, text)))
        elif verb == b"WHO":
            self.server.lobby.send(("who", self, None))
        elif verb == b"QUIT":
            self.leave()
            self.push(b"BYE\n")
            return False
        elif verb:
            self.push(b"ERR unknown-command\n")
        return True

    def leave(self) -> None:
        room, self.room = self.room, None
        if room is not None:
            room.channel.send(("leave", self, None))


class Room:
    """A room is a tasklet fanning lines out to its members."""

    fault: str | None = None    # "drop" / "dup": break one line on purpose (--fault)

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.members: list[Client] = []
        self.channel: stackless.channel[Request] = stackless.channel()
        stackless.tasklet(self.run)()

    def run(self) -> None:
        while True:
            what, client, arg = self.channel.receive()
            if what == "say":
                line = b"FROM %s %s %s\n" % (client.name, self.name, arg)
                if Room.fault and arg.startswith(b"1 "):
                    line = b"" if Room.fault == "drop" else line + line
                    Room.fault = None
                for m in self.members:
                    if m is not client:
                        m.push(line)
            elif what == "enter":
                self.members.append(client)
                client.push(b"JOINED %s %d\n" % (self.name, len(self.members)))
            elif what == "leave":
                if client in self.members:
                    self.members.remove(client)
            elif what == "stop":
                return


class LobbyServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 backlog: int = 1024) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(backlog)
        self.address = self.listener.getsockname()
        self.lobby: stackless.channel[Request] = stackless.channel()
        self.names: dict[bytes, Client] = {}    # name -> Client
        self.rooms: dict[bytes, Room] = {}      # name -> Room
        self.accepted = 0

    def start(self) -> None:
        stackless.tasklet(self.acceptor)()
        stackless.tasklet(self.run_lobby)()

    def stop(self) -> None:
        """Stop accepting, stop the lobby and the rooms (from a tasklet)."""
        self.listener.close()   # the acceptor wakes with EBADF
        self.lobby.send(("stop", None, None))

    def acceptor(self) -> None:
        while True:
            try:
                sock, addr = self.listener.accept()
            except OSError:
                return          # the listener was closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            c = Client(self, sock, addr)
            stackless.tasklet(c.writer)()
            stackless.tasklet(c.reader)()

    def run_lobby(self) -> None:
        while True:
            what, client, arg = self.lobby.receive()
            if what == "hello":
                if not arg or arg in self.names:
                    client.reply.send(b"ERR name-taken\n")
                else:
                    client.name = arg
                    self.names[arg] = client
                    client.reply.send(b"WELCOME %s\n" % arg)
            elif what == "join":
                room = self.rooms.get(arg)
                if room is None:
                    room = self.rooms[arg] = Room(arg)
                client.reply.send(room)
            elif what == "tell":
                target, text = arg
                other = self.names.get(target)
                if other is None:
                    client.push(b"ERR no-such-name\n")
                else:
                    other.push(b"PRIVATE %s %s\n" % (client.name, text))
            elif what == "who":
                client.push(b"ROOMS %s\n" % b" ".join(
                    b"%s=%d" % (r.name, len(r.members))
                    for r in self.rooms.values()))
            elif what == "bye":
                name = client.name
                if self.names.get(name) is client:
                    del self.names[name]
            elif what == "stop":
                for room in self.rooms.values():
                    room.channel.send(("stop", None, None))
                return


# --------------------------------------------------------------------------
# the built-in load: many client tasklets in this same process

class LoadReport:
    def __init__(self) -> None:
        self.latencies: list[float] = []    # seconds, one per delivered chat line
        self.errors: list[str] = []
        self.sent = 0
        self.delivered = 0
        self.private = 0
        self.chat_start: float | None = None
        self.chat_end: float | None = None


def read_lines(sock: socket.socket, buf: bytes) -> tuple[list[bytes], bytes]:
    """One recv: (complete lines, the incomplete rest); EOFError at the
    end of the stream."""
    data = sock.recv(65536)
    if not data:
        raise EOFError
    buf += data
    *lines, rest = buf.split(b"\n")
    return lines, rest


def expect(sock: socket.socket, buf: bytes,
           prefix: bytes) -> tuple[bytes, bytes]:
    """Read until one complete line; it must start with prefix.  Returns
    (line, what follows it)."""
    while b"\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf += data
    line, _, buf = buf.partition(b"\n")
    if not line.startswith(prefix):
        raise AssertionError("expected %r, got %r" % (prefix, line))
    return line, buf


class LoadClient:
    def __init__(self, driver: LoadDriver, index: int, room: bytes,
                 peers: list[bytes]) -> None:
        self.d = driver
        self.index = index
        self.name = b"player%d" % index
        self.room = room
        self.peers = peers          # names of the other members of the room
        self.seen = {p: 0 for p in peers}   # next expected seq per sender
        self.expected = len(peers) * driver.messages
        self.got = 0
        self.finished: stackless.channel[None] = stackless.channel()
        self.finished.preference = 0
        self.bye = False
        self.private_seen = False
        self.private_wait: stackless.channel[None] = stackless.channel()

    def run(self) -> None:
        d, rep = self.d, self.d.report
        sock = socket.create_connection(d.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.sendall(b"HELLO %s\nJOIN %s\n" % (self.name, self.room))
            _, buf = expect(sock, b"", b"WELCOME ")
            _, buf = expect(sock, buf, b"JOINED ")
            # read from now on: the others start talking as soon as they
            # get their go, which reaches the last clients only after many
            # turns of the run queue (a receiver started after its own go
            # found its first lines waiting since then)
            stackless.tasklet(self.receive)(sock, buf)
            d.ready.send(self.index)        # everybody is in their room ...
            d.go.receive()                  # ... before anybody talks
            for seq in range(d.messages):
                sock.sendall(b"SAY %d %d\n" % (seq, time.perf_counter_ns()))
                rep.sent += 1
                sleep(d.interval)
            if self.got < self.expected:
                self.finished.receive()
            # one private message to the next player, then leave
            nxt = b"player%d" % ((self.index + 1) % d.clients)
            sock.sendall(b"TELL %s hi\n" % nxt)
            if not self.private_seen:       # our predecessor's TELL arrived:
                self.private_wait.receive()  # only then may anyone QUIT
            d.told.send(self.index)         # wait until everybody has told
            d.go.receive()
            sock.sendall(b"QUIT\n")
            self.finished.receive()         # the receiver saw BYE
        finally:
            sock.close()

    def receive(self, sock: socket.socket, buf: bytes) -> None:
        rep = self.d.report
        lines = buf.split(b"\n")
        buf = lines.pop()
        try:
            while True:
                for line in lines:
                    self.line(line, rep)
                    if self.bye:
                        return
                lines, buf = read_lines(sock, buf)
        except (EOFError, OSError) as e:
            rep.errors.append("%s: connection closed before BYE (%s)"
                              % (self.name.decode(), type(e).__name__))
        finally:
            if self.finished.balance < 0:
                self.finished.send(None)

    def line(self, line: bytes, rep: LoadReport) -> None:
        kind, _, rest = line.partition(b" ")
        if kind == b"FROM":
            now = time.perf_counter_ns()
            sender, room, seq_text, stamp = rest.split(b" ")
            rep.latencies.append((now - int(stamp)) * 1e-9)
            rep.delivered += 1
            seq = int(seq_text)
            if room != self.room or sender not in self.seen:
                rep.errors.append("%s got %r from another room" % (self.name.decode(), line))
            elif self.seen[sender] != seq:
                rep.errors.append("%s: from %s seq %d, expected %d (%s)" % (
                    self.name.decode(), sender.decode(), seq, self.seen[sender],
                    "duplicate" if seq < self.seen[sender] else "lost/reordered"))
            else:
                self.seen[sender] = seq + 1
                self.got += 1
                if self.got == self.expected:
                    rep.chat_end = time.perf_counter()
                    if self.finished.balance < 0:
                        self.finished.send(None)
        elif kind == b"PRIVATE":
            rep.private += 1
            self.private_seen = True
            if self.private_wait.balance < 0:
                self.private_wait.send(None)
        elif kind == b"BYE":
            self.bye = True
        else:
            rep.errors.append("%s: unexpected %r" % (self.name.decode(), line))


class LoadDriver:
    def __init__(self, server: LobbyServer, clients: int, messages: int,
                 room_size: int, interval: float, deadline: float) -> None:
        self.server = server
        self.address = server.address
        self.clients = clients
        self.messages = messages
        self.room_size = room_size
        self.interval = interval
        self.deadline = deadline
        self.ready: stackless.channel[int] = stackless.channel()
        self.told: stackless.channel[int] = stackless.channel()
        self.go: stackless.channel[None] = stackless.channel()
        self.report = LoadReport()
        self.players: list[LoadClient] = []
        self.tasklets: list[stackless.tasklet] = []

    def run(self) -> None:
        rep = self.report
        rooms: dict[bytes, list[bytes]] = {}
        for i in range(self.clients):
            rooms.setdefault(b"room%d" % (i // self.room_size), []).append(
                b"player%d" % i)
        for i in range(self.clients):
            room = b"room%d" % (i // self.room_size)
            peers = [p for p in rooms[room] if p != b"player%d" % i]
            p = LoadClient(self, i, room, peers)
            self.players.append(p)
            self.tasklets.append(stackless.tasklet(self.guard)(p))
        try:
            with Timeout(self.deadline):
                for _ in range(self.clients):
                    self.ready.receive()
                rep.chat_start = time.perf_counter()
                for _ in range(self.clients):
                    self.go.send(None)
                for _ in range(self.clients):
                    self.told.receive()
                for _ in range(self.clients):
                    self.go.send(None)
                while any(t.alive for t in self.tasklets):
                    sleep(0.001)
        except Timeout:
            rep.errors.append("the load did not finish within %gs" % self.deadline)
            for t in self.tasklets:
                if t.alive:
                    t.kill()
        for p in self.players:
            if p.got != p.expected:
                rep.errors.append("%s received %d of %d chat lines" % (
                    p.name.decode(), p.got, p.expected))
        if rep.private != self.clients:
            rep.errors.append("%d of %d private messages delivered"
                              % (rep.private, self.clients))
        self.server.stop()

    def guard(self, player: LoadClient) -> None:
        try:
            player.run()
        except Exception as e:                  # report, do not hang others
            self.report.errors.append("%s: %r" % (player.name.decode(), e))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--messages", type=int, default=20,
                    help="chat lines each client says (default 20)")
    ap.add_argument("--room-size", type=int, default=10)
    ap.add_argument("--interval", type=float, default=0.0,
                    help="seconds a client sleeps between lines (0: yield)")
    ap.add_argument("--deadline", type=float, default=60.0,
                    help="fail if the load has not finished by then")
    ap.add_argument("--fault", choices=("drop", "dup"), default=None,
                    help="lose or duplicate one chat line on purpose, to "
                         "see the check fail")
    ap.add_argument("--serve", action="store_true",
                    help="serve real clients instead of the built-in load")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)

    Room.fault = args.fault
    server = LobbyServer(args.host, args.port)
    server.start()
    if args.serve:
        print("lobby listening on %s:%d" % server.address[:2])
        sys.stdout.flush()
        try:
            stackless.run()
        except KeyboardInterrupt:
            pass
        return 0

    driver = LoadDriver(server, args.clients, args.messages, args.room_size,
                        args.interval, args.deadline)
    stackless.tasklet(driver.run)()
    t0 = time.perf_counter()
    stackless.run()
    total = time.perf_counter() - t0

    rep = driver.report
    lat = sorted(rep.latencies)
    chat = ((rep.chat_end or time.perf_counter()) - (rep.chat_start or t0))
    expected = sum(p.expected for p in driver.players)
    print("lobby: %d clients in %d rooms of %d, %d chat lines said, "
          "%d of %d deliveries, %d private messages, %d connections served"
          % (args.clients, (args.clients + args.room_size - 1) // args.room_size,
             args.room_size, rep.sent, rep.delivered, expected, rep.private,
             server.accepted))
    print("lobby: %.0f deliveries/s over %.3fs of chat (%.3fs in all); "
          "latency p50 %.2f ms, p99 %.2f ms, max %.2f ms"
          % (rep.delivered / chat if chat > 0 else 0.0, chat, total,
             percentile(lat, 0.50) * 1e3, percentile(lat, 0.99) * 1e3,
             (lat[-1] if lat else float("nan")) * 1e3))
    if rep.errors or rep.delivered != expected:
        for e in rep.errors[:20]:
            print("lobby: ERROR %s" % e)
        if len(rep.errors) > 20:
            print("lobby: ... %d errors in all" % len(rep.errors))
        print("lobby: FAILED")
        return 1
    print("lobby: OK, every chat line delivered exactly once, in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
