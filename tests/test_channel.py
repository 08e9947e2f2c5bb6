"""The channel type: transfers, the preference table, exceptions, iteration,
closing, the waiting queue.

Reference: docs/api/stackless.rst, "Channels".  The event orders of the
preference tests are the ones Stackless 3.7 shows.
"""

import gc
import re
import sys
import weakref

import pytest

import stackless_compat as stackless


def _msg(text):
    return "^" + re.escape(text) + "$"


# ---------------------------------------------------------------------------
# Basic transfers


def test_receiver_first_then_sender():
    ch = stackless.channel()
    got = []
    stackless.tasklet(lambda: got.append(ch.receive()))()
    stackless.tasklet(ch.send)("hello")
    stackless.run()
    assert got == ["hello"]
    assert ch.balance == 0


def test_sender_first_then_receiver():
    ch = stackless.channel()
    got = []
    stackless.tasklet(ch.send)("hello")
    stackless.tasklet(lambda: got.append(ch.receive()))()
    stackless.run()
    assert got == ["hello"]
    assert ch.balance == 0


def test_main_sends_to_waiting_tasklet_and_receives_from_one():
    ch = stackless.channel()
    got = []

    def echo():
        v = ch.receive()
        got.append(v)
        ch.send(v * 2)

    stackless.tasklet(echo)()
    stackless.run()                       # echo blocks on receive
    assert ch.balance == -1
    ch.send(21)                           # echo runs at once, then blocks sending
    assert got == [21]
    assert ch.balance == 1
    assert ch.receive() == 42
    stackless.run()
    assert ch.balance == 0


def test_send_returns_none_receive_returns_object_identity():
    ch = stackless.channel()
    obj = object()
    result = []

    def sender():
        result.append(ch.send(obj))

    stackless.tasklet(sender)()
    stackless.run()
    assert ch.receive() is obj
    stackless.run()
    assert result == [None]


def test_many_messages_in_fifo_order():
    ch = stackless.channel()
    got = []

    def consumer():
        for _ in range(1000):
            got.append(ch.receive())

    stackless.tasklet(consumer)()
    stackless.tasklet(lambda: [ch.send(i) for i in range(1000)])()
    stackless.run()
    assert got == list(range(1000))


def test_blocked_senders_are_served_in_fifo_order():
    ch = stackless.channel()
    for name in ("s1", "s2", "s3"):
        stackless.tasklet(ch.send)(name)
    stackless.run()
    assert ch.balance == 3
    assert [ch.receive() for _ in range(3)] == ["s1", "s2", "s3"]
    stackless.run()


def test_blocked_receivers_are_served_in_fifo_order():
    ch = stackless.channel()
    got = []
    for name in ("r1", "r2", "r3"):
        stackless.tasklet(lambda n: got.append((n, ch.receive())))(name)
    stackless.run()
    assert ch.balance == -3
    for v in range(3):
        ch.send(v)
    stackless.run()
    assert got == [("r1", 0), ("r2", 1), ("r3", 2)]


# ---------------------------------------------------------------------------
# The preference table


def _transfer_log(pref, schedule_all, receiver_first, bystander=False):
    ch = stackless.channel()
    ch.preference = pref
    ch.schedule_all = schedule_all
    log = []

    def receiver():
        log.append("recv")
        ch.receive()
        log.append("got")

    def sender():
        log.append("send")
        ch.send(1)
        log.append("send-returned")

    first, second = (receiver, sender) if receiver_first else (sender, receiver)
    stackless.tasklet(first)()
    stackless.tasklet(second)()
    if bystander:
        stackless.tasklet(log.append)("bystander")
    stackless.run()
    return log


def _receiver_first(pref, schedule_all=False):
    return _transfer_log(pref, schedule_all, receiver_first=True)


def _sender_first(pref, schedule_all=False):
    return _transfer_log(pref, schedule_all, receiver_first=False)


def test_preference_default_is_receiver():
    assert stackless.channel().preference == -1


def test_pref_minus1_receiver_waiting():
    assert _receiver_first(-1) == ["recv", "send", "got", "send-returned"]


@pytest.mark.parametrize("pref", [0, 1])
def test_pref_0_and_1_receiver_waiting(pref):
    assert _receiver_first(pref) == ["recv", "send", "send-returned", "got"]


def test_pref_1_sender_waiting():
    assert _sender_first(1) == ["send", "recv", "send-returned", "got"]


@pytest.mark.parametrize("pref", [-1, 0])
def test_pref_minus1_and_0_sender_waiting(pref):
    assert _sender_first(pref) == ["send", "recv", "got", "send-returned"]


def _with_bystander(pref, schedule_all=False):
    """Receiver blocks, sender sends while a third tasklet is runnable."""
    return _transfer_log(pref, schedule_all, receiver_first=True,
                         bystander=True)


