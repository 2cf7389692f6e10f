"""environment.yml / requirements.txt -> the replicas' runtime_env (modelhub_deployer.environments):
the conda route where Ray can run conda, the pip route where pip can meet every need, a refusal
naming what cannot be met otherwise; and environment.yml as the hostile input it is."""

from pathlib import Path

import pytest

from modelhub_deployer import environments
from modelhub_deployer.environments import Host, Plan, Refused, conda_to_pip, from_environment, from_requirements

NO_CONDA = Host(conda=None, python=(3, 11, 7))
CONDA = Host(conda="/opt/conda/bin/conda", python=(3, 11, 7))


def package(tmp_path: Path, environment: str | bytes | None = None, requirements: str | None = None) -> Path:
    if environment is not None:
        data = environment.encode() if isinstance(environment, str) else environment
        (tmp_path / "environment.yml").write_bytes(data)
    if requirements is not None:
        (tmp_path / "requirements.txt").write_text(requirements)
    return tmp_path


def plan(tmp_path: Path, environment: str | bytes, host: Host = NO_CONDA, requirements: str | None = None) -> Plan:
    root = package(tmp_path, environment, requirements)
    return from_environment(root, host, has_requirements=requirements is not None)


# ------------------------------------------------------------------ one conda dependency, for pip


@pytest.mark.parametrize(
    ("spec", "requirement"),
    [
        ("numpy", "numpy"),
        ("numpy=1.26", "numpy==1.26.*"),  # conda's `=` is "this version and its patches"
        ("numpy=1.26.*", "numpy==1.26.*"),
        ("numpy==1.26.4", "numpy==1.26.4"),
        ("numpy>=1.2", "numpy>=1.2"),
        ("numpy >=1.2, <2", "numpy>=1.2,<2"),
        ("numpy>=1.2,<2", "numpy>=1.2,<2"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4.*"),  # `conda env export`: build dropped
        ("numpy 1.26.4 py311_0", "numpy==1.26.4"),  # space form: a bare version is exact
        ("numpy 1.26.*", "numpy==1.26.*"),
        ("numpy 1.26*", "numpy==1.26.*"),
        ("numpy *", "numpy"),
        ("numpy[version='>=1.2,<2']", "numpy>=1.2,<2"),
        ("conda-forge::numpy", "numpy"),
        ("conda-forge/linux-64::numpy=1.26", "numpy==1.26.*"),
        ("pytorch", "torch"),
        ("pytorch::pytorch>=2.1", "torch>=2.1"),
        ("py-opencv=4.8", "opencv-python-headless==4.8.*"),
        ("opencv", "opencv-python-headless"),
        ("python-graphviz", "graphviz"),
        ("matplotlib-base>=3.8", "matplotlib>=3.8"),
        ("scikit-learn=1.4", "scikit-learn==1.4.*"),
        ("pillow", "pillow"),
        ("tensorflow", "tensorflow"),
        ("some-package-only-pypi-knows", "some-package-only-pypi-knows"),  # pip says if not
    ],
)
def test_a_conda_dependency_becomes_its_pypi_requirement(spec, requirement):
    assert conda_to_pip(spec)[1] == requirement


@pytest.mark.parametrize(
    "spec",
    ["python", "python=3.11", "pip", "pip=23.3", "openssl=3.0", "ca-certificates", "_libgcc_mutex", "libgcc-ng",
     "ld_impl_linux-64", "zlib", "mkl", "blas=*=openblas", "conda-forge::libstdcxx-ng>=12", "cpuonly"],
)  # fmt: skip
def test_what_the_node_s_python_already_has_is_skipped(spec):
    assert conda_to_pip(spec)[1] is None


@pytest.mark.parametrize(
    "spec",
    ["cudatoolkit=11.8", "cudnn", "nvidia::cuda-toolkit", "cuda-nvcc", "pytorch-cuda=12.1", "gxx_linux-64",
     "gcc", "ffmpeg", "graphviz", "r-base=4.3", "nccl", "libcublas"],
)  # fmt: skip
def test_conda_only_packages_are_refused_by_name(spec):
    with pytest.raises(Refused, match="conda-only") as refused:
        conda_to_pip(spec)
    assert spec in str(refused.value)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("numpy 1.2|1.3", "no 'or'"),
        ("numpy ;rm", "cannot read"),
        ("numpy=abc def", "cannot read"),
        ("!!!", "not a conda package spec"),
    ],
)
def test_a_spec_pip_cannot_say_is_refused_with_why(spec, why):
    with pytest.raises(Refused, match=why):
        conda_to_pip(spec)


