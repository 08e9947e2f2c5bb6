# A round-robin world of actors.  Every creature is a tasklet that takes one
# step and then calls stackless.schedule(), so they all move in turn; a
# referee tasklet collects the arrivals over a channel.  Creatures look
# themselves up through stackless.getcurrent().
import stackless

TRACK = 10
creatures = {}
arrivals = stackless.channel()


class Creature(object):
    def __init__(self, name, speed):
        self.name = name
        self.speed = speed
        self.position = 0
        self.steps = 0
        task = stackless.tasklet(self.live)()
        creatures[task] = self

    def live(self):
        me = creatures[stackless.getcurrent()]
        assert me is self
        while self.position < TRACK:
            self.steps += 1
            self.position = min(TRACK, self.position + self.speed)
            print("%-6s step %d -> %2d" % (self.name, self.steps, self.position))
            stackless.schedule()
        arrivals.send((self.name, self.steps))


def referee(count):
    place = 0
    while place < count:
        name, steps = arrivals.receive()
        place += 1
        print("referee: %s arrives #%d after %d steps" % (name, place, steps))


Creature("snail", 1 + 1)
Creature("hare", 4)
Creature("turtle", 3)
stackless.tasklet(referee)(len(creatures))
stackless.run()
for task, creature in sorted(creatures.items(), key=lambda item: item[1].name):
    print("%s alive=%s" % (creature.name, task.alive))
