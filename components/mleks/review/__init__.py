"""Pull-request review: forecasts of what a change to a stack does, from offline renders."""
