"""nodewatch agent."""
