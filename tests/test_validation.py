"""Tests for `mobilenet._validation`: errors that carry the argument they are about."""

from __future__ import annotations

import pickle

import pytest

from mobilenet._validation import InvalidArgument, check_choice, check_int, check_number, invalid


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
