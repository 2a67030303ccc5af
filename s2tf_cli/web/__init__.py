"""`s2tf serve`: the local web page."""
