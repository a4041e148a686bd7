"""The error type for bad user input."""


class InputError(ValueError):
    """Bad user input (a file, column, shape or value), reported in one line.

    The message names what was wrong and where, for example
    `reviews.csv: no column named 'label' (columns: text, score)`.
    The CLI prints it without a traceback.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (a TensorFlow graph error's: the op's own), or
    its type's name."""
    message = (getattr(error, "message", None) or str(error)).strip()
    if message.startswith("Graph execution error:"):
        # The op's own message follows the Python traceback of where the op
        # was defined: the last line that is not indented.
        lines = [line for line in message.splitlines()[1:] if line.strip() and not line[0].isspace()]
        if lines and not lines[-1].startswith("Detected at node"):
            return lines[-1]
    return message.splitlines()[0] if message else type(error).__name__
