"""TAP on stdout for the Python test scripts (tests/events, tests/fanout,
tests/fcgi): ok() per result with the diagnostic under a failure, note()
for a comment, done() prints the plan and returns the exit status.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tap import Tap
"""
import sys


class Tap:
    def __init__(self, diag_lines=30):
        self.n = 0
        self.failed = 0
        self.diag_lines = diag_lines    # None: all of them

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name))
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines()[:self.diag_lines]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def note(self, msg):
        print("# " + msg)
        sys.stdout.flush()

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0
