"""A GRU encoder-decoder chatbot with attention (`gru-suite train chatbot`, `gru-suite chat`)."""
