"""What every service does once it is up: its start-up heap leaves the collector's work."""

from __future__ import annotations

import gc
import time

from sayna_sip.common.startup import freeze_startup_heap


def test_a_full_collection_after_start_up_skips_what_start_up_left() -> None:
    # A service holds its modules, config and connections for its whole life; a full
    # collection that walks them all paused the event loop for 20-30 ms under load.
    ballast = [[i] for i in range(200_000)]  # what a service keeps from start-up (tracked)
    try:
        started = time.process_time()
        gc.collect()
        walked = time.process_time() - started
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(ballast)
        started = time.process_time()
        gc.collect()
        assert time.process_time() - started < walked / 2
    finally:
        gc.unfreeze()  # the test process goes on collecting as before
