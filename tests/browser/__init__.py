"""Browser tests: the API explorer (/docs, /redoc) rendered by a real headless Chromium."""