def test_pref_minus1_sender_goes_to_the_end():
    # the receiver runs at once; the sender waits until the queue comes round
    assert _with_bystander(-1) == ["recv", "send", "got", "bystander", "send-returned"]


def test_pref_1_receiver_appended_at_the_end():
    assert _with_bystander(1) == ["recv", "send", "send-returned", "bystander", "got"]


@pytest.mark.parametrize("pref", [-1, 0, 1])
def test_schedule_all_wins_over_preference(pref):
    # the receiver goes to the end, the sender yields to the next runnable
    assert _with_bystander(pref, schedule_all=True) == [
        "recv", "send", "bystander", "got", "send-returned"]


@pytest.mark.parametrize("pref", [-1, 0, 1])
def test_schedule_all_two_tasklets(pref):
    assert _receiver_first(pref, schedule_all=True) == [
        "recv", "send", "got", "send-returned"]
    assert _sender_first(pref, schedule_all=True) == [
        "send", "recv", "send-returned", "got"]


def test_schedule_all_attribute():
    ch = stackless.channel()
    assert not ch.schedule_all
    ch.schedule_all = 1
    assert ch.schedule_all
    ch.schedule_all = 0
    assert not ch.schedule_all


def test_preference_clamped_to_sign():
    ch = stackless.channel()
    ch.preference = 5
    assert ch.preference == 1
    ch.preference = -7
    assert ch.preference == -1
    ch.preference = 0
    assert ch.preference == 0
    ch.preference = True
    assert ch.preference == 1


def test_preference_type_error():
    ch = stackless.channel()
    for bad in ("1", 1.5, None):
        with pytest.raises(TypeError, match=_msg("preference must be set to an integer")):
            ch.preference = bad
    assert ch.preference == -1


# ---------------------------------------------------------------------------
# Exceptions through channels


def test_send_exception_args():
    ch = stackless.channel()
    caught = []
    returned = []

    def receiver():
        try:
            ch.receive()
        except ZeroDivisionError as e:
            caught.append(e.args)

    def sender():
        returned.append(ch.send_exception(ZeroDivisionError, "a", "b"))

    stackless.tasklet(receiver)()
    stackless.tasklet(sender)()
    stackless.run()
    assert caught == [("a", "b")]
    assert returned == [None]


def test_send_exception_to_main():
    ch = stackless.channel()
    stackless.tasklet(ch.send_exception)(KeyError, "k")
    with pytest.raises(KeyError) as info:
        ch.receive()
    assert info.value.args == ("k",)
    stackless.run()


def _raising_function():
    raise ValueError("with a traceback")


def test_send_throw_forwards_traceback():
    ch = stackless.channel()
    names = []

    def sender():
        try:
            _raising_function()
        except ValueError:
            ch.send_throw(*sys.exc_info())

    def receiver():
        try:
            ch.receive()
        except ValueError as e:
            tb = e.__traceback__
            while tb is not None:
                names.append(tb.tb_frame.f_code.co_name)
                tb = tb.tb_next
            names.append(str(e))

    stackless.tasklet(receiver)()
    stackless.tasklet(sender)()
    stackless.run()
    assert "_raising_function" in names
    assert names[-1] == "with a traceback"


def test_send_throw_instance_and_class():
    ch = stackless.channel()
    got = []

    def receiver():
        for _ in range(2):
            try:
                ch.receive()
            except LookupError as e:
                got.append((type(e), e.args))

    stackless.tasklet(receiver)()
    stackless.run()
    ch.send_throw(KeyError("inst"))
    ch.send_throw(IndexError, "val")
    assert got == [(KeyError, ("inst",)), (IndexError, ("val",))]


def test_bomb_received_is_raised():
    ch = stackless.channel()
    caught = []

    def receiver():
        try:
            ch.receive()
        except ValueError as e:
            caught.append(str(e))

    stackless.tasklet(receiver)()
    stackless.run()
    ch.send(stackless.bomb(ValueError, ValueError("boom")))
    assert caught == ["boom"]


# ---------------------------------------------------------------------------
# send_sequence and iteration


def test_send_sequence_returns_count():
    ch = stackless.channel()
    got = []

    def receiver():
        for _ in range(4):
            got.append(ch.receive())

    stackless.tasklet(receiver)()
    stackless.run()
    assert ch.send_sequence("abcd") == 4
    assert got == list("abcd")
    stackless.run()


def test_send_sequence_from_generator_and_empty():
    ch = stackless.channel()
    got = []

    def receiver():
        for _ in range(3):
            got.append(ch.receive())

    stackless.tasklet(receiver)()
    stackless.run()
    assert ch.send_sequence(i * i for i in range(3)) == 3
    assert ch.send_sequence([]) == 0
    assert got == [0, 1, 4]


def test_iteration_ends_with_stopiteration_bomb():
    ch = stackless.channel()
    got = []

    def consumer():
        for item in ch:
            got.append(item)
        got.append("loop ended")

    def producer():
        for i in range(3):
            ch.send(i)
        ch.send_exception(StopIteration)

    stackless.tasklet(consumer)()
    stackless.tasklet(producer)()
    stackless.run()
    assert got == [0, 1, 2, "loop ended"]


