"""Getting actuals in: files, layouts, mapping profiles, validation, commit and roll-back."""
