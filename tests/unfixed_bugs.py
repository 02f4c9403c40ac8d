"""Bugs of minijax that the fuzzer found and that are not fixed yet.

These are not differences minijax makes on purpose (those are in differences.py):
each is a place where minijax gives a wrong answer or a wrong error, to be fixed.
Until it is, the seeded fuzz test skips the programs an entry recognises and prints
how many it skipped. tests/test_fuzz.py runs each entry's example: once a bug is
fixed, that test fails, so the entry is removed and the list cannot go stale.
"""

from __future__ import annotations


from differences import Entry


UNFIXED_BUGS: list[Entry] = []
