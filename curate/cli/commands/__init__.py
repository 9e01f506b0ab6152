"""The command groups: each parses its options, calls one library function, hands the result to its view."""