# ------------------------------------------------------------------ whole files, both routes


EXPORTED = """
name: my-model
channels:
  - pytorch
  - conda-forge
dependencies:
  - _libgcc_mutex=0.1=conda_forge
  - ca-certificates=2024.2.2=hbcca054_0
  - python=3.11.7=hab00c5b_1_cpython
  - pip=24.0
  - numpy=1.26.4=py311h64a7726_0
  - conda-forge::scikit-learn>=1.4
  - pytorch::pytorch=2.2
  - pip:
      - roman==5.2
      - --extra-index-url https://wheels.example/simple
"""


def test_without_conda_pip_builds_what_it_can_meet_and_says_so(tmp_path):
    result = plan(tmp_path, EXPORTED)
    packages = ["numpy==1.26.4.*", "scikit-learn>=1.4", "torch==2.2.*", "roman==5.2",
                "--extra-index-url https://wheels.example/simple"]  # fmt: skip
    assert result.route == "pip" and result.file == "environment.yml"
    assert list(result.packages) == packages
    assert result.runtime_env == {"pip": packages}
    assert result.skipped == ("_libgcc_mutex", "ca-certificates", "python", "pip")
    assert "no conda" in result.reason and "CONDA_EXE" in result.reason
    assert result.record() == {
        "route": "pip",
        "file": "environment.yml",
        "packages": packages,
        "skipped": ["_libgcc_mutex", "ca-certificates", "python", "pip"],
        "reason": result.reason,
    }


def test_with_conda_the_environment_goes_to_ray_s_conda_as_written(tmp_path):
    result = plan(tmp_path, EXPORTED, host=CONDA)
    assert result.route == "conda" and "/opt/conda/bin/conda" in result.reason
    conda = result.runtime_env["conda"]
    assert conda["channels"] == ["pytorch", "conda-forge"]
    assert conda["dependencies"][:3] == ["_libgcc_mutex=0.1=conda_forge", "ca-certificates=2024.2.2=hbcca054_0",
                                         "python=3.11.7=hab00c5b_1_cpython"]  # fmt: skip
    assert conda["dependencies"][-1] == {"pip": ["roman==5.2", "--extra-index-url https://wheels.example/simple"]}
    assert "name" not in conda  # Ray names the env itself (--prefix)


def test_conda_only_needs_without_conda_fail_naming_each_and_how_to_fix_it(tmp_path):
    text = "dependencies:\n  - numpy\n  - cudatoolkit=11.8\n  - nvidia::cudnn\n  - ffmpeg\n"
    with pytest.raises(Refused) as refused:
        plan(tmp_path, text)
    message = str(refused.value)
    for name in ("cudatoolkit=11.8", "nvidia::cudnn", "ffmpeg"):
        assert name in message
    assert "numpy" not in message and "no conda on the deployer's node" in message
    assert "Install conda on the Ray nodes" in message


def test_the_same_conda_only_needs_go_to_conda_where_there_is_one(tmp_path):
    result = plan(tmp_path, "dependencies:\n  - cudatoolkit=11.8\n  - numpy\n", host=CONDA)
    assert result.route == "conda" and result.runtime_env["conda"]["dependencies"] == ["cudatoolkit=11.8", "numpy"]


def test_a_micromamba_alone_is_named_but_cannot_stand_in_for_conda(tmp_path):
    host = Host(conda=None, micromamba="/usr/local/bin/micromamba", python=(3, 11, 7))
    with pytest.raises(Refused, match="micromamba at /usr/local/bin/micromamba cannot stand in"):
        plan(tmp_path, "dependencies: [cudnn]\n", host=host)


