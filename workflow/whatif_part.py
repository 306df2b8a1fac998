"""``python -m workflow.whatif_part``: one part of a what-if, in a process of its own (see
``workflow.whatif``): the pickled arguments of ``_tally_apart`` on stdin, the pickled tally on
stdout. A module of its own, so the caller's main module is never imported again."""

from __future__ import annotations

import pickle
import sys

from workflow.whatif import _tally_apart


def main() -> None:
    args = pickle.load(sys.stdin.buffer)
    pickle.dump(_tally_apart(*args), sys.stdout.buffer)


if __name__ == "__main__":
    main()
