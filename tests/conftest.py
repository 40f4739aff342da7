"""Shared test fixtures: quiet TensorFlow, the shared CIFAR-10 subset, seeds.

Keras' backend is TensorFlow unless ``KERAS_BACKEND`` says otherwise: ``.ci/run``
runs the backend-neutral test files a second time with ``KERAS_BACKEND=jax``,
where tests marked ``tf_only`` skip.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The real CIFAR-10 subset laid beside the clone (see the README's "Data" section).
SHARED_CIFAR10 = REPO_ROOT.parent / "shared" / "data" / "cifar10-subset"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips tests marked ``tf_only`` when Keras runs on another backend (KERAS_BACKEND)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"needs Keras' TensorFlow backend; this run uses KERAS_BACKEND={backend}"
    )
    for item in items:
        if item.get_closest_marker("tf_only") is not None:
            item.add_marker(skip)


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def cifar10_subset_dir() -> Path:
    """The folder holding ``cifar-10-batches-py/`` of the shared real subset.

    Skips where the subset is absent (a user's clone); fails on CI, where it
    must be present.
    """
    override = os.environ.get("MOBILENET_TEST_CIFAR10_DIR")
    folder = Path(override) if override else SHARED_CIFAR10
    if not (folder / "cifar-10-batches-py").is_dir():
        message = (
            f"the shared CIFAR-10 subset is not at {folder} (set "
            "MOBILENET_TEST_CIFAR10_DIR to a folder holding cifar-10-batches-py/)"
        )
        if _on_ci():
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return folder


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same seed and float32 policy.

    Keras' state is cleared after each test without a full garbage collection
    (``free_memory=False``): in a worker that has run hundreds of tests, one
    takes seconds, and Python's own collector frees the same memory as it goes.
    """
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)
