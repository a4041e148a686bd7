"""The error type for bad user input."""


class InputError(ValueError):
    """Bad user input (a file, column, shape or value), reported in one line.

    The message names what was wrong and where, for example
    `reviews.csv: no column named 'label' (columns: text, score)`.
    The CLI prints it without a traceback.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's run over many), or its type's name."""
    message = (getattr(error, "message", None) or str(error)).strip()
    return message.splitlines()[0] if message else type(error).__name__
