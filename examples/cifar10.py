"""Train a MobileNet V1 on CIFAR-10 and print its test accuracy.

    python examples/cifar10.py --data-dir ../shared/data/cifar10-subset

Without --data-dir the dataset comes from $MOBILENET_CIFAR10_DIR or Keras's
download cache. Killed mid-run? Run the same command with --resume. The saved
models (runs/cifar10-example/best.keras, final.keras) take pixels as they come,
0-255: `mobilenet.load_model(path).predict(uint8_images)` needs no preprocessing.
"""

import argparse
import dataclasses

from mobilenet import without_tensorflow_log
from mobilenet.training.recipe import RECIPE  # the recipe's defaults, without loading TensorFlow

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz")
parser.add_argument("--epochs", type=int, default=26)
parser.add_argument("--alpha", type=float, default=RECIPE.alpha, help="width multiplier")
parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
parser.add_argument("--validation-fraction", type=float, default=0.0,
                    help="share of the training images held out to pick best.keras by; the default 0 "
                         "trains on all of them (the recipe was chosen on a validation split, "
                         "docs/cifar10.md), and best.keras is then picked by training accuracy")
parser.add_argument("--output-dir", default="runs/cifar10-example")
parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir")
parser.add_argument("--limit", type=int, help="use only the first N training and test images")
parser.add_argument("--seed", type=int, default=0, help="seed of the weights, split, shuffle and augmentation")
args = parser.parse_args()
recipe = dataclasses.replace(RECIPE, epochs=args.epochs, alpha=args.alpha, batch_size=args.batch_size,
                             validation_fraction=args.validation_fraction, seed=args.seed)

# TensorFlow prints its C++ start-up notices when imported: hide them, as `mobilenet` does
# (TF_CPP_MIN_LOG_LEVEL no longer hides those printed at import).
with without_tensorflow_log():
    from mobilenet import training

    # CIFAR-10's arrays, with its class names and test images: the door every dataset takes.
    data = training.load_data(args.data_dir, limit=args.limit)
    print(f"{len(data.train[0])} training images, {len(data.test[0])} test images")

    result = training.train(data, output_dir=args.output_dir, recipe=recipe, resume=args.resume)
    x_test, y_test = data.test
    report = training.evaluate(result.model, x_test, y_test)  # raw uint8 pixels, as a user has them
    for name, accuracy in report.per_class_accuracy.items():
        print(f"  {name:<11}{accuracy:6.1%}")
    print(f"test accuracy: {report.accuracy:.2%}")
    training.save_plots(result.history, report, args.output_dir)  # PNGs when matplotlib is installed
