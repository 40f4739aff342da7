"""Loading the ``.keras`` files this library writes, with errors that say what went wrong."""

from __future__ import annotations

import os
import zipfile

import keras

from mobilenet._validation import check_existing_file, first_line, invalid

__all__ = ["load_model"]


def load_model(
    path: str | os.PathLike, *, compile: bool = False, argument: str = "path"
) -> keras.Model:
    """Loads a ``.keras`` model file, such as those `train` and `model.save` write.

    The same as ``keras.saving.load_model`` (after ``import mobilenet`` that
    finds this library's layers and schedules by itself), with two changes:
    ``compile`` defaults to False, since a file is mostly loaded to predict,
    evaluate or export, and a file that is missing, not a ``.keras`` archive
    or truncated gets an error that says which.

    Args:
        path: str or PathLike, the ``.keras`` file.
        compile: bool, whether to restore the optimizer, loss and metrics the
            model was compiled with (to go on training). Defaults to False.
        argument: str, the name errors give ``path``: a caller that takes the
            file under another name (``model_path``, a command's ``model``)
            passes its own. Defaults to ``"path"``.

    Returns:
        The ``keras.Model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a ``.keras`` archive, is corrupt or
            truncated, or holds something Keras cannot rebuild.

    Example:

    ```python
    import keras
    import mobilenet

    mobilenet.MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10).save("small.keras")
    model = mobilenet.load_model("small.keras")
    ```
    """
    from mobilenet import _registration

    _registration.register()
    file = check_existing_file(path, argument, ".keras file")
    shown = f"{argument}={str(path)!r}"
    if file.suffix != ".keras":
        raise invalid(argument, "a .keras file (Keras' native format)", None, shown=shown)
    if not zipfile.is_zipfile(file):
        raise invalid(argument, "", None, shown=shown,
                      problem=f"{str(path)!r} is corrupt or truncated (not a readable .keras archive)")
    try:
        return keras.saving.load_model(file, compile=compile)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise invalid(
            argument, "", None, shown=shown,
            problem=f"{str(path)!r} is corrupt or truncated ({type(error).__name__}: {error})",
        ) from error
    except (TypeError, ValueError) as error:
        raise invalid(
            argument, "", None, shown=shown,
            problem=f"Keras could not rebuild the model in {str(path)!r} ({first_line(error)})",
        ) from error
