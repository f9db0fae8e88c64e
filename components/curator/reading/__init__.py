"""Reading: raw examples and forward records from TFRecord files, parsed into ids, labels and scores."""
