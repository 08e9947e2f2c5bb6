# A three-stage pipeline in the classic Stackless style: every stage is a
# tasklet, stages talk over channels, and the end of the stream is signalled
# by sending StopIteration down the channel, which ends the `for` loop of the
# next stage.
import stackless


def producer(out, count):
    for i in range(1, count + 1):
        print("produce %d" % i)
        out.send(i)
    print("producer: end of stream")
    out.send_exception(StopIteration)


def squarer(inp, out):
    for value in inp:
        out.send(value * value)
    print("squarer: end of stream")
    out.send_exception(StopIteration)


def printer(inp, done):
    total = 0
    for value in inp:
        total = total + value
        print("square %d (running total %d)" % (value, total))
    done.send(total)


numbers = stackless.channel()
squares = stackless.channel()
done = stackless.channel()
stackless.tasklet(producer)(numbers, 5)
stackless.tasklet(squarer)(numbers, squares)
stackless.tasklet(printer)(squares, done)
print("total of squares: %d" % done.receive())
stackless.run()
print("runcount %d" % stackless.getruncount())
