# A pool of worker tasklets serving jobs from a shared channel.  At shutdown
# the main tasklet kills every worker; the workers clean up in `finally`
# and recognise TaskletExit (a builtin under Stackless: no import needed).
import stackless

jobs = stackless.channel()
results = stackless.channel()


def worker(name):
    handled = 0
    try:
        while True:
            job = jobs.receive()
            handled += 1
            results.send("%s did %s" % (name, job))
    except TaskletExit:
        print("%s: TaskletExit after %d job(s)" % (name, handled))
        raise
    finally:
        print("%s: cleaning up" % name)


workers = [stackless.tasklet(worker)("worker-%d" % i) for i in range(3)]
stackless.run()
print("workers waiting: %d" % -jobs.balance)

for job in ["job-a", "job-b", "job-c", "job-d"]:
    stackless.tasklet(jobs.send)(job)
for i in range(4):
    print(results.receive())
stackless.run()

print("shutting down")
for w in workers:
    w.kill()
print("alive after kill: %s" % [w.alive for w in workers])
print("jobs balance %d, runcount %d" % (jobs.balance, stackless.getruncount()))
