"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class UserError(Exception):
    """Bad input the user can fix (config, data, paths); never a bug in mesimp."""


class DataError(UserError):
    """Missing, corrupt or malformed data; the message names the file (and line)."""
