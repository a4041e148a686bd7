"""Movie-review sentiment: raw text in, positive/negative out, via a bidirectional GRU."""
