"""bidsxai: a BIDS-App that explains deep networks trained on brain MRI."""

__version__ = "0.2.0"
