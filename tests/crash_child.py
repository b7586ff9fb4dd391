"""Run the real `musicvid` CLI with one stage held open, to be killed there (crash-recovery tests
and bench/reliability.py).

    python tests/crash_child.py STAGE MARKER_FILE musicvid-args...

STAGE is a step handler name, optionally with the Coordinator's action (``Coordinator:start``).
When that step begins, MARKER_FILE is written and the process waits to be killed. For the
AVOperator the mixer first leaves a partial output on disk, as a real mid-mix kill would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

STAGES = ["Coordinator:start", "Analyzer", "AudioGenerator", "AVOperator", "Coordinator:summary"]


def main(argv: list[str]) -> None:
    from musicvid_core.workflow import steps

    stage, marker, cli_args = argv[0], Path(argv[1]), argv[2:]
    step, action = (stage.split(":") + [None])[:2]
    real = steps.HANDLERS[step]

    def hold() -> None:
        marker.write_text("in")
        time.sleep(600)

    def hooked(event, services=None):
        if action is None or event.get("action") == action:
            if step == "AVOperator":
                import musicvid_core.stages.mix.compose as compose_mod

                def stuck(video, media, plan, clips, out, **kw):
                    out.write_bytes(b"partial")
                    hold()

                compose_mod.compose = stuck
                return real(event, services)
            hold()
        return real(event, services)

    steps.HANDLERS[step] = hooked
    from musicvid_core.cli import main as cli_main

    cli_main(cli_args)


if __name__ == "__main__":
    main(sys.argv[1:])
