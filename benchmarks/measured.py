"""Run a command and write its wall and CPU seconds and peak memory as JSON: ``measured.py OUT -- CMD …``.

A process's peak resident memory (``ru_maxrss``) starts from its parent's at the fork, so a command
started straight from a large benchmark process would report at least that process's memory. This
small process forks the command instead, so the peak is the command's own (as ``/usr/bin/time -v``).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    out, separator, *command = sys.argv[1:]
    assert separator == "--" and command, __doc__
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the command, in a child forked from this small process
        os.execvp(command[0], command)
    _, status, usage = os.wait4(pid, 0)
    figures = {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
    }
    with open(out, "w") as file:
        json.dump(figures, file)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
