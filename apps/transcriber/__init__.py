"""Speech transcription: utterances of any length in, a stacked BiGRU trained with CTC, text out."""
