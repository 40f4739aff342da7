"""`mobilenet train --strategy multi-worker`: two worker processes on this machine.

Each test starts the installed console script twice, as worker 0 (the chief)
and worker 1 of a ``TF_CONFIG`` cluster on free 127.0.0.1 ports, with the same
command line and the same ``--output-dir``, as on shared storage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobilenet.training import free_ports

pytestmark = pytest.mark.slow

MOBILENET = Path(sys.executable).with_name("mobilenet")
#: Seconds a run of a worker may take before the test gives up on it.
TIMEOUT = 300
#: What a finished run leaves in --output-dir, each written by the chief alone.
OUTPUTS = {
    "best.keras", "final.keras", "history.json", "history.csv", "test.json",
    "curves.png", "confusion.png", "run.json",
}
TINY = ["--limit", "128", "--alpha", "0.25", "--early-downsampling", "4", "--batch-size", "32"]


class _Cluster:
    """Two `mobilenet train --strategy multi-worker` processes with one command line."""

    def __init__(self, tmp_path: Path, tag: str, argv: list[str]) -> None:
        if not MOBILENET.is_file():
            pytest.skip(f"the console script is not installed beside {sys.executable}")
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        self.logs = [tmp_path / f"{tag}-worker{i}.log" for i in range(2)]
        # Each worker's own temporary folder, to see what it leaves there.
        self.tmpdirs = [tmp_path / f"{tag}-tmp{i}" for i in range(2)]
        self.processes = []
        for index in range(2):
            self.tmpdirs[index].mkdir()
            env = {
                key: value for key, value in os.environ.items()
                if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")
            }
            env.update(
                TF_CONFIG=json.dumps({
                    "cluster": {"worker": workers}, "task": {"type": "worker", "index": index},
                }),
                TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", NO_PROXY="127.0.0.1",
                TMPDIR=str(self.tmpdirs[index]),
            )
            with open(self.logs[index], "w") as log:
                self.processes.append(subprocess.Popen(
                    [str(MOBILENET), "train", "--strategy", "multi-worker", *argv],
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                ))

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def wait(self, index: int, timeout: float = TIMEOUT) -> int:
        try:
            return self.processes[index].wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {index} did not end in {timeout} s:\n{self.log(index)[-3000:]}")

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def finish(self) -> None:
        """Waits for both workers and asserts that both exited 0."""
        try:
            for index in range(2):
                code = self.wait(index)
                assert code == 0, f"worker {index} exited {code}:\n{self.log(index)[-3000:]}"
        finally:
            self.kill()


def _rows(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "history.json").read_text())


def test_two_workers_train_and_only_the_chief_writes(cifar10_subset_dir, tmp_path):
    output_dir = tmp_path / "run"
    argv = ["--data-dir", str(cifar10_subset_dir), "--output-dir", str(output_dir), "--epochs", "2", *TINY]
    cluster = _Cluster(tmp_path, "train", argv)
    cluster.finish()

    # Each file once, whole, from the chief: no temporary files, no backup left.
    assert {path.name for path in output_dir.iterdir()} == OUTPUTS
    rows = _rows(output_dir)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert (output_dir / "history.csv").read_text().count("\n") == 3
    assert "test accuracy:" in cluster.log(0)
    assert "test accuracy:" not in cluster.log(1)
    # The other worker wrote its copies to a private folder and removed it.
    assert list(cluster.tmpdirs[1].iterdir()) == []

    # A new process loads both models; the final one scores what the workers reported.
    code = (
        "import json, sys\n"
        "import mobilenet\n"
        "import keras\n"
        "from mobilenet import training\n"
        "from mobilenet.datasets import load_cifar10\n"
        "_, (x, y) = load_cifar10(sys.argv[1])\n"
        "best = keras.saving.load_model(sys.argv[2] + '/best.keras')\n"
        "final = keras.saving.load_model(sys.argv[2] + '/final.keras')\n"
        "report = training.evaluate(final, x[:128], y[:128])\n"
        "print(json.dumps({'steps': int(final.optimizer.iterations.numpy()),\n"
        "                  'accuracy': report.accuracy,\n"
        "                  'confusion_matrix': report.confusion_matrix.tolist()}))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(cifar10_subset_dir), str(output_dir)],
        capture_output=True, text=True, env=env, timeout=TIMEOUT,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    # 115 training images in global batches of 32: 3 steps an epoch (the short
    # batch of 19 is left out, as `train` does over several replicas).
    assert result["steps"] == 6
    reported = json.loads((output_dir / "test.json").read_text())
    assert reported["num_examples"] == 128
    assert result["accuracy"] == pytest.approx(reported["accuracy"])
    assert result["confusion_matrix"] == reported["confusion_matrix"]


def test_killed_worker_resumes_from_the_last_finished_epoch(cifar10_subset_dir, tmp_path):
    output_dir = tmp_path / "run"
    argv = ["--data-dir", str(cifar10_subset_dir), "--output-dir", str(output_dir), "--epochs", "3", *TINY]
    metadata = output_dir / "backup" / "training_metadata.json"

    cluster = _Cluster(tmp_path, "first", argv)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (metadata.is_file() and metadata.read_text().strip()):
            assert time.monotonic() < deadline, f"no backup in {TIMEOUT} s:\n{cluster.log(0)[-3000:]}"
            assert cluster.processes[0].poll() is None, cluster.log(0)[-3000:]
            time.sleep(0.2)
        # Worker 1 dies; the chief cannot go on without it.
        cluster.processes[1].send_signal(signal.SIGKILL)
        assert cluster.wait(0) != 0
    finally:
        cluster.kill()
    finished = json.loads(metadata.read_text())["epoch"]
    assert 1 <= finished < 3
    before = _rows(output_dir)
    assert len(before) >= finished

    resumed = _Cluster(tmp_path, "resumed", [*argv, "--resume"])
    resumed.finish()
    rows = _rows(output_dir)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    # The finished epochs were kept, not trained again.
    assert rows[:finished] == before[:finished]
    assert f"Epoch {finished}/3" not in resumed.log(0)
    assert f"Epoch {finished + 1}/3" in resumed.log(0)
    assert {path.name for path in output_dir.iterdir()} == OUTPUTS


# --------------------------------------------------------------------------- folder datasets

_READ_SHARDS = """
import json, sys
import numpy as np
from mobilenet.datasets import load_image_folder
from mobilenet.training.data import sharded_file_dataset
from mobilenet.training.distribution import make_strategy

