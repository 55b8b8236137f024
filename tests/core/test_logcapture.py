"""A failing tool's log tail names the failure, not its progress bars."""

from edgedeploy.core.logcapture import log_tail


def test_progress_bars_are_not_the_failure(tmp_path):
    log = tmp_path / "tool.log"
    log.write_text("W1202 14:00:15.350 chatter\nRunning Calibration::  38%|###8      | 235/624 [00:00<00:00, 759.33it/s]"
                   "\rRunning Calibration:: 100%|##########| 624/624 [00:00<00:00, 899.20it/s]\n"
                   "ValueError: input operand has more dimensions than allowed\n")
    assert log_tail(log) == "ValueError: input operand has more dimensions than allowed"
