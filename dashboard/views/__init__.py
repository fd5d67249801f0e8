"""One module per dashboard page; each exposes ``render()`` and only renders (data comes from dashboard.data)."""
