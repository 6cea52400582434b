"""The report stage's library: result tables (`tables`) and figures (`plots`)."""