@pytest.mark.parametrize(
    ("pin", "ok"),
    [
        ("python=3.11", True),
        ("python>=3.10", True),
        ("python 3.11.*", True),
        ("python>=3.9,<3.12", True),
        ("python=3.10|3.11", True),
        ("python==3.11.7", True),
        ("python=3", True),
        ("python=3.10", False),
        ("python<3.11", False),
        ("python=3.12.1=h123_0", False),
    ],
)
@pytest.mark.parametrize("host", [NO_CONDA, CONDA], ids=["pip", "conda"])
def test_a_python_pin_is_checked_against_the_nodes_python_on_both_routes(tmp_path, pin, ok, host):
    text = f"dependencies:\n  - {pin}\n  - numpy\n"
    if ok:
        assert plan(tmp_path, text, host=host).route == ("conda" if host.conda else "pip")
        return
    with pytest.raises(Refused, match=r"the Ray nodes run Python 3\.11\.7.*pin python=3\.11"):
        plan(tmp_path, text, host=host)


def test_every_problem_is_named_at_once(tmp_path):
    with pytest.raises(Refused) as refused:
        plan(tmp_path, "dependencies:\n  - python=3.9\n  - cudnn\n")
    assert "python=3.9" in str(refused.value) and "cudnn" in str(refused.value)


# --------------------------------------------------- environment.yml beside requirements.txt


def test_environment_yml_wins_and_says_requirements_txt_is_unused(tmp_path):
    result = plan(tmp_path, "dependencies:\n  - numpy\n", requirements="humanize==4.9.0\n")
    assert result.packages == ("numpy",)
    assert "requirements.txt is not used" in result.reason and "-r requirements.txt" in result.reason


@pytest.mark.parametrize(
    "line",
    [
        "-r requirements.txt",
        "-r file:requirements.txt",
        "--requirement ./requirements.txt",
        "-rrequirements.txt",
        "--requirement=requirements.txt",
    ],
)
@pytest.mark.parametrize("host", [NO_CONDA, CONDA], ids=["pip", "conda"])
def test_a_pip_list_naming_requirements_txt_gets_its_lines_on_both_routes(tmp_path, line, host):
    text = f"dependencies:\n  - numpy\n  - pip:\n      - roman\n      - {line}\n"
    result = plan(tmp_path, text, host=host, requirements="# pinned\nhumanize==4.9.0\n\ntabulate\n")
    pip = ["roman", "humanize==4.9.0", "tabulate"]
    if host.conda:
        assert result.runtime_env["conda"]["dependencies"][-1] == {"pip": pip}
    else:
        assert result.runtime_env == {"pip": ["numpy", *pip]}
    assert "not used" not in result.reason


def test_a_pip_list_may_name_no_other_file(tmp_path):
    with pytest.raises(Refused, match="only the package's requirements.txt"):
        plan(tmp_path, "dependencies:\n  - pip:\n      - -r ../../etc/passwd\n")
    for line in ("-c constraints.txt", "--constraint=c.txt", "-rother.txt"):
        with pytest.raises(Refused, match="only the package's requirements.txt"):
            plan(tmp_path, f"dependencies:\n  - pip:\n      - {line}\n")
    # options that name no file are pip's business, as in a requirements.txt
    assert plan(tmp_path, "dependencies:\n  - pip:\n      - --require-hashes\n      - --pre\n").packages == (
        "--require-hashes",
        "--pre",
    )
    with pytest.raises(Refused, match="which the package lacks"):
        plan(tmp_path, "dependencies:\n  - pip:\n      - -r requirements.txt\n")


def test_requirements_txt_alone_goes_to_pip_as_written(tmp_path):
    root = package(tmp_path, requirements="# a comment\nhumanize==4.9.0\n\n  roman  \n")
    result = from_requirements(root)
    assert (result.route, result.file, result.packages) == ("pip", "requirements.txt", ("humanize==4.9.0", "roman"))
    assert result.runtime_env == {"pip": ["humanize==4.9.0", "roman"]}


def test_an_environment_with_nothing_to_install_needs_no_runtime_env(tmp_path):
    result = plan(tmp_path, "name: empty\ndependencies:\n  - python=3.11\n  - pip\n")
    assert (result.route, result.packages, result.runtime_env) == ("pip", (), {})


