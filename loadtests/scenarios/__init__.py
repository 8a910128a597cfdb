"""One module per journey: patients, practice pages, and the two enumeration attacks."""