strategy = make_strategy("multi-worker")
folder = load_image_folder(sys.argv[1], validation_fraction=0).train
dataset, steps = sharded_file_dataset(strategy, folder, 8, None, dict(
    image_size=32, seed=0, augment=False, num_classes=2, random_erasing=0.0, cutmix=False))
epochs = []
for _ in range(2):
    levels = []
    for images, _ in dataset:
        for local in strategy.experimental_local_results(images):
            levels += [int(round(float(np.median(image)))) for image in np.asarray(local)]
    epochs.append(levels)
print("LEVELS " + json.dumps({"steps": steps, "epochs": epochs}))
"""


def _grey_levels(root: Path, count: int) -> list[int]:
    """``count`` files, each one flat grey level that names it, in two class folders."""
    import numpy as np
    from PIL import Image

    levels = [5 + 10 * index for index in range(count)]
    for index, level in enumerate(levels):
        folder = root / ("dark" if index % 2 else "light")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((36, 40, 3), level, np.uint8)).save(folder / f"{index}.png")
    return levels


def test_two_workers_each_read_their_own_files_and_all_once_an_epoch(tmp_path):
    levels = _grey_levels(tmp_path / "levels", 16)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = {key: value for key, value in os.environ.items()
               if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")}
        env.update(TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}),
                   TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", NO_PROXY="127.0.0.1")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _READ_SHARDS, str(tmp_path / "levels")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        ))
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, out[-3000:]
            outputs.append(json.loads(out.split("LEVELS ")[-1]))
    finally:
        for process in processes:
            process.kill()
    assert [output["steps"] for output in outputs] == [2, 2]  # 8 files a worker, 4 a step
    for epoch in range(2):
        read = [output["epochs"][epoch] for output in outputs]
        assert set(read[0]).isdisjoint(read[1])                 # no file read by both
        assert sorted(read[0] + read[1]) == levels              # every file once an epoch
    assert outputs[0]["epochs"][0] != outputs[0]["epochs"][1]   # reshuffled between epochs


def test_two_workers_train_on_a_folder_dataset(tmp_path):
    from tests.image_folders import write_pets

    write_pets(tmp_path / "pets", per_class=12)
    output_dir = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path / "pets"), "--output-dir", str(output_dir), "--epochs", "2",
            "--image-size", "32", "--alpha", "0.25", "--batch-size", "8",
            "--validation-fraction", "0.25"]
    cluster = _Cluster(tmp_path, "folders", argv)
    cluster.finish()
    # 27 training files after the split (9 a class): 13 a worker, one left out.
    for index in range(2):
        assert f"worker {index} of 2 reads 13 of 27 training files" in cluster.log(index)
    assert [row["epoch"] for row in _rows(output_dir)] == [1, 2]
    assert (output_dir / "final.keras").is_file() and (output_dir / "test.json").is_file()