# ------------------------------------------------------------------ hostile environment.yml


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("dependencies: [numpy", "not valid YAML"),
        ("- numpy\n- scipy\n", "must be a mapping"),
        ("just text", "must be a mapping"),
        ("dependencies: numpy", "dependencies must be a list"),
        ("dependencies:\n  - {conda: numpy}\n", "a dependency must be"),
        ("dependencies:\n  - [numpy]\n", "a dependency must be"),
        ("dependencies:\n  - 3\n", "a dependency must be"),
        ("dependencies:\n  - pip: roman\n", "pip: list must be a list"),
        ("dependencies:\n  - pip: [1, 2]\n", "must hold only text"),
        ("channels: conda-forge\n", "channels must be a list"),
        ('dependencies:\n  - "numpy\\n--index-url http://x"\n', "multi-line"),
        ("dependencies:\n  - ''\n", "empty"),
        ("dependencies: &d\n  - *d\n", "a dependency must be"),  # a list that holds itself
        ("dependencies:\n  - pip: &p\n      - *p\n", "must hold only text"),
        ("a: !!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),  # safe_load only
        ("[" * 5000 + "]" * 5000, "not valid YAML|must be a mapping"),
    ],
)
def test_a_hostile_or_broken_environment_yml_is_refused_with_why(tmp_path, text, why):
    with pytest.raises(Refused, match=why):
        plan(tmp_path, text)


def test_aliases_cannot_multiply_the_work(tmp_path):
    # a billion laughs: each level names the one below nine times; only strings at known
    # places are used, so nothing walks the shared structure
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    text = "\n".join(levels) + "\ndependencies:\n  - numpy\n  - pip: *a11\n"
    with pytest.raises(Refused, match="must hold only text"):
        plan(tmp_path, text)


def test_size_count_and_encoding_are_bounded(tmp_path):
    with pytest.raises(Refused, match="over 256 KiB"):
        plan(tmp_path, "#" * (environments.MAX_FILE_BYTES + 1))
    many = "dependencies:\n" + "".join(f"  - p{i}\n" for i in range(environments.MAX_ENTRIES + 1))
    with pytest.raises(Refused, match="more than 1000"):
        plan(tmp_path, many)
    with pytest.raises(Refused, match="not UTF-8"):
        plan(tmp_path, b"dependencies: [\xff\xfe]\n")
    with pytest.raises(Refused, match="over-long"):
        plan(tmp_path, f"dependencies:\n  - {'n' * 2000}\n")


def test_the_conda_route_gets_a_rebuilt_dict_of_strings_not_the_loaded_document(tmp_path):
    text = "name: x\nprefix: /etc\nvariables: {A: b}\nextra: &e [1]\nchannels: [conda-forge]\ndependencies: [numpy]\n"
    result = plan(tmp_path, text, host=CONDA)
    assert result.runtime_env == {"conda": {"channels": ["conda-forge"], "dependencies": ["numpy"]}}


# ------------------------------------------------------------------ where conda is looked for


def test_conda_is_looked_for_where_ray_looks_on_a_node(tmp_path):
    exe = tmp_path / "bin" / "conda"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    nowhere = lambda name, path=None: None  # noqa: E731
    # RAY_CONDA_HOME is the operator's word about the Ray nodes (they may be other machines)
    assert Host.detect({"RAY_CONDA_HOME": "/nodes/conda"}, nowhere).conda == "/nodes/conda/bin/conda"
    assert Host.detect({"CONDA_EXE": str(exe)}, nowhere).conda == str(exe)
    assert Host.detect({"CONDA_EXE": "/gone/bin/conda"}, nowhere).conda is None
    on_path = Host.detect({"PATH": "/x"}, lambda name, path=None: f"{path}/{name}" if name == "conda" else None)
    assert on_path.conda == "/x/conda"
    mamba = Host.detect({"PATH": "/x"}, lambda name, path=None: "/x/micromamba" if name == "micromamba" else None)
    assert (mamba.conda, mamba.micromamba) == (None, "/x/micromamba")
    assert Host.detect({}, nowhere) == Host(conda=None, micromamba=None)
