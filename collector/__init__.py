"""nodewatch collector."""
