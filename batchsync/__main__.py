"""``python -m batchsync``."""

from ._entry import main

main()
