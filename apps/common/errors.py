"""The error type for bad user input."""


class InputError(ValueError):
    """Bad user input (a file, column, shape or value), reported in one line.

    The message names what was wrong and where, for example
    `reviews.csv: no column named 'label' (columns: text, score)`.
    The CLI prints it without a traceback.
    """