def test_iter_returns_self_and_no_py2_next():
    ch = stackless.channel()
    assert iter(ch) is ch
    assert not hasattr(ch, "next")
    with pytest.raises(TypeError):
        ch.__next__(None)


def test_next_on_closed_channel_raises_stopiteration():
    ch = stackless.channel()
    ch.close()
    with pytest.raises(StopIteration):
        next(ch)
    assert list(ch) == []


def test_next_receives_from_waiting_sender_even_when_closing():
    ch = stackless.channel()
    stackless.tasklet(ch.send)("last")
    stackless.run()
    ch.close()
    assert ch.balance == 1
    assert not ch.closed
    assert next(ch) == "last"
    assert ch.closed
    with pytest.raises(StopIteration):
        next(ch)
    stackless.run()


def test_next_is_a_receive():
    ch = stackless.channel()
    stackless.tasklet(ch.send)(99)
    assert ch.__next__() == 99
    stackless.run()


# ---------------------------------------------------------------------------
# close / open


CLOSED = "Send/receive operation on a closed channel"


def test_close_and_open():
    ch = stackless.channel()
    assert not ch.closing and not ch.closed
    ch.close()
    assert ch.closing and ch.closed
    with pytest.raises(ValueError, match=_msg(CLOSED)):
        ch.receive()
    with pytest.raises(ValueError, match=_msg(CLOSED)):
        ch.send(1)
    with pytest.raises(ValueError, match=_msg(CLOSED)):
        ch.send_exception(ValueError)
    ch.open()
    assert not ch.closing and not ch.closed
    assert ch.balance == 0


def test_close_in_tasklet_raises_value_error_there():
    ch = stackless.channel()
    ch.close()
    errors = []

    def f():
        try:
            ch.receive()
        except ValueError as e:
            errors.append(str(e))

    stackless.tasklet(f)()
    stackless.run()
    assert errors == [CLOSED]


def test_close_does_not_wake_blocked_tasklets():
    ch = stackless.channel()
    got = []
    t = stackless.tasklet(lambda: got.append(ch.receive()))()
    stackless.run()
    ch.close()
    assert ch.closing and not ch.closed
    assert ch.balance == -1
    stackless.run()
    assert t.blocked and got == []
    # a transfer that finds its partner still works
    ch.send("still delivered")
    assert got == ["still delivered"]
    assert ch.closed
    with pytest.raises(ValueError, match=_msg(CLOSED)):
        ch.send("nobody")


# ---------------------------------------------------------------------------
# balance and queue


def test_balance_and_queue_walk_receivers():
    ch = stackless.channel()
    assert ch.queue is None
    ts = [stackless.tasklet(ch.receive)() for _ in range(3)]
    stackless.run()
    assert ch.balance == -3
    assert ch.queue is ts[0]
    walked = []
    t = ch.queue
    while t is not None:
        walked.append(t)
        t = t.next
    assert walked == ts
    assert ts[0].prev is None
    assert ts[2].prev is ts[1]
    for i in range(3):
        ch.send(i)
    assert ch.balance == 0
    assert ch.queue is None


def test_balance_and_queue_senders():
    ch = stackless.channel()
    ts = [stackless.tasklet(ch.send)(i) for i in range(2)]
    stackless.run()
    assert ch.balance == 2
    assert ch.queue is ts[0] and ts[0].next is ts[1] and ts[1].next is None
    assert ch.receive() == 0
    assert ch.balance == 1 and ch.queue is ts[1]
    assert ch.receive() == 1
    stackless.run()
    assert ch.balance == 0


def test_balance_is_read_only():
    ch = stackless.channel()
    with pytest.raises((AttributeError, TypeError)):
        ch.balance = 3
    assert ch.balance == 0


# ---------------------------------------------------------------------------
# Subclassing, weak references


def test_subclass_channel():
    class Mailbox(stackless.channel):
        def __init__(self):
            super().__init__()
            self.delivered = 0

        def post(self, value):
            self.delivered += 1
            self.send(value)

    box = Mailbox()
    assert isinstance(box, stackless.channel)
    got = []
    stackless.tasklet(lambda: got.append(box.receive()))()
    stackless.run()
    box.post("letter")
    assert got == ["letter"] and box.delivered == 1
    assert box.preference == -1


def test_weakref_to_channel():
    ch = stackless.channel()
    r = weakref.ref(ch)
    assert r() is ch
    del ch
    gc.collect()
    assert r() is None


def test_channel_accepts_and_ignores_arguments():
    # as Stackless's channel_new does
    ch = stackless.channel(1, "x", key=None)
    assert type(ch) is stackless.channel
    assert ch.balance == 0 and ch.preference == -1 and not ch.closing
