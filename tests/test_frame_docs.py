"""docs/frame-standard.md stays true: its Python writer without this package works against the daemon's side."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from skyscreen_hw.sources.shared_frame import FrameReader

LOG = logging.getLogger("skyscreen.test")
DOC = Path(__file__).parent.parent / "docs" / "frame-standard.md"
GEOMETRY = 'name, height, width = "skyscreen", 360, 288'


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_standalone_python_writer_of_the_standard_gets_frames_through(display_name: str) -> None:
    (standalone,) = [block for block in _python_blocks() if GEOMETRY in block]
    script = standalone.replace(GEOMETRY, f'name, height, width = "{display_name}", 4, 5')
    script += "\nframe[:] = 3\nprint(flush(5.0))\nframe[:] = 4\nprint(flush(5.0))\n"
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        writer = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        seen = []
        for _ in range(2):
            frame = reader.poll(10.0)
            assert frame is not None, writer.communicate(timeout=10)
            seen.append(frame.copy())
        out, err = writer.communicate(timeout=10)
        assert out.split() == ["True", "True"], err
        assert (seen[0] == 3).all() and (seen[1] == 4).all()
    finally:
        reader.close()


def test_the_standalone_python_writer_refuses_another_geometry(display_name: str) -> None:
    (standalone,) = [block for block in _python_blocks() if GEOMETRY in block]
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        script = standalone.replace(GEOMETRY, f'name, height, width = "{display_name}", 6, 7')
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and "the frame file is 60 bytes, not 126" in result.stderr, result.stderr
    finally:
        reader.close()
