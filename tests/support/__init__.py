"""Helpers that more than one test folder uses; each folder's own stay in that folder."""
