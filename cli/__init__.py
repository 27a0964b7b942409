"""The second interface beside `api/`: the same handlers from a shell, printing JSON."""
