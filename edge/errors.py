"""Errors that are the user's to fix: the CLIs print them as one line and exit with status 2."""


class UserError(Exception):
    """Bad input, bad arguments or a refused artifact. The message is the whole explanation."""


class AudioError(UserError):
    """An audio file that cannot be read or used."""


class ManifestError(UserError):
    """An artifacts folder whose manifest or model cannot be trusted or used."""


EXIT_USER_ERROR = 2
