"""The package as a user gets it: built into a wheel, installed into a fresh venv outside the repo.

No registry is reached: the wheel is built with the setuptools of this venv,
installed without dependencies, and the fresh venv borrows this venv's
third-party packages (Pulumi SDKs, pydantic) through a ``.pth`` file, so
nothing from the repository is on its ``sys.path``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "Pulumi.yaml").exists())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the build leaves nothing in the repository.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "render-out", "build", "*.egg-info", "__pycache__", ".*_cache"), symlinks=True)
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)], check=True)
    subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"], cwd=source, check=True, capture_output=True
    )
    [wheel] = dist.glob("mleks-*.whl")
    [sdist] = dist.glob("mleks-*.tar.gz")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True)
    (Path(purelib.stdout.strip()) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"wheel": wheel, "sdist": sdist, "venv": venv, "python": python, "work": work}


def _in_venv(built: dict[str, Path], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, env={"PATH": str(built["venv"] / "bin"), "HOME": str(built["work"])})


def test_the_wheel_holds_only_the_mleks_package_with_its_data_and_types(built: dict[str, Path]):
    names = zipfile.ZipFile(built["wheel"]).namelist()
    assert {n.split("/")[0] for n in names} == {"mleks", "mleks-0.2.0.dist-info"}
    for required in ("mleks/py.typed", "mleks/catalogs/data/gpu_instances.json", "mleks/catalogs/data/aws_load_balancer_controller/iam_policy_cn.json"):
        assert required in names
    # Every subpackage of the source tree is packaged (pyproject lists them by hand).
    subpackages = {str(p.parent.relative_to(ROOT / "components" / "mleks")) for p in (ROOT / "components" / "mleks").rglob("__init__.py")} - {"."}
    assert {f"mleks/{sub}/__init__.py" for sub in subpackages} <= set(names)
    metadata = zipfile.ZipFile(built["wheel"]).read("mleks-0.2.0.dist-info/METADATA").decode()
    assert "Requires-Python: >=3.11" in metadata and "Requires-Dist: pulumi-eks<5,>=4.4" in metadata
    entry_points = zipfile.ZipFile(built["wheel"]).read("mleks-0.2.0.dist-info/entry_points.txt").decode()
    assert "mleks = mleks.cli:main" in entry_points


def test_the_sdist_is_named_mleks(built: dict[str, Path]):
    with tarfile.open(built["sdist"]) as sdist:
        names = sdist.getnames()
    assert all(n == "mleks-0.2.0" or n.startswith("mleks-0.2.0/") for n in names) and "mleks-0.2.0/pyproject.toml" in names
    assert not any(n.startswith(("mleks-0.2.0/stacks", "mleks-0.2.0/tests")) for n in names)


def test_the_installed_package_imports_from_the_venv_not_the_repo(built: dict[str, Path], tmp_path: Path):
    script = "import sys, mleks; from mleks import MLCluster, GpuNodeGroup, EscalatorAddon, DLCTrainingJob; print(mleks.__file__); print(sys.path)"
    done = _in_venv(built, str(built["python"]), "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, path = done.stdout.splitlines()[:2]
    assert where.startswith(str(built["venv"]))
    # Only this venv's own site-packages (the borrowed dependencies) may lie under the repository.
    from_repo = [p for p in ast.literal_eval(path) if Path(p).is_relative_to(ROOT) and ".venv" not in Path(p).parts]
    assert from_repo == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_renders_with_the_installed_mleks_command(built: dict[str, Path], tmp_path: Path, example: str):
    program = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, program)
    done = _in_venv(built, str(built["venv"] / "bin" / "mleks"), "render", "--stack", "dev", "--quiet", str(program), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (program / "render-out" / "dev" / "plan.json").exists()
    assert list((program / "render-out" / "dev" / "kubernetes").glob("*.yaml"))


def test_the_installed_mleks_command_diffs_two_renders(built: dict[str, Path], tmp_path: Path):
    program = tmp_path / "training-cluster"
    shutil.copytree(ROOT / "examples" / "training-cluster", program)
    mleks = str(built["venv"] / "bin" / "mleks")
    assert _in_venv(built, mleks, "render", "--stack", "dev", "--quiet", "--out", str(tmp_path / "base"), str(program), cwd=tmp_path).returncode == 0
    main = program / "__main__.py"
    main.write_text(main.read_text().replace("max_size=2, efa=True", "max_size=4, efa=True"))
    assert _in_venv(built, mleks, "render", "--stack", "dev", "--quiet", "--out", str(tmp_path / "head"), str(program), cwd=tmp_path).returncode == 0
    done = _in_venv(built, mleks, "diff", str(tmp_path / "base"), str(tmp_path / "head"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "`scalingConfig.maxSize`: `2` → `4`" in done.stdout


def test_an_example_runs_under_mleks_testing_set_mocks_in_the_fresh_venv(built: dict[str, Path], tmp_path: Path):
    program = tmp_path / "training-cluster"
    shutil.copytree(ROOT / "examples" / "training-cluster", program)
    script = f"""
import runpy
import pulumi
import mleks.testing

monitor = mleks.testing.set_mocks(project="research", stack="dev", config={{"aws:region": "us-east-1"}})
runpy.run_path({str(program / "__main__.py")!r})

@pulumi.runtime.test
def settled():
    return pulumi.Output.from_input(1)

settled()
types = {{r.type for r in monitor.registrations.values()}}
assert {{"mleks:cluster:MLCluster", "mleks:addons:EscalatorAddon", "mleks:training:DLCTrainingJob"}} <= types, types
print("ok", len(monitor.registrations))
"""
    done = _in_venv(built, str(built["python"]), "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
