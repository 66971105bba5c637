import dataclasses
import re
from pathlib import Path

import pytest

from emotion_edge.device.config import DaemonConfig, load_config, parse_config
from emotion_edge.device.config.schema import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "config.toml"


def test_empty_config_gives_defaults():
    assert parse_config("") == DaemonConfig()


def test_values_are_typed_and_nested():
    config = parse_config('device_id = "hall"\n[camera]\nsource = "0"\nwidth = 640\nfps = 15\n'
                          '[model]\npath = "/tmp/m.tflite"\nthreads = 1\n[log]\nformat = "json"\n')
    assert config.device_id == "hall" and config.camera.width == 640
    assert config.camera.fps == 15.0 and isinstance(config.camera.fps, float)
    assert config.model.path == Path("/tmp/m.tflite") and config.log.format == "json"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[camera]\nwidht = 640\n", "cfg.camera: unknown key(s) widht; valid keys:"),
        ("[cameras]\nsource = '0'\n", "cfg: unknown key(s) cameras"),
        ("[camera]\nwidth = '640'\n", "cfg.camera.width: expected int, got str '640'"),
        ("[camera]\nloop = 1\n", "cfg.camera.loop: expected bool, got int 1"),
        ("[model]\nthreads = 99\n", "cfg.model: field 'threads' must be 1-16, got 99"),
        ("[log]\nlevel = 'LOUD'\n", "cfg.log.level: 'LOUD' is not one of"),
        ("[smoothing]\nalpha = 2.0\n", "cfg.smoothing: SmootherConfig field 'alpha'"),
        ("[pipeline]\nmirrors = 'sometimes'\n", "cfg.pipeline.mirrors: 'sometimes' is not one of"),
        ("[pipeline]\nclassify_every = 0\n", "cfg.pipeline: field 'classify_every' must be >= 1, got 0"),
        ("[pipeline]\nclassify_every = 1.5\n", "cfg.pipeline.classify_every: expected int, got float 1.5"),
        ("camera = 3\n", "cfg.camera: expected a table, got int 3"),
        ("[camera\n", "cfg: not valid TOML"),
        # Values of the right type that no camera can run at (issue 14, item 7).
        ("[camera]\nfps = -5.0\n", "cfg.camera: field 'fps' must be positive"),
        ("[camera]\nfps = 0.0\n", "cfg.camera: field 'fps' must be positive"),
        ("[camera]\nwidth = -640\n", "cfg.camera: field 'width' must be positive"),
        ("[camera]\nheight = 0\n", "cfg.camera: field 'height' must be positive"),
    ],
)
def test_bad_keys_and_values_are_named(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cfg")
    assert message in str(err.value)


def test_missing_file_points_at_the_example(tmp_path):
    with pytest.raises(ConfigError, match="no such config file; start from examples/config.toml"):
        load_config(tmp_path / "nope.toml")


def _all_keys(cls, prefix=""):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type if not isinstance(f.type, str) else None):
            yield from _all_keys(f.type, f"{prefix}{f.name}.")
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            yield from _all_keys(f.default_factory, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_example_config_parses_and_documents_every_key():
    load_config(EXAMPLE)
    text = EXAMPLE.read_text()
    section = ""
    documented = set()
    for line in text.splitlines():
        header = re.match(r"^\[([\w.]+)\]", line)
        if header:
            section = header.group(1) + "."
        key = re.match(r"^#?\s?(\w+) = ", line)
        if key:
            documented.add(section + key.group(1) if section or key.group(1) != "device_id" else key.group(1))
    missing = sorted(set(_all_keys(DaemonConfig)) - documented)
    assert not missing, f"examples/config.toml does not document: {missing}"


@pytest.mark.parametrize("argv, message", [
    (["analyze", "--threads", "0", "x.png"], "argument --threads: must be a positive integer, got 0"),
    (["analyze", "--threads", "-3", "x.png"], "argument --threads: must be a positive integer, got -3"),
    (["run", "--max-frames", "-5"], "argument --max-frames: must be 0 or more, got -5"),
])
def test_options_that_cannot_work_are_refused_naming_the_option(argv, message, capsys):
    from emotion_edge.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_camera_section_becomes_source_options_field_for_field():
    """[camera] reaches open_source() through one conversion, which carries every setting both classes share."""
    from emotion_edge.device.sources import SourceOptions

    camera = parse_config("[camera]\nsource = 'clip.mp4'\nwidth = 320\nheight = 240\nfps = 12.5\nloop = true\n"
                          "lores_width = 160\n").camera
    options = camera.source_options(on_bad_file="skip")
    shared = {f.name for f in dataclasses.fields(SourceOptions)} & {f.name for f in dataclasses.fields(camera)}
    assert shared == {"width", "height", "fps", "loop", "paced", "lores_width"}
    assert parse_config("").camera.paced and not parse_config("[camera]\npaced = false\n").camera.paced
    assert {name: getattr(options, name) for name in shared} == {name: getattr(camera, name) for name in shared}
    assert options.on_bad_file == "skip"


def test_the_default_device_id_comes_from_the_machine_sanitized_for_topics_and_home_assistant(tmp_path, monkeypatch):
    from emotion_edge.device.config import identity

    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setattr(identity, "MACHINE_ID_FILES", (tmp_path / "absent", machine_id))
    monkeypatch.setattr("socket.gethostname", lambda: "Kitchen Pi#2.local")
    device_id = parse_config("").device_id
    assert re.fullmatch(r"kitchen-pi-2-[0-9a-f]{8}", device_id), device_id
    assert "0123456789abcdef" not in device_id  # a keyed hash of the machine id, never the id itself
    assert parse_config("").device_id == device_id  # stable across starts
    assert parse_config('device_id = "hall"').device_id == "hall"  # an explicit value wins
    monkeypatch.setattr(identity, "MACHINE_ID_FILES", (tmp_path / "absent",))
    assert parse_config("").device_id == "kitchen-pi-2"  # no machine id: the hostname alone
    assert identity.default_device_id(machine_id="", hostname="###") == "emotion-edge"
