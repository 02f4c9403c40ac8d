"""Wrong answers to the book's exercises, one module per chapter; see tests/test_exercises.py."""
