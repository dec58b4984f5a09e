"""Where datasets come from: our synthetic generators, the Hugging Face hub, and the user's own
files (CSV/TSV, JSON, JSON Lines, Parquet, CoNLL columns); `iob` normalises entity tags."""
