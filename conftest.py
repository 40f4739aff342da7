"""Runs the Python blocks of README.md and docs/*.md as tests.

pytest-markdown-docs (``--markdown-docs`` in pyproject's addopts, README.md
and docs/ in its testpaths) makes every ```python block a test; a block marked
``continuation`` runs after the blocks before it, one marked ``notest`` is
not run. This file sits at the repository root so that its fixture reaches
README.md as well as docs/.

Each block runs in an empty temporary folder that stands in for the clone, so
what it writes (``runs/``, ``.keras`` and ``.tflite`` files) never lands in the
repository; ``../shared/data/cifar10-subset`` there points at the real subset,
so the paths the docs show work as they are. A block that starts from what a
long run leaves asks for it as a fixture (```python fixture:runs_c10, or
fixture:photos_run), made once per worker, instead of continuing the blocks
that made it, which would run them again. Blocks run offline: a block that
needs the network (an ImageNet weights download, ``load_cifar10()`` with no
local copy) must be marked ``notest``, and one that tries anyway fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent
#: Where the docs say the CIFAR-10 subset is, relative to the clone.
DOCS_SUBSET = Path("..", "shared", "data", "cifar10-subset")


#: Docs pages whose blocks train and convert models for minutes: marked slow, so
#: the default run skips them and .ci/run runs them in its slow step.
SLOW_PAGES = {"microcontrollers.md", "quantization-aware-training.md"}


#: Set on a pytest-xdist worker whose ``--dist loadgroup`` ignores the xdist_group marks.
_GROUPS_IGNORED = pytest.StashKey[bool]()


#: Docs pages whose blocks share a session fixture that trains: one xdist worker runs
#: each such page, so the fixture trains once per run.
GROUPED_PAGES = {"own-images.md"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_PAGES:
            item.add_marker(pytest.mark.slow)
        if item.path.name in GROUPED_PAGES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own, which tags each grouped test's id
def pytest_collection_finish(session: pytest.Session) -> None:
    """Notes whether the xdist_group marks hold, for `_xdist_groups_hold` to fail on.

    pytest-xdist groups a test by appending ``@GROUP`` to its node id; where
    the id stays as it was (pytest 9.2 with pytest-xdist 3.8,
    pytest-dev/pytest-xdist#1386), every grouped test goes its own way, and a
    fixture meant to be made once (a training run) is made on every worker.
    Nothing would fail: the run would only be slower, unnoticed.
    """
    if not session.config.getoption("loadgroup", default=False):  # set on xdist's workers only
        return
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    session.config.stash[_GROUPS_IGNORED] = any(  # the test xdist's scheduler applies
        item.nodeid.rfind("@") <= item.nodeid.rfind("]") for item in grouped
    )


@pytest.fixture(autouse=True)
def _xdist_groups_hold(request: pytest.FixtureRequest) -> None:
    """Fails each grouped test where pytest-xdist ignored its group (see above)."""
    if request.node.get_closest_marker("xdist_group") and request.config.stash.get(
        _GROUPS_IGNORED, False
    ):
        pytest.fail(
            f"pytest-xdist ignores the xdist_group marks under pytest {pytest.__version__} "
            "(pytest-dev/pytest-xdist#1386), so this group's shared fixtures would be built "
            "on every worker; install the pytest that the dev extra allows: "
            'pip install -e ".[dev]"'
        )


def _cifar10_subset() -> Path:
    """The real subset: beside the clone, or where the tests are told it is."""
    override = os.environ.get("MOBILENET_TEST_CIFAR10_DIR")
    return Path(override) if override else REPO_ROOT / DOCS_SUBSET


def _require_subset(what: str) -> None:
    """Skips the block where the subset is absent (a user's clone); fails on CI."""
    subset = _cifar10_subset()
    if not (subset / "cifar-10-batches-py").is_dir():
        message = (
            f"{what} the CIFAR-10 subset, which is not at {subset} "
            "(set MOBILENET_TEST_CIFAR10_DIR to a folder holding cifar-10-batches-py/)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)


def _offline(*args, **kwargs):
    raise OSError(
        "a docs block tried to reach the network; blocks run offline, so mark "
        "one that needs the network `notest`"
    )


@pytest.fixture(autouse=True)
def _markdown_block_sandbox(request: pytest.FixtureRequest):
    """For markdown blocks only: a temporary clone folder, the subset, no network."""
    if request.node.get_closest_marker("markdown-docs") is None:
        yield
        return

    subset = _cifar10_subset()
    if DOCS_SUBSET.as_posix() in getattr(request.node, "code", ""):
        _require_subset("this block reads")

    tmp_path: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    clone = tmp_path / "mobilenet"
    clone.mkdir()
    if subset.is_dir():
        link = clone / DOCS_SUBSET
        link.parent.mkdir(parents=True)
        link.symlink_to(subset.resolve(), target_is_directory=True)
    monkeypatch.chdir(clone)
    monkeypatch.setattr(socket.socket, "connect", _offline)
    monkeypatch.setattr(socket, "getaddrinfo", _offline)

    import keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)  # no full collection: see tests/conftest.py


@pytest.fixture(scope="session")
def _train_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model files as `mobilenet.training.train` saves them from CIFAR-10, built once per worker."""
    import keras

    from mobilenet.datasets import CIFAR10_CLASS_NAMES
    from mobilenet.schedules import WarmupCosineDecay
    from mobilenet.training import build_model

    model = build_model(class_names=CIFAR10_CLASS_NAMES)
    model.compile(
        optimizer=keras.optimizers.SGD(WarmupCosineDecay(0.2, 70, 1050), momentum=0.9),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )
    model.optimizer.build(model.trainable_variables)   # as after training: its slots are saved too
    folder = tmp_path_factory.mktemp("train_output")
    for name in ("best.keras", "final.keras"):
        model.save(folder / name)
    keras.backend.clear_session()
    return folder


@pytest.fixture
def runs_c10(_markdown_block_sandbox, _train_output: Path) -> Path:
    """What ``mobilenet train --output-dir runs/c10`` leaves, for blocks that start there.

    Request it with ```python fixture:runs_c10. ``runs/c10/best.keras`` and
    ``final.keras`` hold the model `train` builds, compiled as `train`
    compiles it (so the files carry its learning-rate schedule) but not
    trained: training takes minutes, and exporting or loading does not care.
    """
    folder = Path("runs", "c10")
    shutil.copytree(_train_output, folder)
    return folder.resolve()


@pytest.fixture(scope="session")
def _own_images_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What docs/own-images.md's first two blocks leave, made once per worker by running them.

    Those blocks lay out ``photos/`` and train on it into ``runs/photos/``;
    the page's later blocks start from those files (``fixture:photos_run``)
    rather than continuing the blocks before them, which would train again for
    each block.
    """
    _require_subset("the blocks that make these files read")
    page = (REPO_ROOT / "docs" / "own-images.md").read_text()
    folder_block, train_block = re.findall(r"^```python[^\n]*\n(.*?)^```", page, re.M | re.S)[:2]
    assert 'train("photos"' in train_block, train_block  # the page's own run, not another
    clone = tmp_path_factory.mktemp("own_images") / "mobilenet"
    (clone / DOCS_SUBSET).parent.mkdir(parents=True)
    (clone / DOCS_SUBSET).symlink_to(_cifar10_subset().resolve(), target_is_directory=True)

    import keras

    keras.utils.set_random_seed(0)
    here = Path.cwd()
    os.chdir(clone)
    try:
        exec(compile(folder_block + train_block, "docs/own-images.md", "exec"), {})  # noqa: S102
    finally:
        os.chdir(here)
        keras.backend.clear_session()
    return clone


@pytest.fixture
def photos_run(_markdown_block_sandbox, _own_images_run: Path) -> Path:
    """``photos/`` and ``runs/photos/`` as docs/own-images.md's first blocks leave them.

    Request it with ```python fixture:photos_run.
    """
    for name in ("photos", "runs"):
        shutil.copytree(_own_images_run / name, name)
    return Path("runs", "photos").resolve()
