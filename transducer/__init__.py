"""transducer: train and run character-level recurrent string-to-string models."""

__version__ = "0.1.0"
