"""What a finished run logged: the last value of each TensorBoard scalar (``val/acc``...), read
back by the commands that run other commands (``study``, ``self-critique``)."""

from __future__ import annotations

from pathlib import Path


def read_last_scalars(log_root: Path) -> dict[str, float]:
    """Each scalar's value at its last step, over every TensorBoard run under ``log_root``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    last: dict[str, tuple[int, float, float]] = {}
    for events in sorted(log_root.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                key = (event.step, event.wall_time)
                if tag not in last or key >= last[tag][:2]:
                    last[tag] = (event.step, event.wall_time, event.value)
    return {tag: value for tag, (_, _, value) in last.items()}
