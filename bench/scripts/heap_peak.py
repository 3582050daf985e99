#!/usr/bin/env python3
"""Where the server's heap stood at its peak, per call site in our code.

Reads the folded stacks that `heaptrack_print -f FILE.zst -F OUT
--flamegraph-cost-type peak` writes, charges each stack's bytes to the
innermost frame of chat_server (with the frame it called, so that, say, a
channel and a task allocated from the same function stay apart), and prints
the largest, divided by N if given (the number of idle connections at the
peak, for bytes per connection).

Usage: heap_peak.py FOLDED [N] [TOP]
"""
import collections
import re
import sys


def readable(frame):
    frame = re.sub(r"::h[0-9a-f]{16}", "", frame)
    for coded, plain in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("_$u7b$$u7b$closure$u7d$$u7d$", "{closure}")):
        frame = frame.replace(coded, plain)
    return frame[:100]


def main():
    path = sys.argv[1]
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    sites = collections.Counter()
    with open(path) as folded:
        for line in folded:
            stack, count = line.rsplit(" ", 1)
            frames = [frame for frame in stack.split(";") if frame]
            ours = [i for i, frame in enumerate(frames) if "chat_server" in frame]
            site = tuple(readable(f) for f in frames[ours[-1] : ours[-1] + 2]) if ours else ("(outside chat_server)",)
            sites[site] += int(count)
    for site, size in sites.most_common(top):
        print(f"{size / per:10.1f}  {' -> '.join(site)}")


if __name__ == "__main__":
    main()
