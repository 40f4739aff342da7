"""Tests for `mobilenet.errors` and `mobilenet._validation`: errors that carry the argument they are about."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from mobilenet._validation import (
    check_choice,
    check_existing_file,
    check_int,
    check_number,
    first_line,
    invalid,
)
from mobilenet.errors import InvalidArgument, InvalidKey, InvalidType, MissingPath


def test_invalid_is_a_value_error_that_names_its_argument():
    error = invalid("epochs", "an integer >= 1", 0)
    assert isinstance(error, ValueError) and isinstance(error, InvalidArgument)
    assert error.argument == "epochs"
    assert str(error) == "Invalid value for argument `epochs`: expected an integer >= 1. Received: epochs=0"


def test_message_says_it_again_under_another_name():
    error = invalid("batch_size", "an integer >= 1", -3)
    assert error.message("--batch-size") == (
        "Invalid value for argument `--batch-size`: expected an integer >= 1. Received: --batch-size=-3"
    )
    shaped = invalid("x_test", "images of shape (n, 32, 32, 3)", None, shown="an array of shape (4, 8)")
    assert shaped.message("--data-dir").endswith("Received: an array of shape (4, 8)")
    # Only a leading "argument=" is renamed, not a longer name that starts the same way.
    assert invalid("x", "a number", None, shown="x_test=1").message("--x").endswith("Received: x_test=1")


def test_problem_replaces_the_expected_phrase():
    error = invalid("rescale", "", None, problem="the model does not take pixels")
    assert str(error) == ("Invalid value for argument `rescale`: the model does not take pixels. "
                          "Received: rescale=None")


def test_checks_raise_invalid_argument_and_it_pickles():
    with pytest.raises(InvalidArgument) as caught:
        check_number(float("nan"), "alpha", low=0, low_open=True)
    assert caught.value.argument == "alpha"
    with pytest.raises(ValueError, match="`epochs`: expected an integer >= 1"):
        check_int(0, "epochs", minimum=1)
    with pytest.raises(InvalidArgument, match=r"one of \('a', 'b'\)"):
        check_choice("c", "mode", ("a", "b"))
    error = pickle.loads(pickle.dumps(invalid("seed", "an integer", "x")))
    assert isinstance(error, InvalidArgument) and error.argument == "seed"
    assert str(error) == "Invalid value for argument `seed`: expected an integer. Received: seed='x'"


def test_message_renames_the_arguments_its_problem_mentions():
    error = invalid("freeze_epochs", "0 without pretrained `weights`", 3, mentions=("weights",))
    flags = {"freeze_epochs": "--freeze-epochs", "weights": "--weights"}
    assert error.message(flags) == ("Invalid value for argument `--freeze-epochs`: expected 0 "
                                    "without pretrained `--weights`. Received: --freeze-epochs=3")
    # A name the mapping leaves out keeps its own; an unmentioned backticked word is left alone.
    other = invalid("model", "a model like those of `train`", None, shown="model=None")
    assert other.message({"train": "--x"}) == str(other)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.mentions == ("weights",) and copy.message(flags) == error.message(flags)


@pytest.mark.parametrize("kind, builtin", [
    (MissingPath, FileNotFoundError), (InvalidType, TypeError), (InvalidKey, KeyError),
])
def test_error_kinds_are_also_the_builtin_errors_callers_expect(kind, builtin):
    error = invalid("key", "one of ['a']", "b", error=kind)
    assert isinstance(error, builtin) and isinstance(error, InvalidArgument)
    # KeyError's own str() would quote the message.
    assert str(error) == "Invalid value for argument `key`: expected one of ['a']. Received: key='b'"
    assert type(pickle.loads(pickle.dumps(error))) is kind


def test_check_existing_file_says_what_is_there(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"x")
    assert check_existing_file(tmp_path / "m.keras", "model") == tmp_path / "m.keras"
    with pytest.raises(MissingPath, match=r"`model`: expected an existing \.keras file\. "
                                          r"Received: model='.*absent\.keras' \(no such file\)"):
        check_existing_file(tmp_path / "absent.keras", "model", ".keras file")
    with pytest.raises(FileNotFoundError, match=r"\(a folder\)$"):
        check_existing_file(tmp_path, "model")


def test_first_line_of_an_error():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert first_line(FileNotFoundError(2, "No such file or directory", "x.npy")) == (
        "No such file or directory: x.npy")


def test_the_errors_are_public_and_the_same_everywhere():
    import mobilenet
    import mobilenet._validation as validation
    import mobilenet.errors as errors

    assert mobilenet.InvalidArgument is errors.InvalidArgument is validation.InvalidArgument
    for name in errors.__all__:
        assert getattr(validation, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.InvalidArgument)


def test_importing_the_errors_loads_no_keras():
    code = "import sys, mobilenet.errors; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["False", "False"]


def test_an_error_without_received_text_ends_at_its_problem():
    error = InvalidArgument("model", "it does not take pixels")
    assert str(error) == "Invalid value for argument `model`: it does not take pixels"
    assert error.message("MODEL") == "Invalid value for argument `MODEL`: it does not take pixels"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
