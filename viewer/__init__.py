"""nodewatch viewer."""
