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


def test_citation_cff_is_valid_and_carries_the_version():
    import subprocess
    import sys

    from bidsxai import __version__

    cffconvert = Path(sys.executable).parent / "cffconvert"
    checked = subprocess.run(
        [str(cffconvert), "--validate", "-i", str(ROOT / "CITATION.cff")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"\nversion: {__version__}\n" in (ROOT / "CITATION.cff").read_text()


def test_the_container_image_is_labelled_with_the_package_version():
    from bidsxai import __version__

    assert f'ARG VERSION="{__version__}"' in (ROOT / "Dockerfile").read_text()


def test_the_lock_file_pins_every_runtime_dependency_within_its_range():
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        if name == "torch" or (requirement.marker and not requirement.marker.evaluate()):
            continue  # torch: installed first, as the build the hardware needs
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {text}"
