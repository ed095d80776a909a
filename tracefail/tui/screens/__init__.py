"""One module per screen of the browser."""
