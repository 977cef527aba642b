"""nodewatch's shared wire protocol: messages, codec and errors. No I/O lives here."""

__version__ = "0.1.0"
