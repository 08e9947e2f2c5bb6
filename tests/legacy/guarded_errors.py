# Errors in tasklets, the way the Stackless docs recommend handling them:
# wrap every tasklet function so one failure does not stop the scheduler.
# Without the wrapper the error comes out of stackless.run(), and the
# tasklets still queued run on the next call.
import stackless


def risky(n):
    if n == 2:
        raise ValueError("bad input %d" % n)
    print("risky %d ok" % n)


def guarded(func, *args):
    try:
        func(*args)
    except Exception as e:
        print("guarded: %s: %s" % (e.__class__.__name__, e))


for i in range(4):
    stackless.tasklet(guarded)(risky, i)
stackless.run()

for i in range(4):
    stackless.tasklet(risky)(i)
try:
    stackless.run()
except ValueError as e:
    print("run() raised: %s" % e)
print("still queued: %d" % (stackless.getruncount() - 1))
stackless.run()
print("runcount %d" % stackless.getruncount())
