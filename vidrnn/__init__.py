"""vidrnn: recurrent temporal models over frozen ImageNet CNN features, for video classification and tracking."""

__version__ = "0.1.0"
