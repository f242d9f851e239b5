"""What a wheel holds: every package folder of the source tree is listed in pyproject.toml, so a
non-editable install (the container's) can import everything the tests import."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_in_the_wheel():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "bidsxai").rglob("__init__.py")
    }
    missing = found - set(setuptools["packages"])
    assert not missing, f"missing from pyproject.toml: {sorted(missing)}"
