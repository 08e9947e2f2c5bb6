# Ping-pong between two tasklets over two channels, the first example every
# Stackless tutorial showed.
import stackless

ping_channel = stackless.channel()
pong_channel = stackless.channel()


def ping(rounds):
    for i in range(rounds):
        ping_channel.send(("ping", i))
        reply, n = pong_channel.receive()
        print("ping got %s %d" % (reply, n))
    ping_channel.send(None)


def pong():
    while 1:
        msg = ping_channel.receive()
        if msg is None:
            print("pong: no more balls")
            break
        word, n = msg
        print("pong got %s %d" % (word, n))
        pong_channel.send(("pong", n))


stackless.tasklet(ping)(4)
stackless.tasklet(pong)()
stackless.run()
print("game over, alive tasklets: %d" % stackless.getruncount())
