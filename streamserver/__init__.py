"""streamserver: real-time redaction of personal data from live speech."""

__version__ = "0.1.0"
