"""User-facing errors: raised for bad input and caught by the CLI, which prints the message without a traceback."""


class LlmlabError(Exception):
    """An error whose message says what is wrong and where (file, line, field); shown to the user as is."""
