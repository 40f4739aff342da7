"""Datasets for training and evaluating: CIFAR-10, your own image folders, arrays.

```python
from mobilenet import datasets

(x_train, y_train), (x_test, y_test) = datasets.load_cifar10("../shared/data/cifar10-subset")
```

- `cifar10`: the safe reader of CIFAR-10's official python release
  (`load_cifar10`) and its class names;
- `image_folder`: a folder per class (`load_image_folder`), listed and
  checked, for `mobilenet.training.train` to stream through ``tf.data``;
- `arrays`: the checks that image and label arrays pass
  (`check_images_and_labels`) and a class-stratified split
  (`split_validation`).
"""

from __future__ import annotations

from mobilenet.datasets.arrays import check_images_and_labels, split_validation, stratified_holdout
from mobilenet.datasets.cifar10 import CLASS_NAMES as CIFAR10_CLASS_NAMES
from mobilenet.datasets.cifar10 import DATA_DIR_ENV, load_cifar10
from mobilenet.datasets.image_folder import (
    IMAGE_SUFFIXES,
    ImageFolder,
    ImageFolderSplits,
    is_image_folder,
    load_image_folder,
)

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "DATA_DIR_ENV",
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "ImageFolderSplits",
    "check_images_and_labels",
    "is_image_folder",
    "load_cifar10",
    "load_image_folder",
    "split_validation",
    "stratified_holdout",
]
