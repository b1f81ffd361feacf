"""One module per CLI verb (see `tritonnx.cli.VERBS`)."""
