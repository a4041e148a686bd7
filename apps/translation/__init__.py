"""Translation with a GRU encoder-decoder and attention (`gru-suite train translation`)."""
