# The well-known "sleeping tasklets" idiom: a manager tasklet counts ticks,
# calling schedule() once per tick, and wakes the sleepers whose time has
# come by sending on the channel each of them waits on.
from stackless import *

tick = 0
sleepers = []          # [wake_tick, sequence, channel]
sequence = [0]


def sleep(ticks):
    ch = channel()
    sequence[0] += 1
    sleepers.append([tick + ticks, sequence[0], ch])
    ch.receive()


def manager():
    global tick
    while sleepers or getruncount() > 1:
        tick += 1
        due = [entry for entry in sleepers if entry[0] <= tick]
        due.sort()
        for entry in due:
            sleepers.remove(entry)
            entry[2].send(None)
        schedule()
    print("manager: nothing left to do at tick %d" % tick)


def worker(name, delay, times):
    for i in range(times):
        sleep(delay)
        print("tick %2d: %s woke up (%d of %d)" % (tick, name, i + 1, times))
    print("tick %2d: %s finished" % (tick, name))


def busy(name, steps):
    for i in range(steps):
        schedule()
    print("tick %2d: %s did %d steps" % (tick, name, steps))


tasklet(manager)()
tasklet(worker)("fast", 2, 4)
tasklet(worker)("slow", 5, 2)
tasklet(worker)("once", 7, 1)
tasklet(busy)("busy", 6)
run()
print("done at tick %d, runcount %d" % (tick, getruncount()))
