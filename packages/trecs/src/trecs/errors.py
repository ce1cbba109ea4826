"""The one exception type that means "the user's input is wrong"."""


class UserError(Exception):
    """Bad input the user can fix: the CLI prints it as one `error: ...` line and exits 2."""
