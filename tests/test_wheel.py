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

# Builds a wheel and fresh virtual environments: the end-to-end part a developer may skip with -m "not slow".
pytestmark = pytest.mark.slow


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
    assert "mleks = mleks.cli:console" in entry_points


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


# -- the library gets what the stack file gets (issue 18), run in the fresh venv outside the repo ----------------

LIBRARY_CHECKS = r"""
import pulumi
import mleks
from mleks.testing import run

REGION = {"aws:region": "us-east-1"}


def refused(program):
    try:
        run(program, project="p", stack="dev", config=REGION)
    except mleks.ConfigErrors as err:
        return [str(e) for e in err.errors], sorted(getattr(err, "registered_urns", []))
    raise AssertionError("accepted")


def cluster_and_groups():
    cluster = mleks.MLCluster("lab", mleks.MLClusterArgs(), cluster_name="lab", vpc_id="vpc-1", private_subnet_ids=["subnet-a", "subnet-b"])
    train = mleks.GpuNodeGroup("lab-train", mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], autoscaler="none"), cluster=cluster)
    return cluster, train


def service_on_a_train_group():
    cluster, train = cluster_and_groups()
    mleks.InferenceService("svc", mleks.InferenceServiceArgs(name="svc", image={"uri": "public.ecr.aws/x/y:1"}), cluster=cluster, node_group=train)


errors, urns = refused(service_on_a_train_group)
assert errors == ["InferenceService('svc').node_group = 'train' is invalid: the group has role 'train'. Accepted: a group of role 'inference'"], errors
assert not [u for u in urns if "InferenceService" in u], urns


def job_naming_a_missing_group():
    cluster, train = cluster_and_groups()
    args = mleks.DLCTrainingJobArgs(name="job", version="2.6", command=["python", "t.py"], node_group="train-big")
    mleks.DLCTrainingJob("job", args, cluster=cluster, node_group=train)


errors, urns = refused(job_naming_a_missing_group)
assert errors[0].startswith("DLCTrainingJob('job').args.node_group = ['train-big'] is invalid: names another group"), errors
assert not [u for u in urns if "DLCTrainingJob" in u], urns


def a_component_where_its_args_belong():
    cluster, train = cluster_and_groups()
    mleks.DLCTrainingJob("job", mleks.DLCTrainingJobArgs(name="job", version="2.6", command=["python", "t.py"]), cluster=cluster, node_group=cluster)


errors, _ = refused(a_component_where_its_args_belong)
assert errors == ["DLCTrainingJob('job').node_group = 'MLCluster' is invalid: a MLCluster. Accepted: a GpuNodeGroup (or its GpuNodeGroupArgs)"], errors


def a_misspelt_region():
    mleks.MLCluster("lab", mleks.MLClusterArgs(), cluster_name="lab", region="eu-centrl-1", vpc_id="vpc-1", private_subnet_ids=["subnet-a"])


errors, urns = refused(a_misspelt_region)
assert errors[0].startswith("MLCluster('lab').region = 'eu-centrl-1' is invalid: not an AWS region; did you mean eu-central-1"), errors
assert urns == [], urns


def platform(**jobs):
    return mleks.MLPlatformArgs(
        region="us-east-1",
        topology="unified",
        node_groups={"train": mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], max_size=2)},
        training_jobs=jobs,
    )


def a_platform_with_a_job_on_a_missing_group():
    mleks.MLPlatform("ml", platform(smoke=mleks.DLCTrainingJobArgs(name="smoke", version="2.6", command=["python", "t.py"], node_group="train-big")))


errors, urns = refused(a_platform_with_a_job_on_a_missing_group)
assert errors == [
    "MLPlatform('ml').training_jobs.smoke.node_group = 'train-big' is invalid: no such node group."
    " Accepted: the name of one of the train groups under node_groups: ['train']"
], errors
assert urns == [], urns

built = {}


def a_platform():
    built["platform"] = mleks.MLPlatform("ml", platform(smoke=mleks.DLCTrainingJobArgs(name="smoke", version="2.6", command=["python", "t.py"])))


result = run(a_platform, project="p", stack="dev", config=REGION)
types = {r.type for r in result.resources}
assert {"mleks:platform:MLPlatform", "mleks:cluster:MLCluster", "mleks:addons:EscalatorAddon", "mleks:training:DLCTrainingJob"} <= types, types
assert isinstance(built["platform"].training_jobs["smoke"].image, pulumi.Output)
print("ok")
"""


def test_the_library_refuses_what_the_stack_file_refuses_naming_component_and_argument(built: dict[str, Path], tmp_path: Path):
    done = _in_venv(built, str(built["python"]), "-c", LIBRARY_CHECKS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_every_args_type_a_public_signature_names_is_exported(built: dict[str, Path], tmp_path: Path):
    script = """
import inspect, typing, mleks
from pydantic import BaseModel
missing = set()
for name in mleks.__all__:
    obj = getattr(mleks, name)
    if inspect.isclass(obj) and issubclass(obj, BaseModel):
        for field in obj.model_fields.values():
            for arg in typing.get_args(field.annotation) + (field.annotation,):
                for inner in (arg, *typing.get_args(arg)):
                    if inspect.isclass(inner) and issubclass(inner, BaseModel) and inner.__module__.startswith("mleks") and inner.__name__ not in mleks.__all__:
                        missing.add(f"{name}.{inner.__name__}")
print(sorted(missing))
"""
    done = _in_venv(built, str(built["python"]), "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_examples_requirements_install_into_a_fresh_venv_from_the_checkout(built: dict[str, Path], tmp_path: Path):
    """The example's requirements.txt, as its folder says: run in the example folder of a checkout, with no index."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True)
    (Path(purelib.stdout.strip()) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    example = built["work"] / "source" / "examples" / "training-cluster"
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path)}
    # The build uses the tested setuptools (borrowed), not an older copy a new venv may carry.
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], capture_output=True, env=env, cwd=tmp_path)
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-build-isolation",
        "--find-links",
        str(built["wheel"].parent),
        "-r",
        "requirements.txt",
    ]
    done = subprocess.run(install, cwd=example, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = subprocess.run([str(python), "-m", "pip", "show", "-f", "mleks"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "Version: 0.2.0" in shown.stdout and "mleks/platform/component.py" in shown.stdout
    render = subprocess.run(
        [str(venv / "bin" / "mleks"), "render", "--stack", "dev", "--quiet", "--out", str(tmp_path / "out"), str(example)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert render.returncode == 0, render.stderr[-2000:]


def test_the_readme_test_example_runs_as_written_against_the_installed_wheel(built: dict[str, Path], tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    marker = "<!-- readme-test: test_platform.py -->\n```python\n"
    assert marker in readme
    code = readme.split(marker, 1)[1].split("\n```", 1)[0]
    (tmp_path / "test_platform.py").write_text(code + "\n")
    done = _in_venv(built, str(built["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_platform.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
