"""One module per source kind; each turns what it fetches into Items and submits them with its position."""
